"""The offline HTML book: one page per executed notebook and an ``index.html`` linking them.

Pages need no kernel and no network. nbconvert's ``lab`` template is used with four changes:
plotly.js is embedded once at the top of every page that has a plotly figure (before require.js,
so it defines ``window.Plotly``); require.js, the widgets HTML manager and MathJax come from the
local copies in :mod:`dihkit.book.assets` (copied into ``_static/``) or are left out; the
MermaidJS loader (a CDN import) is dropped. Plotly outputs that carry only the plotly JSON get
their ``text/html`` rendering added, and saved widget state is kept, so widgets render.

The book never shows an outdated page as if it were current: the sequence's ``sequence.json``
records each notebook's state in the latest tour (see :func:`dihkit.book.tour.run_sequence`),
and a page whose notebook failed there (its executed copy shows the failing cell), or that the
tour did not reach because an earlier notebook failed (its page is from an earlier run), opens
with a note saying so and is marked in the index. Pages whose executed notebook is gone are
removed. Pages and the index are written atomically.
"""

from __future__ import annotations

import copy
import functools
import html
import json
import shutil
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from dihkit.book import assets as book_assets
from dihkit.errors import ConfigError
from dihkit.files import write_text_atomic
from dihkit.viz import PLOTLY_MIMETYPE, plotly_div
from dihkit.viz.output import WIDGET_MIMETYPE

NOTEBOOK_PATTERN = "[0-9][0-9]_*.ipynb"
SEQUENCE_FILE = "sequence.json"
STATIC = "_static"
URL_KEYS = {  # package folder -> the HTMLExporter template variable its entry file fills
    "requirejs": "require_js_url",
    "html-manager": "widget_renderer_url",
    "mathjax": "mathjax_url",
}

TEMPLATE = r"""
{%- extends 'index.html.j2' -%}
{% from 'jupyter_widgets.html.j2' import jupyter_widgets %}

{%- block html_head_js_requirejs -%}
{%- if resources.dihkit_plotly_js %}
<script type="text/javascript">window.PlotlyConfig = {MathJaxConfig: 'local'};</script>
<script type="text/javascript">{{ resources.dihkit_plotly_js }}</script>
{%- endif %}
{%- if resources.require_js_url %}
<script src="{{ resources.require_js_url }}"></script>
{%- endif %}
{%- endblock html_head_js_requirejs -%}

{% block jupyter_widgets %}
{%- if "widgets" in nb.metadata and resources.widget_renderer_url -%}
{{ jupyter_widgets('', '', resources.widget_renderer_url) }}
{%- endif -%}
{% endblock jupyter_widgets %}

{%- block html_head_js_mathjax -%}
{%- if resources.mathjax_url %}
<script type="text/javascript">
window.MathJax = {
  tex: {inlineMath: [['$', '$'], ['\\(', '\\)']], displayMath: [['$$', '$$'], ['\\[', '\\]']],
        processEscapes: true, processEnvironments: true},
  options: {ignoreHtmlClass: 'jp-OutputArea-output'}
};
</script>
<script src="{{ resources.mathjax_url }}"></script>
<script type="text/javascript">
// The widgets' HTML manager typesets labels with MathJax 2's MathJax.Hub.Queue, which MathJax 3
// lacks: without this bridge to typesetPromise every widget on the page throws.
(function () {
  var mathjax = window.MathJax;
  if (!mathjax || mathjax.Hub) { return; }
  mathjax.Hub = {Queue: function (job) {
    var element = job && job[2];
    var ready = (mathjax.startup && mathjax.startup.promise) || Promise.resolve();
    ready.then(function () {
      return element && mathjax.typesetPromise ? mathjax.typesetPromise([element]) : null;
    }).catch(function (error) { console.warn('MathJax could not typeset a widget', error); });
  }};
}());
</script>
{%- endif %}
{%- endblock html_head_js_mathjax -%}

{%- block html_head_js_mermaidjs -%}
{%- endblock html_head_js_mermaidjs -%}
"""


@dataclass(frozen=True)
class BookPage:
    """One written page."""

    notebook: str  # the executed notebook's file name
    page: Path
    title: str
    seconds: float | None
    state: str = ""  # "" (current), "failed" or "stale" (see the module docstring)


def add_plotly_html(nb: Any, *, replace: bool = False) -> int:
    """Give every plotly output that has only the plotly JSON a ``text/html`` rendering (without
    plotly.js); returns how many were added. Recent plotly, run headless, emits only the JSON,
    which nbconvert's HTML would drop. With ``replace``, outputs that have one get it rendered
    again from their JSON too (an older kit's rendering may differ: it auto-played frames)."""
    added = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if PLOTLY_MIMETYPE in data and (replace or "text/html" not in data):
                data["text/html"] = plotly_div(data[PLOTLY_MIMETYPE], data.get("image/png"))
                added += 1
    return added


def keep_widget_snapshots(nb: Any) -> int:
    """Drop the widget view from outputs that also hold a PNG snapshot, so the page shows the
    picture where no widget manager can draw the widget; returns how many were changed."""
    changed = 0
    for cell in nb.cells:
        for output in cell.get("outputs", []):
            data = output.get("data", {})
            if WIDGET_MIMETYPE in data and "image/png" in data:
                del data[WIDGET_MIMETYPE]
                changed += 1
    return changed


def has_plotly(nb: Any) -> bool:
    """Whether any output draws a plotly figure."""
    return any(
        "plotly-graph-div" in output.get("data", {}).get("text/html", "")
        for cell in nb.cells
        for output in cell.get("outputs", [])
    )


def notebook_title(nb: Any, fallback: str) -> str:
    """The first markdown heading of a notebook, else ``fallback``."""
    for cell in nb.cells:
        if cell.cell_type == "markdown":
            for line in cell.source.splitlines():
                if line.startswith("#"):
                    return line.lstrip("#").strip()
    return fallback


def sequence_entries(executed_dir: str | Path) -> dict[str, dict[str, Any]]:
    """Each notebook's entry in ``executed_dir/sequence.json`` (``seconds``, ``params`` and,
    from a tour that failed, ``state`` with ``error`` or ``stopped_at``); empty without one."""
    path = Path(executed_dir) / SEQUENCE_FILE
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text()).get("notebooks", {})
    except (OSError, json.JSONDecodeError, AttributeError):
        return {}
    return (
        {k: v for k, v in entries.items() if isinstance(v, dict)}
        if isinstance(entries, dict)
        else {}
    )


def _seconds(entry: Mapping[str, Any]) -> float | None:
    try:
        return float(entry["seconds"])
    except (KeyError, TypeError, ValueError):
        return None


def state_note(entry: Mapping[str, Any]) -> str:
    """The note a page opens with when its notebook is not current: failed in the latest tour,
    or not reached by it (an earlier notebook failed); empty for a current page."""
    state = entry.get("state")
    if state == "failed":
        return (
            "> **This notebook failed in the latest run of the tour**, so this page shows the "
            "run up to the failing cell, not finished results: "
            f"{entry.get('error', 'see the failing cell below')}. Fix it and run the tour again."
        )
    if state == "stale":
        return (
            "> **This page is from an earlier run.** The latest run of the tour stopped at "
            f"{entry.get('stopped_at', 'an earlier notebook')}, which failed, before reaching "
            "this notebook."
        )
    return ""


def _copy_assets(book_dir: Path, js_dir: Path | None) -> dict[str, str]:
    """Copy the local JavaScript into ``book_dir/_static`` and return the template URLs."""
    found = book_assets.available(js_dir)
    urls = {}
    for package in book_assets.PACKAGES:
        if package.folder not in found:
            continue
        source = found[package.folder]
        root = source.parents[len(Path(package.entry).parts) - 1]
        target = book_dir / STATIC / package.folder
        shutil.copytree(root, target, dirs_exist_ok=True)
        urls[URL_KEYS[package.folder]] = f"{STATIC}/{package.folder}/{package.entry}"
    return urls


def _exporter(urls: Mapping[str, str]) -> Any:
    from jinja2 import DictLoader
    from nbconvert import HTMLExporter

    return HTMLExporter(
        template_name="lab",
        template_file="dihkit_book.html.j2",
        extra_loaders=[DictLoader({"dihkit_book.html.j2": TEMPLATE})],
        embed_images=True,
        require_js_url=urls.get("require_js_url", ""),
        widget_renderer_url=urls.get("widget_renderer_url", ""),
        mathjax_url=urls.get("mathjax_url", ""),
    )


@functools.cache
def _plotly_js() -> str:
    from plotly.offline import get_plotlyjs

    return get_plotlyjs()


def write_page(nb: Any, page: Path, urls: Mapping[str, str]) -> Path:
    """Render one executed notebook to ``page`` (see the module docstring); ``urls`` are the
    template's ``require_js_url``, ``widget_renderer_url`` and ``mathjax_url`` (absent: left
    out)."""
    nb = copy.deepcopy(nb)
    add_plotly_html(nb, replace=True)
    if not urls.get("widget_renderer_url"):
        keep_widget_snapshots(nb)
    resources = {
        "dihkit_plotly_js": _plotly_js() if has_plotly(nb) else "",
        "metadata": {"name": page.stem},
    }
    body, _ = _exporter(urls).from_notebook_node(nb, resources=resources)
    write_text_atomic(page, body)
    return page


def _format_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    minutes, rest = divmod(round(seconds), 60)
    return f"{minutes}:{rest:02d} min" if minutes else f"{seconds:.1f} s"


def write_index(book_dir: Path, pages: list[BookPage], profile: str | None = None) -> Path:
    """``index.html``: a table of the pages with each notebook's wall time."""
    states = {
        "failed": " <b>(failed in the latest run)</b>",
        "stale": " <b>(from an earlier run)</b>",
    }
    rows = "\n".join(
        f'<tr><td><a href="{html.escape(p.page.name)}">{html.escape(p.title)}</a>'
        f"{states.get(p.state, '')}</td><td>{html.escape(p.notebook)}</td>"
        f"<td>{_format_seconds(p.seconds)}</td></tr>"
        for p in pages
    )
    total = sum(p.seconds for p in pages if p.seconds is not None)
    regime = f" (profile: {html.escape(profile)})" if profile else ""
    text = f"""<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>dihkit: the notebook book</title>
<style>
body {{ font-family: system-ui, sans-serif; max-width: 52rem; margin: 2rem auto; }}
table {{ border-collapse: collapse; width: 100%; }}
td, th {{ border-bottom: 1px solid #ddd; padding: 0.4rem 0.6rem; text-align: left; }}
</style></head>
<body>
<h1>dihkit: knowledge distillation via intermediate heads</h1>
<p>The executed notebook sequence{regime}. Every page works offline, without a kernel.</p>
<table>
<tr><th>notebook</th><th>file</th><th>wall time</th></tr>
{rows}
<tr><td><b>total</b></td><td></td><td>{_format_seconds(total)}</td></tr>
</table>
</body></html>
"""
    index = book_dir / "index.html"
    write_text_atomic(index, text)
    return index


def write_book(
    executed_dir: str | Path, book_dir: str | Path, *, js_dir: str | Path | None = None
) -> Path:
    """Write one HTML page per executed notebook (``NN_*.ipynb`` in ``executed_dir``) and an
    ``index.html`` into ``book_dir``; returns the index. Wall times come from the sequence's
    ``sequence.json`` (see :func:`dihkit.book.tour.run_sequence`), else papermill's metadata."""
    import nbformat

    executed_dir, book_dir = Path(executed_dir), Path(book_dir)
    notebooks = sorted(executed_dir.glob(NOTEBOOK_PATTERN))
    if not notebooks:
        raise ConfigError(f"no executed notebooks (NN_*.ipynb) in {str(executed_dir)!r}")
    book_dir.mkdir(parents=True, exist_ok=True)
    urls = _copy_assets(book_dir, Path(js_dir) if js_dir is not None else None)
    missing = [
        f"{p.name}@{p.version}" for p in book_assets.PACKAGES if URL_KEYS[p.folder] not in urls
    ]
    if missing:
        print(
            f"dihkit book: no local copy of {', '.join(missing)}, so the pages leave those "
            "scripts out (widgets and math stay unrendered); `make js` (a checkout) or "
            "`python -m dihkit.book.assets` fetches them"
        )
    entries = sequence_entries(executed_dir)
    pages, profile = [], None
    for path in notebooks:
        nb = nbformat.read(path, as_version=4)
        meta = nb.metadata.get("papermill", {})
        profile = profile or (meta.get("parameters") or {}).get("profile")
        entry = entries.get(path.name, {})
        note = state_note(entry)
        if note:
            nb.cells.insert(0, nbformat.v4.new_markdown_cell(note))
        page = write_page(nb, book_dir / f"{path.stem}.html", urls)
        seconds = _seconds(entry) if "seconds" in entry else meta.get("duration")
        state = entry.get("state", "") if note else ""
        pages.append(BookPage(path.name, page, notebook_title(nb, path.stem), seconds, state))
    current = {p.page.name for p in pages}
    for old_page in book_dir.glob(NOTEBOOK_PATTERN.replace(".ipynb", ".html")):
        if old_page.name not in current:  # its executed notebook is gone
            old_page.unlink()
    return write_index(book_dir, pages, profile)


__all__ = [
    "BookPage",
    "add_plotly_html",
    "has_plotly",
    "sequence_entries",
    "state_note",
    "write_book",
    "write_index",
    "write_page",
]
