"""Catching a diverging run: the first training step whose loss is not finite.

The check stays on the device (no host synchronisation per step on a GPU): the first bad step
and its loss terms are recorded with tensor operations, and the host looks every ``every`` steps
(every step on the CPU, where looking is free) and at the end of the epoch.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import torch
from torch import Tensor

from dihkit.errors import DivergenceError

GPU_CHECK_EVERY = 20  # steps between host checks on an accelerator


class DivergenceWatch:
    """Watch one epoch's losses; :meth:`check` raises a :class:`DivergenceError` naming the
    epoch, the step and every loss term of the first non-finite step."""

    def __init__(self, device: torch.device, epoch: int, lr: float, steps: int) -> None:
        self.every = 1 if device.type == "cpu" else GPU_CHECK_EVERY
        self.epoch, self.lr, self.steps = epoch, lr, steps
        self.bad_step = torch.full((), -1, dtype=torch.long, device=device)
        self.values: Tensor | None = None
        self.names: list[str] = []

    def observe(self, step: int, loss: Tensor, terms: Mapping[str, Tensor]) -> None:
        """Record step ``step`` (1-based) and check on the host when it is time."""
        parts = [loss, *terms.values()]
        values = torch.stack([t.detach().float().reshape(()) for t in parts])
        if self.values is None or self.values.shape != values.shape:
            self.check()  # a change in the terms: settle what was seen so far
            self.values, self.names = torch.zeros_like(values), list(terms)
        first = (self.bad_step < 0) & ~torch.isfinite(values[0])
        self.bad_step = torch.where(first, step, self.bad_step)
        self.values = torch.where(first, values, self.values)
        if step % self.every == 0:
            self.check()

    def check(self) -> None:
        """Raise if a non-finite loss was seen."""
        step = int(self.bad_step)
        if step < 0 or self.values is None:
            return
        loss, *terms = self.values.tolist()
        shown = ", ".join(f"{n}={v:.4g}" for n, v in zip(self.names, terms, strict=True))
        raise DivergenceError(
            f"training diverged: the loss is {loss:.4g} at epoch {self.epoch + 1}, step {step} of "
            f"{self.steps} ({shown}) with lr {self.lr:g}; lower the learning rate (--lr, e.g. "
            "10x smaller) or check the method options"
        )


def check_finite_weights(tensors: Iterable[Tensor], epoch: int) -> None:
    """Raise a :class:`DivergenceError` if any floating tensor holds a nan or an inf."""
    flags = [torch.isfinite(t).all() for t in tensors if t.is_floating_point()]
    if flags and not bool(torch.stack(flags).all()):
        raise DivergenceError(
            f"training diverged: the weights became non-finite during epoch {epoch + 1}; lower "
            "the learning rate (--lr, e.g. 10x smaller) or check the method options"
        )
