"""Analysis helpers behind the KD notebooks: statistics over seeds (mean +/- std, paired
differences, an honest verdict on seed noise, learning curves) and the capacity-gap study.

Re-exported here so a notebook needs one import: the temperature and KD-loss helpers of
:mod:`dihkit.studies.temperature` and the results files of :mod:`dihkit.runs.results` (schema,
:func:`write_results`, :func:`collect_results`).
"""

from __future__ import annotations

import math
import statistics
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

from dihkit.runs.results import (
    RESULTS_FILE,
    RunSpec,
    collect_results,
    collected_runs,
    run_grid,
    run_label,
    run_record,
    write_results,
)
from dihkit.studies.temperature import (
    TAU_GRID,
    GradientNorms,
    KDIdentity,
    entropy,
    entropy_against_tau,
    kd_gradient_norms,
    kd_identity,
    one_per_class,
    predict_logits,
    softened_grid,
)

__all__ = [
    "CAPACITY_LADDERS",
    "RESULTS_FILE",
    "TAU_GRID",
    "GradientNorms",
    "GroupSummary",
    "KDIdentity",
    "RunSpec",
    "capacity_ladder",
    "capacity_points",
    "cohort_markdown",
    "default_assistant",
    "teacher_arch",
    "teacher_ladder_markdown",
    "collect_results",
    "collected_runs",
    "describe_settings",
    "entropy",
    "entropy_against_tau",
    "kd_gradient_norms",
    "kd_identity",
    "learning_curves",
    "mean_std",
    "model_parameters",
    "noise_verdict",
    "one_per_class",
    "paired_differences",
    "predict_logits",
    "run_grid",
    "run_label",
    "run_record",
    "softened_grid",
    "summarise_runs",
    "summary_markdown",
    "write_results",
]


# --------------------------------------------------------------------------------------------
# Statistics over seeds


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
            )
        )
    return summaries


def _pct(mean: float, std: float) -> str:
    return f"{100 * mean:.2f} +/- {100 * std:.2f}"


def summary_markdown(summaries: Sequence[GroupSummary], baseline: str | None = None) -> str:
    """A markdown table of :func:`summarise_runs`' output (accuracies in percent); a "recorded
    in" column appears when the runs know their notebooks."""
    sources = any(s.notebooks for s in summaries)
    head = f"paired diff vs {baseline} (per seed, points)" if baseline else "paired diff"
    lines = [
        f"| run | n | test % (val-selected) | test % (last epoch) | {head} | params | s/run |"
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
        curves.setdefault(run_label(run), []).append([row["val_acc"] for row in run["history"]])
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


def model_parameters(arch: str, dataset: str = "fmnist-mini") -> int:
    """Trainable parameters of a zoo model built for ``dataset``'s classes and channels."""
    from dihkit.data.datasets import dataset_spec
    from dihkit.models import build_model, count_parameters

    spec = dataset_spec(dataset)
    return count_parameters(build_model(arch, spec.num_classes, spec.in_channels))


def capacity_points(
    summaries: Sequence[GroupSummary], runs: Iterable[Mapping[str, Any]], dataset: str
) -> list[dict[str, Any]]:
    """One point per distilled group (every group with a teacher) for a capacity-gap plot:
    ``name``, ``method``, ``teacher``, ``teacher_params``, ``teacher_acc`` (the bundled teacher's
    recorded test accuracy, else None), ``ratio`` (teacher / student parameters) and the
    student's ``mean`` / ``std`` test accuracy over seeds."""
    from dihkit.teachers.bundled import read_manifest

    manifest = read_manifest()
    first = {}
    for run in runs:
        first.setdefault(run_label(run), run)
    points = []
    for s in summaries:
        run = first[s.label]
        teacher = run.get("teacher")
        if not teacher or run["method"] == "ce":
            continue
        entry = manifest.get(teacher, {})
        params = model_parameters(teacher_arch(teacher), dataset)
        assistant = (run.get("options") or {}).get("assistant")
        points.append(
            {
                "name": f"{teacher} via {assistant}" if assistant else teacher,
                "method": run["method"],
                "teacher": teacher,
                "teacher_params": params,
                "teacher_acc": entry.get("test_acc"),
                "ratio": params / s.params,
                "mean": s.mean,
                "std": s.std,
            }
        )
    return points


CAPACITY_LADDERS = {
    "smoke": ("resnet14",),  # one teacher: CI time
    "classroom": ("resnet14", "resnet20", "resnet56"),
}


def capacity_ladder(profile: str, teachers: Sequence[str] | None = None) -> list[str]:
    """The teachers of a capacity-gap study, small to large: ``teachers`` when given, else the
    profile's bundled ladder (the paper profile has none: its teachers are your checkpoints)."""
    from dihkit.errors import ConfigError

    if teachers is not None:
        teachers = [teachers] if isinstance(teachers, str) else list(teachers)
        if not teachers:
            raise ConfigError("parameter teachers = [] must list at least one teacher")
        return teachers
    if profile not in CAPACITY_LADDERS:
        raise ConfigError(
            f"profile {profile!r} has no bundled teacher ladder; pass teachers=[...] "
            "(checkpoint paths, small to large)"
        )
    return list(CAPACITY_LADDERS[profile])


def describe_settings(settings: Any) -> str:
    """One line naming the regime a notebook runs in."""
    per_class = settings.train_per_class
    data = f"{per_class} training images per class" if per_class else "all training images"
    seeds = ", ".join(str(s) for s in settings.seeds)
    return (
        f"profile {settings.profile}: {settings.dataset}, {data}, {settings.epochs} epochs, "
        f"teacher {settings.teacher}, student {settings.student}, seeds {seeds}, "
        f"device {settings.device}"
        + (
            f", teacher targets cached ({settings.cached_targets} views per image)"
            if getattr(settings, "cached_targets", 0)
            else ""
        )
    )


def default_assistant(ladder: Sequence[str], student: str) -> str:
    """TAKD's assistant architecture when none is given: the architecture of the second-largest
    teacher of the ladder (the student's own with a single teacher)."""

    return teacher_arch(ladder[-2]) if len(ladder) > 1 else student


def teacher_ladder_markdown(ladder: Sequence[str], student: str, dataset: str) -> str:
    """A markdown table of the teachers: architecture, parameters (for ``dataset``), capacity
    ratio to ``student`` and the test accuracy recorded for a bundled teacher."""
    from dihkit.teachers.bundled import read_manifest

    manifest = read_manifest()
    student_params = model_parameters(student, dataset)
    lines = [
        f"Student {student}: {student_params:,} parameters.",
        "",
        "| teacher | architecture | parameters | capacity ratio | recorded test % |",
        "|---|---|---|---|---|",
    ]
    for name in ladder:
        entry = manifest.get(name, {})
        arch = teacher_arch(name)
        params = model_parameters(arch, dataset)
        size, ratio = f"{params:,}", f"{params / student_params:.1f}"
        accuracy = f"{100 * entry['test_acc']:.2f}" if "test_acc" in entry else "-"
        lines.append(f"| {name} | {arch} | {size} | {ratio} | {accuracy} |")
    return "\n".join(lines)


def teacher_arch(teacher: str) -> str:
    """The architecture of a teacher given by bundled name or checkpoint path."""
    from dihkit.teachers.bundled import read_manifest

    entry = read_manifest().get(teacher)
    if entry is not None:
        return entry["arch"]
    from dihkit.runs.pipeline import load_teacher

    return load_teacher(teacher).model.arch


def cohort_markdown(teacher: str) -> str:
    """A markdown table of a teacher's DIH cohort: each member, its head's parameters and the
    test accuracy recorded for it (bundled teachers only)."""
    from dihkit.runs.pipeline import load_teacher
    from dihkit.teachers.bundled import read_manifest

    cohort = load_teacher(teacher).require_cohort("dih")
    recorded = read_manifest().get(teacher, {}).get("member_test_acc")
    params = [f"{n:,}" for n in cohort.head_parameter_counts()] + ["(the teacher's own classifier)"]
    lines = ["| member | head parameters | recorded test % |", "|---|---|---|"]
    for i, (name, size) in enumerate(zip(cohort.member_names, params, strict=True)):
        accuracy = f"{100 * recorded[i]:.2f}" if recorded else "-"
        lines.append(f"| {name} | {size} | {accuracy} |")
    return "\n".join(lines)
