"""The order state machine with an in-memory marketplace and VTEX: every transition, error and repeat.

The fakes behave like the real services where it matters for exactly-once:
VTEX refuses a second order with the same marketplace order id (and says which
order has it), and both sides answer a repeated cancellation or confirmation
as done. Faults are injected by scripting a call to fail, including the worst
kind: the side effect happened and the answer was lost.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import engine
from engine.connectors import (
    BadOrder,
    Connector,
    Credentials,
    Fulfilment,
    Invoice,
    OrderCallError,
    OrderChannel,
    Tracking,
)
from engine.model._order import Address, Buyer, Order, OrderItem
from engine.orders._flow import OrderDesk, OrderError, approve, reject
from engine.orders._store import OrderStore
from engine.state._store import StateStore
from tests.conftest import MINIMAL_RULES

RULES = (
    MINIMAL_RULES
    + """
divergence:
  approve_within: 5%
  hold_within: 20%
  min_order_value: 10
  max_order_value: 5000
"""
)
OUR_PRICES = {"10": Decimal("100.00"), "11": Decimal("49.90")}
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)


def make_order(order_id: str, *lines: tuple[str, int, str], **changes: Any) -> Order:
    items = tuple(
        OrderItem(
            sku_id=sku, quantity=qty, unit_price=Decimal(price), currency="BRL", marketplace_item_id=f"L{sku}"
        )
        for sku, qty, price in lines
    )
    data: dict[str, Any] = {
        "marketplace": "mercadolibre",
        "order_id": order_id,
        "created_at": NOW,
        "updated_at": NOW,
        "currency": "BRL",
        "items": items,
        "total": sum((i.line_value for i in items), Decimal(0)),
        "payment_status": "paid",
        "status": "unshipped",
        "buyer": Buyer(name="Maria Souza", email="maria@example.com"),
        "shipping_address": Address(
            name="Maria Souza",
            street="Rua das Flores",
            number="42",
            city="São Paulo",
            postal_code="01000-000",
            country="BR",
        ),
    }
    data.update(changes)
    return Order(**data)


class FakeChannel(OrderChannel):
    """A marketplace holding orders; records cancellations and confirmations; scripted failures."""

    name = "mercadolibre"

    def __init__(self) -> None:
        super().__init__(Connector(), Credentials(), httpx.AsyncClient())
        self.orders_by_id: dict[str, Order] = {}
        self.bad: dict[str, str] = {}
        self.cancelled: list[tuple[str, str]] = []
        self.confirmed: list[tuple[str, str]] = []
        self.fail: dict[str, list[OrderCallError | str]] = {}
        self.since_seen: list[datetime | None] = []

    def _maybe_fail(self, call: str) -> str | None:
        script = self.fail.get(call)
        if script:
            step = script.pop(0)
            if isinstance(step, OrderCallError):
                raise step
            return step
        return None

    async def _orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        self.since_seen.append(since)
        self._maybe_fail("orders")
        for order_id, message in self.bad.items():
            yield BadOrder("mercadolibre", order_id, message)
        for order in self.orders_by_id.values():
            yield order

    def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        return self._orders(since)

    async def order(self, order_id: str) -> Order:
        if order_id in self.bad:
            raise OrderCallError(self.bad[order_id], retryable=False)
        return self.orders_by_id[order_id]

    def set(self, order: Order) -> None:
        self.orders_by_id[order.order_id] = order

    async def cancel(self, order: Order, reason: str) -> None:
        if self.orders_by_id[order.order_id].status == "shipped":
            raise OrderCallError("already shipped: use the return path", retryable=False)
        lost = self._maybe_fail("cancel")
        self.cancelled.append((order.order_id, reason))
        self.set(self.orders_by_id[order.order_id].model_copy(update={"status": "cancelled"}))
        if lost == "lost":
            raise OrderCallError("no answer", retryable=True)

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        lost = self._maybe_fail("confirm")
        if (order.order_id, fulfilment.invoice.number) not in self.confirmed:
            self.confirmed.append((order.order_id, fulfilment.invoice.number))
        if lost == "lost":
            raise OrderCallError("no answer", retryable=True)


@dataclass
class Placed:
    vtex_order_id: str
    created: bool


@dataclass
class VtexOrder:
    order: Order
    status: str = "waiting-for-authorization"
    cancelled: bool = False
    cancel_reason: str | None = None
    fulfilments: tuple[Fulfilment, ...] = ()


@dataclass
class FakeVtex:
    """VTEX: one order per marketplace order id, a duplicate answered with the existing id."""

    orders: dict[str, VtexOrder] = field(default_factory=dict)
    by_marketplace_id: dict[str, str] = field(default_factory=dict)
    place_calls: int = 0
    fail: dict[str, list[str]] = field(default_factory=dict)
    simulated: dict[str, Decimal] = field(default_factory=dict)

    def _script(self, call: str) -> str | None:
        script = self.fail.get(call)
        return script.pop(0) if script else None

    async def simulate(self, order: Order) -> dict[str, Any]:
        @dataclass
        class Item:
            price: Decimal

        return {sku: Item(price) for sku, price in self.simulated.items()}

    async def place(self, order: Order) -> Placed:
        self.place_calls += 1
        step = self._script("place")
        if step == "refuse":
            raise OrderCallError("VTEX refused: SKU 10 is not in trade policy 1", retryable=False)
        if step == "down":
            raise OrderCallError("VTEX answered 503", retryable=True)
        existing = self.by_marketplace_id.get(order.order_id)
        if existing:
            return Placed(existing, False)
        vtex_id = f"MLB-{order.order_id}-01"
        self.orders[vtex_id] = VtexOrder(order)
        self.by_marketplace_id[order.order_id] = vtex_id
        if step == "lost":
            raise OrderCallError("VTEX did not answer", retryable=True)
        return Placed(vtex_id, True)

    async def authorize_dispatch(self, vtex_order_id: str, marketplace_order_id: str) -> None:
        self.orders[vtex_order_id].status = "ready-for-handling"

    async def get(self, vtex_order_id: str) -> VtexOrder:
        return self.orders[vtex_order_id]

    async def cancel(self, vtex_order_id: str, reason: str) -> None:
        record = self.orders[vtex_order_id]
        if record.fulfilments:
            raise OrderCallError("VTEX refused: the order is invoiced", retryable=False)
        record.cancelled, record.cancel_reason, record.status = True, reason, "canceled"

    def invoice(
        self, vtex_order_id: str, number: str, tracking: bool = True, items: tuple[tuple[str, int], ...] = ()
    ) -> None:
        record = self.orders[vtex_order_id]
        fulfilment = Fulfilment(
            Invoice(number, record.order.total, NOW, key="3526" + "0" * 40),
            Tracking("Correios", "BR123456789", "https://track.example/BR123456789") if tracking else None,
            items,
        )
        record.fulfilments = (*record.fulfilments, fulfilment)
        record.status = "invoiced"


@dataclass
class Desk:
    desk: OrderDesk
    store: OrderStore
    channel: FakeChannel
    vtex: FakeVtex
    priced: list[set[str]]

    def pull(self) -> Any:
        return asyncio.run(self.desk.pull())

    def push(self) -> Any:
        return asyncio.run(self.desk.push())

    def state(self, order_id: str) -> str:
        stored = self.store.get("mercadolibre", order_id)
        assert stored is not None
        return stored.state


@pytest.fixture
def desk(tmp_path: Path) -> Desk:
    rules = tmp_path / "rules.yaml"
    rules.write_text(RULES, encoding="utf-8")
    compiled = engine.compile_rules(rules)
    state = StateStore(tmp_path / "state.sqlite")
    store = OrderStore(state)
    channel, vtex = FakeChannel(), FakeVtex()
    priced: list[set[str]] = []

    def prices(skus: set[str]) -> dict[str, Decimal | None]:
        priced.append(skus)
        return {sku: OUR_PRICES.get(sku) for sku in skus}

    return Desk(
        OrderDesk("mercadolibre", compiled, store, channel, vtex, prices, clock=lambda: NOW),
        store,
        channel,
        vtex,
        priced,
    )


# -- pull --------------------------------------------------------------------------------------


def test_pull_decides_each_new_order_by_the_divergence_bands(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "104.99")))  # 4.99% off ours: approved
    desk.channel.set(make_order("B", ("10", 1, "105.01")))  # beyond 5%: held
    desk.channel.set(make_order("C", ("10", 1, "120.01")))  # beyond 20%: rejected
    desk.channel.set(make_order("D", ("11", 3, "49.90")))  # exact: approved

    summary = desk.pull()

    assert summary.read == 4 and summary.new == {"approved": 2, "held": 1, "rejected": 1}
    assert [desk.state(o) for o in "ABCD"] == ["approved", "held", "rejected", "approved"]
    held = desk.store.get("mercadolibre", "B")
    assert held is not None
    assert held.decision["decision"] == "hold"
    assert any(
        "105.01" in r["message"] and r["location"].endswith("rules.yaml:13:16")
        for r in held.decision["reasons"]
    )
    assert summary.exit_code == 0
    assert desk.priced == [{"10", "11"}]  # one catalog read for the whole pull


def test_the_same_order_delivered_twice_is_stored_once(desk: Desk) -> None:
    order = make_order("A", ("10", 1, "100.00"))
    desk.channel.set(order)
    assert desk.pull().new == {"approved": 1}

    second = desk.pull()

    assert second.new == {} and second.updated == 1
    assert len(list(desk.store.select())) == 1
    assert [e["event"] for e in desk.store.events("mercadolibre", "A")] == ["received: approve"]


def test_the_cursor_moves_only_after_a_pull_and_rereads_an_overlap(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.channel.fail["orders"] = [OrderCallError("Mercado Libre answered 503", retryable=True)]

    failed = desk.pull()

    assert failed.error and failed.exit_code == 1
    assert desk.store.cursor("mercadolibre") is None
    desk.pull()
    desk.pull()
    assert desk.channel.since_seen == [None, None, NOW - timedelta(minutes=10)]


def test_an_unreadable_order_is_kept_reported_and_read_again_by_id(desk: Desk) -> None:
    desk.channel.bad["Z"] = "line 1 has no seller SKU"
    desk.channel.set(make_order("A", ("10", 1, "100.00")))

    summary = desk.pull()

    assert summary.unreadable == {"Z": "line 1 has no seller SKU"} and summary.exit_code == 3
    assert desk.state("A") == "approved"  # the rest goes on
    assert desk.store.unreadable("mercadolibre") == {("mercadolibre", "Z"): "line 1 has no seller SKU"}
    del desk.channel.bad["Z"]
    desk.channel.set(make_order("Z", ("11", 1, "49.90")))
    desk.channel.orders_by_id.pop("A")  # not in the listing any more: only the by-id retry finds Z

    again = desk.pull()

    assert again.unreadable == {} and desk.state("Z") == "approved"
    assert desk.store.unreadable() == {}


def test_an_order_cancelled_before_we_saw_it_is_stored_final_without_personal_data(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00"), status="cancelled", payment_status="cancelled"))

    desk.pull()

    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.state == "cancelled"
    assert stored.order.buyer.email is None and stored.order.shipping_address is None


def test_vtex_simulation_prices_are_checked_too_when_configured(desk: Desk) -> None:
    desk.desk.simulate_prices = True
    desk.vtex.simulated = {"10": Decimal("90.00")}  # VTEX sells it for 90: 100.00 is 11% above
    desk.channel.set(make_order("A", ("10", 1, "100.00")))

    desk.pull()

    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.state == "held"
    assert any("VTEX's price 90.00" in r["message"] for r in stored.decision["reasons"])


# -- push --------------------------------------------------------------------------------------


def test_an_approved_paid_order_is_placed_authorized_shipped_and_erased(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 2, "100.00")))
    desk.pull()

    first = desk.push()

    assert first.outcomes[0].steps == ["approved -> placed", "placed -> ready"]
    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.vtex_order_id == "MLB-A-01" and stored.state == "ready"
    assert desk.vtex.orders["MLB-A-01"].status == "ready-for-handling"
    assert stored.order.buyer.email == "maria@example.com"  # still needed while open

    desk.vtex.invoice("MLB-A-01", "NF-1")
    desk.push()

    assert desk.channel.confirmed == [("A", "NF-1")]
    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.state == "shipped"
    assert stored.order.buyer.email is None and stored.order.shipping_address is None
    raw = desk.store.db.execute("SELECT order_json FROM orders").fetchone()[0]
    assert "maria" not in raw.lower() and "Flores" not in raw
    assert desk.push().outcomes == []  # nothing open: nothing sent


def test_an_unpaid_order_is_placed_but_not_dispatched_until_paid(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00"), payment_status="pending", status="pending"))
    desk.pull()

    desk.push()
    assert desk.state("A") == "placed"
    desk.push()
    assert desk.state("A") == "placed" and desk.vtex.orders["MLB-A-01"].status == "waiting-for-authorization"

    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.pull()
    desk.push()
    assert desk.state("A") == "ready"


def test_a_lost_vtex_answer_does_not_create_the_order_twice(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.pull()
    desk.vtex.fail["place"] = ["lost"]

    failed = desk.push()

    assert failed.exit_code == 3 and failed.failed[0].retryable is True
    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.state == "approved" and stored.attempts == 1
    assert "did not answer" in (stored.error or "")

    desk.push()

    assert len(desk.vtex.orders) == 1 and desk.vtex.place_calls == 2
    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.state == "ready" and stored.vtex_order_id == "MLB-A-01"
    assert stored.error is None and stored.attempts == 0


def test_a_vtex_refusal_is_kept_on_the_order_and_the_others_go_on(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.channel.set(make_order("B", ("11", 1, "49.90")))
    desk.pull()
    desk.vtex.fail["place"] = ["refuse"]

    summary = desk.push()

    assert summary.exit_code == 3
    assert desk.state("A") == "approved" and desk.state("B") == "ready"
    stored = desk.store.get("mercadolibre", "A")
    assert stored is not None and stored.error_retryable is False and "trade policy" in (stored.error or "")


def test_held_orders_wait_for_review_then_go_in_or_are_cancelled_with_the_reason(desk: Desk) -> None:
    desk.channel.set(make_order("H1", ("10", 1, "110.00")))
    desk.channel.set(make_order("H2", ("10", 1, "111.00")))
    desk.pull()
    assert desk.push().outcomes[0].steps == []  # held: nothing moves without a person

    approve(desk.store, _stored(desk, "H1"), "checked with the buyer")
    reject(desk.store, _stored(desk, "H2"), "price typo on the listing")
    desk.push()

    assert desk.state("H1") == "ready"
    assert desk.state("H2") == "cancelled"
    assert desk.channel.cancelled == [("H2", "price typo on the listing")]
    assert "MLB-H2-01" not in desk.vtex.orders


def test_review_actions_refuse_orders_in_other_states(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.channel.set(make_order("H", ("10", 1, "110.00")))
    desk.pull()
    desk.push()

    with pytest.raises(OrderError, match="is ready; only held orders"):
        approve(desk.store, _stored(desk, "A"))
    with pytest.raises(OrderError, match="only held or approved"):
        reject(desk.store, _stored(desk, "A"), "no")
    with pytest.raises(OrderError, match="needs a reason"):
        reject(desk.store, _stored(desk, "H"), "  ")


def test_an_auto_rejected_order_is_cancelled_with_the_rules_reason(desk: Desk) -> None:
    desk.channel.set(make_order("C", ("10", 1, "150.00")))
    desk.pull()

    desk.push()

    assert desk.state("C") == "cancelled"
    ((order_id, reason),) = desk.channel.cancelled
    assert order_id == "C" and "beyond hold_within 20%" in reason


def test_a_lost_cancel_answer_is_repeated_and_counts_once(desk: Desk) -> None:
    desk.channel.set(make_order("C", ("10", 1, "150.00")))
    desk.pull()
    desk.channel.fail["cancel"] = ["lost"]

    desk.push()
    assert desk.state("C") == "rejected"
    desk.channel.set(desk.channel.orders_by_id["C"].model_copy(update={"status": "unshipped"}))
    desk.push()

    assert desk.state("C") == "cancelled"


def test_a_marketplace_cancellation_cancels_the_vtex_order(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.pull()
    desk.push()
    desk.channel.set(make_order("A", ("10", 1, "100.00"), status="cancelled", payment_status="refunded"))
    desk.pull()

    desk.push()

    assert desk.state("A") == "cancelled"
    assert desk.vtex.orders["MLB-A-01"].cancelled


def test_a_cancellation_after_vtex_invoiced_becomes_a_return(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.pull()
    desk.push()
    desk.vtex.invoice("MLB-A-01", "NF-1", tracking=False)
    desk.push()  # invoiced, no tracking yet: waits
    assert desk.state("A") == "ready"
    desk.channel.set(make_order("A", ("10", 1, "100.00"), status="cancelled"))
    desk.pull()

    desk.push()

    assert desk.state("A") == "returned"
    assert any("handle as a return" in e["event"] for e in desk.store.events("mercadolibre", "A"))


def test_a_vtex_cancellation_cancels_on_the_marketplace(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.pull()
    desk.push()
    asyncio.run(desk.vtex.cancel("MLB-A-01", "out of stock in the warehouse"))

    desk.push()

    assert desk.state("A") == "cancelled"
    assert desk.channel.cancelled == [("A", "out of stock in the warehouse")]


def test_partial_shipments_are_confirmed_one_by_one_and_once(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "100.00"), ("11", 2, "49.90")))
    desk.pull()
    desk.push()
    desk.vtex.invoice("MLB-A-01", "NF-1", items=(("10", 1),))
    desk.push()
    assert desk.state("A") == "ready" and desk.channel.confirmed == [("A", "NF-1")]

    desk.vtex.invoice("MLB-A-01", "NF-2", items=(("11", 2),))
    desk.channel.fail["confirm"] = ["lost"]
    desk.push()
    assert desk.state("A") == "ready"
    desk.push()

    assert desk.state("A") == "shipped"
    assert desk.channel.confirmed == [("A", "NF-1"), ("A", "NF-2")]
    assert sorted(desk.store.confirmed_shipments("mercadolibre", "A")) == ["NF-1", "NF-2"]


def test_without_vtex_configured_approved_orders_wait_with_a_clear_error(desk: Desk) -> None:
    desk.desk.vtex = None
    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.pull()

    summary = desk.push()

    assert summary.exit_code == 3
    assert "orders.vtex" in (summary.failed[0].error or "") and desk.state("A") == "approved"


def test_personal_data_stays_out_of_json_output_and_events(desk: Desk) -> None:
    desk.channel.set(make_order("A", ("10", 1, "110.00")))
    desk.pull()
    stored = _stored(desk, "A")

    text = repr(stored.to_dict()) + repr(desk.store.events("mercadolibre", "A"))

    for secret in ("Maria", "maria@example.com", "Flores", "01000-000"):
        assert secret not in text


def _stored(desk: Desk, order_id: str) -> Any:
    stored = desk.store.get("mercadolibre", order_id)
    assert stored is not None
    return stored


@pytest.mark.parametrize("retryable", [True, False])
def test_a_token_endpoint_failure_is_kept_on_the_order_retryable_or_not(desk: Desk, retryable: bool) -> None:
    from engine.connectors import TokenError

    class Refusing(Connector):
        async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
            raise TokenError("Mercado Libre refused to refresh the access token (400)", retryable=retryable)

    desk.channel.set(make_order("C", ("10", 1, "150.00")))  # rejected: to be cancelled on the marketplace
    desk.pull()
    real_cancel = desk.channel.cancel

    async def cancel(order: Order, reason: str) -> None:
        await desk.channel.headers()
        await real_cancel(order, reason)

    desk.channel.cancel = cancel  # type: ignore[method-assign]
    desk.channel.connector = Refusing()

    summary = desk.push()

    assert summary.exit_code == 3
    stored = _stored(desk, "C")
    assert stored.state == "rejected" and stored.error_retryable is retryable
    assert "refused to refresh" in (stored.error or "") and desk.channel.cancelled == []
    desk.channel.connector = Connector()
    desk.push()
    assert desk.state("C") == "cancelled"


def test_an_order_to_ship_without_an_address_is_held_for_review(desk: Desk) -> None:
    desk.channel.set(
        make_order("F", ("10", 1, "100.00"), shipping_address=None, references={"fulfilled_by": "AMAZON"})
    )

    desk.pull()

    stored = _stored(desk, "F")
    assert stored.state == "held"
    assert [r["code"] for r in stored.decision["reasons"]] == ["TP944", "TP949"]


def test_a_pending_order_waits_for_its_address_without_an_error(desk: Desk) -> None:
    pending = make_order(
        "P", ("10", 1, "100.00"), shipping_address=None, status="pending", payment_status="pending"
    )
    desk.channel.set(pending)
    desk.pull()

    waiting = desk.push()

    assert desk.state("P") == "approved" and waiting.exit_code == 0 and desk.vtex.place_calls == 0
    desk.channel.set(make_order("P", ("10", 1, "100.00")))  # paid: the address comes with it
    desk.pull()
    desk.push()
    assert desk.state("P") == "ready"


def test_an_order_whose_catalog_could_not_be_read_waits_for_the_next_pull(desk: Desk) -> None:
    from engine.orders._flow import RulePrices

    desk.channel.set(make_order("A", ("10", 1, "100.00")))
    desk.channel.set(make_order("B", ("11", 1, "49.90")))
    answers = iter(
        [
            RulePrices({"11": Decimal("49.90")}, {"10": "VTEX did not answer GET /api/catalog_system/…"}),
            RulePrices({"10": Decimal("100.00")}),
        ]
    )
    desk.desk.prices = lambda skus: next(answers)

    first = desk.pull()

    assert first.exit_code == 3 and list(first.deferred) == ["A"] and "SKU 10" in first.deferred["A"]
    assert desk.store.get("mercadolibre", "A") is None and desk.state("B") == "approved"
    assert desk.store.cursor("mercadolibre") is None  # A must come again
    second = desk.pull()
    assert second.deferred == {} and desk.state("A") == "approved"
    assert desk.store.cursor("mercadolibre") is not None
