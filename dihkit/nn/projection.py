"""Feature projections between a student's and a teacher's feature maps (FitNets' regressor,
DSKD's ``r``)."""

from __future__ import annotations

from collections.abc import Sequence

import torch.nn.functional as F
from torch import Tensor, nn


class FeatureProjection(nn.Module):
    """A 1x1 convolution to the teacher's channels, BatchNorm and ReLU (the target feature maps of
    the zoo models are post-ReLU), with adaptive average pooling first when the spatial sizes
    differ. Maps ``student_shape`` (C, H, W) onto ``teacher_shape``."""

    def __init__(self, student_shape: Sequence[int], teacher_shape: Sequence[int]) -> None:
        super().__init__()
        self.conv = nn.Conv2d(student_shape[0], teacher_shape[0], 1, bias=False)
        self.bn = nn.BatchNorm2d(teacher_shape[0])
        self.relu = nn.ReLU()
        self.size = tuple(teacher_shape[1:])

    def forward(self, x: Tensor) -> Tensor:
        if tuple(x.shape[-2:]) != self.size:
            x = F.adaptive_avg_pool2d(x, self.size)
        return self.relu(self.bn(self.conv(x)))
