"""Hinton's knowledge distillation from the teacher's final classifier (DIH paper Eq. 2)."""

from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor, nn

from dihkit.losses import KD_WEIGHTINGS, kd_student_loss
from dihkit.methods.base import BuildContext, Distiller, require_teacher
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.nn.heads import freeze


@dataclass(frozen=True)
class KDOptions(MethodOptions):
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


@register("kd")
class KnowledgeDistillation(Distiller):
    """``alpha * tau^2 * KL(P_T^tau || P_S^tau) + (1 - alpha) * CE`` (``kd_weighting="convex"``,
    the default), or ``CE + alpha * tau^2 * KL`` (``kd_weighting="sum"``, the DSKD paper's KD
    baseline at alpha = 1); the teacher is frozen and runs without gradients in eval mode."""

    summary = "Hinton KD from the teacher's classifier (alpha*KD + (1-alpha)*CE, or CE + alpha*KD)"
    Options = KDOptions
    requires = ("teacher",)
    frozen = ("teacher",)
    caches_targets = True

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        tau: float = 5.0,
        alpha: float = 0.1,
        weighting: str = "convex",
    ) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)
        self.tau, self.alpha, self.weighting = tau, alpha, weighting

    @classmethod
    def build(cls, context: BuildContext, options: KDOptions) -> KnowledgeDistillation:
        teacher = require_teacher(context, cls.method)
        return cls(context.student, teacher.model, options.tau, options.alpha, options.kd_weighting)

    def target_source(self) -> nn.Module:
        return self.teacher

    def frozen_targets(self, images: Tensor) -> Tensor:
        return self.teacher(images).unsqueeze(0)

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        teacher_logits = self.targets_for(images, targets)[0]
        logits = self.student(images)
        return logits, kd_student_loss(
            logits, teacher_logits, labels, self.tau, self.alpha, self.weighting
        )
