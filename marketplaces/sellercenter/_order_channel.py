"""SellerCenter orders (Dafiti): read with GetOrders and GetOrderItems, ship with
SetStatusToPackedByMarketplace, SetInvoiceAccessKey, SetStatusToReadyToShip and SetStatusToShipped,
cancel with SetStatusToCanceled (``shared/specs/dafiti/API.md`` §6, §7).

Every call is the platform's signed query on the API's one URL, sent by ``_http``'s
:class:`~marketplaces.sellercenter._http.SellerCenterSender` (signed afresh at each attempt; 429,
5xx and lost connections retried under the channel's patience); every action's parameters travel
in the query, as GET, as the Mobly SDK sends the order calls (Falabella documents POST: the
stand-in takes both). An answer is read by its envelope, not only its HTTP status
(``_http.failure``): an ``ErrorResponse`` (which may come with a 200) is a refusal naming its
``ErrorCode``, retryable when its ``ErrorType`` is ``Platform``.

Reading. ``GetOrders`` pages by ``Offset``/``Limit`` (100, sorted by creation, oldest first; the sort
parameters are unverified) from ``UpdatedAfter`` = the last pull's watermark moved back
:data:`OVERLAP` (Dafiti documents no overlap of its own), or, on a first pull, ``CreatedAfter``
``lookback_days`` ago. Offset pages move while orders change, so an ``OrderId`` seen twice is read
once. Each order's items come from ``GetOrderItems``: status is per item and each item is one unit,
so items of one SKU become one line of that quantity (the seller SKU is VTEX's SKU id); canceled,
failed and returned items are left out while others remain. ``GetOrders`` shows an order as soon as
Dafiti has it paid, so ``pending`` reads as unshipped and paid.

Shipping. ``confirm_shipment`` reads the items first and sends only what they do not show yet:
items without a purchase order are packed (``DeliveryType`` option, ``dropship`` by default; the
carrier named by VTEX, mapped by option ``carriers`` to the exact name ``GetShipmentProviders``
lists, which VTEX warns Dafiti needs); items without the NF-e get VTEX's invoice access key, number
and date (``SetInvoiceAccessKey``: unverified on Dafiti, built as API.md describes); packed items go
ready to ship with the tracking number; items ready to ship are shipped one by one.

Cancelling. Pending items are canceled one by one (``SetStatusToCanceled``) with the ``Reason``
option (a name ``GetFailureReasons`` lists; ``Out of stock`` by default) and the flow's reason as
``ReasonDetail``; items past pending cannot be canceled on Dafiti, which the error says. A
Dafiti order whose items are all canceled reads as cancelled, and the order flow cancels it in VTEX.

A refusal (``E028`` "not possible to set the order to the status", and the like) is answered by
reading the items again: when they already stand where the call would have put them (an earlier
call landed but its answer was lost), it counts as done.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Callable, Iterable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from decimal import Decimal, InvalidOperation
from typing import Any
from zoneinfo import ZoneInfo

import httpx
from pydantic import ValidationError

from engine import TradepostError
from engine.connectors import (
    BadOrder,
    Fulfilment,
    Invoice,
    OrderCallError,
    OrderChannel,
)
from engine.model import aware_time
from engine.orders import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from marketplaces.sellercenter._http import SellerCenterSender, as_list, failure, read_envelope, timestamp

__all__ = ["DafitiOrders", "SellerCenterOrders", "read_order"]

PAGE_MAX = 100
OVERLAP = timedelta(minutes=10)
"""How far back each pull reads from the last one's watermark: an order updated while the last pull
paged is read again (and once)."""
ZONE = "America/Sao_Paulo"
"""Dafiti's dates come without an offset (``YYYY-MM-DD HH:MM:SS``): taken as São Paulo time (option
``timezone``; unverified)."""
STATUSES: Mapping[str, tuple[FulfilmentStatus, PaymentStatus]] = {
    "pending": ("unshipped", "paid"),
    "ready_to_ship": ("unshipped", "paid"),
    "shipped": ("shipped", "paid"),
    "delivered": ("shipped", "paid"),
    "returned": ("shipped", "refunded"),
    "failed": ("cancelled", "cancelled"),
    "canceled": ("cancelled", "cancelled"),
}
"""An item status -> our fulfilment and payment status; an order reads as its least advanced item."""
ENDED = frozenset({"canceled", "failed", "returned"})
SHIPPED = frozenset({"shipped", "delivered"})
NFE_KEY_DIGITS = 44


class SellerCenterOrders(OrderChannel):
    """A SellerCenter seller's order channel; the module docstring maps each step onto the API.

    Connector options read here: ``delivery_type`` (``dropship``), ``carriers`` (VTEX courier ->
    Dafiti shipment provider name), ``cancel_reason`` (``Out of stock``), ``timezone``,
    ``lookback_days`` (30), and the catalog connector's ``user_id`` (the SellerCenter login) and
    ``user_agent``. Credential: ``api_key``.
    """

    name = "sellercenter"
    title = "SellerCenter"

    page_size: int = PAGE_MAX

    def now(self) -> datetime:
        """The first pull's lookback ends now (tests move it)."""
        return datetime.now(UTC)

    # -- reading -------------------------------------------------------------------------------

    async def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Orders updated since ``since`` (minus :data:`OVERLAP`), else created in the lookback; each once."""
        params = {"SortBy": "created_at", "SortDirection": "ASC"}
        if since is not None:
            params["UpdatedAfter"] = timestamp(since - OVERLAP)
        else:
            days = int(self.connector.options.get("lookback_days") or 30)
            params["CreatedAfter"] = timestamp(self.now() - timedelta(days=days))
        seen: set[str] = set()
        async for raw in self._pages(params):
            order_id = str(raw.get("OrderId") or "")
            if order_id in seen:
                continue
            seen.add(order_id)
            try:
                items = await self._items(order_id) if order_id else []
            except OrderCallError as refused:
                if refused.retryable:
                    raise
                yield BadOrder(self.name, order_id, f"its items cannot be read: {refused}")
                continue
            yield read_order(raw, items, self.name, self._zone)

    async def order(self, order_id: str) -> Order:
        """One order (GetOrder and GetOrderItems); one that cannot be read raises its reason."""
        found = _many(await self._body("GetOrder", {"OrderId": order_id}), "Orders", "Order")
        if not found:
            raise OrderCallError(f"{self.title} has no order {order_id}", retryable=False)
        read = read_order(found[0], await self._items(order_id), self.name, self._zone)
        if isinstance(read, BadOrder):
            raise OrderCallError(
                f"{self.title} order {order_id} cannot be read: {read.message}", retryable=False
            )
        return read

    async def _pages(self, params: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every order of a GetOrders query, page after page until one comes back short."""
        limit, offset = max(1, min(self.page_size, PAGE_MAX)), 0
        while True:
            query = {**params, "Limit": str(limit), "Offset": str(offset)}
            page = _many(await self._body("GetOrders", query), "Orders", "Order")
            for raw in page:
                yield raw
            offset += len(page)
            if len(page) < limit:
                return

    async def _items(self, order_id: str) -> list[dict[str, Any]]:
        return _many(await self._body("GetOrderItems", {"OrderId": order_id}), "OrderItems", "OrderItem")

    @property
    def _zone(self) -> ZoneInfo:
        return ZoneInfo(str(self.connector.options.get("timezone") or ZONE))

    # -- shipping ------------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """Pack, give the NF-e, set ready to ship with the tracking, ship: each only where missing."""
        key = _nfe_key(order, fulfilment.invoice)
        items = await self._live_items(order)
        if all(i["Status"] in SHIPPED for i in items):
            return
        if fulfilment.tracking is None:
            raise OrderCallError(f"order {order.order_id} has no tracking number in VTEX yet", retryable=True)
        provider = self._provider(fulfilment.tracking.carrier)
        delivery = str(self.connector.options.get("delivery_type") or "dropship")
        common = {"DeliveryType": delivery, "ShippingProvider": provider}
        steps: Sequence[tuple[str, Callable[[dict[str, Any]], bool], dict[str, str]]] = (
            ("SetStatusToPackedByMarketplace", _unpacked, common),
            (
                "SetInvoiceAccessKey",
                lambda i: i.get("InvoiceAccessKey") != key,
                _invoice_params(fulfilment.invoice),
            ),
            (
                "SetStatusToReadyToShip",
                lambda i: i["Status"] == "pending",
                {**common, "TrackingNumber": fulfilment.tracking.number.strip()},
            ),
        )
        for action, wanted, params in steps:  # each step's items are told by the items as read
            todo = [str(i["OrderItemId"]) for i in items if wanted(i)]
            if todo:
                await self._change(order, action, {**params, "OrderItemIds": json.dumps(todo)}, wanted)
        for item in items:  # pending ones are ready to ship by now
            if item["Status"] not in SHIPPED:
                params = {"OrderItemId": str(item["OrderItemId"])}
                await self._change(order, "SetStatusToShipped", params, _unshipped(item))

    def _provider(self, carrier: str) -> str:
        """VTEX's courier as the name Dafiti lists (option ``carriers``; else VTEX's name as it is)."""
        carriers = self.connector.options.get("carriers") or {}
        wanted = carrier.strip().casefold()
        return next(
            (str(n) for c, n in carriers.items() if str(c).strip().casefold() == wanted), carrier.strip()
        )

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order: Order, reason: str) -> None:
        """Each pending item canceled with the ``cancel_reason`` option and ``reason`` as the detail."""
        items = await self._live_items(order, ended_ok=True)
        past = [i for i in items if i["Status"] not in ENDED | {"pending"}]
        if past:
            status = past[0]["Status"]
            where = "use the return path" if status in SHIPPED else "only pending items can be canceled"
            raise OrderCallError(
                f"{self.title} order {order.order_id} has items {status}: {where}", retryable=False
            )
        detail = reason.strip()[:250] or "cancelled by the seller"
        name = str(self.connector.options.get("cancel_reason") or "Out of stock")
        for item in items:
            if item["Status"] == "pending":
                params = {"OrderItemId": str(item["OrderItemId"]), "Reason": name, "ReasonDetail": detail}
                await self._change(order, "SetStatusToCanceled", params, _pending(item))

    # -- state read back -----------------------------------------------------------------------

    async def _live_items(self, order: Order, *, ended_ok: bool = False) -> list[dict[str, Any]]:
        """The order's items not ended (all of them with ``ended_ok``); an order all ended is refused."""
        items = await self._items(order.order_id)
        live = [i for i in items if i.get("Status") not in ENDED]
        if ended_ok:
            return items
        if not live:
            raise OrderCallError(
                f"{self.title} order {order.order_id} is canceled; nothing to ship", retryable=False
            )
        return live

    async def _change(
        self, order: Order, action: str, params: Mapping[str, str], still: Callable[[dict[str, Any]], bool]
    ) -> None:
        """One write; a refusal counts as done when the items read back no longer need it (``still``)."""
        try:
            await self._body(action, params)
        except OrderCallError as refused:
            if refused.retryable:
                raise
            items = await self._live_items(order, ended_ok=action == "SetStatusToCanceled")
            named = (
                set(json.loads(params["OrderItemIds"]))
                if "OrderItemIds" in params
                else {params["OrderItemId"]}
            )
            if any(still(i) for i in items if str(i["OrderItemId"]) in named):
                raise OrderCallError(
                    f"{self.title} order {order.order_id}: {refused}", retryable=False
                ) from None

    # -- sending -------------------------------------------------------------------------------

    async def _body(self, action: str, params: Mapping[str, str]) -> dict[str, Any]:
        """The ``Body`` of the action's ``SuccessResponse``; anything else as an :class:`OrderCallError`."""
        try:  # a missing option or credential needs a person: a refusal, never a crash
            user, key = self.connector.option("user_id"), self.credentials.get("api_key")
        except TradepostError as missing:
            raise OrderCallError(f"{self.title}: {missing}", retryable=False) from None
        agent = self.connector.option("user_agent")
        sender = SellerCenterSender(self.client, user, key, self.backoff, user_agent=agent)
        try:
            response = await sender.send(action, params)
        except httpx.TransportError as lost:
            last = f"{self.title} did not answer {action} ({type(lost).__name__})"
            raise OrderCallError(f"{last}; gave up after {sender.count} attempts", retryable=True) from None
        refused = failure(response, action)
        if refused is not None:
            message = f"{self.title} refused {refused.error}"
            raise OrderCallError(message, retryable=refused.retryable, status=response.status_code)
        body = read_envelope(response.content).body
        return dict(body) if isinstance(body, Mapping) else {}


class DafitiOrders(SellerCenterOrders):
    """Dafiti's SellerCenter: the same channel under the rule file's ``marketplace: dafiti``."""

    name = "dafiti"
    title = "Dafiti"


def _invoice_params(invoice: Invoice) -> dict[str, str]:
    return {
        "InvoiceAccessKey": invoice.key or "",
        "InvoiceNumber": invoice.number,
        "InvoiceDate": timestamp(invoice.issued_at),
    }


def _nfe_key(order: Order, invoice: Invoice) -> str:
    key = invoice.key or ""
    if len(key) != NFE_KEY_DIGITS or not key.isdigit():
        raise OrderCallError(
            f"invoice {invoice.number} of order {order.order_id} has no 44-digit NF-e access key "
            "(VTEX invoiceKey): Dafiti needs it before ready to ship",
            retryable=False,
        )
    return key


def _unpacked(item: Mapping[str, Any]) -> bool:
    return item["Status"] == "pending" and not item.get("PurchaseOrderId")


def _unshipped(item: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda i: i["OrderItemId"] == item["OrderItemId"] and i["Status"] not in SHIPPED


def _pending(item: Mapping[str, Any]) -> Callable[[dict[str, Any]], bool]:
    return lambda i: i["OrderItemId"] == item["OrderItemId"] and i["Status"] == "pending"


def _many(body: Mapping[str, Any], outer: str, inner: str) -> list[dict[str, Any]]:
    """``Body.<outer>.<inner>`` as a list: an answer gives one element as an object."""
    group = body.get(outer)
    found = as_list(group.get(inner)) if isinstance(group, Mapping) else []
    return [dict(one) for one in found if isinstance(one, Mapping)]


# -- reading an order ------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A field that stops an order from being read; its message names the field, never a value."""


def read_order(
    raw: Mapping[str, Any],
    items: Iterable[Mapping[str, Any]],
    marketplace: str = "sellercenter",
    zone: ZoneInfo | None = None,
    currency: str = "BRL",
) -> Order | BadOrder:
    """One GetOrders order and its GetOrderItems items as a canonical Order, or why not (never raises).

    The currency is the items' ``Currency`` where they give one, else ``currency``."""
    order_id = str(raw.get("OrderId") or "")
    if not order_id:
        return BadOrder(marketplace, "<unknown>", "an order without an OrderId")
    zone = zone or ZoneInfo(ZONE)
    try:
        every = [i for i in items if isinstance(i, Mapping)]
        if not every:
            raise _Unreadable("GetOrderItems returned no items")
        statuses = [str(i.get("Status")) for i in every]
        unknown = [s for s in statuses if s not in STATUSES]
        if unknown:
            raise _Unreadable(f"item Status {unknown[0]} is not one Tradepost knows")
        live = [i for i in every if i.get("Status") not in ENDED] or every
        order_status = min((str(i["Status"]) for i in live), key=list(STATUSES).index)
        status, payment = STATUSES[order_status]
        currency = str(live[0].get("Currency") or currency)
        lines: dict[str, list[Mapping[str, Any]]] = {}
        for n, item in enumerate(live):
            sku = str(item.get("Sku") or "").strip()
            if not sku:
                raise _Unreadable(f"items[{n}].Sku (the seller SKU, VTEX's SKU id) is missing")
            lines.setdefault(sku, []).append(item)
        shipping = sum((_money(i, "ShippingAmount", Decimal(0)) for i in every), Decimal(0))
        paid = sum((_money(i, "PaidPrice") for i in live), Decimal(0))
        references = {"status": order_status, "order_number": str(raw.get("OrderNumber") or "")}
        return Order(
            marketplace=marketplace,
            order_id=order_id,
            created_at=_time(raw, "CreatedAt", zone),
            updated_at=_time(raw, "UpdatedAt", zone),
            currency=currency,
            items=tuple(_line(sku, group, currency) for sku, group in lines.items()),
            total=paid + shipping,
            shipping_total=shipping,
            shipping_method=str(live[0].get("ShippingType") or "") or None,
            payment_status=payment,
            status=status,
            references={k: v for k, v in references.items() if v},
            buyer=_buyer(raw),
            shipping_address=_address(raw.get("AddressShipping")),
        )
    except _Unreadable as problem:
        return BadOrder(marketplace, order_id, str(problem))
    except ValidationError as invalid:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
        return BadOrder(marketplace, order_id, fields)


def _line(sku: str, items: Sequence[Mapping[str, Any]], currency: str) -> OrderItem:
    """Items of one SKU (one unit each) as one line: the quantity is how many, the price the first's."""
    return OrderItem(
        sku_id=sku,
        quantity=len(items),
        unit_price=_money(items[0], "ItemPrice"),
        currency=currency,
        marketplace_item_id=",".join(str(i.get("OrderItemId") or "") for i in items),
    )


def _buyer(raw: Mapping[str, Any]) -> Buyer:
    name = " ".join(str(raw[k]).strip() for k in ("CustomerFirstName", "CustomerLastName") if raw.get(k))
    document = str(raw.get("NationalRegistrationNumber") or "").strip()
    return Buyer(name=name or None, document=document or None)


def _address(address: Any) -> Address | None:
    """``AddressShipping`` (the sub-fields are the platform's usual ones: unverified on Dafiti)."""
    if not isinstance(address, Mapping):
        return None
    street, city, post_code = (_clean(address.get(k)) for k in ("Address1", "City", "PostCode"))
    for field, value in (("Address1", street), ("City", city), ("PostCode", post_code)):
        if value is None:
            raise _Unreadable(f"AddressShipping.{field} is missing")
    assert street is not None and city is not None and post_code is not None
    country = _clean(address.get("Country")) or "BR"
    name = " ".join(str(address[k]).strip() for k in ("FirstName", "LastName") if address.get(k))
    return Address(
        name=name or None,
        street=street,
        complement=_clean(address.get("Address2")),
        neighborhood=_clean(address.get("Address3")),
        city=city,
        state=_clean(address.get("Region")),
        postal_code=post_code,
        country=country if len(country) <= 3 else _COUNTRIES.get(country.casefold(), "BR"),
    )


_COUNTRIES = {"brazil": "BR", "brasil": "BR", "colombia": "CO", "chile": "CL", "mexico": "MX", "méxico": "MX"}
"""Country names SellerCenter writes in addresses -> ISO codes (Dafiti's operators' countries)."""


def _money(data: Mapping[str, Any], key: str, absent: Decimal | None = None) -> Decimal:
    """An amount SellerCenter writes as a string (``"129.00"``) or a number; ``absent`` when missing."""
    value = data.get(key)
    if value in (None, "") and absent is not None:
        return absent
    try:
        amount = Decimal(str(value)) if isinstance(value, str | int | Decimal) and value != "" else None
    except InvalidOperation:
        amount = None
    if amount is None or not amount.is_finite():
        raise _Unreadable(f"{key} is not an amount")
    return amount


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _time(data: Mapping[str, Any], key: str, zone: ZoneInfo) -> datetime:
    """``YYYY-MM-DD HH:MM:SS`` in ``zone`` (how SellerCenter writes dates), or ISO 8601 with an offset."""
    value = str(data.get(key) or "")
    try:
        return datetime.strptime(value, "%Y-%m-%d %H:%M:%S").replace(tzinfo=zone)
    except ValueError:
        pass
    try:
        return aware_time(value.replace("Z", "+00:00"))
    except ValueError:
        raise _Unreadable(f"{key} is not a date") from None
