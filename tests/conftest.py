"""Shared fixtures: the embedded dataset and a tiny stratified slice of it for fast tests."""

from __future__ import annotations

import dataclasses

import pytest
import torch

from dihkit.data import Dataset, Split, load_dataset


def per_class_slice(split: Split, per_class: int) -> Split:
    """The first ``per_class`` images of every class, in split order."""
    keep = torch.cat(
        [torch.nonzero(split.labels == c).flatten()[:per_class] for c in split.labels.unique()]
    )
    return split.subset(keep.sort().values)


@pytest.fixture(scope="session")
def fmnist() -> Dataset:
    return load_dataset("fmnist-mini")


@pytest.fixture(scope="session")
def tiny(fmnist: Dataset) -> Dataset:
    """30 train / 10 val / 20 test images per class: enough to exercise every code path quickly."""
    return dataclasses.replace(
        fmnist,
        train=per_class_slice(fmnist.train, 30),
        val=per_class_slice(fmnist.val, 10),
        test=per_class_slice(fmnist.test, 20),
    )
