"""The Mercado Libre stand-in's order desk: search, shipments, feedback, fiscal documents, and the
sandbox's controls that play the buyer.

Why an object of its own: ``standin.py`` is the stand-in's listings (OAuth, ``/items`` with
variations and descriptions); orders are a second API with their own state, checks and made-up
buyers. :class:`OrderDesk` is a component the stand-in owns and routes the order endpoints to;
it is given only what it needs (the seller's items, which orders take stock from, the site, the
seller, the token check and the clock) and imports nothing of the stand-in's module.

What it checks (``shared/specs/mercadolibre/ITEMS.md``), answering in Mercado Libre's error shape:

- ``GET /orders/search?seller=``: the seller must be the token's user (else 403); filters
  ``order.status``, ``order.date_created.from/to``, ``order.date_last_updated.from/to`` (ISO
  8601 with an offset); ``sort`` date_asc or date_desc (by creation); ``offset`` and ``limit``,
  at most 51. ``GET /orders/{id}`` and ``GET /shipments/{id}`` (404 when unknown).
- ``PUT /shipments/{id}``, by a seller who ships (custom, me1): a tracking number, then
  ready_to_ship or handling -> shipped -> delivered; the status it has already is a repeat (200,
  unchanged); a Mercado Envíos (me2) shipment refuses it, its tracking being Mercado Libre's.
- ``POST /orders/{id}/feedback`` (ITEMS.md §6), once per order: ``fulfilled: false`` cancels an
  unshipped sale (restocking with ``restock_item``); ``fulfilled: true`` completes a sale shipped
  outside Mercado Envíos. ``GET /orders/{id}/feedback`` reads it back.
- ``POST /packs/{id}/fiscal_documents``: the NF-e of a pack (or of an order without one), as JSON
  where the real API takes the XML file; it releases a Mercado Envíos label.

Orders come from buyers, which a stand-in has none of: :meth:`OrderDesk.create_order` and
:meth:`~OrderDesk.set_order_status` play them, and so do the sandbox's controls
``POST /_sandbox/orders`` and ``POST /_sandbox/orders/{id}/status`` (no token needed, no faults).
Every change to an order or its shipment moves the order's ``last_updated``.

Ids look like the real ones: orders ``2000008000000001``..., shipments ``43000000001``...
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime, timedelta, timezone
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.model import aware_time
from marketplaces._standin import exact_json as _json
from marketplaces._standin import look_up, sandbox_route
from marketplaces.mercadolibre._standin_shapes import Refusal, find_variation
from marketplaces.mercadolibre._standin_shapes import cause as _cause
from marketplaces.mercadolibre._standin_shapes import count as _count
from marketplaces.mercadolibre._standin_shapes import object_body as _body
from marketplaces.mercadolibre._standin_shapes import positive as _positive
from marketplaces.mercadolibre._standin_shapes import totals as _totals

__all__ = ["OrderDesk"]

ORDER_STATUSES = ("confirmed", "payment_required", "payment_in_process", "partially_paid", "paid",
                  "partially_refunded", "pending_cancel", "cancelled", "invalid")  # fmt: skip
PAID = frozenset({"paid", "partially_refunded"})
CANCELLED = frozenset({"cancelled", "invalid", "pending_cancel"})
PAYMENT_OF_ORDER = {"paid": "approved", "partially_paid": "approved", "partially_refunded": "approved",
                    "payment_in_process": "in_process", "pending_cancel": "approved",
                    "cancelled": "cancelled", "invalid": "rejected"}  # fmt: skip
"""The one payment's status for an order status; none for confirmed and payment_required (no payment yet)."""
SHIPPING_MODES = ("me2", "fulfillment", "me1", "custom")
"""``fulfillment`` is Mercado Envíos Full: mode me2 with logistic type fulfillment."""
FEEDBACK_FIELDS = frozenset({"fulfilled", "rating", "message", "reason", "restock_item"})
FEEDBACK_REASONS = ("OUT_OF_STOCK", "BUYER_REGRETS", "SELLER_REGRETS", "BUYER_DID_NOT_ANSWER")
"""The reason codes ITEMS.md §6 names; the real list is longer."""
SHIPMENT_FIELDS = frozenset({"tracking_number", "status", "service_id", "tracking_method"})
SEARCH_LIMIT = 51
ML_TIME = timezone(timedelta(hours=-4))
"""Mercado Libre writes times with its servers' offset, -04:00."""
SITE_COUNTRIES = {"MLA": "AR", "MLB": "BR", "MLC": "CL", "MCO": "CO", "MLM": "MX", "MLU": "UY", "MPE": "PE"}
BUYER_NAMES = (
    ("Ana", "Souza"),
    ("Bruno", "Lima"),
    ("Carla", "Pereira"),
    ("Diego", "Costa"),
    ("Elisa", "Rocha"),
)
ADDRESSES = (
    ("Rua Augusta", "1508", "Apto 42", "Consolação", "São Paulo", "BR-SP", "São Paulo", "01304-001"),
    (
        "Avenida Atlântica",
        "2100",
        None,
        "Copacabana",
        "Rio de Janeiro",
        "BR-RJ",
        "Rio de Janeiro",
        "22021-001",
    ),
    ("Rua da Bahia", "SN", "Loja 2", "Centro", "Belo Horizonte", "BR-MG", "Minas Gerais", "30160-011"),
)
"""Made-up buyers and addresses for sandbox orders (the streets exist; the people do not)."""


class OrderDesk:
    """Orders, shipments, feedback and fiscal documents of one Mercado Libre seller.

    ``items`` are the seller's listings (the stand-in's own dict: orders take their stock),
    ``authorize`` refuses a request without a live token, ``clock`` stamps ``date_created`` and
    ``last_updated`` (tests pass their own to filter by time).
    """

    def __init__(
        self,
        items: dict[str, dict[str, Any]],
        *,
        site: str,
        seller_id: int,
        authorize: Callable[[Request], None],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.items, self.site, self.seller_id, self._authorize = items, site, seller_id, authorize
        self.clock = clock or (lambda: datetime.now(UTC))
        self.orders: dict[str, dict[str, Any]] = {}
        """Order id -> the order as ``GET /orders/{id}`` shows it."""
        self.shipments: dict[str, dict[str, Any]] = {}
        self.feedback: dict[str, dict[str, Any]] = {}
        """Order id -> the seller's feedback on the sale."""
        self.fiscal_documents: dict[str, dict[str, Any]] = {}
        """Pack id (an order's own id when it has no pack) -> the invoice attached to it."""
        self._restocked: set[str] = set()
        self._taken: dict[str, int] = {}
        """Order id -> the units it took from the listing (fewer than sold when it oversold)."""
        self._order_ids = itertools.count(2000008000000001)
        self._shipment_ids = itertools.count(43000000001)
        self._buyer_numbers = itertools.count(1)
        self._feedback_ids = itertools.count(900000001)
        self._payment_ids = itertools.count(59000000001)

    def routes(self) -> list[Route]:
        """The order endpoints, the sandbox's controls included, for the stand-in's app."""
        return [
            Route("/orders/search", self.search_orders, methods=["GET"]),
            Route("/orders/{order_id}", self.get_order, methods=["GET"]),
            Route("/orders/{order_id}/feedback", self.get_feedback, methods=["GET"]),
            Route("/orders/{order_id}/feedback", self.give_feedback, methods=["POST"]),
            Route("/shipments/{shipment_id}", self.get_shipment, methods=["GET"]),
            Route("/shipments/{shipment_id}", self.update_shipment, methods=["PUT"]),
            Route("/packs/{pack_id}/fiscal_documents", self.attach_fiscal_document, methods=["POST"]),
            sandbox_route("orders", self.sandbox_order),
            sandbox_route("orders/{order_id}/status", self.sandbox_status),
        ]

    # -- orders: made by tests and the sandbox ---------------------------------------------------

    def create_order(
        self,
        sku_id: str,
        quantity: int = 1,
        unit_price: Decimal | int | str | None = None,
        *,
        status: str = "paid",
        shipping_mode: str | None = "me2",
        order_id: str | None = None,
    ) -> str:
        """A buyer's purchase of a listed SKU, recorded as Mercado Libre records it; returns its id.

        The SKU is found by the ``SELLER_SKU`` of an active item or variation (ValueError when none
        is listed). ``unit_price`` defaults to the listing's price, so the order matches; any other
        price makes a divergent order. ``shipping_mode``: me2 (Mercado Envíos), fulfillment (Full),
        me1 or custom (the seller ships), None (no shipment: agreed between buyer and seller). The
        buyer and address are made up. The units leave the stock; more than the listing shows may
        be bought, and it stops at 0, as when a stock update reaches Mercado Libre after a sale (and
        so that a SKU the rules allocate 0 units can still be tried end to end in the sandbox).
        """
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}")
        if shipping_mode is not None and shipping_mode not in SHIPPING_MODES:
            raise ValueError(f"shipping_mode must be one of {', '.join(SHIPPING_MODES)} or None")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError("quantity must be a whole number of at least 1")
        item, variation = self._listed(sku_id)
        holder = variation or item
        price = Decimal(str(unit_price)) if unit_price is not None else Decimal(holder["price"])
        if not price.is_finite() or price <= 0:
            raise ValueError("unit_price must be greater than 0")
        key = str(order_id) if order_id is not None else str(next(self._order_ids))
        if key in self.orders:
            raise ValueError(f"order {key} exists already")
        number = next(self._buyer_numbers)
        first, last = BUYER_NAMES[number % len(BUYER_NAMES)]
        buyer_id = 1200000000 + number
        items_total = price * quantity
        shipping_cost = _shipping_cost(shipping_mode, items_total)
        now = self._stamp()
        order: dict[str, Any] = {
            "id": int(key) if key.isdigit() else key,
            "status": status,
            "status_detail": None,
            "date_created": now,
            "date_closed": None,
            "last_updated": now,
            "order_items": [self._order_line(item, variation, sku_id, quantity, price)],
            "total_amount": items_total,
            "paid_amount": Decimal(0),
            "shipping_cost": shipping_cost if shipping_mode is not None else None,
            "currency_id": item["currency_id"],
            "buyer": {
                "id": buyer_id,
                "nickname": f"{first}{last}{number}".upper(),
                "first_name": first,
                "last_name": last,
                "email": f"{first[0]}{last}.{number:06x}+2-ogeytsmrsgm@mail.mercadolivre.com".lower(),
            },
            "seller": {"id": self.seller_id},
            "payments": [],
            "shipping": {"id": None},
            "pack_id": None,
            "tags": [],
            "feedback": {"sale": None, "purchase": None},
            "fulfilled": None,
            "coupon": {"id": None, "amount": 0},
            "mediations": [],
            "context": {"channel": "marketplace", "site": self.site, "flows": []},
        }
        if shipping_mode is not None:
            shipment_id = next(self._shipment_ids)
            order["shipping"] = {"id": shipment_id}
            self.shipments[str(shipment_id)] = self._new_shipment(
                shipment_id, order, shipping_mode, shipping_cost, number
            )
        # A buyer may take more than the listing shows (the stock update is still on its way, or the
        # rules allocate 0): the sale stands and the listing stops at 0, as Mercado Libre's does.
        self._taken[key] = min(quantity, max(0, holder["available_quantity"]))
        holder["available_quantity"] -= self._taken[key]
        holder["sold_quantity"] = holder.get("sold_quantity", 0) + quantity
        _totals(item)
        self.orders[key] = order
        self._set_status(order, status)
        if status in CANCELLED:
            self._return_stock(order)
        return key

    def set_order_status(self, order_id: str, status: str) -> None:
        """What the buyer, Mercado Pago or the carrier does to an order.

        An order status (``paid``, ``cancelled`` as when the buyer cancels, which returns the units
        to the listing, ``partially_refunded``...), or ``shipped`` / ``delivered``, which are the
        shipment's: for Mercado Envíos, the carrier scanning the label Mercado Libre printed.
        """
        order = self.order_record(order_id)
        if status in ("shipped", "delivered"):
            shipment = self._shipment_of(order)
            if shipment is None or order["status"] not in PAID:
                raise ValueError(f"order {order_id} has no paid shipment to mark {status}")
            if shipment["mode"] == "me2" and not shipment["tracking_number"]:
                shipment["tracking_number"] = f"NX{shipment['id'] % 10**9:09d}BR"
                shipment["tracking_method"] = "Mercado Envios"
            self._ship(order, shipment, status)
            return
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}, shipped or delivered")
        shipment = self._shipment_of(order)
        if status in CANCELLED and shipment is not None and shipment["status"] in ("shipped", "delivered"):
            raise ValueError(f"order {order_id} was shipped: only a return can undo it")
        self._set_status(order, status)
        if status in CANCELLED:
            self._return_stock(order)

    def order_record(self, order_id: str) -> dict[str, Any]:
        """The order as the API shows it (the live record: tests may edit it to fake odd answers)."""
        order = self.orders.get(str(order_id))
        if order is None:
            raise KeyError(f"no order {order_id}")
        return order

    def shipment_record(self, order_id: str) -> dict[str, Any] | None:
        """The order's shipment as ``GET /shipments/{id}`` shows it; None for an order without one."""
        return self._shipment_of(self.order_record(order_id))

    # -- orders: the API -------------------------------------------------------------------------

    async def search_orders(self, request: Request) -> Response:
        """``GET /orders/search?seller=``: filters, ``sort``, and ``offset``/``limit`` (at most 51)."""
        self._authorize(request)
        query = request.query_params
        if "seller" not in query:
            raise Refusal(400, "bad_request", "the seller or buyer parameter is required")
        if query["seller"] != str(self.seller_id):
            raise Refusal(403, "forbidden", "caller.id does not match the seller of the search")
        offset, limit = _whole(query, "offset", 0), _whole(query, "limit", 50)
        if limit > SEARCH_LIMIT:
            raise Refusal(400, "bad_request", f"limit must be lower or equal than {SEARCH_LIMIT}")
        sort = query.get("sort", "date_asc")
        if sort not in ("date_asc", "date_desc"):
            raise Refusal(400, "bad_request", f"invalid sort {sort!r}; use date_asc or date_desc")
        found = list(self.orders.values())
        status = query.get("order.status")
        if status is not None:
            found = [o for o in found if o["status"] in status.split(",")]
        for field in ("date_created", "date_last_updated"):
            stamp = "last_updated" if field == "date_last_updated" else field
            since, until = _moment(query, f"order.{field}.from"), _moment(query, f"order.{field}.to")
            found = [
                o
                for o in found
                if (since is None or aware_time(o[stamp]) >= since)
                and (until is None or aware_time(o[stamp]) <= until)
            ]
        found.sort(key=lambda o: (aware_time(o["date_created"]), str(o["id"])), reverse=sort == "date_desc")
        return _json(
            {
                "query": None,
                "results": found[offset : offset + limit],
                "sort": {"id": sort, "name": "Date ascending" if sort == "date_asc" else "Date descending"},
                "available_sorts": [{"id": s} for s in ("date_asc", "date_desc") if s != sort],
                "filters": [],
                "paging": {"total": len(found), "offset": offset, "limit": limit},
                "display": "complete",
            }
        )

    async def get_order(self, request: Request) -> Response:
        self._authorize(request)
        return _json(self._order(request))

    async def get_shipment(self, request: Request) -> Response:
        self._authorize(request)
        return _json(self._shipment(request))

    async def update_shipment(self, request: Request) -> Response:
        """``PUT /shipments/{id}`` by a seller who ships: tracking, then ``shipped`` (``delivered``).

        Only ready_to_ship or handling becomes shipped, and shipped becomes delivered; asking for
        the status it has is a repeat, answered 200 with nothing changed. A Mercado Envíos
        shipment's tracking is Mercado Libre's own, so a seller's is refused.
        """
        self._authorize(request)
        shipment = self._shipment(request)
        body = await _body(request)
        if shipment["mode"] == "me2":
            message = f"shipment {shipment['id']} is Mercado Envios: Mercado Libre assigns its tracking"
            raise Refusal(400, "bad_request", message)
        causes = [
            _cause("body.invalid_fields", key, f"field '{key}' cannot be modified")
            for key in body
            if key not in SHIPMENT_FIELDS
        ]
        tracking, target = body.get("tracking_number"), body.get("status")
        if "tracking_number" in body and not (isinstance(tracking, str) and 0 < len(tracking.strip()) <= 64):
            message = "tracking_number must be a non-empty string of at most 64 characters"
            causes.append(_cause("shipment.tracking_number.invalid", "tracking_number", message))
        if target is not None and target not in ("shipped", "delivered"):
            causes.append(_cause("shipment.status.invalid", "status", "status must be shipped or delivered"))
        if "service_id" in body and not _count(body["service_id"]):
            causes.append(_cause("shipment.service_id.invalid", "service_id", "service_id must be a number"))
        if causes:
            raise Refusal(400, "validation_error", "Validation error", tuple(causes))
        current = shipment["status"]
        if target == current:
            return _json(shipment)  # a repeat: already there
        allowed = {"shipped": ("ready_to_ship", "handling"), "delivered": ("shipped",)}
        if target is not None and current not in allowed[target]:
            raise Refusal(400, "bad_request", f"shipment status cannot change from {current} to {target}")
        if current in ("pending", "cancelled", "delivered"):
            raise Refusal(
                400, "bad_request", f"shipment {shipment['id']} is {current} and cannot be modified"
            )
        if target == "shipped" and not (tracking or shipment["tracking_number"]):
            cause = _cause(
                "shipment.tracking_number.required", "tracking_number", "tracking_number is required"
            )
            raise Refusal(400, "validation_error", "Validation error", (cause,))
        for key in ("tracking_number", "tracking_method", "service_id"):
            if key in body:
                shipment[key] = body[key]
        order = self.order_record(str(shipment["order_id"]))
        if target is not None:
            self._ship(order, shipment, target)
        else:
            self._touch(order)
        return _json(shipment)

    async def get_feedback(self, request: Request) -> Response:
        """``GET /orders/{id}/feedback``: the seller's (``sale``) and the buyer's (``purchase``)."""
        self._authorize(request)
        order = self._order(request)
        return _json({"sale": self.feedback.get(str(order["id"])), "purchase": None})

    async def give_feedback(self, request: Request) -> Response:
        """``POST /orders/{id}/feedback``, once per order (ITEMS.md §6).

        ``fulfilled: false`` cancels an unshipped sale (and restocks with ``restock_item``); on a
        sale already cancelled it is recorded and changes nothing. ``fulfilled: true`` on a sale
        the seller ships marks its shipment delivered: outside Mercado Envíos, that is what
        completes it.
        """
        self._authorize(request)
        order = self._order(request)
        body = await _body(request)
        causes = _check_feedback(body)
        if causes:
            raise Refusal(400, "validation_error", "Validation error", tuple(causes))
        key = str(order["id"])
        if key in self.feedback:
            raise Refusal(400, "bad_request", f"the seller already gave feedback on order {key}")
        shipment = self._shipment_of(order)
        shipped = shipment is not None and shipment["status"] in ("shipped", "delivered")
        if body["fulfilled"] is False and (shipped or order["fulfilled"]):
            raise Refusal(400, "bad_request", f"order {key} was shipped: it can no longer be cancelled")
        if body["fulfilled"] is True and order["status"] not in PAID:
            raise Refusal(400, "bad_request", f"order {key} is {order['status']}: it cannot be fulfilled")
        feedback = {
            "id": next(self._feedback_ids),
            "role": "seller",
            "fulfilled": body["fulfilled"],
            "rating": body["rating"],
            "message": body["message"],
            "reason": body.get("reason"),
            "restock_item": body.get("restock_item", False),
            "status": "active",
            "date_created": self._stamp(),
        }
        self.feedback[key] = feedback
        order["feedback"]["sale"] = {
            "id": feedback["id"],
            "fulfilled": body["fulfilled"],
            "rating": body["rating"],
        }
        order["fulfilled"] = body["fulfilled"]
        if body["fulfilled"] is False and order["status"] not in CANCELLED:
            self._set_status(order, "cancelled")
            if body.get("restock_item"):
                self._return_stock(order)
        elif body["fulfilled"] is True and shipment is not None and shipment["mode"] != "me2":
            self._ship(order, shipment, "delivered")
        else:
            self._touch(order)
        return _json(feedback, 201)

    async def attach_fiscal_document(self, request: Request) -> Response:
        """``POST /packs/{id}/fiscal_documents``: the NF-e of a pack, or of an order without one.

        The real endpoint takes the XML file (multipart); this stand-in takes its fields as JSON:
        ``{number, key (44 digits), value?, issued_at?}``. Brazil only; one document per pack,
        a second is 409. Attaching it releases a Mercado Envíos label (substatus
        ``invoice_pending`` becomes ``ready_to_print``).
        """
        self._authorize(request)
        pack_id = request.path_params["pack_id"]
        orders = [o for o in self.orders.values() if str(o["pack_id"] or o["id"]) == pack_id]
        if not orders:
            raise Refusal(404, "not_found", f"pack {pack_id} not found")
        if self.site != "MLB":
            raise Refusal(400, "bad_request", "fiscal documents are only attached on Mercado Livre Brasil")
        body = await _body(request)
        causes = _check_fiscal_document(body)
        if causes:
            raise Refusal(400, "validation_error", "Validation error", tuple(causes))
        if pack_id in self.fiscal_documents:
            raise Refusal(409, "conflict", f"a fiscal document is already attached to pack {pack_id}")
        document = {"id": f"NFE-{body['key'][-9:]}", "pack_id": pack_id, **body}
        self.fiscal_documents[pack_id] = document
        for order in orders:
            shipment = self._shipment_of(order)
            if shipment is not None and shipment["substatus"] == "invoice_pending":
                shipment["substatus"] = "ready_to_print"
            self._touch(order)
        return _json(document, 201)

    # -- orders: the sandbox's controls ----------------------------------------------------------

    async def sandbox_order(self, request: Request) -> Response:
        """``POST /_sandbox/orders`` ``{sku_id, quantity?, unit_price?, status?, shipping_mode?}``."""
        body = await _body(request)
        known = {"sku_id", "quantity", "unit_price", "status", "shipping_mode", "order_id"}
        unknown = sorted(set(body) - known)
        if unknown or not isinstance(body.get("sku_id"), str | int):
            raise Refusal(400, "bad_request", f"give sku_id and only {', '.join(sorted(known))}")
        try:
            order_id = self.create_order(
                str(body["sku_id"]),
                body.get("quantity", 1),
                body.get("unit_price"),
                status=body.get("status", "paid"),
                shipping_mode=body.get("shipping_mode", "me2"),
                order_id=body.get("order_id"),
            )
        except (ValueError, ArithmeticError) as refused:
            raise Refusal(400, "bad_request", str(refused)) from None
        return _json({"order_id": order_id}, 201)

    async def sandbox_status(self, request: Request) -> Response:
        """``POST /_sandbox/orders/{id}/status`` ``{status}``: see :meth:`set_order_status`."""
        order = self._order(request)
        body = await _body(request)
        try:
            self.set_order_status(str(order["id"]), str(body.get("status")))
        except ValueError as refused:
            raise Refusal(400, "bad_request", str(refused)) from None
        return _json(order)

    # -- orders: state ---------------------------------------------------------------------------

    def _listed(self, sku_id: str) -> tuple[dict[str, Any], dict[str, Any] | None]:
        for item in self.items.values():
            if item["status"] != "active":
                continue
            for variation in item["variations"]:
                if sku_id in _own_seller_skus(variation):
                    return item, variation
            if not item["variations"] and sku_id in _own_seller_skus(item):
                return item, None
        raise ValueError(f"SKU {sku_id} is not listed: no active item or variation has it as SELLER_SKU")

    def _order_line(
        self,
        item: Mapping[str, Any],
        variation: Mapping[str, Any] | None,
        sku_id: str,
        quantity: int,
        price: Decimal,
    ) -> dict[str, Any]:
        combination = (variation or {}).get("attribute_combinations") or []
        return {
            "item": {
                "id": item["id"],
                "title": item["title"],
                "category_id": item["category_id"],
                "variation_id": variation["id"] if variation else None,
                "seller_custom_field": (variation or item).get("seller_custom_field"),
                "seller_sku": sku_id,
                "variation_attributes": [
                    {
                        "id": a["id"],
                        "name": a["id"].title(),
                        "value_id": a.get("value_id"),
                        "value_name": a.get("value_name"),
                    }
                    for a in combination
                ],
                "condition": item["condition"],
                "warranty": None,
            },
            "quantity": quantity,
            "unit_price": price,
            "full_unit_price": price,
            "currency_id": item["currency_id"],
            "sale_fee": (price * Decimal("0.14")).quantize(Decimal("0.01")),
            "listing_type_id": item["listing_type_id"],
        }

    def _new_shipment(
        self, shipment_id: int, order: Mapping[str, Any], mode: str, cost: Decimal, number: int
    ) -> dict[str, Any]:
        street, street_number, comment, neighborhood, city, state, state_name, zip_code = ADDRESSES[
            number % len(ADDRESSES)
        ]
        buyer = order["buyer"]
        return {
            "id": shipment_id,
            "order_id": order["id"],
            "mode": "me2" if mode == "fulfillment" else mode,
            "logistic_type": {"me2": "drop_off", "fulfillment": "fulfillment"}.get(mode, "default"),
            "status": "pending",
            "substatus": None,
            "tracking_number": None,
            "tracking_method": None,
            "service_id": None,
            "sender_id": self.seller_id,
            "receiver_id": buyer["id"],
            "date_created": order["date_created"],
            "last_updated": order["date_created"],
            "status_history": {"date_shipped": None, "date_delivered": None, "date_cancelled": None},
            "shipping_option": {
                "id": 100009,
                "name": "Normal",
                "cost": cost,
                "list_cost": cost,
                "currency_id": order["currency_id"],
            },
            "receiver_address": {
                "address_line": f"{street} {street_number}",
                "street_name": street,
                "street_number": street_number,
                "comment": comment,
                "zip_code": zip_code,
                "city": {"id": None, "name": city},
                "state": {"id": state, "name": state_name},
                "country": {"id": SITE_COUNTRIES.get(self.site, "BR"), "name": None},
                "neighborhood": {"id": None, "name": neighborhood},
                "receiver_name": f"{buyer['first_name']} {buyer['last_name']}",
                "receiver_phone": "XXXXXXX",
            },
        }

    def _set_status(self, order: dict[str, Any], status: str) -> None:
        """The order's status with its payment, tags and, while not shipped, its shipment's status."""
        order["status"] = status
        payment = PAYMENT_OF_ORDER.get(status)
        total = order["total_amount"] + (order["shipping_cost"] or 0)
        if payment is None:
            order["payments"] = []
        elif order["payments"]:
            refunded = payment == "cancelled" and order["payments"][0]["status"] == "approved"
            order["payments"][0]["status"] = "refunded" if refunded else payment
        else:
            order["payments"] = [
                {
                    "id": next(self._payment_ids),
                    "order_id": order["id"],
                    "payer_id": order["buyer"]["id"],
                    "transaction_amount": order["total_amount"],
                    "shipping_cost": order["shipping_cost"] or Decimal(0),
                    "total_paid_amount": total,
                    "currency_id": order["currency_id"],
                    "status": payment,
                    "status_detail": "accredited" if payment == "approved" else None,
                    "payment_type": "credit_card",
                }
            ]
        order["paid_amount"] = total if status in PAID else Decimal(0)
        if status in PAID and order["date_closed"] is None:
            order["date_closed"] = self._stamp()
        shipment = self._shipment_of(order)
        if shipment is not None and shipment["status"] not in ("shipped", "delivered"):
            if status in CANCELLED:
                shipment["status"], shipment["substatus"] = "cancelled", None
                shipment["status_history"]["date_cancelled"] = self._stamp()
            elif status in PAID and shipment["status"] == "pending":
                shipment["status"], shipment["substatus"] = self._ready(order, shipment)
        self._touch(order)

    def _ready(self, order: Mapping[str, Any], shipment: Mapping[str, Any]) -> tuple[str, str | None]:
        """A paid shipment: Mercado Envíos waits for the NF-e in Brazil; the seller's is being handled."""
        if shipment["logistic_type"] == "fulfillment":
            return "ready_to_ship", "in_warehouse"
        if shipment["mode"] != "me2":
            return "handling", None
        invoiced = str(order["pack_id"] or order["id"]) in self.fiscal_documents or self.site != "MLB"
        return "ready_to_ship", "ready_to_print" if invoiced else "invoice_pending"

    def _ship(self, order: dict[str, Any], shipment: dict[str, Any], status: str) -> None:
        if status == "delivered" and shipment["status"] != "shipped":
            self._ship(order, shipment, "shipped")
        shipment["status"], shipment["substatus"] = status, None
        shipment["status_history"][f"date_{status}"] = self._stamp()
        self._touch(order)

    def _return_stock(self, order: Mapping[str, Any]) -> None:
        """The units of a cancelled order go back to their listing, once, unless it is closed."""
        key = str(order["id"])
        if key in self._restocked:
            return
        self._restocked.add(key)
        for line in order["order_items"]:
            item = self.items.get(line["item"]["id"])
            if item is None or item["status"] == "closed":
                continue
            variation_id = line["item"]["variation_id"]
            holder = (
                find_variation(self.items, f"{item['id']}/{variation_id}")
                if variation_id is not None
                else item
            )
            holder["available_quantity"] += self._taken.get(key, line["quantity"])
            holder["sold_quantity"] -= line["quantity"]
            _totals(item)

    def _touch(self, order: dict[str, Any]) -> None:
        """Every change to an order or its shipment moves ``last_updated`` and the tags."""
        now = self._stamp()
        order["last_updated"] = now
        shipment = self._shipment_of(order)
        if shipment is not None:
            shipment["last_updated"] = now
        delivered = order["fulfilled"] is True or (shipment is not None and shipment["status"] == "delivered")
        order["tags"] = [
            *(["paid"] if order["status"] in PAID else []),
            "delivered" if delivered else "not_delivered",
        ]

    def _shipment_of(self, order: Mapping[str, Any]) -> dict[str, Any] | None:
        shipment_id = (order.get("shipping") or {}).get("id")
        return self.shipments.get(str(shipment_id)) if shipment_id is not None else None

    def _order(self, request: Request) -> dict[str, Any]:
        return look_up(self.orders, request.path_params["order_id"], _missing("Order"))

    def _shipment(self, request: Request) -> dict[str, Any]:
        return look_up(self.shipments, request.path_params["shipment_id"], _missing("Shipment"))

    def _stamp(self) -> str:
        return self.clock().astimezone(ML_TIME).isoformat(timespec="milliseconds")


def _missing(kind: str) -> Callable[[str], Refusal]:
    return lambda key: Refusal(404, "not_found", f"{kind} {key} not found")


def _own_seller_skus(holder: Mapping[str, Any]) -> set[str]:
    return {str(a.get("value_name")) for a in holder.get("attributes") or [] if a.get("id") == "SELLER_SKU"}


def _shipping_cost(mode: str | None, items_total: Decimal) -> Decimal:
    """What the buyer pays for shipping: Mercado Envíos is free from R$ 79; sellers charge a flat rate."""
    if mode is None:
        return Decimal(0)
    if mode in ("me2", "fulfillment"):
        return Decimal(0) if items_total >= 79 else Decimal("21.90")
    return Decimal("15.00")


def _check_feedback(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    """ITEMS.md §6: fulfilled (bool), message (< 160 characters) and rating always; a reason when the
    sale was not fulfilled; positive only when it was."""
    causes = [
        _cause("body.invalid_fields", key, f"field '{key}' is not a field of feedback")
        for key in body
        if key not in FEEDBACK_FIELDS
    ]
    fulfilled, message, rating = body.get("fulfilled"), body.get("message"), body.get("rating")
    if not isinstance(fulfilled, bool):
        causes.append(
            _cause("feedback.fulfilled.required", "fulfilled", "fulfilled (true or false) is required")
        )
    if not (isinstance(message, str) and message.strip()):
        causes.append(_cause("feedback.message.required", "message", "message is required"))
    elif len(message) >= 160:
        text = f"message has {len(message)} characters; it must be under 160"
        causes.append(_cause("feedback.message.length.invalid", "message", text))
    allowed = ("positive",) if fulfilled is True else ("neutral", "negative")
    if rating not in allowed:
        text = f"rating must be {' or '.join(allowed)} when fulfilled is {str(fulfilled is True).lower()}"
        causes.append(_cause("feedback.rating.invalid", "rating", text))
    if fulfilled is False and body.get("reason") not in FEEDBACK_REASONS:
        text = f"reason is required when fulfilled is false: one of {', '.join(FEEDBACK_REASONS)}"
        causes.append(_cause("feedback.reason.invalid", "reason", text))
    if fulfilled is True and ("reason" in body or "restock_item" in body):
        text = "reason and restock_item are only for a sale that was not fulfilled"
        causes.append(_cause("feedback.fulfilled.invalid", "reason", text))
    if "restock_item" in body and not isinstance(body["restock_item"], bool):
        causes.append(
            _cause("feedback.restock_item.invalid", "restock_item", "restock_item must be true or false")
        )
    return causes


def _check_fiscal_document(body: Mapping[str, Any]) -> list[dict[str, Any]]:
    causes = [
        _cause("body.invalid_fields", key, f"field '{key}' is not a field of a fiscal document")
        for key in body
        if key not in ("number", "key", "value", "issued_at", "series")
    ]
    if not (isinstance(body.get("number"), str) and body["number"].strip()):
        causes.append(_cause("fiscal_document.number.required", "number", "number is required"))
    if not (isinstance(body.get("key"), str) and re.fullmatch(r"\d{44}", body["key"])):
        causes.append(
            _cause("fiscal_document.key.invalid", "key", "key must be the NF-e's 44-digit access key")
        )
    if "value" in body and not _positive(body["value"]):
        causes.append(
            _cause("fiscal_document.value.invalid", "value", "value must be a number greater than 0")
        )
    if "issued_at" in body:
        try:
            aware_time(str(body["issued_at"]))
        except ValueError:
            causes.append(
                _cause("fiscal_document.issued_at.invalid", "issued_at", "issued_at must be ISO 8601")
            )
    return causes


def _whole(query: Mapping[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise Refusal(400, "bad_request", f"{name} must be a whole number of at least 0")
    return int(value)


def _moment(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return aware_time(value)
    except ValueError:
        raise Refusal(400, "bad_request", f"{name} must be an ISO 8601 date with a time zone") from None
