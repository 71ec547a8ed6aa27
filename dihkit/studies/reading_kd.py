"""The "How to read this" text of notebooks 01, 02 and 04, generated from the runs: every
sentence stating a measured result is written from the paired differences with the verdict rule
of :func:`dihkit.studies.seeds.noise_verdict` (consistent only when every paired difference has
the same sign and |mean| > std), so it cannot contradict the numbers printed above it."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dihkit.runs.results import run_label
from dihkit.studies.paired import Comparison, compare_groups
from dihkit.studies.seeds import (
    NO_PAIRS,
    ONE_SEED,
    VERDICTS,
    mean_std,
    paired_verdict_class,
)
from dihkit.teachers.bundled import read_manifest
from dihkit.teachers.loading import load_teacher

__all__ = [
    "Comparison",
    "VERDICTS",
    "capacity_comparisons",
    "capacity_reading",
    "cohort_reading",
    "compare_groups",
    "dih_comparisons",
    "dih_reading",
    "entropy_reading",
    "group_label",
    "kd_reading",
    "regime_phrase",
    "paired_verdict_class",
]


def group_label(
    records: Iterable[Mapping[str, Any]], method: str, teacher: str | None = None
) -> str | None:
    """The label of the first group of ``method`` (from ``teacher`` when given), else None."""
    for run in records:
        if run["method"] == method and (teacher is None or run.get("teacher") == teacher):
            return run_label(run)
    return None


def regime_phrase(settings: Any) -> str:
    """``cifar10-mini, 100 training images per class, 10 epochs, 5 seeds`` from a notebook's
    settings (the regime the generated text speaks of)."""
    per_class = settings.train_per_class
    data = f"{per_class} training images per class" if per_class else "all training images"
    seeds = f"{len(settings.seeds)} seed" + ("s" if len(settings.seeds) != 1 else "")
    return f"{settings.dataset}, {data}, {settings.epochs} epochs, {seeds}"


def _acc(records: Sequence[Mapping[str, Any]], label: str) -> str:
    values = [r["test_acc_best"] for r in records if run_label(r) == label]
    mean, std = mean_std(values)
    return f"{100 * mean:.2f} +/- {100 * std:.2f} %"


def _more_seeds(comparisons: Sequence[Comparison]) -> str:
    n = max((len(c.diffs) for c in comparisons), default=1)
    return f"`seeds = {list(range(max(2 * n, 3)))}`"


def _intro(settings: Any) -> str:
    return f"In this run ({regime_phrase(settings)}), " if settings is not None else ""


def kd_reading(records: Sequence[Mapping[str, Any]], settings: Any = None) -> str:
    """Notebook 01's reading of CE against KD: both means and the paired verdict."""
    records = list(records)
    ce, kd = group_label(records, "ce"), group_label(records, "kd")
    if ce is None or kd is None:
        raise ValueError("kd_reading needs a ce and a kd group")
    c = compare_groups(records, kd, ce)
    lines = [
        f"**How to read this.** {_intro(settings)}CE reaches {_acc(records, ce)} and KD "
        f"{_acc(records, kd)} (test accuracy at the validation-selected epoch, mean +/- std over "
        f"seeds). KD minus CE, seed by seed: {c.phrase()}."
    ]
    if c.consistent:
        side = "above" if c.mean > 0 else "below"
        lines.append(
            f"So here KD is consistently {side} CE; with so few seeds this is evidence, not proof."
        )
    else:
        lines.append(
            "So this run supports no ranking of CE and KD; more seeds (e.g. "
            f"{_more_seeds([c])}) or the paper's regime (CIFAR-100, 200 epochs) would be needed."
        )
    return " ".join(lines)


def entropy_reading(
    taus: Sequence[float], entropies: Sequence[float], num_classes: int, tau: float
) -> str:
    """Notebook 01's reading of the entropy-against-temperature curve: its range against
    ``log C``, the stretch of temperatures holding the middle half of its rise, and where
    ``tau`` sits."""
    pairs = sorted(zip((float(t) for t in taus), (float(h) for h in entropies), strict=True))
    uniform = math.log(num_classes)
    low, high = pairs[0][1], pairs[-1][1]

    def crossing(level: float) -> float:  # first temperature where the curve reaches level
        for (t0, h0), (t1, h1) in zip(pairs, pairs[1:], strict=False):
            if h0 <= level <= h1 and h1 > h0:
                share = (level - h0) / (h1 - h0)
                return math.exp(math.log(t0) + share * (math.log(t1) - math.log(t0)))
        return pairs[-1][0]

    text = (
        f"The mean entropy goes from {low:.2f} nats at tau = {pairs[0][0]:g} "
        f"({100 * low / uniform:.0f}% of log {num_classes} = {uniform:.2f}) to {high:.2f} nats "
        f"at tau = {pairs[-1][0]:g} ({100 * high / uniform:.0f}%)."
    )
    if high - low < 1e-6:
        return text + " It does not rise: the curve is flat."
    start, end = crossing(low + 0.25 * (high - low)), crossing(low + 0.75 * (high - low))
    return text + (
        f" The middle half of that rise happens between tau = {start:.2g} and tau = {end:.2g}; "
        f"tau = {tau:g} lies {'inside' if start <= tau <= end else 'outside'} this steep stretch."
    )


def cohort_reading(teacher: str) -> str:
    """Notebook 04's reading of the cohort table: whether the members' recorded test accuracy
    rises from the shallowest head to the teacher."""
    names = load_teacher(teacher).require_cohort("dih").member_names
    recorded = read_manifest().get(teacher, {}).get("member_test_acc")
    if not recorded:
        return f"No member accuracies are recorded for {teacher} (not a bundled teacher)."
    accs = ", ".join(f"{n} {100 * a:.2f}%" for n, a in zip(names, recorded, strict=True))
    if all(b > a for a, b in zip(recorded, recorded[1:], strict=False)):
        return (
            f"Recorded test accuracy rises from member to member ({accs}): every shallower "
            "head is a weaker teacher than the next."
        )
    below = [n for n, a in zip(names[:-1], recorded[:-1], strict=True) if a >= recorded[-1]]
    text = f"Recorded test accuracy: {accs}; it does not rise at every step."
    if below:
        text += f" {', '.join(below)} is at least as accurate as the teacher itself."
    return text


def capacity_comparisons(
    records: Sequence[Mapping[str, Any]], ladder: Sequence[str]
) -> list[Comparison]:
    """Notebook 02's teacher-vs-teacher comparisons: KD from teacher i+1 against KD from
    teacher i of the ladder, then TAKD against KD from TAKD's own teacher (when both ran)."""
    records = list(records)
    return _steps(records, ladder) + ([_takd(records)] if _takd(records) else [])


def _steps(records: list[Mapping[str, Any]], ladder: Sequence[str]) -> list[Comparison]:
    labels = [group_label(records, "kd", t) for t in ladder]
    pairs = zip(labels, labels[1:], strict=False)
    return [compare_groups(records, b, a) for a, b in pairs if a and b and a != b]


def _takd(records: list[Mapping[str, Any]]) -> Comparison | None:
    takd = group_label(records, "takd")
    base = takd and group_label(records, "kd", _teacher_of(records, takd))
    return compare_groups(records, takd, base) if takd and base else None


def _teacher_of(records: Sequence[Mapping[str, Any]], label: str) -> str:
    return next(str(r.get("teacher")) for r in records if run_label(r) == label)


def capacity_reading(
    records: Sequence[Mapping[str, Any]], ladder: Sequence[str], settings: Any = None
) -> str:
    """Notebook 02's reading: does the student's accuracy rise with teacher size, which
    neighbouring-teacher steps are consistent, is there a capacity gap (the largest teacher's
    student below a smaller teacher's, and is that beyond noise), TAKD against KD and every
    distilled student against CE."""
    records = list(records)
    kd = [(t, group_label(records, "kd", t)) for t in ladder]
    kd = [(t, label) for t, label in kd if label is not None]
    means = {
        t: mean_std(r["test_acc_best"] for r in records if run_label(r) == lab)[0] for t, lab in kd
    }
    ce = group_label(records, "ce")
    lines = [f"**How to read this.** {_intro(settings)}the measured points say:", ""]
    if len(kd) < 2:
        only = kd[0][0] if kd else "none"
        lines.append(
            f"- **Teacher size.** One teacher ({only}), so there is no ladder to read: pass "
            "`teachers=[...]` with several teachers, small to large."
        )
    else:
        order = ", ".join(f"{t} {_acc(records, lab)}" for t, lab in kd)
        values = [means[t] for t, _ in kd]
        best = max(kd, key=lambda item: means[item[0]])[0]
        trend = f"does not rise steadily with teacher size (highest mean: KD from {best})"
        if all(b > a for a, b in zip(values, values[1:], strict=False)):
            trend = "rises at every step of the ladder"
        elif all(b < a for a, b in zip(values, values[1:], strict=False)):
            trend = "falls at every step of the ladder"
        lines.append(
            f"- **Teacher size.** KD students, small to large teacher: {order}. The mean {trend};"
            " means only, the steps below say which differences exceed seed noise."
        )
    steps = _steps(records, ladder)
    for c in steps:
        lines.append(
            f"- **{_teacher_of(records, c.label)} vs {_teacher_of(records, c.baseline)}** "
            f"(KD students, larger minus smaller teacher): {c.phrase()}."
        )
    if len(kd) >= 2:
        largest, smaller = kd[-1], kd[:-1]
        best = max(smaller, key=lambda item: means[item[0]])
        if means[largest[0]] < means[best[0]]:
            gap = compare_groups(records, largest[1], best[1])
            status = "not a consistent loss, so this capacity gap does not exceed seed noise"
            if gap.consistent and gap.mean < 0:
                status = "consistent: a capacity gap beyond seed noise"
            elif gap.verdict in (ONE_SEED, NO_PAIRS):
                status = "a capacity gap in the means, without a verdict on seed noise"
            lines.append(
                f"- **Capacity gap.** The largest teacher's student (KD from {largest[0]}) is "
                f"below the student of the smaller teacher {best[0]} by "
                f"{100 * (means[best[0]] - means[largest[0]]):.2f} points on average; paired: "
                f"{gap.phrase()}. That is {status}."
            )
        else:
            lines.append(
                f"- **Capacity gap.** None in the means: the largest teacher's student (KD from "
                f"{largest[0]}) is at least as accurate as every smaller teacher's."
            )
    takd, c = group_label(records, "takd"), _takd(records)
    if c is not None:
        teacher = _teacher_of(records, c.label)
        lines.append(f"- **TAKD vs KD from {teacher}** (same teacher): {c.phrase()}.")
    if ce is not None:
        groups = [(f"KD from {t}", lab) for t, lab in kd]
        groups += [("TAKD", takd)] if takd is not None else []
        against = [(name, compare_groups(records, lab, ce)) for name, lab in groups]
        above = [n for n, c in against if c.consistent and c.mean > 0]
        below = [n for n, c in against if c.consistent and c.mean < 0]
        rest = [n for n, c in against if not c.consistent]
        parts = [f"consistently above CE: {', '.join(above)}"] if above else []
        parts += [f"consistently below CE: {', '.join(below)}"] if below else []
        parts += [f"not consistently different from CE: {', '.join(rest)}"] if rest else []
        text = "; ".join(parts)
        lines.append(f"- **Against CE.** {text[:1].upper()}{text[1:]}.")
    ranked = sum(c.consistent for c in steps)
    end = "So this run supports no ranking of the teachers; more seeds would be needed."
    if ranked:
        end = f"So {ranked} of the {len(steps)} neighbouring-teacher steps are consistent here"
        end += "." if ranked == len(steps) else "; the others support no ranking."
    lines += ["", end]
    return "\n".join(lines)


_DIH_PAIRS = (
    ("dih", "kd"),
    ("dih", "ce"),
    ("dih-ensemble", "dih"),
    ("dih-ensemble", "kd"),
    ("dih-ensemble", "ce"),
    ("kd", "ce"),
)
_ENSEMBLE, _WEAKER = ("dih-ensemble", "dih"), "the ensemble below DIH"
_NAMES = {"ce": "CE", "kd": "KD", "dih": "DIH", "dih-ensemble": "DIH-ensemble"}


def dih_comparisons(records: Sequence[Mapping[str, Any]]) -> dict[tuple[str, str], Comparison]:
    """Notebook 04's paired comparisons: DIH vs KD, DIH vs CE, DIH-ensemble vs DIH, vs KD and
    vs CE, KD vs CE (each pair whose two methods both ran), keyed by
    ``(method, baseline method)``."""
    records = list(records)
    found = {}
    for method, base in _DIH_PAIRS:
        label, baseline = group_label(records, method), group_label(records, base)
        if label is not None and baseline is not None:
            found[(method, base)] = compare_groups(records, label, baseline)
    return found


def dih_reading(records: Sequence[Mapping[str, Any]], settings: Any = None) -> str:
    """Notebook 04's reading: each pair of :func:`dih_comparisons` with its verdict, what the
    run supports, and whether the paper's DIH-above-KD and ensemble-below-DIH findings show."""
    comparisons = dih_comparisons(records)
    lines = [f"**How to read this.** {_intro(settings)}seed by seed:", ""]
    for (method, base), c in comparisons.items():
        lines.append(f"- **{_NAMES[method]} vs {_NAMES[base]}**: {c.phrase()}.")
    consistent = [
        f"{_NAMES[m]} {'above' if c.mean > 0 else 'below'} {_NAMES[b]}"
        for (m, b), c in comparisons.items()
        if c.consistent
    ]
    lines.append("")
    if consistent:
        lines.append(
            f"Consistent here: {', '.join(consistent)}; every other pair supports no ranking."
        )
    elif all(c.verdict in (ONE_SEED, NO_PAIRS) for c in comparisons.values()):
        lines.append("With one seed no difference can be judged against seed noise.")
    else:
        lines.append(
            "None of these differences is consistent, so this run supports no ranking of the "
            f"methods; more seeds (e.g. {_more_seeds(list(comparisons.values()))}) are a cheap "
            "first step."
        )
    paper = []
    for key, sign, claim in ((("dih", "kd"), 1, "DIH above KD"), (_ENSEMBLE, -1, _WEAKER)):
        c = comparisons.get(key)
        if c is not None and c.diffs:
            if not c.consistent:
                paper.append(f"{claim} is not shown here beyond seed noise")
            else:
                shown = c.mean * sign > 0
                paper.append(f"{claim} {'shows' if shown else 'is reversed'} here, consistently")
    if paper:
        lines.append(
            "Against the paper's findings (published, not measured here): " + "; ".join(paper) + "."
        )
    return "\n".join(lines)
