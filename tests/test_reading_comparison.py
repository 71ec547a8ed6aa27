"""Notebook 07's generated reading: each method lands in the verdict class its paired seeds
give, and the time sentence quotes the fastest and slowest rows."""

from __future__ import annotations

from run_records import fake_run

from dihkit.studies.reading_comparison import comparison_reading
from dihkit.studies.seeds import summarise_runs, verdict_class


def _runs(method: str, accs: list[float], seconds: float) -> list[dict]:
    teacher = None if method == "ce" else "t"
    return [
        fake_run(method, seed, acc, teacher=teacher, label=method, seconds=seconds)
        for seed, acc in enumerate(accs)
    ]


def test_methods_are_grouped_by_their_paired_verdict_and_times_are_quoted():
    runs = (
        _runs("ce", [0.50, 0.52, 0.51], 10.0)
        + _runs("kd", [0.55, 0.56, 0.57], 4.0)  # +5, +4, +6: consistent, ahead
        + _runs("dih", [0.51, 0.50, 0.53], 5.0)  # +1, -2, +2: mixed signs
        + _runs("dsn", [0.40, 0.41, 0.42], 25.0)  # -10, -11, -9: consistent, behind
    )
    summaries = summarise_runs(runs, baseline="ce")
    base = summaries[0]
    assert [verdict_class(s) for s in summaries[1:]] == ["ahead", "inside noise", "behind"]
    text = comparison_reading(summaries, base)
    assert "consistently ahead: kd;" in text
    assert "consistently behind: dsn;" in text
    assert "inside seed noise: dih." in text
    assert "from 4.0 s (kd) to 25.0 s (dsn), 6.2 times as long; ce takes 10.0 s" in text


def test_nothing_recorded_and_a_missing_baseline_are_said_plainly():
    assert "Nothing was recorded yet" in comparison_reading([], None)
    summaries = summarise_runs(_runs("kd", [0.5, 0.6], 1.0))
    assert "baseline was not found" in comparison_reading(summaries, None)
