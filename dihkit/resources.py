"""Where the kit's bundled files live: the embedded data, the bundled teachers, the experiment
files and the notebooks.

A repository checkout (and an editable install of it) keeps them at the top of the repository
(``data/``, ``configs/``, ``notebooks/``), where they are developed. A wheel carries copies inside
the package, ``dihkit/bundle/KIND/``, found through :mod:`importlib.resources`: ``setup.py``
copies the files :data:`BUNDLE` names into the wheel's build folder (never into the source
tree), and ``MANIFEST.in`` puts the same files in an sdist.
"""

from __future__ import annotations

from importlib.resources import files
from pathlib import Path

KINDS = ("data", "configs", "notebooks")
BUNDLE_DIR = "bundle"  # inside the installed package: dihkit/bundle/KIND/
# What a wheel ships of each kind: glob patterns relative to the kind's folder. Builder scripts
# (data/build_fmnist_mini.py, data/teachers/build.sh) stay in the repository.
BUNDLE: dict[str, tuple[str, ...]] = {
    "data": (
        "*.npz",
        "README.md",
        "teachers/*.pt",
        "teachers/manifest.json",
        "teachers/README.md",
    ),
    "configs": ("*.toml", "README.md"),
    "notebooks": ("[0-9][0-9]_*.ipynb", "README.md", "nbval_sanitize.cfg", "timings.json"),
}
CHECKOUT_ROOT = Path(__file__).resolve().parent.parent


def package_dir() -> Path:
    """The folder of the imported ``dihkit`` package (the checkout's ``dihkit/``, or the one in
    site-packages)."""
    return Path(str(files("dihkit")))


def checkout_root() -> Path | None:
    """The repository checkout this package runs from, or None for an installed wheel."""
    return CHECKOUT_ROOT if (CHECKOUT_ROOT / "pyproject.toml").is_file() else None


def bundled(kind: str) -> Path:
    """The folder of one kind of bundled file (``data``, ``configs`` or ``notebooks``): the
    checkout's top-level folder when running from a checkout, else the installed package's
    ``bundle/KIND``. (A checkout wins, so a stray ``dihkit/bundle`` in a source tree never
    shadows the files being developed.)"""
    if kind not in KINDS:
        raise ValueError(f"unknown kind of bundled file {kind!r}; choose one of: {KINDS}")
    root = checkout_root()
    if root is not None and (root / kind).is_dir():
        return root / kind
    return package_dir() / BUNDLE_DIR / kind


def bundle_files(root: str | Path) -> dict[str, list[Path]]:
    """Kind -> the files :data:`BUNDLE` selects under ``root/KIND`` (paths relative to that
    folder, sorted); ``setup.py`` copies these into a wheel. ``root`` is a repository checkout
    (or an unpacked sdist)."""
    selected = {}
    for kind, patterns in BUNDLE.items():
        folder = Path(root) / kind
        found = {path for pattern in patterns for path in folder.glob(pattern) if path.is_file()}
        selected[kind] = sorted(path.relative_to(folder) for path in found)
    return selected


def inside_package(path: str | Path) -> bool:
    """Whether ``path`` lies inside the installed package's folder (site-packages), where the
    kit must never write at run time."""
    return checkout_root() is None and Path(path).resolve().is_relative_to(package_dir().resolve())
