"""The resolve-and-type pass over one expression's tree: every node a type, every mistake a diagnostic.

:class:`Checker` resolves every name against the :class:`Scope` of the field the expression
sits in (the canonical model, the file's tables, the function library) and gives every node of
the tree from :mod:`engine.rules._ast` a type; a mistake becomes a diagnostic at the exact span
(:class:`Source` maps tree offsets back to file:line:col) and the pass goes on, so one
expression with three mistakes gets three diagnostics. It also marks the nodes that read
nothing (constants, folded by :mod:`engine.rules._lowering`) and records table lookups of
catalog values (:class:`LookupSite`, for `tradepost check --catalog`). It never runs anything.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine._diagnostics import DiagnosticSink, Span, did_you_mean
from engine.model._listing import STANDARD_FIELDS
from engine.rules import _ast as A
from engine.rules._functions import FUNCTIONS, NOT_LITERAL, Function
from engine.rules._types import ANY, BOOL, NULL, NUMBER, STRING, Type, list_of, unify
from engine.rules._yaml import Node

_ORDERING = frozenset({"<", "<=", ">", ">="})


@dataclass(frozen=True)
class Scope:
    """What an expression may refer to: root names with their types, and the tables."""

    where: str
    names: Mapping[str, Type]
    tables: Mapping[str, Type] = field(default_factory=dict)
    unavailable: Mapping[str, str] = field(default_factory=dict)
    table_values: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    money_places: int = 2
    """The minor unit of the file's currency: how text() writes an amount of money."""


@dataclass
class Source:
    """Where an expression's text sits in a YAML file; ``offset`` skips a leading '='."""

    node: Node
    text: str
    offset: int = 0

    def span(self, start: int, end: int | None = None) -> Span:
        return self.node.span_of(start + self.offset, None if end is None else end + self.offset)


@dataclass(frozen=True)
class LookupSite:
    """A lookup of a catalog value in a table, for `tradepost check --catalog` coverage."""

    table: str
    path: tuple[str, ...]
    has_default: bool
    span: Span


def field_path(node: A.Expr) -> tuple[str, ...] | None:
    """``sku.specs.Cor`` as ("sku", "specs", "Cor"); None for anything but a plain path."""
    if isinstance(node, A.Name):
        return (node.name,)
    if isinstance(node, A.Field):
        base = field_path(node.target)
        return (*base, node.name) if base else None
    if isinstance(node, A.Index) and isinstance(node.key, A.Literal) and isinstance(node.key.value, str):
        base = field_path(node.target)
        return (*base, node.key.value) if base else None
    return None


def source_of(node: Node) -> Source:
    """The expression text of a YAML scalar, without the optional leading '='."""
    text = node.text
    stripped = text.lstrip()
    offset = len(text) - len(stripped)
    if stripped.startswith("="):
        offset += 1
    return Source(node, text[offset:], offset)


class Checker:
    """The resolve-and-type pass: every node gets a type, every mistake a diagnostic."""

    def __init__(self, scope: Scope, source: Source, sink: DiagnosticSink) -> None:
        self.scope = scope
        self.source = source
        self.sink = sink
        self.ok = True
        self.constant: set[int] = set()
        self.lookups: list[LookupSite] = []

    def error(self, code: str, message: str, node: A.Expr | tuple[int, int], hint: str | None = None) -> Type:
        start, end = (node.start, node.end) if isinstance(node, A.Expr) else node
        self.sink.error(code, message, self.source.span(start, end), hint)
        self.ok = False
        return ANY

    def check(self, node: A.Expr) -> Type:
        method = getattr(self, "_" + type(node).__name__)
        result: Type = method(node)
        node.type = result
        return result

    def is_constant(self, node: A.Expr) -> bool:
        return id(node) in self.constant

    def _Literal(self, node: A.Literal) -> Type:
        self.constant.add(id(node))
        value = node.value
        if value is None:
            return NULL
        if isinstance(value, bool):
            return BOOL
        if isinstance(value, Decimal):
            return NUMBER
        return STRING

    def _ListExpr(self, node: A.ListExpr) -> Type:
        item: Type | None = None
        for child in node.items:
            t = self.check(child)
            item = t if item is None else unify(item, t)
        if all(self.is_constant(c) for c in node.items):
            self.constant.add(id(node))
        return list_of(item or ANY)

    def _Name(self, node: A.Name) -> Type:
        if node.name in self.scope.names:
            return self.scope.names[node.name]
        if node.name in self.scope.tables:
            return self.scope.tables[node.name]
        if node.name in self.scope.unavailable:
            return self.error("TP308", self.scope.unavailable[node.name], node)
        if node.name in FUNCTIONS:
            return self.error(
                "TP309",
                f"'{node.name}' is a function; call it with arguments",
                node,
                hint=f"write {node.name}(...)",
            )
        guess = did_you_mean(node.name, [*self.scope.names, *self.scope.tables])
        known = ", ".join(sorted(self.scope.names))
        return self.error(
            "TP301",
            f"unknown name '{node.name}' {self.scope.where}",
            node,
            hint=f"did you mean '{guess}'?" if guess else f"available here: {known} and the tables",
        )

    def _Field(self, node: A.Field) -> Type:
        target = self.check(node.target)
        span = (node.name_start, node.end)
        if node.name.startswith("_"):
            # Whatever the target: no dunder or private attribute is ever reachable from a rule.
            return self.error("TP311", f"'{node.name}' is not a field a rule can read", span)
        if target.kind == "any":
            return ANY
        if target.kind == "map":
            return (target.item or ANY).or_null()
        if target.kind == "record" and target.record is not None:
            record = target.record
            if node.name.startswith("_"):
                return self.error("TP311", f"'{node.name}' is not a field of {record.name}", span)
            if node.name not in record.fields:
                guess = did_you_mean(node.name, record.fields)
                hint = (
                    _misspelt_listing_key(record.name, node.name, guess) or f"did you mean '{guess}'?"
                    if guess
                    else f"fields of {record.name}: {', '.join(record.fields)}"
                )
                return self.error("TP302", f"unknown field '{node.name}' on {record.name}", span, hint)
            return record.fields[node.name].or_null(target.nullable or record.fields[node.name].nullable)
        if target.kind == "table":
            return self._table_entry(node, span)
        return self.error("TP311", f"{target} has no fields (tried '.{node.name}')", span)

    def _table_entry(self, node: A.Field, span: tuple[int, int]) -> Type:
        """``fx.BRL_USD``: a lookup whose key is known now, so a missing entry is a compile error."""
        table = node.target.name if isinstance(node.target, A.Name) else None
        entries = self.scope.table_values.get(table) if table else None
        if entries is None:
            return self.error("TP311", f"use lookup({_describe(node.target)}, key) to read a table", span)
        if node.name not in entries:
            guess = did_you_mean(node.name, entries)
            return self.error(
                "TP307",
                f"table '{table}' has no entry '{node.name}'",
                span,
                hint=f"did you mean '{guess}'?" if guess else f"add '{node.name}:' to the table",
            )
        self.constant.add(id(node))
        value = entries[node.name]
        if value is None:
            return NULL
        return BOOL if isinstance(value, bool) else NUMBER if isinstance(value, Decimal) else STRING

    def _Index(self, node: A.Index) -> Type:
        target = self.check(node.target)
        key = self.check(node.key)
        if target.kind in ("map", "table"):
            if key.kind not in ("string", "number", "any", "null"):
                self.error("TP305", f"a key must be text, not {key}", node.key)
            return (target.item or ANY).or_null()
        if target.kind == "list":
            if key.kind not in ("number", "any"):
                self.error("TP305", f"a list index must be a number, not {key}", node.key)
            return (target.item or ANY).or_null()
        if target.kind == "any":
            return ANY
        return self.error("TP311", f"{target} cannot be indexed", node)

    def _Unary(self, node: A.Unary) -> Type:
        operand = self.check(node.operand)
        if self.is_constant(node.operand):
            self.constant.add(id(node))
        if node.op == "not":
            if operand.kind not in ("bool", "any", "null"):
                return self.error("TP306", f"'not' needs true or false, not {operand}", node.operand)
            return BOOL.or_null(operand.nullable)
        if operand.kind not in ("number", "any", "null"):
            return self.error("TP306", f"cannot negate {operand}", node.operand)
        return NUMBER.or_null(operand.nullable)

    def _Binary(self, node: A.Binary) -> Type:
        left = self.check(node.left)
        right = self.check(node.right)
        if self.is_constant(node.left) and self.is_constant(node.right):
            self.constant.add(id(node))
        op = node.op
        either_null = left.nullable or right.nullable
        if op in ("+", "-", "*", "/"):
            if op == "+" and left.kind == "string" and right.kind in ("string", "any", "null"):
                return STRING.or_null(either_null)
            for side, t in ((node.left, left), (node.right, right)):
                if t.kind not in ("number", "any", "null"):
                    hint = (
                        "join text with '+' between two texts, or use text(x)" if t.kind == "string" else None
                    )
                    return self.error("TP306", f"'{op}' needs numbers; this is {t}", side, hint)
            return NUMBER.or_null(either_null)
        if op in _ORDERING:
            loose = left.kind in ("any", "null") or right.kind in ("any", "null")
            if (loose or left.kind == right.kind) and left.kind in ("number", "string", "any", "null"):
                return BOOL.or_null(either_null)
            return self.error("TP306", f"cannot compare {left} with {right} using '{op}'", node)
        if op in ("==", "!="):
            comparable = {"number", "string", "bool"}
            if left.kind in comparable and right.kind in comparable and left.kind != right.kind:
                return self.error(
                    "TP306",
                    f"{left} and {right} are never equal",
                    node,
                    hint="compare values of the same type; text(x) or number(x) converts",
                )
            return BOOL
        if op in ("in", "not in"):
            if right.kind not in ("list", "table", "map", "string", "any", "null"):
                return self.error(
                    "TP306", f"'{op}' needs a list, a table or text on the right; this is {right}", node.right
                )
            return BOOL.or_null(right.nullable)
        if op in ("and", "or"):
            for side, t in ((node.left, left), (node.right, right)):
                if t.kind not in ("bool", "any", "null"):
                    return self.error("TP306", f"'{op}' needs true or false; this is {t}", side)
            return BOOL.or_null(either_null)
        if op == "??":
            return self._fallback(node, left, right)
        return self.error("TP306", f"unknown operator {op}", node)  # pragma: no cover - grammar prevents

    def _fallback(self, node: A.Binary, left: Type, right: Type) -> Type:
        """``a ?? b``: ``b`` stands in for a null ``a``, so both sides need one type, as if/else."""
        if _disagree(left, right):
            return self.error(
                "TP306",
                f"the fallback after '??' is {right} but the value before it is {left.or_null(False)}; "
                "both sides need one type",
                node.right,
                hint=_fallback_hint(left, node.right),
            )
        return unify(left.or_null(False), right) if right.kind != "null" else left

    def _IfElse(self, node: A.IfElse) -> Type:
        condition = self.check(node.condition)
        then = self.check(node.then)
        otherwise = self.check(node.otherwise)
        if all(self.is_constant(n) for n in (node.condition, node.then, node.otherwise)):
            self.constant.add(id(node))
        if condition.kind not in ("bool", "any", "null"):
            self.error(
                "TP306", f"the condition after 'if' must be true or false, not {condition}", node.condition
            )
        if _disagree(then, otherwise):
            return self.error(
                "TP306",
                f"'then' gives {then} but 'else' gives {otherwise}; both branches need one type",
                node,
            )
        return unify(then, otherwise)

    def _Call(self, node: A.Call) -> Type:
        if node.internal:  # from a translated template: text joining, jinja2 truthiness
            for arg in node.args:
                self.check(arg)
            return BOOL if node.function == "truthy" else STRING
        function = FUNCTIONS.get(node.function)
        name_span = (node.start if not node.piped else node.name_end - len(node.function), node.name_end)
        if function is None:
            for arg in node.args:
                self.check(arg)
            guess = did_you_mean(node.function, FUNCTIONS)
            return self.error(
                "TP303",
                f"unknown function '{node.function}'",
                name_span,
                hint=f"did you mean '{guess}'?" if guess else "see docs/rules.md for the function library",
            )
        if function.name == "lookup":
            self._order_lookup(node)
            self._record_lookup(node)
        types = [self.check(arg) for arg in node.args]
        required = sum(1 for p in function.params if not p.optional)
        most = None if function.variadic else len(function.params)
        count = len(node.args)
        if count < required or (most is not None and count > most):
            piped = " (the value before '|' is the first argument)" if node.piped else ""
            if most == required:
                expected = f"{required}"
            else:
                expected = f"{required} to {most}" if most else f"at least {required}"
            plural = "" if expected == "1" else "s"
            return self.error(
                "TP304",
                f"{function.name}() takes {expected} argument{plural}, got {count}{piped}",
                name_span if node.piped else node,
                hint=f"{function.name}: {function.doc}",
            )
        for position, (arg, t) in enumerate(zip(node.args, types, strict=True)):
            param = function.params[min(position, len(function.params) - 1)]
            if not param.type.accepts(t):
                self.error(
                    "TP305",
                    f"argument '{param.name}' of {function.name}() must be {param.type}, not {t}",
                    arg,
                    hint=f"{function.name}: {function.doc}",
                )
            if param.literal and not isinstance(arg, A.Literal):
                self.error(
                    "TP310", f"argument '{param.name}' of {function.name}() must be written as a literal", arg
                )
        if function.check is not None:
            literals: list[object] = [a.value if isinstance(a, A.Literal) else NOT_LITERAL for a in node.args]
            problem = function.check(literals)
            if problem:
                self.error("TP310", problem, self._culprit(function, node, literals))
        if function.name not in ("reject", "lookup") and all(self.is_constant(a) for a in node.args):
            self.constant.add(id(node))
        returns = function.returns(types) if callable(function.returns) else function.returns
        return returns

    def _record_lookup(self, node: A.Call) -> None:
        if (
            len(node.args) >= 2
            and isinstance(node.args[0], A.Name)
            and node.args[0].name in self.scope.tables
        ):
            path = field_path(node.args[1])
            if path is not None and path[0] in ("product", "sku"):
                span = self.source.span(node.start, node.end)
                self.lookups.append(LookupSite(node.args[0].name, path, len(node.args) > 2, span))

    def _culprit(self, function: Function, node: A.Call, literals: list[object]) -> A.Expr:
        """The literal argument a failed compile-time check is about, to underline it alone."""
        for i, value in enumerate(literals):
            if value is NOT_LITERAL:
                continue
            alone: list[object] = [NOT_LITERAL] * len(literals)
            alone[i] = value
            if function.check is not None and function.check(alone):
                return node.args[i]
        return node

    def _order_lookup(self, node: A.Call) -> None:
        """``lookup`` takes the table first; the pipe puts it second (``x | lookup(colors)``)."""
        args = node.args
        tables = self.scope.tables
        first_is_table = isinstance(args[0], A.Name) and args[0].name in tables if args else False
        if (
            len(args) >= 2
            and isinstance(args[1], A.Name)
            and not first_is_table
            and (args[1].name in tables or (node.piped and args[1].name not in self.scope.names))
        ):
            args[0], args[1] = args[1], args[0]
        elif node.piped and len(args) >= 2 and not first_is_table and _is_text(args[1]):
            args[0], args[1] = args[1], args[0]  # x | lookup("colors"): a quoted table name
        if args and isinstance(args[0], A.Name) and args[0].name not in tables:
            name = args[0].name
            if name not in self.scope.names:
                guess = did_you_mean(name, tables)
                self.error(
                    "TP307",
                    f"unknown table '{name}'",
                    args[0],
                    hint=f"did you mean '{guess}'?"
                    if guess
                    else "define it under 'tables:' or include a table file",
                )
                args[0] = A.Literal(args[0].start, args[0].end, None)
                args[0].type = ANY
        elif args and isinstance(args[0], A.Literal) and isinstance(args[0].value, str):
            rest = ", …" if len(args) > 2 or not node.piped else ""
            written = f"{'x | ' if node.piped else ''}lookup({args[0].value}{rest})"
            self.error(
                "TP307",
                f"write the table name without quotes: {written}",
                args[0],
                hint="drop the quotes: a table is named like a field, text in quotes is a key",
            )
            args[0] = A.Literal(args[0].start, args[0].end, None)


def _misspelt_listing_key(record: str, name: str, defined: str) -> str | None:
    """``listing.title`` read while the file defines ``titel:``: the definition is the typo, not the read."""
    if record != "listing" or name not in STANDARD_FIELDS or defined in STANDARD_FIELDS:
        return None
    return f"the listing defines '{defined}', not '{name}': rename '{defined}:' to '{name}:' under listing"


def _is_text(node: A.Expr) -> bool:
    return isinstance(node, A.Literal) and isinstance(node.value, str)


def _describe(node: A.Expr) -> str:
    if isinstance(node, A.Name):
        return node.name
    if isinstance(node, A.Field):
        return f"{_describe(node.target)}.{node.name}"
    return "..."


def _disagree(a: Type, b: Type) -> bool:
    """Whether two alternatives (if/else branches, the sides of ``??``) have different types."""
    return a.kind != b.kind and not ({a.kind, b.kind} & {"any", "null", "never"})


def _fallback_hint(left: Type, fallback: A.Expr) -> str:
    value = fallback.value if isinstance(fallback, A.Literal) else None
    if left.kind == "number" and isinstance(value, str):
        try:
            written = str(Decimal(value.replace(",", ".")))
        except ArithmeticError:
            return "give a number as the fallback, e.g. ?? 0"
        return f"write the number without quotes: ?? {written}"
    if left.kind == "string" and isinstance(value, Decimal):
        return f'write the fallback as text: ?? "{value}"'
    return f"give a fallback of the same type ({left.or_null(False)}), or convert with text(x) or number(x)"
