"""Shared fixtures: the embedded dataset and a tiny stratified slice of it for fast tests."""

from __future__ import annotations

import dataclasses

import pytest

from dihkit.data import Dataset, load_dataset, per_class_subset


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
