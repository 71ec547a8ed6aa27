"""The figures of the tour and the intermediate-heads notebooks (00, 03) and the plotly output
the HTML book needs: built headlessly, checked for content."""

from __future__ import annotations

import base64
import json

import numpy as np
import plotly.graph_objects as go
import pytest
import torch

from dihkit import viz
from dihkit.studies.calibration import reliability_curve
from dihkit.studies.cohort import MemberReport

CLASSES = [f"class{i}" for i in range(10)]
MEMBERS = ["head1 (layer1)", "head2 (layer2)", "head3 (layer3)", "teacher"]


def images_and_labels(per_class: int = 3):
    labels = torch.arange(10).repeat_interleave(per_class)
    images = torch.randint(0, 256, (len(labels), 1, 28, 28), dtype=torch.uint8)
    return images, labels


def static_twin(value: float = 1.0):
    """A small matplotlib figure standing for a plotly figure's static twin."""
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(2, 1))
    ax.plot([0, value])
    plt.close(fig)
    return fig


def test_plotly_bundle_has_the_json_a_png_and_a_div_without_plotly_js():
    fig = go.Figure(go.Bar(y=[1, 2]), layout={"title": {"text": "bars"}})
    bundle = viz.plotly_bundle(fig, static_twin())
    assert set(bundle) == {viz.PLOTLY_MIMETYPE, "text/html", "image/png", "text/plain"}
    assert bundle[viz.PLOTLY_MIMETYPE]["data"][0]["y"] == [1, 2]
    json.dumps(bundle[viz.PLOTLY_MIMETYPE])  # plain JSON
    assert base64.b64decode(bundle["image/png"]).startswith(b"\x89PNG\r\n\x1a\n")
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    # the same PNG inside the HTML, hidden by a script once plotly has drawn
    assert f'src="data:image/png;base64,{bundle["image/png"]}"' in html
    assert "style.display = 'none'" in html
    assert "<script src" not in html
    assert bundle["text/plain"] == "<bars>"


def test_plotly_bundle_refuses_a_missing_or_wrong_static_twin():
    fig = go.Figure(go.Bar(y=[1, 2]))
    with pytest.raises(TypeError, match="matplotlib figure or PNG bytes, got str"):
        viz.plotly_bundle(fig, "figure.png")
    with pytest.raises(ValueError, match="not a PNG"):
        viz.plotly_bundle(fig, b"GIF89a")


def test_plotly_div_id_depends_only_on_the_figure():
    twin = viz.figure_png(static_twin())
    first = viz.plotly_bundle(go.Figure(go.Bar(y=[1, 2])), twin)["text/html"]
    again = viz.plotly_bundle(go.Figure(go.Bar(y=[1, 2])), twin)["text/html"]
    other = viz.plotly_bundle(go.Figure(go.Bar(y=[2, 1])), twin)["text/html"]
    assert first == again and first != other


def test_show_plotly_displays_the_bundle_raw(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.append((objs, kw)))
    viz.show_plotly(go.Figure(go.Bar(y=[1])), static=static_twin())
    ((objs, kwargs),) = shown
    assert kwargs == {"raw": True} and {viz.PLOTLY_MIMETYPE, "image/png"} <= set(objs[0])


def test_show_widget_adds_the_snapshot_png_to_the_widget_view(monkeypatch):
    import ipywidgets

    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.append((objs, kw)))
    slider = ipywidgets.IntSlider(value=3)
    png = viz.figure_png(static_twin())
    slider.snapshot = lambda: png
    viz.show_widget(slider)
    ((objs, kwargs),) = shown
    bundle = objs[0]
    assert bundle["application/vnd.jupyter.widget-view+json"]["model_id"] == slider.model_id
    assert base64.b64decode(bundle["image/png"]) == png
    with pytest.raises(ValueError, match="has no snapshot"):
        viz.show_widget(ipywidgets.IntSlider())


def test_figure_png_is_a_png():
    fig = viz.plot_member_accuracy({"a": {"x": 0.5}})
    assert viz.figure_png(fig).startswith(b"\x89PNG")


def test_class_grid_has_a_row_per_class_and_a_column_per_example():
    images, labels = images_and_labels(per_class=3)
    fig = viz.plot_class_grid(images, labels, CLASSES, per_class=4)
    assert len(fig.axes) == 10 * 4
    assert sum(len(ax.images) for ax in fig.axes) == 10 * 3  # only 3 images per class exist
    assert [fig.axes[4 * c].get_ylabel() for c in range(10)] == CLASSES


def test_predictions_show_each_image_and_its_top_classes():
    images, labels = images_and_labels(per_class=1)
    probs = torch.softmax(torch.randn(10, 10), dim=-1)
    fig = viz.plot_predictions(images[:5], labels[:5], probs[:5], CLASSES, top=3)
    assert len(fig.axes) == 10
    bars = fig.axes[5].patches  # the first image's bars
    assert len(bars) == 3
    widths = sorted(b.get_width() for b in bars)
    assert widths[-1] == pytest.approx(float(probs[0].max()))


def test_member_accuracy_is_a_dot_plot_with_single_group_members_on_their_tick():
    fig = viz.plot_member_accuracy(
        {"bundled": {"h1": 0.8, "teacher": 0.9}, "fresh": {"h1": 0.7}},
        ylabel="% right",
        reference=("teacher", 0.9),
    )
    ax = fig.axes[0]
    bundled, fresh = (line for line in ax.lines if line.get_label() in ("bundled", "fresh"))
    assert list(bundled.get_ydata()) == [80.0, 90.0] and list(fresh.get_ydata()) == [70.0]
    xs = list(bundled.get_xdata()) + list(fresh.get_xdata())
    assert xs[1] == 1.0  # the teacher, in one group only, sits on its own tick
    assert xs[0] < 0 < xs[2]  # h1's two dots straddle tick 0
    assert not ax.patches  # dots, no bars
    assert sorted(t.get_text() for t in ax.texts) == ["70.0", "80.0", "90.0"]
    reference = [line for line in ax.lines if line.get_linestyle() == "--"]
    assert len(reference) == 1 and list(reference[0].get_ydata()) == [90.0, 90.0]
    assert ax.get_ylabel() == "% right"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["h1", "teacher"]
    legend = ax.get_legend()
    assert legend.get_bbox_to_anchor().y0 < ax.get_window_extent().y0  # below the axes


def report(name: str, probs: torch.Tensor, labels: torch.Tensor) -> MemberReport:
    curve = reliability_curve(probs, labels, bins=5)
    return MemberReport(name, 0.5, 0.5, curve.ece, curve)


def test_reliability_has_a_panel_per_member_with_its_ece():
    labels = torch.randint(0, 10, (50,))
    reports = [report(n, torch.softmax(torch.randn(50, 10), -1), labels) for n in MEMBERS]
    fig = viz.plot_reliability(reports)
    assert len(fig.axes) == len(MEMBERS)
    for ax, r in zip(fig.axes, reports, strict=True):
        assert r.name in ax.get_title() and f"{100 * r.ece:.2f}%" in ax.get_title()


def test_head_distributions_show_the_image_and_one_panel_per_distribution():
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    probs = {name: np.full(10, 0.1) for name in ["head1", "teacher", "cohort average"]}
    fig = viz.plot_head_distributions(image, probs, CLASSES, title="x", highlight=2)
    assert len(fig.axes) == 4
    assert len(fig.axes[0].images) == 1
    assert [ax.get_title() for ax in fig.axes[1:]] == list(probs)
    assert len(fig.axes[1].patches) == 10


def twin(taus=(1.0, 5.0, 10.0), tau=10.0):
    torch.manual_seed(0)
    logits = torch.randn(len(MEMBERS), 10) * 4
    image = torch.randint(0, 256, (1, 28, 28), dtype=torch.uint8)
    return logits, viz.head_explorer_figure(
        logits, image, CLASSES, MEMBERS, label=3, taus=taus, tau=tau
    )


def test_head_explorer_twin_has_one_trace_set_per_grid_point():
    _, fig = twin(taus=(1.0, 5.0, 10.0))
    states = fig.layout.meta["states"]
    choices = [*MEMBERS, "all"]
    assert [(s["head"], s["tau"]) for s in states] == [
        (c, t) for c in choices for t in (1.0, 5.0, 10.0)
    ]
    for state in states:
        shown = len(MEMBERS) if state["head"] == "all" else 1
        assert len(state["traces"]) == shown + 1  # the members shown and the cohort average
    all_traces = [i for s in states for i in s["traces"]]
    assert sorted(all_traces) == list(range(1, len(fig.data)))  # each trace in one state


def test_head_explorer_twin_states_hold_the_softened_distributions():
    logits, fig = twin()
    for state in fig.layout.meta["states"]:
        probs = torch.softmax(logits.double() / state["tau"], dim=-1)
        for index in state["traces"]:
            trace = fig.data[index]
            assert sum(trace.y) == pytest.approx(1.0, abs=1e-6)
            expected = (
                probs.mean(0)
                if trace.name == "cohort average"
                else probs[MEMBERS.index(trace.name)]
            )
            assert list(trace.y) == pytest.approx(expected.tolist(), abs=1e-6)


def test_head_explorer_twin_controls_switch_between_states():
    _, fig = twin(taus=(1.0, 5.0), tau=10.0)  # tau is added to the grid
    taus = fig.layout.meta["taus"]
    assert taus == [1.0, 5.0, 10.0]
    choices = fig.layout.meta["choices"]
    assert [b.label for b in fig.layout.updatemenus[0].buttons] == choices
    assert len(fig.layout.sliders) == len(choices)
    assert [s.visible for s in fig.layout.sliders] == [c == "all" for c in choices]
    start = fig.layout.meta["states"][choices.index("all") * 3 + 2]
    assert [bool(t.visible) for t in fig.data] == [
        i == 0 or i in start["traces"] for i in range(len(fig.data))
    ]
    head2 = fig.layout.sliders[1]
    step = head2.steps[0]  # head2 at tau = 1
    state = fig.layout.meta["states"][1 * 3 + 0]
    assert step.args[0]["visible"] == [i == 0 or i in state["traces"] for i in range(len(fig.data))]


def test_head_explorer_twin_rejects_logits_of_the_wrong_shape():
    with pytest.raises(ValueError, match="members x classes"):
        viz.head_explorer_figure(torch.zeros(3, 10), torch.zeros(1, 28, 28), CLASSES, MEMBERS)


def test_reliability_writes_each_bins_count_and_names_both_gap_colours():
    # 4 predictions: two at confidence 0.9 (one right), two at 0.3 (both right)
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.3, 0.7], [0.7, 0.3]])
    labels = torch.tensor([0, 1, 1, 0])
    curve = reliability_curve(probs, labels, bins=5)
    fig = viz.plot_reliability([MemberReport("m", 0.75, 0.75, curve.ece, curve)])
    ax = fig.axes[0]
    counts = sorted(int(t.get_text()) for t in ax.texts)
    assert counts == sorted(c for c in curve.counts if c)  # one number per non-empty bin
    assert sum(counts) == 4
    legend = [t.get_text() for t in fig.legends[0].get_texts()]
    assert legend[0] == "accuracy of the bin"
    assert "over-confident" in legend[1] and "under-confident" in legend[2]


def test_head_distributions_use_full_class_names_and_a_y_label():
    names = ["T-shirt/top", "Ankle boot"] + CLASSES[2:]
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    fig = viz.plot_head_distributions(image, {"head1": np.full(10, 0.1)}, names)
    assert [t.get_text() for t in fig.axes[1].get_xticklabels()] == names
    assert fig.axes[1].get_ylabel().startswith("probability")


def test_head_explorer_figure_draws_a_colour_image_as_rgb():
    image = torch.randint(0, 256, (3, 32, 32), dtype=torch.uint8)
    fig = viz.head_explorer_figure(torch.randn(2, 10), image, CLASSES, ["head1", "teacher"])
    assert fig.data[0].type == "image" and len(fig.data[0].z) == 32
    grey = viz.head_explorer_figure(
        torch.randn(2, 10), torch.zeros(1, 28, 28), CLASSES, ["head1", "teacher"]
    )
    assert grey.data[0].type == "heatmap"
    assert list(fig.data[1].x) == CLASSES  # full class names
