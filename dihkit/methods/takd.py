"""TAKD (Mirzadeh et al. 2020): teacher -> assistant -> student, both legs KD."""

from __future__ import annotations

from dataclasses import dataclass

from dihkit.errors import ConfigError
from dihkit.methods.base import BuildContext, require_teacher
from dihkit.methods.kd import KnowledgeDistillation
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.models import MODEL_NAMES, build_model
from dihkit.training.runtime import seed_everything


@dataclass(frozen=True)
class TAKDOptions(MethodOptions):
    tau: float = option(5.0, "temperature of both KD legs", low=0, low_open=True)
    alpha: float = option(0.1, "weight of the KD term in both legs", low=0, high=1)
    assistant: str | None = option(
        None, "takd: the assistant's architecture (required, e.g. resnet20)", choices=MODEL_NAMES
    )


@register("takd")
class AssistantKD(KnowledgeDistillation):
    """TAKD's second leg: KD from a teacher assistant that was itself distilled from the teacher
    (first leg, same schedule, into ``OUT/assistant``)."""

    summary = "teacher-assistant KD: teacher -> assistant -> student (--assistant ARCH)"
    Options = TAKDOptions

    @classmethod
    def build(cls, context: BuildContext, options: TAKDOptions) -> AssistantKD:
        teacher = require_teacher(context, cls.method)
        if options.assistant is None:
            raise ConfigError("method 'takd' needs --assistant ARCH (e.g. resnet14 or resnet20)")
        seed_everything(context.config.seed)
        spec = context.data.spec
        assistant = build_model(options.assistant, spec.num_classes, spec.in_channels)
        first_leg = KnowledgeDistillation(assistant, teacher.model, options.tau, options.alpha)
        context.run_stage(
            "assistant",
            first_leg,
            context.config,
            meta={"teacher": teacher.source, "role": "takd assistant"},
        )
        return cls(context.student, assistant, options.tau, options.alpha)
