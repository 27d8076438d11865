"""Operators from other languages, and malformed numbers, named with the fix.

When an expression does not parse, lark names the single character it stumbled on
(``unexpected '|'`` for ``||``, ``expected a name`` for ``ending(0.9.0)``). Before that
message is given, :func:`stray_token` looks for the usual culprits outside string literals
(``=>``, ``||``, ``<>``, ``**``, ``!``, a number with two decimal points) and says what the
rule language writes instead. It only runs on text that failed to parse, so a valid
expression can never be blamed.
"""

from __future__ import annotations

import re
from typing import NamedTuple

_NOT_POWER = "the rule language has no power operator: multiply (`x * x`)"
_FIXES: tuple[tuple[str, str, str], ...] = (
    # (written, what to say, hint): longest first, so '===' is not taken for '=='
    ("===", "'===' is not an operator", "equality is '==' (there is no strict equality: values are typed)"),
    ("!==", "'!==' is not an operator", "inequality is '!='"),
    ("=>", "'=>' is not an operator", "'greater than or equal' is '>='"),
    ("=<", "'=<' is not an operator", "'less than or equal' is '<='"),
    ("||", "'||' is not an operator", "write 'or': `a or b`"),
    ("&&", "'&&' is not an operator", "write 'and': `a and b`"),
    ("<>", "'<>' is not an operator", "inequality is '!='"),
    ("**", "'**' is not an operator", _NOT_POWER),
    ("^", "'^' is not an operator", _NOT_POWER),
    ("//", "'//' is not an operator", "divide with '/', then round: `round(a / b, 0)`"),
    ("!", "'!' is not an operator", "negation is 'not': `not sku.active`; inequality is '!='"),
    ("&", "'&' is not an operator", "write 'and': `a and b`"),
)
_BAD_NUMBER = re.compile(r"(?<![\w.])\d+\.\d+(?:\.\d+)+")


class StrayToken(NamedTuple):
    """A stray operator or malformed number at ``offset:end`` of the text, worded for the user."""

    message: str
    offset: int
    end: int
    hint: str


def stray_token(text: str) -> StrayToken | None:
    """The first operator from another language, or malformed number, outside string literals."""
    position = 0
    while position < len(text):
        char = text[position]
        if char in "\"'":
            position = _after_string(text, position)
            continue
        number = _BAD_NUMBER.match(text, position)
        if number is not None and (
            position == 0 or not (text[position - 1].isalnum() or text[position - 1] == "_")
        ):
            return StrayToken(
                f"'{number.group(0)}' is not a number: it has {number.group(0).count('.')} decimal points",
                position,
                number.end(),
                "a number has one decimal point at most, e.g. 0.90",
            )
        for written, message, hint in _FIXES:
            if text.startswith(written, position) and not _part_of_valid(text, position, written):
                return StrayToken(message, position, position + len(written), hint)
        position += 1
    return None


def _part_of_valid(text: str, position: int, written: str) -> bool:
    """Whether the match is a valid operator's tail or head (the '=' of '!=', '<=' or '>=')."""
    if written == "!":
        return text.startswith("!=", position) and not text.startswith("!==", position)
    if written == "=>":
        return position > 0 and text[position - 1] in "<>=!"
    if written == "=<":
        return position > 0 and text[position - 1] in "<>=!"
    return False


def _after_string(text: str, start: int) -> int:
    """The offset after the string literal opened at ``start`` (or the end of the text)."""
    quote, position = text[start], start + 1
    while position < len(text):
        if text[position] == "\\":
            position += 2
            continue
        if text[position] == quote:
            return position + 1
        position += 1
    return len(text)
