"""Mercado Libre orders: read sales from ``/orders/search``, confirm shipments, cancel through feedback.

Reading. ``GET /orders/search?seller={id}`` pages (``offset``/``limit``; Mercado Libre allows at
most 51 a page) through the seller's orders oldest first, from a last-updated watermark
(``order.date_last_updated.from``). A search result is the whole order, so each order costs one
more call only for its shipment (``GET /shipments/{id}``), which holds the address and says who
ships: Mercado Envíos (``mode`` me2; logistic type ``fulfillment`` is Full, shipped from Mercado
Libre's warehouse) or the seller (``custom``, ``me1``).

Fulfilling. Who ships decides what confirming a shipment means:

- Mercado Envíos: Mercado Libre buys the label and the carrier scans it, so the tracking is Mercado
  Libre's and a seller's tracking number is refused. In Brazil the label is released once the NF-e
  is attached, so confirming a shipment uploads the invoice to the pack; the sale completes when
  the carrier delivers. Elsewhere there is nothing to send.
- The seller ships: ``PUT /shipments/{id}`` records the tracking and marks it shipped, then
  fulfilled feedback closes the sale (ITEMS.md §6: outside Mercado Envíos, fulfilled feedback is
  what moves a sale to completed). It is posted at shipment rather than at delivery because nothing
  tells Tradepost when a seller-shipped package arrives, and an open sale never completes.

Cancelling. A seller cannot cancel a Mercado Libre order outright: feedback with ``fulfilled:
false``, a reason code and ``restock_item`` cancels an unshipped sale and returns its units to the
listing. A shipped order can only come back through a return, which the buyer opens.

Every side effect is safe to repeat: a shipment already shipped is not touched again, feedback
that is refused because it was already given (read back through ``GET /orders/{id}/feedback``)
counts as done, and a fiscal document already attached (409) too.
"""

from __future__ import annotations

import asyncio
import re
from collections.abc import AsyncIterator, Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import httpx
from pydantic import ValidationError

from engine.connectors import (
    BadOrder,
    Fulfilment,
    Invoice,
    OrderCallError,
    json_body,
)
from engine.jsonio import dumps
from engine.model import aware_time
from engine.orders import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from marketplaces.mercadolibre._after_sales import MercadoLibreAfterSales
from marketplaces.mercadolibre._http import ME, seller_id_in

__all__ = ["MercadoLibreOrders", "cancel_reason", "read_order"]

PAGE_LIMIT = 51
SHIPMENT_READERS = 8
"""Shipments read at once while paging orders: one call per order, a network away each."""
"""The largest ``limit`` ``/orders/search`` accepts."""

PAYMENT_OF_STATUS: Mapping[str, PaymentStatus] = {
    "paid": "paid",
    "confirmed": "pending",
    "payment_required": "pending",
    "payment_in_process": "pending",
    "partially_paid": "pending",
    "partially_refunded": "refunded",
    "pending_cancel": "cancelled",
    "cancelled": "cancelled",
    "invalid": "cancelled",
}
"""Mercado Libre's order status -> ours. ``partially_refunded`` is refunded because some money went
back and a person must look; ``pending_cancel`` (cancelled, the refund still under way) is cancelled."""

CANCELLED = frozenset({"cancelled", "invalid", "pending_cancel"})
SHIPPED = frozenset({"shipped", "delivered"})
SELLER_SHIPS = frozenset({"custom", "me1", "not_specified"})

REASON_WORDS: tuple[tuple[str, tuple[str, ...]], ...] = (
    ("OUT_OF_STOCK", ("stock", "estoque", "inventory", "inventário", "unavailable", "indispon", "agotad")),
    ("BUYER_DID_NOT_ANSWER", ("did not answer", "didn't answer", "no answer", "not respond", "unreachable")),
    ("BUYER_REGRETS", ("buyer regret", "buyer cancel", "buyer asked", "buyer changed", "desist", "arrepent")),
)
"""Our free-text reason -> Mercado Libre's feedback reason code, by the first matching words;
anything else is the seller's decision (SELLER_REGRETS), e.g. a price-divergence rejection."""
REASON_CODES = ("OUT_OF_STOCK", "BUYER_REGRETS", "SELLER_REGRETS", "BUYER_DID_NOT_ANSWER")

MESSAGES = {
    "pt": {"shipped": "Pedido enviado. Obrigado pela compra!", "cancelled": "Pedido cancelado."},
    "es": {"shipped": "Pedido enviado. ¡Gracias por tu compra!", "cancelled": "Pedido cancelado."},
}
"""Feedback is read by the buyer: written in the site's language (Brazil Portuguese, else Spanish)."""
MESSAGE_MAX = 159  # "under 160 characters"


class MercadoLibreOrders(MercadoLibreAfterSales):
    """Mercado Libre's order channel; see the module docstring for how each step maps onto the API.

    Connector options read here: ``seller_id`` (saves the ``/users/me`` call), ``feedback_message``
    (the fulfilled feedback's text), ``shipping_services`` (carrier name -> Mercado Libre
    ``service_id``, for seller-shipped ``me1`` shipments). Returns and questions come from its base,
    :class:`~marketplaces.mercadolibre._after_sales.MercadoLibreAfterSales`.
    """

    name = "mercadolibre"
    title = "Mercado Libre"

    page_size: int = 50
    _seller_id: str | None = None

    # -- reading -------------------------------------------------------------------------------

    async def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Orders last updated at or after ``since``, by creation date, oldest first, each once.

        Offset paging is stable here: new orders sort after every page already read, and an order
        updated meanwhile stays in the filter. Each id is yielded once per pull all the same.
        """
        params: dict[str, Any] = {"seller": await self.seller_id(), "sort": "date_asc"}
        if since is not None:
            params["order.date_last_updated.from"] = _ml_time(since)
        status = self.connector.options.get("order_status")
        if status:  # e.g. "paid": only sales ready to fulfil (cancellations of known orders then go unseen)
            params["order.status"] = str(status)
        limit = max(1, min(self.page_size, PAGE_LIMIT))
        seen: set[str] = set()
        gate = asyncio.Semaphore(SHIPMENT_READERS)
        offset = 0
        while True:
            page = await self._json(
                "GET", "/orders/search", params={**params, "offset": offset, "limit": limit}
            )
            results = page.get("results")
            if not isinstance(results, list):
                raise OrderCallError("Mercado Libre answered /orders/search without results", retryable=True)
            fresh = []
            for raw in results:
                order_id = str(raw.get("id")) if isinstance(raw, Mapping) else None
                if order_id is not None and order_id in seen:
                    continue
                if order_id is not None:
                    seen.add(order_id)
                fresh.append(raw)
            # Each order's shipment is one more call: a page's shipments are read side by side.
            for item in await asyncio.gather(*(self._read_gated(raw, gate) for raw in fresh)):
                yield item
            offset += len(results)
            total = (page.get("paging") or {}).get("total")
            if not results or not isinstance(total, int) or offset >= total:
                return

    async def order(self, order_id: str) -> Order:
        """``GET /orders/{id}``; an order that cannot be read raises its BadOrder message, not retryable."""
        read = await self._read(await self._json("GET", f"/orders/{order_id}"))
        if isinstance(read, BadOrder):
            raise OrderCallError(read.message, retryable=False)
        return read

    async def seller_id(self) -> str:
        """The seller's user id: an option when given, else ``GET /users/me`` once per channel."""
        if self._seller_id is None:
            known = self.connector.options.get("seller_id")
            seller_id = str(known) if known else seller_id_in(await self._json("GET", ME))
            if seller_id is None:
                raise OrderCallError("Mercado Libre's /users/me named no user id", retryable=True)
            self._seller_id = seller_id
        return self._seller_id

    async def _read_gated(self, raw: Any, gate: asyncio.Semaphore) -> Order | BadOrder:
        async with gate:
            return await self._read(raw)

    async def _read(self, raw: Any) -> Order | BadOrder:
        """One order with its shipment; a shipment Mercado Libre refuses to show makes it a BadOrder."""
        if not isinstance(raw, Mapping) or raw.get("id") in (None, ""):
            return BadOrder(self.name, "<unknown>", "an order without an id")
        shipment_id = (raw.get("shipping") or {}).get("id")
        shipment = None
        if shipment_id:
            try:
                shipment = await self._json("GET", f"/shipments/{shipment_id}")
            except OrderCallError as refused:
                if refused.retryable:
                    raise
                return BadOrder(
                    self.name, str(raw["id"]), f"shipment {shipment_id} unreadable ({refused.status})"
                )
        return read_order(raw, shipment, self.sku_of, self.name)

    # -- fulfilling ----------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """Invoice for Mercado Envíos, tracking plus fulfilled feedback where the seller ships.

        Mercado Libre ships an order as one shipment, so the first package VTEX reports confirms
        it and later ones find it shipped (done). Without tracking (a seller delivering by its own
        means) only the feedback is sent.
        """
        shipment_id = order.references.get("shipment_id")
        shipment = await self._json("GET", f"/shipments/{shipment_id}") if shipment_id else None
        if shipment is not None and shipment.get("status") == "cancelled":
            raise OrderCallError(
                f"Mercado Libre order {order.order_id} is cancelled; nothing to ship", retryable=False
            )
        if shipment is not None and shipment.get("mode") not in SELLER_SHIPS:
            if _site(order) == "MLB":
                await self._attach_invoice(order, fulfilment.invoice)
            return
        tracking = fulfilment.tracking
        if shipment is not None and tracking is not None and shipment.get("status") not in SHIPPED:
            body: dict[str, Any] = {
                "tracking_number": tracking.number,
                "status": "shipped",
                "tracking_method": tracking.carrier,
            }
            service = (self.connector.options.get("shipping_services") or {}).get(tracking.carrier)
            if service is not None:
                body["service_id"] = service
            await self._call("PUT", f"/shipments/{shipment_id}", body)
        message = str(self.connector.options.get("feedback_message") or _messages(order)["shipped"])
        await self._feedback(
            order, {"fulfilled": True, "rating": "positive", "message": message[:MESSAGE_MAX]}
        )

    async def _attach_invoice(self, order: Order, invoice: Invoice) -> None:
        """``POST /packs/{pack or order id}/fiscal_documents``: the NF-e that releases the label.

        The real endpoint takes the NF-e XML as a multipart file upload (field ``fiscal_document``),
        the XML SEFAZ authorised, and reads number, key and value from it. VTEX keeps that XML
        (the invoice notification's ``embeddedInvoice``, or a file behind ``invoiceUrl``), so
        sending it needs :class:`~engine.connectors.Invoice` to carry the XML, or its URL and
        a download here, then ``files={"fiscal_document": (f"{key}.xml", xml, "text/xml")}``.
        Until then this sends the invoice's fields as JSON, which the stand-in takes. A pack
        (a cart) has one document for all its orders, so 409 (already attached) is done.
        """
        if not invoice.key or not re.fullmatch(r"\d{44}", invoice.key):
            raise OrderCallError(
                f"invoice {invoice.number} has no 44-digit NF-e key; Mercado Libre needs the NF-e "
                "to release a Mercado Envios label",
                retryable=False,
            )
        target = order.references.get("pack_id") or order.order_id
        body = {
            "number": invoice.number,
            "key": invoice.key,
            "value": invoice.value,
            "issued_at": invoice.issued_at.isoformat(),
        }
        await self._call("POST", f"/packs/{target}/fiscal_documents", body, also_ok=(409,))

    async def cancel(self, order: Order, reason: str) -> None:
        """Feedback with ``fulfilled: false``, which cancels an unshipped sale and restocks it.

        Refused feedback is read back: already cancelled (or our feedback already given) is done;
        shipped is not retryable, because only a return, opened by the buyer, undoes a shipment.
        """
        shipped = OrderCallError(
            f"Mercado Libre order {order.order_id} already shipped: use the return path", retryable=False
        )
        if order.status == "shipped":
            raise shipped
        if order.status == "cancelled":
            return  # cancelled on Mercado Libre already, which returned the stock
        message = (
            _scrub(reason, order.personal_values())[:MESSAGE_MAX].strip() or _messages(order)["cancelled"]
        )
        body = {
            "fulfilled": False,
            "rating": "neutral",
            "reason": cancel_reason(reason),
            "message": message,
            "restock_item": True,
        }
        try:
            await self._feedback(order, body)
        except OrderCallError as refused:
            if refused.retryable:
                raise
            current = await self._json("GET", f"/orders/{order.order_id}")
            if current.get("status") in CANCELLED:
                return
            shipment_id = (current.get("shipping") or {}).get("id")
            shipment = await self._json("GET", f"/shipments/{shipment_id}") if shipment_id else {}
            if shipment.get("status") in SHIPPED or current.get("fulfilled") is True:
                raise shipped from None
            raise

    async def _feedback(self, order: Order, body: Mapping[str, Any]) -> None:
        """``POST /orders/{id}/feedback``; refused because the same verdict was given before is done."""
        path = f"/orders/{order.order_id}/feedback"
        try:
            await self._call("POST", path, body)
        except OrderCallError as refused:
            if refused.retryable or refused.status not in (400, 409):
                raise
            sale = (await self._json("GET", path)).get("sale")
            if not (isinstance(sale, Mapping) and sale.get("fulfilled") is body["fulfilled"]):
                raise

    # -- sending -------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        body: Any = None,
        params: Mapping[str, Any] | None = None,
        also_ok: tuple[int, ...] = (),
    ) -> httpx.Response:
        """One request through :func:`send`; a 401 (token revoked early) is refreshed and sent once more."""

        def ok(response: httpx.Response) -> bool:
            return 200 <= response.status_code < 300 or response.status_code in also_ok

        content = dumps(body).encode() if body is not None else None
        headers = {"Content-Type": "application/json"} if body is not None else None
        return await self.request(method, path, params=params, content=content, headers=headers, ok=ok)

    async def _json(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        """The answer as a JSON object, numbers as Decimal; anything else is a retryable failure."""
        answer = json_body(await self._call(method, path, params=params))
        if not isinstance(answer, dict):
            raise OrderCallError(
                f"Mercado Libre answered {method} {path} with no JSON object", retryable=True
            )
        return answer


# -- reading an order ------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A field that stops an order from being read; its message names the field, never a value."""


def read_order(
    raw: Mapping[str, Any],
    shipment: Mapping[str, Any] | None,
    sku_of: Callable[[str], str | None],
    marketplace: str = "mercadolibre",
) -> Order | BadOrder:
    """An order (``GET /orders/{id}``) and its shipment (``GET /shipments/{id}``) as a canonical Order.

    Money is read as the Decimal the JSON number is. ``total`` is ``total_amount`` (the items)
    plus the buyer's shipping: ``paid_amount`` would include it too, but it is 0 until payment.
    """
    order_id = str(raw.get("id"))
    try:
        currency = _text(raw, "currency_id")
        items = tuple(
            _item(line, index, currency, sku_of) for index, line in enumerate(_list(raw, "order_items"))
        )
        payment = _payment_status(raw)
        shipping = _shipping_cost(raw, shipment)
        ship_status = (shipment or {}).get("status")
        status: FulfilmentStatus
        if raw.get("status") in CANCELLED or ship_status == "cancelled":
            status = "cancelled"
        elif ship_status in SHIPPED:
            status = "shipped"
        elif payment == "pending":
            status = "pending"
        else:
            status = "unshipped"
        return Order(
            marketplace=marketplace,
            order_id=order_id,
            created_at=_time(raw, "date_created"),
            updated_at=_time(raw, "last_updated") if raw.get("last_updated") else None,
            currency=currency,
            items=items,
            total=_money(raw, "total_amount") + shipping,
            shipping_total=shipping,
            shipping_method=_shipping_method(shipment),
            payment_status=payment,
            status=status,
            references=_references(raw, shipment),
            buyer=_buyer(raw.get("buyer")),
            shipping_address=_address(shipment),
        )
    except _Unreadable as problem:
        return BadOrder(marketplace, order_id, str(problem))
    except ValidationError as invalid:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
        return BadOrder(marketplace, order_id, fields)


def _item(line: Any, index: int, currency: str, sku_of: Callable[[str], str | None]) -> OrderItem:
    """The SKU from ``seller_sku`` (live answers carry it), ``seller_custom_field``, or the state store.

    A line naming a variation is looked up only as ``item/variation``, never as the bare item: in
    the state store a bare item id may belong to a family member whose variation could not be
    told, and matching it would put another SKU on the order.
    """
    where = f"order_items[{index}]"
    if not isinstance(line, Mapping) or not isinstance(line.get("item"), Mapping):
        raise _Unreadable(f"{where}.item is missing")
    item = line["item"]
    item_id = item.get("id")
    if not item_id:
        raise _Unreadable(f"{where}.item.id is missing")
    variation = item.get("variation_id")
    remote = f"{item_id}/{variation}" if variation not in (None, "") else str(item_id)
    sku = item.get("seller_sku") or item.get("seller_custom_field") or sku_of(remote)
    if not sku:
        raise _Unreadable(f"{where}: no seller_sku, no seller_custom_field and no SKU listed as {remote}")
    quantity = line.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool):
        raise _Unreadable(f"{where}.quantity is not a whole number")
    return OrderItem(
        sku_id=str(sku),
        quantity=quantity,
        unit_price=_money(line, "unit_price", where),
        currency=str(line.get("currency_id") or currency),
        marketplace_item_id=remote,
    )


def _payment_status(raw: Mapping[str, Any]) -> PaymentStatus:
    """From the order's status; an unknown status falls back on the payments (approved: paid)."""
    status = PAYMENT_OF_STATUS.get(str(raw.get("status")))
    if status is not None:
        if status == "cancelled" and any(p.get("status") == "refunded" for p in _payments(raw)):
            return "refunded"
        return status
    return "paid" if any(p.get("status") == "approved" for p in _payments(raw)) else "pending"


def _shipping_cost(raw: Mapping[str, Any], shipment: Mapping[str, Any] | None) -> Decimal:
    """What the buyer pays for shipping: the order's ``shipping_cost``, else the approved payments',
    else the shipment option's; 0 when none says (free shipping)."""
    if raw.get("shipping_cost") is not None:
        return _money(raw, "shipping_cost")
    costs = [
        p for p in _payments(raw) if p.get("status") == "approved" and p.get("shipping_cost") is not None
    ]
    if costs:
        return sum((_money(p, "shipping_cost", "payments[]") for p in costs), Decimal(0))
    option = (shipment or {}).get("shipping_option")
    if isinstance(option, Mapping) and option.get("cost") is not None:
        return _money(option, "cost", "shipment.shipping_option")
    return Decimal(0)


def _shipping_method(shipment: Mapping[str, Any] | None) -> str | None:
    if not shipment:
        return None
    option = shipment.get("shipping_option")
    name = option.get("name") if isinstance(option, Mapping) else None
    return str(name) if name else str(shipment.get("mode") or "") or None


def _references(raw: Mapping[str, Any], shipment: Mapping[str, Any] | None) -> dict[str, str]:
    """What fulfilment needs later: the shipment and pack, and who ships (``mode``, ``logistic_type``)."""
    found = {
        "shipment_id": (raw.get("shipping") or {}).get("id"),
        "pack_id": raw.get("pack_id"),
        "mode": (shipment or {}).get("mode"),
        "logistic_type": (shipment or {}).get("logistic_type"),
    }
    return {key: str(value) for key, value in found.items() if value not in (None, "")}


def _buyer(buyer: Any) -> Buyer:
    """The name from first and last name; the nickname only when that is all there is."""
    if not isinstance(buyer, Mapping):
        return Buyer()
    name = " ".join(str(buyer[k]).strip() for k in ("first_name", "last_name") if buyer.get(k)) or None
    billing = buyer.get("billing_info")
    document = billing.get("doc_number") if isinstance(billing, Mapping) else None
    return Buyer(
        id=str(buyer["id"]) if buyer.get("id") is not None else None,
        name=name or (str(buyer["nickname"]) if buyer.get("nickname") else None),
        email=str(buyer["email"]) if buyer.get("email") else None,
        document=str(document) if document else None,
    )


def _address(shipment: Mapping[str, Any] | None) -> Address | None:
    """``receiver_address`` of a shipment; none for Full, which ships from Mercado Libre's warehouse.

    ``state.id`` is ``BR-SP``: the part after the country is the state code. ``SN`` (sin/sem
    número) is no number.
    """
    if not shipment or shipment.get("logistic_type") == "fulfillment":
        return None
    address = shipment.get("receiver_address")
    if not isinstance(address, Mapping):
        return None

    def named(key: str, field: str = "name") -> str | None:
        value = address.get(key)
        return _clean(value.get(field)) if isinstance(value, Mapping) else None

    def plain(key: str) -> str | None:
        return _clean(address.get(key))

    street, city, postal_code, country = (
        plain("street_name"),
        named("city"),
        plain("zip_code"),
        named("country", "id"),
    )
    for field, value in (
        ("street_name", street),
        ("city.name", city),
        ("zip_code", postal_code),
        ("country.id", country),
    ):
        if value is None:
            raise _Unreadable(f"shipment {shipment.get('id')}: receiver_address.{field} is missing")
    number = plain("street_number")
    state = named("state", "id")
    assert street is not None and city is not None and postal_code is not None and country is not None
    return Address(
        name=plain("receiver_name"),
        street=street,
        number=None if number is None or number.upper() in ("SN", "S/N") else number,
        complement=plain("comment"),
        neighborhood=named("neighborhood"),
        city=city,
        state=state.rpartition("-")[2] if state else None,
        postal_code=postal_code,
        country=country,
    )


# -- small readers ---------------------------------------------------------------------------------


def _money(data: Mapping[str, Any], key: str, where: str = "") -> Decimal:
    value = data.get(key)
    if isinstance(value, Decimal):
        return value
    if isinstance(value, int) and not isinstance(value, bool):
        return Decimal(value)
    raise _Unreadable(f"{where + '.' if where else ''}{key} is not a number")


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _Unreadable(f"{key} is missing")
    return value


def _list(data: Mapping[str, Any], key: str) -> list[Any]:
    value = data.get(key)
    if not isinstance(value, list) or not value:
        raise _Unreadable(f"{key} is missing or empty")
    return value


def _time(data: Mapping[str, Any], key: str) -> datetime:
    value = data.get(key)
    try:
        return aware_time(str(value))
    except ValueError:
        raise _Unreadable(f"{key} is not an ISO 8601 time with a time zone") from None


def _payments(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    return [p for p in raw.get("payments") or [] if isinstance(p, Mapping)]


def _ml_time(moment: datetime) -> str:
    """ISO 8601 as Mercado Libre writes it (milliseconds, offset); a naive time is taken as UTC."""
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return moment.astimezone(UTC).isoformat(timespec="milliseconds")


def _site(order: Order) -> str:
    """The site from the listing ids (``MLB123`` is Brazil)."""
    return next((item.marketplace_item_id[:3] for item in order.items if item.marketplace_item_id), "")


def _messages(order: Order) -> Mapping[str, str]:
    return MESSAGES["pt" if _site(order) == "MLB" else "es"]


def cancel_reason(reason: str) -> str:
    """Mercado Libre's reason code for our free-text reason; a code given as such is kept."""
    code = reason.strip().upper().replace(" ", "_")
    if code in REASON_CODES:
        return code
    text = reason.lower()
    return next((code for code, words in REASON_WORDS if any(w in text for w in words)), "SELLER_REGRETS")


def _scrub(text: str, personal: list[str]) -> str:
    """The reason goes to the buyer's sale record: no other personal text from the order rides along."""
    for value in sorted(personal, key=len, reverse=True):
        text = text.replace(value, "…")
    return " ".join(text.split())
