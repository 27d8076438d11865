"""Text templates (``{{ }}``) in listing content: sandboxed, strict, checked before running.

A template is compiled once in a :class:`jinja2.sandbox.SandboxedEnvironment`
with ``StrictUndefined``; the expression language's functions are its
filters and globals. Before that, its syntax tree is walked against the same
scope an expression would get, so ``{{ product.brnd }}`` is a compile-time
diagnostic with a did-you-mean, not a blank title on the marketplace.

The sandbox is narrowed further than jinja2's default: attributes can be read
only where they are fields of the canonical model (or keys of a mapping),
never methods, never dunders. A rule file therefore cannot run code.

Nor can it exhaust the machine (:mod:`engine.rules._limits`,
:mod:`engine.rules._template_bounds`): it reaches only the
rule-language functions and a few documented jinja2 filters (no ``lipsum``, ``cycler``,
``joiner``, ``namespace``, ``range``; no ``center``, ``indent``, ``format``, ``wordwrap``);
macros, includes and ``%`` formatting of text are refused; ``*``, ``**`` and ``+`` are
intercepted and refuse a result above the size limits before building it; ``~`` and every
output are joined by a bounded ``concat``; each loop iteration is counted against the SKU's
budget; bracket nesting and number literals are bounded when the template compiles.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from jinja2 import StrictUndefined, TemplateSyntaxError, nodes
from jinja2.exceptions import SecurityError, TemplateError, UndefinedError
from jinja2.filters import FILTERS as JINJA_FILTERS
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from engine._diagnostics import DiagnosticSink, EvaluationError, Span, did_you_mean
from engine.rules import _ast as A
from engine.rules._expressions import CompiledExpression, compile_expression
from engine.rules._functions import FUNCTIONS, NOT_LITERAL
from engine.rules._limits import MAX_TEMPLATE_DEPTH, LimitExceeded, armed, budget
from engine.rules._runtime import Context
from engine.rules._template_bounds import (
    CONCAT_FILTER,
    JINJA_FILTERS_KEPT,
    LOOP_FILTER,
    REFUSED_STATEMENTS,
    BoundedTree,
    bounded_concat,
    check_binop,
    constant_problems,
    counted,
    depth,
    join,
    tilde,
    within_bounds,
)
from engine.rules._typecheck import LookupSite, Scope, Source
from engine.rules._types import ANY, STRING, Type

_TEMPLATE_MARK = re.compile(r"\{\{|\{%")


def is_template(text: str) -> bool:
    return bool(_TEMPLATE_MARK.search(text))


class _RuleSandbox(SandboxedEnvironment):
    """jinja2's sandbox, restricted to the fields of the canonical model and bounded in size."""

    intercepted_binops = frozenset({"+", "*", "**", "%"})
    concat = staticmethod(bounded_concat)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        check_binop(operator, left, right)
        return super().call_binop(context, operator, left, right)

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if attr.startswith("_"):
            return False
        if isinstance(obj, BaseModel):
            cls = type(obj)
            return attr in cls.model_fields or attr in cls.model_computed_fields
        return False

    def is_safe_callable(self, obj: Any) -> bool:
        return getattr(obj, "_tradepost_function", False) is True

    def getattr(self, obj: Any, attribute: str) -> Any:
        # A specification a SKU lacks is null in templates too, as in expressions.
        if isinstance(obj, dict) and not attribute.startswith("_"):
            return obj.get(attribute)
        return super().getattr(obj, attribute)


def _as_filter(
    name: str, impl: Callable[..., Any], tables: Mapping[str, Mapping[str, Any]]
) -> Callable[..., Any]:
    """Wrap a library function for jinja2; fallible ones get the template's span at render time."""
    function = FUNCTIONS[name]

    if name == "lookup":

        def lookup(value: Any, table: Any, *default: Any) -> Any:
            if (
                isinstance(value, str)
                and value in tables
                and not (isinstance(table, str) and table in tables)
            ):
                value, table = (
                    table,
                    value,
                )  # called as lookup('colors', key) rather than key | lookup('colors')
            entries = tables.get(table) if isinstance(table, str) else table
            if entries is None:
                raise EvaluationError(f"unknown table '{table}'", None, code="TP307")
            if isinstance(value, Mapping) and not isinstance(entries, Mapping):
                value, entries = entries, value
            return impl(entries, value, *default, at=None, table_name=str(table))

        wrapped: Callable[..., Any] = lookup
    elif function.needs_span:

        def fallible(*args: Any) -> Any:
            return impl(*args, at=None)

        wrapped = fallible
    else:
        wrapped = impl
    try:
        wrapped._tradepost_function = True  # type: ignore[attr-defined]
    except AttributeError:  # builtins cannot carry attributes; wrap them

        def plain(*args: Any) -> Any:
            return impl(*args)

        plain._tradepost_function = True  # type: ignore[attr-defined]
        wrapped = plain
    return wrapped


@dataclass
class CompiledTemplate:
    """A template ready to render for one SKU."""

    source: str
    span: Span
    render_fn: Callable[[dict[str, Any]], str]
    names: tuple[str, ...]
    type: Type = STRING
    lookups: tuple[LookupSite, ...] = ()
    fast: Callable[[Context], str] | None = None
    """The template translated into a compiled expression, when it only prints values."""
    translated: CompiledExpression | None = field(default=None, repr=False)
    """That expression (``fast`` is its function): the plan's steps run its source in place."""

    def __call__(self, ctx: Context) -> str:
        try:
            if self.fast is not None:
                return self.fast(ctx)
            names = {name: getattr(ctx, name) for name in self.names}
            if armed():
                return self.render_fn(names)
            with budget():  # rendered outside a SKU's evaluation: a budget of its own
                return self.render_fn(names)
        except LimitExceeded as exc:
            raise LimitExceeded(exc.message, exc.span or self.span, exc.code) from None
        except EvaluationError as exc:
            raise EvaluationError(exc.message, exc.span or self.span, exc.code) from None
        except (
            UndefinedError,
            SecurityError,
            TemplateError,
            TypeError,
            ValueError,
            ArithmeticError,
        ) as exc:
            raise EvaluationError(f"template failed: {exc}", self.span, code="TP904") from None
        except RecursionError:
            raise LimitExceeded("the template nests too deeply to run", self.span) from None


class TemplateCompiler:
    """Builds the sandbox once per rule file and compiles each template with it."""

    def __init__(self, tables: Mapping[str, Mapping[str, Any]]) -> None:
        self.env = _RuleSandbox(
            undefined=StrictUndefined, autoescape=False, keep_trailing_newline=False, finalize=_blank_null
        )
        # Only the documented names: no lipsum, cycler, joiner, namespace, range, dict objects.
        self.env.globals.clear()
        self.env.filters = {name: JINJA_FILTERS[name] for name in JINJA_FILTERS_KEPT}
        self.env.filters["join"] = join
        self.env.filters[LOOP_FILTER] = counted
        self.env.filters[CONCAT_FILTER] = tilde
        for name, function in FUNCTIONS.items():
            wrapped = _as_filter(name, function.impl, tables)
            self.env.filters[name] = wrapped
            self.env.globals[name] = wrapped
        self.tables = tables

    def compile(self, source: Source, scope: Scope, sink: DiagnosticSink) -> CompiledTemplate | None:
        text = source.text
        if not within_bounds(self.env, source, sink):
            return None
        try:
            tree = self.env.parse(text)
            too_deep = depth(tree) > 2 * MAX_TEMPLATE_DEPTH
        except TemplateSyntaxError as exc:
            offset = _syntax_error_offset(text, exc)
            sink.error("TP401", _syntax_message(exc), source.span(offset), hint=_syntax_hint(exc))
            return None
        except RecursionError:
            too_deep = True
        if too_deep:
            sink.error(
                "TP405",
                f"template nested too deeply (more than {MAX_TEMPLATE_DEPTH} levels)",
                source.span(0, len(text)),
                hint="split it into several listing fields, or compute parts in = expressions",
            )
            return None
        checker = _TemplateChecker(self, scope, source, sink)
        checker.visit(tree)
        if not checker.ok:
            return None
        names = tuple(sorted(n for n in checker.roots if n in scope.names))
        span = source.span(0, len(text))
        translated = self._translate(tree, source, scope)
        tree = BoundedTree().visit(tree)
        try:
            template = self.env.from_string(tree)
        except RecursionError:
            sink.error(
                "TP405",
                f"template nested too deeply (more than {MAX_TEMPLATE_DEPTH} levels)",
                source.span(0, len(text)),
            )
            return None
        fast = None if translated is None else translated.fn
        return CompiledTemplate(
            text, span, template.render, names, STRING, tuple(checker.lookups), fast, translated
        )

    def _translate(self, tree: nodes.Template, source: Source, scope: Scope) -> CompiledExpression | None:
        """Most templates only print fields through filters: compile those like an expression.

        jinja2 builds a context and checks every attribute through the sandbox on each render;
        a million titles pay for that. A template that is nothing but text and ``{{ }}``
        outputs of fields, functions, conditions and ``~`` is translated into the expression
        tree and lowered the same way, which also keeps its reach inside the canonical model.
        Anything else (statements, jinja2's own filters) keeps the sandboxed renderer.
        """
        try:
            expression = _Translator(source.text, self.tables).template(tree)
        except _Untranslatable:
            return None
        scratch = DiagnosticSink()
        compiled = compile_expression(
            source, scope, scratch, self.tables, None, "a template", tree=expression
        )
        return None if compiled is None or scratch.errors else compiled


def _syntax_message(exc: TemplateSyntaxError) -> str:
    """jinja2's message in our words where we know it: an unknown tag, a block left open."""
    message = exc.message or ""
    block = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
    tag = re.match(r"Encountered unknown tag '(\w+)'", message)
    if tag:
        inside = f" inside the open '{block.group(1)}' block" if block else ""
        return f"template syntax error: unknown tag '{tag.group(1)}'{inside}"
    if block and message.startswith("Unexpected end of template"):
        return f"template syntax error: the '{{% {block.group(1)} %}}' opened here is never closed"
    return f"template syntax error: {message}"


def _syntax_hint(exc: TemplateSyntaxError) -> str | None:
    message = exc.message or ""
    if "expected token 'end of print statement'" in message:
        return "inside {{ }} use filters (x | upper) or functions; check for an unclosed quote or bracket"
    block = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
    if block and message.startswith("Unexpected end of template"):
        return f"close it with {{% end{block.group(1)} %}}"
    tag = re.match(r"Encountered unknown tag '(\w+)'", message)
    if tag:
        wanted = re.findall(
            r"'(\w+)'", message.partition("looking for the following tags:")[2].partition(".")[0]
        )
        guess = did_you_mean(tag.group(1), wanted or ["if", "for", "set", "endif", "endfor", "else", "elif"])
        return (
            f"did you mean '{guess}'?"
            if guess
            else "the template tags are if, elif, else, endif, for, endfor, set"
        )
    return None


def _blank_null(value: Any) -> Any:
    """``{{ sku.specs.Material }}`` prints nothing, not "None", for a SKU without it."""
    return "" if value is None else value


def _syntax_error_offset(text: str, exc: TemplateSyntaxError) -> int:
    """jinja2 reports only a line: find the offending token on it, or the tag left open."""
    start = _line_offset(text, exc.lineno or 1)
    end = text.find("\n", start)
    end = len(text) if end < 0 else end
    message = exc.message or ""
    at = re.search(r"unexpected char .* at (\d+)$", message)
    if at:
        return min(int(at.group(1)), len(text))
    tag = re.match(r"Encountered unknown tag '(\w+)'", message)
    if tag:
        # The tag's name where it is written, on jinja's line or (a tag split over lines) before it.
        written = [m.start(1) for m in re.finditer(r"\{%[-+]?\s*(" + re.escape(tag.group(1)) + r")\b", text)]
        on_line = [w for w in written if w <= end]
        if on_line:
            return on_line[-1]
    if "unexpected end of template" in message.lower():
        block = re.search(r"innermost block that needs to be closed is '(\w+)'", message)
        opened = max(text.rfind("{{"), text.rfind("{%"))
        if block:
            blocks = [
                m.start(1) for m in re.finditer(r"\{%[-+]?\s*(" + re.escape(block.group(1)) + r")\b", text)
            ]
            opened = blocks[-1] if blocks else opened
        return opened if opened >= 0 else start
    found = re.search(r"unexpected '(.+?)'", message)
    if found:
        token = found.group(1)
        hits = [m.start() for m in re.finditer(re.escape(token), text[start:end])]
        lonely = [
            h
            for h in hits
            if len(token) > 1
            or not (text[start + h - 1 : start + h] == token or text[start + h + 1 : start + h + 2] == token)
        ]
        if lonely or hits:
            return start + (lonely or hits)[-1]
    return start


def _line_offset(text: str, lineno: int) -> int:
    offset = 0
    for _ in range(lineno - 1):
        newline = text.find("\n", offset)
        if newline < 0:
            break
        offset = newline + 1
    while offset < len(text) and text[offset] in " \t":
        offset += 1
    return offset


def _dotted(node: nodes.Node) -> str | None:
    if isinstance(node, nodes.Name):
        return node.name
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        return f"{base}.{node.attr}" if base else None
    return None


def _patterns(node: nodes.Node, needle: str) -> list[re.Pattern[str]]:
    word = re.escape(needle)
    patterns = []
    if isinstance(node, nodes.Getattr):
        base = _dotted(node.node)
        if base:
            dotted = r"\s*\.\s*".join(re.escape(part) for part in base.split("."))
            patterns.append(re.compile(rf"(?<![\w.]){dotted}\s*\.\s*(?P<needle>{word})(?!\w)"))
        patterns.append(re.compile(rf"\.\s*(?P<needle>{word})(?!\w)"))
    patterns.append(re.compile(rf"(?<![\w.])(?P<needle>{word})(?!\w)"))
    patterns.append(re.compile(rf"(?P<needle>{word})"))
    return patterns


class _TemplateChecker:
    """Walks a jinja2 syntax tree: names, fields, filters and tables must all exist."""

    def __init__(
        self, compiler: TemplateCompiler, scope: Scope, source: Source, sink: DiagnosticSink
    ) -> None:
        self.compiler = compiler
        self.scope = scope
        self.source = source
        self.sink = sink
        self.ok = True
        self.roots: set[str] = set()
        self.assigned: set[str] = set()
        self.lookups: list[LookupSite] = []

    def locate(self, node: nodes.Node, needle: str) -> Span:
        """jinja2 nodes know their line only: find the needle on that line for the column.

        A field is searched as the whole dotted path (``sku.nam``), so the ``nam`` inside an
        earlier ``product.name`` on the same line is not mistaken for it.
        """
        text = self.source.text
        start = _line_offset(text, getattr(node, "lineno", 1) or 1)
        line_end = text.find("\n", start)
        line_end = len(text) if line_end < 0 else line_end
        for pattern in _patterns(node, needle):
            for region in ((start, line_end), (0, len(text))):
                found = pattern.search(text, *region)
                if found:
                    offset = found.start("needle")
                    return self.source.span(offset, offset + len(needle))
        return self.source.span(start)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self.sink.error(code, message, span, hint)
        self.ok = False

    def visit(self, tree: nodes.Node) -> None:
        for node in tree.find_all(nodes.Name):
            if node.ctx in ("store", "param"):
                self.assigned.add(node.name)
        for statement in tree.find_all(REFUSED_STATEMENTS):
            keyword = (
                type(statement).__name__.lower().replace("callblock", "call").replace("fromimport", "from")
            )
            self.error(
                "TP406",
                f"'{{% {keyword} %}}' is not available in templates",
                self.locate(statement, keyword),
                hint="templates print values; use if, for and set, filters and the rule-language functions",
            )
        for modulo in tree.find_all(nodes.Mod):
            if isinstance(modulo.left, nodes.Const) and isinstance(modulo.left.value, str):
                self.error(
                    "TP406",
                    "'%' formatting of text is not available in templates",
                    self.locate(modulo, "%"),
                    hint="join text with ~, and round numbers with round(x, 2)",
                )
        self._walk(tree)
        if self.ok:
            for constant, needle, message in constant_problems(tree, self.compiler.env):
                self.error("TP313", message, self.locate(constant, needle))

    def _walk(self, node: nodes.Node) -> None:
        if isinstance(node, nodes.Getattr | nodes.Getitem | nodes.Name):
            self._type_of(node)
            return
        if isinstance(node, nodes.Filter | nodes.Test) and node.name is not None:
            registry = (
                self.compiler.env.filters if isinstance(node, nodes.Filter) else self.compiler.env.tests
            )
            if node.name not in registry or node.name.startswith("_"):
                known = [name for name in registry if not name.startswith("_")]
                guess = did_you_mean(node.name, known)
                refused = isinstance(node, nodes.Filter) and node.name in JINJA_FILTERS
                self.error(
                    "TP403",
                    f"filter '{node.name}' is not available in templates"
                    if refused
                    else f"unknown filter '{node.name}'",
                    self.locate(node, node.name),
                    hint=f"did you mean '{guess}'?"
                    if guess and not refused
                    else "filters are the rule-language functions and " + ", ".join(JINJA_FILTERS_KEPT),
                )
            if node.name == "lookup" and node.args and isinstance(node.args[0], nodes.Const):
                table = node.args[0].value
                path = (
                    _dotted(node.node) if isinstance(node, nodes.Filter) and node.node is not None else None
                )
                if path and table in self.compiler.tables and path.split(".")[0] in ("product", "sku"):
                    site = LookupSite(
                        str(table), tuple(path.split(".")), len(node.args) > 1, self.source.span(0)
                    )
                    self.lookups.append(site)
                if table not in self.compiler.tables:
                    guess = did_you_mean(str(table), self.compiler.tables)
                    self.error(
                        "TP307",
                        f"unknown table '{table}'",
                        self.locate(node, str(table)),
                        hint=f"did you mean '{guess}'?" if guess else "define it under 'tables:'",
                    )
        if isinstance(node, nodes.Filter) and node.name in FUNCTIONS:
            self._check_literals(node, node.name, [None, *node.args])
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            name = node.node.name
            if name in FUNCTIONS:
                self._check_literals(node, name, list(node.args))
            if name not in self.compiler.env.globals and name not in self.scope.names:
                guess = did_you_mean(name, FUNCTIONS)
                self.error(
                    "TP403",
                    f"unknown function '{name}'",
                    self.locate(node, name),
                    hint=f"did you mean '{guess}'?" if guess else None,
                )
            for child in node.iter_child_nodes():
                if child is not node.node:
                    self._walk(child)
            return
        for child in node.iter_child_nodes():
            self._walk(child)

    def _check_literals(self, node: nodes.Node, name: str, args: list[nodes.Node | None]) -> None:
        """The compile-time check of literal arguments (a regex RE2 refuses…), as in expressions."""
        check = FUNCTIONS[name].check
        if check is None:
            return
        literals = [arg.value if isinstance(arg, nodes.Const) else NOT_LITERAL for arg in args]
        problem = check(literals)
        if problem:
            culprit = next((str(v) for v in literals if isinstance(v, str) and v in self.source.text), name)
            self.error("TP310", problem, self.locate(node, culprit))

    def _type_of(self, node: nodes.Node) -> Type:
        if isinstance(node, nodes.Name):
            name = node.name
            if name in self.assigned or name in self.compiler.env.globals:
                return ANY
            if name in self.scope.names:
                self.roots.add(name)
                return self.scope.names[name]
            if name in self.scope.unavailable:
                self.error("TP308", self.scope.unavailable[name], self.locate(node, name))
                return ANY
            guess = did_you_mean(name, self.scope.names)
            self.error(
                "TP402",
                f"unknown template variable '{name}' {self.scope.where}",
                self.locate(node, name),
                hint=f"did you mean '{guess}'?"
                if guess
                else f"available: {', '.join(sorted(self.scope.names))}",
            )
            return ANY
        if isinstance(node, nodes.Getattr):
            return self._member(node, self._type_of(node.node), node.attr)
        if isinstance(node, nodes.Getitem):
            target = self._type_of(node.node)
            if isinstance(node.arg, nodes.Const) and isinstance(node.arg.value, str):
                return self._member(node, target, node.arg.value)
            self._walk(node.arg)
            return ANY
        self._walk(node)
        return ANY

    def _member(self, node: nodes.Node, target: Type, attr: str) -> Type:
        if attr.startswith("_"):
            self.error(
                "TP404",
                f"access to '{attr}' is not allowed in templates",
                self.locate(node, attr),
                hint="templates may read fields of the catalog only",
            )
            return ANY
        if target.kind == "map":
            return (target.item or ANY).or_null()
        if target.kind == "record" and target.record is not None:
            if attr not in target.record.fields:
                guess = did_you_mean(attr, target.record.fields)
                self.error(
                    "TP302",
                    f"unknown field '{attr}' on {target.record.name}",
                    self.locate(node, attr),
                    hint=f"did you mean '{guess}'?" if guess else None,
                )
                return ANY
            return target.record.fields[attr]
        if target.kind == "any":
            return ANY
        self.error("TP404", f"'{attr}' is not a field ({target} has none)", self.locate(node, attr))
        return ANY


class _Untranslatable(Exception):
    """The template uses something only jinja2 itself can run."""


_COMPARE = {
    "eq": "==",
    "ne": "!=",
    "lt": "<",
    "lteq": "<=",
    "gt": ">",
    "gteq": ">=",
    "in": "in",
    "notin": "not in",
}
_ARITHMETIC: dict[type[nodes.BinExpr], str] = {nodes.Add: "+", nodes.Sub: "-", nodes.Mul: "*", nodes.Div: "/"}


class _Translator:
    """jinja2 syntax tree -> rule-language tree, for templates that only print values."""

    def __init__(self, text: str, tables: Mapping[str, Any]) -> None:
        self.end = len(text)
        self.tables = tables

    def _join(self, parts: list[A.Expr]) -> A.Expr:
        return A.Call(0, self.end, "concat", parts, 0, internal=True)

    def template(self, tree: nodes.Template) -> A.Expr:
        parts: list[A.Expr] = []
        for statement in tree.body:
            if not isinstance(statement, nodes.Output):
                raise _Untranslatable
            for node in statement.nodes:
                if isinstance(node, nodes.TemplateData):
                    parts.append(A.Literal(0, self.end, node.data))
                else:
                    parts.append(self.expr(node))
        return self._join(parts)

    def expr(self, node: nodes.Node) -> A.Expr:
        end = self.end
        if isinstance(node, nodes.Const):
            value = node.value
            if isinstance(value, bool) or value is None or isinstance(value, str):
                return A.Literal(0, end, value)
            if isinstance(value, int | float):
                return A.Literal(0, end, Decimal(str(value)))
            raise _Untranslatable
        if isinstance(node, nodes.Name) and node.ctx == "load":
            return A.Name(0, end, node.name)
        if isinstance(node, nodes.Getattr):
            return A.Field(0, end, self.expr(node.node), node.attr, 0)
        if isinstance(node, nodes.Getitem) and isinstance(node.arg, nodes.Const):
            return A.Index(0, end, self.expr(node.node), self.expr(node.arg))
        if isinstance(node, nodes.Filter) and node.node is not None:
            return self._call(node.name, [node.node, *node.args], node, piped=True)
        if isinstance(node, nodes.Call) and isinstance(node.node, nodes.Name):
            return self._call(node.node.name, list(node.args), node, piped=False)
        if isinstance(node, nodes.CondExpr):
            otherwise = self.expr(node.expr2) if node.expr2 is not None else A.Literal(0, end, "")
            return A.IfElse(0, end, self.truthy(node.test), self.expr(node.expr1), otherwise)
        if isinstance(node, nodes.Concat):
            return self._join([self.expr(n) for n in node.nodes])
        if isinstance(node, nodes.And | nodes.Or):
            op = "and" if isinstance(node, nodes.And) else "or"
            return A.Binary(0, end, op, self.truthy(node.left), self.truthy(node.right))
        if isinstance(node, nodes.Not):
            return A.Unary(0, end, "not", self.truthy(node.node))
        if isinstance(node, nodes.Neg):
            return A.Unary(0, end, "-", self.expr(node.node))
        if isinstance(node, nodes.BinExpr) and type(node) in _ARITHMETIC:
            return A.Binary(0, end, _ARITHMETIC[type(node)], self.expr(node.left), self.expr(node.right))
        if isinstance(node, nodes.Compare) and len(node.ops) == 1 and node.ops[0].op in _COMPARE:
            operand = node.ops[0]
            return A.Binary(0, end, _COMPARE[operand.op], self.expr(node.expr), self.expr(operand.expr))
        if isinstance(node, nodes.List):
            return A.ListExpr(0, end, [self.expr(n) for n in node.items])
        raise _Untranslatable

    def truthy(self, node: nodes.Node) -> A.Expr:
        """jinja2 tests any value for truth (an empty text is false); the language wants a bool."""
        return A.Call(0, self.end, "truthy", [self.expr(node)], 0, internal=True)

    def _call(self, name: str, args: list[nodes.Node], node: nodes.Node, piped: bool) -> A.Expr:
        if name not in FUNCTIONS or getattr(node, "kwargs", None) or getattr(node, "dyn_args", None):
            raise _Untranslatable
        converted = [self.expr(a) for a in args]
        if name == "lookup":
            for i, arg in enumerate(converted[:2]):
                if isinstance(arg, A.Literal) and isinstance(arg.value, str) and arg.value in self.tables:
                    converted[i] = A.Name(0, self.end, arg.value)
        return A.Call(0, self.end, name, converted, 0, piped=piped)
