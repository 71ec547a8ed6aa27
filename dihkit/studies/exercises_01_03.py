"""Helpers for the exercises of notebooks 01-03: calling a student's function so that its
placeholder body (``return ...``) still reads as "not answered yet" and an error it raises
becomes a wrong answer with the error named, rather than a traceback; and the slope of a
measured curve on log-log axes (how a quantity scales with the temperature)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

__all__ = ["AnswerError", "call_answer", "loglog_slope"]


class AnswerError:
    """What :func:`call_answer` returns when the student's function raised: any check that
    compares it reports a wrong answer naming the error (converting it raises)."""

    def __init__(self, name: str, error: BaseException) -> None:
        self.text = f"{name} raised {type(error).__name__}: {error}"

    def __repr__(self) -> str:
        return f"<{self.text}>"

    def __array__(self, *args: Any, **kwargs: Any) -> Any:
        raise ValueError(self.text)

    def __float__(self) -> float:
        raise ValueError(self.text)

    def __eq__(self, other: object) -> bool:
        raise ValueError(self.text)

    __hash__ = None  # type: ignore[assignment]


def call_answer(func: Any, *args: Any, **kwargs: Any) -> Any:
    """``func(*args, **kwargs)`` for a student's answer ``func``: ``...`` while ``func`` is
    still ``...`` or returns ``...`` (unanswered); an :class:`AnswerError` if it raises or is
    not callable; else its result."""
    if func is Ellipsis or func is None:
        return Ellipsis
    name = getattr(func, "__name__", repr(func))
    if not callable(func):
        return AnswerError(name, TypeError(f"{type(func).__name__} is not a function"))
    try:
        return func(*args, **kwargs)
    except Exception as error:  # the student's code: report it as a wrong answer
        return AnswerError(name, error)


def loglog_slope(xs: Sequence[float], ys: Sequence[float]) -> float:
    """The slope of ``log y`` against ``log x`` between the last two points: ``p`` where
    ``y`` behaves like ``x ** p`` at the large end of ``xs``."""
    if len(xs) != len(ys) or len(xs) < 2:
        raise ValueError("loglog_slope needs two or more (x, y) points")
    (x0, x1), (y0, y1) = xs[-2:], ys[-2:]
    return (math.log(y1) - math.log(y0)) / (math.log(x1) - math.log(x0))
