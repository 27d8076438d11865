"""Compile a loaded rule file, section by section, into callables ready to run.

Each section gets the scope of names it may read (``listing`` is not built
yet when ``select`` runs; ``order`` exists only for divergence rules) and the
type its result must have. Figures that are constants (``share: 60%``) are
range-checked here, so a share of 160% fails `tradepost check`, not a run.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine._diagnostics import DiagnosticSink, Span, did_you_mean
from engine.model._catalog import Price, Product, Sku, Stock
from engine.model._order import Order, OrderItem
from engine.rules import _ast as A
from engine.rules._expressions import (
    CompiledExpression,
    Scope,
    Source,
    compile_expression,
    constant_value,
    source_of,
)
from engine.rules._functions import FUNCTIONS
from engine.rules._rulefile import LoadedRules, RuleFile, Table
from engine.rules._runtime import Context
from engine.rules._templates import CompiledTemplate, TemplateCompiler, is_template
from engine.rules._types import (
    ANY,
    BOOL,
    NUMBER,
    STRING,
    RecordType,
    Type,
    list_of,
    record_from_model,
    record_of,
    table_of,
    unify,
)
from engine.rules._yaml import Node

MINOR_UNITS: dict[str, int] = {"BHD": 3, "CLP": 0, "COP": 2, "JPY": 0, "KRW": 0, "KWD": 3, "PYG": 0, "VND": 0}
"""Decimal places of a currency's minor unit where it is not 2 (ISO 4217)."""

CATALOG_NAMES: dict[str, Type] = {
    "product": record_of(record_from_model(Product)),
    "sku": record_of(record_from_model(Sku)),
    "price": record_of(record_from_model(Price)),
    "stock": record_of(record_from_model(Stock)),
}
_ORDER_ONLY = "'{name}' exists only in divergence rules, where an order is being checked"
_NO_CATALOG = (
    "'{name}' is not available in divergence rules: an order is checked against the price the rules "
    "give its SKUs, not against one catalog record; read the order through 'order' and 'item'"
)
_PERSONAL = ("buyer", "shipping_address")
"""Order fields rules never see: a rule file cannot read, compare or echo a buyer's personal data."""


def _order_names() -> dict[str, Type]:
    """The typed ``order`` and ``item`` of divergence rules: the canonical order minus personal data."""
    item_model = record_from_model(OrderItem)
    item = RecordType(
        "item",
        {**item_model.fields, "line_value": NUMBER},
        {**item_model.docs, "line_value": "unit_price * quantity"},
        OrderItem,
    )
    order_model = record_from_model(Order)
    fields = {name: t for name, t in order_model.fields.items() if name not in _PERSONAL}
    docs = {name: d for name, d in order_model.docs.items() if name not in _PERSONAL}
    fields["items"] = list_of(record_of(item))
    fields["items_value"] = NUMBER
    docs["items_value"] = "sum of unit_price * quantity over the items, shipping excluded"
    fields["shipping_country"] = STRING.or_null()
    docs["shipping_country"] = "the delivery country (ISO code), or null when the marketplace ships"
    return {
        "order": record_of(RecordType("order", fields, docs, Order)),
        "item": record_of(item, nullable=True),
    }


ORDER_NAMES = _order_names()


@dataclass
class ContentField:
    """One listing field: a literal, an expression (``=...``) or a template (``{{ }}``)."""

    path: tuple[str, ...]
    kind: str
    span: Span
    value: Any = None
    compiled: CompiledExpression | CompiledTemplate | None = None
    children: dict[str, ContentField] | list[ContentField] | None = None
    type: Type = ANY

    def evaluate(self, ctx: Context) -> Any:
        if self.kind == "literal":
            return self.value
        if self.kind == "mapping":
            assert isinstance(self.children, dict)
            return {key: child.evaluate(ctx) for key, child in self.children.items()}
        if self.kind == "list":
            assert isinstance(self.children, list)
            return [child.evaluate(ctx) for child in self.children]
        assert self.compiled is not None
        return self.compiled(ctx)


@dataclass
class CategoryChoice:
    category: str
    span: Span
    when: CompiledExpression | None = None


@dataclass
class CategoryMap:
    """VTEX category path -> marketplace category; the most specific mapped path wins."""

    entries: dict[tuple[str, ...], list[CategoryChoice]] = field(default_factory=dict)

    def resolve(self, path: tuple[str, ...] | list[str], ctx: Context) -> CategoryChoice | None:
        parts = tuple(path)
        for length in range(len(parts), 0, -1):
            for choice in self.entries.get(parts[:length], ()):
                if choice.when is None or choice.when(ctx) is True:
                    return choice
        return None


@dataclass
class PriceRule:
    value: CompiledExpression
    round: CompiledExpression | None
    min: CompiledExpression | None
    max: CompiledExpression | None
    sale: CompiledExpression | None
    currency: str
    places: int


@dataclass
class StockRule:
    warehouses: tuple[str, ...] | None
    safety: CompiledExpression
    share: CompiledExpression
    max: CompiledExpression | None
    span: Span


@dataclass
class RequireRule:
    check: CompiledExpression
    message: CompiledTemplate | str | None


@dataclass
class DivergenceRule:
    when: CompiledExpression
    decision: str
    reason: str | None


@dataclass
class DivergenceRules:
    approve_within: CompiledExpression
    hold_within: CompiledExpression
    min_order_value: CompiledExpression | None
    max_order_value: CompiledExpression | None
    rules: list[DivergenceRule]


@dataclass
class Variations:
    group_by: CompiledExpression
    axes: tuple[str, ...]


@dataclass
class CompiledRules:
    """A rule file compiled: every expression and template a callable, every figure checked."""

    file: str
    rules: RuleFile
    tables: dict[str, Table]
    select: list[CompiledExpression]
    categories: CategoryMap
    listing: dict[str, ContentField]
    variations: Variations | None
    price: PriceRule
    stock: StockRule
    require: list[RequireRule]
    divergence: DivergenceRules | None
    categories_span: Span | None = None
    warnings: list[Any] = field(default_factory=list)

    @property
    def marketplace(self) -> str:
        return self.rules.marketplace


class _SectionCompiler:
    def __init__(self, loaded: LoadedRules, sink: DiagnosticSink) -> None:
        self.loaded = loaded
        self.sink = sink
        self.root = loaded.root
        self.table_values: dict[str, dict[str, Any]] = {n: t.entries for n, t in loaded.tables.items()}
        self.table_types: dict[str, Type] = {
            n: table_of(_value_type(t.entries)) for n, t in loaded.tables.items()
        }
        self.templates = TemplateCompiler(self.table_values)

    def scope(self, where: str, extra: Mapping[str, Type] | None = None, order: bool = False) -> Scope:
        names: dict[str, Type] = dict(CATALOG_NAMES)
        unavailable: dict[str, str] = {}
        if extra:
            names.update(extra)
        if "listing" not in names:
            unavailable["listing"] = f"'listing' is not built yet {where}; it can be read from 'price' on"
        if order:
            for name in CATALOG_NAMES:
                names.pop(name, None)
                unavailable[name] = _NO_CATALOG.format(name=name)
            names = {**ORDER_NAMES, **names}
        else:
            for name in ("order", "item"):
                unavailable[name] = _ORDER_ONLY.format(name=name)
        return Scope(where, names, self.table_types, unavailable, self.table_values)

    def expr(
        self, node: Node | None, scope: Scope, expect: Type | None, what: str
    ) -> CompiledExpression | None:
        if node is None or self.sink.has_error_at(node.span):
            return None
        if not node.is_scalar or (node.value is None and not node.text):
            self.sink.error("TP112", f"{what} must be an expression", node.span)
            return None
        return compile_expression(source_of(node), scope, self.sink, self.table_values, expect, what)

    def default_expr(self, text: str, span: Span, scope: Scope) -> CompiledExpression:
        node = Node(text, span, text=text)
        compiled = compile_expression(Source(node, text), scope, self.sink, self.table_values)
        assert compiled is not None
        return compiled

    def content(self, node: Node, path: tuple[str, ...], scope: Scope) -> ContentField:
        if node.is_mapping:
            children = {key: self.content(child, (*path, key), scope) for key, child in node.items()}
            return ContentField(
                path, "mapping", node.span, children=children, type=_listing_record(children, path)
            )
        if node.is_sequence:
            items = [self.content(child, (*path, str(i)), scope) for i, child in enumerate(node.value)]
            return ContentField(path, "list", node.span, children=items, type=Type("list", item=ANY))
        value = node.value
        what = "listing." + ".".join(path)
        if isinstance(value, str) and value.lstrip().startswith("="):
            compiled = compile_expression(source_of(node), scope, self.sink, self.table_values, None, what)
            return ContentField(
                path, "expression", node.span, compiled=compiled, type=compiled.type if compiled else ANY
            )
        if isinstance(value, str) and is_template(value):
            template = self.templates.compile(Source(node, node.text), scope, self.sink)
            return ContentField(path, "template", node.span, compiled=template, type=STRING)
        literal_type = STRING if isinstance(value, str) else NUMBER if isinstance(value, Decimal) else BOOL
        return ContentField(path, "literal", node.span, value=value, type=literal_type)

    def figure(
        self,
        node: Node | None,
        scope: Scope,
        what: str,
        low: Decimal | None = None,
        high: Decimal | None = None,
        percent: bool = False,
    ) -> CompiledExpression | None:
        compiled = self.expr(node, scope, NUMBER, what)
        if compiled is None or node is None:
            return compiled
        value = constant_value(compiled)
        if isinstance(value, Decimal | int) and (
            (low is not None and value < low) or (high is not None and value > high)
        ):
            bounds = _bounds(low, high, percent)
            self.sink.error(
                "TP321",
                f"{what} is {_show(value, percent)}; it must be {bounds}",
                compiled.span,
                hint="percentages are written like 60% (= 0.6)" if percent else None,
            )
        return compiled


def _show(value: Decimal | int, percent: bool = False) -> str:
    if percent:
        return f"{(Decimal(value) * 100).normalize():f}%"
    return f"{value}"


def _bounds(low: Decimal | None, high: Decimal | None, percent: bool) -> str:
    if low is not None and high is not None:
        return f"between {_show(low, percent)} and {_show(high, percent)}"
    if low is not None:
        return f"at least {_show(low, percent)}"
    return f"at most {_show(high or Decimal(0), percent)}"


def _value_type(entries: Mapping[str, Any]) -> Type:
    result: Type | None = None
    for value in entries.values():
        t = (
            STRING
            if isinstance(value, str)
            else NUMBER
            if isinstance(value, Decimal)
            else BOOL
            if isinstance(value, bool)
            else ANY
        )
        result = t if result is None else unify(result, t)
    return result or ANY


def _listing_record(children: Mapping[str, ContentField], path: tuple[str, ...]) -> Type:
    name = "listing" + ("." + ".".join(path) if path else "")
    fields = {key: child.type.or_null(child.type.nullable) for key, child in children.items()}
    return record_of(RecordType(name, fields))


def compile_loaded(loaded: LoadedRules, sink: DiagnosticSink) -> CompiledRules | None:
    """The compile passes over every section; None when any error was reported to ``sink``."""
    c = _SectionCompiler(loaded, sink)
    root = loaded.root
    errors_before = len(sink.errors)

    marketplace = root.get("marketplace")
    if marketplace is not None and marketplace.is_scalar and isinstance(marketplace.value, str):
        from engine.connectors._registry import available_connectors

        connectors = available_connectors()
        if marketplace.value not in connectors:
            guess = did_you_mean(marketplace.value, connectors)
            sink.error(
                "TP115",
                f"no connector named '{marketplace.value}'",
                marketplace.span,
                hint=f"did you mean '{guess}'?" if guess else f"installed: {', '.join(sorted(connectors))}",
            )

    select_scope = c.scope("in select")
    select = [
        e
        for n in _items(root.get("select"))
        if (e := c.expr(n, select_scope, BOOL, "a select condition")) is not None
    ]

    categories = CategoryMap()
    category_scope = c.scope("in a category condition")
    for key, node in _mapping(root.get("categories")):
        parts = tuple(part.strip() for part in key.split("/"))
        if not all(parts):
            sink.error(
                "TP341",
                f"category path '{key}' has an empty part",
                node.key_span or node.span,
                hint="write paths like Apparel/Shoes/Sneakers, without leading or doubled '/'",
            )
            continue
        choices: list[CategoryChoice] = []
        if node.is_sequence:
            for item in node.value:
                category_node = item.get("category")
                if category_node is None:
                    continue
                when = c.expr(item.get("when"), category_scope, BOOL, "a category 'when'")
                choices.append(CategoryChoice(category_node.text, category_node.span, when))
        else:
            choices.append(CategoryChoice(node.text, node.span))
        categories.entries[parts] = choices

    listing_scope = c.scope("in listing", {"category": STRING})
    listing_node = root.get("listing")
    listing = {key: c.content(node, (key,), listing_scope) for key, node in _mapping(listing_node)}
    listing_type = _listing_record(listing, ())

    variations = None
    vnode = root.get("variations")
    if vnode is not None and vnode.is_mapping:
        vscope = c.scope("in variations", {"listing": listing_type})
        group_node = vnode.get("group_by")
        group_by = (
            c.expr(group_node, vscope, None, "variations.group_by")
            if group_node
            else c.default_expr("product.id", vnode.span, vscope)
        )
        attributes = listing.get("attributes")
        attribute_names = (
            list(attributes.children) if attributes and isinstance(attributes.children, dict) else []
        )
        known = set(attribute_names) | set(listing)
        axes = _items(vnode.get("axes"))
        for axis_node in axes:
            if axis_node.text not in known:
                guess = did_you_mean(axis_node.text, attribute_names or list(listing))
                sink.error(
                    "TP340",
                    f"variation axis '{axis_node.text}' is not a listing attribute",
                    axis_node.span,
                    hint=f"did you mean '{guess}'?" if guess else "declare it under listing.attributes",
                )
        if group_by is not None:
            variations = Variations(group_by, tuple(a.text for a in axes))

    price_scope = c.scope("in price", {"listing": listing_type})
    pnode = root.get("price") or Node({}, root.span)
    value = c.expr(pnode.get("value"), price_scope, NUMBER, "price.value")
    currency = root.get("currency")
    currency_code = currency.text if currency is not None else ""
    places = MINOR_UNITS.get(currency_code, 2)
    round_expr = _compile_round(c, pnode.get("round"), price_scope, places)
    price_min = c.figure(pnode.get("min"), price_scope, "price.min", Decimal(0))
    price_max = c.figure(pnode.get("max"), price_scope, "price.max", Decimal(0))
    sale = c.expr(pnode.get("sale"), price_scope, NUMBER, "price.sale")

    snode = root.get("stock")
    if snode is None or not snode.is_mapping:
        snode = Node({}, root.span)
    stock_scope = c.scope("in stock", {"listing": listing_type})
    safety = (
        c.figure(snode.get("safety"), stock_scope, "stock.safety", Decimal(0))
        if snode.get("safety")
        else c.default_expr("0", snode.span, stock_scope)
    )
    share = (
        c.figure(snode.get("share"), stock_scope, "stock.share", Decimal(0), Decimal(1), True)
        if snode.get("share")
        else c.default_expr("1", snode.span, stock_scope)
    )
    stock_max = c.figure(snode.get("max"), stock_scope, "stock.max", Decimal(0))
    warehouses_node = snode.get("warehouses")
    warehouses = tuple(w.text for w in _items(warehouses_node)) if warehouses_node is not None else None

    require_listing = _listing_record(listing, ())
    assert require_listing.record is not None
    require_listing.record.fields.update(
        {"category": STRING, "price": NUMBER, "sale_price": NUMBER.or_null(), "quantity": NUMBER}
    )
    require_scope = c.scope("in require", {"listing": require_listing})
    require: list[RequireRule] = []
    for item in _items(root.get("require")):
        if not item.is_mapping:
            continue
        check = c.expr(item.get("check"), require_scope, BOOL, "a require check")
        message_node = item.get("message")
        message: CompiledTemplate | str | None = None
        if message_node is not None and is_template(message_node.text):
            message = c.templates.compile(Source(message_node, message_node.text), require_scope, sink)
        elif message_node is not None:
            message = message_node.text
        if check is not None:
            require.append(RequireRule(check, message))

    divergence = _compile_divergence(c, root.get("divergence"))

    _check_price_bounds(sink, price_min, price_max)
    rules = loaded.rules
    if rules is None or len(sink.errors) > errors_before or value is None or safety is None or share is None:
        return None
    price = PriceRule(value, round_expr, price_min, price_max, sale, currency_code, places)
    stock = StockRule(warehouses, safety, share, stock_max, snode.span)
    categories_node = root.get("categories")
    categories_span = (categories_node.key_span or categories_node.span) if categories_node else None
    return CompiledRules(
        loaded.file,
        rules,
        loaded.tables,
        select,
        categories,
        listing,
        variations,
        price,
        stock,
        require,
        divergence,
        categories_span,
    )


def _check_price_bounds(
    sink: DiagnosticSink, low: CompiledExpression | None, high: CompiledExpression | None
) -> None:
    if low is None or high is None:
        return
    a, b = constant_value(low), constant_value(high)
    if isinstance(a, Decimal) and isinstance(b, Decimal) and a > b:
        sink.error("TP322", f"price.min ({a}) is above price.max ({b}); no price could pass", low.span)


def _compile_round(
    c: _SectionCompiler, node: Node | None, scope: Scope, places: int
) -> CompiledExpression | None:
    """``round: ending(0.90)`` is a call whose first argument, the price, is implicit."""
    if node is None:
        return None
    source = source_of(node)
    try:
        tree = A.parse_expression(source.text)
    except A.SyntaxProblem as problem:
        if problem.message == "empty expression":
            c.sink.error("TP202", problem.message, node.span, problem.hint)
        else:
            c.sink.error(
                problem.code, problem.message, source.span(problem.offset, problem.end), problem.hint
            )
        return None
    if isinstance(tree, A.Literal) and isinstance(tree.value, Decimal):
        tree = A.Call(tree.start, tree.end, "round", [tree], tree.start)
    if isinstance(tree, A.Name) and tree.name in FUNCTIONS:
        tree = A.Call(tree.start, tree.end, tree.name, [], tree.end)
    if not isinstance(tree, A.Call):
        c.sink.error(
            "TP323",
            "price.round must be a rounding call such as ending(0.90), round(2) or round_to(0.05)",
            source.span(tree.start, tree.end),
            hint="the price is passed to it as the first argument",
        )
        return None
    value = A.Name(tree.start, tree.name_end, "value")
    call = A.Call(tree.start, tree.end, tree.function, [value, *tree.args], tree.name_end, piped=True)
    round_scope = Scope(
        scope.where, {**scope.names, "value": NUMBER}, scope.tables, scope.unavailable, scope.table_values
    )
    return compile_expression(source, round_scope, c.sink, c.table_values, NUMBER, "price.round", tree=call)


def _compile_divergence(c: _SectionCompiler, node: Node | None) -> DivergenceRules | None:
    if node is None or not node.is_mapping:
        return None
    scope = c.scope("in divergence", order=True)
    approve = c.figure(node.get("approve_within"), scope, "divergence.approve_within", Decimal(0), None, True)
    hold = c.figure(node.get("hold_within"), scope, "divergence.hold_within", Decimal(0), None, True)
    low = c.figure(node.get("min_order_value"), scope, "divergence.min_order_value", Decimal(0))
    high = c.figure(node.get("max_order_value"), scope, "divergence.max_order_value", Decimal(0))
    if approve is not None and hold is not None:
        a, h = constant_value(approve), constant_value(hold)
        if isinstance(a, Decimal) and isinstance(h, Decimal) and h < a:
            c.sink.error(
                "TP322",
                f"hold_within ({_show(h, True)}) is below approve_within ({_show(a, True)})",
                hold.span,
                hint="orders within approve_within are approved; hold_within must be at least as wide",
            )
    if low is not None and high is not None:
        lo, hi = constant_value(low), constant_value(high)
        if isinstance(lo, Decimal) and isinstance(hi, Decimal) and lo > hi:
            c.sink.error("TP322", f"min_order_value ({lo}) is above max_order_value ({hi})", low.span)
    rules: list[DivergenceRule] = []
    for item in _items(node.get("rules")):
        when = c.expr(item.get("when"), scope, BOOL, "a divergence rule's 'when'")
        decision = item.get("decision")
        reason = item.get("reason")
        if when is not None and decision is not None:
            rules.append(DivergenceRule(when, decision.text, reason.text if reason else None))
    if approve is None or hold is None:
        return None
    return DivergenceRules(approve, hold, low, high, rules)


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if node is not None and node.is_sequence else []


def _mapping(node: Node | None) -> list[tuple[str, Node]]:
    return list(node.items()) if node is not None and node.is_mapping else []
