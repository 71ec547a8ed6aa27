"""The exercise checks: unanswered, right and wrong answers, answers of the wrong kind."""

from __future__ import annotations

import math

import torch

from dihkit.studies.exercises import (
    check_close,
    check_equal,
    check_predicate,
    is_unanswered,
    results_summary,
)


def test_the_placeholder_is_not_answered_and_never_raises():
    for check in (
        check_close("1.1", ..., 3.0, hint="h"),
        check_equal("1.2", [1, ...], [1, 2], hint="h"),
        check_predicate("1.3", None, lambda a: a > 0, hint="h"),
    ):
        assert check.status == "not answered yet" and not check.passed
        assert repr(check).startswith(f"Exercise {check.exercise}: not answered yet")
    assert is_unanswered({"a": 1, "b": ...}) and not is_unanswered({"a": 1})


def test_close_answers_pass_and_far_or_misshapen_ones_get_the_hint():
    exact = torch.tensor([0.25, 0.75])
    assert check_close("2.1", [0.25, 0.75 + 1e-7], exact, hint="h").passed
    wrong = check_close("2.1", [0.3, 0.7], exact, hint="softmax of z / tau")
    assert wrong.status == "wrong" and "softmax of z / tau" in str(wrong)
    shape = check_close("2.1", [0.25], exact, hint="h")
    assert shape.status == "wrong" and "shape (1,), expected (2,)" in str(shape)
    assert check_close("2.2", math.log(10), 2.302585, hint="h", rtol=1e-6).passed
    assert check_close("2.3", float("nan"), 1.0, hint="h").status == "wrong"


def test_equal_ignores_case_and_spaces_and_predicate_errors_are_wrong_answers():
    assert check_equal("3.1", " Head1 ", "head1", hint="h").passed
    assert not check_equal("3.1", "head2", "head1", hint="h").passed
    assert check_predicate("3.2", 7, lambda a: 5 <= a <= 10, hint="h").passed
    odd = check_predicate("3.2", "seven", lambda a: a > 5, hint="give a number")
    assert odd.status == "wrong" and "TypeError" in odd.message and "give a number" in odd.message
    summary = results_summary([odd, check_equal("3.1", "head1", "head1", hint="h")])
    assert summary == "1 right, 1 wrong, 0 not answered yet"


def test_source_block_shows_the_kits_code_with_where_it_lives():
    import inspect

    from dihkit.losses import kd_loss
    from dihkit.viz.source import source_block

    block = source_block(kd_loss)
    first = inspect.getsourcelines(kd_loss)[1]
    assert block.title == f"dihkit.losses.kd_loss, line {first}"
    assert block.code.startswith("def kd_loss(")
    assert block._repr_markdown_().startswith("`dihkit.losses.kd_loss")
    assert "```python\ndef kd_loss(" in block._repr_markdown_()
