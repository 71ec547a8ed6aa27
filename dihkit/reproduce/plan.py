"""From an experiment and a profile to the list of runs: teachers, their heads, then every
(pair, column, seed) student run, each with its own folder and fully resolved settings."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from dihkit.errors import ConfigError
from dihkit.reproduce.config import (
    RECIPE_OVERRIDES,
    RECIPE_PROFILES,
    TRAIN_KEYS,
    Column,
    Experiment,
    Pair,
    train_config,
)
from dihkit.runs.compare import method_config
from dihkit.training.config import TrainConfig

HEAD_DEFAULTS = {"kind": "linear", "positions": None, "activation": "none", "width": 256}


@dataclass(frozen=True)
class DataSettings:
    """Which data a profile trains on."""

    dataset: str
    val_fraction: float = 0.1
    train_per_class: int | None = None  # students
    teacher_train_per_class: int | None = None  # teachers and their heads


@dataclass(frozen=True)
class Resolved:
    """An experiment under one profile: data, seeds and the three training configurations."""

    profile: str
    data: DataSettings
    seeds: tuple[int, ...]
    student: TrainConfig
    teacher: TrainConfig
    heads: TrainConfig
    head_options: dict[str, Any]
    scaled: tuple[str, ...] = ()  # what was rescaled (milestones), for the log


@dataclass(frozen=True)
class Job:
    """One training run of the experiment, in ``folder`` under the output folder."""

    kind: str  # "teacher", "heads" or "student"
    folder: str
    config: TrainConfig
    arch: str  # the model trained (the student of a student run)
    teacher: str | None = None  # the teacher's architecture
    column: str | None = None
    method: str = "ce"
    options: dict[str, Any] = field(default_factory=dict)
    seed: int = 0
    pairs: tuple[str, ...] = ()  # the rows this run fills (a teacher-free run fills several)

    @property
    def label(self) -> str:
        if self.kind == "student":
            return f"{self.column} {self.pairs[0] if self.pairs else self.arch} seed {self.seed}"
        return f"{self.kind} {self.arch}"


def _layers(experiment: Experiment, profile: str, part: str | None) -> list[dict[str, Any]]:
    """The setting layers of ``part`` (None: the students) in the order they apply."""
    default, own = RECIPE_OVERRIDES[profile], experiment.profiles.get(profile, {})
    top = [experiment.recipe, default, own]
    layers = [{k: v for k, v in layer.items() if k not in ("teacher", "heads")} for layer in top]
    if part is not None:
        section = experiment.teacher if part == "teacher" else experiment.heads
        layers = [
            layers[0],
            section,
            layers[1],
            default.get(part, {}),
            layers[2],
            own.get(part, {}),
        ]
    return layers


def _merge(layers: Sequence[Mapping[str, Any]]) -> tuple[dict[str, Any], str | None]:
    """Later layers win. Milestones declared for one epoch count are rescaled when a later
    layer changes the epochs without giving milestones (60/120/180 of 200 -> 4/9/14 of 15)."""
    merged: dict[str, Any] = {}
    declared: tuple[tuple[int, ...], int] | None = None
    for layer in layers:
        merged.update(layer)
        if "milestones" in layer:
            declared = (tuple(layer["milestones"]), merged.get("epochs", 10))
    note = None
    if merged.get("schedule", TrainConfig.schedule) != "multistep":
        merged.pop("milestones", None)  # only a multistep schedule has milestones
    elif declared and declared[0] and merged.get("epochs", 10) != declared[1]:
        epochs, (marks, old) = merged["epochs"], declared
        scaled = sorted({min(epochs, max(1, round(m * epochs / old))) for m in marks})
        merged["milestones"] = scaled
        note = f"milestones {list(marks)} of {old} epochs -> {scaled} of {epochs}"
    return merged, note


def resolve_profile(
    experiment: Experiment,
    profile: str,
    *,
    seeds: int | None = None,
    cached_targets: int | None = None,
    device: str = "auto",
    compile: bool = False,
) -> Resolved:
    """``experiment`` under ``profile`` (``paper``, ``classroom`` or ``smoke``); ``seeds`` and
    ``cached_targets`` override the profile's."""
    if profile not in RECIPE_PROFILES:
        raise ConfigError(
            f"unknown profile {profile!r}; choose one of: {', '.join(RECIPE_PROFILES)}"
        )
    student, note = _merge(_layers(experiment, profile, None))
    notes = [f"students: {note}"] if note else []
    extra: dict[str, Any] = {"device": device}
    if compile:
        extra["compile"] = True
    cached = student.get("cached_targets", 0) if cached_targets is None else cached_targets
    configs = {}
    for part in ("teacher", "heads"):
        merged, note = _merge(_layers(experiment, profile, part))
        if note:
            notes.append(f"{part}: {note}")
        train = {k: v for k, v in merged.items() if k in TRAIN_KEYS}
        configs[part] = (train_config(train, seed=merged.get("seed", 0), **extra), merged)
    head_options = {k: configs["heads"][1].get(k, v) for k, v in HEAD_DEFAULTS.items()}
    train = {k: v for k, v in student.items() if k in TRAIN_KEYS}
    n_seeds = student.get("seeds", 1) if seeds is None else seeds
    if isinstance(n_seeds, bool) or not isinstance(n_seeds, int) or n_seeds < 1:
        raise ConfigError(f"--seeds must be a positive integer, got {n_seeds!r}")
    return Resolved(
        profile=profile,
        data=DataSettings(
            dataset=student["dataset"],
            val_fraction=student.get("val_fraction", 0.1),
            train_per_class=student.get("train_per_class"),
            teacher_train_per_class=student.get("teacher_train_per_class"),
        ),
        seeds=tuple(range(n_seeds)),
        student=train_config(train, cached_targets=cached, **extra),
        teacher=configs["teacher"][0],
        heads=configs["heads"][0],
        head_options=head_options,
        scaled=tuple(notes),
    )


def _suffix(recipe: Mapping[str, Any]) -> str:
    """A folder suffix for a pair's own recipe changes (``@lr=0.01``)."""
    return "".join(f"@{k}={v}" for k, v in sorted(recipe.items()))


def _student_job(
    experiment: Experiment, resolved: Resolved, pair: Pair, column: Column, seed: int
) -> Job:
    options = pair.options.get(column.name, column.options)
    config = dataclasses.replace(resolved.student, **_pair_recipe(pair))
    config = method_config(column.method, config, seed, options)
    if column.needs_teacher:
        folder = f"students/{pair.teacher}-{pair.student}{_suffix(pair.recipe)}/{column.name}"
    else:  # the student alone: one run serves every pair with this student
        folder = f"students/{pair.student}{_suffix(pair.recipe)}/{column.name}"
    return Job(
        kind="student",
        folder=f"{folder}/seed-{seed}",
        config=config,
        arch=pair.student,
        teacher=pair.teacher if column.needs_teacher else None,
        column=column.name,
        method=column.method,
        options=dict(options),
        seed=seed,
        pairs=(pair.label,),
    )


def _pair_recipe(pair: Pair) -> dict[str, Any]:
    recipe = dict(pair.recipe)
    if "milestones" in recipe:
        recipe["milestones"] = tuple(recipe["milestones"])
    return recipe


def plan_jobs(
    experiment: Experiment, resolved: Resolved, pairs: Sequence[str] | None = None
) -> list[Job]:
    """Every run, in order: each teacher once, its heads once (when a column needs a cohort),
    then the students seed by seed, so a table fills up evenly. ``pairs`` keeps only those rows
    (``TEACHER-STUDENT`` or the student's name for teacher-free rows)."""
    chosen = _chosen_pairs(experiment, pairs)
    jobs: list[Job] = []
    teachers = sorted(
        {p.teacher for p in chosen if p.teacher}, key=[p.teacher for p in chosen].index
    )
    for arch in teachers:
        jobs.append(
            Job("teacher", f"teachers/{arch}", resolved.teacher, arch, seed=resolved.teacher.seed)
        )
        if experiment.needs_heads:
            kind = resolved.head_options["kind"]
            jobs.append(
                Job("heads", f"teachers/{arch}-heads-{kind}", resolved.heads, arch, teacher=arch)
            )
    students: dict[str, Job] = {}
    for seed in resolved.seeds:
        for pair in chosen:
            for column in experiment.columns:
                job = _student_job(experiment, resolved, pair, column, seed)
                if job.folder in students:
                    first = students[job.folder]
                    students[job.folder] = dataclasses.replace(
                        first, pairs=(*first.pairs, pair.label)
                    )
                else:
                    students[job.folder] = job
    return jobs + list(students.values())


def pair_key(pair: Pair) -> str:
    return f"{pair.teacher}-{pair.student}" if pair.teacher else pair.student


def _chosen_pairs(experiment: Experiment, pairs: Sequence[str] | None) -> list[Pair]:
    if not pairs:
        return list(experiment.pairs)
    known = {pair_key(p): p for p in experiment.pairs}
    unknown = [p for p in pairs if p not in known]
    if unknown:
        raise ConfigError(
            f"unknown pair {unknown[0]!r} for {experiment.name}; choose from: {', '.join(known)}"
        )
    return [known[p] for p in pairs]
