"""The VTEX stand-in: the catalog, pricing, inventory and simulation calls of the VTEX source, in memory.

State is built from canonical catalog records (the lines of ``examples/catalog.jsonl``) turned
back into VTEX's JSON: the exact inverse of ``_mapping.py``, so the source reading the stand-in
yields the records it was given. Values are passed through unchecked: a record whose price is
``"83,90"`` is served as VTEX would never send it, and the source reports it malformed the
way the file source does.

What it checks like VTEX: the ``X-VTEX-API-AppKey``/``X-VTEX-API-AppToken`` headers (401 when
missing or wrong; 403 for an API the key's role is not granted), required query parameters
(400), unknown ids (404), all in VTEX's error shape. On top, the rate limit and seeded faults
of :class:`~marketplaces._standin.Standin`.

The order side (the ``orders`` grant) is the seller's VTEX receiving marketplace orders:
fulfilment placement and dispatch, the OMS calls and the sandbox's order controls, a component
the stand-in owns and routes those endpoints to
(:class:`~marketplaces.vtex._standin_order_desk.OrderDesk`). The checkout simulation, which both
sides call, is served here; the SKU record and the error shape both use are in
``_standin_shapes.py``.
"""

from __future__ import annotations

import asyncio
from collections.abc import Collection, Iterable, Mapping
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from typing import Any

import anyio.from_thread
import httpx
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Receive, Scope, Send

from marketplaces._standin import (
    Faults,
    Standin,
    error_handlers,
    json_body,
    look_up,
    same_secret,
    sandbox_route,
)
from marketplaces._standin import exact_json as _json
from marketplaces._standin import int_param as _int_param
from marketplaces.vtex._mapping import vtex_number as _decimal  # the source's reading of a VTEX number
from marketplaces.vtex._standin_affiliates import Affiliates
from marketplaces.vtex._standin_order_desk import SANDBOX_COURIER as SANDBOX_COURIER
from marketplaces.vtex._standin_order_desk import OrderDesk, OrderRefused, _logistics_info
from marketplaces.vtex._standin_shapes import SELLER_ID, Handler, StoredSku, error_body, refused
from marketplaces.vtex._standin_shapes import error as _error

__all__ = ["SANDBOX_APP_KEY", "SANDBOX_APP_TOKEN", "BlockingTransport", "OrderRefused", "VtexStandin"]

SANDBOX_APP_KEY = "vtexappkey-sandbox-TRADEPOST"
SANDBOX_APP_TOKEN = "sandbox-app-token-not-a-secret"
MAX_PAGE_SIZE = 1000


class VtexStandin(Standin):
    """VTEX's catalog, pricing, logistics, checkout simulation and orders, serving the given records.

    ``trade_policies`` are the ones every SKU is in, priced the same in each (the record's
    price, a fixed price in each) until :meth:`set_price` prices one apart; ``assortment`` (SKU
    id -> trade policies) overrides that for some SKUs.
    ``grants`` are the APIs the key's role may use: ``catalog``, ``pricing``, ``logistics``,
    ``orders`` (fulfilment and OMS). ``index_delay`` is how many seconds a new order stays out
    of ListOrders, as VTEX's search index lags GetOrder.

    ``latency`` is how many seconds every answer takes (a network away, for benchmarks);
    ``in_flight`` counts the requests being answered now and ``max_in_flight`` the most at once,
    so a test can check a client's concurrency bound.

    ``orders_placed`` counts accepted placements per ``marketplaceOrderId`` (all affiliates
    together), so a test can assert an order went into VTEX exactly once.

    Its orders are :attr:`order_desk`'s; ``orders``, ``orders_placed``, ``invoice_order``,
    ``cancel_order_as_store``, ``order_record`` and ``orders_by_marketplace_id`` are the desk's,
    named here too.
    """

    name = "vtex"
    sandbox_role = "source"

    def sandbox_credentials(self) -> dict[str, str]:
        return {"app_key": self.app_key, "app_token": self.app_token}

    def sandbox_options(self, url: str) -> dict[str, str]:
        return {"type": "vtex", "account": "sandbox"}

    def __init__(
        self,
        records: Iterable[Mapping[str, Any]],
        *,
        trade_policies: Collection[str] = ("1",),
        assortment: Mapping[str, Collection[str]] | None = None,
        app_key: str = SANDBOX_APP_KEY,
        app_token: str = SANDBOX_APP_TOKEN,
        grants: Collection[str] = ("catalog", "pricing", "logistics", "orders"),
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
        index_delay: float = 0.0,
        latency: float = 0.0,
    ) -> None:
        self.latency = latency
        self.in_flight = self.max_in_flight = 0
        self.trade_policies = tuple(str(tp) for tp in trade_policies)
        self.index_delay = index_delay
        """How many seconds a new order stays out of ListOrders."""
        self.app_key = app_key
        self.app_token = app_token
        self.grants = frozenset(grants)
        self.skus: dict[str, StoredSku] = {}
        records = list(records)
        ids = _Ids(records)
        for record in records:
            sku_id = _text_id(_section(record, "sku").get("id"))
            if sku_id is None:
                continue  # nothing VTEX could serve it under
            policies = tuple(str(tp) for tp in (assortment or {}).get(sku_id, self.trade_policies))
            self.skus[sku_id] = _stored(record, sku_id, policies, ids)
        self.order_desk = desk = OrderDesk(
            self.skus,
            trade_policies=self.trade_policies,
            private=self._private,
            index_delay=lambda: self.index_delay,
        )
        self.affiliates = Affiliates()
        """The store's affiliates, notified of every stock or price change the sandbox makes."""
        self.orders, self.orders_placed = desk.orders, desk.orders_placed
        self.invoice_order, self.cancel_order_as_store = desk.invoice_order, desk.cancel_order_as_store
        self.order_record, self.orders_by_marketplace_id = desk.order_record, desk.orders_by_marketplace_id
        super().__init__(rate_limit, burst, faults)

    @classmethod
    def for_sandbox(
        cls, catalog: Iterable[Mapping[str, Any]], *, faults: Faults | None, rate_limit: float | None
    ) -> VtexStandin:
        """The sandbox's VTEX serves the catalog in three trade policies, with the well-known key;
        it is the source the other stand-ins are fed from, so it has no faults and no rate limit."""
        return cls(
            catalog, trade_policies=("1", "2", "3"), app_key=SANDBOX_APP_KEY, app_token=SANDBOX_APP_TOKEN
        )

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await super().__call__(scope, receive, send)
            return
        self.in_flight += 1
        self.max_in_flight = max(self.max_in_flight, self.in_flight)
        try:
            if self.latency:
                await asyncio.sleep(self.latency)
            await super().__call__(scope, receive, send)
        finally:
            self.in_flight -= 1

    # -- the app -----------------------------------------------------------------------------

    def routes(self) -> list[BaseRoute]:
        """Every route the stand-in serves; later stand-in features add theirs to this list."""
        private = self._private
        return [
            Route("/api/catalog_system/pvt/sku/stockkeepingunitids", private("catalog", self.sku_ids)),
            Route(
                "/api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel",
                private("catalog", self.sku_ids_in_trade_policy),
            ),
            Route(
                "/api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}",
                private("catalog", self.sku_context),
            ),
            # The Pricing API lives at https://api.vtex.com/{accountName}: served with and without
            # the account, so a client pointed at either layout finds it.
            *(
                route
                for prefix in ("", "/{accountName}")
                for route in (
                    Route(
                        prefix + "/pricing/prices/{itemId}/computed", private("pricing", self.computed_prices)
                    ),
                    Route(prefix + "/pricing/prices/{itemId}", private("pricing", self.price)),
                    Route(
                        prefix + "/pricing/prices/{itemId}/computed/{priceTableId}",
                        private("pricing", self.computed_price),
                    ),
                )
            ),
            Route("/api/logistics/pvt/inventory/skus/{skuId}", private("logistics", self.inventory)),
            Route("/api/checkout/pub/orderForms/simulation", self.simulation, methods=["POST"]),
            *self.order_desk.routes(),
            sandbox_route("stock", self.change_stock),
            sandbox_route("price", self.change_price),
        ]

    def sandbox_affiliate(self, affiliate: str, endpoint: str) -> None:
        """The sandbox's hook: the affiliate ``affiliate`` (a rule file's id) with ``endpoint`` as its
        Search Endpoint (``an`` and ``affiliate`` added to its query, as NOTIFICATIONS.md recommends)."""
        self.affiliates.register(affiliate, f"{endpoint}&an={self.affiliates.account}&affiliate={affiliate}")

    def build(self) -> Starlette:
        return Starlette(routes=self.routes(), exception_handlers=error_handlers(error_body, _unrouted))

    def error_body(self, status: int, message: str) -> Any:
        """VTEX's error shape (as the OMS and Checkout specs document it)."""
        return error_body(status, message)

    def sync_transport(self) -> BlockingTransport:
        """A transport for a synchronous ``httpx.Client``, running the app in process."""
        return BlockingTransport(self.transport())

    # -- catalog -----------------------------------------------------------------------------

    async def sku_ids(self, request: Request) -> Response:
        """``GET .../stockkeepingunitids?page=&pagesize=``: every SKU id, a page at a time."""
        page, size = _int_param(request, "page"), _int_param(request, "pagesize")
        if page is None or size is None or page < 1 or size < 1:
            return _error(400, "page and pagesize are required positive integers")
        return _page(list(self.skus), page, size)

    async def sku_ids_in_trade_policy(self, request: Request) -> Response:
        """``GET .../stockkeepingunitidsbysaleschannel?sc=&page=&pageSize=&onlyAssigned=``."""
        sc = _int_param(request, "sc")
        page = _int_param(request, "page", 1)
        size = _int_param(request, "pageSize", 50)
        if sc is None or page is None or size is None or page < 1 or size < 1:
            return _error(400, "sc is required; page and pageSize must be positive integers")
        only_assigned = request.query_params.get("onlyAssigned", "true").lower() != "false"
        ids = [s.id for s in self.skus.values() if not only_assigned or str(sc) in s.trade_policies]
        return _page(ids, page, size)

    async def sku_context(self, request: Request) -> Response:
        """``GET .../stockkeepingunitbyid/{skuId}?sc=``: "Get SKU and context"."""
        sku = self.skus.get(request.path_params["skuId"])
        sc = request.query_params.get("sc")
        if sku is None or (sc is not None and sc not in sku.trade_policies):
            return _error(404, f"SKU {request.path_params['skuId']} not found")
        return _json(sku.context)

    # -- pricing and logistics ---------------------------------------------------------------

    async def price(self, request: Request) -> Response:
        """``GET /pricing/prices/{itemId}``: base, cost and list prices and the fixed prices."""
        sku = look_up(
            self.skus, request.path_params["itemId"], lambda i: refused(404, f"no price for item {i}")
        )
        return _json(sku.prices)

    async def computed_price(self, request: Request) -> Response:
        """``GET /pricing/prices/{itemId}/computed/{priceTableId}``: the price in a trade policy."""
        sku = self.skus.get(request.path_params["itemId"])
        table = request.path_params["priceTableId"]
        if sku is None or table not in sku.trade_policies:
            return _error(404, f"no price for item {request.path_params['itemId']} in price table {table}")
        return _json(_computed(sku, table))

    async def computed_prices(self, request: Request) -> Response:
        """``GET /pricing/prices/{itemId}/computed``: "Get computed prices for all price tables",
        one entry per trade policy of the SKU with a fixed price (each the price
        :meth:`computed_price` gives there), so a trade policy whose fixed price a test removed
        is left out, as VTEX leaves out a price table without one."""
        sku = look_up(
            self.skus, request.path_params["itemId"], lambda i: refused(404, f"no price for item {i}")
        )
        fixed = {str(entry.get("tradePolicyId")) for entry in sku.prices.get("fixedPrices") or ()}
        return _json([{**_computed(sku, tp), "priceTable": tp} for tp in sku.trade_policies if tp in fixed])

    async def inventory(self, request: Request) -> Response:
        """``GET /api/logistics/pvt/inventory/skus/{skuId}``: the balance per warehouse."""
        sku = look_up(self.skus, request.path_params["skuId"], lambda i: refused(404, f"SKU {i} not found"))
        return _json(sku.inventory)

    # -- the store's admin (sandbox controls) --------------------------------------------------

    async def change_stock(self, request: Request) -> Response:
        """``POST /_sandbox/stock`` ``{"sku_id", "quantity", "warehouse"?}``: set the quantity in one
        warehouse, or in every warehouse when none is named, then notify every affiliate."""
        body = await _control_body(request)
        sku = look_up(self.skus, str(body.get("sku_id")), lambda i: refused(404, f"SKU {i} not found"))
        quantity, warehouse = body.get("quantity"), body.get("warehouse")
        if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 0:
            return _error(400, "quantity must be a whole number, 0 or more")
        balance = sku.inventory["balance"]
        chosen = [w for w in balance if warehouse is None or str(w.get("warehouseId")) == str(warehouse)]
        if not chosen:
            known = ", ".join(str(w.get("warehouseId")) for w in balance) or "none"
            return _error(404, f"SKU {sku.id} has no warehouse {warehouse} (it has: {known})")
        for entry in chosen:
            entry["totalQuantity"] = quantity
        sku.available = sum(
            max(0, w["totalQuantity"] - (w.get("reservedQuantity") or 0))
            for w in balance
            if isinstance(w.get("totalQuantity"), int)
        )
        notified = self.affiliates.notify(sku.id, sku.context.get("ProductId"), StockModified=True)
        warehouses = [str(w.get("warehouseId")) for w in chosen]
        return _json({"sku_id": sku.id, "warehouses": warehouses, "quantity": quantity, "notified": notified})

    async def change_price(self, request: Request) -> Response:
        """``POST /_sandbox/price`` ``{"sku_id", "price", "trade_policy"?}``: the SKU's selling price
        (a decimal string, more than 0, at most two decimals) in every trade policy, or in the one
        named, then notify every affiliate."""
        body = await _control_body(request)
        sku = look_up(self.skus, str(body.get("sku_id")), lambda i: refused(404, f"SKU {i} not found"))
        price = _decimal(str(body.get("price")))
        if price is None or not price.is_finite() or not 0 < price < 10**9 or price != round(price, 2):
            return _error(400, "price must be a number above 0 with at most two decimals")
        policy = body.get("trade_policy")
        if policy is not None and str(policy) not in sku.trade_policies:
            return _error(404, f"SKU {sku.id} is not in trade policy {policy}")
        self.set_price(sku, price, None if policy is None else str(policy))
        notified = self.affiliates.notify(sku.id, sku.context.get("ProductId"), PriceModified=True)
        return _json({"sku_id": sku.id, "price": price, "notified": notified})

    def set_price(self, sku: StoredSku, price: Decimal, trade_policy: str | None = None) -> None:
        """The SKU's selling price in every trade policy, or in ``trade_policy`` only (its computed
        price, fixed price and simulated price; the others keep theirs)."""
        if trade_policy is None:
            sku.computed["sellingPrice"] = price
            sku.selling_cents = _cents(price)
            sku.selling_in.clear()
        else:
            sku.selling_in[trade_policy] = price
        for fixed in sku.prices.get("fixedPrices") or ():
            if trade_policy is None or str(fixed.get("tradePolicyId")) == trade_policy:
                fixed["value"] = price

    # -- checkout ----------------------------------------------------------------------------

    async def simulation(self, request: Request) -> Response:
        """``POST /api/checkout/pub/orderForms/simulation?sc=``: prices after promotions.

        Public, as in VTEX. Items it cannot sell (unknown, another seller, outside the trade
        policy) are left out with a message, as VTEX does. Amounts are cents; ``sellingPrice``
        covers ``unitMultiplier`` units, ``price`` one.
        """
        try:
            body = await json_body(request)
        except ValueError:
            return _error(400, "the body is not JSON")
        items = body.get("items") if isinstance(body, dict) else None
        if not isinstance(items, list):
            return _error(400, "items is required")
        sc = request.query_params.get("sc", "1")
        postal_code = body.get("postalCode")
        answered: list[dict[str, Any]] = []
        messages: list[dict[str, Any]] = []
        logistics: list[dict[str, Any]] = []
        for index, item in enumerate(items):
            if not isinstance(item, dict):
                return _error(400, f"items[{index}] is not an object")
            sku = self.skus.get(str(item.get("id")))
            if sku is None or str(item.get("seller")) != SELLER_ID or sc not in sku.trade_policies:
                messages.append(
                    {
                        "code": "ORD027",
                        "text": f"Item {item.get('id')} não encontrado ou indisponível",
                        "status": "error",
                    }
                )
                continue
            simulated = _simulated_item(sku, sc, index, item.get("quantity"))
            logistics.append(_logistics_info(sku, len(answered), simulated["quantity"], bool(postal_code)))
            answered.append(simulated)
        return _json(
            {
                "items": answered,
                "ratesAndBenefitsData": {"rateAndBenefitsIdentifiers": [], "teaser": []},
                "paymentData": {"installmentOptions": [], "paymentSystems": [], "payments": []},
                "selectableGifts": [],
                "marketingData": None,
                "postalCode": postal_code,
                "country": body.get("country"),
                "logisticsInfo": logistics,
                "messages": messages,
            }
        )

    # -- helpers -----------------------------------------------------------------------------

    def _private(self, api: str, handler: Handler) -> Handler:
        """The handler behind VTEX's key check: 401 without valid credentials, 403 without the role."""

        async def checked(request: Request) -> Response:
            key = request.headers.get("X-VTEX-API-AppKey")
            token = request.headers.get("X-VTEX-API-AppToken")
            if not key or not token:
                return _error(401, "Unauthorized: X-VTEX-API-AppKey and X-VTEX-API-AppToken are required")
            if not (same_secret(key, self.app_key) and same_secret(token, self.app_token)):
                return _error(401, "Unauthorized: invalid AppKey or AppToken")
            if api not in self.grants:
                return _error(403, f"Forbidden: the key's role does not grant the {api} resources")
            return await handler(request)

        return checked


async def _control_body(request: Request) -> dict[str, Any]:
    try:
        body = await json_body(request)
    except ValueError:
        raise refused(400, "the body is not JSON") from None
    if not isinstance(body, dict):
        raise refused(400, "the body is not a JSON object")
    return body


def _unrouted(request: Request, status: int, error: Exception) -> str:
    detail = "no such resource" if status == 404 else error.detail if isinstance(error, HTTPException) else ""
    return f"{detail}: {request.method} {request.url.path}"


class BlockingTransport(httpx.BaseTransport):
    """An async in-process transport driven from synchronous code, for ``httpx.Client``.

    The VTEX source is synchronous (it is an iterator the planner pulls from), while the
    stand-ins are ASGI apps. This runs the async transport on an event loop in a helper
    thread (an anyio blocking portal) and hands each answer back whole, so a test needs no
    socket; ``close()`` (called by ``Client.close()``) stops the loop.
    """

    def __init__(self, transport: httpx.AsyncBaseTransport) -> None:
        self._transport = transport
        self._stack = ExitStack()
        self._portal = self._stack.enter_context(anyio.from_thread.start_blocking_portal())

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        request.read()  # the body as bytes, which the async side can stream again

        async def send() -> tuple[int, httpx.Headers, bytes]:
            response = await self._transport.handle_async_request(request)
            try:
                return response.status_code, response.headers, await response.aread()
            finally:
                await response.aclose()

        status, headers, content = self._portal.call(send)
        return httpx.Response(status, headers=headers, content=content, request=request)

    def close(self) -> None:
        self._stack.close()


# -- canonical record -> VTEX JSON (the inverse of _mapping.py) -------------------------------


class _Ids:
    """The ids VTEX would have given what a canonical record only names: categories above the
    record's own, collections, specification fields and values, image files.

    Ancestor categories reuse the id a record gives a category at that path, so
    ``Apparel/Shoes`` is one category whether a record names it or only passes through it.
    """

    def __init__(self, records: list[Mapping[str, Any]]) -> None:
        self._by_path: dict[tuple[str, ...], str] = {}
        for record in records:
            product = _section(record, "product")
            path, category_id = (
                tuple(map(str, product.get("category_path") or ())),
                product.get("category_id"),
            )
            if path and category_id is not None:
                self._by_path.setdefault(path, str(category_id))
        self._used = set(self._by_path.values())
        self._names: dict[tuple[str, str], int] = {}
        self._next = 1

    def category(self, path: tuple[str, ...]) -> str:
        if path not in self._by_path:
            while str(self._next) in self._used:
                self._next += 1
            self._by_path[path] = str(self._next)
            self._used.add(str(self._next))
        return self._by_path[path]

    def named(self, kind: str, name: str) -> int:
        """A stable id per (kind, name): a collection, a specification field or value, a file."""
        return self._names.setdefault((kind, name), len(self._names) + 1)


def _stored(record: Mapping[str, Any], sku_id: str, trade_policies: tuple[str, ...], ids: _Ids) -> StoredSku:
    product, sku = _section(record, "product"), _section(record, "sku")
    price, stock = _section(record, "price"), _section(record, "stock")
    warehouses = [w for w in stock.get("warehouses") or () if isinstance(w, Mapping)]
    multiplier = _decimal(sku.get("unit_multiplier"))
    return StoredSku(
        id=sku_id,
        trade_policies=trade_policies,
        context=_context(product, sku, trade_policies, ids),
        prices={
            "itemId": sku_id,
            "listPrice": price.get("list"),
            "costPrice": price.get("cost"),
            "markup": _markup(price.get("base"), price.get("cost")),
            "basePrice": price.get("base"),  # null when the record has none, to give it back as none
            "fixedPrices": [
                {
                    "tradePolicyId": tp,
                    "value": price.get("selling"),
                    "listPrice": price.get("list"),
                    "minQuantity": 1,
                }
                for tp in trade_policies
            ],
        },
        computed={
            "listPrice": price.get("list"),
            "costPrice": price.get("cost"),
            "sellingPrice": price.get("selling"),
        },
        inventory={
            "skuId": sku_id,
            "balance": [
                {
                    "warehouseId": w.get("warehouse"),
                    "warehouseName": w.get("warehouse"),
                    "totalQuantity": w.get("quantity"),
                    "reservedQuantity": w.get("reserved", 0),
                    "hasUnlimitedQuantity": w.get("unlimited", False),
                    "timeToRefill": None,
                    "dateOfSupplyUtc": None,
                    "leadTime": "00:00:00",
                }
                for w in warehouses
            ],
        },
        unit_multiplier=multiplier if multiplier is not None and multiplier > 0 else Decimal(1),
        available=sum(
            max(0, q - r)
            if isinstance(q := w.get("quantity"), int) and isinstance(r := w.get("reserved", 0), int)
            else 0
            for w in warehouses
        ),
        selling_cents=_cents(price.get("selling")),
        promotional_cents=_cents(price.get("promotional")),
        list_cents=_cents(price.get("list")),
    )


def _context(
    product: Mapping[str, Any], sku: Mapping[str, Any], trade_policies: tuple[str, ...], ids: _Ids
) -> dict[str, Any]:
    """The "Get SKU and context" answer for a record, with every field the spec requires."""
    sku_id = _vtex_id(sku.get("id"))
    path = tuple(map(str, product.get("category_path") or ()))
    category_ids = [ids.category(path[: depth + 1]) for depth in range(len(path))]
    collections = [str(name) for name in product.get("collections") or ()]
    cluster_ids = [str(ids.named("collection", name)) for name in collections]
    images = [image for image in sku.get("images") or () if isinstance(image, Mapping)]
    main = next((image for image in images if image.get("is_main")), images[0] if images else None)
    dimensions = _section(sku, "dimensions")
    ean, ref_id = sku.get("ean"), sku.get("ref_id")
    keywords = product.get("keywords")
    link = product.get("link")
    return {
        "Id": sku_id,
        "ProductId": _vtex_id(product.get("id")),
        "NameComplete": " ".join(str(n) for n in (product.get("name"), sku.get("name")) if n),
        "ComplementName": "",
        "ProductName": product.get("name"),
        "ProductDescription": product.get("description", ""),
        "ProductRefId": product.get("ref_id") or "",
        "TaxCode": "",
        "SkuName": sku.get("name", ""),
        "IsActive": sku.get("active"),
        "IsTransported": True,
        "IsInventoried": True,
        "IsGiftCardRecharge": False,
        "ImageUrl": main.get("url") if main else "",
        "DetailUrl": f"/{link}/p" if link else "",
        "CSCIdentification": None,
        "BrandId": None if product.get("brand_id") is None else str(product.get("brand_id")),
        "BrandName": product.get("brand"),
        "IsBrandActive": True,
        "Dimension": {"cubicweight": _cubic_weight(dimensions), **{k: dimensions.get(k) for k in _SIZES}},
        "RealDimension": {
            "realCubicWeight": _cubic_weight(dimensions),
            **{f"real{k.title()}": dimensions.get(k) for k in _SIZES},
        },
        "ManufacturerCode": sku.get("mpn") or "",
        "IsKit": False,
        "KitItems": [],
        "Services": [],
        "Categories": [],
        "CategoriesFullPath": [
            "/" + "/".join(category_ids[:n]) + "/" for n in range(len(category_ids), 0, -1)
        ],
        "Attachments": [],
        "Collections": [],
        "SkuSellers": [
            {
                "SellerId": SELLER_ID,
                "StockKeepingUnitId": sku_id,
                "SellerStockKeepingUnitId": str(sku_id),
                "IsActive": True,
                "FreightCommissionPercentage": 0,
                "ProductCommissionPercentage": 0,
            }
        ],
        "SalesChannels": [_vtex_id(tp) for tp in trade_policies],
        "Images": [
            {
                "ImageUrl": image.get("url"),
                "ImageName": image.get("label") or "",
                "FileId": ids.named("file", str(image.get("url"))),
            }
            for image in images
        ],
        "Videos": [],
        "SkuSpecifications": _specifications(sku.get("specs"), ids),
        "ProductSpecifications": _specifications(product.get("specs"), ids),
        "ProductClustersIds": ",".join(cluster_ids),
        "PositionsInClusters": {cluster: 0 for cluster in cluster_ids},
        "ProductClusterNames": dict(zip(cluster_ids, collections, strict=True)),
        "ProductClusterHighlights": {},
        "ProductCategoryIds": "/" + "/".join(category_ids) + "/" if category_ids else "",
        "IsDirectCategoryActive": True,
        "ProductGlobalCategoryId": None,
        "ProductCategories": dict(zip(category_ids, path, strict=True)),
        "CommercialConditionId": 1,
        "RewardValue": 0,
        "AlternateIds": {"Ean": ean, "RefId": ref_id},
        "AlternateIdValues": [value for value in (ean, ref_id) if value],
        "EstimatedDateArrival": None,
        "MeasurementUnit": sku.get("measurement_unit", "un"),
        "UnitMultiplier": sku.get("unit_multiplier", 1),
        "InformationSource": "Indexer",
        "ModalType": None,
        "KeyWords": ", ".join(map(str, keywords)) if isinstance(keywords, list | tuple) else keywords or "",
        "ReleaseDate": None,
        "ProductIsVisible": True,
        "ShowIfNotAvailable": True,
        "IsProductActive": product.get("active", True),
        "ProductFinalScore": 0,
    }


_SIZES = ("height", "length", "weight", "width")


def _specifications(specs: object, ids: _Ids) -> list[dict[str, Any]]:
    """name -> value as VTEX's list of fields; a blank value becomes an empty ``FieldValues``."""
    if not isinstance(specs, Mapping):
        return []
    fields = []
    for name, value in specs.items():
        values = value if isinstance(value, list | tuple) else [] if value is None else [value]
        values = [v for v in values if str(v).strip()]
        fields.append(
            {
                "FieldId": ids.named("field", str(name)),
                "FieldName": str(name),
                "FieldValueIds": [ids.named(f"value:{name}", str(v)) for v in values],
                "FieldValues": values,
                "IsFilter": False,
                "FieldGroupId": 1,
                "FieldGroupName": "Especificações",
            }
        )
    return fields


def _computed(sku: StoredSku, trade_policy: str) -> dict[str, Any]:
    """The SKU's computed price in a trade policy (the Pricing API's ``Getcomputedprice``)."""
    computed = {"tradePolicyId": trade_policy, **sku.computed, "priceValidUntil": _a_year_from_now()}
    if trade_policy in sku.selling_in:
        computed["sellingPrice"] = sku.selling_in[trade_policy]
    return computed


def _simulated_item(sku: StoredSku, trade_policy: str, index: int, quantity: object) -> dict[str, Any]:
    """One ``items[]`` entry of a simulation: the promotion, if any, as a discount price tag."""
    count = quantity if isinstance(quantity, int) and quantity > 0 else 1
    priced_apart = sku.selling_in.get(trade_policy)
    unit = sku.selling_cents if priced_apart is None else _cents(priced_apart)
    promotional = sku.promotional_cents
    selling_unit = (
        promotional if unit is not None and promotional is not None and promotional < unit else unit
    )
    selling = _whole(selling_unit * sku.unit_multiplier) if selling_unit is not None else None
    tags = []
    if unit is not None and selling_unit is not None and selling_unit < unit:
        value = _whole((selling_unit - unit) * sku.unit_multiplier)
        tags.append(
            {
                "name": "discount@price-sandbox-promotion",
                "value": value,
                "rawValue": Decimal(value) / 100,
                "isPercentual": False,
                "identifier": "sandbox-promotion",
            }
        )
    return {
        "id": sku.id,
        "requestIndex": index,
        "quantity": count,
        "seller": SELLER_ID,
        "sellerChain": [SELLER_ID],
        "tax": 0,
        "priceValidUntil": _a_year_from_now(),
        "price": unit,
        "listPrice": sku.list_cents or unit,
        "rewardValue": 0,
        "sellingPrice": selling,
        "offerings": [],
        "priceTags": tags,
        "measurementUnit": sku.context.get("MeasurementUnit"),
        "unitMultiplier": sku.unit_multiplier,
        "parentItemIndex": None,
        "parentAssemblyBinding": None,
        "availability": "available" if sku.available > 0 else "withoutStock",
        "priceDefinition": {
            "calculatedSellingPrice": selling,
            "total": selling * count if selling is not None else None,
            "sellingPrices": [{"value": selling, "quantity": count}],
        },
    }


def _page(ids: list[str], page: int, size: int) -> Response:
    size = min(size, MAX_PAGE_SIZE)
    return _json([_vtex_id(sku_id) for sku_id in ids[(page - 1) * size : page * size]])


def _section(record: Mapping[str, Any], name: str) -> Mapping[str, Any]:
    value = record.get(name)
    return value if isinstance(value, Mapping) else {}


def _text_id(value: object) -> str | None:
    if isinstance(value, bool) or not isinstance(value, int | str) or str(value) == "":
        return None
    return str(value)


def _vtex_id(value: object) -> object:
    """VTEX ids are JSON integers; an id that is not a number stays text."""
    text = str(value) if value is not None else ""
    return int(text) if text.isdigit() else value


def _cents(value: object) -> int | None:
    number = _decimal(value)
    return _whole(number * 100) if number is not None else None


def _whole(value: Decimal | int) -> int:
    return int(Decimal(value).quantize(Decimal(1), rounding=ROUND_HALF_UP))


def _markup(base: object, cost: object) -> int:
    """VTEX's markup (percent over cost that gives the base price); 0 when either is unknown."""
    base_value, cost_value = _decimal(base), _decimal(cost)
    if base_value is None or not cost_value:
        return 0
    return _whole((base_value / cost_value - 1) * 100)


def _cubic_weight(dimensions: Mapping[str, Any]) -> Decimal:
    sizes = [_decimal(dimensions.get(k)) for k in ("height", "width", "length")]
    if any(size is None for size in sizes):
        return Decimal(0)
    volume = Decimal(1)
    for size in sizes:
        volume *= size or 0
    return (volume / 6000).quantize(Decimal("0.0001"))


def _a_year_from_now() -> str:
    return (datetime.now(UTC) + timedelta(days=365)).strftime("%Y-%m-%dT%H:%M:%SZ")
