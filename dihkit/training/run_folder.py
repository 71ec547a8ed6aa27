"""Run folders owned by one run: checked before any work, locked for the run's lifetime.

:func:`claim` validates ``--out`` (not a file, not under a file, writable), refuses a folder that
already holds files unless the run resumes or overwrites it, takes an exclusive ``flock`` on the
folder itself (released when the process ends, however it ends) and removes the temporary files
of the atomic writer (:mod:`dihkit.files`) that an earlier, killed run left behind. The owner's
pid and host are written to ``.dihkit-owner`` so that a second run can say who holds the
folder. Claims are re-entrant within a process: the pipeline claims a folder before loading a
teacher, and :func:`dihkit.training.loop.fit` claims it again.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

from dihkit.errors import ConfigError
from dihkit.files import is_temporary, stray_temporaries, write_json_atomic
from dihkit.training import distributed

OWNER_FILE = ".dihkit-owner"
# What dihkit writes into a run folder; ``overwrite`` removes these (and nothing else).
RUN_FILES = (
    "best.pt",
    "last.pt",
    "history.json",
    "summary.json",
    "cohort.json",
    "table.md",
    "identity.json",
)
RUN_DIRS = ("records",)

_held: dict[Path, tuple[int, int]] = {}  # folder -> (directory fd, claim depth) in this process


def check_writable_folder(path: str | Path) -> Path:
    """``path`` as a folder this process can write into, created if missing; a
    :class:`ConfigError` naming the path if it is a file, lies under a file or is read-only."""
    path = Path(path).expanduser()
    if path.exists() and not path.is_dir():
        raise ConfigError(
            f"run folder (--out) {str(path)!r} is a file, not a folder; pick a folder path"
        )
    for parent in path.parents:
        if parent.exists():
            if not parent.is_dir():
                raise ConfigError(
                    f"run folder (--out) {str(path)!r} lies under {str(parent)!r}, which is a "
                    "file; pick a folder path"
                )
            break
    try:
        path.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=path):
            pass
    except OSError as exc:
        raise ConfigError(
            f"run folder (--out) {str(path)!r} is not writable ({exc.strerror or exc}); "
            "pick another folder"
        ) from None
    return path


def _contents(folder: Path) -> list[str]:
    """Entries that belong to some run (the owner file and stale temporaries do not count)."""
    return sorted(p.name for p in folder.iterdir() if p.name != OWNER_FILE and not is_temporary(p))


def remove_stale_temporaries(folder: Path) -> list[Path]:
    """Delete the temporary files of the atomic writer (:func:`dihkit.files.stray_temporaries`,
    ``.NAME.XXXXXXXX.tmp``) under ``folder``, left by a run killed mid-write; the caller holds
    the folder's lock, so no live run is writing them."""
    stale = stray_temporaries(folder)
    for path in stale:
        path.unlink(missing_ok=True)
    return stale


def clear_run_files(folder: Path) -> None:
    """Remove what an earlier run wrote into ``folder`` (checkpoints, history, summaries,
    records, and stage sub-folders that are run folders themselves); other files stay."""
    for name in RUN_FILES:
        (folder / name).unlink(missing_ok=True)
    for name in RUN_DIRS:
        shutil.rmtree(folder / name, ignore_errors=True)
    for sub in folder.iterdir():
        if sub.is_dir() and any((sub / name).exists() for name in (*RUN_FILES, OWNER_FILE)):
            clear_run_files(sub)
            (sub / OWNER_FILE).unlink(missing_ok=True)
            with contextlib.suppress(OSError):
                sub.rmdir()


def _owner_text(folder: Path) -> str:
    try:
        owner = json.loads((folder / OWNER_FILE).read_text())
        return f"pid {owner['pid']} on {owner['host']}, started {owner['started']}"
    except (OSError, ValueError, KeyError, TypeError):
        return "owner unknown"


def _lock(folder: Path) -> int:
    fd = os.open(folder, os.O_RDONLY)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        os.close(fd)
        raise ConfigError(
            f"run folder {str(folder)!r} is in use by another dihkit run ({_owner_text(folder)}); "
            "wait for it to finish or pick another --out"
        ) from None
    owner = {
        "pid": os.getpid(),
        "host": socket.gethostname(),
        "started": time.strftime("%Y-%m-%d %H:%M:%S"),
    }
    write_json_atomic(folder / OWNER_FILE, owner, indent=None)
    return fd


@contextlib.contextmanager
def claim(
    out_dir: str | Path | None, *, resume: bool = False, overwrite: bool = False
) -> Iterator[Path | None]:
    """Own ``out_dir`` for the duration of the ``with`` block (nothing happens for ``None``).

    A folder holding files from another run is refused unless ``resume`` (continue it) or
    ``overwrite`` (remove the earlier run's files first). A folder held by another process is a
    :class:`ConfigError` naming the folder and the owner's pid and host. Under ``torchrun`` only
    rank 0 claims the folder; the other ranks never write into it.
    """
    if out_dir is None:
        yield None
        return
    if not distributed.is_main():  # under torchrun rank 0 owns the folder and writes its files
        yield Path(out_dir).expanduser().resolve()
        return
    created = not Path(out_dir).expanduser().exists()
    folder = check_writable_folder(out_dir).resolve()
    if folder in _held:
        fd, depth = _held[folder]
        _held[folder] = (fd, depth + 1)
        try:
            yield folder
        finally:
            fd, depth = _held[folder]
            _held[folder] = (fd, depth - 1)
        return
    fd = _lock(folder)
    _held[folder] = (fd, 1)
    try:
        remove_stale_temporaries(folder)
        if overwrite:
            clear_run_files(folder)
        elif not resume and _contents(folder):
            shown = ", ".join(_contents(folder)[:5])
            raise ConfigError(
                f"run folder {str(folder)!r} is not empty ({shown}); pass --resume to continue "
                "that run, --overwrite to replace it, or pick another --out"
            )
        yield folder
    finally:
        del _held[folder]
        (folder / OWNER_FILE).unlink(missing_ok=True)
        if created and not any(folder.iterdir()):  # a run that failed before writing anything
            folder.rmdir()
        fcntl.flock(fd, fcntl.LOCK_UN)
        os.close(fd)
