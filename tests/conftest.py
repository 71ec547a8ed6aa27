"""Shared fixtures: the embedded dataset and a tiny stratified slice of it for fast tests."""

from __future__ import annotations

import dataclasses
import os

import pytest
import torch

from dihkit.data.datasets import Dataset, load_dataset, per_class_subset

if os.environ.get("PYTEST_XDIST_WORKER"):
    # One compute thread per xdist worker (and for the kernels and subprocesses it starts):
    # two workers with two threads each on a 2-core machine oversubscribe the cores, and
    # spinning OpenMP threads then slow every worker down several-fold.
    os.environ.setdefault("OMP_NUM_THREADS", "1")
    torch.set_num_threads(1)


@pytest.fixture(scope="session")
def fmnist() -> Dataset:
    return load_dataset("fmnist-mini")


@pytest.fixture(scope="session")
def tiny(fmnist: Dataset) -> Dataset:
    """30 train / 10 val / 20 test images per class: enough to exercise every code path quickly."""
    return dataclasses.replace(
        fmnist,
        train=per_class_subset(fmnist.train, 30),
        val=per_class_subset(fmnist.val, 10),
        test=per_class_subset(fmnist.test, 20),
    )


@pytest.fixture(scope="session")
def browser():
    """One headless Chromium per test process for the browser tests (playwright's sync API
    allows one running instance); skips when Chromium or playwright is missing."""
    from browser_support import chromium

    with chromium() as instance:
        yield instance
