"""MHKD (multi-head knowledge distillation): auxiliary classifier heads at the end of the first
D units of both teacher and student; each student head learns from the matching teacher head
(MHKD paper Eq. 1), on top of KD at the final outputs (Eq. 2)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.errors import ConfigError
from dihkit.losses import kd_student_loss, one_head_kd_loss
from dihkit.methods.base import (
    BuildContext,
    Distiller,
    parse_positions,
    require_teacher,
)
from dihkit.methods.options import MethodOptions, option
from dihkit.methods.registry import register
from dihkit.nn.exits import StudentWithExits, exit_input_shapes
from dihkit.nn.heads import Cohort, freeze, make_head, mount_heads
from dihkit.nn.taps import default_positions


@dataclass(frozen=True)
class MHKDOptions(MethodOptions):
    tau: float = option(4.0, "temperature (MHKD paper: 4)", low=0, low_open=True)
    alpha: float = option(
        0.9, "weight of the KL term in every KD term; CE gets 1 - alpha (paper: 0.9)", low=0, high=1
    )
    beta: float = option(0.5, "weight of the summed head terms, Eq. 2 (paper: 0.5)", low=0)
    units: int = option(3, "D: heads may sit at the end of the first D units (paper: 3)", low=1)
    heads: str = option(
        "all",
        "which of the first D units get a head pair: all, or 1-based indices/stage names "
        "such as 1 or 1,3 (the single-head ablation of MHKD Table 2)",
    )
    head_width: int = option(
        256, "kernels of the heads' conv layers and width of their hidden fc (paper: 256)", low=1
    )
    teacher_heads: str = option(
        "auto",
        "auto: reuse conv heads saved in the teacher's checkpoint at these positions and width, "
        "else train them jointly; joint: train them with CE in this run; pretrained: require "
        "saved ones",
        choices=("auto", "joint", "pretrained"),
    )


@register("mhkd")
class MultiHeadKD(Distiller):
    """``L = beta * sum_j L_OHKD^(j) + L_KD`` (MHKD Eq. 2), with ``L_OHKD`` = ``alpha * tau^2 * KL(
    H_T^tau || H_S^tau) + (1 - alpha) * CE(y, H_S)`` per head pair (Eq. 1) and ``L_KD`` the same
    form at the final outputs.

    Teacher backbone frozen. The teacher's heads learn the labels with CE (in this run, jointly
    with the student, as the paper trains all heads "jointly with the original KD process"; the
    student heads see their outputs as constants), or are reused frozen from the checkpoint.
    Student heads are the same :class:`dihkit.nn.heads.ConvHead` design (the paper's N_c = 2 conv
    layers with BN and ReLU, N_f = 2 fully connected layers), dropped at export.

    Choices where the paper is silent: the final KD term uses the same alpha as the heads; the
    heads of teacher and student at unit j tap the end of each network's j-th stage, so
    architectures of different families pair by unit index.
    """

    summary = "MHKD: conv heads on teacher and student units, KL between matching heads, + KD"
    Options = MHKDOptions
    requires = ("teacher",)
    caches_targets = True
    frozen = ("teacher",)

    def __init__(
        self,
        student: nn.Module,
        teacher: nn.Module,
        teacher_cohort: Cohort,
        student_exits: StudentWithExits,
        *,
        tau: float,
        alpha: float,
        beta: float,
        train_teacher_heads: bool,
    ) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)
        self.teacher_cohort = teacher_cohort
        self.student_exits = student_exits
        self.tau, self.alpha, self.beta = tau, alpha, beta
        self.train_teacher_heads = train_teacher_heads
        if not train_teacher_heads:
            freeze(teacher_cohort)

    @classmethod
    def build(cls, context: BuildContext, options: MHKDOptions) -> MultiHeadKD:
        teacher = require_teacher(context, cls.method)
        student = context.student
        s_units = default_positions(student)[: options.units]
        t_units = default_positions(teacher.model)[: options.units]
        if len(s_units) != len(t_units):
            raise ConfigError(
                f"method 'mhkd': the student has {len(s_units)} and the teacher {len(t_units)} "
                f"units among the first {options.units}; lower --units"
            )
        chosen = parse_positions(options.heads, s_units, cls.method, "heads")
        indices = [s_units.index(p) for p in chosen]
        t_positions = [t_units[i] for i in indices]
        cohort = None
        if options.teacher_heads != "joint":
            cohort = teacher.head_set("conv", t_positions, options.head_width)
            if cohort is None and options.teacher_heads == "pretrained":
                raise ConfigError(
                    f"method 'mhkd': {teacher.source!r} has no saved conv heads at "
                    f"{', '.join(t_positions)} of width {options.head_width}; train them with "
                    "`dihkit train-heads --head conv --width W --positions ...` or use "
                    "--teacher-heads joint"
                )
        train_teacher_heads = cohort is None
        if cohort is None:
            cohort = mount_heads(
                teacher.model,
                "conv",
                t_positions,
                input_shape=context.input_shape,
                width=options.head_width,
            )
        shapes = exit_input_shapes(student, chosen, context.input_shape)
        exits = [
            make_head("conv", shape, context.num_classes, width=options.head_width)
            for shape in shapes
        ]
        return cls(
            student,
            teacher.model,
            cohort,
            StudentWithExits(student, chosen, exits),
            tau=options.tau,
            alpha=options.alpha,
            beta=options.beta,
            train_teacher_heads=train_teacher_heads,
        )

    def train(self, mode: bool = True) -> MultiHeadKD:
        super().train(mode)
        if not self.train_teacher_heads:
            self.teacher_cohort.eval()
        return self

    def extra_modules(self) -> dict[str, nn.Module]:
        extras: dict[str, nn.Module] = {"student_heads": self.student_exits.exits}
        if self.train_teacher_heads:
            extras["teacher_heads"] = self.teacher_cohort.heads
        return extras

    @classmethod
    def can_cache(cls, options: MethodOptions) -> bool:
        return options.teacher_heads == "pretrained"  # "auto" may train them: decided live

    def target_source(self) -> nn.Module | None:
        return None if self.train_teacher_heads else self.teacher_cohort

    def cache_refusal(self) -> str | None:
        if self.train_teacher_heads:
            return (
                "method 'mhkd' trains the teacher's heads in this run, so their outputs change "
                "and cannot be cached; train the heads first (`dihkit train-heads --head conv`, "
                "then --teacher-heads pretrained) or run without --cached-targets"
            )
        return None

    def frozen_targets(self, images: Tensor) -> Tensor:
        return self.teacher_cohort(images)

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        if self.train_teacher_heads:
            cohort_logits = self.teacher_cohort(images)  # backbone without gradients, heads with
        else:
            cohort_logits = self.targets_for(images, targets)
        out = self.student_exits(images)
        terms: dict[str, Tensor] = {}
        for j, student_head in enumerate(out.exit_logits):
            teacher_head = cohort_logits[j]
            one_head = one_head_kd_loss(student_head, teacher_head, labels, self.tau, self.alpha)
            terms[f"head{j + 1}_kl"] = self.beta * one_head["kl"]
            terms[f"head{j + 1}_ce"] = self.beta * one_head["ce"]
            if self.train_teacher_heads:
                terms[f"teacher_head{j + 1}_ce"] = F.cross_entropy(teacher_head, labels)
        final = kd_student_loss(out.logits, cohort_logits[-1], labels, self.tau, self.alpha)
        terms.update(final)
        return out.logits, terms

    def checkpoint_state(self) -> dict[str, Any]:
        state = super().checkpoint_state()
        state["positions"] = list(self.student_exits.positions)
        return state
