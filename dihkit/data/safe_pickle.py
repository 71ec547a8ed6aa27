"""A restricted unpickler for dataset files: only what a CIFAR batch holds can be loaded.

``pickle.load`` runs whatever callables a file names, so a crafted ``data_batch_1`` could run
code. :func:`load_restricted` admits the built-in containers and scalars the pickle opcodes make
themselves (dict, list, tuple, bytes, str, int, float, bool, None) plus numpy arrays, dtypes and
scalars (through numpy's reconstruction helpers and ``_codecs.encode``, which numpy pickles
written by Python 3 with protocol 2 use for their raw bytes). Any other global is refused with a
:class:`DataError` naming the file and the global.
"""

from __future__ import annotations

import _codecs
import importlib
import pickle
from pathlib import Path
from typing import Any

import numpy as np

from dihkit.errors import DataError


def _numpy_module(name: str) -> Any:
    """``numpy._core.NAME`` (numpy 2) or ``numpy.core.NAME`` (numpy 1)."""
    try:
        return importlib.import_module(f"numpy._core.{name}")
    except ImportError:  # numpy < 2
        return importlib.import_module(f"numpy.core.{name}")


def _allowed() -> dict[tuple[str, str], Any]:
    multiarray, numeric = _numpy_module("multiarray"), _numpy_module("numeric")
    allowed: dict[tuple[str, str], Any] = {
        ("numpy", "ndarray"): np.ndarray,
        ("numpy", "dtype"): np.dtype,
        ("_codecs", "encode"): _codecs.encode,
    }
    for package in ("numpy.core", "numpy._core"):  # files name either, whatever numpy reads them
        allowed[(f"{package}.multiarray", "_reconstruct")] = multiarray._reconstruct
        allowed[(f"{package}.multiarray", "scalar")] = multiarray.scalar
        allowed[(f"{package}.numeric", "_frombuffer")] = numeric._frombuffer
    return allowed


ALLOWED_GLOBALS = _allowed()


class UnsafePickleError(DataError):
    """A dataset file names a global outside :data:`ALLOWED_GLOBALS` (nothing was run)."""


class _RestrictedUnpickler(pickle.Unpickler):
    def __init__(self, file: Any, path: Path) -> None:
        super().__init__(file, encoding="bytes")
        self.path = path

    def find_class(self, module: str, name: str) -> Any:
        try:
            return ALLOWED_GLOBALS[(module, name)]
        except KeyError:
            raise UnsafePickleError(
                f"{self.path}: refused to load {module}.{name}; a CIFAR batch file holds only "
                "dicts, lists, bytes, strings, numbers and numpy arrays (a foreign or crafted "
                "file?)"
            ) from None


def load_restricted(path: str | Path) -> Any:
    """Unpickle ``path`` admitting only plain containers, numbers, strings and numpy arrays."""
    path = Path(path)
    try:
        with open(path, "rb") as handle:
            return _RestrictedUnpickler(handle, path).load()
    except DataError:
        raise
    except Exception as exc:  # corrupt or truncated files fail in many ways
        raise DataError(
            f"{path}: cannot unpickle CIFAR batch file ({type(exc).__name__}: {exc})"
        ) from None
