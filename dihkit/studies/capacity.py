"""The capacity-gap study (notebook 02): a ladder of teachers from small to large, their sizes
and recorded accuracies, TAKD's default assistant, and one point per distilled group for the
capacity-gap plot."""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

from dihkit.data.datasets import dataset_spec
from dihkit.errors import ConfigError
from dihkit.models import build_model, count_parameters
from dihkit.runs.results import run_label
from dihkit.studies.seeds import GroupSummary
from dihkit.teachers.bundled import read_manifest
from dihkit.teachers.loading import load_teacher

__all__ = [
    "CAPACITY_LADDERS",
    "capacity_ladder",
    "capacity_points",
    "default_assistant",
    "model_parameters",
    "teacher_arch",
    "teacher_ladder_markdown",
]


def model_parameters(arch: str, dataset: str = "fmnist-mini") -> int:
    """Trainable parameters of a zoo model built for ``dataset``'s classes and channels."""
    spec = dataset_spec(dataset)
    return count_parameters(build_model(arch, spec.num_classes, spec.in_channels))


def capacity_points(
    summaries: Sequence[GroupSummary], runs: Iterable[Mapping[str, Any]], dataset: str
) -> list[dict[str, Any]]:
    """One point per distilled group (every group with a teacher) for a capacity-gap plot:
    ``name``, ``method``, ``teacher``, ``teacher_params``, ``teacher_acc`` (the bundled teacher's
    recorded test accuracy, else None), ``ratio`` (teacher / student parameters) and the
    student's ``mean`` / ``std`` test accuracy over seeds."""
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
    "classroom": ("resnet8-c10", "resnet20-c10", "wrn_16_2-c10", "vgg8-c10"),
}


def capacity_ladder(profile: str, teachers: Sequence[str] | None = None) -> list[str]:
    """The teachers of a capacity-gap study, small to large: ``teachers`` when given, else the
    profile's bundled ladder (the paper profile has none: its teachers are your checkpoints)."""
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


def default_assistant(ladder: Sequence[str], student: str) -> str:
    """TAKD's assistant architecture when none is given: the largest of the ladder's teachers
    (below the largest, larger than the student) whose parameter count is at most the geometric
    mean of the student's and the largest teacher's (TAKD's assistants sit in between; from the
    lower half, the assistant run costs at most about as much as the way up to it), else the
    smallest such teacher above that mean; the student's own with no such teacher."""
    teacher_size = model_parameters(teacher_arch(ladder[-1]))
    student_size = model_parameters(student)
    middle = math.sqrt(teacher_size * student_size)
    sizes = {
        arch: model_parameters(arch)
        for arch in (teacher_arch(name) for name in ladder[:-1])
        if student_size < model_parameters(arch) < teacher_size
    }
    if not sizes:
        return student
    below = [arch for arch, size in sizes.items() if size <= middle]
    if below:
        return max(below, key=sizes.__getitem__)
    return min(sizes, key=sizes.__getitem__)


def teacher_ladder_markdown(ladder: Sequence[str], student: str, dataset: str) -> str:
    """A markdown table of the teachers: architecture, parameters (for ``dataset``), capacity
    ratio to ``student`` and the test accuracy recorded for a bundled teacher."""
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
    entry = read_manifest().get(teacher)
    if entry is not None:
        return entry["arch"]
    return load_teacher(teacher).model.arch
