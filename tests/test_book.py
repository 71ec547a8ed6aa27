"""Running the sequence headless (papermill) and the offline HTML book, on small synthetic
notebooks so each test takes seconds."""

from __future__ import annotations

import argparse
import base64
import json
import os
import re
import shutil
import subprocess
from pathlib import Path

import nbformat
import pytest
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook
from notebook_support import write_notebook

from dihkit.book import assets as book_assets
from dihkit.book import tour as book
from dihkit.book.html import add_plotly_html, write_book, write_page
from dihkit.book.notebooks import copy_notebooks, notebook_files, results_folder
from dihkit.cli.main import main
from dihkit.errors import ConfigError
from dihkit.resources import bundled
from dihkit.viz import PLOTLY_MIMETYPE

PARAMETERS = """\
profile = "classroom"  # smoke | classroom | paper
out_dir = "../runs/notebooks"  # results folder
cache_dir = "../runs/cache"  # shared runs
scale = 1.0  # how tall the line is
"""

RECORD = """\
import json
import os
from pathlib import Path

folder = Path(out_dir) / "{stem}"
folder.mkdir(parents=True, exist_ok=True)
values = dict(profile=profile, cache_dir=cache_dir, scale=scale, cwd=os.getcwd())
(folder / "results.json").write_text(json.dumps(values))
"""

FIGURES = [
    # a matplotlib figure, shown as the cell's value (image/png)
    "import matplotlib.pyplot as plt\n\n"
    "fig, ax = plt.subplots()\nax.plot([0, scale])\nplt.close(fig)\nfig",
    # a plotly figure through the kit's helper (plotly JSON + text/html)
    "import matplotlib.pyplot as plt\nimport plotly.graph_objects as go\n\n"
    "from dihkit.viz import show_plotly\n\n"
    "twin, ax = plt.subplots()\nax.bar([0, 1, 2], [1, 2, 3])\nplt.close(twin)\n"
    "show_plotly(go.Figure(go.Bar(y=[1, 2, 3])), static=twin)",
    # a plotly figure as headless plotly emits it: the JSON only
    "import json\n\nimport plotly.graph_objects as go\nfrom IPython.display import display\n\n"
    "spec = json.loads(go.Figure(go.Scatter(y=[3, 1, 2])).to_json())\n"
    "display({'application/vnd.plotly.v1+json': spec}, raw=True)",
    # a widget, whose state nbclient saves in the notebook's metadata
    "import ipywidgets\n\nipywidgets.IntSlider(value=3, description='k')",
]


def make_notebook(folder: Path, stem: str, extra_parameters: str = "", figures: bool = True):
    cells = [
        new_markdown_cell(f"# Synthetic {stem}"),
        new_code_cell(PARAMETERS + extra_parameters, metadata={"tags": ["parameters"]}),
        new_code_cell(RECORD.format(stem=stem)),
    ]
    if figures:
        cells += [new_code_cell(source) for source in FIGURES]
    return write_notebook(folder, stem, cells)


@pytest.fixture(scope="module")
def executed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, list]:
    """Two synthetic notebooks run in the smoke profile; only the first declares ``tau``."""
    root = tmp_path_factory.mktemp("sequence")
    notebooks = root / "notebooks"
    make_notebook(notebooks, "00_first", "tau = 5.0  # a temperature\n")
    make_notebook(notebooks, "01_second", figures=False)
    out = root / "out"
    runs = book.run_sequence(
        "smoke",
        params={"tau": 3, "scale": 2.0},
        out_dir=out,
        progress=False,
        notebooks_dir=notebooks,
    )
    return notebooks, out, runs


def test_run_sequence_executes_each_notebook_into_out_dir_with_its_wall_time(executed):
    notebooks, out, runs = executed
    assert [r.name for r in runs] == ["00_first.ipynb", "01_second.ipynb"]
    for run in runs:
        assert run.output == out.resolve() / run.name and run.output.is_file()
        assert run.seconds > 0
    recorded = json.loads((out / "sequence.json").read_text())
    assert recorded["profile"] == "smoke"
    assert set(recorded["notebooks"]) == {"00_first.ipynb", "01_second.ipynb"}


def test_run_sequence_injects_profile_and_absolute_folders_under_out_dir(executed):
    notebooks, out, _ = executed
    values = json.loads((out / "00_first" / "results.json").read_text())
    assert values["profile"] == "smoke"
    assert values["cache_dir"] == str(out.resolve() / "cache")
    assert values["cwd"] == str(notebooks)  # relative paths in notebooks keep working
    assert not (notebooks.parent / "runs").exists()  # nothing written next to the notebooks


def test_a_parameter_goes_only_to_the_notebooks_that_declare_it(executed):
    _, out, _ = executed
    first = nbformat.read(out / "00_first.ipynb", as_version=4)
    second = nbformat.read(out / "01_second.ipynb", as_version=4)
    assert first.metadata.papermill.parameters["tau"] == 3
    assert "tau" not in second.metadata.papermill.parameters
    assert json.loads((out / "01_second" / "results.json").read_text())["scale"] == 2.0


def test_an_unknown_parameter_is_a_config_error_naming_it_and_the_valid_names(executed):
    notebooks, out, _ = executed
    with pytest.raises(ConfigError, match=r"tua.*declare: scale, tau"):
        book.run_sequence("smoke", params={"tua": 3}, out_dir=out, notebooks_dir=notebooks)


def test_a_parameter_of_an_unselected_notebook_is_unknown(executed):
    notebooks, out, _ = executed
    with pytest.raises(ConfigError, match="tau"):
        book.run_sequence(
            "smoke", only=["01"], params={"tau": 3}, out_dir=out, notebooks_dir=notebooks
        )


def test_unknown_only_prefix_and_profile_are_config_errors(executed):
    notebooks, out, _ = executed
    with pytest.raises(ConfigError, match="09.*00_first, 01_second"):
        book.run_sequence("smoke", only=["09"], out_dir=out, notebooks_dir=notebooks)
    with pytest.raises(ConfigError, match="profile"):
        book.run_sequence("quick", out_dir=out, notebooks_dir=notebooks)


def test_only_accepts_number_and_name_prefixes(executed):
    notebooks, _, _ = executed
    assert [p.stem for p in book.sequence_notebooks(["1"], notebooks)] == ["01_second"]
    assert [p.stem for p in book.sequence_notebooks(["00_fi"], notebooks)] == ["00_first"]


def figure_outputs(nb) -> tuple[int, int]:
    images = plots = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            images += "image/png" in data
            plots += PLOTLY_MIMETYPE in data
    return images, plots


@pytest.fixture(scope="module")
def book_dir(executed, tmp_path_factory) -> Path:
    _, out, _ = executed
    target = tmp_path_factory.mktemp("book")
    write_book(out, target)
    return target


def test_book_has_a_page_per_notebook_and_an_index_with_wall_times(book_dir):
    index = (book_dir / "index.html").read_text()
    for stem in ("00_first", "01_second"):
        assert (book_dir / f"{stem}.html").is_file()
        assert f'href="{stem}.html"' in index
    assert "Synthetic 00_first" in index
    assert re.search(r"\d+(\.\d)? s</td>", index)


def test_book_page_shows_every_figure_and_embeds_plotly_once(executed, book_dir):
    from plotly.offline import get_plotlyjs

    _, out, _ = executed
    images, plots = figure_outputs(nbformat.read(out / "00_first.ipynb", as_version=4))
    # one matplotlib figure, the kit's plotly figure with its PNG twin, plotly's JSON alone
    assert (images, plots) == (2, 2)
    page = (book_dir / "00_first.html").read_text()
    assert len(re.findall(r'<img [^>]*src="data:image/png;base64,', page)) == images
    assert page.count('class="plotly-graph-div"') == plots
    assert page.count('class="dihkit-static-twin"') == 1  # hidden once plotly has drawn
    assert page.count(get_plotlyjs()[:200]) == 1
    assert page.index(get_plotlyjs()[:200]) < page.index("<body")  # before any figure


def test_book_pages_load_no_remote_script(book_dir):
    for page in book_dir.glob("*.html"):
        text = page.read_text()
        assert not re.search(r"<script[^>]+src=[\"']?https?://", text), page.name
        assert not re.search(r"widgetRendererSrc = '?https?://", text), page.name
        assert not re.search(r"import\([\"']https?://", text), page.name  # e.g. MermaidJS


def test_book_keeps_widget_state_and_serves_widget_scripts_locally(book_dir):
    page = (book_dir / "00_first.html").read_text()
    assert 'type="application/vnd.jupyter.widget-state+json"' in page
    assert 'type="application/vnd.jupyter.widget-view+json"' in page
    if "html-manager" not in book_assets.available():
        pytest.skip("the widget scripts were not fetched (make js)")
    assert "_static/html-manager/dist/embed-amd.js" in page
    assert '<script src="_static/requirejs/require.js">' in page
    assert (book_dir / "_static" / "html-manager" / "dist" / "embed-amd.js").is_file()


def test_book_without_local_scripts_leaves_them_out_and_says_so(executed, tmp_path, capsys):
    _, out, _ = executed
    write_book(out, tmp_path / "book", js_dir=tmp_path / "nothing-here")
    message = capsys.readouterr().out
    assert message.count("\n") == 1 and "no local copy" in message
    page = (tmp_path / "book" / "00_first.html").read_text()
    assert "<script src=" not in page
    assert "widgetRendererSrc" not in page
    assert page.count('class="plotly-graph-div"') == 2  # figures still show


def test_a_page_without_the_widget_manager_shows_the_widgets_snapshot(tmp_path):
    png = base64.b64encode(b"\x89PNG snapshot").decode()
    view = {"model_id": "m", "version_major": 2, "version_minor": 0}
    output = nbformat.v4.new_output(
        "display_data",
        data={
            "application/vnd.jupyter.widget-view+json": view,
            "image/png": png,
            "text/plain": "w",
        },
    )
    state = {
        "m": {
            "model_name": "LabelModel",
            "model_module": "@jupyter-widgets/controls",
            "model_module_version": "2.0.0",
            "state": {},
        }
    }
    nb = new_notebook(cells=[new_code_cell("w", outputs=[output])])
    nb.metadata["widgets"] = {
        "application/vnd.jupyter.widget-state+json": {
            "state": state,
            "version_major": 2,
            "version_minor": 0,
        }
    }
    without = write_page(nb, tmp_path / "without.html", {}).read_text()
    assert f"data:image/png;base64,{png}" in without
    assert "application/vnd.jupyter.widget-view+json" not in without
    with_manager = {"widget_renderer_url": "_static/html-manager/dist/embed-amd.js"}
    drawn = write_page(nb, tmp_path / "with.html", with_manager).read_text()
    assert 'type="application/vnd.jupyter.widget-view+json"' in drawn
    assert nb.cells[0].outputs[0].data["image/png"] == png  # the notebook itself is untouched


def test_add_plotly_html_renders_json_only_outputs_once(executed):
    _, out, _ = executed
    nb = nbformat.read(out / "00_first.ipynb", as_version=4)
    assert add_plotly_html(nb) == 1
    assert add_plotly_html(nb) == 0


def test_plotly_animation_opens_at_its_saved_frame_and_widget_math_has_a_bridge(tmp_path):
    """A figure with frames is drawn at its saved state, also when the stored output's HTML came
    from plotly's default (auto-play every frame on load); the widgets' MathJax 2 call
    (``MathJax.Hub.Queue``) is bridged to MathJax 3. The browser tests see both happen."""
    import plotly.graph_objects as go
    import plotly.io as pio

    fig = go.Figure(go.Bar(y=[1, 2]), frames=[go.Frame(data=[go.Bar(y=[2, 1])], name="b")])
    stale = pio.to_html(fig, full_html=False, include_plotlyjs=False)
    assert "Plotly.animate" in stale
    output = nbformat.v4.new_output(
        "display_data", data={PLOTLY_MIMETYPE: json.loads(fig.to_json()), "text/html": stale}
    )
    nb = new_notebook(cells=[new_code_cell("fig", outputs=[output])])
    page = write_page(nb, tmp_path / "page.html", {"mathjax_url": "_static/mathjax/tex.js"})
    text = page.read_text()
    assert text.count('class="plotly-graph-div"') == 1
    assert "Plotly.animate" not in text
    assert "mathjax.Hub = {Queue:" in text


def test_parse_param_reads_python_literals_and_falls_back_to_strings():
    assert book.parse_param("tau=3") == ("tau", 3)
    assert book.parse_param("seeds=[0, 1]") == ("seeds", [0, 1])
    assert book.parse_param("teacher=resnet20") == ("teacher", "resnet20")
    assert book.parse_param("dataset=None") == ("dataset", None)
    with pytest.raises(ConfigError, match="NAME=VALUE"):
        book.parse_param("tau")


def test_tour_arguments_and_reserved_parameters():
    parser = book.add_tour_arguments(argparse.ArgumentParser())
    args = parser.parse_args(["--profile", "smoke", "--only", "03", "--param", "tau=3"])
    assert (args.profile, args.only, args.param, args.out) == (
        "smoke",
        ["03"],
        ["tau=3"],
        "runs/tour",
    )
    with pytest.raises(ConfigError, match="--profile"):
        book.assign_parameters({"profile": "smoke"}, [])


def tour_args(*argv: str) -> argparse.Namespace:
    return book.add_tour_arguments(argparse.ArgumentParser()).parse_args(list(argv))


def test_run_tour_rejects_a_misspelled_parameter_before_running(executed, tmp_path):
    notebooks, _, _ = executed
    args = tour_args("--notebooks", str(notebooks), "--param", "sclae=2", "--out", str(tmp_path))
    with pytest.raises(ConfigError, match="sclae"):
        book.run_tour(args)
    assert not list(tmp_path.iterdir())


def test_run_tour_runs_the_selection_and_writes_the_book(executed, tmp_path, capsys):
    notebooks, _, _ = executed
    args = tour_args(
        "--notebooks",
        str(notebooks),
        "--only",
        "01",
        "--param",
        "scale=4",
        "--out",
        str(tmp_path),
        "--profile",
        "smoke",
        "--quiet",
    )
    assert book.run_tour(args) == 0
    assert json.loads((tmp_path / "01_second" / "results.json").read_text())["scale"] == 4
    assert (tmp_path / "book" / "index.html").is_file()
    assert "01_second.ipynb" in capsys.readouterr().out


def test_clean_for_commit_drops_injected_cell_and_timings(executed):
    _, out, _ = executed
    nb = nbformat.read(out / "00_first.ipynb", as_version=4)
    assert any("injected-parameters" in c.metadata.get("tags", []) for c in nb.cells)
    cleaned = book._clean_for_commit(nb)
    assert not any("injected-parameters" in c.metadata.get("tags", []) for c in cleaned.cells)
    assert "papermill" not in cleaned.metadata
    assert all(
        "papermill" not in c.metadata and "execution" not in c.metadata for c in cleaned.cells
    )
    assert "widgets" in cleaned.metadata


def test_profiles_table_lists_every_profile():
    header = book.profiles_table().splitlines()[0].split()
    assert header == ["smoke", "classroom", "paper"]


def test_sequence_table_lists_the_parameters_without_the_tour_ones(executed):
    notebooks, _, _ = executed
    table = book.sequence_table(notebooks)
    assert table.splitlines() == ["00_first: scale, tau", "01_second: scale"]


@pytest.mark.slow
@pytest.mark.browser
@pytest.mark.skipif(shutil.which("chromium") is None, reason="needs a headless chromium")
def test_book_page_renders_offline_in_a_browser(book_dir):
    """Widgets and plotly figures are drawn by the local scripts with every host unreachable."""
    if "html-manager" not in book_assets.available():
        pytest.skip("the widget scripts were not fetched (make js)")
    command = [
        "chromium",
        "--headless",
        "--no-sandbox",
        "--disable-gpu",
        "--host-resolver-rules=MAP * ~NOTFOUND",
        "--virtual-time-budget=20000",
        "--dump-dom",
        (book_dir / "00_first.html").as_uri(),
    ]
    dom = subprocess.run(command, capture_output=True, text=True, timeout=120).stdout
    assert "widget-hslider" in dom  # the IntSlider, from its saved state
    assert dom.count('class="main-svg"') >= 2  # both plotly figures were drawn


def test_stored_outputs_of_another_profile_are_labelled_and_the_label_goes_away():
    import nbformat

    from dihkit.book.tour import OUTPUTS_NOTE_TAG, label_stored_outputs

    nb = nbformat.v4.new_notebook(
        cells=[nbformat.v4.new_markdown_cell("# 99 · x"), nbformat.v4.new_code_cell("1")]
    )
    labelled = label_stored_outputs(nb, "smoke", "classroom")
    notes = [c for c in labelled.cells if OUTPUTS_NOTE_TAG in c.metadata.get("tags", [])]
    assert len(notes) == 1 and "**smoke** profile" in notes[0].source
    assert labelled.cells[1] is notes[0]
    again = label_stored_outputs(labelled, "smoke", "classroom")
    assert sum(OUTPUTS_NOTE_TAG in c.metadata.get("tags", []) for c in again.cells) == 1
    cleared = label_stored_outputs(again, "classroom", "classroom")
    assert not any(OUTPUTS_NOTE_TAG in c.metadata.get("tags", []) for c in cleared.cells)


def test_notebook_files_are_the_sequence_then_what_it_needs_beside_it():
    names = [p.name for p in notebook_files()]
    beside = ["README.md", "nbval_sanitize.cfg", "timings.json"]
    assert names[0] == "00_tour.ipynb" and names[-3:] == beside
    assert names[:-3] == sorted(p.name for p in bundled("notebooks").glob("[0-9][0-9]_*.ipynb"))


def test_copy_notebooks_refuses_to_overwrite_unless_asked(tmp_path):
    source = tmp_path / "source"
    make_notebook(source, "00_first", figures=False)
    make_notebook(source, "01_second", figures=False)
    (source / "README.md").write_text("read me\n")
    (source / "scratch.txt").write_text("not shipped\n")
    dest = tmp_path / "course" / "notebooks"
    copies = copy_notebooks(dest, source=source)
    assert [p.name for p in copies] == ["00_first.ipynb", "01_second.ipynb", "README.md"]
    assert sorted(p.name for p in dest.iterdir()) == [
        "00_first.ipynb",
        "01_second.ipynb",
        "README.md",
    ]
    assert results_folder(dest) == (tmp_path / "course" / "runs").resolve()

    (dest / "00_first.ipynb").write_text("edited")
    (dest / "mine.ipynb").write_text("the user's")
    with pytest.raises(
        ConfigError, match=r"00_first\.ipynb already exists \(and 2 more.*--overwrite"
    ):
        copy_notebooks(dest, source=source)
    assert (dest / "00_first.ipynb").read_text() == "edited"  # nothing copied
    copy_notebooks(dest, source=source, overwrite=True)
    assert nbformat.read(dest / "00_first.ipynb", as_version=4).cells
    assert (dest / "mine.ipynb").read_text() == "the user's"  # other files left alone


def test_copy_notebooks_into_a_file_or_from_an_empty_folder_is_a_config_error(tmp_path):
    (tmp_path / "empty").mkdir()
    with pytest.raises(ConfigError, match="no notebooks"):
        copy_notebooks(tmp_path / "dest", source=tmp_path / "empty")
    (tmp_path / "file").write_text("")
    with pytest.raises(ConfigError, match="is not a folder; give a folder path"):
        copy_notebooks(tmp_path / "file")


def test_notebooks_command_copies_the_bundled_sequence_once(tmp_path, capsys):
    dest = tmp_path / "notebooks"
    assert main(["notebooks", str(dest)]) == 0
    out = capsys.readouterr().out
    assert "00_tour.ipynb" in out and str(tmp_path / "runs") in out
    assert (dest / "00_tour.ipynb").read_bytes() == (
        bundled("notebooks") / "00_tour.ipynb"
    ).read_bytes()
    assert main(["notebooks", str(dest)]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "00_tour.ipynb already exists" in err and "--overwrite" in err
    assert main(["notebooks", str(dest), "--overwrite"]) == 0


@pytest.mark.skipif(os.name != "posix", reason="IPC sockets are a POSIX transport")
def test_kernels_talk_over_ipc_sockets_not_unencrypted_tcp():
    from dihkit.book.execute import _kernel_manager_class

    manager = _kernel_manager_class()(kernel_name="python3")
    assert manager.transport == "ipc"


def test_notebooks_that_read_results_execute_after_the_others(tmp_path):
    import nbformat

    from dihkit.book.execute import execution_order, sequence_notebooks

    for name, reads in (("00_a", False), ("01_summary", True), ("02_b", False)):
        nb = nbformat.v4.new_notebook()
        if reads:
            nb.metadata["dihkit"] = {"reads_results": True}
        nbformat.write(nb, tmp_path / f"{name}.ipynb")
    ordered = execution_order(sequence_notebooks(None, tmp_path))
    assert [p.stem for p in ordered] == ["00_a", "02_b", "01_summary"]
    committed = sequence_notebooks(None, Path(__file__).resolve().parent.parent / "notebooks")
    assert execution_order(committed)[-1].stem == "07_comparison"
