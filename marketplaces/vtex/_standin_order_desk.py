"""The VTEX stand-in's order desk: the seller's VTEX receiving orders from external marketplaces.

It is the part of :class:`~marketplaces.vtex.standin.VtexStandin` that the order channel
(``marketplaces/vtex/_orders.py``) talks to, kept apart from the catalog source's part
(catalog, pricing, logistics and the checkout simulation, in ``standin.py``) because the two
share only the SKUs: an order reserves and ships their stock, nothing else crosses. The
stand-in owns an :class:`OrderDesk` and routes the order endpoints to it; the desk is given the
SKUs, the trade policies, the key check and the index delay, and imports nothing of
``standin.py`` (the SKU record and VTEX's error shape are in ``_standin_shapes.py``).

Served under the ``orders`` grant: the Marketplace Protocol's PlaceFulfillmentOrder and
AuthorizeDispatch, and the Orders API's GetOrder, ListOrders, CancelOrder,
InvoiceNotification and tracking update. Orders live in memory with their stock
reservations; the ERP's part (invoicing, a store cancelling) is played by
:meth:`OrderDesk.invoice_order` and :meth:`OrderDesk.cancel_order_as_store`, and over
HTTP by ``POST /_sandbox/orders/{orderId}/invoice`` and ``.../cancel``. The delivery options
(SLAs) live here too: the checkout simulation offers them and a placement must pick one.

Where VTEX's documents are silent the stand-in picks a plausible behaviour and says so: a
second placement of the same ``marketplaceOrderId`` for the same affiliate is refused with
409 naming the existing order; cancelling a cancelled order is refused with 400 (callers
must read the order to learn it is already cancelled); ListOrders can lag placements by
``index_delay`` seconds, as VTEX's index does (about four minutes, says the spec).
"""

from __future__ import annotations

import copy
import itertools
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, TypeGuard

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from marketplaces._standin import Refusal, look_up, sandbox_route
from marketplaces._standin import exact_json as _json
from marketplaces._standin import int_param as _int_param
from marketplaces._standin import json_or_none as _body
from marketplaces.vtex._standin_shapes import SELLER_ID, Handler, StoredSku, error_body
from marketplaces.vtex._standin_shapes import error as _error

__all__ = ["SANDBOX_COURIER", "OrderDesk", "OrderRefused"]

_STATUS_DESCRIPTIONS = {
    "waiting-ffmt-authorization": "Aguardando autorização para despachar",
    "ready-for-handling": "Pronto para o manuseio",
    "handling": "Preparando Entrega",
    "invoiced": "Faturado",
    "canceled": "Cancelado",
}
_DISPATCHABLE = frozenset({"ready-for-handling", "handling"})
_SLAS: tuple[dict[str, Any], ...] = (
    {
        "id": "Normal",
        "name": "Normal",
        "price": 1990,
        "shippingEstimate": "5bd",
        "deliveryChannel": "delivery",
    },
    {
        "id": "Expressa",
        "name": "Expressa",
        "price": 2990,
        "shippingEstimate": "2bd",
        "deliveryChannel": "delivery",
    },
)
"""The delivery options the stand-in's logistics offers for any address (prices in cents, per item)."""
SANDBOX_COURIER = "Transportadora Sandbox"


@dataclass
class _StoredOrder:
    """A fulfilment order as the seller's VTEX keeps it; GetOrder's answer is built from it."""

    id: str
    sequence: str
    affiliate_id: str
    sales_channel: str
    marketplace_order_id: str
    services_endpoint: str
    payment_value: int
    items: list[dict[str, Any]]
    client: dict[str, Any]
    address: dict[str, Any]
    logistics: list[dict[str, Any]]
    created: datetime
    indexed_after: float
    """``time.monotonic()`` from which ListOrders shows it (VTEX's index lags)."""
    status: str = "waiting-ffmt-authorization"
    changed: datetime = field(default_factory=lambda: datetime.now(UTC))
    authorized: datetime | None = None
    invoiced: datetime | None = None
    packages: list[dict[str, Any]] = field(default_factory=list)
    cancel_reason: str | None = None
    cancellation: dict[str, Any] | None = None
    allocations: list[list[Any]] = field(default_factory=list)
    """``[sku_id, warehouse index, quantity]`` reserved for this order and not shipped yet."""

    def invoiced_quantity(self, index: int) -> int:
        return sum(
            entry["quantity"]
            for package in self.packages
            if package["type"] == "Output"
            for entry in package["items"]
            if entry["itemIndex"] == index
        )


class OrderRefused(Refusal):
    """The stand-in refuses an order operation as VTEX would: ``status`` and VTEX's message.

    Raised by the Python methods tests and the sandbox call (:meth:`VtexStandin.invoice_order`,
    :meth:`VtexStandin.cancel_order_as_store`); raised in a route, the app answers it in VTEX's
    error shape.
    """

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status
        self.message = message

    def body(self) -> dict[str, Any]:
        return error_body(self.status, self.message)


class OrderDesk:
    """The order APIs of a VTEX stand-in: ``orders`` by VTEX order id, ``orders_placed``
    (accepted placements per ``marketplaceOrderId``) and the lock every change holds.

    ``skus`` are the stand-in's SKUs (its own dict: orders reserve and ship their stock),
    ``trade_policies`` theirs (the first is a placement's default), ``private`` the key check a
    handler goes behind, ``index_delay`` how many seconds a new order stays out of ListOrders.
    """

    def __init__(
        self,
        skus: dict[str, StoredSku],
        *,
        trade_policies: tuple[str, ...],
        private: Callable[[str, Handler], Handler],
        index_delay: Callable[[], float],
    ) -> None:
        self.skus, self.trade_policies, self._private = skus, trade_policies, private
        self.index_delay = index_delay
        self.orders: dict[str, _StoredOrder] = {}
        self.orders_placed: Counter[str] = Counter()
        # The sandbox serves the app from a server thread while tests and the CLI call the Python
        # methods from another: one lock keeps an order and its stock reservation consistent.
        self._lock = threading.RLock()
        self._sequence = itertools.count(500001)
        self._invoice_numbers = itertools.count(1)

    def routes(self) -> list[BaseRoute]:
        """The order APIs' routes, then the sandbox's order controls (no key: they are not VTEX's)."""
        private = self._private
        return [
            Route("/api/fulfillment/pvt/orders", private("orders", self.place_order), methods=["POST"]),
            Route(
                "/api/fulfillment/pvt/orders/{orderId}/fulfill",
                private("orders", self.authorize_dispatch),
                methods=["POST"],
            ),
            Route("/api/oms/pvt/orders", private("orders", self.list_orders)),
            Route("/api/oms/pvt/orders/{orderId}", private("orders", self.get_order)),
            Route("/api/oms/pvt/orders/{orderId}/cancel", private("orders", self.cancel), methods=["POST"]),
            Route("/api/oms/pvt/orders/{orderId}/invoice", private("orders", self.invoice), methods=["POST"]),
            Route(
                "/api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}",
                private("orders", self.update_tracking),
                methods=["PATCH"],
            ),
            # The sandbox's controls: the store's ERP invoicing or cancelling an order, by curl.
            sandbox_route("orders/{orderId}/invoice", self.sandbox_invoice),
            sandbox_route("orders/{orderId}/cancel", self.sandbox_cancel),
        ]

    # -- placement and dispatch (Marketplace Protocol) ---------------------------------------

    async def place_order(self, request: Request) -> Response:
        """``POST /api/fulfillment/pvt/orders?sc=&affiliateId=``: PlaceFulfillmentOrder.

        Checks the body's required fields (naming fields, never echoing values: they are a
        buyer's personal data), refuses a second order with the same ``marketplaceOrderId``
        from the same affiliate (409, naming the order that exists), then the items: known,
        sold by seller 1 in trade policy ``sc``, in stock, each with a delivery option. The new
        order waits for AuthorizeDispatch with its stock reserved; its id is
        ``{affiliateId}-{marketplaceOrderId}``, as the spec's AuthorizeDispatch describes.
        """
        affiliate = request.query_params.get("affiliateId", "").strip()
        if not affiliate:
            return _error(400, "the affiliateId query parameter is required")
        sc = request.query_params.get("sc") or self.trade_policies[0]
        body = await _body(request)
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        problems = _placement_problems(body)
        if problems:
            return _error(400, "invalid order: " + "; ".join(problems))
        marketplace_id = str(body["marketplaceOrderId"])
        with self._lock:
            existing = self._order_of(affiliate, marketplace_id)
            if existing is not None:
                return _error(
                    409,
                    f"Order {existing.id} already exists for marketplaceOrderId {marketplace_id} "
                    f"of affiliate {affiliate}",
                )
            order = self._new_order(affiliate, sc, body)
            self.orders[order.id] = order
            self.orders_placed[marketplace_id] += 1
        return _json(
            {
                "orderId": order.id,
                "status": "success",
                "message": "Order placed successfully",
                "orderData": {**body, "isCreatedAsync": False},
            }
        )

    async def authorize_dispatch(self, request: Request) -> Response:
        """``POST /api/fulfillment/pvt/orders/{orderId}/fulfill``: the marketplace says ship it.

        Moves the order from waiting-ffmt-authorization to ready-for-handling. Repeating it on
        an order already authorized (or further along) answers the same success.
        """
        affiliate = request.query_params.get("affiliateId", "").strip()
        if not affiliate:
            return _error(400, "the affiliateId query parameter is required")
        body = await _body(request)
        with self._lock:
            order = self.orders.get(request.path_params["orderId"])
            if order is None or order.affiliate_id != affiliate:
                return _error(404, f"Order {request.path_params['orderId']} not found")
            claimed = body.get("marketplaceOrderId") if isinstance(body, dict) else None
            if claimed is not None and str(claimed) != order.marketplace_order_id:
                return _error(400, f"marketplaceOrderId {claimed} is not the one of order {order.id}")
            if order.status == "canceled":
                return _error(400, f"Order {order.id} is canceled; its dispatch cannot be authorized")
            if order.status == "waiting-ffmt-authorization":
                order.status = "ready-for-handling"
                order.authorized = order.changed = datetime.now(UTC)
            answer = {
                "status": "success",
                "message": "Order dispatch authorized",
                "orderId": order.id,
                "details": {
                    "createdAt": _timestamp(order.created),
                    "marketplaceOrderId": order.marketplace_order_id,
                    "status": order.status,
                },
            }
        return _json(answer, 201)

    # -- OMS ---------------------------------------------------------------------------------

    async def get_order(self, request: Request) -> Response:
        """``GET /api/oms/pvt/orders/{orderId}``: the order with its items and invoices."""
        with self._lock:
            return _json(self._order_json(self._stored(request.path_params["orderId"])))

    async def list_orders(self, request: Request) -> Response:
        """``GET /api/oms/pvt/orders``: the indexed orders, newest first, with VTEX's filters.

        Filters served: ``f_affiliateId``, ``f_status`` (comma-separated), ``salesChannelId``,
        ``q`` (full text on the order id, the marketplace order id, the client's e-mail and
        document), ``page`` (at most 30) and ``per_page`` (at most 100).
        """
        query = request.query_params
        page = _int_param(request, "page", 1)
        size = _int_param(request, "per_page", 15)
        if page is None or size is None or not 1 <= page <= 30 or not 1 <= size <= 100:
            return _error(400, "page must be 1 to 30 and per_page 1 to 100")
        affiliate, search = query.get("f_affiliateId"), (query.get("q") or "").strip().lower()
        statuses = {s for s in (query.get("f_status") or "").split(",") if s}
        channel = query.get("salesChannelId")
        now = time.monotonic()
        with self._lock:
            found = [
                order
                for order in sorted(self.orders.values(), key=lambda o: o.created, reverse=True)
                if order.indexed_after <= now
                and (not affiliate or order.affiliate_id == affiliate)
                and (not statuses or order.status in statuses)
                and (not channel or order.sales_channel == channel)
                and (not search or search in _searchable(order))
            ]
            listed = [_list_entry(order) for order in found[(page - 1) * size : page * size]]
        pages = -(-len(found) // size)
        return _json(
            {
                "list": listed,
                "facets": [],
                "paging": {"total": len(found), "pages": pages, "currentPage": page, "perPage": size},
                "stats": {"stats": {}},
            }
        )

    async def cancel(self, request: Request) -> Response:
        """``POST /api/oms/pvt/orders/{orderId}/cancel`` with ``{"reason"}``: CancelOrder.

        Refused (400) once any Output invoice exists, as the spec says of invoiced and
        partially invoiced orders, and for an order already canceled.
        """
        body = await _body(request)
        reason = body.get("reason") if isinstance(body, dict) else None
        with self._lock:
            order = self._cancel(request.path_params["orderId"], reason, by_store=False)
        return _json({"date": _timestamp(order.changed), "orderId": order.id, "receipt": uuid.uuid4().hex})

    async def invoice(self, request: Request) -> Response:
        """``POST /api/oms/pvt/orders/{orderId}/invoice``: InvoiceNotification, as the ERP sends it."""
        body = await _body(request)
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        with self._lock:
            order = self._stored(request.path_params["orderId"])
            package = self._add_invoice(order, body)
        return _json({"date": _timestamp(order.changed), "orderId": order.id, "receipt": package["receipt"]})

    async def update_tracking(self, request: Request) -> Response:
        """``PATCH /api/oms/pvt/orders/{orderId}/invoice/{invoiceNumber}``: add tracking to an invoice."""
        body = await _body(request)
        if not isinstance(body, dict):
            return _error(400, "the body must be a JSON object")
        missing = [
            name
            for name in ("trackingNumber", "trackingUrl", "courier", "dispatchedDate")
            if name not in body
        ]
        if missing or not _text(body.get("trackingNumber")):
            return _error(400, f"required: {', '.join(missing or ['trackingNumber'])}")
        with self._lock:
            order = self.orders.get(request.path_params["orderId"])
            number = request.path_params["invoiceNumber"]
            package = (
                next((p for p in order.packages if p["invoiceNumber"] == number), None) if order else None
            )
            if order is None or package is None:
                return _error(404, f"Invoice {number} of order {request.path_params['orderId']} not found")
            for name in ("trackingNumber", "trackingUrl", "courier", "dispatchedDate"):
                if body.get(name) is not None:
                    package[name] = str(body[name])
            package["receipt"] = uuid.uuid4().hex
            order.changed = datetime.now(UTC)
            return _json(
                {"date": _timestamp(order.changed), "orderId": order.id, "receipt": package["receipt"]}
            )

    # -- the sandbox's controls and the Python side for tests --------------------------------

    async def sandbox_invoice(self, request: Request) -> Response:
        """``POST /_sandbox/orders/{orderId}/invoice``: invoice what is left of an order, with tracking.

        Optional body: ``number``, ``courier``, ``trackingNumber``, ``tracking`` (false for an
        invoice without tracking). Answers the package as GetOrder will show it.
        """
        body = await _body(request)
        options = body if isinstance(body, dict) else {}
        package = self.invoice_order(
            request.path_params["orderId"],
            number=_text(options.get("number")),
            tracking=options.get("tracking", True) is not False,
            courier=_text(options.get("courier")),
            tracking_number=_text(options.get("trackingNumber")),
        )
        return _json(package)

    async def sandbox_cancel(self, request: Request) -> Response:
        """``POST /_sandbox/orders/{orderId}/cancel`` with ``{"reason"}``: the store cancels the order."""
        body = await _body(request)
        reason = _text(body.get("reason")) if isinstance(body, dict) else None
        self.cancel_order_as_store(request.path_params["orderId"], reason or "canceled by the store")
        return _json(self.order_record(request.path_params["orderId"]))

    def invoice_order(
        self,
        vtex_order_id: str,
        number: str | None = None,
        tracking: bool = True,
        *,
        courier: str | None = None,
        tracking_number: str | None = None,
    ) -> dict[str, Any]:
        """Invoice every item not invoiced yet, as the store's ERP would; the package as GetOrder shows it.

        The value is the items' prices, plus the shipping on the order's first invoice. Raises
        :class:`OrderRefused` when the order is unknown, not authorized, canceled or fully invoiced.
        """
        with self._lock:
            order = self._stored(vtex_order_id)
            sequence = next(self._invoice_numbers)
            items = [
                {"id": item["id"], "price": item["price"], "quantity": left}
                for index, item in enumerate(order.items)
                if (left := item["quantity"] - order.invoiced_quantity(index)) > 0
            ]
            first = not any(package["type"] == "Output" for package in order.packages)
            shipping = sum(entry["price"] for entry in order.logistics) if first else 0
            number = number or f"{sequence:06d}"
            tracked = tracking_number or f"SB{sequence:09d}BR"
            body = {
                "type": "Output",
                "issuanceDate": _timestamp(datetime.now(UTC)),
                "invoiceNumber": number,
                "invoiceValue": str(sum(i["price"] * i["quantity"] for i in items) + shipping),
                "invoiceKey": f"3524{sequence:040d}",
                "invoiceUrl": f"https://invoices.example.com/{number}.xml",
                "embeddedInvoice": f'<nfeProc><NFe><infNFe Id="NFe3524{sequence:040d}"/></NFe></nfeProc>',
                "courier": courier or SANDBOX_COURIER,
                "trackingNumber": tracked if tracking else "",
                "trackingUrl": f"https://tracking.example.com/{tracked}" if tracking else "",
                "dispatchedDate": _timestamp(datetime.now(UTC)) if tracking else None,
                "items": items,
            }
            return copy.deepcopy(_served_package(self._add_invoice(order, body)))

    def cancel_order_as_store(self, vtex_order_id: str, reason: str) -> dict[str, Any]:
        """The store cancels the order (stock out, fraud): GetOrder's answer afterwards.

        Raises :class:`OrderRefused` as CancelOrder would (unknown, invoiced, already canceled).
        """
        with self._lock:
            return self._order_json(self._cancel(vtex_order_id, reason, by_store=True))

    def order_record(self, vtex_order_id: str) -> dict[str, Any]:
        """GetOrder's answer for an order (a copy); KeyError when there is no such order."""
        with self._lock:
            return self._order_json(self.orders[vtex_order_id])

    def orders_by_marketplace_id(self) -> dict[str, list[str]]:
        """``marketplaceOrderId`` -> the VTEX orders placed for it (one each when nothing is duplicated)."""
        with self._lock:
            found: dict[str, list[str]] = {}
            for order in self.orders.values():
                found.setdefault(order.marketplace_order_id, []).append(order.id)
            return found

    # -- state changes (callers hold the lock) -----------------------------------------------

    def _order_of(self, affiliate: str, marketplace_id: str) -> _StoredOrder | None:
        return next(
            (
                order
                for order in self.orders.values()
                if order.affiliate_id == affiliate and order.marketplace_order_id == marketplace_id
            ),
            None,
        )

    def _stored(self, vtex_order_id: str) -> _StoredOrder:
        return look_up(self.orders, vtex_order_id, _unknown_order)

    def _new_order(self, affiliate: str, sc: str, body: dict[str, Any]) -> _StoredOrder:
        """The order a valid placement creates, its stock reserved; OrderRefused for unsellable items."""
        items: list[dict[str, Any]] = []
        demand: Counter[str] = Counter()
        for requested in body["items"]:
            demand[str(requested["id"])] += requested["quantity"]
        for requested in body["items"]:
            sku = self.skus.get(str(requested["id"]))
            if sku is None or str(requested["seller"]) != SELLER_ID or sc not in sku.trade_policies:
                raise OrderRefused(
                    400, f"Item {requested['id']} not found or unavailable in trade policy {sc} (ORD027)"
                )
            quantity = requested["quantity"]
            if demand[sku.id] > sku.available:
                raise OrderRefused(
                    400,
                    f"Item {sku.id} is out of stock: {demand[sku.id]} ordered, "
                    f"{max(sku.available, 0)} available",
                )
            price = requested.get("price")
            items.append(_order_item(sku, quantity, price if _is_int(price) else sku.selling_cents or 0))
        logistics = body["shippingData"]["logisticsInfo"]
        offered = {sla["id"] for sla in _SLAS}
        by_index = {entry["itemIndex"]: entry for entry in logistics}
        for index in range(len(items)):
            chosen = by_index.get(index)
            if chosen is None or chosen["selectedSla"] not in offered:
                raise OrderRefused(
                    400, f"shippingData.logisticsInfo: item {index} has no SLA among {sorted(offered)}"
                )
        marketplace_id = str(body["marketplaceOrderId"])
        order = _StoredOrder(
            id=f"{affiliate}-{marketplace_id}",
            sequence=str(next(self._sequence)),
            affiliate_id=affiliate,
            sales_channel=sc,
            marketplace_order_id=marketplace_id,
            services_endpoint=str(body["marketplaceServicesEndpoint"]),
            payment_value=body["marketplacePaymentValue"],
            items=items,
            client=dict(body["clientProfileData"]),
            address=dict(body["shippingData"]["address"]),
            logistics=[
                {
                    "itemIndex": index,
                    "selectedSla": by_index[index]["selectedSla"],
                    "price": by_index[index]["price"],
                    "shippingEstimate": by_index[index].get("shippingEstimate"),
                    "lockTTL": by_index[index].get("lockTTL", "10d"),
                    "deliveryCompany": SANDBOX_COURIER,
                }
                for index in range(len(items))
            ],
            created=datetime.now(UTC),
            indexed_after=time.monotonic() + self.index_delay(),
        )
        for item in items:
            self._reserve(order, self.skus[item["id"]], item["quantity"])
        return order

    def _reserve(self, order: _StoredOrder, sku: StoredSku, quantity: int) -> None:
        """Reserve stock warehouse by warehouse; the inventory answer shows it as reservedQuantity."""
        for position, balance in enumerate(sku.inventory["balance"]):
            total, reserved = balance.get("totalQuantity"), balance.get("reservedQuantity")
            if not _is_int(total) or not _is_int(reserved) or quantity <= 0:
                continue
            taken = min(quantity, max(0, total - reserved))
            if taken:
                balance["reservedQuantity"] = reserved + taken
                order.allocations.append([sku.id, position, taken])
                quantity -= taken
        sku.available = _available(sku.inventory)

    def _release(
        self, order: _StoredOrder, sku_id: str | None = None, quantity: int | None = None, *, shipped: bool
    ) -> None:
        """Give back (cancel) or ship (invoice) reserved stock: all of it, or ``quantity`` of one SKU."""
        for allocation in order.allocations:
            held_sku, position, held = allocation
            if (sku_id is not None and held_sku != sku_id) or held <= 0:
                continue
            taken = held if quantity is None else min(held, quantity)
            balance = self.skus[held_sku].inventory["balance"][position]
            balance["reservedQuantity"] -= taken
            if shipped:
                balance["totalQuantity"] -= taken
            allocation[2] -= taken
            self.skus[held_sku].available = _available(self.skus[held_sku].inventory)
            if quantity is not None:
                quantity -= taken
                if quantity <= 0:
                    break
        order.allocations = [a for a in order.allocations if a[2] > 0]

    def _cancel(self, vtex_order_id: str, reason: object, *, by_store: bool) -> _StoredOrder:
        order = self._stored(vtex_order_id)
        if order.status == "canceled":
            raise OrderRefused(400, f"Order {order.id} is already canceled")
        if any(package["type"] == "Output" for package in order.packages):
            raise OrderRefused(
                400,
                f"Order {order.id} cannot be canceled: it is {order.status} "
                "(invoiced orders can't be canceled)",
            )
        now = datetime.now(UTC)
        text = _text(reason)
        order.status, order.changed, order.cancel_reason = "canceled", now, text
        order.cancellation = {
            "RequestedByUser": by_store,
            "RequestedBySystem": False,
            "RequestedBySellerNotification": not by_store,
            "RequestedByPaymentNotification": False,
            "Reason": text,
            "CancellationDate": _timestamp(now),
        }
        self._release(order, shipped=False)
        return order

    def _add_invoice(self, order: _StoredOrder, body: Mapping[str, Any]) -> dict[str, Any]:
        """Record an InvoiceNotification; a known number only gets a new receipt, as the spec says."""
        problems = _invoice_problems(body)
        if problems:
            raise OrderRefused(400, "invalid invoice: " + "; ".join(problems))
        number = str(body["invoiceNumber"])
        known = next((p for p in order.packages if p["invoiceNumber"] == number), None)
        if known is not None:
            known["receipt"] = uuid.uuid4().hex
            return known
        kind = body["type"]
        if kind == "Output" and order.status not in _DISPATCHABLE:
            raise OrderRefused(
                400, f"Order {order.id} is {order.status}; only an order ready for handling can be invoiced"
            )
        entries = self._invoiced_items(order, body["items"], outgoing=kind == "Output")
        package = {
            "items": entries,
            "courier": _text(body.get("courier")) or "",
            "invoiceNumber": number,
            "invoiceValue": int(str(body["invoiceValue"])),
            "invoiceUrl": _text(body.get("invoiceUrl")),
            "issuanceDate": str(body["issuanceDate"]),
            "trackingNumber": _text(body.get("trackingNumber")) or "",
            "invoiceKey": _text(body.get("invoiceKey")),
            "trackingUrl": _text(body.get("trackingUrl")) or "",
            "embeddedInvoice": _text(body.get("embeddedInvoice")) or "",
            "type": kind,
            "courierStatus": None,
            "cfop": None,
            "restitutions": {},
            "volumes": None,
            "EnableInferItems": False,
            "dispatchedDate": _text(body.get("dispatchedDate")),
            "receipt": uuid.uuid4().hex,
        }
        order.packages.append(package)
        now = order.changed = datetime.now(UTC)
        if kind == "Output":
            for entry in entries:
                self._release(order, order.items[entry["itemIndex"]]["id"], entry["quantity"], shipped=True)
            complete = all(
                order.invoiced_quantity(i) >= item["quantity"] for i, item in enumerate(order.items)
            )
            order.status = "invoiced" if complete else "handling"
            order.invoiced = now if complete else order.invoiced
        return package

    def _invoiced_items(
        self, order: _StoredOrder, items: list[Any], *, outgoing: bool
    ) -> list[dict[str, Any]]:
        """Invoice lines -> package items by ``itemIndex``; an Output one may not exceed what is left."""
        left = {
            index: item["quantity"] - order.invoiced_quantity(index) for index, item in enumerate(order.items)
        }
        entries: list[dict[str, Any]] = []
        for line in items:
            wanted = line["quantity"]
            for index, item in enumerate(order.items):
                if item["id"] != str(line["id"]) or wanted <= 0:
                    continue
                taken = min(wanted, left[index]) if outgoing else min(wanted, item["quantity"])
                if taken <= 0:
                    continue
                left[index] -= taken
                wanted -= taken
                entries.append(
                    {
                        "itemIndex": index,
                        "quantity": taken,
                        "price": line["price"],
                        "description": item["name"],
                        "unitMultiplier": item["unitMultiplier"],
                    }
                )
            if wanted > 0:
                raise OrderRefused(
                    400,
                    f"item {line['id']}: {line['quantity']} invoiced, more than order {order.id} has left",
                )
        return entries

    def _order_json(self, order: _StoredOrder) -> dict[str, Any]:
        """GetOrder's answer, with the fields the spec marks as always present."""
        items_total = sum(item["price"] * item["quantity"] for item in order.items)
        shipping = sum(entry["price"] for entry in order.logistics)
        return copy.deepcopy(
            {
                "orderId": order.id,
                "sequence": order.sequence,
                "marketplaceOrderId": order.marketplace_order_id,
                "marketplaceServicesEndpoint": order.services_endpoint,
                "sellerOrderId": f"00-{order.id}",
                "origin": "Fulfillment",
                "affiliateId": order.affiliate_id,
                "salesChannel": order.sales_channel,
                "merchantName": None,
                "status": order.status,
                "workflowIsInError": False,
                "statusDescription": _STATUS_DESCRIPTIONS.get(order.status, order.status),
                "value": items_total + shipping,
                "creationDate": _timestamp(order.created),
                "lastChange": _timestamp(order.changed),
                "orderGroup": None,
                "isCompleted": True,
                "allowCancellation": order.status != "canceled" and not order.packages,
                "authorizedDate": _timestamp(order.authorized) if order.authorized else None,
                "invoicedDate": _timestamp(order.invoiced) if order.invoiced else None,
                "cancelReason": order.cancel_reason,
                "cancellationData": order.cancellation,
                "totals": [
                    {"id": "Items", "name": "Total dos Itens", "value": items_total},
                    {"id": "Discounts", "name": "Total dos Descontos", "value": 0},
                    {"id": "Shipping", "name": "Total do Frete", "value": shipping},
                    {"id": "Tax", "name": "Total da Taxa", "value": 0},
                ],
                "sellers": [
                    {"id": SELLER_ID, "name": "Sandbox Store", "logo": "", "fulfillmentEndpoint": ""}
                ],
                "items": order.items,
                "clientProfileData": order.client,
                "shippingData": {
                    "id": "shippingData",
                    "address": order.address,
                    "logisticsInfo": order.logistics,
                },
                "packageAttachment": {"packages": [_served_package(p) for p in order.packages]},
                "paymentData": {"giftCards": [], "transactions": []},
                "marketplace": {
                    "baseURL": order.services_endpoint,
                    "isCertified": None,
                    "name": order.affiliate_id,
                },
                "storePreferencesData": {"countryCode": order.address.get("country"), "currencyCode": "BRL"},
            }
        )


# -- request checks and answers --------------------------------------------------------------


def _unknown_order(vtex_order_id: str) -> OrderRefused:
    return OrderRefused(404, f"Order {vtex_order_id} not found")


def _placement_problems(body: Mapping[str, Any]) -> list[str]:
    """What PlaceFulfillmentOrder's schema requires and the body lacks: field names only, never values."""
    problems = []
    if not _text(body.get("marketplaceOrderId")):
        problems.append("marketplaceOrderId is required")
    if not _text(body.get("marketplaceServicesEndpoint")):
        problems.append("marketplaceServicesEndpoint is required")
    payment = body.get("marketplacePaymentValue")
    if not _is_int(payment) or payment < 0:
        problems.append("marketplacePaymentValue is required, an integer number of cents")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        problems.append("items is required and may not be empty")
        items = []
    for index, item in enumerate(items):
        if not isinstance(item, Mapping):
            problems.append(f"items[{index}] is not an object")
            continue
        for name in ("id", "seller"):
            if not _text(item.get(name)) and not _is_int(item.get(name)):
                problems.append(f"items[{index}].{name} is required")
        if not _is_int(item.get("quantity")) or item["quantity"] < 1:
            problems.append(f"items[{index}].quantity must be a positive integer")
        if "price" in item and (not _is_int(item["price"]) or item["price"] < 0):
            problems.append(f"items[{index}].price must be an integer number of cents")
    client = body.get("clientProfileData")
    if not isinstance(client, Mapping):
        problems.append("clientProfileData is required")
    else:
        problems += [
            f"clientProfileData.{name} is required"
            for name in ("email", "firstName", "lastName", "documentType", "document")
            if not _text(client.get(name))
        ]
        if _text(client.get("email")) and "@" not in str(client["email"]):
            problems.append("clientProfileData.email is not an e-mail address")
    shipping = body.get("shippingData")
    address = shipping.get("address") if isinstance(shipping, Mapping) else None
    if not isinstance(address, Mapping):
        problems.append("shippingData.address is required")
    else:
        problems += [
            f"shippingData.address.{name} is required"
            for name in (
                "addressType",
                "receiverName",
                "postalCode",
                "city",
                "state",
                "country",
                "street",
                "number",
            )
            if name not in address or (name not in ("state", "number") and not _text(address.get(name)))
        ]
        country = _text(address.get("country"))
        if country and len(country) != 3:
            problems.append("shippingData.address.country must be a three-letter ISO code")
    logistics = shipping.get("logisticsInfo") if isinstance(shipping, Mapping) else None
    if not isinstance(logistics, list):
        problems.append("shippingData.logisticsInfo is required, one entry per item")
    else:
        for index, entry in enumerate(logistics):
            if (
                not isinstance(entry, Mapping)
                or not _is_int(entry.get("itemIndex"))
                or not _text(entry.get("selectedSla"))
                or not _is_int(entry.get("price"))
            ):
                problems.append(f"shippingData.logisticsInfo[{index}] needs itemIndex, selectedSla and price")
    return problems


def _invoice_problems(body: Mapping[str, Any]) -> list[str]:
    """What InvoiceNotification's schema requires and the body lacks."""
    problems = []
    if body.get("type") not in ("Output", "Input"):
        problems.append("type must be Output or Input")
    if not _text(body.get("issuanceDate")):
        problems.append("issuanceDate is required")
    if not _text(body.get("invoiceNumber")):
        problems.append("invoiceNumber is required")
    value = body.get("invoiceValue")
    if not (_is_int(value) or (isinstance(value, str) and value.isdigit())) or int(str(value)) <= 0:
        problems.append("invoiceValue is required: cents, greater than 0, without a decimal separator")
    items = body.get("items")
    if not isinstance(items, list) or not items:
        problems.append("items is required")
    else:
        for index, item in enumerate(items):
            if (
                not isinstance(item, Mapping)
                or not (_text(item.get("id")) or _is_int(item.get("id")))
                or not _is_int(item.get("price"))
                or not _is_int(item.get("quantity"))
                or item["quantity"] < 1
            ):
                problems.append(f"items[{index}] needs id, price (cents) and a positive quantity")
    return problems


def _order_item(sku: StoredSku, quantity: int, price: int) -> dict[str, Any]:
    """One ``items[]`` entry of GetOrder: the marketplace's price, the catalog's names."""
    return {
        "uniqueId": uuid.uuid4().hex.upper(),
        "id": sku.id,
        "productId": str(sku.context.get("ProductId")),
        "ean": (sku.context.get("AlternateIds") or {}).get("Ean"),
        "lockId": None,
        "quantity": quantity,
        "seller": SELLER_ID,
        "sellerSku": sku.id,
        "name": sku.context.get("NameComplete"),
        "refId": (sku.context.get("AlternateIds") or {}).get("RefId"),
        "price": price,
        "listPrice": sku.list_cents or price,
        "sellingPrice": price,
        "manualPrice": None,
        "priceTags": [],
        "isGift": False,
        "commission": 0,
        "freightCommission": 0,
        "tax": 0,
        "measurementUnit": sku.context.get("MeasurementUnit"),
        "unitMultiplier": sku.unit_multiplier,
        "priceDefinition": {
            "calculatedSellingPrice": price,
            "total": price * quantity,
            "sellingPrices": [{"value": price, "quantity": quantity}],
            "reason": None,
        },
    }


def _logistics_info(sku: StoredSku, item_index: int, quantity: object, priced: bool) -> dict[str, Any]:
    """A simulation's ``logisticsInfo[]`` entry: stock, and delivery options once a postal code is known."""
    count = quantity if _is_int(quantity) else 1
    deliverable = priced and 0 < count <= sku.available
    warehouses = [b.get("warehouseId") for b in sku.inventory.get("balance") or ()]
    return {
        "itemIndex": item_index,
        "addressId": None,
        "selectedSla": None,
        "selectedDeliveryChannel": None,
        "quantity": count,
        "stockBalance": max(0, sku.available),
        "shipsTo": ["BRA"],
        "slas": [
            {
                **sla,
                "price": sla["price"] * count,
                "listPrice": sla["price"] * count,
                "tax": 0,
                "lockTTL": "10d",
                "deliveryIds": [
                    {
                        "courierId": "sandbox",
                        "courierName": SANDBOX_COURIER,
                        "warehouseId": warehouses[0] if warehouses else None,
                        "dockId": "1",
                        "quantity": count,
                    }
                ],
                "pickupStoreInfo": {"isPickupStore": False},
            }
            for sla in (_SLAS if deliverable else ())
        ],
        "deliveryChannels": [{"id": "delivery"}],
    }


def _list_entry(order: _StoredOrder) -> dict[str, Any]:
    """ListOrders' summary of an order (no items, as VTEX's list has none since 2018)."""
    name = " ".join(str(order.client.get(k) or "") for k in ("firstName", "lastName")).strip()
    return {
        "orderId": order.id,
        "creationDate": _timestamp(order.created),
        "clientName": name,
        "items": None,
        "totalValue": sum(i["price"] * i["quantity"] for i in order.items)
        + sum(e["price"] for e in order.logistics),
        "paymentNames": "",
        "status": order.status,
        "statusDescription": _STATUS_DESCRIPTIONS.get(order.status, order.status),
        "marketPlaceOrderId": order.marketplace_order_id,
        "sequence": order.sequence,
        "salesChannel": order.sales_channel,
        "affiliateId": order.affiliate_id,
        "origin": "Fulfillment",
        "workflowInErrorState": False,
        "workflowInRetry": False,
        "orderIsComplete": True,
        "authorizedDate": _timestamp(order.authorized) if order.authorized else None,
        "totalItems": sum(i["quantity"] for i in order.items),
        "currencyCode": "BRL",
    }


def _searchable(order: _StoredOrder) -> str:
    """What ListOrders' ``q`` searches: order id, marketplace order id, client e-mail and document."""
    fields = (order.id, order.marketplace_order_id, order.client.get("email"), order.client.get("document"))
    return " ".join(str(value).lower() for value in fields if value)


def _served_package(package: Mapping[str, Any]) -> dict[str, Any]:
    return {key: value for key, value in package.items() if key != "receipt"}


def _available(inventory: Mapping[str, Any]) -> int:
    """Units that can still be sold: total less reserved, over warehouses with whole-number counts."""
    return sum(
        max(0, total - reserved)
        for balance in inventory.get("balance") or ()
        if _is_int(total := balance.get("totalQuantity"))
        and _is_int(reserved := balance.get("reservedQuantity"))
    )


def _timestamp(moment: datetime) -> str:
    return moment.astimezone(UTC).isoformat()


def _text(value: object) -> str | None:
    """A non-blank string as given (numbers as text), else None."""
    if isinstance(value, bool) or value is None:
        return None
    text = str(value) if isinstance(value, str | int | Decimal) else ""
    return text if text.strip() else None


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)
