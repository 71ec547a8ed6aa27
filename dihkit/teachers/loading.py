"""A loaded teacher checkpoint: the model and the head sets trained on it.

A checkpoint written by ``train-heads`` holds its newest head set as ``heads`` (the DIH cohort
that ``dih`` uses) and every head set it has accumulated, keyed by kind, as ``head_sets``: one
teacher file can carry DIH linear heads and MHKD conv heads side by side.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from torch import nn

from dihkit.data.datasets import Dataset
from dihkit.errors import CheckpointError
from dihkit.nn.heads import Cohort, check_heads_entry, cohort_from_entry
from dihkit.teachers.bundled import resolve_checkpoint
from dihkit.training.checkpoint import load_model


@dataclass
class Teacher:
    """A teacher model, where it came from, and its saved head sets (built into cohorts lazily,
    so methods that only need the teacher do not tap its stages)."""

    model: nn.Module
    source: str
    heads_entry: dict[str, Any] | None = field(default=None, repr=False)
    head_sets: dict[str, dict[str, Any]] = field(default_factory=dict, repr=False)
    _cohort: Cohort | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if self.heads_entry is not None and not self.head_sets:
            self.head_sets = {self.heads_entry["kind"]: self.heads_entry}

    @property
    def cohort(self) -> Cohort | None:
        """Teacher plus its primary trained heads (the DIH cohort), or None without heads."""
        if self._cohort is None and self.heads_entry is not None:
            self._cohort = cohort_from_entry(self.model, self.heads_entry, repr(self.source))
        return self._cohort

    def require_cohort(self, method: str) -> Cohort:
        """The cohort, or a clear error naming ``method`` if the teacher has no heads."""
        if self.cohort is None:
            raise CheckpointError(
                f"method {method!r} needs a teacher with trained heads, but {self.source!r} has "
                "none; run `dihkit train-heads --teacher ...` first or use a bundled teacher"
            )
        return self.cohort

    def head_set(
        self, kind: str, positions: Sequence[str] | None = None, width: int | None = None
    ) -> Cohort | None:
        """A cohort over the saved head set of ``kind`` if one exists at exactly ``positions``
        (and of ``width`` for conv heads); None otherwise. Builds a fresh cohort each call, on
        the same frozen teacher."""
        entry = self.head_sets.get(kind)
        if entry is None:
            return None
        if positions is not None and list(entry["positions"]) != list(positions):
            return None
        if width is not None and kind == "conv" and entry.get("width") != width:
            return None
        return cohort_from_entry(self.model, entry, repr(self.source))


def load_teacher(source: str | Path) -> Teacher:
    """Load a teacher from a checkpoint path or a bundled teacher's name."""
    model, payload = load_model(resolve_checkpoint(source))
    where = repr(str(source))
    heads = payload.get("heads")
    sets = payload.get("head_sets") or {}
    if not isinstance(sets, Mapping):
        raise CheckpointError(f"{where}: its head_sets entry is not a mapping (a damaged file?)")
    return Teacher(
        model=model,
        source=str(source),
        heads_entry=None if heads is None else check_heads_entry(heads, where),
        head_sets={kind: check_heads_entry(e, where) for kind, e in sets.items()},
    )


def check_fits_data(model: nn.Module, data: Dataset, role: str) -> None:
    """A clear error when a loaded model was trained for other images or classes."""
    spec = data.spec
    if model.in_channels != spec.in_channels or model.num_classes != spec.num_classes:
        raise CheckpointError(
            f"the {role} ({model.arch}) takes {model.in_channels}-channel images and "
            f"{model.num_classes} classes, but {spec.name} has {spec.in_channels} channel(s) and "
            f"{spec.num_classes} classes; use a {role} trained on {spec.name}"
        )
