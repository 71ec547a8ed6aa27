"""The temperature explorer of 01_knowledge_distillation, driven headlessly."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dihkit.viz.widgets import temperature_explorer

CLASSES = [f"class {i}" for i in range(10)]


@pytest.fixture
def explorer():
    torch.manual_seed(0)
    return temperature_explorer(torch.randn(3, 10) * 4, CLASSES, image_names=["a", "b", "c"])


def test_distribution_sums_to_one(explorer):
    assert explorer.distribution.sum() == pytest.approx(1.0)


def test_moving_the_slider_softens_the_distribution(explorer):
    before, entropy_before = explorer.distribution.copy(), explorer.entropy
    explorer.tau_slider.value = 10.0
    assert not np.allclose(before, explorer.distribution)
    assert explorer.distribution.sum() == pytest.approx(1.0)
    assert explorer.entropy > entropy_before


def test_picking_another_image_changes_the_distribution(explorer):
    before = explorer.distribution.copy()
    explorer.image_picker.value = 2
    assert not np.allclose(before, explorer.distribution)


def test_bars_show_the_distribution(explorer):
    explorer.tau_slider.value = 3.0
    bars = [row.children[1].value for row in explorer.children[1:-1]]
    assert bars == pytest.approx(explorer.distribution.tolist())


def test_one_image_disables_the_picker():
    widget = temperature_explorer(torch.arange(10.0), CLASSES)
    assert widget.image_picker.disabled


def test_mismatched_class_names_are_a_clear_error():
    with pytest.raises(ValueError, match=r"\[N, 3\]"):
        temperature_explorer(torch.zeros(2, 10), ["a", "b", "c"])
