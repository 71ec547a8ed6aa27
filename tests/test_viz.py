"""The figures of the tour and the intermediate-heads notebooks (00, 03) and the plotly output
the HTML book needs: built headlessly, checked for content."""

from __future__ import annotations

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


def test_plotly_bundle_has_the_json_and_a_div_without_plotly_js():
    fig = go.Figure(go.Bar(y=[1, 2]), layout={"title": {"text": "bars"}})
    bundle = viz.plotly_bundle(fig)
    assert set(bundle) == {viz.PLOTLY_MIMETYPE, "text/html", "text/plain"}
    assert bundle[viz.PLOTLY_MIMETYPE]["data"][0]["y"] == [1, 2]
    json.dumps(bundle[viz.PLOTLY_MIMETYPE])  # plain JSON
    html = bundle["text/html"]
    assert 'class="plotly-graph-div"' in html and "Plotly.newPlot" in html
    assert "<script src" not in html and len(html) < 20_000  # plotly.js is not inside
    assert bundle["text/plain"] == "<bars>"


def test_plotly_div_id_depends_only_on_the_figure():
    first = viz.plotly_bundle(go.Figure(go.Bar(y=[1, 2])))["text/html"]
    again = viz.plotly_bundle(go.Figure(go.Bar(y=[1, 2])))["text/html"]
    other = viz.plotly_bundle(go.Figure(go.Bar(y=[2, 1])))["text/html"]
    assert first == again and first != other


def test_show_plotly_displays_the_bundle_raw(monkeypatch):
    shown = []
    monkeypatch.setattr("IPython.display.display", lambda *objs, **kw: shown.append((objs, kw)))
    viz.show_plotly(go.Figure(go.Bar(y=[1])))
    ((objs, kwargs),) = shown
    assert kwargs == {"raw": True} and viz.PLOTLY_MIMETYPE in objs[0]


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


def test_member_accuracy_draws_a_bar_per_group_and_member():
    fig = viz.plot_member_accuracy(
        {"bundled": {"h1": 0.8, "teacher": 0.9}, "fresh": {"h1": 0.7}}, ylabel="% right"
    )
    ax = fig.axes[0]
    heights = sorted(
        round(p.get_height(), 6) for p in ax.patches if p.get_height() == p.get_height()
    )
    assert heights == [70.0, 80.0, 90.0]
    assert ax.get_ylabel() == "% right"
    assert [t.get_text() for t in ax.get_xticklabels()] == ["h1", "teacher"]


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
