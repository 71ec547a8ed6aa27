"""One paired comparison of two groups of runs: the per-seed differences, their mean and std,
the verdict class of :func:`dihkit.studies.seeds.paired_verdict_class` and the sentence of
:func:`dihkit.studies.seeds.noise_verdict`. Every notebook's generated reading uses it."""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from dihkit.studies.seeds import (
    CONSISTENT,
    MIXED,
    ONE_SEED,
    SPREAD,
    mean_std,
    noise_verdict,
    paired_differences,
    paired_verdict_class,
    summarise_runs,
)


@dataclass(frozen=True)
class Comparison:
    """One paired comparison of two groups of runs (accuracies as fractions)."""

    label: str
    baseline: str
    diffs: dict[int, float]  # seed -> label minus baseline
    mean: float
    std: float
    verdict: str  # one of VERDICTS
    sentence: str  # noise_verdict's sentence

    @property
    def consistent(self) -> bool:
        return self.verdict == CONSISTENT

    def record(self) -> dict[str, Any]:
        """The comparison as plain JSON: ``paired`` (seed -> difference), ``n``, ``status`` (the
        verdict class) and ``verdict`` (the sentence), as the notebooks' results store it."""
        return {
            "label": self.label,
            "baseline": self.baseline,
            "paired": dict(self.diffs),
            "mean": self.mean,
            "std": self.std,
            "n": len(self.diffs),
            "status": self.verdict,
            "verdict": self.sentence,
        }

    def phrase(self) -> str:
        """``+0.40 points (per seed +0.30, +0.50): <verdict>`` in percentage points."""
        if not self.diffs:
            return "no shared seed, so no paired comparison is possible"
        per_seed = ", ".join(f"{100 * d:+.2f}" for d in self.diffs.values())
        head = f"{100 * self.mean:+.2f} points (per seed {per_seed})"
        n = len(self.diffs)
        if self.verdict == ONE_SEED:
            return f"{head}: one seed only, so no verdict on seed noise"
        if self.verdict == MIXED:
            return f"{head}: the seeds disagree on the sign, so this is **inside seed noise**"
        if self.verdict == SPREAD:
            return (
                f"{head}: the spread of the paired differences (std {100 * self.std:.2f}) is as "
                "large as their mean, so this is **inside seed noise**"
            )
        side = "higher" if self.mean > 0 else "lower"
        return (
            f"{head}: {side} on all {n} paired seeds and by more than the spread "
            f"(std {100 * self.std:.2f}), a **consistent** difference (on {n} seeds only)"
        )


def compare_groups(records: Iterable[Mapping[str, Any]], label: str, baseline: str) -> Comparison:
    """The paired comparison of group ``label`` with group ``baseline`` (validation-selected
    test accuracy), with its verdict class and :func:`noise_verdict`'s sentence."""
    runs = list(records)
    summaries = {s.label: s for s in summarise_runs(runs, baseline=baseline)}
    for name in (label, baseline):
        if name not in summaries:
            raise ValueError(f"no runs labelled {name!r}; labels: {', '.join(summaries)}")
    diffs = paired_differences(runs, label, baseline)
    mean, std = mean_std(diffs.values())
    return Comparison(
        label=label,
        baseline=baseline,
        diffs=diffs,
        mean=mean,
        std=std,
        verdict=paired_verdict_class(diffs.values()),
        sentence=noise_verdict(summaries[label], summaries[baseline]),
    )
