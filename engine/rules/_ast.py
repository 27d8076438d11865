"""The expression syntax tree, and the parse pass that builds it with lark.

Every node keeps its start and end offsets in the expression text; the YAML
layer maps them to file lines and columns, so a diagnostic can underline the
exact operand that is wrong.
"""

from __future__ import annotations

import ast as python_ast
from dataclasses import dataclass, field
from decimal import Decimal
from functools import cache
from importlib import resources
from typing import Any

from lark import Lark, Token, Transformer, Tree, v_args
from lark.exceptions import UnexpectedCharacters, UnexpectedEOF, UnexpectedInput, UnexpectedToken, VisitError

from engine.rules._limits import MAX_LITERAL_DIGITS
from engine.rules._stray_tokens import stray_token
from engine.rules._types import Type


@dataclass(eq=False)
class Expr:
    """Base of the syntax tree. ``type`` is filled in by the type-checking pass."""

    start: int
    end: int
    type: Type | None = field(default=None, init=False, repr=False)


@dataclass(eq=False)
class Literal(Expr):
    value: Any


@dataclass(eq=False)
class ListExpr(Expr):
    items: list[Expr]


@dataclass(eq=False)
class Name(Expr):
    name: str


@dataclass(eq=False)
class Field(Expr):
    target: Expr
    name: str
    name_start: int


@dataclass(eq=False)
class Index(Expr):
    target: Expr
    key: Expr


@dataclass(eq=False)
class Call(Expr):
    function: str
    args: list[Expr]
    name_end: int
    piped: bool = False
    internal: bool = False
    """Built by the compiler itself (template text joining), never by the parser."""


@dataclass(eq=False)
class Unary(Expr):
    op: str
    operand: Expr


@dataclass(eq=False)
class Binary(Expr):
    op: str
    left: Expr
    right: Expr


@dataclass(eq=False)
class IfElse(Expr):
    condition: Expr
    then: Expr
    otherwise: Expr


class SyntaxProblem(Exception):
    """A parse failure at ``offset`` of the expression text, already worded for a user."""

    def __init__(
        self, message: str, offset: int, end: int | None = None, hint: str | None = None, code: str = "TP201"
    ) -> None:
        super().__init__(message)
        self.message = message
        self.offset = offset
        self.end = end
        self.hint = hint
        self.code = code


def _digits_within_bounds(token: Token) -> str:
    """A number literal of at most ``MAX_LITERAL_DIGITS`` digits: a longer one is a mistake, or an attack."""
    text = str(token)
    digits = sum(ch.isdigit() for ch in text)
    if digits > MAX_LITERAL_DIGITS:
        start = token.start_pos or 0
        raise SyntaxProblem(
            f"number literal of {digits:,} digits; the limit is {MAX_LITERAL_DIGITS}",
            start,
            start + len(text),
            code="TP203",
        )
    return text


def _span(meta: Any) -> tuple[int, int]:
    return meta.start_pos, meta.end_pos


@v_args(meta=True)
class _ToAst(Transformer[Token, Expr]):
    """Turn lark's parse tree into :mod:`engine.rules._ast` nodes (the parse pass)."""

    def number(self, meta: Any, children: list[Token]) -> Expr:
        return Literal(*_span(meta), Decimal(_digits_within_bounds(children[0])))

    def percent(self, meta: Any, children: list[Token]) -> Expr:
        return Literal(*_span(meta), Decimal(_digits_within_bounds(children[0])[:-1]) / 100)

    def string(self, meta: Any, children: list[Token]) -> Expr:
        token = children[0]
        try:
            value = python_ast.literal_eval(str(token))
        except (ValueError, SyntaxError) as exc:
            raise SyntaxProblem(f"invalid string literal: {exc}", token.start_pos or 0) from None
        return Literal(*_span(meta), value)

    def true(self, meta: Any, children: list[Token]) -> Expr:
        return Literal(*_span(meta), True)

    def false(self, meta: Any, children: list[Token]) -> Expr:
        return Literal(*_span(meta), False)

    def null(self, meta: Any, children: list[Token]) -> Expr:
        return Literal(*_span(meta), None)

    def list_(self, meta: Any, children: list[Any]) -> Expr:
        items = children[0] if children and children[0] is not None else []
        return ListExpr(*_span(meta), items)

    def arguments(self, meta: Any, children: list[Expr]) -> list[Expr]:
        return list(children)

    def name(self, meta: Any, children: list[Token]) -> Expr:
        return Name(*_span(meta), str(children[0]))

    def field(self, meta: Any, children: list[Any]) -> Expr:
        target, token = children
        return Field(*_span(meta), target, str(token), token.start_pos)

    def index(self, meta: Any, children: list[Expr]) -> Expr:
        return Index(*_span(meta), children[0], children[1])

    def call(self, meta: Any, children: list[Any]) -> Expr:
        token, args = children
        return Call(*_span(meta), str(token), list(args or []), token.end_pos)

    def pipe_call(self, meta: Any, children: list[Any]) -> Expr:
        value, token, args = children
        return Call(*_span(meta), str(token), [value, *(args or [])], token.end_pos, piped=True)

    def pipe_name(self, meta: Any, children: list[Any]) -> Expr:
        value, token = children
        return Call(*_span(meta), str(token), [value], token.end_pos, piped=True)

    def negate(self, meta: Any, children: list[Expr]) -> Expr:
        operand = children[0]
        if isinstance(operand, Literal) and isinstance(operand.value, Decimal):
            return Literal(*_span(meta), -operand.value)
        return Unary(*_span(meta), "-", operand)

    def not_(self, meta: Any, children: list[Expr]) -> Expr:
        return Unary(*_span(meta), "not", children[0])

    def binary(self, meta: Any, children: list[Any]) -> Expr:
        left, op, right = children
        return Binary(*_span(meta), str(op), left, right)

    def compare(self, meta: Any, children: list[Any]) -> Expr:
        return self.binary(meta, children)

    def in_(self, meta: Any, children: list[Expr]) -> Expr:
        return Binary(*_span(meta), "in", children[0], children[1])

    def not_in(self, meta: Any, children: list[Expr]) -> Expr:
        return Binary(*_span(meta), "not in", children[0], children[1])

    def and_(self, meta: Any, children: list[Expr]) -> Expr:
        return Binary(*_span(meta), "and", children[0], children[1])

    def or_(self, meta: Any, children: list[Expr]) -> Expr:
        return Binary(*_span(meta), "or", children[0], children[1])

    def coalesce(self, meta: Any, children: list[Expr]) -> Expr:
        return Binary(*_span(meta), "??", children[0], children[1])

    def ifelse(self, meta: Any, children: list[Expr]) -> Expr:
        return IfElse(*_span(meta), children[0], children[1], children[2])


@cache
def _parser() -> Lark:
    grammar = resources.files("engine.rules").joinpath("expression.lark").read_text(encoding="utf-8")
    return Lark(grammar, parser="lalr", propagate_positions=True, maybe_placeholders=True)


_TOKEN_WORDS = {
    "RPAR": "')'",
    "LPAR": "'('",
    "RSQB": "']'",
    "LSQB": "'['",
    "COMMA": "','",
    "DOT": "'.'",
    "NAME": "a name",
    "NUMBER": "a number",
    "PERCENT": "a percentage",
    "STRING": "a string",
    "COMPARE": "a comparison",
    "ADD": "'+' or '-'",
    "MUL": "'*' or '/'",
    "THEN": "'then'",
    "ELSE": "'else'",
    "IF": "'if'",
    "MINUS": "'-'",
    "VBAR": "'|'",
    "__ANON_0": "'??'",
    "$END": "the end",
}


def _expected(expected: set[str]) -> str:
    words = sorted({_TOKEN_WORDS.get(name, name.lower()) for name in expected})
    if len(words) > 6:
        return "an operand or an operator"
    return ", ".join(words[:-1]) + (" or " if len(words) > 1 else "") + words[-1] if words else "more input"


def parse_expression(text: str) -> Expr:
    """Parse expression text, raising :class:`SyntaxProblem` with a user-worded message."""
    if not text.strip():
        raise SyntaxProblem("empty expression", 0, hint="write an expression, e.g. price.selling * 1.2")
    try:
        tree = _parser().parse(text)
        result = (
            _ToAst().transform(tree) if isinstance(tree, Tree) else _ToAst().transform(Tree("start", [tree]))
        )
        if depth(result) > MAX_DEPTH:
            raise SyntaxProblem(
                f"expression nested too deeply (more than {MAX_DEPTH} levels)",
                0,
                hint="split it with intermediate listing fields or tables",
            )
        return result
    except RecursionError:
        raise SyntaxProblem(f"expression nested too deeply (more than {MAX_DEPTH} levels)", 0) from None
    except UnexpectedCharacters as exc:
        _raise_stray_token(text)
        pos = exc.pos_in_stream or 0
        char = text[pos] if pos < len(text) else ""
        hint = None
        if char in "\"'":
            return _raise(f"string starting here is never closed; add the closing {char}", pos)
        if char == "=" and text[pos : pos + 2] != "==":
            hint = "comparison is '==' ('=' only starts an expression at the beginning of a value)"
        elif char in "&":
            hint = "use 'and' / 'or' / 'not'"
        elif char == "%":
            hint = "'%' only follows a number, as in 15%; there is no modulo operator"
        return _raise(f"unexpected character {char!r}", pos, hint)
    except UnexpectedEOF as exc:
        _raise_stray_token(text)
        return _raise_at_end(text, set(exc.expected))
    except UnexpectedToken as exc:
        _raise_stray_token(text)
        token = exc.token
        if token.type == "$END":
            return _raise_at_end(text, set(exc.accepts or exc.expected))
        pos = token.start_pos if token.start_pos is not None else 0
        return _raise(
            f"unexpected {token.value!r}; expected {_expected(exc.accepts or exc.expected)}",
            pos,
            None,
            (token.end_pos or pos + 1),
        )
    except UnexpectedInput as exc:  # pragma: no cover - other lark input errors
        return _raise(f"syntax error: {exc}", getattr(exc, "pos_in_stream", 0) or 0)
    except VisitError as exc:
        if isinstance(exc.orig_exc, SyntaxProblem):
            raise exc.orig_exc from None
        if isinstance(exc.orig_exc, RecursionError):
            raise SyntaxProblem(f"expression nested too deeply (more than {MAX_DEPTH} levels)", 0) from None
        raise


def _raise_stray_token(text: str) -> None:
    """Text that failed to parse: name an operator from another language with its fix, if there is one."""
    if (stray := stray_token(text)) is not None:
        raise SyntaxProblem(stray.message, stray.offset, stray.end, stray.hint)


def _unclosed_bracket(text: str) -> tuple[int, str] | None:
    """The offset of the last opening bracket that is never closed (strings skipped), if any."""
    stack: list[tuple[int, str]] = []
    quote = ""
    i = 0
    while i < len(text):
        ch = text[i]
        if quote:
            if ch == "\\":
                i += 1
            elif ch == quote:
                quote = ""
        elif ch in "\"'":
            quote = ch
        elif ch in "([":
            stack.append((i, ch))
        elif ch in ")]" and stack:
            stack.pop()
        i += 1
    return stack[-1] if stack else None


def _raise_at_end(text: str, expected: set[str]) -> Expr:
    """The input stopped early: blame an unclosed bracket, or the operator left dangling."""
    unclosed = _unclosed_bracket(text)
    if unclosed is not None:
        offset, bracket = unclosed
        closing = ")" if bracket == "(" else "]"
        return _raise(f"'{bracket}' is never closed", offset, f"add '{closing}' where the group ends")
    stripped = text.rstrip()
    last = len(stripped) - 1
    while last > 0 and not stripped[last - 1].isspace() and stripped[last - 1] in "+-*/<>=!?|":
        last -= 1
    token = stripped[last:]
    if token and not token[-1].isalnum() and token[-1] not in ")]\"'":
        return _raise(f"'{token}' needs an operand after it", last, None, len(stripped))
    return _raise(f"expression ends too early; expected {_expected(expected)}", max(last, 0))


MAX_DEPTH = 48
"""Deeper than any readable rule; also keeps Python's own compiler and recursion limits far away."""


def depth(node: Expr) -> int:
    """How deeply the tree nests (iteratively, so a pathological tree cannot overflow the stack)."""
    deepest = 0
    stack: list[tuple[Expr, int]] = [(node, 1)]
    while stack:
        current, level = stack.pop()
        deepest = max(deepest, level)
        for child in vars(current).values():
            if isinstance(child, Expr):
                stack.append((child, level + 1))
            elif isinstance(child, list):
                stack.extend((c, level + 1) for c in child if isinstance(c, Expr))
    return deepest


def _raise(message: str, offset: int, hint: str | None = None, end: int | None = None) -> Expr:
    raise SyntaxProblem(message, offset, end, hint)
