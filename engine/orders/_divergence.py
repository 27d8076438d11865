"""Decide what happens to an incoming order: approve it into VTEX, hold it for review, or reject it.

The rule file's ``divergence`` section says how far a marketplace price may
stray from the price the rule file gives the SKU now before a human must look
(``approve_within``) and before the order is refused (``hold_within``), and
which order values need a human check (``min_order_value``,
``max_order_value``). Optional ``rules`` decide before any of that.

Decisions, and why:

* ``rules`` run first, in file order, and the first whose ``when`` holds decides
  the order on its own (bands and order value are not consulted): a rule is how
  an author overrides the bands, and an ``approve`` rule that the bands could
  still turn into a hold would be useless. A rule that reads ``item`` is tried
  for each item in turn and holds when it holds for any item; a rule that does
  not is evaluated once with ``item`` null, so ``item.x ?? 0 < 5`` cannot hold
  by accident at order level.
* Divergence is ``|marketplace unit price - our price| / our price``, compared
  exactly: ``|d| <= within * ours`` in Decimal arithmetic that traps any
  rounding, so the bands hold to the last cent and beyond (134.90 with 5% has
  its boundary at 141.645: 141.64 is approved, 141.65 held). "Within" is
  inclusive: exactly ``approve_within`` is approved, exactly ``hold_within`` is
  held, and only what lies beyond ``hold_within`` is rejected. The check is
  symmetric: a buyer paying far more than our price usually means a wrong or
  stale listing, which deserves the same scrutiny.
* The order value is the sum of ``unit_price * quantity`` over the items,
  shipping excluded: shipping is the marketplace's and the carrier's business,
  and including it would let a remote address push a small order over a limit.
  Outside ``[min_order_value, max_order_value]`` (bounds inclusive) the order is
  held, not rejected: a tiny order may be a test or a fee-losing sale and a
  huge one is usually good business that needs fraud and stock checks; both
  are for a human to judge, and rejecting cancels a sale on the marketplace,
  which cannot be undone.
* ``reject(message)`` anywhere in the section is the rule file refusing the
  order: a reject with that message, not an evaluation error.
* Anything the engine cannot decide safely is a hold, never an approve: a SKU
  the rules do not list now, an item or order in another currency than the rule
  file, a figure that is null, negative or not a number, a rule that fails
  (division by zero, a missing field), and a rule file without a
  ``divergence`` section.
* The overall decision is the most severe finding (reject > hold > approve).
  Every finding is kept, approvals included, each with the rule's name and
  file:line:col, so the review queue shows why each item landed where it did.

Personal data never reaches a reason: the messages built here name SKUs,
prices and rules only, and any text that comes out of a rule (an error
message, a ``reject(...)`` text) is scrubbed of the order's personal values,
because a divergence expression can read ``order.buyer`` today.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal, Inexact, InvalidOperation, localcontext
from decimal import Context as DecimalContext
from functools import lru_cache
from typing import TYPE_CHECKING, Any, Literal

from engine._diagnostics import EvaluationError, Rejected, Span
from engine.model._listing import Reason
from engine.model._order import Order, OrderItem
from engine.rules import _ast as A
from engine.rules._expressions import CompiledExpression
from engine.rules._runtime import Context

if TYPE_CHECKING:
    from engine.model._catalog import CatalogRecord
    from engine.rules._compiled import CompiledRules, DivergenceRule
    from engine.sync._evaluate import SkuEvaluator

__all__ = ["Decision", "Finding", "Verdict", "decide", "prices_from_rules"]

Verdict = Literal["approve", "hold", "reject"]
SEVERITY: dict[Verdict, int] = {"approve": 0, "hold": 1, "reject": 2}
_VERDICTS: dict[str, Verdict] = {"approve": "approve", "hold": "hold", "reject": "reject"}

_EXACT = DecimalContext(prec=200, traps=[Inexact, InvalidOperation])
"""Band arithmetic raises instead of rounding: a comparison to the cent must never be off by one."""

_RULE_FAILURES = (TypeError, AttributeError, ValueError, ArithmeticError, KeyError, IndexError)
"""What a divergence expression can raise at run time besides EvaluationError.

``order`` and ``item`` are untyped in the compiler today, so a rule such as
``order.buyer > 3`` or one reading ``price.selling`` (no catalog record is in
scope for an order) compiles and fails here; the order is held, not lost.
"""


@dataclass(frozen=True)
class Finding:
    """One verdict about an order or one of its items, and the reason for it."""

    verdict: Verdict
    reason: Reason

    def to_dict(self) -> dict[str, Any]:
        return {"decision": self.verdict, **self.reason.to_dict()}


@dataclass(frozen=True)
class Decision:
    """What to do with an order, and every finding that led there, in the order checked."""

    decision: Verdict
    findings: tuple[Finding, ...]

    @property
    def reasons(self) -> list[Reason]:
        """Every finding's reason (approvals included), each with the rule's location."""
        return [finding.reason for finding in self.findings]

    def reasons_for(self, verdict: Verdict) -> list[Reason]:
        """The reasons behind one verdict, e.g. what a reviewer must look at for ``hold``."""
        return [finding.reason for finding in self.findings if finding.verdict == verdict]

    def to_dict(self) -> dict[str, Any]:
        """JSON-able, for the state store and ``--json`` output; holds no personal data."""
        return {"decision": self.decision, "reasons": [finding.to_dict() for finding in self.findings]}


def decide(
    order: Order,
    rules: CompiledRules,
    prices: Mapping[str, Decimal | None],
    vtex_prices: Mapping[str, Decimal | None] | None = None,
) -> Decision:
    """Approve, hold or reject ``order`` under the rule file's ``divergence`` section.

    ``prices`` maps each SKU id to the price the rule file gives it now (see
    :func:`prices_from_rules`); None, or a SKU missing from the mapping, means
    the rules do not list it now, and its item is held.

    ``vtex_prices``, when the project asks for it, is VTEX's own price for
    each SKU from a fulfillment simulation: each item must then fall in the
    bands around both prices (the worse finding wins), because VTEX will
    charge the marketplace its own price and a difference is margin lost.
    A SKU VTEX gives no price is held.
    """
    return _Decider(order, rules).run(prices, vtex_prices)


def prices_from_rules(records: Iterable[CatalogRecord], evaluator: SkuEvaluator) -> dict[str, Decimal | None]:
    """The price the rule file gives each SKU now, as the marketplace offers it: what the buyer
    should have paid.

    That is the sale price when the rules set one (the listing only keeps a
    sale price below the regular one), because during a promotion the buyer
    sees and pays the sale price; otherwise the listing price. The evaluator's
    connector has the last word (``Connector.offered_prices``): Mercado Libre shows a
    family of variations at one price, so ``records`` should hold the whole
    family of each ordered SKU. A SKU the rules exclude or find invalid maps to
    None. Both are computed by the same :class:`SkuEvaluator` the plan uses,
    so the check compares against exactly what was (or would be) sent.
    """
    prices: dict[str, Decimal | None] = {}
    listings = []
    for record in records:
        outcome = evaluator.evaluate(record)
        listing = outcome.listing
        prices[record.sku.id] = None
        if outcome.status == "listed" and listing is not None:
            listings.append(listing)
    prices.update(evaluator.connector.offered_prices(listings))
    return prices


class _Decider:
    """The checks for one order; collects findings, then takes the most severe."""

    def __init__(self, order: Order, rules: CompiledRules) -> None:
        self.order = order
        self.rules = rules
        self.currency = rules.price.currency
        self.places = rules.price.places
        self.findings: list[Finding] = []
        self.scrub = _scrubber(order.personal_values())

    def run(
        self, prices: Mapping[str, Decimal | None], vtex_prices: Mapping[str, Decimal | None] | None = None
    ) -> Decision:
        divergence = self.rules.divergence
        if divergence is None:
            self.add(
                "hold",
                "TP940",
                "divergence",
                "the rule file has no divergence section, so every order from this marketplace waits "
                "for review; add approve_within and hold_within to decide automatically",
                Span(self.rules.file, 1, 1),
            )
            return self.result()
        for index, rule in enumerate(divergence.rules):
            if self.matches(rule, f"divergence.rules[{index}]"):
                self.apply_rule(rule, f"divergence.rules[{index}]")
                return self.result()
        if self.order.currency != self.currency:
            self.add(
                "hold",
                "TP943",
                "currency",
                f"the order is in {self.order.currency} but the rule file prices in {self.currency}; "
                "amounts in different currencies cannot be compared",
                None,
            )
        for item in self.order.items:
            self.item(item, prices)
            if vtex_prices is not None and item.currency == self.currency:
                self.vtex_item(item, vtex_prices.get(item.sku_id))
        self.order_value()
        return self.result()

    def add(self, verdict: Verdict, code: str, rule: str, message: str, span: Span | None) -> None:
        finding = Finding(verdict, Reason(code, self.scrub(message), rule, span))
        if finding not in self.findings:
            self.findings.append(finding)

    def result(self) -> Decision:
        worst: Verdict = "approve"
        for finding in self.findings:
            if SEVERITY[finding.verdict] > SEVERITY[worst]:
                worst = finding.verdict
        return Decision(worst, tuple(self.findings))

    def evaluate(
        self, expression: CompiledExpression, ctx: Context, rule: str, label: str
    ) -> tuple[bool, Any]:
        """Run one expression; a failure is recorded as a hold and gives ``(False, None)``.

        ``reject(message)`` is the rule file refusing the order, not a failure: it is a reject.
        """
        try:
            return True, expression.fn(ctx)
        except Rejected as exc:
            self.add("reject", exc.code, rule, f"{label}{exc.message}", exc.span or expression.span)
        except EvaluationError as exc:
            self.add("hold", exc.code, rule, f"{label}{exc.message}", exc.span or expression.span)
        except _RULE_FAILURES as exc:
            self.add(
                "hold",
                "TP900",
                rule,
                f"{label}{expression.source} could not be evaluated ({type(exc).__name__}: {exc}); "
                "divergence rules can read only order and item",
                expression.span,
            )
        return False, None

    def matches(self, rule: DivergenceRule, name: str) -> bool:
        if _reads_item(rule.when.source):
            contexts = [(Context(order=self.order, item=item), _label(item)) for item in self.order.items]
        else:
            contexts = [(Context(order=self.order), "")]
        for ctx, label in contexts:
            ok, value = self.evaluate(rule.when, ctx, name, label)
            if ok and value is True:
                return True
        return False

    def apply_rule(self, rule: DivergenceRule, name: str) -> None:
        verdict = _VERDICTS.get(rule.decision)
        message = rule.reason or f"rule matched: {rule.when.source}"
        if verdict is None:
            verdict = "hold"
            message = f"{message} (unknown decision '{rule.decision}'; held instead)"
        self.add(verdict, "TP941", name, message, rule.when.span)

    def figure(self, expression: CompiledExpression, ctx: Context, rule: str, label: str) -> Decimal | None:
        """A divergence figure as a non-negative Decimal, or None after recording why it is unusable."""
        ok, value = self.evaluate(expression, ctx, rule, label)
        if not ok:
            return None
        problem = None
        if value is None:
            problem = "is null"
        elif isinstance(value, bool) or not isinstance(value, Decimal | int):
            problem = f"is not a number ({type(value).__name__})"
        elif value < 0:
            problem = f"is negative ({value})"
        if problem is not None:
            self.add("hold", "TP947", rule, f"{label}{rule} {problem}: {expression.source}", expression.span)
            return None
        return Decimal(value)

    def item(self, item: OrderItem, prices: Mapping[str, Decimal | None]) -> None:
        divergence = self.rules.divergence
        assert divergence is not None
        label = _label(item)
        if item.currency != self.currency:
            self.add(
                "hold",
                "TP943",
                "currency",
                f"{label}priced in {item.currency} but the rule file prices in {self.currency}; "
                "prices in different currencies cannot be compared",
                None,
            )
            return
        if item.sku_id not in prices:
            message = (
                f"SKU {item.sku_id} is not in the catalog the rules were run over, so it has no price now"
            )
            self.add("hold", "TP942", "prices", message, None)
            return
        ours = prices[item.sku_id]
        if ours is None:
            self.add("hold", "TP942", "prices", f"SKU {item.sku_id} is not listed by the rules now", None)
            return
        if ours <= 0:
            self.add("hold", "TP942", "prices", f"{label}our price {ours} is not positive", None)
            return
        self.band(item, ours, "our")

    def vtex_item(self, item: OrderItem, price: Decimal | None) -> None:
        if price is None or price <= 0:
            self.add(
                "hold",
                "TP942",
                "prices",
                f"{_label(item)}VTEX's fulfillment simulation gives SKU {item.sku_id} no price",
                None,
            )
            return
        self.band(item, price, "VTEX's price")

    def band(self, item: OrderItem, ours: Decimal, whose: str) -> None:
        """Place the item's price in the approve / hold / reject bands around ``ours``."""
        divergence = self.rules.divergence
        assert divergence is not None
        label = _label(item)
        ctx = Context(order=self.order, item=item)
        approve_within = divergence.approve_within
        hold_within = divergence.hold_within
        approve = self.figure(approve_within, ctx, "divergence.approve_within", label)
        hold = self.figure(hold_within, ctx, "divergence.hold_within", label)
        if approve is None or hold is None:
            return
        paid = item.unit_price
        with localcontext(_EXACT):
            distance = abs(paid - ours)
            approve_room = approve * ours
            hold_room = hold * ours
            approve_band = f"{self.money(ours - approve_room)} to {self.money(ours + approve_room)}"
            hold_band = f"{self.money(ours - hold_room)} to {self.money(ours + hold_room)}"
        where = _relation(paid, ours, distance, (approve, hold), (approve_room, hold_room))
        head = f"{label}marketplace price {self.money(paid)} {where} {whose} {self.money(ours)}"
        approve_text = f"approve_within {_percent(approve)} ({approve_band})"
        hold_text = f"hold_within {_percent(hold)} ({hold_band})"
        if distance <= approve_room:
            self.add(
                "approve",
                "TP944",
                "divergence.approve_within",
                f"{head}; within {approve_text}",
                approve_within.span,
            )
        elif distance <= hold_room:
            self.add(
                "hold",
                "TP945",
                "divergence.hold_within",
                f"{head}; beyond {approve_text}, within {hold_text}: held for review",
                hold_within.span,
            )
        else:
            self.add(
                "reject",
                "TP946",
                "divergence.hold_within",
                f"{head}; beyond {hold_text}: rejected",
                hold_within.span,
            )

    def order_value(self) -> None:
        divergence = self.rules.divergence
        assert divergence is not None
        with localcontext(_EXACT):
            value = sum((item.unit_price * item.quantity for item in self.order.items), Decimal(0))
        ctx = Context(order=self.order)
        text = f"order value {self.money(value)} (items only, shipping excluded)"
        low_expression = divergence.min_order_value
        if low_expression is not None:
            low = self.figure(low_expression, ctx, "divergence.min_order_value", "")
            if low is not None and value < low:
                self.add(
                    "hold",
                    "TP948",
                    "divergence.min_order_value",
                    f"{text} is below min_order_value {self.money(low)}: held for review",
                    low_expression.span,
                )
        high_expression = divergence.max_order_value
        if high_expression is not None:
            high = self.figure(high_expression, ctx, "divergence.max_order_value", "")
            if high is not None and value > high:
                self.add(
                    "hold",
                    "TP948",
                    "divergence.max_order_value",
                    f"{text} is above max_order_value {self.money(high)}: held for review",
                    high_expression.span,
                )

    def money(self, value: Decimal) -> str:
        """An amount with the currency's minor unit (100.00), or every digit when it has more (141.645)."""
        exponent = Decimal(1).scaleb(-self.places)
        with localcontext(_EXACT):
            try:
                return f"{value.quantize(exponent):f}"
            except Inexact:
                return f"{value.normalize():f}"


def _label(item: OrderItem) -> str:
    return f"SKU {item.sku_id}: "


def _relation(
    paid: Decimal,
    ours: Decimal,
    distance: Decimal,
    limits: tuple[Decimal, ...],
    rooms: tuple[Decimal, ...],
) -> str:
    """``is 5.01% above``: the divergence, shown with as many decimals as it takes to differ from a limit."""
    if distance == 0:
        return "equals"
    direction = "above" if paid > ours else "below"
    exact = next((limit for limit, room in zip(limits, rooms, strict=True) if distance == room), None)
    if exact is not None:
        return f"is {_percent(exact)} {direction}"
    fraction = distance / ours
    shown = fraction
    for places in range(4, 12):
        shown = fraction.quantize(Decimal(1).scaleb(-places), rounding=ROUND_HALF_UP)
        if all(shown != limit for limit in limits):
            break
    return f"is {_percent(shown)} {direction}"


def _percent(fraction: Decimal) -> str:
    return f"{(fraction * 100).normalize():f}%"


@lru_cache(maxsize=256)
def _reads_item(source: str) -> bool:
    """Whether an expression reads the name ``item`` (not a field called item)."""
    try:
        tree = A.parse_expression(source)
    except A.SyntaxProblem:  # it compiled, so this cannot happen; per item is the safe reading
        return True
    stack: list[A.Expr] = [tree]
    while stack:
        node = stack.pop()
        if isinstance(node, A.Name) and node.name == "item":
            return True
        for child in vars(node).values():
            if isinstance(child, A.Expr):
                stack.append(child)
            elif isinstance(child, list):
                stack.extend(c for c in child if isinstance(c, A.Expr))
    return False


_MIN_SCRUBBED = 4
"""Shorter values (a house number, a state) identify nobody and would mangle prices if replaced."""


def _scrubber(values: Iterable[str]) -> Callable[[str], str]:
    """A function replacing the order's personal values (and the words of names) in a message."""
    needles: set[str] = set()
    for value in values:
        text = value.strip()
        needles.add(text)
        needles.update(text.split())
        digits = re.sub(r"\D", "", text)
        if len(digits) >= 6:  # a CPF written 123.456.789-09 may come out of a rule as 12345678909
            needles.add(digits)
    usable = sorted((n for n in needles if len(n) >= _MIN_SCRUBBED), key=len, reverse=True)
    if not usable:
        return lambda message: message
    pattern = re.compile(r"(?<!\w)(?:" + "|".join(re.escape(n) for n in usable) + r")(?!\w)", re.IGNORECASE)
    return lambda message: pattern.sub("[redacted]", message)
