"""FitNets (Romero et al. 2015): a hint stage, then KD. A baseline of the DIH paper's Table 3."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dihkit.losses import hint_loss
from dihkit.methods.base import BuildContext, Distiller, require_teacher
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.nn.heads import feature_shapes, freeze
from dihkit.nn.projection import FeatureProjection
from dihkit.nn.taps import StageTaps, default_positions


def middle_stage(model: nn.Module) -> str:
    """The middle named stage, FitNets' default guided/hint layer (``layer2`` of a CIFAR ResNet)."""
    stages = default_positions(model)
    return stages[(len(stages) - 1) // 2]


class HintRegressor(FeatureProjection):
    """FitNets' regressor: maps the student's guided-layer activation onto the teacher's hint
    with the hint's own non-linearity (ReLU), as the common implementations do."""


def parameters_feeding(
    model: nn.Module, position: str, input_shape: Sequence[int]
) -> list[nn.Parameter]:
    """The parameters of ``model`` that the activation at ``position`` depends on (found with
    one backward pass in eval mode; no state of the model changes)."""
    taps = StageTaps(model, [position])
    was_training = model.training
    flags = [p.requires_grad for p in model.parameters()]
    model.eval()
    try:
        for p in model.parameters():
            p.requires_grad_(True)
            p.grad = None
        device = next(model.parameters()).device
        _, (feature,) = taps(torch.zeros(2, *input_shape, device=device))
        feature.float().sum().backward()
        feeding = [p for p in model.parameters() if p.grad is not None]
    finally:
        taps.remove()
        for p, flag in zip(model.parameters(), flags, strict=True):
            p.grad = None
            p.requires_grad_(flag)
        model.train(was_training)
    return feeding


class HintStage(Distiller):
    """FitNets stage 1: train the student up to its guided layer, plus the regressor, to regress
    the teacher's hint (Romero et al. Eq. 3). Only those parameters train; the last epoch's
    weights are kept (validation accuracy means nothing before the classifier trains)."""

    method = "fitnets-hint"
    summary = "FitNets stage 1 (hint)"
    frozen = ("teacher",)
    select_best = False

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        regressor: HintRegressor,
        student_position: str,
        teacher_position: str,
    ) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)
        self.regressor = regressor
        self.student_taps = StageTaps(student, [student_position])
        self.teacher_taps = StageTaps(self.teacher, [teacher_position])

    def extra_modules(self) -> dict[str, nn.Module]:
        return {"regressor": self.regressor}

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            _, (teacher_hint,) = self.teacher_taps(images)
        logits, (guided,) = self.student_taps(images)
        return logits, {"hint": hint_loss(self.regressor(guided), teacher_hint)}


@dataclass(frozen=True)
class FitNetsOptions(MethodOptions):
    tau: float = option(5.0, "temperature of the KD stage", low=0, low_open=True)
    alpha: float = option(0.1, "weight of the KD term in stage 2", low=0, high=1)
    hint_epochs: int | None = option(
        None,
        "epochs of the hint stage, run before the full KD schedule (default: a fifth of "
        "--epochs, as the DIH paper's 40 before 200)",
        low=1,
    )


@register("fitnets")
class FitNets(KnowledgeDistillation):
    """Stage 1 (:class:`HintStage`, into ``OUT/hint``), then stage 2: KD over the full schedule
    (``--epochs``), as in the FitNets paper and the DIH paper's footnote 7 (40 hint epochs, then
    200 KD epochs).

    The hint stage runs the run's own schedule over ``hint_epochs``, restarted from the initial
    learning rate, with the run's milestones dropped: under ``multistep`` (the papers' recipes)
    it decays at the default 30/60/90 % of the hint epochs (12/24/36 of 40), under ``cosine`` it
    anneals over the hint epochs. The papers do not give the hint stage's schedule."""

    summary = "FitNets: a hint stage (regress the teacher's middle stage), then the full KD run"
    Options = FitNetsOptions

    @classmethod
    def build(cls, context: BuildContext, options: FitNetsOptions) -> FitNets:
        teacher = require_teacher(context, cls.method).model
        student = context.student
        student_position, teacher_position = middle_stage(student), middle_stage(teacher)
        (s_shape,) = feature_shapes(student, [student_position], context.input_shape)
        (t_shape,) = feature_shapes(teacher, [teacher_position], context.input_shape)
        regressor = HintRegressor(s_shape, t_shape)
        hint_epochs = options.hint_epochs or max(1, context.config.epochs // 5)
        stage = HintStage(student, teacher, regressor, student_position, teacher_position)
        feeding = {
            id(p) for p in parameters_feeding(student, student_position, context.input_shape)
        }
        flags = [p.requires_grad for p in student.parameters()]
        for p in student.parameters():
            p.requires_grad_(id(p) in feeding)
        try:
            context.run_stage(
                "hint",
                stage,
                # The hint stage matches feature maps, which the target cache does not hold.
                dataclasses.replace(
                    context.config, epochs=hint_epochs, milestones=(), cached_targets=0
                ),
                meta={"role": "fitnets hint stage", "guided": student_position},
            )
        finally:
            for p, flag in zip(student.parameters(), flags, strict=True):
                p.requires_grad_(flag)
            stage.student_taps.remove()
            stage.teacher_taps.remove()
        return cls(student, teacher, options.tau, options.alpha)
