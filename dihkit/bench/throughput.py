"""Throughput measurements: training and inference images per second for a model on a dataset.

Speed is measured here, never asserted in tests."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from dihkit.bench.timing import sync
from dihkit.data.datasets import Dataset
from dihkit.data.loader import BatchLoader
from dihkit.errors import ConfigError
from dihkit.models import build_model
from dihkit.training.runtime import autocast, resolve_device, uses_channels_last


@dataclass
class Throughput:
    """Images per second for one model."""

    model: str
    device: str
    batch_size: int
    train_images_per_s: float
    inference_images_per_s: float


def measure_throughput(
    arch: str,
    data: Dataset,
    *,
    batch_size: int = 128,
    steps: int = 30,
    warmup: int = 3,
    device: str = "auto",
) -> Throughput:
    """Time ``steps`` SGD steps (augmented batches from the in-memory loader, forward, backward,
    update) and ``steps`` inference batches, after ``warmup`` untimed steps of each."""
    if batch_size > len(data.train):  # drop_last would leave no batch at all
        raise ConfigError(
            f"batch size {batch_size} is larger than the {len(data.train)} training images of "
            f"{data.spec.name}; use --batch-size {len(data.train)} or less"
        )
    dev = resolve_device(device)
    channels_last = uses_channels_last(dev)
    model = build_model(arch, data.spec.num_classes, data.spec.in_channels).to(dev)
    if channels_last:
        model = model.to(memory_format=torch.channels_last)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.01, momentum=0.9, nesterov=True)
    loader = BatchLoader(
        data.train,
        batch_size,
        mean=data.spec.mean,
        std=data.spec.std,
        device=dev,
        shuffle=True,
        augment=True,
        drop_last=True,
        channels_last=channels_last,
    )

    def batches():
        epoch = 0
        while True:
            loader.set_epoch(epoch)
            yield from loader
            epoch += 1

    stream = batches()

    def train_step() -> None:
        images, labels = next(stream)
        with autocast(dev):
            loss = F.cross_entropy(model(images), labels)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    def inference_step() -> None:
        images, _ = next(stream)
        with torch.inference_mode(), autocast(dev):
            model(images)

    model.train()
    train_rate = _images_per_s(train_step, steps, warmup, batch_size, dev)
    model.eval()
    infer_rate = _images_per_s(inference_step, steps, warmup, batch_size, dev)
    return Throughput(arch, str(dev), batch_size, train_rate, infer_rate)


def _images_per_s(
    step: Callable[[], None], steps: int, warmup: int, batch_size: int, device: torch.device
) -> float:
    """Run ``warmup`` untimed steps, then time ``steps`` steps of ``batch_size`` images."""
    for _ in range(warmup):
        step()
    sync(device)
    start = time.perf_counter()
    for _ in range(steps):
        step()
    sync(device)
    return steps * batch_size / (time.perf_counter() - start)
