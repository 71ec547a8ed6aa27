"""What a run reports: one :class:`EpochRecord` per epoch and the :class:`FitResult` of the run."""

from __future__ import annotations

import math
from dataclasses import dataclass, field


@dataclass
class EpochRecord:
    """One row of the training history."""

    epoch: int
    lr: float
    train_loss: float
    train_acc: float
    val_acc: float
    seconds: float
    images_per_s: float
    losses: dict[str, float] = field(default_factory=dict)
    val_member_acc: list[float] = field(default_factory=list)


@dataclass
class FitResult:
    """What :func:`dihkit.training.loop.fit` returns. Test accuracy is measured once, at the end,
    for the last-epoch weights and for the validation-selected (best) weights. Without a
    validation split the last epoch is the selected one and ``best_val_acc`` is None."""

    history: list[EpochRecord]
    best_epoch: int
    best_val_acc: float | None  # None: no validation split (the last epoch is kept)
    test_acc_best: float
    test_acc_last: float
    test_member_acc_best: list[float] = field(default_factory=list)
    out_dir: str | None = None

    def table(self) -> str:
        """The history as a fixed-width text table."""
        return format_history(self.history)


def format_history(history: list[EpochRecord]) -> str:
    """Render a history as a small text table (one row per epoch)."""
    header = f"{'epoch':>5} {'lr':>8} {'loss':>8} {'train%':>7} {'val%':>7} {'sec':>6} {'img/s':>7}"
    rows = [header]
    for r in history:
        val = f"{100 * r.val_acc:>7.2f}" if math.isfinite(r.val_acc) else f"{'-':>7}"  # no val
        rows.append(
            f"{r.epoch:>5} {r.lr:>8.4f} {r.train_loss:>8.4f} {100 * r.train_acc:>7.2f} "
            f"{val} {r.seconds:>6.1f} {r.images_per_s:>7.0f}"
        )
    return "\n".join(rows)
