"""Mirakl orders (Carrefour Brasil): read with OR11, accept or refuse with OR21, ship with OR23 + OR24,
cancel with OR29 or OR30.

Reading. ``GET /api/orders`` (OR11) pages by ``offset``/``max`` (100 at most) from a last-updated
watermark (``start_update_date``), oldest creation first. Mirakl subtracts a time delta from that
date on its side "to ensure no orders are missed", and offset pages move while orders change, so
the same order can come twice in one pull: each ``order_id`` is yielded once. Every state
Carrefour's flow passes through is read (``STAGING`` … ``CLOSED``, ``REFUSED``, ``CANCELED``), so
a known order's cancellation or shipment is seen; a new order is decided whatever its state, so
one Carrefour moved past ``STAGING`` between two pulls is not lost (VTEX's own connector imports
only ``STAGING`` orders and drops the rest). One order is read with OR11's ``order_ids`` (OR12 is
"No Integration Allowed"), in lists of at most 100.

Accepting. An order in ``WAITING_ACCEPTANCE`` waits for the seller: when the divergence rules (or a
reviewer) approve it, :meth:`MiraklOrders.accept` accepts every line (OR21); when they reject it,
:meth:`MiraklOrders.cancel` refuses every line. Mirakl withholds the shipping address until
acceptance (or shipping, by platform setting), so an order is accepted before it is placed in VTEX.
An order still in ``STAGING`` (the operator's fraud check) cannot be decided on yet: accepting waits,
refusing is retried at the next push.

Shipping. ``confirm_shipment`` reads the order first. In ``SHIPPING`` (the customer was debited)
it sends the NF-e from VTEX's invoice as the operator's order custom fields (OR31: access key,
number, issuance date; the field codes are options, since Carrefour publishes none), then the
tracking (OR23: a registered ``carrier_code`` when the options map VTEX's courier to one, else
``carrier_name`` and ``carrier_url``), then confirms the shipment (OR24). The NF-e XML is not
uploaded: OR74 takes csv, doc, xls, xlsx, ppt, pdf, odt, ods, odp, txt, rtf, png, jpg, gif, zpl,
mov and mp4, not xml, and the fields are what Carrefour reads (CARREFOUR.md). Mirakl ships an
order as one, so the first package VTEX reports ships it and later ones find it shipped.

Cancelling. A whole order goes through OR29 when Mirakl says ``can_cancel``; otherwise (the
operator lets a seller cancel only lines) every line's remaining quantity, amount, shipping and
taxes go through OR30, with the reason code the ``cancel_reason_code`` option names (the codes
are the operator's: ``GET /api/reasons``). A ``CANCELED`` order on Carrefour is cancelled in VTEX
by the order flow.

Every side effect reads the order back first and sends only what Mirakl does not already show:
fields already set, tracking already recorded, a shipment already made, lines already accepted,
refused or cancelled count as done; a refusal (400) is answered by reading the order again.
"""

from __future__ import annotations

import functools
import re
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
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
    RetryPolicy,
    Tracking,
    json_body,
)
from engine.jsonio import dumps
from engine.model import aware_time
from engine.orders import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from marketplaces.mirakl._after_sales import MiraklAfterSales
from marketplaces.mirakl._http import shop_params

__all__ = ["CarrefourOrders", "MiraklOrders", "cancellations", "mirakl_time", "read_order", "tracking_body"]

ORDERS = "/api/orders"
PAGE_MAX = 100
"""OR11's ``max``: the usual upper bound (SOURCE.md)."""
IDS_MAX = 100
"""Ids in one ``order_ids`` list: Mirakl refuses longer lists ("The limit of 100 is exceeded")."""

STATES: Mapping[str, tuple[FulfilmentStatus, PaymentStatus]] = {
    "STAGING": ("pending", "pending"),
    "WAITING_ACCEPTANCE": ("pending", "pending"),
    "WAITING_DEBIT": ("pending", "pending"),
    "WAITING_DEBIT_PAYMENT": ("pending", "pending"),
    "SHIPPING": ("unshipped", "paid"),
    "SHIPPED": ("shipped", "paid"),
    "TO_COLLECT": ("shipped", "paid"),
    "RECEIVED": ("shipped", "paid"),
    "CLOSED": ("shipped", "paid"),
    "REFUSED": ("cancelled", "cancelled"),
    "CANCELED": ("cancelled", "cancelled"),
}
"""Mirakl's order state -> our fulfilment and payment status; the read order is Carrefour's flow."""
SHIPPED = frozenset({"SHIPPED", "TO_COLLECT", "RECEIVED", "CLOSED"})
ENDED = frozenset({"REFUSED", "CANCELED"})
DEBITED = frozenset({"WAITING_DEBIT", "WAITING_DEBIT_PAYMENT", "SHIPPING"})
"""States where the seller has accepted: a cancellation goes through OR29 or OR30."""

NFE_FIELDS: Mapping[str, tuple[str, str]] = {
    "key": ("nfe-key", "STRING"),
    "number": ("nfe-number", "STRING"),
    "issued_at": ("nfe-issuance-date", "DATE"),
}
"""Invoice part -> the default order custom field code and its Mirakl type; option ``nfe_fields``
maps a part to the operator's code (AF01 lists them), ``url`` to a LINK field when it has one."""
NFE_KEY = re.compile(r"\d{44}")
DEFAULT_CANCEL_REASON = "34"
"""Mirakl's example reason code; Carrefour's are its own (``GET /api/reasons``), set by option."""


class MiraklOrders(MiraklAfterSales):
    """A Mirakl shop's order channel; see the module docstring for how each step maps onto the API.

    Connector options read here: ``shop_id`` (sent with every call, for a user with several
    shops), ``order_states`` (the OR11 states read, comma-separated), ``nfe_fields`` (invoice part
    -> custom field code), ``carriers`` (VTEX courier name -> registered Mirakl carrier code, as
    SH21 lists them), ``cancel_reason_code``. Returns and message threads come from its base,
    :class:`~marketplaces.mirakl._after_sales.MiraklAfterSales`.
    """

    name = "mirakl"
    title = "Mirakl"

    page_size: int = PAGE_MAX

    @functools.cached_property
    def backoff(self) -> RetryPolicy:  # type: ignore[override]  # from the connector's options
        """Retries as patient as the connector's own (options ``max_attempts``, ``retry_seconds``)."""
        options = self.connector.options
        return RetryPolicy(
            attempts=max(1, int(options.get("max_attempts") or 5)),
            base=float(options.get("retry_seconds") or 0.5),
        )

    # -- reading -------------------------------------------------------------------------------

    async def orders(self, since: datetime | None) -> AsyncIterator[Order | BadOrder]:
        """Orders updated at or after ``since`` (all when None), oldest creation first, each once."""
        params: dict[str, Any] = {
            "order_state_codes": str(self.connector.options.get("order_states") or ",".join(STATES)),
            "sort": "dateCreated",
            "order": "asc",
            "max": max(1, min(self.page_size, PAGE_MAX)),
        }
        if since is not None:
            params["start_update_date"] = mirakl_time(since)
        seen: set[str] = set()
        async for raw in self._pages(params):
            order_id = str(raw.get("order_id") or "")
            if order_id and order_id in seen:
                continue
            seen.add(order_id)
            yield read_order(raw, self.name)

    async def order(self, order_id: str) -> Order:
        """One order through OR11's ``order_ids``; one that cannot be read raises its reason."""
        read = read_order(await self._raw(order_id), self.name)
        if isinstance(read, BadOrder):
            raise OrderCallError(f"Mirakl order {order_id} cannot be read: {read.message}", retryable=False)
        return read

    async def raw_orders(self, order_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
        """The orders as OR11 shows them, by id, read in ``order_ids`` lists of at most 100."""
        wanted = list(dict.fromkeys(order_ids))
        found: dict[str, dict[str, Any]] = {}
        for start in range(0, len(wanted), IDS_MAX):
            query = {"order_ids": ",".join(wanted[start : start + IDS_MAX]), "max": PAGE_MAX}
            found.update(
                {str(raw["order_id"]): raw async for raw in self._pages(query) if raw.get("order_id")}
            )
        return found

    async def _pages(self, params: Mapping[str, Any]) -> AsyncIterator[dict[str, Any]]:
        """Every order of an OR11 query, page after page (``offset``) until ``total_count``."""
        offset = 0
        while True:
            answer = await self._json("GET", ORDERS, params={**params, "offset": offset})
            orders, total = answer.get("orders"), answer.get("total_count")
            if not isinstance(orders, list) or not isinstance(total, int):
                raise OrderCallError("Mirakl answered OR11 without orders and total_count", retryable=True)
            for raw in orders:
                if isinstance(raw, dict):
                    yield raw
            offset += len(orders)
            if not orders or offset >= total:
                return

    async def _state(self, order: Order) -> tuple[dict[str, Any], str]:
        """The order as Mirakl shows it now, and its state."""
        current = await self._raw(order.order_id)
        return current, str(current.get("order_state"))

    async def _raw(self, order_id: str) -> dict[str, Any]:
        raw = (await self.raw_orders([order_id])).get(order_id)
        if raw is None:
            raise OrderCallError(f"Mirakl has no order {order_id}", retryable=False)
        return raw

    # -- accepting -----------------------------------------------------------------------------

    async def accept(self, order: Order) -> Order | None:
        """Accept every line of an order waiting for acceptance (OR21); the order as Mirakl shows it
        afterwards, with the address it releases, for the engine to place. None once there is
        nothing left to learn (an address known, or the order shipped or ended)."""
        if order.shipping_address is not None or order.references.get("state") in SHIPPED | ENDED:
            return None
        read = read_order(await self._decide_lines(order, accepted=True), self.name)
        return read if isinstance(read, Order) else None

    async def _decide_lines(self, order: Order, *, accepted: bool) -> dict[str, Any]:
        """OR21 with every line accepted or refused, when the order waits for it; the order after.

        The order is read first: lines already decided are not sent again, and a refusal (400,
        e.g. ``ORDER_INVALID_STATE`` after a decision that was made but whose answer was lost) is
        answered by reading it once more. An order in ``STAGING`` is returned as it is.
        """
        current = await self._raw(order.order_id)
        if current.get("order_state") != "WAITING_ACCEPTANCE":
            return current
        lines = [{"id": str(line["order_line_id"]), "accepted": accepted} for line in _lines(current)]
        try:
            await self._call("PUT", f"{ORDERS}/{order.order_id}/accept", {"order_lines": lines})
        except OrderCallError as refused:
            if refused.retryable or refused.status != 400:
                raise
            after = await self._raw(order.order_id)
            if after.get("order_state") == "WAITING_ACCEPTANCE":
                raise
            return after
        return await self._raw(order.order_id)

    # -- shipping ------------------------------------------------------------------------------

    async def confirm_shipment(self, order: Order, fulfilment: Fulfilment) -> None:
        """NF-e fields (OR31), tracking (OR23), then the shipment (OR24), each only when missing."""
        current, state = await self._state(order)
        if state in SHIPPED:
            return
        if state in ENDED:
            raise OrderCallError(
                f"Mirakl order {order.order_id} is {state}; nothing to ship", retryable=False
            )
        if state != "SHIPPING":
            raise OrderCallError(
                f"Mirakl order {order.order_id} is {state}: it ships once the customer is debited (SHIPPING)",
                retryable=True,
            )
        fields = self.nfe_fields(order, fulfilment.invoice, _custom_fields(current))
        if fields:
            await self._set_fields(order, fields)
        tracking = fulfilment.tracking
        if tracking is not None and current.get("shipping_tracking") != tracking.number.strip():
            body = tracking_body(tracking, self.connector.options.get("carriers") or {})
            await self._call("PUT", f"{ORDERS}/{order.order_id}/tracking", body)
        try:
            await self._call("PUT", f"{ORDERS}/{order.order_id}/ship")
        except OrderCallError as refused:
            if refused.retryable or refused.status != 400:
                raise
            if (await self._state(order))[1] not in SHIPPED:
                raise

    def nfe_fields(self, order: Order, invoice: Invoice, current: Mapping[str, str]) -> list[dict[str, str]]:
        """The NF-e's custom fields Mirakl does not show yet (OR31 ``order_additional_fields``)."""
        if not invoice.key or not NFE_KEY.fullmatch(invoice.key):
            raise OrderCallError(
                f"invoice {invoice.number} of order {order.order_id} has no 44-digit NF-e access key "
                "(VTEX invoiceKey): Carrefour needs it to ship",
                retryable=False,
            )
        codes = {part: code for part, (code, _) in NFE_FIELDS.items()}
        codes.update({str(k): str(v) for k, v in (self.connector.options.get("nfe_fields") or {}).items()})
        values = {
            "key": (invoice.key, "STRING"),
            "number": (invoice.number, "STRING"),
            "issued_at": (mirakl_time(invoice.issued_at), "DATE"),
            "url": (invoice.url, "LINK"),
        }
        fields = []
        for part, (value, kind) in values.items():
            code = codes.get(part)
            if code and value and not _same(current.get(code), value, kind):
                fields.append({"code": code, "type": kind, "value": value})
        return fields

    async def _set_fields(self, order: Order, fields: list[dict[str, str]]) -> None:
        """OR31; Mirakl reports refused fields in a 200's ``order_update_errors``."""
        body = {"order_additional_fields": fields}
        answer = json_body(await self._call("PUT", f"{ORDERS}/{order.order_id}/additional_fields", body))
        errors = answer.get("order_update_errors") if isinstance(answer, dict) else None
        if errors:
            found = errors.get("errors") if isinstance(errors, Mapping) else None
            why = "; ".join(
                f"{e.get('field')}: {e.get('message')}" for e in found or [] if isinstance(e, Mapping)
            )
            raise OrderCallError(
                f"Mirakl refused the NF-e fields of order {order.order_id}: {why or 'no reason given'}",
                retryable=False,
            )

    # -- cancelling ----------------------------------------------------------------------------

    async def cancel(self, order: Order, reason: str) -> None:
        """Refuse (OR21) an order awaiting acceptance, else cancel it whole (OR29) or line by line (OR30)."""
        current, state = await self._state(order)
        if state in ENDED:
            return
        if state in SHIPPED:
            raise OrderCallError(
                f"Mirakl order {order.order_id} is already {state}: use the return path", retryable=False
            )
        if state in ("STAGING", "WAITING_ACCEPTANCE"):
            if (await self._decide_lines(order, accepted=False)).get("order_state") == "STAGING":
                raise OrderCallError(
                    f"Mirakl order {order.order_id} is in STAGING (the operator's checks): it is refused "
                    "once it waits for acceptance",
                    retryable=True,
                )
            return
        try:
            if current.get("can_cancel") is True:
                await self._call("PUT", f"{ORDERS}/{order.order_id}/cancel")
                return
            body = cancellations(current, self._reason_code())
            if body["cancelations"]:
                await self._call("PUT", f"{ORDERS}/cancel", body)
        except OrderCallError as refused:
            if refused.retryable or refused.status != 400:
                raise
            if (await self._state(order))[1] not in ENDED:
                raise

    def _reason_code(self) -> str:
        return str(self.connector.options.get("cancel_reason_code") or DEFAULT_CANCEL_REASON)

    # -- sending -------------------------------------------------------------------------------

    async def _call(
        self, method: str, path: str, body: Any = None, params: Mapping[str, Any] | None = None
    ) -> httpx.Response:
        """One request through :func:`send` (429, 5xx and lost connections retried), with ``shop_id``."""
        shop = self.connector.options.get("shop_id")
        query = shop_params(str(shop) if shop else None, **{k: str(v) for k, v in (params or {}).items()})
        content = dumps(body).encode() if body is not None else None
        headers = {"Accept": "application/json"}
        if body is not None:
            headers["Content-Type"] = "application/json"
        return await self.request(method, path, params=query, content=content, headers=headers)

    async def _json(self, method: str, path: str, params: Mapping[str, Any] | None = None) -> dict[str, Any]:
        answer = json_body(await self._call(method, path, params=params))
        if not isinstance(answer, dict):
            raise OrderCallError(f"Mirakl answered {method} {path} with no JSON object", retryable=True)
        return answer


class CarrefourOrders(MiraklOrders):
    """Carrefour Brasil's Mirakl shop: the same channel under the rule file's ``marketplace: carrefour``,
    so its orders are stored and pushed under that name."""

    name = "carrefour"
    title = "Carrefour"


# -- request bodies ------------------------------------------------------------------------------


def tracking_body(tracking: Tracking, carriers: Mapping[str, Any]) -> dict[str, str]:
    """OR23: a registered carrier by its code, else an unregistered one by name and tracking URL."""
    number = tracking.number.strip()
    wanted = tracking.carrier.strip().casefold()
    code = next((str(c) for name, c in carriers.items() if str(name).strip().casefold() == wanted), None)
    if code is not None:
        return {"carrier_code": code, "tracking_number": number}
    body = {"carrier_name": tracking.carrier.strip() or "Transportadora", "tracking_number": number}
    if tracking.url:
        body["carrier_url"] = tracking.url
    return body


def cancellations(raw: Mapping[str, Any], reason_code: str) -> dict[str, Any]:
    """OR30's body: what is left of each line (quantity, amount, shipping, taxes) after its
    earlier cancellations, so a repeat after a lost answer cancels nothing twice."""
    found = []
    for line in _lines(raw):
        done = [c for c in line.get("cancelations") or [] if isinstance(c, Mapping)]
        quantity = int(line.get("quantity") or 0) - sum(int(c.get("quantity") or 0) for c in done)
        if quantity <= 0 or line.get("order_line_state") in ENDED:
            continue
        entry: dict[str, Any] = {
            "order_line_id": str(line["order_line_id"]),
            "quantity": quantity,
            "amount": _left(line, done, "price", "amount"),
            "shipping_amount": _left(line, done, "shipping_price", "shipping_amount"),
            "reason_code": reason_code,
        }
        for key in ("taxes", "shipping_taxes"):
            left = _taxes_left(line.get(key), [c.get(key) for c in done])
            if left:
                entry[key] = left
        if raw.get("currency_iso_code"):
            entry["currency_iso_code"] = str(raw["currency_iso_code"])
        found.append(entry)
    return {"cancelations": found}


def _left(line: Mapping[str, Any], done: Sequence[Mapping[str, Any]], total: str, part: str) -> Decimal:
    return _decimal(line.get(total)) - sum((_decimal(c.get(part)) for c in done), Decimal(0))


def _taxes_left(taxes: Any, cancelled: Sequence[Any]) -> list[dict[str, Any]]:
    left: dict[str, Decimal] = {}
    for tax in taxes or []:
        if isinstance(tax, Mapping) and tax.get("code"):
            left[str(tax["code"])] = left.get(str(tax["code"]), Decimal(0)) + _decimal(tax.get("amount"))
    for group in cancelled:
        for tax in group or []:
            if isinstance(tax, Mapping) and str(tax.get("code")) in left:
                left[str(tax["code"])] -= _decimal(tax.get("amount"))
    return [{"code": code, "amount": amount} for code, amount in left.items() if amount > 0]


# -- reading an order ------------------------------------------------------------------------------


class _Unreadable(Exception):
    """A field that stops an order from being read; its message names the field, never a value."""


def read_order(raw: Any, marketplace: str = "mirakl") -> Order | BadOrder:
    """One OR11 order as a canonical Order, or why it cannot be (never raises).

    Lines refused or cancelled are left out while others remain (a partly accepted order ships
    the rest). The shop SKU of a line (``offer_sku``) is the VTEX SKU id.
    """
    order_id = str(raw.get("order_id") or "") if isinstance(raw, Mapping) else ""
    if not order_id:
        return BadOrder(marketplace, "<unknown>", "an order without an order_id")
    try:
        state = _text(raw, "order_state")
        if state not in STATES:
            raise _Unreadable(f"order_state {state} is not one Tradepost knows")
        status, payment = STATES[state]
        currency = _text(raw, "currency_iso_code")
        lines = _lines(raw)
        if not lines:
            raise _Unreadable("order_lines is missing or empty")
        live = [line for line in lines if line.get("order_line_state") not in ENDED] or lines
        shipping = _money(raw, "shipping_price")
        references = {
            "state": state,
            "commercial_id": raw.get("commercial_id"),
            "shipping_type": raw.get("shipping_type_code"),
        }
        return Order(
            marketplace=marketplace,
            order_id=order_id,
            created_at=_time(raw, "created_date"),
            updated_at=_time(raw, "last_updated_date"),
            currency=currency,
            items=tuple(_item(line, n, currency) for n, line in enumerate(live)),
            total=_money(raw, "total_price"),
            shipping_total=shipping,
            shipping_method=str(raw.get("shipping_type_label") or raw.get("shipping_type_code") or "")
            or None,
            payment_status=payment,
            status=status,
            references={k: str(v) for k, v in references.items() if v not in (None, "")},
            buyer=_buyer(raw.get("customer")),
            shipping_address=_address(raw.get("customer")),
        )
    except _Unreadable as problem:
        return BadOrder(marketplace, order_id, str(problem))
    except ValidationError as invalid:
        fields = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in invalid.errors())
        return BadOrder(marketplace, order_id, fields)


def _item(line: Mapping[str, Any], n: int, currency: str) -> OrderItem:
    where = f"order_lines[{n}]"
    sku = line.get("offer_sku")
    if not isinstance(sku, str) or not sku.strip():
        raise _Unreadable(f"{where}.offer_sku (the shop SKU, VTEX's SKU id) is missing")
    quantity = line.get("quantity")
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
        raise _Unreadable(f"{where}.quantity is not a whole number of at least 1")
    return OrderItem(
        sku_id=sku.strip(),
        quantity=quantity,
        unit_price=_money(line, "price_unit", where),
        currency=currency,
        marketplace_item_id=str(line.get("order_line_id") or "") or None,
    )


def _buyer(customer: Any) -> Buyer:
    if not isinstance(customer, Mapping):
        return Buyer()
    name = " ".join(str(customer[k]).strip() for k in ("firstname", "lastname") if customer.get(k)) or None
    return Buyer(id=str(customer["customer_id"]) if customer.get("customer_id") else None, name=name)


def _address(customer: Any) -> Address | None:
    """``customer.shipping_address``: null until the order is accepted (or shipped), by platform setting."""
    address = customer.get("shipping_address") if isinstance(customer, Mapping) else None
    if not isinstance(address, Mapping):
        return None
    street, city, postal_code = (_clean(address.get(k)) for k in ("street_1", "city", "zip_code"))
    country = _clean(address.get("country_iso_code")) or _clean(address.get("country"))
    for field, value in (
        ("street_1", street),
        ("city", city),
        ("zip_code", postal_code),
        ("country_iso_code", country),
    ):
        if value is None:
            raise _Unreadable(f"customer.shipping_address.{field} is missing")
    assert street is not None and city is not None and postal_code is not None and country is not None
    name = " ".join(str(address[k]).strip() for k in ("firstname", "lastname") if address.get(k)) or None
    return Address(
        name=name,
        street=street,
        complement=_clean(address.get("street_2")) or _clean(address.get("additional_info")),
        city=city,
        state=_clean(address.get("state")),
        postal_code=postal_code,
        country=country,
    )


def _lines(raw: Mapping[str, Any]) -> list[Mapping[str, Any]]:
    lines = raw.get("order_lines")
    return [line for line in lines if isinstance(line, Mapping)] if isinstance(lines, list) else []


def _custom_fields(raw: Mapping[str, Any]) -> dict[str, str]:
    """The order's custom fields as Mirakl shows them: code -> value."""
    return {
        str(field["code"]): str(field.get("value"))
        for field in raw.get("order_additional_fields") or []
        if isinstance(field, Mapping) and field.get("code") and field.get("value") is not None
    }


def _same(shown: str | None, value: str, kind: str) -> bool:
    """Whether Mirakl already shows ``value`` (a date compared as the moment it names)."""
    if shown is None:
        return False
    if kind == "DATE":
        try:
            return aware_time(shown.replace("Z", "+00:00")) == aware_time(value.replace("Z", "+00:00"))
        except ValueError:
            return False
    return shown == value


def _money(data: Mapping[str, Any], key: str, where: str = "") -> Decimal:
    value = data.get(key)
    if isinstance(value, Decimal) or (isinstance(value, int) and not isinstance(value, bool)):
        return Decimal(value)
    raise _Unreadable(f"{where + '.' if where else ''}{key} is not a number")


def _decimal(value: Any) -> Decimal:
    """An amount Mirakl sent (a number, or a numeric string in its tax examples); 0 when absent."""
    if isinstance(value, Decimal | int) and not isinstance(value, bool):
        return Decimal(value)
    try:
        return Decimal(str(value)) if isinstance(value, str) and value.strip() else Decimal(0)
    except ArithmeticError:
        return Decimal(0)


def _text(data: Mapping[str, Any], key: str) -> str:
    value = data.get(key)
    if not isinstance(value, str) or not value:
        raise _Unreadable(f"{key} is missing")
    return value


def _clean(value: Any) -> str | None:
    text = str(value).strip() if value is not None else ""
    return text or None


def _time(data: Mapping[str, Any], key: str) -> datetime:
    value = data.get(key)
    try:
        return aware_time(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise _Unreadable(f"{key} is not an ISO 8601 time with a time zone") from None


def mirakl_time(moment: datetime) -> str:
    """ISO 8601 in UTC with a Z, as Mirakl writes its dates (a naive time is taken as UTC)."""
    aware = moment if moment.tzinfo else moment.replace(tzinfo=UTC)
    return aware.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
