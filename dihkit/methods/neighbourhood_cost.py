"""What a Neighbourhood Distillation block step costs beside an end-to-end step: the student
block's parameters and the multiply-accumulates of one step, counted with
:class:`torch.utils.flop_counter.FlopCounterMode` (convolutions and linear layers) on meta-device
copies, so nothing is computed and the models given are not touched."""

from __future__ import annotations

import copy
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor, nn
from torch.utils.flop_counter import FlopCounterMode

from dihkit.losses.neighbourhood import neighbourhood_loss
from dihkit.methods.neighbourhood import BlockStage, block_parameters, neighbourhoods


@dataclass(frozen=True)
class BlockCost:
    """One block stage's step, per image, beside an end-to-end step (multiply-accumulates)."""

    name: str
    block_params: int  # the student block's parameters: what its stage trains
    teacher_macs: float  # the frozen teacher up to and through the block (input and target)
    monitor_macs: float  # the rest of the teacher, for the stage's hybrid logits (no gradients)
    block_step_macs: float  # the student block's forward and backward, adapters included
    student_step_macs: float  # one end-to-end student step: forward and backward
    teacher_forward_macs: float  # one full teacher forward (what an end-to-end KD step adds)

    @property
    def step_macs(self) -> float:
        """One block step as dihkit runs it (teacher, hybrid logits, student block)."""
        return self.teacher_macs + self.monitor_macs + self.block_step_macs

    @property
    def kd_step_macs(self) -> float:
        """One end-to-end KD step: the student's forward and backward, the teacher's forward."""
        return self.student_step_macs + self.teacher_forward_macs


def _macs(step: Callable[[], object], batch: int) -> float:
    """Multiply-accumulates per image of ``step`` (FLOPs / 2 / batch)."""
    with FlopCounterMode(display=False) as counter:
        step()
    return counter.get_total_flops() / 2 / batch


def _block_step(stage: BlockStage, x: Tensor, target: Tensor) -> None:
    neighbourhood_loss(stage.student_block(x), target, stage.adapter_out).backward()


def neighbourhood_costs(
    teacher: nn.Module, student: nn.Module, input_shape: Sequence[int], batch: int = 2
) -> list[BlockCost]:
    """Per block of the pair (see :func:`dihkit.methods.neighbourhood.neighbourhoods`): the
    student block's parameter count and the multiply-accumulates per image of one block step,
    next to one end-to-end student step and one teacher forward. The blocks are independent, so
    they could train at the same time, each step costing only its own block's share."""
    teacher, student = (copy.deepcopy(m).to("meta") for m in (teacher, student))
    hoods = neighbourhoods(teacher, student, input_shape)
    images = torch.zeros(batch, *input_shape, device="meta")
    labels = torch.zeros(batch, dtype=torch.long, device="meta")
    student.train()
    student_step = _macs(lambda: F.cross_entropy(student(images), labels).backward(), batch)
    with torch.no_grad():
        teacher_forward = _macs(lambda: teacher(images), batch)
    costs = []
    for hood in hoods:
        stage = BlockStage(student, teacher, hood).to("meta")
        x, target = stage.teacher_io(images)
        teacher_macs = _macs(lambda s=stage: s.teacher_io(images), batch)
        with torch.no_grad():
            block_out = stage.student_block(x)
            monitor = _macs(lambda s=stage, out=block_out: s.hybrid_logits(out), batch)
        costs.append(
            BlockCost(
                name=hood.name,
                block_params=sum(
                    p.numel() for p in block_parameters(student, hood.student_modules)
                ),
                teacher_macs=teacher_macs,
                monitor_macs=monitor,
                block_step_macs=_macs(lambda s=stage, a=x, t=target: _block_step(s, a, t), batch),
                student_step_macs=student_step,
                teacher_forward_macs=teacher_forward,
            )
        )
    return costs
