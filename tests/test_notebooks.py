"""Every notebook of the sequence, re-executed in the smoke profile.

Each ``notebooks/NN_*.ipynb`` is copied into a temporary folder and executed there by nbval
(``pytest --nbval-lax`` in a subprocess, with ``DIHKIT_PROFILE=smoke``, which makes
:func:`dihkit.runs.profiles.resolve` use the smoke profile whatever the committed parameters cell
says). nbval compares the cells tagged ``nbval-check-output`` with the committed outputs (after
``notebooks/nbval_sanitize.cfg``), and the results file the notebook recorded under
``runs/notebooks/`` of the temporary folder is then checked: one execution per notebook serves
both. The papermill route (parameters injected by ``dihkit tour``) is covered by test_book.py.

New notebooks are picked up automatically; a notebook-specific check goes in ``RESULT_CHECKS``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))
SANITIZE = NOTEBOOKS_DIR / "nbval_sanitize.cfg"


def run_nbval(notebook: Path, root: Path) -> tuple[subprocess.CompletedProcess, Path]:
    """Copy ``notebook`` into ``root/notebooks`` and run nbval on it in the smoke profile;
    returns the finished process and the folder the notebook's results went to (its default
    ``out_dir``, ``../runs/notebooks``)."""
    folder = root / "notebooks"
    folder.mkdir(parents=True)
    copy = Path(shutil.copy(notebook, folder))
    env = {**os.environ, "DIHKIT_PROFILE": "smoke"}
    command = [
        sys.executable,
        "-m",
        "pytest",
        "--nbval-lax",
        "--nbval-sanitize-with",
        str(SANITIZE),
        "--nbval-cell-timeout",
        "300",
        "-p",
        "no:cacheprovider",
        "-o",
        "addopts=",
        "--rootdir",
        str(root),
        "-q",
        str(copy),
    ]
    process = subprocess.run(
        command, env=env, cwd=root, capture_output=True, text=True, timeout=900
    )
    return process, root / "runs" / "notebooks"


def unexecuted_checked_cells(notebook: Path) -> int:
    """How many cells tagged nbval-check-output have no committed output."""
    import nbformat

    nb = nbformat.read(notebook, as_version=4)
    return sum(
        1
        for cell in nb.cells
        if "nbval-check-output" in cell.metadata.get("tags", []) and not cell.get("outputs")
    )


def check_tour(results: dict[str, Any]) -> None:
    extra = results["extra"]
    assert 0 <= extra["example_correct"] <= len(extra["examples"])
    assert extra["teacher_params"] > 0


def check_intermediate_heads(results: dict[str, Any]) -> None:
    extra = results["extra"]
    assert extra["backbone_unchanged"] is True
    assert extra["checksum_before"] == extra["checksum_after"]
    members = {row["name"]: row for row in extra["bundled"]}
    heads = [name for name in members if name.startswith("head")]
    assert len(heads) == 3
    for row in members.values():
        for key in ("accuracy", "agreement", "ece"):
            assert 0 <= row[key] <= 1, (row["name"], key, row[key])
    assert members["teacher"]["agreement"] == 1.0
    for head in heads:  # the smoke profile's bundled resnet14 beats each of its heads
        assert members["teacher"]["accuracy"] > members[head]["accuracy"], head
    assert all(0 <= acc <= 1 for acc in extra["fresh_accuracy"].values())


RESULT_CHECKS: dict[str, Callable[[dict[str, Any]], None]] = {
    "00_tour": check_tour,
    "03_intermediate_heads": check_intermediate_heads,
}


@pytest.mark.slow
@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_runs_in_smoke_profile_and_matches_committed_outputs(
    notebook: Path, tmp_path: Path
) -> None:
    process, results_dir = run_nbval(notebook, tmp_path)
    hint = ""
    if unexecuted_checked_cells(notebook):
        hint = f"\n{notebook.name} has checked cells without committed outputs: run `make book`"
    assert process.returncode == 0, process.stdout[-6000:] + process.stderr[-2000:] + hint
    path = results_dir / notebook.stem / "results.json"
    assert path.is_file(), f"{notebook.name} recorded no {path.relative_to(tmp_path)}"
    results = json.loads(path.read_text())
    assert results["notebook"] == notebook.stem
    assert results["settings"]["profile"] == "smoke"
    RESULT_CHECKS.get(notebook.stem, lambda _: None)(results)


def test_the_sequence_has_notebooks() -> None:
    assert [n.stem for n in NOTEBOOKS][:1] == ["00_tour"]
    assert SANITIZE.is_file()


def parameters_cell(nb: Any) -> Any:
    cells = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(cells) == 1, "exactly one cell tagged 'parameters'"
    return cells[0]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_notebook_follows_the_conventions(notebook: Path) -> None:
    """A markdown title first; one parameters cell of plain literals, each with a help comment
    and readable by papermill (which skips, with a warning only, a line holding two '='); the
    next code cell validates through dihkit.runs.profiles."""
    import ast

    import nbformat
    import papermill

    nb = nbformat.read(notebook, as_version=4)
    assert nb.cells[0].cell_type == "markdown" and nb.cells[0].source.startswith("# ")
    cell = parameters_cell(nb)
    lines = cell.source.splitlines()
    assigned = []
    for statement in ast.parse(cell.source).body:
        assert isinstance(statement, ast.Assign), ast.unparse(statement)
        ast.literal_eval(statement.value)  # a plain literal
        last = lines[statement.end_lineno - 1]
        assert "  # " in last, f"parameter without a help comment: {last!r}"
        assigned.append(statement.targets[0].id)
    declared = papermill.inspect_notebook(str(notebook))
    assert list(declared) == assigned, "papermill cannot read some parameter lines"
    for name in ("profile", "out_dir", "cache_dir"):
        assert name in declared, name
    code_cells = [c for c in nb.cells if c.cell_type == "code"]
    validator = code_cells[code_cells.index(cell) + 1]
    assert "resolve(" in validator.source


def committed_outputs(notebook: Path) -> list[tuple[int, dict[str, Any]]]:
    """(cell index, output) for every committed output of ``notebook``."""
    nb = json.loads(notebook.read_text())
    return [(i, o) for i, c in enumerate(nb["cells"]) for o in c.get("outputs", [])]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_every_interactive_output_carries_a_png_twin(notebook: Path) -> None:
    """A plotly figure or a widget in a committed output comes with a PNG of its starting state
    (in the same output), so GitHub and viewers without JavaScript or a kernel show it."""
    import base64

    interactive = ("application/vnd.plotly.v1+json", "application/vnd.jupyter.widget-view+json")
    missing = []
    for index, output in committed_outputs(notebook):
        data = output.get("data", {})
        if any(kind in data for kind in interactive):
            png = "".join(data.get("image/png") or "").replace("\n", "")
            if not png or not base64.b64decode(png).startswith(b"\x89PNG\r\n\x1a\n"):
                missing.append(index)
            elif "application/vnd.plotly.v1+json" in data:
                html = "".join(data["text/html"]).replace("\n", "")
                assert png in html, f"cell {index}: the HTML lacks the PNG"
    assert not missing, f"{notebook.name}: cells {missing} show an interactive output alone"


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_no_committed_output_names_a_run_none(notebook: Path) -> None:
    """Run labels print a teacher or a label, never ``None, seed 0`` (a missing label)."""
    for index, output in committed_outputs(notebook):
        text = json.dumps(output.get("text", "")) + json.dumps(output.get("data", {}))
        assert "None, seed" not in text, f"{notebook.name} cell {index}"
