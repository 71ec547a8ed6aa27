"""The notebooks' measured wall times: recorded per profile, shown in every title, and the
committed outputs agree with the committed timings file."""

from __future__ import annotations

import json
from pathlib import Path

import nbformat
import pytest

from dihkit.book.execute import NotebookRun
from dihkit.book.timings import (
    TIMINGS_TAG,
    read_timings,
    record_timings,
    render_timing_cells,
    timings_markdown,
)

NOTEBOOKS_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOKS_DIR.glob("[0-9][0-9]_*.ipynb"))


def test_record_merges_one_profile_and_keeps_the_others(tmp_path):
    record_timings("classroom", [NotebookRun("01_kd.ipynb", tmp_path, 50.94)], tmp_path,
                   date="2026-01-01")  # fmt: skip
    record_timings("smoke", [NotebookRun("01_kd.ipynb", tmp_path, 4.0)], tmp_path, date="d")
    record_timings("classroom", [NotebookRun("02_gap.ipynb", tmp_path, 193.2)], tmp_path,
                   date="2026-01-02")  # fmt: skip
    timings = read_timings(tmp_path)
    assert list(timings) == ["smoke", "classroom"]  # ordered smoke, classroom, paper
    assert timings["classroom"]["notebooks"] == {"01_kd": 50.9, "02_gap": 193.2}
    assert timings["classroom"]["date"] == "2026-01-02"
    assert timings["smoke"]["notebooks"] == {"01_kd": 4.0}


def test_markdown_states_each_profile_or_that_it_was_not_measured(tmp_path):
    record_timings("classroom", [NotebookRun("02_gap.ipynb", tmp_path, 193.2)], tmp_path,
                   date="2026-01-02")  # fmt: skip
    text = timings_markdown("02_gap", tmp_path)
    assert "**classroom** 3.2 min" in text and "2026-01-02" in text
    assert "**smoke** not measured yet" in text
    assert "**paper** needs a GPU" in text
    assert "not measured yet" in timings_markdown("99_other", tmp_path).split("classroom")[1]


def test_a_damaged_timings_file_reads_as_empty(tmp_path):
    (tmp_path / "timings.json").write_text('{"classroom": ')
    assert read_timings(tmp_path) == {}
    assert "not measured yet" in timings_markdown("01_kd", tmp_path)


def test_render_rewrites_the_timing_cell_from_the_file(tmp_path):
    nb = nbformat.v4.new_notebook()
    nb.cells = [nbformat.v4.new_markdown_cell("# t"), nbformat.v4.new_code_cell("x")]
    nb.cells[1].metadata["tags"] = [TIMINGS_TAG]
    path = tmp_path / "01_kd.ipynb"
    nbformat.write(nb, path)
    record_timings("smoke", [NotebookRun("01_kd.ipynb", tmp_path, 7.0)], tmp_path, date="d")
    assert render_timing_cells([path], tmp_path) == 1
    assert render_timing_cells([path], tmp_path) == 0  # already current
    output = nbformat.read(path, as_version=4).cells[1].outputs[0]
    assert output["data"]["text/markdown"] == timings_markdown("01_kd", tmp_path)
    assert "**smoke** 7 s" in output["data"]["text/markdown"]


@pytest.mark.parametrize("notebook", NOTEBOOKS, ids=[n.stem for n in NOTEBOOKS])
def test_every_title_shows_the_committed_classroom_time(notebook: Path) -> None:
    nb = json.loads(notebook.read_text())
    cell = nb["cells"][1]
    assert TIMINGS_TAG in cell["metadata"].get("tags", []), "the second cell shows the timings"
    timings = read_timings(NOTEBOOKS_DIR)
    assert notebook.stem in timings["classroom"]["notebooks"], "no classroom time recorded"
    (output,) = cell["outputs"]
    stored = "".join(output["data"]["text/markdown"])
    assert stored == timings_markdown(notebook.stem, NOTEBOOKS_DIR)


def test_a_record_names_the_processor_and_threads_and_the_title_shows_the_processor(tmp_path):
    torch = pytest.importorskip("torch")
    record_timings("smoke", [NotebookRun("01_kd.ipynb", tmp_path, 7.0)], tmp_path, date="d")
    entry = read_timings(tmp_path)["smoke"]
    assert entry["threads"] == torch.get_num_threads()
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.is_file() and "model name" in cpuinfo.read_text():
        first = next(line for line in cpuinfo.read_text().splitlines() if "model name" in line)
        assert entry["cpu"] == first.split(":", 1)[1].strip()
    assert f"**smoke** 7 s ({entry['cpus']} CPUs ({entry['cpu']}), d)" in timings_markdown(
        "01_kd", tmp_path
    )
    # A record from before the processor was kept shows the count alone.
    (tmp_path / "timings.json").write_text(
        json.dumps({"smoke": {"date": "d", "cpus": 2, "notebooks": {"01_kd": 7.0}}})
    )
    assert "**smoke** 7 s (2 CPUs, d)" in timings_markdown("01_kd", tmp_path)
