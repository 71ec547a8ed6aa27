"""Reliability bins, expected calibration error and top-1 agreement on hand-made predictions."""

from __future__ import annotations

import math

import pytest
import torch

from dihkit.studies.calibration import expected_calibration_error, reliability_curve, top1_agreement


def test_confident_and_always_right_is_perfectly_calibrated():
    probs = torch.eye(4)
    labels = torch.arange(4)
    assert expected_calibration_error(probs, labels, bins=10) == 0.0


def test_ece_is_the_count_weighted_gap_between_accuracy_and_confidence():
    # two predictions at confidence 0.9 (one right), two at 0.6 (both right)
    probs = torch.tensor([[0.9, 0.1], [0.9, 0.1], [0.4, 0.6], [0.4, 0.6]])
    labels = torch.tensor([0, 1, 1, 1])
    curve = reliability_curve(probs, labels, bins=5)
    assert curve.counts == [0, 0, 2, 0, 2]
    assert curve.accuracy[2] == 1.0 and curve.confidence[2] == pytest.approx(0.6)
    assert curve.accuracy[4] == 0.5 and curve.confidence[4] == pytest.approx(0.9)
    assert math.isnan(curve.accuracy[0]) and math.isnan(curve.confidence[0])
    expected = (2 * abs(1.0 - 0.6) + 2 * abs(0.5 - 0.9)) / 4
    assert curve.ece == pytest.approx(expected)
    assert expected_calibration_error(probs, labels, bins=5) == pytest.approx(expected)


def test_bins_cover_zero_to_one_and_every_prediction_lands_in_one():
    probs = torch.softmax(torch.randn(200, 10) * 3, dim=-1)
    curve = reliability_curve(probs, torch.randint(0, 10, (200,)), bins=15)
    assert len(curve.edges) == 16 and curve.edges[0] == 0.0 and curve.edges[-1] == 1.0
    assert sum(curve.counts) == 200
    assert 0.0 <= curve.ece <= 1.0


def test_bins_must_be_positive():
    with pytest.raises(ValueError, match="bins"):
        reliability_curve(torch.eye(2), torch.arange(2), bins=0)


def test_top1_agreement_counts_equal_argmaxes():
    a = torch.tensor([[1.0, 0.0], [0.0, 1.0], [1.0, 0.0], [0.2, 0.1]])
    b = torch.tensor([[5.0, 0.0], [3.0, 1.0], [0.0, 2.0], [9.0, 0.0]])
    assert top1_agreement(a, b) == 0.5
    assert top1_agreement(a, a) == 1.0
    with pytest.raises(ValueError, match="differ"):
        top1_agreement(a, b[:2])
