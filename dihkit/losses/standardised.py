"""Logit standardisation (Sun, Ren, Li, Wang & Cao, "Logit Standardization in Knowledge
Distillation", CVPR 2024; "LS paper" below): a z-score of each sample's logits before the
softened softmax of a KD-style loss, so the student matches the teacher's logit *relations*
rather than their range and scale.

Base temperature. The LS paper's Algorithm 1 softens ``Z(z; tau) = (z - mean(z)) / (std(z) *
tau)``: each sample's effective temperature is ``tau * std(z)``, its own logit spread times a
*base* temperature ``tau``. dihkit computes exactly this as ``standardise(z) / tau`` inside the
existing losses, so a method's ``tau`` *is* the base temperature when standardisation is on,
and the ``tau^2`` factor of Hinton's loss stays (as in the authors' code, which multiplies by the
base temperature squared). The authors' CIFAR-100 command line is a base temperature of 2 and a
KD weight of 9 against a CE weight of 0.1 for KD, and DKD's alpha and beta multiplied by that
weight (their logs show base temperatures of 2-3 and weights of 9-18 per pair): standardised
logits have unit spread, so at the same tau the softened distributions are much flatter than
without standardisation, and the larger weight makes up for the smaller KL.
"""

from __future__ import annotations

import torch
from torch import Tensor

LS_EPS = 1e-7  # added to the standard deviation, as in the authors' code


def standardise(logits: Tensor, eps: float = LS_EPS, unbiased: bool = False) -> Tensor:
    """The z-score of each sample's logits over the class dimension (the last):
    ``(z - mean(z)) / (std(z) + eps)`` (LS paper Algorithm 1, ``Z(z; tau)`` before the division
    by the base temperature).

    ``std`` is the population standard deviation, ``sqrt(mean((z - mean(z))^2))`` (1/C, the
    z-score as Algorithm 1 writes it, as we read it). ``unbiased=True`` uses Bessel's
    correction, ``/(C - 1)``, what the authors' code gets from ``torch.std``: it rescales every
    standardised logit by ``sqrt((C - 1) / C)`` (0.995 at 100 classes, 0.949 at 10), the same
    as a base temperature ``sqrt(C / (C - 1))`` times larger.

    The result is invariant to shifting a sample's logits by a constant and, up to ``eps``, to
    scaling them by a positive factor. A sample whose logits are all equal standardises to
    zeros with finite gradients (its variance is clamped to the smallest positive float before
    the square root). Half-precision logits are computed in float32.
    """
    z = logits.float() if logits.dtype in (torch.float16, torch.bfloat16) else logits
    centred = z - z.mean(dim=-1, keepdim=True)
    classes = z.shape[-1]
    denominator = classes - 1 if unbiased else classes
    variance = centred.pow(2).sum(dim=-1, keepdim=True) / denominator
    std = variance.clamp_min(torch.finfo(variance.dtype).tiny).sqrt()
    return centred / (std + eps)


def maybe_standardise(logits: Tensor, on: bool) -> Tensor:
    """``standardise(logits)`` when ``on``, else ``logits`` unchanged (the same tensor)."""
    return standardise(logits) if on else logits


__all__ = ["LS_EPS", "maybe_standardise", "standardise"]
