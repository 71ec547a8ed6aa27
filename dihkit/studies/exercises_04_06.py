"""Inputs and expected values for the exercises of notebooks 04-06 (DIH, MHKD, DSKD): small
fixed tensors a student can work on by hand, and the kit's own answers to compare with, so a
check never holds a hard-coded number."""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import torch
from torch import Tensor

from dihkit.losses import ensemble_probs, softened
from dihkit.studies.temperature import entropy
from dihkit.teachers.loading import load_teacher

__all__ = [
    "cohort_size",
    "dih_example",
    "entropy_comparison",
    "largest_last_epoch",
    "shallow_losses_example",
]


def dih_example(
    members: int = 2, samples: int = 4, classes: int = 5, seed: int = 0
) -> tuple[Tensor, Tensor]:
    """Fixed logits for a by-hand DIH loss: the student's ``[samples, classes]`` and a cohort's
    ``[members, samples, classes]`` (the same tensors for every profile and machine)."""
    generator = torch.Generator().manual_seed(seed)
    student = 2.0 * torch.randn(samples, classes, generator=generator)
    cohort = 3.0 * torch.randn(members, samples, classes, generator=generator)
    return student, cohort


def entropy_comparison(cohort_logits: Tensor, tau: float) -> dict[str, float]:
    """Mean entropy (nats, over the samples) of the ensemble target ``mean_m P_m^tau`` (what the
    DIH ensemble variant distils from) and of the members' own softened distributions."""
    return {
        "ensemble": entropy(ensemble_probs(cohort_logits, tau)).mean().item(),
        "mean_member": entropy(softened(cohort_logits, tau)).mean().item(),
    }


def cohort_size(teacher: str) -> int:
    """The k+1 members of a teacher's DIH cohort (its heads and its own classifier)."""
    return len(load_teacher(teacher).require_cohort("dih").member_names)


def largest_last_epoch(
    curves: Mapping[str, Mapping[str, Sequence[float]]], labels: Sequence[str]
) -> int | None:
    """The 1-based position in ``labels`` of the curve (of :func:`term_curves`) whose mean is
    largest at its last epoch; labels without a curve are skipped."""
    last = {i: curves[label]["mean"][-1] for i, label in enumerate(labels, 1) if label in curves}
    return max(last, key=last.get) if last else None


def shallow_losses_example(classifiers: int = 3, samples: int = 4, seed: int = 0) -> Tensor:
    """Fixed positive per-sample losses ``[classifiers, samples]`` of shallow classifiers, rounded
    to two decimals so a student can compute DSKD's weights (Eq. 7-8) by hand."""
    generator = torch.Generator().manual_seed(seed)
    losses = 0.1 + 2.0 * torch.rand(classifiers, samples, generator=generator)
    return (losses * 100).round() / 100
