"""Readers for the dataset files: the embedded ``.npz`` subsets, Fashion-MNIST's IDX files and
CIFAR's pickled batches (torchvision's python layout), plus torchvision downloads on request.

The CIFAR reader accepts any well-formed batch files (torchvision's md5 check is kept for
downloads only), so small CIFAR-format test fixtures load too.

Readers return plain arrays, ``(images, labels)`` per split: uint8 ``(N, C, H, W)`` and int64
``(N,)``; :mod:`dihkit.data.datasets` wraps them into splits. Errors come from :mod:`dihkit.errors`.
"""

from __future__ import annotations

import gzip
import zipfile
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from dihkit.data.safe_pickle import UnsafePickleError, load_restricted
from dihkit.errors import DataError, DataNotFoundError

Arrays = tuple[np.ndarray, np.ndarray]  # images uint8 (N, C, H, W), labels int64 (N,)

DEBIAN_FASHION_MNIST_DIR = Path("/usr/share/datasets/fashion-mnist")
DEFAULT_CACHE_DIR = Path("~/.cache/dihkit")


def _split_from_numpy(images: np.ndarray, labels: np.ndarray) -> Arrays:
    if images.ndim == 3:
        images = images[:, None]
    if not images.flags.writeable:  # e.g. np.frombuffer over bytes; torch wants writable memory
        images = images.copy()
    return np.ascontiguousarray(images, dtype=np.uint8), np.asarray(labels, dtype=np.int64)


def load_embedded(
    path: Path, builder: str, source: str, train_shape: tuple[int, ...], test_shape: tuple[int, ...]
) -> tuple[Arrays, Arrays]:
    """An embedded subset: (train, test) from its ``.npz`` file (no pickles allowed), with the
    expected image array shapes (``(N, H, W)`` grayscale or ``(N, H, W, 3)`` RGB)."""
    if not path.is_file():
        raise DataNotFoundError(
            f"embedded dataset file {path} is missing; rebuild it from {source} with "
            f"`python data/{builder} --source DIR` (see data/README.md)"
        )
    try:
        with np.load(path, allow_pickle=False) as npz:
            arrays = {key: npz[key] for key in npz.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as exc:
        raise DataError(
            f"{path} is damaged ({exc}); restore it with `git checkout -- {path.name}` or "
            f"rebuild it with `python data/{builder}`"
        ) from exc
    expected = {
        "train_images": train_shape,
        "train_labels": train_shape[:1],
        "test_images": test_shape,
        "test_labels": test_shape[:1],
    }
    for key, shape in expected.items():
        if key not in arrays or arrays[key].shape != shape:
            got = arrays[key].shape if key in arrays else "missing"
            raise DataError(f"{path}: array {key!r} should have shape {shape}, got {got}")
    splits = []
    for split in ("train", "test"):
        images = arrays[f"{split}_images"]
        if images.ndim == 4:  # stored (N, H, W, C), as image files are
            images = images.transpose(0, 3, 1, 2)
        splits.append(_split_from_numpy(images, arrays[f"{split}_labels"]))
    return splits[0], splits[1]


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


def load_fashion_mnist(data_dir: Path | None, download: bool) -> tuple[Arrays, Arrays]:
    """Full Fashion-MNIST (train, test) from IDX files in ``data_dir`` or the usual places."""
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
    obj = load_restricted(path)  # plain pickle.load would run code a crafted file names
    if not isinstance(obj, dict):
        raise DataError(f"{path}: expected a pickled dict, got {type(obj).__name__}")
    return obj


def _integers(path: Path, what: str, raw: Any) -> np.ndarray:
    """``raw`` as an int64 array, or a :class:`DataError` naming the file and the problem."""
    try:
        values = np.asarray(raw)
    except (ValueError, TypeError) as exc:
        raise DataError(f"{path}: {what} is not a numeric array ({exc})") from None
    if values.dtype.kind in "iu":
        return values.astype(np.int64)
    if (
        values.dtype.kind == "f"
        and np.isfinite(values).all()
        and (values == np.round(values)).all()
    ):
        return values.astype(np.int64)
    kind = "non-integer numbers" if values.dtype.kind in "fc" else f"{values.dtype} values"
    raise DataError(f"{path}: {what} must hold integers, found {kind}")


def _pixels(path: Path, raw: Any) -> np.ndarray:
    """Pixel values as uint8, after checking they are integers in 0..255 (no silent wrapping)."""
    values = _integers(path, "data (pixel values)", raw)
    if values.size == 0:
        raise DataError(f"{path}: the batch holds no images")
    low, high = int(values.min()), int(values.max())
    if low < 0 or high > 255:
        raise DataError(f"{path}: pixel values must lie in 0..255, found {low}..{high}")
    return values.astype(np.uint8)


def _read_cifar_batches(paths: Sequence[Path], label_key: str, num_classes: int) -> Arrays:
    images, labels = [], []
    for path in paths:
        batch = _unpickle(path)
        try:
            data = _pixels(path, _get(batch, "data"))
            y = _integers(path, label_key, _get(batch, label_key))
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


def load_cifar(
    name: str, num_classes: int, data_dir: Path | None, download: bool
) -> tuple[Arrays, Arrays, tuple[str, ...] | None]:
    """CIFAR-10/100 (train, test, class names from the meta file if present)."""
    folder, train_files, test_files, meta_file, label_key, names_key, tv_name = _CIFAR_LAYOUT[name]
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
    train = _read_cifar_batches([directory / f for f in train_files], label_key, num_classes)
    test = _read_cifar_batches([directory / f for f in test_files], label_key, num_classes)
    class_names = None
    if (directory / meta_file).is_file():
        try:
            raw = _get(_unpickle(directory / meta_file), names_key)
            names = tuple(n.decode() if isinstance(n, bytes) else str(n) for n in raw)
        except UnsafePickleError:
            raise
        except (KeyError, TypeError, DataError):  # an odd meta file: the built-in names serve
            names = ()
        if len(names) == num_classes:
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


SVHN_FILES = ("train_32x32.mat", "test_32x32.mat")


def _read_svhn_mat(path: Path) -> Arrays:
    """One SVHN ``.mat`` file: ``X`` (32, 32, 3, N) uint8 and ``y`` (N, 1) with 10 for digit 0.
    ``scipy.io.loadmat`` reads MATLAB arrays; nothing in the file is executed."""
    try:
        import scipy.io
    except ImportError:
        raise DataError(
            "reading SVHN needs scipy; install it with pip install 'dihkit[svhn]'"
        ) from None
    try:
        mat = scipy.io.loadmat(str(path))
    except (
        ValueError,
        TypeError,
        OSError,
        NotImplementedError,
        scipy.io.matlab.MatReadError,
    ) as exc:
        raise DataError(f"{path}: not a readable MATLAB file ({exc})") from None
    if "X" not in mat or "y" not in mat:
        raise DataError(f"{path}: expected arrays 'X' and 'y' (the SVHN cropped-digits format)")
    x, y = mat["X"], _integers(path, "y (labels)", mat["y"]).reshape(-1)
    if x.ndim != 4 or x.shape[:3] != (32, 32, 3) or x.shape[3] != y.shape[0]:
        raise DataError(f"{path}: X must be (32, 32, 3, N) with N labels, got {x.shape}")
    if y.size and (y.min() < 0 or y.max() > 10):
        raise DataError(f"{path}: labels must lie in 0..10 (10 stands for the digit 0)")
    pixels = x if x.dtype == np.uint8 else _pixels(path, x)  # uint8 needs no range check
    images = pixels.transpose(3, 2, 0, 1)  # (N, C, H, W)
    return _split_from_numpy(np.ascontiguousarray(images), np.where(y == 10, 0, y))


def load_svhn(data_dir: Path | None, download: bool) -> tuple[Arrays, Arrays]:
    """SVHN cropped digits: ``train_32x32.mat`` (73,257 images; the 531,131 "extra" images are
    not used) and ``test_32x32.mat`` (26,032), from ``data_dir`` or, with ``download``, fetched
    through torchvision (which checks their md5)."""
    root = data_dir if data_dir is not None else _cache_dir()
    directory = next((d for d in (root / "svhn", root) if (d / SVHN_FILES[0]).is_file()), None)
    if directory is None or not (directory / SVHN_FILES[1]).is_file():
        if not download:
            raise DataNotFoundError(
                f"svhn not found under {root}: expected {', '.join(SVHN_FILES)} in {root} or "
                f"{root / 'svhn'}; pass --data-dir DIR pointing at them, or --download to fetch "
                f"them into {root / 'svhn'}"
            )
        import torchvision.datasets  # imported lazily: only needed for downloads

        (root / "svhn").mkdir(parents=True, exist_ok=True)
        for split in ("train", "test"):
            torchvision.datasets.SVHN(root=str(root / "svhn"), split=split, download=True)
        directory = root / "svhn"
    return _read_svhn_mat(directory / SVHN_FILES[0]), _read_svhn_mat(directory / SVHN_FILES[1])
