"""Tests for dihkit.data.datasets: the embedded subset, splits, and the file readers."""

from __future__ import annotations

import gzip
import hashlib
import pickle
import subprocess
import sys
from collections import Counter
from pathlib import Path

import numpy as np
import pytest
import torch

from dihkit.data.datasets import (
    DATASET_NAMES,
    FMNIST_MINI_PATH,
    FMNIST_MINI_SHA256,
    DataError,
    Split,
    dataset_spec,
    load_dataset,
    stratified_indices,
    stratified_split,
)

REPO = Path(__file__).resolve().parent.parent
DEBIAN_DIR = Path("/usr/share/datasets/fashion-mnist")
needs_debian = pytest.mark.skipif(
    not (DEBIAN_DIR / "train-images-idx3-ubyte.gz").is_file(),
    reason="official Fashion-MNIST IDX files not installed",
)


@pytest.fixture(scope="module")
def mini_full():
    """fmnist-mini without a validation split."""
    return load_dataset("fmnist-mini", val_fraction=0.0)


@pytest.fixture(scope="module")
def mini():
    return load_dataset("fmnist-mini", val_fraction=0.1, split_seed=0)


def _image_keys(split: Split) -> Counter:
    flat = split.images.reshape(len(split), -1).numpy()
    return Counter(row.tobytes() for row in flat)


# ------------------------------------------------------------------------------ embedded file


def test_embedded_file_sha256():
    digest = hashlib.sha256(FMNIST_MINI_PATH.read_bytes()).hexdigest()
    assert digest == FMNIST_MINI_SHA256


def test_fmnist_mini_class_balance_and_shapes(mini_full):
    ds = mini_full
    assert ds.spec.name == "fmnist-mini"
    assert ds.spec.class_names[0] == "T-shirt/top" and ds.spec.class_names[9] == "Ankle boot"
    assert (ds.spec.mean, ds.spec.std) == ((0.2860,), (0.3530,))
    assert len(ds.val) == 0
    for split, n, per_class in ((ds.train, 10000, 1000), (ds.test, 2000, 200)):
        assert split.images.shape == (n, 1, 28, 28)
        assert split.images.dtype == torch.uint8
        assert split.labels.shape == (n,) and split.labels.dtype == torch.int64
        assert split.images.device.type == "cpu"
        assert torch.bincount(split.labels, minlength=10).tolist() == [per_class] * 10


def test_fmnist_mini_provenance_indices():
    with np.load(FMNIST_MINI_PATH) as npz:
        for part, n in (("train", 60000), ("test", 10000)):
            idx = npz[f"{part}_source_index"]
            assert idx.dtype == np.int32
            assert np.all(np.diff(idx) > 0) and idx[0] >= 0 and idx[-1] < n


# ------------------------------------------------------------------------------ validation split


def test_val_split_is_stratified(mini):
    assert (len(mini.train), len(mini.val), len(mini.test)) == (9000, 1000, 2000)
    assert torch.bincount(mini.train.labels, minlength=10).tolist() == [900] * 10
    assert torch.bincount(mini.val.labels, minlength=10).tolist() == [100] * 10


def test_val_split_partitions_training_data(mini, mini_full):
    assert _image_keys(mini.train) + _image_keys(mini.val) == _image_keys(mini_full.train)


def test_val_split_is_seeded(mini):
    again = load_dataset("fmnist-mini", split_seed=0)
    other = load_dataset("fmnist-mini", split_seed=1)
    assert torch.equal(again.val.images, mini.val.images)
    assert torch.equal(again.train.labels, mini.train.labels)
    assert not torch.equal(other.val.images, mini.val.images)


def test_stratified_indices_disjoint_and_sorted():
    labels = torch.arange(103) % 7
    rest, held = stratified_indices(labels, 0.25, seed=3)
    assert len(set(rest.tolist()) & set(held.tolist())) == 0
    assert sorted(rest.tolist() + held.tolist()) == list(range(103))
    assert torch.all(rest[1:] > rest[:-1]) and torch.all(held[1:] > held[:-1])
    counts = torch.bincount(labels, minlength=7)
    expected = [int(np.floor(0.25 * int(c) + 0.5)) for c in counts]
    assert torch.bincount(labels[held], minlength=7).tolist() == expected


def test_stratified_split_fraction_zero_and_subset():
    images = torch.arange(12, dtype=torch.uint8).view(12, 1, 1, 1).expand(12, 1, 2, 2).clone()
    split = Split(images, torch.arange(12) % 3)
    rest, held = stratified_split(split, 0.0, seed=0)
    assert len(held) == 0 and held.images.shape == (0, 1, 2, 2)
    assert torch.equal(rest.images, images)
    rest, held = stratified_split(split, 0.5, seed=0)
    assert len(rest) == len(held) == 6
    # Each image encodes its position, so the parts can be checked against each other.
    ids_rest, ids_held = rest.images[:, 0, 0, 0].long(), held.images[:, 0, 0, 0].long()
    assert torch.equal(rest.labels, ids_rest % 3) and torch.equal(held.labels, ids_held % 3)
    assert not set(ids_rest.tolist()) & set(ids_held.tolist())


@pytest.mark.parametrize("fraction", [-0.1, 1.0, 1.5])
def test_bad_val_fraction(fraction):
    with pytest.raises(DataError, match=str(fraction)):
        load_dataset("fmnist-mini", val_fraction=fraction)


# ------------------------------------------------------------------------------ names, errors


def test_unknown_name_lists_valid_names():
    with pytest.raises(ValueError) as info:
        load_dataset("imagenet")
    message = str(info.value)
    assert "imagenet" in message
    assert all(name in message for name in DATASET_NAMES)
    with pytest.raises(DataError):
        dataset_spec("mnist")


def test_specs():
    assert dataset_spec("cifar10").mean == (0.4914, 0.4822, 0.4465)
    assert dataset_spec("cifar100").std == (0.2673, 0.2564, 0.2762)
    assert len(dataset_spec("cifar100").class_names) == 100
    for name in DATASET_NAMES:
        spec = dataset_spec(name)
        assert len(spec.class_names) == spec.num_classes
        assert len(spec.mean) == len(spec.std) == spec.in_channels


def test_missing_cifar_dir_error(tmp_path):
    missing = tmp_path / "nowhere"
    for name in ("cifar10", "cifar100"):
        with pytest.raises(DataError) as info:
            load_dataset(name, data_dir=missing)
        assert isinstance(info.value, FileNotFoundError)
        assert str(missing) in str(info.value) and "--download" in str(info.value)


def test_missing_fashion_mnist_error(tmp_path):
    with pytest.raises(FileNotFoundError) as info:
        load_dataset("fashion-mnist", data_dir=tmp_path)
    assert str(tmp_path) in str(info.value) and "--download" in str(info.value)


# ------------------------------------------------------------------------------ CIFAR reader


def _dump(path: Path, obj: dict) -> None:
    with open(path, "wb") as f:
        pickle.dump(obj, f)


@pytest.fixture
def cifar_root(tmp_path):
    """Tiny CIFAR-10/100 trees in torchvision's python layout: 20 train, 10 test images."""
    rng = np.random.default_rng(0)
    data = {
        "train": rng.integers(0, 256, (20, 3072), dtype=np.uint8),
        "test": rng.integers(0, 256, (10, 3072), dtype=np.uint8),
    }
    c10 = tmp_path / "cifar-10-batches-py"
    c10.mkdir()
    for i in range(5):
        rows = slice(4 * i, 4 * i + 4)
        batch = {b"data": data["train"][rows], b"labels": [(4 * i + j) % 10 for j in range(4)]}
        _dump(c10 / f"data_batch_{i + 1}", batch)
    _dump(c10 / "test_batch", {b"data": data["test"], b"labels": list(range(10))})
    names10 = [f"c{i}".encode() for i in range(10)]
    _dump(c10 / "batches.meta", {b"label_names": names10, b"num_cases_per_batch": 4})

    c100 = tmp_path / "cifar-100-python"
    c100.mkdir()
    for part, n in (("train", 20), ("test", 10)):
        fine = [(7 * j) % 100 for j in range(n)]
        _dump(c100 / part, {b"data": data[part], b"fine_labels": fine, b"coarse_labels": [0] * n})
    names100 = [f"fine{i}".encode() for i in range(100)]
    _dump(c100 / "meta", {b"fine_label_names": names100, b"coarse_label_names": [b"x"] * 20})
    return tmp_path, data


def _check_layout(images: torch.Tensor, rows: np.ndarray) -> None:
    # A row holds 1024 red, then 1024 green, then 1024 blue values, each 32x32 row-major.
    n, c, y, x = 3, 1, 5, 7
    assert int(images[n, c, y, x]) == int(rows[n, c * 1024 + y * 32 + x])
    assert np.array_equal(images.numpy().reshape(len(rows), -1), rows)


def test_cifar10_fixture(cifar_root):
    root, data = cifar_root
    ds = load_dataset("cifar10", data_dir=root, val_fraction=0.0)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (10, 3, 32, 32)
    assert ds.train.images.dtype == torch.uint8 and ds.train.labels.dtype == torch.int64
    assert ds.train.labels.tolist() == [i % 10 for i in range(20)]
    assert ds.test.labels.tolist() == list(range(10))
    assert ds.spec.class_names == tuple(f"c{i}" for i in range(10))
    assert ds.spec.num_classes == 10 and ds.spec.in_channels == 3 and ds.spec.image_size == 32
    _check_layout(ds.train.images, data["train"])
    _check_layout(ds.test.images, data["test"])
    split = load_dataset("cifar10", data_dir=str(root), val_fraction=0.5)
    assert (len(split.train), len(split.val)) == (10, 10)


def test_cifar100_fixture(cifar_root):
    root, data = cifar_root
    ds = load_dataset("cifar100", data_dir=root, val_fraction=0.0)
    assert ds.train.images.shape == (20, 3, 32, 32) and ds.test.images.shape == (10, 3, 32, 32)
    assert ds.train.labels.tolist() == [(7 * j) % 100 for j in range(20)]
    assert ds.spec.class_names[3] == "fine3" and len(ds.spec.class_names) == 100
    _check_layout(ds.test.images, data["test"])


def test_cifar_without_meta_uses_builtin_names(cifar_root):
    root, _ = cifar_root
    (root / "cifar-10-batches-py" / "batches.meta").unlink()
    ds = load_dataset("cifar10", data_dir=root, val_fraction=0.0)
    assert ds.spec.class_names == dataset_spec("cifar10").class_names


# ------------------------------------------------------------------------------ IDX reader


def _write_idx(path: Path, array: np.ndarray, compress: bool) -> None:
    header = bytes([0, 0, 8, array.ndim]) + b"".join(n.to_bytes(4, "big") for n in array.shape)
    payload = header + array.astype(np.uint8).tobytes()
    if compress:
        path = path.with_name(path.name + ".gz")
        payload = gzip.compress(payload, mtime=0)
    path.write_bytes(payload)


def _write_fake_fashion_mnist(directory: Path, compress: bool) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(1)
    arrays = {
        "train-images-idx3-ubyte": rng.integers(0, 256, (20, 28, 28), dtype=np.uint8),
        "train-labels-idx1-ubyte": np.arange(20, dtype=np.uint8) % 10,
        "t10k-images-idx3-ubyte": rng.integers(0, 256, (10, 28, 28), dtype=np.uint8),
        "t10k-labels-idx1-ubyte": np.arange(10, dtype=np.uint8),
    }
    directory.mkdir(parents=True, exist_ok=True)
    for stem, array in arrays.items():
        _write_idx(directory / stem, array, compress)
    return arrays


@pytest.mark.parametrize("compress", [True, False])
@pytest.mark.parametrize("torchvision_layout", [True, False])
def test_fashion_mnist_reader(tmp_path, compress, torchvision_layout):
    folder = tmp_path / "FashionMNIST" / "raw" if torchvision_layout else tmp_path
    arrays = _write_fake_fashion_mnist(folder, compress)
    ds = load_dataset("fashion-mnist", data_dir=tmp_path, val_fraction=0.0)
    assert ds.train.images.shape == (20, 1, 28, 28) and ds.test.images.shape == (10, 1, 28, 28)
    assert np.array_equal(ds.train.images[:, 0].numpy(), arrays["train-images-idx3-ubyte"])
    assert ds.test.labels.tolist() == list(range(10))


def test_idx_bad_magic(tmp_path):
    _write_fake_fashion_mnist(tmp_path, compress=False)
    (tmp_path / "t10k-labels-idx1-ubyte").write_bytes(b"\x08\x03\x00\x01" + bytes(10))
    with pytest.raises(DataError, match="magic"):
        load_dataset("fashion-mnist", data_dir=tmp_path)


@needs_debian
def test_full_fashion_mnist_from_debian_path():
    ds = load_dataset("fashion-mnist")
    assert (len(ds.train), len(ds.val), len(ds.test)) == (54000, 6000, 10000)
    assert ds.train.images.shape[1:] == (1, 28, 28)
    assert torch.bincount(ds.val.labels, minlength=10).tolist() == [600] * 10


# ------------------------------------------------------------------------------ build script


@needs_debian
def test_build_script_reproduces_committed_file(tmp_path):
    out = tmp_path / "rebuilt.npz"
    script = REPO / "data" / "build_fmnist_mini.py"
    result = subprocess.run(
        [sys.executable, str(script), "--source", str(DEBIAN_DIR), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert FMNIST_MINI_SHA256 in result.stdout
    with np.load(out) as new, np.load(FMNIST_MINI_PATH) as old:
        assert sorted(new.files) == sorted(old.files)
        for key in old.files:
            assert np.array_equal(new[key], old[key]), key
    assert out.read_bytes() == FMNIST_MINI_PATH.read_bytes()


def test_train_per_class_keeps_a_balanced_subset_and_the_full_validation_split():
    from dihkit.data.datasets import load_dataset

    full = load_dataset("fmnist-mini")
    small = load_dataset("fmnist-mini", train_per_class=25)
    assert torch.bincount(small.train.labels, minlength=10).tolist() == [25] * 10
    assert torch.equal(small.val.labels, full.val.labels)
    assert torch.equal(small.test.images, full.test.images)


@pytest.mark.parametrize("bad", [0, -1, 2.5])
def test_train_per_class_must_be_a_positive_integer(bad):
    from dihkit.data.datasets import DataError, per_class_subset

    split = load_dataset("fmnist-mini").test
    with pytest.raises(DataError, match=str(bad)):
        per_class_subset(split, bad)
