"""One rule file's steps as one Python function: the evaluator's loops unrolled once, at compile time.

:class:`~engine.sync._evaluate.SkuEvaluator` runs the same steps for every record: select,
categorize, build the listing, group, price, stock, require, the marketplace's checks. What
varies between rule files is known before the first record is read: which conditions, which
fields (and whether a nested mapping drops an empty value), which figures are constants, whether
there is a sale price or a ``round``. :func:`unrolled` writes those steps out as Python source for
one rule file and compiles it once (as the lowering pass compiles each expression), so a record
costs no walk over step tables, no figure looked at to see whether it is a constant, no
``isinstance`` to tell what a step holds, and no call per expression: each expression's lowered
source runs in place, its names bound, its Python errors turned into the SKU's reason as its own
function turns them (:func:`~engine.rules._lowering.failed`).

The contract is the generic one, step for step: the same outcome, the same reasons in the same
order with the same spans, the same provenance for ``explain``, the same notes. Everything bound
into the function is a value of the compiled rules or a helper below; nothing from a rule file's
text reaches the source but through a bound name (keys and messages are bound, not spliced in).
"""

from __future__ import annotations

import ast
from collections.abc import Callable, Sequence
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import TYPE_CHECKING, Any, Protocol

from engine._diagnostics import EvaluationError
from engine.model._catalog import CatalogRecord
from engine.model._listing import Listing, Outcome, Reason
from engine.rules._compiled import ContentField, RequireRule
from engine.rules._expressions import CompiledExpression, constant_value
from engine.rules._functions import available_units
from engine.rules._limits import MAX_LOOP_STEPS, MAX_WORK, SKU_BUDGET, Budget, LimitExceeded
from engine.rules._lowering import failed
from engine.rules._runtime import RUNTIME, Context
from engine.rules._templates import CompiledTemplate

if TYPE_CHECKING:
    from engine.sync._evaluate import SkuEvaluator

UNLIMITED_QUANTITY = 999
"""Offered for a SKU with unlimited stock when the rule file sets no stock.max."""


class Evaluate(Protocol):
    """The outcome for one record, within one SKU's budget of work (:mod:`engine.rules._limits`)."""

    def __call__(self, record: CatalogRecord, explain: bool = False) -> Outcome: ...


Builder = Callable[[Context, list[Reason]], Any]


class _Writer:
    """Python source being written, and the values its names stand for."""

    def __init__(self) -> None:
        self.lines: list[str] = []
        self.namespace: dict[str, Any] = {
            "Context": Context,
            "Decimal": Decimal,
            "EvaluationError": EvaluationError,
            "Listing": Listing,
            "Outcome": Outcome,
            "Reason": Reason,
            "ROUND_FLOOR": ROUND_FLOOR,
            "ROUND_HALF_UP": ROUND_HALF_UP,
            "LimitExceeded": LimitExceeded,
            "available_units": available_units,
            "_number": _number,
            "_reason": _reason,
            "_bound": _bound,
            "_Budget": Budget,
            "_arm": SKU_BUDGET.set,
            "_armed": SKU_BUDGET.get,
            "_MAX_WORK": MAX_WORK,
            "_MAX_STEPS": MAX_LOOP_STEPS,
            "_disarm": SKU_BUDGET.reset,
            "_failed": failed,
        }
        self._names = 0
        self._indent = 2  # in the function, in its ``try``

    def bind(self, value: Any, prefix: str) -> str:
        self._names += 1
        name = f"_{prefix}{self._names}"
        self.namespace[name] = value
        return name

    def temp(self, prefix: str) -> str:
        self._names += 1
        return f"{prefix}{self._names}"

    def line(self, text: str) -> None:
        self.lines.append("    " * self._indent + text)

    def block(self, text: str) -> _Block:
        self.line(text)
        return _Block(self)


class _Block:
    def __init__(self, writer: _Writer) -> None:
        self.writer = writer

    def __enter__(self) -> None:
        self.writer._indent += 1

    def __exit__(self, *exc: object) -> None:
        self.writer._indent -= 1


def unrolled(evaluator: SkuEvaluator) -> Evaluate:
    """The function ``(record, explain) -> Outcome`` of ``evaluator``'s rule file and connector."""
    rules = evaluator.compiled
    w = _Writer()
    w.line("sku = record.sku")
    w.line("ctx = Context(record.product, sku, record.price, record.stock)")
    for condition in rules.select:
        expression = w.bind(condition, "selx")
        excluded = w.bind(f"not selected: {condition.source}", "msg")
        span = w.bind(condition.span, "span")
        with w.block("try:"):
            _assign(w, "chosen", condition)
            with w.block("if chosen is not True:"):
                reason = f'Reason("TP920", {excluded}, "select", {span})'
                w.line(f'return Outcome(sku.id, "excluded", reasons=[{reason}])')
        with w.block("except EvaluationError as exc:"):
            w.line(f'return Outcome(sku.id, "invalid", reasons=[_reason(exc, "select", {expression})])')
    _categories(w, evaluator)
    w.line("fields = {}")
    _mapping(w, "fields", rules.listing, keep_empty=True)
    if rules.listing:
        shown = w.bind(evaluator.listing_spans, "prov")
        with w.block("if explain:"):
            w.line(f"provenance.update({shown})")
    _defaults(w, set(rules.listing))
    w.line("ctx.listing = fields")
    _variations(w, evaluator)
    w.line("notes = []")
    _price(w, evaluator)
    _quantity(w, evaluator)
    with w.block("if reasons:"):
        w.line('return Outcome(sku.id, "invalid", reasons=reasons, provenance=provenance)')
    marketplace, currency = w.bind(evaluator.marketplace, "mp"), w.bind(evaluator.currency, "cur")
    w.line(
        f"listing = Listing(sku.id, sku.product_id, {marketplace}, category, fields, price, {currency}, "
        "quantity, sale_price, group, axes)"
    )
    _require(w, evaluator)
    check, merge = w.bind(evaluator.connector.check, "check"), w.bind(evaluator.connector_reasons, "merge")
    with w.block(f"if found := {check}(listing):"):
        w.line(f"{merge}(found, reasons)")
    with w.block("if reasons:"):
        w.line('return Outcome(sku.id, "invalid", reasons=reasons, provenance=provenance)')
    w.line('return Outcome(sku.id, "listed", listing, [], provenance, notes)')  # positional: cheaper
    source = (
        "def _evaluate(record, explain=False):\n"
        # One budget of work per SKU (engine.rules._limits): the run's own, filled, or a fresh one.
        "    if (budget := _armed()) is not None and budget.per_sku:\n"
        "        budget.work, budget.steps, token = _MAX_WORK, _MAX_STEPS, None\n"
        "    else:\n"
        "        token = _arm(_Budget())\n"
        "    try:\n" + "\n".join(w.lines) + "\n"
        "    finally:\n"
        "        if token is not None:\n"
        "            _disarm(token)\n"
    )
    exec(compile(source, f"<steps of {rules.file}>", "exec"), w.namespace)
    function: Evaluate = w.namespace["_evaluate"]
    return function


def _assign(w: _Writer, target: str, expression: CompiledExpression) -> None:
    """``target = `` the expression's value: its lowered source in place (with its names bound
    here) rather than a call of its function, which catches the same errors the same way."""
    lowered = expression.lowered
    if lowered is None:
        w.line(f"{target} = {w.bind(expression.fn, 'fn')}(ctx)")
        return
    tree = ast.parse(lowered.code, mode="eval")
    names: dict[str, str] = {}
    for node in ast.walk(tree):
        if isinstance(node, ast.Name) and node.id != "ctx" and node.id in lowered.namespace:
            if node.id not in names:
                names[node.id] = w.bind(lowered.namespace[node.id], "i")
            node.id = names[node.id]
    with w.block("try:"):
        w.line(f"{target} = {ast.unparse(tree)}")
    with w.block("except (ArithmeticError, TypeError, RecursionError) as exc:"):
        w.line(f"raise _failed(exc, {w.bind(lowered.span, 'span')}) from None")


def _translated(w: _Writer, target: str, template: CompiledTemplate, expression: CompiledExpression) -> None:
    """``target = `` a template that only prints values, its translation's source in place: what
    calling the template runs (``CompiledTemplate.fast``), and the error it adds to the expression's
    own (a ``ValueError`` is the template's failure, TP904)."""
    with w.block("try:"):
        _assign(w, target, expression)
    with w.block("except ValueError as exc:"):
        span = w.bind(template.span, "span")
        w.line(f'raise EvaluationError(f"template failed: {{exc}}", {span}, code="TP904") from None')


def _categories(w: _Writer, evaluator: SkuEvaluator) -> None:
    categories, span = (
        w.bind(evaluator.compiled.categories, "cats"),
        w.bind(evaluator.categories_span, "span"),
    )
    w.line("reasons = []")
    w.line("provenance = {}")
    w.line('category = ""')
    with w.block("try:"):
        w.line(f"choice = {categories}.resolve(record.product.category_path, ctx)")
    with w.block("except EvaluationError as exc:"):
        w.line("choice = None")
        w.line('reasons.append(_reason(exc, "categories", None))')
    with w.block("if choice is None:"), w.block("if not reasons:"):
        w.line('path = record.product.category or "(no category)"')
        w.line(f'reasons.append(Reason("TP921", f"no category mapping for {{path}}", "categories", {span}))')
    with w.block("else:"):
        w.line("category = choice.category")
        w.line('provenance["category"] = choice.span')
    w.line("ctx.category = category")


def _mapping(w: _Writer, target: str, children: dict[str, ContentField], keep_empty: bool) -> None:
    """Fill the dict named ``target`` with ``children``: each expression in a ``try`` of its own (a
    failure is that field's reason, and a null); without ``keep_empty`` a null or empty value leaves
    its key out (an attribute the SKU does not have)."""
    for key, field in children.items():
        name = w.bind(key, "key")
        value = w.temp("v")
        if field.kind == "literal":
            w.line(f"{value} = {w.bind(field.value, 'lit')}")
        elif field.kind == "mapping":
            assert isinstance(field.children, dict)
            w.line(f"{value} = {{}}")
            _mapping(w, value, field.children, keep_empty=False)
        elif field.kind == "list":
            w.line(f"{value} = {w.bind(_build(field), 'build')}(ctx, reasons)")
        else:
            fn, rule = _expression(field)
            compiled = field.compiled
            # A template's failure points into the template (CompiledTemplate.__call__ says so).
            where = compiled.span if isinstance(compiled, CompiledTemplate) else field.span
            with w.block("try:"):
                if isinstance(compiled, CompiledExpression):
                    _assign(w, value, compiled)
                elif isinstance(compiled, CompiledTemplate) and compiled.translated is not None:
                    _translated(w, value, compiled, compiled.translated)
                else:
                    w.line(f"{value} = {w.bind(fn, 'fn')}(ctx)")
            with w.block("except EvaluationError as exc:"):
                rule_name, span = w.bind(rule, "rule"), w.bind(where, "span")
                w.line(f"reasons.append(Reason(exc.code, exc.message, {rule_name}, exc.span or {span}))")
                w.line(f"{value} = None")
        if keep_empty:
            w.line(f"{target}[{name}] = {value}")
        else:
            with w.block(f'if {value} is not None and {value} != "":'):
                w.line(f"{target}[{name}] = {value}")


def _defaults(w: _Writer, set_by_rules: set[str]) -> None:
    """Standard fields a rule file did not set come from the catalog, so payloads are complete.
    Which ones is known now: every field the rule file names is in ``fields``, null or not."""
    if "images" not in set_by_rules:
        w.line('fields["images"] = [image.url for image in sku.images]')
    for key, owner, attribute in (
        ("gtin", "sku", "ean"),
        ("brand", "record.product", "brand"),
        ("mpn", "sku", "mpn"),
        ("description", "record.product", "description"),
    ):
        if key not in set_by_rules:
            with w.block(f"if {owner}.{attribute}:"):
                w.line(f'fields["{key}"] = {owner}.{attribute}')


def _variations(w: _Writer, evaluator: SkuEvaluator) -> None:
    w.line("group = None")
    w.line("axes = {}")
    variations = evaluator.compiled.variations
    if variations is None:
        return
    expression = w.bind(variations.group_by, "x")
    with w.block("try:"):
        _assign(w, "value", variations.group_by)
        w.line("group = None if value is None else str(value)")
    with w.block("except EvaluationError as exc:"):
        w.line(f'reasons.append(_reason(exc, "variations.group_by", {expression}))')
    w.line('attributes = fields.get("attributes")')
    with w.block("if not isinstance(attributes, dict) or not attributes:"):
        w.line("attributes = None")
    for axis in variations.axes:
        name = w.bind(axis, "key")
        w.line(
            f"axes[{name}] = fields.get({name}) if attributes is None "
            f"else attributes.get({name}, fields.get({name}))"
        )


def _figure(w: _Writer, target: str, figure: CompiledExpression | Decimal | None) -> None:
    """``target = `` the figure's value for this SKU: a number or null (see :func:`_number`)."""
    if figure is None:
        w.line(f"{target} = None")
    elif isinstance(figure, Decimal):
        w.line(f"{target} = {w.bind(figure, 'k')}")
    else:
        _assign(w, target, figure)
        with w.block(f"if {target} is not None and {target}.__class__ is not Decimal:"):
            w.line(f"{target} = _number({target}, {w.bind(figure, 'x')})")


def _price(w: _Writer, evaluator: SkuEvaluator) -> None:
    """Price, bounds and sale price: a failure anywhere leaves the SKU with neither price."""
    rule = evaluator.compiled.price
    value_x, span = w.bind(rule.value, "x"), w.bind(rule.value.span, "span")
    w.line("price = sale_price = None")
    w.line(f'provenance["price"] = {span}')
    with w.block("try:"):
        _figure(w, "value", rule.value)
        with w.block("if value is None:"):
            w.line(
                f'reasons.append(Reason("TP923", "price is null (a field it reads is missing)", '
                f'"price.value", {span}))'
            )
        with w.block("else:"):
            _rounding(w, evaluator, "price", "value")
            with w.block("if price <= 0:"):
                w.line(
                    'reasons.append(Reason("TP923", f"price {price} is not positive", '
                    f'"price.value", {span}))'
                )
                w.line("price = None")
            with w.block("else:"):
                _figure(w, "low", rule.min)  # None without a minimum: the sale price is held to it too
                _broken_bound(w, "low", rule.min, "<", "below the minimum", "price.min")
                if rule.max is not None:
                    _figure(w, "high", rule.max)
                    _broken_bound(w, "high", rule.max, ">", "above the maximum", "price.max")
                if rule.sale is not None:
                    _sale(w, evaluator, rule.sale)
    with w.block("except EvaluationError as exc:"):
        w.line(f'reasons.append(_reason(exc, "price", {value_x}))')
        w.line("price = sale_price = None")


def _broken_bound(
    w: _Writer, target: str, figure: CompiledExpression | None, op: str, words: str, rule: str
) -> None:
    """A reason when the price breaks the bound named ``target`` (shown as :func:`_bound` shows it)."""
    if figure is None:
        return
    span = w.bind(figure.span, "span")
    with w.block(f"if {target} is not None and price {op} {target}:"):
        w.line(
            f'reasons.append(Reason("TP924", f"price {{price}} is {words} {{_bound({target}, price)}}", '
            f'"{rule}", {span}))'
        )


def _sale(w: _Writer, evaluator: SkuEvaluator, sale: CompiledExpression) -> None:
    """The sale price, or None; one not below the price is dropped with a note (explain shows it)."""
    span = w.bind(sale.span, "span")
    _figure(w, "sale", sale)
    with w.block("if sale is not None:"):
        _rounding(w, evaluator, "sale_price", "sale")
        with w.block("if sale_price >= price:"):
            w.line(
                'notes.append(Reason("TP926", f"sale price {sale_price} is not below the price {price}: '
                f'no sale price is sent", "price.sale", {span}))'
            )
            w.line("sale_price = None")
        with w.block("elif low is not None and sale_price < low:"):
            w.line(
                'reasons.append(Reason("TP924", f"sale price {sale_price} is below the minimum '
                f'{{_bound(low, sale_price)}}", "price.sale", {span}))'
            )
        with w.block("if sale_price is not None:"):
            w.line(f'provenance["sale_price"] = {span}')


def _rounding(w: _Writer, evaluator: SkuEvaluator, target: str, source: str) -> None:
    """``target = `` the figure in ``source`` rounded: ``price.round`` (if any), then to the currency's
    places. Written in place for the price and again for the sale price (a call each cost more than
    the rounding); a failure raises, for the price step's ``try`` to make it the SKU's reason."""
    rule = evaluator.compiled.price
    if rule.round is not None:
        w.line(f"ctx.value = {source}")
        _figure(w, "rounded", rule.round)
        with w.block("if rounded is None:"):
            span = w.bind(rule.round.span, "span")
            w.line(f'raise EvaluationError("price.round gave null", {span}, code="TP923")')
        source = "rounded"
    exponent = w.bind(evaluator.exponent, "k")
    with w.block("try:"):
        w.line(f"{target} = {source}.quantize({exponent}, rounding=ROUND_HALF_UP)")
    with w.block("except ArithmeticError:"):
        w.line(
            f'raise LimitExceeded(f"the price {{{source}}} is too large to round to the currency", None) '
            "from None"
        )


def _quantity(w: _Writer, evaluator: SkuEvaluator) -> None:
    rule = evaluator.compiled.stock
    most, least, part = (_folded(rule.max), _folded(rule.safety), _folded(rule.share))
    warehouses, span = w.bind(rule.warehouses, "wh"), w.bind(rule.span, "span")
    unlimited = w.bind(UNLIMITED_QUANTITY, "k")
    w.line("quantity = None")
    with w.block("try:"):
        _figure(w, "maximum", most)
        w.line("stock = record.stock")
        with w.block(f"if stock.unlimited_in({warehouses}):"):
            w.line(f"quantity = int(maximum) if maximum is not None else {unlimited}")
        with w.block("else:"):
            w.line(f"available = available_units(stock, {warehouses})")
            _figure(w, "safety", least)
            w.line("safety = safety or 0")
            _figure(w, "share", part)
            w.line(f"share = {w.bind(Decimal(1), 'k')} if share is None else share")
            w.line(
                f"quantity = int((max({w.bind(Decimal(0), 'k')}, Decimal(available) - safety) * share)"
                ".to_integral_value(ROUND_FLOOR))"
            )
            with w.block("if maximum is not None:"):
                w.line("quantity = min(quantity, int(maximum))")
            w.line("quantity = max(quantity, 0)")
    with w.block("except EvaluationError as exc:"):
        w.line('reasons.append(_reason(exc, "stock", None))')
        w.line("quantity = None")
    with w.block("except ArithmeticError as exc:  # a safety or share past the decimal range"):
        w.line(
            'reasons.append(Reason("TP905", f"the stock figures went out of range ({type(exc).__name__})", '
            f'"stock", {span}))'
        )
        w.line("quantity = None")


def _require(w: _Writer, evaluator: SkuEvaluator) -> None:
    """The rule file's checks, on the listing as built (its price, quantity and category included)."""
    rules = evaluator.compiled.require
    if not rules:
        return
    read = _listing_read(rules)
    if read is None:
        w.line(f"ctx.listing = {{**fields, {', '.join(f'{k!r}: {v}' for k, v in _BUILT.items())}}}")
    else:  # the fields the checks read by name, and no copy of the others
        entries = [f"{w.bind(n, 'key')}: {_BUILT.get(n) or _got(w, n)}" for n in read]
        w.line(f"ctx.listing = {{{', '.join(entries)}}}")
    for rule in rules:
        expression, span = w.bind(rule.check, "x"), w.bind(rule.check.span, "span")
        fallback = w.bind(f"check failed: {rule.check.source}", "msg")
        with w.block("try:"):
            _assign(w, "passed", rule.check)
            with w.block("if passed is not True:"):
                if callable(rule.message):
                    w.line(f"message = {w.bind(rule.message, 'msgfn')}(ctx)")
                else:
                    w.line(f"message = {w.bind(rule.message, 'msg')}")
                w.line(f'reasons.append(Reason("TP922", message or {fallback}, "require", {span}))')
        with w.block("except EvaluationError as exc:"):
            w.line(f'reasons.append(_reason(exc, "require", {expression}))')


_BUILT = {"category": "category", "price": "price", "sale_price": "sale_price", "quantity": "quantity"}
"""What ``listing`` holds besides its fields, for the require checks, and the names holding them."""


def _listing_read(rules: Sequence[RequireRule]) -> list[str] | None:
    """The listing's fields the require checks and their messages read, when each reads them by name
    only (``listing.title``): the steps then put those in ``ctx.listing``, rather than a copy of every
    field. None when one reads the listing otherwise (whole, by a computed key, through a call)."""
    names: list[str] = []
    for rule in rules:
        expressions = [rule.check]
        if isinstance(rule.message, CompiledTemplate):
            if rule.message.translated is not None:
                expressions.append(rule.message.translated)
            elif "listing" in rule.message.names:
                return None  # rendered by jinja2, with the listing given whole
        for expression in expressions:
            read = _fields_read(expression)
            if read is None:
                return None
            names.extend(name for name in read if name not in names)
    return names


def _fields_read(expression: CompiledExpression) -> list[str] | None:
    """The names ``ctx.listing`` is read by in the expression's source: ``ctx.listing.get('NAME')``
    or ``_field(ctx.listing, 'NAME')``; None for any other use of it, or no source to read."""
    lowered = expression.lowered
    if lowered is None:
        return None
    tree = ast.parse(lowered.code, mode="eval")
    parents = {child: node for node in ast.walk(tree) for child in ast.iter_child_nodes(node)}
    names: list[str] = []
    for node in ast.walk(tree):
        if not (isinstance(node, ast.Attribute) and node.attr == "listing" and _is_ctx(node.value)):
            continue
        up = parents.get(node)
        call = parents.get(up) if isinstance(up, ast.Attribute) and up.attr == "get" else up
        if not isinstance(call, ast.Call) or call.keywords:
            return None
        if call.func is up and up is not call and len(call.args) == 1:  # ctx.listing.get('NAME')
            key = call.args[0]
        elif (
            isinstance(call.func, ast.Name)
            and lowered.namespace.get(call.func.id) is RUNTIME["_field"]
            and len(call.args) == 2
            and call.args[0] is node
        ):
            key = call.args[1]
        else:
            return None
        if not (isinstance(key, ast.Constant) and isinstance(key.value, str)):
            return None
        names.append(key.value)
    return names


def _got(w: _Writer, name: str) -> str:
    return f"fields.get({w.bind(name, 'key')})"


def _is_ctx(node: ast.expr) -> bool:
    return isinstance(node, ast.Name) and node.id == "ctx"


def _build(field: ContentField) -> Builder:
    """A list field's builder (a list's items are built one by one; null ones left out)."""
    kind = field.kind
    if kind == "literal":
        literal = field.value
        return lambda ctx, reasons: literal
    if kind == "mapping":
        assert isinstance(field.children, dict)
        children = [(key, _build(child)) for key, child in field.children.items()]

        def mapping(ctx: Context, reasons: list[Reason]) -> dict[str, Any]:
            out = {}
            for key, build in children:
                value = build(ctx, reasons)
                if value is not None and value != "":
                    out[key] = value
            return out

        return mapping
    if kind == "list":
        assert isinstance(field.children, list)
        items = [_build(child) for child in field.children]
        return lambda ctx, reasons: [v for build in items if (v := build(ctx, reasons)) is not None]
    fn, rule = _expression(field)

    def evaluated(ctx: Context, reasons: list[Reason]) -> Any:
        try:
            return fn(ctx)
        except EvaluationError as exc:
            reasons.append(Reason(exc.code, exc.message, rule, exc.span or field.span))
            return None

    return evaluated


def _expression(field: ContentField) -> tuple[Callable[[Context], Any], str]:
    """The function of an expression or template field, and the rule its failure names."""
    compiled = field.compiled
    assert compiled is not None
    fn = compiled.fn if isinstance(compiled, CompiledExpression) else compiled
    return fn, "listing." + ".".join(field.path)


def _reason(exc: EvaluationError, rule: str, expression: CompiledExpression | None) -> Reason:
    span = exc.span or (expression.span if expression is not None else None)
    return Reason(exc.code, exc.message, rule, span)


def _number(value: Any, expression: CompiledExpression) -> Decimal:
    """A figure's value that is neither a Decimal nor null: a whole number as a Decimal, or this
    SKU's failure. The checker proves most figures numbers; one read from a table of mixed values
    or an untyped path is only known here, and must fail the SKU, not the run.
    """
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    shown = (
        "true/false"
        if isinstance(value, bool)
        else repr(value)
        if isinstance(value, str)
        else "a list or table"
    )
    raise EvaluationError(f"must be a number, but gave {shown}", expression.span)


def _folded(expression: CompiledExpression | None) -> CompiledExpression | Decimal | None:
    """A figure that reads nothing (``safety: 2``, ``share: 60%``) as its number, computed once;
    any other (or one that is no number: it fails each SKU as :func:`_number` says) as it is."""
    value = None if expression is None else constant_value(expression)
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return Decimal(value)
    return expression


def _bound(bound: Decimal, price: Decimal) -> str:
    """A bound the price broke, with the fewest digits (the price's at least) that still show it.

    The comparison is exact, so a minimum of 84.9947 is written 84.994 next to a price of
    84.99, never "84.99 is below the minimum 84.99"; digits are cut towards the price, so the
    bound shown is never beyond the real one.
    """
    places = max(0, -int(price.as_tuple().exponent))
    towards_price = ROUND_FLOOR if bound > price else ROUND_CEILING
    while places < _MAX_SHOWN_PLACES:
        try:
            shown = bound.quantize(Decimal(1).scaleb(-places), rounding=towards_price)
        except ArithmeticError:  # more digits than the context holds: no rounding needed
            break
        if (shown > price) == (bound > price) and shown != price:
            return format(shown, "f")
        places += 1
    return format(bound, "f")


_MAX_SHOWN_PLACES = 12
