"""Checked exercises for the notebooks: the student edits a cell tagged ``exercise`` (its
answer starts as ``...``), and the next cell calls one of these checks, which says
``not answered yet``, ``right`` or ``wrong`` with a hint; it never raises, so a notebook with
unanswered exercises runs through (nbval, the tour). Each check prints one line that starts
with ``Exercise ID:``, which the tests read back after filling in the reference answers.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import torch

__all__ = [
    "ExerciseResult",
    "check_close",
    "check_equal",
    "check_predicate",
    "is_unanswered",
    "results_summary",
]

NOT_ANSWERED = "not answered yet"
RIGHT = "right"
WRONG = "wrong"


@dataclass(frozen=True)
class ExerciseResult:
    """What a check found: ``status`` is ``not answered yet``, ``right`` or ``wrong``."""

    exercise: str
    status: str
    message: str

    def __str__(self) -> str:
        return f"Exercise {self.exercise}: {self.status}" + (
            f" - {self.message}" if self.message else ""
        )

    __repr__ = __str__  # what nbval and a plain console show

    def _repr_markdown_(self) -> str:
        mark = {RIGHT: "✅", WRONG: "❌"}.get(self.status, "✏️")
        return f"{mark} **{self}**"

    @property
    def passed(self) -> bool:
        return self.status == RIGHT


def is_unanswered(answer: Any) -> bool:
    """True for the placeholder ``...`` (also inside a list, tuple or dict) and for None."""
    if answer is Ellipsis or answer is None:
        return True
    if isinstance(answer, (list, tuple)):
        return any(is_unanswered(a) for a in answer)
    if isinstance(answer, dict):
        return any(is_unanswered(a) for a in answer.values())
    return False


def _result(exercise: str, answer: Any, passed: Callable[[], bool], hint: str) -> ExerciseResult:
    if is_unanswered(answer):
        return ExerciseResult(exercise, NOT_ANSWERED, "replace the ... in the cell above")
    try:
        ok = bool(passed())
    except Exception as error:  # a student's answer of the wrong kind: say so, do not raise
        return ExerciseResult(exercise, WRONG, f"{type(error).__name__}: {error}. {hint}")
    return ExerciseResult(exercise, RIGHT if ok else WRONG, "" if ok else hint)


def _as_tensor(value: Any) -> torch.Tensor:
    if isinstance(value, torch.Tensor):
        return value.detach().to(torch.float64)
    return torch.as_tensor(value, dtype=torch.float64)


def check_close(
    exercise: str,
    answer: Any,
    expected: Any,
    *,
    hint: str,
    rtol: float = 1e-4,
    atol: float = 1e-6,
) -> ExerciseResult:
    """A number or tensor ``answer`` close to ``expected`` (same shape for tensors)."""

    def passed() -> bool:
        got, want = _as_tensor(answer), _as_tensor(expected)
        if got.shape != want.shape:
            raise ValueError(f"shape {tuple(got.shape)}, expected {tuple(want.shape)}")
        if not torch.isfinite(got).all():
            raise ValueError("the answer is not finite")
        return bool(torch.allclose(got, want, rtol=rtol, atol=atol))

    return _result(exercise, answer, passed, hint)


def check_equal(exercise: str, answer: Any, expected: Any, *, hint: str) -> ExerciseResult:
    """``answer == expected`` (strings compared without case and surrounding spaces; sequences
    element by element)."""

    def norm(value: Any) -> Any:
        if isinstance(value, str):
            return value.strip().lower()
        if isinstance(value, (list, tuple)):
            return [norm(v) for v in value]
        if isinstance(value, float) and math.isnan(value):
            return "nan"
        return value

    return _result(exercise, answer, lambda: norm(answer) == norm(expected), hint)


def check_predicate(
    exercise: str, answer: Any, predicate: Callable[[Any], bool], *, hint: str
) -> ExerciseResult:
    """``predicate(answer)`` is true (for answers with several right values, e.g. a range)."""
    return _result(exercise, answer, lambda: predicate(answer), hint)


def results_summary(results: Sequence[ExerciseResult]) -> str:
    """One line: how many of the checks are right, wrong and unanswered."""
    counts = {s: sum(r.status == s for r in results) for s in (RIGHT, WRONG, NOT_ANSWERED)}
    return ", ".join(f"{n} {s}" for s, n in counts.items())
