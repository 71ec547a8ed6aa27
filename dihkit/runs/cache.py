"""A cache of finished distillation runs keyed by everything that changes their result.

Notebooks and the tour ask for runs by their settings; a run that was already done (by this
notebook, another one, or an earlier execution of the sequence) is read back instead of trained
again. A run's folder is ``ROOT/METHOD-STUDENT-seedN-DIGEST`` where ``DIGEST`` hashes the run's
identity, the one :func:`dihkit.training.loop.fit` records in the folder
(:func:`dihkit.runs.pipeline.distill_identity`: the method and its options, the teacher's
sha256, the student, the data's contents and the training settings), so two different settings
can never share a folder.

A run counts as done when its ``identity.json``, ``summary.json`` and histories (a stage's
too) read back and carry that identity, and every shared-stage record (``NAME.shared.json``)
reads back whole. A run whose files are missing or damaged (a write cut
short) is run again: resumed from its ``last.pt`` when every checkpoint in the folder loads and
``last.pt`` has this identity, started afresh (the folder's run files removed) otherwise.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from dihkit.data.datasets import load_dataset
from dihkit.errors import CheckpointError
from dihkit.files import UnreadableFileError, read_json, write_json_atomic
from dihkit.methods.base import SHARED_STAGE_SUFFIX
from dihkit.models import build_model, count_parameters
from dihkit.runs import pipeline
from dihkit.runs.compare import method_config
from dihkit.training import run_folder
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.config import TrainConfig
from dihkit.training.identity import identity_digest
from dihkit.training.loop import HISTORY_FILE, SUMMARY_FILE

IDENTITY_FILE = "identity.json"
CHECKPOINTS = ("last.pt", "best.pt", "*/last.pt", "*/best.pt")  # the run's and its stages'
SUMMARY_KEYS = ("test_acc_best", "test_acc_last", "best_val_acc", "best_epoch")


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
    # torch, device, CPU model, vector instructions and threads of the process that finished the
    # run (training.runtime.numeric_environment); empty for a run recorded before it was kept
    environment: dict[str, Any] = field(default_factory=dict)

    def as_dict(self, with_history: bool = False) -> dict[str, Any]:
        values = dataclasses.asdict(self)
        if not with_history:
            values.pop("history")
        return values


def _environment(value: Any) -> dict[str, Any]:
    """A summary's environment record, or {} where it is missing or not a mapping."""
    return dict(value) if isinstance(value, dict) else {}


def history_rows(history: Any) -> bool:
    """Whether ``history`` reads as a run's history (a list of epoch rows with their time)."""
    return isinstance(history, list) and all(
        isinstance(row, dict) and isinstance(row.get("seconds"), int | float) for row in history
    )


def shared_stage_entry(entry: Any) -> bool:
    """Whether ``entry`` reads as a shared-stage record (``NAME.shared.json``): the stage, its
    folder and the seconds this run spent on it."""
    return (
        isinstance(entry, dict)
        and isinstance(entry.get("stage"), str)
        and isinstance(entry.get("folder"), str)
        and isinstance(entry.get("seconds"), int | float)
    )


def finished_run(
    run_dir: Path, identity: Mapping[str, Any]
) -> tuple[dict[str, Any], list[dict[str, Any]]] | None:
    """The summary and history of the finished run with ``identity`` in ``run_dir``; None if it
    has not finished, holds another run, or any of its files is missing or damaged."""
    try:
        stored = read_json(run_dir / IDENTITY_FILE)
        summary = read_json(run_dir / SUMMARY_FILE)
        history = read_json(run_dir / HISTORY_FILE)
        stages = [read_json(path) for path in sorted(run_dir.glob(f"*/{HISTORY_FILE}"))]
        markers = [read_json(path) for path in sorted(run_dir.glob(f"*{SHARED_STAGE_SUFFIX}"))]
    except UnreadableFileError:
        return None
    if stored != identity or not isinstance(summary, dict) or summary.get("identity") != identity:
        return None
    if any(key not in summary for key in SUMMARY_KEYS):
        return None
    if not (history and history_rows(history) and all(history_rows(s) for s in stages)):
        return None
    if not all(shared_stage_entry(marker) for marker in markers):
        return None
    return summary, history


def resumable(run_dir: Path, identity: Mapping[str, Any]) -> bool:
    """Whether the run in ``run_dir`` can continue from its ``last.pt``: every checkpoint of the
    run and of its stages loads, and ``last.pt`` was written by a run with ``identity``."""
    if not (run_dir / "last.pt").is_file():
        return False
    try:
        states = {
            path.relative_to(run_dir).as_posix(): load_checkpoint(path)
            for pattern in CHECKPOINTS
            for path in sorted(run_dir.glob(pattern))
        }
    except CheckpointError:
        return False
    return states["last.pt"].get("identity") == identity


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
    the identity). ``data`` may pass an already loaded dataset (``dataset``,
    ``train_per_class`` and ``val_fraction`` are then not used to load it again); its contents
    are part of the identity either way.
    """
    if data is None:
        data = load_dataset(
            dataset, data_dir=data_dir, train_per_class=train_per_class, val_fraction=val_fraction
        )
    resolved = pipeline.resolve_options(method, options or {}).as_dict()
    config = method_config(method, config, options=resolved)  # the cache only where usable
    identity = pipeline.distill_identity(method, teacher, student, data, config, resolved)
    run_dir = Path(root) / f"{method}-{student}-seed{config.seed}-{identity_digest(identity)}"
    found = finished_run(run_dir, identity)
    if found is None:
        resume = resumable(run_dir, identity)
        with run_folder.claim(run_dir, resume=resume, overwrite=not resume):
            write_json_atomic(run_dir / IDENTITY_FILE, identity)
            pipeline.distill(
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
                stage_root=Path(root) / "stages",
            )
        found = read_json(run_dir / SUMMARY_FILE), read_json(run_dir / HISTORY_FILE)
    summary, history = found
    spec = data.spec
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
        environment=_environment(summary.get("environment")),
    )
