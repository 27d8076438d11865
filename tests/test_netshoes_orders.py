"""Netshoes orders against the stand-in's order desk: read, page, invoice, ship, cancel, exactly once.

Orders are made by the desk as buyers make them; the channel reads and moves them through the
stand-in's front door (its two headers, call plan and faults). The order flow runs with the VTEX
stand-in in process, and over loopback sockets in a child process killed with SIGKILL at each step.
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import signal
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import engine
from engine.connectors import (
    BadOrder,
    Credentials,
    Fulfilment,
    Invoice,
    OrderCallError,
    RetryPolicy,
    Tracking,
    order_channel_class,
    source,
)
from engine.jsonio import loads
from engine.model._order import Order
from engine.orders._flow import OrderDesk
from engine.orders._store import OrderStore
from engine.project._assembly import open_state
from engine.project._config import load_project
from engine.state._store import StateStore
from marketplaces._standin import Faults
from marketplaces.netshoes import NetshoesConnector
from marketplaces.netshoes._order_channel import NetshoesOrders, read_order
from marketplaces.netshoes._standin_order_desk import NetshoesOrderDesk
from marketplaces.netshoes.standin import SANDBOX_ACCESS_TOKEN, SANDBOX_CLIENT_ID, NetshoesStandin, Sku
from marketplaces.sandbox import Sandbox
from marketplaces.vtex.standin import VtexStandin
from tests._harness import Loopback, orders_only, run_apply, subset, tradepost, write_project
from tests._orderflows import VTEX_KEYS, Clock, killed_run
from tests._orderflows import plenty_skus as catalog_offers
from tests.test_orderflow import RULES
from tests.test_orders_e2e import STEPS as KILL_STEPS

NFE_KEY = "35240512345678000190550010000012341000012345"
NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
SKUS = {"1001": Decimal("49.90"), "1002": Decimal("129.00"), "1003": Decimal("15.50")}
CREDENTIALS = Credentials({"client_id": SANDBOX_CLIENT_ID, "access_token": SANDBOX_ACCESS_TOKEN})
T = TypeVar("T")


def seller(
    offers: dict[str, Decimal], clock: Callable[[], datetime] | None = None, **kwargs: Any
) -> NetshoesStandin:
    """A Netshoes stand-in whose seller lists ``offers``, approved and priced, 50 of each in stock."""
    standin = NetshoesStandin(calls_per_minute=100_000, **kwargs)
    for sku, price in offers.items():
        body = {"sku": sku, "name": f"Tênis {sku}", "eanIsbn": "7893478236483", "color": "Azul", "size": "40"}
        standin.skus[sku] = Sku("P" + sku, body, 0.0, approved=True, price=price, stock=50)
    standin.order_desk = NetshoesOrderDesk(standin.skus, now=clock)
    standin.app = standin.build()
    return standin


@dataclasses.dataclass
class Shop:
    standin: NetshoesStandin
    channel: NetshoesOrders
    clock: Clock

    @property
    def desk(self) -> NetshoesOrderDesk:
        return self.standin.order_desk

    async def pull(self, since: datetime | None = None) -> list[Order | BadOrder]:
        return [order async for order in self.channel.orders(since)]

    def sent(self, call: str) -> list[Any]:
        return [loads(body) if body else None for name, body in self.standin.bodies if name == call]

    def status(self, number: str) -> str:
        return str(self.desk.order_record(number)["orderStatus"])


def run(scenario: Callable[[Shop], Awaitable[T]], faults: Faults | None = None, **options: Any) -> T:
    clock = Clock()
    standin = seller(SKUS, clock, faults=faults)

    async def main() -> T:
        async with httpx.AsyncClient(
            transport=standin.transport(), base_url="http://netshoes.test"
        ) as client:
            orders = NetshoesOrders(NetshoesConnector(options), CREDENTIALS, client)
            orders.backoff = RetryPolicy(attempts=12, base=0.001, cap=0.005)
            return await scenario(Shop(standin, orders, clock))

    return asyncio.run(main())


def fulfilment(carrier: str = "Correios", key: str | None = NFE_KEY) -> Fulfilment:
    invoice = Invoice(number="4003", value=Decimal("99.80"), issued_at=NOW, key=key)
    return Fulfilment(
        invoice, Tracking(carrier, "PJ521644335BR", "https://rastreamento.example/PJ521644335BR")
    )


def code_of(shop: Shop, number: str) -> str:
    return str(shop.desk.order_record(number)["shippings"][0]["shippingCode"])


# -- reading ------------------------------------------------------------------------------------


def test_an_order_is_read_to_the_cent_with_its_address() -> None:
    async def scenario(shop: Shop) -> Order:
        number = shop.desk.create_order("1002", 2)
        (order,) = orders_only(await shop.pull())
        assert order.order_id == number
        return order

    order = run(scenario)
    assert (order.items[0].sku_id, order.items[0].quantity, order.items[0].unit_price) == (
        "1002",
        2,
        Decimal("129.00"),
    )
    assert order.total == Decimal("270.90") and order.shipping_total == Decimal("12.90")  # 258.00 + 12.90
    assert (order.status, order.payment_status) == ("unshipped", "paid")
    assert order.shipping_address is not None and order.shipping_address.postal_code == "01304001"
    assert order.created_at == NOW


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("Created", ("pending", "pending")),
        ("Approved", ("unshipped", "paid")),
        ("Invoiced", ("unshipped", "paid")),
        ("Shipped", ("shipped", "paid")),
        ("Delivered", ("shipped", "paid")),
        ("Canceled", ("cancelled", "cancelled")),
        ("Aprovado", ("unshipped", "paid")),  # the 2016 name
    ],
)
def test_each_netshoes_status_maps_to_ours(status: str, expected: tuple[str, str]) -> None:
    desk = NetshoesOrderDesk({"1001": seller({"1001": Decimal("10")}).skus["1001"]}, now=lambda: NOW)
    raw = desk.order_record(desk.create_order("1001"))
    read = read_order({**raw, "orderStatus": status})
    assert isinstance(read, Order) and (read.status, read.payment_status) == expected


def test_an_order_that_cannot_be_read_is_reported_by_field_never_dropped() -> None:
    desk = NetshoesOrderDesk({"1001": seller({"1001": Decimal("10")}).skus["1001"]}, now=lambda: NOW)
    raw = desk.order_record(desk.create_order("1001"))
    raw["shippings"][0]["items"][0]["netUnitValue"] = "free"
    read = read_order(raw)
    assert isinstance(read, BadOrder) and "netUnitValue" in read.message and "free" not in read.message


def test_paging_reads_each_order_once_and_an_older_cancellation_through_the_lookback() -> None:
    async def scenario(shop: Shop) -> None:
        shop.channel.page_size = 2
        old = shop.desk.create_order("1001")
        shop.clock.tick(60 * 24)  # a day later
        since = shop.clock.now
        new = [shop.desk.create_order(sku) for sku in ("1001", "1002", "1003", "1001", "1002")]
        shop.desk.set_order_status(old, "Canceled")  # the buyer cancels yesterday's order
        read = orders_only(await shop.pull(since))
        assert [o.order_id for o in read] == [*new, old]  # each once, the cancelled one too
        assert read[-1].status == "cancelled"
        assert (
            shop.standin.requests["GET /api/v1/orders"] == 4
        )  # 5 orders in pages of 2, then the lookback's one page

    run(scenario)


# -- shipping ------------------------------------------------------------------------------------


def test_a_shipment_is_invoiced_with_the_nfe_then_shipped_with_tracking_once() -> None:
    async def scenario(shop: Shop) -> None:
        number = shop.desk.create_order("1001", 2)
        order = await shop.channel.order(number)
        await shop.channel.confirm_shipment(order, fulfilment())
        code = code_of(shop, number)
        base = f"PUT /api/v1/orders/{number}/shippings/{code}/status"
        (invoiced,) = shop.sent(f"{base}/invoiced")
        assert invoiced == {
            "status": "Invoiced",
            "number": 4003,
            "line": 1,  # the series: the key's digits 23-25
            "key": NFE_KEY,
            "issueDate": "2026-11-20T12:00:00.000+0000",
        }
        (shipped,) = shop.sent(f"{base}/shipped")
        assert shipped["carrier"] == "Correios" and shipped["trackingNumber"] == "PJ521644335BR"
        assert shop.status(number) == "Shipped"
        await shop.channel.confirm_shipment(order, fulfilment())  # a repeat after a crash
        assert len(shop.sent(f"{base}/invoiced")) == len(shop.sent(f"{base}/shipped")) == 1

    run(scenario)


def test_an_invoiced_shipping_whose_answer_was_lost_is_only_shipped() -> None:
    async def scenario(shop: Shop) -> None:
        number = shop.desk.create_order("1001")
        shop.desk.order_record(number)["shippings"][0]["status"] = "Invoiced"
        await shop.channel.confirm_shipment(await shop.channel.order(number), fulfilment())
        code = code_of(shop, number)
        assert shop.sent(f"PUT /api/v1/orders/{number}/shippings/{code}/status/invoiced") == []
        assert shop.status(number) == "Shipped"

    run(scenario)


def test_a_shipment_without_an_nfe_key_or_before_approval_is_refused_with_a_reason() -> None:
    async def scenario(shop: Shop) -> None:
        number = shop.desk.create_order("1001")
        order = await shop.channel.order(number)
        with pytest.raises(OrderCallError) as no_key:
            await shop.channel.confirm_shipment(order, fulfilment(key=None))
        assert not no_key.value.retryable and "44-digit NF-e access key" in str(no_key.value)
        created = shop.desk.create_order("1002", status="Created")
        with pytest.raises(OrderCallError) as waiting:
            await shop.channel.confirm_shipment(await shop.channel.order(created), fulfilment())
        assert waiting.value.retryable and "Created" in str(waiting.value)

    run(scenario)


def test_the_stand_in_allows_legal_transitions_only() -> None:
    async def scenario(shop: Shop) -> None:
        number = shop.desk.create_order("1001")
        code = code_of(shop, number)
        headers = {"client_id": SANDBOX_CLIENT_ID, "access_token": SANDBOX_ACCESS_TOKEN}
        base = f"/api/v1/orders/{number}/shippings/{code}/status"
        client = shop.channel.client
        skip = await client.put(
            f"{base}/shipped",
            headers=headers,
            json={"status": "Shipped", "carrier": "X", "trackingNumber": "1"},
        )
        short = await client.put(
            f"{base}/invoiced",
            headers=headers,
            json={
                "status": "Invoiced",
                "key": "123",
                "number": 1,
                "line": 1,
                "issueDate": "2026-11-20T12:00:00.000-0300",
            },
        )
        envelope = {
            "shippings": [
                {
                    "shippingCode": int(code),
                    "invoice": {
                        "number": 1,
                        "line": 1,
                        "accessKey": NFE_KEY,
                        "issueDate": "2026-11-20T12:00:00.000-0300",
                    },
                }
            ]
        }
        enveloped = await client.put(f"{base}/invoiced", headers=headers, json=envelope)
        cancel = await client.put(
            f"{base}/canceled", headers=headers, json={"status": "Canceled", "cancellationReason": "x"}
        )
        assert [skip.status_code, short.status_code, enveloped.status_code, cancel.status_code] == [
            409,
            400,
            200,
            409,
        ]
        assert skip.json()["type"] == "Business_Logic_Error"

    run(scenario)


# -- cancelling ----------------------------------------------------------------------------------


def test_a_vtex_cancellation_cancels_on_netshoes_once_and_not_after_invoicing() -> None:
    async def scenario(shop: Shop) -> None:
        number = shop.desk.create_order("1001")
        order = await shop.channel.order(number)
        await shop.channel.cancel(order, "out of stock")
        await shop.channel.cancel(order, "out of stock")  # a repeat: nothing sent
        assert shop.status(number) == "Canceled"
        canceled = shop.sent(f"PUT /api/v1/orders/{number}/shippings/{code_of(shop, number)}/status/canceled")
        assert canceled == [{"status": "Canceled", "cancellationReason": "out of stock"}]
        invoiced = shop.desk.create_order("1002", status="Invoiced")
        with pytest.raises(OrderCallError) as late:
            await shop.channel.cancel(await shop.channel.order(invoiced), "too late")
        assert not late.value.retryable and "a return is the way" in str(late.value)

    run(scenario)


def test_with_20_percent_faults_every_step_lands_exactly_once() -> None:
    faults = Faults(error_rate=0.1, throttle_rate=0.05, drop_rate=0.05, seed=7)

    async def scenario(shop: Shop) -> None:
        made = [shop.desk.create_order(sku) for sku in SKUS for _ in range(4)]
        read = orders_only(await shop.pull())
        assert sorted(o.order_id for o in read) == sorted(made)
        for order in read[:8]:
            await shop.channel.confirm_shipment(await shop.channel.order(order.order_id), fulfilment())
        for order in read[8:]:
            await shop.channel.cancel(order, "rejected by the divergence rules")
        assert sorted(shop.status(o) for o in made) == ["Canceled"] * 4 + ["Shipped"] * 8
        assert shop.standin.throttled > 0

    run(scenario, faults=faults)


def test_a_refused_token_is_reported_without_the_token() -> None:
    async def scenario(shop: Shop) -> None:
        number = shop.desk.create_order("1001")
        shop.channel.credentials = Credentials(
            {"client_id": SANDBOX_CLIENT_ID, "access_token": "wrong-token"}
        )
        with pytest.raises(OrderCallError) as refused:
            await shop.channel.order(number)
        assert refused.value.status == 401 and not refused.value.retryable
        assert "wrong-token" not in str(refused.value) and SANDBOX_ACCESS_TOKEN not in str(refused.value)

    run(scenario)


# -- the order flow: Netshoes orders into VTEX, exactly once -----------------------------------------

FLOW_RULES = RULES.replace("affiliate: MLB", "affiliate: NTS")


@dataclasses.dataclass
class Flow:
    """Netshoes' stand-in, VTEX's and the state store; ``run`` is one scheduler run's step."""

    shop: NetshoesStandin
    vtex: VtexStandin
    folder: Path
    offers: dict[str, Decimal]

    def run(self, *steps: str, shop_url: str | None = None, vtex_url: str | None = None) -> list[Any]:
        return asyncio.run(flow_steps(self, steps, shop_url, vtex_url))

    def stored(self, order_id: str) -> Any:
        with StateStore(self.folder / "state.sqlite") as state:
            stored = OrderStore(state).get("netshoes", order_id)
        assert stored is not None
        return stored

    def in_vtex(self, order_id: str) -> list[str]:
        found: list[str] = self.vtex.orders_by_marketplace_id().get(order_id, [])
        return found

    def status(self, order_id: str) -> str:
        return str(self.shop.order_desk.order_record(order_id)["orderStatus"])


async def flow_steps(
    flow: Flow, steps: tuple[str, ...], shop_url: str | None, vtex_url: str | None
) -> list[Any]:
    """Pull and/or push once each, in process or (URLs given) over loopback."""

    def client(url: str | None, standin: Any) -> httpx.AsyncClient:
        transport = None if url else standin.transport()
        return httpx.AsyncClient(transport=transport, base_url=url or "http://standin.test")

    with StateStore(flow.folder / "state.sqlite") as state:
        async with client(shop_url, flow.shop) as shop, client(vtex_url, flow.vtex) as vtex:
            channel = NetshoesOrders(NetshoesConnector(), CREDENTIALS, shop)
            channel.backoff = RetryPolicy(attempts=12, base=0.001, cap=0.005)
            placement = source("vtex").placement(vtex, VTEX_KEYS, affiliate_id="NTS", sales_channel="1")
            desk = OrderDesk(
                "netshoes",
                engine.compile_rules(flow.folder / "netshoes.yaml"),
                OrderStore(state),
                channel,
                placement,
                lambda skus: {sku: flow.offers.get(sku) for sku in skus},
            )
            return [await getattr(desk, step)() for step in steps]


@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    (tmp_path / "netshoes.yaml").write_text(FLOW_RULES, encoding="utf-8")
    vtex = VtexStandin(subset(12))
    offers = catalog_offers(vtex)
    return Flow(seller(offers), vtex, tmp_path, offers)


def test_an_order_is_placed_once_shipped_with_its_nfe_and_a_divergent_one_cancelled(flow: Flow) -> None:
    good, cheap, created = list(flow.offers)[:3]
    desk = flow.shop.order_desk
    good_id = desk.create_order(good, 2)
    cheap_id = desk.create_order(cheap, 1, unit_price="10.00")  # 83% below ours: rejected
    created_id = desk.create_order(created, 1, status="Created")  # not yet approved by Netshoes

    pulled, pushed = flow.run("pull", "push")
    assert pulled.new == {"approved": 2, "rejected": 1}, pulled.to_dict()
    assert pushed.exit_code == 0, pushed.to_dict()["outcomes"]
    assert flow.stored(cheap_id).state == "cancelled" and flow.status(cheap_id) == "Canceled"
    assert flow.stored(good_id).state == "ready"
    (vtex_id,) = flow.in_vtex(good_id)

    flow.vtex.invoice_order(vtex_id)
    flow.run("push")
    shipping = desk.order_record(good_id)["shippings"][0]
    assert flow.stored(good_id).state == "shipped" and shipping["status"] == "Shipped"
    assert len(shipping["invoice"]["accessKey"]) == 44 and shipping["transport"]["trackingNumber"]
    assert len(flow.in_vtex(good_id)) == 1
    assert flow.status(created_id) == "Created"


def test_cancellations_go_both_ways(flow: Flow) -> None:
    first, second = list(flow.offers)[:2]
    desk = flow.shop.order_desk
    by_buyer, by_store = desk.create_order(first), desk.create_order(second)
    flow.run("pull", "push")
    flow.run("pull", "push")
    (buyer_vtex,), (store_vtex,) = flow.in_vtex(by_buyer), flow.in_vtex(by_store)

    desk.set_order_status(by_buyer, "Canceled")  # cancelled on Netshoes
    flow.vtex.cancel_order_as_store(store_vtex, "out of stock in the warehouse")
    flow.run("pull", "push")

    assert flow.vtex.order_record(buyer_vtex)["status"] == "canceled"
    assert flow.stored(by_buyer).state == "cancelled"
    assert flow.status(by_store) == "Canceled" and flow.stored(by_store).state == "cancelled"


@pytest.mark.parametrize(("command", "failpoint"), KILL_STEPS, ids=[f for _, f in KILL_STEPS])
def test_killed_at_each_step_then_run_again_every_order_once_in_vtex(
    flow: Flow, command: str, failpoint: str
) -> None:
    box = Sandbox({"netshoes": flow.shop, "vtex": flow.vtex})
    box.start()
    urls = {"shop_url": box.url("netshoes"), "vtex_url": box.url("vtex")}
    desk = flow.shop.order_desk
    try:
        skus = list(flow.offers)[:3]
        expected, in_vtex = "ready", 1
        if failpoint == "cancel:after-marketplace":  # rejected by the bands: cancelled on Netshoes
            order_ids = [desk.create_order(sku, unit_price="1.00") for sku in skus]
            expected, in_vtex = "cancelled", 0
        else:
            order_ids = [desk.create_order(sku) for sku in skus]
        if command == "push":
            flow.run("pull", **urls)
        if failpoint == "cancel:after-vtex":  # placed, then cancelled on Netshoes
            flow.run("push", **urls)
            for order_id in order_ids:
                desk.set_order_status(order_id, "Canceled")
            flow.run("pull", **urls)
            expected = "cancelled"
        elif failpoint == "ship:after-marketplace":  # placed, then invoiced in VTEX
            flow.run("push", **urls)
            for order_id in order_ids:
                (vtex_id,) = flow.in_vtex(order_id)
                flow.vtex.invoice_order(vtex_id)
            expected = "shipped"

        nth = 1 if command == "pull" else 2  # a push passes its points once per order: die at the second
        assert killed_run(lambda: flow.run(command, **urls), f"{failpoint}:#{nth}") == -signal.SIGKILL

        flow.run("pull", "push", **urls)  # what the scheduler does next
        flow.run("pull", "push", **urls)  # (a pull killed before storing needs one more round to place)
        for order_id in order_ids:
            assert len(flow.in_vtex(order_id)) == in_vtex, order_id  # none twice, none lost
            assert flow.stored(order_id).state == expected
        if failpoint == "cancel:after-marketplace":
            assert {flow.status(o) for o in order_ids} == {"Canceled"}
        if failpoint == "ship:after-marketplace":
            assert {flow.status(o) for o in order_ids} == {"Shipped"}
            for order_id in order_ids:
                code = desk.order_record(order_id)["shippings"][0]["shippingCode"]
                shipped = f"PUT /api/v1/orders/{order_id}/shippings/{code}/status/shipped"
                # landed once (a request the kill cut before its body arrived changed nothing)
                assert [call for call, _ in flow.shop.bodies].count(shipped) == 1
    finally:
        box.stop()


# -- tradepost orders, with netshoes in a project ------------------------------------------------------


def test_tradepost_orders_pull_and_push_take_a_netshoes_order_to_vtex_and_back(
    loopback: Loopback, tmp_path: Path
) -> None:
    box = loopback.sandbox(subset(20))
    if "netshoes" not in box.standins or order_channel_class("netshoes") is None:
        pytest.skip(
            "netshoes is not registered in this install's entry points (pip install -e . registers it)"
        )
    desk = box.standins["netshoes"].order_desk
    config = write_project(box, tmp_path / "project")
    applied = run_apply(config, "netshoes", box)
    assert applied.failed == 0 and applied.applied > 5, applied.failures
    with open_state(load_project(config)) as state:
        rows = state.db.execute(
            "SELECT sku_id FROM listings WHERE marketplace = 'netshoes' AND quantity >= 2 ORDER BY sku_id"
        )
        sku = str(next(iter(rows))[0])

    def cli(*args: str) -> Any:
        code, out, err = tradepost(*args, "-c", str(config))
        assert code == 0, err
        return json.loads(out) if "--json" in args else out

    answer = cli("sandbox", "order", "-m", "netshoes", "--sku", sku, "--quantity", "2")
    order_id = answer.split(" order ")[1].split()[0]
    assert desk.order_record(order_id)["orderStatus"] == "Approved"
    assert cli("orders", "pull", "-m", "netshoes", "--json")["pull"][0]["new"] == {"approved": 1}
    cli("orders", "push", "-m", "netshoes", "--json")
    (row,) = cli("orders", "list", "-m", "netshoes", "--json")["orders"]
    assert row["state"] == "ready"
    vtex: Any = box.standins["vtex"]
    assert len(vtex.orders_by_marketplace_id()[order_id]) == 1

    cli("sandbox", "invoice", row["vtex_order_id"])
    cli("orders", "push", "-m", "netshoes")
    (row,) = cli("orders", "list", "-m", "netshoes", "--json")["orders"]
    assert row["state"] == "shipped" and desk.order_record(order_id)["orderStatus"] == "Shipped"
