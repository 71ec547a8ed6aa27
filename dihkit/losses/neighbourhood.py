"""The loss of Neighbourhood Distillation (Shao, Moroz, Eban & Movshovitz-Attias 2020,
"Neighbourhood Distillation: On the benefits of non end-to-end distillation", arXiv:2010.01189).
"""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor


def neighbourhood_loss(student_output: Tensor, teacher_output: Tensor) -> Tensor:
    """The neighbourhood objective of Shao et al. 2020, Sec. 3 (their first equation as we read
    it): the squared L2 distance ``||T_i(x_i) - S_i(x_i)||^2`` between the teacher's block ``i``
    and the student's block ``i``, both fed the teacher's own input ``x_i`` to that block.

    ``student_output`` is the student block's output, mapped into the teacher's channels where
    the widths differ; ``teacher_output`` is a constant (no gradient reaches the teacher). The
    value is the mean over every element (batch, channels, positions), not the per-sample sum of
    squares: the same minimiser, with a gradient scale that does not grow with the size of the
    block's feature map, so one learning rate serves a 16x28x28 and a 64x7x7 block alike.
    """
    return F.mse_loss(student_output.float(), teacher_output.detach().float())


__all__ = ["neighbourhood_loss"]
