"""Writing small synthetic notebooks for the tests of the tour and the book."""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_notebook

KERNELSPEC = {"name": "python3", "display_name": "Python 3", "language": "python"}


def write_notebook(folder: Path, stem: str, cells: list) -> Path:
    """``folder/stem.ipynb`` holding ``cells``, with the python3 kernelspec papermill needs."""
    nb = new_notebook(cells=cells)
    nb.metadata["kernelspec"] = dict(KERNELSPEC)
    folder.mkdir(parents=True, exist_ok=True)
    nbformat.write(nb, folder / f"{stem}.ipynb")
    return folder / f"{stem}.ipynb"
