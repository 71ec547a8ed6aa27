"""Readings of the learning curves (:func:`dihkit.studies.seeds.learning_curves`): in which
epochs one group's mean validation accuracy was below another's. No training, no display."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from dihkit.studies.reading_kd import group_label

__all__ = ["curve_gaps", "epoch_ranges"]


def epoch_ranges(epochs: Sequence[int]) -> str:
    """``[1, 2, 3, 5]`` -> ``"1-3 and 5"``: sorted epochs as runs of consecutive numbers."""
    runs: list[list[int]] = []
    for epoch in sorted(epochs):
        if runs and epoch == runs[-1][-1] + 1:
            runs[-1].append(epoch)
        else:
            runs.append([epoch])
    parts = [f"{r[0]}-{r[-1]}" if len(r) > 1 else f"{r[0]}" for r in runs]
    return parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]


def curve_gaps(
    curves: Mapping[str, Mapping[str, Sequence[float]]],
    records: Sequence[Mapping[str, Any]],
    method: str,
    baseline: str,
) -> str:
    """One sentence, from the curves, on the epochs where ``method``'s mean validation accuracy
    (over the seeds) was below ``baseline``'s, and the gap at the last epoch both reached."""
    label, base = group_label(records, method), group_label(records, baseline)
    if label is None or base is None or label not in curves or base not in curves:
        return f"{method} or {baseline} has no learning curve in these runs."
    ours, theirs = curves[label], curves[base]
    epochs = [e for e in ours["epoch"] if e in theirs["epoch"]]
    mine = dict(zip(ours["epoch"], ours["mean"], strict=True))
    other = dict(zip(theirs["epoch"], theirs["mean"], strict=True))
    below = [e for e in epochs if mine[e] < other[e]]
    last = epochs[-1]
    gap = 100 * (mine[last] - other[last])
    where = (
        f"below {base}'s in epoch{'s' if len(below) > 1 else ''} {epoch_ranges(below)} of "
        f"{len(epochs)}"
        if below
        else f"never below {base}'s in the {len(epochs)} epochs"
    )
    return (
        f"Mean validation accuracy of {label} over the seeds: {where}; at epoch {last} it is "
        f"{gap:+.2f} points from {base}'s."
    )
