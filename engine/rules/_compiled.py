"""What a rule file compiles to: the sections as records of callables, ready to run per SKU.

:class:`CompiledRules` is the compiler's only output and the planner's, the order desk's and
`tradepost check --catalog`'s only input; every expression in it is a
:class:`~engine.rules._expressions.CompiledExpression` already type-checked and lowered, every
constant figure already range-checked, so running it can fail only on one SKU's values.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from engine._diagnostics import Span
from engine.rules._expressions import CompiledExpression
from engine.rules._rulefile import RuleFile, Table
from engine.rules._runtime import Context
from engine.rules._templates import CompiledTemplate
from engine.rules._types import ANY, Type


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
    _candidates: dict[tuple[str, ...], list[CategoryChoice]] = field(
        default_factory=dict, init=False, repr=False, compare=False
    )
    """Per path asked: its choices, most specific path first (a catalog has a few hundred paths)."""

    def resolve(self, path: tuple[str, ...] | list[str], ctx: Context) -> CategoryChoice | None:
        parts = path if path.__class__ is tuple else tuple(path)
        candidates = self._candidates.get(parts)
        if candidates is None:
            candidates = [
                choice
                for length in range(len(parts), 0, -1)
                for choice in self.entries.get(parts[:length], ())
            ]
            if len(self._candidates) < 4096:
                self._candidates[parts] = candidates
        for choice in candidates:
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


@dataclass(frozen=True)
class Fee:
    """One rate the marketplace charges: a share of the item price and an amount per unit."""

    commission: Decimal
    fixed: Decimal
    rule: str
    """``fees`` or ``fees.categories.<path>``: the rule that set it."""
    span: Span


@dataclass(frozen=True)
class FeeRules:
    """The ``fees:`` section, every figure a constant: the same for every SKU of a category path,
    so a report can apply it to orders read back from the state store."""

    default: Fee
    categories: dict[tuple[str, ...], Fee]
    places: int
    """Decimal places of the file's currency: every amount is rounded half-up to them."""

    def fee_for(self, category_path: Sequence[str] = ()) -> Fee:
        """The most specific category's fee (a path and its subcategories), else the default."""
        parts = tuple(category_path)
        for length in range(len(parts), 0, -1):
            found = self.categories.get(parts[:length])
            if found is not None:
                return found
        return self.default

    def commission(
        self, unit_price: Decimal, quantity: int = 1, category_path: Sequence[str] = ()
    ) -> Decimal:
        """What the marketplace keeps of ``quantity`` units sold at ``unit_price``: the commission on
        their value plus the fixed fee per unit, rounded half-up to the currency's minor unit."""
        fee = self.fee_for(category_path)
        amount = unit_price * quantity * fee.commission + fee.fixed * quantity
        return amount.quantize(Decimal(1).scaleb(-self.places), ROUND_HALF_UP)

    def margin(self, price: Decimal, cost: Decimal | None, category_path: Sequence[str] = ()) -> SkuMargin:
        """One unit at ``price`` (the buyer's: the sale price while a sale runs), against ``cost``."""
        return SkuMargin(price, self.fee_for(category_path), self.commission(price, 1, category_path), cost)


@dataclass(frozen=True)
class SkuMargin:
    """What one unit sold at ``price`` leaves the store: the marketplace's fee, and the margin over
    VTEX's cost price (None when the catalog record has none)."""

    price: Decimal
    fee: Fee
    commission: Decimal
    cost: Decimal | None

    @property
    def margin(self) -> Decimal | None:
        return None if self.cost is None else self.price - self.commission - self.cost

    @property
    def margin_rate(self) -> Decimal | None:
        margin = self.margin
        if margin is None or not self.price:
            return None
        return (margin / self.price * 100).quantize(Decimal("0.1"), ROUND_HALF_UP)


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
    fees: FeeRules | None = None

    @property
    def marketplace(self) -> str:
        return self.rules.marketplace
