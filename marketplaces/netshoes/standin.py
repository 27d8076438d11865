"""A stand-in for the Netshoes marketplace API v1: catalogue templates, products, SKUs, review, orders.

One seller, in memory, answering the documented paths under ``/api/v1`` (``shared/specs/netshoes``,
built from 2016-17 SDKs: the real API may no longer be live) and API.md §8's checklist:

1. every call needs the ``client_id`` and ``access_token`` headers (401 otherwise), and a seller
   plan of ``calls_per_minute`` calls (50 by default, the initial plan) per minute: beyond, 429
   with the seconds left in the minute as Retry-After;
2. products with their SKUs (``POST /products``: the whole family; ``POST /products/{id}/skus``
   for one more), their department, product type, brand, colour and size checked against the
   templates (``GET /bus/{buId}/departments`` and the rest of API.md §3; a list left empty checks
   nothing); a product or SKU that exists is refused (409), never doubled. Each SKU goes through
   review: ``skuSynchronized`` turns true ``approval_seconds`` after its creation (0: at once; the
   sandbox control ``POST /_sandbox/approve`` approves every SKU now). Until then ``PUT prices``,
   ``PUT stocks`` and activation answer a ``Business_Logic_Error``;
3. orders with shippings, their per-status routes and transitions
   (:class:`~marketplaces.netshoes._standin_order_desk.NetshoesOrderDesk`, whose routes join these);
4. lists page with ``page`` (from 0) and ``size``, answering ``items`` and ``_links``.

Errors come in the API's body, ``{"type", "description", "notifications", "links"}``. Faults and
the request log are the base :class:`~marketplaces._standin.Standin`'s. Time runs ``time_scale``
times faster than the documented minute (the sandbox's: :data:`SANDBOX_TIME_SCALE`); the connector
takes the same ``time_scale`` option.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from marketplaces._standin import (
    SANDBOX_PREFIX,
    Faults,
    Standin,
    error_handlers,
    int_param,
    json_object,
    look_up,
    same_secret,
    sandbox_route,
)
from marketplaces._standin import exact_json as _json
from marketplaces.netshoes._http import API as PREFIX
from marketplaces.netshoes._standin_order_desk import NetshoesOrderDesk, Refusal

SANDBOX_CLIENT_ID = "sandbox-netshoes-client"
SANDBOX_ACCESS_TOKEN = "sandbox-netshoes-token-not-a-secret"
SANDBOX_TIME_SCALE = 600.0
"""The sandbox's Netshoes minute lasts 0.1 s: the initial plan's 50 calls a minute are 500 a second."""
BUSINESS_UNITS = ("NS", "ZT")
DEPARTMENTS = {
    "Calçados": ("Tênis", "Sandálias", "Botas"),
    "Roupas": ("Camisetas", "Calças", "Vestidos"),
}
"""The stand-in's departments and their product types (the real ones come from the templates API)."""
ERROR_TYPES = {
    400: "Parameter_Error",
    404: "Resource_Not_Found",
    405: "Method_Not_Allowed",
    409: "Business_Logic_Error",
}


@dataclass
class MinutePlan:
    """A seller's call plan: ``calls`` per minute of ``minute`` real seconds, counted per window."""

    calls: int
    minute: float
    clock: Callable[[], float] = time.monotonic
    started: float = 0.0
    used: int = 0

    def take(self) -> float:
        """0 when a call may go now, else the seconds until the next minute starts."""
        now = self.clock()
        if now - self.started >= self.minute:
            self.started, self.used = now, 0
        if self.used < self.calls:
            self.used += 1
            return 0.0
        return self.minute - (now - self.started)


@dataclass
class Sku:
    """One SKU as Netshoes holds it: its body, review, price, stock and activation per business unit."""

    product_id: str
    body: dict[str, Any]
    created: float
    approved: bool = False
    price: Decimal | None = None
    stock: int | None = None
    active: dict[str, bool] = field(default_factory=dict)


class NetshoesStandin(Standin):
    """One Netshoes seller's API; see the module docstring."""

    name = "netshoes"

    def __init__(
        self,
        client_id: str = SANDBOX_CLIENT_ID,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        *,
        calls_per_minute: int = 50,
        time_scale: float = 1.0,
        approval_seconds: float = 0.0,
        templates: Mapping[str, Iterable[str]] | None = None,
        rate_limit: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.client_id, self.access_token = client_id, access_token
        self.time_scale, self.clock = time_scale, clock
        self.plan = MinutePlan(calls_per_minute, 60.0 / time_scale, clock)
        self.approval_seconds = approval_seconds
        """Documented seconds a SKU stays in review (inf: until ``POST /_sandbox/approve``)."""
        self.templates = {name: sorted(set(values)) for name, values in (templates or {}).items()}
        """``brands``, ``colors``, ``sizes``, ``flavors``: the values a product may name (none: any)."""
        self.products: dict[str, dict[str, Any]] = {}
        """productId -> the product body without its SKUs."""
        self.skus: dict[str, Sku] = {}
        self.order_desk = NetshoesOrderDesk(self.skus)
        """The seller's orders, whose routes join this app's."""
        super().__init__(rate_limit, None, faults)

    # -- sandbox -----------------------------------------------------------------------------

    @classmethod
    def for_sandbox(
        cls, catalog: Iterable[Mapping[str, Any]], *, faults: Faults | None, rate_limit: float | None
    ) -> NetshoesStandin:
        """Templates from the catalog's brands, colours and sizes, as a seller registers them."""
        records = list(catalog)
        specs = [record.get("sku", {}).get("specs") or {} for record in records]
        templates = {
            "brands": [str(r["product"]["brand"]) for r in records if r.get("product", {}).get("brand")],
            "colors": [str(s["Cor"]) for s in specs if s.get("Cor")],
            "sizes": [str(s["Tamanho"]) for s in specs if s.get("Tamanho")],
        }
        return cls(time_scale=SANDBOX_TIME_SCALE, templates=templates, rate_limit=rate_limit, faults=faults)

    def sandbox_credentials(self) -> dict[str, str]:
        return {"client_id": self.client_id, "access_token": self.access_token}

    def sandbox_options(self, url: str) -> dict[str, str]:
        return {"time_scale": format(self.time_scale, "g")}

    def error_body(self, status: int, message: str) -> Any:
        return Refusal(status, message).body()

    def build(self) -> Starlette:
        api = [
            ("/bus/{bu}/departments", "GET", self.departments),
            ("/department/{department}/productType", "GET", self.product_types),
            ("/department/{department}/productType/{product_type}/templates", "GET", self.type_templates),
            ("/brands", "GET", self.listed("brands")),
            ("/colors", "GET", self.listed("colors")),
            ("/sizes", "GET", self.listed("sizes")),
            ("/flavors", "GET", self.listed("flavors")),
            ("/products", "POST", self.create_product),
            ("/products", "GET", self.list_products),
            ("/products/{product_id}", "GET", self.get_product),
            ("/products/{product_id}/skus", "POST", self.add_sku),
            ("/products/{product_id}/skus", "GET", self.product_skus),
            ("/products/{product_id}/skus/{sku}", "GET", self.get_sku),
            ("/skus/{sku}/bus/{bu}/status", "GET", self.sku_status),
            ("/skus/{sku}/bus/{bu}/status", "PUT", self.set_status),
            ("/skus/{sku}/prices", "PUT", self.set_price),
            ("/skus/{sku}/prices", "GET", self.get_price),
            ("/skus/{sku}/stocks", "PUT", self.set_stock),
            ("/skus/{sku}/stocks", "GET", self.get_stock),
        ]
        api += self.order_desk.routes()
        routes = [Route(PREFIX + path, handler, methods=[method]) for path, method, handler in api]
        routes.append(sandbox_route("approve", self.approve_now))
        routes.extend(self.order_desk.sandbox_routes())
        return Starlette(routes=routes, exception_handlers=error_handlers(self.error_body, _unrouted))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """The two headers, then the seller's plan, before the base's faults and the routes."""
        if scope["type"] == "http" and not str(scope["path"]).startswith(SANDBOX_PREFIX):
            headers = {k.decode("latin-1").lower(): v.decode("latin-1") for k, v in scope["headers"]}
            refusal: Refusal | None = None
            wait = 0.0
            if not (
                same_secret(headers.get("client_id"), self.client_id)
                and same_secret(headers.get("access_token"), self.access_token)
            ):
                refusal = Refusal(401, "client_id and access_token headers are required and must be valid")
            elif wait := self.plan.take():
                self.throttled += 1
                refusal = Refusal(429, f"more than {self.plan.calls} calls this minute")
            if refusal is not None:
                answer = _json(refusal.body(), refusal.status)
                if wait:
                    answer.headers["Retry-After"] = f"{max(wait, 0.001):.3f}"
                await answer(scope, receive, send)
                return
        await super().__call__(scope, receive, send)

    # -- review ------------------------------------------------------------------------------

    def reviewed(self, sku: Sku) -> Sku:
        """The SKU with its review brought up to now."""
        if not sku.approved and (self.clock() - sku.created) * self.time_scale >= self.approval_seconds:
            sku.approved = True
        return sku

    def approve_all(self) -> int:
        """Approve every SKU in review now (the sandbox control); how many were."""
        waiting = [sku for sku in self.skus.values() if not self.reviewed(sku).approved]
        for sku in waiting:
            sku.approved = True
        return len(waiting)

    async def approve_now(self, request: Request) -> Response:
        """``POST /_sandbox/approve``: Netshoes' review approves every SKU now."""
        return _json({"approved": self.approve_all()})

    # -- templates ---------------------------------------------------------------------------

    async def departments(self, request: Request) -> Response:
        if request.path_params["bu"] not in BUSINESS_UNITS:
            raise Refusal(404, "Resource not found.")
        return _json(_items(DEPARTMENTS))

    async def product_types(self, request: Request) -> Response:
        return _json(_items(self._types(request.path_params["department"])))

    async def type_templates(self, request: Request) -> Response:
        kind = request.path_params["product_type"]
        if kind not in self._types(request.path_params["department"]):
            raise Refusal(404, "Resource not found.", "List_Not_Found")
        return _json({"items": [{"name": "SEXO", "required": False}]})

    def listed(self, name: str) -> Callable[[Request], Any]:
        async def answer(request: Request) -> Response:
            return _json(_items(self.templates.get(name, [])))

        return answer

    def _types(self, department: str) -> tuple[str, ...]:
        return look_up(
            DEPARTMENTS, department, lambda _: Refusal(404, "Resource not found.", "List_Not_Found")
        )

    # -- products and SKUs -------------------------------------------------------------------

    async def create_product(self, request: Request) -> Response:
        """The product with every SKU of its family; 409 when it, or one of its SKUs, exists."""
        body = await _body(request)
        problems = self._product_problems(body)
        skus = body.get("skus")
        if not isinstance(skus, list) or not skus:
            raise _invalid([*problems, "skus: a product is sent with its SKUs (the whole family)"])
        for sku in skus:
            problems += self._sku_problems(sku)
        if problems:
            raise _invalid(problems)
        product_id = str(body["productId"])
        if product_id in self.products:
            raise Refusal(409, f"product {product_id} already exists")
        self._refuse_known(skus)
        self.products[product_id] = {k: v for k, v in body.items() if k != "skus"}
        for sku in skus:
            self.skus[str(sku["sku"])] = Sku(product_id, dict(sku), self.clock())
        return _json({"productId": product_id, "_links": _self(f"/products/{product_id}")}, 201)

    async def add_sku(self, request: Request) -> Response:
        product_id = self._product(request)
        body = await _body(request)
        problems = self._sku_problems(body)
        if problems:
            raise _invalid(problems)
        self._refuse_known([body])
        self.skus[str(body["sku"])] = Sku(product_id, dict(body), self.clock())
        return _json({"sku": body["sku"], "_links": _self(f"/products/{product_id}/skus/{body['sku']}")}, 201)

    async def list_products(self, request: Request) -> Response:
        page, size = int_param(request, "page", 0), int_param(request, "size", 20)
        if page is None or size is None or page < 0 or not 1 <= size <= 100:
            raise Refusal(400, "page must be 0 or more and size from 1 to 100")
        ids = sorted(self.products)
        items = [self._product_body(pid) for pid in ids[page * size : (page + 1) * size]]
        return _json({"items": items, "_links": _page_links("/products", page, size, len(ids))})

    async def get_product(self, request: Request) -> Response:
        return _json(self._product_body(self._product(request)))

    async def product_skus(self, request: Request) -> Response:
        return _json({"items": self._product_body(self._product(request))["skus"]})

    async def get_sku(self, request: Request) -> Response:
        product_id = self._product(request)
        sku = self._sku(request)
        if sku.product_id != product_id:
            raise Refusal(404, "Resource not found.")
        return _json(sku.body)

    def _product(self, request: Request) -> str:
        product_id = str(request.path_params["product_id"])
        look_up(self.products, product_id, lambda _: Refusal(404, "Resource not found."))
        return product_id

    def _product_body(self, product_id: str) -> dict[str, Any]:
        skus = [sku.body for sku in self.skus.values() if sku.product_id == product_id]
        return {**self.products[product_id], "skus": skus, "_links": _self(f"/products/{product_id}")}

    def _refuse_known(self, skus: list[dict[str, Any]]) -> None:
        known = [str(sku["sku"]) for sku in skus if str(sku["sku"]) in self.skus]
        if known:
            raise Refusal(409, f"SKU {', '.join(known)} already exists")

    def _product_problems(self, body: Mapping[str, Any]) -> list[str]:
        problems = [
            f"{name}: required"
            for name in ("productId", "department", "productType", "brand")
            if not body.get(name)
        ]
        department, kind = str(body.get("department") or ""), str(body.get("productType") or "")
        if department and department not in DEPARTMENTS:
            problems.append(f"department: {department} is not a department of the templates")
        elif kind and kind not in DEPARTMENTS.get(department, ()):
            problems.append(f"productType: {kind} is not a product type of {department}")
        problems += self._template_problems("brands", "brand", body.get("brand"))
        for attribute in body.get("attributes") or []:
            if not isinstance(attribute, dict) or set(attribute) != {"name", "value"}:
                problems.append("attributes: each is {name, value}")
        return problems

    def _sku_problems(self, sku: Any) -> list[str]:
        if not isinstance(sku, dict):
            return ["skus: each is an object"]
        problems = [f"{name}: required" for name in ("sku", "name", "images") if not sku.get(name)]
        unknown = set(sku) - SKU_FIELDS
        if unknown:
            problems.append(f"unknown SKU fields: {', '.join(sorted(unknown))}")
        if any(not isinstance(image, dict) or not image.get("url") for image in sku.get("images") or []):
            problems.append("images: each is {url}")
        problems += self._template_problems("colors", "color", sku.get("color"))
        problems += self._template_problems("sizes", "size", sku.get("size"))
        return [f"SKU {sku.get('sku')}: {problem}" for problem in problems]

    def _template_problems(self, template: str, name: str, value: Any) -> list[str]:
        known = self.templates.get(template)
        if value in (None, "") or not known or str(value) in known:
            return []
        return [f"{name}: {value} is not in the templates' {template}"]

    # -- review, price, stock, activation ----------------------------------------------------

    def _sku(self, request: Request) -> Sku:
        found = look_up(
            self.skus, str(request.path_params["sku"]), lambda _: Refusal(404, "Resource not found.")
        )
        return self.reviewed(found)

    def _approved(self, request: Request, what: str) -> Sku:
        sku = self._sku(request)
        if not sku.approved:
            raise Refusal(
                422,
                f"SKU {request.path_params['sku']} is not synchronized: {what} discarded",
                "Business_Logic_Error",
            )
        return sku

    async def sku_status(self, request: Request) -> Response:
        sku, bu = self._sku(request), _bu(request)
        return _json(
            {
                "active": sku.active.get(bu, False),
                "skuSynchronized": sku.approved,
                "statusMatch": "APROVADO" if sku.approved else "PENDENTE_TIPO_PRODUTO",
                "hasPrice": sku.price is not None,
                "hasStock": sku.stock is not None,
            }
        )

    async def set_status(self, request: Request) -> Response:
        bu, body = _bu(request), await _body(request)
        if not isinstance(body.get("active"), bool):
            raise _invalid(["active: true or false"])
        sku = self._sku(request) if body["active"] is False else self._approved(request, "activation")
        sku.active[bu] = body["active"]
        return _json({"active": sku.active[bu]})

    async def set_price(self, request: Request) -> Response:
        body = await _body(request)
        price = body.get("price")
        if set(body) != {"price"} or not isinstance(price, Decimal | int) or price <= 0:
            raise _invalid(["price: a positive decimal in reais, the only field"])
        self._approved(request, "price").price = Decimal(price)
        return _json({"sku": request.path_params["sku"], "price": Decimal(price)})

    async def get_price(self, request: Request) -> Response:
        return _json({"sku": request.path_params["sku"], "price": self._sku(request).price})

    async def set_stock(self, request: Request) -> Response:
        body = await _body(request)
        available = body.get("available")
        if set(body) != {"available", "country"} or not isinstance(available, int) or available < 0:
            raise _invalid(["available: a whole number from 0", "country: BR"])
        if body.get("country") != "BR":
            raise _invalid(["country: BR"])
        self._approved(request, "stock").stock = available
        return _json({"available": available, "country": "BR"})

    async def get_stock(self, request: Request) -> Response:
        stock = self._sku(request).stock or 0
        return _json({"country": "BR", "available": stock, "total": stock, "reserved": 0})


SKU_FIELDS = frozenset(
    {"sku", "name", "description", "color", "size", "gender", "flavor", "eanIsbn", "images", "video",
     "height", "width", "depth", "weight"}
)  # fmt: skip
"""A SKU's fields (API.md §4): anything else is refused."""


async def _body(request: Request) -> dict[str, Any]:
    return await json_object(
        request, _invalid(["the body is not JSON"]), _invalid(["the body is not an object"])
    )


def _invalid(problems: list[str]) -> Refusal:
    return Refusal(400, "; ".join(problems), "Parameter_Error")


def _bu(request: Request) -> str:
    bu = str(request.path_params["bu"])
    if bu not in BUSINESS_UNITS:
        raise Refusal(404, f"business unit {bu} not found")
    return bu


def _items(names: Iterable[str]) -> dict[str, Any]:
    return {"items": [{"code": name, "name": name} for name in names]}


def _self(path: str) -> dict[str, Any]:
    return {"self": {"href": PREFIX + path}}


def _page_links(path: str, page: int, size: int, total: int) -> dict[str, Any]:
    last = max(0, (total - 1) // size)
    links = {
        "self": {"href": f"{PREFIX}{path}?page={page}&size={size}"},
        "first": {"href": f"{PREFIX}{path}?page=0&size={size}"},
        "last": {"href": f"{PREFIX}{path}?page={last}&size={size}"},
    }
    if page < last:
        links["next"] = {"href": f"{PREFIX}{path}?page={page + 1}&size={size}"}
    return links


def _unrouted(request: Request, status: int, error: Exception) -> str:
    return "Resource not found." if status == 404 else str(error)


__all__ = ["SANDBOX_ACCESS_TOKEN", "SANDBOX_CLIENT_ID", "SANDBOX_TIME_SCALE", "NetshoesStandin", "Refusal"]
