"""Run a compiled rule file over one catalog record: the steps of the plan.

select -> categorize -> build listing -> group variations -> price -> stock ->
require -> the marketplace's own requirements. Every step that fails adds a
:class:`Reason` carrying the rule's file:line:col and the run goes on to the
next SKU; one bad SKU never stops the rest.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import ROUND_CEILING, ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any, TypeAlias

from engine._diagnostics import EvaluationError, Span
from engine.connectors._contract import Connector
from engine.model._catalog import CatalogRecord
from engine.model._listing import Listing, Outcome, Reason
from engine.rules._compiled import CompiledRules, ContentField
from engine.rules._expressions import CompiledExpression, constant_value
from engine.rules._functions import available_units
from engine.rules._limits import LimitExceeded, arm, disarm
from engine.rules._runtime import Context

UNLIMITED_QUANTITY = 999
"""Offered for a SKU with unlimited stock when the rule file sets no stock.max."""


class SkuEvaluator:
    """The compiled steps for one marketplace, applied to records one at a time."""

    def __init__(self, compiled: CompiledRules, connector: Connector) -> None:
        self.compiled = compiled
        self.connector = connector
        self.marketplace = compiled.marketplace
        self.currency = compiled.price.currency
        self.exponent = Decimal(1).scaleb(-compiled.price.places)
        self.listing_spans = {f"listing.{key}": field.span for key, field in compiled.listing.items()}
        for key, field in compiled.listing.items():
            if isinstance(field.children, dict):
                for child_key, child in field.children.items():
                    self.listing_spans[f"listing.{key}.{child_key}"] = child.span
        self.categories_span = compiled.categories_span
        self._fields = _mapping(compiled.listing, keep_empty=True)
        stock = compiled.stock
        self._stock = (_folded(stock.max), _folded(stock.safety), _folded(stock.share))

    def evaluate(self, record: CatalogRecord, explain: bool = False) -> Outcome:
        """The outcome for one record, within one SKU's budget of work (engine.rules._limits)."""
        token = arm()  # not a `with`: two calls fewer per SKU
        try:
            return self._evaluate(record, explain)
        finally:
            disarm(token)

    def _evaluate(self, record: CatalogRecord, explain: bool) -> Outcome:
        sku = record.sku
        ctx = Context(record.product, sku, record.price, record.stock)
        reasons: list[Reason] = []
        provenance: dict[str, Span] = {}
        rules = self.compiled

        for condition in rules.select:
            try:
                if condition.fn(ctx) is not True:
                    return Outcome(
                        sku.id,
                        "excluded",
                        reasons=[
                            Reason("TP920", f"not selected: {condition.source}", "select", condition.span)
                        ],
                    )
            except EvaluationError as exc:
                return Outcome(sku.id, "invalid", reasons=[_reason(exc, "select", condition)])

        category = ""
        try:
            choice = rules.categories.resolve(record.product.category_path, ctx)
        except EvaluationError as exc:
            choice = None
            reasons.append(_reason(exc, "categories", None))
        if choice is None:
            if not reasons:
                path = record.product.category or "(no category)"
                reasons.append(
                    Reason("TP921", f"no category mapping for {path}", "categories", self.categories_span)
                )
        else:
            category = choice.category
            provenance["category"] = choice.span
        ctx.category = category

        fields: dict[str, Any] = self._fields(ctx, reasons)
        if explain:
            for key, field in rules.listing.items():
                provenance[f"listing.{key}"] = field.span
                if isinstance(field.children, dict):
                    for child_key, child in field.children.items():
                        provenance[f"listing.{key}.{child_key}"] = child.span
        _defaults(fields, record)
        ctx.listing = fields

        group: str | None = None
        axes: dict[str, Any] = {}
        if rules.variations is not None:
            try:
                value = rules.variations.group_by.fn(ctx)
                group = None if value is None else str(value)
            except EvaluationError as exc:
                reasons.append(_reason(exc, "variations.group_by", rules.variations.group_by))
            attributes = fields.get("attributes") if isinstance(fields.get("attributes"), dict) else {}
            for axis in rules.variations.axes:
                axes[axis] = attributes.get(axis, fields.get(axis)) if attributes else fields.get(axis)

        notes: list[Reason] = []
        price, sale_price = self._price(ctx, reasons, provenance, notes)
        quantity = self._quantity(record, ctx, reasons)

        if reasons:
            return Outcome(sku.id, "invalid", reasons=reasons, provenance=provenance)

        assert price is not None and quantity is not None
        listing = Listing(
            sku.id,
            sku.product_id,
            self.marketplace,
            category,
            fields,
            price,
            self.currency,
            quantity,
            sale_price,
            group,
            axes,
        )
        ctx.listing = {
            **fields,
            "category": category,
            "price": price,
            "sale_price": sale_price,
            "quantity": quantity,
        }
        for rule in rules.require:
            try:
                passed = rule.check.fn(ctx) is True
                if not passed:
                    message = rule.message(ctx) if callable(rule.message) else rule.message
                    reasons.append(
                        Reason(
                            "TP922",
                            message or f"check failed: {rule.check.source}",
                            "require",
                            rule.check.span,
                        )
                    )
            except EvaluationError as exc:
                reasons.append(_reason(exc, "require", rule.check))
        found = self.connector.check(listing)
        seen = {r.message for r in reasons} if found else set()
        for reason in found:
            if reason.message in seen:  # the rule file already checks the same thing
                continue
            span = self.listing_spans.get(reason.rule) or self.listing_spans.get(
                reason.rule.rsplit(".", 1)[0]
            )
            reasons.append(Reason(reason.code, reason.message, f"{self.marketplace}: {reason.rule}", span))
        if reasons:
            return Outcome(sku.id, "invalid", reasons=reasons, provenance=provenance)
        return Outcome(sku.id, "listed", listing=listing, provenance=provenance, notes=notes)

    def _price(
        self, ctx: Context, reasons: list[Reason], provenance: dict[str, Span], notes: list[Reason]
    ) -> tuple[Decimal | None, Decimal | None]:
        rule = self.compiled.price
        provenance["price"] = rule.value.span
        try:
            value = _figure(rule.value, ctx)
            if value is None:
                reasons.append(
                    Reason(
                        "TP923", "price is null (a field it reads is missing)", "price.value", rule.value.span
                    )
                )
                return None, None
            price = self._round(ctx, value)
            if price <= 0:
                reasons.append(
                    Reason("TP923", f"price {price} is not positive", "price.value", rule.value.span)
                )
                return None, None
            low = _figure(rule.min, ctx)
            if low is not None and price < low:
                assert rule.min is not None
                reasons.append(
                    Reason(
                        "TP924",
                        f"price {price} is below the minimum {_bound(low, price)}",
                        "price.min",
                        rule.min.span,
                    )
                )
            high = _figure(rule.max, ctx)
            if high is not None and price > high:
                assert rule.max is not None
                reasons.append(
                    Reason(
                        "TP924",
                        f"price {price} is above the maximum {_bound(high, price)}",
                        "price.max",
                        rule.max.span,
                    )
                )
            sale_price = self._sale(ctx, price, low, reasons, notes)
            if sale_price is not None and rule.sale is not None:
                provenance["sale_price"] = rule.sale.span
            return price, sale_price
        except EvaluationError as exc:
            reasons.append(_reason(exc, "price", rule.value))
            return None, None

    def _sale(
        self, ctx: Context, price: Decimal, low: Decimal | None, reasons: list[Reason], notes: list[Reason]
    ) -> Decimal | None:
        """The sale price, or None; one not below the price is dropped with a note (explain shows it)."""
        rule = self.compiled.price.sale
        sale = _figure(rule, ctx)
        if rule is None or sale is None:
            return None
        sale_price = self._round(ctx, sale)
        if sale_price >= price:
            message = f"sale price {sale_price} is not below the price {price}: no sale price is sent"
            notes.append(Reason("TP926", message, "price.sale", rule.span))
            return None
        if low is not None and sale_price < low:
            message = f"sale price {sale_price} is below the minimum {_bound(low, sale_price)}"
            reasons.append(Reason("TP924", message, "price.sale", rule.span))
        return sale_price

    def _round(self, ctx: Context, value: Decimal) -> Decimal:
        rule = self.compiled.price
        if rule.round is not None:
            ctx.value = value
            rounded = _figure(rule.round, ctx)
            if rounded is None:
                raise EvaluationError("price.round gave null", rule.round.span, code="TP923")
            value = rounded
        try:
            return value.quantize(self.exponent, rounding=ROUND_HALF_UP)  # a Decimal: _figure's
        except ArithmeticError:
            raise LimitExceeded(f"the price {value} is too large to round to the currency", None) from None

    def _quantity(self, record: CatalogRecord, ctx: Context, reasons: list[Reason]) -> int | None:
        rule = self.compiled.stock
        most, least, part = self._stock
        try:
            maximum = _figure(most, ctx)
            stock = record.stock
            if stock.unlimited_in(rule.warehouses):
                return int(maximum) if maximum is not None else UNLIMITED_QUANTITY
            available = available_units(stock, rule.warehouses)
            safety = _figure(least, ctx) or 0
            share = _figure(part, ctx)
            share = Decimal(1) if share is None else share
            quantity = int(
                (max(Decimal(0), Decimal(available) - safety) * share).to_integral_value(ROUND_FLOOR)
            )
            if maximum is not None:
                quantity = min(quantity, int(maximum))
            return max(quantity, 0)
        except EvaluationError as exc:
            reasons.append(_reason(exc, "stock", None))
            return None
        except ArithmeticError as exc:  # a safety or share past the decimal range: this SKU's failure
            reasons.append(
                Reason(
                    "TP905", f"the stock figures went out of range ({type(exc).__name__})", "stock", rule.span
                )
            )
            return None


Builder = Callable[[Context, list[Reason]], Any]
Step: TypeAlias = tuple[str, Callable[[Context], Any] | None, Builder | None, str, Span]
"""One entry of a mapping: its key, then its expression's function with the rule and span a
failure names, or (for a literal, a list or a nested mapping) its builder."""


def _build(field: ContentField) -> Builder:
    kind = field.kind
    if kind == "literal":
        literal = field.value
        return lambda ctx, reasons: literal
    if kind == "mapping":
        assert isinstance(field.children, dict)
        return _mapping(field.children, keep_empty=False)
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


def _step(key: str, field: ContentField) -> Step:
    if field.kind in ("literal", "mapping", "list"):
        return key, None, _build(field), "", field.span
    fn, rule = _expression(field)
    return key, fn, None, rule, field.span


def _mapping(children: dict[str, ContentField], keep_empty: bool) -> Builder:
    """A mapping's builder. Its expressions run in one loop, each in a ``try`` of its own (a failure
    is that field's reason, and a null), rather than through a closure per field: a third of the
    cost of building the listing. Without ``keep_empty`` a null or empty value leaves its key out
    (an attribute the SKU does not have)."""
    steps = [_step(key, child) for key, child in children.items()]

    def mapping(ctx: Context, reasons: list[Reason]) -> dict[str, Any]:
        out = {}
        for key, fn, build, rule, span in steps:
            if fn is None:
                value = build(ctx, reasons)  # type: ignore[misc]  # a step has one or the other
            else:
                try:
                    value = fn(ctx)
                except EvaluationError as exc:
                    reasons.append(Reason(exc.code, exc.message, rule, exc.span or span))
                    value = None
            if keep_empty or (value is not None and value != ""):
                out[key] = value
        return out

    return mapping


def _defaults(fields: dict[str, Any], record: CatalogRecord) -> None:
    """Standard fields a rule file did not set come from the catalog, so payloads are complete."""
    if "images" not in fields:
        fields["images"] = [image.url for image in record.sku.images]
    if "gtin" not in fields and record.sku.ean:
        fields["gtin"] = record.sku.ean
    if "brand" not in fields and record.product.brand:
        fields["brand"] = record.product.brand
    if "mpn" not in fields and record.sku.mpn:
        fields["mpn"] = record.sku.mpn
    if "description" not in fields and record.product.description:
        fields["description"] = record.product.description


def _reason(exc: EvaluationError, rule: str, expression: CompiledExpression | None) -> Reason:
    span = exc.span or (expression.span if expression is not None else None)
    return Reason(exc.code, exc.message, rule, span)


def _figure(expression: CompiledExpression | Decimal | None, ctx: Context) -> Decimal | None:
    """A figure's value for this SKU: a number or null; anything else is this SKU's failure.

    The checker proves most figures numbers; one read from a table of mixed values or an
    untyped path is only known here, and must fail the SKU, not the run. A figure
    :func:`_folded` already computed is its number.
    """
    if expression is None or isinstance(expression, Decimal):
        return expression
    value = expression.fn(ctx)
    if value is None or isinstance(value, Decimal):
        return value
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
    any other (or one that is no number: it fails each SKU as :func:`_figure` says) as it is."""
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
