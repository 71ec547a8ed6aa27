"""Deep mutual learning (Zhang et al. 2018), a baseline of the DIH paper's Table 3."""

from __future__ import annotations

from dataclasses import dataclass

import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.losses import mutual_loss
from dihkit.methods.base import BuildContext, Distiller, require_teacher
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.models import MODEL_NAMES, build_model


@dataclass(frozen=True)
class DMLOptions(MethodOptions):
    peer: str | None = option(
        None, "architecture of the peer (default: the teacher's)", choices=MODEL_NAMES
    )
    tau: float = option(
        1.0,
        "temperature of the mutual KL (Zhang et al. and the DIH authors' code: 1; tau^2 x KL "
        "as in KD when it is not 1)",
        low=0,
        low_open=True,
    )


@register("dml")
class MutualLearning(Distiller):
    """The student and a peer, both trained from scratch, each learn from the labels and from
    the other's predictions (``CE + KL(p_other || p_self)`` at tau = 1, the ``tau`` option's
    default; DML is in no DSKD table, so the DSKD paper's "tau = 4 for all methods" does not
    apply to it).

    Following the DIH paper's Table 3 the peer has the teacher's architecture; its trained
    weights are not used. Update rule: both networks take one *simultaneous* SGD step per
    batch from one optimiser, each from its own loss only (the other's prediction is a
    constant), whereas Zhang et al.'s Algorithm 1 updates them one after the other within a
    batch, so the second peer already sees the first's updated prediction. The difference is
    one step of staleness; gradients never cross between peers (tested).
    """

    summary = "deep mutual learning: student and a peer (teacher's architecture) learn together"
    Options = DMLOptions
    requires = ("teacher",)

    def __init__(self, student: nn.Module, peer: nn.Module, tau: float = 1.0) -> None:
        super().__init__(student)
        self.peer = peer
        self.tau = tau

    @classmethod
    def build(cls, context: BuildContext, options: DMLOptions) -> MutualLearning:
        arch = options.peer or require_teacher(context, cls.method).model.arch
        spec = context.data.spec
        peer = build_model(arch, spec.num_classes, spec.in_channels)
        return cls(context.student, peer, options.tau)

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"peer": self.peer}

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(images)
        peer_logits = self.peer(images)
        return logits, {
            "ce": F.cross_entropy(logits, labels),
            "kl": mutual_loss(logits, peer_logits, self.tau),
            "peer_ce": F.cross_entropy(peer_logits, labels),
            "peer_kl": mutual_loss(peer_logits, logits, self.tau),
        }
