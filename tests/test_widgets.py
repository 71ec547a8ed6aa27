"""The head explorer of notebook 03, driven headlessly: set a control, check what it computed."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from dihkit.data.datasets import per_class_subset
from dihkit.runs.pipeline import load_teacher
from dihkit.viz.widgets import head_explorer

CLASSES = [f"class{i}" for i in range(4)]
MEMBERS = ["head1 (layer1)", "head2 (layer2)", "teacher"]


@pytest.fixture
def explorer():
    torch.manual_seed(0)
    labels = torch.tensor([0, 1, 1, 2, 3, 3, 3])
    logits = torch.randn(len(MEMBERS), len(labels), len(CLASSES)) * 3
    images = torch.randint(0, 256, (len(labels), 1, 28, 28), dtype=torch.uint8)
    return head_explorer(
        None, images, labels, CLASSES, tau=10.0, logits=logits, member_names=MEMBERS
    )


def assert_distributions(box):
    for probs in [*box.distributions.values(), box.average]:
        assert probs.dtype == np.float64
        assert probs.sum() == pytest.approx(1.0, abs=1e-6)
        assert (probs >= 0).all()


def test_starts_with_all_members_at_the_given_temperature(explorer):
    assert explorer.head_picker.value == "all"
    assert explorer.tau_slider.value == 10.0
    assert list(explorer.distributions) == MEMBERS
    assert explorer.image_index == 0
    expected = torch.softmax(explorer.logits[:, 0] / 10.0, dim=-1)
    assert explorer.average == pytest.approx(expected.mean(0).numpy(), abs=1e-6)
    assert_distributions(explorer)


def test_moving_the_temperature_changes_the_distributions(explorer):
    before = {k: v.copy() for k, v in explorer.distributions.items()}
    average = explorer.average.copy()
    explorer.tau_slider.value = 1.0
    for name in MEMBERS:
        assert not np.allclose(explorer.distributions[name], before[name])
        # a lower temperature sharpens: the top class gains probability
        assert explorer.distributions[name].max() > before[name].max()
    assert not np.allclose(explorer.average, average)
    assert_distributions(explorer)


def test_the_head_dropdown_selects_one_member(explorer):
    explorer.head_picker.value = "teacher"
    assert list(explorer.distributions) == ["teacher"]
    expected = torch.softmax(explorer.logits[-1, 0] / 10.0, dim=-1)
    assert explorer.distributions["teacher"] == pytest.approx(expected.numpy(), abs=1e-6)
    assert explorer.average.shape == (len(CLASSES),)  # still the whole cohort's average
    assert_distributions(explorer)


def test_the_image_picker_walks_the_chosen_class(explorer):
    explorer.class_picker.value = 3
    assert explorer.index_slider.max == 2
    assert explorer.image_index == 4
    explorer.index_slider.value = 2
    assert explorer.image_index == 6
    explorer.class_picker.value = 1
    assert (explorer.index_slider.value, explorer.index_slider.max) == (0, 1)
    assert explorer.image_index == 1
    assert_distributions(explorer)


def test_the_picture_is_redrawn_when_a_control_changes(explorer):
    first = bytes(explorer.picture.value)
    assert first.startswith(b"\x89PNG")
    explorer.tau_slider.value = 2.0
    assert bytes(explorer.picture.value) != first


def test_rejects_logits_that_do_not_fit_and_a_temperature_off_the_slider():
    images = torch.zeros(2, 1, 28, 28, dtype=torch.uint8)
    with pytest.raises(ValueError, match="members x images x classes"):
        head_explorer(
            None, images, [0, 1], CLASSES, logits=torch.zeros(3, 5, 4), member_names=MEMBERS
        )
    with pytest.raises(ValueError, match="tau_range"):
        head_explorer(
            None,
            images,
            [0, 1],
            CLASSES,
            tau=50.0,
            logits=torch.zeros(3, 2, 4),
            member_names=MEMBERS,
        )
    with pytest.raises(ValueError, match="mean and std"):
        head_explorer(object(), images, [0, 1], CLASSES, member_names=MEMBERS)


def test_computes_the_logits_of_a_real_cohort(tiny):
    cohort = load_teacher("resnet14").cohort
    pool = per_class_subset(tiny.test, 2)
    box = head_explorer(
        cohort,
        pool.images,
        pool.labels,
        tiny.spec.class_names,
        mean=tiny.spec.mean,
        std=tiny.spec.std,
    )
    assert tuple(box.logits.shape) == (4, 20, 10)
    assert list(box.distributions) == cohort.member_names
    assert_distributions(box)
