"""Netshoes orders: read by page, invoiced with the NF-e, shipped with tracking, cancelled both ways.

``shared/specs/netshoes/API.md`` §6-7, in the later English shape the notes advise (``orderNumber``,
``orderStatus`` Created/Approved/Invoiced/Shipped/Delivered/Canceled, ``shippings[]``); **the API
may no longer be live**, and none of this was tried against Netshoes.

Reading. ``GET /orders`` pages by ``page`` (from 0) and ``size`` with ``expand=shippings,items``
from the pull's watermark, which the order flow moves back by its overlap; the only date filter is
the order date (``orderStartDate``), so an older order Netshoes cancels is found by a second query,
``orderStatus=Canceled`` over the last ``cancel_lookback_days`` (30). Pages move while orders
arrive, so the same order can come twice: each ``orderNumber`` is yielded once. Every status is
read; Created is ``pending`` (VTEX: waiting for authorisation), Approved and Invoiced are ready to
ship, Shipped and Delivered shipped, Canceled cancelled (API.md §7's mapping). A line's ``sku`` is
the VTEX SKU id. Exchange orders (``orderType`` other than Normal/Venda) are read like sales.

Shipping. An order's shippings are what Netshoes invoices and ships. ``confirm_shipment`` reads
the order first and moves each live shipping only as far as it has not gone: Approved ->
``PUT .../status/invoiced`` with VTEX's NF-e (the 44-digit key, the number, the series read from
the key, the issue date), then Invoiced -> ``PUT .../status/shipped`` with the carrier and the
tracking number (and link). After a refusal, the order is read again: a step that is done (its
answer lost) counts as done. Delivered is Netshoes' (its carrier reports it).

Cancelling. A shipping in Created or Approved is cancelled by ``PUT .../status/canceled`` with the
reason; once invoiced, Netshoes allows no cancellation (a return is the way). An order Netshoes
cancels is cancelled in VTEX by the order flow; one VTEX cancels is cancelled here (VTEX's own
connector does not, API.md §7: ours does, since the route exists).
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from pydantic import ValidationError

from engine.connectors import (
    BadOrder,
    Fulfilment,
    Invoice,
    OrderCallError,
    OrderChannel,
    RetryPolicy,
    Tracking,
    json_body,
)
from engine.jsonio import dumps
from engine.model import aware_time
from engine.orders import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from marketplaces.netshoes._http import API, retry_policy

__all__ = ["NetshoesOrders", "invoiced_body", "netshoes_time", "read_order", "shipped_body"]

PAGE_SIZE = 50
EXPAND = "shippings,items"
STATUSES: Mapping[str, tuple[FulfilmentStatus, PaymentStatus]] = {
    "Created": ("pending", "pending"),
    "Approved": ("unshipped", "paid"),
    "Invoiced": ("unshipped", "paid"),
    "Shipped": ("shipped", "paid"),
    "Delivered": ("shipped", "paid"),
    "Canceled": ("cancelled", "cancelled"),
}
"""Netshoes' status (the later English names; the 2016 Portuguese ones map onto them) -> ours."""
PORTUGUESE = {"Cadastrado": "Created", "Aprovado": "Approved", "Faturado": "Invoiced", "Enviado": "Shipped",
              "Entregue": "Delivered", "Cancelado": "Canceled"}  # fmt: skip
FROM = {"Invoiced": ("Approved",), "Shipped": ("Invoiced",), "Canceled": ("Created", "Approved")}
"""Target status -> the statuses a shipping moves to it from (API.md §8.3)."""
NFE_KEY = re.compile(r"\d{44}")


class NetshoesOrders(OrderChannel):
    """A Netshoes seller's order channel; see the module docstring.

    Options read here: ``cancel_lookback_days`` (30), ``max_attempts`` and ``retry_seconds`` (as
    the connector's).
    """

    name = "netshoes"
    title = "Netshoes"

    page_size: int = PAGE_SIZE

    @functools.cached_property
    def backoff(self) -> RetryPolicy:  # type: ignore[override]  # from the connector's options
        """As patient as the connector (:func:`~marketplaces.netshoes._http.retry_policy`)."""
        return retry_policy(self.connector.options)

    # -- reading -------------------------------------------------------------------------------

    async def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Orders placed at or after ``since`` (all when None), then those cancelled in the lookback,
        oldest first, each once."""
        lookback = timedelta(days=float(self.connector.options.get("cancel_lookback_days") or 30))
        queries: list[dict[str, str]] = [{}]
        if since is not None:
            queries = [
                {"orderStartDate": netshoes_time(since)},
                {"orderStartDate": netshoes_time(since - lookback), "orderStatus": "Canceled"},
            ]
        seen: set[str] = set()
        for query in queries:
            async for raw in self._pages(query):
                read = read_order(raw, self.name)
                if read.order_id not in seen:  # pages move while orders arrive
                    seen.add(read.order_id)
                    yield read

    async def order(self, order_id: str) -> Order:
        """One order by its number; one that cannot be read raises its reason."""
        read = read_order(await self._raw(order_id), self.name)
        if isinstance(read, Order):
            return read
        raise OrderCallError(f"Netshoes order {order_id} cannot be read: {read.message}", retryable=False)

    async def _pages(self, query: Mapping[str, str]) -> AsyncIterator[dict[str, Any]]:
        """Every order of a query, page after page, until a page is short or names no ``next``."""
        page = 0
        while True:
            params = {**query, "page": str(page), "size": str(self.page_size), "expand": EXPAND}
            answer = await self._json("GET", "/orders", params)
            items = answer.get("items")
            if not isinstance(items, list):
                raise OrderCallError("Netshoes answered GET /orders without items", retryable=True)
            for raw in items:
                if isinstance(raw, dict):
                    yield raw
            links = answer.get("_links") if isinstance(answer.get("_links"), Mapping) else {}
            if len(items) < self.page_size or not (links or {}).get("next"):
                return
            page += 1

    async def _raw(self, order_id: str) -> dict[str, Any]:
        return await self._json("GET", f"/orders/{order_id}", {"expand": EXPAND})

    # -- shipping ------------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """Each live shipping invoiced (the NF-e), then shipped (the tracking), each only when missing."""
        invoiced = invoiced_body(order, fulfilment.invoice)
        shipped = shipped_body(order, fulfilment)
        for target, body in (("Invoiced", invoiced), ("Shipped", shipped)):
            for code in await self._waiting(order, target):
                await self._move(order, code, target, body)

    async def _waiting(self, order: Order, target: str) -> list[str]:
        """The codes of the shippings (read now) that move to ``target`` next; an error when the
        order cannot get there (cancelled, or past the point where Netshoes cancels)."""
        statuses = {
            str(s.get("shippingCode")): _status(s.get("status"))
            for s in _shippings(await self._raw(order.order_id))
        }
        live = {code: status for code, status in statuses.items() if status != "Canceled"}
        if target == "Canceled":
            late = sorted({status for status in live.values() if status not in FROM[target]})
            if late:
                raise OrderCallError(
                    f"Netshoes order {order.order_id} is {late[0]}: Netshoes cancels only before "
                    "invoicing (a return is the way now)",
                    retryable=False,
                )
        elif not live:
            raise OrderCallError(
                f"Netshoes order {order.order_id} is Canceled; nothing to ship", retryable=False
            )
        elif "Created" in live.values():
            raise OrderCallError(
                f"Netshoes order {order.order_id} is Created: it ships once Netshoes approves it",
                retryable=True,
            )
        return [code for code, status in live.items() if status in FROM[target]]

    async def _move(self, order: Order, code: str, target: str, body: Mapping[str, Any]) -> None:
        """One status route; after a refusal, done when the shipping shows it got there (its
        answer was lost), or further."""
        path = f"/orders/{order.order_id}/shippings/{code}/status/{target.lower()}"
        try:
            await self._call("PUT", path, body)
        except OrderCallError as refused:
            if refused.retryable or refused.status not in (400, 409, 422):
                raise
            shippings = _shippings(await self._raw(order.order_id))
            now = next(
                (_status(s.get("status")) for s in shippings if str(s.get("shippingCode")) == code), ""
            )
            flow = list(STATUSES)[:-1]  # Canceled is no step of the flow
            if now != target and (target == "Canceled" or now not in flow[flow.index(target) :]):
                raise

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order: Order, reason: str) -> None:
        """Every shipping in Created or Approved cancelled with ``reason``; done when all are."""
        body = {"status": "Canceled", "cancellationReason": reason.strip() or "Cancelado pelo vendedor"}
        for code in await self._waiting(order, "Canceled"):
            await self._move(order, code, "Canceled", body)

    # -- sending -------------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, str] | None = None
    ) -> Any:
        content = dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json", "Content-Type": "application/json"}
        return await self.request(method, API + path, params=params, content=content, headers=headers)

    async def _json(self, method: str, path: str, params: Mapping[str, str] | None = None) -> dict[str, Any]:
        answer = json_body(await self._call(method, path, params=params))
        if not isinstance(answer, dict):
            raise OrderCallError(f"Netshoes answered {method} {path} with no JSON object", retryable=True)
        return answer


# -- request bodies ------------------------------------------------------------------------------


def invoiced_body(order: Order, invoice: Invoice) -> dict[str, Any]:
    """``status/invoiced``: the NF-e key, number, series (``line``, the key's digits 23-25) and date."""
    key = (invoice.key or "").strip()
    if not NFE_KEY.fullmatch(key):
        raise OrderCallError(
            f"invoice {invoice.number} of order {order.order_id} has no 44-digit NF-e access key "
            "(VTEX invoiceKey): Netshoes needs it to invoice",
            retryable=False,
        )
    number: int | str = int(invoice.number) if invoice.number.strip().isdigit() else invoice.number.strip()
    body: dict[str, Any] = {"status": "Invoiced", "number": number, "line": int(key[22:25]), "key": key}
    body["issueDate"] = netshoes_time(invoice.issued_at)
    if invoice.url:
        body["url"] = invoice.url
    return body


def shipped_body(order: Order, fulfilment: Fulfilment) -> dict[str, Any]:
    """``status/shipped``: the carrier, the tracking number (and link), the date handed over."""
    tracking: Tracking | None = fulfilment.tracking
    if tracking is None or not tracking.number.strip() or not tracking.carrier.strip():
        raise OrderCallError(
            f"order {order.order_id} has no carrier and tracking number yet: Netshoes needs both to ship",
            retryable=True,
        )
    handed = fulfilment.shipped_at or fulfilment.invoice.issued_at
    body: dict[str, Any] = {
        "status": "Shipped",
        "carrier": tracking.carrier.strip(),
        "trackingNumber": tracking.number.strip(),
        "deliveredCarrierDate": netshoes_time(handed),
    }
    if tracking.url:
        body["trackingLink"] = tracking.url
    return body


def netshoes_time(moment: datetime) -> str:
    """``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` (API.md §1), in UTC (a naive time is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%S.") + f"{aware.microsecond // 1000:03d}+0000"


# -- reading an order ------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A field that stops an order from being read; its message names the field, never a value."""


def read_order(raw: Any, marketplace: str = "netshoes") -> Order | BadOrder:
    """One order (the later shape; the 2016 names where it has them) as a canonical Order, or why
    it cannot be (never raises). Items of cancelled shippings are left out while others remain."""
    number = str(raw.get("orderNumber") or raw.get("number") or "") if isinstance(raw, Mapping) else ""
    if not number:
        return BadOrder(marketplace, "<unknown>", "an order without an orderNumber")
    try:
        status = _status(raw.get("orderStatus") or raw.get("status"))
        if status not in STATUSES:
            raise _Unreadable("orderStatus is not one Tradepost knows")
        fulfilment, payment = STATUSES[status]
        shippings = _shippings(raw)
        if not shippings:
            raise _Unreadable("shippings is missing or empty (read with expand=shippings,items)")
        live = [s for s in shippings if _status(s.get("status")) != "Canceled"] or shippings
        items = tuple(
            _item(item, f"shippings[{n}].items[{m}]")
            for n, shipping in enumerate(live)
            for m, item in enumerate(shipping.get("items") or [])
            if isinstance(item, Mapping)
        )
        gross, discount, freight = (
            _money(raw, key) for key in ("totalGross", "totalDiscount", "totalFreight")
        )
        references = {
            "status": status,
            "order_type": raw.get("orderType"),
            "shippings": ",".join(str(s.get("shippingCode")) for s in shippings),
            "origin_number": raw.get("originNumber"),
        }
        found = live[0].get("customer")
        customer: Mapping[str, Any] = found if isinstance(found, Mapping) else {}
        return Order(
            marketplace=marketplace,
            order_id=number,
            created_at=_time(raw.get("orderDate")),
            currency="BRL",
            items=items,
            total=gross - discount + freight,
            shipping_total=freight,
            payment_status=payment,
            status=fulfilment,
            references={k: str(v) for k, v in references.items() if v not in (None, "")},
            buyer=_buyer(customer),
            shipping_address=_address(live[0], customer),
        )
    except _Unreadable as problem:
        return BadOrder(marketplace, number, str(problem))
    except ValidationError as invalid:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
        return BadOrder(marketplace, number, fields)


def _item(item: Mapping[str, Any], where: str) -> OrderItem:
    sku = item.get("sku")
    if not isinstance(sku, str) or not sku.strip():
        raise _Unreadable(f"{where}.sku (the seller's SKU, VTEX's SKU id) is missing")
    quantity = item.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise _Unreadable(f"{where}.quantity is not a whole number of at least 1")
    return OrderItem(
        sku_id=sku.strip(),
        quantity=quantity,
        unit_price=_money(item, "netUnitValue", where),
        currency="BRL",
        marketplace_item_id=str(item.get("itemId") or "") or None,
    )


def _buyer(customer: Mapping[str, Any]) -> Buyer:
    return Buyer(name=_clean(customer.get("customerName")), document=_clean(customer.get("document")))


def _address(shipping: Mapping[str, Any], customer: Mapping[str, Any]) -> Address | None:
    """The shipping's ``customerAddress`` or its customer's ``address`` (the notes give both)."""
    address = shipping.get("customerAddress") or customer.get("address")
    if not isinstance(address, Mapping):
        return None
    street, city, postal_code = (_clean(address.get(k)) for k in ("street", "city", "postalCode"))
    for name, value in (("street", street), ("city", city), ("postalCode", postal_code)):
        if value is None:
            raise _Unreadable(f"customer address {name} is missing")
    assert street is not None and city is not None and postal_code is not None
    return Address(
        name=_clean(customer.get("recipientName")) or _clean(customer.get("customerName")),
        street=street,
        number=_clean(address.get("number")),
        complement=_clean(address.get("complement")),
        neighborhood=_clean(address.get("neighborhood")),
        city=city,
        state=_clean(address.get("state")),
        postal_code=postal_code,
        country="BR",
    )


def _shippings(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    found = raw.get("shippings")
    return [s for s in found if isinstance(s, Mapping)] if isinstance(found, list) else []


def _status(value: Any) -> str:
    text = str(value or "")
    return PORTUGUESE.get(text, text)


def _money(data: Mapping[str, Any], key: str, where: str = "") -> Decimal:
    value = data.get(key, 0) if key in ("totalDiscount", "totalFreight") else data.get(key)
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return Decimal(value)
    raise _Unreadable(f"{where + '.' if where else ''}{key} is not a number")


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _time(value: Any) -> datetime:
    """An ISO 8601 date (``+0000`` offsets too) or epoch milliseconds, as the fixtures show both."""
    if isinstance(value, int | Decimal) and not isinstance(value, bool):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", str(value or "").replace("Z", "+00:00"))
    try:
        return aware_time(text)
    except ValueError:
        raise _Unreadable("orderDate is not a date with a time zone") from None
