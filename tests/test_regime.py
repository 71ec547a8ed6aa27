"""The regime study's judgement: criteria per grid point, the choice rule and the table, on
hand-made runs (the numbers below are checked by hand, not by the functions under test)."""

from __future__ import annotations

from run_records import fake_run

from dihkit.studies.regime import choose_point, ladder_span, point_verdicts, regime_rows

SEEDS = range(5)


def _runs(n, epochs, label, method, accs, seconds):
    teacher = None if method == "ce" else "vgg8-c10"
    point = {"train_per_class": n, "epochs": epochs}
    return [
        fake_run(method, seed, acc, teacher=teacher, label=label, seconds=secs, point=point)
        for seed, acc, secs in zip(SEEDS, accs, seconds, strict=True)
    ]


CE = [0.40, 0.42, 0.41, 0.43, 0.39]
FAST = [3.0, 3.1, 2.9, 30.0, 3.0]  # one run slowed by other work: the median is 3.0


def _grid():
    good = [a + d for a, d in zip(CE, [0.02, 0.03, 0.025, 0.02, 0.03], strict=True)]
    mixed = [a + d for a, d in zip(CE, [0.02, -0.01, 0.01, -0.02, 0.01], strict=True)]
    return (
        _runs(50, 10, None, "ce", CE, FAST)
        + _runs(50, 10, "kd a", "kd", good, FAST)
        + _runs(50, 10, "kd b", "kd", good, FAST)
        + _runs(100, 10, None, "ce", CE, FAST)
        + _runs(100, 10, "kd a", "kd", good, FAST)
        + _runs(100, 10, "kd b", "kd", mixed, FAST)  # one KD setting not ahead: fails
        + _runs(200, 10, None, "ce", CE, [9.0] * 5)  # too slow
        + _runs(200, 10, "kd a", "kd", good, [9.0] * 5)
        + _runs(200, 10, "kd b", "kd", good, [9.0] * 5)
    )


def test_rows_hold_means_paired_differences_and_median_times():
    rows = regime_rows(_grid())
    assert [(r["train_per_class"], r["kd"]) for r in rows][:2] == [(50, "kd a"), (50, "kd b")]
    first = rows[0]
    assert abs(first["diff_mean"] - 0.025) < 1e-12  # (2 + 3 + 2.5 + 2 + 3) / 5 points
    assert abs(first["ce_mean"] - 0.41) < 1e-12
    assert first["ce_seconds"] == 3.0 and first["consistent"]
    assert not rows[3]["consistent"]  # 100/class, kd b: mixed signs


def test_criteria_and_the_choice_rule():
    rows = regime_rows(_grid())
    verdicts = point_verdicts(rows, span=0.09)
    assert verdicts[(50, 10)] == {
        "teachers differ": True,
        "kd ahead of ce": True,
        "affordable": True,
    }
    assert verdicts[(100, 10)]["kd ahead of ce"] is False
    assert verdicts[(200, 10)]["affordable"] is False
    assert choose_point(rows, span=0.09) == (50, 10)
    assert choose_point(rows, span=0.05) is None  # the ladder spans under 8 points
    assert abs(ladder_span({"a": 0.634, "b": 0.725}) - 0.091) < 1e-12
