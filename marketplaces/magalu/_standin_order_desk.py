"""The Magalu stand-in's order desk: orders, deliveries, NF-e invoices, shippings and finishings of
the Open API's seller v1, and the sandbox's controls that play the customer and Magalu.

Why an object of its own: the stand-in's portfolio (SKUs, prices, stocks) and its orders are two
APIs with their own state. :class:`MagaluOrderDesk` is a component a stand-in owns and routes the
order endpoints to; it is given only what it needs (the seller's SKUs, which orders take stock
from, the request check, the sales channel and the clock) and imports nothing of the stand-in.

What it serves and checks (``shared/specs/magalu/API.md`` sections 3 and 5), answering refusals as
``{"error": <code>, "message": <text>}`` (Magalu's error page could not be read: a guess):

- ``GET /seller/v1/orders``: ``status``, ``code``, ``purchased_at__``/``updated_at__`` with ``ge``,
  ``gte``, ``le`` or ``lte`` (both spellings: which one Magalu takes is unverified), ``_sort``
  (``purchased_at``, ``created_at`` or ``updated_at``, ``:asc``/``:desc``), ``_offset`` and
  ``_limit`` (at most :data:`LIST_MAX`); the ``meta`` + ``results`` envelope with ``links``.
- ``GET /seller/v1/orders/{id}``, ``/deliveries``, ``/deliveries/{id}``, ``/deliveries/{id}/histories``
  and ``/deliveries/{id}/invoices``: every read needs ``X-Channel-Id`` naming the seller's channel
  (400 without it; an order of another channel is not found).
- ``POST /seller/v1/deliveries/{id}/invoices`` on an ``approved`` delivery only (``invalid_status``,
  409): a 44-digit ``key``, ``issued_at``, a decimal ``amount``, the ``xml`` (the doc marks it
  required) and ``channel.id``; a key already on the delivery is ``invoice_already_exists`` (409).
  The delivery becomes ``invoiced``; the invoice waits in ``awaiting_validation``.
- ``POST /seller/v1/deliveries/{id}/shippings`` on an ``invoiced`` delivery only (``invalid_status``):
  ``channel.id``, a ``carrier.name``, a ``protocol`` or ``tracking_url``, ISO 8601 ``dates``; the
  delivery becomes ``shipped``. ``POST .../finishing`` moves a ``shipped`` one to ``delivered``.

There is no seller cancellation, as in the API. Orders come from customers, which a stand-in has
none of: :meth:`MagaluOrderDesk.create_order` and :meth:`~MagaluOrderDesk.set_status` play them and
Magalu (payment approved, customer cancelled, finished), and so do the sandbox's controls ``POST
/_sandbox/orders`` and ``POST /_sandbox/orders/{id}/status`` (``tradepost sandbox order`` and
``order-status``). Every change moves ``updated_at`` and adds to the delivery's history.

The catalog stand-in (:class:`~marketplaces.magalu.standin.MagaluStandin`) serves a desk given as
its ``order_desk``: :func:`order_desk_for` makes one on its priced SKUs (:class:`Portfolio`), its
tokens and its channel; :func:`mount_order_desk` gives one to a stand-in already built.
"""

from __future__ import annotations

import itertools
import re
import uuid
from collections.abc import Callable, Iterable, Iterator, Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.model import aware_time
from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import exact_json, json_object, look_up, sandbox_route

__all__ = ["MagaluOrderDesk", "OrderRefusal", "Portfolio", "mount_order_desk", "order_desk_for"]

ORDER_STATUSES = ("new", "approved", "cancelled", "finished")
DELIVERY_STATUSES = ("new", "approved", "invoiced", "shipped", "delivered", "cancelled", "frozen")
LIST_MAX = 100
LIST_DEFAULT = 50
NFE_KEY = re.compile(r"\d{44}")
NORMALIZER = 100
MARKETPLACE_CNPJ = "47960950000121"
"""Magazine Luiza's CNPJ, as an order's ``channel.marketplace.document``."""
CUSTOMERS = ("Ana Souza", "Bruno Lima", "Carla Pereira")
ADDRESSES = (
    ("Rua Augusta", "1508", "Apto 42", "Consolação", "São Paulo", "SP", "01304001"),
    ("Avenida Atlântica", "2100", None, "Copacabana", "Rio de Janeiro", "RJ", "22021001"),
)
"""Made-up customers and addresses for sandbox orders (the streets exist; the people do not)."""
SANDBOX_ORDER_FIELDS = {
    "sku_id": "sku",
    "quantity": "quantity",
    "unit_price": "unit_price",
    "status": "status",
    "order_id": "order_id",
}
"""A sandbox order's body field -> :meth:`MagaluOrderDesk.create_order`'s argument."""


@dataclass
class OrderRefusal(_Refusal):
    """A 4xx in the shape the stand-in answers with: ``{error, message}``."""

    status: int
    message: str
    code: str = "bad_request"

    def body(self) -> dict[str, Any]:
        return {"error": self.code, "message": self.message}


class MagaluOrderDesk:
    """The orders of one Magalu seller on one sales channel.

    ``skus`` maps a seller SKU to ``price`` (Decimal reais), ``title`` and ``stock`` (a record
    whose ``quantity`` an order takes from, when present); ``authorize`` refuses a request without
    a live token; ``clock`` stamps dates.
    """

    def __init__(
        self,
        skus: Mapping[str, Mapping[str, Any]],
        *,
        authorize: Callable[[Request], None],
        channel_id: str,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.skus, self._authorize, self.channel_id = skus, authorize, channel_id
        self.clock = clock or (lambda: datetime.now(UTC))
        self.orders: dict[str, dict[str, Any]] = {}
        """Order id -> the order as ``GET /seller/v1/orders/{id}`` shows it; its deliveries are the
        very records :attr:`deliveries` holds."""
        self.deliveries: dict[str, dict[str, Any]] = {}
        self._numbers = itertools.count(1)

    def routes(self) -> list[Route]:
        """The order endpoints, the sandbox's controls included, for the stand-in's app."""
        return [
            Route("/seller/v1/orders", self.list_orders, methods=["GET"]),
            Route("/seller/v1/orders/{order_id}", self.get_order, methods=["GET"]),
            Route("/seller/v1/deliveries", self.list_deliveries, methods=["GET"]),
            Route("/seller/v1/deliveries/{delivery_id}", self.get_delivery, methods=["GET"]),
            Route("/seller/v1/deliveries/{delivery_id}/histories", self.histories, methods=["GET"]),
            Route("/seller/v1/deliveries/{delivery_id}/invoices", self.invoices, methods=["GET"]),
            Route("/seller/v1/deliveries/{delivery_id}/invoices", self.add_invoice, methods=["POST"]),
            Route("/seller/v1/deliveries/{delivery_id}/shippings", self.ship, methods=["POST"]),
            Route("/seller/v1/deliveries/{delivery_id}/finishing", self.finish, methods=["POST"]),
            sandbox_route("orders", self.sandbox_order),
            sandbox_route("orders/{order_id}/status", self.sandbox_status),
        ]

    # -- orders: made by tests and the sandbox ---------------------------------------------------

    def create_order(
        self,
        sku: str | Sequence[str],
        quantity: int = 1,
        unit_price: Decimal | int | str | None = None,
        *,
        status: str = "approved",
        order_id: str | None = None,
        freight: Decimal | int | str = "9.90",
        fulfillment: bool = False,
    ) -> str:
        """A customer's order; returns its id. Each SKU given is a delivery of its own (a package),
        ``quantity`` units at ``unit_price`` (default the SKU's price: a matching order; any other
        makes a divergent one), the freight on the first. The units leave the SKU's stock.
        ``fulfillment``: Magalu's logistics carry it (it labels and tracks the package itself)."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}")
        if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 1:
            raise ValueError("quantity must be a whole number of at least 1")
        skus = [sku] if isinstance(sku, str) else list(sku)
        unknown = [s for s in skus if s not in self.skus]
        if not skus or unknown:
            raise ValueError(f"the seller has no SKU {unknown[0] if unknown else '(none)'}")
        number = next(self._numbers)
        key = order_id or str(uuid.UUID(int=number, version=4))
        if key in self.orders:
            raise ValueError(f"order {key} exists already")
        code = f"{1_400_000_000_000 + number}"
        now = self._stamp()
        deliveries = [
            self._delivery(code, n, s, quantity, unit_price, freight if n == 1 else 0, number, fulfillment)
            for n, s in enumerate(skus, 1)
        ]
        for delivery in deliveries:
            self.deliveries[delivery["id"]] = delivery
        total = sum((d["amounts"]["total"] for d in deliveries), 0)
        self.orders[key] = {
            "id": key,
            "code": code,
            "status": status,
            "created_at": now,
            "purchased_at": now,
            "approved_at": now if status != "new" else None,
            "updated_at": now,
            "channel": {
                "id": self.channel_id,
                "marketplace": {"document": MARKETPLACE_CNPJ},
                "extras": {"alias": "magalu"},
            },
            "customer": {
                "name": CUSTOMERS[number % len(CUSTOMERS)],
                "customer_type": "cpf",
                "document_number": f"{number:011d}",
                "email": f"cliente{number}@example.com",
                "phones": [
                    {"country_code": "55", "area_code": "11", "number": "999990000", "type": "mobile"}
                ],
            },
            "payments": [_money({"method": "credit_card", "installments": 1}, total, "amount")],
            "amounts": {
                **_money({}, total, "total"),
                "discount": {"total": 0, "shared": 0},
                "freight": {"total": _cents(freight), "shared": 0},
                "commission": {"total": total * 12 // 100},
            },
            "deliveries": deliveries,
        }
        self._move(self.orders[key], status)
        return key

    def set_status(self, order_id: str, status: str) -> None:
        """Move an order as Magalu would: ``approved`` (paid), ``cancelled`` (the customer or a failed
        payment), ``finished``; its live deliveries follow (``delivered`` for a finished order)."""
        if status not in ORDER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ORDER_STATUSES)}")
        self._move(self.order_record(order_id), status)

    def order_record(self, order_id: str) -> dict[str, Any]:
        """The order as the stand-in holds it (KeyError when unknown)."""
        return self.orders[order_id]

    # -- the API ---------------------------------------------------------------------------------

    async def list_orders(self, request: Request) -> Response:
        """``GET /seller/v1/orders``: filters, sorting, ``_offset``/``_limit`` pages."""
        self._read_check(request)
        query = request.query_params
        found = [o for o in self.orders.values() if o["channel"]["id"] == self.channel_id]
        for name in ("status", "code"):
            if query.get(name) is not None:
                found = [o for o in found if o[name] == query[name]]
        found = _filtered(found, query, ("purchased_at", "updated_at", "created_at"))
        return _page(request, _sorted(found, query.get("_sort", "purchased_at:asc")))

    async def get_order(self, request: Request) -> Response:
        self._read_check(request)
        return exact_json(self._order(request))

    async def list_deliveries(self, request: Request) -> Response:
        self._read_check(request)
        found = list(self.deliveries.values())
        tag = request.query_params.get("tag_code")
        if tag is not None:
            found = [d for d in found if any(lb.get("value") == tag for lb in d["shipping"]["labels"])]
        found = _filtered(found, request.query_params, ("updated_at", "created_at"))
        return _page(request, _sorted(found, request.query_params.get("_sort", "created_at:asc")))

    async def get_delivery(self, request: Request) -> Response:
        self._read_check(request)
        return exact_json(self._delivery_of(request))

    async def histories(self, request: Request) -> Response:
        self._read_check(request)
        found = _filtered(self._delivery_of(request)["histories"], request.query_params, ("created_at",))
        return _page(request, _sorted(found, request.query_params.get("_sort", "created_at:asc")))

    async def invoices(self, request: Request) -> Response:
        self._read_check(request)
        return _page(request, self._delivery_of(request)["invoices"])

    async def add_invoice(self, request: Request) -> Response:
        """The NF-e of an approved delivery: 201 ``{issued_at, key, status}``."""
        self._authorize(request)
        delivery, body = self._delivery_of(request), await self._body(request)
        _require(body, ("key", "issued_at", "amount", "xml"))
        key = str(body["key"])
        if not NFE_KEY.fullmatch(key):
            raise OrderRefusal(400, "key must be the NF-e's 44-digit access key", "invalid_invoice_key")
        _moment(body["issued_at"], "issued_at")
        if (
            isinstance(body["amount"], bool)
            or not isinstance(body["amount"], int | Decimal)
            or body["amount"] <= 0
        ):
            raise OrderRefusal(400, "amount must be a decimal number greater than 0")
        if any(invoice["key"] == key for invoice in delivery["invoices"]):
            raise OrderRefusal(
                409, f"invoice {key} already exists for this delivery", "invoice_already_exists"
            )
        self._in_status(delivery, "approved")
        invoice = {"key": key, "issued_at": str(body["issued_at"]), "amount": body["amount"]}
        delivery["invoices"].append({**invoice, "status": "awaiting_validation", "xml": str(body["xml"])})
        self._move_delivery(delivery, "invoiced")
        return exact_json(
            {"issued_at": invoice["issued_at"], "key": key, "status": "awaiting_validation"}, 201
        )

    async def ship(self, request: Request) -> Response:
        """The tracking of an invoiced delivery: 201 ``{id, created_at}``."""
        self._authorize(request)
        delivery, body = self._delivery_of(request), await self._body(request)
        carrier = body.get("carrier")
        if not isinstance(carrier, Mapping) or not str(carrier.get("name") or "").strip():
            raise OrderRefusal(400, "carrier.name is required")
        if not body.get("protocol") and not body.get("tracking_url"):
            raise OrderRefusal(400, "protocol or tracking_url is required")
        dates = body.get("dates") or {}
        if not isinstance(dates, Mapping):
            raise OrderRefusal(400, "dates must be an object")
        for name, value in dates.items():
            _moment(value, f"dates.{name}")
        self._in_status(delivery, "invoiced")
        shipping_id, now = str(uuid.uuid4()), self._stamp()
        delivery["shipping"]["tracking"] = {
            "id": shipping_id,
            "protocol": body.get("protocol"),
            "url": body.get("tracking_url"),
            "carrier": {"name": carrier["name"]},
            "labels": body.get("labels") or [],
            "dates": dict(dates),
            "created_at": now,
        }
        self._move_delivery(delivery, "shipped")
        return exact_json({"id": shipping_id, "created_at": now}, 201)

    async def finish(self, request: Request) -> Response:
        """A shipped delivery reached the customer (``delivered_at``, else now)."""
        self._authorize(request)
        delivery, body = self._delivery_of(request), await self._body(request)
        if body.get("delivered_at") is not None:
            _moment(body["delivered_at"], "delivered_at")
        self._in_status(delivery, "shipped")
        self._move_delivery(delivery, "delivered")
        return exact_json({"id": delivery["id"], "created_at": self._stamp()}, 201)

    async def sandbox_order(self, request: Request) -> Response:
        """``POST /_sandbox/orders`` ``{sku_id, quantity?, unit_price?, status?, order_id?}``
        (what ``tradepost sandbox order`` sends)."""
        body = await _object(request)
        arguments = {SANDBOX_ORDER_FIELDS.get(name, ""): value for name, value in body.items()}
        if "" in arguments or not isinstance(arguments.get("sku"), str | int):
            raise OrderRefusal(400, f"give sku_id and only {', '.join(sorted(SANDBOX_ORDER_FIELDS))}")
        try:
            order_id = self.create_order(**{**arguments, "sku": str(arguments["sku"])})
        except (ValueError, TypeError, ArithmeticError) as refused:
            raise OrderRefusal(400, str(refused)) from None
        return exact_json({"order_id": order_id}, 201)

    async def sandbox_status(self, request: Request) -> Response:
        """``POST /_sandbox/orders/{id}/status`` ``{status}`` (``tradepost sandbox order-status``)."""
        order = self._order(request)
        body = await _object(request)
        try:
            self.set_status(order["id"], str(body.get("status")))
        except ValueError as refused:
            raise OrderRefusal(400, str(refused)) from None
        return exact_json(order)

    # -- state -----------------------------------------------------------------------------------

    def _delivery(
        self,
        code: str,
        n: int,
        sku: str,
        quantity: int,
        unit_price: Decimal | int | str | None,
        freight: Decimal | int | str,
        number: int,
        fulfillment: bool,
    ) -> dict[str, Any]:
        record = self.skus[sku]
        price = _cents(unit_price if unit_price is not None else record["price"])
        if price <= 0:
            raise ValueError("unit_price must be greater than 0")
        stock = record.get("stock")
        if isinstance(stock, MutableMapping) and isinstance(stock.get("quantity"), int):
            stock["quantity"] = max(0, stock["quantity"] - quantity)
        street, house, complement, district, city, state, zipcode = ADDRESSES[number % len(ADDRESSES)]
        now = self._stamp()
        return {
            "id": str(uuid.UUID(int=number * 100 + n, version=4)),
            "code": f"{code}-{n}",
            "status": "new",
            "seller": {"id": "seller-standin", "name": "Loja Tradepost"},
            "amounts": {
                **_money({}, price * quantity + _cents(freight), "total"),
                "freight": _cents(freight),
            },
            "items": [
                {
                    "sequencial": 1,
                    "quantity": quantity,
                    "unit_price": _money({}, price, "value"),
                    "amounts": _money({}, price * quantity, "total"),
                    "info": {"sku": sku, "id": sku, "name": str(record.get("title") or f"Produto {sku}")},
                }
            ],
            "shipping": {
                "provider": {
                    "name": "Magalu Entregas" if fulfillment else "Transportadora do seller",
                    "extras": {"is_fulfillment": fulfillment},
                },
                "recipient": {
                    "name": CUSTOMERS[number % len(CUSTOMERS)],
                    "address": {
                        "street": street,
                        "number": house,
                        "complement": complement,
                        "district": district,
                        "city": city,
                        "state": state,
                        "zipcode": zipcode,
                        "country": "BR",
                    },
                },
                "tracking": None,
                "labels": [],
            },
            "invoices": [],
            "histories": [],
            "created_at": now,
            "updated_at": now,
        }

    def _move(self, order: dict[str, Any], status: str) -> None:
        order["status"] = status
        if status == "approved" and not order.get("approved_at"):
            order["approved_at"] = self._stamp()
        follow = {"approved": "approved", "cancelled": "cancelled", "finished": "delivered"}.get(status)
        for delivery in order["deliveries"]:
            if follow == "approved" and delivery["status"] != "new":
                continue
            if delivery["status"] not in ("cancelled", "delivered") and follow:
                self._move_delivery(delivery, follow, touch=False)
        order["updated_at"] = self._stamp()

    def _move_delivery(self, delivery: dict[str, Any], status: str, *, touch: bool = True) -> None:
        now = self._stamp()
        delivery["status"], delivery["updated_at"] = status, now
        delivery["histories"].append(
            {"status": status, "description": status, "created_at": now, "extras": {}}
        )
        if touch:
            for order in self.orders.values():
                if any(d is delivery for d in order["deliveries"]):
                    order["updated_at"] = now

    def _in_status(self, delivery: Mapping[str, Any], wanted: str) -> None:
        if delivery["status"] != wanted:
            raise OrderRefusal(
                409, f"delivery {delivery['code']} is {delivery['status']}, not {wanted}", "invalid_status"
            )

    def _read_check(self, request: Request) -> None:
        self._authorize(request)
        channel = request.headers.get("X-Channel-Id")
        if not channel:
            raise OrderRefusal(400, "the X-Channel-Id header is required", "missing_channel")
        if channel != self.channel_id:
            raise OrderRefusal(404, f"no orders in channel {channel}", "resource_not_found")

    async def _body(self, request: Request) -> dict[str, Any]:
        body = await _object(request)
        channel = body.get("channel")
        if not isinstance(channel, Mapping) or channel.get("id") != self.channel_id:
            raise OrderRefusal(400, "channel.id must name the seller's sales channel")
        return body

    def _order(self, request: Request) -> dict[str, Any]:
        return look_up(self.orders, str(request.path_params["order_id"]), _not_found("order"))

    def _delivery_of(self, request: Request) -> dict[str, Any]:
        return look_up(self.deliveries, str(request.path_params["delivery_id"]), _not_found("delivery"))

    def _stamp(self) -> str:
        return self.clock().astimezone(UTC).isoformat(timespec="milliseconds").replace("+00:00", "Z")


class Portfolio(Mapping[str, Mapping[str, Any]]):
    """The catalog stand-in's SKUs as the desk sells them: those with a price, in reais, their title
    and their stock record (an order takes from it, as a sale does on Magalu)."""

    def __init__(self, standin: Any) -> None:
        self.standin = standin

    def __getitem__(self, sku: str) -> Mapping[str, Any]:
        price = self.standin.prices[sku]
        return {
            "price": Decimal(int(price["price"])) / int(price.get("normalizer") or NORMALIZER),
            "title": self.standin.skus.get(sku, {}).get("title"),
            "stock": self.standin.stocks.get(sku),
        }

    def __iter__(self) -> Iterator[str]:
        return iter(self.standin.prices)

    def __len__(self) -> int:
        return len(self.standin.prices)


def order_desk_for(standin: Any) -> MagaluOrderDesk:
    """A desk selling a :class:`~marketplaces.magalu.standin.MagaluStandin`'s priced SKUs on its
    channel, behind its bearer tokens (what the stand-in's ``order_desk`` is to be)."""

    def authorize(request: Request) -> None:
        if not standin.oauth.bearer(request):
            raise OrderRefusal(401, "invalid or expired access token", "unauthorized")

    return MagaluOrderDesk(Portfolio(standin), authorize=authorize, channel_id=standin.channel_id)


def mount_order_desk(standin: Any) -> MagaluOrderDesk:
    """:func:`order_desk_for` the stand-in, served by it from now on (its app rebuilt with the routes)."""
    desk = standin.order_desk = order_desk_for(standin)
    standin.app = standin.build()
    return desk


def _not_found(kind: str) -> Callable[[str], OrderRefusal]:
    return lambda key: OrderRefusal(404, f"{kind} {key} not found", "resource_not_found")


def _cents(value: Decimal | int | str) -> int:
    return int((Decimal(str(value)) * NORMALIZER).to_integral_value())


def _money(into: Mapping[str, Any], cents: int, key: str) -> dict[str, Any]:
    return {**into, key: cents, "normalizer": NORMALIZER, "currency": "BRL"}


def _require(body: Mapping[str, Any], names: Iterable[str]) -> None:
    missing = [name for name in names if body.get(name) in (None, "")]
    if missing:
        raise OrderRefusal(400, f"required fields missing: {', '.join(missing)}", "validation_error")


def _moment(value: Any, name: str) -> datetime:
    try:
        moment = datetime.fromisoformat(str(value).replace("Z", "+00:00"))
    except ValueError:
        raise OrderRefusal(400, f"{name} must be an ISO 8601 date-time", "validation_error") from None
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)


_FILTERS = {"ge": (False, True), "gte": (False, True), "le": (True, True), "lte": (True, True)}
"""A filter suffix -> (an upper bound, inclusive); both spellings are taken (API.md section 3)."""


def _filtered(
    found: list[dict[str, Any]], query: Mapping[str, str], fields: Sequence[str]
) -> list[dict[str, Any]]:
    for name, value in query.items():
        field, _, suffix = name.partition("__")
        if field not in fields or suffix not in _FILTERS:
            continue
        bound, upper = _moment(value, name), _FILTERS[suffix][0]
        found = [
            r for r in found if (aware_time(_parsed(r[field])) <= bound) == upper or _same(r[field], bound)
        ]
    return found


def _parsed(stamp: str) -> str:
    return stamp.replace("Z", "+00:00")


def _same(stamp: str, bound: datetime) -> bool:
    return aware_time(_parsed(stamp)) == bound


def _sorted(found: list[dict[str, Any]], sort: str) -> list[dict[str, Any]]:
    field, _, direction = sort.partition(":")
    if field not in ("purchased_at", "created_at", "updated_at") or direction not in ("", "asc", "desc"):
        raise OrderRefusal(400, f"_sort {sort} is not <field>:asc|desc on a date field", "validation_error")
    return sorted(
        found, key=lambda r: (r.get(field) or r["created_at"], r.get("id", "")), reverse=direction == "desc"
    )


def _page(request: Request, found: list[Any]) -> Response:
    """The list envelope: ``meta.page`` and ``meta.links`` (relative query strings), ``results``."""
    limit, offset = _whole(request, "_limit", LIST_DEFAULT), _whole(request, "_offset", 0)
    if not 1 <= limit <= LIST_MAX:
        raise OrderRefusal(400, f"_limit must be between 1 and {LIST_MAX}", "validation_error")
    page = found[offset : offset + limit]
    path = request.url.path

    def link(at: int) -> str:
        return f"{path}?_limit={limit}&_offset={at}"

    meta = {
        "page": {"limit": limit, "offset": offset, "count": len(page), "max_limit": LIST_MAX},
        "links": {
            "previous": link(max(0, offset - limit)) if offset > 0 else None,
            "next": link(offset + limit) if offset + limit < len(found) else None,
            "self": link(offset),
        },
    }
    return exact_json({"meta": meta, "results": page})


def _whole(request: Request, name: str, default: int) -> int:
    value = request.query_params.get(name)
    if value is None:
        return default
    if not value.isdigit():
        raise OrderRefusal(400, f"{name} must be a whole number", "validation_error")
    return int(value)


async def _object(request: Request) -> dict[str, Any]:
    return await json_object(
        request,
        OrderRefusal(400, "the body is not valid JSON"),
        OrderRefusal(400, "the body must be an object"),
    )
