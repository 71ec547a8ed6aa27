"""The "how to read this" text of notebook 07, generated from the summaries it shows, so that
every sentence stating a result follows the numbers above it."""

from __future__ import annotations

from collections.abc import Sequence

from dihkit.studies.seeds import GroupSummary, verdict_class

__all__ = ["comparison_reading"]


def _names(summaries: Sequence[GroupSummary]) -> str:
    return ", ".join(s.label for s in summaries) or "none"


def comparison_reading(summaries: Sequence[GroupSummary], baseline: GroupSummary | None) -> str:
    """Markdown: which methods are consistently ahead of / behind the baseline, which are inside
    seed noise, and the training time per run from the fastest to the slowest row."""
    if not summaries:
        return "Nothing was recorded yet: run notebooks 01-06 first (`make tour`)."
    if baseline is None:
        return "The baseline was not found among the recorded runs, so no paired comparison."
    others = [s for s in summaries if s is not baseline]
    groups: dict[str, list[GroupSummary]] = {}
    for s in others:
        groups.setdefault(verdict_class(s), []).append(s)
    seeds = sorted({n for s in others for n in [len(s.paired)]})
    lines = [
        f"**How to read this.** Against {baseline.label}, paired by seed "
        f"({' or '.join(map(str, seeds))} paired seeds per row):",
        f"- consistently ahead: {_names(groups.get('ahead', []))};",
        f"- consistently behind: {_names(groups.get('behind', []))};",
        f"- inside seed noise: {_names(groups.get('inside noise', []))}"
        + (f"; one seed only: {_names(groups['one seed'])}." if "one seed" in groups else "."),
    ]
    by_time = sorted(summaries, key=lambda s: s.seconds)
    fastest, slowest = by_time[0], by_time[-1]
    lines.append(
        f"\nTraining time per run ranges from {fastest.seconds:.1f} s ({fastest.label}) to "
        f"{slowest.seconds:.1f} s ({slowest.label}), {slowest.seconds / fastest.seconds:.1f} "
        f"times as long; {baseline.label} takes {baseline.seconds:.1f} s. Runs that train from "
        "cached teacher targets pay no teacher forward pass, runs without a teacher (the "
        "student alone, DSN, BYOT) none at all, and TAKD's time counts both of its legs (an "
        "assistant shared by the seeds in the run that trained it)."
    )
    return "\n".join(lines)
