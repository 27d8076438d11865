"""A stand-in for Dafiti's SellerCenter: signed calls, XML envelopes, asynchronous feeds.

One seller, in memory, answering at the host's root the way API.md (``shared/specs/dafiti``)
documents and the connector's correctness depends on (the §8 checklist):

- **the signature**: ``Action``, ``UserID``, ``Version`` (1.0), ``Timestamp`` (ISO 8601) and
  ``Signature`` are required; the signature is recomputed from every other query parameter with
  the user's API key (``_http.signature``) and compared; a missing or wrong one, or an unknown
  UserID, is ``E007 Login failed. Signature mismatching``. Answers are ``SuccessResponse`` /
  ``ErrorResponse`` envelopes in XML, or JSON when ``Format=JSON``;
- **feeds**: ProductCreate, ProductUpdate, ProductRemove and Image store the XML ``<Request>``,
  answer its feed id in ``Head.RequestId`` with an empty Body, and process it later: a feed is
  ``Queued``, then ``Finished`` once ``feed_seconds`` (documented seconds, 10) have passed (checked
  at every call), its records applied in order. Each refused record is an ``Error`` in the feed's
  ``FeedErrors`` (``FailedRecords`` counts them); validation errors name the SKU only in their
  message, as the SDK fixtures show. ``FeedStatus``, ``FeedList`` read them;
- **validation**: SellerSku unique (a ProductCreate of an existing SKU is refused, as is a
  ProductUpdate, Image or ProductRemove of an unknown one); brand among :attr:`brands`;
  PrimaryCategory in :data:`CATEGORIES`; price positive, sale price below it; description 6 to
  25,000 characters; at most 3 categories; ``ParentSku`` naming a product that exists (or comes
  earlier in the feed); Dafiti's mandatory attributes (``Variation``, and in ``ProductData``
  ``Gender``, ``Origin``, ``ColorFamily``, ``Color``, ``OriginCountry``), ``Gender`` from Dafiti's
  case-sensitive list; ``Variation`` never changed by an update; image URLs http(s), the first the
  main one, all replaced by each Image feed;
- **feed spacing** (API.md §7): the first 50 feed calls pass, then one per 2 minutes: an earlier
  one is answered HTTP 429 with an ErrorResponse and a Retry-After; refused calls take no turn;
- ``GetProducts`` (``SkuSellerList``, ``Search``, ``Limit``/``Offset``), ``GetBrands``,
  ``GetCategoryTree``;
- faults, the rate limit and the request log are the base
  :class:`~marketplaces._standin.Standin`'s (an injected fault answers an ErrorResponse in JSON).

Time runs ``time_scale`` times faster than the documented durations (the sandbox's: 600).

Orders: an order desk joins with ``order_desk=``: an object with ``actions()`` (``Action`` name ->
:data:`~marketplaces.sellercenter._http.ActionHandler`, consulted after the signature check, its
answers wrapped in the envelope the ``Format`` asks) and ``routes()`` (sandbox controls, served
beside ``/``). A handler reads :class:`~marketplaces.sellercenter._http.ActionCall` and raises
:class:`~marketplaces.sellercenter._http.ActionRefused` for an ErrorResponse (E020, E028, ...).
"""

from __future__ import annotations

import json
import time
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route

from marketplaces._standin import Faults, Standin
from marketplaces.sellercenter._http import (
    FEED_ACTIONS,
    FEED_INTERVAL,
    FREE_FEED_CALLS,
    SIGNATURE_ERROR,
    VERSION,
    ActionCall,
    ActionHandler,
    ActionRefused,
    as_list,
    decimal_of,
    error_envelope,
    parse_xml,
    render,
    signature_matches,
    success_envelope,
    xml_data,
)
from marketplaces.sellercenter._standin_order_desk import SellerCenterOrderDesk

SANDBOX_USER_ID = "sandbox@seller.example"
SANDBOX_API_KEY = "sandbox-sellercenter-key-not-a-secret"
SANDBOX_TIME_SCALE = 600.0
CATEGORIES: Mapping[str, str] = {
    "1000": "Calçados",
    "1010": "Calçados/Tênis",
    "1020": "Calçados/Botas",
    "1030": "Calçados/Sandálias",
    "2000": "Roupas",
    "2010": "Roupas/Camisetas",
    "2020": "Roupas/Vestidos",
    "2030": "Roupas/Calças",
    "3000": "Acessórios",
    "3010": "Acessórios/Bolsas",
}
"""The stand-in's category tree (ids as ``GetCategoryTree`` gives them; Dafiti's real ids differ)."""
GENDERS = frozenset({"Masculino", "Feminino", "Unissex", "Menino", "Menina"})
DAFITI_DATA = ("Gender", "Origin", "ColorFamily", "Color", "OriginCountry")
STATUSES = frozenset({"active", "inactive", "deleted"})
CONDITIONS = frozenset({"new", "used", "refurbished"})
SHIPMENT_TYPES = frozenset({"dropshipping", "crossdocking"})
DESCRIPTION_LENGTH = (6, 25_000)
FEED_SECONDS = 10.0
GET_PRODUCTS_MAX = 1000


class OrderDesk(Protocol):
    """What an order desk gives the stand-in it joins."""

    def actions(self) -> Mapping[str, ActionHandler]: ...

    def routes(self) -> Sequence[BaseRoute]: ...


@dataclass
class Feed:
    """One feed: its action, its records, when it was made, and what processing found."""

    feed_id: str
    action: str
    records: list[dict[str, Any]]
    created: float
    status: str = "Queued"
    errors: list[dict[str, str]] = field(default_factory=list)
    failed: set[str] = field(default_factory=set)

    def detail(self) -> dict[str, Any]:
        """FeedStatus's ``FeedDetail``."""
        done = self.status == "Finished"
        detail: dict[str, Any] = {
            "Feed": self.feed_id,
            "Status": self.status,
            "Action": self.action,
            "CreationDate": "2026-01-01 00:00:00",
            "UpdatedDate": "2026-01-01 00:00:00",
            "Source": "api",
            "TotalRecords": str(len(self.records)),
            "ProcessedRecords": str(len(self.records) if done else 0),
            "FailedRecords": str(len(self.failed)),
        }
        if self.errors:
            detail["FeedErrors"] = {"Error": self.errors}
        return detail


class SellerCenterStandin(Standin):
    """Dafiti's SellerCenter for one seller; see the module docstring."""

    name = "dafiti"

    def __init__(
        self,
        user_id: str = SANDBOX_USER_ID,
        api_key: str = SANDBOX_API_KEY,
        *,
        brands: Iterable[str] = ("Aurora", "Pisada"),
        time_scale: float = 1.0,
        feed_seconds: float = FEED_SECONDS,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
        order_desk: OrderDesk | None = None,
    ) -> None:
        self.user_id, self.api_key = user_id, api_key
        self.brands = set(brands)
        self.time_scale, self.feed_seconds, self.clock = time_scale, feed_seconds, clock
        self.products: dict[str, dict[str, Any]] = {}
        """SellerSku -> the product as the seller's last feeds left it."""
        self.feeds: dict[str, Feed] = {}
        self.feed_calls = 0
        self.last_feed_call: float | None = None
        self.feed_refusals = 0
        self.signature_refusals = 0
        self.actions: list[str] = []
        """The actions of the signed calls, in order (what tests check was sent)."""
        self.order_desk: OrderDesk = order_desk or SellerCenterOrderDesk(self.products)
        self.handlers: dict[str, ActionHandler] = {
            **dict.fromkeys(FEED_ACTIONS, self.create_feed),
            "FeedStatus": self.feed_status,
            "FeedList": self.feed_list,
            "GetProducts": self.get_products,
            "GetBrands": self.get_brands,
            "GetCategoryTree": self.get_category_tree,
            **self.order_desk.actions(),
        }
        """Action -> handler: the catalog's, and the order desk's."""
        super().__init__(rate_limit, burst, faults)

    # -- sandbox -----------------------------------------------------------------------------

    @classmethod
    def for_sandbox(
        cls, catalog: Iterable[Mapping[str, Any]], *, faults: Faults | None, rate_limit: float | None
    ) -> SellerCenterStandin:
        """The seller's brands are the catalog's (registered with Dafiti, as VTEX's guide requires)."""
        products = [r["product"] for r in catalog if isinstance(r.get("product"), Mapping)]
        brands = {str(p["brand"]) for p in products if p.get("brand")}
        return cls(brands=brands, rate_limit=rate_limit, faults=faults, time_scale=SANDBOX_TIME_SCALE)

    def sandbox_credentials(self) -> dict[str, str]:
        return {"api_key": self.api_key}

    def sandbox_options(self, url: str) -> dict[str, str]:
        return {"user_id": self.user_id, "time_scale": format(self.time_scale, "g")}

    def build(self) -> Starlette:
        routes: list[BaseRoute] = [Route("/", self.dispatch, methods=["GET", "POST"])]
        if self.order_desk is not None:
            routes.extend(self.order_desk.routes())
        return Starlette(routes=routes)

    def error_body(self, status: int, message: str) -> Any:
        return error_envelope("", str(status), message, kind="Platform" if status >= 500 else "Sender")

    # -- for tests ---------------------------------------------------------------------------

    def process_feeds(self, everything: bool = False) -> None:
        """Process the feeds whose time has come (every queued one with ``everything``)."""
        due = self.clock() - self.feed_seconds / self.time_scale
        for feed in self.feeds.values():
            if feed.status == "Queued" and (everything or feed.created <= due):
                self._process(feed)

    # -- the gate ----------------------------------------------------------------------------

    async def dispatch(self, request: Request) -> Response:
        """Check the signed parameters, then answer the action in the envelope ``Format`` asks."""
        params = dict(request.query_params)
        action, fmt = params.get("Action", ""), params.get("Format", "XML")
        self.process_feeds()
        try:
            self._check_signed(params)
            self.actions.append(action)
            handler = self.handlers.get(action)
            if handler is None:
                raise ActionRefused("E008", f"Invalid Action: {action}")
            raw = await request.body()
            body = _parsed(raw) if request.method == "POST" and raw.strip() else None
            call = ActionCall(action, params, body, request)
            feed_call = action in FEED_ACTIONS
            if feed_call:
                self._check_feed_turn()
            answer = await handler(call)
            if feed_call:
                self.feed_calls += 1
                self.last_feed_call = self.clock()
        except ActionRefused as refused:
            content, media = render(
                error_envelope(action, refused.code, refused.message, refused.details), fmt
            )
            headers = {} if refused.retry_after is None else {"Retry-After": f"{refused.retry_after:.3f}"}
            return Response(content, refused.status, headers=headers, media_type=media)
        envelope = answer if _is_envelope(answer) else success_envelope(action, answer)
        content, media = render(envelope, fmt)
        return Response(content, media_type=media)

    def _check_signed(self, params: Mapping[str, str]) -> None:
        missing = [p for p in ("Action", "UserID", "Version", "Timestamp", "Signature") if not params.get(p)]
        if missing:
            if "Signature" in missing or "UserID" in missing:
                self.signature_refusals += 1
                raise ActionRefused(SIGNATURE_ERROR, "Login failed. Signature mismatching", 403)
            raise ActionRefused("E001", f"Parameter {missing[0]} is mandatory")
        if params["UserID"] != self.user_id or not signature_matches(params, self.api_key):
            self.signature_refusals += 1
            raise ActionRefused(SIGNATURE_ERROR, "Login failed. Signature mismatching", 403)
        if params["Version"] != VERSION:
            raise ActionRefused("E001", f"Invalid Version: {params['Version']}")
        try:
            datetime.fromisoformat(params["Timestamp"])
        except ValueError:
            raise ActionRefused("E001", f"Invalid Timestamp: {params['Timestamp']}") from None

    def _check_feed_turn(self) -> None:
        """The 50 free feed calls, then one per 2 minutes (only an accepted call takes a turn)."""
        now = self.clock()
        interval = FEED_INTERVAL / self.time_scale
        if self.feed_calls >= FREE_FEED_CALLS and self.last_feed_call is not None:
            wait = self.last_feed_call + interval * 0.98 - now
            if wait > 0:
                self.feed_refusals += 1
                self.throttled += 1
                message = "too many attempts to create feeds: one per 2 minutes after the first 50"
                raise ActionRefused("E429", message, 429, retry_after=wait)

    # -- feeds -------------------------------------------------------------------------------

    async def create_feed(self, call: ActionCall) -> Any:
        tag = "ProductImage" if call.action == "Image" else "Product"
        if call.body is None or call.body.tag != "Request":
            raise ActionRefused("E001", f"{call.action} needs an XML <Request> body")
        records = [xml_data(e) for e in call.body if e.tag == tag]
        records = [r if isinstance(r, dict) else {} for r in records]
        if not records:
            raise ActionRefused("E001", f"{call.action}: the Request holds no <{tag}>")
        feed = Feed(str(uuid.uuid4()), call.action, records, self.clock())
        self.feeds[feed.feed_id] = feed
        return success_envelope(call.action, None, request_id=feed.feed_id)

    async def feed_status(self, call: ActionCall) -> Any:
        feed = self.feeds.get(call.params.get("FeedID", ""))
        if feed is None:
            raise ActionRefused("E013", f"Invalid Feed ID: {call.params.get('FeedID', '')}")
        return {"FeedDetail": feed.detail()}

    async def feed_list(self, call: ActionCall) -> Any:
        return {"Feed": [feed.detail() for feed in self.feeds.values()]}

    def _process(self, feed: Feed) -> None:
        apply = {
            "ProductCreate": self._create,
            "ProductUpdate": self._update,
            "ProductRemove": self._remove,
            "Image": self._images,
        }[feed.action]
        for record in feed.records:
            sku = str(record.get("SellerSku") or "")
            problem = apply(sku, record) if sku else "SellerSku is mandatory"
            if problem:
                feed.failed.add(sku)
                named = {} if problem.startswith("Field ") else {"SellerSku": sku}
                feed.errors.append({"Code": "1", "Message": problem, **named})
        feed.status = "Finished"

    def _create(self, sku: str, record: dict[str, Any]) -> str | None:
        if sku in self.products:
            return f"Seller SKU '{sku}' already exists"
        for name in ("Name", "Brand", "PrimaryCategory", "Price", "Description", "Variation"):
            if not _text(record.get(name)):
                return _field(name, sku, "", "is mandatory")
        data = record.get("ProductData") if isinstance(record.get("ProductData"), dict) else {}
        for name in DAFITI_DATA:
            if not _text((data or {}).get(name)):
                return _field(name, sku, "", "is mandatory for Dafiti")
        parent = _text(record.get("ParentSku"))
        if parent and parent != sku and parent not in self.products:
            return _field("ParentSku", sku, parent, "names no product of this seller")
        product = {"SellerSku": sku, "Status": "active", "Condition": "new", "Quantity": "0", "Images": []}
        problem = _set_fields(product, record, self.brands)
        if problem is None:
            product["ShopSku"] = f"DA{len(self.products) + 1:06d}"
            self.products[sku] = product
        return problem

    def _update(self, sku: str, record: dict[str, Any]) -> str | None:
        product = self.products.get(sku)
        if product is None:
            return f"Seller SKU '{sku}' not found"
        variation = _text(record.get("Variation"))
        if variation and variation != _text(product.get("Variation")):
            return _field("Variation", sku, variation, "cannot be changed")
        updated = dict(product)
        problem = _set_fields(updated, record, self.brands)
        if problem is None:
            self.products[sku] = updated
        return problem

    def _remove(self, sku: str, record: dict[str, Any]) -> str | None:
        return None if self.products.pop(sku, None) else f"Seller SKU '{sku}' not found"

    def _images(self, sku: str, record: dict[str, Any]) -> str | None:
        product = self.products.get(sku)
        if product is None:
            return f"Seller SKU '{sku}' not found"
        images = record.get("Images") if isinstance(record.get("Images"), dict) else {}
        urls = [str(u) for u in as_list((images or {}).get("Image"))]
        bad = [u for u in urls if not u.startswith(("https://", "http://"))]
        if not urls or bad:
            return _field("Image", sku, bad[0] if bad else "", "must be one or more http(s) URLs")
        product["Images"] = urls  # all replaced; the first is the main one
        return None

    # -- reads -------------------------------------------------------------------------------

    async def get_products(self, call: ActionCall) -> Any:
        params = call.params
        wanted: set[str] | None = None
        if params.get("SkuSellerList"):
            try:
                wanted = {str(s) for s in json.loads(params["SkuSellerList"])}
            except (ValueError, TypeError):
                raise ActionRefused("E001", "SkuSellerList must be a JSON array") from None
        search = params.get("Search", "").lower()
        limit, offset = _whole(params.get("Limit"), 100), _whole(params.get("Offset"), 0)
        if limit is None or offset is None or not 1 <= limit <= GET_PRODUCTS_MAX:
            raise ActionRefused("E014", "Invalid Limit or Offset")
        found = [
            _product_view(p)
            for sku, p in sorted(self.products.items())
            if (wanted is None or sku in wanted) and search in (sku + " " + _text(p.get("Name"))).lower()
        ]
        return {"Products": {"Product": found[offset : offset + limit]}}

    async def get_brands(self, call: ActionCall) -> Any:
        return {"Brands": {"Brand": [{"Name": name} for name in sorted(self.brands)]}}

    async def get_category_tree(self, call: ActionCall) -> Any:
        return {"Categories": {"Category": [{"CategoryId": k, "Name": v} for k, v in CATEGORIES.items()]}}


def _set_fields(product: dict[str, Any], record: Mapping[str, Any], brands: set[str]) -> str | None:
    """Copy a record's fields onto ``product`` after checking them; the first problem, or None."""
    sku = str(product["SellerSku"])
    checks: list[tuple[str, Callable[[str], bool], str]] = [
        ("Brand", lambda v: v in brands, "is not a brand this seller may use"),
        ("PrimaryCategory", lambda v: v in CATEGORIES, "is not a category"),
        ("Status", lambda v: v in STATUSES, "must be active, inactive or deleted"),
        ("Condition", lambda v: v in CONDITIONS, "must be new, used or refurbished"),
        ("ShipmentType", lambda v: v in SHIPMENT_TYPES, "must be dropshipping or crossdocking"),
        ("Price", lambda v: (decimal_of(v) or 0) > 0, "must be a positive decimal"),
        ("Quantity", lambda v: _whole(v, None) is not None, "must be a whole number >= 0"),
        ("Categories", lambda v: len({c.strip() for c in v.split(",")}) <= 3, "takes at most 3 categories"),
        (
            "Description",
            lambda v: DESCRIPTION_LENGTH[0] <= len(v) <= DESCRIPTION_LENGTH[1],
            "takes 6 to 25000 characters",
        ),
    ]
    for name, valid, problem in checks:
        if name in record and not valid(_text(record[name])):
            return _field(name, sku, _text(record[name]), problem)
    data = record.get("ProductData")
    if isinstance(data, dict) and "Gender" in data and _text(data["Gender"]) not in GENDERS:
        return _field("Gender", sku, _text(data["Gender"]), f"is not one of {', '.join(sorted(GENDERS))}")
    sale = _text(record.get("SalePrice")) if "SalePrice" in record else None
    price = decimal_of(_text(record.get("Price", product.get("Price"))))
    if sale and (decimal_of(sale) is None or price is None or (decimal_of(sale) or 0) >= price):
        return _field("SalePrice", sku, sale, "must be a decimal below the price")
    for name, value in record.items():
        if name == "ProductData" and isinstance(value, dict):
            product["ProductData"] = {**(product.get("ProductData") or {}), **value}
        elif name not in ("Images",):
            product[name] = value if isinstance(value, dict) else _text(value)
    return None


def _field(name: str, sku: str, value: str, problem: str) -> str:
    """A validation error as the platform words it, the SKU named in the message."""
    return f"Field {name} (for Seller SKU: {sku}) with value '{value}' has a problem: {name} {problem}"


def _product_view(product: Mapping[str, Any]) -> dict[str, Any]:
    view = {k: v for k, v in product.items() if k != "Images"}
    view["Images"] = {"Image": list(product.get("Images") or [])}
    return view


def _parsed(raw: bytes) -> Any:
    try:
        return parse_xml(raw)
    except ValueError as exc:
        raise ActionRefused("E001", f"Malformed XML: {exc}") from None


def _is_envelope(answer: Any) -> bool:
    return isinstance(answer, Mapping) and len(answer) == 1 and next(iter(answer)) == "SuccessResponse"


def _text(value: Any) -> str:
    return "" if value is None else str(value).strip() if not isinstance(value, dict) else ""


def _whole(text: str | None, default: int | None) -> int | None:
    if text in (None, ""):
        return default
    return int(text) if text.strip().isdigit() else None


__all__ = ["SANDBOX_API_KEY", "SANDBOX_TIME_SCALE", "SANDBOX_USER_ID", "SellerCenterStandin"]
