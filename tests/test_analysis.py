"""The analysis helpers behind the KD notebooks: temperature maths, seed statistics, results."""

from __future__ import annotations

import json
import math

import pytest
import torch

from dihkit.runs.results import (
    collect_results,
    collected_runs,
    run_label,
    run_record,
    write_results,
)
from dihkit.studies.paper_numbers import DIH_TABLE2, dih_table2_markdown, dih_table3_markdown
from dihkit.studies.seeds import (
    GroupSummary,
    learning_curves,
    mean_std,
    noise_verdict,
    paired_differences,
    summarise_runs,
    summary_markdown,
)
from dihkit.studies.temperature import (
    entropy,
    entropy_against_tau,
    kd_gradient_norms,
    kd_identity,
    softened_grid,
)


def _run(method, seed, acc, *, teacher="resnet56", last=None, seconds=10.0, curve=(0.5, 0.6)):
    return {
        "method": method,
        "seed": seed,
        "teacher": None if method == "ce" else teacher,
        "student": "resnet8",
        "test_acc_best": acc,
        "test_acc_last": acc if last is None else last,
        "best_val_acc": acc,
        "best_epoch": len(curve),
        "seconds": seconds,
        "student_params": 77754,
        "run_dir": f"/cache/{method}-{teacher}-{seed}",
        "options": {"tau": 5.0, "alpha": 0.1},
        "history": [{"epoch": i + 1, "val_acc": v} for i, v in enumerate(curve)],
    }


RUNS = [
    _run("ce", 0, 0.70),
    _run("ce", 1, 0.72),
    _run("ce", 2, 0.74),
    _run("kd", 0, 0.71),
    _run("kd", 1, 0.75),
    _run("kd", 2, 0.74),
]


def test_softened_grid_rows_sum_to_one_and_flatten_with_tau():
    logits = torch.tensor([4.0, 1.0, 0.0])
    grid = softened_grid(logits, [1.0, 5.0, 100.0])
    assert grid.shape == (3, 3)
    assert torch.allclose(grid.sum(-1), torch.ones(3, dtype=torch.float64))
    assert grid[0, 0] > grid[1, 0] > grid[2, 0] > 1 / 3


def test_entropy_of_uniform_is_log_c_and_of_one_hot_is_zero():
    assert entropy(torch.full((4,), 0.25)).item() == pytest.approx(math.log(4))
    assert entropy(torch.tensor([1.0, 0.0, 0.0])).item() == 0.0


def test_entropy_grows_with_tau_towards_log_c():
    values = entropy_against_tau(torch.tensor([3.0, 1.0, -2.0, 0.5]), [0.5, 1, 2, 5, 20, 1000])
    assert values == sorted(values)
    assert values[-1] == pytest.approx(math.log(4), abs=1e-4)


def test_gradient_norm_with_tau_squared_is_flat_and_without_it_falls_as_one_over_tau_squared():
    torch.manual_seed(0)
    student, teacher = torch.randn(64, 10), torch.randn(64, 10)
    norms = kd_gradient_norms(student, teacher, [10.0, 100.0])
    assert norms.with_tau2[1] == pytest.approx(norms.with_tau2[0], rel=0.05)
    assert norms.without_tau2[0] / norms.without_tau2[1] == pytest.approx(100, rel=0.05)


def test_gradient_norm_matches_the_closed_form_tau_times_probability_gap():
    student, teacher = torch.tensor([[2.0, 0.0, -1.0]]), torch.tensor([[0.0, 1.0, 0.0]])
    tau = 2.0
    expected = tau * (torch.softmax(student / tau, -1) - torch.softmax(teacher / tau, -1)).norm()
    assert kd_gradient_norms(student, teacher, [tau]).with_tau2[0] == pytest.approx(
        expected.item(), rel=1e-6
    )


def test_kl_and_soft_target_cross_entropy_differ_by_the_teacher_entropy_with_equal_gradients():
    torch.manual_seed(1)
    identity = kd_identity(torch.randn(32, 10) * 3, torch.randn(32, 10) * 3, tau=4.0)
    assert identity.soft_ce - identity.kl == pytest.approx(identity.teacher_entropy, abs=1e-9)
    assert identity.value_gap < 1e-6
    assert identity.gradient_gap < 1e-6
    assert identity.kd_loss_gap < 1e-5  # the package's float32 kd_loss agrees


def test_mean_std_uses_the_sample_deviation():
    mean, std = mean_std([0.70, 0.72, 0.74])
    assert mean == pytest.approx(0.72)
    assert std == pytest.approx(0.02)
    assert mean_std([0.5]) == (0.5, 0.0)


def test_paired_differences_match_hand_computed_values():
    diffs = paired_differences(RUNS, "kd (resnet56 -> resnet8)", "ce (resnet8)")
    assert diffs == pytest.approx({0: 0.01, 1: 0.03, 2: 0.0})


def test_paired_differences_skip_seeds_the_baseline_lacks():
    runs = [*RUNS, _run("kd", 7, 0.9)]
    assert 7 not in paired_differences(runs, "kd (resnet56 -> resnet8)", "ce (resnet8)")


def test_run_label_names_the_chain_and_prefers_an_explicit_label():
    assert run_label(RUNS[0]) == "ce (resnet8)"
    takd = {**RUNS[3], "method": "takd", "options": {"assistant": "resnet20"}}
    assert run_label(takd) == "takd (resnet56 -> resnet20 -> resnet8)"
    assert run_label({**RUNS[3], "label": "mine"}) == "mine"


def test_summarise_runs_groups_by_label_with_mean_std_and_paired_differences():
    ce, kd = summarise_runs(RUNS, baseline="ce (resnet8)")
    assert (ce.n, kd.n) == (3, 3)
    assert kd.mean == pytest.approx(0.7333333333)
    assert kd.std == pytest.approx(0.02081665999)
    assert ce.paired == {}
    assert kd.paired == pytest.approx({0: 0.01, 1: 0.03, 2: 0.0})
    table = summary_markdown([ce, kd], baseline="ce (resnet8)")
    assert "73.33 +/- 2.08" in table
    assert "+1.00, +3.00, +0.00" in table


def _summary(label, paired):
    return GroupSummary(label, "kd", 3, [0, 1, 2], 0.7, 0.01, 0.7, 0.01, 1.0, 10, paired)


def test_noise_verdict_calls_mixed_signs_seed_noise():
    text = noise_verdict(_summary("kd", {0: 0.01, 1: -0.005, 2: 0.002}), _summary("ce", {}))
    assert "not every seed agrees on the sign" in text
    assert "inside seed noise" in text


def test_noise_verdict_calls_a_difference_smaller_than_its_spread_seed_noise():
    text = noise_verdict(_summary("kd", {0: 0.001, 1: 0.02, 2: 0.001}), _summary("ce", {}))
    assert "as large as their mean" in text
    assert "+0.73 points on average (per seed +0.10, +2.00, +0.10)" in text


def test_noise_verdict_accepts_a_consistent_difference():
    text = noise_verdict(_summary("kd", {0: 0.02, 1: 0.021, 2: 0.019}), _summary("ce", {}))
    assert "same sign in all 3" in text


def test_noise_verdict_with_one_seed_says_so():
    assert "one seed" in noise_verdict(_summary("kd", {0: 0.02}), _summary("ce", {}))


def test_learning_curves_average_over_seeds():
    runs = [_run("ce", 0, 0.7, curve=(0.4, 0.6)), _run("ce", 1, 0.7, curve=(0.6, 0.8, 0.9))]
    curves = learning_curves(runs)
    assert curves["ce (resnet8)"]["epoch"] == [1, 2]
    assert curves["ce (resnet8)"]["mean"] == pytest.approx([0.5, 0.7])


def test_results_round_trip_and_collect(tmp_path):
    settings = {"profile": "smoke", "epochs": 1}
    write_results(tmp_path, "01_a", settings, RUNS[:3], kd_identity={"gap": 0.0})
    write_results(tmp_path, "04_b", settings, RUNS)
    (tmp_path / "99_broken").mkdir()
    (tmp_path / "99_broken" / "results.json").write_text("{not json")
    found = collect_results(tmp_path)
    assert [r["notebook"] for r in found] == ["01_a", "04_b"]
    assert found[0]["extra"] == {"kd_identity": {"gap": 0.0}}
    assert json.loads((tmp_path / "01_a" / "results.json").read_text())["schema"] == 1


def test_run_record_counts_the_seconds_of_every_stage(tmp_path):
    (tmp_path / "assistant").mkdir()
    (tmp_path / "assistant" / "history.json").write_text('[{"seconds": 2.0}, {"seconds": 3.0}]')
    record = run_record({**RUNS[3], "run_dir": str(tmp_path)}, settings=None)
    assert record["stage_seconds"] == {"assistant": 5.0}
    assert record["seconds"] == 15.0
    assert run_label(record) == "kd (resnet56 -> resnet8)"


def test_collected_runs_count_a_run_recorded_twice_once():
    results = [
        {"notebook": "01", "runs": RUNS[:3]},
        {"notebook": "04", "runs": RUNS},
    ]
    runs = collected_runs(results)
    assert len(runs) == 6
    assert [r["notebook"] for r in runs] == ["01"] * 3 + ["04"] * 3


def test_collected_runs_keep_different_settings_apart():
    other = [{**r, "epochs": 30, "run_dir": r["run_dir"] + "-30"} for r in RUNS[:3]]
    mine = [{**r, "epochs": 15} for r in RUNS[:3]]
    runs = collected_runs([{"notebook": "a", "runs": mine}, {"notebook": "b", "runs": other}])
    labels = {run_label(r) for r in runs}
    assert labels == {"ce (resnet8) [epochs=15]", "ce (resnet8) [epochs=30]"}


def test_paper_numbers_are_labelled_as_the_papers():
    assert len(DIH_TABLE2) == 6
    assert "Published, not measured here" in dih_table2_markdown("cifar100")
    assert "61.94" in dih_table2_markdown("cifar100")
    assert "62.70" in dih_table3_markdown()
    with pytest.raises(ValueError, match="cifar10"):
        dih_table2_markdown("mnist")


def test_collected_runs_keep_cached_and_live_runs_apart():
    live = [{**r, "epochs": 15} for r in RUNS[3:6]]  # older records carry no cached_targets
    cached = [
        {**r, "epochs": 15, "cached_targets": 8, "run_dir": r["run_dir"] + "-c"} for r in live
    ]
    runs = collected_runs([{"notebook": "a", "runs": live}, {"notebook": "b", "runs": cached}])
    labels = sorted({run_label(r) for r in runs})
    assert len(runs) == 6 and len(labels) == 2
    assert labels[0].endswith("[cached_targets=0]") and labels[1].endswith("[cached_targets=8]")
