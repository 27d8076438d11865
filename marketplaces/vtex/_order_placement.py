"""VTEX's side of a marketplace order: place it as a fulfilment order, release it, read its invoices.

The store is the seller; a marketplace order reaches its VTEX the way the Marketplace
Protocol's external marketplaces send them (paths and fields from VTEX's OpenAPI specs):

- ``POST /api/checkout/pub/orderForms/simulation?sc=&affiliateId=`` (fulfillment simulation):
  VTEX's price, stock and delivery options (SLAs) for the order's items and postal code;
- ``POST /api/fulfillment/pvt/orders?sc=&affiliateId=`` (PlaceFulfillmentOrder): the order,
  its stock reserved, waiting for
- ``POST /api/fulfillment/pvt/orders/{orderId}/fulfill`` (AuthorizeDispatchForFulfillmentOrder):
  the marketplace confirms payment, the store may ship;
- ``GET /api/oms/pvt/orders/{orderId}`` (GetOrder): status, cancellation, and the invoices and
  tracking of ``packageAttachment.packages``; ``GET /api/oms/pvt/orders`` (ListOrders) to find
  an order by its marketplace id; ``POST /api/oms/pvt/orders/{orderId}/cancel`` (CancelOrder).

Exactly once. The affiliate id (one per marketplace, e.g. ``MLB``) scopes ``marketplaceOrderId``
in VTEX, and the spec composes the VTEX order id as ``{affiliateId}-{marketplaceOrderId}``, so
the marketplace's own order id is sent as is: two marketplaces' ids cannot collide, and the
store's staff see the id the marketplace shows. A repeated placement (a retry after a lost
answer, a run killed between placing and recording) is refused by VTEX; :meth:`VtexOrders.place`
then looks the order up with :meth:`VtexOrders.find` and answers it with ``created=False``.
It does so after any refusal, not after one status code or message, because the specs do not
document the duplicate answer: whatever VTEX says, an order that exists is the answer.

Buyer data VTEX requires and marketplaces withhold is filled with placeholders that say what
they are, as marketplace integrations do (Amazon and Mercado Libre disclose little):
an e-mail in the reserved ``.invalid`` domain naming the marketplace order, ``Unknown`` /
``(<marketplace> buyer)`` for missing names, document type ``other`` with ``not-disclosed``,
and phone :data:`PLACEHOLDER_PHONE`. No message, repr or log line carries the buyer's data or
the AppToken: errors are scrubbed of both before they leave this module.
"""

from __future__ import annotations

import json
import re
from collections.abc import Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import ROUND_HALF_UP, Decimal
from typing import Any
from urllib.parse import quote

import httpx

from engine.connectors import Fulfilment, Invoice, OrderCallError, RetryPolicy, Tracking, send
from engine.jsonio import loads
from engine.orders import Address, Order
from engine.secrets import redact
from marketplaces.vtex._mapping import unit_price, vtex_number

__all__ = ["PLACEHOLDER_PHONE", "Placed", "SimulatedItem", "VtexOrderState", "VtexOrders"]

SELLER_ID = "1"
"""VTEX's id for the store itself as the seller of its own SKUs."""
PLACEHOLDER_PHONE = "+0000000000"
PLACEHOLDER_DOCUMENT = "not-disclosed"

_SIMULATION = "/api/checkout/pub/orderForms/simulation"
_PLACE = "/api/fulfillment/pvt/orders"
_AUTHORIZE = "/api/fulfillment/pvt/orders/{order}/fulfill"
_ORDERS = "/api/oms/pvt/orders"
_ORDER = "/api/oms/pvt/orders/{order}"
_CANCEL = "/api/oms/pvt/orders/{order}/cancel"

CANCELLED = frozenset({"canceled", "cancelled"})
"""Final cancellation. ``canceling`` and ``cancellation-requested`` are not: the seller may decline."""
AUTHORIZED = frozenset(
    {
        "authorize-fulfillment",
        "window-to-cancel",
        "ready-for-handling",
        "start-handling",
        "handling",
        "waiting-seller-handling",
        "invoice",
        "invoiced",
    }
)
"""Statuses at or past AuthorizeDispatch: a repeated authorization that VTEX refuses is done."""
INVOICED = frozenset({"invoice", "invoiced"})
_CENT = Decimal("0.01")
_BACKOFF = RetryPolicy()
_MIN_SCRUB = 3
"""Personal values shorter than this are not scrubbed from messages: "12" would mangle "412"."""


@dataclass(frozen=True)
class SimulatedItem:
    """What VTEX would charge for one unit of a SKU now, and how many units it can sell."""

    sku_id: str
    price: Decimal
    """Per unit, after promotions: ``sellingPrice`` cents / 100 / ``unitMultiplier``, half-up to cents."""
    available: int


@dataclass(frozen=True)
class Placed:
    """The VTEX order a marketplace order became; ``created`` is false when it existed already.

    False also covers a placement whose answer was lost and whose retry VTEX refused as a
    duplicate: the order exists once either way, which is what the caller records.
    """

    vtex_order_id: str
    created: bool


@dataclass(frozen=True)
class VtexOrderState:
    """Where a VTEX order stands: what the order flow needs to confirm or cancel on the marketplace."""

    vtex_order_id: str
    status: str
    """VTEX's status string (``waiting-ffmt-authorization``, ``ready-for-handling``, ``invoiced``...)."""
    cancelled: bool
    cancel_reason: str | None
    fulfilments: tuple[Fulfilment, ...]
    """One per Output invoice (return invoices, type Input, are left out), in VTEX's order."""
    marketplace_order_id: str | None = None

    @property
    def invoiced(self) -> bool:
        """True once VTEX holds any sale invoice: the order can no longer be cancelled."""
        return self.status in INVOICED or bool(self.fulfilments)


class _Shape(Exception):
    """A VTEX answer Tradepost cannot read: which field, and why."""

    def __init__(self, field: str, why: str) -> None:
        super().__init__(f"{field}: {why}")


class VtexOrders:
    """The order calls of one VTEX account for one marketplace (its affiliate and trade policy).

    ``client`` has the account URL (``https://{account}.vtexcommercestable.com.br``) or a
    stand-in as base URL; the credentials go on each request, not on the client, so one client
    can serve several affiliates. ``services_endpoint`` is the marketplace's post-purchase URL
    that PlaceFulfillmentOrder requires; Tradepost reads invoices by polling GetOrder rather
    than receiving VTEX's calls, so by default it is a placeholder in the ``.invalid`` domain.
    """

    def __init__(
        self,
        client: httpx.AsyncClient,
        app_key: str,
        app_token: str,
        *,
        affiliate_id: str,
        sales_channel: str,
        services_endpoint: str | None = None,
        backoff: RetryPolicy = _BACKOFF,
    ) -> None:
        if not affiliate_id.strip():
            raise ValueError("affiliate_id is required: the VTEX affiliate that stands for the marketplace")
        self.client = client
        self.affiliate_id = affiliate_id
        self.sales_channel = str(sales_channel)
        self.services_endpoint = services_endpoint or f"https://{affiliate_id.lower()}.tradepost.invalid/"
        self.backoff = backoff
        self._app_token = app_token
        self._headers = {
            "X-VTEX-API-AppKey": app_key,
            "X-VTEX-API-AppToken": app_token,
            "Accept": "application/json",
            "Content-Type": "application/json",
        }

    def __repr__(self) -> str:
        return (
            f"VtexOrders({str(self.client.base_url)!r}, affiliate_id={self.affiliate_id!r}, "
            f"sales_channel={self.sales_channel!r})"
        )

    # -- the calls -----------------------------------------------------------------------------

    async def simulate(self, order: Order) -> dict[str, SimulatedItem]:
        """SKU id -> VTEX's unit price and available stock for the order's items, at its address.

        The price is what the divergence rules compare the marketplace's price with. A SKU
        VTEX cannot sell in the trade policy is absent from the answer.
        """
        offers = await self._offers(order, _personal(order), need_country=False)
        return {offer.item.sku_id: offer.item for offer in offers.values()}

    async def place(self, order: Order) -> Placed:
        """Place the order in VTEX once, whatever happened to earlier attempts.

        Simulates first, for the delivery option (SLA) VTEX requires per item and to refuse
        unsellable items with a clear message. After any refusal, the order is looked up by
        its marketplace id: if it exists, that is the answer (``created=False``). A retryable
        :class:`OrderCallError` means VTEX may or may not have it; calling again is safe.
        """
        personal = _personal(order)
        try:
            offers = await self._offers(order, personal, need_country=True)
            body = self._placement(order, offers)
            response = await self._call("POST", _PLACE, params=self._scope(), json=body, personal=personal)
        except OrderCallError as error:
            if error.retryable or error.status in (401, 403):
                raise
            try:
                existing = await self.find(order.order_id)
            except OrderCallError as lookup:
                if lookup.retryable:
                    raise  # VTEX may hold the order: only a later look can tell
                raise error from None
            if existing is None:
                raise
            return Placed(existing, created=False)
        vtex_order_id = _placed_id(_decoded(response))
        if vtex_order_id is None:
            vtex_order_id = await self.find(order.order_id)
            if vtex_order_id is None:
                raise OrderCallError(
                    f"VTEX accepted order {order.order_id} without answering its id, and it cannot be "
                    "found yet; placing it again will find it",
                    retryable=True,
                )
        return Placed(vtex_order_id, created=True)

    async def find(self, marketplace_order_id: str) -> str | None:
        """The VTEX order placed for a marketplace order id through this affiliate, or None.

        GetOrder by the id the spec composes (``{affiliateId}-{marketplaceOrderId}``) first: it
        is live, while ListOrders only shows orders once indexed (minutes later). ListOrders,
        filtered by affiliate and searched by the marketplace id, covers an id VTEX composed
        otherwise.
        """
        expected = f"{self.affiliate_id}-{marketplace_order_id}"
        response = await self._call("GET", _ORDER.format(order=quote(expected, safe="")), allow=(404,))
        if response.status_code != 404:
            data = _decoded(response)
            if isinstance(data, Mapping) and self._is_ours(data, "marketplaceOrderId", marketplace_order_id):
                return str(data.get("orderId") or expected)
        params = {"f_affiliateId": self.affiliate_id, "q": marketplace_order_id, "per_page": 100}
        listing = _decoded(await self._call("GET", _ORDERS, params=params))
        entries = listing.get("list") if isinstance(listing, Mapping) else None
        for entry in entries if isinstance(entries, list) else ():
            if isinstance(entry, Mapping) and entry.get("orderId"):
                key = "marketPlaceOrderId" if "marketPlaceOrderId" in entry else "marketplaceOrderId"
                if self._is_ours(entry, key, marketplace_order_id):
                    return str(entry["orderId"])
        return None

    async def authorize_dispatch(self, vtex_order_id: str, marketplace_order_id: str) -> None:
        """Tell VTEX the marketplace approved the order (it is paid): the store may ship it.

        Repeatable: when VTEX refuses a repeat, an order already at or past ready-for-handling
        counts as done. A cancelled order raises a non-retryable error saying so.
        """
        path = _AUTHORIZE.format(order=quote(vtex_order_id, safe=""))
        body = {"marketplaceOrderId": marketplace_order_id}
        try:
            await self._call("POST", path, params=self._scope(), json=body)
        except OrderCallError as error:
            if error.retryable or error.status in (401, 403):
                raise
            state = await self.get(vtex_order_id)
            if state.status in AUTHORIZED:
                return
            if state.cancelled:
                raise OrderCallError(
                    f"VTEX order {vtex_order_id} is canceled: its dispatch cannot be authorized",
                    retryable=False,
                    status=error.status,
                ) from None
            raise

    async def get(self, vtex_order_id: str) -> VtexOrderState:
        """The order's status, cancellation and shipped packages (Output invoices with tracking)."""
        response = await self._call("GET", _ORDER.format(order=quote(vtex_order_id, safe="")))
        try:
            return _order_state(vtex_order_id, _decoded(response))
        except _Shape as problem:
            raise OrderCallError(
                f"VTEX answered order {vtex_order_id} in a shape Tradepost cannot read ({problem})",
                retryable=False,
                status=response.status_code,
            ) from None

    async def cancel(self, vtex_order_id: str, reason: str) -> None:
        """Cancel the order in VTEX with the reason. Repeatable: an order already cancelled is done.

        VTEX refuses to cancel an invoiced (even partly invoiced) order; that raises a
        non-retryable :class:`OrderCallError` saying so, since only a person (or a return
        invoice) can undo a shipment.
        """
        path = _CANCEL.format(order=quote(vtex_order_id, safe=""))
        try:
            await self._call("POST", path, json={"reason": reason})
        except OrderCallError as error:
            if error.retryable or error.status in (401, 403):
                raise
            state = await self.get(vtex_order_id)
            if state.cancelled:
                return
            if state.invoiced:
                raise OrderCallError(
                    f"VTEX order {vtex_order_id} is {state.status} and cannot be cancelled: VTEX refuses "
                    "to cancel invoiced orders (a return invoice, type Input, undoes a sale)",
                    retryable=False,
                    status=error.status,
                ) from None
            raise

    # -- bodies --------------------------------------------------------------------------------

    async def _offers(
        self, order: Order, personal: Sequence[str], *, need_country: bool
    ) -> dict[int, _Offer]:
        """The simulation of the order's items, by the item's position in the order."""
        body: dict[str, Any] = {
            "items": [
                {"id": item.sku_id, "quantity": item.quantity, "seller": SELLER_ID} for item in order.items
            ]
        }
        address = order.shipping_address
        if address is not None:
            country = _alpha3(address.country)
            if country is None and need_country:
                raise OrderCallError(
                    f"order {order.order_id} ships to country {address.country!r}, which Tradepost cannot "
                    "turn into the three-letter ISO code VTEX needs",
                    retryable=False,
                )
            if country is not None:
                body |= {"postalCode": address.postal_code, "country": country}
        response = await self._call("POST", _SIMULATION, params=self._scope(), json=body, personal=personal)
        try:
            return _read_simulation(_decoded(response))
        except _Shape as problem:
            raise OrderCallError(
                f"VTEX answered the simulation of order {order.order_id} in a shape Tradepost cannot "
                f"read ({problem})",
                retryable=False,
            ) from None

    def _placement(self, order: Order, offers: Mapping[int, _Offer]) -> dict[str, Any]:
        """PlaceFulfillmentOrder's body; raises OrderCallError (not retryable) for what VTEX would refuse."""
        address = order.shipping_address
        if address is None:
            raise OrderCallError(
                f"order {order.order_id} has no shipping address (the marketplace ships it, or hides it); "
                "VTEX needs one to place a fulfilment order",
                retryable=False,
            )
        unsellable = [item.sku_id for index, item in enumerate(order.items) if index not in offers]
        if unsellable:
            raise OrderCallError(
                f"VTEX does not sell SKU {', '.join(unsellable)} in trade policy {self.sales_channel} "
                f"(order {order.order_id}): unknown, inactive or outside the trade policy",
                retryable=False,
            )
        logistics = []
        shipping = _shares(_cents(order.shipping_total), len(order.items))
        for index, item in enumerate(order.items):
            offer = offers[index]
            if offer.item.available < item.quantity:
                raise OrderCallError(
                    f"VTEX has {offer.item.available} of SKU {item.sku_id} in stock; order {order.order_id} "
                    f"needs {item.quantity}",
                    retryable=False,
                )
            sla = _chosen_sla(offer.slas, order.shipping_method)
            if sla is None:
                raise OrderCallError(
                    f"VTEX offers no delivery of SKU {item.sku_id} to the address of order {order.order_id} "
                    f"(country {address.country}): check the store's shipping policies",
                    retryable=False,
                )
            entry = {"itemIndex": index, "selectedSla": str(sla["id"]), "price": shipping[index]}
            for name in ("lockTTL", "shippingEstimate"):
                if isinstance(sla.get(name), str):
                    entry[name] = sla[name]
            logistics.append(entry)
        return {
            "marketplaceOrderId": order.order_id,
            "marketplaceServicesEndpoint": self.services_endpoint,
            "marketplacePaymentValue": _cents(order.total),
            "isCreatedAsync": False,
            "items": [
                {
                    "id": item.sku_id,
                    "quantity": item.quantity,
                    "seller": SELLER_ID,
                    "price": _cents(item.unit_price),
                }
                for item in order.items
            ],
            "clientProfileData": _client_profile(order),
            "shippingData": {"address": _address(order, address), "logisticsInfo": logistics},
            "paymentData": None,
            "openTextField": f"{order.marketplace} order {order.order_id}",
        }

    # -- HTTP ----------------------------------------------------------------------------------

    async def _call(
        self,
        method: str,
        path: str,
        *,
        params: Mapping[str, Any] | None = None,
        json: Any = None,
        allow: Collection[int] = (),
        personal: Iterable[str] = (),
    ) -> httpx.Response:
        """One call through :func:`send` (retrying 429, 5xx and lost connections), refusals as errors.

        4xx answers come back here rather than as ``send``'s error, so the message carries VTEX's
        own text instead of its JSON; statuses in ``allow`` are returned to the caller.
        """
        try:
            response = await send(
                self.client,
                method,
                path,
                who="VTEX",
                headers=self._headers,
                params=params,
                json=json,
                backoff=self.backoff,
                ok=lambda answer: answer.status_code < 500 and answer.status_code != 429,
            )
        except OrderCallError as error:
            raise OrderCallError(
                self._scrub(str(error), personal), retryable=error.retryable, status=error.status
            ) from None
        status = response.status_code
        if status < 400 or status in allow:
            return response
        detail = self._scrub(_vtex_message(response), personal)[:300]
        message = f"VTEX refused {method} {path} ({status}): {detail or response.reason_phrase}"
        if status == 401:
            message += "; check the AppKey and AppToken"
        elif status == 403:
            message += (
                "; the AppKey's role must grant the OMS and fulfilment resources "
                "(e.g. the predefined role 'IntegrationProfile - Fulfillment Oms')"
            )
        raise OrderCallError(self._scrub(message, personal), retryable=False, status=status)

    def _scope(self) -> dict[str, str]:
        return {"sc": self.sales_channel, "affiliateId": self.affiliate_id}

    def _is_ours(self, data: Mapping[str, Any], key: str, marketplace_order_id: str) -> bool:
        affiliate = data.get("affiliateId")
        return str(data.get(key)) == marketplace_order_id and affiliate in (None, "", self.affiliate_id)

    def _scrub(self, text: str, personal: Iterable[str]) -> str:
        """The text without the AppToken, any registered secret, or the order's personal values.

        A value cut short at the end of the text (``send`` and VTEX shorten long error texts)
        is scrubbed too: half a street name still locates someone.
        """
        hidden = [(value, "<personal data>") for value in set(personal) if len(value) >= _MIN_SCRUB]
        if len(self._app_token) >= 4:
            hidden.append((self._app_token, "***"))
        hidden.sort(key=lambda pair: len(pair[0]), reverse=True)
        text = redact(text)
        for value, mark in hidden:
            text = text.replace(value, mark)
        for value, mark in hidden:
            for size in range(len(value) - 1, _MIN_SCRUB - 1, -1):
                if text.endswith(value[:size]):
                    text = text[:-size] + mark
                    break
        return text


# -- simulation ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class _Offer:
    item: SimulatedItem
    slas: tuple[Mapping[str, Any], ...]


def _read_simulation(answer: object) -> dict[int, _Offer]:
    """Order item position -> VTEX's price, stock and SLAs, from a simulation answer.

    ``items[].requestIndex`` ties an answered item to the request (VTEX leaves unsellable items
    out, so positions shift); ``logisticsInfo[].itemIndex`` points into the answered items.
    Stock is ``logisticsInfo[].stockBalance`` where VTEX gives it, else the quantity answered
    when the item is available.
    """
    if not isinstance(answer, Mapping) or not isinstance(answer.get("items"), list):
        raise _Shape("items", "the simulation has no items list")
    logistics: dict[int, Mapping[str, Any]] = {}
    for entry in answer.get("logisticsInfo") or ():
        if isinstance(entry, Mapping) and isinstance(entry.get("itemIndex"), int):
            logistics[entry["itemIndex"]] = entry
    offers: dict[int, _Offer] = {}
    for position, item in enumerate(answer["items"]):
        if not isinstance(item, Mapping):
            raise _Shape(f"items[{position}]", "is not an object")
        request_index = item.get("requestIndex", position)
        unit = unit_price(item)
        if not isinstance(request_index, int) or unit is None:
            continue  # not sellable as asked: no price VTEX would charge
        price = unit.quantize(_CENT, rounding=ROUND_HALF_UP)
        info = logistics.get(position, {})
        stock = info.get("stockBalance")
        if isinstance(stock, int) and not isinstance(stock, bool):
            available = max(0, stock)
        else:
            quantity = item.get("quantity")
            sellable = item.get("availability", "available") == "available" and isinstance(quantity, int)
            available = quantity if sellable and isinstance(quantity, int) else 0
        slas = tuple(sla for sla in info.get("slas") or () if isinstance(sla, Mapping) and sla.get("id"))
        offers[request_index] = _Offer(SimulatedItem(str(item.get("id")), price, available), slas)
    return offers


def _chosen_sla(slas: Sequence[Mapping[str, Any]], wanted: str | None) -> Mapping[str, Any] | None:
    """The SLA named like the marketplace's shipping method, else the cheapest (the first of equals)."""
    if not slas:
        return None
    if wanted:
        for sla in slas:
            if wanted.casefold() in (str(sla.get("id")).casefold(), str(sla.get("name")).casefold()):
                return sla
    return min(slas, key=lambda sla: vtex_number(sla.get("price")) or Decimal(0))


# -- placement body -----------------------------------------------------------------------------


def _client_profile(order: Order) -> dict[str, Any]:
    """``clientProfileData`` from the buyer, placeholders (see the module docstring) where missing."""
    buyer = order.buyer
    address = order.shipping_address
    first, last = _split_name(buyer.name or (address.name if address else None), order.marketplace)
    email = buyer.email.strip() if buyer.email and "@" in buyer.email else _placeholder_email(order)
    profile: dict[str, Any] = {
        "email": email,
        "firstName": first,
        "lastName": last,
        "phone": PLACEHOLDER_PHONE,
        "isCorporate": False,
    }
    given = (buyer.document or "").strip()
    digits = re.sub(r"\D", "", given)
    if len(digits) == 11:
        profile |= {"documentType": "cpf", "document": digits}
    elif len(digits) == 14:
        profile |= {
            "documentType": "cnpj",
            "document": digits,
            "isCorporate": True,
            "corporateDocument": digits,
            "corporateName": f"{first} {last}",
        }
    else:
        profile |= {"documentType": "other", "document": given or PLACEHOLDER_DOCUMENT}
    return profile


def _address(order: Order, address: Address) -> dict[str, Any]:
    """``shippingData.address``; the receiver falls back to the buyer, "S/N" stands for no number."""
    receiver = (address.name or order.buyer.name or "").strip()
    if not receiver:
        raise OrderCallError(
            f"order {order.order_id} names no receiver (shipping_address.name) nor buyer; "
            "VTEX needs a receiverName to place it",
            retryable=False,
        )
    country = _alpha3(address.country)
    return {
        "addressType": "residential",
        "receiverName": receiver,
        "postalCode": address.postal_code,
        "city": address.city,
        "state": address.state or "",
        "country": country,
        "street": address.street,
        "number": address.number or "S/N",
        "neighborhood": address.neighborhood or "",
        "complement": address.complement or "",
    }


def _split_name(name: str | None, marketplace: str) -> tuple[str, str]:
    words = (name or "").split()
    if not words:
        return "Unknown", f"({marketplace} buyer)"
    if len(words) == 1:
        return words[0], f"({marketplace} buyer)"
    return " ".join(words[:-1]), words[-1]


def _placeholder_email(order: Order) -> str:
    """An address no mail reaches (RFC 2606's ``.invalid``) naming the order, never the buyer."""
    local = re.sub(r"[^a-z0-9.-]+", "-", f"{order.marketplace}.{order.order_id}".lower()).strip(".-")
    return f"{local or 'buyer'}@marketplace-buyer.invalid"


def _personal(order: Order) -> list[str]:
    """Every personal text of the order as it may appear in a body VTEX echoes, to scrub from messages.

    The values as given, the name's words (sent as first and last name), the document's digits,
    and each as JSON escapes it once and twice (``Conceição`` is ``Concei\\u00e7\\u00e3o`` in an
    ASCII echo, with one more backslash when that echo is itself quoted as a JSON string).
    """
    values = order.personal_values()
    for name in (order.buyer.name, order.shipping_address.name if order.shipping_address else None):
        values += (name or "").split()
    if order.buyer.document:
        values.append(re.sub(r"\D", "", order.buyer.document))
    escaped = [json.dumps(value)[1:-1] for value in values]
    values += escaped + [json.dumps(value)[1:-1] for value in escaped]  # a JSON error text quoted in JSON
    return [value for value in values if value]


_ALPHA3 = {
    "AR": "ARG", "AT": "AUT", "AU": "AUS", "BE": "BEL", "BO": "BOL", "BR": "BRA", "CA": "CAN",
    "CH": "CHE", "CL": "CHL", "CN": "CHN", "CO": "COL", "CR": "CRI", "DE": "DEU", "DK": "DNK",
    "DO": "DOM", "EC": "ECU", "ES": "ESP", "FI": "FIN", "FR": "FRA", "GB": "GBR", "GT": "GTM",
    "IE": "IRL", "IN": "IND", "IT": "ITA", "JP": "JPN", "MX": "MEX", "NL": "NLD", "NO": "NOR",
    "PA": "PAN", "PE": "PER", "PL": "POL", "PR": "PRI", "PT": "PRT", "PY": "PRY", "SE": "SWE",
    "SV": "SLV", "US": "USA", "UY": "URY", "VE": "VEN",
}  # fmt: skip
"""ISO 3166 alpha-2 -> alpha-3 for the countries VTEX stores and these marketplaces sell in."""


def _alpha3(country: str) -> str | None:
    code = country.strip().upper()
    if len(code) == 3 and code.isalpha():
        return code
    return _ALPHA3.get(code)


# -- GetOrder -----------------------------------------------------------------------------------


def _order_state(vtex_order_id: str, data: object) -> VtexOrderState:
    if not isinstance(data, Mapping):
        raise _Shape("", "the answer is not a JSON object")
    status = data.get("status")
    if not isinstance(status, str) or not status:
        raise _Shape("status", "missing")
    cancellation = data.get("cancellationData")
    reason = data.get("cancelReason") or (
        cancellation.get("Reason") if isinstance(cancellation, Mapping) else None
    )
    items = data.get("items") or []
    if not isinstance(items, list):
        raise _Shape("items", "is not a list")
    skus = [str(item.get("id")) if isinstance(item, Mapping) else "" for item in items]
    attachment = data.get("packageAttachment") or {}
    packages = attachment.get("packages") if isinstance(attachment, Mapping) else None
    if packages is not None and not isinstance(packages, list):
        raise _Shape("packageAttachment.packages", "is not a list")
    fulfilments = tuple(
        _fulfilment(package, skus, index)
        for index, package in enumerate(packages or ())
        if isinstance(package, Mapping) and package.get("type", "Output") in ("Output", None)
    )
    marketplace_id = data.get("marketplaceOrderId")
    return VtexOrderState(
        vtex_order_id=str(data.get("orderId") or vtex_order_id),
        status=status,
        cancelled=status in CANCELLED,
        cancel_reason=str(reason) if reason else None,
        fulfilments=fulfilments,
        marketplace_order_id=str(marketplace_id) if marketplace_id else None,
    )


def _fulfilment(package: Mapping[str, Any], skus: Sequence[str], index: int) -> Fulfilment:
    where = f"packageAttachment.packages[{index}]"
    number = package.get("invoiceNumber")
    if number in (None, ""):
        raise _Shape(f"{where}.invoiceNumber", "missing")
    cents = vtex_number(package.get("invoiceValue"))
    if cents is None:
        raise _Shape(f"{where}.invoiceValue", "is not an amount in cents")
    invoice = Invoice(
        number=str(number),
        value=(cents / 100).quantize(_CENT, rounding=ROUND_HALF_UP),
        issued_at=_moment(package.get("issuanceDate"), f"{where}.issuanceDate"),
        key=_optional_text(package.get("invoiceKey")),
        url=_optional_text(package.get("invoiceUrl")),
        xml=_optional_text(package.get("embeddedInvoice")),
    )
    tracking_number = _optional_text(package.get("trackingNumber"))
    tracking = (
        Tracking(
            carrier=_optional_text(package.get("courier")) or "",
            number=tracking_number,
            url=_optional_text(package.get("trackingUrl")),
        )
        if tracking_number
        else None
    )
    lines: list[tuple[str, int]] = []
    for entry in package.get("items") or ():
        position = entry.get("itemIndex") if isinstance(entry, Mapping) else None
        quantity = entry.get("quantity") if isinstance(entry, Mapping) else None
        if not isinstance(position, int) or not 0 <= position < len(skus) or not isinstance(quantity, int):
            raise _Shape(f"{where}.items", "an item's itemIndex or quantity does not match the order's items")
        lines.append((skus[position], quantity))
    dispatched = package.get("dispatchedDate")
    return Fulfilment(
        invoice=invoice,
        tracking=tracking,
        items=tuple(lines),
        shipped_at=_moment(dispatched, f"{where}.dispatchedDate") if dispatched else None,
    )


# -- small readers ------------------------------------------------------------------------------


def _decoded(response: httpx.Response) -> Any:
    try:
        return loads(response.content) if response.content.strip() else None
    except ValueError:
        raise OrderCallError(
            f"VTEX answered {response.request.method} {response.request.url.path} "
            f"({response.status_code}) with a body that is not JSON",
            retryable=False,
            status=response.status_code,
        ) from None


def _placed_id(answer: object) -> str | None:
    """The new order's id: the spec answers an object with ``orderId``, VTEX also a list of them."""
    if isinstance(answer, list) and answer:
        answer = answer[0]
    if isinstance(answer, Mapping) and answer.get("orderId"):
        return str(answer["orderId"])
    return None


def _vtex_message(response: httpx.Response) -> str:
    """VTEX's own error text (``{"error": {"message"}}`` or ``{"Message"}``), whole.

    Shortened by the caller only once scrubbed, so no personal value is cut in half first.
    """
    try:
        body = loads(response.content)
    except ValueError:
        text = response.text
    else:
        error = body.get("error") if isinstance(body, Mapping) else None
        if isinstance(error, Mapping):
            text = str(error.get("message") or error.get("code") or "")
        elif isinstance(body, Mapping):
            text = str(body.get("Message") or body.get("message") or error or "")
        else:
            text = str(body)
    return " ".join(text.split())


def _cents(amount: Decimal) -> int:
    """Decimal money -> VTEX's integer cents, half-up (134.90 -> 13490)."""
    return int((amount * 100).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _shares(total: int, count: int) -> list[int]:
    """``total`` cents split over ``count`` items, the odd cents on the first ones: sums exactly."""
    base, extra = divmod(total, count)
    return [base + (1 if index < extra else 0) for index in range(count)]


def _moment(value: object, field: str) -> datetime:
    """An aware datetime from VTEX's ISO text; without an offset it is taken as UTC (VTEX stores UTC)."""
    if not isinstance(value, str) or not value.strip():
        raise _Shape(field, "missing")
    try:
        moment = datetime.fromisoformat(value.strip())
    except ValueError:
        raise _Shape(field, "is not an ISO 8601 date and time") from None
    return moment if moment.tzinfo is not None else moment.replace(tzinfo=UTC)


def _optional_text(value: object) -> str | None:
    if value is None or isinstance(value, bool):
        return None
    text = str(value).strip()
    return text or None
