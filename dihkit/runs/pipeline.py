"""End-to-end runs behind the CLI and the notebooks: train a teacher, train its heads, distil.

:func:`distill` builds any registered method from what it declares it ``requires``; nothing here
depends on a method's name.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

from torch import nn

from dihkit.data.datasets import Dataset
from dihkit.errors import ConfigError
from dihkit.methods import BuildContext, Distiller, MethodOptions, get_method, resolve_options
from dihkit.methods.ce import CrossEntropy
from dihkit.models import build_model
from dihkit.nn.heads import Cohort, mount_heads
from dihkit.teachers.bundled import teacher_sha256
from dihkit.teachers.head_training import HeadTraining
from dihkit.teachers.loading import Teacher, check_fits_data, load_teacher
from dihkit.training import run_folder
from dihkit.training.config import TrainConfig
from dihkit.training.evaluation import evaluate
from dihkit.training.fits import check_batch_fits
from dihkit.training.history import FitResult
from dihkit.training.identity import run_identity
from dihkit.training.loop import fit
from dihkit.training.runtime import seed_everything

__all__ = [
    "Teacher",
    "build_distiller",
    "check_distill",
    "check_fits_data",
    "cohort_accuracy",
    "distill",
    "distill_identity",
    "load_teacher",
    "resolve_options",
    "train_heads",
    "train_model",
]


def train_model(
    arch: str,
    data: Dataset,
    config: TrainConfig,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[nn.Module, FitResult]:
    """Train a zoo model from scratch with cross-entropy (how teachers are made)."""
    seed_everything(config.seed)
    model = build_model(arch, data.spec.num_classes, data.spec.in_channels)
    result = fit(
        CrossEntropy(model),
        data,
        config,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
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
    overwrite: bool = False,
    progress: bool = True,
) -> tuple[Cohort, FitResult]:
    """Mount heads on a trained teacher and train them with CE, backbone frozen. Head sets of
    other kinds already in the teacher's checkpoint are carried into the new one."""
    teacher = load_teacher(teacher_source)
    check_fits_data(teacher.model, data, "teacher")
    seed_everything(config.seed)
    cohort = mount_heads(
        teacher.model,
        kind,
        positions,
        input_shape=data.spec.input_shape,
        activation=activation,
        width=width,
    )
    others = {k: v for k, v in teacher.head_sets.items() if k != kind}
    result = fit(
        HeadTraining(cohort, others),
        data,
        config,
        out_dir=out_dir,
        resume=resume,
        overwrite=overwrite,
        progress=progress,
        meta={
            "teacher": str(teacher_source),
            "teacher_sha256": teacher_sha256(teacher_source),
            "heads": {k: v for k, v in cohort.heads_entry().items() if k != "state_dict"},
        },
    )
    return cohort, result


def cohort_accuracy(
    cohort: Cohort, data: Dataset, device: str = "auto"
) -> dict[str, dict[str, float]]:
    """Validation and test accuracy of each cohort member: ``{member: {"val": .., "test": ..}}``."""
    result: dict[str, dict[str, float]] = {name: {} for name in cohort.member_names}
    for split_name in ("val", "test"):
        if len(getattr(data, split_name)) == 0:  # no validation split: NaN for every member
            values = [float("nan")] * len(cohort.member_names)
        else:
            values = evaluate(cohort, data, split_name, device=device).reshape(-1).tolist()
        for name, value in zip(cohort.member_names, values, strict=True):
            result[name][split_name] = value
    return result


def build_distiller(
    method: str,
    teacher_source: str | Path | None,
    student_arch: str,
    data: Dataset,
    config: TrainConfig,
    options: Mapping[str, Any] | MethodOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    progress: bool = True,
    cache_root: str | Path | None = None,
    stage_root: str | Path | None = None,
    stage_hook: Callable[[str, Distiller, TrainConfig], None] | None = None,
) -> tuple[Distiller, MethodOptions]:
    """The distiller ``method`` builds for this run (a fresh student seeded by ``config.seed``,
    the loaded teacher when the method ``requires`` one), with its resolved options. Multi-stage
    methods (FitNets, TAKD) train their earlier stage into ``out_dir/STAGE`` here, or a shared
    stage into ``stage_root`` (with ``stage_hook``, the hook is called instead)."""
    method_class = get_method(method)
    resolved = resolve_options(method, options)
    teacher: Teacher | None = None
    if method_class.requires:
        if teacher_source is None:
            raise ConfigError(f"method {method!r} needs a teacher (--teacher CKPT or bundled name)")
        teacher = _checked_teacher(teacher_source, data)
        if "cohort" in method_class.requires:
            teacher.require_cohort(method)
    seed_everything(config.seed)
    student = build_model(student_arch, data.spec.num_classes, data.spec.in_channels)
    context = BuildContext(
        student=student,
        teacher=teacher,
        data=data,
        config=config,
        out_dir=Path(out_dir) if out_dir is not None else None,
        resume=resume,
        progress=progress,
        cache_root=Path(cache_root) if cache_root is not None else None,
        stage_root=Path(stage_root) if stage_root is not None else None,
        stage_meta={"teacher_sha256": teacher_sha256(teacher_source if teacher else None)},
        stage_hook=stage_hook,
        load_teacher=lambda source: _checked_teacher(source, data),
    )
    return method_class.build(context, resolved), resolved


def _checked_teacher(source: str | Path, data: Dataset) -> Teacher:
    """A teacher loaded and checked against the data (the extra teachers of a method)."""
    teacher = load_teacher(source)
    check_fits_data(teacher.model, data, "teacher")
    return teacher


def _skip_stage(name: str, distiller: Distiller, config: TrainConfig) -> None:
    """A stage hook that trains nothing (:func:`check_distill` builds, never trains)."""


def check_distill(
    method: str,
    teacher_source: str | Path | None,
    student_arch: str,
    data: Dataset,
    config: TrainConfig,
    options: Mapping[str, Any] | MethodOptions | None = None,
) -> MethodOptions:
    """Refuse now what :func:`distill` with these arguments would refuse later, without training
    or writing anything: the batch against the training split, the method's options, its teacher
    (and cohort) requirements and everything its ``build`` checks, earlier stages included
    (they are built, not trained). ``compare`` checks every method so before its first run."""
    check_batch_fits(config, data)
    _, resolved = build_distiller(
        method,
        teacher_source,
        student_arch,
        data,
        config,
        options,
        progress=False,
        stage_hook=_skip_stage,
    )
    return resolved


def distill(
    method: str,
    teacher_source: str | Path | None,
    student_arch: str,
    data: Dataset,
    config: TrainConfig,
    options: Mapping[str, Any] | MethodOptions | None = None,
    *,
    out_dir: str | Path | None = None,
    resume: bool = False,
    overwrite: bool = False,
    progress: bool = True,
    cache_root: str | Path | None = None,
    stage_root: str | Path | None = None,
) -> tuple[Distiller, FitResult]:
    """Train ``student_arch`` on ``data`` with ``method`` (any name in
    :func:`dihkit.methods.method_names`) from a teacher checkpoint or bundled name.

    ``options`` are the method's own options (see ``get_method(method).Options``); unset ones
    take the method's defaults, unknown or out-of-range ones are a :class:`ConfigError`. The
    student's initial weights depend only on ``config.seed``, so runs of different methods with
    the same seed start from the same student (paired comparisons). Multi-stage methods (FitNets,
    TAKD) train their earlier stage into ``out_dir/STAGE`` first. ``out_dir`` is claimed for the
    whole run (see :func:`dihkit.training.run_folder.claim`); ``overwrite`` replaces an earlier
    run there.
    With ``config.cached_targets`` the frozen teacher's outputs come from a target cache
    (:mod:`dihkit.training.target_cache`) in ``cache_root`` (default: ``$DIHKIT_TARGET_CACHE`` or
    ``runs/cache/targets``). A stage a method shares between runs (TAKD's assistant with a
    fixed ``assistant_seed``) lives in ``stage_root`` (None: in ``out_dir`` like any stage).
    """
    check_batch_fits(config, data)  # before an earlier stage trains, or the folder is claimed
    with run_folder.claim(out_dir, resume=resume, overwrite=overwrite):
        distiller, resolved = build_distiller(
            method,
            teacher_source,
            student_arch,
            data,
            config,
            options,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            cache_root=cache_root,
            stage_root=stage_root,
        )
        result = fit(
            distiller,
            data,
            config,
            out_dir=out_dir,
            resume=resume,
            progress=progress,
            meta=_distill_meta(method, teacher_source, resolved),
            cache_root=cache_root,
        )
    return distiller, result


def _distill_meta(
    method: str, teacher_source: str | Path | None, options: MethodOptions
) -> dict[str, Any]:
    """What a distillation run records besides the training settings: the teacher (its sha256
    is part of the run's identity) for methods that use one, and the resolved options. A method
    without a teacher records none (``compare`` passes its one ``--teacher`` to every method)."""
    used = teacher_source if get_method(method).requires else None
    return {
        "teacher": str(used) if used is not None else None,
        "teacher_sha256": teacher_sha256(used),
        "options": options.as_dict(),
    }


def distill_identity(
    method: str,
    teacher_source: str | Path | None,
    student_arch: str,
    data: Dataset,
    config: TrainConfig,
    options: Mapping[str, Any] | MethodOptions | None = None,
) -> dict[str, Any]:
    """The identity (:func:`dihkit.training.identity.run_identity`) that :func:`distill` with these
    arguments records in its run folder, computed without training."""
    meta = _distill_meta(method, teacher_source, resolve_options(method, options))
    return run_identity(method, student_arch, data, config, meta)
