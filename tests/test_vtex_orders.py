"""The VTEX order client against the VTEX stand-in: placed once whatever fails, read back to the cent.

Everything runs in process: ``VtexStandin.transport()`` mounts the stand-in's ASGI app on the
``httpx.AsyncClient`` the client takes, and small transport wrappers stand for the network
failing in the worst places (the order placed, its answer lost). The stand-in is built from
the first records of ``examples/catalog.jsonl``; the orders are written by hand for its SKUs:

| SKU     | VTEX price | promotion | in stock |
|---------|-----------:|----------:|---------:|
| 2000001 |     476.99 |    381.99 |        1 |
| 2000015 |      87.90 |           |       11 |
| 2000023 |      83.90 |           |      204 |
| 2000024 |      83.90 |           |      207 |
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeVar

import httpx
import pytest

from engine.connectors import OrderCallError, RetryPolicy
from engine.jsonio import loads
from engine.model._order import Address, Buyer, Order, OrderItem
from marketplaces._standin import Faults
from marketplaces.vtex._order_placement import PLACEHOLDER_PHONE, Placed, VtexOrders
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, OrderRefused, VtexStandin
from tests.conftest import ROOT, SPECS

T = TypeVar("T")
CATALOG = ROOT / "examples" / "catalog.jsonl"
BASE_URL = "https://teststore.vtexcommercestable.com.br"
PLACE = "/api/fulfillment/pvt/orders"
FAST = RetryPolicy(attempts=12, base=0.001, cap=0.01)
HEADERS = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}

BUYER = Buyer(
    id="88776655", name="Maria Conceição Souza", email="maria.souza@example.com", document="845.134.270-19"
)
ADDRESS = Address(
    name="Maria Conceição Souza",
    street="Rua das Acácias Escondidas",
    number="1234",
    complement="apto 56",
    neighborhood="Jardim Paulistano",
    city="São Paulo",
    state="SP",
    postal_code="01415-001",
    country="BR",
)


def catalog(limit: int = 40) -> list[dict[str, Any]]:
    with CATALOG.open(encoding="utf-8") as lines:
        return [json.loads(line, parse_float=Decimal) for _, line in zip(range(limit), lines, strict=False)]


def an_order(
    order_id: str = "2000000001",
    items: tuple[tuple[str, int, str], ...] = (("2000023", 1, "134.90"), ("2000024", 3, "49.95")),
    shipping: str = "19.90",
    **fields: Any,
) -> Order:
    """A paid Mercado Libre order: (sku, quantity, unit price) lines, total = lines + shipping."""
    lines = tuple(
        OrderItem(sku_id=sku, quantity=quantity, unit_price=Decimal(price), currency="BRL")
        for sku, quantity, price in items
    )
    values: dict[str, Any] = {
        "marketplace": "mercadolibre",
        "order_id": order_id,
        "created_at": datetime(2025, 3, 1, 12, 30, tzinfo=UTC),
        "currency": "BRL",
        "items": lines,
        "total": sum((line.line_value for line in lines), Decimal(shipping)),
        "shipping_total": Decimal(shipping),
        "payment_status": "paid",
        "buyer": BUYER,
        "shipping_address": ADDRESS,
    }
    return Order(**(values | fields))


def run(
    standin: VtexStandin,
    scenario: Callable[[VtexOrders], Awaitable[T]],
    *,
    wrap: Callable[[httpx.AsyncBaseTransport], httpx.AsyncBaseTransport] = lambda inner: inner,
    affiliate: str = "MLB",
    token: str = SANDBOX_APP_TOKEN,
    backoff: RetryPolicy = FAST,
) -> T:
    """Run ``scenario`` with a client for the stand-in in process (through ``wrap``)."""

    async def main() -> T:
        async with httpx.AsyncClient(base_url=BASE_URL, transport=wrap(standin.transport())) as client:
            orders = VtexOrders(
                client, SANDBOX_APP_KEY, token, affiliate_id=affiliate, sales_channel="1", backoff=backoff
            )
            return await scenario(orders)

    return asyncio.run(main())


def failure(
    standin: VtexStandin, scenario: Callable[[VtexOrders], Awaitable[Any]], **options: Any
) -> OrderCallError:
    """The OrderCallError the scenario raises, checked free of the AppToken and the buyer's data."""
    with pytest.raises(OrderCallError) as raised:
        run(standin, scenario, **options)
    assert_clean(str(raised.value))
    return raised.value


def assert_clean(message: str) -> None:
    secrets = [
        SANDBOX_APP_TOKEN,
        "token-that-is-wrong",
        *an_order().personal_values(),
        "Conceição",
        "84513427019",
    ]
    escaped = [json.dumps(value)[1:-1] for value in secrets]  # as an echo in JSON writes them
    secrets += escaped + [json.dumps(value)[1:-1] for value in escaped]
    leaked = [value for value in secrets if value in message]
    assert not leaked, f"{leaked} in {message!r}"


class LoseAnswers(httpx.AsyncBaseTransport):
    """The server does the work, then the connection drops before its answer arrives."""

    def __init__(self, inner: httpx.AsyncBaseTransport, method: str, path: str, times: int = 1) -> None:
        self.inner, self.method, self.path, self.times = inner, method, path, times

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        response = await self.inner.handle_async_request(request)
        if request.method == self.method and request.url.path == self.path and self.times > 0:
            self.times -= 1
            await response.aread()
            await response.aclose()
            raise httpx.ReadError("connection reset before the answer arrived", request=request)
        return response


class Recording(httpx.AsyncBaseTransport):
    """Passes requests through, keeping each one's method, path and JSON body."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner
        self.sent: list[tuple[str, str, Any]] = []

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        body = loads(request.content) if request.content else None
        self.sent.append((request.method, request.url.path, body))
        return await self.inner.handle_async_request(request)


class Answering(httpx.AsyncBaseTransport):
    """Answers matching requests itself (``status``, ``body(request)``); passes the others on."""

    def __init__(
        self,
        inner: httpx.AsyncBaseTransport,
        match: Callable[[httpx.Request], bool],
        status: int,
        body: Callable[[httpx.Request], Any],
    ) -> None:
        self.inner, self.match, self.status, self.body = inner, match, status, body

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if self.match(request):
            return httpx.Response(self.status, json=self.body(request), request=request)
        return await self.inner.handle_async_request(request)


# -- placement ----------------------------------------------------------------------------------


def test_placement_sends_exact_cents_and_the_order_waits_for_authorization() -> None:
    standin = VtexStandin(catalog())
    order = an_order(items=(("2000023", 1, "134.90"), ("2000024", 3, "49.95"), ("2000015", 1, "19.995")))

    placed = run(standin, lambda vtex: vtex.place(order))

    assert placed == Placed("MLB-2000000001", created=True)
    record = standin.order_record(placed.vtex_order_id)
    assert record["status"] == "waiting-ffmt-authorization"
    assert record["marketplaceOrderId"] == "2000000001" and record["affiliateId"] == "MLB"
    assert [(i["id"], i["quantity"], i["price"]) for i in record["items"]] == [
        ("2000023", 1, 13490),
        ("2000024", 3, 4995),
        ("2000015", 1, 2000),  # 19.995 rounds half up
    ]
    assert [e["price"] for e in record["shippingData"]["logisticsInfo"]] == [664, 663, 663]  # 19.90 split
    assert record["value"] == 13490 + 3 * 4995 + 2000 + 1990
    profile, address = record["clientProfileData"], record["shippingData"]["address"]
    assert (profile["firstName"], profile["lastName"]) == ("Maria Conceição", "Souza")
    assert (profile["email"], profile["documentType"], profile["document"]) == (
        "maria.souza@example.com",
        "cpf",
        "84513427019",
    )
    assert (address["country"], address["number"], address["receiverName"]) == ("BRA", "1234", ADDRESS.name)


def test_placement_body_matches_the_marketplace_protocol_schema() -> None:
    jsonschema = pytest.importorskip("jsonschema")
    spec = SPECS / "vtex" / "VTEX - Marketplace Protocol - External Marketplace Orders.json"
    if not spec.exists():
        pytest.skip(f"VTEX specs not found at {spec}")
    schema = _nullable(json.loads(spec.read_text())["components"]["schemas"]["placeFulfillmentOrderRequest"])
    standin = VtexStandin(catalog())
    recording: list[Recording] = []

    def record(inner: httpx.AsyncBaseTransport) -> httpx.AsyncBaseTransport:
        recording.append(Recording(inner))
        return recording[0]

    run(standin, lambda vtex: vtex.place(an_order()), wrap=record)

    (body,) = [body for method, path, body in recording[0].sent if (method, path) == ("POST", PLACE)]
    jsonschema.validate(body, schema)
    assert body["marketplacePaymentValue"] == 13490 + 3 * 4995 + 1990
    assert body["paymentData"] is None  # the marketplace took the payment


def _nullable(schema: Any) -> Any:
    """OpenAPI 3.0's ``nullable: true`` as JSON Schema's ``type: [..., "null"]``."""
    if isinstance(schema, dict):
        schema = {key: _nullable(value) for key, value in schema.items()}
        if schema.pop("nullable", False) and "type" in schema:
            schema["type"] = [schema["type"], "null"]
        return schema
    return [_nullable(item) for item in schema] if isinstance(schema, list) else schema


def test_the_same_order_placed_twice_is_one_vtex_order() -> None:
    standin = VtexStandin(catalog())

    async def twice(vtex: VtexOrders) -> tuple[Placed, Placed]:
        return await vtex.place(an_order()), await vtex.place(an_order())

    first, second = run(standin, twice)

    assert first == Placed("MLB-2000000001", created=True)
    assert second == Placed("MLB-2000000001", created=False)
    assert standin.orders_placed["2000000001"] == 1
    assert standin.orders_by_marketplace_id() == {"2000000001": ["MLB-2000000001"]}


def test_a_lost_answer_is_retried_and_the_order_found_not_duplicated() -> None:
    standin = VtexStandin(catalog())

    placed = run(standin, lambda vtex: vtex.place(an_order()), wrap=lambda t: LoseAnswers(t, "POST", PLACE))

    # The retry met VTEX's duplicate refusal and found the order the lost answer was about.
    assert placed == Placed("MLB-2000000001", created=False)
    assert standin.orders_placed["2000000001"] == 1
    assert standin.requests[f"POST {PLACE}"] == 2


def test_a_placement_that_never_got_an_answer_is_found_by_the_next_run() -> None:
    standin = VtexStandin(catalog())
    lost = failure(
        standin,
        lambda vtex: vtex.place(an_order()),
        wrap=lambda t: LoseAnswers(t, "POST", PLACE, times=99),
        backoff=RetryPolicy(attempts=3, base=0.001, cap=0.01),
    )
    assert lost.retryable and "did not answer" in str(lost)
    assert standin.orders_placed["2000000001"] == 1  # VTEX has it; the caller could not know

    placed = run(standin, lambda vtex: vtex.place(an_order()))

    assert placed == Placed("MLB-2000000001", created=False)
    assert standin.orders_placed["2000000001"] == 1


def test_find_reads_the_order_before_vtex_indexes_it_and_lists_when_the_id_differs() -> None:
    standin = VtexStandin(catalog(), index_delay=3600)  # ListOrders would not show it for an hour
    run(standin, lambda vtex: vtex.place(an_order()))

    assert run(standin, lambda vtex: vtex.find("2000000001")) == "MLB-2000000001"
    assert run(standin, lambda vtex: vtex.find("2000000999")) is None

    standin.index_delay = 0
    standin.orders["MLB-2000000001"].indexed_after = 0
    no_composed_id = lambda t: Answering(  # noqa: E731 - an order whose id VTEX composed otherwise
        t, lambda r: r.method == "GET" and r.url.path.endswith("/MLB-2000000001"), 404, lambda r: {}
    )
    assert run(standin, lambda vtex: vtex.find("2000000001"), wrap=no_composed_id) == "MLB-2000000001"
    assert run(standin, lambda vtex: vtex.find("2000000001"), wrap=no_composed_id, affiliate="AMZ") is None


def test_the_affiliate_scopes_marketplace_order_ids() -> None:
    standin = VtexStandin(catalog())

    from_ml = run(standin, lambda vtex: vtex.place(an_order("123")), affiliate="MLB")
    from_amazon = run(standin, lambda vtex: vtex.place(an_order("123")), affiliate="AMZ")

    assert (from_ml, from_amazon) == (Placed("MLB-123", True), Placed("AMZ-123", True))


def test_placement_reserves_stock_and_cancelling_gives_it_back() -> None:
    standin = VtexStandin(catalog())
    before = standin.skus["2000024"].available

    placed = run(standin, lambda vtex: vtex.place(an_order()))
    assert standin.skus["2000024"].available == before - 3
    run(standin, lambda vtex: vtex.cancel(placed.vtex_order_id, "buyer regretted"))

    assert standin.skus["2000024"].available == before


# -- refusals -------------------------------------------------------------------------------------


def test_an_unknown_sku_is_a_clear_error_that_no_retry_fixes() -> None:
    standin = VtexStandin(catalog())

    error = failure(standin, lambda vtex: vtex.place(an_order(items=(("999999", 1, "10.00"),))))

    assert not error.retryable
    assert "SKU 999999" in str(error) and "trade policy 1" in str(error)
    assert standin.orders == {}


def test_more_than_vtex_has_in_stock_is_refused_before_placing() -> None:
    standin = VtexStandin(catalog())

    error = failure(standin, lambda vtex: vtex.place(an_order(items=(("2000001", 2, "381.99"),))))

    assert not error.retryable and "VTEX has 1 of SKU 2000001 in stock" in str(error)
    assert standin.orders_placed == {}


def test_an_order_without_address_or_receiver_is_refused_with_the_missing_field() -> None:
    standin = VtexStandin(catalog())
    nameless = ADDRESS.model_copy(update={"name": None})

    no_address = failure(standin, lambda vtex: vtex.place(an_order(shipping_address=None)))
    no_receiver = failure(
        standin, lambda vtex: vtex.place(an_order(buyer=Buyer(), shipping_address=nameless))
    )

    assert "no shipping address" in str(no_address) and not no_address.retryable
    assert "receiverName" in str(no_receiver) and not no_receiver.retryable


def test_what_the_marketplace_withholds_becomes_a_marked_placeholder() -> None:
    standin = VtexStandin(catalog())
    order = an_order(
        buyer=Buyer(), shipping_address=ADDRESS.model_copy(update={"name": "Ana", "number": None})
    )

    placed = run(standin, lambda vtex: vtex.place(order))

    record = standin.order_record(placed.vtex_order_id)
    profile, address = record["clientProfileData"], record["shippingData"]["address"]
    assert profile["email"] == "mercadolibre.2000000001@marketplace-buyer.invalid"
    assert (profile["firstName"], profile["lastName"]) == ("Ana", "(mercadolibre buyer)")
    assert (profile["documentType"], profile["document"], profile["phone"]) == (
        "other",
        "not-disclosed",
        PLACEHOLDER_PHONE,
    )
    assert address["number"] == "S/N"


# -- simulation -----------------------------------------------------------------------------------


def test_simulation_gives_vtex_price_after_promotions_and_stock() -> None:
    standin = VtexStandin(catalog())
    order = an_order(items=(("2000001", 1, "399.00"), ("2000023", 2, "90.00"), ("999999", 1, "5.00")))

    simulated = run(standin, lambda vtex: vtex.simulate(order))

    assert {sku: (item.price, item.available) for sku, item in simulated.items()} == {
        "2000001": (Decimal("381.99"), 1),
        "2000023": (Decimal("83.90"), 204),
    }


# -- dispatch, invoices, cancellation -------------------------------------------------------------


def test_authorize_dispatch_moves_the_order_on_and_a_repeat_is_done() -> None:
    standin = VtexStandin(catalog())

    async def authorize_twice(vtex: VtexOrders) -> str:
        placed = await vtex.place(an_order())
        await vtex.authorize_dispatch(placed.vtex_order_id, "2000000001")
        await vtex.authorize_dispatch(placed.vtex_order_id, "2000000001")
        return (await vtex.get(placed.vtex_order_id)).status

    assert run(standin, authorize_twice) == "ready-for-handling"


def test_an_invoice_from_the_store_is_read_as_a_fulfilment_to_the_cent() -> None:
    standin = VtexStandin(catalog())
    placed = run(standin, lambda vtex: vtex.place(an_order()))
    run(standin, lambda vtex: vtex.authorize_dispatch(placed.vtex_order_id, "2000000001"))
    package = standin.invoice_order(placed.vtex_order_id, number="24382")

    state = run(standin, lambda vtex: vtex.get(placed.vtex_order_id))

    assert (state.status, state.cancelled, state.invoiced) == ("invoiced", False, True)
    (fulfilment,) = state.fulfilments
    assert fulfilment.invoice.number == "24382"
    assert fulfilment.invoice.value == Decimal("304.65")  # 134.90 + 3 x 49.95 + 19.90 shipping
    assert fulfilment.invoice.issued_at.tzinfo is not None
    assert fulfilment.invoice.key == package["invoiceKey"]
    assert fulfilment.tracking is not None
    assert (fulfilment.tracking.carrier, fulfilment.tracking.number) == (
        "Transportadora Sandbox",
        "SB000000001BR",
    )
    assert fulfilment.tracking.url == "https://tracking.example.com/SB000000001BR"
    assert fulfilment.items == (("2000023", 1), ("2000024", 3))


def test_partial_invoices_returns_and_late_tracking_through_the_orders_api() -> None:
    """The ERP's real calls: InvoiceNotification per package, a return invoice, the tracking PATCH."""
    standin = VtexStandin(catalog())
    placed = run(standin, lambda vtex: vtex.place(an_order()))
    run(standin, lambda vtex: vtex.authorize_dispatch(placed.vtex_order_id, "2000000001"))
    invoice_path = f"/api/oms/pvt/orders/{placed.vtex_order_id}/invoice"

    async def erp(vtex: VtexOrders) -> None:
        client = vtex.client
        first = {
            "type": "Output",
            "issuanceDate": "2025-03-02T10:00:00",  # no offset: read as UTC
            "invoiceNumber": "1001",
            "invoiceValue": "15480",
            "invoiceKey": None,
            "courier": "Correios",
            "trackingNumber": "",
            "trackingUrl": "",
            "items": [{"id": "2000023", "price": 13490, "quantity": 1}],
        }
        answer = await client.post(invoice_path, json=first, headers=HEADERS)
        assert answer.status_code == 200, answer.text
        rest = first | {"invoiceNumber": "1002", "invoiceValue": "14985"}
        rest["items"] = [{"id": "2000024", "price": 4995, "quantity": 3}]
        assert (await client.post(invoice_path, json=rest, headers=HEADERS)).status_code == 200
        returned = rest | {"type": "Input", "invoiceNumber": "R-1", "invoiceValue": "4995"}
        returned["items"] = [{"id": "2000024", "price": 4995, "quantity": 1}]
        assert (await client.post(invoice_path, json=returned, headers=HEADERS)).status_code == 200
        tracking = {
            "trackingNumber": "BR123",
            "trackingUrl": "https://track.example.com/BR123",
            "courier": "Correios",
            "dispatchedDate": "2025-03-03T08:00:00+00:00",
        }
        patched = await client.patch(f"{invoice_path}/1001", json=tracking, headers=HEADERS)
        assert patched.status_code == 200, patched.text

    run(standin, erp)
    state = run(standin, lambda vtex: vtex.get(placed.vtex_order_id))

    assert state.status == "invoiced"
    first, second = state.fulfilments  # the return (type Input) is not a shipment
    assert (first.invoice.value, first.items, first.invoice.issued_at) == (
        Decimal("154.80"),
        (("2000023", 1),),
        datetime(2025, 3, 2, 10, tzinfo=UTC),
    )
    assert first.tracking is not None and first.tracking.number == "BR123"
    assert first.shipped_at == datetime(2025, 3, 3, 8, tzinfo=UTC)
    assert (second.invoice.value, second.items, second.tracking) == (
        Decimal("149.85"),
        (("2000024", 3),),
        None,
    )


def test_cancel_before_invoice_works_and_a_repeat_is_done() -> None:
    standin = VtexStandin(catalog())

    async def cancel_twice(vtex: VtexOrders) -> Any:
        placed = await vtex.place(an_order())
        await vtex.cancel(placed.vtex_order_id, "price diverged beyond the rule")
        await vtex.cancel(placed.vtex_order_id, "price diverged beyond the rule")
        return await vtex.get(placed.vtex_order_id)

    state = run(standin, cancel_twice)

    assert (state.status, state.cancelled, state.cancel_reason) == (
        "canceled",
        True,
        "price diverged beyond the rule",
    )
    assert state.fulfilments == ()


def test_cancel_after_invoice_is_refused_and_not_retryable() -> None:
    standin = VtexStandin(catalog())
    placed = run(standin, lambda vtex: vtex.place(an_order()))
    run(standin, lambda vtex: vtex.authorize_dispatch(placed.vtex_order_id, "2000000001"))
    standin.invoice_order(placed.vtex_order_id)

    error = failure(standin, lambda vtex: vtex.cancel(placed.vtex_order_id, "too late"))

    assert not error.retryable and error.status == 400
    assert "invoiced and cannot be cancelled" in str(error)
    assert standin.order_record(placed.vtex_order_id)["status"] == "invoiced"


def test_a_store_cancellation_is_read_with_its_reason_and_blocks_dispatch() -> None:
    standin = VtexStandin(catalog())
    placed = run(standin, lambda vtex: vtex.place(an_order()))
    standin.cancel_order_as_store(placed.vtex_order_id, "out of stock in the warehouse")

    state = run(standin, lambda vtex: vtex.get(placed.vtex_order_id))
    error = failure(standin, lambda vtex: vtex.authorize_dispatch(placed.vtex_order_id, "2000000001"))

    assert (state.cancelled, state.cancel_reason) == (True, "out of stock in the warehouse")
    assert not error.retryable and "canceled" in str(error)
    with pytest.raises(OrderRefused):
        standin.invoice_order(placed.vtex_order_id)


# -- faults and secrets ---------------------------------------------------------------------------


def test_with_injected_faults_every_order_is_placed_exactly_once() -> None:
    standin = VtexStandin(catalog(), faults=Faults(error_rate=0.3, throttle_rate=0.2, seed=7))
    ids = [f"20000001{n:02d}" for n in range(12)]

    async def import_all(vtex: VtexOrders) -> list[Placed]:
        placed = []
        for order_id in ids:
            order = an_order(order_id, items=(("2000023", 1, "89.90"),))
            for attempt in range(5):  # what the next scheduled run does after a retryable failure
                try:
                    first = await vtex.place(order)
                    again = await vtex.place(order)  # a run killed before recording it places again
                    await vtex.authorize_dispatch(first.vtex_order_id, order_id)
                except OrderCallError as error:
                    assert error.retryable and attempt < 4, str(error)
                    continue
                assert (again.vtex_order_id, again.created) == (first.vtex_order_id, False)
                placed.append(first)
                break
        return placed

    placed = run(standin, import_all)

    assert [p.vtex_order_id for p in placed] == [f"MLB-{order_id}" for order_id in ids]
    assert standin.orders_placed == {order_id: 1 for order_id in ids}
    assert {standin.order_record(p.vtex_order_id)["status"] for p in placed} == {"ready-for-handling"}
    assert standin.throttled > 0 and standin.total_requests() > 6 * len(ids)  # 6 calls each without faults


def test_neither_the_app_token_nor_personal_data_reach_a_message() -> None:
    standin = VtexStandin(catalog())

    def echo(request: httpx.Request) -> Any:
        """A server that quotes the request back: its credentials and the buyer's data first."""
        body = loads(request.content) if request.content else {}
        shipping = body.get("shippingData") or {}
        quoted = json.dumps(
            [
                request.headers.get("X-VTEX-API-AppToken"),
                shipping.get("address"),
                body.get("clientProfileData"),
            ],
            default=str,
            ensure_ascii=True,  # "Concei\\u00e7\\u00e3o", as a server may escape it
        )
        return {"error": {"code": "FMT000", "message": quoted}}

    placing = lambda r: r.method == "POST" and r.url.path == PLACE  # noqa: E731
    refused = failure(
        standin, lambda vtex: vtex.place(an_order()), wrap=lambda t: Answering(t, placing, 400, echo)
    )
    broken = failure(
        standin,
        lambda vtex: vtex.place(an_order()),
        wrap=lambda t: Answering(t, placing, 503, echo),
        backoff=RetryPolicy(attempts=2, base=0.001, cap=0.01),
    )
    wrong_key = failure(standin, lambda vtex: vtex.get("MLB-1"), token="token-that-is-wrong")

    assert "<personal data>" in str(refused) and "***" in str(refused) and "Acácias" not in str(refused)
    assert broken.retryable and "503" in str(broken)
    assert wrong_key.status == 401 and "AppKey and AppToken" in str(wrong_key)

    async def described(vtex: VtexOrders) -> str:
        return repr(vtex)

    assert SANDBOX_APP_TOKEN not in run(standin, described)


# -- the stand-in's own checks --------------------------------------------------------------------


def test_the_standin_refuses_an_incomplete_placement_naming_fields_not_values() -> None:
    standin = VtexStandin(catalog())

    async def send_raw(vtex: VtexOrders) -> httpx.Response:
        body = {"marketplaceOrderId": "1", "items": [{"id": "2000023", "quantity": 0, "seller": "1"}]}
        body["clientProfileData"] = {"email": "maria.souza@example.com", "firstName": "Maria"}
        return await vtex.client.post(PLACE, params={"affiliateId": "MLB"}, json=body, headers=HEADERS)

    answer = run(standin, send_raw)

    assert answer.status_code == 400
    message = answer.json()["error"]["message"]
    for field in (
        "marketplaceServicesEndpoint",
        "items[0].quantity",
        "clientProfileData.lastName",
        "shippingData",
    ):
        assert field in message
    assert "maria" not in message.lower()


def test_order_routes_need_the_app_key_but_the_sandbox_controls_do_not() -> None:
    standin = VtexStandin(catalog())
    placed = run(standin, lambda vtex: vtex.place(an_order()))
    run(standin, lambda vtex: vtex.authorize_dispatch(placed.vtex_order_id, "2000000001"))

    async def anonymous(vtex: VtexOrders) -> tuple[int, int, dict[str, Any], int]:
        client = vtex.client
        denied = await client.get(f"/api/oms/pvt/orders/{placed.vtex_order_id}")
        invoiced = await client.post(
            f"/_sandbox/orders/{placed.vtex_order_id}/invoice", json={"number": "777", "courier": "Loggi"}
        )
        again = await client.post(f"/_sandbox/orders/{placed.vtex_order_id}/cancel", json={"reason": "late"})
        return denied.status_code, invoiced.status_code, invoiced.json(), again.status_code

    denied, invoiced, package, cancel = run(standin, anonymous)

    assert (denied, invoiced, cancel) == (401, 200, 400)
    assert (package["invoiceNumber"], package["courier"], package["type"]) == ("777", "Loggi", "Output")
    assert standin.order_record(placed.vtex_order_id)["status"] == "invoiced"
