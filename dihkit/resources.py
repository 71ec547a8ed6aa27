"""Where the kit's bundled files live: the embedded data, the bundled teachers, the experiment
files and the notebooks.

An installed wheel carries them inside the package (``dihkit/bundle/KIND/``, found through
:mod:`importlib.resources`); a repository checkout (an editable install) keeps them at the top of
the repository (``data/``, ``configs/``, ``notebooks/``), where they are developed.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("data", "configs", "notebooks")
CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def bundled(kind: str) -> Path:
    """The folder of one kind of bundled file (``data``, ``configs`` or ``notebooks``)."""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bundled file {kind!r}; choose one of: {KINDS}")
    packaged = Path(str(files("dihkit"))) / "bundle" / kind
    if packaged.is_dir():
        return packaged
    return CHECKOUT_ROOT / kind


def checkout_root() -> Path | None:
    """The repository checkout this package runs from, or None for an installed wheel."""
    return CHECKOUT_ROOT if (CHECKOUT_ROOT / "pyproject.toml").is_file() else None
