"""The generated readings of notebooks 05 and 06 (dihkit.studies.reading_supervision) on
hand-made numbers, each checked against an independent computation."""

from __future__ import annotations

import statistics
from types import SimpleNamespace

import pytest
import torch
from run_records import fake_run

from dihkit.runs import results
from dihkit.runs.cache import RunSummary
from dihkit.runs.results import RunSpec, run_grid
from dihkit.studies import reading_supervision as rs
from dihkit.studies.seeds import summarise_runs


def record(method, seed, acc, *, teacher="resnet56-c10", label=None, seconds=10.0):
    teacher = None if method == "ce" else teacher
    return fake_run(method, seed, acc, teacher=teacher, label=label, seconds=seconds)


def grid(accs: dict[str, list[float]], seconds: dict[str, float] | None = None) -> list[dict]:
    return [
        record(m, seed, acc, seconds=(seconds or {}).get(m, 10.0))
        for m, values in accs.items()
        for seed, acc in enumerate(values)
    ]


def test_ablation_default_is_opt_in_outside_smoke_and_paper():
    full, smoke = ["1", "2", "3"], ["3"]
    assert rs.ablation_default(None, SimpleNamespace(profile="classroom"), full, smoke) == []
    assert rs.ablation_default(None, SimpleNamespace(profile="smoke"), full, smoke) == smoke
    assert rs.ablation_default(None, SimpleNamespace(profile="paper"), full, smoke) == full
    assert rs.ablation_default(["2"], SimpleNamespace(profile="classroom"), full, smoke) == ["2"]


def test_mhkd_teacher_heads_and_ablation_specs():
    assert rs.mhkd_teacher_heads(SimpleNamespace(train_teacher_heads=False)) == "pretrained"
    assert rs.mhkd_teacher_heads(SimpleNamespace(train_teacher_heads=True)) == "joint"
    options = {"tau": 4.0, "teacher_heads": "pretrained"}
    assert rs.mhkd_ablation_specs("t", options, []) == []
    specs = rs.mhkd_ablation_specs("t", options, ["1", "3"])
    assert [s.label for s in specs] == ["mhkd, head 1 only", "mhkd, head 3 only", "mhkd, all heads"]
    assert all(s.options["teacher_heads"] == "joint" and s.options["tau"] == 4.0 for s in specs)
    assert [s.options.get("heads") for s in specs] == ["1", "3", None]
    assert options["teacher_heads"] == "pretrained"  # not modified


def head_flops_and_params(width: int) -> tuple[int, int]:
    """resnet8 on fmnist-mini: stage outputs 16x28x28, 32x14x14, 64x7x7; each conv head is two
    3x3 convs (no bias) with BN, pooling, fc width->width, fc width->10."""
    flops = params = 0
    for channels, side in ((16, 28), (32, 14), (64, 7)):
        flops += 2 * 9 * side * side * (channels * width + width * width)
        flops += 2 * (width * width + width * 10)
        params += 9 * (channels * width + width * width) + 4 * width
        params += width * width + width + width * 10 + 10
    return flops, params


def test_mhkd_head_cost_counts_the_heads():
    cost = rs.mhkd_head_cost("resnet8", "fmnist-mini", [32, 256])
    for width in (32, 256):
        flops, params = head_flops_and_params(width)
        assert cost["widths"][width]["flops"] == flops
        assert cost["widths"][width]["params"] == params
        assert sum(cost["widths"][width]["unit_flops"]) == flops
    assert cost["student_params"] == 77754
    text = rs.head_cost_markdown(cost, 32)
    ratio = head_flops_and_params(256)[0] / cost["student_flops"]
    assert f"would cost {ratio:.0f} times its FLOPs" in text
    assert f"{head_flops_and_params(32)[0] / cost['student_flops']:.1f} times" in text
    assert "heads at unit 1" in text  # full resolution: the first unit's heads dominate
    assert "paper's 256" not in rs.head_cost_markdown(cost, 256)


@pytest.mark.parametrize(
    ("diffs", "status"),
    [
        ([0.02, 0.03, 0.025], "consistent"),
        ([-0.02, -0.03, -0.025], "consistent"),
        ([0.02, -0.01, 0.01], "mixed signs"),
        ([0.001, 0.05, 0.001], "within spread"),
        ([0.01], "one seed"),
    ],
)
def test_paired_comparison_follows_the_noise_rule(diffs, status):
    base = [0.70, 0.71, 0.72][: len(diffs)]
    runs = grid({"kd": base, "mhkd": [b + d for b, d in zip(base, diffs, strict=True)]})
    c = rs.paired_comparison(runs, "mhkd", "kd")
    mean = statistics.fmean(diffs)
    std = statistics.stdev(diffs) if len(diffs) > 1 else 0.0
    assert c["status"] == status
    assert c["label"] == "mhkd (resnet56-c10 -> resnet8)"
    assert c["baseline"] == "kd (resnet56-c10 -> resnet8)"
    assert c["mean"] == pytest.approx(mean) and c["std"] == pytest.approx(std)
    assert ("a consistent difference" in c["verdict"]) == (status == "consistent")
    sentence = rs.comparison_sentence(c)
    assert f"{100 * mean:+.2f} points" in sentence
    assert ("consistent difference" in sentence) == (status == "consistent")
    if status == "consistent":
        assert ("above" if mean > 0 else "below") in sentence
    if status in ("mixed signs", "within spread"):
        assert "inside seed noise" in sentence
    if status == "mixed signs":  # [0.02, -0.01, 0.01]: two of three above, one below
        assert "(2 of 3 above kd (resnet56-c10 -> resnet8), 1 below)" in sentence


def test_comparisons_skip_missing_groups_and_reading_gives_the_time_ratio():
    runs = grid(
        {"kd": [0.70, 0.71], "mhkd": [0.72, 0.73], "ce": [0.69, 0.70]},
        seconds={"kd": 10.0, "mhkd": 25.0, "ce": 8.0},
    )
    items = rs.comparisons(runs, [("mhkd", "kd"), ("mhkd", "ce"), ("dskd", "kd")])
    assert [(c["label"].split()[0], c["baseline"].split()[0]) for c in items] == [
        ("mhkd", "kd"),
        ("mhkd", "ce"),
    ]
    assert items[1]["baseline"] == "ce (resnet8)"
    assert items[1]["mean"] == pytest.approx(0.03)
    text = rs.reading_markdown(items, summarise_runs(runs, baseline="kd"), "mhkd", "kd")
    assert "25.0 s per mhkd run against 10.0 s per kd run (2.5 times)" in text
    assert text.count("\n- ") == 2


def curve(values):
    return {"epoch": list(range(1, len(values) + 1)), "mean": values, "std": [0.0] * len(values)}


def test_head_kl_reading_with_joint_and_with_frozen_teacher_heads():
    kl = {
        "head 1 (layer1)": curve([0.02, 0.6, 0.5]),
        "head 2 (layer2)": curve([0.01, 0.3, 1.2]),
        "final outputs (KD)": curve([12.0, 3.0, 2.0]),
    }
    ce = {"teacher head 1": curve([2.3, 1.0, 0.7]), "teacher head 2": curve([2.3, 0.5, 0.4])}
    joint = rs.head_kl_markdown(kl, ce, "joint")
    assert "0.020 at epoch 1, peak 0.600 at epoch 2, 0.500 at epoch 3" in joint
    assert "peak 1.200 at epoch 3" in joint
    assert "rises after epoch 1 at 2 of 2 heads" in joint
    assert "teacher head 1 2.300 -> 0.700" in joint and "sharpened" in joint
    assert "final outputs" not in joint
    frozen = rs.head_kl_markdown(kl, {}, "pretrained")
    assert "no teacher-head CE curve exists" in frozen and "fixed targets" in frozen
    falling = rs.head_kl_markdown({"head 1 (layer1)": curve([0.5, 0.3, 0.2])}, {}, "pretrained")
    assert "only move closer" in falling and "fixed targets" not in falling
    one = rs.head_kl_markdown({"head 1 (layer1)": curve([0.02])}, {}, "joint")
    assert "One epoch logged" in one and "no trend" in one


def test_ablation_readings_say_how_to_enable_an_ablation_that_did_not_run():
    ref = "kd (resnet56-c10 -> resnet8)"
    only_reference = [{"label": ref, "seeds": [0], "paired": {}}]
    hint = {"parameter": "ablation_heads", "example": '["1", "2", "3"]'}
    for text in (
        rs.ablation_reading_markdown(only_reference, ref, 10, **hint),
        rs.ablation_section_markdown(only_reference, ["col"], reference="kd", **hint),
    ):
        assert "No ablation ran" in text and '`ablation_heads = ["1", "2", "3"]`' in text
    rows = only_reference + [
        {"label": "mhkd, head 1 only", "seeds": [0], "paired": {0: -0.0085}},
        {"label": "mhkd, all heads", "seeds": [0], "paired": {0: 0.01}},
    ]
    text = rs.ablation_reading_markdown(rows, ref, 10, **hint)
    assert "on 1 seed(s) of a 10-epoch run" in text
    assert "mhkd, head 1 only -0.85 points (one seed: no verdict)" in text
    assert "either side of the reference" in text
    two = [{"label": "v", "seeds": [0, 1], "paired": {0: 0.02, 1: 0.03}}]
    assert "v +2.50 points (consistent over its seeds)" in rs.ablation_reading_markdown(
        only_reference + two, ref, 10, **hint
    )
    table = rs.ablation_section_markdown(
        [{**r, "n": 1, "mean": 0.7, "std": 0.0, "paper": []} for r in rows],
        ["col"],
        reference="kd",
        **hint,
    )
    assert table.startswith("| variant |") and "mhkd, all heads" in table


def weights(first_column):
    column = torch.tensor(first_column)
    return torch.stack([column, 1 - column], dim=1)


def test_weight_spread_and_its_reading():
    spread_out = weights([0.5, 0.45, 0.3, 0.61])
    records = {1: {"kd_weights": weights([0.5, 0.5, 0.52, 0.48])}, 3: {"kd_weights": spread_out}}
    s = rs.weight_spread(records, "kd_weights")
    assert s["equal"] == 0.5 and list(s["epochs"]) == [1, 3]
    last = s["epochs"][3]
    assert last["share_near_equal"] == pytest.approx(2 / 4)  # 0.5 and 0.45 within 0.4-0.6
    assert last["median"] == pytest.approx(statistics.median([0.5, 0.45, 0.3, 0.61]))
    assert s["epochs"][1]["share_near_equal"] == 1.0
    text = rs.weights_markdown([s], "c1 (layer1)")
    assert "W_KD: 50 % of the samples have every weight within 0.40-0.60 at epoch 3" in text
    assert "(100 % at epoch 1)" in text and "median weight 0.475" in text
    assert "mild reweighting" in text
    near = rs.weights_markdown([rs.weight_spread({1: records[1]}, "kd_weights")], "c1")
    assert "behaves like equal weights" in near and "% at epoch 1)" not in near
    far = {2: {"fea_weights": weights([0.1, 0.9, 0.2, 0.5])}}
    text = rs.weights_markdown([rs.weight_spread(far, "fea_weights")], "c1")
    assert "W_Fea: 25 %" in text and "do shift" in text


def test_run_grid_logs_the_table_label_not_none(monkeypatch):
    def fake_run(method, *, teacher, student, config, **_):
        return RunSummary(method, config.seed, teacher, student, 0.5, 0.5, 0.5, 1, 1.0, 10, "")

    monkeypatch.setattr(results, "cached_run", fake_run)
    settings = SimpleNamespace(
        seeds=(0,),
        student="resnet8",
        config=lambda seed: SimpleNamespace(seed=seed),
        dataset="cifar10-mini",
        train_per_class=100,
        epochs=1,
        data_dir=None,
    )
    lines: list[str] = []
    specs = [RunSpec("kd", teacher="resnet56-c10"), RunSpec("ce"), RunSpec("kd", "t", label="x")]
    run_grid(settings, specs, cache_dir="unused", log=lines.append)
    assert [line.split(": test")[0] for line in lines] == [
        "kd (resnet56-c10 -> resnet8), seed 0",
        "ce (resnet8), seed 0",
        "x, seed 0",
    ]


def test_a_share_rounds_to_100_or_0_percent_only_when_it_is_exact():
    assert rs.share_text(1.0) == "100 %" and rs.share_text(0.0) == "0 %"
    assert rs.share_text(0.998) == "99.8 %"  # 1 sample in 500 outside: not "100 %"
    assert rs.share_text(0.002) == "0.2 %"
    assert rs.share_text(0.5) == "50 %" and rs.share_text(0.987) == "99 %"
    nearly = {5: {"kd_weights": weights([0.5] * 499 + [0.3])}}
    text = rs.weights_markdown([rs.weight_spread(nearly, "kd_weights")], "c1")
    assert "W_KD: 99.8 % of the samples" in text
