"""What a run checks against its data before anything trains: the student's input and
classes, and a batch that fits the training split."""

from __future__ import annotations

from dataclasses import fields

from dihkit.data.datasets import Dataset
from dihkit.errors import ConfigError
from dihkit.training.config import TrainConfig
from dihkit.training.trainable import Trainable

NO_VALIDATION = "no validation split (--val-fraction 0): the last epoch is kept"
DEFAULT_BATCH_SIZE = next(f.default for f in fields(TrainConfig) if f.name == "batch_size")


def check_compatible(distiller: Trainable, data: Dataset) -> None:
    """A :class:`ConfigError` when the student takes other images or classes than ``data``."""
    model = distiller.student
    if getattr(model, "in_channels", data.spec.in_channels) != data.spec.in_channels:
        raise ConfigError(
            f"model {getattr(model, 'arch', '?')} takes in_channels={model.in_channels} but "
            f"{data.spec.name} images have {data.spec.in_channels} channel(s); "
            f"build the model with in_channels={data.spec.in_channels}"
        )
    if getattr(model, "num_classes", data.spec.num_classes) != data.spec.num_classes:
        raise ConfigError(
            f"model has num_classes={model.num_classes} but {data.spec.name} has "
            f"{data.spec.num_classes} classes; build it with num_classes={data.spec.num_classes}"
        )


def check_batch_fits(config: TrainConfig, data: Dataset) -> None:
    """A :class:`ConfigError` when the batch is larger than the training split: the run would
    take one step per epoch over the whole split, not the batches it asks for. Batches up to
    the default (:data:`DEFAULT_BATCH_SIZE`) pass, so a tiny split (``--train-per-class 10``)
    trains with the default settings, on the whole split as one batch."""
    size = len(data.train)
    if config.batch_size > max(size, DEFAULT_BATCH_SIZE):
        raise ConfigError(
            f"batch size {config.batch_size} (--batch-size) is larger than the {size} images of "
            f"{data.spec.name}'s training split; use --batch-size {size} or less (or more "
            "training images: --train-per-class, --val-fraction)"
        )
