"""The Meta catalog stand-in: ``items_batch``, ``check_batch_request_status``, ``products``, one catalog.

It checks what ``shared/specs/meta`` says (CATALOG.md section 6) and answers in Graph's error
envelope ``{"error": {message, type, code, error_subcode, fbtrace_id}}``, keyed on ``code``:

- every call: ``/v{N}.{M}/{catalog_id}/...``, an access token it knows (bearer header or
  ``access_token`` parameter; else code 190), the catalog it holds (else code 100).
- ``POST items_batch`` (JSON or form, ``requests`` a JSON array or its JSON string):
  ``item_type=PRODUCT_ITEM``, 1 to 5,000 requests, at most 28 MB (else code 1, "Please reduce the
  amount of data"). Entries without a method in CREATE/UPDATE/DELETE or without ``data.id`` are
  refused at once in ``validation_status``; the rest are processed later, in the order the batches
  came: a handle finishes after :attr:`MetaStandin.polls_to_finish` status checks that found it in
  progress, or :attr:`MetaStandin.finish_seconds` after it was taken, whichever comes first.
  Processing checks each entry: feed field names only, ``price`` and ``sale_price`` as
  ``"89.90 BRL"`` (``sale_price`` may be empty), the availability, condition, gender and age
  group enums (enum_types.json), a title of at most 200 and a description of at most 9,999
  characters, and for a new item every required field (id, title, description, availability,
  condition, price, link, image_link, brand). ``UPDATE`` merges (an empty value removes a field)
  and creates an unknown id when ``allow_upsert`` (default true); ``CREATE`` of an id the catalog
  holds is refused (Meta does not document it: a client relying on it fails here first);
  ``DELETE`` of an unknown id is done.
- ``GET check_batch_request_status?handle=``: ``{"data": [{handle, status, errors, errors_total_count,
  warnings, warnings_total_count, ids_of_invalid_requests}]}``, the ids only when
  ``load_ids_of_invalid_requests=true``.
- ``GET products``: the items in ProductItem's read shape (``name``, ``url``, ``image_url``...),
  prices as display strings (``R$1.234,50``), ``limit`` (at most 1,000) and ``after`` cursors,
  ``filter={"retailer_id": {"is_any": [...]}}`` (or ``eq``).
- ``GET /{catalog_id}``: the catalog node (``id``, ``name``, ``product_count``, ``vertical``).

Rate limits as Meta's Business Use Cases: a budget of calls per minute for Catalog Batch
(``items_batch``) and for Catalog Management (everything else), reported in every answer's
``X-Business-Use-Case-Usage``; a call over budget is refused with code 80014 (batch) or 80009
(management) and the minutes to regain access. On top, the base's faults (500s, 429s, dropped
connections) and token bucket, answered in the same envelope. No order endpoint exists: Brazil is
catalog only.
"""

from __future__ import annotations

import base64
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any
from urllib.parse import parse_qs

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.jsonio import dumps, loads
from marketplaces._standin import Faults, Refusal, Standin, error_handlers, exact_json, int_param, same_secret

__all__ = ["SANDBOX_ACCESS_TOKEN", "SANDBOX_CATALOG_ID", "MetaStandin"]

SANDBOX_ACCESS_TOKEN = "EAAsandbox-system-user-token-not-a-secret"
SANDBOX_CATALOG_ID = "1234567890"
BUSINESS_ID = "987654321"
MAX_REQUESTS = 5000
MAX_BYTES = 28 * 1024 * 1024
LIST_DEFAULT, LIST_MAX = 25, 1000
PRICE = re.compile(r"^\d+(\.\d{1,2})? [A-Z]{3}$")
ENUMS = {
    "availability": (
        "available for order",
        "discontinued",
        "in stock",
        "mark_as_sold",
        "out of stock",
        "pending",
        "preorder",
    ),
    "condition": (
        "cpo",
        "new",
        "open_box_new",
        "refurbished",
        "used",
        "used_fair",
        "used_good",
        "used_like_new",
    ),
    "gender": ("female", "male", "unisex"),
    "age_group": ("adult", "all ages", "infant", "kids", "newborn", "teen", "toddler"),
}
"""``ProductItem_*`` enums of enum_types.json."""
REQUIRED = ("title", "description", "availability", "condition", "price", "link", "image_link", "brand")
FEED_FIELDS = frozenset(
    {"id", *REQUIRED, "sale_price", "sale_price_effective_date", "item_group_id", "gtin", "mpn", "color",
     "size", "gender", "age_group", "material", "pattern", "google_product_category", "fb_product_category",
     "additional_image_link", "shipping", "inventory", "quantity_to_sell_on_facebook", "product_type",
     "custom_label_0", "custom_label_1", "custom_label_2", "custom_label_3", "custom_label_4",
     "rich_text_description", "short_description", "visibility", "status", "video", "origin_country",
     "importer_name"}
)  # fmt: skip
"""The feed fields an ``items_batch`` entry's ``data`` may carry (CATALOG.md section 3)."""
READ_NAMES = {"title": "name", "link": "url", "image_link": "image_url",
              "additional_image_link": "additional_image_urls", "item_group_id": "retailer_product_group_id",
              "google_product_category": "category", "mpn": "manufacturer_part_number"}  # fmt: skip
"""Feed field -> the ProductItem field it reads back as."""
TEXT_LIMITS = {"title": 200, "description": 9999}
SYMBOLS = {"BRL": "R$", "USD": "$", "EUR": "€"}


@dataclass
class GraphRefusal(Refusal):
    """An answer in Graph's error envelope, raised from anywhere in a handler."""

    status: int
    message: str
    code: int = 100
    subcode: int | None = None
    kind: str = "OAuthException"
    transient: bool = False

    def body(self) -> dict[str, Any]:
        error: dict[str, Any] = {"message": self.message, "type": self.kind, "code": self.code,
                                 "fbtrace_id": secrets.token_urlsafe(9)}  # fmt: skip
        if self.subcode is not None:
            error["error_subcode"] = self.subcode
        if self.transient:
            error["is_transient"] = True
        return {"error": error}


@dataclass
class Batch:
    """One ``items_batch`` call Meta took: its requests, processed once its handle finishes."""

    handle: str
    requests: list[Mapping[str, Any]]
    allow_upsert: bool
    taken: float
    polls_left: int
    status: str = "in_progress"
    errors: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class UseCase:
    """One Business Use Case budget: calls in the last minute, at most ``per_minute``."""

    name: str
    per_minute: float
    calls: deque[float] = field(default_factory=deque)

    def take(self, now: float) -> float:
        """0 when the call may go (it is counted), else the seconds until one may."""
        while self.calls and self.calls[0] <= now - 60.0:
            self.calls.popleft()
        if len(self.calls) >= self.per_minute:
            return self.calls[0] + 60.0 - now
        self.calls.append(now)
        return 0.0

    def usage(self, now: float, regain_seconds: float = 0.0) -> dict[str, Any]:
        share = min(100, round(100 * len(self.calls) / self.per_minute))
        return {"type": self.name, "call_count": share, "total_cputime": share // 2, "total_time": share // 2,
                "estimated_time_to_regain_access": math.ceil(regain_seconds / 60)}  # fmt: skip


class MetaStandin(Standin):
    """One Meta catalog in memory; see the module docstring."""

    name = "facebook"

    def __init__(
        self,
        access_token: str = SANDBOX_ACCESS_TOKEN,
        *,
        catalog_id: str = SANDBOX_CATALOG_ID,
        batch_calls_per_minute: float = 1200.0,
        management_calls_per_minute: float = 6000.0,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.access_token, self.catalog_id, self.clock = access_token, catalog_id, clock
        self.items: dict[str, dict[str, Any]] = {}
        """Retailer id (the VTEX SKU id) -> the item, in feed field names."""
        self.item_ids: dict[str, str] = {}
        """Retailer id -> Meta's own item id."""
        self.batches: dict[str, Batch] = {}
        self.list_page_max = LIST_MAX
        """Items one ``products`` page holds at most; Graph "may return fewer" than the limit asked,
        and tests lower this to make a client page through a small catalog."""
        self.polls_to_finish = 1
        """Status checks that find a handle in progress before it finishes."""
        self.finish_seconds = 2.0
        self.batch_budget = UseCase("catalog_batch", batch_calls_per_minute)
        self.management_budget = UseCase("catalog_management", management_calls_per_minute)
        self.batch_log: list[float] = []
        """When each ``items_batch`` call was taken (the clock's time; refused ones not counted)."""
        self.refused_for_usage = 0
        super().__init__(rate_limit, burst, faults)

    @property
    def batch_calls(self) -> int:
        return len(self.batch_log)

    def sandbox_options(self, url: str) -> dict[str, str]:
        """The catalog, and a sandbox's pace: batches polled every 50 ms, at half its batch budget."""
        per_minute = f"{self.batch_budget.per_minute / 2:g}"
        return {"catalog_id": self.catalog_id, "poll_seconds": "0.05", "batch_calls_per_minute": per_minute}

    def sandbox_credentials(self) -> dict[str, str]:
        return {"access_token": self.access_token}

    def build(self) -> Starlette:
        node = "/{version:str}/{catalog:str}"
        routes = [
            Route(node + "/items_batch", self.items_batch, methods=["POST"]),
            Route(node + "/check_batch_request_status", self.batch_status, methods=["GET"]),
            Route(node + "/products", self.products, methods=["GET"]),
            Route(node, self.catalog, methods=["GET"]),
        ]
        handlers = {**error_handlers(self.error_body, _unrouted), GraphRefusal: _answer_refusal}
        return Starlette(routes=routes, exception_handlers=handlers)

    def error_body(self, status: int, message: str) -> Any:
        """The base's answers (faults, its token bucket, unknown routes) in Graph's envelope."""
        if status == 429:
            return GraphRefusal(status, f"(#80014) {message}", 80014, transient=True).body()
        if status >= 500:
            return GraphRefusal(
                status,
                "An unexpected error has occurred. Please retry your request later.",
                2,
                kind="OAuthException",
                transient=True,
            ).body()
        return GraphRefusal(status, message).body()

    # -- for tests -----------------------------------------------------------------------------

    def item(self, retailer_id: str) -> dict[str, Any]:
        """An item as held (feed field names), once the batches due are processed."""
        self.settle()
        return self.items[retailer_id]

    def set_review(self, retailer_id: str, status: str, reasons: Iterable[str] = ()) -> None:
        """What Meta's review does to an item: its ``review_status`` and ``review_rejection_reasons``,
        read back from now on."""
        self.item(retailer_id).update(review_status=status, review_rejection_reasons=list(reasons))

    def settle(self, through: Batch | None = None, everything: bool = False) -> None:
        """Process, oldest first, the batches due: every one up to ``through``, and those taken
        :attr:`finish_seconds` ago or more (with the ones before them); all with ``everything``."""
        waiting = [b for b in self.batches.values() if b.status == "in_progress"]
        now = self.clock()
        due = [
            i
            for i, b in enumerate(waiting)
            if everything or b is through or now - b.taken >= self.finish_seconds
        ]
        for batch in waiting[: max(due, default=-1) + 1]:
            self._process(batch)

    # -- the API -------------------------------------------------------------------------------

    async def items_batch(self, request: Request) -> Response:
        self._authorize(request, self.batch_budget)
        raw = await request.body()
        if len(raw) > MAX_BYTES:
            raise GraphRefusal(
                400, "Please reduce the amount of data you're asking for, then retry your request", 1
            )
        params = _params(request, raw)
        if params.get("item_type") != "PRODUCT_ITEM":
            raise GraphRefusal(400, "(#100) The parameter item_type is required and must be PRODUCT_ITEM")
        requests = params.get("requests")
        if isinstance(requests, str):
            try:
                requests = loads(requests)
            except ValueError:
                requests = None
        if not isinstance(requests, list) or not requests:
            raise GraphRefusal(400, "(#100) The parameter requests is required: a JSON array of requests")
        if len(requests) > MAX_REQUESTS:
            raise GraphRefusal(
                400, f"(#100) requests holds {len(requests)} entries; the most is {MAX_REQUESTS}"
            )
        validation: list[dict[str, Any]] = []
        taken: list[Mapping[str, Any]] = []
        for entry in requests:
            problem = _entry_problem(entry)
            if problem:
                retailer_id = str(
                    ((entry.get("data") or {}) if isinstance(entry, Mapping) else {}).get("id") or ""
                )
                validation.append(
                    {"retailer_id": retailer_id, "errors": [{"message": problem}], "warnings": []}
                )
            else:
                taken.append(entry)
        upsert = params.get("allow_upsert", True) not in (False, "false", "0", 0)
        handle = f"AQ{secrets.token_urlsafe(18)}"
        self.batches[handle] = Batch(handle, taken, upsert, self.clock(), self.polls_to_finish)
        self.batch_log.append(self.clock())
        return self._reply({"handles": [handle], "validation_status": validation}, self.batch_budget)

    async def batch_status(self, request: Request) -> Response:
        self._authorize(request, self.management_budget)
        handle = request.query_params.get("handle", "")
        batch = self.batches.get(handle)
        if batch is None:
            raise GraphRefusal(400, "(#100) Invalid handle: no batch request has this handle")
        self.settle()
        if batch.status == "in_progress" and batch.polls_left > 0:
            batch.polls_left -= 1
        elif batch.status == "in_progress":
            self.settle(through=batch)
        entry: dict[str, Any] = {
            "handle": handle,
            "status": "finished" if batch.status == "finished" else "in_progress",
            "errors": batch.errors if batch.status == "finished" else [],
            "errors_total_count": len(batch.errors) if batch.status == "finished" else 0,
            "warnings": [],
            "warnings_total_count": 0,
        }
        if batch.status == "finished" and request.query_params.get("load_ids_of_invalid_requests") == "true":
            entry["ids_of_invalid_requests"] = sorted({str(e["id"]) for e in batch.errors})
        return self._reply({"data": [entry]}, self.management_budget)

    async def products(self, request: Request) -> Response:
        self._authorize(request, self.management_budget)
        self.settle()
        ids = sorted(self.items)
        wanted = _filtered_ids(request.query_params.get("filter"))
        if wanted is not None:
            ids = [i for i in ids if i in wanted]
        size = int_param(request, "limit", LIST_DEFAULT)
        if size is None or size < 1:
            raise GraphRefusal(400, "(#100) limit must be a positive integer")
        size = min(size, LIST_MAX, self.list_page_max)
        start = _cursor(request.query_params.get("after"))
        page = ids[start : start + size]
        body: dict[str, Any] = {"data": [self._read(i) for i in page]}
        if page:
            body["paging"] = {"cursors": {"before": _encode(start), "after": _encode(start + len(page) - 1)}}
            if start + size < len(ids):
                body["paging"]["next"] = (
                    f"{request.url.path}?limit={size}&after={_encode(start + len(page) - 1)}"
                )
        return self._reply(body, self.management_budget)

    async def catalog(self, request: Request) -> Response:
        self._authorize(request, self.management_budget)
        self.settle()
        body = {"id": self.catalog_id, "name": "Sandbox catalog", "product_count": len(self.items),
                "vertical": "commerce", "business": {"id": BUSINESS_ID}}  # fmt: skip
        return self._reply(body, self.management_budget)

    # -- checks and processing -------------------------------------------------------------------

    def _authorize(self, request: Request, budget: UseCase) -> None:
        if not re.fullmatch(r"v\d+\.\d+", request.path_params["version"]):
            raise GraphRefusal(400, f"Unknown path components: /{request.path_params['version']}", 2500)
        scheme, _, token = request.headers.get("Authorization", "").partition(" ")
        token = token if scheme.lower() == "bearer" else request.query_params.get("access_token", "")
        if not same_secret(token, self.access_token):
            raise GraphRefusal(400, "Invalid OAuth access token - Cannot parse access token", 190)
        if request.path_params["catalog"] != self.catalog_id:
            missing = request.path_params["catalog"]
            raise GraphRefusal(
                400,
                f"Unsupported request. Object with ID '{missing}' does not exist, cannot be "
                "loaded due to missing permissions, or does not support this operation",
                100,
                33,
            )
        now = self.clock()
        wait = budget.take(now)
        if wait > 0:
            self.refused_for_usage += 1
            self.throttled += 1
            code = 80014 if budget is self.batch_budget else 80009
            refusal = GraphRefusal(
                400,
                f"(#{code}) There have been too many calls to this catalog. Wait a bit and try again.",
                code,
                transient=True,
            )
            raise _Throttled(refusal, self._usage_header(budget, wait))

    def _reply(self, body: Any, budget: UseCase) -> Response:
        response = exact_json(body)
        response.headers["X-Business-Use-Case-Usage"] = self._usage_header(budget)
        return response

    def _usage_header(self, budget: UseCase, regain: float = 0.0) -> str:
        return dumps({BUSINESS_ID: [budget.usage(self.clock(), regain)]})

    def _process(self, batch: Batch) -> None:
        for line, entry in enumerate(batch.requests):
            data = dict(entry["data"])
            retailer_id = str(data["id"])
            problem = self._apply(str(entry["method"]), retailer_id, data, batch.allow_upsert)
            if problem:
                batch.errors.append({"line": line, "id": retailer_id, "message": problem})
        batch.status = "finished"

    def _apply(self, method: str, retailer_id: str, data: dict[str, Any], upsert: bool) -> str | None:
        """One entry applied to the catalog; why it was refused, or None."""
        held = self.items.get(retailer_id)
        if method == "DELETE":
            self.items.pop(retailer_id, None)
            return None
        if method == "CREATE" and held is not None:
            return f"An item with retailer id {retailer_id} already exists in this catalog"
        if method == "UPDATE" and held is None and not upsert:
            return f"No item with retailer id {retailer_id} exists and allow_upsert is false"
        problems = _field_problems(data)
        merged = {**(held or {}), **data}
        merged = {key: value for key, value in merged.items() if value not in ("", None, [])}
        if held is None:
            problems += [f"{name} is required for a new item" for name in REQUIRED if name not in merged]
        if problems:
            return "; ".join(problems)
        self.items[retailer_id] = merged
        self.item_ids.setdefault(retailer_id, str(10**15 + len(self.item_ids)))
        return None

    def _read(self, retailer_id: str) -> dict[str, Any]:
        """An item in ProductItem's read shape."""
        item = self.items[retailer_id]
        read: dict[str, Any] = {"id": self.item_ids[retailer_id], "retailer_id": retailer_id,
                                "review_status": "approved", "visibility": "published"}  # fmt: skip
        for key, value in item.items():
            if key in ("id",):
                continue
            if key in ("price", "sale_price"):
                amount, currency = str(value).split(" ")
                read[key] = _display(Decimal(amount), currency)
                read["currency"] = currency
            elif key == "inventory":
                read[key] = int(value)
            else:
                read[READ_NAMES.get(key, key)] = value
        return read


class _Throttled(GraphRefusal):
    """A call over its use case's budget: code 80014 or 80009, and the usage header saying so."""

    def __init__(self, refusal: GraphRefusal, usage: str) -> None:
        super().__init__(refusal.status, refusal.message, refusal.code, refusal.subcode, refusal.kind, True)
        self.usage = usage


async def _answer_refusal(request: Request, error: Exception) -> Response:
    assert isinstance(error, GraphRefusal)
    response = exact_json(error.body(), error.status)
    if isinstance(error, _Throttled):
        response.headers["X-Business-Use-Case-Usage"] = error.usage
    return response


def _unrouted(request: Request, status: int, error: Exception) -> str:
    return f"Unsupported {request.method.lower()} request: {request.url.path}"


def _params(request: Request, raw: bytes) -> dict[str, Any]:
    """The call's parameters: a JSON object body, else a form (each field's first value), plus the query."""
    params: dict[str, Any] = dict(request.query_params)
    if request.headers.get("content-type", "").startswith("application/json"):
        try:
            body = loads(raw)
        except ValueError:
            raise GraphRefusal(400, "(#100) The body is not valid JSON") from None
        if not isinstance(body, dict):
            raise GraphRefusal(400, "(#100) The body must be a JSON object")
        params.update(body)
    else:
        params.update({k: v[0] for k, v in parse_qs(raw.decode("utf-8")).items()})
    return params


def _entry_problem(entry: Any) -> str | None:
    """Why a ``requests`` entry is refused at once (its shape), or None."""
    if not isinstance(entry, Mapping):
        return "each request must be an object with method and data"
    if entry.get("method") not in ("CREATE", "UPDATE", "DELETE"):
        return f"method must be CREATE, UPDATE or DELETE, not {entry.get('method')!r}"
    data = entry.get("data")
    if not isinstance(data, Mapping) or data.get("id") in (None, ""):
        return "data.id (the retailer id) is required"
    return None


def _field_problems(data: Mapping[str, Any]) -> list[str]:
    """What is wrong with an entry's fields, as Meta's processing would report it."""
    problems = [f"{name} is not a field of a product item" for name in data if name not in FEED_FIELDS]
    for name in ("price", "sale_price"):
        value = data.get(name)
        if value not in (None, "") and not (isinstance(value, str) and PRICE.match(value)):
            problems.append(f"{name} {value!r} must be an amount and an ISO 4217 currency, like '89.90 BRL'")
    for name, allowed in ENUMS.items():
        if data.get(name) not in (None, "") and data[name] not in allowed:
            problems.append(f"{name} {data[name]!r} is not one of: {', '.join(allowed)}")
    for name, limit in TEXT_LIMITS.items():
        if isinstance(data.get(name), str) and len(data[name]) > limit:
            problems.append(f"{name} is {len(data[name])} characters; the most is {limit}")
    if "inventory" in data and not (isinstance(data["inventory"], int) and data["inventory"] >= 0):
        problems.append("inventory must be a whole number, 0 or more")
    images = data.get("additional_image_link")
    if images not in (None, "") and not (isinstance(images, list) and len(images) <= 20):
        problems.append("additional_image_link must be a list of at most 20 URLs")
    return problems


def _filtered_ids(text: str | None) -> set[str] | None:
    if not text:
        return None
    try:
        rule = loads(text).get("retailer_id") or {}
    except (ValueError, AttributeError):
        raise GraphRefusal(400, "(#100) filter must be a JSON object") from None
    if "eq" in rule:
        return {str(rule["eq"])}
    return {str(value) for value in rule.get("is_any") or []}


def _encode(index: int) -> str:
    return base64.urlsafe_b64encode(str(index).encode()).decode().rstrip("=")


def _cursor(cursor: str | None) -> int:
    if not cursor:
        return 0
    try:
        return int(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()) + 1
    except ValueError:
        raise GraphRefusal(400, "(#100) after is not a cursor this list gave") from None


def _display(amount: Decimal, currency: str) -> str:
    """A price as Meta's pages show it: ``R$1.234,50`` for reais, ``USD10.00`` for the rest."""
    if currency != "BRL":
        return f"{currency}{amount:.2f}"
    whole, cents = f"{amount:,.2f}".split(".")
    return f"R${whole.replace(',', '.')},{cents}"
