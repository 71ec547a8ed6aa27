"""Training a teacher's heads with cross-entropy while its backbone stays frozen (how a DIH
cohort, or MHKD's teacher-side heads, are made). Not a distillation method, so not registered."""

from __future__ import annotations

from typing import Any

import torch.nn.functional as F
from torch import Tensor

from dihkit.methods.base import Distiller
from dihkit.nn.heads import Cohort
from dihkit.training.checkpoint import load_model_state, model_entry


class HeadTraining(Distiller):
    """The "student" here is the cohort; its backbone has no trainable parameters, so the optimiser
    only sees the heads. Validation accuracy is reported per head; model selection uses their mean.

    ``other_head_sets`` are head sets of other kinds already in the teacher's checkpoint; they
    are carried into the new checkpoint so one teacher file holds them side by side.
    """

    method = "heads"
    summary = "train heads on a frozen teacher"

    def __init__(self, cohort: Cohort, other_head_sets: dict[str, Any] | None = None) -> None:
        super().__init__(cohort)
        self.other_head_sets = dict(other_head_sets or {})

    @property
    def cohort(self) -> Cohort:
        return self.student

    def describe(self) -> str:
        return f"{self.cohort.teacher.arch} {self.cohort.spec['kind']} heads"

    def forward(
        self, images: Tensor, labels: Tensor, targets: Tensor | None = None
    ) -> tuple[Tensor, dict[str, Tensor]]:
        head_logits = self.cohort(images)[:-1]
        losses = {
            f"ce_head{i + 1}": F.cross_entropy(logits, labels)
            for i, logits in enumerate(head_logits)
        }
        return head_logits, losses

    def predict(self, images: Tensor) -> Tensor:
        return self.cohort(images)[:-1]

    def checkpoint_state(self) -> dict[str, Any]:
        entry = self.cohort.heads_entry()
        return {
            "model": model_entry(self.cohort.teacher),
            "heads": entry,
            "head_sets": {**self.other_head_sets, entry["kind"]: entry},
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        load_model_state(self.cohort.teacher, state["model"])
        self.cohort.heads.load_state_dict(state["heads"]["state_dict"])
