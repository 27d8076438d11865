"""The Mercado Libre stand-in: OAuth, ``/items`` with variations and descriptions, a SELLER_SKU search,
and the seller's side of orders: search, shipments, feedback, fiscal documents.

This module is its listings, OAuth and items. The orders are a component the stand-in owns and
routes the order endpoints to: :class:`~marketplaces.mercadolibre._standin_order_desk.OrderDesk`,
whose module says what it checks and how the sandbox plays the buyer; the error shape and what
both read are in ``_standin_shapes.py``.

It checks what ``shared/specs/mercadolibre/ITEMS.md`` documents, and answers in Mercado Libre's
error shape ``{message, error, status, cause[]}`` where each cause names the field:

- ``POST /oauth/token``: the refresh-token grant with the client id and secret it was given;
  refresh tokens are single-use and rotate, as Mercado Libre's do, so a client that does not keep
  the new one is refused on its next refresh. Every other call needs a bearer token it issued.
- ``POST /items``: title (at most 60 characters), a category of the site, price > 0, the site's
  currency, available_quantity >= 0, buying_mode, listing_type_id, condition (new, used,
  not_specified), at least one picture, attributes as ``{id, value_name | value_id}``, no field
  it does not know. A quantity of 0 is accepted: ITEMS.md sets no minimum, and a SKU whose
  allocated stock rounds to 0 must still be listable. Variations must all have the same
  price (ITEMS.md: "All variations must have the same price"; the API is laxer and shows the
  highest), the same set of attribute_combinations ids, distinct combinations, and picture_ids
  among the item's pictures.
- ``GET /users/{id}/items/search``: by SELLER_SKU and status, paged by offset (first 1,000) or
  by scan with a ``scroll_id``; ``GET /items?ids=`` reads up to 20 items at once.
- ``PUT /items/{id}``: only what ITEMS.md lists as changeable (price, available_quantity,
  pictures, video, shipping, status) plus attributes and sale terms; the title and buying mode
  only while the item has no sales; price and quantity of an item with variations only per
  variation; nothing on a closed item. Unknown items are 404.

Ids look like the real ones: items ``MLB4000000001``..., variations ``170000000001``...
"""

from __future__ import annotations

import itertools
import re
import secrets
from collections.abc import Callable, Iterable, Mapping
from datetime import datetime
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from marketplaces._standin import AccessTokens, Faults, Standin, error_handlers, form_body, int_param, look_up
from marketplaces._standin import exact_json as _json
from marketplaces.mercadolibre._standin_after_sales import AfterSalesDesk
from marketplaces.mercadolibre._standin_order_desk import OrderDesk
from marketplaces.mercadolibre._standin_shapes import Refusal, find_variation
from marketplaces.mercadolibre._standin_shapes import cause as _cause
from marketplaces.mercadolibre._standin_shapes import count as _count
from marketplaces.mercadolibre._standin_shapes import object_body as _body
from marketplaces.mercadolibre._standin_shapes import positive as _positive
from marketplaces.mercadolibre._standin_shapes import totals as _totals

__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_REFRESH_TOKEN",
    "MercadoLibreStandin",
]

SANDBOX_CLIENT_ID = "1234567890123456"
SANDBOX_CLIENT_SECRET = "sandbox-client-secret-not-a-secret"
SANDBOX_REFRESH_TOKEN = "TG-sandbox-refresh-token"

SITE_CURRENCIES = {
    "MLA": "ARS",
    "MLB": "BRL",
    "MLC": "CLP",
    "MCO": "COP",
    "MLM": "MXN",
    "MLU": "UYU",
    "MPE": "PEN",
}
CONDITIONS = ("new", "used", "not_specified")
BUYING_MODES = ("buy_it_now", "classified", "auction")
LISTING_TYPES = ("gold_pro", "gold_special", "gold_premium", "gold", "silver", "bronze", "free")
STATUSES = ("active", "paused", "closed")
SEARCH_MAX_LIMIT = 100
"""Ids one page of the items search holds at most."""
SEARCH_MAX_OFFSET = 1000
"""How far offset paging reaches; past it, the scan search."""
MULTIGET_MAX = 20
"""Items one ``GET /items?ids=`` reads at most."""

CREATE_FIELDS = frozenset(
    {
        "title", "category_id", "price", "currency_id", "available_quantity", "buying_mode",
        "listing_type_id", "condition", "pictures", "attributes", "sale_terms", "variations", "site_id",
        "description", "shipping", "channels", "catalog_product_id", "catalog_listing", "video_id",
        "accepts_mercadopago", "non_mercado_pago_payment_methods", "seller_custom_field",
    }
)  # fmt: skip
REQUIRED = ("title", "category_id", "price", "currency_id", "available_quantity", "buying_mode",
            "listing_type_id", "condition", "pictures")  # fmt: skip
UPDATABLE = frozenset(
    {"title", "buying_mode", "price", "available_quantity", "pictures", "video_id", "shipping", "status",
     "variations", "attributes", "sale_terms", "non_mercado_pago_payment_methods"}
)  # fmt: skip
"""ITEMS.md's changeable fields, plus attributes and sale terms (which the items API also takes)."""
VARIATION_FIELDS = frozenset(
    {"id", "attribute_combinations", "price", "available_quantity", "picture_ids", "attributes",
     "seller_custom_field"}
)  # fmt: skip
ERROR_NAMES = {400: "bad_request", 401: "unauthorized", 403: "forbidden", 404: "not_found",
               429: "too_many_requests", 500: "internal_error", 503: "service_unavailable"}  # fmt: skip
GRANT_REFUSALS = {
    "unsupported_grant_type": "grant_type must be refresh_token",
    "invalid_client": "invalid client_id or client_secret.",
    "invalid_grant": "Error validating grant. Your authorization code or refresh token may be expired or it "
    "was already used",
}
"""What ``POST /oauth/token`` answers (400) for each OAuth error of a refused grant."""


class MercadoLibreStandin(Standin):
    """Mercado Libre's items API for one seller, in memory; see the module docstring for what it checks.

    Its orders are :attr:`order_desk`'s; ``create_order``, ``set_order_status``, ``order_record``,
    ``shipment_record``, ``orders``, ``shipments``, ``feedback`` and ``fiscal_documents`` are the
    desk's, named here too.
    """

    name = "mercadolibre"

    def __init__(
        self,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        refresh_token: str = SANDBOX_REFRESH_TOKEN,
        *,
        site: str = "MLB",
        seller_id: int = 123456789,
        token_lifetime: float = 21600.0,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], datetime] | None = None,
    ) -> None:
        self.oauth = AccessTokens(client_id, client_secret, refresh_token, token_lifetime)
        """The token endpoint's grant; its refresh token rotates on every refresh."""
        self.tokens = self.oauth.issued
        """Access token -> when it expires (``time.monotonic``)."""
        self.site, self.seller_id = site, seller_id
        self.items: dict[str, dict[str, Any]] = {}
        self.descriptions: dict[str, str] = {}
        self.scrolls: dict[str, int] = {}
        """Scan-search scroll id -> where its next page starts."""
        self._item_ids = itertools.count(4000000001)
        self._variation_ids = itertools.count(170000000001)
        self._picture_ids = itertools.count(600001)
        self.order_desk = desk = OrderDesk(
            self.items, site=site, seller_id=seller_id, authorize=self._authorize, clock=clock
        )
        self.orders, self.shipments = desk.orders, desk.shipments
        self.feedback, self.fiscal_documents = desk.feedback, desk.fiscal_documents
        self.create_order, self.set_order_status = desk.create_order, desk.set_order_status
        self.order_record, self.shipment_record = desk.order_record, desk.shipment_record
        self.after_sales = AfterSalesDesk(
            desk.orders,
            self.items,
            seller_id=seller_id,
            authorize=self._authorize,
            clock=lambda: desk.clock(),
        )
        """Claims, returns and questions (``open_claim``, ``ask``: the buyer's side)."""
        super().__init__(rate_limit, burst, faults)

    @property
    def refresh_token(self) -> str:
        """The one refresh token accepted now; each refresh replaces it."""
        return self.oauth.refresh_token

    @property
    def clock(self) -> Callable[[], datetime]:
        """What stamps the orders' ``date_created`` and ``last_updated``."""
        return self.order_desk.clock

    def build(self) -> Starlette:
        routes = [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/users/me", self.me, methods=["GET"]),
            Route("/users/{user_id}/items/search", self.search, methods=["GET"]),
            Route("/items", self.create, methods=["POST"]),
            Route("/items", self.multiget, methods=["GET"]),
            Route("/items/{item_id}", self.get_item, methods=["GET"]),
            Route("/items/{item_id}", self.update, methods=["PUT"]),
            Route("/items/{item_id}/description", self.get_description, methods=["GET"]),
            Route("/items/{item_id}/description", self.set_description, methods=["PUT", "POST"]),
            *self.order_desk.routes(),
            *self.after_sales.routes(),
        ]
        return Starlette(routes=routes, exception_handlers=error_handlers(self.error_body, _unrouted))

    def error_body(self, status: int, message: str) -> Any:
        return Refusal(status, ERROR_NAMES.get(status, "error"), message).body()

    # -- for tests -----------------------------------------------------------------------------

    def variation(self, remote_id: str) -> dict[str, Any]:
        """The variation ``MLB123/987`` names."""
        return find_variation(self.items, remote_id)

    def sell(self, item_id: str, quantity: int = 1, variation_id: int | None = None) -> None:
        """A buyer's purchase: from now on the title can no longer change."""
        item = self.items[item_id]
        target = self.variation(f"{item_id}/{variation_id}") if variation_id is not None else item
        target["available_quantity"] -= quantity
        target["sold_quantity"] += quantity
        _totals(item)

    def revoke_tokens(self) -> None:
        """What happens when the seller re-authorises the app: every access token stops working."""
        self.oauth.revoke()

    # -- OAuth -----------------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token`` (form): the refresh-token grant; the refresh token rotates."""
        oauth = self.oauth
        refused = oauth.refusal(await form_body(request))
        if refused is not None:
            raise Refusal(400, refused, GRANT_REFUSALS[refused])
        access = oauth.issue(f"APP_USR-{oauth.client_id}-{secrets.token_hex(12)}-{self.seller_id}")
        oauth.refresh_token = f"TG-{secrets.token_hex(12)}-{self.seller_id}"
        return _json(
            {
                "access_token": access,
                "token_type": "Bearer",
                "expires_in": int(oauth.lifetime),
                "scope": "offline_access read write",
                "user_id": self.seller_id,
                "refresh_token": oauth.refresh_token,
            }
        )

    def _authorize(self, request: Request) -> None:
        if not self.oauth.bearer(request):
            raise Refusal(401, "unauthorized", "invalid access token")

    # -- users -----------------------------------------------------------------------------------

    async def me(self, request: Request) -> Response:
        self._authorize(request)
        return _json({"id": self.seller_id, "nickname": "TRADEPOST_SANDBOX", "site_id": self.site})

    async def search(self, request: Request) -> Response:
        """``GET /users/{id}/items/search``: the seller's item ids, filtered by ``seller_sku`` and
        ``status``, a page at a time.

        Two ways to page, as Mercado Libre's: ``offset`` and ``limit`` (default 50, at most 100),
        which cannot reach past the first 1,000 results; and ``search_type=scan``, whose every
        answer carries a ``scroll_id`` that the next call sends to get the next page, until a page
        comes back empty.
        """
        self._authorize(request)
        if request.path_params["user_id"] != str(self.seller_id):
            raise Refusal(403, "forbidden", "the token does not belong to this user")
        sku, status = request.query_params.get("seller_sku"), request.query_params.get("status")
        found = [
            item_id
            for item_id, item in self.items.items()
            if (sku is None or sku in _seller_skus(item)) and (status is None or item["status"] == status)
        ]
        limit = int_param(request, "limit", 50)
        if limit is None or not 1 <= limit <= SEARCH_MAX_LIMIT:
            raise Refusal(400, "bad_request", f"limit must be between 1 and {SEARCH_MAX_LIMIT}")
        body: dict[str, Any] = {"seller_id": str(self.seller_id)}
        if request.query_params.get("search_type") == "scan":
            scroll = request.query_params.get("scroll_id")
            start = 0
            if scroll is not None:
                if scroll not in self.scrolls:
                    raise Refusal(400, "bad_request", "invalid or expired scroll_id")
                start = self.scrolls.pop(scroll)
            page = found[start : start + limit]
            body["scroll_id"] = scroll_id = secrets.token_hex(16)
            self.scrolls[scroll_id] = start + len(page)
            body.update(results=page, paging={"limit": limit, "total": len(found)})
            return _json(body)
        offset = int_param(request, "offset", 0)
        if offset is None or offset < 0:
            raise Refusal(400, "bad_request", "offset must be a whole number")
        if offset + limit > SEARCH_MAX_OFFSET:
            message = f"offset + limit may not exceed {SEARCH_MAX_OFFSET}; use search_type=scan"
            raise Refusal(400, "bad_request", message)
        paging = {"limit": limit, "offset": offset, "total": len(found)}
        body.update(results=found[offset : offset + limit], paging=paging)
        return _json(body)

    async def multiget(self, request: Request) -> Response:
        """``GET /items?ids=A,B,...`` (at most 20): ``[{code, body}]`` in the order asked, 404 per
        unknown id."""
        self._authorize(request)
        ids = [i for i in request.query_params.get("ids", "").split(",") if i]
        if not ids or len(ids) > MULTIGET_MAX:
            raise Refusal(400, "bad_request", f"ids must name between 1 and {MULTIGET_MAX} items")
        answers = []
        for item_id in ids:
            item = self.items.get(item_id)
            if item is None:
                answers.append({"code": 404, "body": _unknown_item(item_id).body()})
            else:
                answers.append({"code": 200, "body": item})
        return _json(answers)

    # -- items -----------------------------------------------------------------------------------

    async def create(self, request: Request) -> Response:
        """``POST /items``: 201 with the item, ids assigned to it, its pictures and its variations."""
        self._authorize(request)
        body = await _body(request)
        causes = self._check_new_item(body)
        if causes:
            raise Refusal(400, "validation_error", "Validation error", tuple(causes))
        number = next(self._item_ids)
        item_id = f"{self.site}{number}"
        pictures = [self._picture(p) for p in body["pictures"]]
        item: dict[str, Any] = {
            "id": item_id,
            "site_id": self.site,
            "seller_id": self.seller_id,
            **{key: body[key] for key in REQUIRED if key != "pictures"},
            "base_price": body["price"],
            "initial_quantity": body["available_quantity"],
            "sold_quantity": 0,
            "pictures": pictures,
            "attributes": list(body.get("attributes") or []),
            "sale_terms": list(body.get("sale_terms") or []),
            "variations": [self._new_variation(v, pictures) for v in body.get("variations") or []],
            "status": "active",
            "sub_status": [],
            "permalink": f"https://produto.mercadolivre.com.br/{self.site}-{number}",
            "thumbnail": pictures[0]["url"],
        }
        _totals(item)
        self.items[item_id] = item
        description = body.get("description")
        if isinstance(description, Mapping):
            self.descriptions[item_id] = str(description.get("plain_text") or "")
        return _json(item, 201)

    async def get_item(self, request: Request) -> Response:
        """``GET /items/{id}`` (variation attributes included, as with ``include_attributes=all``)."""
        return _json(self._item(request))

    async def update(self, request: Request) -> Response:
        """``PUT /items/{id}``: only the fields sent change; all of them or none."""
        self._authorize(request)
        item = self._item(request)
        body = await _body(request)
        causes = self._check_update(item, body)
        if causes:
            raise Refusal(400, "validation_error", "Validation error", tuple(causes))
        for key in ("title", "buying_mode", "price", "available_quantity", "video_id", "shipping", "status"):
            if key in body:
                item[key] = body[key]
        if "pictures" in body:
            item["pictures"] = [self._picture(p) for p in body["pictures"]]
        for key in ("attributes", "sale_terms"):
            if key in body:
                item[key] = _merged(item[key], body[key])
        for change in body.get("variations") or []:
            if "id" not in change:
                item["variations"].append(self._new_variation(change, item["pictures"]))
                continue
            variation = next(v for v in item["variations"] if str(v["id"]) == str(change["id"]))
            for key in ("attribute_combinations", "price", "available_quantity", "seller_custom_field"):
                if key in change:
                    variation[key] = change[key]
            if "picture_ids" in change:
                variation["picture_ids"] = _picture_ids(change["picture_ids"], item["pictures"])
            if "attributes" in change:
                variation["attributes"] = _merged(variation["attributes"], change["attributes"])
        _totals(item)
        return _json(item)

    async def get_description(self, request: Request) -> Response:
        item = self._item(request)
        return _json({"text": "", "plain_text": self.descriptions.get(item["id"], "")})

    async def set_description(self, request: Request) -> Response:
        """``PUT`` (or ``POST``) ``/items/{id}/description`` with ``{plain_text}``."""
        self._authorize(request)
        item = self._item(request)
        body = await _body(request)
        text = body.get("plain_text")
        if not isinstance(text, str):
            cause = _cause("item.description.invalid", "plain_text", "plain_text must be a string")
            raise Refusal(400, "validation_error", "Validation error", (cause,))
        if item["status"] == "closed":
            raise Refusal(400, "validation_error", f"item {item['id']} is closed and cannot be modified")
        self.descriptions[item["id"]] = text
        return _json({"text": "", "plain_text": text})

    # -- checks ----------------------------------------------------------------------------------

    def _check_new_item(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        causes = [
            _cause("body.invalid_fields", key, f"field '{key}' is not a field of an item")
            for key in body
            if key not in CREATE_FIELDS
        ]
        causes += [
            _cause(f"item.{key}.required", key, f"{key} is required") for key in REQUIRED if key not in body
        ]
        causes += self._check_fields(body)
        category = body.get("category_id")
        if category is not None and not re.fullmatch(rf"{self.site}\d+", str(category)):
            message = f"category_id {category!r} is not a category of site {self.site}"
            causes.append(_cause("item.category_id.invalid", "category_id", message))
        currency = body.get("currency_id")
        expected = SITE_CURRENCIES.get(self.site)
        if currency is not None and currency != expected:
            message = f"currency_id {currency!r} is not accepted on site {self.site}; use {expected}"
            causes.append(_cause("item.currency_id.invalid", "currency_id", message))
        listing_type = body.get("listing_type_id")
        if listing_type is not None and listing_type not in LISTING_TYPES:
            message = f"listing_type_id {listing_type!r} is not one of {', '.join(LISTING_TYPES)}"
            causes.append(_cause("item.listing_type_id.invalid", "listing_type_id", message))
        condition = body.get("condition")
        if condition is not None and condition not in CONDITIONS:
            message = f"condition {condition!r} is not one of {', '.join(CONDITIONS)}"
            causes.append(_cause("item.condition.invalid", "condition", message))
        description = body.get("description")
        if description is not None and not (
            isinstance(description, Mapping) and isinstance(description.get("plain_text"), str)
        ):
            message = "description must be {plain_text: string}"
            causes.append(_cause("item.description.invalid", "description", message))
        variations = body.get("variations")
        if variations is not None:
            pictures = _picture_keys(body.get("pictures"))
            causes += self._check_variations(variations, pictures, creating=True)
            prices = {v.get("price") for v in variations if isinstance(v, Mapping)}
            if len(prices) > 1:
                message = "all variations must have the same price"
                causes.append(_cause("item.variations.price.invalid", "variations.price", message))
        return causes

    def _check_update(self, item: Mapping[str, Any], body: Mapping[str, Any]) -> list[dict[str, Any]]:
        if item["status"] == "closed":
            return [
                _cause("item.status.closed", "status", f"item {item['id']} is closed and cannot be modified")
            ]
        causes = [
            _cause(
                "field_not_updatable",
                key,
                "the description changes through PUT /items/{id}/description"
                if key == "description"
                else f"field '{key}' cannot be modified",
            )
            for key in body
            if key not in UPDATABLE
        ]
        if not body:
            causes.append(_cause("body.empty", "body", "nothing to update"))
        causes += self._check_fields(body)
        for key, code in (
            ("title", "item.title.not_modifiable"),
            ("buying_mode", "item.buying_mode.not_modifiable"),
        ):
            if key in body and item["sold_quantity"] > 0 and body[key] != item[key]:
                causes.append(_cause(code, key, f"{key} cannot be modified: the item has sales"))
        if item["variations"]:
            causes += [
                _cause(
                    f"item.{key}.variations",
                    key,
                    f"the item has variations: change {key} per variation",
                )
                for key in ("price", "available_quantity")
                if key in body
            ]
        status = body.get("status")
        if status is not None and status not in STATUSES:
            causes.append(
                _cause("item.status.invalid", "status", f"status must be one of {', '.join(STATUSES)}")
            )
        variations = body.get("variations")
        if variations is not None:
            pictures = _picture_keys(body.get("pictures") or item["pictures"])
            causes += self._check_variations(variations, pictures, creating=False, item=item)
        return causes

    def _check_fields(self, body: Mapping[str, Any]) -> list[dict[str, Any]]:
        """The checks a field gets wherever it is sent."""
        causes: list[dict[str, Any]] = []
        title = body.get("title")
        if "title" in body and not (isinstance(title, str) and title.strip()):
            causes.append(_cause("item.title.invalid", "title", "title must be a non-empty string"))
        elif isinstance(title, str) and len(title) > 60:
            message = f"title has {len(title)} characters; the maximum is 60"
            causes.append(_cause("item.title.length.invalid", "title", message))
        if "price" in body and not _positive(body["price"]):
            causes.append(_cause("item.price.invalid", "price", "price must be a number greater than 0"))
        if "available_quantity" in body and not _count(body["available_quantity"]):
            message = "available_quantity must be an integer of at least 0"
            causes.append(_cause("item.available_quantity.invalid", "available_quantity", message))
        if "buying_mode" in body and body["buying_mode"] not in BUYING_MODES:
            message = f"buying_mode must be one of {', '.join(BUYING_MODES)}"
            causes.append(_cause("item.buying_mode.invalid", "buying_mode", message))
        if "pictures" in body:
            causes += _check_pictures(body["pictures"])
        for key in ("attributes", "sale_terms"):
            if key in body:
                causes += _check_attributes(body[key], key)
        return causes

    def _check_variations(
        self,
        variations: Any,
        pictures: set[str],
        creating: bool,
        item: Mapping[str, Any] | None = None,
    ) -> list[dict[str, Any]]:
        if not isinstance(variations, list) or (creating and not variations):
            return [_cause("item.variations.invalid", "variations", "variations must be a non-empty list")]
        existing = {str(v["id"]): v for v in (item or {}).get("variations") or []}
        causes: list[dict[str, Any]] = []
        combinations: dict[str, frozenset[tuple[str, str]]] = {
            key: _combination(v["attribute_combinations"]) for key, v in existing.items()
        }
        for index, variation in enumerate(variations):
            where = f"variations[{index}]"
            if not isinstance(variation, Mapping):
                causes.append(_cause("item.variations.invalid", where, "a variation must be an object"))
                continue
            causes += [
                _cause(
                    "body.invalid_fields", f"{where}.{key}", f"field '{key}' is not a field of a variation"
                )
                for key in variation
                if key not in VARIATION_FIELDS or (creating and key == "id")
            ]
            new = "id" not in variation
            if not new and str(variation["id"]) not in existing:
                message = f"variation {variation['id']} does not belong to the item"
                causes.append(_cause("item.variations.id.invalid", f"{where}.id", message))
                continue
            for key in ("attribute_combinations", "price", "available_quantity") if new else ():
                if key not in variation:
                    causes.append(
                        _cause(f"item.variations.{key}.required", f"{where}.{key}", f"{key} is required")
                    )
            if "price" in variation and not _positive(variation["price"]):
                message = "price must be a number greater than 0"
                causes.append(_cause("item.variations.price.invalid", f"{where}.price", message))
            if "available_quantity" in variation and not _count(variation["available_quantity"]):
                message = "available_quantity must be an integer of at least 0"
                causes.append(
                    _cause(
                        "item.variations.available_quantity.invalid", f"{where}.available_quantity", message
                    )
                )
            if "attributes" in variation:
                causes += _check_attributes(variation["attributes"], f"{where}.attributes")
            unknown = [p for p in variation.get("picture_ids") or [] if str(p) not in pictures]
            if unknown:
                message = f"picture_ids {unknown} are not pictures of the item"
                causes.append(_cause("item.variations.picture_ids.invalid", f"{where}.picture_ids", message))
            if "attribute_combinations" in variation:
                combination = variation["attribute_combinations"]
                problems = _check_attributes(combination, f"{where}.attribute_combinations")
                if not combination:
                    message = "attribute_combinations must name at least one attribute"
                    problems.append(_cause("item.variations.attribute_combinations.invalid", where, message))
                causes += problems
                if not problems:
                    combinations[f"new {index}" if new else str(variation["id"])] = _combination(combination)
        id_sets = {frozenset(name for name, _ in combination) for combination in combinations.values()}
        if len(id_sets) > 1:
            message = "every variation must carry the same attribute_combinations ids"
            causes.append(_cause("item.variations.attribute_combinations.invalid", "variations", message))
        if len(set(combinations.values())) < len(combinations):
            message = "two variations have the same attribute_combinations"
            causes.append(_cause("item.variations.attribute_combinations.duplicated", "variations", message))
        return causes

    # -- helpers ---------------------------------------------------------------------------------

    def _item(self, request: Request) -> dict[str, Any]:
        return look_up(self.items, request.path_params["item_id"], _unknown_item)

    def _picture(self, picture: Mapping[str, Any]) -> dict[str, Any]:
        if "id" in picture and "source" not in picture:
            return {"id": str(picture["id"]), "url": picture.get("url"), "secure_url": picture.get("url")}
        number = next(self._picture_ids)
        return {"id": f"{number}-{self.site}", "url": picture["source"], "secure_url": picture["source"]}

    def _new_variation(self, variation: Mapping[str, Any], pictures: list[dict[str, Any]]) -> dict[str, Any]:
        return {
            "id": next(self._variation_ids),
            "attribute_combinations": list(variation["attribute_combinations"]),
            "price": variation["price"],
            "available_quantity": variation["available_quantity"],
            "sold_quantity": 0,
            "picture_ids": _picture_ids(variation.get("picture_ids") or [], pictures),
            "attributes": list(variation.get("attributes") or []),
            "seller_custom_field": variation.get("seller_custom_field"),
        }


def _unrouted(request: Request, status: int, error: Exception) -> str:
    return f"resource not found: {request.method} {request.url.path}" if status == 404 else str(error)


def _unknown_item(item_id: str) -> Refusal:
    return Refusal(404, "not_found", f"Item with id {item_id} not found")


def _check_attributes(attributes: Any, where: str) -> list[dict[str, Any]]:
    """A list of ``{id, value_name | value_id}``."""
    if not isinstance(attributes, list):
        return [_cause("item.attributes.invalid", where, f"{where} must be a list")]
    causes = []
    for index, attribute in enumerate(attributes):
        valid = (
            isinstance(attribute, Mapping)
            and isinstance(attribute.get("id"), str)
            and bool(attribute["id"])
            and any(isinstance(attribute.get(k), str) and attribute[k] for k in ("value_name", "value_id"))
        )
        if not valid:
            message = f"{where}[{index}] must be {{id, value_name | value_id}}, got {attribute!r}"
            causes.append(_cause("item.attributes.invalid", f"{where}[{index}]", message))
    return causes


def _check_pictures(pictures: Any) -> list[dict[str, Any]]:
    if not isinstance(pictures, list) or not pictures:
        return [_cause("item.pictures.invalid", "pictures", "at least one picture is required")]
    return [
        _cause("item.pictures.invalid", f"pictures[{index}]", "a picture is {source: http(s) URL} or {id}")
        for index, picture in enumerate(pictures)
        if not (
            isinstance(picture, Mapping)
            and (re.match(r"https?://", str(picture.get("source") or "")) or picture.get("id"))
        )
    ]


def _picture_keys(pictures: Any) -> set[str]:
    """What a variation's ``picture_ids`` may name: a picture's id or the URL it came from."""
    keys: set[str] = set()
    for picture in pictures if isinstance(pictures, list) else []:
        if isinstance(picture, Mapping):
            keys.update(str(picture[k]) for k in ("id", "source", "url") if picture.get(k))
    return keys


def _picture_ids(given: Iterable[Any], pictures: list[dict[str, Any]]) -> list[str]:
    by_url = {str(p["url"]): p["id"] for p in pictures}
    return [by_url.get(str(key), str(key)) for key in given]


def _combination(attributes: Iterable[Mapping[str, Any]]) -> frozenset[tuple[str, str]]:
    return frozenset((str(a["id"]), str(a.get("value_id") or a.get("value_name"))) for a in attributes)


def _merged(current: list[dict[str, Any]], changes: Iterable[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """Attributes sent replace those with the same id; the others stay."""
    merged = {a["id"]: a for a in current}
    merged.update((a["id"], dict(a)) for a in changes)
    return list(merged.values())


def _seller_skus(item: Mapping[str, Any]) -> set[str]:
    holders = [item, *item["variations"]]
    return {
        str(a.get("value_name"))
        for holder in holders
        for a in holder.get("attributes") or []
        if a.get("id") == "SELLER_SKU"
    }
