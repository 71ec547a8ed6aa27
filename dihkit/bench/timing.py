"""Timing primitives of the benchmarks: wait for the device, time a call, time several calls
round-robin (so machine noise hits all alike), an endless batch stream and one optimisation
step of a distiller on it."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable, Iterator

import torch

from dihkit.data.loader import BatchLoader
from dihkit.methods import Distiller
from dihkit.training.runtime import autocast

__all__ = ["StepRunner", "endless", "interleaved", "ratio", "sync", "timed"]


def endless(loader: BatchLoader) -> Iterator[tuple[torch.Tensor, ...]]:
    """The loader's batches epoch after epoch (each epoch reshuffled as in training)."""
    epoch = 0
    while True:
        loader.set_epoch(epoch)
        yield from loader
        epoch += 1


def sync(device: torch.device) -> None:
    """Wait for the work queued on a CUDA ``device`` (nothing to wait for elsewhere)."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed(work: Callable[[], object], repeats: int, device: torch.device) -> float:
    """Seconds per call of ``work``, over ``repeats`` calls."""
    sync(device)
    start = time.perf_counter()
    for _ in range(repeats):
        work()
    sync(device)
    return (time.perf_counter() - start) / repeats


def interleaved(
    jobs: dict[str, Callable[[], object]], repeats: int, rounds: int, device: torch.device
) -> dict[str, float]:
    """Median seconds per call of each job, timed round-robin after one untimed warm-up call."""
    for job in jobs.values():
        job()
    samples: dict[str, list[float]] = {name: [] for name in jobs}
    for _ in range(rounds):
        for name, job in jobs.items():
            samples[name].append(timed(job, repeats, device))
    return {name: statistics.median(values) for name, values in samples.items()}


class StepRunner:
    """One optimisation step of a distiller on a stream of batches."""

    def __init__(
        self,
        distiller: Distiller,
        stream: Iterator[tuple[torch.Tensor, ...]],
        device: torch.device,
    ) -> None:
        self.distiller = distiller
        self.stream = stream
        self.device = device
        params = [p for p in distiller.parameters() if p.requires_grad]
        self.optimizer = torch.optim.SGD(params, lr=0.01, momentum=0.9, nesterov=True)

    def __call__(self) -> None:
        batch = next(self.stream)
        self.distiller.train()
        with autocast(self.device):
            _, terms = self.distiller(*batch)
            loss = sum(terms.values())
        self.optimizer.zero_grad(set_to_none=True)
        loss.backward()
        self.optimizer.step()


def ratio(a: float | None, b: float | None) -> float | None:
    """``a / b`` to three decimals, None when either is missing or ``b`` is 0."""
    return None if a is None or b is None or b == 0 else round(a / b, 3)
