"""Channel distillation's losses (Zhou, Zhuge, Guan & Liu, "Channel Distillation: Channel-Wise
Attention for Knowledge Distillation", arXiv:2006.01683, 2020; "the CD paper" below): the
channel attention of a feature map, the CD loss between matched stages, guided KD (GKD) and the
early-decay-teacher (EDT) weight schedule.

The paper's text gives the channel attention (Eq. 1) and the per-stage CD loss (Eq. 2); the
summation over stages, GKD's normalisation and EDT's schedule are read from the first author's
public code (github.com/zhouzaida/channel-distillation), as each docstring says.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import Tensor

from dihkit.errors import ConfigError
from dihkit.losses import check_tau, per_sample_kd


def channel_attention(feature: Tensor) -> Tensor:
    """CD paper Eq. 1: each channel's weight ``w_c = 1 / (H W) sum_ij u_c(i, j)``, the global
    average of a ``[N, C, H, W]`` feature map over its spatial positions, as ``[N, C]`` (the
    squeeze step of SENet, which the paper calls the channel attention)."""
    if feature.dim() != 4:
        raise ValueError(f"channel attention needs an [N, C, H, W] map, got {tuple(feature.shape)}")
    return feature.float().mean(dim=(2, 3))


def _as_attention(x: Tensor) -> Tensor:
    """An ``[N, C]`` attention vector as is; an ``[N, C, H, W]`` map through Eq. 1."""
    return channel_attention(x) if x.dim() == 4 else x.float()


def cd_stage_loss(student: Tensor, teacher: Tensor) -> Tensor:
    """CD paper Eq. 2 for one stage: ``sum_i sum_j (w_s^ij - w_t^ij)^2 / (n c)``, the mean over
    the ``n`` samples and ``c`` channels of the squared difference of the two attention vectors.

    Each argument is a feature map ``[N, C, H, W]`` (pooled here by Eq. 1) or an attention
    vector ``[N, C]``; the student's must already have the teacher's channels (the method maps
    them with a 1x1 convolution). The spatial sizes may differ: only the channel means meet.
    The teacher's side is a constant."""
    s, t = _as_attention(student), _as_attention(teacher.detach())
    if s.shape != t.shape:
        raise ValueError(
            f"CD compares attention vectors of one shape; student {tuple(s.shape)} vs teacher "
            f"{tuple(t.shape)} (map the student's channels to the teacher's first)"
        )
    return (s - t).pow(2).mean()


def cd_loss(students: Sequence[Tensor], teachers: Sequence[Tensor]) -> Tensor:
    """The CD loss over the matched stages: the *sum* of :func:`cd_stage_loss` (Eq. 2) over
    the stage pairs, as the authors' code sums it (its weight, 6 in their configs, multiplies the
    sum, so adding a stage adds a term rather than re-weighting the others)."""
    if len(students) != len(teachers) or not students:
        raise ValueError(f"CD needs matched stages, got {len(students)} and {len(teachers)}")
    return sum((cd_stage_loss(s, t) for s, t in zip(students, teachers, strict=True)))


def guided_mask(teacher_logits: Tensor, labels: Tensor) -> Tensor:
    """GKD's sample mask, ``[N]`` bool: True where the teacher's top class is the label."""
    return teacher_logits.detach().argmax(dim=-1) == labels


def guided_kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, tau: float = 1.0
) -> Tensor:
    """Guided KD (the CD paper's GKD): Hinton's ``tau^2 KL(P_T^tau || P_S^tau)`` on
    the samples the teacher classifies correctly only (:func:`guided_mask`).

    Normalised by the number of *kept* samples, the authors' choice (their ``KDLossv2`` sums
    the KL over the kept samples and divides by their count), so the term's scale does not shrink
    with the teacher's error rate. A batch the teacher gets entirely wrong contributes 0 (the
    authors' code divides 0 by 0 there). The misclassified samples get no gradient at all."""
    check_tau(tau)
    per_sample = per_sample_kd(student_logits, teacher_logits, tau)
    keep = guided_mask(teacher_logits, labels)
    kept = torch.where(keep, per_sample, torch.zeros_like(per_sample)).sum()
    return kept / keep.sum().clamp_min(1)


def parse_fractions(text: str, what: str) -> tuple[float, ...]:
    """Comma-separated fractions of a run in ``(0, 1]``, ascending (``"0.3,0.8"``); ``none`` or
    "" for none. A :class:`ConfigError` naming ``what`` and the value otherwise."""
    text = text.strip()
    if text in ("", "none"):
        return ()
    try:
        values = tuple(float(part) for part in text.split(","))
    except ValueError:
        values = ()
    if not values or not all(0 < v <= 1 for v in values) or list(values) != sorted(set(values)):
        raise ConfigError(
            f"{what} = {text!r} must be ascending comma-separated fractions of the run in (0, 1] "
            "(e.g. '0.3,0.8'), or 'none'"
        )
    return values


def milestone_epochs(fractions: Sequence[float], epochs: int) -> tuple[int, ...]:
    """The 1-based epochs at which each fraction of an ``epochs``-long run is reached,
    ``round(f * epochs)`` (0.3 and 0.8 of 200 are epochs 60 and 160)."""
    return tuple(round(f * epochs) for f in fractions)


def early_decay_weight(
    weight: float,
    epoch: int,
    epochs: int,
    factor: float = 0.9,
    milestones: Sequence[float] = (0.3, 0.8),
) -> float:
    """Early decay teacher (the CD paper's EDT): the CD weight at ``epoch`` (0-based,
    as :meth:`Distiller.set_epoch` counts) of an ``epochs``-long run,
    ``weight * factor ** #{i : epoch + 1 >= round(milestones[i] * epochs)}``.

    The authors' code (``adjust_loss_alpha``, ``lrdv2``) multiplies the CD weight by 0.9 from
    their 1-based epoch 60 and again from 160 of CIFAR-100's 200 (milestones 0.3, 0.8), and on
    ImageNet every 30 of 100 epochs (0.3, 0.6, 0.9); dihkit states the milestones as fractions
    of the run so a short run decays at the same points of its schedule."""
    reached = sum(epoch + 1 >= m for m in milestone_epochs(milestones, epochs))
    return weight * factor**reached


def cd_only_epochs(fraction: float, epochs: int) -> int:
    """How many leading epochs train on CD alone under EDT: ``round(fraction * epochs)`` (the
    authors' ``lrdv2`` code sets CE and KD weights to 0 while their 1-based epoch is <= 60 of
    200, or <= 30 of 100 on ImageNet: 0.3 of the run)."""
    return round(fraction * epochs)


__all__ = [
    "cd_loss",
    "cd_only_epochs",
    "cd_stage_loss",
    "channel_attention",
    "early_decay_weight",
    "guided_kd_loss",
    "guided_mask",
    "milestone_epochs",
    "parse_fractions",
]
