"""Calibration and agreement of a classifier's predictions: reliability bins, the expected
calibration error (ECE), and how often two classifiers pick the same class.

Everything works on probabilities ``[N, C]`` (or logits for :func:`top1_agreement`), so the same
functions score a teacher, each of its heads and a cohort average.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor


@dataclass(frozen=True)
class ReliabilityCurve:
    """Predictions grouped by confidence (the top class's probability) into equal-width bins.

    ``confidence[b]`` and ``accuracy[b]`` are the mean confidence and the fraction correct of
    the ``counts[b]`` predictions in bin ``b`` (NaN for an empty bin); ``edges`` has one more
    entry than the bins. A perfectly calibrated classifier has ``accuracy == confidence``.
    """

    edges: list[float]
    confidence: list[float]
    accuracy: list[float]
    counts: list[int]

    @property
    def ece(self) -> float:
        """Expected calibration error: ``sum_b (n_b / N) * |accuracy_b - confidence_b|``."""
        total = sum(self.counts)
        gaps = [
            n * abs(a - c)
            for n, a, c in zip(self.counts, self.accuracy, self.confidence, strict=True)
            if n
        ]
        return float(sum(gaps) / total) if total else float("nan")


def reliability_curve(probs: Tensor, labels: Tensor, bins: int = 15) -> ReliabilityCurve:
    """Bin ``probs`` (``[N, C]``, rows summing to 1) by confidence into ``bins`` equal-width bins
    on ``(0, 1]`` and measure each bin's accuracy against ``labels`` (``[N]``)."""
    if bins < 1:
        raise ValueError(f"bins must be a positive integer, got {bins!r}")
    probs = probs.detach().float().cpu()
    labels = labels.detach().cpu()
    confidence, predicted = probs.max(dim=-1)
    correct = (predicted == labels).float()
    # Bin b holds confidences in (b / bins, (b + 1) / bins]; a confidence of 0 joins bin 0.
    index = (torch.ceil(confidence * bins).long() - 1).clamp(0, bins - 1)
    counts = torch.bincount(index, minlength=bins)
    conf_sum = torch.zeros(bins).index_add_(0, index, confidence)
    hit_sum = torch.zeros(bins).index_add_(0, index, correct)
    safe = counts.clamp(min=1).float()
    empty = counts == 0
    mean_conf = torch.where(empty, torch.nan, conf_sum / safe)
    mean_acc = torch.where(empty, torch.nan, hit_sum / safe)
    return ReliabilityCurve(
        edges=torch.linspace(0, 1, bins + 1).tolist(),
        confidence=mean_conf.tolist(),
        accuracy=mean_acc.tolist(),
        counts=counts.tolist(),
    )


def expected_calibration_error(probs: Tensor, labels: Tensor, bins: int = 15) -> float:
    """ECE of ``probs`` against ``labels`` with ``bins`` equal-width confidence bins (Guo et al.,
    2017): the count-weighted mean gap between each bin's accuracy and its mean confidence."""
    return reliability_curve(probs, labels, bins).ece


def top1_agreement(logits: Tensor, reference_logits: Tensor) -> float:
    """Fraction of examples where ``logits`` and ``reference_logits`` (both ``[N, C]``) put the
    highest score on the same class."""
    if logits.shape != reference_logits.shape:
        raise ValueError(
            f"logits {tuple(logits.shape)} and reference {tuple(reference_logits.shape)} differ"
        )
    same = logits.argmax(dim=-1) == reference_logits.argmax(dim=-1)
    return float(same.float().mean())


__all__ = [
    "ReliabilityCurve",
    "expected_calibration_error",
    "reliability_curve",
    "top1_agreement",
]
