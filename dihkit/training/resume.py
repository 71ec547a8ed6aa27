"""Resuming a run from its folder's ``last.pt``: only a run with the same identity
(:mod:`dihkit.training.identity`) continues, and it continues exactly where it stopped (weights,
optimiser, schedule, random state, history and the best epoch so far)."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from dihkit.errors import CheckpointError
from dihkit.training.checkpoint import load_checkpoint
from dihkit.training.history import EpochRecord
from dihkit.training.identity import identity_differences
from dihkit.training.runtime import set_rng_state
from dihkit.training.trainable import Trainable

LAST, BEST = "last.pt", "best.pt"
_FIX = "pass --overwrite to start again, or pick another --out folder"


def check_same_run(path: Path, state: Mapping[str, Any], identity: Mapping[str, Any]) -> None:
    """Refuse to resume ``path`` unless its checkpoint ``state`` was written by a run with
    ``identity``; the error lists every setting that differs."""
    if not isinstance(state.get("identity"), Mapping):
        raise CheckpointError(
            f"cannot resume {path}: it records no run identity (written by an older dihkit), "
            f"so its settings cannot be checked; {_FIX}"
        )
    changed = identity_differences(state["identity"], identity)
    if changed:
        raise CheckpointError(
            f"cannot resume {path}: it was run with other settings ({'; '.join(changed)}); "
            f"rerun with the original settings, {_FIX}"
        )


@dataclass
class ResumePoint:
    """Where a resumed run continues: the epochs done, their history and the best so far."""

    start_epoch: int
    history: list[EpochRecord]
    best_epoch: int
    best_val: float | None  # None: the run has no validation split
    best_state: dict[str, Any] | None


def resume_run(
    folder: Path,
    distiller: Trainable,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    identity: Mapping[str, Any],
) -> ResumePoint | None:
    """Load ``folder/last.pt`` into the distiller, optimiser, scheduler and random state after
    checking its identity; None when the folder has no ``last.pt`` (the run starts afresh)."""
    last = folder / LAST
    if not last.is_file():
        return None
    state = _load(last)
    check_same_run(last, state, identity)
    distiller.load_checkpoint_state(state)
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    set_rng_state(state["rng"])
    best_epoch = state["best"]["epoch"]
    return ResumePoint(
        start_epoch=state["epoch"],
        history=[EpochRecord(**row) for row in state["history"]],
        best_epoch=best_epoch,
        best_val=state["best"]["val_acc"],
        best_state=_load(folder / BEST) if best_epoch else None,
    )


def _load(path: Path) -> dict[str, Any]:
    """A checkpoint to resume from; a damaged one is refused with the way out."""
    try:
        return load_checkpoint(path)
    except CheckpointError as exc:
        raise CheckpointError(f"cannot resume: {exc}; or {_FIX}") from None


def kept_epoch(out_dir: str | Path | None) -> str:
    """Which epoch a stopped run's ``last.pt`` keeps (said when a run diverges)."""
    last = Path(out_dir) / LAST if out_dir is not None else None
    if last is None or not last.is_file():
        return "no checkpoint was saved"
    return f"{last} keeps epoch {load_checkpoint(last)['epoch']}, the last finite one"
