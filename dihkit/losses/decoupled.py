"""Decoupled knowledge distillation (Zhao, Cui, Song, Qiu & Liang, "Decoupled Knowledge
Distillation", CVPR 2022; "DKD paper" below): Hinton's KD loss split into a target-class part
(TCKD) and a non-target-class part (NCKD), and DKD's re-weighted sum of the two.

For a sample of class t with softened probabilities p = softmax(z / tau):

- ``b = [p_t, 1 - p_t]``, the binary target / non-target distribution;
- ``p_hat_i = p_i / (1 - p_t)`` for i != t, the distribution among the non-target classes;
- TCKD = KL(b^T || b^S), NCKD = KL(p_hat^T || p_hat^S), and exactly
  ``KL(p^T || p^S) = TCKD + (1 - p_t^T) * NCKD`` (DKD paper Sec. 3.1, the reformulation of KD).

Numerics: every log-probability is a log-softmax or a difference of log-sum-exps, never the log
of a probability, so nothing overflows or becomes log(0) at low temperatures or confident
logits. The non-target distribution is a log-softmax over the non-target logits with the target
masked out (the authors' code instead subtracts 1000 from the target logit before a softmax over
all classes, which is the same up to a term of order exp(-1000 / tau) while the logits stay far
below 1000 * tau).
"""

from __future__ import annotations

from typing import NamedTuple

import torch
from torch import Tensor

from dihkit.errors import ConfigError
from dihkit.losses import check_tau


class KDParts(NamedTuple):
    """One KD loss split per sample (each ``[N]``): ``kd == tckd + nontarget * nckd``.

    ``tckd`` and ``nckd`` carry the same factor as the KD loss they split (``tau^2`` by
    default); ``nontarget`` is the teacher's ``1 - p_t^T``, the weight KD gives NCKD."""

    tckd: Tensor
    nckd: Tensor
    nontarget: Tensor

    @property
    def kd(self) -> Tensor:
        """The KD loss these parts sum to, per sample: ``tckd + nontarget * nckd``."""
        return self.tckd + self.nontarget * self.nckd


def target_mask(logits: Tensor, labels: Tensor) -> Tensor:
    """``[N, C]`` booleans, True at each sample's target class (``labels`` ``[N]`` in
    ``0..C-1``; the values are not checked here, which would synchronise with the device every
    step: the cross-entropy beside the loss refuses a bad label)."""
    classes = logits.shape[-1]
    if classes < 2:
        raise ConfigError(f"decoupled KD needs at least 2 classes, got {classes}")
    labels = labels.reshape(-1).long()
    if labels.numel() != logits.shape[0]:
        raise ConfigError(f"{labels.numel()} labels for {logits.shape[0]} samples")
    mask = torch.zeros(logits.shape, dtype=torch.bool, device=logits.device)
    return mask.scatter_(1, labels.unsqueeze(1), True)


def _binary_log_probs(scaled: Tensor, mask: Tensor) -> Tensor:
    """``[N, 2]``: ``log p_t`` and ``log(1 - p_t)`` from logits already divided by tau."""
    everything = torch.logsumexp(scaled, dim=-1)
    others = torch.logsumexp(scaled.masked_fill(mask, float("-inf")), dim=-1)
    target = torch.where(mask, scaled, torch.zeros_like(scaled)).sum(dim=-1)  # one entry a row
    return torch.stack([target - everything, others - everything], dim=-1)


def _nontarget_log_probs(scaled: Tensor, mask: Tensor) -> Tensor:
    """``log p_hat``: a log-softmax over the non-target classes, with 0 at the target (whose
    entry the caller weights by 0; no -inf or NaN reaches a sum or a gradient)."""
    masked = torch.log_softmax(scaled.masked_fill(mask, float("-inf")), dim=-1)
    return masked.masked_fill(mask, 0.0)


def _kl(teacher_log_probs: Tensor, student_log_probs: Tensor, keep: Tensor | None = None) -> Tensor:
    """``sum_i q_i (log q_i - log p_i)`` over the last dimension, per sample (``keep``: the
    entries that count)."""
    q = teacher_log_probs.exp()
    if keep is not None:
        q = q * keep
    return (q * (teacher_log_probs - student_log_probs)).sum(dim=-1)


def split_kd(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    tau: float = 4.0,
    tau_squared: bool = True,
) -> KDParts:
    """Split ``tau^2 * KL(P_T^tau || P_S^tau)`` into its TCKD and NCKD parts per sample (DKD
    paper Sec. 3.1: ``KD = TCKD + (1 - p_t^T) * NCKD``).

    ``student_logits`` and ``teacher_logits`` are ``[N, C]``, ``labels`` ``[N]`` (the target
    class t of each sample). Returns :class:`KDParts` of ``[N]`` tensors: ``tckd`` =
    ``tau^2 KL(b^T || b^S)``, ``nckd`` = ``tau^2 KL(p_hat^T || p_hat^S)`` and ``nontarget`` =
    ``1 - p_t^T``; ``parts.kd`` equals the per-sample KD loss
    (:func:`dihkit.losses.per_sample_kd`) up to float round-off. ``tau_squared=False`` drops the
    ``tau^2`` factor from both parts. The teacher's logits are constants (no gradient).
    """
    check_tau(tau)
    mask = target_mask(student_logits, labels)
    student = student_logits.float() / tau
    teacher = teacher_logits.detach().float() / tau
    teacher_binary = _binary_log_probs(teacher, mask)
    tckd = _kl(teacher_binary, _binary_log_probs(student, mask))
    keep = (~mask).float()
    nckd = _kl(_nontarget_log_probs(teacher, mask), _nontarget_log_probs(student, mask), keep)
    scale = tau**2 if tau_squared else 1.0
    return KDParts(scale * tckd, scale * nckd, teacher_binary[:, 1].exp())


def tckd_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, tau: float = 4.0
) -> Tensor:
    """TCKD, ``tau^2 * KL(b^T || b^S)`` over the binary target / non-target distributions
    (DKD paper Sec. 3.1), batch mean; ``tau^2`` as in the authors' code."""
    return split_kd(student_logits, teacher_logits, labels, tau).tckd.mean()


def nckd_loss(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, tau: float = 4.0
) -> Tensor:
    """NCKD, ``tau^2 * KL(p_hat^T || p_hat^S)`` over the distributions among the non-target
    classes (DKD paper Sec. 3.1), batch mean; ``tau^2`` as in the authors' code."""
    return split_kd(student_logits, teacher_logits, labels, tau).nckd.mean()


def dkd_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    alpha: float = 1.0,
    beta: float = 8.0,
    tau: float = 4.0,
) -> dict[str, Tensor]:
    """DKD paper Sec. 3.3: ``alpha * TCKD + beta * NCKD``, batch means, each with ``tau^2``, as
    named terms (``tckd``, ``nckd``) whose sum is the loss. Classical KD is the special case
    ``alpha = 1, beta = 1 - p_t^T`` per sample; DKD decouples NCKD's weight from the teacher's
    confidence. The cross-entropy is the caller's."""
    parts = split_kd(student_logits, teacher_logits, labels, tau)
    return {"tckd": alpha * parts.tckd.mean(), "nckd": beta * parts.nckd.mean()}


def warmup_factor(epoch: int, warmup_epochs: int) -> float:
    """The DKD term's weight in (1-based) ``epoch``: ``min(epoch / warmup_epochs, 1)``, a linear
    ramp over the first ``warmup_epochs`` as in the authors' code (0.05 in the first of 20
    epochs, 1 from the 20th); ``warmup_epochs = 0`` is no warm-up."""
    if warmup_epochs < 0 or epoch < 1:
        raise ConfigError(
            f"warm-up needs epoch >= 1 and warmup_epochs >= 0, got {epoch} and {warmup_epochs}"
        )
    return 1.0 if warmup_epochs == 0 else min(epoch / warmup_epochs, 1.0)


__all__ = [
    "KDParts",
    "dkd_loss",
    "nckd_loss",
    "split_kd",
    "target_mask",
    "tckd_loss",
    "warmup_factor",
]
