"""The helpers of notebooks 01-03's exercises: a student's function called so that its
placeholder reads as unanswered and its errors as wrong answers; a log-log slope."""

from __future__ import annotations

import math

import pytest
import torch

from dihkit.studies.exercises import check_close, check_equal
from dihkit.studies.exercises_01_03 import AnswerError, call_answer, loglog_slope


def test_a_placeholder_function_or_body_is_not_answered_yet():
    def placeholder(x):
        return ...

    for answer in (call_answer(..., 1.0), call_answer(placeholder, 1.0)):
        assert check_close("t", answer, 2.0, hint="h").status == "not answered yet"


def test_a_working_function_is_called_and_checked():
    def double(x):
        return torch.tensor(2.0, dtype=torch.float64) * x

    answers = [call_answer(double, 1.0), call_answer(double, 2.0)]
    assert check_close("t", answers, [2.0, 4.0], hint="h").passed
    assert check_close("t", answers, [2.0, 5.0], hint="h").status == "wrong"


def test_an_error_or_a_non_function_is_a_wrong_answer_naming_it():
    def broken(x):
        return 1 / 0

    answer = call_answer(broken, 1.0)
    assert isinstance(answer, AnswerError)
    for result in (
        check_close("t", answer, 2.0, hint="h"),
        check_equal("t", answer, 2.0, hint="h"),
        check_close("t", [1.0, answer], [1.0, 2.0], hint="h"),
    ):
        assert result.status == "wrong"
        assert "broken raised ZeroDivisionError" in result.message
    result = check_close("t", call_answer(3, 1.0), 2.0, hint="h")
    assert result.status == "wrong" and "not a function" in result.message


def test_loglog_slope_reads_the_power_at_the_large_end():
    xs = [1.0, 2.0, 4.0, 8.0]
    assert loglog_slope(xs, [x**-2 for x in xs]) == pytest.approx(-2.0)
    assert loglog_slope(xs, [5.0] * 4) == pytest.approx(0.0)
    assert loglog_slope([1.0, math.e], [1.0, math.e**3]) == pytest.approx(3.0)
    with pytest.raises(ValueError):
        loglog_slope([1.0], [1.0])
