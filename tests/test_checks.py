"""The shared validators of dihkit.checks: what each accepts, and the one message it gives."""

import math

import pytest

from dihkit.checks import check_choice, check_number, describe_range, in_range, is_real, whole
from dihkit.errors import ConfigError


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        (1, True),
        (2.5, True),
        (10**400, True),
        (True, False),
        (math.nan, False),
        (math.inf, False),
        ("1", False),
        (None, False),
    ],
)
def test_is_real(value, expected):
    assert is_real(value) is expected


@pytest.mark.parametrize(
    ("value", "low", "high", "kwargs", "expected"),
    [
        (0, 0, 1, {}, True),
        (0, 0, 1, {"low_open": True}, False),
        (1, 0, 1, {"high_open": True}, False),
        (1, 0, 1, {}, True),
        (-0.001, 0, None, {}, False),
        (10**400, 0, None, {}, True),
        (10**400, 0, 10, {}, False),
    ],
)
def test_in_range_bounds(value, low, high, kwargs, expected):
    assert in_range(value, low, high, **kwargs) is expected


def test_describe_range_marks_open_and_infinite_ends():
    assert describe_range(0, None, low_open=True) == "(0, inf)"
    assert describe_range(0, 1) == "[0, 1]"
    assert describe_range(None, 2.5, high_open=True) == "(-inf, 2.5)"


def test_check_number_names_the_value_and_the_interval():
    assert check_number("tau", 4.0, 0, low_open=True) == 4.0
    with pytest.raises(ConfigError, match=r"^tau = -1 must be a finite number in \(0, inf\)$"):
        check_number("tau", -1, 0, low_open=True)
    with pytest.raises(ConfigError, match=r"epochs = 2\.5 must be an integer in \[1, inf\)"):
        check_number("epochs", 2.5, 1, integer=True)
    with pytest.raises(ConfigError, match="must be a finite number"):
        check_number("lr", math.nan, 0)


def test_whole_accepts_whole_floats_only():
    assert whole(3.0) == 3 and isinstance(whole(3.0), int)
    for bad in (2.5, True, "3", math.inf):
        with pytest.raises(ValueError):
            whole(bad)


def test_check_choice_lists_the_choices():
    assert check_choice("schedule", "cosine", ("cosine", "multistep")) == "cosine"
    with pytest.raises(
        ConfigError, match="schedule = 'step' is not valid; choose one of: 'cosine', 'multistep'"
    ):
        check_choice("schedule", "step", ("cosine", "multistep"))
