"""The figures of the KD notebooks (01, 02, 04, 07): built headlessly, checked for content."""

from __future__ import annotations

import pytest
import torch

from dihkit import viz
from dihkit.studies.seeds import GroupSummary
from dihkit.studies.temperature import GradientNorms

CLASSES = [f"c{i}" for i in range(10)]


def _summary(label, mean=0.8, std=0.01, seconds=5.0):
    return GroupSummary(
        label, label.split(":")[0], 3, [0, 1, 2], mean, std, mean, std, seconds, 100
    )


def test_temperature_figure_has_one_frame_per_grid_point():
    taus = [0.5, 1, 2, 5, 10, 20]
    fig = viz.temperature_figure(torch.randn(10), CLASSES, taus)
    assert len(fig.frames) == len(taus)
    assert len(fig.layout.sliders[0].steps) == len(taus)
    assert [f.name for f in fig.frames] == [f"tau={t:g}" for t in taus]


def test_temperature_figure_opens_at_the_grid_point_nearest_the_start_tau():
    fig = viz.temperature_figure(torch.randn(10), CLASSES, [0.5, 1, 5, 20], start_tau=4.0)
    assert fig.layout.sliders[0].active == 2
    assert list(fig.data[0].y) == list(fig.frames[2].data[0].y)


def test_temperature_figure_frames_are_distributions_that_flatten():
    fig = viz.temperature_figure(torch.tensor([5.0] + [0.0] * 9), CLASSES, [1, 100])
    first, last = (list(frame.data[0].y) for frame in fig.frames)
    assert sum(first) == pytest.approx(1.0)
    assert sum(last) == pytest.approx(1.0)
    assert max(last) < max(first)


def test_entropy_plot_draws_the_curve_and_the_uniform_ceiling():
    fig = viz.plot_entropy_against_tau([1, 2, 4], [0.5, 1.0, 1.5], num_classes=10)
    ax = fig.axes[0]
    assert len(ax.lines) == 2
    assert list(ax.lines[0].get_ydata()) == [0.5, 1.0, 1.5]


def test_gradient_norm_plot_has_both_curves():
    norms = GradientNorms([1, 10], [1.0, 1.1], [1.0, 0.011])
    fig = viz.plot_gradient_norms(norms)
    assert [line.get_label() for line in fig.axes[0].lines] == ["tau^2 * KL (Eq. 1)", "KL alone"]


def test_capacity_gap_plot_names_each_teacher_on_its_tick_and_labels_takd():
    points = [
        {"name": n, "method": "kd", "teacher": n, "teacher_params": p, "teacher_acc": 0.9,
         "ratio": p / 100, "mean": 0.8, "std": 0.01}
        for n, p in (("resnet14", 170_000), ("resnet56", 850_000))
    ]  # fmt: skip
    takd = {**points[1], "name": "resnet56 via resnet20", "method": "takd"}
    fig = viz.plot_capacity_gap([*points, takd], baseline=_summary("ce (resnet8)"))
    ax = fig.axes[0]
    ticks = [t.get_text() for t in ax.get_xticklabels()]
    assert ticks == ["resnet14\n170k\nteacher 90.0%", "resnet56\n850k\nteacher 90.0%"]
    assert [t.get_text() for t in ax.texts] == ["via resnet20"]  # only TAKD's route on the data
    assert ax.get_xscale() == "log"


def test_learning_curves_plot_one_line_per_method():
    curves = {
        "ce": {"epoch": [1, 2], "mean": [0.5, 0.6], "std": [0.0, 0.01]},
        "kd": {"epoch": [1, 2], "mean": [0.55, 0.65], "std": [0.01, 0.01]},
    }
    fig = viz.plot_learning_curves(curves)
    assert [line.get_label() for line in fig.axes[0].lines] == ["ce", "kd"]


def test_method_comparison_dots_accuracy_and_colours_time_by_teacher_pass():
    import dataclasses

    ce = dataclasses.replace(_summary("ce (resnet8)", 0.8), teacher_pass="none")
    kd = _summary("kd (resnet56 -> resnet8)", 0.82, 0.02, seconds=7.0)
    cached = dataclasses.replace(_summary("kd cached", 0.81, seconds=3.0), teacher_pass="cached")
    fig = viz.plot_method_comparison([ce, kd, cached], baseline=ce)
    accuracy, seconds = fig.axes
    assert not accuracy.patches  # a dot plot
    dots = accuracy.lines[0].get_xdata()
    assert [round(float(x), 6) for x in dots] == [80.0, 82.0, 81.0]
    reference = [line for line in accuracy.lines if line.get_linestyle() == "--"]
    assert [list(line.get_xdata()) for line in reference] == [[80.0, 80.0]]
    assert [round(p.get_width(), 6) for p in seconds.patches] == [5.0, 7.0, 3.0]
    assert seconds.get_xlim()[0] == 0
    colours = [p.get_facecolor() for p in seconds.patches]
    assert len({tuple(c) for c in colours}) == 3  # none, live, cached: three colours
    labels = [t.get_text() for t in seconds.get_legend().get_texts()]
    assert labels == [
        "live teacher (a forward pass per step)", "cached teacher targets", "no teacher"
    ]  # fmt: skip
