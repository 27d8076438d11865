"""Magazine Luiza orders (Magalu Open API, seller v1): orders and their deliveries read, each
delivery invoiced with VTEX's NF-e and shipped with its tracking; cancellations read, never sent.

Reading. ``GET /seller/v1/orders`` pages by ``_offset``/``_limit`` (100 at most), sorted by
``purchased_at`` ascending (a purchase date never moves, so an order updated while the pages are
read does not shift them), from an ``updated_at__ge`` watermark (the spelling of Magalu's order and
delivery pages; third-party clients write ``__gte``, which the stand-in also takes). The order
flow re-reads an overlap before its cursor, and an order can come twice in one pull: each ``id``
is yielded once. Order and delivery reads carry the seller's sales channel in ``X-Channel-Id``
(option ``channel_id``); writes carry it in the body as ``channel.id``. One order is read with
``GET /seller/v1/orders/{id}``, one delivery with ``GET /seller/v1/deliveries/{id}``.

An order is its deliveries (packages): the items are ``deliveries[].items[]``, each with the
seller SKU (``info.sku``, the VTEX SKU id) and an integer price over its ``normalizer``; the
address is the delivery's ``shipping.recipient.address``. Magalu asks the seller to accept
nothing: an order ``new`` waits for its payment, one ``approved`` is paid.

Shipping. VTEX's package becomes the deliveries holding its SKUs (every live one when VTEX names
no items). Each is read first; one ``approved`` gets the NF-e (``POST .../invoices``: access key,
issue date, value as a decimal, and the XML VTEX keeps as ``embeddedInvoice``; when VTEX has no
XML the invoice is sent without one, and a refusal says so); one ``invoiced`` gets the tracking
(``POST .../shippings``: carrier, tracking code as ``protocol``, tracking URL, dates); one
``shipped`` or ``delivered`` is done. A delivery Magalu ships itself (``provider.extras
.is_fulfillment``) takes the invoice only. A refused write (4xx) is answered by reading the
delivery again: an invoice whose key is shown, or a delivery already shipped, counts as done.

Cancelling. The Open API has no seller cancellation (API.md section 5): an order cancelled on
Magalu (by the customer, a failed payment) is read as cancelled and the order flow cancels it in
VTEX; an order to be cancelled on Magalu (cancelled in VTEX, or rejected by the divergence rules)
is reported with a reason to cancel it in the Magalu seller portal, and counts as done once Magalu
shows it cancelled.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import ValidationError

from engine.connectors import BadOrder, Fulfilment, Invoice, OrderCallError, OrderChannel, json_body
from engine.jsonio import dumps
from engine.model import aware_time
from engine.orders import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from marketplaces.magalu._http import api_headers, channel_ref

__all__ = ["MagaluOrders", "invoice_body", "magalu_time", "read_order", "shipping_body"]

ORDERS = "/seller/v1/orders"
DELIVERIES = "/seller/v1/deliveries"
PAGE_MAX = 100
"""``_limit`` at most: the SKU list's documented ``max_limit``; the order list's is not published."""

STATES: Mapping[str, tuple[FulfilmentStatus, PaymentStatus]] = {
    "new": ("pending", "pending"),
    "approved": ("unshipped", "paid"),
    "finished": ("shipped", "paid"),
    "cancelled": ("cancelled", "cancelled"),
}
"""Magalu's order status -> our fulfilment and payment status (an approved order whose live
deliveries all left is shipped)."""
GONE = frozenset({"shipped", "delivered"})
"""Delivery statuses past shipping."""
NFE_KEY = re.compile(r"\d{44}")


class MagaluOrders(OrderChannel):
    """A Magalu seller's order channel; see the module docstring for how each step maps onto the API.

    Connector options read here: ``channel_id`` (the sales channel, required: ``X-Channel-Id``
    and the ``channel.id`` of every write).
    """

    name = "magalu"
    title = "Magalu"

    page_size: int = PAGE_MAX

    # -- reading -------------------------------------------------------------------------------

    async def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Orders updated at or after ``since`` (all when None), oldest purchase first, each once."""
        params: dict[str, Any] = {
            "_sort": "purchased_at:asc",
            "_limit": max(1, min(self.page_size, PAGE_MAX)),
        }
        if since is not None:
            params["updated_at__ge"] = magalu_time(since)
        seen: set[str] = set()
        offset = 0
        while True:
            answer = await self._json(ORDERS, {**params, "_offset": offset})
            results = _results(answer)
            for raw in results:
                order_id = str(raw.get("id") or "")
                if order_id and order_id in seen:
                    continue
                seen.add(order_id)
                yield read_order(raw, self.name)
            offset += len(results)
            if not results or not _more(answer, len(results), params["_limit"]):
                return

    async def order(self, order_id: str) -> Order:
        """One order by its id; one that cannot be read raises its reason."""
        read = read_order(await self._json(f"{ORDERS}/{order_id}"), self.name)
        if isinstance(read, BadOrder):
            raise OrderCallError(f"Magalu order {order_id} cannot be read: {read.message}", retryable=False)
        return read

    def needs_tracking(self, order: Order) -> bool:
        """False when Magalu's own logistics carry every delivery (it tracks them itself)."""
        return order.references.get("fulfillment") != "magalu"

    # -- shipping ------------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """The NF-e, then the tracking, on each delivery of the package, each only when missing."""
        current = await self._json(f"{ORDERS}/{order.order_id}")
        if current.get("status") == "cancelled":
            raise OrderCallError(
                f"Magalu order {order.order_id} is cancelled; nothing to ship", retryable=False
            )
        deliveries = _deliveries_of(current, fulfilment)
        if not deliveries:
            raise OrderCallError(
                f"Magalu order {order.order_id} has no live delivery with the package's SKUs", retryable=False
            )
        for delivery in deliveries:
            await self._ship_delivery(order, delivery, fulfilment)

    async def _ship_delivery(self, order: Order, delivery: Mapping[str, Any], fulfilment: Fulfilment) -> None:
        delivery_id, status = str(delivery.get("id")), str(delivery.get("status"))
        where = f"delivery {delivery.get('code') or delivery_id} of Magalu order {order.order_id}"
        if status in GONE:
            return
        if status != "approved" and status != "invoiced":
            raise OrderCallError(
                f"{where} is {status}: Magalu takes an invoice once the delivery is approved (paid)",
                retryable=status in ("new", "frozen"),
            )
        if status == "approved" and not _shows_invoice(delivery, fulfilment.invoice.key):
            body = invoice_body(fulfilment.invoice, self._channel_id(), where)
            await self._write(delivery_id, "invoices", body, where, _invoice_shown(body["key"]))
        if fulfilment.tracking is None or _is_fulfillment(delivery):
            return
        body = shipping_body(fulfilment, self._channel_id())
        await self._write(delivery_id, "shippings", body, where, _shipped)

    async def _write(
        self, delivery_id: str, kind: str, body: Mapping[str, Any], where: str, done: _Check
    ) -> None:
        """``POST /seller/v1/deliveries/{id}/<kind>``; a refusal is answered by reading the delivery
        again (``done`` says whether the write had already landed: an answer lost, then the same
        write refused as a duplicate)."""
        try:
            await self._call("POST", f"{DELIVERIES}/{delivery_id}/{kind}", body)
        except OrderCallError as refused:
            if refused.retryable or refused.status is None or refused.status >= 500:
                raise
            if not done(await self._json(f"{DELIVERIES}/{delivery_id}")):
                xml = (
                    " (VTEX's invoice has no XML to send)" if kind == "invoices" and "xml" not in body else ""
                )
                raise OrderCallError(f"Magalu refused the {where}: {refused}{xml}", retryable=False) from None

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order: Order, reason: str) -> None:
        """Done when Magalu shows the order cancelled; else a reason to cancel it in the portal."""
        current = await self._json(f"{ORDERS}/{order.order_id}")
        if current.get("status") == "cancelled":
            return
        raise OrderCallError(
            f"Magalu order {current.get('code') or order.order_id} must be cancelled in the Magalu seller "
            f"portal (the Open API has no seller cancellation): {reason}",
            retryable=False,
        )

    # -- sending -------------------------------------------------------------------------------

    def _channel_id(self) -> str:
        channel = str(self.connector.options.get("channel_id") or "")
        if not channel:
            raise OrderCallError(
                "Magalu needs options.channel_id (the seller's sales channel)", retryable=False
            )
        return channel

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """One request through :func:`send` (429, 5xx and lost connections retried)."""
        headers = api_headers(self._channel_id())
        if body is not None:
            headers["Content-Type"] = "application/json"
        content = dumps(body).encode() if body is not None else None
        query = {k: str(v) for k, v in (params or {}).items()}
        return await self.request(method, path, params=query, content=content, headers=headers)

    async def _json(self, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        answer = json_body(await self._call("GET", path, params=params))
        if not isinstance(answer, dict):
            raise OrderCallError(f"Magalu answered GET {path} with no JSON object", retryable=True)
        return answer


# -- request bodies ------------------------------------------------------------------------------


def invoice_body(invoice: Invoice, channel_id: str, where: str = "the delivery") -> dict[str, Any]:
    """``POST /seller/v1/deliveries/{id}/invoices``: key, issue date, decimal amount, the XML when
    VTEX has it (Magalu marks it required: without it the refusal names what is missing)."""
    if not invoice.key or not NFE_KEY.fullmatch(invoice.key):
        raise OrderCallError(
            f"invoice {invoice.number} for the {where} has no 44-digit NF-e access key (VTEX invoiceKey): "
            "Magalu needs it",
            retryable=False,
        )
    body: dict[str, Any] = {
        "issued_at": magalu_time(invoice.issued_at),
        "key": invoice.key,
        "amount": invoice.value,
        "channel": channel_ref(channel_id),
    }
    if invoice.xml:
        body["xml"] = invoice.xml
    return body


def shipping_body(fulfilment: Fulfilment, channel_id: str) -> dict[str, Any]:
    """``POST /seller/v1/deliveries/{id}/shippings``: the carrier, the tracking code as the
    ``protocol``, its page, and when the package left (now when VTEX does not say)."""
    tracking = fulfilment.tracking
    assert tracking is not None
    shipped = fulfilment.shipped_at or datetime.now(UTC)
    body: dict[str, Any] = {
        "channel": channel_ref(channel_id),
        "protocol": tracking.number.strip(),
        "carrier": {"name": tracking.carrier.strip() or "Transportadora"},
        "dates": {"shipped_at": magalu_time(shipped)},
    }
    if tracking.url:
        body["tracking_url"] = tracking.url
    return body


# -- reading back --------------------------------------------------------------------------------

_Check = Callable[[Mapping[str, Any]], bool]
"""Whether a delivery as Magalu shows it already carries a write."""


def _invoice_shown(key: str) -> _Check:
    return lambda delivery: _shows_invoice(delivery, key) or delivery.get("status") in GONE


def _shipped(delivery: Mapping[str, Any]) -> bool:
    return delivery.get("status") in GONE


def _shows_invoice(delivery: Mapping[str, Any], key: str | None) -> bool:
    return any(
        isinstance(shown, Mapping) and shown.get("key") == key and shown.get("status") != "invalid"
        for shown in delivery.get("invoices") or []
    )


def _is_fulfillment(delivery: Mapping[str, Any]) -> bool:
    provider = (delivery.get("shipping") or {}).get("provider") or {}
    extras = provider.get("extras") if isinstance(provider, Mapping) else None
    return isinstance(extras, Mapping) and extras.get("is_fulfillment") is True


def _deliveries_of(raw: Mapping[str, Any], fulfilment: Fulfilment) -> list[Mapping[str, Any]]:
    """The live deliveries holding the package's SKUs (all of them when VTEX names no items)."""
    live = [d for d in _deliveries(raw) if d.get("status") != "cancelled"]
    wanted = {sku for sku, _ in fulfilment.items}
    if not wanted:
        return live
    return [d for d in live if wanted & {_sku(item) for item in _items(d)}]


# -- reading an order ------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A field that stops an order from being read; its message names the field, never a value."""


def read_order(raw: Any, marketplace: str = "magalu") -> Order | BadOrder:
    """One Magalu order as a canonical Order, or why it cannot be (never raises).

    Items of cancelled deliveries are left out while others remain.
    """
    order_id = str(raw.get("id") or "") if isinstance(raw, Mapping) else ""
    if not order_id:
        return BadOrder(marketplace, "<unknown>", "an order without an id")
    try:
        status = str(raw.get("status") or "")
        if status not in STATES:
            raise _Unreadable(f"status {status or '(none)'} is not one Tradepost knows")
        fulfilment, payment = STATES[status]
        deliveries = _deliveries(raw)
        live = [d for d in deliveries if d.get("status") != "cancelled"] or deliveries
        lines = [(n, item) for n, d in enumerate(deliveries) if d in live for item in _items(d)]
        if not lines:
            raise _Unreadable("deliveries[].items is missing or empty")
        if status == "approved" and all(d.get("status") in GONE for d in live):
            fulfilment = "shipped"
        amounts = raw.get("amounts") if isinstance(raw.get("amounts"), Mapping) else {}
        currency = str(amounts.get("currency") or "BRL")
        references = {
            "code": raw.get("code"),
            "status": status,
            "deliveries": ",".join(str(d.get("id")) for d in live),
            "fulfillment": "magalu" if live and all(_is_fulfillment(d) for d in live) else None,
        }
        return Order(
            marketplace=marketplace,
            order_id=order_id,
            created_at=_time(raw, "purchased_at" if raw.get("purchased_at") else "created_at"),
            updated_at=_time(raw, "updated_at") if raw.get("updated_at") else None,
            currency=currency,
            items=tuple(_item(item, n, i, currency) for i, (n, item) in enumerate(lines)),
            total=_amount(amounts, "total", "amounts"),
            shipping_total=_amount(amounts.get("freight") or {"total": 0}, "total", "amounts.freight"),
            shipping_method=_provider(live[0]) if live else None,
            payment_status=payment,
            status=fulfilment,
            references={k: str(v) for k, v in references.items() if v not in (None, "")},
            buyer=_buyer(raw.get("customer")),
            shipping_address=_address(live[0] if live else {}),
        )
    except _Unreadable as problem:
        return BadOrder(marketplace, order_id, str(problem))
    except ValidationError as invalid:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
        return BadOrder(marketplace, order_id, fields)


def _item(item: Mapping[str, Any], delivery: int, n: int, currency: str) -> OrderItem:
    where = f"deliveries[{delivery}].items[{n}]"
    sku = _sku(item)
    if not sku:
        raise _Unreadable(f"{where}.info.sku (the seller SKU, VTEX's SKU id) is missing")
    quantity = item.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise _Unreadable(f"{where}.quantity is not a whole number of at least 1")
    unit = item.get("unit_price")
    return OrderItem(
        sku_id=sku,
        quantity=quantity,
        unit_price=_amount(unit if isinstance(unit, Mapping) else {}, "value", f"{where}.unit_price"),
        currency=currency,
        marketplace_item_id=str(item.get("sequencial") or "") or None,
    )


def _sku(item: Mapping[str, Any]) -> str:
    info = item.get("info")
    sku = info.get("sku") if isinstance(info, Mapping) else None
    return sku.strip() if isinstance(sku, str) else ""


def _buyer(customer: Any) -> Buyer:
    if not isinstance(customer, Mapping):
        return Buyer()
    return Buyer(
        name=_clean(customer.get("name")),
        email=_clean(customer.get("email")),
        document=_clean(customer.get("document_number")),
    )


def _address(delivery: Mapping[str, Any]) -> Address | None:
    """``shipping.recipient.address`` of the order's first live delivery (field names unverified)."""
    recipient = (delivery.get("shipping") or {}).get("recipient") or {}
    address = recipient.get("address") if isinstance(recipient, Mapping) else None
    if not isinstance(address, Mapping):
        return None
    found = {k: _clean(address.get(k)) for k in ("street", "city", "zipcode")}
    for field, value in found.items():
        if value is None:
            raise _Unreadable(f"shipping.recipient.address.{field} is missing")
    return Address(
        name=_clean(recipient.get("name")),
        street=str(found["street"]),
        number=_clean(address.get("number")),
        complement=_clean(address.get("complement")),
        neighborhood=_clean(address.get("district")),
        city=str(found["city"]),
        state=_clean(address.get("state")),
        postal_code=str(found["zipcode"]),
        country=_clean(address.get("country")) or "BR",
    )


def _provider(delivery: Mapping[str, Any]) -> str | None:
    provider = (delivery.get("shipping") or {}).get("provider")
    return _clean(provider.get("name")) if isinstance(provider, Mapping) else None


def _deliveries(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = raw.get("deliveries")
    return [d for d in found if isinstance(d, Mapping)] if isinstance(found, list) else []


def _items(delivery: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = delivery.get("items")
    return [i for i in found if isinstance(i, Mapping)] if isinstance(found, list) else []


def _results(answer: Mapping[str, Any]) -> list[dict[str, Any]]:
    results = answer.get("results")
    if not isinstance(results, list):
        raise OrderCallError("Magalu answered a list without results", retryable=True)
    return [r for r in results if isinstance(r, dict)]


def _more(answer: Mapping[str, Any], served: int, asked: int) -> bool:
    """Whether a page has a next one: its ``meta.links.next`` when it has links (a server that
    serves fewer than asked still pages on), else a full page."""
    meta = answer.get("meta")
    links = meta.get("links") if isinstance(meta, Mapping) else None
    return bool(links.get("next")) if isinstance(links, Mapping) else served >= asked


def _amount(data: Mapping[str, Any], key: str, where: str) -> Decimal:
    """An integer amount in minor units over its ``normalizer`` (100 when absent)."""
    value: Any = data.get(key)
    normalizer: Any = data.get("normalizer", 100)
    if not _whole(value) or not _whole(normalizer) or normalizer <= 0:
        raise _Unreadable(f"{where}.{key} is not a whole number of minor units over a normalizer")
    return Decimal(value) / Decimal(normalizer)


def _whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _time(data: Mapping[str, Any], key: str) -> datetime:
    try:
        return aware_time(str(data.get(key)).replace("Z", "+00:00"))
    except ValueError:
        raise _Unreadable(f"{key} is not an ISO 8601 time with a time zone") from None


def magalu_time(moment: datetime) -> str:
    """ISO 8601 in UTC with milliseconds and a Z, as Magalu's shipping examples write dates."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")
