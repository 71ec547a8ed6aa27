"""Distillation losses as plain functions. Equation numbers refer to the DIH paper
(Asadian & Salehi-Abari, "Distilling knowledge via intermediate classifier heads") unless a
docstring names the MHKD paper ("Multi-head knowledge distillation for model compression") or
the DSKD paper ("Deeply-supervised knowledge distillation").

The losses of the three papers live here; the related methods' losses (decoupled KD, the
decomposition of a teacher's distribution, channel and feature distillation) live in one
submodule each.
"""

from __future__ import annotations

import math
import numbers

import torch
import torch.nn.functional as F
from torch import Tensor

from dihkit.errors import ConfigError

# How a KD term and the cross-entropy are combined: (1 - alpha) CE + alpha KD (Hinton, DIH,
# MHKD) or CE + alpha KD (DSKD).
KD_WEIGHTINGS = ("convex", "sum")


def check_tau(tau: float) -> float:
    """``tau`` if it is a finite positive number, else a :class:`ConfigError` naming it."""
    ok = isinstance(tau, numbers.Real) and not isinstance(tau, bool)
    if not (ok and math.isfinite(tau) and tau > 0):
        raise ConfigError(f"temperature tau must be a finite positive number, got {tau!r}")
    return tau


def softened(logits: Tensor, tau: float) -> Tensor:
    """Softened probabilities ``softmax(z / tau)`` (Eq. 3 without the head's linear map)."""
    return F.softmax(logits.float() / check_tau(tau), dim=-1)


def kd_loss_from_probs(student_logits: Tensor, teacher_probs: Tensor, tau: float) -> Tensor:
    """``tau^2 * KL(P_T^tau || P_S^tau)``, batch mean, for teacher probabilities given directly."""
    check_tau(tau)
    student_log_probs = F.log_softmax(student_logits.float() / tau, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_probs.float(), reduction="batchmean")
    return tau**2 * kl


def kd_loss(
    student_logits: Tensor, teacher_logits: Tensor, tau: float = 5.0, reduction: str = "mean"
) -> Tensor:
    """Hinton's distillation loss, DIH paper Eq. 1 in the KL form of its footnote 2:
    ``tau^2 * KL(P_T^tau || P_S^tau)``.

    The batch mean of the KL divergence. Eq. 1 itself writes the cross-entropy
    ``tau^2 * H(P_T^tau, P_S^tau)``, which differs only by the teacher's entropy, a constant for
    the student, so the gradients are identical. The ``tau^2`` factor keeps the
    gradient's scale roughly independent of the temperature. Teacher logits are treated as
    constants (no gradient flows into the teacher). ``reduction="none"`` returns the per-sample
    values ``[N]`` (DSKD weights them per sample, its Eq. 2 and 7).
    """
    check_tau(tau)
    if reduction == "none":
        return per_sample_kd(student_logits, teacher_logits, tau)
    if reduction != "mean":
        raise ConfigError(f"reduction must be 'mean' or 'none', got {reduction!r}")
    return kd_loss_from_probs(student_logits, softened(teacher_logits.detach(), tau), tau)


def per_sample_kd(
    student_logits: Tensor, teacher_logits: Tensor, tau: float, tau_squared: bool = True
) -> Tensor:
    """``tau^2 * KL(P_T^tau || P_S^tau)`` for each sample, ``[N]`` (Eq. 1 before the batch mean).

    ``tau_squared=False`` drops Hinton's factor: ``KL(sigma(z_T / tau) || sigma(z_S / tau))`` as
    the DSKD paper prints its Eq. 1-2 and 7 (at tau = 4 the value is 16 times smaller)."""
    teacher_probs = softened(teacher_logits.detach(), tau)
    student_log_probs = F.log_softmax(student_logits.float() / tau, dim=-1)
    kl = F.kl_div(student_log_probs, teacher_probs, reduction="none").sum(dim=-1)
    return tau**2 * kl if tau_squared else kl


def kd_student_loss(
    student_logits: Tensor,
    teacher_logits: Tensor,
    labels: Tensor,
    tau: float = 5.0,
    alpha: float = 0.1,
    weighting: str = "convex",
) -> dict[str, Tensor]:
    """DIH paper Eq. 2: ``alpha * L_kd + (1 - alpha) * CE`` with the CE at tau = 1
    (``weighting="convex"``, Hinton's form).

    ``weighting="sum"`` is the DSKD paper's form (its Eq. 9 and Sec. 4, "alpha = 1 ... for all
    methods"): ``CE + alpha * L_kd``. Convex at alpha = 0.5 is half of sum at alpha = 1, which
    under SGD with weight decay is *not* the same run at another learning rate (the weight
    decay is not halved with it). Returned as named terms (``kd``, ``ce``) whose sum is the loss.
    """
    if weighting not in KD_WEIGHTINGS:
        raise ConfigError(f"weighting must be one of {', '.join(KD_WEIGHTINGS)}, got {weighting!r}")
    ce_weight = 1 - alpha if weighting == "convex" else 1.0
    return {
        "kd": alpha * kd_loss(student_logits, teacher_logits, tau),
        "ce": ce_weight * F.cross_entropy(student_logits, labels),
    }


def dih_loss(student_logits: Tensor, cohort_logits: Tensor, tau: float = 5.0) -> Tensor:
    """DIH paper Eq. 4: the mean of the k+1 KD losses (Eq. 1) over the cohort.

    ``cohort_logits`` is ``[k+1, N, C]``: the k intermediate heads and the teacher's own
    classifier. With no heads (k = 0) this is exactly :func:`kd_loss`.

    Note: the authors' public code *sums* ``alpha*tau^2*KL + (1-alpha)*CE`` over the k+1 members,
    which scales the KD term by k+1 and counts the CE term k+1 times. dihkit implements the
    paper's equations (mean over members, CE once in Eq. 5).
    """
    members = cohort_logits.shape[0]
    # One batched KL over [k+1, N, C], divided by N (batch mean) and by k+1 (Eq. 4's mean).
    teacher_probs = softened(cohort_logits.detach(), tau)
    student_log_probs = F.log_softmax(student_logits.float() / tau, dim=-1).expand_as(teacher_probs)
    kl = F.kl_div(student_log_probs, teacher_probs, reduction="sum") / student_logits.shape[0]
    return tau**2 * kl / members


def dih_student_loss(
    student_logits: Tensor,
    cohort_logits: Tensor,
    labels: Tensor,
    tau: float = 5.0,
    alpha: float = 0.1,
) -> dict[str, Tensor]:
    """DIH paper Eq. 5: ``alpha * L_DIH + (1 - alpha) * CE``, as named terms (``dih``, ``ce``)."""
    return {
        "dih": alpha * dih_loss(student_logits, cohort_logits, tau),
        "ce": (1 - alpha) * F.cross_entropy(student_logits, labels),
    }


def ensemble_kd_loss(student_logits: Tensor, cohort_logits: Tensor, tau: float = 5.0) -> Tensor:
    """The ensemble variant of DIH paper Sec. 4.4: KD (Eq. 1) from the *average* of the cohort's
    softened distributions, ``mean_M P_M^tau``, instead of the mean of the per-member losses."""
    return kd_loss_from_probs(student_logits, ensemble_probs(cohort_logits.detach(), tau), tau)


def hint_loss(student_hint: Tensor, teacher_hint: Tensor) -> Tensor:
    """FitNets' hint loss (Romero et al. 2015, Eq. 3): mean squared error between the regressed
    student feature map and the teacher's hint layer."""
    return F.mse_loss(student_hint.float(), teacher_hint.detach().float())


def mutual_loss(logits: Tensor, peer_logits: Tensor, tau: float = 1.0) -> Tensor:
    """Deep mutual learning (Zhang et al. 2018, Eq. 2/3): ``KL(p_peer || p)`` at tau = 1 (the
    paper's), with the peer's prediction held constant. Another ``tau`` softens both sides and
    multiplies by ``tau^2`` as :func:`kd_loss` does (at tau = 1 the factor is 1)."""
    return kd_loss(logits, peer_logits, tau=tau)


def one_head_kd_loss(
    student_head_logits: Tensor,
    teacher_head_logits: Tensor,
    labels: Tensor,
    tau: float = 4.0,
    alpha: float = 0.9,
) -> dict[str, Tensor]:
    """MHKD paper Eq. 1, one head pair: ``alpha * tau^2 * KL(H_T^tau || H_S^tau) + (1 - alpha) *
    CE(y, H_S)``, as named terms (``kl``, ``ce``). The ``tau^2`` factor is Hinton's (MHKD builds
    on [7]); the teacher head's logits are constants here."""
    return {
        "kl": alpha * kd_loss(student_head_logits, teacher_head_logits, tau),
        "ce": (1 - alpha) * F.cross_entropy(student_head_logits, labels),
    }


def per_sample_mse(student_feature: Tensor, teacher_feature: Tensor) -> Tensor:
    """``MSE(F_T, r(F_S))`` for each sample, ``[N]``: the mean squared difference over the
    feature map's elements (DSKD paper Eq. 4-5 before the batch mean). The teacher's feature is
    a constant."""
    diff = student_feature.float() - teacher_feature.detach().float()
    return diff.pow(2).flatten(1).mean(dim=1)


def adaptive_weights(per_sample_losses: Tensor) -> Tensor:
    """DSKD paper Eq. 7-8: each shallow classifier's weight on each sample is its share of the
    summed loss over the shallow classifiers, ``W_l = L_l / sum_j L_j``.

    ``per_sample_losses`` is ``[M, N]`` (M shallow classifiers, N samples); the result has the
    same shape, sums to 1 over M for every sample, and gives the larger loss the larger weight.
    The paper does not say whether the weights carry gradients; dihkit detaches them (they are
    weights, not a loss: with gradients ``W_l L_l = L_l^2 / sum_j L_j`` would change the
    objective). A sample whose losses are all zero gets equal weights.
    """
    losses = per_sample_losses.detach().float().clamp_min(0)
    total = losses.sum(dim=0, keepdim=True)
    equal = torch.full_like(losses, 1.0 / losses.shape[0])
    return torch.where(total > 0, losses / total.clamp_min(torch.finfo(losses.dtype).tiny), equal)


def equal_weights(per_sample_losses: Tensor) -> Tensor:
    """The DSKD ablation without adaptive weights (its Table 3): ``1 / M`` for every classifier."""
    m = per_sample_losses.shape[0]
    return torch.full_like(per_sample_losses.detach().float(), 1.0 / m)


def weighted_shallow_loss(per_sample_losses: Tensor, weights: Tensor) -> Tensor:
    """DSKD paper Eq. 2 and 5: ``sum_l W_l * L_l`` per sample, then the batch mean."""
    if per_sample_losses.numel() == 0:
        return per_sample_losses.sum()
    return (weights * per_sample_losses).sum(dim=0).mean()


def ensemble_probs(cohort_logits: Tensor, tau: float) -> Tensor:
    """Average of the cohort's softened distributions, ``[N, C]`` (what Sec. 4.4 distills from)."""
    return softened(cohort_logits, tau).mean(dim=0)


__all__ = [
    "KD_WEIGHTINGS",
    "adaptive_weights",
    "check_tau",
    "dih_loss",
    "dih_student_loss",
    "ensemble_kd_loss",
    "ensemble_probs",
    "equal_weights",
    "hint_loss",
    "kd_loss",
    "kd_loss_from_probs",
    "kd_student_loss",
    "mutual_loss",
    "one_head_kd_loss",
    "per_sample_kd",
    "per_sample_mse",
    "softened",
    "weighted_shallow_loss",
]
