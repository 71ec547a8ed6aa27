"""Accuracy of a model, or of every member of a cohort, on one split of a dataset."""

from __future__ import annotations

import contextlib
from collections.abc import Callable

import torch
from torch import Tensor, nn

from dihkit.data.datasets import Dataset
from dihkit.data.loader import BatchLoader
from dihkit.errors import ConfigError
from dihkit.training.config import EVAL_BATCH_SIZE
from dihkit.training.runtime import autocast, evaluating, resolve_device, uses_channels_last


def member_accuracy(logits: Tensor, labels: Tensor) -> Tensor:
    """Fraction correct: a scalar for ``[N, C]`` logits, one value per member for ``[M, N, C]``."""
    return (logits.argmax(dim=-1) == labels).float().mean(dim=-1)


SPLITS = ("train", "val", "test")


@torch.no_grad()
def evaluate(
    predict: Callable[[Tensor], Tensor],
    data: Dataset,
    split: str = "test",
    *,
    device: str | torch.device = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
) -> Tensor:
    """Accuracy of ``predict`` on one split of ``data``; one value per member when ``predict``
    returns ``[M, N, C]`` (a cohort), a scalar for ``[N, C]``; NaN for an empty split.

    ``predict`` is a module or a module's bound method; that module is put in eval mode for the
    evaluation (BatchNorm uses its running statistics) and restored afterwards.
    """
    if split not in SPLITS:
        raise ConfigError(f"unknown split {split!r}; choose one of: {', '.join(SPLITS)}")
    device = resolve_device(device)
    images = getattr(data, split)
    if len(images) == 0:
        return torch.tensor(float("nan"))
    loader = BatchLoader(
        images,
        batch_size,
        mean=data.spec.mean,
        std=data.spec.std,
        device=device,
        channels_last=uses_channels_last(device),
    )
    owner = predict if isinstance(predict, nn.Module) else getattr(predict, "__self__", None)
    correct: Tensor | None = None
    with evaluating(owner) if isinstance(owner, nn.Module) else contextlib.nullcontext():
        for batch_images, labels in loader:
            with autocast(device):
                logits = predict(batch_images)
            hits = (logits.argmax(dim=-1) == labels).sum(dim=-1)
            correct = hits if correct is None else correct + hits
    return (correct.float() / len(images)).cpu()
