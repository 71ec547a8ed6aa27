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


def test_capacity_gap_plot_has_a_point_per_teacher():
    points = [
        {"name": n, "method": "kd", "teacher": n, "teacher_params": p, "teacher_acc": 0.9,
         "ratio": p / 100, "mean": 0.8, "std": 0.01}
        for n, p in (("resnet14", 170_000), ("resnet56", 850_000))
    ]  # fmt: skip
    takd = {**points[1], "name": "resnet56 via resnet20", "method": "takd"}
    fig = viz.plot_capacity_gap([*points, takd], baseline=_summary("ce (resnet8)"))
    ax = fig.axes[0]
    texts = [t.get_text().split("\n")[0] for t in ax.texts]
    assert texts == ["resnet14", "resnet56", "resnet56 via resnet20"]
    assert "(teacher 90.0%)" in ax.texts[0].get_text()
    assert ax.get_xscale() == "log"


def test_learning_curves_plot_one_line_per_method():
    curves = {
        "ce": {"epoch": [1, 2], "mean": [0.5, 0.6], "std": [0.0, 0.01]},
        "kd": {"epoch": [1, 2], "mean": [0.55, 0.65], "std": [0.01, 0.01]},
    }
    fig = viz.plot_learning_curves(curves)
    assert [line.get_label() for line in fig.axes[0].lines] == ["ce", "kd"]


def test_method_comparison_has_a_bar_per_method_in_both_panels():
    summaries = [_summary("ce (resnet8)", 0.8), _summary("kd (resnet56 -> resnet8)", 0.82, 0.02)]
    fig = viz.plot_method_comparison(summaries)
    accuracy, seconds = fig.axes
    assert [round(p.get_width(), 6) for p in accuracy.patches] == [80.0, 82.0]
    assert len(seconds.patches) == 2
