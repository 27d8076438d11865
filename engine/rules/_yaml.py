"""YAML with a position for every node and every character of every scalar.

ruamel.yaml's composer gives each node its start and end marks; we build our
own small tree on top of it so that (1) numbers become ``Decimal`` from the
text the user typed, never a float, (2) duplicate keys are diagnostics, not
silent overwrites, and (3) an error at character 17 of an expression inside a
block or quoted scalar can be reported at the exact line and column of the
file, escapes and indentation accounted for.

It also bounds what a small file can make us build. Anchors and aliases are
allowed (they are plain YAML, and sharing an attribute block between two
categories is a fair use), but an alias is expanded into a copy of what it
names, so a "billion laughs" file of a few hundred bytes would expand into
millions of nodes. Every alias's expanded size and depth is computed first
(memoised over the composed graph, linear in the file), and an alias that would
take the document past :data:`ALIAS_NODE_BUDGET` added nodes or
:data:`MAX_DEPTH` levels is refused with a diagnostic naming it, before
anything is expanded. A recursive alias (``&a [*a]``) is refused the same way.
Files are read as UTF-8 (a UTF-8 byte order mark is allowed, as YAML 1.2
allows it); any other encoding is a diagnostic naming the line, column and
byte offset of the first byte that is not UTF-8.
"""

from __future__ import annotations

import io
from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML
from ruamel.yaml.composer import Composer
from ruamel.yaml.error import MarkedYAMLError, YAMLError
from ruamel.yaml.events import AliasEvent
from ruamel.yaml.nodes import MappingNode, ScalarNode, SequenceNode
from ruamel.yaml.nodes import Node as RuamelNode

from engine._diagnostics import LINE_BREAK, DiagnosticSink, Span
from engine.rules._yaml_syntax import TAG_HINT, explain_yaml_error, tag_message

ALIAS_NODE_BUDGET = 10_000
"""How many nodes the aliases of one file may add, all together, once expanded."""
MAX_DEPTH = 64
"""How deeply a file may nest mappings and sequences, aliases expanded (rule files need 5 or 6)."""

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


class _Alias:
    """Where the file wrote ``*name``: ruamel would hand back the anchored node itself."""

    def __init__(self, target: RuamelNode, name: str, start_mark: Any, end_mark: Any) -> None:
        self.target = target
        self.name = name
        self.start_mark = start_mark
        self.end_mark = end_mark


class _TooDeep(MarkedYAMLError):
    pass


class _BoundedComposer(Composer):
    """ruamel's composer, keeping each alias as written and refusing deep nesting as it reads."""

    def compose_node(self, parent: Any, index: Any) -> Any:
        if self.parser.check_event(AliasEvent):
            event = self.parser.peek_event()
            target = super().compose_node(parent, index)
            return _Alias(target, str(event.anchor), event.start_mark, event.end_mark)
        self._tp_depth = getattr(self, "_tp_depth", 0) + 1
        try:
            if self._tp_depth > MAX_DEPTH:
                raise _TooDeep(problem="too deeply nested", problem_mark=self.parser.peek_event().start_mark)
            return super().compose_node(parent, index)
        finally:
            self._tp_depth -= 1


class _RecursiveAlias(Exception):
    pass


class _Builder:
    def __init__(self, file: str, text: str, sink: DiagnosticSink) -> None:
        self.file = file
        self.text = text
        self.sink = sink
        self.line_offsets = [0] + [m.end() for m in LINE_BREAK.finditer(text)]
        self.added = 0  # nodes added by aliases so far
        self.refused = False  # one alias over the budget is reported; the rest are dropped quietly
        self._sizes: dict[int, tuple[int, int]] = {}

    def expanded(self, node: Any, path: frozenset[int] = frozenset()) -> tuple[int, int]:
        """(nodes, depth) of a composed node once every alias in it is expanded; memoised."""
        if isinstance(node, _Alias):
            return self.expanded(node.target, path)
        key = id(node)
        known = self._sizes.get(key)
        if known is not None:
            return known
        if key in path:
            raise _RecursiveAlias
        if len(path) > MAX_DEPTH:
            # Deeper than any accepted file: stop here (and keep Python's stack), it is refused anyway.
            return 1, MAX_DEPTH + 1
        inner = path | {key}
        children: list[Any] = []
        if isinstance(node, MappingNode):
            children = [part for pair in node.value for part in pair]
        elif isinstance(node, SequenceNode):
            children = list(node.value)
        size, depth = 1, 0
        for child in children:
            child_size, child_depth = self.expanded(child, inner)
            # Saturate: beyond the budget the exact figure does not matter, and it stays small.
            size = min(size + child_size, 10 * ALIAS_NODE_BUDGET)
            depth = max(depth, child_depth)
        self._sizes[key] = (size, depth + 1)
        return size, depth + 1

    def alias(self, alias: _Alias, key_span: Span | None, depth: int) -> Node:
        span = self.span(alias)
        if self.refused:
            return Node(None, span, key_span=key_span)
        try:
            size, alias_depth = self.expanded(alias.target)
        except _RecursiveAlias:
            self.refused = True
            self.sink.error(
                "TP105",
                f"alias *{alias.name} refers to the node that contains it (a recursive alias)",
                span,
                hint="an alias can only repeat a complete node defined before it",
            )
            return Node(None, span, key_span=key_span)
        if self.added + size > ALIAS_NODE_BUDGET or depth + alias_depth > MAX_DEPTH:
            self.refused = True
            what = (
                f"expands to {size:,}{'+' if size >= 10 * ALIAS_NODE_BUDGET else ''} nodes, which takes "
                f"the nodes added by aliases to {self.added + size:,}; a file's aliases may add at most "
                f"{ALIAS_NODE_BUDGET:,}"
                if self.added + size > ALIAS_NODE_BUDGET
                else f"would nest the file deeper than {MAX_DEPTH} levels"
            )
            self.sink.error(
                "TP105",
                f"alias *{alias.name} {what}",
                span,
                hint="repeat the entries, or move shared tables to a file listed in `include:`",
            )
            return Node(None, span, key_span=key_span)
        self.added += size
        # The copy is built from the anchored node; its nested aliases were counted in `size`.
        return self.build(alias.target, key_span, depth, counted=True)

    def position(self, index: int) -> tuple[int, int]:
        """0-based (line, column) of a character offset, lines as an editor counts them.

        ruamel's own line numbers also break on NEL/LS/PS; character offsets do not lie.
        """
        line = bisect_right(self.line_offsets, index) - 1
        return line, index - self.line_offsets[line]

    def span(self, node: RuamelNode | _Alias) -> Span:
        (sl, sc), (el, ec) = self.position(node.start_mark.index), self.position(node.end_mark.index)
        return Span(self.file, sl + 1, sc + 1, el + 1, ec + 1)

    def refuse_tag(self, node: RuamelNode, span: Span) -> None:
        """A ``!`` at the start of a value is a YAML tag: rule files have none, it was meant as "not"."""
        tag = str(getattr(node.tag, "value", None) or node.tag)
        if tag.startswith("!"):
            self.sink.error(
                "TP101",
                tag_message(tag),
                Span(self.file, span.line, span.column, span.line, span.column + len(tag)),
                hint=TAG_HINT,
            )

    def build(
        self, node: RuamelNode | _Alias, key_span: Span | None = None, depth: int = 0, counted: bool = False
    ) -> Node:
        if isinstance(node, _Alias):
            if counted:
                return self.build(node.target, key_span, depth, counted)
            return self.alias(node, key_span, depth)
        span = self.span(node)
        self.refuse_tag(node, span)
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
                mapping[key] = self.build(value_node, key_span_, depth + 1, counted)
            return Node(mapping, span, key_span=key_span)
        if isinstance(node, SequenceNode):
            items = [self.build(item, None, depth + 1, counted) for item in node.value]
            return Node(items, span, key_span=key_span)
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


_UTF16_32_MARKS = {
    b"\xff\xfe\x00\x00": "UTF-32",
    b"\x00\x00\xfe\xff": "UTF-32",
    b"\xff\xfe": "UTF-16",
    b"\xfe\xff": "UTF-16",
}


def decode_yaml(data: bytes, file: str, sink: DiagnosticSink, at: Span | None = None) -> str | None:
    """The text of a YAML file's bytes, or None with a diagnostic saying where it is not UTF-8.

    A UTF-8 byte order mark is dropped (YAML 1.2 allows one, and Windows editors write it);
    UTF-16 and UTF-32, a NUL byte or any byte sequence that is not UTF-8 is a TP132
    naming the line, column and byte offset, so the user can find it in an editor.
    """
    for mark, encoding in _UTF16_32_MARKS.items():
        if data.startswith(mark):
            sink.error(
                "TP132",
                f"'{file}' is {encoding} (it starts with a {encoding} byte order mark); "
                "tradepost reads YAML files as UTF-8",
                at or Span(file, 1, 1),
                hint="save the file as UTF-8",
            )
            return None
    data = data.removeprefix(b"\xef\xbb\xbf")
    nul = data.find(b"\x00")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        bad, what = exc.start, f"byte 0x{data[exc.start]:02x} is not valid UTF-8"
    else:
        if nul < 0:
            return text
        bad, what = nul, "a NUL byte (is it UTF-16?)"
    line = data.count(b"\n", 0, bad) + 1
    line_start = data.rfind(b"\n", 0, bad) + 1
    column = len(data[line_start:bad].decode("utf-8", "replace")) + 1
    if at is None:
        sink.add_source(file, data.decode("utf-8", "replace").replace("\x00", "\ufffd"))
    sink.error(
        "TP132",
        f"'{file}' is not UTF-8: {what} at line {line}, column {column} (byte offset {bad})",
        at or Span(file, line, column, line, column + 1),
        hint="save the file as UTF-8",
    )
    return None


def read_yaml(path: Path, sink: DiagnosticSink, at: Span | None = None) -> Node | None:
    """Read and parse a YAML file; unreadable or not UTF-8 is a diagnostic (``OSError`` is raised)."""
    text = decode_yaml(path.read_bytes(), str(path), sink, at)
    return None if text is None else parse_yaml(text, str(path), sink)


def parse_yaml(text: str, file: str, sink: DiagnosticSink) -> Node | None:
    """Parse YAML text into a located :class:`Node` tree; syntax errors go to ``sink``."""
    sink.add_source(file, text)
    yaml = YAML(typ="safe", pure=True)
    yaml.Composer = _BoundedComposer
    try:
        root = yaml.compose(io.StringIO(text))
    except _TooDeep as exc:
        line, column = _Builder(file, text, sink).position(min(exc.problem_mark.index, len(text)))
        sink.error(
            "TP101",
            f"YAML nested more than {MAX_DEPTH} levels deep",
            Span(file, line + 1, column + 1, line + 1, column + 2),
            hint="a rule file needs a handful of levels; check the indentation and brackets",
        )
        return None
    except MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        where = None
        if mark is not None:
            where = _Builder(file, text, sink).position(min(mark.index, len(text)))
        found = explain_yaml_error(text, str(exc.problem or exc.context or "invalid YAML"), where)
        end = found.column + found.width
        sink.error(
            "TP101", found.message, Span(file, found.line, found.column, found.line, end), hint=found.hint
        )
        return None
    except YAMLError as exc:
        sink.error("TP101", f"YAML syntax error: {exc}", Span(file, 1, 1))
        return None
    if root is None:
        return Node(None, Span(file, 1, 1))
    return _Builder(file, text, sink).build(root)
