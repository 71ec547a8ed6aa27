"""Judging the regime study (:mod:`dihkit.runs.regime`): the criteria, declared before the grid
was run, and the tables of every configuration tried (mean +/- std over seeds and the paired
differences). No training, no display.

The criteria a classroom regime must meet:

1. **Teachers that differ**: the bundled ladder's test accuracies span at least
   :data:`MIN_LADDER_SPAN` (8 points), so a capacity gap has room to show.
2. **KD ahead of CE in paired seeds**, for both temperature/weight settings of the papers: the
   kit's "consistent difference" (:func:`dihkit.studies.seeds.noise_verdict`: positive in every
   paired seed and a mean larger than the paired differences' std), on at least
   :data:`MIN_SEEDS` seeds.
3. **Affordable**: a CE run takes at most :data:`MAX_CE_SECONDS` (median over the seeds) on
   the machine the classroom profile is timed on. The heaviest notebook, 02, trains per seed
   three KD students beyond 01's and TAKD (an assistant about 3.4 times a student run, then
   the student): about 37 student-run equivalents over 5 seeds, which must fit its 4 minutes
   with about 20 s of overhead, so about 6 s each.

Among the configurations meeting all three, the one with the most images per class, then the
most epochs, is chosen: the closest to the papers' full-data recipes that fits the lesson. DIH
and the other methods play no part in the choice.
"""

from __future__ import annotations

import statistics
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dihkit.runs.results import run_label
from dihkit.studies.seeds import mean_std, paired_differences

__all__ = [
    "MAX_CE_SECONDS",
    "MIN_LADDER_SPAN",
    "MIN_SEEDS",
    "choose_point",
    "ladder_span",
    "regime_markdown",
    "regime_rows",
]

MIN_LADDER_SPAN = 0.08
MIN_SEEDS = 5
MAX_CE_SECONDS = 6.0


def ladder_span(test_accs: Mapping[str, float]) -> float:
    """Highest minus lowest test accuracy of the teachers (fractions)."""
    return max(test_accs.values()) - min(test_accs.values())


def consistent_gain(diffs: Sequence[float]) -> bool:
    """The kit's verdict rule, one-sided: every paired difference positive and their mean
    larger than their sample std."""
    if len(diffs) < 2:
        return False
    mean, std = mean_std(diffs)
    return all(d > 0 for d in diffs) and mean > std


def regime_rows(records: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per grid point and KD setting: CE and KD mean/std, the paired KD - CE differences
    by seed, whether the gain is consistent, and the mean CE run time."""
    records = list(records)
    points = list(
        dict.fromkeys((r["point"]["train_per_class"], r["point"]["epochs"]) for r in records)
    )
    rows = []
    for n, epochs in points:
        group = [
            r
            for r in records
            if (r["point"]["train_per_class"], r["point"]["epochs"]) == (n, epochs)
        ]
        ce = [r for r in group if r["method"] == "ce"]
        ce_label = run_label(ce[0])
        ce_mean, ce_std = mean_std(r["test_acc_best"] for r in ce)
        # The median: robust to a run slowed by other work on the shared cores.
        ce_seconds = statistics.median(r["seconds"] for r in ce)
        for label in dict.fromkeys(run_label(r) for r in group if r["method"] != "ce"):
            kd = [r for r in group if run_label(r) == label]
            diffs = paired_differences(group, label, ce_label)
            kd_mean, kd_std = mean_std(r["test_acc_best"] for r in kd)
            diff_mean, diff_std = mean_std(diffs.values())
            rows.append(
                {
                    "train_per_class": n,
                    "epochs": epochs,
                    "kd": label,
                    "seeds": sorted(diffs),
                    "ce_mean": ce_mean,
                    "ce_std": ce_std,
                    "kd_mean": kd_mean,
                    "kd_std": kd_std,
                    "diff_mean": diff_mean,
                    "diff_std": diff_std,
                    "diffs": [diffs[s] for s in sorted(diffs)],
                    "consistent": consistent_gain(list(diffs.values())),
                    "ce_seconds": ce_seconds,
                    "kd_seconds": statistics.median(r["seconds"] for r in kd),
                }
            )
    return rows


def point_verdicts(
    rows: Sequence[Mapping[str, Any]], span: float
) -> dict[tuple[int, int], dict[str, bool]]:
    """``(images per class, epochs) -> {criterion: met}`` for every grid point."""
    verdicts: dict[tuple[int, int], dict[str, bool]] = {}
    for row in rows:
        key = (row["train_per_class"], row["epochs"])
        entry = verdicts.setdefault(
            key,
            {
                "teachers differ": span >= MIN_LADDER_SPAN,
                "kd ahead of ce": True,
                "affordable": row["ce_seconds"] <= MAX_CE_SECONDS,
            },
        )
        entry["kd ahead of ce"] &= bool(row["consistent"]) and len(row["seeds"]) >= MIN_SEEDS
    return verdicts


def choose_point(rows: Sequence[Mapping[str, Any]], span: float) -> tuple[int, int] | None:
    """The chosen ``(images per class, epochs)``: all criteria met, most images, then most
    epochs; None when no configuration meets them."""
    passing = [key for key, met in point_verdicts(rows, span).items() if all(met.values())]
    return max(passing) if passing else None


def regime_markdown(rows: Sequence[Mapping[str, Any]], span: float) -> str:
    """Every configuration tried, as a markdown table (accuracies and differences in points)."""
    verdicts = point_verdicts(rows, span)
    chosen = choose_point(rows, span)
    lines = [
        "| images/class | epochs | KD setting | CE test % | KD test % | KD - CE (mean +/- std) "
        "| per seed | consistent | CE s/run (median) | criteria met |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        key = (row["train_per_class"], row["epochs"])
        met = verdicts[key]
        status = (
            "all"
            if all(met.values())
            else "not " + ", not ".join(name for name, ok in met.items() if not ok)
        )
        if key == chosen:
            status += " (chosen)"
        per_seed = ", ".join(f"{100 * d:+.2f}" for d in row["diffs"])
        lines.append(
            f"| {row['train_per_class']} | {row['epochs']} | {row['kd']} "
            f"| {100 * row['ce_mean']:.2f} +/- {100 * row['ce_std']:.2f} "
            f"| {100 * row['kd_mean']:.2f} +/- {100 * row['kd_std']:.2f} "
            f"| {100 * row['diff_mean']:+.2f} +/- {100 * row['diff_std']:.2f} | {per_seed} "
            f"| {'yes' if row['consistent'] else 'no'} | {row['ce_seconds']:.1f} | {status} |"
        )
    return "\n".join(lines)
