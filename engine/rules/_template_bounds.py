"""The bounds of a template: what it may reach, how deep it may nest, how much it may build.

A template is compiled once and rendered once per SKU; these pieces keep both bounded
(see :mod:`engine.rules._limits`):

* before jinja2's recursive parser runs, :func:`within_bounds` reads the tokens: more than
  ``MAX_TEMPLATE_DEPTH`` nested brackets (TP405) or a number literal of more than
  ``MAX_LITERAL_DIGITS`` digits (TP203) is refused at its position;
* :func:`constant_problems` works out the constant parts under the run-time bounds, so that
  ``tradepost check`` reports ``{{ 'a' * 10**9 }}`` (TP313) instead of computing it;
* :class:`BoundedTree` makes every ``{% for %}`` iterate through :func:`counted` (a step of
  the SKU's budget per iteration) and every ``~`` join through :func:`bounded_concat`;
* :func:`check_binop` is the sandbox's hook for ``*``, ``**``, ``+`` and ``%``: the size of
  the result is computed, and refused past a bound, before the result is built.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from decimal import Decimal
from typing import Any

from jinja2 import TemplateSyntaxError, nodes
from jinja2.sandbox import SandboxedEnvironment
from jinja2.visitor import NodeTransformer

from engine._diagnostics import DiagnosticSink, EvaluationError
from engine.rules._functions import FUNCTIONS
from engine.rules._limits import (
    MAX_DIGITS,
    MAX_LITERAL_DIGITS,
    MAX_TEMPLATE_DEPTH,
    MAX_TEXT,
    LimitExceeded,
    charge,
    digits_fit,
    list_fits,
    step,
    text_fits,
    whole_digits,
)
from engine.rules._typecheck import Source

JINJA_FILTERS_KEPT = ("capitalize", "count", "d", "default", "first", "join", "last", "length", "select")
"""jinja2's own filters a template may use besides the rule-language functions; all are bounded."""
REFUSED_STATEMENTS = (
    nodes.Macro,
    nodes.CallBlock,
    nodes.Include,
    nodes.Import,
    nodes.FromImport,
    nodes.Extends,
    nodes.Block,
)
LOOP_FILTER = "_tradepost_loop"
CONCAT_FILTER = "_tradepost_concat"


class BoundedTree(NodeTransformer):
    """Loops iterate through the step counter; ``~`` joins through the bounded concat."""

    def visit_For(self, node: nodes.For) -> nodes.Node:
        self.generic_visit(node)
        node.iter = nodes.Filter(node.iter, LOOP_FILTER, [], [], None, None, lineno=node.lineno)
        return node

    def visit_Concat(self, node: nodes.Concat) -> nodes.Node:
        self.generic_visit(node)
        parts = nodes.List(node.nodes, lineno=node.lineno)
        return nodes.Filter(parts, CONCAT_FILTER, [], [], None, None, lineno=node.lineno)


def tilde(parts: Iterable[Any]) -> str:
    return bounded_concat(str(part) for part in parts)


def bounded_concat(chunks: Iterable[str]) -> str:
    """jinja2's ``concat`` for every output and captured block: refuses past ``MAX_TEXT``."""
    parts: list[str] = []
    size = 0
    for chunk in chunks:
        size += len(chunk)
        if size > MAX_TEXT:
            raise LimitExceeded(f"the template's text would be over {MAX_TEXT:,} characters")
        charge(len(chunk))
        parts.append(chunk)
    return "".join(parts)


def counted(iterable: Iterable[Any]) -> Iterator[Any]:
    """Every ``{% for %}`` iterates through this: each iteration is a step of the SKU's budget."""
    for item in iterable:
        step()
        yield item


def join(value: Iterable[Any], separator: str = "") -> str:
    """jinja2's ``join``, with the size of the result known before it is built."""
    items = ["" if item is None else item if isinstance(item, str) else str(item) for item in value]
    text_fits(sum(map(len, items)) + len(separator) * max(len(items) - 1, 0), "join")
    return separator.join(items)


def _number(value: Any) -> bool:
    return isinstance(value, int | Decimal | float)


def check_binop(operator: str, left: Any, right: Any) -> None:
    """Refuse ``*``, ``**``, ``+`` whose result would exceed a bound, before computing it."""
    if operator == "*":
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                size = len(sequence) * max(count, 0)
                if isinstance(sequence, str):
                    text_fits(size, "'*' on text")
                else:
                    list_fits(size, "'*' on a list")
                return
        if isinstance(left, int) and isinstance(right, int):
            digits_fit(whole_digits(left) + whole_digits(right), "'*'")
    elif operator == "+":
        if isinstance(left, str) and isinstance(right, str):
            text_fits(len(left) + len(right), "'+' on text")
        elif isinstance(left, list | tuple) and isinstance(right, list | tuple):
            list_fits(len(left) + len(right), "'+' on lists")
    elif operator == "**" and _number(left) and _number(right) and abs(left) not in (0, 1):
        if abs(right) > 4 * MAX_DIGITS:
            raise LimitExceeded(f"the exponent {right} is too large; the limit is {4 * MAX_DIGITS}")
        if isinstance(left, int) and isinstance(right, int) and right > 0:
            digits_fit(whole_digits(left) * right, "'**'")
    elif operator == "%" and isinstance(left, str):
        raise EvaluationError("'%' formatting of text is not available in templates; join text with ~")


def within_bounds(env: SandboxedEnvironment, source: Source, sink: DiagnosticSink) -> bool:
    """Bracket nesting and number literals, from the tokens, before jinja2's recursive parser runs."""
    text = source.text
    depth = 0
    offset = 0
    try:
        for _, kind, value in env.lex(text):
            found = text.find(value, offset)
            if found >= 0:
                offset = found + len(value)
            if kind == "operator" and value in "([{":
                depth += 1
                if depth > MAX_TEMPLATE_DEPTH:
                    sink.error(
                        "TP405",
                        f"template nested too deeply (more than {MAX_TEMPLATE_DEPTH} levels of brackets)",
                        source.span(found, found + 1),
                        hint="split it into several listing fields, or compute parts in = expressions",
                    )
                    return False
            elif kind == "operator" and value in ")]}":
                depth = max(depth - 1, 0)
            elif kind in ("integer", "float"):
                digits = sum(ch.isdigit() for ch in value)
                if digits > MAX_LITERAL_DIGITS:
                    sink.error(
                        "TP203",
                        f"number literal of {digits:,} digits; the limit is {MAX_LITERAL_DIGITS}",
                        source.span(found, found + len(value)),
                    )
                    return False
    except TemplateSyntaxError:
        return True  # the parser reports it, with its position
    return True


def depth(tree: nodes.Node) -> int:
    """How deeply the syntax tree nests, iteratively: filter chains and unary operators nest too."""
    deepest = 0
    stack: list[tuple[nodes.Node, int]] = [(tree, 1)]
    while stack:
        node, level = stack.pop()
        deepest = max(deepest, level)
        stack.extend((child, level + 1) for child in node.iter_child_nodes())
    return deepest


class _NotConstant(Exception):
    """The node reads something only a SKU has."""


_BINOPS: dict[type[nodes.BinExpr], str] = {
    nodes.Add: "+",
    nodes.Sub: "-",
    nodes.Mul: "*",
    nodes.Div: "/",
    nodes.FloorDiv: "//",
    nodes.Pow: "**",
    nodes.Mod: "%",
}


def constant_problems(tree: nodes.Node, env: SandboxedEnvironment) -> list[tuple[nodes.Node, str, str]]:
    """Constant parts of a template worked out under the run-time bounds: ``(node, needle, message)``.

    jinja2 does not fold intercepted operators, so ``{{ 'a' * 10**9 }}`` costs nothing to
    compile; here it is computed under the same bounds as at run time, and a constant that
    exceeds one becomes a diagnostic (TP313) at its line, not the same failure on every SKU.
    ``needle`` is the text to find on that line for the column (the operator, the filter).
    """
    return _Constants(env).problems(tree)


class _Constants:
    def __init__(self, env: SandboxedEnvironment) -> None:
        self.env = env

    def problems(self, tree: nodes.Node) -> list[tuple[nodes.Node, str, str]]:
        found: list[tuple[nodes.Node, str, str]] = []
        stack: list[nodes.Node] = [tree]
        while stack:
            node = stack.pop()
            if isinstance(node, nodes.Expr) and not isinstance(node, nodes.Const | nodes.TemplateData):
                try:
                    self.value(node)
                    continue
                except _NotConstant:
                    pass
                except LimitExceeded as exc:
                    operator = _BINOPS.get(type(node)) if isinstance(node, nodes.BinExpr) else None
                    needle = operator or getattr(node, "name", None) or "{{"
                    found.append((node, str(needle), f"this constant exceeds a limit: {exc.message}"))
                    continue
            stack.extend(node.iter_child_nodes())
        return found

    def value(self, node: nodes.Node) -> Any:
        if isinstance(node, nodes.Const):
            return node.value
        if isinstance(node, nodes.List | nodes.Tuple):
            return [self.value(item) for item in node.items]
        if isinstance(node, nodes.Neg):
            return -self.value(node.node)
        if isinstance(node, nodes.BinExpr) and type(node) in _BINOPS:
            left, right = self.value(node.left), self.value(node.right)
            try:
                operator = _BINOPS[type(node)]
                check_binop(operator, left, right)  # what the sandbox's call_binop runs first
                return self.env.binop_table[operator](left, right)
            except LimitExceeded:
                raise
            except Exception:
                raise _NotConstant from None
        if isinstance(node, nodes.Concat):
            parts = [self.value(part) for part in node.nodes]
            return bounded_concat("" if p is None else str(p) for p in parts)
        if isinstance(node, nodes.Filter) and node.node is not None and node.name in FUNCTIONS:
            if node.kwargs or node.dyn_args or node.dyn_kwargs or node.name in ("lookup", "reject"):
                raise _NotConstant
            args = [self.value(node.node), *(self.value(arg) for arg in node.args)]
            try:
                return self.env.filters[node.name](*args)
            except LimitExceeded:
                raise
            except Exception:
                raise _NotConstant from None
        raise _NotConstant
