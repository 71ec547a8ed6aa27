"""Notebooks 01, 02, 04 and 07 executed in the smoke profile: what they record in results.json."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

NOTEBOOKS = Path(__file__).resolve().parent.parent / "notebooks"
SEQUENCE = ("01_knowledge_distillation", "02_capacity_gap", "04_dih_distillation", "07_comparison")

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def results(tmp_path_factory) -> dict[str, dict]:
    """Execute the four notebooks in order (07 reads what the others recorded); their results."""
    papermill = pytest.importorskip("papermill")
    root = tmp_path_factory.mktemp("kd-notebooks")
    out_dir, cache_dir = root / "results", root / "cache"
    for stem in SEQUENCE:
        parameters = {"profile": "smoke", "out_dir": str(out_dir), "cache_dir": str(cache_dir)}
        papermill.execute_notebook(
            str(NOTEBOOKS / f"{stem}.ipynb"),
            str(root / f"{stem}.ipynb"),
            parameters=parameters,
            kernel_name="python3",
            cwd=str(NOTEBOOKS),
            progress_bar=False,
        )
    return {stem: json.loads((out_dir / stem / "results.json").read_text()) for stem in SEQUENCE}


def _accuracies(payload: dict) -> list[float]:
    return [run[key] for run in payload["runs"] for key in ("test_acc_best", "test_acc_last")]


def test_every_notebook_records_its_smoke_settings(results):
    for stem, payload in results.items():
        assert payload["notebook"] == stem
        assert payload["settings"]["profile"] == "smoke"


def test_recorded_accuracies_are_fractions(results):
    for stem in SEQUENCE[:3]:
        accuracies = _accuracies(results[stem])
        assert accuracies, stem
        assert all(0.0 <= a <= 1.0 for a in accuracies), stem


def test_01_records_the_kd_identity_to_1e_6(results):
    identity = results["01_knowledge_distillation"]["extra"]["kd_identity"]
    assert identity["value_gap"] < 1e-6
    assert identity["gradient_gap"] < 1e-6
    assert identity["soft_ce"] - identity["kl"] == pytest.approx(identity["teacher_entropy"])


def test_01_compares_ce_and_kd_on_the_profile_seeds(results):
    payload = results["01_knowledge_distillation"]
    assert sorted(r["method"] for r in payload["runs"]) == ["ce", "kd"]
    assert {r["seed"] for r in payload["runs"]} == set(payload["settings"]["seeds"])


def test_01_gradient_norm_with_tau_squared_does_not_vanish(results):
    norms = results["01_knowledge_distillation"]["extra"]["gradient_norms"]
    assert norms["with_tau2"][-1] > 10 * norms["without_tau2"][-1]


def test_02_distils_from_every_teacher_of_the_ladder_and_runs_takd(results):
    payload = results["02_capacity_gap"]
    kd_teachers = [r["teacher"] for r in payload["runs"] if r["method"] == "kd"]
    assert kd_teachers == payload["extra"]["teachers"]
    takd = [r for r in payload["runs"] if r["method"] == "takd"]
    assert len(takd) == 1
    assert takd[0]["options"]["assistant"] == payload["extra"]["assistant"]
    assert len(payload["extra"]["capacity_points"]) == len(kd_teachers) + 1


def test_04_runs_the_four_methods_and_reuses_01s_cached_runs(results):
    payload = results["04_dih_distillation"]
    assert [r["method"] for r in payload["runs"]] == ["ce", "kd", "dih", "dih-ensemble"]
    first = {r["method"]: r["run_dir"] for r in results["01_knowledge_distillation"]["runs"]}
    again = {r["method"]: r["run_dir"] for r in payload["runs"]}
    assert again["ce"] == first["ce"]
    assert again["kd"] == first["kd"]


def test_07_lists_every_method_of_01_02_and_04(results):
    payload = results["07_comparison"]
    assert payload["runs"] == []
    assert payload["extra"]["notebooks"] == list(SEQUENCE[:3])
    methods = {group["method"] for group in payload["extra"]["groups"]}
    assert methods == {"ce", "kd", "dih", "dih-ensemble", "takd"}
    recorded = {r["run_dir"] for stem in SEQUENCE[:3] for r in results[stem]["runs"]}
    assert sum(group["n"] for group in payload["extra"]["groups"]) == len(recorded)
