"""A deterministic ``.npz`` writer for the embedded datasets' builder scripts.

``numpy.savez_compressed`` writes the current time into the zip entries and lets numpy choose
the ``.npy`` header, so two builds differ in bytes. This writes every ``.npy`` header itself and
the zip container with a fixed entry order, timestamp (1980-01-01 00:00:00), Unix file
attributes (mode 0644) and deflate level 9: the same arrays give the same bytes (with the same
zlib). Only numpy and the standard library are needed.
"""

from __future__ import annotations

import hashlib
import zipfile
from pathlib import Path

import numpy as np

# Fixed zip metadata: DOS epoch timestamp, Unix creator, regular file with mode 0644.
ZIP_DATE_TIME = (1980, 1, 1, 0, 0, 0)
ZIP_COMPRESS_LEVEL = 9
ZIP_EXTERNAL_ATTR = (0o100644 & 0xFFFF) << 16


def npy_bytes(array: np.ndarray) -> bytes:
    """Serialise a C-contiguous array in .npy format 1.0 with a self-written header."""
    array = np.ascontiguousarray(array)
    shape = repr(tuple(int(n) for n in array.shape))
    header = f"{{'descr': '{array.dtype.str}', 'fortran_order': False, 'shape': {shape}, }}"
    preamble = 10  # magic (6) + version (2) + header length (2)
    padding = -(preamble + len(header) + 1) % 64
    header = header + " " * padding + "\n"
    return (
        b"\x93NUMPY\x01\x00"
        + len(header).to_bytes(2, "little")
        + header.encode("latin1")
        + array.tobytes(order="C")
    )


def write_npz(path: Path, arrays: dict[str, np.ndarray]) -> str:
    """Write ``arrays`` as a deterministic, deflate-compressed .npz file; return its sha256."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(path, "w", allowZip64=False) as zf:
        for name, array in arrays.items():
            info = zipfile.ZipInfo(f"{name}.npy", date_time=ZIP_DATE_TIME)
            info.compress_type = zipfile.ZIP_DEFLATED
            info.create_system = 3
            info.external_attr = ZIP_EXTERNAL_ATTR
            zf.writestr(info, npy_bytes(array), compresslevel=ZIP_COMPRESS_LEVEL)
    return hashlib.sha256(path.read_bytes()).hexdigest()
