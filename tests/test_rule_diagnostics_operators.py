"""Operators from other languages get the rule language's fix (issue 15), at their column."""

from __future__ import annotations

import pytest

from engine.rules._ast import SyntaxProblem, parse_expression
from engine.rules._stray_tokens import stray_token


@pytest.mark.parametrize(
    ("text", "offset", "written", "fix"),
    [
        ("price.selling => 10", 14, "=>", "'>='"),
        ("price.selling =< 10", 14, "=<", "'<='"),
        ("a || b", 2, "||", "'or'"),
        ("a && b", 2, "&&", "'and'"),
        ("a & b", 2, "&", "'and'"),
        ("a <> b", 2, "<>", "'!='"),
        ("a ** 2", 2, "**", "no power operator"),
        ("a ^ 2", 2, "^", "no power operator"),
        ("a // 2", 2, "//", "round"),
        ("a === b", 2, "===", "'=='"),
        ("a !== b", 2, "!==", "'!='"),
        ("!sku.active", 0, "!", "'not'"),
        ('a == "||" or b || c', 15, "||", "'or'"),
        ("a != b and !c", 11, "!", "'not'"),
        ("ending(0.9.0)", 7, "0.9.0", "one decimal point"),
    ],
)
def test_a_stray_operator_is_named_with_its_fix(text: str, offset: int, written: str, fix: str) -> None:
    with pytest.raises(SyntaxProblem) as raised:
        parse_expression(text)
    problem = raised.value
    assert (problem.offset, problem.end) == (offset, offset + len(written)), problem.message
    assert f"'{written}'" in problem.message
    assert fix in (problem.hint or "")


@pytest.mark.parametrize("text", ["a >= 1 and b <= 2", "a != b", "a == 'x => y'", "v1.2 > 0", "x | upper"])
def test_valid_operators_and_strings_are_never_taken_for_stray_ones(text: str) -> None:
    assert stray_token(text) is None
