"""What training needs from a method, as structural types: the loop trains any
:class:`Trainable`, the target cache stores the outputs of any :class:`TargetSource`.

:class:`dihkit.methods.base.Distiller` implements both; training never imports the methods.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from typing import Any, Protocol

from torch import Tensor, nn


class TargetSource(Protocol):
    """A method whose frozen networks' outputs can be cached (see
    :mod:`dihkit.training.target_cache`)."""

    def cache_refusal(self) -> str | None:
        """Why it cannot train from cached targets, or None if it can."""
        ...

    def target_source(self) -> nn.Module | None:
        """The frozen network whose weights key the cache."""
        ...

    def frozen_targets(self, images: Tensor) -> Tensor:
        """The frozen networks' ``(M, B, C)`` logits for ``images``."""
        ...


class Trainable(TargetSource, Protocol):
    """What :func:`dihkit.training.loop.fit` trains: a module whose call on a batch returns the
    logits that training accuracy is measured on and a dict of named loss terms (summed by the
    loop), plus what the loop asks of it around the steps."""

    method: str  # the method's registered name (checkpoints and identities record it)
    student: nn.Module  # the zoo model being trained (its arch and shape are checked)
    select_best: bool  # False: the last epoch's weights are the selected ones

    def __call__(self, *batch: Tensor) -> tuple[Tensor, dict[str, Tensor]]: ...

    # the parts of nn.Module the loop uses
    def parameters(self, recurse: bool = True) -> Iterator[nn.Parameter]: ...

    def named_parameters(self) -> Iterator[tuple[str, nn.Parameter]]: ...

    def named_buffers(self) -> Iterator[tuple[str, Tensor]]: ...

    def state_dict(self) -> dict[str, Any]: ...

    def to(self, *args: Any, **kwargs: Any) -> Any: ...

    def train(self, mode: bool = True) -> Any: ...

    # the method's own interface
    def predict(self, images: Tensor) -> Tensor:
        """Logits used for validation and test (model selection)."""
        ...

    def describe(self) -> str:
        """A short label for progress bars."""
        ...

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (0-based)."""
        ...

    def checkpoint_state(self) -> dict[str, Any]:
        """The trainable state a checkpoint keeps."""
        ...

    def load_checkpoint_state(self, state: Mapping[str, Any]) -> None:
        """Inverse of :meth:`checkpoint_state`."""
        ...

    def epoch_records(self) -> dict[str, Tensor]:
        """Tensors to save for the epoch that just ended (``records/epoch-NNN.pt``)."""
        ...

    def clear_records(self) -> None:
        """Forget what :meth:`epoch_records` returned."""
        ...
