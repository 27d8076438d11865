"""YAML syntax errors land on the line the person broke (issue 15), whatever ruamel.yaml says.

The bundled rule files are mutated as a person editing them would break them: a key's colon
dropped (``  safety 2``, ``select``), a value's closing quote dropped (``trade_policy: "2``).
Every mutation must be reported on the broken line; an open quote at its opening quote.
Before issue 15, none of the 312 mutations was (ruamel reports the line after, or where the
next quote closes the string, or the end of the file) and one raised a ruamel traceback.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import engine
from engine._diagnostics import DiagnosticSink
from engine.rules._yaml import parse_yaml

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted(p for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".test.yaml"))

_KEY_WITH_VALUE = re.compile(r"^(\s*(?:- )?)([A-Za-z_][\w-]*):( +)(\S.*)?$")
_KEY_OF_BLOCK = re.compile(r"^(\s*)([A-Za-z_][\w-]*):\s*(#.*)?$")


def _mutations(lines: list[str]) -> Iterator[tuple[str, int, int, str]]:
    """(kind, 0-based line, 1-based column of the mistake, the broken line) for each mutation."""
    for index, line in enumerate(lines):
        if line.lstrip().startswith("#"):
            continue
        if match := _KEY_WITH_VALUE.match(line):
            yield "colon", index, match.start(2) + 1, line[: match.end(2)] + line[match.end(2) + 1 :]
            value = match[4] or ""
            if value[:1] in "\"'":
                unclosed = re.sub(r"^([\"'])(.*?)\1", r"\1\2", value)
                yield "quote", index, match.start(4) + 1, line[: match.start(4)] + unclosed
        if match := _KEY_OF_BLOCK.match(line):
            yield "colon", index, match.start(2) + 1, line[: match.end(2)] + line[match.end(2) + 1 :]


def test_every_mutation_of_the_bundled_rules_is_reported_on_the_broken_line(tmp_path: Path) -> None:
    shutil.copytree(ROOT / "rules" / "shared", tmp_path / "shared")
    tried, wrong = 0, []
    for rule_file in RULES:
        lines = rule_file.read_text(encoding="utf-8").splitlines()
        for kind, index, column, broken in _mutations(lines):
            case = tmp_path / rule_file.name
            case.write_text("\n".join([*lines[:index], broken, *lines[index + 1 :]]) + "\n", encoding="utf-8")
            tried += 1
            spans = [d.span for d in engine.check_rules(case).diagnostics]
            on_line = [s for s in spans if s.line == index + 1 and (kind == "colon" or s.column == column)]
            if not on_line:
                wrong.append(f"{rule_file.name}:{index + 1}: {broken!r} -> {[str(s) for s in spans]}")
    assert tried >= 300
    assert not wrong, "\n".join(wrong)


def _problem(text: str) -> tuple[int, int, str]:
    sink = DiagnosticSink()
    assert parse_yaml(text, "f.yaml", sink) is None
    (diagnostic,) = sink.items
    return diagnostic.span.line, diagnostic.span.column, diagnostic.message


@pytest.mark.parametrize(
    ("text", "line", "column", "message"),
    [
        ("a: 1\nb 2\nc: 3\n", 2, 1, "this line has no ':'"),
        ("a: 1\nb 2\n\n# comment: here\n\nc: 3\n", 2, 1, "this line has no ':'"),
        ("a: 1\r\nb 2\r\nc: 3\r\n", 2, 1, "this line has no ':'"),
        ("a:\n  x: 1\n  y 2\nb: 3\n", 3, 3, "this line has no ':'"),
        ("a:\n  x: 1\n  y 2\n", 3, 3, "this line has no ':'"),
        ("a\n  - x\n  - y\nb: 1\n", 1, 1, "this line has no ':'"),
        ("a:\n  - check len(x) > 1\n    message: m\n", 2, 5, "this line has no ':'"),
        ("a b\nc d\ne: 1\n", 1, 1, "this line has no ':'"),
        ('a: "1\nb: 2\nc: "3"\n', 1, 4, "the quote opened here is never closed"),
        ('a: "1\nb: 2\n', 1, 4, "the quote opened here is never closed"),
        ("a: '1\nb: 2\n", 1, 4, "the quote opened here is never closed"),
        ("a: 'it''s\nb: 2\n", 1, 4, "the quote opened here is never closed"),
        ('a: "x \\" y\nb: 2\n', 1, 4, "the quote opened here is never closed"),
        ('a: |\n  say "hi\nb: "1\nc: 2\n', 3, 4, "the quote opened here is never closed"),
        ('a: it\'s "fine"\nb: "2\nc: 3\n', 2, 4, "the quote opened here is never closed"),
        ("- x: 1\n  y: [1, 2\nz: 3\n", 3, 2, "YAML syntax error"),
        ("t:\n  f:\n    a: 1\n   b: 2\n", 4, 4, "indented 3 spaces and the line above 4"),
        ("a: b: c\n", 1, 5, "a ': ' inside an unquoted value"),
        ("- !x * 2\n", 1, 3, "starts a YAML tag"),
    ],
)
def test_yaml_errors_are_placed_where_the_person_broke_the_file(
    text: str, line: int, column: int, message: str
) -> None:
    found = _problem(text)
    assert found[:2] == (line, column), found
    assert message in found[2]


def test_a_multi_line_quoted_value_that_closes_is_not_blamed() -> None:
    sink = DiagnosticSink()
    root = parse_yaml('a: "one\n  two"\nb: 2\n', "f.yaml", sink)
    assert root is not None and not sink.items
    assert root.plain() == {"a": "one two", "b": 2}


def test_a_yaml_tag_on_a_value_is_refused_at_the_exclamation_mark() -> None:
    sink = DiagnosticSink()
    parse_yaml("select:\n  - sku.active\n  - !(product.brand in [x])\n", "f.yaml", sink)
    (diagnostic,) = sink.items
    assert (diagnostic.code, diagnostic.span.line, diagnostic.span.column) == ("TP101", 3, 5)
    assert "not" in (diagnostic.hint or "")
