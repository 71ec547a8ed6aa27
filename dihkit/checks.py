"""Validators for plain values: one function per kind of value, each raising one
:class:`~dihkit.errors.ConfigError` that names the value, the bad input and what is valid.

Every layer checks its inputs with these (training settings, method options, notebook
parameters, experiment files, command-line flags), so a range is written once, where it is
declared, and reads the same everywhere.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Sequence
from typing import Any

from dihkit.errors import ConfigError


def describe_range(
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> str:
    """An interval as text, e.g. ``(0, inf)`` or ``[0, 1]``."""
    left = "(" if low_open or low is None else "["
    right = ")" if high_open or high is None else "]"
    low_text = "-inf" if low is None else f"{low:g}"
    high_text = "inf" if high is None else f"{high:g}"
    return f"{left}{low_text}, {high_text}{right}"


def is_real(value: Any) -> bool:
    """A finite real number that is not a bool (any int is finite, however large)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        return False
    return isinstance(value, numbers.Integral) or math.isfinite(value)


def whole(value: Any) -> int:
    """``value`` as an int if it is a whole number (``3`` or ``3.0``), else a ValueError."""
    if not is_real(value) or value != int(value):
        raise ValueError(value)
    return int(value)


def in_range(
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
) -> bool:
    """Whether ``value`` is a finite real number inside the interval."""
    if not is_real(value):
        return False
    if low is not None and (value <= low if low_open else value < low):
        return False
    return not (high is not None and (value >= high if high_open else value > high))


def check_number(
    name: str,
    value: Any,
    low: float | None = None,
    high: float | None = None,
    *,
    low_open: bool = False,
    high_open: bool = False,
    integer: bool = False,
) -> Any:
    """``value`` if it is a finite number (an integer with ``integer``) in the interval, else a
    :class:`ConfigError` naming ``name``, the value and the interval."""
    ok = in_range(value, low, high, low_open=low_open, high_open=high_open)
    if integer:
        ok = ok and isinstance(value, numbers.Integral)
    if not ok:
        kind = "an integer" if integer else "a finite number"
        bounds = describe_range(low, high, low_open=low_open, high_open=high_open)
        raise ConfigError(f"{name} = {value!r} must be {kind} in {bounds}")
    return value


def check_choice(name: str, value: Any, choices: Sequence[Any]) -> Any:
    """``value`` if it is one of ``choices``, else a :class:`ConfigError` listing them."""
    if value not in choices:
        raise ConfigError(
            f"{name} = {value!r} is not valid; choose one of: "
            + ", ".join(repr(c) for c in choices)
        )
    return value
