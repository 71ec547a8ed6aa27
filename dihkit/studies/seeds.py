"""Statistics over seeds: mean +/- sample std, paired differences (same seed, same initial
student and data order), one summary per group of runs, an honest verdict on seed noise, and
validation curves averaged over seeds."""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dihkit.runs.compare import selected_heading
from dihkit.runs.results import run_label

__all__ = [
    "GroupSummary",
    "learning_curves",
    "VERDICTS",
    "mean_std",
    "noise_verdict",
    "paired_differences",
    "paired_verdict_class",
    "summarise_runs",
    "summary_markdown",
    "verdict_class",
]


def mean_std(values: Iterable[float]) -> tuple[float, float]:
    """Mean and sample standard deviation (n - 1); the deviation of a single value is 0."""
    values = [float(v) for v in values]
    if not values:
        return math.nan, math.nan
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else 0.0


def paired_differences(
    runs: Iterable[Mapping[str, Any]],
    label: str,
    baseline: str,
    metric: str = "test_acc_best",
) -> dict[int, float]:
    """``{seed: run[label] - run[baseline]}`` for every seed both groups ran (same seed = same
    initial student and data order, only the method differs)."""
    runs = list(runs)
    by_seed = {r["seed"]: r[metric] for r in runs if run_label(r) == baseline}
    return {
        r["seed"]: r[metric] - by_seed[r["seed"]]
        for r in runs
        if run_label(r) == label and r["seed"] in by_seed
    }


@dataclass
class GroupSummary:
    """One group of runs (same label) summarised over its seeds; accuracies as fractions."""

    label: str
    method: str
    n: int
    seeds: list[int]
    mean: float
    std: float
    last_mean: float
    last_std: float
    seconds: float  # mean training time per run
    params: int
    paired: dict[int, float] = field(default_factory=dict)  # seed -> difference to the baseline
    notebooks: list[str] = field(default_factory=list)  # where the runs were recorded, if known
    # How the runs met their teacher: "live" (a forward pass per step), "cached" (precomputed
    # targets), "none" (no teacher), or "mixed" when the seeds differ.
    teacher_pass: str = "live"
    # False when no run of the group had a validation split (each kept its last epoch).
    val_selected: bool = True

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


def summarise_runs(
    runs: Iterable[Mapping[str, Any]], baseline: str | None = None
) -> list[GroupSummary]:
    """Group runs by :func:`run_label` (in order of appearance) and summarise each group: test
    accuracy (validation-selected and last epoch) mean +/- std over seeds, the mean training
    time, the student's parameters and the paired differences to ``baseline`` (a label, or a
    method name standing for the first group of that method)."""
    runs = [dict(r) for r in runs]
    labels = list(dict.fromkeys(run_label(r) for r in runs))
    if baseline is not None and baseline not in labels:  # a method name: its first group
        baseline = next((run_label(r) for r in runs if r["method"] == baseline), baseline)
    summaries = []
    for label in labels:
        group = [r for r in runs if run_label(r) == label]
        best, last = (
            mean_std(r["test_acc_best"] for r in group),
            mean_std(r["test_acc_last"] for r in group),
        )
        paired = {}
        if baseline is not None and label != baseline:
            paired = paired_differences(runs, label, baseline)
        summaries.append(
            GroupSummary(
                label=label,
                method=group[0]["method"],
                n=len(group),
                seeds=[r["seed"] for r in group],
                mean=best[0],
                std=best[1],
                last_mean=last[0],
                last_std=last[1],
                seconds=statistics.fmean(r["seconds"] for r in group),
                params=int(group[0]["student_params"]),
                paired=paired,
                notebooks=list(dict.fromkeys(r["notebook"] for r in group if "notebook" in r)),
                teacher_pass=teacher_pass(group),
                val_selected=not all(_last_epoch_kept(r) for r in group),
            )
        )
    return summaries


def _last_epoch_kept(run: Mapping[str, Any]) -> bool:
    """Whether a run had no validation split (it records ``best_val_acc`` None)."""
    return "best_val_acc" in run and run["best_val_acc"] is None


def teacher_pass(runs: Sequence[Mapping[str, Any]]) -> str:
    """How a group's runs met their teacher: "none" (no teacher), "cached" (every run trained
    from cached targets), "live", or "mixed"."""
    kinds = {
        "none" if not r.get("teacher") else "cached" if r.get("cached_targets") else "live"
        for r in runs
    }
    return kinds.pop() if len(kinds) == 1 else "mixed"


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} +/- {100 * std:.2f}"


def summary_markdown(summaries: Sequence[GroupSummary], baseline: str | None = None) -> str:
    """A markdown table of :func:`summarise_runs`' output (accuracies in percent); a "recorded
    in" column appears when the runs know their notebooks. Groups without a validation split kept
    their last epoch, and the first accuracy column says so (``test % (last epoch)``)."""
    sources = any(s.notebooks for s in summaries)
    selected = selected_heading([s.val_selected for s in summaries])
    head = f"paired diff vs {baseline} (per seed, points)" if baseline else "paired diff"
    lines = [
        f"| run | n | {selected} | test % (last epoch) | {head} | params | s/run |"
        + (" recorded in |" if sources else ""),
        "|---|---|---|---|---|---|---|" + ("---|" if sources else ""),
    ]
    for s in summaries:
        diffs = ", ".join(f"{100 * d:+.2f}" for d in s.paired.values()) or "-"
        lines.append(
            f"| {s.label} | {s.n} | {_pct(s.mean, s.std)} | {_pct(s.last_mean, s.last_std)} | "
            f"{diffs} | {s.params:,} | {s.seconds:.1f} |"
            + (f" {', '.join(s.notebooks)} |" if sources else "")
        )
    return "\n".join(lines)


VERDICTS = ("consistent", "mixed signs", "within spread", "one seed", "no shared seed")
CONSISTENT, MIXED, SPREAD, ONE_SEED, NO_PAIRS = VERDICTS


def paired_verdict_class(diffs: Iterable[float]) -> str:
    """The class of paired differences under the kit's rule (:func:`noise_verdict`):
    ``consistent`` (the same sign in all and ``|mean| > std``), ``mixed signs`` or ``within
    spread`` (both: inside seed noise), ``one seed`` (no verdict possible) or ``no shared
    seed``."""
    diffs = list(diffs)
    if not diffs:
        return NO_PAIRS
    if len(diffs) < 2:
        return ONE_SEED
    if not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        return MIXED
    mean, std = mean_std(diffs)
    return CONSISTENT if abs(mean) > std else SPREAD


def verdict_class(summary: GroupSummary) -> str:
    """``"ahead"``, ``"behind"``, ``"inside noise"`` or ``"one seed"`` for a summary's paired
    differences to its baseline (:func:`paired_verdict_class`, with the sign)."""
    diffs = list(summary.paired.values())
    verdict = paired_verdict_class(diffs)
    if verdict in (ONE_SEED, NO_PAIRS):
        return "one seed"
    if verdict != CONSISTENT:
        return "inside noise"
    return "ahead" if mean_std(diffs)[0] > 0 else "behind"


def noise_verdict(summary: GroupSummary, baseline: GroupSummary) -> str:
    """One honest sentence on whether ``summary`` differs from ``baseline`` beyond seed noise.

    The difference counts as real only when every paired difference has the same sign and the
    mean paired difference is larger than their standard deviation; with one seed no verdict
    is possible.
    """
    diffs = list(summary.paired.values())
    name, base = summary.label, baseline.label
    if not diffs:
        return f"{name} and {base} share no seed, so no paired comparison is possible."
    mean, std = mean_std(diffs)
    per_seed = ", ".join(f"{100 * d:+.2f}" for d in diffs)
    text = f"{name} vs {base}: {100 * mean:+.2f} points on average (per seed {per_seed})"
    if len(diffs) < 2:
        return text + "; with one seed nothing can be said about seed noise."
    if not (all(d > 0 for d in diffs) or all(d < 0 for d in diffs)):
        return text + "; not every seed agrees on the sign, so the difference is inside seed noise."
    if abs(mean) <= std:
        return (
            text + f"; the spread of the paired differences (std {100 * std:.2f}) is as large "
            "as their mean, so the difference is inside seed noise."
        )
    return (
        text + f"; the same sign in all {len(diffs)} paired seeds and larger than its spread "
        f"(std {100 * std:.2f}): a consistent difference, on {len(diffs)} seeds only."
    )


def learning_curves(runs: Iterable[Mapping[str, Any]]) -> dict[str, dict[str, list[float]]]:
    """Validation accuracy per epoch of each group: ``{label: {"epoch", "mean", "std"}}``,
    over the group's seeds (epochs that every run of the group reached)."""
    curves: dict[str, list[list[float]]] = {}
    for run in runs:
        curves.setdefault(run_label(run), []).append(
            [math.nan if row["val_acc"] is None else row["val_acc"] for row in run["history"]]
        )
    result = {}
    for label, rows in curves.items():
        length = min(len(r) for r in rows)
        stats = [mean_std(r[i] for r in rows) for i in range(length)]
        result[label] = {
            "epoch": list(range(1, length + 1)),
            "mean": [m for m, _ in stats],
            "std": [s for _, s in stats],
        }
    return result
