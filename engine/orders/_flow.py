"""The order state machine: pull marketplace orders, decide, place them in VTEX, and report back.

One :class:`OrderDesk` per marketplace. ``pull`` reads the marketplace's new
and changed orders, decides each new one under the rule file's divergence
section and stores it in its first state; ``push`` moves every open order as
far as it can go (see ``engine.orders._store`` for the states). Every remote
side effect is made safe to repeat, and its outcome is recorded in the state
store right after, so a run killed at any instant is finished by the next run
without losing an order or creating one twice:

* placing in VTEX is keyed by the marketplace order id, which VTEX refuses
  twice for one affiliate: after a crash between VTEX's answer and our
  record, the next run places again, is told the order exists, and records
  the existing VTEX id;
* authorising dispatch, cancelling and confirming a shipment are idempotent
  on both sides (a repeat is answered "already done", which counts as done);
* the pull cursor moves only after every order read has been stored, and
  re-reads an overlap, so an order first seen during a crashed pull comes
  again (and is stored once).

Steps that fail are recorded on the order (message, retryable or not,
attempts) and retried by the next push; the rest of the orders go on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine import failpoints as _failpoints
from engine._diagnostics import TradepostError
from engine.connectors._orderchannel import BadOrder, Fulfilment, OrderCallError, OrderChannel
from engine.connectors._source import VtexPlacement
from engine.model._order import Order
from engine.orders._divergence import Decision, decide
from engine.orders._store import OPEN, OrderState, OrderStore, StoredOrder
from engine.rules._compiled import CompiledRules

__all__ = [
    "OrderDesk",
    "OrderError",
    "PullSummary",
    "PushSummary",
    "RulePrices",
    "VtexPlacement",
    "approve",
    "reject",
]

log = logging.getLogger("tradepost.orders")

PULL_OVERLAP = timedelta(minutes=10)
"""How far back each pull re-reads: marketplace clocks and ours differ, and an order updated
while the previous pull was paging must not fall between two cursors."""

EXIT_PARTIAL = 3


class OrderError(TradepostError):
    """An order command cannot run (unknown order, a state that does not allow the action)."""


@dataclass
class Outcome:
    """What one order went through in a run: the states it passed, or the error that stopped it."""

    marketplace: str
    order_id: str
    state: str
    steps: list[str] = field(default_factory=list)
    error: str | None = None
    retryable: bool | None = None

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "order_id": self.order_id,
            "state": self.state,
            "steps": self.steps,
            "error": self.error,
            "retryable": self.retryable,
        }


@dataclass
class RulePrices:
    """What the rules give each ordered SKU now, and the SKUs whose catalog record could not be
    read at all (VTEX did not answer): orders with those wait for the next pull, undecided,
    rather than being held for a person over a network hiccup."""

    prices: dict[str, Decimal | None]
    unreadable: dict[str, str] = field(default_factory=dict)


@dataclass
class PullSummary:
    marketplace: str
    read: int = 0
    deferred: dict[str, str] = field(default_factory=dict)
    """Orders left for the next pull, and why (the catalog could not be read for their SKUs)."""
    new: dict[str, int] = field(default_factory=dict)
    """New orders by their first state (approved, held, rejected, cancelled)."""
    updated: int = 0
    unreadable: dict[str, str] = field(default_factory=dict)
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.error else EXIT_PARTIAL if self.unreadable or self.deferred else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "read": self.read,
            "deferred": [{"order_id": k, "message": v} for k, v in self.deferred.items()],
            "new": self.new,
            "updated": self.updated,
            "unreadable": [{"order_id": k, "message": v} for k, v in self.unreadable.items()],
            "error": self.error,
        }


@dataclass
class PushSummary:
    marketplace: str
    outcomes: list[Outcome] = field(default_factory=list)
    error: str | None = None

    @property
    def failed(self) -> list[Outcome]:
        return [o for o in self.outcomes if o.error]

    @property
    def exit_code(self) -> int:
        return 1 if self.error else EXIT_PARTIAL if self.failed else 0

    def to_dict(self) -> dict[str, Any]:
        moved = [o for o in self.outcomes if o.steps]
        return {
            "marketplace": self.marketplace,
            "moved": len(moved),
            "failed": len(self.failed),
            "outcomes": [o.to_dict() for o in self.outcomes if o.steps or o.error],
            "error": self.error,
        }


_FIRST_STATE: dict[str, OrderState] = {"approve": "approved", "hold": "held", "reject": "rejected"}


class OrderDesk:
    """One marketplace's orders: pull, push, and the reviewer's approve / reject."""

    def __init__(
        self,
        marketplace: str,
        rules: CompiledRules,
        store: OrderStore,
        channel: OrderChannel | None,
        vtex: VtexPlacement | None,
        prices: Callable[[set[str]], Mapping[str, Decimal | None] | RulePrices],
        *,
        simulate_prices: bool = False,
        concurrency: int = 4,
        clock: Callable[[], datetime] = lambda: datetime.now(UTC),
    ) -> None:
        self.marketplace = marketplace
        self.rules = rules
        self.store = store
        self.channel = channel
        self.vtex = vtex
        self.prices = prices
        self.simulate_prices = simulate_prices
        self.concurrency = max(1, concurrency)
        self.clock = clock

    # -- pull --------------------------------------------------------------------------------

    async def pull(self) -> PullSummary:
        """Read new and changed orders, decide the new ones, store all; move the cursor last."""
        summary = PullSummary(self.marketplace)
        channel = self.channel
        if channel is None:
            summary.error = f"{self.marketplace} takes no orders through Tradepost"
            return summary
        started = self.clock()
        cursor = self.store.cursor(self.marketplace)
        since = datetime.fromisoformat(cursor) - PULL_OVERLAP if cursor else None
        orders: dict[str, Order] = {}
        try:
            async for item in channel.orders(since):
                if isinstance(item, BadOrder):
                    summary.unreadable[item.order_id] = item.message
                else:
                    orders[item.order_id] = item
            for (_, order_id), message in self.store.unreadable(self.marketplace).items():
                if order_id in orders or order_id in summary.unreadable:
                    continue
                try:
                    orders[order_id] = await channel.order(order_id)
                except OrderCallError as exc:
                    summary.unreadable[order_id] = str(exc) if not exc.retryable else message
        except OrderCallError as exc:
            summary.error = str(exc)
            return summary
        summary.read = len(orders)
        _failpoints.reach("pull:read")
        await self._store_pulled(list(orders.values()), summary)
        for order_id, message in summary.unreadable.items():
            self.store.record_unreadable(self.marketplace, order_id, message)
        _failpoints.reach("pull:stored")
        if not summary.deferred:  # a deferred order must come again: the cursor stays where it was
            self.store.set_cursor(self.marketplace, started.isoformat())
        return summary

    async def _store_pulled(self, orders: Sequence[Order], summary: PullSummary) -> None:
        fresh = [o for o in orders if self.store.get(self.marketplace, o.order_id) is None]
        fresh_ids = {o.order_id for o in fresh}
        for order in orders:
            if order.order_id not in fresh_ids:
                self.store.refresh(order)
                summary.updated += 1
            self.store.clear_unreadable(self.marketplace, order.order_id)
        if not fresh:
            return
        skus = {item.sku_id for order in fresh for item in order.items}
        looked_up = self.prices(skus)
        prices = looked_up.prices if isinstance(looked_up, RulePrices) else looked_up
        unreadable = looked_up.unreadable if isinstance(looked_up, RulePrices) else {}
        for order in fresh:
            missing = [item.sku_id for item in order.items if item.sku_id in unreadable]
            if missing:
                summary.deferred[order.order_id] = (
                    f"the catalog could not be read for SKU {missing[0]} ({unreadable[missing[0]]}); "
                    "the order is decided at the next pull"
                )
                continue
            decision = (await self._decide(order, prices)).to_dict()
            if order.shipping_address is None and order.status == "unshipped":
                decision = _hold_without_address(decision)
            state = _FIRST_STATE[decision["decision"]]
            event = f"received: {decision['decision']}"
            if order.status == "cancelled":
                state, event = "cancelled", "received already cancelled on the marketplace"
            elif order.status == "shipped":
                state, event = "shipped", "received already shipped by the marketplace"
            if self.store.insert(order, state, decision, event):
                summary.new[state] = summary.new.get(state, 0) + 1
                log.info("%s order %s: %s", self.marketplace, order.order_id, state)

    async def _decide(self, order: Order, prices: Mapping[str, Decimal | None]) -> Decision:
        vtex_prices: dict[str, Decimal | None] | None = None
        if self.simulate_prices and self.vtex is not None:
            try:
                simulated = await self.vtex.simulate(order)
                vtex_prices = {sku: getattr(item, "price", None) for sku, item in simulated.items()}
            except OrderCallError as exc:
                log.warning(
                    "VTEX simulation for %s order %s failed: %s", self.marketplace, order.order_id, exc
                )
                vtex_prices = {}
        return decide(order, self.rules, prices, vtex_prices)

    # -- push --------------------------------------------------------------------------------

    async def push(self, only: Sequence[str] | None = None) -> PushSummary:
        """Move every open order (or only these) as far as it can go now.

        Orders advance side by side, ``concurrency`` at a time (each order's own steps stay in
        sequence): with VTEX and a marketplace each a few hundred milliseconds away, one order
        at a time would cap an import at a few orders per second. State changes are
        synchronous compare-and-set transactions, so concurrent orders never interleave inside
        one.
        """
        summary = PushSummary(self.marketplace)
        orders = [
            stored
            for stored in self.store.select([self.marketplace], OPEN)
            if not only or stored.order_id in only
        ]
        gate = asyncio.Semaphore(self.concurrency)

        async def advance(stored: StoredOrder) -> Outcome:
            async with gate:
                return await self._advance(stored)

        summary.outcomes = list(await asyncio.gather(*(advance(stored) for stored in orders)))
        return summary

    async def _advance(self, stored: StoredOrder) -> Outcome:
        outcome = Outcome(self.marketplace, stored.order_id, stored.state)
        current: StoredOrder | None = stored
        try:
            while current is not None and current.state in OPEN:
                moved = await self._step(current, outcome)
                if not moved:
                    break
                current = self.store.get(self.marketplace, stored.order_id)
                if current is not None:
                    outcome.state = current.state
                    if current.state == "ready":
                        break  # just authorized: VTEX cannot have invoiced it yet; the next run looks
        except OrderCallError as exc:
            assert current is not None
            self.store.record_error(current, str(exc), exc.retryable)
            outcome.error, outcome.retryable = str(exc), exc.retryable
            log.warning("%s order %s: %s", self.marketplace, stored.order_id, exc)
        return outcome

    async def _step(self, stored: StoredOrder, outcome: Outcome) -> bool:
        """One transition for the order, or False when it must wait (for review, payment, VTEX)."""
        cancelled = stored.cancelled_on_marketplace
        state = stored.state
        if state == "held":
            return cancelled and self._move(
                stored, "cancelled", "cancelled on the marketplace while held", outcome
            )
        if state == "approved":
            accepted = None if cancelled or self.channel is None else await self.channel.accept(stored.order)
            if accepted is not None:  # Mirakl releases the address once the shop accepts
                stored = self.store.refresh(accepted) or stored
                cancelled = stored.cancelled_on_marketplace
            if cancelled:
                return self._move(
                    stored, "cancelled", "cancelled on the marketplace before placement", outcome
                )
            if stored.order.shipping_address is None and stored.marketplace_status == "pending":
                return False  # marketplaces release the address with the payment: wait for it
            vtex = self._vtex()
            _failpoints.reach("place:before")
            placed = await vtex.place(stored.order)
            _failpoints.reach("place:after-vtex")
            detail = f"VTEX order {placed.vtex_order_id}" + ("" if placed.created else " (already there)")
            return self._move(
                stored, "placed", "placed in VTEX", outcome, detail, vtex_order_id=placed.vtex_order_id
            )
        if state == "rejected":
            if cancelled:
                return self._move(stored, "cancelled", "cancelled on the marketplace", outcome)
            reason = stored.note or _reason_of(stored.decision)
            await self._channel().cancel(stored.order, reason)
            _failpoints.reach("cancel:after-marketplace")
            return self._move(stored, "cancelled", "cancelled on the marketplace: rejected", outcome, reason)
        vtex_id = stored.vtex_order_id
        assert vtex_id is not None, f"{state} order without a VTEX id"
        if cancelled:
            return await self._cancel_in_vtex(stored, vtex_id, outcome)
        if state == "placed":
            if stored.payment_status != "paid" or stored.marketplace_status == "pending":
                return False
            await self._vtex().authorize_dispatch(vtex_id, stored.order_id)
            _failpoints.reach("authorize:after-vtex")
            return self._move(stored, "ready", "dispatch authorized in VTEX", outcome)
        # ready: follow VTEX for invoices, tracking and cancellations
        vtex_state = await self._vtex().get(vtex_id)
        if vtex_state.cancelled:
            reason = vtex_state.cancel_reason or "cancelled by the store in VTEX"
            try:
                await self._channel().cancel(stored.order, reason)
            except OrderCallError as exc:
                if exc.retryable or stored.marketplace_status != "shipped":
                    raise
                return self._move(stored, "returned", "cancelled in VTEX after shipment", outcome, str(exc))
            _failpoints.reach("cancel:after-marketplace")
            return self._move(
                stored, "cancelled", "cancelled in VTEX, cancelled on the marketplace", outcome, reason
            )
        return await self._ship(stored, vtex_state.fulfilments, outcome)

    async def _cancel_in_vtex(self, stored: StoredOrder, vtex_id: str, outcome: Outcome) -> bool:
        """The marketplace cancelled an order VTEX has: cancel it there, or record a return."""
        try:
            await self._vtex().cancel(vtex_id, "cancelled on the marketplace")
        except OrderCallError as exc:
            if exc.retryable:
                raise
            return self._move(
                stored,
                "returned",
                "cancelled on the marketplace after VTEX invoiced it: handle as a return",
                outcome,
                str(exc),
            )
        _failpoints.reach("cancel:after-vtex")
        return self._move(stored, "cancelled", "cancelled on the marketplace, cancelled in VTEX", outcome)

    async def _ship(self, stored: StoredOrder, fulfilments: Sequence[Fulfilment], outcome: Outcome) -> bool:
        confirmed = self.store.confirmed_shipments(self.marketplace, stored.order_id)
        channel = self._channel()
        for fulfilment in fulfilments:
            number = fulfilment.invoice.number
            if number in confirmed:
                continue
            if fulfilment.tracking is None and channel.needs_tracking(stored.order):
                continue  # invoiced, not yet handed to a carrier: wait for the tracking number
            await channel.confirm_shipment(stored.order, fulfilment)
            _failpoints.reach("ship:after-marketplace")
            items = list(fulfilment.items) or [(i.sku_id, i.quantity) for i in stored.order.items]
            self.store.record_shipment(stored, number, items)
            confirmed[number] = items
            outcome.steps.append(f"shipment {number} confirmed")
        if confirmed and _covers(stored.order, confirmed.values()):
            return self._move(stored, "shipped", "every item shipped and confirmed", outcome)
        return False

    def _move(
        self,
        stored: StoredOrder,
        to: OrderState,
        event: str,
        outcome: Outcome,
        detail: str | None = None,
        **changes: str,
    ) -> bool:
        if not self.store.transition(stored, to, event, detail, **changes):
            return False
        outcome.steps.append(f"{stored.state} -> {to}")
        log.info("%s order %s: %s -> %s (%s)", self.marketplace, stored.order_id, stored.state, to, event)
        return True

    def _vtex(self) -> VtexPlacement:
        if self.vtex is None:
            raise OrderCallError(
                "no VTEX account to place orders in: set orders.vtex in tradepost.yaml "
                "(or use a vtex source)",
                retryable=False,
            )
        return self.vtex

    def _channel(self) -> OrderChannel:
        if self.channel is None:
            raise OrderCallError(f"{self.marketplace} takes no orders through Tradepost", retryable=False)
        return self.channel


def approve(store: OrderStore, stored: StoredOrder, note: str | None = None) -> StoredOrder:
    """A reviewer approves a held order: the next push places it in VTEX."""
    where = f"{stored.marketplace} order {stored.order_id}"
    if stored.state != "held":
        raise OrderError(f"{where} is {stored.state}; only held orders can be approved")
    if stored.cancelled_on_marketplace:
        raise OrderError(f"{where} was cancelled on the marketplace; there is nothing to approve")
    if not store.transition(stored, "approved", "approved by reviewer", note, note=note):
        raise OrderError(f"{where} changed meanwhile; look at it again")
    return _reread(store, stored)


def reject(store: OrderStore, stored: StoredOrder, reason: str) -> StoredOrder:
    """A reviewer rejects an order not yet in VTEX: the next push cancels it on the marketplace."""
    where = f"{stored.marketplace} order {stored.order_id}"
    if stored.state not in ("held", "approved"):
        raise OrderError(
            f"{where} is {stored.state}; only held or approved orders not yet placed in VTEX can be "
            "rejected (an order in VTEX is cancelled there, and the cancellation comes back here)"
        )
    if not reason.strip():
        raise OrderError("a rejection needs a reason: the marketplace passes it on to the buyer")
    if not store.transition(stored, "rejected", "rejected by reviewer", reason, note=reason):
        raise OrderError(f"{where} changed meanwhile; look at it again")
    return _reread(store, stored)


def _reread(store: OrderStore, stored: StoredOrder) -> StoredOrder:
    current = store.get(stored.marketplace, stored.order_id)
    assert current is not None
    return current


def _covers(order: Order, shipped: Iterable[list[tuple[str, int]]]) -> bool:
    """Whether the confirmed packages hold every unit of every item."""
    sent: dict[str, int] = {}
    for items in shipped:
        for sku, quantity in items:
            sent[sku] = sent.get(sku, 0) + quantity
    needed: dict[str, int] = {}
    for item in order.items:
        needed[item.sku_id] = needed.get(item.sku_id, 0) + item.quantity
    return all(sent.get(sku, 0) >= quantity for sku, quantity in needed.items())


def _hold_without_address(decision: dict[str, Any]) -> dict[str, Any]:
    """An order to ship with no address cannot be placed in VTEX: a person decides.

    It is either fulfilled by the marketplace itself (Amazon FBA, Mercado Envios Full), whose
    stock and shipping VTEX does not handle, or the marketplace withheld the address.
    """
    reason = {
        "decision": "hold",
        "code": "TP949",
        "rule": "orders",
        "message": "the order has no shipping address (fulfilled by the marketplace, or the address "
        "was withheld), and VTEX needs one to place it: review it; reject it to cancel on the marketplace",
        "location": None,
    }
    worst = "reject" if decision["decision"] == "reject" else "hold"
    return {"decision": worst, "reasons": [*decision["reasons"], reason]}


def _reason_of(decision: Mapping[str, Any]) -> str:
    """The first rejecting finding's message: why the rules refused the order."""
    for reason in decision.get("reasons", []):
        if reason.get("decision") == "reject":
            return str(reason.get("message") or "rejected by the divergence rules")
    return "rejected by the divergence rules"
