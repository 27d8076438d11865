"""Every character of a scalar maps back to the line and column it was typed at."""

from __future__ import annotations

import pytest

from engine._diagnostics import DiagnosticSink
from engine.rules._yaml import Node, parse_yaml


def _value(text: str, key: str) -> Node:
    root = parse_yaml(text, "f.yaml", DiagnosticSink())
    assert root is not None
    node = root.get(key)
    assert node is not None
    return node


def _position_of(node: Node, needle: str) -> tuple[int, int]:
    offset = node.text.index(needle)
    span = node.span_of(offset, offset + len(needle))
    return span.line, span.column


@pytest.mark.parametrize(
    ("yaml_text", "needle", "expected"),
    [
        # plain scalar
        ("a: price.selling * 2\n", "selling", (1, 10)),
        # double-quoted with escapes before the needle: \t and \" are two characters in the file
        ('a: "x\\t\\"y\\" product.brnd"\n', "brnd", (1, 22)),
        # \u00e9 is six characters in the file but one in the value
        ('a: "caf\\u00e9 product.brnd"\n', "brnd", (1, 23)),
        # single-quoted with '' (one quote in the value, two in the file)
        ("a: 'it''s product.brnd'\n", "brnd", (1, 19)),
        # literal block scalar: second line, indented
        ("a: |\n  first line\n  then product.brnd\n", "brnd", (3, 16)),
        # folded block scalar: lines join with a space
        ("a: >\n  first\n  second product.brnd\n", "brnd", (3, 18)),
        # multi-line plain scalar folds too
        ("a: first\n  second product.brnd\n", "brnd", (2, 18)),
        # deeper nesting
        ("x:\n  y:\n    - z: '=lookup(colours, sku.ean)'\n", "colours", (3, 19)),
    ],
)
def test_scalar_characters_map_to_file_positions(
    yaml_text: str, needle: str, expected: tuple[int, int]
) -> None:
    first_key = yaml_text.split(":")[0]
    node = _value(yaml_text, first_key)
    while node.is_mapping or node.is_sequence:
        node = next(iter(node.value.values())) if node.is_mapping else node.value[0]
    assert _position_of(node, needle) == expected


def test_numbers_are_decimal_from_the_text_typed() -> None:
    node = _value("a: 0.90\n", "a")
    assert str(node.value) == "0.90"
    assert node.text == "0.90"


def test_duplicate_keys_are_reported_not_overwritten() -> None:
    sink = DiagnosticSink()
    root = parse_yaml("a: 1\nb: 2\na: 3\n", "f.yaml", sink)
    assert root is not None
    assert [(d.code, d.span.line, d.span.column) for d in sink.items] == [("TP103", 3, 1)]
    assert str(root.value["a"].value) == "1"


def test_syntax_error_has_position() -> None:
    sink = DiagnosticSink()
    assert parse_yaml("a: [1, 2\nb: 3\n", "f.yaml", sink) is None
    (diagnostic,) = sink.items
    assert diagnostic.code == "TP101"
    assert diagnostic.span.line >= 2
