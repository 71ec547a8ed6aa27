"""``dihkit notebooks DEST``: a copy of the notebook sequence to open in one's own JupyterLab.

An installed package keeps the notebooks inside site-packages (``dihkit/bundle/notebooks``),
which is no place to edit and run them. :func:`copy_notebooks` copies the sequence with what it
needs beside it (``README.md``, ``nbval_sanitize.cfg``) into a folder of the user's. The copies
are the files as shipped: their ``out_dir`` and ``cache_dir`` parameters say ``../runs/...``, so
the results land in a ``runs/`` folder next to ``DEST`` (the repository's layout, where
``notebooks/`` and ``runs/`` sit side by side).
"""

from __future__ import annotations

import shutil
from pathlib import Path

from dihkit.book.html import NOTEBOOK_PATTERN
from dihkit.errors import ConfigError
from dihkit.resources import BUNDLE, bundled


def notebook_files(source: str | Path | None = None) -> list[Path]:
    """The files the sequence ships (:data:`dihkit.resources.BUNDLE`'s ``notebooks`` patterns)
    in ``source`` (default: the bundled notebooks), notebooks first, in order."""
    folder = Path(source) if source is not None else bundled("notebooks")
    found = {path for pattern in BUNDLE["notebooks"] for path in folder.glob(pattern)}
    notebooks = sorted(p for p in found if p.match(NOTEBOOK_PATTERN))
    if not notebooks:
        raise ConfigError(f"no notebooks ({NOTEBOOK_PATTERN}) in {str(folder)!r}")
    return notebooks + sorted(p for p in found - set(notebooks) if p.is_file())


def copy_notebooks(
    dest: str | Path, *, overwrite: bool = False, source: str | Path | None = None
) -> list[Path]:
    """Copy the sequence into ``dest`` (created if missing) and return the copies. A file of
    the sequence already in ``dest`` is a :class:`ConfigError` naming it, before anything is
    copied, unless ``overwrite``; other files in ``dest`` are left alone."""
    files = notebook_files(source)
    dest = Path(dest)
    if dest.exists() and not dest.is_dir():
        raise ConfigError(
            f"{str(dest)!r} exists and is not a folder; give a folder path (it is created if "
            "missing)"
        )
    folders = [dest / f.name for f in files if (dest / f.name).is_dir()]
    if folders:
        raise ConfigError(f"{folders[0]} is a folder: a file of the sequence cannot go there")
    existing = [dest / f.name for f in files if (dest / f.name).exists()]
    if existing and not overwrite:
        more = f" (and {len(existing) - 1} more of the sequence)" if len(existing) > 1 else ""
        raise ConfigError(
            f"{existing[0]} already exists{more}; pass --overwrite to replace the sequence's "
            "files in that folder"
        )
    dest.mkdir(parents=True, exist_ok=True)
    copies = []
    for path in files:
        target = dest / path.name
        shutil.copyfile(path, target)  # not the installed file's mode (it may be read-only)
        copies.append(target)
    return copies


def results_folder(dest: str | Path) -> Path:
    """Where the copied notebooks record their results by default (``DEST/../runs``)."""
    return (Path(dest).resolve().parent / "runs").resolve()


__all__ = ["copy_notebooks", "notebook_files", "results_folder"]
