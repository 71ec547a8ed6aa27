"""Feature-map losses of FEED (Park & Kwak, "FEED: Feature-level Ensemble for Knowledge
Distillation", arXiv:1909.10754, 2019; "the FEED paper" below), which extends the Factor Transfer
loss (Kim, Park & Kwak, "Paraphrasing Complex Network: Network Compression via Factor Transfer",
NeurIPS 2018; "FT" below) to several teachers.

The FEED paper's pFEED objective is Eq. 1, ``L = L_CE(sigma(s), y) + beta * sum_n L_FEED^n``,
with Eq. 2, ``L_FEED^n = || NTL_n(x^S) / ||NTL_n(x^S)||_2 - x^T_n / ||x^T_n||_2 ||_p``: the
transformed student map and the n-th teacher's final map, each flattened per sample and scaled
to unit L2 norm, compared in a p-norm (p = 1, as FT).
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor

from dihkit.errors import ConfigError

FEED_NORMS = (1, 2)


def check_norm(p: int) -> int:
    """``p`` if it is one of :data:`FEED_NORMS`, else a :class:`ConfigError` naming it."""
    if isinstance(p, bool) or p not in FEED_NORMS:
        raise ConfigError(f"FEED's distance norm p must be 1 or 2, got {p!r}")
    return int(p)


def normalised_map(feature: Tensor) -> Tensor:
    """``x / ||x||_2`` for each sample: the ``[N, C, H, W]`` map flattened to ``[N, C*H*W]`` and
    divided by its L2 norm over all its elements (FEED Eq. 2's two fractions; FT's factor
    normalisation). An all-zero map stays zero."""
    return F.normalize(feature.float().flatten(1), p=2, dim=1)


def feed_loss(transformed: Tensor, teacher_feature: Tensor, p: int = 1) -> Tensor:
    """FEED paper Eq. 2, one teacher: the distance between the transformed student map
    ``NTL_n(x^S)`` and the teacher's final map ``x^T_n``, both normalised per sample
    (:func:`normalised_map`).

    The equation writes the p-norm of the difference; dihkit takes the *mean* of ``|d|^p`` over
    the batch and the map's elements (p = 1: the mean absolute difference, the reduction of the
    FT authors' public code, whose ``nn.L1Loss`` on the normalised factors FEED's loss copies;
    p = 2: the mean squared difference). The weight ``beta`` of Eq. 1 is on this scale. The
    two maps must have one shape (the method maps channels and pools the larger map); the
    teacher's side is a constant."""
    check_norm(p)
    if transformed.shape != teacher_feature.shape:
        raise ValueError(
            f"FEED compares maps of one shape; transformed student {tuple(transformed.shape)} vs "
            f"teacher {tuple(teacher_feature.shape)} (map channels and pool the larger map first)"
        )
    diff = normalised_map(transformed) - normalised_map(teacher_feature.detach())
    return diff.abs().pow(p).mean()


def parallel_feed_loss(
    transformed: Sequence[Tensor], teacher_features: Sequence[Tensor], beta: float, p: int = 1
) -> Tensor:
    """FEED paper Eq. 1's distillation part: ``beta * sum_n L_FEED^n`` over the N teachers, each
    with its own transformed student map (the *sum*, as Eq. 1 writes it: two identical teachers
    count twice). ``transformed[n]`` pairs with ``teacher_features[n]``."""
    if len(transformed) != len(teacher_features) or not transformed:
        raise ValueError(
            f"FEED needs one transformed map per teacher, got {len(transformed)} and "
            f"{len(teacher_features)}"
        )
    pairs = zip(transformed, teacher_features, strict=True)
    return beta * torch.stack([feed_loss(s, t, p) for s, t in pairs]).sum()


def pool_to(feature: Tensor, size: Sequence[int]) -> Tensor:
    """``feature`` ``[N, C, H, W]`` adaptively average-pooled to spatial ``size`` (unchanged when
    it already has that size): how FEED's maps of different spatial sizes are matched, the larger
    pooled to the smaller (the FEED paper's students and teachers share their spatial sizes)."""
    size = tuple(int(s) for s in size)
    if tuple(feature.shape[-2:]) == size:
        return feature
    return F.adaptive_avg_pool2d(feature, size)


def smaller_size(a: Sequence[int], b: Sequence[int]) -> tuple[int, int]:
    """The spatial size both maps can be pooled to: the smaller height and the smaller width of
    two ``(C, H, W)`` shapes."""
    return min(int(a[-2]), int(b[-2])), min(int(a[-1]), int(b[-1]))


__all__ = [
    "FEED_NORMS",
    "check_norm",
    "feed_loss",
    "normalised_map",
    "parallel_feed_loss",
    "pool_to",
    "smaller_size",
]
