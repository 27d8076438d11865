"""YAML with a position for every node and every character of every scalar.

ruamel.yaml's composer gives each node its start and end marks; we build our
own small tree on top of it so that (1) numbers become ``Decimal`` from the
text the user typed, never a float, (2) duplicate keys are diagnostics, not
silent overwrites, and (3) an error at character 17 of an expression inside a
block or quoted scalar can be reported at the exact line and column of the
file, escapes and indentation accounted for.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.nodes import Node as RuamelNode

from engine._diagnostics import LINE_BREAK, DiagnosticSink, Span

_TAG = "tag:yaml.org,2002:"
_DOUBLE_QUOTED_ESCAPE_LENGTH = {"x": 4, "u": 6, "U": 10}


@dataclass
class Node:
    """A YAML node with its location.

    ``value`` is a ``dict[str, Node]``, a ``list[Node]`` or a scalar
    (``str``, ``Decimal``, ``bool`` or ``None``). ``text`` is the scalar as
    the user wrote it once YAML quoting is undone: expressions are parsed from
    it, so ``safety: 5`` and ``safety: "5"`` mean the same.
    """

    value: Any
    span: Span
    text: str = ""
    style: str | None = None
    key_span: Span | None = None
    _raw: str = field(default="", repr=False)
    _raw_start: tuple[int, int] = (0, 0)
    _positions: list[tuple[int, int]] | None = field(default=None, repr=False)

    @property
    def file(self) -> str:
        return self.span.file

    @property
    def is_mapping(self) -> bool:
        return isinstance(self.value, dict)

    @property
    def is_sequence(self) -> bool:
        return isinstance(self.value, list)

    @property
    def is_scalar(self) -> bool:
        return not isinstance(self.value, dict | list)

    def get(self, key: str) -> Node | None:
        return self.value.get(key) if isinstance(self.value, dict) else None

    def items(self) -> Iterator[tuple[str, Node]]:
        if isinstance(self.value, dict):
            yield from self.value.items()

    def find(self, path: tuple[str | int, ...]) -> Node:
        """The deepest node along ``path`` (a pydantic error ``loc``)."""
        node = self
        for part in path:
            child: Node | None = None
            if isinstance(node.value, dict) and isinstance(part, str):
                child = node.value.get(part)
            elif isinstance(node.value, list) and isinstance(part, int) and 0 <= part < len(node.value):
                child = node.value[part]
            if child is None:
                break
            node = child
        return node

    def plain(self) -> Any:
        """The node as plain Python data, for pydantic to validate."""
        if isinstance(self.value, dict):
            return {k: v.plain() for k, v in self.value.items()}
        if isinstance(self.value, list):
            return [v.plain() for v in self.value]
        return self.value

    def span_of(self, start: int, end: int | None = None) -> Span:
        """The file span of characters ``start:end`` of this scalar's text."""
        positions = self._char_positions()
        if not positions:
            return self.span
        start = min(max(start, 0), len(positions) - 1)
        line, column = positions[start]
        if end is None or end <= start:
            return Span(self.file, line, column, line, column + 1)
        end_line, end_column = positions[min(end - 1, len(positions) - 1)]
        if end_line != line:
            return Span(self.file, line, column, end_line, end_column + 1)
        return Span(self.file, line, column, line, end_column + 1)

    def _char_positions(self) -> list[tuple[int, int]]:
        if self._positions is None:
            self._positions = _align(self.text, self._raw, self._raw_start, self.style)
        return self._positions


def _align(value: str, raw: str, start: tuple[int, int], style: str | None) -> list[tuple[int, int]]:
    """Map each character of a scalar's value to the (line, column) it was typed at.

    Walks the value and the raw source side by side, undoing quoting,
    escapes, indentation and line folding; 1-based line and column.
    """
    raw_pos: list[tuple[int, int]] = []
    line, col = start
    for index, ch in enumerate(raw):
        raw_pos.append((line + 1, col + 1))
        if ch == "\n" or (ch == "\r" and raw[index + 1 : index + 2] != "\n"):
            line, col = line + 1, 0
        else:
            col += 1
    raw_pos.append((line + 1, col + 1))
    i = 0
    if style in ('"', "'"):
        i = 1
    elif style in ("|", ">"):
        newline = raw.find("\n")
        i = newline + 1 if newline >= 0 else len(raw)
    out: list[tuple[int, int]] = []
    n = len(raw)
    for ch in value:
        if i >= n:
            out.append(raw_pos[min(i, n)])
            continue
        if style == '"' and raw[i] == "\\":
            out.append(raw_pos[i])
            i += _DOUBLE_QUOTED_ESCAPE_LENGTH.get(raw[i + 1] if i + 1 < n else "", 2)
            continue
        if style == "'" and raw.startswith("''", i):
            out.append(raw_pos[i])
            i += 2
            continue
        if ch in " \n" and raw[i] != ch and raw[i] in " \t\n":
            out.append(raw_pos[i])
            while i < n and raw[i] in " \t\n":
                i += 1
            continue
        while i < n and raw[i] != ch and raw[i] in " \t\n":
            i += 1
        out.append(raw_pos[min(i, n)])
        i += 1
    out.append(raw_pos[min(i, n)])
    return out


def _scalar_value(node: ScalarNode) -> Any:
    tag = str(getattr(node.tag, "value", None) or node.tag)
    text: str = node.value
    if node.style is None:
        if tag == _TAG + "null":
            return None
        if tag == _TAG + "bool":
            return text.lower() in ("true", "yes", "on")
        if tag in (_TAG + "int", _TAG + "float"):
            try:
                return Decimal(text.replace("_", ""))
            except InvalidOperation:
                return text
    return text


class _Builder:
    def __init__(self, file: str, text: str, sink: DiagnosticSink) -> None:
        self.file = file
        self.text = text
        self.sink = sink
        self.line_offsets = [0] + [m.end() for m in LINE_BREAK.finditer(text)]

    def position(self, index: int) -> tuple[int, int]:
        """0-based (line, column) of a character offset, lines as an editor counts them.

        ruamel's own line numbers also break on NEL/LS/PS; character offsets do not lie.
        """
        line = bisect_right(self.line_offsets, index) - 1
        return line, index - self.line_offsets[line]

    def span(self, node: RuamelNode) -> Span:
        (sl, sc), (el, ec) = self.position(node.start_mark.index), self.position(node.end_mark.index)
        return Span(self.file, sl + 1, sc + 1, el + 1, ec + 1)

    def build(self, node: RuamelNode, key_span: Span | None = None) -> Node:
        span = self.span(node)
        if isinstance(node, MappingNode):
            mapping: dict[str, Node] = {}
            for key_node, value_node in node.value:
                key_span_ = self.span(key_node)
                if not isinstance(key_node, ScalarNode):
                    self.sink.error("TP104", "mapping keys must be plain text", key_span_)
                    continue
                key = str(key_node.value)
                if key == "<<":
                    self.sink.error(
                        "TP104",
                        "YAML merge keys (<<) are not supported in rule files",
                        key_span_,
                        hint="use 'include' for shared tables, or repeat the keys",
                    )
                    continue
                if key in mapping:
                    first = mapping[key].key_span or mapping[key].span
                    self.sink.error(
                        "TP103",
                        f"duplicate key '{key}' (first defined at line {first.line})",
                        key_span_,
                        hint="remove one of them; YAML would silently keep only the last",
                    )
                    continue
                mapping[key] = self.build(value_node, key_span_)
            return Node(mapping, span, key_span=key_span)
        if isinstance(node, SequenceNode):
            return Node([self.build(item) for item in node.value], span, key_span=key_span)
        assert isinstance(node, ScalarNode)
        if node.style is None and node.value == "" and key_span is not None:
            # An empty value has no token of its own: ruamel marks the next token, often on
            # another line. The key is what the user needs to look at.
            span = key_span
        value = _scalar_value(node)
        text = str(node.value).replace("\a", "")
        start, end = node.start_mark.index, node.end_mark.index
        return Node(
            value,
            span,
            text=text,
            style=node.style,
            key_span=key_span,
            _raw=self.text[start:end],
            _raw_start=self.position(start),
        )


def parse_yaml(text: str, file: str, sink: DiagnosticSink) -> Node | None:
    """Parse YAML text into a located :class:`Node` tree; syntax errors go to ``sink``."""
    sink.add_source(file, text)
    yaml = YAML(typ="rt")
    try:
        root = yaml.compose(io.StringIO(text))
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, column = 1, 1
        if mark is not None:
            zero_line, zero_column = _Builder(file, text, sink).position(min(mark.index, len(text)))
            line, column = zero_line + 1, zero_column + 1
        problem = exc.problem or exc.context or "invalid YAML"
        sink.error(
            "TP101",
            f"YAML syntax error: {problem}",
            Span(file, line, column),
            hint="check indentation, colons and quotes around this point",
        )
        return None
    except YAMLError as exc:
        sink.error("TP101", f"YAML syntax error: {exc}", Span(file, 1, 1))
        return None
    if root is None:
        return Node(None, Span(file, 1, 1))
    return _Builder(file, text, sink).build(root)
