"""Mercado Libre orders against the stand-in, in process: reading, paging, shipping, invoicing, cancelling.

Listings are seeded through the stand-in's own app (below its fault layer) the way the connector
creates them; orders are made by the stand-in as buyers make them; the channel reads and changes
them through the faulty, rate-limited front door the engine would use.
"""

from __future__ import annotations

import asyncio
import dataclasses
import re
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from engine.connectors import (
    BadOrder,
    Credentials,
    Fulfilment,
    Invoice,
    OrderCallError,
    RetryPolicy,
    Tracking,
)
from engine.jsonio import dumps, loads
from engine.model._order import Order
from marketplaces._standin import Faults
from marketplaces.mercadolibre import MercadoLibreConnector
from marketplaces.mercadolibre._order_channel import MercadoLibreOrders, cancel_reason
from marketplaces.mercadolibre.standin import MercadoLibreStandin
from tests._harness import orders_only

SECRETS = {"client_id": "5501", "client_secret": "s3cret-value", "refresh_token": "TG-first"}
NFE_KEY = "35240512345678000190550010000012341000012345"
INVOICE = Invoice("1234", Decimal("149.70"), datetime(2024, 5, 2, 9, 0, tzinfo=UTC), key=NFE_KEY)
T = TypeVar("T")


class Clock:
    """The stand-in's time, moved by hand so last-updated filters are exact."""

    def __init__(self) -> None:
        self.now = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: int = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


@dataclasses.dataclass
class Shop:
    """A stand-in with listings, and the order channel reading it through an in-process client."""

    standin: MercadoLibreStandin
    channel: MercadoLibreOrders
    seed: httpx.AsyncClient

    async def list_item(self, sku: str, price: str = "49.90", quantity: int = 50) -> str:
        item = await self._post_item({"price": Decimal(price), "available_quantity": quantity}, sku)
        return str(item["id"])

    async def list_family(self, skus: list[str], price: str = "99.90", quantity: int = 10) -> dict[str, str]:
        variations = [
            {
                "attribute_combinations": [{"id": "SIZE", "value_name": size}],
                "price": Decimal(price),
                "available_quantity": quantity,
                "attributes": [{"id": "SELLER_SKU", "value_name": sku}],
            }
            for sku, size in zip(skus, ("P", "M", "G", "GG"), strict=False)
        ]
        item = await self._post_item(
            {"price": Decimal(price), "available_quantity": quantity * len(skus), "variations": variations}
        )
        return {v["attributes"][0]["value_name"]: f"{item['id']}/{v['id']}" for v in item["variations"]}

    async def _post_item(self, fields: dict[str, Any], sku: str | None = None) -> dict[str, Any]:
        body = {
            "title": "Tênis Runner Acme",
            "category_id": "MLB23332",
            "currency_id": "BRL",
            "buying_mode": "buy_it_now",
            "listing_type_id": "gold_special",
            "condition": "new",
            "pictures": [{"source": "https://img.example/1.jpg"}],
            "attributes": [{"id": "BRAND", "value_name": "Acme"}]
            + ([{"id": "SELLER_SKU", "value_name": sku}] if sku else []),
            **fields,
        }
        response = await self.seed.post("/items", content=dumps(body))
        assert response.status_code == 201, response.text
        item: dict[str, Any] = loads(response.content)
        return item

    async def pull(self, since: datetime | None = None) -> list[Order | BadOrder]:
        return [order async for order in self.channel.orders(since)]

    async def read(self, order_id: str) -> Order:
        return await self.channel.order(order_id)


def run(
    scenario: Callable[[Shop], Awaitable[T]],
    standin: MercadoLibreStandin | None = None,
    sku_of: Callable[[str], str | None] | None = None,
    **options: Any,
) -> T:
    standin = standin or MercadoLibreStandin(
        SECRETS["client_id"], SECRETS["client_secret"], SECRETS["refresh_token"]
    )
    connector = MercadoLibreConnector(options)

    async def no_wait(seconds: float) -> None:
        return None

    connector.token.sleep = no_wait

    async def main() -> T:
        # Seeding goes to the app itself, below the rate limit and the injected faults.
        async with (
            httpx.AsyncClient(
                transport=httpx.ASGITransport(app=standin.app), base_url="http://ml.test"
            ) as seed,
            httpx.AsyncClient(transport=standin.transport(), base_url="http://ml.test") as client,
        ):
            token = await seed.post(
                "/oauth/token",
                data={**SECRETS, "grant_type": "refresh_token", "refresh_token": standin.refresh_token},
            )
            seed.headers["Authorization"] = f"Bearer {token.json()['access_token']}"
            # Mercado Libre rotated the refresh token: the channel starts from the new one.
            credentials = Credentials({**SECRETS, "refresh_token": standin.refresh_token})
            channel = MercadoLibreOrders(connector, credentials, client, sku_of)
            channel.backoff = RetryPolicy(attempts=8, base=0.001, cap=0.005)
            return await scenario(Shop(standin, channel, seed))

    return asyncio.run(main())


# -- reading -----------------------------------------------------------------------------------------


def test_an_order_is_read_to_the_cent_with_its_buyer_address_and_shipment() -> None:
    async def scenario(shop: Shop) -> None:
        item_id = await shop.list_item("1001", "49.90", quantity=10)
        order_id = shop.standin.create_order("1001", 3)
        assert shop.standin.items[item_id]["available_quantity"] == 7
        (order,) = orders_only(await shop.pull())
        record = shop.standin.order_record(order_id)
        shipment = shop.standin.shipment_record(order_id)
        assert shipment is not None
        (item,) = order.items
        assert (order.marketplace, order.order_id, order.currency) == ("mercadolibre", order_id, "BRL")
        assert (item.sku_id, item.quantity, item.unit_price, item.currency) == (
            "1001",
            3,
            Decimal("49.90"),
            "BRL",
        )
        assert str(item.unit_price) == "49.90" and item.marketplace_item_id == item_id
        assert (
            order.items_value == Decimal("149.70") == order.total
        )  # free Mercado Envios shipping from R$ 79
        assert (order.shipping_total, order.payment_status, order.status) == (Decimal(0), "paid", "unshipped")
        assert order.created_at == datetime.fromisoformat(record["date_created"]) and order.created_at.tzinfo
        assert order.updated_at == datetime.fromisoformat(record["last_updated"])
        assert order.references == {
            "shipment_id": str(shipment["id"]),
            "mode": "me2",
            "logistic_type": "drop_off",
        }
        buyer = record["buyer"]
        assert order.buyer.id == str(buyer["id"])
        assert order.buyer.name == f"{buyer['first_name']} {buyer['last_name']}"
        assert order.buyer.email == buyer["email"]
        address, receiver = order.shipping_address, shipment["receiver_address"]
        assert address is not None
        assert (address.street, address.city, address.postal_code, address.country) == (
            receiver["street_name"],
            receiver["city"]["name"],
            receiver["zip_code"],
            "BR",
        )
        assert address.state == receiver["state"]["id"].removeprefix("BR-")
        assert address.name == receiver["receiver_name"]
        assert await shop.read(order_id) == order

    run(scenario)


def test_shipping_payment_and_fulfilment_status_follow_the_order() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001", "49.90")
        cheap = shop.standin.create_order("1001", 1)  # below R$ 79: the buyer pays Mercado Envios
        custom = shop.standin.create_order("1001", 1, shipping_mode="custom")
        unpaid = shop.standin.create_order("1001", 1, status="payment_in_process")
        refunded = shop.standin.create_order("1001", 1, status="partially_refunded")
        full = shop.standin.create_order("1001", 1, shipping_mode="fulfillment")
        divergent = shop.standin.create_order("1001", 2, Decimal("39.90"))
        read = {order.order_id: order for order in orders_only(await shop.pull())}
        assert (read[cheap].shipping_total, read[cheap].total) == (Decimal("21.90"), Decimal("71.80"))
        assert read[custom].shipping_total == Decimal("15.00") and read[custom].references["mode"] == "custom"
        assert (read[unpaid].payment_status, read[unpaid].status) == ("pending", "pending")
        assert (read[refunded].payment_status, read[refunded].status) == ("refunded", "unshipped")
        assert read[full].shipping_address is None and read[full].references["logistic_type"] == "fulfillment"
        assert read[divergent].items[0].unit_price == Decimal("39.90")
        shop.standin.set_order_status(unpaid, "paid")
        shop.standin.set_order_status(cheap, "shipped")
        shop.standin.set_order_status(custom, "cancelled")
        assert ((await shop.read(unpaid)).payment_status, (await shop.read(unpaid)).status) == (
            "paid",
            "unshipped",
        )
        assert (await shop.read(cheap)).status == "shipped"
        assert ((await shop.read(custom)).payment_status, (await shop.read(custom)).status) == (
            "refunded",
            "cancelled",
        )

    run(scenario)


def test_orders_are_paged_oldest_first_each_once() -> None:
    clock = Clock()
    standin = MercadoLibreStandin(
        SECRETS["client_id"], SECRETS["client_secret"], SECRETS["refresh_token"], clock=clock
    )

    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        made = []
        for _ in range(5):
            clock.tick()
            made.append(shop.standin.create_order("1001"))
        shop.channel.page_size = 2
        assert [order.order_id for order in orders_only(await shop.pull())] == made
        assert shop.standin.requests["GET /orders/search"] == 3  # 2 + 2 + 1
        assert shop.standin.requests["GET /users/me"] == 1

    run(scenario, standin)


def test_only_orders_updated_since_the_watermark_are_read() -> None:
    clock = Clock()
    standin = MercadoLibreStandin(
        SECRETS["client_id"], SECRETS["client_secret"], SECRETS["refresh_token"], clock=clock
    )

    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        first = shop.standin.create_order("1001", status="payment_required")
        clock.tick()
        shop.standin.create_order("1001")
        since = clock.tick()
        third = shop.standin.create_order("1001")
        clock.tick()
        shop.standin.set_order_status(first, "paid")  # changed after the watermark: read again
        read = orders_only(await shop.pull(since))
        assert [order.order_id for order in read] == [first, third]
        assert all(order.updated_at is not None and order.updated_at >= since for order in read)
        assert read[0].payment_status == "paid"
        assert [order.order_id for order in orders_only(await shop.pull(clock.tick()))] == []

    run(scenario, standin)


def test_the_order_status_option_searches_by_seller_and_status() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        unpaid = shop.standin.create_order("1001", status="payment_required")
        paid = shop.standin.create_order("1001")
        read = orders_only(await shop.pull(None))
        assert [order.order_id for order in read] == [paid]
        assert unpaid not in {order.order_id for order in read}

    run(scenario, order_status="paid")


def test_a_variation_is_read_as_its_sku_from_seller_sku_or_else_from_the_state_store() -> None:
    remote_ids: dict[str, str] = {}

    async def scenario(shop: Shop) -> None:
        remote_ids.update(await shop.list_family(["2001", "2002"]))
        by_seller_sku = shop.standin.create_order("2002", 1)
        from_state = shop.standin.create_order("2001", 1)
        unknown = shop.standin.create_order("2001", 1)
        for order_id in (from_state, unknown):
            shop.standin.order_record(order_id)["order_items"][0]["item"]["seller_sku"] = None
        shop.standin.order_record(unknown)["order_items"][0]["item"]["variation_id"] = 1
        read = {order.order_id: order for order in await shop.pull()}
        good = {order_id: order for order_id, order in read.items() if isinstance(order, Order)}
        (line,) = good[by_seller_sku].items
        assert (line.sku_id, line.marketplace_item_id) == ("2002", remote_ids["2002"])
        (line,) = good[from_state].items
        assert (line.sku_id, line.marketplace_item_id) == ("2001", remote_ids["2001"])
        bad = read[unknown]
        assert isinstance(bad, BadOrder) and "no SKU listed as" in bad.message

    run(scenario, sku_of=lambda remote: {v: k for k, v in remote_ids.items()}.get(remote))


def test_a_malformed_order_is_a_bad_order_and_the_others_still_come() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        first, broken, last = (shop.standin.create_order("1001") for _ in range(3))
        shop.standin.order_record(broken)["order_items"][0]["unit_price"] = "forty-nine"
        read = await shop.pull()
        assert [order.order_id for order in read] == [first, broken, last]
        bad = read[1]
        assert isinstance(bad, BadOrder) and bad.marketplace == "mercadolibre"
        assert bad.message == "order_items[0].unit_price is not a number"
        with pytest.raises(OrderCallError) as refused:
            await shop.read(broken)
        assert not refused.value.retryable

    run(scenario)


def test_personal_data_is_in_the_order_but_never_in_its_repr_or_a_bad_order() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        shop.standin.create_order("1001")
        broken = shop.standin.create_order("1001")
        shipment = shop.standin.shipment_record(broken)
        assert shipment is not None
        del shipment["receiver_address"]["zip_code"]
        order, bad = await shop.pull()
        assert isinstance(order, Order) and isinstance(bad, BadOrder)
        personal = order.personal_values()
        assert order.buyer.email and order.shipping_address and order.shipping_address.street in personal
        record = shop.standin.order_record(broken)
        leaks = [
            *personal,
            record["buyer"]["first_name"],
            record["buyer"]["email"],
            str(record["buyer"]["id"]),
        ]
        for text in (repr(order), str(order), repr(bad), bad.message, str(order.model_dump_safe())):
            # a whole value, not digits inside another number (a street number "2100" is in no
            # timestamp's "...21000...")
            assert not [value for value in leaks if re.search(rf"(?<!\w){re.escape(value)}(?!\w)", text)], (
                text
            )
        assert bad.message.endswith("receiver_address.zip_code is missing")

    run(scenario)


def test_injected_faults_still_give_each_order_once() -> None:
    standin = MercadoLibreStandin(
        SECRETS["client_id"],
        SECRETS["client_secret"],
        SECRETS["refresh_token"],
        faults=Faults(error_rate=0.3, throttle_rate=0.2, seed=11),
    )

    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        made = [shop.standin.create_order("1001") for _ in range(12)]
        shop.channel.page_size = 5
        read = orders_only(await shop.pull())
        assert [order.order_id for order in read] == made
        assert shop.standin.throttled > 0 and shop.standin.total_requests() > 3 + 12

    run(scenario, standin)


def test_a_refusal_is_not_retried() -> None:
    async def scenario(shop: Shop) -> None:
        with pytest.raises(OrderCallError) as refused:
            await shop.read("2000000000000999")
        assert (refused.value.status, refused.value.retryable) == (404, False)
        assert "Order 2000000000000999 not found" in str(refused.value)
        assert shop.standin.requests["GET /orders/2000000000000999"] == 1

    run(scenario)


def test_a_revoked_token_is_refreshed_and_the_call_sent_again() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        order_id = shop.standin.create_order("1001")
        await shop.read(order_id)
        shop.standin.revoke_tokens()  # the seller re-authorised the app
        assert (await shop.read(order_id)).order_id == order_id
        assert shop.standin.requests[f"GET /orders/{order_id}"] == 3

    run(scenario)


# -- confirming shipments ------------------------------------------------------------------------


def test_a_seller_shipped_order_gets_its_tracking_then_fulfilled_feedback_and_repeats_are_done() -> None:
    tracking = Tracking("Correios", "QB123456789BR", "https://rastreamento.correios.com.br")

    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        order_id = shop.standin.create_order("1001", 3, shipping_mode="custom")
        order = await shop.read(order_id)
        await shop.channel.confirm_shipment(order, Fulfilment(INVOICE, tracking))
        shipment = shop.standin.shipment_record(order_id)
        assert shipment is not None
        assert (shipment["tracking_number"], shipment["tracking_method"]) == ("QB123456789BR", "Correios")
        assert shipment["service_id"] == 11  # the carrier's Mercado Libre service, from the options
        assert shipment["status_history"]["date_shipped"] is not None
        assert shipment["status"] == "delivered"  # fulfilled feedback completes a sale outside Mercado Envios
        feedback = shop.standin.feedback[order_id]
        assert (feedback["fulfilled"], feedback["rating"]) == (True, "positive")
        assert len(feedback["message"]) < 160
        assert (await shop.read(order_id)).status == "shipped"
        await shop.channel.confirm_shipment(order, Fulfilment(INVOICE, tracking))  # after a crash: done
        assert shop.standin.requests[f"PUT /shipments/{shipment['id']}"] == 1
        assert shop.standin.requests[f"GET /orders/{order_id}/feedback"] == 1  # refused, read back
        assert shop.standin.feedback[order_id] == feedback

    run(scenario, shipping_services={"Correios": 11})


def test_a_mercado_envios_order_gets_its_invoice_attached_not_a_tracking_number() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        order_id = shop.standin.create_order("1001", 3)
        shipment = shop.standin.shipment_record(order_id)
        assert shipment is not None and shipment["substatus"] == "invoice_pending"
        order = await shop.read(order_id)
        fulfilment = Fulfilment(INVOICE, Tracking("Correios", "QB123456789BR"))
        await shop.channel.confirm_shipment(order, fulfilment)
        document = shop.standin.fiscal_documents[order_id]
        assert (document["key"], document["number"], document["value"]) == (
            NFE_KEY,
            "1234",
            Decimal("149.70"),
        )
        assert shipment["substatus"] == "ready_to_print" and shipment["tracking_number"] is None
        assert order_id not in shop.standin.feedback
        await shop.channel.confirm_shipment(order, fulfilment)  # 409: attached already, done
        assert shop.standin.requests[f"POST /packs/{order_id}/fiscal_documents"] == 2
        assert not any(path.startswith("PUT /shipments") for path in shop.standin.requests)
        without_key = Fulfilment(dataclasses.replace(INVOICE, key=None))
        with pytest.raises(OrderCallError, match="44-digit NF-e key") as refused:
            await shop.channel.confirm_shipment(order, without_key)
        assert not refused.value.retryable

    run(scenario)


# -- cancelling ----------------------------------------------------------------------------------


def test_a_cancel_is_feedback_that_cancels_and_restocks_and_a_repeat_is_done() -> None:
    async def scenario(shop: Shop) -> None:
        item_id = await shop.list_item("1001", quantity=10)
        order_id = shop.standin.create_order("1001", 2)
        order = await shop.read(order_id)
        assert shop.standin.items[item_id]["available_quantity"] == 8
        await shop.channel.cancel(order, "Out of stock in warehouse main")
        record = shop.standin.order_record(order_id)
        assert record["status"] == "cancelled" and shop.standin.items[item_id]["available_quantity"] == 10
        feedback = shop.standin.feedback[order_id]
        assert (feedback["fulfilled"], feedback["rating"], feedback["reason"], feedback["restock_item"]) == (
            False,
            "neutral",
            "OUT_OF_STOCK",
            True,
        )
        assert feedback["message"] == "Out of stock in warehouse main"
        await shop.channel.cancel(order, "Out of stock in warehouse main")  # refused, read back: done
        assert shop.standin.requests[f"GET /orders/{order_id}/feedback"] == 1
        assert shop.standin.items[item_id]["available_quantity"] == 10
        assert (await shop.read(order_id)).status == "cancelled"

    run(scenario)


def test_an_oversold_order_stops_the_listing_at_zero_and_a_cancel_returns_what_it_took() -> None:
    async def scenario(shop: Shop) -> None:
        item_id = await shop.list_item("1001", quantity=1)
        order_id = shop.standin.create_order("1001", 3)  # the stock update had not arrived yet
        item = shop.standin.items[item_id]
        assert (item["available_quantity"], item["sold_quantity"]) == (0, 3)
        await shop.channel.cancel(await shop.read(order_id), "out of stock")
        assert (item["available_quantity"], item["sold_quantity"]) == (1, 0)

    run(scenario)


def test_cancelling_an_order_the_buyer_cancelled_is_done() -> None:
    async def scenario(shop: Shop) -> None:
        item_id = await shop.list_item("1001", quantity=10)
        order_id = shop.standin.create_order("1001", 2)
        order = await shop.read(order_id)
        shop.standin.set_order_status(order_id, "cancelled")
        await shop.channel.cancel(order, "price diverges 30% from 49.90 " + "x" * 200)
        assert shop.standin.items[item_id]["available_quantity"] == 10  # returned once
        feedback = shop.standin.feedback[order_id]
        assert feedback["reason"] == "SELLER_REGRETS" and len(feedback["message"]) < 160

    run(scenario)


def test_cancelling_a_shipped_order_is_refused_for_good() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        order_id = shop.standin.create_order("1001")
        stale = await shop.read(order_id)
        shop.standin.set_order_status(order_id, "shipped")  # the carrier scanned Mercado Libre's label
        with pytest.raises(OrderCallError, match="already shipped: use the return path") as refused:
            await shop.channel.cancel(stale, "buyer regrets")
        assert not refused.value.retryable
        fresh = await shop.read(order_id)
        assert fresh.status == "shipped"
        with pytest.raises(OrderCallError, match="already shipped") as refused:
            await shop.channel.cancel(fresh, "buyer regrets")
        assert not refused.value.retryable
        assert (
            shop.standin.order_record(order_id)["status"] == "paid" and order_id not in shop.standin.feedback
        )

    run(scenario)


@pytest.mark.parametrize(
    ("reason", "code"),
    [
        ("Out of stock", "OUT_OF_STOCK"),
        ("sem estoque no CD", "OUT_OF_STOCK"),
        ("buyer regrets the purchase", "BUYER_REGRETS"),
        ("BUYER_DID_NOT_ANSWER", "BUYER_DID_NOT_ANSWER"),
        ("price diverges 25% from our price", "SELLER_REGRETS"),
        ("", "SELLER_REGRETS"),
    ],
)
def test_our_reason_becomes_mercado_libres_reason_code(reason: str, code: str) -> None:
    assert cancel_reason(reason) == code


# -- the stand-in checks what Mercado Libre checks -----------------------------------------------


def test_the_standin_refuses_what_mercado_libre_refuses() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001")
        me2, custom = (
            shop.standin.create_order("1001"),
            shop.standin.create_order("1001", shipping_mode="custom"),
        )
        seller = shop.standin.seller_id

        async def answer(method: str, path: str, body: Any = None, **params: Any) -> tuple[int, Any]:
            content = None if body is None else dumps(body)
            response = await shop.seed.request(method, path, params=params, content=content)
            return response.status_code, loads(response.content)

        status, body = await answer("GET", "/orders/search", seller=seller + 1)
        assert status == 403 and set(body) == {"message", "error", "status", "cause"}
        assert (await answer("GET", "/orders/search", seller=seller, limit=52))[0] == 400
        assert (await answer("GET", "/orders/search", seller=seller, limit=51))[0] == 200
        status, body = await answer("GET", "/orders/search", seller=seller, **{"order.status": "cancelled"})
        assert (status, body["paging"]["total"]) == (200, 0)
        feedback = f"/orders/{me2}/feedback"
        for wrong in (
            {"fulfilled": False, "rating": "neutral", "message": "x" * 160, "reason": "OUT_OF_STOCK"},
            {"fulfilled": False, "rating": "positive", "message": "ok", "reason": "OUT_OF_STOCK"},
            {"fulfilled": False, "rating": "neutral", "message": "ok"},
            {"fulfilled": "yes", "rating": "positive", "message": "ok"},
        ):
            status, body = await answer("POST", feedback, wrong)
            assert (status, body["error"]) == (400, "validation_error"), wrong
        shipment = shop.standin.shipment_record(me2)
        assert shipment is not None
        status, body = await answer("PUT", f"/shipments/{shipment['id']}", {"tracking_number": "X1"})
        assert status == 400 and "Mercado Libre assigns its tracking" in body["message"]
        custom_shipment = shop.standin.shipment_record(custom)
        assert custom_shipment is not None
        path = f"/shipments/{custom_shipment['id']}"
        assert (await answer("PUT", path, {"status": "shipped"}))[0] == 400  # no tracking number
        assert (await answer("PUT", path, {"status": "delivered", "tracking_number": "X1"}))[0] == 400
        assert (await answer("PUT", path, {"status": "shipped", "tracking_number": "X1"}))[0] == 200
        status, body = await answer("PUT", path, {"status": "shipped", "tracking_number": "X2"})
        assert (status, body["tracking_number"]) == (200, "X1")  # a repeat changes nothing
        assert (await answer("POST", f"/packs/{me2}/fiscal_documents", {"number": "1", "key": "123"}))[
            0
        ] == 400
        assert (await answer("GET", "/shipments/1"))[0] == 404

    run(scenario)


def test_the_sandbox_controls_create_orders_and_change_their_status() -> None:
    async def scenario(shop: Shop) -> None:
        await shop.list_item("1001", "49.90")
        status, body = await _control(shop, "/_sandbox/orders", {"sku_id": "1001", "quantity": 3})
        assert status == 201
        order_id = body["order_id"]
        assert shop.standin.order_record(order_id)["order_items"][0]["unit_price"] == Decimal("49.90")
        status, body = await _control(shop, "/_sandbox/orders", {"sku_id": "nope"})
        assert status == 400 and "SKU nope is not listed" in body["message"]
        status, body = await _control(shop, f"/_sandbox/orders/{order_id}/status", {"status": "cancelled"})
        assert (status, body["status"]) == (200, "cancelled")
        assert (await _control(shop, f"/_sandbox/orders/{order_id}/status", {"status": "lost"}))[0] == 400
        assert (await _control(shop, "/_sandbox/orders/1/status", {"status": "paid"}))[0] == 404
        with pytest.raises(ValueError, match="not listed"):
            shop.standin.create_order("nope")

    run(scenario)


async def _control(shop: Shop, path: str, body: Any) -> tuple[int, Any]:
    response = await shop.channel.client.post(path, content=dumps(body))
    return response.status_code, loads(response.content)
