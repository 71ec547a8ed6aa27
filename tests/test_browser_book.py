"""The offline HTML book in headless Chromium with the network blocked.

The book is written by :func:`dihkit.book.html.write_book`, as ``make tour`` does, from the
committed notebooks (executed, with their outputs and widget state) or from the folder of
executed notebooks named by ``$DIHKIT_BROWSER_EXECUTED`` (e.g. ``runs/tour`` after ``make
tour``). Every request other than ``file:`` is aborted and fails the test. Each page must draw
every matplotlib image, plotly figure and saved widget of its notebook, log no console error,
and the plotly twins of the explorers must respond to their slider (and head menu).
"""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_support import REPO, PageLog, artifact, block_network, settled

from dihkit.book import assets as book_assets
from dihkit.book.html import NOTEBOOK_PATTERN, write_book
from dihkit.viz import PLOTLY_MIMETYPE

pytestmark = pytest.mark.browser

EXECUTED = Path(os.environ.get("DIHKIT_BROWSER_EXECUTED") or REPO / "notebooks")
STEMS = [path.stem for path in sorted(EXECUTED.glob(NOTEBOOK_PATTERN))]
WIDGET_VIEW = "application/vnd.jupyter.widget-view+json"


@dataclass(frozen=True)
class Expected:
    """What a page must show, read from its notebook."""

    images: int
    plots: list[dict[str, Any]]  # the plotly JSON of each figure
    widgets: int
    math: bool


def expected(stem: str, have_widgets: bool) -> Expected:
    """A widget's PNG snapshot shows only where no widget manager draws the widget itself."""
    nb = nbformat.read(EXECUTED / f"{stem}.ipynb", as_version=4)
    outputs = [o.get("data", {}) for c in nb.cells for o in c.get("outputs", [])]
    return Expected(
        images=sum(
            "image/png" in data and not (have_widgets and WIDGET_VIEW in data) for data in outputs
        ),
        plots=[data[PLOTLY_MIMETYPE] for data in outputs if PLOTLY_MIMETYPE in data],
        widgets=sum(WIDGET_VIEW in data for data in outputs),
        math=any(c.cell_type == "markdown" and "$" in c.source for c in nb.cells),
    )


@pytest.fixture(scope="session")  # kept while other modules' tests run in between
def book(tmp_path_factory: pytest.TempPathFactory) -> Path:
    target = tmp_path_factory.mktemp("book")
    write_book(EXECUTED, target)
    return target


@pytest.fixture
def offline(browser: Any) -> Iterator[tuple[Any, PageLog]]:
    """A page whose every non-``file:`` request is aborted and recorded."""
    context = browser.new_context(viewport={"width": 1300, "height": 900})
    log = PageLog()
    block_network(context, log)
    try:
        yield log.watch(context.new_page()), log
    finally:
        context.close()


DRAWN = """() => ({
  images: [...document.querySelectorAll('.jp-OutputArea-output img')]
    .filter(i => i.src.startsWith('data:image/png') && i.complete && i.naturalWidth > 0).length,
  plots: [...document.querySelectorAll('.plotly-graph-div')]
    .filter(d => d._fullLayout && d.querySelector('.main-svg .trace')).length,
  widgets: [...document.querySelectorAll(
      'script[type="application/vnd.jupyter.widget-view+json"]')]
    .filter(s => s.parentElement.querySelector('.lm-Widget.jupyter-widgets')).length,
  math: document.querySelectorAll('mjx-container').length,
})"""

FIGURE_STATE = """gd => ({
  title: (gd.querySelector('.gtitle') || {}).textContent || '',
  sliders: gd._fullLayout.sliders.filter(s => s.visible).map(s => s.active),
  bars: [...gd.querySelectorAll('.main-svg .trace path')].map(p => p.getAttribute('d'))
    .join(' '),
})"""


def wait_until_drawn(page: Any, want: dict[str, int]) -> dict[str, int]:
    """Wait until the page has drawn ``want`` (images, plots, widgets); what it drew."""
    page.wait_for_function(
        f"""want => {{
          const drawn = ({DRAWN})();
          return Object.keys(want).every(key => drawn[key] >= want[key]);
        }}""",
        arg=want,
        timeout=60_000,
    )
    return page.evaluate(DRAWN)


def moves_with_its_slider(page: Any, figure: Any, name: str) -> None:
    """Click the far end of the figure's visible slider: the step, title and bars change."""
    rail = figure.locator(".slider-container .slider-rail-touch-rect")
    assert rail.count() == 1, "one slider shows at a time"
    before = figure.evaluate(FIGURE_STATE)
    steps = figure.evaluate("gd => gd._fullLayout.sliders.find(s => s.visible).steps.length")
    target = steps - 1 if before["sliders"][0] < (steps - 1) / 2 else 0
    box = rail.bounding_box()
    rail.click(position={"x": box["width"] - 3 if target else 3, "y": box["height"] / 2})
    after = settled(
        lambda: figure.evaluate(FIGURE_STATE), before, lambda s: s["sliders"] == [target], 20
    )
    figure.screenshot(path=artifact(f"book-{name}-slider.png"))
    assert after["bars"] != before["bars"], "the bars did not change with the slider"
    assert after["title"] != before["title"], "the title did not follow the slider"


def moves_with_its_menu(page: Any, figure: Any, name: str) -> None:
    """Pick the menu's first entry (a single head): the bars and the title change."""
    before = figure.evaluate(FIGURE_STATE)
    figure.locator(".updatemenu-header-group").click()
    first = figure.locator(".updatemenu-dropdown-button").first
    label = first.text_content()
    first.click()
    after = settled(lambda: figure.evaluate(FIGURE_STATE), before, lambda s: label in s["title"])
    figure.screenshot(path=artifact(f"book-{name}-menu.png"))
    assert after["bars"] != before["bars"], "the bars did not change with the menu"
    moves_with_its_slider(page, figure, f"{name}-{label.split()[0]}")


@pytest.mark.parametrize("stem", STEMS)
def test_book_page_draws_everything_offline(offline, book: Path, stem: str) -> None:
    page, log = offline
    have_widgets = "html-manager" in book_assets.available()
    want = expected(stem, have_widgets)
    have_math = "mathjax" in book_assets.available()
    page.goto((book / f"{stem}.html").as_uri(), wait_until="load")
    counts = {"images": want.images, "plots": len(want.plots)}
    if have_widgets:
        counts["widgets"] = want.widgets
    drawn = wait_until_drawn(page, counts)
    assert {key: drawn[key] for key in counts} == counts
    if want.math and have_math:
        assert drawn["math"] > 0, "MathJax typeset nothing"
    page.wait_for_timeout(1000)  # a figure that played its frames on load would have moved
    figures = page.locator(".plotly-graph-div")
    for i, spec in enumerate(want.plots):
        state = figures.nth(i).evaluate(FIGURE_STATE)
        saved = ((spec.get("layout") or {}).get("title") or {}).get("text", "")
        assert state["title"] == saved, "the figure opens where it was saved"
    first = page.locator(".jp-OutputArea-output img, .plotly-graph-div, .lm-Widget").first
    if first.count():
        first.scroll_into_view_if_needed()
    page.screenshot(path=artifact(f"book-{stem}.png"))

    for i, spec in enumerate(want.plots):
        figure, name = figures.nth(i), f"{stem}-{i}"
        figure.scroll_into_view_if_needed()
        if spec["layout"].get("updatemenus"):
            moves_with_its_menu(page, figure, name)
        elif spec["layout"].get("sliders"):
            moves_with_its_slider(page, figure, name)
    assert log.blocked == [], "the page requested the network"
    assert log.errors == [], "the console shows errors"


def test_book_index_links_every_page_offline(offline, book: Path) -> None:
    page, log = offline
    page.goto((book / "index.html").as_uri(), wait_until="load")
    links = page.eval_on_selector_all("a", "links => links.map(a => a.getAttribute('href'))")
    assert links == [f"{stem}.html" for stem in STEMS]
    page.locator("a").nth(len(STEMS) // 2).click()
    page.wait_for_load_state("load")
    assert page.url.endswith(f"/{STEMS[len(STEMS) // 2]}.html")
    assert log.blocked == [] and log.errors == []
