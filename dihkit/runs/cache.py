"""A cache of finished distillation runs keyed by everything that changes their result.

Notebooks and the tour ask for runs by their settings; a run that was already done (by this
notebook, another one, or an earlier execution of the sequence) is read back instead of trained
again. A run's folder is ``ROOT/METHOD-STUDENT-seedN-DIGEST`` where ``DIGEST`` hashes its
identity (:func:`run_identity`), so two different settings can never share a folder; an
interrupted run resumes from its ``last.pt``.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dihkit.training.loop import RESUME_MAY_CHANGE, TrainConfig

IDENTITY_FILE = "identity.json"


@dataclass
class RunSummary:
    """A finished run as the notebooks use it."""

    method: str
    seed: int
    teacher: str | None
    student: str
    test_acc_best: float
    test_acc_last: float
    best_val_acc: float
    best_epoch: int
    seconds: float
    student_params: int
    run_dir: str
    options: dict[str, Any] = field(default_factory=dict)
    history: list[dict[str, Any]] = field(default_factory=list, repr=False)
    cached_targets: int = 0  # V: trained from V cached views per image; 0: live teacher

    def as_dict(self, with_history: bool = False) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if not with_history:
            values.pop("history")
        return values


def _teacher_identity(teacher: str | None) -> str | None:
    if teacher is None:
        return None
    from dihkit.teachers.bundled import resolve_checkpoint, sha256_of

    return sha256_of(resolve_checkpoint(teacher))


def run_identity(
    method: str,
    teacher: str | None,
    student: str,
    data_options: Mapping[str, Any],
    config: TrainConfig,
    options: Mapping[str, Any],
) -> dict[str, Any]:
    """Every setting that changes a run's result, as plain JSON values: the method and its
    resolved options, the teacher checkpoint's sha256, the student, the data options and the
    training configuration (except settings that cannot change the result, such as the device)."""
    train = {
        k: list(v) if isinstance(v, tuple) else v
        for k, v in dataclasses.asdict(config).items()
        if k not in RESUME_MAY_CHANGE
    }
    if not config.cached_targets:  # a live-teacher run: identities from before the cache existed
        train.pop("cached_targets")
        train.pop("cache_seed")
    return {
        "method": method,
        "options": dict(sorted(options.items())),
        "teacher_sha256": _teacher_identity(teacher),
        "student": student,
        "data": dict(sorted(data_options.items())),
        "train": train,
    }


def identity_digest(identity: Mapping[str, Any]) -> str:
    """A short stable hash of an identity."""
    text = json.dumps(identity, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:12]


def cached_run(
    method: str,
    *,
    teacher: str | None,
    student: str,
    config: TrainConfig,
    options: Mapping[str, Any] | None = None,
    dataset: str = "fmnist-mini",
    train_per_class: int | None = None,
    val_fraction: float = 0.1,
    data_dir: str | None = None,
    root: str | Path = "runs/cache",
    progress: bool = False,
    data: Any = None,
) -> RunSummary:
    """Return the finished run with these settings, training it first if it is not cached.

    ``options`` are the method's options (unset ones take the method's defaults and are part of
    the identity). ``data`` may pass an already loaded dataset that matches ``dataset``,
    ``train_per_class`` and ``val_fraction`` (to save loading it again).
    """
    from dihkit.data.datasets import load_dataset
    from dihkit.runs.compare import method_config
    from dihkit.models import build_model, count_parameters
    from dihkit.runs.pipeline import distill, resolve_options

    resolved = resolve_options(method, options or {}).as_dict()
    config = method_config(method, config, options=resolved)  # the cache only where usable
    data_options = {
        "dataset": dataset,
        "train_per_class": train_per_class,
        "val_fraction": val_fraction,
    }
    identity = run_identity(method, teacher, student, data_options, config, resolved)
    run_dir = Path(root) / f"{method}-{student}-seed{config.seed}-{identity_digest(identity)}"
    summary_path = run_dir / "summary.json"
    identity_path = run_dir / IDENTITY_FILE
    done = summary_path.is_file() and identity_path.is_file()
    if done and json.loads(identity_path.read_text()) != json.loads(json.dumps(identity)):
        done = False
    if not done:
        if data is None:
            data = load_dataset(
                dataset,
                data_dir=data_dir,
                train_per_class=train_per_class,
                val_fraction=val_fraction,
            )
        run_dir.mkdir(parents=True, exist_ok=True)
        identity_path.write_text(json.dumps(identity, indent=1, default=str))
        distill(
            method,
            teacher,
            student,
            data,
            config,
            resolved,
            out_dir=run_dir,
            resume=True,
            progress=progress,
            cache_root=Path(root) / "targets",
        )
    summary = json.loads(summary_path.read_text())
    history = json.loads((run_dir / "history.json").read_text())
    from dihkit.data.datasets import dataset_spec

    spec = dataset_spec(dataset)
    return RunSummary(
        method=method,
        seed=config.seed,
        teacher=teacher,
        student=student,
        test_acc_best=summary["test_acc_best"],
        test_acc_last=summary["test_acc_last"],
        best_val_acc=summary["best_val_acc"],
        best_epoch=summary["best_epoch"],
        seconds=sum(row["seconds"] for row in history),
        student_params=count_parameters(build_model(student, spec.num_classes, spec.in_channels)),
        run_dir=str(run_dir),
        options=dict(resolved),
        history=history,
        cached_targets=config.cached_targets,
    )
