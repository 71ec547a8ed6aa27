"""Cross-entropy training: the CE baseline, and how teachers are trained."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor

from dihkit.methods.base import Distiller
from dihkit.methods.options import MethodOptions
from dihkit.methods.registry import register


class CEOptions(MethodOptions):
    """CE has no options."""


@register("ce")
class CrossEntropy(Distiller):
    """No teacher: plain cross-entropy with the labels."""

    summary = "cross-entropy with the labels only (no teacher)"
    Options = CEOptions

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(images)
        return logits, {"ce": F.cross_entropy(logits, labels)}
