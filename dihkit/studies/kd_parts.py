"""What notebook 08 computes about what KD transfers: one sample's KD loss split into its
target-class and non-target-class parts (DKD's decomposition), the share of each over a batch,
the teachers' distributions under Tang et al.'s controlled variants, and the channel attention
that CD matches. No training and no display here."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import Tensor, nn

from dihkit.errors import ConfigError
from dihkit.losses.decoupled import split_kd
from dihkit.models import build_model
from dihkit.nn.heads import feature_shapes
from dihkit.nn.taps import default_positions
from dihkit.studies.capacity import CAPACITY_LADDERS, teacher_arch
from dihkit.training.checkpoint import load_model

__all__ = [
    "KDSplit",
    "attention_agreement",
    "cd_candidates",
    "block_costs_markdown",
    "kd_parts_example",
    "kd_split",
    "split_shares",
    "stage_matched_teacher",
    "trained_student",
]


@dataclass(frozen=True)
class KDSplit:
    """One sample's KD loss in parts (all with ``tau^2``): ``kd = tckd + nontarget * nckd``, and
    DKD's re-weighted ``alpha * tckd + beta * nckd``."""

    tau: float
    tckd: float
    nckd: float
    nontarget: float  # the teacher's 1 - p_t, the weight classical KD gives NCKD
    alpha: float
    beta: float

    @property
    def kd(self) -> float:
        return self.tckd + self.nontarget * self.nckd

    @property
    def dkd(self) -> float:
        return self.alpha * self.tckd + self.beta * self.nckd

    def as_dict(self) -> dict[str, float]:
        return {
            "tau": self.tau, "tckd": self.tckd, "nckd": self.nckd, "nontarget": self.nontarget,
            "kd": self.kd, "weighted_nckd": self.nontarget * self.nckd, "dkd": self.dkd,
        }  # fmt: skip


def kd_split(
    student_logits: Tensor,
    teacher_logits: Tensor,
    label: int,
    tau: float,
    alpha: float = 1.0,
    beta: float = 8.0,
) -> KDSplit:
    """The split of one sample's ``tau^2 KL(P_T^tau || P_S^tau)`` (``[C]`` logits each) into
    TCKD and NCKD (:func:`dihkit.losses.decoupled.split_kd`), with DKD's weights."""
    parts = split_kd(
        torch.as_tensor(student_logits, dtype=torch.float32).reshape(1, -1),
        torch.as_tensor(teacher_logits, dtype=torch.float32).reshape(1, -1),
        torch.tensor([int(label)]),
        tau,
    )
    return KDSplit(
        float(tau), float(parts.tckd[0]), float(parts.nckd[0]), float(parts.nontarget[0]),
        float(alpha), float(beta),
    )  # fmt: skip


def split_shares(
    student_logits: Tensor, teacher_logits: Tensor, labels: Tensor, taus: Sequence[float]
) -> list[dict[str, float]]:
    """For each temperature, over a batch: the mean share of the KD loss that TCKD carries and
    that the weighted NCKD ``(1 - p_t) NCKD`` carries (they sum to 1), and the mean teacher
    ``1 - p_t`` (how much KD lets NCKD count)."""
    rows = []
    for tau in taus:
        parts = split_kd(student_logits.float(), teacher_logits.float(), labels, tau)
        kd = parts.kd.clamp_min(1e-12)
        rows.append(
            {
                "tau": float(tau),
                "tckd_share": float((parts.tckd / kd).mean()),
                "nckd_share": float((parts.nontarget * parts.nckd / kd).mean()),
                "mean_nontarget": float(parts.nontarget.mean()),
            }
        )
    return rows


def trained_student(run: Mapping[str, Any]) -> nn.Module:
    """The student a finished run kept (``run_dir/best.pt``; weights only, checked), in eval
    mode."""
    model, _ = load_model(Path(run["run_dir"]) / "best.pt")
    return model.eval()


def attention_agreement(
    teacher: Mapping[str, Tensor], student: Mapping[str, Tensor]
) -> dict[str, float]:
    """Per matched stage (in order): the mean over images of the cosine similarity between the
    teacher's and the student's channel-attention vectors (``[N, C]`` each, same C), the
    quantity CD's loss pulls towards 1 (its MSE is zero only when they are equal)."""
    result = {}
    for (name, t), s in zip(teacher.items(), student.values(), strict=True):
        if t.shape != s.shape:
            raise ValueError(
                f"stage {name}: teacher {tuple(t.shape)} and student {tuple(s.shape)} attention "
                "differ in shape (compare stages with equal channel counts)"
            )
        result[name] = float(torch.nn.functional.cosine_similarity(t, s, dim=1).mean())
    return result


def kd_parts_example(classes: int = 5, seed: int = 0) -> tuple[Tensor, Tensor, int]:
    """Fixed logits for one sample to split by hand: the student's and the teacher's ``[C]``
    logits and the sample's label (the same on every machine)."""
    generator = torch.Generator().manual_seed(seed)
    student = 1.5 * torch.randn(classes, generator=generator)
    teacher = 2.5 * torch.randn(classes, generator=generator)
    label = int(teacher.argmax())
    return student, teacher, label


def _stage_channels(arch: str, classes: int, input_shape: Sequence[int]) -> list[int]:
    model = build_model(arch, classes, input_shape[0])
    return [shape[0] for shape in feature_shapes(model, default_positions(model), input_shape)]


def cd_candidates(profile: str, teacher: str) -> list[str]:
    """The teachers CD may choose from, small to large: the profile's bundled ladder, or, for a
    profile without one (``paper``: the teachers are your checkpoints), the profile's teacher."""
    return list(CAPACITY_LADDERS.get(profile, (teacher,)))


def stage_matched_teacher(
    ladder: Sequence[str], student: str, classes: int, input_shape: Sequence[int]
) -> str:
    """The largest teacher of ``ladder`` (small to large) whose named stages have the
    ``student``'s channel counts, so CD compares their channel attention one to one without a
    connector; a clear error if none has."""
    wanted = _stage_channels(student, classes, input_shape)
    matching = [
        n for n in ladder if _stage_channels(teacher_arch(n), classes, input_shape) == wanted
    ]
    if not matching:
        raise ConfigError(
            f"no teacher of {', '.join(ladder)} has the stage channels {wanted} of {student}; "
            "pass cd_teacher explicitly"
        )
    return matching[-1]


def block_costs_markdown(costs: Sequence[Any], student_params: int) -> str:
    """A markdown table of Neighbourhood Distillation's per-block costs
    (:func:`dihkit.methods.neighbourhood_cost.neighbourhood_costs`): each block's trainable
    parameters (share of the student's) and the multiply-accumulates per image of one block
    step, beside one end-to-end KD step, then one sentence computed from them."""
    lines = [
        "| block | trains (parameters) | share of the student | one block step, MMACs/image "
        "| vs one end-to-end KD step |",
        "|---|---|---|---|---|",
    ]
    for c in costs:
        lines.append(
            f"| {c.name} | {c.block_params:,} | {c.block_params / student_params:.0%} | "
            f"{c.step_macs / 1e6:.2f} | {c.step_macs / c.kd_step_macs:.0%} |"
        )
    if costs:
        kd = costs[0].kd_step_macs
        largest = max(costs, key=lambda c: c.step_macs)
        lines.append(
            f"\nOne end-to-end KD step costs {kd / 1e6:.2f} MMACs per image; the dearest block "
            f"step ({largest.name}) costs {largest.step_macs / kd:.0%} of it, and the "
            f"{len(costs)} block stages depend on no other block's weights, so they can train "
            "at the same time (on separate devices or processes)."
        )
    return "\n".join(lines)
