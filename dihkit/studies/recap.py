"""The recap of the whole sequence (notebook 07): what each method adds, what this run measured
for each of the papers' headline claims, and whether the claim was reproduced here.

Every claim is a pair of methods whose published margin comes from the papers' tables in
:mod:`dihkit.studies.paper_numbers` (computed from them, not typed), and whose measured margin
comes from the runs one notebook recorded, paired by seed, with the kit's verdict rule
(:func:`dihkit.studies.seeds.paired_verdict_class`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from dihkit.methods import get_method, method_names
from dihkit.runs.results import run_label
from dihkit.studies.paper_numbers import DIH_TABLE2, DIH_TABLE3, DSKD_TABLE1, MHKD_TABLE2
from dihkit.studies.seeds import CONSISTENT, mean_std, paired_differences, paired_verdict_class

__all__ = ["CLAIMS", "Claim", "ClaimResult", "claim_results", "methods_markdown", "recap_markdown"]


@dataclass(frozen=True)
class Claim:
    """A paper's claim that ``method`` beats ``reference``, with the published rows it rests on
    (``rows``: objects with an ``accuracy`` dict; ``method_key``/``reference_key`` name the
    columns, default the method names)."""

    paper: str
    method: str
    reference: str
    rows: tuple[Any, ...]
    table: str
    method_key: str | None = None
    reference_key: str | None = None

    def published(self) -> list[float]:
        """The published margins (points), one per row that has both columns."""
        a, b = self.method_key or self.method, self.reference_key or self.reference
        return [
            r.accuracy[a] - r.accuracy[b] for r in self.rows if a in r.accuracy and b in r.accuracy
        ]


_C100 = tuple(r for r in DIH_TABLE2 if r.dataset == "cifar100")
CLAIMS: tuple[Claim, ...] = (
    Claim("Hinton et al. (KD)", "kd", "ce", DSKD_TABLE1, "DSKD Table 1, CIFAR-100"),
    Claim("DIH", "dih", "kd", _C100, "DIH Table 2, CIFAR-100"),
    Claim("DIH", "dih", "ce", _C100, "DIH Table 2, CIFAR-100"),
    Claim(
        "TAKD (as DIH reports it)", "takd", "kd", DIH_TABLE3, "DIH Table 3 (best of 3), CIFAR-100"
    ),
    Claim("MHKD", "mhkd", "kd", MHKD_TABLE2, "MHKD Table 2, CIFAR-100", method_key="all"),
    Claim("DSKD", "dskd", "kd", DSKD_TABLE1, "DSKD Table 1, CIFAR-100"),
    Claim("DSKD", "dskd", "dsn", DSKD_TABLE1, "DSKD Table 1, CIFAR-100"),
    Claim("DSKD", "dskd", "byot", DSKD_TABLE1, "DSKD Table 1, CIFAR-100"),
)


@dataclass(frozen=True)
class ClaimResult:
    """One claim against one notebook's runs (``notebook`` None: no notebook ran both)."""

    claim: Claim
    notebook: str | None
    label: str | None
    baseline: str | None
    diffs: dict[int, float]

    @property
    def status(self) -> str:
        """``reproduced`` (consistently ahead), ``opposite`` (consistently behind), ``inside
        seed noise``, ``one seed`` or ``not run``."""
        if self.notebook is None:
            return "not run"
        verdict = paired_verdict_class(self.diffs.values())
        if len(self.diffs) < 2:
            return "one seed"
        if verdict != CONSISTENT:
            return "inside seed noise"
        return "reproduced" if mean_std(self.diffs.values())[0] > 0 else "opposite"


def _first_label(runs: Sequence[Mapping[str, Any]], method: str, teacher: Any = ...) -> str | None:
    for run in runs:
        if run["method"] == method and (teacher is ... or run.get("teacher") == teacher):
            return run_label(run)
    return None


def claim_results(
    payloads: Sequence[Mapping[str, Any]], claims: Sequence[Claim] = CLAIMS
) -> list[ClaimResult]:
    """Each claim measured in the first notebook (in sequence order) whose runs hold both
    methods: the method's first group, against the reference's group with the same teacher
    (else its first group), paired by seed."""
    ordered = sorted(payloads, key=lambda p: p["notebook"])
    results = []
    for claim in claims:
        found = ClaimResult(claim, None, None, None, {})
        for payload in ordered:
            runs = payload.get("runs", [])
            label = _first_label(runs, claim.method)
            if label is None:
                continue
            teacher = next(r.get("teacher") for r in runs if run_label(r) == label)
            baseline = _first_label(runs, claim.reference, teacher) or _first_label(
                runs, claim.reference
            )
            if baseline is None:
                continue
            diffs = paired_differences(runs, label, baseline)
            if diffs:
                found = ClaimResult(claim, payload["notebook"], label, baseline, diffs)
                break
        results.append(found)
    return results


def _range(values: Sequence[float]) -> str:
    if not values:
        return "-"
    low, high = min(values), max(values)
    return f"{low:+.2f}" if low == high else f"{low:+.2f} to {high:+.2f}"


def recap_markdown(results: Sequence[ClaimResult]) -> str:
    """A markdown table: each claim, its published margin (the range over the paper's rows,
    labelled as published), this run's paired margin and the verdict here, then one sentence
    counting how many were reproduced."""
    lines = [
        "| claim | published margin, points (not measured here) | this run: paired margin, "
        "points | verdict here |",
        "|---|---|---|---|",
    ]
    for r in results:
        c = r.claim
        claim = f"{c.paper}: {c.method} ahead of {c.reference}"
        published = f"{_range(c.published())} ({c.table}, {len(c.published())} rows)"
        if r.notebook is None:
            measured = "not run in this sequence"
        else:
            mean, std = mean_std(r.diffs.values())
            measured = (
                f"{100 * mean:+.2f} +/- {100 * std:.2f} over {len(r.diffs)} seeds "
                f"({r.label} vs {r.baseline}, {r.notebook})"
            )
        lines.append(f"| {claim} | {published} | {measured} | {r.status} |")
    counts = {
        s: sum(r.status == s for r in results) for s in dict.fromkeys(r.status for r in results)
    }
    tally = ", ".join(f"{n} {status}" for status, n in counts.items())
    lines.append(
        f"\nOf the {len(results)} claims: {tally}. A claim counts as reproduced only when every "
        "paired seed has the same sign and the mean exceeds the spread; at this scale (a few "
        "minutes of CPU per run, not 200-240 GPU epochs on CIFAR) most margins the papers report "
        "are smaller than the seed noise, so 'inside seed noise' is not 'refuted'."
    )
    return "\n".join(lines)


def methods_markdown(recorded: Sequence[str] = ()) -> str:
    """A markdown table of every registered method with the one line of what it adds (its
    registry summary), and whether this sequence recorded runs of it."""
    lines = ["| method | what it adds | runs recorded here |", "|---|---|---|"]
    for name in method_names():
        mark = "yes" if name in recorded else "-"
        lines.append(f"| `{name}` | {get_method(name).summary} | {mark} |")
    return "\n".join(lines)
