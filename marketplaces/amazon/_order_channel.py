"""Amazon orders: read with Orders 2026-01-01, confirm shipments with Orders v0, cancel with a feed.

Three APIs, because Amazon splits them: the v0 order reads are deprecated and their replacement,
``searchOrders``/``getOrder`` of 2026-01-01, returns each order with its items inline (one call
per page instead of one per order); shipment confirmation exists only in v0 (not deprecated);
and a seller cancels an order only by acknowledging it with ``StatusCode`` Failure in a
``POST_ORDER_ACKNOWLEDGEMENT_DATA`` XML feed.

Both side effects are made safe to repeat, as the order state machine requires: a shipment
confirmation carries a ``packageReferenceId`` derived from the VTEX invoice number, so the same
package confirmed twice is the same package; and when Amazon refuses a confirmation or a
cancellation, the order is read back, and an order already shipped (or already cancelled)
counts as done.

Personal data (buyer, recipient) is read into the canonical order's redacted fields only;
every message this module builds names orders, items and fields, never values from them.
"""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal, InvalidOperation
from typing import Any
from urllib.parse import quote
from xml.etree import ElementTree

import httpx
from pydantic import ValidationError

from engine.connectors import BadOrder, Fulfilment, OrderCallError, OrderChannel, RetryPolicy, send
from engine.jsonio import loads
from engine.model import aware_time
from engine.orders import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from marketplaces.amazon import AmazonConnector
from marketplaces.amazon._feeds import FeedError, FeedsClient

ORDERS = "/orders/2026-01-01/orders"
INCLUDED_DATA = "BUYER,RECIPIENT,PROCEEDS,FULFILLMENT,CANCELLATION,PACKAGES,TAX"
"""Everything the canonical order needs; BUYER and RECIPIENT come back empty without a
restricted-data token, which the reader accepts (no buyer, no address)."""
PAGE_SIZE = 100
"""searchOrders' maximum: its usage plan is one request every three minutes after a burst of 20,
so the fewer pages the better."""
DEFAULT_WINDOW = timedelta(days=30)
"""searchOrders needs createdAfter or lastUpdatedAfter; without a watermark, the last 30 days."""
ACKNOWLEDGEMENT_FEED = "POST_ORDER_ACKNOWLEDGEMENT_DATA"
XML_CONTENT_TYPE = "text/xml; charset=UTF-8"

STATUSES: dict[str, FulfilmentStatus] = {
    "PENDING_AVAILABILITY": "pending",
    "PENDING": "pending",
    "UNSHIPPED": "unshipped",
    "PARTIALLY_SHIPPED": "unshipped",
    "SHIPPED": "shipped",
    "CANCELLED": "cancelled",
    "UNFULFILLABLE": "cancelled",
}
PAYMENTS: dict[FulfilmentStatus, PaymentStatus] = {
    "pending": "pending",  # Amazon has not authorised the payment yet
    "unshipped": "paid",
    "shipped": "paid",
    "cancelled": "cancelled",
}
CARRIER_CODES = {
    "ups": "UPS",
    "usps": "USPS",
    "fedex": "FedEx",
    "dhl": "DHL",
    "ontrac": "OnTrac",
    "canadapost": "Canada Post",
    "royalmail": "Royal Mail",
    "purolator": "Purolator",
    "estafeta": "Estafeta",
    "correios": "Correios",
    "amazonshipping": "Amazon Shipping",
}
"""Amazon's carrierCode for carrier names VTEX commonly reports; any other goes as "Other"."""
CANCEL_REASONS = (
    "NoInventory",
    "ShippingAddressUndeliverable",
    "CustomerExchange",
    "BuyerCanceled",
    "GeneralAdjustment",
    "CarrierCreditDecision",
    "RiskAssessmentInformationNotValid",
    "CarrierCoverageFailure",
    "CustomerReturn",
    "MerchandiseNotReceived",
)
"""``CancelReason`` values of the OrderAcknowledgement schema."""
REASON_WORDS = (
    ("NoInventory", ("stock", "inventory", "estoque", "unavailable", "indispon")),
    ("ShippingAddressUndeliverable", ("address", "endereço", "endereco", "undeliverable")),
    ("RiskAssessmentInformationNotValid", ("fraud", "risk", "fraude")),
    ("CustomerExchange", ("exchange", "troca")),
    ("BuyerCanceled", ("buyer", "customer", "cliente", "comprador")),
)
"""Our free-text reasons (VTEX's, the divergence rules') to a code, first match wins; the text
itself never travels to Amazon, as it may quote the buyer."""


class AmazonOrders(OrderChannel):
    """Amazon's order channel; the connector supplies the marketplace id, seller id, token and pacing."""

    name = "amazon"
    title = "Amazon"

    page_size = PAGE_SIZE
    """``maxResultsPerPage`` of searchOrders."""

    @property
    def amazon(self) -> AmazonConnector:
        if not isinstance(self.connector, AmazonConnector):
            raise TypeError(f"AmazonOrders needs an AmazonConnector, not {type(self.connector).__name__}")
        return self.connector

    @property
    def marketplace_id(self) -> str:
        return self.amazon.scope.marketplace_id

    @property
    def backoff(self) -> RetryPolicy:  # type: ignore[override]  # read from the connector, never set
        """Retries as patient as the connector's own (options ``max_attempts``, ``retry_seconds``)."""
        pacing = self.amazon.pacing
        return RetryPolicy(attempts=pacing.attempts, base=pacing.retry_seconds)

    # -- reading -------------------------------------------------------------------------------

    async def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Every page of searchOrders, then the orders oldest change first.

        The pages are read in full before anything is yielded: Amazon documents no order for
        searchOrders' results, and the channel promises oldest first, so that a watermark taken
        from the last order handled never skips one.
        """
        params = {
            "marketplaceIds": self.marketplace_id,
            "includedData": INCLUDED_DATA,
            "maxResultsPerPage": str(self.page_size),
        }
        if since is None:
            params["createdAfter"] = iso(datetime.now(UTC) - DEFAULT_WINDOW)
        else:
            params["lastUpdatedAfter"] = iso(since)
        read: list[tuple[datetime, int, Order | BadOrder]] = []
        token: str | None = None
        while True:
            page = await self._json(
                "GET", ORDERS, params={**params, "paginationToken": token} if token else params
            )
            orders = page.get("orders")
            if not isinstance(orders, list):
                raise OrderCallError("Amazon's searchOrders answer has no 'orders' list", retryable=True)
            for raw in orders:
                found = read_order(raw, self.marketplace_id)
                read.append((_updated(raw), len(read), found))
            pagination = page.get("pagination")
            following = pagination.get("nextToken") if isinstance(pagination, dict) else None
            if not following:
                break
            if following == token:
                raise OrderCallError("Amazon returned the same paginationToken twice", retryable=True)
            token = str(following)
        for _, _, found in sorted(read, key=lambda entry: entry[:2]):
            yield found

    async def order(self, order_id: str) -> Order:
        found = read_order(await self._raw(order_id), self.marketplace_id)
        if isinstance(found, BadOrder):
            raise OrderCallError(f"Amazon order {order_id} cannot be read: {found.message}", retryable=False)
        return found

    async def _raw(self, order_id: str) -> dict[str, Any]:
        answer = await self._json(
            "GET", f"{ORDERS}/{quote(order_id, safe='')}", params={"includedData": INCLUDED_DATA}
        )
        raw = answer.get("order")
        if not isinstance(raw, dict):
            raise OrderCallError(f"Amazon's getOrder answer for {order_id} has no 'order'", retryable=True)
        return raw

    # -- shipping ------------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """confirmShipment for the package; a refusal for an order Amazon already shows shipped is done."""
        if fulfilment.tracking is None or not fulfilment.tracking.number.strip():
            raise OrderCallError(
                f"Amazon requires a tracking number to confirm shipment of order {order.order_id}; "
                f"VTEX invoice {fulfilment.invoice.number} has none",
                retryable=False,
            )
        if order.references.get("fulfilled_by") == "AMAZON":
            raise OrderCallError(
                f"Amazon fulfils order {order.order_id} itself (FBA): there is no shipment to confirm",
                retryable=False,
            )
        body = shipment_confirmation(
            order, fulfilment, order.references.get("marketplace_id") or self.marketplace_id
        )
        path = f"/orders/v0/orders/{quote(order.order_id, safe='')}/shipmentConfirmation"
        try:
            await self._send("POST", path, json=body)
        except OrderCallError as refused:
            if refused.status not in (400, 409):
                raise
            current = await self._raw(order.order_id)
            status = _fulfillment(current).get("fulfillmentStatus")
            references = {
                str(p.get("packageReferenceId")) for p in current.get("packages") or [] if isinstance(p, dict)
            }
            if status == "SHIPPED" or body["packageDetail"]["packageReferenceId"] in references:
                return  # a repeat: Amazon already has this package, or the whole order, shipped
            if status in ("CANCELLED", "UNFULFILLABLE"):
                raise OrderCallError(
                    f"Amazon order {order.order_id} is cancelled: its shipment cannot be confirmed",
                    retryable=False,
                    status=refused.status,
                ) from None
            raise

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order: Order, reason: str) -> None:
        """An OrderAcknowledgement with StatusCode Failure, checked against the order as it is now.

        The order is read first, because the acknowledgement feed takes minutes: an order already
        cancelled needs nothing, and a shipped one can no longer be cancelled, only returned.
        """
        current = await self._raw(order.order_id)
        if _already_cancelled(order.order_id, current):
            return
        items = [
            str(item["orderItemId"])
            for item in current.get("orderItems") or []
            if isinstance(item, dict) and item.get("orderItemId")
        ]
        document = acknowledgement(self.amazon.seller_id, order.order_id, items, cancel_reason(reason))
        report = await self._run_feed(document)
        errors = report_errors(report)
        if not errors:
            return
        if _already_cancelled(order.order_id, await self._raw(order.order_id)):
            return  # cancelled meanwhile (by the buyer, or a previous attempt of ours)
        raise OrderCallError(
            f"Amazon did not cancel order {order.order_id}: {'; '.join(errors)}", retryable=False
        )

    async def _run_feed(self, document: bytes) -> bytes:
        """The acknowledgement feed's processing report, through the one Feeds client.

        The upload and download URLs are presigned: the access token never travels to them.
        """

        async def call(method: str, path: str, body: Any) -> dict[str, Any]:
            return await self._json(method, path, json=body)

        async def transfer(
            method: str, url: str, headers: Mapping[str, str], content: bytes | None
        ) -> httpx.Response:
            return await send(
                self.client, method, url, who="Amazon", backoff=self.backoff, headers=headers, content=content
            )

        pacing = self.amazon.pacing
        client = FeedsClient(call, transfer, pacing.poll_seconds, pacing.feed_timeout_seconds)
        try:
            feed = await client.submit(
                ACKNOWLEDGEMENT_FEED, XML_CONTENT_TYPE, document, [self.marketplace_id]
            )
        except FeedError as exc:
            raise OrderCallError(str(exc), retryable=exc.retryable) from None
        if not feed.finished:
            raise OrderCallError(
                f"Amazon feed {feed.feed_id} still {feed.status} after {pacing.feed_timeout_seconds:g} s; "
                "the cancellation will be sent again",
                retryable=True,
            )
        if feed.status != "DONE":
            why = "; ".join(report_errors(feed.report)) if feed.report else "no processing report"
            raise OrderCallError(
                f"Amazon feed {feed.feed_id} ended {feed.status}: {why}", retryable=feed.status == "CANCELLED"
            )
        if not feed.report:
            raise OrderCallError(
                f"Amazon feed {feed.feed_id} finished without a processing report", retryable=True
            )
        return feed.report

    # -- requests ------------------------------------------------------------------------------

    async def _send(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> httpx.Response:
        """One SP-API call with the access token; a token that expired in flight is replaced once."""
        return await self.request(method, url, params=params, json=json)

    async def _json(
        self, method: str, url: str, *, params: Mapping[str, str] | None = None, json: Any = None
    ) -> dict[str, Any]:
        response = await self._send(method, url, params=params, json=json)
        try:
            body = loads(response.content)
        except ValueError:
            body = None
        if not isinstance(body, dict):
            raise OrderCallError(
                f"Amazon answered {method} {url} with something other than a JSON object", retryable=True
            )
        return body


# -- reading an order ------------------------------------------------------------------------------


class _Unreadable(Exception):
    """Why an order cannot be mapped; the message names fields, never their values."""


def read_order(raw: Any, marketplace_id: str) -> Order | BadOrder:
    """One Orders 2026-01-01 ``Order`` in canonical form, or why it cannot be (never raises)."""
    order_id = str(raw.get("orderId") or "") if isinstance(raw, dict) else ""
    if not order_id:
        return BadOrder("amazon", "?", "an order without an orderId")
    try:
        return _order(raw, order_id, marketplace_id)
    except _Unreadable as exc:
        return BadOrder("amazon", order_id, str(exc))
    except ValidationError as exc:
        return BadOrder("amazon", order_id, _problems(exc))


def _problems(exc: ValidationError) -> str:
    """pydantic's complaints by field, without the values (they may be an address)."""
    return "; ".join(
        f"{'.'.join(str(part) for part in error['loc']) or 'order'}: {error['msg']}"
        for error in exc.errors(include_input=False, include_url=False)
    )


def _order(raw: dict[str, Any], order_id: str, default_marketplace: str) -> Order:
    fulfillment = _fulfillment(raw)
    amazon_status = fulfillment.get("fulfillmentStatus")
    if amazon_status not in STATUSES:
        raise _Unreadable(f"fulfillment.fulfillmentStatus {amazon_status!r} is not one Amazon documents")
    status = STATUSES[amazon_status]
    raw_items = raw.get("orderItems")
    if not isinstance(raw_items, list) or not raw_items:
        raise _Unreadable("the order has no orderItems")
    items = tuple(_item(n, item) for n, item in enumerate(raw_items, 1))
    proceeds = _object(raw, "proceeds")
    grand_total = proceeds.get("grandTotal")
    total, currency = _money(grand_total, "proceeds.grandTotal") if grand_total else (None, items[0].currency)
    shipping = _breakdown(proceeds.get("breakdowns"), "SHIPPING", "proceeds.breakdowns")
    if shipping is None:
        shipping = sum((_item_shipping(n, item) for n, item in enumerate(raw_items, 1)), Decimal(0))
    channel = _object(raw, "salesChannel")
    references = {"marketplace_id": str(channel.get("marketplaceId") or default_marketplace)}
    if fulfillment.get("fulfilledBy"):
        references["fulfilled_by"] = str(fulfillment["fulfilledBy"])
    for alias in raw.get("orderAliases") or []:
        if isinstance(alias, dict) and alias.get("aliasType") == "SELLER_ORDER_ID" and alias.get("aliasId"):
            references["seller_order_id"] = str(alias["aliasId"])
    return Order(
        marketplace="amazon",
        order_id=order_id,
        created_at=_time(raw.get("createdTime"), "createdTime"),
        updated_at=_time(raw.get("lastUpdatedTime"), "lastUpdatedTime"),
        currency=currency,
        items=items,
        total=total if total is not None else sum((i.line_value for i in items), shipping),
        shipping_total=shipping,
        shipping_method=str(fulfillment["fulfillmentServiceLevel"])
        if fulfillment.get("fulfillmentServiceLevel")
        else None,
        payment_status=PAYMENTS[status],
        status=status,
        references=references,
        buyer=_buyer(raw),
        # Amazon delivers FBA orders itself: their address is not ours to keep.
        shipping_address=None if fulfillment.get("fulfilledBy") == "AMAZON" else _address(raw),
    )


def _item(n: int, raw: Any) -> OrderItem:
    if not isinstance(raw, dict):
        raise _Unreadable(f"orderItems[{n}] is not an object")
    item_id = raw.get("orderItemId")
    where = f"order item {item_id}" if item_id else f"orderItems[{n}]"
    product = _object(raw, "product")
    sku = product.get("sellerSku")
    if not isinstance(sku, str) or not sku.strip():
        raise _Unreadable(f"{where} has no product.sellerSku (the VTEX SKU id)")
    quantity = raw.get("quantityOrdered")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise _Unreadable(f"{where} has no quantityOrdered of 1 or more")
    proceeds = _object(raw, "proceeds")
    line = _breakdown_money(proceeds.get("breakdowns"), "ITEM", f"{where} proceeds.breakdowns")
    price = _object(product, "price")
    if line is not None:
        # ITEM proceeds are for the whole quantity: divided back to a unit price, in the
        # amount's own precision (cents for most currencies).
        unit, currency = per_unit(line[0], quantity), line[1]
    elif price.get("unitPrice"):
        unit, currency = _money(price["unitPrice"], f"{where} product.price.unitPrice")
    else:
        raise _Unreadable(f"{where} has neither ITEM proceeds nor product.price.unitPrice")
    try:
        return OrderItem(
            sku_id=sku.strip(),
            quantity=quantity,
            unit_price=unit,
            currency=currency,
            marketplace_item_id=str(item_id) if item_id else None,
        )
    except ValidationError as exc:
        raise _Unreadable(f"{where}: {_problems(exc)}") from None


def per_unit(line_total: Decimal, quantity: int) -> Decimal:
    """A line total divided back to one unit, in the total's own precision (half up)."""
    exponent = line_total.as_tuple().exponent
    places = min(exponent, 0) if isinstance(exponent, int) else 0
    return (line_total / quantity).quantize(Decimal(1).scaleb(places), ROUND_HALF_UP)


def _item_shipping(n: int, raw: dict[str, Any]) -> Decimal:
    proceeds = _object(raw, "proceeds")
    return _breakdown(
        proceeds.get("breakdowns"), "SHIPPING", f"orderItems[{n}] proceeds.breakdowns"
    ) or Decimal(0)


def _breakdown(breakdowns: Any, kind: str, where: str) -> Decimal | None:
    found = _breakdown_money(breakdowns, kind, where)
    return found[0] if found else None


def _breakdown_money(breakdowns: Any, kind: str, where: str) -> tuple[Decimal, str] | None:
    """The sum of the breakdowns of one type (Amazon may split a category), or None when absent."""
    entries = [b for b in breakdowns or [] if isinstance(b, dict) and b.get("type") == kind]
    if not entries:
        return None
    amounts = [_money(entry.get("subtotal"), f"{where} {kind} subtotal") for entry in entries]
    currencies = {currency for _, currency in amounts}
    if len(currencies) > 1:
        raise _Unreadable(f"{where} {kind} subtotals are in several currencies")
    return sum((amount for amount, _ in amounts), Decimal(0)), currencies.pop()


def _money(value: Any, where: str) -> tuple[Decimal, str]:
    """A ``Money``: the amount is a decimal string in the spec; a JSON number is accepted, never a float."""
    if not isinstance(value, dict):
        raise _Unreadable(f"{where} is missing")
    amount, currency = value.get("amount"), value.get("currencyCode")
    if isinstance(amount, bool) or not isinstance(amount, str | int | Decimal):
        raise _Unreadable(f"{where}.amount is not a decimal amount")
    try:
        parsed = Decimal(amount.strip() if isinstance(amount, str) else amount)
    except InvalidOperation:
        raise _Unreadable(f"{where}.amount is not a decimal amount") from None
    if not parsed.is_finite():
        raise _Unreadable(f"{where}.amount is not a finite amount")
    if not isinstance(currency, str) or not currency:
        raise _Unreadable(f"{where}.currencyCode is missing")
    return parsed, currency


def _time(value: Any, where: str) -> datetime:
    if not isinstance(value, str):
        raise _Unreadable(f"{where} is missing")
    try:
        return aware_time(value)
    except ValueError:
        raise _Unreadable(f"{where} is not an ISO 8601 date-time with a time zone") from None


def _updated(raw: Any) -> datetime:
    """Sort key for the pull: lastUpdatedTime, and the far past for what cannot be read."""
    try:
        return _time(raw.get("lastUpdatedTime") if isinstance(raw, dict) else None, "lastUpdatedTime")
    except _Unreadable:
        return datetime.min.replace(tzinfo=UTC)


def _fulfillment(raw: Mapping[str, Any]) -> dict[str, Any]:
    return _object(raw, "fulfillment")


def _object(parent: Mapping[str, Any], name: str) -> dict[str, Any]:
    """A nested object, or an empty one when absent or of another type (Amazon omits what is not included)."""
    value = parent.get(name)
    return value if isinstance(value, dict) else {}


def _buyer(raw: Mapping[str, Any]) -> Buyer:
    buyer = _object(raw, "buyer")
    document = None
    tax = _object(raw, "tax")
    for registration in tax.get("taxRegistrations") or []:
        if isinstance(registration, dict) and registration.get("entityType") == "BUYER":
            document = _text(registration.get("taxRegistrationNumber"))
    return Buyer(name=_text(buyer.get("buyerName")), email=_text(buyer.get("buyerEmail")), document=document)


def _address(raw: Mapping[str, Any]) -> Address | None:
    """The delivery address, or None when Amazon withheld it (no restricted-data token, or FBA).

    Without a restricted-data token Amazon still sends the city, region and postal code; an
    address without a street cannot be delivered to, so it is treated as withheld.
    """
    recipient = _object(raw, "recipient")
    address = recipient.get("deliveryAddress")
    if not isinstance(address, dict):
        return None
    extended = _object(address, "extendedFields")
    street = _text(extended.get("streetName")) or _text(address.get("addressLine1"))
    city, postal_code, country = (_text(address.get(k)) for k in ("city", "postalCode", "countryCode"))
    if not (street and city and postal_code and country):
        return None
    lines = [_text(address.get(k)) for k in ("addressLine2", "addressLine3")]
    complement = _text(extended.get("complement")) or ", ".join(line for line in lines if line) or None
    return Address(
        name=_text(address.get("name")),
        street=street,
        number=_text(extended.get("streetNumber")),
        complement=complement,
        neighborhood=_text(extended.get("neighborhood")),
        city=city,
        state=_text(address.get("stateOrRegion")),
        postal_code=postal_code,
        country=country,
    )


def _text(value: Any) -> str | None:
    return value.strip() or None if isinstance(value, str) else None


def iso(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as SP-API writes its own times (a naive time is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat().replace("+00:00", "Z")


def _already_cancelled(order_id: str, raw: Mapping[str, Any]) -> bool:
    """True when the order is already cancelled; raises when it can no longer be cancelled."""
    fulfillment = _fulfillment(raw)
    status = fulfillment.get("fulfillmentStatus")
    if status in ("CANCELLED", "UNFULFILLABLE"):
        return True
    if status in ("SHIPPED", "PARTIALLY_SHIPPED"):
        raise OrderCallError(
            f"Amazon order {order_id} is already shipped: use the return path", retryable=False
        )
    if fulfillment.get("fulfilledBy") == "AMAZON":
        raise OrderCallError(
            f"Amazon fulfils order {order_id} itself (FBA): the seller cannot cancel it", retryable=False
        )
    return False


# -- request bodies -----------------------------------------------------------------------------------


def shipment_confirmation(order: Order, fulfilment: Fulfilment, marketplace_id: str) -> dict[str, Any]:
    """``ConfirmShipmentRequest`` for one VTEX package (the caller has checked there is tracking)."""
    tracking = fulfilment.tracking
    if tracking is None:
        raise ValueError("a shipment confirmation needs tracking")
    carrier = carrier_code(tracking.carrier)
    shipped_at = fulfilment.shipped_at or datetime.now(UTC)
    detail: dict[str, Any] = {
        "packageReferenceId": package_reference(fulfilment.invoice.number),
        "carrierCode": carrier,
        "trackingNumber": tracking.number.strip(),
        "shipDate": iso(shipped_at),
        "orderItems": package_items(order, fulfilment.items),
    }
    if carrier == "Other" or tracking.carrier.strip():
        detail["carrierName"] = tracking.carrier.strip() or "Other"
    if order.shipping_method:
        detail["shippingMethod"] = order.shipping_method
    return {"marketplaceId": marketplace_id, "packageDetail": detail}


def package_reference(invoice_number: str) -> str:
    """A positive number (the only kind Amazon takes) that is the same for the same invoice.

    A numeric invoice number (Brazil's NF-e numbers are) is used as it is; any other is hashed
    to twelve digits, so a repeated confirmation carries the same reference.
    """
    digits = invoice_number.strip()
    if digits.isdigit() and int(digits) > 0:
        return str(int(digits))
    return str(int(hashlib.sha256(digits.encode("utf-8")).hexdigest()[:10], 16) % 10**12 + 1)


def package_items(order: Order, items: Sequence[tuple[str, int]]) -> list[dict[str, Any]]:
    """``orderItems`` of the package: VTEX's (sku, quantity) to Amazon's orderItemId; all lines when empty."""
    wanted = list(items) or [(item.sku_id, item.quantity) for item in order.items]
    lines: list[dict[str, Any]] = []
    for sku, quantity in wanted:
        left = quantity
        for item in order.items:
            if item.sku_id != sku or left <= 0:
                continue
            if not item.marketplace_item_id:
                raise OrderCallError(f"order {order.order_id}: SKU {sku} has no orderItemId", retryable=False)
            taken = min(left, item.quantity)
            lines.append({"orderItemId": item.marketplace_item_id, "quantity": taken})
            left -= taken
        if left > 0:
            raise OrderCallError(
                f"order {order.order_id} has no line for SKU {sku} (or fewer than {quantity} units)",
                retryable=False,
            )
    return lines


def carrier_code(carrier: str) -> str:
    key = "".join(ch for ch in carrier.lower() if ch.isalnum())
    return CARRIER_CODES.get(key, "Other")


def cancel_reason(reason: str) -> str:
    """The CancelReason code for our free text; GeneralAdjustment when nothing fits."""
    text = reason.strip()
    if text in CANCEL_REASONS:
        return text
    lowered = text.lower()
    for code, words in REASON_WORDS:
        if any(word in lowered for word in words):
            return code
    return "GeneralAdjustment"


def acknowledgement(seller_id: str, order_id: str, item_ids: Sequence[str], reason: str) -> bytes:
    """An ``OrderAcknowledgement`` feed cancelling the whole order: StatusCode Failure, every item."""
    envelope = ElementTree.Element(
        "AmazonEnvelope",
        {
            "xmlns:xsi": "http://www.w3.org/2001/XMLSchema-instance",
            "xsi:noNamespaceSchemaLocation": "amzn-envelope.xsd",
        },
    )
    header = ElementTree.SubElement(envelope, "Header")
    ElementTree.SubElement(header, "DocumentVersion").text = "1.01"
    ElementTree.SubElement(header, "MerchantIdentifier").text = seller_id
    ElementTree.SubElement(envelope, "MessageType").text = "OrderAcknowledgement"
    message = ElementTree.SubElement(envelope, "Message")
    ElementTree.SubElement(message, "MessageID").text = "1"
    ack = ElementTree.SubElement(message, "OrderAcknowledgement")
    ElementTree.SubElement(ack, "AmazonOrderID").text = order_id
    ElementTree.SubElement(ack, "StatusCode").text = "Failure"
    for item_id in item_ids:
        item = ElementTree.SubElement(ack, "Item")
        ElementTree.SubElement(item, "AmazonOrderItemCode").text = item_id
        ElementTree.SubElement(item, "CancelReason").text = reason
    document: bytes = ElementTree.tostring(envelope, encoding="utf-8", xml_declaration=True)
    return document


def report_errors(report: bytes) -> list[str]:
    """The Error results of an XML ``ProcessingReport``; warnings do not stop a cancellation."""
    try:
        root = ElementTree.fromstring(report)
    except ElementTree.ParseError:
        return ["the processing report is not XML"]
    errors = []
    for result in root.iter("Result"):
        if (result.findtext("ResultCode") or "").strip() == "Error":
            code = (result.findtext("ResultMessageCode") or "").strip()
            description = (result.findtext("ResultDescription") or "").strip()
            errors.append(f"{code}: {description}" if code else description or "error without description")
    return errors


__all__ = ["AmazonOrders"]
