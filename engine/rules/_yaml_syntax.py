"""YAML syntax errors on the line the person broke, in our words.

ruamel.yaml reports where its parser gave up, which is rarely where the mistake is: a
key with no colon (``  safety 2``) is noticed on the next line ("could not find expected
':'"), a quote left open (``trade_policy: "2``) swallows every line up to the next quote
and is noticed there, or at the end of the file. :func:`explain_yaml_error` looks back from
ruamel's mark for the usual causes and returns a position and a message a person can act
on; when no cause is recognised it keeps ruamel's position and phrases its problem.

The guarantee is the position of the two common mistakes (tested on mutations of the bundled
rule files, tests/test_rule_diagnostics_yaml.py): the line with no ``:`` when it is the
line before the mark (or the mark's own line), and the opening quote of a quoted scalar that
runs across lines up to the mark or to the end of the file.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

from engine._diagnostics import split_lines

_BLOCK_SCALAR = re.compile(r"^\s*(?:-\s+)*(?:[^\s#'\"][^#]*?:\s+)?[|>][-+0-9]*\s*(?:#.*)?$")
"""A line whose value is a block scalar (``key: |``, ``- >-``): the lines under it are text."""
_SCALAR_START = frozenset(":-[{,?")
"""The characters after which a quote opens a quoted scalar (with only spaces between)."""


@dataclass(frozen=True)
class YamlProblem:
    """Where a YAML syntax error is (1-based), what to say and how to fix it."""

    line: int
    column: int
    message: str
    hint: str
    width: int = 1


@dataclass(frozen=True)
class _Quoted:
    line: int  # 0-based
    column: int
    end_line: int  # -1 while still open


def explain_yaml_error(text: str, problem: str, mark: tuple[int, int] | None) -> YamlProblem:
    """The mistake behind ruamel's ``problem`` at 0-based ``mark`` (line, column), or its own words."""
    lines = split_lines(text)
    line, column = mark if mark is not None else (0, 0)
    line = min(line, len(lines) - 1)
    return (
        _tag_in_expression(lines, line)
        or _open_quote(lines, line)
        or _missing_colon(lines, line, column)
        or _uneven_indent(lines, line, column, problem)
        or _as_reported(line, column, problem)
    )


def tag_message(tag: str) -> str:
    """What to say about a YAML tag written where an expression was meant (``- !(…)``)."""
    return f"'!' starts a YAML tag here (YAML reads '{tag}' as a tag), not a negation"


TAG_HINT = (
    "the rule language writes negation as `not`: `- not (…)`; a value that starts with `!` must be quoted"
)


def _tag_in_expression(lines: list[str], line: int) -> YamlProblem | None:
    """``- !(product.category in [...])``: YAML reads the ``!`` as a tag, not as "not"."""
    for index in range(line, max(line - 2, -1), -1):
        match = re.match(r"^(\s*(?:-\s+|[^\s:#'\"][^:#]*:\s+))(!\S*)", lines[index])
        if match is not None:
            tag = match.group(2)
            return YamlProblem(index + 1, match.end(1) + 1, tag_message(tag), TAG_HINT, len(tag))
    return None


def _missing_colon(lines: list[str], line: int, column: int) -> YamlProblem | None:
    """A key written without its colon, ending on the mark's line or on the line before it."""
    candidates = [line] if column > _indent(lines[line]) else []
    previous = _previous_content_line(lines, line)
    if previous is not None:
        candidates.append(previous)
    for index in candidates:
        content = _content(lines[index])
        if not content or _has_key_colon(content) or content.lstrip().startswith(("[", "{", "]", "}")):
            continue
        index = _first_of_run(lines, index)
        start = _indent(lines[index])
        if lines[index].lstrip().startswith("- "):
            start = len(lines[index]) - len(lines[index].lstrip()[1:].lstrip())
            if not re.match(r"[A-Za-z_][\w-]* ", lines[index][start:]):
                continue
        key = lines[index][start:].split(maxsplit=1)[0]
        return YamlProblem(
            index + 1,
            start + 1,
            "this line has no ':' (YAML cannot tell the key from the value)",
            f"write `{key}: …` with a colon and a space after the key",
            len(key),
        )
    return None


def _uneven_indent(lines: list[str], line: int, column: int, problem: str) -> YamlProblem | None:
    """A key indented less than its siblings but more than its parent: it belongs to no mapping."""
    previous = _previous_content_line(lines, line)
    indent = _indent(lines[line])
    if not problem.startswith("expected <block end>") or column != indent or previous is None:
        return None
    above = _indent(lines[previous])
    if not 0 < indent < above:
        return None
    return YamlProblem(
        line + 1,
        column + 1,
        f"this line is indented {indent} spaces and the line above {above}: "
        "it belongs to no mapping above it",
        f"indent it like the keys it sits with ({above} spaces here), or like its parent's keys",
    )


def _first_of_run(lines: list[str], index: int) -> int:
    """The least indented line of the run of lines with no key colon that ends at ``index``.

    A key with no colon makes its line and the lines under it one plain scalar (``select``
    followed by its ``- …`` items): ruamel notices at the end of the run, the key is its first
    least indented line.
    """
    run = [index]
    while (earlier := _previous_content_line(lines, run[-1])) is not None:
        content = _content(lines[earlier])
        if _has_key_colon(content) or content.lstrip().startswith(("[", "{")):
            break
        run.append(earlier)
    least = min(_indent(lines[i]) for i in run)
    return min(i for i in run if _indent(lines[i]) == least)


def _open_quote(lines: list[str], line: int) -> YamlProblem | None:
    """A quote that runs across lines up to the mark (or to the end): it was never closed."""
    suspect: _Quoted | None = None
    scalars = _quoted_scalars(lines, line)
    for quoted in scalars:
        if quoted.end_line == -1 or (quoted.end_line > quoted.line and quoted.end_line >= line - 1):
            suspect = quoted
    if suspect is None:
        # Closed lines later by a quote that opened another scalar (`== ""` in an expression), YAML
        # read on from there: the first scalar running across lines is the one left open.
        suspect = next((quoted for quoted in scalars if quoted.end_line > quoted.line), None)
    if suspect is None:
        return None
    quote = lines[suspect.line][suspect.column]
    return YamlProblem(
        suspect.line + 1,
        suspect.column + 1,
        "the quote opened here is never closed",
        f"close it with {quote} on the same line; YAML read on until the next {quote}, "
        f"{'at line ' + str(suspect.end_line + 1) if suspect.end_line >= 0 else 'and the file ended'}",
    )


def _quoted_scalars(lines: list[str], last: int) -> list[_Quoted]:
    """The quoted scalars that start on lines up to ``last``, with the line each one closes on."""
    found: list[_Quoted] = []
    block_indent: int | None = None
    open_at: tuple[int, int, str] | None = None
    for index, text in enumerate(lines[: last + 1]):
        if open_at is None and block_indent is not None:
            if not text.strip() or _indent(text) > block_indent:
                continue
            block_indent = None
        position = 0
        if open_at is not None:
            position = _closing(text, 0, open_at[2])
            if position < 0:
                continue
            found.append(_Quoted(open_at[0], open_at[1], index))
            open_at = None
        while position < len(text):
            char = text[position]
            if char == "#" and (position == 0 or text[position - 1] in " \t"):
                break
            if char in "\"'" and _starts_scalar(text, position):
                close = _closing(text, position + 1, char)
                if close < 0:
                    open_at = (index, position, char)
                    break
                position = close
                continue
            position += 1
        if open_at is None and _BLOCK_SCALAR.match(text):
            block_indent = _indent(text)
    if open_at is not None:
        found.append(_Quoted(open_at[0], open_at[1], -1))
    return found


def _closing(text: str, position: int, quote: str) -> int:
    """The index just after the quote that closes a scalar from ``position``, or -1 if not on this line."""
    while position < len(text):
        char = text[position]
        if quote == '"' and char == "\\":
            position += 2
            continue
        if char == quote:
            if quote == "'" and text.startswith("''", position):
                position += 2
                continue
            return position + 1
        position += 1
    return -1


def _starts_scalar(text: str, position: int) -> bool:
    before = text[:position].rstrip()
    return not before or before[-1] in _SCALAR_START


def _as_reported(line: int, column: int, problem: str) -> YamlProblem:
    message = {
        "mapping values are not allowed here": "a ': ' inside an unquoted value (YAML reads it as a new key)",
    }.get(problem, problem)
    hint = (
        'quote the value: `key: "text: more"`'
        if message != problem
        else "check indentation, colons and quotes around this point"
    )
    return YamlProblem(line + 1, column + 1, f"YAML syntax error: {message}", hint)


def _outside_quotes(text: str) -> Iterator[tuple[int, str]]:
    """The characters of a line that are not inside a quoted scalar, with their positions."""
    quote = ""
    for position, char in enumerate(text):
        if quote:
            quote = "" if char == quote else quote
        elif char in "\"'" and _starts_scalar(text, position):
            quote = char
        else:
            yield position, char


def _content(text: str) -> str:
    """The line without its comment (a ``#`` after a space, outside quotes)."""
    for position, char in _outside_quotes(text):
        if char == "#" and (position == 0 or text[position - 1] in " \t"):
            return text[:position].rstrip()
    return text.rstrip()


def _has_key_colon(content: str) -> bool:
    """Whether a line (comment removed) has a ``:`` outside quotes, as a key's colon would be."""
    return any(
        char == ":" and (position + 1 == len(content) or content[position + 1] in " \t")
        for position, char in _outside_quotes(content)
    )


def _previous_content_line(lines: list[str], line: int) -> int | None:
    for index in range(line - 1, -1, -1):
        if _content(lines[index]).strip():
            return index
    return None


def _indent(text: str) -> int:
    return len(text) - len(text.lstrip(" "))
