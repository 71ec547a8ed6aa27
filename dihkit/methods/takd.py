"""TAKD (Mirzadeh et al. 2020): teacher -> assistant -> student, both legs KD."""

from __future__ import annotations

import dataclasses
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
    assistant_seed: int | None = option(
        None,
        "takd: the seed the assistant trains with; None: the run's seed (one assistant per "
        "run); a fixed seed trains one assistant that every student seed shares",
        low=0,
    )


@register("takd")
class AssistantKD(KnowledgeDistillation):
    """TAKD's second leg: KD from a teacher assistant that was itself distilled from the teacher
    (first leg, same schedule, into ``OUT/assistant``). With ``assistant_seed`` the first leg
    trains with that seed, whatever the run's, so the student seeds of a comparison share one
    assistant as KD's students share one teacher (in the run cache it is trained once, see
    :meth:`~dihkit.methods.base.BuildContext.run_stage`); by default each run trains its own."""

    summary = "teacher-assistant KD: teacher -> assistant -> student (--assistant ARCH)"
    Options = TAKDOptions

    @classmethod
    def build(cls, context: BuildContext, options: TAKDOptions) -> AssistantKD:
        teacher = require_teacher(context, cls.method)
        if options.assistant is None:
            raise ConfigError("method 'takd' needs --assistant ARCH (e.g. resnet14 or resnet20)")
        shared = options.assistant_seed is not None
        config = context.config
        if shared:
            config = dataclasses.replace(config, seed=options.assistant_seed)
        seed_everything(config.seed)
        spec = context.data.spec
        assistant = build_model(options.assistant, spec.num_classes, spec.in_channels)
        first_leg = KnowledgeDistillation(assistant, teacher.model, options.tau, options.alpha)
        context.run_stage(
            "assistant",
            first_leg,
            config,
            meta={"teacher": teacher.source, "role": "takd assistant"},
            shared=shared,
        )
        return cls(context.student, assistant, options.tau, options.alpha)
