"""Softmax with temperature and the anatomy of the KD loss (notebook 01): softened distributions
and their entropy, how the KD gradient scales with tau (and why Eq. 1 multiplies by tau^2), and
KD as a KL divergence versus cross-entropy with soft targets."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dihkit.losses import kd_loss

TAU_GRID = (0.5, 1.0, 2.0, 3.0, 4.0, 5.0, 7.0, 10.0, 15.0, 20.0)  # the plotly twin's slider


def one_per_class(labels: Tensor) -> list[int]:
    """The position of the first example of every class, in class order."""
    return [int(torch.nonzero(labels == c)[0]) for c in labels.unique().tolist()]


def softened_grid(logits: Tensor, taus: Sequence[float]) -> Tensor:
    """``softmax(logits / tau)`` for every ``tau``: shape ``[len(taus), *logits.shape]``."""
    return torch.stack([F.softmax(logits.double() / float(tau), dim=-1) for tau in taus])


def entropy(probs: Tensor) -> Tensor:
    """Shannon entropy in nats over the last dimension (``0 log 0 = 0``)."""
    probs = probs.double()
    return -(probs * torch.log(probs.clamp_min(1e-300))).sum(dim=-1)


def entropy_against_tau(logits: Tensor, taus: Sequence[float]) -> list[float]:
    """Entropy of the softened distribution of one logit vector ``[C]`` at every ``tau``
    (for a batch ``[N, C]``: the batch mean)."""
    values = entropy(softened_grid(logits, taus))
    if values.dim() > 1:
        values = values.mean(dim=-1)
    return [float(v) for v in values]


@dataclass
class GradientNorms:
    """Mean per-example L2 norm of the KD loss's gradient w.r.t. the student's logits."""

    taus: list[float]
    with_tau2: list[float]  # gradient of tau^2 * KL (DIH paper Eq. 1)
    without_tau2: list[float]  # gradient of the bare KL


def kd_gradient_norms(
    student_logits: Tensor, teacher_logits: Tensor, taus: Sequence[float]
) -> GradientNorms:
    """Measure how the KD gradient scales with the temperature, with and without ``tau^2``.

    The gradient of ``KL(P_T^tau || P_S^tau)`` w.r.t. the student logits is
    ``(P_S^tau - P_T^tau) / tau``, which shrinks like ``1 / tau^2`` at high temperature; the
    ``tau^2`` factor of Eq. 1 undoes that, so changing tau does not silently rescale the KD term
    against the cross-entropy term.
    """
    batch = student_logits.shape[0]
    with_tau2, without_tau2 = [], []
    for tau in taus:
        logits = student_logits.detach().double().requires_grad_(True)
        loss = kd_loss(logits, teacher_logits.double(), float(tau))
        (grad,) = torch.autograd.grad(loss, logits)
        per_example = (grad * batch).norm(dim=-1).mean().item()  # undo the batch mean
        with_tau2.append(per_example)
        without_tau2.append(per_example / float(tau) ** 2)
    return GradientNorms([float(t) for t in taus], with_tau2, without_tau2)


@dataclass
class KDIdentity:
    """KD as a KL divergence versus cross-entropy with soft targets, at one temperature.

    ``soft_ce - kl`` equals the teacher's entropy ``H(P_T^tau)`` (``value_gap`` is how far from
    exact that is), and the two losses have the same gradient w.r.t. the student's logits
    (``gradient_gap``: largest absolute difference), because the teacher's entropy does not
    depend on the student. All in float64, per example (batch mean), without ``tau^2``.
    """

    tau: float
    kl: float
    soft_ce: float
    teacher_entropy: float
    value_gap: float
    gradient_gap: float
    kd_loss_gap: float  # |dihkit.losses.kd_loss / tau^2 - kl| (kd_loss computes in float32)


def kd_identity(student_logits: Tensor, teacher_logits: Tensor, tau: float) -> KDIdentity:
    """Compute both forms of the KD loss and the two gaps of :class:`KDIdentity`."""
    teacher_probs = F.softmax(teacher_logits.double() / tau, dim=-1)
    logits = student_logits.detach().double().requires_grad_(True)
    log_student = F.log_softmax(logits / tau, dim=-1)
    kl = F.kl_div(log_student, teacher_probs, reduction="batchmean")
    soft_ce = -(teacher_probs * log_student).sum(dim=-1).mean()
    (grad_kl,) = torch.autograd.grad(kl, logits, retain_graph=True)
    (grad_ce,) = torch.autograd.grad(soft_ce, logits)
    teacher_entropy = entropy(teacher_probs).mean()
    packaged = kd_loss(student_logits.detach(), teacher_logits, tau).item() / tau**2
    return KDIdentity(
        tau=float(tau),
        kl=kl.item(),
        soft_ce=soft_ce.item(),
        teacher_entropy=teacher_entropy.item(),
        value_gap=abs((soft_ce - kl - teacher_entropy).item()),
        gradient_gap=(grad_kl - grad_ce).abs().max().item(),
        kd_loss_gap=abs(packaged - kl.item()),
    )
