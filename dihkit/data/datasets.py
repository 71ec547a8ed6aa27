"""Datasets by name, with a seeded stratified validation split.

Every dataset is held entirely in memory as uint8 tensors of shape ``(N, C, H, W)`` on the CPU
(labels int64). ``load_dataset`` returns the official training data split into ``train`` and a
seeded, per-class proportional ``val`` part, plus the official ``test`` split, which is meant
only for final reports.

Names: ``fmnist-mini`` (a 12,000-image Fashion-MNIST subset shipped in ``data/``),
``cifar10-mini`` (a 7,000-image CIFAR-10 subset shipped in ``data/``), ``fashion-mnist`` (the
full 60k/10k set), ``cifar10``, ``cifar100`` and ``svhn``.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch

from dihkit.data import readers
from dihkit.errors import DataError, DataNotFoundError
from dihkit.resources import bundled

__all__ = [
    "DATASET_NAMES",
    "CIFAR10_MINI_PATH",
    "CIFAR10_MINI_SHA256",
    "EMBEDDED",
    "FMNIST_MINI_PATH",
    "FMNIST_MINI_SHA256",
    "DataError",
    "DataNotFoundError",
    "Dataset",
    "DatasetSpec",
    "Split",
    "dataset_spec",
    "load_dataset",
    "per_class_subset",
    "stratified_indices",
    "stratified_split",
]

DATASET_NAMES = ("fmnist-mini", "cifar10-mini", "fashion-mnist", "cifar10", "cifar100", "svhn")

FMNIST_MINI_PATH = bundled("data") / "fmnist_mini.npz"
FMNIST_MINI_SHA256 = "55726e1bd45f663f87e12eec39511cac5d902c3d5a8debba7720e13a881d8c51"
CIFAR10_MINI_PATH = bundled("data") / "cifar10_mini.npz"
CIFAR10_MINI_SHA256 = "c6024afc7dd2b4c12828fe488200cf30e34456a3372d82f627a44ab876d8ed70"
# name -> (file, builder script, its source, train and test image array shapes)
EMBEDDED = {
    "fmnist-mini": (
        FMNIST_MINI_PATH,
        "build_fmnist_mini.py",
        "the official Fashion-MNIST IDX files",
        (10000, 28, 28),
        (2000, 28, 28),
    ),
    "cifar10-mini": (
        CIFAR10_MINI_PATH,
        "build_cifar10_mini.py",
        "a public per-image copy of CIFAR-10",
        (5000, 32, 32, 3),
        (2000, 32, 32, 3),
    ),
}


# --------------------------------------------------------------------------------------------
# Containers


@dataclass(frozen=True)
class Split:
    """Images (uint8, ``(N, C, H, W)``, CPU) and their int64 labels ``(N,)``."""

    images: torch.Tensor
    labels: torch.Tensor

    def __post_init__(self) -> None:
        if self.images.dim() != 4:
            raise DataError(f"Split images must be (N, C, H, W), got {tuple(self.images.shape)}")
        if self.images.dtype != torch.uint8:
            raise DataError(f"Split images must be uint8, got {self.images.dtype}")
        if self.labels.dim() != 1 or self.labels.shape[0] != self.images.shape[0]:
            raise DataError(
                f"Split labels must be ({self.images.shape[0]},), got {tuple(self.labels.shape)}"
            )
        if self.labels.dtype != torch.int64:
            if self.labels.dtype.is_floating_point or self.labels.dtype == torch.bool:
                raise DataError(f"Split labels must be integers, got {self.labels.dtype}")
            object.__setattr__(self, "labels", self.labels.long())

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def subset(self, indices: torch.Tensor) -> Split:
        """Return the examples at ``indices`` (integer positions or a boolean mask)."""
        if not isinstance(indices, torch.Tensor):
            indices = torch.as_tensor(indices, dtype=torch.long)
        indices = indices.to(self.labels.device)
        return Split(self.images[indices], self.labels[indices])


@dataclass(frozen=True)
class DatasetSpec:
    """Static facts about a dataset, available without loading it."""

    name: str
    num_classes: int
    in_channels: int
    image_size: int
    mean: tuple[float, ...]
    std: tuple[float, ...]
    class_names: tuple[str, ...]

    @property
    def input_shape(self) -> tuple[int, int, int]:
        """One image's ``(C, H, W)``, as models, heads and exits are built for."""
        return (self.in_channels, self.image_size, self.image_size)


@dataclass(frozen=True)
class Dataset:
    """``train`` (without the validation part), ``val`` and the official ``test`` split."""

    spec: DatasetSpec
    train: Split
    val: Split
    test: Split
    options: dict[str, Any] = field(default_factory=dict, compare=False)  # how it was loaded


FASHION_MNIST_CLASSES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
CIFAR10_CLASSES = (
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
SVHN_CLASSES = tuple(str(digit) for digit in range(10))
CIFAR100_CLASSES = tuple(
    """
    apple aquarium_fish baby bear beaver bed bee beetle bicycle bottle bowl boy bridge bus
    butterfly camel can castle caterpillar cattle chair chimpanzee clock cloud cockroach couch
    crab crocodile cup dinosaur dolphin elephant flatfish forest fox girl hamster house kangaroo
    keyboard lamp lawn_mower leopard lion lizard lobster man maple_tree motorcycle mountain mouse
    mushroom oak_tree orange orchid otter palm_tree pear pickup_truck pine_tree plain plate poppy
    porcupine possum rabbit raccoon ray road rocket rose sea seal shark shrew skunk skyscraper
    snail snake spider squirrel streetcar sunflower sweet_pepper table tank telephone television
    tiger tractor train trout tulip turtle wardrobe whale willow_tree wolf woman worm
    """.split()
)

_FMNIST_STATS = dict(mean=(0.2860,), std=(0.3530,), class_names=FASHION_MNIST_CLASSES)
_SPECS = {
    "fmnist-mini": DatasetSpec("fmnist-mini", 10, 1, 28, **_FMNIST_STATS),
    "fashion-mnist": DatasetSpec("fashion-mnist", 10, 1, 28, **_FMNIST_STATS),
    "cifar10": DatasetSpec(
        "cifar10", 10, 3, 32, (0.4914, 0.4822, 0.4465), (0.2470, 0.2435, 0.2616), CIFAR10_CLASSES
    ),
    # The full CIFAR-10 statistics: the subset is drawn uniformly from it (its own training
    # part's means differ by under 0.01), so models move between the two unchanged.
    "cifar10-mini": DatasetSpec(
        "cifar10-mini",
        10,
        3,
        32,
        (0.4914, 0.4822, 0.4465),
        (0.2470, 0.2435, 0.2616),
        CIFAR10_CLASSES,
    ),
    "cifar100": DatasetSpec(
        "cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), CIFAR100_CLASSES
    ),
    # The per-channel statistics commonly quoted for SVHN's train split (not recomputed here:
    # the kit ships no SVHN data); they only centre the inputs, any close values would do.
    "svhn": DatasetSpec(
        "svhn", 10, 3, 32, (0.4377, 0.4438, 0.4728), (0.1980, 0.2010, 0.1970), SVHN_CLASSES
    ),
}


def _canonical_name(name: str) -> str:
    key = str(name).strip().lower().replace("_", "-")
    if key not in _SPECS:
        raise DataError(f"unknown dataset {name!r}; valid names: {', '.join(DATASET_NAMES)}")
    return key


def dataset_spec(name: str) -> DatasetSpec:
    """Return the static description of dataset ``name`` (see ``DATASET_NAMES``)."""
    return _SPECS[_canonical_name(name)]


# --------------------------------------------------------------------------------------------
# Splitting


def stratified_indices(
    labels: torch.Tensor, fraction: float, seed: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Seeded per-class split of positions ``0..N-1`` into ``(rest, held_out)``.

    Each class contributes ``round(fraction * count)`` examples to the held-out part (at most
    ``count - 1``, so every class keeps at least one example when it has two or more). Both
    index tensors are sorted ascending, so each part keeps the original order.
    """
    fraction = float(fraction)
    if not 0.0 <= fraction < 1.0:
        raise DataError(f"split fraction must be in [0, 1), got {fraction}")
    y = labels.detach().cpu().numpy().astype(np.int64, copy=False)
    rng = np.random.default_rng(seed)
    held = []
    for c in np.unique(y):
        members = np.flatnonzero(y == c)
        k = min(int(np.floor(fraction * len(members) + 0.5)), max(len(members) - 1, 0))
        held.append(members[rng.permutation(len(members))[:k]])
    held_idx = np.sort(np.concatenate(held)) if held else np.empty(0, dtype=np.int64)
    mask = np.ones(len(y), dtype=bool)
    mask[held_idx] = False
    rest_idx = np.flatnonzero(mask)
    return torch.from_numpy(rest_idx.astype(np.int64)), torch.from_numpy(held_idx.astype(np.int64))


def stratified_split(split: Split, fraction: float, seed: int) -> tuple[Split, Split]:
    """Split into ``(rest, held_out)`` with per-class proportional, seeded selection.

    ``fraction=0`` gives an empty held-out split. See ``stratified_indices`` for the rule.
    """
    rest_idx, held_idx = stratified_indices(split.labels, fraction, seed)
    return split.subset(rest_idx), split.subset(held_idx)


def per_class_subset(split: Split, per_class: int) -> Split:
    """The first ``per_class`` examples of every class, in split order (a smaller, still balanced
    training set: the low-data regime where distillation matters most)."""
    if isinstance(per_class, bool) or not isinstance(per_class, int) or per_class < 1:
        raise DataError(f"per_class must be a positive integer, got {per_class!r}")
    classes, counts = split.labels.unique(return_counts=True)
    if len(counts) and per_class > int(counts.min()):
        smallest = int(counts.min())
        raise DataError(
            f"{per_class} images per class (--train-per-class) is more than the {smallest} that "
            f"class {int(classes[counts.argmin()])} has in this split; use at most {smallest}"
        )
    keep = [torch.nonzero(split.labels == c).flatten()[:per_class] for c in classes]
    return split.subset(torch.cat(keep).sort().values)


# --------------------------------------------------------------------------------------------
# Entry point


def _split(arrays: tuple[np.ndarray, np.ndarray]) -> Split:
    images, labels = arrays
    return Split(torch.from_numpy(images), torch.from_numpy(labels))


def load_dataset(
    name: str = "fmnist-mini",
    *,
    data_dir: str | Path | None = None,
    download: bool = False,
    val_fraction: float = 0.1,
    split_seed: int = 0,
    train_per_class: int | None = None,
) -> Dataset:
    """Load dataset ``name`` and carve a seeded stratified validation split from its train data.

    ``fmnist-mini`` and ``cifar10-mini`` need no files beyond the shipped ``data/*.npz``. The
    others are read from ``data_dir`` (``fashion-mnist`` also falls back to the Debian package
    path and ``~/.cache/dihkit``); with ``download=True`` missing files are fetched through
    torchvision into ``data_dir`` (default ``~/.cache/dihkit``). ``val_fraction`` must lie in
    [0, 1). ``train_per_class`` keeps only that many training images per class (after the
    validation split, which stays as it is).
    """
    key = _canonical_name(name)
    if isinstance(val_fraction, bool) or not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    spec = _SPECS[key]
    root = Path(data_dir).expanduser() if data_dir is not None else None
    if root is not None and root.exists() and not root.is_dir():
        raise DataError(
            f"--data-dir {str(root)!r} is a file, not a folder; pass the folder that holds the "
            f"{spec.name} files"
        )
    if key in EMBEDDED:
        train_arrays, test_arrays = readers.load_embedded(*EMBEDDED[key])
    elif key == "fashion-mnist":
        train_arrays, test_arrays = readers.load_fashion_mnist(root, download)
    elif key == "svhn":
        train_arrays, test_arrays = readers.load_svhn(root, download)
    else:
        train_arrays, test_arrays, class_names = readers.load_cifar(
            key, spec.num_classes, root, download
        )
        if class_names is not None and class_names != spec.class_names:
            spec = dataclasses.replace(spec, class_names=class_names)
    train_full, test = _split(train_arrays), _split(test_arrays)
    train, val = stratified_split(train_full, val_fraction, split_seed)
    if train_per_class is not None:
        train = per_class_subset(train, train_per_class)
    options = {"val_fraction": float(val_fraction), "split_seed": split_seed}
    options["train_per_class"] = train_per_class
    return Dataset(spec=spec, train=train, val=val, test=test, options=options)
