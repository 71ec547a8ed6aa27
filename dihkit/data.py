"""Datasets by name, with a seeded stratified validation split.

Every dataset is held entirely in memory as uint8 tensors of shape ``(N, C, H, W)`` on the CPU
(labels int64). ``load_dataset`` returns the official training data split into ``train`` and a
seeded, per-class proportional ``val`` part, plus the official ``test`` split, which is meant
only for final reports.

Names: ``fmnist-mini`` (a 12,000-image Fashion-MNIST subset shipped in ``data/``),
``fashion-mnist`` (the full 60k/10k set), ``cifar10`` and ``cifar100``.
"""

from __future__ import annotations

import dataclasses
import gzip
import pickle
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

__all__ = [
    "DATASET_NAMES",
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

DATASET_NAMES = ("fmnist-mini", "fashion-mnist", "cifar10", "cifar100")

FMNIST_MINI_PATH = Path(__file__).resolve().parent.parent / "data" / "fmnist_mini.npz"
FMNIST_MINI_SHA256 = "55726e1bd45f663f87e12eec39511cac5d902c3d5a8debba7720e13a881d8c51"

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_CACHE_DIR = Path("~/.cache/dihkit")


class DataError(ValueError):
    """A user-facing problem with a dataset: unknown name, bad argument, missing or bad files."""


class DataNotFoundError(DataError, FileNotFoundError):
    """Dataset files are missing; the message names the paths tried and how to get the data."""


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


@dataclass(frozen=True)
class Dataset:
    """``train`` (without the validation part), ``val`` and the official ``test`` split."""

    spec: DatasetSpec
    train: Split
    val: Split
    test: Split


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
    "cifar100": DatasetSpec(
        "cifar100", 100, 3, 32, (0.5071, 0.4865, 0.4409), (0.2673, 0.2564, 0.2762), CIFAR100_CLASSES
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
    keep = [torch.nonzero(split.labels == c).flatten()[:per_class] for c in split.labels.unique()]
    return split.subset(torch.cat(keep).sort().values)


# --------------------------------------------------------------------------------------------
# Readers


def _split_from_numpy(images: np.ndarray, labels: np.ndarray) -> Split:
    if images.ndim == 3:
        images = images[:, None]
    if not images.flags.writeable:  # e.g. np.frombuffer over bytes; torch wants writable memory
        images = images.copy()
    return Split(
        torch.from_numpy(np.ascontiguousarray(images, dtype=np.uint8)),
        torch.from_numpy(np.asarray(labels, dtype=np.int64)),
    )


def _load_fmnist_mini() -> tuple[Split, Split]:
    path = FMNIST_MINI_PATH
    if not path.is_file():
        raise DataNotFoundError(
            f"embedded dataset file {path} is missing; rebuild it from the official Fashion-MNIST "
            "IDX files with `python data/build_fmnist_mini.py --source DIR` "
            "(see data/README.md)"
        )
    with np.load(path) as npz:
        arrays = {key: npz[key] for key in npz.files}
    expected = {
        "train_images": (10000, 28, 28),
        "train_labels": (10000,),
        "test_images": (2000, 28, 28),
        "test_labels": (2000,),
    }
    for key, shape in expected.items():
        if key not in arrays or arrays[key].shape != shape:
            got = arrays[key].shape if key in arrays else "missing"
            raise DataError(f"{path}: array {key!r} should have shape {shape}, got {got}")
    train = _split_from_numpy(arrays["train_images"], arrays["train_labels"])
    test = _split_from_numpy(arrays["test_images"], arrays["test_labels"])
    return train, test


def _read_idx(path: Path) -> np.ndarray:
    """Parse an unsigned-byte IDX file, gzip-compressed if the name ends in ``.gz``."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as f:
            raw = f.read()
    except (OSError, EOFError) as exc:
        raise DataError(f"{path}: cannot read IDX file ({exc})") from exc
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise DataError(f"{path}: not an unsigned-byte IDX file (bad magic number)")
    ndim = raw[3]
    offset = 4 + 4 * ndim
    shape = tuple(int.from_bytes(raw[4 + 4 * i : 8 + 4 * i], "big") for i in range(ndim))
    if len(raw) != offset + int(np.prod(shape, dtype=np.int64)):
        raise DataError(f"{path}: file size does not match the IDX shape {shape}")
    return np.frombuffer(raw, dtype=np.uint8, offset=offset).reshape(shape)


_IDX_STEMS = (
    "train-images-idx3-ubyte",
    "train-labels-idx1-ubyte",
    "t10k-images-idx3-ubyte",
    "t10k-labels-idx1-ubyte",
)


def _idx_files(directory: Path) -> list[Path] | None:
    """The four Fashion-MNIST IDX files in ``directory`` (``.gz`` or not), or None."""
    found = []
    for stem in _IDX_STEMS:
        options = [p for p in (directory / f"{stem}.gz", directory / stem) if p.is_file()]
        if not options:
            return None
        found.append(options[0])
    return found


def _load_fashion_mnist(data_dir: Path | None, download: bool) -> tuple[Split, Split]:
    roots = [data_dir] if data_dir is not None else [DEBIAN_FASHION_MNIST_DIR, _cache_dir()]
    candidates = []
    for root in roots:
        candidates += [root, root / "FashionMNIST" / "raw"]
    for directory in candidates:
        files = _idx_files(directory)
        if files is not None:
            break
    else:
        root = data_dir if data_dir is not None else _cache_dir()
        if not download:
            tried = "\n  ".join(str(d) for d in candidates)
            raise DataNotFoundError(
                "Fashion-MNIST IDX files (train-images-idx3-ubyte[.gz], train-labels-idx1-ubyte"
                "[.gz], t10k-images-idx3-ubyte[.gz], t10k-labels-idx1-ubyte[.gz]) not found in:"
                f"\n  {tried}\npass --data-dir DIR pointing at them, or --download to fetch them "
                f"into {root} (on Debian/Ubuntu: apt-get install dataset-fashion-mnist)"
            )
        _torchvision_download("FashionMNIST", root)
        directory = root / "FashionMNIST" / "raw"
        files = _idx_files(directory)
        if files is None:
            raise DataNotFoundError(f"download finished but no IDX files found in {directory}")
    train_x, train_y, test_x, test_y = (_read_idx(p) for p in files)
    for x, y in ((train_x, train_y), (test_x, test_y)):
        if x.ndim != 3 or y.ndim != 1 or x.shape[0] != y.shape[0] or int(y.max(initial=0)) > 9:
            raise DataError(f"{directory}: inconsistent Fashion-MNIST files {x.shape}, {y.shape}")
    return _split_from_numpy(train_x, train_y), _split_from_numpy(test_x, test_y)


_CIFAR_LAYOUT = {
    "cifar10": (
        "cifar-10-batches-py",
        [f"data_batch_{i}" for i in range(1, 6)],
        ["test_batch"],
        "batches.meta",
        "labels",
        "label_names",
        "CIFAR10",
    ),
    "cifar100": (
        "cifar-100-python",
        ["train"],
        ["test"],
        "meta",
        "fine_labels",
        "fine_label_names",
        "CIFAR100",
    ),
}


def _get(d: dict, key: str) -> Any:
    """Look up ``key`` in a pickled CIFAR dict whose keys may be bytes or str."""
    if key.encode() in d:
        return d[key.encode()]
    return d[key]


def _unpickle(path: Path) -> dict:
    try:
        with open(path, "rb") as f:
            obj = pickle.load(f, encoding="bytes")
    except Exception as exc:  # corrupt or foreign file: report it as a data problem
        raise DataError(f"{path}: cannot unpickle CIFAR batch file ({exc})") from exc
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _read_cifar_batches(paths: Sequence[Path], label_key: str, num_classes: int) -> Split:
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        try:
            data = np.asarray(_get(batch, "data"), dtype=np.uint8)
            y = np.asarray(_get(batch, label_key), dtype=np.int64)
        except KeyError as exc:
            raise DataError(f"{path}: missing key {exc} in CIFAR batch") from exc
        if data.ndim != 2 or data.shape[1] != 3 * 32 * 32 or y.shape != (data.shape[0],):
            raise DataError(
                f"{path}: expected data (N, 3072) and {label_key} (N,), "
                f"got {data.shape} and {y.shape}"
            )
        if y.size and (y.min() < 0 or y.max() >= num_classes):
            raise DataError(f"{path}: labels outside [0, {num_classes})")
        images.append(data.reshape(-1, 3, 32, 32))  # rows hold 1024 R, 1024 G, 1024 B values
        labels.append(y)
    return _split_from_numpy(np.concatenate(images), np.concatenate(labels))


def _cifar_dir(root: Path, folder: str, needed: Sequence[str]) -> Path | None:
    for directory in (root / folder, root):
        if all((directory / name).is_file() for name in needed):
            return directory
    return None


def _load_cifar(
    name: str, data_dir: Path | None, download: bool
) -> tuple[Split, Split, tuple[str, ...] | None]:
    folder, train_files, test_files, meta_file, label_key, names_key, tv_name = _CIFAR_LAYOUT[name]
    spec = _SPECS[name]
    root = data_dir if data_dir is not None else _cache_dir()
    needed = [*train_files, *test_files]
    directory = _cifar_dir(root, folder, needed)
    if directory is None:
        if not download:
            raise DataNotFoundError(
                f"{name} not found under {root}: expected {root / folder}/ containing "
                f"{', '.join(needed)} (and optionally {meta_file}) in the torchvision python "
                f"layout; pass --data-dir DIR pointing at the folder that contains {folder}/, "
                f"or --download to fetch it into {root}"
            )
        _torchvision_download(tv_name, root)
        directory = _cifar_dir(root, folder, needed)
        if directory is None:
            raise DataNotFoundError(f"download finished but {root / folder} is incomplete")
    train = _read_cifar_batches([directory / f for f in train_files], label_key, spec.num_classes)
    test = _read_cifar_batches([directory / f for f in test_files], label_key, spec.num_classes)
    class_names = None
    if (directory / meta_file).is_file():
        try:
            raw = _get(_unpickle(directory / meta_file), names_key)
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
        except (KeyError, TypeError, DataError):
            names = ()
        if len(names) == spec.num_classes:
            class_names = names
    return train, test, class_names


def _cache_dir() -> Path:
    return DEFAULT_CACHE_DIR.expanduser()


def _torchvision_download(dataset_class: str, root: Path) -> None:
    """Download through torchvision, which verifies the archive's md5 checksum."""
    import torchvision.datasets  # imported lazily: only needed for downloads

    root.mkdir(parents=True, exist_ok=True)
    cls = getattr(torchvision.datasets, dataset_class)
    cls(root=str(root), train=True, download=True)  # fetches the whole dataset


# --------------------------------------------------------------------------------------------
# Entry point


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

    ``fmnist-mini`` needs no files beyond the shipped ``data/fmnist_mini.npz``. The others are
    read from ``data_dir`` (``fashion-mnist`` also falls back to the Debian package path and
    ``~/.cache/dihkit``); with ``download=True`` missing files are fetched through torchvision
    into ``data_dir`` (default ``~/.cache/dihkit``). ``val_fraction`` must lie in [0, 1).
    ``train_per_class`` keeps only that many training images per class (after the validation
    split, which stays as it is).
    """
    key = _canonical_name(name)
    if isinstance(val_fraction, bool) or not 0.0 <= float(val_fraction) < 1.0:
        raise DataError(f"val_fraction must be in [0, 1), got {val_fraction!r}")
    spec = _SPECS[key]
    root = Path(data_dir).expanduser() if data_dir is not None else None
    if key == "fmnist-mini":
        train_full, test = _load_fmnist_mini()
    elif key == "fashion-mnist":
        train_full, test = _load_fashion_mnist(root, download)
    else:
        train_full, test, class_names = _load_cifar(key, root, download)
        if class_names is not None and class_names != spec.class_names:
            spec = dataclasses.replace(spec, class_names=class_names)
    train, val = stratified_split(train_full, val_fraction, split_seed)
    if train_per_class is not None:
        train = per_class_subset(train, train_per_class)
    return Dataset(spec=spec, train=train, val=val, test=test)
