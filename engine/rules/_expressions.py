"""One expression compiled: parsed, resolved and type-checked, then lowered to a Python callable.

The passes, each a function of its own and testable alone: :func:`parse` (the lark grammar of
:mod:`engine.rules._ast`), :func:`check` (:mod:`engine.rules._typecheck`: names resolved, every
node typed, the result held to the type its field needs) and :func:`lower`
(:mod:`engine.rules._lowering`: Python source with constants folded, compiled once).
:func:`compile_expression` runs them in that order and stops at the first that reports an
error; what it returns is a :class:`CompiledExpression`, ``fn(ctx)`` per SKU.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from engine._diagnostics import DiagnosticSink, Span
from engine.rules import _ast as A
from engine.rules._lowering import Lowered, Lowering, function_of
from engine.rules._runtime import Context
from engine.rules._typecheck import Checker, LookupSite, Scope, Source
from engine.rules._types import ANY, NEVER, Type


@dataclass
class CompiledExpression:
    """An expression ready to run: ``fn(ctx)`` returns its value for one SKU."""

    source: str
    span: Span
    type: Type
    fn: Callable[[Context], Any]
    constant: bool = False
    lookups: tuple[LookupSite, ...] = ()
    lowered: Lowered | None = field(default=None, repr=False, compare=False)
    """The Python source ``fn`` runs, and the values its names stand for: a rule file's steps
    written out as one function (``engine.sync._unrolled``) run it in place, without a call."""

    def __call__(self, ctx: Context) -> Any:
        return self.fn(ctx)


def parse(source: Source, sink: DiagnosticSink) -> A.Expr | None:
    """The parse pass: the tree of ``source``'s text, or None with its syntax error in ``sink``."""
    try:
        return A.parse_expression(source.text)
    except A.SyntaxProblem as problem:
        if problem.message == "empty expression":
            sink.error("TP202", problem.message, source.node.span, problem.hint)
        else:
            sink.error(problem.code, problem.message, source.span(problem.offset, problem.end), problem.hint)
        return None


def check(
    tree: A.Expr,
    scope: Scope,
    source: Source,
    sink: DiagnosticSink,
    expect: Type | None = None,
    what: str = "this field",
) -> Checker | None:
    """The resolve-and-type pass: every node of ``tree`` typed, and the whole held to ``expect``.

    The checker returned knows which nodes are constant and what lookups were seen; None when
    a mistake was reported to ``sink``.
    """
    checker = Checker(scope, source, sink)
    result = checker.check(tree)
    if expect is not None and checker.ok and not expect.accepts(result):
        hint = 'write a condition, e.g. product.brand != ""' if expect.kind == "bool" else None
        sink.error(
            "TP312",
            f"{what} must be {expect}, but this expression gives {result}",
            source.span(tree.start, tree.end),
            hint,
        )
        return None
    return checker if checker.ok else None


def lower(
    tree: A.Expr, checker: Checker, tables: Mapping[str, Any]
) -> tuple[Callable[[Context], Any], Lowered] | None:
    """The lowering pass: the checked ``tree`` as one Python function, and its source; None when
    folding a constant broke a limit (reported through the checker)."""
    lowering = Lowering(checker, tables)
    code = lowering.lower(tree)
    if not checker.ok:
        return None
    span = checker.source.span(tree.start, tree.end)
    function = function_of(code, span, lowering)
    return function, Lowered(code, lowering.namespace, span)


def compile_expression(
    source: Source,
    scope: Scope,
    sink: DiagnosticSink,
    tables: Mapping[str, Any],
    expect: Type | None = None,
    what: str = "this field",
    tree: A.Expr | None = None,
) -> CompiledExpression | None:
    """Parse (unless ``tree`` is given), check and lower one expression; None (with diagnostics
    in ``sink``) if it is wrong."""
    tree = tree if tree is not None else parse(source, sink)
    checker = check(tree, scope, source, sink, expect, what) if tree is not None else None
    lowered = lower(tree, checker, tables) if tree is not None and checker is not None else None
    if tree is None or checker is None or lowered is None:
        return None
    result = tree.type or ANY
    return CompiledExpression(
        source.text.strip(),
        source.span(tree.start, tree.end),
        result if result.kind != "never" else NEVER,
        lowered[0],
        checker.is_constant(tree),
        tuple(checker.lookups),
        lowered[1],
    )


def constant_value(expression: CompiledExpression) -> Any:
    """The value of an expression that reads nothing (``60%``), or None when it reads anything."""
    if not expression.constant:
        return None
    try:
        return expression.fn(Context())
    except Exception:
        return None
