"""The notebooks' explorers in JupyterLab, driven in headless Chromium like a person would.

One ``jupyter lab`` serves copies of the notebooks (outputs cleared, so an execution count
proves a cell ran) with ``DIHKIT_PROFILE=smoke`` for its kernels. Each test runs all cells from
the Run menu, moves the explorer's controls and reads the effect from the page's DOM: the
pictures and numbers the kernel sends back. Screenshots go to ``runs/browser-tests/``.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import nbformat
import pytest
from browser_support import (
    REPO,
    LabServer,
    PageLog,
    artifact,
    block_network,
    cell_errors,
    jupyter_lab,
    run_all_cells,
    settled,
)

pytestmark = pytest.mark.browser

NOTEBOOKS = ("01_knowledge_distillation", "03_intermediate_heads")


def cleared_copy(source: Path, folder: Path) -> None:
    """``source`` without outputs, execution counts or saved widget state."""
    nb = nbformat.read(source, as_version=4)
    nb.metadata.pop("widgets", None)
    for cell in nb.cells:
        if cell.cell_type == "code":
            cell.outputs, cell.execution_count = [], None
    nbformat.write(nb, folder / source.name)


@pytest.fixture(scope="module")
def lab(tmp_path_factory: pytest.TempPathFactory) -> Iterator[LabServer]:
    root = tmp_path_factory.mktemp("lab")
    (root / "notebooks").mkdir()
    for stem in NOTEBOOKS:
        cleared_copy(REPO / "notebooks" / f"{stem}.ipynb", root / "notebooks")
    with jupyter_lab(root, tmp_path_factory.mktemp("lab-state"), {"DIHKIT_PROFILE": "smoke"}) as s:
        yield s


@pytest.fixture
def page(browser: Any, lab: LabServer) -> Iterator[Any]:
    """A JupyterLab tab; requests that leave the server are aborted and fail the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    log = PageLog()
    block_network(context, log, allowed=(lab.url,))
    page = log.watch(context.new_page())
    try:
        yield page
        assert not log.blocked, f"JupyterLab requested outside the server: {log.blocked}"
    finally:
        context.close()


def ran_without_errors(page: Any, lab: LabServer, stem: str) -> Any:
    """Run all cells of ``stem``; the explorer widget's root element."""
    run_all_cells(page, lab, f"notebooks/{stem}.ipynb")
    errors = cell_errors(page)
    assert not errors, "\n\n".join(errors)
    explorer = page.locator(".jp-OutputArea-output .widget-vbox").first
    explorer.scroll_into_view_if_needed()
    page.screenshot(path=artifact(f"{stem}-ran.png"))
    return explorer


def move_slider(explorer: Any, description: str, key: str, presses: int) -> float:
    """Press ``key`` on the handle of the slider labelled ``description``; its new value."""
    slider = explorer.locator(".widget-slider", has=explorer.page.locator(f"text='{description}'"))
    handle = slider.locator(".noUi-handle")
    handle.focus()
    for _ in range(presses):
        handle.press(key)
    return float(handle.get_attribute("aria-valuenow"))


def pick(explorer: Any, description: str, index: int) -> str:
    """Choose option ``index`` of the dropdown labelled ``description``; its label."""
    dropdown = explorer.locator(
        ".widget-dropdown", has=explorer.page.locator(f"text='{description}'")
    )
    select = dropdown.locator("select")
    label = select.locator("option").nth(index).inner_text().replace("\xa0", " ")
    select.select_option(index=index)
    return label


# --------------------------------------------------------------------------------------------
# 01_knowledge_distillation: the temperature explorer

BARS_01 = """root => [...root.querySelectorAll('.widget-hbox')]
  .filter(row => row.querySelector('.widget-hprogress'))
  .map(row => ({
    p: parseFloat(row.lastElementChild.textContent),
    width: parseFloat(row.querySelector('.progress-bar').style.width),
  }))"""


def temperature_state(explorer: Any) -> tuple[list[float], list[float], str]:
    """The probabilities printed next to the bars, the bars' widths (%) and the summary."""
    rows = explorer.evaluate(BARS_01)
    summary = explorer.locator(".widget-html-content").last.inner_text()
    return [r["p"] for r in rows], [r["width"] for r in rows], summary


def entropy_in(summary: str) -> float:
    return float(re.search(r"entropy ([\d.]+) nats", summary).group(1))


def test_temperature_explorer_responds_in_jupyterlab(page: Any, lab: LabServer) -> None:
    stem = NOTEBOOKS[0]
    explorer = ran_without_errors(page, lab, stem)
    start = probs, widths, summary = settled(lambda: temperature_state(explorer), None)
    assert len(probs) == 10 and abs(sum(probs) - 1) < 0.01, probs
    assert summary.startswith("tau = 1:"), summary
    assert widths == pytest.approx([100 * p for p in probs], abs=0.1)  # the bars show them

    tau = move_slider(explorer, "tau", "ArrowRight", 6)  # step 0.5: 1 -> 4
    assert tau == 4.0
    hot_probs, hot_widths, hot_summary = settled(
        lambda: temperature_state(explorer), start, lambda state: state[2].startswith("tau = 4:")
    )
    explorer.screenshot(path=artifact(f"{stem}-tau-4.png"))
    assert hot_widths != widths, "the bars did not move with the temperature"
    assert hot_widths == pytest.approx([100 * p for p in hot_probs], abs=0.1)
    assert abs(sum(hot_probs) - 1) < 0.01
    assert max(hot_probs) < max(probs)  # a hotter softmax is flatter...
    assert entropy_in(hot_summary) > entropy_in(summary)  # ...and has more entropy

    label = pick(explorer, "image", 1)
    hot = hot_probs, hot_widths, hot_summary
    other_probs, other_widths, other_summary = settled(lambda: temperature_state(explorer), hot)
    explorer.screenshot(path=artifact(f"{stem}-image-1.png"))
    assert label.startswith("test #"), label
    assert other_summary.startswith("tau = 4:"), other_summary  # the temperature is kept
    assert other_widths == pytest.approx([100 * p for p in other_probs], abs=0.1)
    assert abs(sum(other_probs) - 1) < 0.01
    assert cell_errors(page) == []


# --------------------------------------------------------------------------------------------
# 03_intermediate_heads: the head explorer

PICTURE_03 = """async root => {
  const img = root.querySelector('img.widget-image');
  const bytes = await (await fetch(img.src)).arrayBuffer();
  const digest = new Uint8Array(await crypto.subtle.digest('SHA-256', bytes));
  return {digest: [...digest].map(b => b.toString(16).padStart(2, '0')).join(''),
          width: img.naturalWidth, caption: root.querySelector('.widget-html-content').textContent};
}"""


def picture(explorer: Any) -> dict[str, Any]:
    """The explorer's picture (SHA-256 of the PNG the kernel sent, pixel width) and caption."""
    return explorer.evaluate(PICTURE_03)


def cohort_average(caption: str) -> float:
    """The cohort average's top probability, as the caption prints it."""
    return float(re.search(r"cohort average: .* ([\d.]+)$", caption).group(1))


def test_head_explorer_responds_in_jupyterlab(page: Any, lab: LabServer) -> None:
    stem = NOTEBOOKS[1]
    explorer = ran_without_errors(page, lab, stem)
    start = settled(lambda: picture(explorer), None)
    assert start["caption"].startswith("tau = 10;"), start["caption"]
    heads = re.findall(r"(head\d \(layer\d\)):", start["caption"])
    assert len(heads) == 3 and "teacher:" in start["caption"]  # "all" members are shown
    explorer.screenshot(path=artifact(f"{stem}-tau-10.png"))

    tau = move_slider(explorer, "tau", "ArrowLeft", 4)  # step 0.5: 10 -> 8
    assert tau == 8.0
    cooler = settled(
        lambda: picture(explorer), start, lambda state: state["caption"].startswith("tau = 8;")
    )
    assert cooler["digest"] != start["digest"], "the picture did not change with tau"
    explorer.screenshot(path=artifact(f"{stem}-tau-8.png"))
    assert cooler["width"] == start["width"]  # the same panels, new bars
    assert cohort_average(cooler["caption"]) > cohort_average(start["caption"])  # sharper

    head = pick(explorer, "head", 0)
    assert head == heads[0]
    alone = settled(
        lambda: picture(explorer),
        cooler,
        lambda state: state["caption"].startswith(f"tau = 8; top class (probability): {head}:"),
    )
    assert alone["digest"] != cooler["digest"], "the picture did not change with the head"
    explorer.screenshot(path=artifact(f"{stem}-{head.split()[0]}.png"))
    assert not any(other in alone["caption"] for other in [*heads[1:], "teacher:"])
    assert alone["width"] < cooler["width"]  # the image, one head and the average only
    assert cohort_average(alone["caption"]) == cohort_average(cooler["caption"])
    assert cell_errors(page) == []
