"""Every notebook's exercises: with the committed (unanswered) cells each check says "not
answered yet" (the nbval run in test_notebooks.py executes them so), and with the reference
answers filled in every check says "right".

An exercise is a code cell tagged ``exercise`` whose metadata holds its reference answer as
``metadata["dihkit"]["reference"]`` (source code that replaces the cell); the check cell after
it prints ``Exercise ID: right`` / ``wrong`` / ``not answered yet``
(:mod:`dihkit.studies.exercises`).
"""

from __future__ import annotations

import os
import re
import shutil
from pathlib import Path

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"


def _exercise_notebooks() -> list[Path]:
    import nbformat

    found = []
    for path in sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")):
        nb = nbformat.read(path, as_version=4)
        if any("exercise" in c.metadata.get("tags", []) for c in nb.cells):
            found.append(path)
    return found


EXERCISE_NOTEBOOKS = _exercise_notebooks()
RESULT = re.compile(r"Exercise (\S+): (right|wrong|not answered yet)")


def _outputs_text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if "text" in output:
            parts.append(output["text"])
        data = output.get("data", {})
        parts.append(data.get("text/plain", ""))
    return "\n".join(parts)


def test_every_lesson_notebook_has_exercises():
    """01-06 and 08 each hold exercises (00 and 07 are the tour and the comparison)."""
    lessons = {p.stem[:2] for p in NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb")} - {"00", "07"}
    assert {p.stem[:2] for p in EXERCISE_NOTEBOOKS} == lessons
    assert {"01", "02", "03", "04", "05", "06"} <= lessons


@pytest.mark.parametrize("notebook", EXERCISE_NOTEBOOKS, ids=[n.stem for n in EXERCISE_NOTEBOOKS])
def test_exercises_have_references_and_are_unanswered_when_committed(notebook):
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    cells = [c for c in nb.cells if "exercise" in c.metadata.get("tags", [])]
    assert 3 <= len(cells) <= 5, f"{notebook.name}: {len(cells)} exercises"
    for cell in cells:
        assert cell.metadata.get("dihkit", {}).get("reference"), cell.source
        assert "..." in cell.source, f"an exercise cell starts unanswered: {cell.source!r}"


@pytest.mark.slow
@pytest.mark.parametrize("notebook", EXERCISE_NOTEBOOKS, ids=[n.stem for n in EXERCISE_NOTEBOOKS])
def test_reference_answers_pass_every_check(notebook, tmp_path, monkeypatch):
    import nbformat
    from nbclient import NotebookClient

    folder = tmp_path / "notebooks"
    folder.mkdir()
    shutil.copy(notebook, folder)
    nb = nbformat.read(folder / notebook.name, as_version=4)
    exercises = 0
    for cell in nb.cells:
        if "exercise" in cell.metadata.get("tags", []):
            cell.source = cell.metadata["dihkit"]["reference"]
            exercises += 1
    monkeypatch.setenv("DIHKIT_PROFILE", "smoke")
    monkeypatch.setenv("DIHKIT_TARGET_CACHE", str(tmp_path / "targets"))
    NotebookClient(nb, timeout=600, resources={"metadata": {"path": str(folder)}}).execute()
    found = {}
    for cell in nb.cells:
        for exercise, status in RESULT.findall(_outputs_text(cell)):
            found[exercise] = status
    assert len(found) == exercises, found
    assert set(found.values()) == {"right"}, found
    assert os.environ["DIHKIT_PROFILE"] == "smoke"
