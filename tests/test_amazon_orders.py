"""Amazon orders against the stand-in, in process: reading, shipment confirmation, cancellation by feed.

The stand-in plays Amazon and the buyer: a SKU is listed through the real Listings API, a
buyer orders it (``create_order``), and the channel reads, ships and cancels it over HTTP.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections import Counter
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.connectors import BadOrder, Credentials, Fulfilment, Invoice, OrderCallError, Tracking
from engine.jsonio import dumps
from engine.model._order import Order
from marketplaces._standin import Faults
from marketplaces.amazon import AmazonConnector
from marketplaces.amazon._order_channel import (
    AmazonOrders,
    acknowledgement,
    read_order,
    report_errors,
    shipment_confirmation,
)
from marketplaces.amazon._payloads import purchasable_offer
from marketplaces.amazon.standin import AmazonStandin
from tests._harness import orders_only

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"
SELLER = "A1SELLER"
US, BR = "ATVPDKIKX0DER", "A2Q3Y263D00KWC"
SECRETS = {"lwa_client_id": "amzn1.application-oa2-client.t", "lwa_client_secret": "s3cr3t-value"}
CREDENTIALS = Credentials({**SECRETS, "refresh_token": "Atzr|refresh-me", "seller_id": SELLER})
START = datetime.now(UTC).replace(microsecond=0) - timedelta(days=2)
ORDER_ID = re.compile(r"^\d{3}-\d{7}-\d{7}$")
CONFIRM = "/orders/v0/orders/{}/shipmentConfirmation"


def standin(**options: Any) -> AmazonStandin:
    server = AmazonStandin(
        client_id=SECRETS["lwa_client_id"],
        client_secret=SECRETS["lwa_client_secret"],
        refresh_token="Atzr|refresh-me",
        seller_id=SELLER,
        marketplace_ids=(US, BR),
        feed_polls=2,
        **options,
    )
    server.order_clock = lambda: START
    return server


def connector(**options: Any) -> AmazonConnector:
    defaults = {
        "lwa_url": "http://amazon.test",
        "seller_id": SELLER,
        "feed_poll_seconds": 0.001,
        "retry_seconds": 0.001,
        "max_attempts": 12,
    }
    return AmazonConnector({**defaults, **options})


@dataclass
class Amazon:
    """The stand-in, the channel and the requests the channel sent (method, path, body)."""

    server: AmazonStandin
    channel: AmazonOrders
    client: httpx.AsyncClient
    sent: list[tuple[str, str, bytes]] = field(default_factory=list)

    async def list_sku(self, sku: str, price: str, sale: str | None = None, marketplace: str = US) -> None:
        """A listing through the real Listings API, so orders are priced from what was listed."""
        scope = connector(marketplace_id=marketplace).scope
        currency = "BRL" if marketplace == BR else "USD"
        m = {"marketplace_id": marketplace}
        text = {**m, "language_tag": "en_US"}
        attributes = {
            "item_name": [{**text, "value": f"Runner {sku}"}],
            "brand": [{**text, "value": "Acme"}],
            "condition_type": [{**m, "value": "new_new"}],
            "main_product_image_locator": [{**m, "media_location": f"https://img.example/{sku}.jpg"}],
            "supplier_declared_has_product_identifier_exemption": [{**m, "value": True}],
            "purchasable_offer": purchasable_offer(
                Decimal(price), Decimal(sale) if sale else None, currency, scope
            ),
            "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 10}],
        }
        body = {"productType": "SHOES", "requirements": "LISTING", "attributes": attributes}
        response = await self.client.put(
            f"/listings/2021-08-01/items/{SELLER}/{sku}",
            params={"marketplaceIds": marketplace},
            content=dumps(body).encode("utf-8"),
            headers={**await self.channel.headers(), "content-type": "application/json"},
        )
        assert response.json()["status"] == "ACCEPTED", response.text

    async def pull(self, since: datetime | None = None) -> list[Order | BadOrder]:
        return [found async for found in self.channel.orders(since)]

    def bodies(self, path: str) -> list[Any]:
        return [json.loads(body) for method, sent, body in self.sent if method == "POST" and sent == path]


def run(
    scenario: Callable[[Amazon], Awaitable[None]], server: AmazonStandin | None = None, **options: Any
) -> None:
    async def main() -> None:
        stand_in = server or standin()
        sent: list[tuple[str, str, bytes]] = []

        async def record(request: httpx.Request) -> None:
            sent.append((request.method, request.url.path, request.content))

        async with httpx.AsyncClient(
            transport=stand_in.transport(), base_url="http://amazon.test", event_hooks={"request": [record]}
        ) as client:
            channel = AmazonOrders(connector(**options), CREDENTIALS, client)
            await scenario(Amazon(stand_in, channel, client, sent))

    asyncio.run(main())


def fulfilment(invoice: str = "000123", tracking: Tracking | None = None, **kwargs: Any) -> Fulfilment:
    return Fulfilment(
        invoice=Invoice(number=invoice, value=Decimal("100.11"), issued_at=START),
        tracking=tracking if tracking is not None else Tracking("FedEx", "794698012345"),
        shipped_at=START + timedelta(hours=3),
        **kwargs,
    )


def spec_validator(name: str, definition: str) -> Any:
    """A validator for one definition of a copied SP-API model, or a skip saying what is missing."""
    if not SPECS.is_dir():
        pytest.skip(f"{SPECS} not found: the contract check needs Amazon's {name}")
    jsonschema = pytest.importorskip("jsonschema", reason="jsonschema validates bodies against the spec")
    swagger = json.loads((SPECS / "amazon" / name).read_text("utf-8"))
    return jsonschema.Draft4Validator(
        {"definitions": swagger["definitions"], "$ref": f"#/definitions/{definition}"}
    )


def _minimal() -> dict[str, Any]:
    return {
        "marketplace": "amazon",
        "order_id": "111-0000000-0000001",
        "created_at": START,
        "currency": "USD",
        "items": [
            {
                "sku_id": "10",
                "quantity": 1,
                "unit_price": "1.00",
                "currency": "USD",
                "marketplace_item_id": "1",
            }
        ],
        "total": "1.00",
        "payment_status": "paid",
    }


# -- reading ---------------------------------------------------------------------------------------------


def test_an_order_is_read_to_the_cent_with_its_items_ids_and_statuses() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "33.37")
        await a.list_sku("11", "80.00", sale="59.90")
        first = a.server.create_order("10", quantity=3, shipping="7.50")
        on_sale = a.server.create_order("11")
        by_id = {o.order_id: o for o in orders_only(await a.pull())}
        assert set(by_id) == {first, on_sale} and ORDER_ID.match(first)

        order = by_id[first]
        [item] = order.items
        record = a.server.order_record(first)
        expected = (item.sku_id, item.quantity, item.unit_price, item.currency, item.marketplace_item_id)
        assert expected == ("10", 3, Decimal("33.37"), "USD", record["orderItems"][0]["orderItemId"])
        assert isinstance(item.unit_price, Decimal)
        assert (order.total, order.shipping_total, order.currency) == (
            Decimal("107.61"),
            Decimal("7.50"),
            "USD",
        )
        assert (order.status, order.payment_status, order.shipping_method) == (
            "unshipped",
            "paid",
            "STANDARD",
        )
        assert order.references == {"marketplace_id": US, "fulfilled_by": "MERCHANT"}
        assert order.created_at == START and order.updated_at == START
        assert by_id[on_sale].items[0].unit_price == Decimal("59.90")  # the sale price the buyer paid
        assert await a.channel.order(first) == order

    run(scenario)


@pytest.mark.parametrize(
    ("line_total", "unit_price", "expected"),
    [
        ("100.11", None, "33.37"),  # only the line total: divided by the quantity
        ("100.00", None, "33.33"),  # not divisible: half up, to the cent
        (None, "33.37", "33.37"),  # no ITEM proceeds: the unit price as Amazon states it
    ],
)
def test_the_unit_price_comes_from_the_line_total_divided_by_the_quantity(
    line_total: str | None, unit_price: str | None, expected: str
) -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "33.37")
        order_id = a.server.create_order("10", quantity=3)
        item = a.server.orders[order_id]["orderItems"][0]
        if line_total is None:
            item["proceeds"]["breakdowns"] = []
        else:
            item["proceeds"]["breakdowns"][0]["subtotal"]["amount"] = line_total
        if unit_price is None:
            del item["product"]["price"]
        [order] = orders_only(await a.pull())
        assert order.items[0].unit_price == Decimal(expected)

    run(scenario)


def test_pages_are_followed_and_every_order_comes_once_oldest_change_first() -> None:
    server = standin()

    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        created = []
        for minute in range(7):
            server.order_clock = lambda minute=minute: START + timedelta(minutes=minute)
            created.append(server.create_order("10"))
        server.order_clock = lambda: START + timedelta(hours=1)
        server.set_order_status(created[0], "CANCELLED")  # now the most recent change
        a.channel.page_size = 3
        found = orders_only(await a.pull())
        assert [o.order_id for o in found] == [*created[1:], created[0]]
        assert server.requests["GET /orders/2026-01-01/orders"] == 3

    run(scenario, server)


def test_last_updated_after_returns_only_what_changed_and_no_watermark_means_the_last_30_days() -> None:
    server = standin()

    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        server.order_clock = lambda: START - timedelta(days=40)
        ancient = server.create_order("10")
        server.order_clock = lambda: START
        quiet, paid_later = server.create_order("10"), server.create_order("10", status="PENDING")
        pending = orders_only(await a.pull())
        assert {o.order_id: (o.status, o.payment_status) for o in pending} == {
            quiet: ("unshipped", "paid"),
            paid_later: ("pending", "pending"),
        }
        assert ancient not in {o.order_id for o in pending}

        server.order_clock = lambda: START + timedelta(hours=2)
        server.set_order_status(paid_later, "UNSHIPPED")
        [changed] = orders_only(await a.pull(since=START + timedelta(hours=1)))
        assert (changed.order_id, changed.status, changed.payment_status) == (paid_later, "unshipped", "paid")
        assert changed.updated_at == START + timedelta(hours=2) and changed.created_at == START
        assert await a.pull(since=START + timedelta(hours=3)) == []

    run(scenario, server)


def test_personal_data_is_in_the_order_but_not_in_its_repr() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("20", "199.90", marketplace=BR)
        order_id = a.server.create_order("20", quantity=2)
        address = a.server.order_record(order_id)["recipient"]["deliveryAddress"]
        order = await a.channel.order(order_id)
        assert order.buyer.name == address["name"] and order.buyer.email
        assert order.buyer.document and order.buyer.document.isdigit()  # the CPF, from the tax data
        shipping = order.shipping_address
        assert shipping is not None
        extended = address["extendedFields"]
        assert (shipping.street, shipping.number, shipping.neighborhood) == (
            extended["streetName"],
            extended["streetNumber"],
            extended["neighborhood"],
        )
        assert (shipping.postal_code, shipping.state, shipping.country) == (
            address["postalCode"],
            address["stateOrRegion"],
            "BR",
        )
        assert (order.currency, order.items[0].unit_price, order.references["marketplace_id"]) == (
            "BRL",
            Decimal("199.90"),
            BR,
        )
        personal = order.personal_values()
        assert len(personal) >= 6
        shown = repr(order) + str(order) + json.dumps(order.model_dump_safe())
        assert not [value for value in personal if value in shown]

    run(scenario, marketplace_id=BR)


def test_without_restricted_data_the_order_has_no_buyer_and_no_address() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10", buyer=False)
        order = await a.channel.order(order_id)
        assert order.shipping_address is None and order.personal_values() == []

    run(scenario)


def test_a_malformed_order_is_a_bad_order_without_personal_data_and_the_rest_still_come() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        good, no_sku, bad_amount, free = (a.server.create_order("10") for _ in range(4))
        del a.server.orders[no_sku]["orderItems"][0]["product"]["sellerSku"]
        breakdowns = {
            i: a.server.orders[i]["orderItems"][0]["proceeds"]["breakdowns"] for i in (bad_amount, free)
        }
        breakdowns[bad_amount][0]["subtotal"]["amount"] = "20,00"
        breakdowns[free][0]["subtotal"]["amount"] = "0.00"
        found = await a.pull()
        assert [o.order_id for o in found if isinstance(o, Order)] == [good]
        bad = {o.order_id: o.message for o in found if isinstance(o, BadOrder)}
        assert set(bad) == {no_sku, bad_amount, free}
        assert "sellerSku" in bad[no_sku] and "amount" in bad[bad_amount]
        item_id = a.server.orders[free]["orderItems"][0]["orderItemId"]
        assert f"order item {item_id}: unit_price" in bad[free] and "greater than 0" in bad[free]
        for order_id, message in bad.items():
            record = a.server.order_record(order_id)
            address = record["recipient"]["deliveryAddress"]
            personal = [record["buyer"]["buyerName"], record["buyer"]["buyerEmail"], address["addressLine1"]]
            assert not [value for value in [*personal, address["postalCode"]] if value in message]
        with pytest.raises(OrderCallError) as raised:
            await a.channel.order(no_sku)
        assert not raised.value.retryable and "sellerSku" in str(raised.value)

    run(scenario)


def test_amazon_fulfilled_orders_are_read_and_marked() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10", fulfilled_by="AMAZON")
        order = await a.channel.order(order_id)
        assert order.references["fulfilled_by"] == "AMAZON"
        assert order.shipping_address is None  # Amazon delivers it: the address is not ours to keep
        with pytest.raises(OrderCallError) as raised:
            await a.channel.confirm_shipment(order, fulfilment())
        assert not raised.value.retryable and "FBA" in str(raised.value)

    run(scenario)


# -- shipping ---------------------------------------------------------------------------------------------


def test_a_confirmed_shipment_ships_the_order_and_a_repeat_is_success() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "33.37")
        order_id = a.server.create_order("10", quantity=3)
        order = await a.channel.order(order_id)
        await a.channel.confirm_shipment(order, fulfilment())
        record = a.server.order_record(order_id)
        assert record["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
        [package] = record["packages"]
        item_id = order.items[0].marketplace_item_id
        assert (package["packageReferenceId"], package["trackingNumber"]) == ("123", "794698012345")
        assert package["packageItems"] == [{"orderItemId": item_id, "quantity": 3}]
        [body] = a.bodies(CONFIRM.format(order_id))
        assert body["marketplaceId"] == US
        assert body["packageDetail"]["carrierCode"] == "FedEx"
        assert body["packageDetail"]["shipDate"] == (START + timedelta(hours=3)).isoformat().replace(
            "+00:00", "Z"
        )

        await a.channel.confirm_shipment(order, fulfilment())  # the state machine repeats after a crash
        assert len(a.bodies(CONFIRM.format(order_id))) == 2
        assert a.server.order_record(order_id)["packages"] == record["packages"]
        assert a.server.order_record(order_id)["lastUpdatedTime"] == record["lastUpdatedTime"]
        # Another package for an order Amazon already shows shipped: refused there, done here.
        await a.channel.confirm_shipment(order, fulfilment(invoice="NF-77"))
        assert len(a.server.order_record(order_id)["packages"]) == 1
        assert (await a.channel.order(order_id)).status == "shipped"

    run(scenario)


def test_a_package_with_part_of_the_order_ships_part_of_it() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10", quantity=2)
        order = await a.channel.order(order_id)
        await a.channel.confirm_shipment(order, fulfilment(invoice="501", items=(("10", 1),)))
        assert a.server.order_record(order_id)["fulfillment"]["fulfillmentStatus"] == "PARTIALLY_SHIPPED"
        assert (await a.channel.order(order_id)).status == "unshipped"
        await a.channel.confirm_shipment(order, fulfilment(invoice="502", items=(("10", 1),)))
        record = a.server.order_record(order_id)
        assert record["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
        assert [p["packageReferenceId"] for p in record["packages"]] == ["501", "502"]

    run(scenario)


def test_the_shipment_confirmation_body_matches_the_orders_v0_schema() -> None:
    validator = spec_validator("ordersV0.json", "ConfirmShipmentRequest")

    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order = await a.channel.order(a.server.create_order("10", quantity=2))
        await a.channel.confirm_shipment(order, fulfilment(tracking=Tracking("Transportadora Lenta", "TL-1")))
        [body] = a.bodies(CONFIRM.format(order.order_id))
        assert [e.message for e in validator.iter_errors(body)] == []
        detail = body["packageDetail"]
        assert (detail["carrierCode"], detail["carrierName"]) == ("Other", "Transportadora Lenta")
        assert detail["packageReferenceId"].isdigit() and int(detail["packageReferenceId"]) > 0

    run(scenario)
    # An invoice "number" that is not a number still gives a stable, positive reference.
    order = Order.model_validate(_minimal())
    body = shipment_confirmation(order, fulfilment(invoice="INV-ABC"), US)
    assert [e.message for e in validator.iter_errors(body)] == []
    reference = body["packageDetail"]["packageReferenceId"]
    again = shipment_confirmation(order, fulfilment(invoice="INV-ABC"), US)["packageDetail"]
    assert reference.isdigit() and int(reference) > 0 and again["packageReferenceId"] == reference


def test_amazons_own_example_orders_are_read_line_by_line() -> None:
    if not SPECS.is_dir():
        pytest.skip(f"{SPECS} not found: the examples are in Amazon's orders_2026-01-01.json")
    swagger = json.loads(
        (SPECS / "amazon" / "orders_2026-01-01.json").read_text("utf-8"), parse_float=Decimal
    )
    search = swagger["paths"]["/orders/2026-01-01/orders"]["get"]["responses"]["200"]["examples"]
    get = swagger["paths"]["/orders/2026-01-01/orders/{orderId}"]["get"]["responses"]["200"]["examples"]
    examples = [*search["application/json"]["orders"], get["application/json"]["order"]]
    for raw in examples:
        order = read_order(raw, US)
        assert isinstance(order, Order), order
        for item, line in zip(order.items, raw["orderItems"], strict=True):
            [subtotal] = [b["subtotal"] for b in line["proceeds"]["breakdowns"] if b["type"] == "ITEM"]
            assert (
                item.line_value == Decimal(subtotal["amount"]) and item.sku_id == line["product"]["sellerSku"]
            )
        assert order.total == Decimal(raw["proceeds"]["grandTotal"]["amount"])
        assert order.references["marketplace_id"] == raw["salesChannel"]["marketplaceId"]
        assert not [value for value in order.personal_values() if value in repr(order)]


def test_the_stand_ins_answers_match_the_orders_2026_schema() -> None:
    search_validator = spec_validator("orders_2026-01-01.json", "SearchOrdersResponse")
    order_validator = spec_validator("orders_2026-01-01.json", "GetOrderResponse")

    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        await a.list_sku("20", "99.90", marketplace=BR)
        shipped = await a.channel.order(a.server.create_order("10", quantity=2, shipping="5.00"))
        await a.channel.confirm_shipment(shipped, fulfilment())
        a.server.create_order("10", status="CANCELLED")
        a.server.create_order("20", buyer=False)
        params = {
            "marketplaceIds": f"{US},{BR}",
            "createdAfter": "2000-01-01T00:00:00Z",
            "maxResultsPerPage": "2",
        }
        params["includedData"] = "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,CANCELLATION,PACKAGES,TAX"
        headers = await a.channel.headers()
        page = (await a.client.get("/orders/2026-01-01/orders", params=params, headers=headers)).json()
        assert [e.message for e in search_validator.iter_errors(page)] == [] and page["pagination"][
            "nextToken"
        ]
        one = await a.client.get(
            f"/orders/2026-01-01/orders/{shipped.order_id}", params=params, headers=headers
        )
        assert [e.message for e in order_validator.iter_errors(one.json())] == []

    run(scenario)


def test_no_tracking_number_is_refused_before_anything_is_sent() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order = await a.channel.order(a.server.create_order("10"))
        with pytest.raises(OrderCallError) as raised:
            await a.channel.confirm_shipment(order, fulfilment(tracking=Tracking("Correios", " ")))
        assert not raised.value.retryable and "tracking number" in str(raised.value)
        assert a.bodies(CONFIRM.format(order.order_id)) == []

    run(scenario)


def test_a_refusal_is_not_retried() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10", status="PENDING")
        order = await a.channel.order(order_id)
        with pytest.raises(OrderCallError) as raised:
            await a.channel.confirm_shipment(order, fulfilment())
        assert (raised.value.retryable, raised.value.status) == (False, 400)
        assert "payment is not authorised" in str(raised.value)
        assert a.server.requests[f"POST {CONFIRM.format(order_id)}"] == 1
        with pytest.raises(OrderCallError) as missing:
            await a.channel.order("111-0000000-0000000")
        assert (missing.value.retryable, missing.value.status) == (False, 404)
        assert a.server.requests["GET /orders/2026-01-01/orders/111-0000000-0000000"] == 1

    run(scenario)


# -- cancelling -------------------------------------------------------------------------------------------


def test_cancel_goes_through_an_acknowledgement_feed_and_a_repeat_is_success() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10", quantity=2)
        order = await a.channel.order(order_id)
        await a.channel.cancel(order, "sem estoque no CD principal")
        record = a.server.order_record(order_id)
        assert record["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
        execution = record["orderItems"][0]["cancellation"]["cancellationExecution"]
        assert execution == {"cancelledBy": "MERCHANT", "cancelReason": "NoInventory"}
        [feed] = a.server.feeds.values()
        assert feed["feedType"] == "POST_ORDER_ACKNOWLEDGEMENT_DATA"
        assert b"sem estoque" not in feed["input"]  # the free text stays ours
        assert (await a.channel.order(order_id)).status == "cancelled"

        await a.channel.cancel(order, "sem estoque no CD principal")
        assert len(a.server.feeds) == 1  # already cancelled: nothing sent

    run(scenario)


def test_a_shipped_order_cannot_be_cancelled() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order = await a.channel.order(a.server.create_order("10"))
        await a.channel.confirm_shipment(order, fulfilment())
        with pytest.raises(OrderCallError) as raised:
            await a.channel.cancel(order, "divergent price")
        assert not raised.value.retryable and "already shipped: use the return path" in str(raised.value)
        assert a.server.feeds == {}

    run(scenario)


def test_the_processing_report_lists_unknown_and_shipped_orders() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        shipped = await a.channel.order(a.server.create_order("10"))
        await a.channel.confirm_shipment(shipped, fulfilment())
        item = str(shipped.items[0].marketplace_item_id)
        for order_id, items, expected in (
            ("111-0000000-0000000", [], "was not found"),
            (shipped.order_id, [item], "cannot be cancelled"),
            (shipped.order_id, ["999"], "is not in order"),
        ):
            report = await a.channel._run_feed(acknowledgement(SELLER, order_id, items, "GeneralAdjustment"))
            [error] = report_errors(report)
            assert expected in error
        assert a.server.order_record(shipped.order_id)["fulfillment"]["fulfillmentStatus"] == "SHIPPED"
        with pytest.raises(OrderCallError) as fatal:
            await a.channel._run_feed(
                acknowledgement("SOMEONE-ELSE", shipped.order_id, [item], "NoInventory")
            )
        assert "FATAL" in str(fatal.value) and "MerchantIdentifier" in str(fatal.value)

    run(scenario)


# -- faults and tokens ------------------------------------------------------------------------------------


def test_with_injected_faults_every_order_is_read_once_and_confirmed_once() -> None:
    server = standin()

    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        created = []
        for minute in range(9):
            server.order_clock = lambda minute=minute: START + timedelta(minutes=minute)
            created.append(server.create_order("10"))
        server.faults = Faults(error_rate=0.3, throttle_rate=0.2, seed=11)
        a.channel.page_size = 2
        found = orders_only(await a.pull())
        assert Counter(o.order_id for o in found) == Counter(created)
        await a.channel.confirm_shipment(found[0], fulfilment())
        await a.channel.cancel(found[1], "customer asked")
        assert server.throttled > 0
        first, second = server.order_record(created[0]), server.order_record(created[1])
        assert (first["fulfillment"]["fulfillmentStatus"], len(first["packages"])) == ("SHIPPED", 1)
        assert second["fulfillment"]["fulfillmentStatus"] == "CANCELLED"
        assert (
            second["orderItems"][0]["cancellation"]["cancellationExecution"]["cancelReason"]
            == "BuyerCanceled"
        )
        searches = [path for _, path, _ in a.sent if path == "/orders/2026-01-01/orders"]
        assert len(searches) > 5  # five pages, and some were answered 500 or 429 first

    run(scenario, server)


def test_an_access_token_that_expires_in_flight_is_replaced() -> None:
    server = standin(token_lifetime=3600)
    now = [0.0]
    server.clock = lambda: now[0]

    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = server.create_order("10")
        now[0] = 4000.0  # Amazon's clock ran ahead of the connector's cache
        assert (await a.channel.order(order_id)).order_id == order_id
        assert server.requests["POST /auth/o2/token"] == 2

    run(scenario, server)


# -- the stand-in -----------------------------------------------------------------------------------------


def test_the_stand_in_validates_search_parameters_as_amazon_does() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10")
        headers = await a.channel.headers()
        after = "2000-01-01T00:00:00Z"
        refused = [
            {"createdAfter": after},  # no marketplaceIds
            {"marketplaceIds": US},  # neither createdAfter nor lastUpdatedAfter
            {"marketplaceIds": US, "createdAfter": after, "lastUpdatedAfter": after},
            {"marketplaceIds": US, "createdAfter": "yesterday"},
            {"marketplaceIds": US, "createdAfter": after, "maxResultsPerPage": "101"},
            {"marketplaceIds": US, "createdAfter": after, "includedData": "EVERYTHING"},
            {"marketplaceIds": US, "createdAfter": after, "fulfillmentStatuses": "LOST"},
            {"marketplaceIds": US, "createdAfter": after, "paginationToken": "not-a-token"},
        ]
        for params in refused:
            response = await a.client.get("/orders/2026-01-01/orders", params=params, headers=headers)
            assert response.status_code == 400, params
            assert response.json()["errors"][0]["code"] == "InvalidInput"
        plain = await a.client.get(
            "/orders/2026-01-01/orders", params={"marketplaceIds": US, "createdAfter": after}, headers=headers
        )
        [order] = plain.json()["orders"]
        assert (
            "buyer" not in order and "proceeds" not in order and "fulfillment" not in order["orderItems"][0]
        )
        shipped_only = {
            "marketplaceIds": US,
            "createdAfter": after,
            "fulfillmentStatuses": "SHIPPED,CANCELLED",
        }
        response = await a.client.get("/orders/2026-01-01/orders", params=shipped_only, headers=headers)
        assert response.json()["orders"] == []
        anonymous = await a.client.get(f"/orders/2026-01-01/orders/{order_id}")
        assert anonymous.status_code == 403
        missing = await a.client.get("/orders/2026-01-01/orders/111-0000000-0000000", headers=headers)
        assert missing.status_code == 404
        assert set(missing.json()["errors"][0]) == {"code", "message", "details"}

    run(scenario)


def test_the_stand_in_refuses_an_incomplete_shipment_confirmation() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        order_id = a.server.create_order("10")
        item_id = a.server.order_record(order_id)["orderItems"][0]["orderItemId"]
        headers = await a.channel.headers()
        complete = {
            "marketplaceId": US,
            "packageDetail": {
                "packageReferenceId": "1",
                "carrierCode": "UPS",
                "trackingNumber": "1Z999",
                "shipDate": "2026-01-01T10:00:00Z",
                "orderItems": [{"orderItemId": item_id, "quantity": 1}],
            },
        }
        for drop in ("packageReferenceId", "carrierCode", "trackingNumber", "shipDate", "orderItems"):
            body = json.loads(json.dumps(complete))
            del body["packageDetail"][drop]
            response = await a.client.post(CONFIRM.format(order_id), json=body, headers=headers)
            assert response.status_code == 400 and drop in response.text
        for key, value in (
            ("carrierCode", "Other"),
            ("shipDate", "02/21/2022"),
            ("packageReferenceId", "PKG-1"),
        ):
            body = json.loads(json.dumps(complete))
            body["packageDetail"][key] = value
            response = await a.client.post(CONFIRM.format(order_id), json=body, headers=headers)
            assert response.status_code == 400, key
        assert a.server.order_record(order_id)["packages"] == []
        response = await a.client.post(CONFIRM.format(order_id), json=complete, headers=headers)
        assert (response.status_code, response.content) == (204, b"")

    run(scenario)


def test_the_sandbox_controls_create_and_move_orders() -> None:
    async def scenario(a: Amazon) -> None:
        await a.list_sku("10", "20.00")
        created = await a.client.post(
            "/_sandbox/orders", json={"sku_id": "10", "quantity": 2, "unit_price": "18.50"}
        )
        assert created.status_code == 201
        order_id = created.json()["order_id"]
        assert ORDER_ID.match(order_id)
        order = await a.channel.order(order_id)
        assert (order.items[0].unit_price, order.items[0].quantity) == (Decimal("18.50"), 2)
        moved = await a.client.post(f"/_sandbox/orders/{order_id}/status", json={"status": "CANCELLED"})
        assert moved.status_code == 200
        assert (await a.channel.order(order_id)).status == "cancelled"
        unlisted = await a.client.post("/_sandbox/orders", json={"sku_id": "nope"})
        assert unlisted.status_code == 400 and "no listing" in unlisted.text
        with pytest.raises(ValueError, match="no listing"):
            a.server.create_order("nope")

    run(scenario)
