"""Compile a loaded rule file, section by section, into callables ready to run.

One function per section; each gives its expressions the scope of names they may read
(:mod:`engine.rules._scopes`: ``listing`` is not built yet when ``select`` runs, ``order``
exists only for divergence rules) and the type their result must have. Figures that are
constants (``share: 60%``) are range-checked here, so a share of 160% fails `tradepost check`,
not a run. Every section is compiled even after an error in another, so one run reports them all.
"""

from __future__ import annotations

from collections.abc import Collection, Mapping
from decimal import Decimal
from typing import Any

from engine._diagnostics import DiagnosticSink, Span, did_you_mean
from engine.model._currency import minor_unit_places
from engine.rules import _ast as A
from engine.rules._compiled import (
    CategoryChoice,
    CategoryMap,
    CompiledRules,
    ContentField,
    DivergenceRule,
    DivergenceRules,
    Fee,
    FeeRules,
    PriceRule,
    RequireRule,
    StockRule,
    Variations,
)
from engine.rules._expressions import CompiledExpression, compile_expression, constant_value, parse
from engine.rules._functions import FUNCTIONS
from engine.rules._rulefile import LoadedRules
from engine.rules._scopes import names_in
from engine.rules._templates import CompiledTemplate, TemplateCompiler, is_template
from engine.rules._typecheck import Scope, Source, source_of
from engine.rules._types import (
    ANY,
    BOOL,
    MONEY,
    NUMBER,
    STRING,
    RecordType,
    Type,
    record_of,
    table_of,
    unify,
)
from engine.rules._yaml import Node


class _SectionCompiler:
    """What every section's compiler shares: the file's tables, its sink, and how a field becomes
    an expression, a checked figure or listing content."""

    def __init__(self, loaded: LoadedRules, sink: DiagnosticSink) -> None:
        self.loaded = loaded
        self.sink = sink
        self.root = loaded.root
        self.table_values: dict[str, dict[str, Any]] = {n: t.entries for n, t in loaded.tables.items()}
        self.table_types: dict[str, Type] = {
            n: table_of(_value_type(t.entries)) for n, t in loaded.tables.items()
        }
        self.templates = TemplateCompiler(self.table_values)
        currency = self.root.get("currency")
        self.money_places = minor_unit_places(currency.text if currency is not None else "")

    def scope(self, where: str, extra: Mapping[str, Type] | None = None, order: bool = False) -> Scope:
        names, unavailable = names_in(where, extra, order)
        return Scope(where, names, self.table_types, unavailable, self.table_values, self.money_places)

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


def compile_loaded(
    loaded: LoadedRules,
    sink: DiagnosticSink,
    marketplaces: Collection[str] | None = None,
    listing_keys: Mapping[str, Collection[str]] | None = None,
) -> CompiledRules | None:
    """The compile passes over every section; None when any error was reported to ``sink``.

    ``marketplaces`` are the names a rule file's ``marketplace:`` may take (the installed
    connectors, which the caller looks up: the rule language knows no plug-in); None leaves
    the name unchecked. ``listing_keys``: marketplace -> the listing keys its connector reads
    (a key it does not read is a TP116 warning, most often a misspelling).
    """
    c = _SectionCompiler(loaded, sink)
    root = loaded.root
    errors_before = len(sink.errors)
    items_before = len(sink.items)
    if marketplaces is not None:
        _check_marketplace(root.get("marketplace"), marketplaces, sink)
    marketplace = root.get("marketplace")
    name = marketplace.value if marketplace is not None and isinstance(marketplace.value, str) else None
    if listing_keys is not None and name in listing_keys:
        _check_listing_keys(root.get("listing"), str(name), listing_keys[str(name)], sink)
    select = _compile_select(c, root.get("select"))
    categories = _compile_categories(c, root.get("categories"))
    listing = {
        key: c.content(node, (key,), c.scope("in listing", {"category": STRING}))
        for key, node in _mapping(root.get("listing"))
    }
    listing_type = _listing_record(listing, ())
    variations = _compile_variations(c, root.get("variations"), listing, listing_type)
    price = _compile_price(c, root, listing_type)
    stock = _compile_stock(c, root.get("stock") or Node({}, root.span), listing_type)
    require = _compile_require(c, root.get("require"), listing)
    divergence = _compile_divergence(c, root.get("divergence"))
    fees = _compile_fees(c, root.get("fees"))
    _fold_unknown_tables(loaded.broken_includes, sink, items_before)
    rules = loaded.rules
    if rules is None or len(sink.errors) > errors_before or price is None or stock is None:
        return None
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
        fees=fees,
    )


def _check_marketplace(node: Node | None, marketplaces: Collection[str], sink: DiagnosticSink) -> None:
    """``marketplace: amazn`` names no connector among ``marketplaces`` (TP115)."""
    if node is None or not node.is_scalar or not isinstance(node.value, str) or node.value in marketplaces:
        return
    guess = did_you_mean(node.value, marketplaces)
    sink.error(
        "TP115",
        f"no connector named '{node.value}'",
        node.span,
        hint=f"did you mean '{guess}'?" if guess else f"installed: {', '.join(sorted(marketplaces))}",
    )


def _fold_unknown_tables(broken: list[Node], sink: DiagnosticSink, first: int) -> None:
    """After a broken include, its tables' uses are one diagnostic, not one each (the cause is reported)."""
    unknown = [d for d in sink.items[first:] if d.code == "TP307" and d.message.startswith("unknown table '")]
    if not broken or not unknown:
        return
    folded = {id(d) for d in unknown}
    sink.items[:] = [d for d in sink.items if id(d) not in folded]
    names = sorted({d.message.split("'")[1] for d in unknown})
    count = len(unknown)
    includes = ", ".join(f"'{item.text}' (line {item.span.line})" for item in broken)
    what = f"{count} references to tables" if count > 1 else "1 reference to a table"
    sink.error(
        "TP307",
        f"{what} from the broken include ({', '.join(names)}){', the first here' if count > 1 else ''}",
        min((d.span for d in unknown), key=lambda span: (span.line, span.column)),
        hint=f"fix the include first: {includes}",
    )


def _check_listing_keys(
    node: Node | None, marketplace: str, known: Collection[str], sink: DiagnosticSink
) -> None:
    """A listing key the marketplace's connector does not read is sent nowhere: most often a typo (TP116)."""
    for key, child in _mapping(node):
        if key in known:
            continue
        guess = did_you_mean(key, known)
        sink.warning(
            "TP116",
            f"the {marketplace} connector does not read listing key '{key}'; it is sent nowhere",
            child.key_span or child.span,
            hint=f"did you mean '{guess}'?"
            if guess
            else f"keys {marketplace} reads: {', '.join(sorted(known))}",
        )


def _compile_select(c: _SectionCompiler, node: Node | None) -> list[CompiledExpression]:
    scope = c.scope("in select")
    return [e for n in _items(node) if (e := c.expr(n, scope, BOOL, "a select condition")) is not None]


def _compile_categories(c: _SectionCompiler, node: Node | None) -> CategoryMap:
    """``Apparel/Shoes: ML1234`` or a list of ``{category, when}`` choices, per VTEX path."""
    categories = CategoryMap()
    scope = c.scope("in a category condition")
    for key, choices_node in _mapping(node):
        parts = _category_path(c.sink, key, choices_node)
        if parts is None:
            continue
        if not choices_node.is_sequence:
            categories.entries[parts] = [CategoryChoice(choices_node.text, choices_node.span)]
            continue
        choices: list[CategoryChoice] = []
        for item in choices_node.value:
            category_node = item.get("category")
            if category_node is not None:
                when = c.expr(item.get("when"), scope, BOOL, "a category 'when'")
                choices.append(CategoryChoice(category_node.text, category_node.span, when))
        categories.entries[parts] = choices
    return categories


def _category_path(sink: DiagnosticSink, key: str, node: Node) -> tuple[str, ...] | None:
    """``Apparel/Shoes`` as its parts; None (TP341 reported) when a part is empty."""
    parts = tuple(part.strip() for part in key.split("/"))
    if all(parts):
        return parts
    sink.error(
        "TP341",
        f"category path '{key}' has an empty part",
        node.key_span or node.span,
        hint="write paths like Apparel/Shoes/Sneakers, without leading or doubled '/'",
    )
    return None


def _compile_variations(
    c: _SectionCompiler, node: Node | None, listing: Mapping[str, ContentField], listing_type: Type
) -> Variations | None:
    """How SKUs group into one listing (``group_by``, product id by default) and vary (``axes``)."""
    if node is None or not node.is_mapping:
        return None
    scope = c.scope("in variations", {"listing": listing_type})
    group_node = node.get("group_by")
    group_by = (
        c.expr(group_node, scope, None, "variations.group_by")
        if group_node
        else c.default_expr("product.id", node.span, scope)
    )
    attributes = listing.get("attributes")
    attribute_names = (
        list(attributes.children) if attributes and isinstance(attributes.children, dict) else []
    )
    known = set(attribute_names) | set(listing)
    axes = _items(node.get("axes"))
    for axis_node in axes:
        if axis_node.text not in known:
            guess = did_you_mean(axis_node.text, attribute_names or list(listing))
            c.sink.error(
                "TP340",
                f"variation axis '{axis_node.text}' is not a listing attribute",
                axis_node.span,
                hint=f"did you mean '{guess}'?" if guess else "declare it under listing.attributes",
            )
    return Variations(group_by, tuple(a.text for a in axes)) if group_by is not None else None


def _compile_price(c: _SectionCompiler, root: Node, listing_type: Type) -> PriceRule | None:
    """The price, rounded in the places of the file's currency; None when ``price.value`` is wrong."""
    scope = c.scope("in price", {"listing": listing_type})
    node = root.get("price") or Node({}, root.span)
    value = c.expr(node.get("value"), scope, NUMBER, "price.value")
    currency = root.get("currency")
    currency_code = currency.text if currency is not None else ""
    places = minor_unit_places(currency_code)
    round_expr = _compile_round(c, node.get("round"), scope, places)
    low = c.figure(node.get("min"), scope, "price.min", Decimal(0))
    high = c.figure(node.get("max"), scope, "price.max", Decimal(0))
    sale = c.expr(node.get("sale"), scope, NUMBER, "price.sale")
    _check_price_bounds(c.sink, low, high)
    if value is None:
        return None
    return PriceRule(value, round_expr, low, high, sale, currency_code, places)


def _compile_stock(c: _SectionCompiler, node: Node, listing_type: Type) -> StockRule | None:
    """The quantity offered: safety stock kept back, a share of the rest, a cap, from some warehouses."""
    if not node.is_mapping:
        node = Node({}, node.span)
    scope = c.scope("in stock", {"listing": listing_type})
    safety = (
        c.figure(node.get("safety"), scope, "stock.safety", Decimal(0))
        if node.get("safety")
        else c.default_expr("0", node.span, scope)
    )
    share = (
        c.figure(node.get("share"), scope, "stock.share", Decimal(0), Decimal(1), True)
        if node.get("share")
        else c.default_expr("1", node.span, scope)
    )
    cap = c.figure(node.get("max"), scope, "stock.max", Decimal(0))
    warehouses_node = node.get("warehouses")
    warehouses = tuple(w.text for w in _items(warehouses_node)) if warehouses_node is not None else None
    if safety is None or share is None:
        return None
    return StockRule(warehouses, safety, share, cap, node.span)


def _compile_require(
    c: _SectionCompiler, node: Node | None, listing: Mapping[str, ContentField]
) -> list[RequireRule]:
    """Checks on the finished listing, which by now has its category, price and quantity."""
    require_listing = _listing_record(listing, ())
    assert require_listing.record is not None
    require_listing.record.fields.update(
        {"category": STRING, "price": MONEY, "sale_price": MONEY.or_null(), "quantity": NUMBER}
    )
    scope = c.scope("in require", {"listing": require_listing})
    require: list[RequireRule] = []
    for item in _items(node):
        if not item.is_mapping:
            continue
        check = c.expr(item.get("check"), scope, BOOL, "a require check")
        message_node = item.get("message")
        message: CompiledTemplate | str | None = None
        if message_node is not None and is_template(message_node.text):
            message = c.templates.compile(Source(message_node, message_node.text), scope, c.sink)
        elif message_node is not None:
            message = message_node.text
        if check is not None:
            require.append(RequireRule(check, message))
    return require


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
    tree = parse(source, c.sink)
    if tree is None:
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


def _compile_fees(c: _SectionCompiler, node: Node | None) -> FeeRules | None:
    """``fees:``: constant figures (a report applies them to orders, with no SKU at hand), the
    commission a share from 0 to 100%, the fixed fee per unit at least 0; categories override."""
    if node is None or not node.is_mapping:
        return None
    default = _fee(c, node, "fees", None)
    categories: dict[tuple[str, ...], Fee] = {}
    for key, child in _mapping(node.get("categories")):
        parts = _category_path(c.sink, key, child)
        fee = _fee(c, child, f"fees.categories.{key}", default) if child.is_mapping else None
        if parts is not None and fee is not None:
            categories[parts] = fee
    return None if default is None else FeeRules(default, categories, c.money_places)


def _fee(c: _SectionCompiler, node: Node, rule: str, inherited: Fee | None) -> Fee | None:
    """One rate; a category's figure left out is the file's."""
    scope = c.scope("in fees")
    found: list[Decimal | None] = []
    for name, high, percent in (("commission", Decimal(1), True), ("fixed", None, False)):
        figure_node = node.get(name)
        if figure_node is None:
            fallback = getattr(inherited, name) if inherited is not None else Decimal(0)
            found.append(fallback)
            continue
        compiled = c.figure(figure_node, scope, f"{rule}.{name}", Decimal(0), high, percent)
        value = constant_value(compiled) if compiled is not None else None
        if compiled is not None and not isinstance(value, Decimal | int):
            c.sink.error(
                "TP324",
                f"{rule}.{name} must be a constant such as {'16%' if percent else '5.00'}",
                compiled.span,
                hint="fees apply to orders read back from the state store, where no SKU is at hand; "
                "give a category its own rate under fees.categories",
            )
        found.append(Decimal(value) if isinstance(value, Decimal | int) else None)
    commission, fixed = found
    if commission is None or fixed is None:
        return None
    return Fee(commission, fixed, rule, node.key_span or node.span)


def _items(node: Node | None) -> list[Node]:
    return list(node.value) if node is not None and node.is_sequence else []


def _mapping(node: Node | None) -> list[tuple[str, Node]]:
    return list(node.items()) if node is not None and node.is_mapping else []
