"""Dafiti (SellerCenter) orders against the order desk stand-in: read, page, pack, invoice, ship, cancel.

The desk is mounted on a small SellerCenter front door of this file's own (the signed query checked
as API.md §2 describes, ``?Action=`` routed to the desk, the answer in the asked ``Format``, the
fault layer) until the catalog stand-in routes to it. Orders are made by the desk as customers make
them; the channel reads and changes them through the faulty front door the engine would use. The
order flow runs with the VTEX stand-in in process, and over loopback sockets in a child process
killed with SIGKILL at each step. Every parameter the channel sends is checked against the names
``shared/specs/dafiti/API.md`` documents (skipped, saying so, when the spec is absent).
"""

from __future__ import annotations

import asyncio
import dataclasses
import json
import re
import signal
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar
from urllib.parse import parse_qsl, urlsplit
from xml.etree import ElementTree

import httpx
import pytest
from starlette.requests import Request
from starlette.responses import Response

from engine.connectors import (
    BadOrder,
    Connector,
    Credentials,
    Fulfilment,
    Invoice,
    OrderCallError,
    RetryPolicy,
    Tracking,
    available_connectors,
    order_channel_class,
    source,
)
from engine.model._order import Order
from engine.orders._flow import OrderDesk
from engine.orders._store import OrderStore
from engine.rules._check import compile_rules
from engine.state._store import StateStore
from marketplaces._standin import Faults, Standin
from marketplaces.sandbox import Sandbox
from marketplaces.sellercenter import DafitiConnector
from marketplaces.sellercenter._http import (
    ActionRefused,
    as_list,
    read_envelope,
    signed_query,
)
from marketplaces.sellercenter._order_channel import (
    OVERLAP,
    STATUSES,
    DafitiOrders,
    SellerCenterOrders,
    read_order,
)
from marketplaces.sellercenter._standin_order_desk import SellerCenterOrderDesk
from marketplaces.sellercenter.standin import SellerCenterStandin
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin
from tests._harness import Loopback, orders_only, run_apply, subset, tradepost, write_project
from tests._orderflows import ORDERS_NOW as NOW
from tests._orderflows import Clock, killed_run
from tests._orderflows import plenty_skus as catalog_offers
from tests.test_orderflow import RULES
from tests.test_orders_e2e import STEPS as KILL_STEPS
from tests.test_orders_e2e import listed_skus

ROOT = Path(__file__).resolve().parent.parent
SPEC = ROOT.parent / "shared" / "specs" / "dafiti" / "API.md"
USER, API_KEY = "seller@loja.example", "b1bdb357ced10fe4e9a69840cdd4f0e9c03d77fe"
NFE_KEY = "35240512345678000190550010000012341000012345"
SKUS = {"1001": Decimal("49.90"), "1002": Decimal("129.00"), "1003": Decimal("15.50")}
COMMON = {"Action", "UserID", "Version", "Format", "Timestamp", "Signature"}
T = TypeVar("T")


class DafitiShop(SellerCenterStandin):
    """The SellerCenter stand-in with an order desk of this file's products, keeping every signed
    call's parameters (what the channel sent) in :attr:`calls`."""

    def __init__(
        self,
        clock: Callable[[], datetime] | None = None,
        faults: Faults | None = None,
        products: dict[str, Decimal] | None = None,
    ) -> None:
        listed = {sku: {"Price": str(price), "Quantity": "50"} for sku, price in (products or SKUS).items()}
        self.desk = SellerCenterOrderDesk(listed, clock=clock)
        self.calls: list[dict[str, str]] = []
        super().__init__(USER, API_KEY, faults=faults, order_desk=self.desk)

    async def dispatch(self, request: Request) -> Response:
        self.calls.append(dict(request.query_params))
        return await super().dispatch(request)

    def sent(self, action: str) -> list[dict[str, str]]:
        return [c for c in self.calls if c.get("Action") == action]


def connector(**options: Any) -> Connector:
    """Dafiti's catalog connector, which the channel reads its options from (``user_id`` among them)."""
    return DafitiConnector({"user_id": USER, **options})


CREDENTIALS = Credentials({"api_key": API_KEY})


@dataclasses.dataclass
class Shop:
    standin: DafitiShop
    channel: SellerCenterOrders
    clock: Clock

    @property
    def desk(self) -> SellerCenterOrderDesk:
        return self.standin.desk

    async def pull(self, since: datetime | None = None) -> list[Order | BadOrder]:
        return [order async for order in self.channel.orders(since)]

    def writes(self) -> list[str]:
        return [c["Action"] for c in self.standin.calls if c["Action"].startswith("Set")]


def run(scenario: Callable[[Shop], Awaitable[T]], faults: Faults | None = None, **options: Any) -> T:
    clock = Clock()
    standin = DafitiShop(clock, faults)

    async def main() -> T:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://dafiti.test") as client:
            orders = DafitiOrders(connector(**options), CREDENTIALS, client)
            orders.backoff = RetryPolicy(attempts=12, base=0.001, cap=0.005)
            orders.now = clock  # type: ignore[method-assign]
            return await scenario(Shop(standin, orders, clock))

    return asyncio.run(main())


def invoice(key: str | None = NFE_KEY) -> Invoice:
    return Invoice("000123", Decimal("99.80"), NOW, key=key)


def fulfilment(carrier: str = "Correios", key: str | None = NFE_KEY) -> Fulfilment:
    return Fulfilment(invoice(key=key), Tracking(carrier, "BR123456789", "https://track.example/BR123456789"))


# -- the spec ----------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def api_md() -> str:
    if not SPEC.exists():
        pytest.skip(f"the Dafiti notes are not at {SPEC} (../shared/specs/dafiti): parameters not checked")
    return SPEC.read_text(encoding="utf-8")


def documented(api_md: str, calls: list[dict[str, str]]) -> None:
    """Every action and parameter name the channel sent is one API.md names."""
    for call in calls:
        for name in {*call, call["Action"]}:
            assert re.search(rf"\b{re.escape(name)}\b", api_md), f"{call['Action']}: {name} is not in API.md"


# -- reading -----------------------------------------------------------------------------------------


def test_an_order_is_read_to_the_cent_with_one_line_per_sku() -> None:
    async def scenario(shop: Shop) -> None:
        order_id = shop.desk.create_order("1001", 2)
        (order,) = orders_only(await shop.pull())
        assert (order.marketplace, order.order_id, order.currency) == ("dafiti", order_id, "BRL")
        (item,) = order.items  # two items of one unit each on Dafiti
        assert (item.sku_id, item.quantity, str(item.unit_price)) == ("1001", 2, "49.90")
        assert item.marketplace_item_id == ",".join(i["OrderItemId"] for i in shop.desk.order_items(order_id))
        assert (order.total, order.shipping_total) == (Decimal("109.70"), Decimal("9.90"))
        assert (order.status, order.payment_status) == ("unshipped", "paid")
        assert order.references == {
            "status": "pending",
            "order_number": shop.desk.orders[order_id]["OrderNumber"],
        }
        address = order.shipping_address
        assert (
            address is not None and address.country == "BR" and address.postal_code and address.neighborhood
        )
        assert order.buyer.name and order.buyer.document
        assert order.created_at == NOW  # written in São Paulo time without an offset, read as that moment
        assert await shop.channel.order(order_id) == order

    run(scenario)


def test_each_item_status_maps_to_a_status() -> None:
    async def scenario(shop: Shop) -> dict[str, tuple[str, str]]:
        read = {s: await shop.channel.order(shop.desk.create_order("1002", status=s)) for s in STATUSES}
        return {status: (order.status, order.payment_status) for status, order in read.items()}

    assert run(scenario) == STATUSES
    assert STATUSES["pending"] == ("unshipped", "paid")  # Dafiti shows an order once paid
    assert STATUSES["returned"] == ("shipped", "refunded") and STATUSES["failed"][0] == "cancelled"


def test_a_canceled_item_leaves_the_order_and_the_least_advanced_item_gives_the_status() -> None:
    async def scenario(shop: Shop) -> Order:
        order_id = shop.desk.create_order("1001", 3)
        first, second, _ = shop.desk.order_items(order_id)
        first["Status"], second["Status"] = "canceled", "ready_to_ship"
        return await shop.channel.order(order_id)

    order = run(scenario)
    assert [(i.sku_id, i.quantity) for i in order.items] == [("1001", 2)]
    assert order.references["status"] == "pending" and order.total == Decimal("99.80") + Decimal("9.90")


def test_an_order_that_cannot_be_read_is_reported_by_field_never_dropped() -> None:
    async def scenario(shop: Shop) -> list[Order | BadOrder]:
        good = shop.desk.create_order("1001")
        bad = shop.desk.create_order("1002")
        shop.desk.order_items(bad)[0]["Sku"] = ""
        read = await shop.pull()
        assert [o.order_id for o in read] == [good, bad]
        return read

    _, bad = run(scenario)
    assert isinstance(bad, BadOrder) and "Sku" in bad.message

    async def refused_items(shop: Shop) -> list[Order | BadOrder]:
        good, refused = shop.desk.create_order("1001"), shop.desk.create_order("1002")
        items = shop.desk.handlers["GetOrderItems"]

        def refuse(params: Any) -> dict[str, Any]:
            if params["OrderId"] == refused:
                raise ActionRefused("E016", "Invalid Order ID")
            return items(params)

        shop.desk.handlers["GetOrderItems"] = refuse
        read = await shop.pull()
        assert [o.order_id for o in read] == [good, refused] and isinstance(read[0], Order)
        return read

    (_, unreadable) = run(refused_items)
    assert isinstance(unreadable, BadOrder) and "E016" in unreadable.message
    assert read_order({"OrderId": ""}, []) == BadOrder(
        "sellercenter", "<unknown>", "an order without an OrderId"
    )
    assert "PaidPrice" in str(
        read_order({"OrderId": "1", "CreatedAt": "x"}, [{"Status": "pending", "Sku": "A"}])
    )


def test_paging_reads_each_order_once_through_the_overlap_and_moving_pages(api_md: str) -> None:
    async def scenario(shop: Shop) -> None:
        made = []
        for n in range(23):
            made.append(shop.desk.create_order(list(SKUS)[n % 3]))
            shop.clock.tick(1)
        since = shop.clock.now - timedelta(minutes=5)  # the channel reads from 10 minutes before
        shop.channel.page_size = 4
        served: list[str] = []

        async def hook(response: httpx.Response) -> None:
            query = dict(parse_qsl(urlsplit(str(response.request.url)).query))
            if query["Action"] == "GetOrders":
                orders = read_envelope(await response.aread()).body["Orders"]["Order"]
                served.extend(o["OrderId"] for o in as_list(orders))
                if len(served) == 4:  # an order created "earlier" appears while paging: the pages shift
                    shop.clock.now -= timedelta(hours=1)
                    made.insert(0, shop.desk.create_order("1003"))
                    shop.clock.now += timedelta(hours=1)
                    shop.desk.orders[made[0]]["UpdatedAt"] = shop.desk.orders[made[-1]]["UpdatedAt"]

        shop.channel.client.event_hooks["response"].append(hook)
        read = orders_only(await shop.pull(since))
        ids = [o.order_id for o in read]
        assert len(served) > len(set(served)) and len(ids) == len(set(ids))  # served twice, read once
        assert timedelta(minutes=10) == OVERLAP
        assert set(ids) == set(made[-14:])  # updated after since - 10 minutes: minutes 9 to 22
        (first, *_) = shop.standin.sent("GetOrders")
        assert first["UpdatedAfter"] == (since - OVERLAP).isoformat()
        assert (first["Limit"], first["Offset"], first["SortBy"], first["SortDirection"]) == (
            "4",
            "0",
            "created_at",
            "ASC",
        )
        # The order that slipped in before the offset is read by the next pull.
        assert made[0] in {o.order_id for o in orders_only(await shop.pull(since))}
        documented(api_md, shop.standin.calls)

    run(scenario)


def test_a_first_pull_reads_what_was_created_in_the_lookback() -> None:
    async def scenario(shop: Shop) -> None:
        shop.clock.now -= timedelta(days=3)
        old = shop.desk.create_order("1001")
        shop.clock.now += timedelta(days=3)
        recent = shop.desk.create_order("1002")
        assert [o.order_id for o in await shop.pull()] == [recent]
        (query,) = shop.standin.sent("GetOrders")
        assert query["CreatedAfter"] == (NOW - timedelta(days=2)).isoformat() and old

    run(scenario, lookback_days=2)


# -- shipping ----------------------------------------------------------------------------------------


def test_a_shipment_packs_gives_the_nfe_sets_ready_with_tracking_then_ships_once(api_md: str) -> None:
    async def scenario(shop: Shop) -> None:
        order = await shop.channel.order(shop.desk.create_order("1001", 2))
        await shop.channel.confirm_shipment(order, fulfilment())
        items = shop.desk.order_items(order.order_id)
        ids = json.dumps([i["OrderItemId"] for i in items])
        assert {i["Status"] for i in items} == {"shipped"}
        assert {(i["InvoiceAccessKey"], i["TrackingCode"], i["ShipmentProvider"]) for i in items} == {
            (NFE_KEY, "BR123456789", "Correios")
        }
        steps = ["SetStatusToPackedByMarketplace", "SetInvoiceAccessKey", "SetStatusToReadyToShip"]
        assert shop.writes() == [*steps, "SetStatusToShipped", "SetStatusToShipped"]
        (packed,) = shop.standin.sent("SetStatusToPackedByMarketplace")
        assert (packed["OrderItemIds"], packed["DeliveryType"], packed["ShippingProvider"]) == (
            ids,
            "dropship",
            "Correios",
        )
        (nfe,) = shop.standin.sent("SetInvoiceAccessKey")
        assert (nfe["InvoiceAccessKey"], nfe["InvoiceNumber"], nfe["InvoiceDate"]) == (
            NFE_KEY,
            "000123",
            NOW.isoformat(),
        )
        (ready,) = shop.standin.sent("SetStatusToReadyToShip")
        assert (ready["OrderItemIds"], ready["TrackingNumber"]) == (ids, "BR123456789")
        assert len(shop.standin.sent("GetOrderItems")) == 2  # order(), then one read back before the writes
        assert len(shop.standin.calls) == 2 + 1 + 5  # GetOrder + GetOrderItems; then 1 read, 3 + 1 per item
        assert {c["OrderItemId"] for c in shop.standin.sent("SetStatusToShipped")} == {
            i["OrderItemId"] for i in items
        }
        assert {c["Version"] for c in shop.standin.calls} == {"1.0"} and {
            c["UserID"] for c in shop.standin.calls
        } == {USER}
        documented(api_md, shop.standin.calls)

        await shop.channel.confirm_shipment(order, fulfilment())  # a second package, or a repeat
        assert len(shop.writes()) == 5

    run(scenario)


def test_a_repeat_after_a_lost_answer_sends_only_what_is_missing() -> None:
    async def scenario(shop: Shop) -> None:
        order = await shop.channel.order(shop.desk.create_order("1002", 2))
        ids = [i["OrderItemId"] for i in shop.desk.order_items(order.order_id)]
        params = {"OrderItemIds": json.dumps(ids), "DeliveryType": "dropship", "ShippingProvider": "Jadlog"}
        shop.desk.packed(params)  # packed by an earlier run whose answer was lost
        shop.desk.invoice_access_key({"OrderItemId": ids[0], "InvoiceAccessKey": NFE_KEY})
        await shop.channel.confirm_shipment(order, fulfilment("JADLOG LOG"))
        assert shop.writes()[:2] == ["SetInvoiceAccessKey", "SetStatusToReadyToShip"]
        (nfe,) = shop.standin.sent("SetInvoiceAccessKey")
        assert nfe["OrderItemIds"] == json.dumps(ids[1:])
        (ready,) = shop.standin.sent("SetStatusToReadyToShip")
        assert ready["ShippingProvider"] == "Jadlog"  # VTEX's courier, as Dafiti names it (option carriers)

    run(scenario, carriers={"jadlog log": "Jadlog"})


def test_a_refused_step_that_already_landed_counts_as_done() -> None:
    async def scenario(shop: Shop) -> None:
        order = await shop.channel.order(shop.desk.create_order("1001"))
        real = shop.desk.handlers["SetStatusToShipped"]

        def landed_then_refused(params: Any) -> dict[str, Any]:
            real(params)  # the item ships, then the answer says E028 (as a repeat would)
            raise ActionRefused("E028", "It is not possible to set the order item to the status shipped")

        shop.desk.handlers["SetStatusToShipped"] = landed_then_refused
        await shop.channel.confirm_shipment(order, fulfilment())
        assert shop.desk.order_items(order.order_id)[0]["Status"] == "shipped"

    run(scenario)


def test_a_shipment_without_an_nfe_key_or_of_a_canceled_order_is_refused_with_a_reason() -> None:
    async def scenario(shop: Shop) -> None:
        order = await shop.channel.order(shop.desk.create_order("1001"))
        with pytest.raises(OrderCallError, match="44-digit NF-e") as no_key:
            await shop.channel.confirm_shipment(order, fulfilment(key=None))
        assert not no_key.value.retryable and not shop.writes()
        shop.desk.set_status(order.order_id, "canceled")
        with pytest.raises(OrderCallError, match="canceled") as cancelled:
            await shop.channel.confirm_shipment(order, fulfilment())
        assert not cancelled.value.retryable
        unknown = await shop.channel.order(shop.desk.create_order("1002"))
        with pytest.raises(OrderCallError, match="ShippingProvider") as carrier:
            await shop.channel.confirm_shipment(unknown, fulfilment("Pombo Correio"))
        assert not carrier.value.retryable and "E001" in str(carrier.value)

    run(scenario)


def test_the_stand_in_refuses_like_sellercenter() -> None:
    async def scenario(shop: Shop) -> None:
        order_id = shop.desk.create_order("1001")
        (item_id,) = [i["OrderItemId"] for i in shop.desk.order_items(order_id)]

        async def call(action: str, key: str = API_KEY, fmt: str = "JSON", **params: str) -> httpx.Response:
            signed = {"Action": action, "UserID": USER, "Version": "1.0", "Format": fmt,
                      "Timestamp": NOW.isoformat(), **params}  # fmt: skip
            return await shop.channel.client.post("/?" + signed_query(signed, key))

        def code(answer: httpx.Response) -> str:
            return str(answer.json()["ErrorResponse"]["Head"]["ErrorCode"])

        ready = {
            "OrderItemIds": json.dumps([item_id]),
            "DeliveryType": "dropship",
            "ShippingProvider": "Correios",
        }
        assert (
            code(await call("SetStatusToReadyToShip", **ready, TrackingNumber="T1")) == "E028"
        )  # not packed
        assert code(await call("SetStatusToShipped", OrderItemId=item_id)) == "E028"
        assert code(await call("SetStatusToShipped", OrderItemId="999")) == "E020"
        assert code(await call("SetStatusToCanceled", OrderItemId=item_id, Reason="Bored")) == "E022"
        assert code(await call("GetOrders", Limit="500")) == "E015"
        assert code(await call("GetOrders", Offset="-1")) == "E014"
        assert code(await call("GetOrders", UpdatedAfter="yesterday")) == "E047"
        assert code(await call("GetOrders", key="wrong")) == "E007"
        assert code(await call("SetInvoiceAccessKey", OrderItemId=item_id, InvoiceAccessKey="123")) == "E001"
        xml = await call("GetOrderItems", fmt="XML", OrderId=order_id)
        root = ElementTree.fromstring(xml.content)
        assert (
            root.tag == "SuccessResponse"
            and root.findtext("Body/OrderItems/OrderItem/OrderItemId") == item_id
        )
        providers = (await call("GetShipmentProviders")).json()["SuccessResponse"]["Body"]
        assert {"Name": "Correios"} in providers["ShipmentProviders"]["ShipmentProvider"]

    run(scenario)


# -- cancelling --------------------------------------------------------------------------------------


def test_a_vtex_cancellation_cancels_every_pending_item_once(api_md: str) -> None:
    async def scenario(shop: Shop) -> None:
        order = await shop.channel.order(shop.desk.create_order("1003", 2))
        await shop.channel.cancel(order, "out of stock in the warehouse")
        await shop.channel.cancel(order, "out of stock in the warehouse")  # repeat: already canceled
        items = shop.desk.order_items(order.order_id)
        assert {(i["Status"], i["Reason"], i["ReasonDetail"]) for i in items} == {
            ("canceled", "Out of stock", "out of stock in the warehouse")
        }
        assert shop.writes() == ["SetStatusToCanceled"] * 2  # one per item; the repeat read once, sent none
        assert len(shop.standin.sent("GetOrderItems")) == 3
        documented(api_md, shop.standin.calls)
        assert (await shop.channel.order(order.order_id)).status == "cancelled"

    run(scenario)


def test_items_past_pending_cannot_be_cancelled_on_dafiti() -> None:
    async def scenario(shop: Shop) -> None:
        order = await shop.channel.order(shop.desk.create_order("1001"))
        shop.desk.set_status(order.order_id, "ready_to_ship")
        with pytest.raises(OrderCallError, match="only pending") as ready:
            await shop.channel.cancel(order, "too late")
        shop.desk.set_status(order.order_id, "shipped")
        with pytest.raises(OrderCallError, match="return path") as shipped:
            await shop.channel.cancel(order, "too late")
        assert not ready.value.retryable and not shipped.value.retryable and not shop.writes()

    run(scenario)


# -- faults ------------------------------------------------------------------------------------------


def test_with_20_percent_faults_every_step_lands_exactly_once() -> None:
    faults = Faults(error_rate=0.1, throttle_rate=0.05, drop_rate=0.05, seed=7)

    async def scenario(shop: Shop) -> None:
        made = [shop.desk.create_order(sku) for sku in SKUS for _ in range(4)]
        read = orders_only(await shop.pull())
        assert sorted(o.order_id for o in read) == sorted(made)
        for order in read[:8]:
            await shop.channel.confirm_shipment(order, fulfilment())
        for order in read[8:]:
            await shop.channel.cancel(order, "rejected by the divergence rules")
        statuses = [shop.desk.order_items(o)[0]["Status"] for o in made]
        assert sorted(statuses) == ["canceled"] * 4 + ["shipped"] * 8
        assert shop.standin.throttled > 0

    run(scenario, faults=faults)


def test_a_refused_signature_names_the_credentials_never_the_key() -> None:
    async def scenario(shop: Shop) -> None:
        order_id = shop.desk.create_order("1001")
        shop.channel.credentials = Credentials({"user_id": USER, "api_key": "wrong-key"})
        with pytest.raises(OrderCallError) as refused:
            await shop.channel.order(order_id)
        message = str(refused.value)
        assert "E007" in message and "api_key" in message and not refused.value.retryable
        assert "wrong-key" not in message and API_KEY not in message
        shop.channel.credentials = Credentials({})
        with pytest.raises(OrderCallError, match="api_key") as missing:
            await shop.channel.order(order_id)
        assert not missing.value.retryable

    run(scenario)


def test_an_error_envelope_with_a_200_is_a_refusal() -> None:
    async def scenario(shop: Shop) -> None:
        order_id = shop.desk.create_order("1001")

        def down(params: Any) -> dict[str, Any]:
            raise ActionRefused("E021", "OMS API error", status=200)

        shop.desk.handlers["GetOrder"] = down
        with pytest.raises(OrderCallError, match="E021: OMS API error") as oms:
            await shop.channel.order(order_id)
        assert not oms.value.retryable  # a Sender error; a Platform one (or a 5xx) is retried

    run(scenario)


# -- the order flow: Dafiti orders into VTEX, exactly once -----------------------------------------

FLOW_RULES = RULES.replace("affiliate: MLB", "affiliate: DFT")
VTEX_KEYS = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}


@dataclasses.dataclass
class Flow:
    """Dafiti's desk (``shop``), VTEX's stand-in and the state store; ``run`` is one scheduler run's
    step, through the Dafiti channel."""

    shop: DafitiShop
    vtex: VtexStandin
    folder: Path
    offers: dict[str, Decimal]

    def in_vtex(self, order_id: str) -> list[str]:
        found: list[str] = self.vtex.orders_by_marketplace_id().get(order_id, [])
        return found

    def run(self, *steps: str, shop_url: str | None = None, vtex_url: str | None = None) -> list[Any]:
        return asyncio.run(flow_steps(self, steps, shop_url, vtex_url))

    def stored(self, order_id: str) -> Any:
        with StateStore(self.folder / "state.sqlite") as state:
            return OrderStore(state).get("dafiti", order_id)

    def statuses(self, order_id: str) -> set[str]:
        return {i["Status"] for i in self.shop.desk.order_items(order_id)}


async def flow_steps(
    flow: Flow, steps: tuple[str, ...], shop_url: str | None, vtex_url: str | None
) -> list[Any]:
    """Pull and/or push once each, in process or (URLs given) over loopback."""

    def client(url: str | None, standin: Standin) -> httpx.AsyncClient:
        transport = None if url else standin.transport()
        return httpx.AsyncClient(transport=transport, base_url=url or "http://standin.test")

    with StateStore(flow.folder / "state.sqlite") as state:
        async with client(shop_url, flow.shop) as shop, client(vtex_url, flow.vtex) as vtex:
            channel = DafitiOrders(
                connector(carriers={"Transportadora Sandbox": "Correios"}), CREDENTIALS, shop
            )
            channel.backoff = RetryPolicy(attempts=12, base=0.001, cap=0.005)
            placement = source("vtex").placement(vtex, VTEX_KEYS, affiliate_id="DFT", sales_channel="1")
            desk = OrderDesk(
                "dafiti",
                rules(flow.folder / "dafiti.yaml"),
                OrderStore(state),
                channel,
                placement,
                lambda skus: {sku: flow.offers.get(sku) for sku in skus},
            )
            return [await getattr(desk, step)() for step in steps]


def rules(path: Path) -> Any:
    """The rule file compiled, ``dafiti`` known even where its catalog connector is not installed."""
    return compile_rules(path, [*available_connectors(), "dafiti"])


@pytest.fixture
def flow(tmp_path: Path) -> Flow:
    (tmp_path / "dafiti.yaml").write_text(
        FLOW_RULES.replace("marketplace: mercadolibre", "marketplace: dafiti")
    )
    vtex = VtexStandin(subset(12))
    products = catalog_offers(vtex)
    return Flow(DafitiShop(products=products), vtex, tmp_path, products)


def test_an_order_is_placed_once_shipped_with_its_nfe_and_a_divergent_one_cancelled(flow: Flow) -> None:
    good, cheap = list(flow.offers)[:2]
    desk = flow.shop.desk
    good_id = desk.create_order(good, 2)
    cheap_id = desk.create_order(cheap, 1, unit_price="10.00")  # 83% below ours: rejected

    pulled, pushed = flow.run("pull", "push")
    assert pulled.new == {"approved": 1, "rejected": 1}, pulled.to_dict()
    assert pushed.exit_code == 0, pushed.to_dict()["outcomes"]
    assert flow.statuses(cheap_id) == {"canceled"}
    assert flow.stored(cheap_id).state == "cancelled" and not flow.in_vtex(cheap_id)
    assert flow.stored(good_id).state == "ready"
    (vtex_id,) = flow.in_vtex(good_id)

    flow.vtex.invoice_order(vtex_id)
    (shipped,) = flow.run("push")
    assert shipped.exit_code == 0, shipped.to_dict()["outcomes"]
    assert flow.stored(good_id).state == "shipped" and flow.statuses(good_id) == {"shipped"}
    items = desk.order_items(good_id)
    assert all(len(i["InvoiceAccessKey"]) == 44 and i["TrackingCode"] for i in items)
    flow.run("pull", "push")
    assert len(flow.in_vtex(good_id)) == 1


def test_cancellations_go_both_ways(flow: Flow) -> None:
    first, second = list(flow.offers)[:2]
    desk = flow.shop.desk
    by_customer, by_store = desk.create_order(first), desk.create_order(second)
    flow.run("pull", "push")
    (customer_vtex,), (store_vtex,) = flow.in_vtex(by_customer), flow.in_vtex(by_store)

    desk.set_status(by_customer, "canceled")  # the customer cancels on Dafiti
    flow.vtex.cancel_order_as_store(store_vtex, "out of stock in the warehouse")
    flow.run("pull", "push")

    assert flow.vtex.order_record(customer_vtex)["status"] == "canceled"
    assert flow.stored(by_customer).state == "cancelled"
    assert flow.statuses(by_store) == {"canceled"} and flow.stored(by_store).state == "cancelled"


def before_the_kill(
    flow: Flow, command: str, failpoint: str, urls: dict[str, str]
) -> tuple[list[str], str, int]:
    """Three orders brought to where a run dies at ``failpoint``: their ids, the state each must end
    in once the scheduler runs again, and how many VTEX orders each must have then."""
    desk = flow.shop.desk
    rejected = failpoint == "cancel:after-marketplace"  # 98% below our price: canceled on Dafiti
    order_ids = [
        desk.create_order(sku, unit_price="1.00" if rejected else None) for sku in list(flow.offers)[:3]
    ]
    if command == "pull":
        return order_ids, "ready", 1
    flow.run("pull", **urls)
    if rejected:
        return order_ids, "cancelled", 0
    if failpoint not in ("cancel:after-vtex", "ship:after-marketplace"):
        return order_ids, "ready", 1
    flow.run("push", **urls)  # placed, then the customer cancels on Dafiti, or VTEX invoices
    if failpoint == "cancel:after-vtex":
        for order_id in order_ids:
            desk.set_status(order_id, "canceled")
        flow.run("pull", **urls)
        return order_ids, "cancelled", 1
    for order_id in order_ids:
        flow.vtex.invoice_order(*flow.in_vtex(order_id))
    return order_ids, "shipped", 1


AFTER_THE_KILL = {
    "cancel:after-marketplace": ({"canceled"}, None),
    "cancel:after-vtex": ({"canceled"}, "canceled"),
    "ship:after-marketplace": ({"shipped"}, "invoiced"),
}
"""Failpoint -> the items' statuses on Dafiti and the VTEX order's status the run must leave."""


@pytest.mark.parametrize(("command", "failpoint"), KILL_STEPS, ids=[f for _, f in KILL_STEPS])
def test_killed_at_each_step_then_run_again_every_order_once_in_vtex(
    flow: Flow, command: str, failpoint: str
) -> None:
    box = Sandbox({"dafiti": flow.shop, "vtex": flow.vtex})
    box.start()
    urls = {"shop_url": box.url("dafiti"), "vtex_url": box.url("vtex")}
    try:
        order_ids, expected, in_vtex = before_the_kill(flow, command, failpoint, urls)
        nth = 1 if command == "pull" else 2  # a push passes its points once per order: die at the second
        assert killed_run(lambda: flow.run(command, **urls), f"{failpoint}:#{nth}") == -signal.SIGKILL
        for _ in range(2):  # the scheduler's next runs (a pull killed before storing needs a second to place)
            flow.run("pull", "push", **urls)

        ended = {o: (len(flow.in_vtex(o)), flow.stored(o).state) for o in order_ids}
        assert ended == dict.fromkeys(order_ids, (in_vtex, expected))  # none twice in VTEX, none lost
        statuses, vtex_status = AFTER_THE_KILL.get(failpoint, ({"pending"}, None))
        assert all(flow.statuses(o) == statuses for o in order_ids)
        if vtex_status is not None:
            assert {flow.vtex.order_record(*flow.in_vtex(o))["status"] for o in order_ids} == {vtex_status}
        assert len(flow.shop.sent("SetStatusToShipped")) == (
            3 if failpoint == "ship:after-marketplace" else 0
        )
    finally:
        box.stop()


# -- tradepost orders, with dafiti in a project --------------------------------------------------------


def test_tradepost_orders_pull_and_push_take_a_dafiti_order_to_vtex_and_back(
    loopback: Loopback, tmp_path: Path
) -> None:
    box = loopback.sandbox(subset(20))
    desk = getattr(box.standins.get("dafiti"), "order_desk", None)
    if desk is None or order_channel_class("dafiti") is None:
        pytest.skip(
            "the sandbox's dafiti stand-in has no order desk, or dafiti is not registered in this "
            "install's entry points (the catalog stand-in joins the desk with order_desk=)"
        )
    config = write_project(box, tmp_path / "project")
    applied = run_apply(config, "dafiti", box)
    assert applied.failed == 0 and applied.applied > 5, applied.failures
    vtex: Any = box.standins["vtex"]

    def orders(*args: str) -> Any:
        """``tradepost ARGS -m dafiti --json``: its answer, the command having succeeded."""
        code, out, err = tradepost(*args, "-m", "dafiti", "--json", "-c", str(config))
        assert code == 0, err
        return json.loads(out)

    ordered = tradepost("sandbox", "order", "-m", "dafiti", "--sku", listed_skus(config, "dafiti")[0],
                        "--quantity", "2", "-c", str(config))  # fmt: skip
    order_id = ordered[1].split(" order ")[1].split()[0]
    assert {i["Status"] for i in desk.order_items(order_id)} == {"pending"}
    assert orders("orders", "pull")["pull"][0]["new"] == {"approved": 1}
    orders("orders", "push")
    (row,) = orders("orders", "list")["orders"]
    assert row["state"] == "ready" and len(vtex.orders_by_marketplace_id()[order_id]) == 1

    assert tradepost("sandbox", "invoice", row["vtex_order_id"], "-c", str(config))[0] == 0
    orders("orders", "push")
    (row,) = orders("orders", "list")["orders"]
    items = desk.order_items(order_id)
    assert row["state"] == "shipped" and {i["Status"] for i in items} == {"shipped"}
    assert all(len(i["InvoiceAccessKey"]) == 44 and i["TrackingCode"] for i in items)
