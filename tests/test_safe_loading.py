"""Dataset files and checkpoints are read without running code: crafted pickles that would
create a marker file are refused (the file never appears), and bad pixel values in a CIFAR
batch are one clear DataError naming the file."""

from __future__ import annotations

import pickle
from pathlib import Path

import numpy as np
import pytest
import torch

from dihkit.cli.main import main
from dihkit.data.datasets import load_dataset
from dihkit.errors import CheckpointError, DataError
from dihkit.training.checkpoint import load_checkpoint


class Marker:
    """Unpickling this calls ``open(path, "w")``: the file appears if the loader runs code."""

    def __init__(self, path: Path) -> None:
        self.path = str(path)

    def __reduce__(self):
        return (open, (self.path, "w"))


def _dump(path: Path, obj: object, protocol: int = pickle.DEFAULT_PROTOCOL) -> None:
    path.write_bytes(pickle.dumps(obj, protocol=protocol))


def _cifar10(root: Path, train: dict | None = None, meta: object | None = None) -> Path:
    """A tiny CIFAR-10 tree; ``train`` replaces data_batch_1, ``meta`` batches.meta."""
    rng = np.random.default_rng(0)
    folder = root / "cifar-10-batches-py"
    folder.mkdir()
    for i in range(1, 6):
        batch = {b"data": rng.integers(0, 256, (4, 3072), dtype=np.uint8), b"labels": [1, 2, 3, 4]}
        _dump(folder / f"data_batch_{i}", batch)
    _dump(folder / "test_batch", {b"data": np.zeros((2, 3072), np.uint8), b"labels": [0, 1]})
    _dump(folder / "batches.meta", {b"label_names": [f"c{i}".encode() for i in range(10)]})
    if train is not None:
        _dump(folder / "data_batch_1", train)
    if meta is not None:
        _dump(folder / "batches.meta", meta)
    return folder


@pytest.mark.parametrize("target", ["data_batch_1", "batches.meta"])
def test_a_crafted_cifar_file_is_refused_and_runs_nothing(tmp_path, target):
    marker = tmp_path / "MARKER"
    crafted = {b"data": Marker(marker), b"labels": [0]}
    folder = _cifar10(
        tmp_path,
        train=crafted if target == "data_batch_1" else None,
        meta={b"label_names": Marker(marker)} if target == "batches.meta" else None,
    )
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert (
        str(folder / target) in message
        and "refused to load io.open" in message
        and "\n" not in message
    )
    assert not marker.exists()


def test_the_cli_refuses_a_crafted_cifar_file_in_one_line(tmp_path, capsys):
    marker = tmp_path / "MARKER"
    _cifar10(tmp_path, train={b"data": Marker(marker), b"labels": [0]})
    code = main(["train", "--model", "resnet8", "--dataset", "cifar10", "--data-dir",
                 str(tmp_path), "--out", str(tmp_path / "run")])  # fmt: skip
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "data_batch_1" in err
    assert not marker.exists()


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_genuine_numpy_batches_load_with_every_pickle_protocol(tmp_path, protocol):
    folder = _cifar10(tmp_path)
    pixels = np.arange(4 * 3072, dtype=np.int64).reshape(4, 3072) % 256
    batch = {b"data": pixels.astype(np.uint8), b"labels": [9, 8, 7, 6], b"batch_label": b"x"}
    _dump(folder / "data_batch_1", batch, protocol=protocol)
    data = load_dataset("cifar10", data_dir=tmp_path, val_fraction=0.0)
    assert len(data.train) == 20
    assert np.array_equal(data.train.images[:4].numpy().reshape(4, -1), pixels)
    assert data.train.labels[:4].tolist() == [9, 8, 7, 6]


@pytest.mark.parametrize(
    ("pixels", "needle"),
    [
        (np.full((4, 3072), 300, dtype=np.int64), "0..300"),  # would wrap into uint8 silently
        ([[300] * 3072] * 4, "0..300"),  # OverflowError before
        (np.full((4, 3072), -1, dtype=np.int16), "-1..-1"),
        (np.full((4, 3072), 0.5), "non-integer"),
        ([["a"] * 3072] * 4, "must hold integers"),
        (np.zeros((0, 3072), dtype=np.uint8), "no images"),
    ],
    ids=["int64-above-255", "list-above-255", "negative", "fractions", "strings", "empty"],
)
def test_bad_pixel_values_are_one_data_error_naming_the_file(tmp_path, pixels, needle):
    labels = [0] * len(pixels)
    folder = _cifar10(tmp_path, train={b"data": pixels, b"labels": labels})
    with pytest.raises(DataError) as info:
        load_dataset("cifar10", data_dir=tmp_path)
    message = str(info.value)
    assert str(folder / "data_batch_1") in message and needle in message and "\n" not in message


@pytest.mark.parametrize("form", ["torch.save", "plain pickle"])
def test_a_crafted_checkpoint_is_refused_and_runs_nothing(tmp_path, capsys, form):
    marker = tmp_path / "MARKER"
    path = tmp_path / "crafted.pt"
    payload = {"format": "dihkit-checkpoint", "version": 1, "model": Marker(marker)}
    if form == "torch.save":
        torch.save(payload, path)
    else:
        _dump(path, payload)
    with pytest.raises(CheckpointError, match="crafted or foreign"):
        load_checkpoint(path)
    assert main(["eval", str(path)]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and str(path) in err
    assert not marker.exists()
