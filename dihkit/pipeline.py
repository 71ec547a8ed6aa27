"""End-to-end runs behind the CLI and the notebooks: train a teacher, train its heads, distil."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from dihkit.baselines import AssistantKD, FitNets, MutualLearning
from dihkit.checkpoint import CheckpointError, load_model
from dihkit.data import Dataset
from dihkit.distill import (
    CrossEntropy,
    Distiller,
    EnsembleHeads,
    HeadTraining,
    IntermediateHeads,
    KnowledgeDistillation,
)
from dihkit.evaluation import evaluate
from dihkit.heads import Cohort, cohort_from_entry, mount_heads
from dihkit.models import build_model
from dihkit.runtime import seed_everything
from dihkit.teachers import resolve_checkpoint
from dihkit.train import FitResult, TrainConfig, fit


@dataclass
class Teacher:
    """A loaded teacher checkpoint: the model and, if it has trained heads, their saved entry.

    The cohort is built on first use, so methods that only need the teacher (KD, FitNets,
    TAKD) do not tap its stages.
    """

    model: nn.Module
    source: str
    heads_entry: dict[str, Any] | None = field(default=None, repr=False)
    _cohort: Cohort | None = field(default=None, init=False, repr=False)

    @property
    def cohort(self) -> Cohort | None:
        """Teacher plus trained heads, or None if the checkpoint has no heads."""
        if self._cohort is None and self.heads_entry is not None:
            self._cohort = cohort_from_entry(self.model, self.heads_entry)
        return self._cohort

    def require_cohort(self, method: str) -> Cohort:
        """The cohort, or a clear error naming ``method`` if the teacher has no heads."""
        if self.cohort is None:
            raise CheckpointError(
                f"method {method!r} needs a teacher with trained heads, but {self.source!r} has "
                "none; run `dihkit train-heads --teacher ...` first or use a bundled teacher"
            )
        return self.cohort


def load_teacher(source: str | Path) -> Teacher:
    """Load a teacher from a checkpoint path or a bundled teacher's name."""
    model, payload = load_model(resolve_checkpoint(source))
    return Teacher(model=model, source=str(source), heads_entry=payload.get("heads"))


def check_fits_data(model: nn.Module, data: Dataset, role: str) -> None:
    """A clear error when a loaded model was trained for other images or classes."""
    spec = data.spec
    if model.in_channels != spec.in_channels or model.num_classes != spec.num_classes:
        raise CheckpointError(
            f"the {role} ({model.arch}) takes {model.in_channels}-channel images and "
            f"{model.num_classes} classes, but {spec.name} has {spec.in_channels} channel(s) and "
            f"{spec.num_classes} classes; use a {role} trained on {spec.name}"
        )


@dataclass
class DistillOptions:
    """Method hyper-parameters. Defaults are the DIH paper's (tau = 5, alpha = 0.1)."""

    tau: float = 5.0
    alpha: float = 0.1
    hint_epochs: int | None = None  # FitNets; default: a fifth of the epochs (40 of 200)
    peer: str | None = None  # DML; default: the teacher's architecture
    assistant: str | None = None  # TAKD; required

    def __post_init__(self) -> None:
        if not self.tau > 0:
            raise ValueError(f"tau must be positive, got {self.tau!r}")
        if not 0 <= self.alpha <= 1:
            raise ValueError(f"alpha must lie in [0, 1], got {self.alpha!r}")


Builder = Callable[[nn.Module, Teacher | None, DistillOptions, Dataset, TrainConfig], Distiller]


def _fitnets(s: nn.Module, t: Teacher, o: DistillOptions, d: Dataset, c: TrainConfig) -> FitNets:
    hint_epochs = o.hint_epochs if o.hint_epochs is not None else max(1, c.epochs // 5)
    return FitNets(
        s, t.model, input_shape=input_shape(d), hint_epochs=hint_epochs, tau=o.tau, alpha=o.alpha
    )


def _dml(s: nn.Module, t: Teacher, o: DistillOptions, d: Dataset, c: TrainConfig) -> MutualLearning:
    peer = build_model(o.peer or t.model.arch, d.spec.num_classes, d.spec.in_channels)
    return MutualLearning(s, peer)


METHODS: dict[str, Builder] = {
    "ce": lambda s, t, o, d, c: CrossEntropy(s),
    "kd": lambda s, t, o, d, c: KnowledgeDistillation(s, t.model, o.tau, o.alpha),
    "dih": lambda s, t, o, d, c: IntermediateHeads(s, t.require_cohort("dih"), o.tau, o.alpha),
    "dih-ensemble": lambda s, t, o, d, c: EnsembleHeads(
        s, t.require_cohort("dih-ensemble"), o.tau, o.alpha
    ),
    "fitnets": _fitnets,
    "dml": _dml,
    "takd": lambda s, t, o, d, c: AssistantKD(s, t.model, o.tau, o.alpha),
}
METHOD_NAMES = tuple(METHODS)


def input_shape(data: Dataset) -> tuple[int, int, int]:
    """One image's (C, H, W)."""
    return (data.spec.in_channels, data.spec.image_size, data.spec.image_size)


def train_model(
    arch: str,
    data: Dataset,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, FitResult]:
    """Train a zoo model from scratch with cross-entropy (how teachers are made)."""
    seed_everything(config.seed)
    model = build_model(arch, data.spec.num_classes, data.spec.in_channels)
    result = fit(
        CrossEntropy(model), data, config, out_dir=out_dir, resume=resume, progress=progress
    )
    return model, result


def train_heads(
    teacher_source: str | Path,
    data: Dataset,
    config: TrainConfig,
    *,
    kind: str = "linear",
    positions: Sequence[str] | None = None,
    activation: str = "none",
    width: int = 256,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[Cohort, FitResult]:
    """Mount heads on a trained teacher and train them with CE, backbone frozen."""
    teacher = load_teacher(teacher_source)
    check_fits_data(teacher.model, data, "teacher")
    seed_everything(config.seed)
    cohort = mount_heads(
        teacher.model,
        kind,
        positions,
        input_shape=input_shape(data),
        activation=activation,
        width=width,
    )
    meta = {"teacher": str(teacher_source)}
    result = fit(
        HeadTraining(cohort),
        data,
        config,
        out_dir=out_dir,
        resume=resume,
        progress=progress,
        meta=meta,
    )
    return cohort, result


def cohort_accuracy(
    cohort: Cohort, data: Dataset, device: str = "auto"
) -> dict[str, dict[str, float]]:
    """Validation and test accuracy of each cohort member: ``{member: {"val": .., "test": ..}}``."""
    result: dict[str, dict[str, float]] = {name: {} for name in cohort.member_names}
    for split_name in ("val", "test"):
        acc = evaluate(cohort, data, split_name, device=device)
        for name, value in zip(cohort.member_names, acc.reshape(-1).tolist(), strict=True):
            result[name][split_name] = value
    return result


def distill(
    method: str,
    teacher_source: str | Path | None,
    student_arch: str,
    data: Dataset,
    config: TrainConfig,
    options: DistillOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
) -> tuple[Distiller, FitResult]:
    """Train ``student_arch`` on ``data`` with ``method`` from a teacher checkpoint or bundled name.

    The student's initial weights depend only on ``config.seed``, so runs of different methods
    with the same seed start from the same student (paired comparisons). TAKD first distils the
    assistant from the teacher (into ``out_dir/assistant``), then the student from the assistant.
    """
    if method not in METHODS:
        raise ValueError(f"unknown method {method!r}; choose one of: {', '.join(METHOD_NAMES)}")
    options = options or DistillOptions()
    teacher: Teacher | None = None
    if method != "ce":
        if teacher_source is None:
            raise ValueError(f"method {method!r} needs a teacher (--teacher CKPT or bundled name)")
        teacher = load_teacher(teacher_source)
        check_fits_data(teacher.model, data, "teacher")
    if method == "takd":
        teacher = _train_assistant(teacher, data, config, options, out_dir, resume, progress)
    seed_everything(config.seed)
    student = build_model(student_arch, data.spec.num_classes, data.spec.in_channels)
    distiller = METHODS[method](student, teacher, options, data, config)
    meta = {
        "teacher": str(teacher_source) if teacher_source is not None else None,
        "tau": options.tau,
        "alpha": options.alpha,
    }
    result = fit(
        distiller, data, config, out_dir=out_dir, resume=resume, progress=progress, meta=meta
    )
    return distiller, result


def _train_assistant(
    teacher: Teacher,
    data: Dataset,
    config: TrainConfig,
    options: DistillOptions,
    out_dir: str | Path | None,
    resume: bool,
    progress: bool,
) -> Teacher:
    if options.assistant is None:
        raise ValueError("method 'takd' needs --assistant ARCH (e.g. resnet14 or resnet20)")
    seed_everything(config.seed)
    assistant = build_model(options.assistant, data.spec.num_classes, data.spec.in_channels)
    stage = KnowledgeDistillation(assistant, teacher.model, options.tau, options.alpha)
    fit(
        stage,
        data,
        config,
        out_dir=Path(out_dir) / "assistant" if out_dir is not None else None,
        resume=resume,
        progress=progress,
        meta={"teacher": teacher.source, "role": "takd assistant"},
    )
    return Teacher(model=assistant, source=f"assistant {options.assistant}")
