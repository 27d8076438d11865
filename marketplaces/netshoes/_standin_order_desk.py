"""The Netshoes stand-in's order desk: orders with shippings, read and moved by their status routes.

A component of :class:`~marketplaces.netshoes.standin.NetshoesStandin` (which checks the headers
and the call plan before any route here), given only the seller's SKUs, which orders are priced
from. It follows API.md §6 and §8.3 in the later English shape the notes advise:

- ``GET /orders`` pages by ``page`` (from 0) and ``size`` (1..100), filters by ``orderStartDate``
  and ``orderEndDate`` (the order date), ``orderStatus`` and ``orderType``, oldest first, and
  answers ``items`` and ``_links`` (``next`` while a page follows); ``GET /orders/{orderNumber}``
  and ``GET /orders/{orderNumber}/shippings[/{shippingCode}]`` read one;
- ``PUT /orders/{orderNumber}/shippings/{shippingCode}/status/{approved|invoiced|shipped|delivered|canceled}``
  with its body (invoiced: a 44-digit ``key``, ``number``, ``line``, ``issueDate``, or the
  alternative ``{"shippings": [{"shippingCode", "invoice": {...}}]}`` envelope; shipped: a
  non-empty ``carrier`` and ``trackingNumber``; canceled: a ``cancellationReason``), and the 2016
  ``PUT .../status`` ``{"status"}``; legal transitions only (Created -> Approved -> Invoiced ->
  Shipped -> Delivered; Canceled from Created or Approved), anything else a
  ``Business_Logic_Error`` (409);
- the sandbox's controls play the buyer and Netshoes: ``POST /_sandbox/orders`` ``{sku_id,
  quantity?, unit_price?, status?, order_id?}`` and ``POST /_sandbox/orders/{id}/status``.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Protocol

from starlette.requests import Request
from starlette.responses import Response

from engine.model import aware_time
from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import exact_json, int_param, json_object, look_up, sandbox_route

__all__ = ["STATUSES", "NetshoesOrderDesk", "Refusal"]

STATUSES = ("Created", "Approved", "Invoiced", "Shipped", "Delivered", "Canceled")
NEXT = {"Created": {"Approved", "Canceled"}, "Approved": {"Invoiced", "Canceled"}, "Invoiced": {"Shipped"},
        "Shipped": {"Delivered"}}  # fmt: skip
"""Legal transitions (API.md §8.3)."""
ALIASES = {"pending": "Created", "paid": "Approved", "cancelled": "Canceled", "canceled": "Canceled"}
"""What ``tradepost sandbox order-status`` may say for a status, besides its Netshoes name."""
NFE_KEY = re.compile(r"\d{44}")
SIZE_MAX = 100
ERROR_TYPES = {
    400: "Parameter_Error",
    404: "Resource_Not_Found",
    405: "Method_Not_Allowed",
    409: "Business_Logic_Error",
}
CUSTOMER = {
    "document": "12345678909", "stateInscription": None, "customerName": "Ana Souza",
    "recipientName": "Ana Souza", "cellPhone": "11999990000", "landline": None,
    "address": {"street": "Rua Augusta", "number": "1508", "complement": "Apto 42",
                "neighborhood": "Consolação", "city": "São Paulo", "state": "SP", "postalCode": "01304001",
                "reference": None},
}  # fmt: skip
"""A made-up buyer for sandbox orders (the street exists; the person does not)."""


class HeldSku(Protocol):
    """What the desk reads of a SKU the seller lists."""

    body: dict[str, Any]
    price: Decimal | None
    stock: int | None


class Refusal(_Refusal):
    """The API's error body (API.md §2), raised from any route of the stand-in; the ``type`` follows
    from the status unless given."""

    def __init__(self, status: int, description: str, kind: str = "") -> None:
        self.status, self.description = status, description
        self.kind = (
            kind
            or ERROR_TYPES.get(status)
            or ("Internal_Architecture_Error" if status >= 500 else "Bad_Request_Error")
        )

    def body(self) -> dict[str, Any]:
        return {"type": self.kind, "description": self.description, "notifications": [], "links": []}


class NetshoesOrderDesk:
    """The orders of one Netshoes seller; ``skus`` are the seller's SKUs (sku -> what it holds)."""

    def __init__(self, skus: Mapping[str, HeldSku], now: Callable[[], datetime] | None = None) -> None:
        self.skus = skus
        self.now = now or (lambda: datetime.now(UTC))
        self.orders: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(6704259)
        self._shippings = itertools.count(860858200)

    def routes(self) -> list[tuple[str, str, Callable[[Request], Any]]]:
        """(path under ``/api/v1``, method, handler) of the order API."""
        shipping = "/orders/{number}/shippings/{code}"
        return [
            ("/orders", "GET", self.list_orders),
            ("/orders/{number}", "GET", self.get_order),
            ("/orders/{number}/shippings", "GET", self.get_shippings),
            (shipping, "GET", self.get_shipping),
            (shipping + "/status", "PUT", self.set_status_2016),
            (shipping + "/status/{target}", "PUT", self.set_status),
        ]

    def sandbox_routes(self) -> list[Any]:
        return [
            sandbox_route("orders", self.sandbox_order),
            sandbox_route("orders/{number}/status", self.sandbox_status),
        ]

    # -- orders: made by tests and the sandbox -------------------------------------------------

    def create_order(
        self,
        sku: str,
        quantity: int = 1,
        unit_price: Decimal | int | str | None = None,
        *,
        status: str = "Approved",
        order_number: str | None = None,
        freight: Decimal | int | str = "12.90",
        order_type: str = "Normal",
    ) -> str:
        """A buyer's order of one SKU in one shipping; its number. The price defaults to the SKU's."""
        status = self._status_name(status)
        held = self.skus.get(sku)
        if held is None or held.price is None:
            raise ValueError(f"the seller has no priced SKU {sku}")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError("quantity must be a whole number of at least 1")
        price = Decimal(str(unit_price if unit_price is not None else held.price))
        if not price.is_finite() or price <= 0:
            raise ValueError("unit_price must be greater than 0")
        number = order_number or str(next(self._numbers))
        if number in self.orders:
            raise ValueError(f"order {number} exists already")
        if held.stock is not None:
            held.stock = max(0, held.stock - quantity)
        freight_amount, gross = Decimal(str(freight)), price * quantity
        item = {
            "itemId": 1, "sku": sku, "ean": held.body.get("eanIsbn"), "name": held.body.get("name"),
            "brand": None, "quantity": quantity, "grossUnitValue": price, "discountUnitValue": Decimal(0),
            "netUnitValue": price, "totalGross": gross, "totalNet": gross, "totalFreight": freight_amount,
            "totalCommission": (gross * Decimal("0.16")).quantize(Decimal("0.01")),
            "color": held.body.get("color"), "size": held.body.get("size"), "flavor": None,
        }  # fmt: skip
        shipping = {
            "shippingCode": next(self._shippings), "status": status, "items": [item], "invoice": None,
            "transport": None, "customer": CUSTOMER, "cancellationReason": None,
            "freightAmount": freight_amount, "devolutionItems": [], "exchangeOrders": [],
        }  # fmt: skip
        self.orders[number] = {
            "orderNumber": number, "originNumber": f"NS-{number}", "orderDate": self._stamp(),
            "orderStatus": status, "orderType": order_type, "businessUnit": "NS", "originSite": "NETSHOES",
            "totalGross": gross, "totalDiscount": Decimal(0), "totalFreight": freight_amount,
            "totalNet": gross + freight_amount, "totalCommission": item["totalCommission"],
            "totalQuantity": quantity, "shippings": [shipping],
        }  # fmt: skip
        return number

    def set_order_status(self, number: str, status: str) -> None:
        """Move every shipping of an order as Netshoes or the buyer would (Canceled, Delivered, …)."""
        order = self.order_record(number)
        for shipping in order["shippings"]:
            shipping["status"] = self._status_name(status)
        self._refresh(order)

    def order_record(self, number: str) -> dict[str, Any]:
        return look_up(self.orders, number, lambda _: Refusal(404, "Resource not found."))

    # -- the API -------------------------------------------------------------------------------

    async def list_orders(self, request: Request) -> Response:
        page, size = int_param(request, "page", 0), int_param(request, "size", 20)
        if page is None or size is None or page < 0 or not 1 <= size <= SIZE_MAX:
            raise Refusal(400, f"page must be 0 or more and size from 1 to {SIZE_MAX}", "Parameter_Error")
        query = request.query_params
        start, end = _moment(query.get("orderStartDate")), _moment(query.get("orderEndDate"))
        found = [
            order
            for order in sorted(self.orders.values(), key=lambda o: (o["orderDate"], o["orderNumber"]))
            if (start is None or aware_time(order["orderDate"]) >= start)
            and (end is None or aware_time(order["orderDate"]) <= end)
            and query.get("orderStatus") in (None, order["orderStatus"])
            and query.get("orderType") in (None, order["orderType"])
        ]
        last = max(0, (len(found) - 1) // size)
        links = {name: {"href": f"/api/v1/orders?page={at}&size={size}"} for name, at in
                 (("self", page), ("first", 0), ("last", last))}  # fmt: skip
        if page < last:
            links["next"] = {"href": f"/api/v1/orders?page={page + 1}&size={size}"}
        return exact_json({"items": found[page * size : (page + 1) * size], "_links": links})

    async def get_order(self, request: Request) -> Response:
        return exact_json(self.order_record(request.path_params["number"]))

    async def get_shippings(self, request: Request) -> Response:
        return exact_json({"items": self.order_record(request.path_params["number"])["shippings"]})

    async def get_shipping(self, request: Request) -> Response:
        return exact_json(self._shipping(request)[1])

    async def set_status(self, request: Request) -> Response:
        """One route per target status, each with its body (API.md §6, 2017)."""
        order, shipping = self._shipping(request)
        target = str(request.path_params["target"]).capitalize()
        body = await _body(request)
        if target not in STATUSES or target == "Created":
            raise Refusal(404, "Resource not found.")
        invoice = _enveloped_invoice(body, shipping["shippingCode"])
        if invoice is None and body.get("status") != target:
            raise Refusal(400, f'status: "{target}" expected')
        self._move(shipping, target)
        if target == "Invoiced":
            shipping["invoice"] = invoice or _invoice(body)
        elif target == "Shipped":
            shipping["transport"] = _transport(body)
        elif target == "Delivered":
            shipping["transport"] = {
                **(shipping["transport"] or {}),
                "deliveryDate": body.get("deliveryDate"),
            }
        elif target == "Canceled":
            reason = body.get("cancellationReason")
            if not isinstance(reason, str) or not reason.strip():
                raise Refusal(400, "cancellationReason: required")
            shipping["cancellationReason"] = reason
        shipping["status"] = target
        self._refresh(order)
        return exact_json(shipping)

    async def set_status_2016(self, request: Request) -> Response:
        """The 2016 SDK's ``{"status"}`` alone: only moves that carry no data (Approved, Delivered)."""
        order, shipping = self._shipping(request)
        target = str((await _body(request)).get("status") or "")
        if target not in ("Approved", "Delivered"):
            raise Refusal(
                400, "status: Approved or Delivered (the others have their own route)", "Parameter_Error"
            )
        self._move(shipping, target)
        shipping["status"] = target
        self._refresh(order)
        return exact_json(shipping)

    async def sandbox_order(self, request: Request) -> Response:
        body = await _body(request)
        known = {"sku_id", "quantity", "unit_price", "status", "order_id"}
        if set(body) - known or not isinstance(body.get("sku_id"), str | int):
            raise Refusal(400, f"give sku_id and only {', '.join(sorted(known))}", "Parameter_Error")
        try:
            number = self.create_order(
                str(body["sku_id"]),
                body.get("quantity", 1),
                body.get("unit_price"),
                status=str(body.get("status", "Approved")),
                order_number=body.get("order_id"),
            )
        except (ValueError, ArithmeticError) as refused:
            raise Refusal(400, str(refused)) from None
        return exact_json({"order_id": number}, 201)

    async def sandbox_status(self, request: Request) -> Response:
        number = str(request.path_params["number"])
        try:
            self.set_order_status(number, str((await _body(request)).get("status")))
        except ValueError as refused:
            raise Refusal(400, str(refused)) from None
        return exact_json(self.order_record(number))

    # -- state -----------------------------------------------------------------------------------

    def _shipping(self, request: Request) -> tuple[dict[str, Any], dict[str, Any]]:
        order = self.order_record(request.path_params["number"])
        code = str(request.path_params["code"])
        for shipping in order["shippings"]:
            if str(shipping["shippingCode"]) == code:
                return order, shipping
        raise Refusal(404, "Resource not found.")

    def _move(self, shipping: Mapping[str, Any], target: str) -> None:
        if target not in NEXT.get(shipping["status"], set()):
            raise Refusal(
                409, f"shipping {shipping['shippingCode']} is {shipping['status']}: it cannot become {target}"
            )

    def _refresh(self, order: dict[str, Any]) -> None:
        """The order's status: its shippings' earliest in the flow (Canceled when all are)."""
        live = [s["status"] for s in order["shippings"] if s["status"] != "Canceled"]
        order["orderStatus"] = min(live, key=STATUSES.index) if live else "Canceled"

    def _status_name(self, status: str) -> str:
        name = ALIASES.get(status.lower(), status.capitalize())
        if name not in STATUSES:
            raise ValueError(f"status must be one of {', '.join(STATUSES)}")
        return name

    def _stamp(self) -> str:
        return self.now().astimezone(UTC).isoformat(timespec="milliseconds")


async def _body(request: Request) -> dict[str, Any]:
    bad = Refusal(400, "the body is not a JSON object")
    return await json_object(request, bad, bad)


def _invoice(body: Mapping[str, Any]) -> dict[str, Any]:
    """The invoiced body's NF-e: a 44-digit key, its number, series (``line``) and issue date."""
    key, number, line, issued = (body.get(k) for k in ("key", "number", "line", "issueDate"))
    if not isinstance(key, str) or not NFE_KEY.fullmatch(key):
        raise Refusal(400, "key: the 44-digit NF-e access key")
    if number in (None, "") or line in (None, "") or _moment(issued) is None:
        raise Refusal(400, "number, line and issueDate: required")
    return {"number": number, "line": line, "accessKey": key, "issueDate": issued, "url": body.get("url")}


def _enveloped_invoice(body: Mapping[str, Any], code: int) -> dict[str, Any] | None:
    """The alternative ``{"shippings": [{"shippingCode", "invoice"}]}`` envelope's invoice, if sent."""
    for entry in body.get("shippings") or []:
        invoice = entry.get("invoice") if isinstance(entry, Mapping) else None
        if isinstance(invoice, Mapping) and str(entry.get("shippingCode")) == str(code):
            return _invoice({**invoice, "key": invoice.get("accessKey")})
    return None


def _transport(body: Mapping[str, Any]) -> dict[str, Any]:
    carrier, number = body.get("carrier"), body.get("trackingNumber")
    if not (isinstance(carrier, str) and carrier.strip() and isinstance(number, str) and number.strip()):
        raise Refusal(400, "carrier and trackingNumber: required, not empty")
    fields = ("carrier", "trackingNumber", "trackingLink", "deliveredCarrierDate", "estimatedDelivery")
    return {name: body.get(name) for name in fields}


def _moment(value: Any) -> datetime | None:
    """A query or body date: ISO 8601 (``yyyy-MM-dd'T'HH:mm:ss.SSSZ`` too) or epoch milliseconds."""
    if isinstance(value, int | Decimal) or (isinstance(value, str) and value.isdigit()):
        return datetime.fromtimestamp(int(value) / 1000, UTC)
    if not isinstance(value, str) or not value:
        return None
    text = re.sub(r"([+-]\d{2})(\d{2})$", r"\1:\2", value.replace("Z", "+00:00"))
    try:
        return aware_time(text)
    except ValueError:
        return None
