"""Hand-made run records, as ``run_grid`` and the results files hold them, for the tests of the
seed statistics and the generated notebook text."""

from __future__ import annotations

from typing import Any


def fake_run(
    method: str,
    seed: int,
    acc: float,
    *,
    teacher: str | None = None,
    label: str | None = None,
    seconds: float = 1.0,
    student_params: int = 78042,
    **extra: Any,
) -> dict[str, Any]:
    """One resnet8 run: ``acc`` is both its validation-selected and its last-epoch accuracy."""
    return {
        "method": method,
        "teacher": teacher,
        "student": "resnet8",
        "seed": seed,
        "label": label,
        "test_acc_best": acc,
        "test_acc_last": acc,
        "seconds": seconds,
        "student_params": student_params,
        **extra,
    }
