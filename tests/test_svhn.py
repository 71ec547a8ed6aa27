"""SVHN from its .mat files (MHKD Table 3): layout, the 10 -> 0 label, and clear errors."""

from __future__ import annotations

import numpy as np
import pytest

from dihkit.data.datasets import dataset_spec, load_dataset
from dihkit.errors import DataError, DataNotFoundError

scipy_io = pytest.importorskip("scipy.io")


def _write(directory, name, images, labels):
    """A file in SVHN's format: X (32, 32, 3, N) uint8, y (N, 1) with 10 for the digit 0."""
    directory.mkdir(parents=True, exist_ok=True)
    scipy_io.savemat(
        str(directory / name),
        {"X": np.ascontiguousarray(images.transpose(2, 3, 1, 0)), "y": labels.reshape(-1, 1)},
    )


def _fixture(root, per_class=6, seed=0):
    rng = np.random.default_rng(seed)
    out = {}
    for name, n in (("train_32x32.mat", per_class), ("test_32x32.mat", 2)):
        digits = np.repeat(np.arange(10), n)
        images = rng.integers(0, 256, (len(digits), 3, 32, 32), dtype=np.uint8)
        _write(root, name, images, np.where(digits == 0, 10, digits))
        out[name] = (images, digits)
    return out


def test_svhn_loads_images_and_maps_label_10_to_digit_0(tmp_path):
    written = _fixture(tmp_path / "svhn")
    data = load_dataset("svhn", data_dir=tmp_path, val_fraction=0.2)
    assert data.spec == dataset_spec("svhn") and data.spec.class_names[0] == "0"
    images, digits = written["test_32x32.mat"]
    assert str(data.test.images.dtype) == "torch.uint8"
    np.testing.assert_array_equal(data.test.images.numpy(), images)
    np.testing.assert_array_equal(data.test.labels.numpy(), digits)
    assert len(data.train) + len(data.val) == 60 and len(data.val) == 10  # 1 per class
    assert sorted(set(data.train.labels.tolist())) == list(range(10))
    small = load_dataset("svhn", data_dir=tmp_path, val_fraction=0.2, train_per_class=2)
    assert np.bincount(small.train.labels.numpy()).tolist() == [2] * 10


def test_svhn_files_directly_in_data_dir_work_too(tmp_path):
    _fixture(tmp_path)
    assert len(load_dataset("svhn", data_dir=tmp_path).test) == 20


def test_missing_svhn_names_the_folder_and_files(tmp_path):
    with pytest.raises(DataNotFoundError, match=r"train_32x32\.mat, test_32x32\.mat.*--data-dir"):
        load_dataset("svhn", data_dir=tmp_path)


def test_a_malformed_svhn_file_is_one_clear_error(tmp_path):
    _fixture(tmp_path)
    scipy_io.savemat(
        str(tmp_path / "test_32x32.mat"), {"X": np.zeros((28, 28, 3, 2)), "y": [[1], [2]]}
    )
    with pytest.raises(DataError, match=r"test_32x32\.mat: X must be \(32, 32, 3, N\)"):
        load_dataset("svhn", data_dir=tmp_path)
    (tmp_path / "test_32x32.mat").write_bytes(b"not a mat file")
    with pytest.raises(DataError, match=r"test_32x32\.mat: not a readable MATLAB file"):
        load_dataset("svhn", data_dir=tmp_path)
