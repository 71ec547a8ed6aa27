"""Distillers: one small interface for every method.

A distiller owns the student (and whatever else it trains) plus frozen teachers. Calling it on a
batch is one training step's forward pass: it returns the logits that training accuracy is
measured on and a dict of named loss terms; the trainer sums the terms. Adding a method is one
class with a ``method`` name and a ``forward``.
"""

from __future__ import annotations

from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from dihkit.checkpoint import load_model_state, model_entry
from dihkit.heads import Cohort, freeze
from dihkit.losses import dih_student_loss, ensemble_kd_loss, kd_student_loss


class Distiller(nn.Module):
    """Base class. Subclasses set ``method`` and implement :meth:`forward`."""

    method: ClassVar[str] = ""
    needs_indices: ClassVar[bool] = False  # True: forward also takes the images' split positions
    frozen: ClassVar[tuple[str, ...]] = ()  # attributes kept in eval mode whatever .train() says

    def __init__(self, student: nn.Module) -> None:
        super().__init__()
        self.student = student

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        raise NotImplementedError

    def predict(self, images: Tensor) -> Tensor:
        """Logits used for validation and test: the student's."""
        return self.student(images)

    def set_epoch(self, epoch: int) -> None:
        """Called before each epoch (0-based); methods with stages switch here."""

    def describe(self) -> str:
        """A short label for progress bars."""
        return getattr(self.student, "arch", type(self.student).__name__)

    def train(self, mode: bool = True) -> Distiller:
        super().train(mode)
        for name in self.frozen:
            getattr(self, name).eval()
        return self

    def extra_modules(self) -> dict[str, nn.Module]:
        """Trainable modules besides the student (regressors, peers) saved for resuming."""
        return {}

    def checkpoint_state(self) -> dict[str, Any]:
        """The trainable state a checkpoint keeps: the student as a loadable model, plus extras."""
        return {
            "model": model_entry(self.student),
            "extra": {
                name: {k: v.detach().cpu() for k, v in module.state_dict().items()}
                for name, module in self.extra_modules().items()
            },
        }

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        """Inverse of :meth:`checkpoint_state`."""
        load_model_state(self.student, state["model"])
        for name, module in self.extra_modules().items():
            module.load_state_dict(state["extra"][name])


class CrossEntropy(Distiller):
    """No teacher: plain cross-entropy training (the CE baseline, and how teachers are trained)."""

    method = "ce"

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        logits = self.student(images)
        return logits, {"ce": F.cross_entropy(logits, labels)}


class KnowledgeDistillation(Distiller):
    """Hinton KD from the teacher's final classifier (DIH paper Eq. 2)."""

    method = "kd"
    frozen = ("teacher",)

    def __init__(
        self, student: nn.Module, teacher: nn.Module, tau: float = 5.0, alpha: float = 0.1
    ) -> None:
        super().__init__(student)
        self.teacher = freeze(teacher)
        self.tau, self.alpha = tau, alpha

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        with torch.no_grad():
            teacher_logits = self.teacher(images)
        logits = self.student(images)
        return logits, kd_student_loss(logits, teacher_logits, labels, self.tau, self.alpha)


class IntermediateHeads(Distiller):
    """DIH: distil from every member of the cohort, Eq. 4 averaged, plus CE (Eq. 5)."""

    method = "dih"
    frozen = ("cohort",)

    def __init__(self, student: nn.Module, cohort: Cohort, tau: float = 5.0, alpha: float = 0.1):
        super().__init__(student)
        self.cohort = freeze(cohort)
        self.tau, self.alpha = tau, alpha

    def cohort_logits(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return self.cohort(images)

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        cohort_logits = self.cohort_logits(images)
        logits = self.student(images)
        return logits, dih_student_loss(logits, cohort_logits, labels, self.tau, self.alpha)


class EnsembleHeads(IntermediateHeads):
    """DIH paper Sec. 4.4: distil from the average of the cohort's softened distributions."""

    method = "dih-ensemble"

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        cohort_logits = self.cohort_logits(images)
        logits = self.student(images)
        return logits, {
            "kd_ensemble": self.alpha * ensemble_kd_loss(logits, cohort_logits, self.tau),
            "ce": (1 - self.alpha) * F.cross_entropy(logits, labels),
        }


class HeadTraining(Distiller):
    """Train a cohort's heads with cross-entropy while the teacher's backbone stays frozen.

    The "student" here is the cohort; its backbone has no trainable parameters, so the optimiser
    only sees the heads. Validation accuracy is reported per head; model selection uses their mean.
    """

    method = "heads"

    def __init__(self, cohort: Cohort) -> None:
        super().__init__(cohort)

    @property
    def cohort(self) -> Cohort:
        return self.student

    def describe(self) -> str:
        return f"{self.cohort.teacher.arch} {self.cohort.spec['kind']} heads"

    def forward(self, images: Tensor, labels: Tensor) -> tuple[Tensor, dict[str, Tensor]]:
        head_logits = self.cohort(images)[:-1]
        losses = {
            f"ce_head{i + 1}": F.cross_entropy(logits, labels)
            for i, logits in enumerate(head_logits)
        }
        return head_logits, losses

    def predict(self, images: Tensor) -> Tensor:
        return self.cohort(images)[:-1]

    def checkpoint_state(self) -> dict[str, Any]:
        return {"model": model_entry(self.cohort.teacher), "heads": self.cohort.heads_entry()}

    def load_checkpoint_state(self, state: dict[str, Any]) -> None:
        load_model_state(self.cohort.teacher, state["model"])
        self.cohort.heads.load_state_dict(state["heads"]["state_dict"])
