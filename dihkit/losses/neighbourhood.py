"""The loss of Neighbourhood Distillation (Shao, Moroz, Eban & Movshovitz-Attias 2020,
"Neighbourhood Distillation: On the benefits of non end-to-end distillation", arXiv:2010.01189),
with the fixed 1x1 adapters dihkit puts between a teacher block and a thinner student block.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor

from dihkit.errors import ConfigError


def channel_grouping(wide: int, narrow: int) -> Tensor:
    """A fixed ``[narrow, wide]`` 1x1 adapter ``G``: output channel ``j`` is the sum of the
    ``j``-th of ``narrow`` contiguous, near-equal groups of the ``wide`` input channels, over the
    square root of the group's size.

    Its rows are orthonormal and non-negative: ``G @ G.T`` is the identity, and ``G`` of a
    post-ReLU feature map is non-negative, so a block ending in a ReLU can reproduce it. dihkit
    feeds a thinner student block ``G t_in`` (the teacher's input, in the student's width) and
    compares ``G.T s_out`` with the teacher's output: the student block learns ``s_out ~ G
    t_out``, which is exactly what the next student block was trained on, so two neighbouring
    adapters compose to the identity and the trained blocks assemble with no layer between them.
    """
    if not 1 <= narrow <= wide:
        raise ConfigError(f"channel grouping needs 1 <= narrow <= wide, got {narrow}, {wide}")
    matrix, start = torch.zeros(narrow, wide), 0
    for j in range(narrow):
        size = wide // narrow + (1 if j < wide % narrow else 0)
        matrix[j, start : start + size] = size**-0.5
        start += size
    return matrix


def adapt(x: Tensor, matrix: Tensor | None) -> Tensor:
    """A 1x1 linear adapter (an ``[out, in]`` matrix) over the channels of ``x``; None: ``x``."""
    return x if matrix is None else F.conv2d(x, matrix.to(x)[:, :, None, None])


def neighbourhood_loss(
    student_output: Tensor, teacher_output: Tensor, adapter: Tensor | None = None
) -> Tensor:
    """The neighbourhood objective of Shao et al. 2020 as dihkit reads their abstract (the
    paper's body could not be read here): the squared L2 distance ``||T_i(x_i) - S_i(x_i)||^2``
    between the teacher's block ``i`` and the student's block ``i``, both fed the teacher's own
    input ``x_i`` to that block.

    ``adapter`` (``[C_teacher, C_student]``, e.g. ``channel_grouping(...).T``) maps a thinner
    student block's output into the teacher's channels first (None: the widths agree, as in the
    paper). The teacher's output is a constant. The value is the mean over every element (batch,
    channels, positions), not the per-sample sum of squares: the same minimiser, with a gradient
    scale that does not grow with the block's feature map (16x28x28 and 64x7x7 alike).
    """
    student_output = adapt(student_output.float(), adapter)
    return F.mse_loss(student_output, teacher_output.detach().float())


__all__ = ["adapt", "channel_grouping", "neighbourhood_loss"]
