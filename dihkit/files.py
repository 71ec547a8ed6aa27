"""Files the kit writes and reads back: one atomic writer, one JSON reader, one digest.

Every file a run or a report leaves behind (checkpoints, histories, summaries, caches, results,
markers) is written by :func:`write_atomic`: the bytes go to a temporary file beside the target
(``.NAME.XXXXXXXX.tmp``), are synced to disk, and the temporary file is renamed over the target,
so a reader (or a run killed mid-write) sees either the old file or the new one, never half of
one. A killed writer can leave its temporary file behind; :func:`stray_temporaries` finds them
(run folders remove them when they are next claimed).

:func:`read_json` reads a JSON file back or raises one :class:`UnreadableFileError` for a
missing, unreadable or damaged file, so callers decide: re-run what wrote it, or refuse with the
fix.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import IO, Any

from dihkit.errors import DihkitError

TEMP_PREFIX = "."  # a temporary file is ``.NAME.XXXXXXXX.tmp`` beside the file NAME
TEMP_SUFFIX = ".tmp"

__all__ = [
    "TEMP_PREFIX",
    "TEMP_SUFFIX",
    "UnreadableFileError",
    "is_temporary",
    "read_json",
    "sha256_of",
    "stray_temporaries",
    "write_atomic",
    "write_bytes_atomic",
    "write_json_atomic",
    "write_text_atomic",
]


class UnreadableFileError(DihkitError):
    """A file the kit wrote earlier is missing, unreadable or damaged (e.g. truncated)."""

    def __init__(self, path: str | Path, problem: str, *, missing: bool = False) -> None:
        super().__init__(f"{path} {problem}")
        self.path = Path(path)
        self.problem = problem
        self.missing = missing


def is_temporary(path: str | Path) -> bool:
    """Whether ``path`` is named like a temporary file of :func:`write_atomic`."""
    name = Path(path).name
    return (
        name.startswith(TEMP_PREFIX)
        and name.endswith(TEMP_SUFFIX)
        and len(name) > len(TEMP_PREFIX) + len(TEMP_SUFFIX)
    )


def stray_temporaries(folder: str | Path) -> list[Path]:
    """The temporary files of :func:`write_atomic` under ``folder`` (any depth): what a writer
    killed mid-write left behind. Only safe to delete while no writer is running there."""
    found = Path(folder).rglob(f"{TEMP_PREFIX}*{TEMP_SUFFIX}")
    return sorted(p for p in found if p.is_file() and is_temporary(p))


def _current_umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def _sync_folder(folder: Path) -> None:
    """fsync a folder so a rename in it survives a power cut (where the system allows it)."""
    with contextlib.suppress(OSError):
        fd = os.open(folder, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)


def write_atomic(path: str | Path, write: Callable[[IO[bytes]], Any]) -> Path:
    """Write ``path`` atomically: ``write(handle)`` fills a temporary file in the same folder,
    which is synced and renamed over ``path`` (then the folder is synced). On any error,
    interruption included, the temporary file is removed and ``path`` is untouched. The file
    gets the usual permissions (``0o666`` less the umask). Returns ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp_name = tempfile.mkstemp(
        dir=path.parent, prefix=f"{TEMP_PREFIX}{path.name}.", suffix=TEMP_SUFFIX
    )
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp_name, 0o666 & ~_current_umask())  # mkstemp makes 0600 files
        os.replace(tmp_name, path)
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _sync_folder(path.parent)
    return path


def write_bytes_atomic(path: str | Path, data: bytes) -> Path:
    """Write ``data`` to ``path`` atomically (see :func:`write_atomic`)."""
    return write_atomic(path, lambda handle: handle.write(data))


def write_text_atomic(path: str | Path, text: str) -> Path:
    """Write ``text`` (UTF-8) to ``path`` atomically (see :func:`write_atomic`)."""
    return write_bytes_atomic(path, text.encode("utf-8"))


def write_json_atomic(
    path: str | Path,
    value: Any,
    *,
    indent: int | None = 1,
    default: Callable[[Any], Any] | None = None,
) -> Path:
    """Write ``value`` as JSON (and a final newline) to ``path`` atomically; ``default``
    converts values JSON has no type for, as in :func:`json.dumps`."""
    return write_text_atomic(path, json.dumps(value, indent=indent, default=default) + "\n")


def read_json(path: str | Path) -> Any:
    """The parsed contents of a JSON file; an :class:`UnreadableFileError` if it is missing
    (``.missing`` is then True), cannot be read, or is not valid JSON (a truncated write)."""
    path = Path(path)
    if not path.is_file():
        raise UnreadableFileError(path, "does not exist", missing=True)
    try:
        text = path.read_text(encoding="utf-8")
    except UnicodeDecodeError:
        raise UnreadableFileError(path, "is damaged (not UTF-8 text)") from None
    except OSError as exc:
        raise UnreadableFileError(path, f"cannot be read ({exc.strerror or exc})") from None
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise UnreadableFileError(
            path, f"is damaged (not valid JSON: {exc.msg} at line {exc.lineno})"
        ) from None


def sha256_of(path: str | Path) -> str:
    """Hex sha256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
