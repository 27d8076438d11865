"""The Mirakl stand-in's order desk: OR11, OR21, OR23, OR24, OR29, OR30, OR31, OR74, SH21, and the
sandbox's controls that play the customer and the operator.

Why an object of its own: the stand-in's catalogue (product and offer imports) and its orders are
two APIs with their own state. :class:`MiraklOrderDesk` is a component a stand-in owns and routes
the order endpoints to; it is given only what it needs (the shop's offers, which orders take stock
from, the request check and the clock) and imports nothing of the stand-in's module.

What it checks (``shared/specs/mirakl``: the OpenAPI file, SOURCE.md, CARREFOUR.md), answering
``{"status", "message", "code"}`` (Mirakl's error JSON is undocumented: the code is OR21's list):

- ``GET /api/orders`` (OR11): ``order_ids`` (at most 100, else 400), ``order_state_codes``,
  ``start_date``/``end_date``, ``start_update_date`` (moved back by :data:`UPDATE_DELTA`, as Mirakl
  does "to ensure no orders are missed") / ``end_update_date``; ``sort=dateCreated`` with ``order``
  asc or desc; ``offset`` and ``max`` (at most 100). ``customer.shipping_address`` and
  ``billing_address`` are null until the order is accepted.
- ``PUT /api/orders/{id}/accept`` (OR21) only in ``WAITING_ACCEPTANCE`` (``ORDER_INVALID_STATE``),
  with a decision for every line (``ORDER_LINE_ACCEPTANCE_DECISION_MISSING``), no duplicate or
  unknown line; mixed decisions only with partial acceptance on. Accepted lines go to
  ``WAITING_DEBIT`` and, when :attr:`~MiraklOrderDesk.debit_on_acceptance` (the default: the
  operator debits at once), to ``SHIPPING``; all refused: ``REFUSED``.
- ``PUT /api/orders/{id}/tracking`` (OR23) in ``SHIPPING`` or ``SHIPPED``: a registered
  ``carrier_code`` (SH21's list), or a ``carrier_name``; ``PUT /api/orders/{id}/ship`` (OR24) only
  in ``SHIPPING``, with a tracking number and every required custom field set (CARREFOUR.md: the
  NF-e; :attr:`~MiraklOrderDesk.required_fields`).
- ``PUT /api/orders/{id}/additional_fields`` (OR31): known codes of the right type (the operator's
  fields, :attr:`~MiraklOrderDesk.custom_fields`); refused fields come back in a 200's
  ``order_update_errors``, as the spec shows.
- ``PUT /api/orders/{id}/cancel`` (OR29) when ``can_cancel``; ``PUT /api/orders/cancel`` (OR30) on
  debited lines, at most what is left of each, with a known ``reason_code``.
- ``POST /api/orders/{id}/documents`` (OR74): the spec's file types only (no xml), at most 50.
- ``GET /api/shipping/carriers`` (SH21).

Orders come from customers, which a stand-in has none of: :meth:`MiraklOrderDesk.create_order` and
:meth:`~MiraklOrderDesk.set_state` play them and the operator, and so do the sandbox's controls
``POST /_sandbox/orders`` and ``POST /_sandbox/orders/{id}/status`` (``tradepost sandbox order`` and
``status``). Every change moves the order's ``last_updated_date``. :func:`shop_key_check` is the
request check a stand-in gives the desk.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from email.parser import BytesParser
from email.policy import HTTP
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.model import aware_time
from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import exact_json, json_object, look_up, same_secret, sandbox_route

__all__ = ["MiraklOrderDesk", "OrderRefusal", "shop_key_check"]

STATES = ("STAGING", "WAITING_ACCEPTANCE", "WAITING_DEBIT", "WAITING_DEBIT_PAYMENT", "SHIPPING", "SHIPPED",
          "TO_COLLECT", "RECEIVED", "CLOSED", "REFUSED", "CANCELED")  # fmt: skip
BEFORE_ACCEPTANCE = frozenset({"STAGING", "WAITING_ACCEPTANCE"})
DEBITED = frozenset({"SHIPPING"})
ENDED = frozenset({"REFUSED", "CANCELED"})
LIST_MAX = 100
UPDATE_DELTA = timedelta(minutes=2)
"""What the stand-in subtracts from ``start_update_date``; the real delta is not published."""
DOCUMENT_TYPES = frozenset({"csv", "doc", "xls", "xlsx", "ppt", "pdf", "odt", "ods", "odp", "txt", "rtf",
                            "png", "jpg", "gif", "zpl", "mov", "mp4"})  # fmt: skip
DOCUMENTS_MAX = 50
CARRIERS = (
    {"code": "CORREIOS", "label": "Correios", "standard_code": "CORREIOS",
     "tracking_url": "https://rastreamento.correios.com.br/app/index.php?objeto={trackingId}"},
    {"code": "JADLOG", "label": "Jadlog", "standard_code": "JADLOG",
     "tracking_url": "https://www.jadlog.com.br/tracking?cte={trackingId}"},
)  # fmt: skip
"""SH21's registered carriers (codes made up: Carrefour's are not public)."""
CUSTOM_FIELDS = {"nfe-key": "STRING", "nfe-number": "STRING", "nfe-issuance-date": "DATE", "nfe-url": "LINK"}
"""The operator's order custom fields (AF01): code -> type. Carrefour's codes are not public."""
REASONS = {"34": "Out of stock", "35": "Customer request", "36": "Price error"}
"""Cancellation reasons (RE01) by code; the operator's own."""
CUSTOMERS = (("Ana", "Souza"), ("Bruno", "Lima"), ("Carla", "Pereira"))
ADDRESSES = (
    ("Rua Augusta, 1508", "Apto 42", "São Paulo", "SP", "01304-001"),
    ("Avenida Atlântica, 2100", None, "Rio de Janeiro", "RJ", "22021-001"),
)
"""Made-up customers and addresses for sandbox orders (the streets exist; the people do not)."""


@dataclass
class OrderRefusal(_Refusal):
    """A 4xx in the shape the stand-in answers with: ``{status, message, code}``."""

    status: int
    message: str
    code: str = "VALIDATION_ERROR"

    def body(self) -> dict[str, Any]:
        return {"status": self.status, "message": self.message, "code": self.code}


class MiraklOrderDesk:
    """The orders of one Mirakl shop.

    ``offers`` maps a shop SKU to its offer (``price``, and ``quantity`` which an order takes
    from when present); ``authorize`` refuses a request without the shop key; ``clock`` stamps
    dates (tests pass their own to filter by time).
    """

    def __init__(
        self,
        offers: MutableMapping[str, dict[str, Any]],
        *,
        authorize: Callable[[Request], None],
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.offers, self._authorize = offers, authorize
        self.clock = clock or (lambda: datetime.now(UTC))
        self.orders: dict[str, dict[str, Any]] = {}
        """Order id -> the order as OR11 shows it (addresses included; hidden when shown)."""
        self.documents: dict[str, list[dict[str, Any]]] = {}
        self.custom_fields: dict[str, str] = dict(CUSTOM_FIELDS)
        self.required_fields: tuple[str, ...] = ("nfe-key", "nfe-number", "nfe-issuance-date")
        """Custom fields OR24 waits for (CARREFOUR.md: shipped needs the NF-e)."""
        self.reasons = dict(REASONS)
        self.partial_acceptance = False
        self.debit_on_acceptance = True
        """The operator debits the customer as soon as the shop accepts (a test may hold it)."""
        self.shop_can_cancel = True
        """Whether OR29 is open to the shop on debited orders (``can_cancel``); else OR30 only."""
        self._numbers = itertools.count(1)
        self._cancelation_ids = itertools.count(1001)

    def routes(self) -> list[Route]:
        """The order endpoints, the sandbox's controls included, for the stand-in's app."""
        return [
            Route("/api/orders", self.list_orders, methods=["GET"]),
            Route("/api/orders/cancel", self.cancel_lines, methods=["PUT"]),
            Route("/api/orders/{order_id}/accept", self.accept, methods=["PUT"]),
            Route("/api/orders/{order_id}/tracking", self.tracking, methods=["PUT"]),
            Route("/api/orders/{order_id}/ship", self.ship, methods=["PUT"]),
            Route("/api/orders/{order_id}/cancel", self.cancel_order, methods=["PUT"]),
            Route("/api/orders/{order_id}/additional_fields", self.additional_fields, methods=["PUT"]),
            Route("/api/orders/{order_id}/documents", self.upload_documents, methods=["POST"]),
            Route("/api/shipping/carriers", self.carriers, methods=["GET"]),
            sandbox_route("orders", self.sandbox_order),
            sandbox_route("orders/{order_id}/status", self.sandbox_state),
        ]

    # -- orders: made by tests and the sandbox ---------------------------------------------------

    def create_order(
        self,
        sku: str,
        quantity: int = 1,
        unit_price: Decimal | int | str | None = None,
        *,
        state: str = "WAITING_ACCEPTANCE",
        order_id: str | None = None,
        shipping_price: Decimal | int | str = "9.90",
    ) -> str:
        """A customer's order of one offer; returns its id (``<commercial id>-A``, as Mirakl names them).

        ``unit_price`` defaults to the offer's price, its discount price when it has one (a matching
        order); any other makes a divergent one. The units leave the offer's stock, stopping at 0.
        """
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError("quantity must be a whole number of at least 1")
        offer = self.offers.get(sku)
        if offer is None:
            raise ValueError(f"the shop has no offer with SKU {sku}")
        listed = offer.get("discount_price") or offer["price"]  # what the customer pays today
        price = Decimal(str(unit_price if unit_price is not None else listed))
        if not price.is_finite() or price <= 0:
            raise ValueError("unit_price must be greater than 0")
        number = next(self._numbers)
        key = order_id or f"CAR{number:08d}-A"
        if key in self.orders:
            raise ValueError(f"order {key} exists already")
        if isinstance(offer.get("quantity"), int):
            offer["quantity"] = max(0, offer["quantity"] - quantity)
        shipping = Decimal(str(shipping_price))
        now = self._stamp()
        first, last = CUSTOMERS[number % len(CUSTOMERS)]
        street, street_2, city, region, zip_code = ADDRESSES[number % len(ADDRESSES)]
        address = {
            "firstname": first,
            "lastname": last,
            "street_1": street,
            "street_2": street_2,
            "city": city,
            "state": region,
            "zip_code": zip_code,
            "country": "Brasil",
            "country_iso_code": "BRA",
            "phone": "11999990000",
        }
        self.orders[key] = {
            "order_id": key,
            "commercial_id": key.rsplit("-", 1)[0],
            "order_state": state,
            "created_date": now,
            "last_updated_date": now,
            "acceptance_decision_date": None,
            "currency_iso_code": "BRL",
            "customer": {
                "customer_id": f"C{number:06d}",
                "firstname": first,
                "lastname": last,
                "billing_address": dict(address),
                "shipping_address": address,
            },
            "order_lines": [self._line(key, 1, sku, offer, quantity, price, shipping, state, now)],
            "price": price * quantity,
            "shipping_price": shipping,
            "total_price": price * quantity + shipping,
            "total_commission": (price * quantity * Decimal("0.12")).quantize(Decimal("0.01")),
            "shipping_type_code": "NORMAL",
            "shipping_type_label": "Normal",
            "shipping_zone_code": "BR",
            "shipping_zone_label": "Brasil",
            "shipping_tracking": None,
            "shipping_carrier_code": None,
            "shipping_tracking_url": None,
            "order_additional_fields": [],
            "can_cancel": False,
            "can_shop_ship": True,
            "has_incident": False,
            "has_invoice": False,
            "has_customer_message": False,
            "fully_refunded": False,
            "leadtime_to_ship": 2,
            "order_tax_mode": "TAX_INCLUDED",
            "paymentType": "CREDIT_CARD",
            "payment_workflow": "PAY_ON_ACCEPTANCE",
            "fulfillment": {"center": {"code": "DEFAULT"}},
        }
        self._refresh(self.orders[key])
        return key

    def set_state(self, order_id: str, state: str) -> None:
        """Move an order (and its live lines) as the operator or the customer would: ``SHIPPING``
        (debited), ``CANCELED`` (the customer cancelled), ``WAITING_ACCEPTANCE`` (out of STAGING)…"""
        if state not in STATES:
            raise ValueError(f"state must be one of {', '.join(STATES)}")
        order = self.order_record(order_id)
        self._move(order, state)

    def order_record(self, order_id: str) -> dict[str, Any]:
        """The order as the stand-in holds it (KeyError when unknown)."""
        return self.orders[order_id]

    # -- the API ---------------------------------------------------------------------------------

    async def list_orders(self, request: Request) -> Response:
        """OR11: filters, ``sort=dateCreated`` asc or desc, ``offset`` and ``max`` (at most 100)."""
        self._authorize(request)
        query = request.query_params
        found = list(self.orders.values())
        ids = _listed(query, "order_ids")
        if ids is not None:
            if len(ids) > LIST_MAX:
                raise OrderRefusal(400, f"The limit of {LIST_MAX} is exceeded for the parameter : order_ids")
            found = [o for o in found if o["order_id"] in ids]
        states = _listed(query, "order_state_codes")
        if states is not None:
            unknown = sorted(set(states) - set(STATES))
            if unknown:
                raise OrderRefusal(400, f"unknown order state codes: {', '.join(unknown)}")
            found = [o for o in found if o["order_state"] in states]
        for name, stamp, delta in (
            ("start_date", "created_date", None),
            ("end_date", "created_date", None),
            ("start_update_date", "last_updated_date", UPDATE_DELTA),
            ("end_update_date", "last_updated_date", None),
        ):
            moment = _moment(query, name)
            if moment is None:
                continue
            if name.startswith("start"):
                since = moment - (delta or timedelta(0))
                found = [o for o in found if aware_time(o[stamp]) >= since]
            else:
                found = [o for o in found if aware_time(o[stamp]) <= moment]
        if query.get("sort", "dateCreated") != "dateCreated":
            raise OrderRefusal(400, "sort must be dateCreated")
        direction = query.get("order", "asc")
        if direction not in ("asc", "desc"):
            raise OrderRefusal(400, "order must be asc or desc")
        found.sort(key=lambda o: (o["created_date"], o["order_id"]), reverse=direction == "desc")
        offset, size = _whole(query, "offset", 0), _whole(query, "max", 10)
        if size > LIST_MAX or size < 1:
            raise OrderRefusal(400, f"max must be from 1 to {LIST_MAX}")
        page = [_shown(o) for o in found[offset : offset + size]]
        return exact_json({"orders": page, "total_count": len(found)})

    async def accept(self, request: Request) -> Response:
        """OR21: every line of a WAITING_ACCEPTANCE order accepted or refused."""
        self._authorize(request)
        order = self._order(request)
        body = await _object(request)
        lines = body.get("order_lines")
        if not isinstance(lines, list):
            raise OrderRefusal(400, "order_lines is required")
        if order["order_state"] != "WAITING_ACCEPTANCE":
            raise OrderRefusal(400, f"order is {order['order_state']}", "ORDER_INVALID_STATE")
        decisions: dict[str, bool] = {}
        own = {line["order_line_id"] for line in order["order_lines"]}
        for line in lines:
            if line is None:
                raise OrderRefusal(400, "an order line is null", "ORDER_LINE_NULL_ELEMENT")
            if not isinstance(line, Mapping) or not isinstance(line.get("accepted"), bool):
                raise OrderRefusal(400, "each order line needs id and accepted (a boolean)")
            line_id = str(line.get("id"))
            if line_id in decisions:
                raise OrderRefusal(400, f"order line {line_id} is given twice", "ORDER_LINE_DUPLICATE_ID")
            if line_id not in own:
                raise OrderRefusal(404, f"order line {line_id} is not in the order", "ORDER_LINE_NOT_FOUND")
            decisions[line_id] = line["accepted"]
        if set(decisions) != own:
            raise OrderRefusal(
                400, "every order line needs a decision", "ORDER_LINE_ACCEPTANCE_DECISION_MISSING"
            )
        if len(set(decisions.values())) > 1 and not self.partial_acceptance:
            raise OrderRefusal(
                400, "partial acceptance is disabled for this shop", "ORDER_PARTIAL_ACCEPTANCE_DISABLED"
            )
        accepted = any(decisions.values())
        after = ("SHIPPING" if self.debit_on_acceptance else "WAITING_DEBIT") if accepted else "REFUSED"
        for line in order["order_lines"]:
            line["order_line_state"] = after if decisions[line["order_line_id"]] else "REFUSED"
        order["acceptance_decision_date"] = self._stamp()
        self._move(order, after, lines_too=False)
        return Response(status_code=204)

    async def tracking(self, request: Request) -> Response:
        """OR23: a registered carrier by code, or an unregistered one by name."""
        self._authorize(request)
        order = self._order(request)
        body = await _object(request)
        if order["order_state"] not in ("SHIPPING", "SHIPPED"):
            raise OrderRefusal(400, f"order is {order['order_state']}", "ORDER_INVALID_STATE")
        code, name = body.get("carrier_code"), body.get("carrier_name")
        known = {c["code"]: c for c in CARRIERS}
        if code is not None and code not in known:
            raise OrderRefusal(400, f"carrier {code} is not registered; send carrier_name instead")
        if code is None and not (isinstance(name, str) and name.strip()):
            raise OrderRefusal(400, "carrier_code (registered carrier) or carrier_name is required")
        number = body.get("tracking_number")
        if not isinstance(number, str) or not number.strip():
            raise OrderRefusal(400, "tracking_number is required")
        url = (
            str(known[code]["tracking_url"]).replace("{trackingId}", number)
            if code
            else body.get("carrier_url")
        )
        order.update(
            shipping_tracking=number,
            shipping_carrier_code=code,
            shipping_company=name or known.get(code or "", {}).get("label"),
            shipping_tracking_url=url,
        )
        self._touch(order)
        return Response(status_code=204)

    async def ship(self, request: Request) -> Response:
        """OR24: only in SHIPPING, with tracking and the required custom fields (the NF-e)."""
        self._authorize(request)
        order = self._order(request)
        if order["order_state"] != "SHIPPING":
            raise OrderRefusal(400, f"order is {order['order_state']}", "ORDER_INVALID_STATE")
        if not order.get("shipping_tracking"):
            raise OrderRefusal(400, "the order has no tracking number (OR23 first)")
        missing = [c for c in self.required_fields if c not in _fields(order)]
        if missing:
            raise OrderRefusal(400, f"required order fields are missing: {', '.join(missing)}")
        now = self._stamp()
        for line in order["order_lines"]:
            if line["order_line_state"] == "SHIPPING":
                line["shipped_date"] = now
        self._move(order, "SHIPPED")
        return Response(status_code=204)

    async def additional_fields(self, request: Request) -> Response:
        """OR31: order custom fields; unknown codes, wrong types and bad values are reported."""
        self._authorize(request)
        order = self._order(request)
        body = await _object(request)
        fields = body.get("order_additional_fields") or []
        if not isinstance(fields, list):
            raise OrderRefusal(400, "order_additional_fields must be a list")
        errors = [e for field in fields for e in self._field_errors(field)]
        if errors:
            return exact_json({"order_update_errors": {"errors": errors, "input": body}})
        current = {f["code"]: f for f in order["order_additional_fields"]}
        for field in fields:
            if field.get("value") in (None, ""):
                current.pop(field["code"], None)
            else:
                current[field["code"]] = {
                    "code": field["code"],
                    "type": field["type"],
                    "value": field["value"],
                }
        order["order_additional_fields"] = list(current.values())
        self._touch(order)
        return exact_json(
            {"order_update_result": {"order_additional_fields": order["order_additional_fields"]}}
        )

    async def cancel_order(self, request: Request) -> Response:
        """OR29: the whole order, when Mirakl lets the shop (``can_cancel``)."""
        self._authorize(request)
        order = self._order(request)
        if not order["can_cancel"]:
            raise OrderRefusal(400, f"order {order['order_id']} cannot be canceled", "ORDER_INVALID_STATE")
        self._move(order, "CANCELED")
        return Response(status_code=204)

    async def cancel_lines(self, request: Request) -> Response:
        """OR30: cancellations of debited lines, each within what is left of it."""
        self._authorize(request)
        body = await _object(request)
        wanted = body.get("cancelations")
        if not isinstance(wanted, list) or not wanted:
            raise OrderRefusal(400, "cancelations is required")
        checked = [self._checked_cancelation(entry) for entry in wanted]
        created = []
        for order, line, entry in checked:
            cancelation = {
                "cancelation_id": str(next(self._cancelation_ids)),
                "amount": entry["amount"],
                "shipping_amount": entry["shipping_amount"],
                "quantity": entry["quantity"],
                "reason_code": entry["reason_code"],
                "taxes": entry.get("taxes") or [],
                "shipping_taxes": entry.get("shipping_taxes") or [],
                "currency_iso_code": order["currency_iso_code"],
                "created_date": self._stamp(),
            }
            line["cancelations"].append(cancelation)
            created.append({**cancelation, "order_line_id": line["order_line_id"]})
            if _left_of(line) == 0:
                line["order_line_state"] = "CANCELED"
            if all(item["order_line_state"] in ENDED for item in order["order_lines"]):
                self._move(order, "CANCELED")
            else:
                self._touch(order)
        return exact_json({"cancelations": created})

    async def upload_documents(self, request: Request) -> Response:
        """OR74: the spec's file types, distinct names, at most 50 documents an order."""
        self._authorize(request)
        order = self._order(request)
        files = [
            (name, data)
            for field, name, data in _form_parts(request, await request.body())
            if field == "files"
        ]
        kept = self.documents.setdefault(order["order_id"], [])
        failed = []
        for name, data in files:
            extension = name.rpartition(".")[2].lower()
            error = None
            if extension not in DOCUMENT_TYPES:
                error = f"file type {extension or '(none)'} is not allowed"
            elif not name.isascii() or any(d["file_name"] == name for d in kept):
                error = "file names must be distinct US-ASCII names"
            elif len(kept) >= DOCUMENTS_MAX:
                error = f"an order has at most {DOCUMENTS_MAX} documents"
            if error:
                problem = {"code": "valid_order_document.file", "field": "files", "message": error}
                failed.append({"file_name": name, "errors": [problem]})
            else:
                kept.append({"file_name": name, "size": len(data)})
        return exact_json({"errors_count": len(failed), "order_documents": failed})

    async def carriers(self, request: Request) -> Response:
        """SH21: the registered carriers, by label."""
        self._authorize(request)
        return exact_json({"carriers": sorted(CARRIERS, key=lambda c: str(c["label"]))})

    async def sandbox_order(self, request: Request) -> Response:
        """``POST /_sandbox/orders`` ``{sku_id, quantity?, unit_price?, state?, order_id?}``
        (what ``tradepost sandbox order`` sends)."""
        body = await _object(request)
        known = {"sku_id", "quantity", "unit_price", "state", "order_id"}
        if set(body) - known or not isinstance(body.get("sku_id"), str | int):
            raise OrderRefusal(400, f"give sku_id and only {', '.join(sorted(known))}")
        try:
            order_id = self.create_order(
                str(body["sku_id"]),
                body.get("quantity", 1),
                body.get("unit_price"),
                state=str(body.get("state", "WAITING_ACCEPTANCE")),
                order_id=body.get("order_id"),
            )
        except (ValueError, ArithmeticError) as refused:
            raise OrderRefusal(400, str(refused)) from None
        return exact_json({"order_id": order_id}, 201)

    async def sandbox_state(self, request: Request) -> Response:
        """``POST /_sandbox/orders/{id}/status`` ``{status}``: a Mirakl state (what ``tradepost
        sandbox status`` sends); see :meth:`set_state`."""
        order = self._order(request)
        body = await _object(request)
        try:
            self.set_state(order["order_id"], str(body.get("status")))
        except ValueError as refused:
            raise OrderRefusal(400, str(refused)) from None
        return exact_json(_shown(order))

    # -- state -----------------------------------------------------------------------------------

    def _line(
        self,
        order_id: str,
        index: int,
        sku: str,
        offer: Mapping[str, Any],
        quantity: int,
        price: Decimal,
        shipping: Decimal,
        state: str,
        now: str,
    ) -> dict[str, Any]:
        return {
            "order_line_id": f"{order_id}-{index}",
            "order_line_index": index,
            "order_line_state": state,
            "offer_id": int(offer.get("offer_id") or 2000 + index),
            "offer_sku": sku,
            "offer_state_code": "11",
            "product_sku": str(offer.get("product_sku") or f"P{sku}"),
            "product_shop_sku": sku,
            "product_title": str(offer.get("product_title") or f"Produto {sku}"),
            "category_code": "default",
            "category_label": "Default",
            "description": "",
            "quantity": quantity,
            "price_unit": price,
            "price": price * quantity,
            "shipping_price": shipping,
            "total_price": price * quantity + shipping,
            "commission_fee": (price * quantity * Decimal("0.12")).quantize(Decimal("0.01")),
            "commission_rate_vat": Decimal(0),
            "commission_vat": Decimal(0),
            "total_commission": (price * quantity * Decimal("0.12")).quantize(Decimal("0.01")),
            "taxes": [],
            "shipping_taxes": [],
            "cancelations": [],
            "refunds": [],
            "order_line_additional_fields": [],
            "product_medias": [],
            "can_refund": False,
            "created_date": now,
            "last_updated_date": now,
        }

    def _checked_cancelation(self, entry: Any) -> tuple[dict[str, Any], dict[str, Any], Mapping[str, Any]]:
        if not isinstance(entry, Mapping):
            raise OrderRefusal(400, "each cancelation must be an object")
        missing = [
            k
            for k in ("order_line_id", "quantity", "amount", "shipping_amount", "reason_code")
            if entry.get(k) is None
        ]
        if missing:
            raise OrderRefusal(400, f"cancelation fields missing: {', '.join(missing)}")
        line_id = str(entry["order_line_id"])
        found = [
            (o, ln) for o in self.orders.values() for ln in o["order_lines"] if ln["order_line_id"] == line_id
        ]
        if not found:
            raise OrderRefusal(404, f"order line {line_id} does not exist", "ORDER_LINE_NOT_FOUND")
        order, line = found[0]
        if order["order_state"] not in DEBITED or line["order_line_state"] in ENDED:
            raise OrderRefusal(400, f"order line {line_id} cannot be canceled now", "ORDER_INVALID_STATE")
        if str(entry["reason_code"]) not in self.reasons:
            raise OrderRefusal(400, f"reason code {entry['reason_code']} is not a cancelation reason")
        quantity = entry["quantity"]
        if not isinstance(quantity, int) or isinstance(quantity, bool) or not 0 <= quantity <= _left_of(line):
            raise OrderRefusal(400, f"order line {line_id}: quantity exceeds what is left to cancel")
        done = sum((Decimal(str(c["amount"])) for c in line["cancelations"]), Decimal(0))
        if Decimal(str(entry["amount"])) > line["price"] - done:
            raise OrderRefusal(400, f"order line {line_id}: amount exceeds what is left to cancel")
        return order, line, entry

    def _field_errors(self, field: Any) -> list[dict[str, str]]:
        if not isinstance(field, Mapping) or not field.get("code"):
            return [{"code": "required", "field": "code", "message": "each field needs a code"}]
        code, kind = str(field["code"]), self.custom_fields.get(str(field["code"]))
        if kind is None:
            return [{"code": "unknown", "field": code, "message": f"no order custom field {code}"}]
        if field.get("type") != kind:
            return [{"code": "type", "field": code, "message": f"{code} is a {kind} field"}]
        value = field.get("value")
        if kind == "DATE" and value not in (None, ""):
            try:
                aware_time(str(value).replace("Z", "+00:00"))
            except ValueError:
                return [{"code": "format", "field": code, "message": f"{code} needs an ISO 8601 date-time"}]
        return []

    def _move(self, order: dict[str, Any], state: str, *, lines_too: bool = True) -> None:
        order["order_state"] = state
        if lines_too:
            for line in order["order_lines"]:
                if line["order_line_state"] not in ENDED or state in ENDED:
                    line["order_line_state"] = state
        self._refresh(order)
        self._touch(order)

    def _refresh(self, order: dict[str, Any]) -> None:
        state = order["order_state"]
        order["can_cancel"] = self.shop_can_cancel and state in (
            "WAITING_DEBIT",
            "WAITING_DEBIT_PAYMENT",
            "SHIPPING",
        )

    def _touch(self, order: dict[str, Any]) -> None:
        now = self._stamp()
        order["last_updated_date"] = now
        for line in order["order_lines"]:
            line["last_updated_date"] = now

    def _order(self, request: Request) -> dict[str, Any]:
        key = str(request.path_params["order_id"])
        return look_up(
            self.orders, key, lambda k: OrderRefusal(404, f"order {k} not found", "ORDER_NOT_FOUND")
        )

    def _stamp(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


def shop_key_check(api_key: str, shop_id: str) -> Callable[[Request], None]:
    """The desk's ``authorize``: the shop key raw in ``Authorization`` (401), and ``shop_id``, when
    given, naming this shop (403), as the catalog stand-in checks them."""

    def authorize(request: Request) -> None:
        if not same_secret(request.headers.get("Authorization"), api_key):
            raise OrderRefusal(401, "Unauthorized: the shop API key is missing or invalid", "UNAUTHORIZED")
        shop = request.query_params.get("shop_id")
        if shop is not None and shop != shop_id:
            raise OrderRefusal(403, f"Forbidden: shop {shop} is not reachable with this key", "FORBIDDEN")

    return authorize


def _shown(order: Mapping[str, Any]) -> dict[str, Any]:
    """The order as OR11 answers: no addresses before acceptance."""
    shown = dict(order)
    if order["order_state"] in BEFORE_ACCEPTANCE:
        shown["customer"] = {**order["customer"], "shipping_address": None, "billing_address": None}
    return shown


def _form_parts(request: Request, body: bytes) -> list[tuple[str, str, bytes]]:
    """A multipart/form-data body's parts as (field, file name, bytes), read with the standard
    library's MIME parser (starlette's form parsing needs python-multipart, which is not a
    dependency)."""
    content_type = request.headers.get("Content-Type", "")
    if not content_type.startswith("multipart/form-data"):
        raise OrderRefusal(400, "the body must be multipart/form-data")
    message = BytesParser(policy=HTTP).parsebytes(f"Content-Type: {content_type}\r\n\r\n".encode() + body)
    parts = []
    for part in message.iter_parts():
        field = part.get_param("name", header="content-disposition")
        payload = part.get_payload(decode=True)
        parts.append(
            (str(field or ""), str(part.get_filename() or ""), payload if isinstance(payload, bytes) else b"")
        )
    return parts


def _fields(order: Mapping[str, Any]) -> dict[str, Any]:
    return {f["code"]: f["value"] for f in order["order_additional_fields"]}


def _left_of(line: Mapping[str, Any]) -> int:
    return int(line["quantity"]) - sum(int(c["quantity"]) for c in line["cancelations"])


async def _object(request: Request) -> dict[str, Any]:
    return await json_object(
        request,
        OrderRefusal(400, "the body is not valid JSON"),
        OrderRefusal(400, "the body must be an object"),
    )


def _listed(query: Mapping[str, str], name: str) -> list[str] | None:
    value = query.get(name)
    return [part.strip() for part in value.split(",") if part.strip()] if value else None


def _whole(query: Mapping[str, str], name: str, default: int) -> int:
    value = query.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise OrderRefusal(400, f"{name} must be a whole number")
    return int(value)


def _moment(query: Mapping[str, str], name: str) -> datetime | None:
    value = query.get(name)
    if value is None:
        return None
    try:
        return aware_time(value.replace("Z", "+00:00"))
    except ValueError:
        raise OrderRefusal(400, f"{name} must be an ISO 8601 date-time with a time zone") from None
