"""DIH: distillation from a cohort of a frozen teacher and the classifier heads mounted on its
intermediate layers (DIH paper Eq. 4-5), and its ensemble variant (Sec. 4.4)."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.losses import dih_loss, dih_student_loss, ensemble_kd_loss
from dihkit.losses.standardised import standardise
from dihkit.methods.base import BuildContext, Distiller
from dihkit.methods.kd import LOGIT_STANDARDISE_HELP, StandardisableOptions
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.nn.heads import Cohort, freeze


@dataclass(frozen=True)
class DIHOptions(StandardisableOptions):
    tau: float = option(5.0, "temperature (DIH paper: 5)", low=0, low_open=True)
    alpha: float = option(
        0.1, "weight of the DIH term; CE gets 1 - alpha (paper: 0.1)", low=0, high=1
    )
    dih_reduction: str = option(
        "mean",
        "mean: the paper's Eq. 4-5 (KD averaged over the k+1 members, CE once); sum: the "
        "authors' public code, exactly (k+1) x Eq. 5 (same KD:CE balance, (k+1)x larger "
        "effective learning rate, relatively weaker weight decay)",
        choices=("mean", "sum"),
    )
    logit_standardise: bool = option(False, LOGIT_STANDARDISE_HELP)


class _CohortDistiller(Distiller):
    """A student distilled from a frozen cohort (teacher plus heads), whose ``(k+1, B, C)``
    logits are the frozen targets a target cache may hold."""

    frozen = ("cohort",)
    caches_targets = True
    cohort: Cohort

    def target_source(self) -> nn.Module:
        return self.cohort

    def frozen_targets(self, images: Tensor) -> Tensor:
        return self.cohort(images)


@register("dih")
class IntermediateHeads(_CohortDistiller):
    """DIH: distil from every member of the cohort, Eq. 4 averaged, plus CE (Eq. 5).

    The cohort's heads are built where the teacher's heads are trained (``dihkit train-heads
    --activation``, an experiment file's ``[heads] activation``), not here. The paper's heads
    (Eq. 3) are ``g(W a + b)`` with a non-linear g; the kit's default heads have no g
    (``activation = "none"``, a flagged departure kept for the bundled heads and committed
    numbers); ``activation = "relu"`` is the paper's form (:mod:`dihkit.nn.heads`).

    ``logit_standardise=True`` (LS paper, Algorithm 1; not in the DIH paper) z-scores the
    student's logits and every cohort member's before the softened softmax of Eq. 4, with
    ``tau`` as the base temperature; the CE of Eq. 5 keeps the raw student logits. Off (the
    default), the loss is exactly Eq. 4-5."""

    summary = "DIH: KD from the teacher and its intermediate heads (the k+1 cohort), Eq. 4-5"
    Options = DIHOptions
    requires = ("teacher", "cohort")

    def __init__(
        self,
        student: nn.Module,
        cohort: Cohort,
        tau: float = 5.0,
        alpha: float = 0.1,
        reduction: str = "mean",
        logit_standardise: bool = False,
    ) -> None:
        super().__init__(student)
        self.cohort = freeze(cohort)
        self.tau, self.alpha, self.reduction = tau, alpha, reduction
        self.logit_standardise = logit_standardise

    @classmethod
    def build(cls, context: BuildContext, options: DIHOptions) -> IntermediateHeads:
        cohort = context.teacher.require_cohort(cls.method)
        return cls(
            context.student,
            cohort,
            options.tau,
            options.alpha,
            options.dih_reduction,
            options.logit_standardise,
        )

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        cohort_logits = self.targets_for(images, targets)
        logits = self.student(images)
        if self.logit_standardise:
            standardised = dih_loss(standardise(logits), standardise(cohort_logits), self.tau)
            terms = {
                "dih": self.alpha * standardised,
                "ce": (1 - self.alpha) * F.cross_entropy(logits, labels),
            }
        else:
            terms = dih_student_loss(logits, cohort_logits, labels, self.tau, self.alpha)
        if self.reduction == "sum":
            members = cohort_logits.shape[0]
            terms = {name: members * value for name, value in terms.items()}
        return logits, terms


@dataclass(frozen=True)
class EnsembleOptions(MethodOptions):
    tau: float = option(5.0, "temperature (DIH paper: 5)", low=0, low_open=True)
    alpha: float = option(0.1, "weight of the KD term; CE gets 1 - alpha", low=0, high=1)


@register("dih-ensemble")
class EnsembleHeads(_CohortDistiller):
    """DIH paper Sec. 4.4: distil from the average of the cohort's softened distributions."""

    summary = "KD from the average of the cohort's softened distributions (DIH Sec. 4.4)"
    Options = EnsembleOptions
    requires = ("teacher", "cohort")

    def __init__(self, student: nn.Module, cohort: Cohort, tau: float = 5.0, alpha: float = 0.1):
        super().__init__(student)
        self.cohort = freeze(cohort)
        self.tau, self.alpha = tau, alpha

    @classmethod
    def build(cls, context: BuildContext, options: EnsembleOptions) -> EnsembleHeads:
        cohort = context.teacher.require_cohort(cls.method)
        return cls(context.student, cohort, options.tau, options.alpha)

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        cohort_logits = self.targets_for(images, targets)
        logits = self.student(images)
        return logits, {
            "kd_ensemble": self.alpha * ensemble_kd_loss(logits, cohort_logits, self.tau),
            "ce": (1 - self.alpha) * F.cross_entropy(logits, labels),
        }
