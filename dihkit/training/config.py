"""A run's optimisation settings (:class:`TrainConfig`), checked where they are set."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from dihkit.checks import check_choice, check_number, in_range, whole
from dihkit.errors import ConfigError

SCHEDULES = ("cosine", "multistep")
MAX_SEED = 2**63 - 1  # torch, NumPy and the loader's epoch seeds all take it
# Inference batches (validation, test, target caches): on a CPU a resnet8 forward pass runs
# 2.5x faster per image in batches of 250 than of 1,000 (measured on 1 thread: 1,887 vs 744
# images/s); the batch changes no result.
EVAL_BATCH_SIZE = 256


def _integer(name: str, value: Any, low: int) -> int:
    """``value`` if it is an integer (not a bool) of at least ``low``, else a ConfigError."""
    return int(check_number(name, value, low, integer=True))


@dataclass
class TrainConfig:
    """Optimisation settings. Defaults follow the DIH paper's recipe (SGD, Nesterov, momentum 0.9,
    weight decay 5e-4), scaled down to a short run."""

    epochs: int = 10
    batch_size: int = 128
    lr: float = 0.1
    momentum: float = 0.9
    weight_decay: float = 5e-4
    nesterov: bool = True
    schedule: str = "cosine"
    milestones: tuple[int, ...] = ()  # multistep only; empty means 30%, 60% and 90% of the epochs
    gamma: float = 0.1
    augment: bool = True
    seed: int = 0
    device: str = "auto"
    eval_batch_size: int = EVAL_BATCH_SIZE
    cached_targets: int = 0  # V > 0: train from V cached views per image (no teacher forward)
    cache_seed: int = 0  # seeds the cached views; shared by runs of any training seed
    compile: bool = False  # torch.compile the training step (same results, other kernels)

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size", "eval_batch_size"):
            setattr(self, name, _integer(name, getattr(self, name), 1))
        if not isinstance(self.compile, bool):
            raise ConfigError(f"compile = {self.compile!r} must be True or False")
        for name in ("cached_targets", "cache_seed"):
            setattr(self, name, _integer(name, getattr(self, name), 0))
        check_number("lr", self.lr, 0.0, low_open=True)
        check_number("weight_decay", self.weight_decay, 0.0)
        check_number("momentum", self.momentum, 0.0, 1.0, high_open=True)
        check_number("gamma", self.gamma, 0.0, low_open=True)
        if not isinstance(self.seed, int) or not in_range(self.seed, 0, MAX_SEED):
            raise ConfigError(f"seed = {self.seed!r} must be an integer in [0, 2**63 - 1]")
        check_choice("schedule", self.schedule, SCHEDULES)
        try:
            self.milestones = tuple(whole(m) for m in self.milestones)
        except (TypeError, ValueError):
            raise ConfigError(
                f"milestones = {self.milestones!r} must be whole epoch numbers"
            ) from None
        if any(m < 1 or m > self.epochs for m in self.milestones):
            raise ConfigError(
                f"milestones = {self.milestones} must lie between 1 and epochs={self.epochs}"
            )

    def resolved_milestones(self) -> list[int]:
        """The multistep milestones, defaulting to 30/60/90% of the run (60/120/180 of 200)."""
        if self.milestones:
            return sorted(self.milestones)
        return sorted({max(1, round(self.epochs * f)) for f in (0.3, 0.6, 0.9)})
