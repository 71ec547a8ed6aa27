"""Deep supervision of a student through shallow classifiers: the shared construction, and the
two baselines of the DSKD paper's Table 1 that need no teacher knowledge for their exits:
DSN (Lee et al. 2015; companions learn the labels) and BYOT (Zhang et al. 2019; shallow exits
learn from the student's own deepest classifier)."""

from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from dihkit.losses import KD_WEIGHTINGS, kd_loss
from dihkit.methods.base import BuildContext, Distiller, parse_positions
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.nn.exits import StudentWithExits, tail_exit
from dihkit.nn.taps import default_positions

EXITS_HELP = (
    "which shallow stages (all but the last) get a classifier: all, none, or 1-based "
    "indices/stage names such as 1 or layer1,layer2"
)


def shallow_classifiers(
    context: BuildContext, exits: str, method: str, allow_none: bool = False
) -> StudentWithExits:
    """The student wrapped with DSKD-style shallow classifiers at the chosen shallow stages
    (the student's stages 1..L-1); each is a fresh copy of the rest of the main branch plus
    pooling and a new fully connected layer (:func:`dihkit.nn.exits.tail_exit`)."""
    shallow = default_positions(context.student)[:-1]
    positions = parse_positions(exits, shallow, method, "exits", allow_none=allow_none)
    branches = [tail_exit(context.student, p, context.input_shape) for p in positions]
    return StudentWithExits(context.student, positions, branches)


class ExitsDistiller(Distiller):
    """A distiller whose student has shallow classifiers; they are saved for resuming under
    ``extra`` and never part of the exported model."""

    def __init__(self, student_exits: StudentWithExits) -> None:
        super().__init__(student_exits.student)
        self.student_exits = student_exits

    def extra_modules(self) -> dict[str, torch.nn.Module]:
        return {"exits": self.student_exits.exits}


@dataclass(frozen=True)
class DSNOptions(MethodOptions):
    exits: str = option("all", EXITS_HELP)
    companion_weight: float = option(
        1.0, "weight of each companion classifier's cross-entropy", low=0
    )


@register("dsn")
class DeeplySupervisedNet(ExitsDistiller):
    """DSN: ``CE(main) + w * sum_l CE(exit_l)``: shallow classifiers learn the labels. (The
    original decays the companion weights over training; dihkit keeps them constant, as the
    DSKD paper's comparison does not say otherwise.)"""

    summary = "DSN: shallow classifiers on the student learn the labels (no teacher)"
    Options = DSNOptions

    def __init__(self, student_exits: StudentWithExits, companion_weight: float) -> None:
        super().__init__(student_exits)
        self.companion_weight = companion_weight

    @classmethod
    def build(cls, context: BuildContext, options: DSNOptions) -> DeeplySupervisedNet:
        return cls(
            shallow_classifiers(context, options.exits, cls.method), options.companion_weight
        )

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.student_exits(images)
        terms = {"ce": F.cross_entropy(out.logits, labels)}
        for j, logits in enumerate(out.exit_logits):
            terms[f"exit{j + 1}_ce"] = self.companion_weight * F.cross_entropy(logits, labels)
        return out.logits, terms


@dataclass(frozen=True)
class BYOTOptions(MethodOptions):
    exits: str = option("all", EXITS_HELP)
    tau: float = option(
        3.0, "temperature of the self-distillation KD (common code: 3)", low=0, low_open=True
    )
    alpha: float = option(
        0.1,
        "weight of the KD terms; every classifier's CE gets 1 - alpha under convex weighting, 1 "
        "under sum (common code: 0.1, convex; DSKD Table 1: 1, sum)",
        low=0,
        high=1,
    )
    kd_weighting: str = option(
        "convex",
        "convex: (1 - alpha) CE + alpha tau^2 KL per classifier (common code); sum: CE + alpha "
        "tau^2 KL (the DSKD paper's 'CE + alpha KD, alpha = 1 for all methods')",
        choices=KD_WEIGHTINGS,
    )
    feature_weight: float = option(
        1e-6, "weight of the feature L2 terms (common code: 1e-6)", low=0
    )


@register("byot")
class BeYourOwnTeacher(ExitsDistiller):
    """BYOT self-distillation, as the widely used implementation does it: ``(1 - alpha) * sum of
    CE over all classifiers + alpha * sum_l tau^2 KL(p_deepest^tau || p_l^tau) + feature_weight *
    sum_l ||f_l - f_deepest||^2``, where the deepest classifier's softmax and pooled feature are
    constants and the squared L2 is summed over the batch and the feature dimensions.

    The defaults (tau 3, alpha 0.1, convex) are that implementation's. The DSKD paper's Table 1
    sets "alpha = 1 and tau = 4 for all methods" in ``CE + alpha * KD``: ``tau=4, alpha=1,
    kd_weighting="sum"`` (every CE at weight 1; convex at alpha 1 would drop every CE). The
    feature weight is not in the DSKD paper and stays at the implementation's 1e-6."""

    summary = "BYOT: shallow classifiers learn from the student's own deepest classifier"
    Options = BYOTOptions

    def __init__(self, student_exits: StudentWithExits, options: BYOTOptions) -> None:
        super().__init__(student_exits)
        self.tau, self.alpha, self.feature_weight = (
            options.tau,
            options.alpha,
            options.feature_weight,
        )
        self.ce_weight = 1 - options.alpha if options.kd_weighting == "convex" else 1.0

    @classmethod
    def build(cls, context: BuildContext, options: BYOTOptions) -> BeYourOwnTeacher:
        return cls(shallow_classifiers(context, options.exits, cls.method), options)

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        out = self.student_exits(images)
        deepest_feature = out.feature.detach().float().mean(dim=(2, 3))
        terms = {"ce": self.ce_weight * F.cross_entropy(out.logits, labels)}
        for j, (logits, feature) in enumerate(zip(out.exit_logits, out.exit_features, strict=True)):
            pooled = feature.float().mean(dim=(2, 3))
            terms[f"exit{j + 1}_ce"] = self.ce_weight * F.cross_entropy(logits, labels)
            terms[f"exit{j + 1}_kd"] = self.alpha * kd_loss(logits, out.logits, self.tau)
            terms[f"exit{j + 1}_l2"] = self.feature_weight * (pooled - deepest_feature).pow(2).sum()
        return out.logits, terms
