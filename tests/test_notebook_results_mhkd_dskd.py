"""Notebooks 05 (MHKD) and 06 (DSKD) executed in the smoke profile: what they record in
results.json, and that 06 reuses 05's KD run from the shared run cache."""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest
import torch

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SEQUENCE = ("05_multi_head_kd", "06_deeply_supervised_kd")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Execute 05 then 06 with papermill (one run cache, as in the tour); their results."""
    papermill = pytest.importorskip("papermill")
    root = tmp_path_factory.mktemp("heads-notebooks")
    out_dir, cache_dir = root / "results", root / "cache"
    for stem in SEQUENCE:
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{stem}.ipynb"),
            str(root / f"{stem}.ipynb"),
            parameters={"profile": "smoke", "out_dir": str(out_dir), "cache_dir": str(cache_dir)},
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
        )
    return {stem: json.loads((out_dir / stem / "results.json").read_text()) for stem in SEQUENCE}


def _runs(payload: dict, method: str) -> list[dict]:
    return [r for r in payload["runs"] if r["method"] == method]


def test_both_notebooks_record_their_smoke_settings(results):
    for stem, payload in results.items():
        assert payload["schema"] == 1
        assert payload["notebook"] == stem
        assert payload["settings"]["profile"] == "smoke"
        for run in payload["runs"] + payload["extra"]["ablation"]["runs"]:
            assert 0.0 <= run["test_acc_best"] <= 1.0
            assert 0.0 <= run["test_acc_last"] <= 1.0
            assert run["student_params"] == 77_754  # the plain resnet8 is what is kept


# --------------------------------------------------------------------------------------------
# 05: MHKD


def test_05_compares_kd_and_mhkd_on_every_seed_with_the_mhkd_papers_settings(results):
    payload = results["05_multi_head_kd"]
    seeds = payload["settings"]["seeds"]
    assert [r["method"] for r in payload["runs"]] == ["kd", "mhkd", "ce"] * len(seeds)
    (kd,) = _runs(payload, "kd")
    (mhkd,) = _runs(payload, "mhkd")
    assert kd["options"] == {"tau": 4.0, "alpha": 0.9, "kd_weighting": "convex"}
    options = mhkd["options"]
    assert (options["tau"], options["alpha"], options["beta"]) == (4.0, 0.9, 0.5)
    assert options["heads"] == "all" and options["head_width"] == payload["extra"]["head_width"]
    assert payload["extra"]["head_width"] == 32
    assert "mhkd" in payload["extra"]["verdict"]


def test_05_heads_sit_on_both_sides_and_leave_the_exported_student_plain(results):
    extra = results["05_multi_head_kd"]["extra"]
    pairs = extra["head_pairs"]
    assert [p["student_position"] for p in pairs] == ["layer1", "layer2", "layer3"]
    assert [p["teacher_position"] for p in pairs] == ["layer1", "layer2", "layer3"]
    assert all(p["student_head_params"] > 0 and p["teacher_head_params"] > 0 for p in pairs)
    budget = extra["parameter_budget"]
    assert budget["export_is_plain"] is True
    assert budget["exported"] == budget["plain"] == 77_754
    assert budget["extras"]["student_heads"] == sum(p["student_head_params"] for p in pairs)


def test_05_logs_every_head_term_and_plots_them(results):
    payload = results["05_multi_head_kd"]
    (mhkd,) = _runs(payload, "mhkd")
    losses = mhkd["history"][0]["losses"]
    for j in (1, 2, 3):
        assert {f"head{j}_kl", f"head{j}_ce", f"teacher_head{j}_ce"} <= set(losses)
    assert {"kd", "ce"} <= set(losses)
    curves = payload["extra"]["head_kl_curves"]
    assert list(curves) == [
        "head 1 (layer1)",
        "head 2 (layer2)",
        "head 3 (layer3)",
        "final outputs (KD)",
    ]
    beta, alpha = payload["extra"]["beta"], payload["extra"]["alpha"]
    assert curves["head 1 (layer1)"]["mean"][0] == pytest.approx(
        losses["head1_kl"] / (beta * alpha)
    )
    for curve in [*curves.values(), *payload["extra"]["teacher_head_curves"].values()]:
        assert all(math.isfinite(v) and v >= 0 for v in curve["mean"])
    assert len(payload["extra"]["teacher_head_curves"]) == 3


def test_05_single_head_ablation_beside_the_papers_table2(results):
    payload = results["05_multi_head_kd"]
    ablation = payload["extra"]["ablation"]
    assert ablation["seeds"] == [0] and ablation["heads"] == ["3"]  # the smoke grid
    rows = {r["variant"]: r for r in ablation["rows"]}
    assert list(rows) == ["kd", "3", "all"]
    assert rows["3"]["paper"] == ["75.00 +/- 0.35", "73.32 +/- 0.21"]
    assert rows["kd"]["paper"] == ["74.92", "72.98"]
    assert rows["3"]["paired"] and not rows["kd"]["paired"]
    single = [r for r in ablation["runs"] if r["options"].get("heads") == "3"]
    assert len(single) == 1
    head_terms = [k for k in single[0]["history"][0]["losses"] if k.startswith("head")]
    assert len(head_terms) == 2  # one head pair: its KL and CE terms
    # KD and full MHKD at the ablation's seed are the main runs, read back from the cache
    main = {r["run_dir"] for r in payload["runs"]}
    reused = [r for r in ablation["runs"] if r["method"] == "kd" or r["options"]["heads"] == "all"]
    assert {r["run_dir"] for r in reused} <= main


# --------------------------------------------------------------------------------------------
# 06: DSKD


def test_06_compares_kd_dskd_dsn_and_byot_and_reuses_05s_kd_run(results):
    payload = results["06_deeply_supervised_kd"]
    seeds = payload["settings"]["seeds"]
    methods = ["kd", "dskd", "dsn", "byot", "ce"]
    assert [r["method"] for r in payload["runs"]] == methods * len(seeds)
    kd_05 = {r["run_dir"] for r in _runs(results["05_multi_head_kd"], "kd")}
    assert {r["run_dir"] for r in _runs(payload, "kd")} == kd_05
    assert all(r["teacher"] is None for r in _runs(payload, "dsn") + _runs(payload, "byot"))
    (dskd,) = _runs(payload, "dskd")
    options = dskd["options"]
    assert (options["tau"], options["alpha"], options["beta"]) == (4.0, 1.0, 30.0)
    assert options["record_weights"] is True and options["weighting"] == "adaptive"
    assert set(dskd["history"][0]["losses"]) == {
        "ce",
        "kd_last",
        "kd_shallow",
        "fea_last",
        "fea_shallow",
    }
    assert len(payload["extra"]["verdicts"]) == 4  # dskd, dsn, byot and ce, each against kd
    compared = {
        (c["label"].split()[0], c["baseline"].split()[0]) for c in payload["extra"]["comparisons"]
    }
    assert {("dskd", "dsn"), ("dskd", "byot"), ("dskd", "ce")} <= compared


def test_06_shallow_classifiers_are_removed_at_export(results):
    extra = results["06_deeply_supervised_kd"]["extra"]
    classifiers = extra["shallow_classifiers"]
    assert [c["position"] for c in classifiers] == ["layer1", "layer2"]
    assert classifiers[0]["copies"] == ["layer2", "layer3"]
    budget = extra["parameter_budget"]
    assert budget["export_is_plain"] is True
    assert budget["extras"]["exits"] == sum(c["params"] for c in classifiers)


def test_06_adaptive_weights_sum_to_one_per_sample(results):
    weights = results["06_deeply_supervised_kd"]["extra"]["weights"]
    assert weights["sum_to_one_gap"] < 1e-5
    assert weights["epochs"] == [1]
    assert weights["samples_per_epoch"]["1"] > 0
    kd = weights["trajectories"]["kd_weights"]
    first, second = kd.values()
    assert first["mean"][0] + second["mean"][0] == pytest.approx(1.0, abs=1e-5)
    for path in sorted(Path(weights["run_dir"]).glob("records/epoch-*.pt")):
        record = torch.load(path, weights_only=True)
        assert {"kd_weights", "fea_weights"} <= set(record)
        for tensor in (record["kd_weights"], record["fea_weights"]):
            assert tensor.shape[1] == 2
            assert torch.allclose(tensor.sum(dim=1), torch.ones(tensor.shape[0]), atol=1e-5)


def test_06_ablation_beside_the_papers_table3(results):
    ablation = results["06_deeply_supervised_kd"]["extra"]["ablation"]
    assert ablation["seeds"] == [0] and ablation["variants"] == ["both_off"]  # the smoke grid
    rows = {r["variant"]: r for r in ablation["rows"]}
    assert list(rows) == ["full", "both_off"]
    assert rows["full"]["paper"] == ["76.50 +/- 0.21"]
    assert rows["both_off"]["paper"] == ["75.73 +/- 0.20"]
    (both_off,) = [r for r in ablation["runs"] if r["label"] == "dskd without L_Fea, equal weights"]
    assert both_off["options"]["feature_loss"] is False
    assert both_off["options"]["weighting"] == "equal"
    assert set(both_off["history"][0]["losses"]) == {"ce", "kd_last", "kd_shallow"}
