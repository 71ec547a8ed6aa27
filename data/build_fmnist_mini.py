#!/usr/bin/env python3
"""Rebuild ``data/fmnist_mini.npz`` byte-for-byte from the official Fashion-MNIST IDX files.

The subset ("fmnist-mini") holds, per class, 1,000 images drawn from the official training
split and 200 drawn from the official test split, chosen without replacement with
``numpy.random.default_rng(20240601)`` and then stored in ascending official order.
See ``data/README.md`` for the full description.

Usage::

    python data/build_fmnist_mini.py [--source DIR] [--out PATH]

The output is deterministic (``data/npz_writer.py``): two runs give identical bytes.
Only numpy and the standard library are needed.
"""

from __future__ import annotations

import argparse
import gzip
import sys
from pathlib import Path

import numpy as np
from npz_writer import write_npz

SEED = 20240601
NUM_CLASSES = 10
TRAIN_PER_CLASS = 1000
TEST_PER_CLASS = 200
DEFAULT_SOURCE = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_OUT = Path(__file__).resolve().parent / "fmnist_mini.npz"

FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


def read_idx(path: Path) -> np.ndarray:
    """Parse an unsigned-byte IDX file (gzip-compressed when the name ends in ``.gz``)."""
    opener = gzip.open if path.suffix == ".gz" else open
    with opener(path, "rb") as f:
        raw = f.read()
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0:
        raise ValueError(f"{path}: not an IDX file (bad magic number)")
    if raw[2] != 0x08:
        raise ValueError(f"{path}: IDX data type 0x{raw[2]:02x} is not unsigned byte (0x08)")
    ndim = raw[3]
    header_end = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    count = int(np.prod(shape, dtype=np.int64))
    if len(raw) != header_end + count:
        raise ValueError(f"{path}: expected {count} data bytes for shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=header_end).reshape(shape)


def find_idx(source: Path, stem: str) -> Path:
    """Return ``source/stem.gz`` or ``source/stem``, whichever exists."""
    for candidate in (source / f"{stem}.gz", source / stem):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"{source}: neither {stem}.gz nor {stem} found")


def select(labels: np.ndarray, per_class: int, rng: np.random.Generator) -> np.ndarray:
    """Pick ``per_class`` indices of every class without replacement; return them sorted."""
    chosen = []
    for c in range(NUM_CLASSES):
        pool = np.flatnonzero(labels == c)
        chosen.append(rng.choice(pool, size=per_class, replace=False))
    return np.sort(np.concatenate(chosen)).astype(np.int32)


def build(source: Path, out: Path) -> str:
    """Build the subset from ``source`` into ``out``; return the sha256 hex digest."""
    official = {key: read_idx(find_idx(source, stem)) for key, stem in FILES.items()}
    for split in ("train", "test"):
        images, labels = official[f"{split}_images"], official[f"{split}_labels"]
        if images.shape[1:] != (28, 28) or labels.shape != images.shape[:1]:
            raise ValueError(f"{source}: unexpected {split} shapes {images.shape}, {labels.shape}")
    rng = np.random.default_rng(SEED)
    train_idx = select(official["train_labels"], TRAIN_PER_CLASS, rng)
    test_idx = select(official["test_labels"], TEST_PER_CLASS, rng)
    arrays = {
        "train_images": official["train_images"][train_idx],
        "train_labels": official["train_labels"][train_idx],
        "test_images": official["test_images"][test_idx],
        "test_labels": official["test_labels"][test_idx],
        "train_source_index": train_idx,
        "test_source_index": test_idx,
    }
    return write_npz(out, arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        default=DEFAULT_SOURCE,
        help=f"directory with the official IDX files, .gz or not (default: {DEFAULT_SOURCE})",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: data/fmnist_mini.npz)"
    )
    args = parser.parse_args(argv)
    try:
        digest = build(args.source, args.out)
    except (OSError, ValueError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{digest}  {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
