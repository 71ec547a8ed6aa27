"""Looking inside a teacher cohort: every member's logits on a split, one report row per member
(accuracy, agreement with the teacher, calibration) and the tables of the bundled cohorts.

Used by ``notebooks/03_intermediate_heads.ipynb``; the logits of a split are computed once and
every table, plot and explorer reads them.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from dihkit.data.datasets import Dataset, Split
from dihkit.data.loader import BatchLoader
from dihkit.studies.calibration import ReliabilityCurve, reliability_curve, top1_agreement
from dihkit.teachers.bundled import read_manifest
from dihkit.teachers.loading import load_teacher
from dihkit.training.config import EVAL_BATCH_SIZE
from dihkit.training.runtime import autocast, evaluating, resolve_device, uses_channels_last

COHORT_AVERAGE = "cohort average"


@torch.no_grad()
def predict_logits(
    model: nn.Module,
    images: Tensor,
    *,
    mean: Sequence[float],
    std: Sequence[float],
    device: str | torch.device = "cpu",
    batch_size: int = EVAL_BATCH_SIZE,
) -> Tensor:
    """Logits of ``model`` for uint8 ``images`` ``(N, C, H, W)``, normalised by ``mean``/``std``
    as in training: ``[N, C]`` for a model, ``[k+1, N, C]`` for a cohort; float32 on the CPU."""
    device = resolve_device(device)
    split = Split(images, torch.zeros(len(images), dtype=torch.long))
    loader = BatchLoader(
        split,
        batch_size,
        mean=mean,
        std=std,
        device=device,
        channels_last=uses_channels_last(device),
    )
    chunks = []
    with evaluating(model):
        for batch, _ in loader:
            with autocast(device):
                chunks.append(model(batch).float().cpu())
    return torch.cat(chunks, dim=-2)


def split_logits(
    model: nn.Module, data: Dataset, split: str = "test", *, device: str | torch.device = "cpu"
) -> Tensor:
    """:func:`predict_logits` on one split (``train``, ``val`` or ``test``) of ``data``."""
    images = getattr(data, split).images
    return predict_logits(model, images, mean=data.spec.mean, std=data.spec.std, device=device)


@dataclass(frozen=True)
class MemberReport:
    """One cohort member scored on a split (fractions in [0, 1])."""

    name: str
    accuracy: float
    agreement: float  # top-1 agreement with the teacher's own classifier
    ece: float
    curve: ReliabilityCurve

    def as_dict(self) -> dict[str, float | str]:
        """Plain values for a results file (the reliability curve left out)."""
        return {
            "name": self.name,
            "accuracy": self.accuracy,
            "agreement": self.agreement,
            "ece": self.ece,
        }


def member_reports(
    cohort_logits: Tensor,
    labels: Tensor,
    member_names: Sequence[str],
    *,
    bins: int = 15,
    with_average: bool = True,
) -> list[MemberReport]:
    """Accuracy, top-1 agreement with the teacher (the last member) and calibration (at tau = 1)
    of every member of ``cohort_logits`` (``[k+1, N, C]``), plus the cohort average of their
    probabilities when ``with_average``."""
    if cohort_logits.shape[0] != len(member_names):
        raise ValueError(
            f"{cohort_logits.shape[0]} members in the logits but {len(member_names)} names"
        )
    teacher = cohort_logits[-1]
    probs = torch.softmax(cohort_logits.float(), dim=-1)
    rows = [
        (name, member, probs[i])
        for i, (name, member) in enumerate(zip(member_names, cohort_logits, strict=True))
    ]
    if with_average:
        average = probs.mean(dim=0)
        rows.append((COHORT_AVERAGE, average.log(), average))
    reports = []
    for name, logits, member_probs in rows:
        curve = reliability_curve(member_probs, labels, bins)
        reports.append(
            MemberReport(
                name=name,
                accuracy=float((logits.argmax(-1) == labels).float().mean()),
                agreement=top1_agreement(logits, teacher),
                ece=curve.ece,
                curve=curve,
            )
        )
    return reports


def bundled_teachers_table() -> str:
    """The bundled teachers and the test accuracy of every member of their cohorts, as recorded
    in the manifest when they were built (a text table in percent)."""
    lines = []
    for name, entry in sorted(read_manifest().items()):
        members = entry.get("members", [])
        accuracies = entry.get("member_test_acc", [])
        cells = "  ".join(
            f"{m.split(' ')[0]} {100 * a:.2f}" for m, a in zip(members, accuracies, strict=True)
        )
        lines.append(f"{name:<10} {entry.get('dataset', '?'):<12} {cells}")
    return "\n".join(lines) or "no bundled teachers"


def cohort_markdown(teacher: str) -> str:
    """A markdown table of a teacher's DIH cohort: each member, its head's parameters and the
    test accuracy recorded for it (bundled teachers only)."""
    cohort = load_teacher(teacher).require_cohort("dih")
    recorded = read_manifest().get(teacher, {}).get("member_test_acc")
    params = [f"{n:,}" for n in cohort.head_parameter_counts()] + ["(the teacher's own classifier)"]
    lines = ["| member | head parameters | recorded test % |", "|---|---|---|"]
    for i, (name, size) in enumerate(zip(cohort.member_names, params, strict=True)):
        accuracy = f"{100 * recorded[i]:.2f}" if recorded else "-"
        lines.append(f"| {name} | {size} | {accuracy} |")
    return "\n".join(lines)


def example_indices(count: int, total: int, seed: int) -> list[int]:
    """``count`` distinct positions in ``range(total)``, drawn with ``seed`` (sorted)."""
    generator = torch.Generator().manual_seed(seed)
    return sorted(torch.randperm(total, generator=generator)[:count].tolist())


def reports_table(reports: Sequence[MemberReport]) -> str:
    """The reports as a fixed-width text table in percent."""
    width = max(len(r.name) for r in reports)
    lines = [f"{'member':<{width}}  {'test %':>7}  {'agrees w/ teacher %':>19}  {'ECE %':>6}"]
    for r in reports:
        lines.append(
            f"{r.name:<{width}}  {100 * r.accuracy:7.2f}  {100 * r.agreement:19.2f}  "
            f"{100 * r.ece:6.2f}"
        )
    return "\n".join(lines)


__all__ = [
    "COHORT_AVERAGE",
    "bundled_teachers_table",
    "cohort_markdown",
    "example_indices",
    "MemberReport",
    "member_reports",
    "predict_logits",
    "reports_table",
    "split_logits",
]
