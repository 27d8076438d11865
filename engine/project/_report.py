"""`tradepost report`: the seed's KPIs over a window, read from the state store alone.

The contract: every figure is counted from what the state store records (SQLite or PostgreSQL,
the same queries), each defined in the README's "Report and KPIs"; a figure the state does not
record is ``None`` in the data and a sentence in :attr:`Report.not_recorded`, never guessed.
Money is :class:`~decimal.Decimal`, commissions come from the rule file's ``fees:`` section
(:class:`~engine.rules.FeeRules`), rounded half-up per order line. Data only: the CLI renders it
(terminal, JSON, HTML) and the dashboard reuses :func:`compute_report`.

The window counts what happened in it: orders *received* in it (and what became of them since),
apply runs *ended* in it. Listings, errors and the queue are as they are now.
"""

from __future__ import annotations

import json
import statistics
import time
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

from pydantic import ValidationError

from engine._diagnostics import TradepostError
from engine.model._order import Order
from engine.orders._store import OrderStore
from engine.project._config import Project
from engine.project._rulecheck import compile_rules
from engine.rules._compiled import FeeRules
from engine.state._store import StateError, StateStore

DAY = 86400.0
PLACED_EVENT = "placed in VTEX"
"""The order event that records an order's placement in VTEX (``engine.orders._flow``)."""
SHIPPED_EVENT = "every item shipped and confirmed"
"""The order event that records an order's last package confirmed on the marketplace."""
OVERSOLD_DETAIL = "VTEX has % of SKU % in stock; order % needs %"
"""How an order VTEX could not fill from stock is recorded: an ``error`` event, this message."""
IN_VTEX = ("placed", "ready", "shipped")
"""States of an order placed in VTEX and neither cancelled nor returned: its total is revenue."""
_CENT = Decimal("0.01")

NOT_RECORDED = (
    "out-of-stock incidents past: the state keeps each listing's last quantity sent, so only the "
    "SKUs listed at 0 now are counted, not earlier stock-outs since restocked",
    "the marketplace's own status of a listing (active, paused, under review): not recorded; "
    "'active' counts the SKUs listed with a quantity above 0",
    "stock sync lag before this version, and older than 90 days: notification_lags keeps no more",
    "cost of goods: the state records no cost price, so margin is revenue less commission; "
    "`tradepost explain SKU -m M` shows the margin against VTEX's cost price per SKU",
    "per-category fees: the state records no SKU's category, so the report applies each file's "
    "default fees: rate (explain applies the category's)",
)
"""What the report cannot count from the state store, said with every report."""


@dataclass(frozen=True)
class Durations:
    """How long something took, over the orders (or notifications) that did it, in seconds."""

    count: int
    mean: float | None
    median: float | None
    longest: float | None

    @classmethod
    def of(cls, seconds: Sequence[float]) -> Durations:
        if not seconds:
            return cls(0, None, None, None)
        return cls(len(seconds), statistics.fmean(seconds), statistics.median(seconds), max(seconds))

    def to_dict(self) -> dict[str, Any]:
        return {
            "count": self.count,
            "mean_seconds": _rounded(self.mean),
            "median_seconds": _rounded(self.median),
            "longest_seconds": _rounded(self.longest),
        }


@dataclass(frozen=True)
class ProductKpis:
    """Listings and sync outcomes of one marketplace."""

    exported: int
    """Listings the state holds (created on the marketplace and not deleted)."""
    active: int
    """Of those, listed with a quantity above 0."""
    out_of_stock: int
    """Of those, listed with quantity 0 now."""
    pending: int
    """Submissions sent and still to confirm (asynchronous marketplaces)."""
    with_errors: int
    """SKUs whose last change failed."""
    invalid: int
    """Records the last plan found invalid and listed nowhere."""
    applied: int
    """SKUs applied by the apply runs ended in the window."""
    failed: int
    """SKUs those runs failed."""
    runs: int

    @property
    def success_rate(self) -> float | None:
        sent = self.applied + self.failed
        return None if sent == 0 else self.applied / sent

    def to_dict(self) -> dict[str, Any]:
        return {
            "exported": self.exported,
            "active": self.active,
            "out_of_stock": self.out_of_stock,
            "pending": self.pending,
            "with_errors": self.with_errors,
            "invalid": self.invalid,
            "apply_runs": self.runs,
            "applied": self.applied,
            "failed": self.failed,
            "sync_success_rate": _rounded(self.success_rate, 4),
        }


@dataclass(frozen=True)
class OrderKpis:
    """The orders of one marketplace received in the window, and what became of them."""

    received: int
    per_day: dict[str, int]
    """UTC day -> orders received that day, every day of the window."""
    by_state: dict[str, int]
    decisions: dict[str, int]
    """Price-divergence decision -> orders (approve, hold, reject)."""
    average_value: Decimal | None
    """Mean total (items and shipping) of the orders received."""
    to_placement: Durations
    to_shipment: Durations
    oversold: int
    """Orders VTEX refused to place for want of stock."""
    currency: str | None

    @property
    def cancelled(self) -> int:
        return self.by_state.get("cancelled", 0)

    @property
    def returned(self) -> int:
        return self.by_state.get("returned", 0)

    @property
    def cancellation_rate(self) -> float | None:
        return None if not self.received else self.cancelled / self.received

    def to_dict(self) -> dict[str, Any]:
        return {
            "received": self.received,
            "per_day": self.per_day,
            "by_state": dict(sorted(self.by_state.items())),
            "cancelled": self.cancelled,
            "cancellation_rate": _rounded(self.cancellation_rate, 4),
            "returned": self.returned,
            "held": self.by_state.get("held", 0),
            "oversold": self.oversold,
            "average_order_value": _money(self.average_value),
            "currency": self.currency,
            "to_vtex_placement": self.to_placement.to_dict(),
            "to_shipment": self.to_shipment.to_dict(),
            "divergence_decisions": dict(sorted(self.decisions.items())),
        }


@dataclass(frozen=True)
class Financials:
    """Revenue of the orders in VTEX (received in the window), and what the marketplace keeps."""

    revenue: Decimal
    items_value: Decimal
    commission: Decimal | None
    """None when the rule file has no ``fees:`` section (or does not compile)."""
    fees_source: str
    currency: str | None

    @property
    def margin(self) -> Decimal | None:
        """Revenue less commission (cost of goods is not recorded)."""
        return None if self.commission is None else self.revenue - self.commission

    @property
    def margin_rate(self) -> float | None:
        margin = self.margin
        return None if margin is None or not self.revenue else float(margin / self.revenue)

    def to_dict(self) -> dict[str, Any]:
        return {
            "revenue": _money(self.revenue),
            "items_value": _money(self.items_value),
            "commission": _money(self.commission),
            "margin": _money(self.margin),
            "margin_rate": _rounded(self.margin_rate, 4),
            "currency": self.currency,
            "fees": self.fees_source,
        }


@dataclass(frozen=True)
class MarketplaceReport:
    name: str
    products: ProductKpis
    orders: OrderKpis
    financials: Financials
    sync_lag: Durations
    """Notification received -> this marketplace's outcome recorded, for the outcomes of the window."""

    def to_dict(self) -> dict[str, Any]:
        return {
            "products": self.products.to_dict(),
            "orders": self.orders.to_dict(),
            "inventory": {
                "out_of_stock": self.products.out_of_stock,
                "oversold_orders": self.orders.oversold,
                "stock_sync_lag": self.sync_lag.to_dict(),
            },
            "financial": self.financials.to_dict(),
        }


@dataclass(frozen=True)
class Report:
    """Every marketplace's KPIs over one window."""

    since: float
    until: float
    marketplaces: list[MarketplaceReport]
    not_recorded: list[str] = field(default_factory=lambda: list(NOT_RECORDED))

    @property
    def days(self) -> float:
        return max(self.until - self.since, 0.0) / DAY

    def to_dict(self) -> dict[str, Any]:
        return {
            "since": _iso(self.since),
            "until": _iso(self.until),
            "marketplaces": {m.name: m.to_dict() for m in self.marketplaces},
            "not_recorded": self.not_recorded,
        }


def project_report(
    project: Project, state: StateStore, names: Sequence[str], since: float, now: float | None = None
) -> Report:
    """:func:`compute_report` with each marketplace's ``fees:`` read from its rule file."""
    fees = {name: _fees_of(project, name) for name in names}
    return compute_report(state, names, since=since, now=now, fees=fees)


def _fees_of(project: Project, name: str) -> FeeRules | str:
    """The marketplace's fees, or why there are none (the sentence the report shows)."""
    path = project.rules_path(name)
    try:
        fees = compile_rules(path).fees
    except TradepostError:
        return f"{path} does not compile (`tradepost check`): no commission computed"
    return fees if fees is not None else f"{path} has no fees: section: no commission computed"


def compute_report(
    state: StateStore,
    marketplaces: Sequence[str],
    *,
    since: float,
    now: float | None = None,
    fees: Mapping[str, FeeRules | str] | None = None,
) -> Report:
    """The KPIs of ``marketplaces`` over ``since`` .. ``now`` (see the module's contract).

    ``fees``: marketplace -> its fee rules, or a sentence why there are none.
    """
    now = time.time() if now is None else now
    OrderStore(state)  # the order tables, made on a store that has never seen an order
    given = fees or {}
    found = [_marketplace(state, name, since, now, given.get(name, "no fees given")) for name in marketplaces]
    return Report(since, now, found)


@dataclass(frozen=True)
class _Received:
    """An order received in the window: what the KPIs read of its row."""

    order_id: str
    received_at: float
    state: str
    decision: str
    order: Order


def _received(state: StateStore, name: str, since: float, now: float) -> list[_Received]:
    """The marketplace's orders received in the window (the window in SQL: a store keeps years)."""
    rows = state.db.execute(
        "SELECT order_id, received_at, state, decision, order_json FROM orders "
        "WHERE marketplace = ? AND received_at >= ? AND received_at <= ? ORDER BY received_at, order_id",
        (name, since, now),
    )
    found = []
    for order_id, received_at, current, decision, order_json in rows:
        try:
            decided = json.loads(decision).get("decision", "unknown")
            order = Order.model_validate_json(order_json)
        except (ValueError, AttributeError, ValidationError):
            raise StateError(
                f"state store {state.url}: {name} order {order_id} cannot be read; `tradepost orders show "
                f"{order_id}` says why"
            ) from None
        found.append(_Received(str(order_id), float(received_at), str(current), str(decided), order))
    return found


def _marketplace(
    state: StateStore, name: str, since: float, now: float, fees: FeeRules | str
) -> MarketplaceReport:
    received = _received(state, name, since, now)
    return MarketplaceReport(
        name,
        _products(state, name, since),
        _orders(state, name, received, since, now),
        _financials(received, fees),
        Durations.of(_sync_lags(state, name, since, now)),
    )


def _products(state: StateStore, name: str, since: float) -> ProductKpis:
    db = state.db
    (exported, active) = db.execute(
        "SELECT count(*), coalesce(sum(CASE WHEN quantity > 0 THEN 1 ELSE 0 END), 0) FROM listings "
        "WHERE marketplace = ?",
        (name,),
    ).fetchone()
    runs = [summary for kind, _, _, summary in state.runs(name, since) if kind == "apply"]
    return ProductKpis(
        exported=int(exported),
        active=int(active),
        out_of_stock=int(exported) - int(active),
        pending=len(state.pending(name)),
        with_errors=len(state.errors(name)),
        invalid=sum(1 for _ in state.invalid_reasons(name)),
        applied=sum(_count(summary, "applied") for summary in runs),
        failed=sum(_count(summary, "failed") for summary in runs),
        runs=len(runs),
    )


def _count(summary: Mapping[str, Any], key: str) -> int:
    value = summary.get(key, 0)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def _orders(state: StateStore, name: str, received: list[_Received], since: float, now: float) -> OrderKpis:
    ids = {o.order_id: o.received_at for o in received}
    events = _first_events(state, name, (PLACED_EVENT, SHIPPED_EVENT))
    totals = [o.order.total for o in received]
    currencies = sorted({o.order.currency for o in received})
    return OrderKpis(
        received=len(received),
        per_day=_per_day((o.received_at for o in received), since or _first(received, now), now),
        by_state=dict(Counter(o.state for o in received)),
        decisions=dict(Counter(o.decision for o in received)),
        average_value=_average(totals),
        to_placement=Durations.of(_after(events.get(PLACED_EVENT, {}), ids)),
        to_shipment=Durations.of(_after(events.get(SHIPPED_EVENT, {}), ids)),
        oversold=len(_oversold(state, name) & ids.keys()),
        currency=", ".join(currencies) or None,
    )


def _first(received: list[_Received], now: float) -> float:
    return min((o.received_at for o in received), default=now)


def _first_events(state: StateStore, name: str, events: Sequence[str]) -> dict[str, dict[str, float]]:
    """Event -> order -> when it first happened."""
    found: dict[str, dict[str, float]] = {event: {} for event in events}
    rows = state.db.execute(
        f"SELECT event, order_id, min(at) FROM order_events WHERE marketplace = ? "
        f"AND event IN ({', '.join('?' * len(events))}) GROUP BY event, order_id",
        (name, *events),
    )
    for event, order_id, at in rows:
        found[str(event)][str(order_id)] = float(at)
    return found


def _after(happened: Mapping[str, float], received: Mapping[str, float]) -> list[float]:
    return [max(0.0, at - received[order]) for order, at in happened.items() if order in received]


def _oversold(state: StateStore, name: str) -> set[str]:
    rows = state.db.execute(
        "SELECT DISTINCT order_id FROM order_events "
        "WHERE marketplace = ? AND event = 'error' AND detail LIKE ?",
        (name, OVERSOLD_DETAIL),
    )
    return {str(order_id) for (order_id,) in rows}


def _per_day(received: Iterable[float], since: float, now: float) -> dict[str, int]:
    """Every UTC day from ``since`` to ``now`` -> orders received that day (0 included)."""
    days = {_day(at): 0 for at in _day_starts(since, now)}
    for at in received:
        days[_day(at)] = days.get(_day(at), 0) + 1
    return dict(sorted(days.items()))


def _day_starts(since: float, now: float) -> Iterable[float]:
    at = since - since % DAY
    while at <= now:
        yield at
        at += DAY


def _day(at: float) -> str:
    return time.strftime("%Y-%m-%d", time.gmtime(at))


def _average(values: Sequence[Decimal]) -> Decimal | None:
    if not values:
        return None
    return (sum(values, Decimal(0)) / len(values)).quantize(_CENT, ROUND_HALF_UP)


def _financials(received: list[_Received], fees: FeeRules | str) -> Financials:
    sold = [o.order for o in received if o.state in IN_VTEX]
    revenue = sum((order.total for order in sold), Decimal(0))
    items_value = sum((item.line_value for order in sold for item in order.items), Decimal(0))
    commission: Decimal | None = None
    source = fees if isinstance(fees, str) else _describe(fees)
    if isinstance(fees, FeeRules):
        commission = sum(
            (fees.commission(item.unit_price, item.quantity) for order in sold for item in order.items),
            Decimal(0),
        )
    currencies = sorted({order.currency for order in sold})
    return Financials(revenue, items_value, commission, source, ", ".join(currencies) or None)


def _describe(fees: FeeRules) -> str:
    fee = fees.default
    text = f"{(fee.commission * 100).normalize():f}% of the item price"
    if fee.fixed:
        text += f" + {fee.fixed} per unit"
    return f"{text} ({fee.span.file}:{fee.span.line})"


def _sync_lags(state: StateStore, name: str, since: float, now: float) -> list[float]:
    """Notification received -> this marketplace's outcome recorded, for the outcomes of the window."""
    rows = state.db.execute(
        "SELECT lag FROM notification_lags WHERE marketplace = ? AND recorded_at >= ? AND recorded_at <= ?",
        (name, since, now),
    )
    return [float(lag) for (lag,) in rows]


def _money(value: Decimal | None) -> str | None:
    return None if value is None else str(value.quantize(_CENT, ROUND_HALF_UP))


def _rounded(value: float | None, places: int = 3) -> float | None:
    return None if value is None else round(value, places)


def _iso(at: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(at))
