"""The baselines of the DIH paper's Table 3 besides KD: FitNets and deep mutual learning.
(TAKD is KD run twice, teacher -> assistant -> student; see :mod:`dihkit.pipeline`.)"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.distill import Distiller, KnowledgeDistillation
from dihkit.heads import feature_shapes, freeze
from dihkit.losses import hint_loss, kd_student_loss, mutual_loss
from dihkit.taps import StageTaps, default_positions


def middle_stage(model: nn.Module) -> str:
    """The middle named stage, FitNets' default guided/hint layer (``layer2`` of a CIFAR ResNet)."""
    stages = default_positions(model)
    return stages[(len(stages) - 1) // 2]


class HintRegressor(nn.Module):
    """Maps the student's guided-layer activation onto the teacher's hint shape: a 1x1 conv + BN
    for the channel mismatch and, when the spatial sizes differ, adaptive average pooling."""

    def __init__(self, student_shape: Sequence[int], teacher_shape: Sequence[int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(student_shape[0], teacher_shape[0], 1, bias=False)
        self.bn = nn.BatchNorm2d(teacher_shape[0])
        self.size = tuple(teacher_shape[1:])

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.adaptive_avg_pool2d(x, self.size)
        return self.bn(self.conv(x))


class FitNets(Distiller):
    """FitNets (Romero et al. 2015): a hint stage that trains the student up to its guided layer to
    regress the teacher's hint layer, then KD (Eq. 2) for the remaining epochs.

    The first ``hint_epochs`` epochs of the run are the hint stage (the DIH paper used 40 hint
    epochs before 200 KD epochs; footnote 7).
    """

    method = "fitnets"
    frozen = ("teacher",)

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        *,
        input_shape: Sequence[int],
        hint_epochs: int,
        tau: float = 5.0,
        alpha: float = 0.1,
        student_position: str | None = None,
        teacher_position: str | None = None,
    ) -> None:
        super().__init__(student)
        if hint_epochs < 0:
            raise ValueError(f"hint_epochs must be >= 0, got {hint_epochs}")
        self.teacher = freeze(teacher)
        self.student_position = student_position or middle_stage(student)
        self.teacher_position = teacher_position or middle_stage(teacher)
        self.student_taps = StageTaps(student, [self.student_position])
        self.teacher_taps = StageTaps(self.teacher, [self.teacher_position])
        (s_shape,) = feature_shapes(student, [self.student_position], input_shape)
        (t_shape,) = feature_shapes(self.teacher, [self.teacher_position], input_shape)
        self.regressor = HintRegressor(s_shape, t_shape)
        self.hint_epochs = hint_epochs
        self.in_hint_stage = hint_epochs > 0
        self.tau, self.alpha = tau, alpha

    def set_epoch(self, epoch: int) -> None:
        self.in_hint_stage = epoch < self.hint_epochs

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"regressor": self.regressor}

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            teacher_logits, (teacher_hint,) = self.teacher_taps(images)
        logits, (guided,) = self.student_taps(images)
        if self.in_hint_stage:
            return logits, {"hint": hint_loss(self.regressor(guided), teacher_hint)}
        return logits, kd_student_loss(logits, teacher_logits, labels, self.tau, self.alpha)


class MutualLearning(Distiller):
    """Deep mutual learning (Zhang et al. 2018): the student and a peer, both trained from scratch,
    each learn from the labels and from the other's predictions (KL at tau = 1).

    Following the DIH paper's Table 3, the peer has the teacher's architecture; its pretrained
    weights are not used. Both networks share one optimiser; the loss dict holds both sides.
    """

    method = "dml"

    def __init__(self, student: nn.Module, peer: nn.Module) -> None:
        super().__init__(student)
        self.peer = peer

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"peer": self.peer}

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(images)
        peer_logits = self.peer(images)
        return logits, {
            "ce": F.cross_entropy(logits, labels),
            "kl": mutual_loss(logits, peer_logits),
            "peer_ce": F.cross_entropy(peer_logits, labels),
            "peer_kl": mutual_loss(peer_logits, logits),
        }


class AssistantKD(KnowledgeDistillation):
    """TAKD's second leg (Mirzadeh et al. 2020): KD from a teacher assistant that was itself
    distilled from the teacher. Same loss as KD; the pipeline trains the assistant first."""

    method = "takd"
