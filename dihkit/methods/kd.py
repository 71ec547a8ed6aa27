"""Hinton's knowledge distillation from the teacher's final classifier (DIH paper Eq. 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.losses import KD_WEIGHTINGS, kd_loss, kd_student_loss
from dihkit.losses.standardised import standardise
from dihkit.methods.base import BuildContext, TeacherLogitsDistiller, require_teacher
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register

LOGIT_STANDARDISE_HELP = (
    "z-score each sample's student and teacher logits before the softened softmax of the "
    "distillation term only, not the CE (logit standardisation, Sun et al. CVPR 2024); tau is "
    "then the base temperature (LS paper: 2)"
)


@dataclass(frozen=True)
class StandardisableOptions(MethodOptions):
    """Options of a method with a ``logit_standardise`` switch (each subclass declares it last).
    The switch is recorded in a run's options only when on, so a run recorded before it existed
    keeps its identity (the notebooks' run cache, ``compare`` and resuming find it again)."""

    def as_dict(self) -> dict[str, Any]:
        values = super().as_dict()
        if values.get("logit_standardise") is False:
            del values["logit_standardise"]
        return values


@dataclass(frozen=True)
class KDOptions(StandardisableOptions):
    tau: float = option(
        5.0, "temperature of the softened distributions (DIH paper: 5)", low=0, low_open=True
    )
    alpha: float = option(
        0.1,
        "weight of the KD term; CE gets 1 - alpha under convex weighting, 1 under sum "
        "(DIH paper: 0.1, convex; DSKD paper: 1, sum)",
        low=0,
        high=1,
    )
    kd_weighting: str = option(
        "convex",
        "convex: (1 - alpha) CE + alpha tau^2 KL (Hinton; DIH Eq. 2); sum: CE + alpha tau^2 KL "
        "(DSKD Eq. 9 / Sec. 4, CE + 1 x KD at alpha 1)",
        choices=KD_WEIGHTINGS,
    )
    logit_standardise: bool = option(False, LOGIT_STANDARDISE_HELP)


@register("kd")
class KnowledgeDistillation(TeacherLogitsDistiller):
    """``alpha * tau^2 * KL(P_T^tau || P_S^tau) + (1 - alpha) * CE`` (``kd_weighting="convex"``,
    the default), or ``CE + alpha * tau^2 * KL`` (``kd_weighting="sum"``, the DSKD paper's KD
    baseline at alpha = 1); the teacher is frozen and runs without gradients in eval mode.

    ``logit_standardise=True`` (LS paper, Algorithm 1) replaces both logits in the KL term by
    their per-sample z-scores (:func:`dihkit.losses.standardised.standardise`) before dividing
    by ``tau``, which becomes the base temperature; the CE still sees the raw student logits,
    and ``tau^2`` stays. The LS paper's CIFAR recipe (base temperature 2, CE 0.1 + 9 x KD, a
    KD:CE ratio of 90) is outside ``alpha``'s [0, 1]: ``convex`` at alpha = 90/91 has the ratio
    at a 9.1 x smaller overall scale. Off (the default), the loss is exactly the one above."""

    summary = "Hinton KD from the teacher's classifier (alpha*KD + (1-alpha)*CE, or CE + alpha*KD)"
    Options = KDOptions

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        tau: float = 5.0,
        alpha: float = 0.1,
        weighting: str = "convex",
        logit_standardise: bool = False,
    ) -> None:
        super().__init__(student, teacher)
        self.tau, self.alpha, self.weighting = tau, alpha, weighting
        self.logit_standardise = logit_standardise

    @classmethod
    def build(cls, context: BuildContext, options: KDOptions) -> KnowledgeDistillation:
        teacher = require_teacher(context, cls.method)
        return cls(
            context.student,
            teacher.model,
            options.tau,
            options.alpha,
            options.kd_weighting,
            options.logit_standardise,
        )

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        teacher_logits = self.targets_for(images, targets)[0]
        logits = self.student(images)
        if not self.logit_standardise:
            return logits, kd_student_loss(
                logits, teacher_logits, labels, self.tau, self.alpha, self.weighting
            )
        ce_weight = 1 - self.alpha if self.weighting == "convex" else 1.0
        return logits, {
            "kd": self.alpha * kd_loss(standardise(logits), standardise(teacher_logits), self.tau),
            "ce": ce_weight * F.cross_entropy(logits, labels),
        }
