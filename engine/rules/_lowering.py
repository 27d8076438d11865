"""The lowering pass: a checked expression tree to one Python function, constants folded.

The tree :class:`~engine.rules._typecheck.Checker` typed becomes Python source, compiled once
with :func:`compile`; constant sub-expressions are folded, so ``price.selling * (1 + 15% + 20%)``
runs as ``price.selling * 1.35``. Running a rule over a million SKUs therefore never parses or
walks a tree.

Folding runs under the bounds of :mod:`engine.rules._limits`: a constant whose value would exceed
one (seven nested ``replace`` of literals, a number of more than ``MAX_DIGITS`` digits) is
a diagnostic at its span (TP313), never slow. Text joined with ``+`` where the checker cannot
prove both sides are numbers goes through a helper that refuses a result above ``MAX_TEXT``;
a decimal overflow or a type mismatch in one SKU's values is an :class:`EvaluationError` at
the expression's span, never a crash (the ``try`` costs nothing when nothing is raised).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from decimal import Decimal
from typing import Any, cast

from engine._diagnostics import EvaluationError, Span
from engine.rules import _ast as A
from engine.rules._functions import FUNCTIONS
from engine.rules._limits import MAX_DIGITS, LimitExceeded, text_fits, whole_digits
from engine.rules._runtime import RUNTIME, Context
from engine.rules._typecheck import Checker
from engine.rules._types import ANY

_ARITHMETIC = {"+": "_add", "-": "_sub", "*": "_mul"}
_ORDERING = {"<": "_lt", "<=": "_le", ">": "_gt", ">=": "_ge"}


class Lowering:
    """The lowering pass: a checked tree to Python source, with constants folded."""

    def __init__(self, checker: Checker, tables: Mapping[str, Any]) -> None:
        self.checker = checker
        self.namespace: dict[str, Any] = {
            **RUNTIME,
            "_arith_checked": _arith_checked,
            "_concat_bounded": _concat_bounded,
        }
        self.tables = tables
        self._counter = 0

    def bind(self, value: Any, prefix: str = "_c") -> str:
        self._counter += 1
        name = f"{prefix}{self._counter}"
        self.namespace[name] = value
        return name

    def span(self, node: A.Expr) -> str:
        return self.bind(self.checker.source.span(node.start, node.end), "_s")

    def lower(self, node: A.Expr) -> str:
        if self.checker.is_constant(node) and not isinstance(node, A.Literal):
            code = getattr(self, "_" + type(node).__name__)(node)
            try:
                value = eval(compile(code, "<constant>", "eval"), self.namespace, {})
            except LimitExceeded as exc:
                self.checker.error("TP313", f"this constant exceeds a limit: {exc.message}", node)
                return "None"
            except Exception:
                return str(code)
            if isinstance(value, Decimal) and whole_digits(value) > MAX_DIGITS:
                self.checker.error(
                    "TP313",
                    f"this constant has {whole_digits(value):,} digits before the point; "
                    f"the limit is {MAX_DIGITS}",
                    node,
                )
                return "None"
            return self._constant(value)
        return str(getattr(self, "_" + type(node).__name__)(node))

    def _constant(self, value: Any) -> str:
        if value is None or isinstance(value, bool | str):
            return repr(value)
        if isinstance(value, list):
            return self.bind(tuple(value))
        return self.bind(value)

    def _Literal(self, node: A.Literal) -> str:
        return self._constant(node.value)

    def _ListExpr(self, node: A.ListExpr) -> str:
        return "[" + ", ".join(self.lower(i) for i in node.items) + "]"

    def _Name(self, node: A.Name) -> str:
        if node.name in self.checker.scope.names:
            return f"ctx.{node.name}"
        return self.bind(self.tables.get(node.name, {}), "_t")

    def _Field(self, node: A.Field) -> str:
        t = node.target.type or ANY
        if t.kind == "table" and isinstance(node.target, A.Name):
            return self._constant(self.tables.get(node.target.name, {}).get(node.name))
        target = self.lower(node.target)
        if t.kind == "record" and t.record is not None and t.record.model is not None and not t.nullable:
            return f"{target}.{node.name}"
        if t.kind in ("map", "record") and not t.nullable:
            return f"{target}.get({node.name!r})"
        return f"_field({target}, {node.name!r})"

    def _Index(self, node: A.Index) -> str:
        return f"_index({self.lower(node.target)}, {self.lower(node.key)})"

    def _Unary(self, node: A.Unary) -> str:
        operand = self.lower(node.operand)
        if node.op == "not":
            return f"(not {operand})"
        return f"_neg({operand})" if (node.operand.type or ANY).nullable else f"(-{operand})"

    def _Binary(self, node: A.Binary) -> str:
        left, right = self.lower(node.left), self.lower(node.right)
        nullable = (node.left.type or ANY).nullable or (node.right.type or ANY).nullable
        op = node.op
        if op == "/":
            return f"_div({left}, {right}, {self.span(node.right)})"
        numbers = all((side.type or ANY).kind in ("number", "null") for side in (node.left, node.right))
        if op in _ARITHMETIC and not numbers:
            # Text (or values the checker could not type): sizes checked, types refused clearly.
            return f"_arith_checked({op!r}, {left}, {right}, {self.span(node)})"
        if op in _ARITHMETIC:
            return f"{_ARITHMETIC[op]}({left}, {right})" if nullable else f"({left} {op} {right})"
        if op in _ORDERING:
            return f"{_ORDERING[op]}({left}, {right})" if nullable else f"({left} {op} {right})"
        if op in ("==", "!="):
            return f"({left} {op} {right})"
        if op == "in":
            return f"_in({right}, {left})"
        if op == "not in":
            return f"(not _in({right}, {left}))"
        if op in ("and", "or"):
            if all(_proven_bool(side) for side in (node.left, node.right)):
                return f"({left} {op} {right})"  # already true or false: no bool() call per SKU
            return f"(bool({left}) {op} bool({right}))"
        temp = f"_v{id(node)}"
        return f"({temp} if ({temp} := {left}) is not None else {right})"

    def _IfElse(self, node: A.IfElse) -> str:
        return f"({self.lower(node.then)} if {self.lower(node.condition)} else {self.lower(node.otherwise)})"

    def _Call(self, node: A.Call) -> str:
        if node.internal:
            helper = "bool" if node.function == "truthy" else "_concat_bounded"
            return f"{helper}({', '.join(self.lower(a) for a in node.args)})"
        function = FUNCTIONS[node.function]
        untyped = any((a.type or ANY).kind == "any" for a in node.args)
        if function.fixed is not None and not untyped and (fixed := _fixed(function.fixed, node.args)):
            return f"{self.bind(fixed, f'_f_{function.name}_')}({self.lower(node.args[0])})"
        impl = self.bind(function.guarded if untyped else function.impl, f"_f_{function.name}_")
        args = [self.lower(a) for a in node.args]
        extra = []
        if function.needs_span or untyped:
            extra.append(f"at={self.span(node)}")
        if function.name == "text" and node.args and (node.args[0].type or ANY).money:
            extra.append(f"places={self.checker.scope.money_places}")
        if function.name == "lookup" and node.args and isinstance(node.args[0], A.Name):
            extra.append(f"table_name={node.args[0].name!r}")
        return self._in_place(node, args, lambda given: f"{impl}({', '.join(given + extra)})")

    def _in_place(self, node: A.Call, args: list[str], call: Callable[[list[str]], str]) -> str:
        """The call, with its usual case written out in front where that case needs no call: ``len``
        of text or a list the checker proved so, and ``lookup`` of text found in a table the rule
        names (its default a literal, so leaving it unevaluated changes nothing). The same values."""
        first = node.args[0] if node.args else None
        temp = f"_v{id(node)}"
        if node.function == "len" and first is not None and len(args) == 1:
            kind = first.type or ANY
            if kind.kind in ("string", "list") and not kind.nullable:
                return f"len({args[0]})"
            if kind.kind in ("string", "list"):
                return f"(None if ({temp} := {args[0]}) is None else len({temp}))"
        if (
            node.function == "lookup"
            and isinstance(first, A.Name)
            and first.name not in self.checker.scope.names
            and len(args) in (2, 3)
            and all(isinstance(arg, A.Literal) for arg in node.args[2:])
        ):
            table, slow = args[0], call([args[0], temp, *args[2:]])
            found = f"({temp} := {args[1]}).__class__ is str and {temp} in {table}"
            return f"({table}[{temp}] if {found} else {slow})"
        return call(args)


def _fixed(
    fixed: Callable[..., Callable[[Any], Any] | None], args: list[A.Expr]
) -> Callable[[Any], Any] | None:
    """A call's function of its first argument alone, when every other one is a literal."""
    if len(args) < 2 or not all(isinstance(arg, A.Literal) for arg in args[1:]):
        return None
    return fixed(*(cast(A.Literal, arg).value for arg in args[1:]))


def _proven_bool(node: A.Expr) -> bool:
    """Whether the checker proved ``node`` is true or false, never null (a comparison, a flag)."""
    t = node.type or ANY
    return t.kind == "bool" and not t.nullable


@dataclass(frozen=True)
class Lowered:
    """One expression's Python source, the values its names stand for (``ctx`` aside), and its span:
    what :func:`function_of` compiles, kept for code that runs it in place of a call."""

    code: str
    namespace: Mapping[str, Any]
    span: Span


def function_of(code: str, span: Span, lowering: Lowering) -> Callable[[Context], Any]:
    """``def`` rather than ``lambda``: a try block costs nothing until something is raised."""
    at = lowering.bind(span, "_s")
    source = (
        "def _rule(ctx):\n"
        "    try:\n"
        f"        return {code}\n"
        "    except (ArithmeticError, TypeError, RecursionError) as exc:\n"
        f"        raise _failed(exc, {at}) from None\n"
    )
    namespace = lowering.namespace
    namespace["_failed"] = failed
    exec(compile(source, f"<{span}>", "exec"), namespace)
    function: Callable[[Context], Any] = namespace.pop("_rule")
    return function


def failed(exc: BaseException, at: Span) -> EvaluationError:
    """A Python error inside one SKU's evaluation, worded for the rule author."""
    if isinstance(exc, RecursionError):
        return LimitExceeded("the expression nests too deeply to run", at)
    if isinstance(exc, ArithmeticError):
        return LimitExceeded(f"a number went out of range ({type(exc).__name__})", at)
    return EvaluationError(f"values of the wrong type: {exc}", at)


def _arith_checked(op: str, left: Any, right: Any, at: Span) -> Any:
    """``+ - *`` where the checker could not prove both sides numbers: text joins are bounded."""
    if left is None or right is None:
        return None
    if isinstance(left, str) or isinstance(right, str):
        if op == "+" and isinstance(left, str) and isinstance(right, str):
            text_fits(len(left) + len(right), "'+' on text", at)
            return left + right
        raise EvaluationError(f"'{op}' needs numbers (or '+' two texts), not {left!r} and {right!r}", at)
    if isinstance(left, bool | list | dict) or isinstance(right, bool | list | dict):
        raise EvaluationError(
            f"'{op}' needs numbers, not {type(left).__name__} and {type(right).__name__}", at
        )
    if op == "+":
        return left + right
    return left - right if op == "-" else left * right


def _concat_bounded(*parts: Any) -> str:
    """Template output through the expression path: the size is known before it is joined."""
    texts = ["" if part is None else part if isinstance(part, str) else str(part) for part in parts]
    size = sum(map(len, texts))
    if size > _UNCHARGED:
        text_fits(size, "the template's text")
    return "".join(texts)


_UNCHARGED = 4096
"""A title-sized output is not worth a budget charge on the hot path; a field has no loop."""
