"""A stand-in for the Magalu Open API's seller portfolio, and ID Magalu's token endpoint.

One seller on one channel, in memory, answering the documented paths and bodies
(``shared/specs/magalu/API.md``) the way the connector's correctness depends on:

- ``POST /oauth/token`` (form or JSON: *unverified which* Magalu takes): the refresh-token grant,
  an access token living ``token_lifetime`` seconds (2 h at most, the client's setting); every
  API call needs it as a bearer (401 otherwise);
- ``/seller/v1/portfolios/skus``: create (201; 409 when the seller SKU exists), list (``_limit``
  up to 100, ``_offset``; ``meta`` + ``results``), read and ``PATCH`` (202, applied at once). The
  body is checked against the documented fields: required ``sku``, ``title``, ``description``,
  ``brand``, ``channels[].id`` (this seller's channel), ``identifiers[]`` (``ean``/``isbn``, 8+
  characters), ``group`` with ``id`` and ``main_variation``; lengths as documented. A group has
  at most one main variation (whether it must have one, and first, is not documented);
- review: a created SKU is ``IN_REVIEW`` until it has been read ``review_reads`` times (1 by
  default), or the sandbox control ``POST /_sandbox/review`` ends it; it is then ``PUBLISHED``,
  or ``REJECTED`` with a ``reason`` when :attr:`MagaluStandin.rejections` names it. Price and
  stock sent before it is published are accepted (202) and discarded (:attr:`discarded`), as a
  marketplace does with offers on an unapproved product;
- ``/seller/v1/portfolios/prices/{sku}`` and ``/stocks/{sku}``: POST creates (202; 409
  ``PRICE_ALREADY_EXISTS`` / ``STOCK_ALREADY_EXISTS`` when one exists), PATCH replaces (404 when
  none), GET answers ``results[]``; integer cents, ``normalizer`` 100, ``currency`` BRL, the price
  not above the list price, ``type`` AVAILABLE;
- ``GET /seller/v1/portfolios/me``: the tenant and its channel;
- every answer carries an ``X-Request-ID``; refusals are ``{"error": <code>, "message": <text>}``
  (the error page could not be read: a guess, see API.md); the rate limit answers 429 with a
  Retry-After, and faults are the base :class:`~marketplaces._standin.Standin`'s.

Orders: :attr:`MagaluStandin.order_desk`, when given, serves its ``routes()`` beside these, as the
Mirakl stand-in mounts its order desk (the Magalu orders component, built separately).
"""

from __future__ import annotations

import itertools
import secrets
import uuid
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import BaseRoute, Route
from starlette.types import Message, Receive, Scope, Send

from marketplaces._standin import (
    AccessTokens,
    Faults,
    Standin,
    error_handlers,
    form_body,
    int_param,
    json_or_none,
    look_up,
    sandbox_route,
)
from marketplaces._standin import Refusal as _Refusal
from marketplaces._standin import exact_json as _json
from marketplaces.magalu._http import CURRENCY, NORMALIZER, REQUEST_ID_HEADER, SANDBOX_CHANNEL_ID
from marketplaces.magalu._standin_order_desk import order_desk_for

SANDBOX_CLIENT_ID = "sandbox-magalu-client"
SANDBOX_CLIENT_SECRET = "sandbox-magalu-secret-not-a-secret"
SANDBOX_REFRESH_TOKEN = "sandbox-magalu-refresh-not-a-secret"
TOKEN_LIFETIME_MAX = 7200.0
PAGE_MAX = 100
LIMITS = {"sku": 50, "title": 150, "description": 7000, "brand": 100}
REQUIRED = ("sku", "title", "description", "brand", "channels", "identifiers")
CONDITIONS = frozenset({"NEW", "USED", "REMANUFACTURED"})
IDENTIFIER_TYPES = frozenset({"ean", "isbn"})
CODES = {
    400: "invalid_request",
    401: "unauthorized",
    403: "forbidden",
    404: "resource_not_found",
    405: "method_not_allowed",
    409: "conflict",
    429: "too_many_requests",
    500: "internal_error",
}


@dataclass
class Refusal(_Refusal):
    """The error body assumed for Magalu: ``{"error": code, "message": text}``."""

    status: int
    message: str
    code: str = ""

    def body(self) -> dict[str, Any]:
        return {"error": self.code or CODES.get(self.status, "error"), "message": self.message}


class OrderDesk(Protocol):
    """What the stand-in needs of an order desk: its routes."""

    def routes(self) -> list[BaseRoute]: ...


class MagaluStandin(Standin):
    """One Magalu seller's portfolio; see the module docstring."""

    name = "magalu"

    def __init__(
        self,
        client_id: str = SANDBOX_CLIENT_ID,
        client_secret: str = SANDBOX_CLIENT_SECRET,
        refresh_token: str = SANDBOX_REFRESH_TOKEN,
        *,
        channel_id: str = SANDBOX_CHANNEL_ID,
        review_reads: int = 1,
        token_lifetime: float = TOKEN_LIFETIME_MAX,
        rate_limit: float | None = None,
        burst: float | None = None,
        faults: Faults | None = None,
        order_desk: OrderDesk | None = None,
    ) -> None:
        self.oauth = AccessTokens(
            client_id, client_secret, refresh_token, min(token_lifetime, TOKEN_LIFETIME_MAX)
        )
        self.channel_id = channel_id
        self.review_reads = review_reads
        self.skus: dict[str, dict[str, Any]] = {}
        """Seller SKU -> the stored SKU: the body sent, ``status``, ``reason``, ``reads``."""
        self.prices: dict[str, dict[str, Any]] = {}
        self.stocks: dict[str, dict[str, Any]] = {}
        self.rejections: dict[str, str] = {}
        """Seller SKU -> the reason the review gives when it refuses the SKU (tests and the sandbox)."""
        self.discarded: list[tuple[str, str]] = []
        """(``price``/``stock``, SKU) sent before the SKU was published: accepted, not counted."""
        self._request_ids = itertools.count(1)
        # Magalu orders: the desk sells this stand-in's priced SKUs on its channel, behind its tokens.
        self.order_desk = order_desk or order_desk_for(self)
        super().__init__(rate_limit, burst, faults)

    # -- sandbox -----------------------------------------------------------------------------

    @classmethod
    def for_sandbox(
        cls, catalog: Iterable[Mapping[str, Any]], *, faults: Faults | None, rate_limit: float | None
    ) -> MagaluStandin:
        return cls(rate_limit=rate_limit, faults=faults)

    def sandbox_options(self, url: str) -> dict[str, str]:
        """ID Magalu on the stand-in, its channel, and reviews read 20 times a second."""
        return {"id_url": url, "channel_id": self.channel_id, "review_poll_seconds": "0.05"}

    def build(self) -> Starlette:
        skus, prices, stocks = (f"/seller/v1/portfolios/{k}" for k in ("skus", "prices", "stocks"))
        routes: list[BaseRoute] = [
            Route("/oauth/token", self.token, methods=["POST"]),
            Route("/seller/v1/portfolios/me", self.me, methods=["GET"]),
            Route(skus, self.create_sku, methods=["POST"]),
            Route(skus, self.list_skus, methods=["GET"]),
            Route(skus + "/{sku}", self.read_sku, methods=["GET"]),
            Route(skus + "/{sku}", self.patch_sku, methods=["PATCH"]),
            Route(prices + "/{sku}", self.write_price, methods=["POST", "PATCH"]),
            Route(prices + "/{sku}", self.read_price, methods=["GET"]),
            Route(stocks + "/{sku}", self.write_stock, methods=["POST", "PATCH"]),
            Route(stocks + "/{sku}", self.read_stock, methods=["GET"]),
            sandbox_route("review", self.review_now),
        ]
        if self.order_desk is not None:
            routes.extend(self.order_desk.routes())
        return Starlette(routes=routes, exception_handlers=error_handlers(self.error_body, _unrouted))

    def error_body(self, status: int, message: str) -> Any:
        return Refusal(status, message).body()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        """Every answer, a refusal of the base's included, carries an ``X-Request-ID``."""
        request_id = f"req-{next(self._request_ids):08d}-{uuid.uuid4().hex[:8]}"

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = list(message.get("headers") or [])
                headers.append((REQUEST_ID_HEADER.lower().encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        await super().__call__(scope, receive, sending)

    # -- ID Magalu -----------------------------------------------------------------------------

    async def token(self, request: Request) -> Response:
        """``POST /oauth/token``: the refresh-token grant, form-encoded or JSON."""
        if request.headers.get("content-type", "").startswith("application/json"):
            sent = await json_or_none(request)
            form = {str(k): str(v) for k, v in sent.items()} if isinstance(sent, dict) else {}
        else:
            form = await form_body(request)
        refused = self.oauth.refusal(form)
        if refused is not None:
            status = 401 if refused == "invalid_client" else 400
            return _json({"error": refused, "error_description": f"the grant was refused: {refused}"}, status)
        access = self.oauth.issue(f"mgl.{secrets.token_urlsafe(24)}")
        body = {
            "access_token": access,
            "refresh_token": self.oauth.refresh_token,
            "token_type": "Bearer",
            "expires_in": int(self.oauth.lifetime),
            "created_at": 0,
        }
        return _json(body)

    async def me(self, request: Request) -> Response:
        self._authorize(request)
        return _json({"tenant": {"id": "sandbox-tenant"}, "channels": [{"id": self.channel_id}]})

    # -- SKUs ----------------------------------------------------------------------------------

    async def create_sku(self, request: Request) -> Response:
        self._authorize(request)
        body = await _object(request)
        problems = _sku_problems(body, self.channel_id, partial=False)
        if problems:
            raise Refusal(400, "; ".join(problems))
        sku = str(body["sku"])
        if sku in self.skus:
            raise Refusal(409, f"sku {sku} already exists", "SKU_ALREADY_EXISTS")
        problems = self._group_problems(body)
        if problems:
            raise Refusal(400, "; ".join(problems))
        self.skus[sku] = {**body, "status": "IN_REVIEW", "reads": 0}
        return _json(self._shown(sku), 201)

    async def patch_sku(self, request: Request) -> Response:
        """A partial update, 202: the fields sent replace the stored ones (``sku``, ``group`` fixed)."""
        self._authorize(request)
        stored = self._sku(request)
        body = await _object(request)
        fixed = [key for key in ("sku", "group") if key in body and body[key] != stored.get(key)]
        problems = _sku_problems(body, self.channel_id, partial=True)
        problems += [f"{key}: cannot be changed" for key in fixed]
        if problems:
            raise Refusal(400, "; ".join(problems))
        stored.update(body)
        return _json({"trace_id": uuid.uuid4().hex}, 202)

    async def read_sku(self, request: Request) -> Response:
        self._authorize(request)
        stored = self._sku(request)
        self._reviewed(stored)
        return _json(self._shown(str(stored["sku"])))

    async def list_skus(self, request: Request) -> Response:
        self._authorize(request)
        limit, offset = int_param(request, "_limit", 50), int_param(request, "_offset", 0)
        if limit is None or offset is None or not 1 <= limit <= PAGE_MAX or offset < 0:
            raise Refusal(400, f"_limit must be 1 to {PAGE_MAX} and _offset 0 or more")
        names = sorted(self.skus)
        page = [self._shown(sku) for sku in names[offset : offset + limit]]
        path = "/seller/v1/portfolios/skus"
        links = {
            "self": f"{path}?_limit={limit}&_offset={offset}",
            "next": f"{path}?_limit={limit}&_offset={offset + limit}"
            if offset + limit < len(names)
            else None,
            "previous": f"{path}?_limit={limit}&_offset={max(0, offset - limit)}" if offset else None,
        }
        meta = {"page": {"limit": limit, "offset": offset, "count": len(names), "max_limit": PAGE_MAX}}
        return _json({"meta": {**meta, "links": links}, "results": page})

    async def review_now(self, request: Request) -> Response:
        """Sandbox control: end the review of the SKUs named (``{"skus": [...]}``; all when absent)."""
        body = await json_or_none(request)
        named = body.get("skus") if isinstance(body, dict) else None
        for sku in named if isinstance(named, list) else list(self.skus):
            if sku in self.skus:
                self._reviewed(self.skus[sku], now=True)
        return _json({"reviewed": [s for s, v in sorted(self.skus.items()) if v["status"] != "IN_REVIEW"]})

    def _reviewed(self, stored: dict[str, Any], now: bool = False) -> None:
        """A read counts toward the review; the last one ends it."""
        if stored["status"] != "IN_REVIEW":
            return
        stored["reads"] += 1
        if now or stored["reads"] > self.review_reads:
            reason = self.rejections.get(str(stored["sku"]))
            stored["status"] = "REJECTED" if reason else "PUBLISHED"
            if reason:
                stored["reason"] = reason

    def _shown(self, sku: str) -> dict[str, Any]:
        stored = {k: v for k, v in self.skus[sku].items() if k != "reads"}
        url = f"https://www.magazineluiza.com.br/p/{sku}/"
        published = stored["status"] == "PUBLISHED"
        return {
            **stored,
            "has_ean": True,
            "url_marketplace": [{"channel": self.channel_id, "url": url}] if published else [],
        }

    def _group_problems(self, body: Mapping[str, Any]) -> list[str]:
        group = body.get("group")
        if not isinstance(group, Mapping):
            return []
        members = [s for s in self.skus.values() if (s.get("group") or {}).get("id") == group.get("id")]
        has_main = any((s.get("group") or {}).get("main_variation") for s in members)
        if group.get("main_variation") and has_main:
            return [f"group {group.get('id')}: already has a main variation"]
        return []

    # -- prices and stock ----------------------------------------------------------------------

    async def write_price(self, request: Request) -> Response:
        return await self._write(request, self.prices, "price", _price_problems)

    async def write_stock(self, request: Request) -> Response:
        return await self._write(request, self.stocks, "stock", _stock_problems)

    async def read_price(self, request: Request) -> Response:
        return self._read(request, self.prices, "price")

    async def read_stock(self, request: Request) -> Response:
        return self._read(request, self.stocks, "stock")

    async def _write(
        self, request: Request, table: dict[str, dict[str, Any]], kind: str, check: Any
    ) -> Response:
        self._authorize(request)
        stored = self._sku(request)
        sku = str(stored["sku"])
        body = await _object(request)
        problems = check(body) + _channel_problems(body.get("channel"), self.channel_id, "channel.id")
        if problems:
            raise Refusal(400, "; ".join(problems))
        if request.method == "POST" and sku in table:
            raise Refusal(409, f"a {kind} already exists for sku {sku}", f"{kind.upper()}_ALREADY_EXISTS")
        if request.method == "PATCH" and sku not in table:
            raise Refusal(404, f"no {kind} for sku {sku}")
        if stored["status"] != "PUBLISHED":
            self.discarded.append((kind, sku))
        table[sku] = {**body, "sku": sku, "counts": stored["status"] == "PUBLISHED"}
        return _json({"trace_id": uuid.uuid4().hex}, 202)

    def _read(self, request: Request, table: dict[str, dict[str, Any]], kind: str) -> Response:
        self._authorize(request)
        sku = str(self._sku(request)["sku"])
        found = look_up(table, sku, lambda s: Refusal(404, f"no {kind} for sku {s}"))
        return _json({"results": [{k: v for k, v in found.items() if k != "counts"}]})

    # -- helpers ---------------------------------------------------------------------------------

    def _authorize(self, request: Request) -> None:
        if not self.oauth.bearer(request):
            raise Refusal(401, "invalid or expired access token")

    def _sku(self, request: Request) -> dict[str, Any]:
        return look_up(self.skus, request.path_params["sku"], lambda s: Refusal(404, f"sku {s} not found"))


async def _object(request: Request) -> dict[str, Any]:
    body = await json_or_none(request)
    if not isinstance(body, dict):
        raise Refusal(400, "the body must be a JSON object")
    return body


def _sku_problems(body: Mapping[str, Any], channel_id: str, *, partial: bool) -> list[str]:
    problems = [f"{key}: required" for key in REQUIRED if not partial and body.get(key) in (None, "", [])]
    for key, most in LIMITS.items():
        if key in body and not (isinstance(body[key], str) and 1 <= len(body[key]) <= most):
            problems.append(f"{key}: a text of 1 to {most} characters")
    if "condition" in body and body["condition"] not in CONDITIONS:
        problems.append(f"condition: one of {sorted(CONDITIONS)}")
    for channel in body.get("channels") or []:
        problems += _channel_problems(channel, channel_id, "channels[].id")
    for identifier in body.get("identifiers") or []:
        if not isinstance(identifier, Mapping) or identifier.get("type") not in IDENTIFIER_TYPES:
            problems.append("identifiers[].type: ean or isbn")
        elif len(str(identifier.get("value") or "")) < 8:
            problems.append("identifiers[].value: at least 8 characters")
    group = body.get("group")
    if group is not None and not (
        isinstance(group, Mapping)
        and isinstance(group.get("id"), str)
        and 1 <= len(group["id"]) <= 50
        and isinstance(group.get("main_variation"), bool)
    ):
        problems.append("group: id (1 to 50 characters) and main_variation are required")
    for item in body.get("datasheet") or []:
        if not isinstance(item, Mapping) or not item.get("name"):
            problems.append("datasheet[].name: required")
    return problems


def _channel_problems(channel: Any, channel_id: str, where: str) -> list[str]:
    if not isinstance(channel, Mapping) or channel.get("id") != channel_id:
        return [f"{where}: not a channel of this seller"]
    return []


def _price_problems(body: Mapping[str, Any]) -> list[str]:
    problems = []
    listed: Any = body.get("list_price")
    paid: Any = body.get("price")
    if not (_cents(listed) and _cents(paid)):
        problems.append("list_price and price: positive integers in minor units")
    elif paid > listed:
        problems.append("price: above list_price")
    if body.get("normalizer") != NORMALIZER:
        problems.append(f"normalizer: {NORMALIZER}")
    if body.get("currency") != CURRENCY:
        problems.append(f"currency: {CURRENCY}")
    return problems


def _cents(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


def _stock_problems(body: Mapping[str, Any]) -> list[str]:
    quantity = body.get("quantity")
    problems = []
    if not isinstance(quantity, int) or isinstance(quantity, bool) or quantity < 0:
        problems.append("quantity: a whole number, 0 or more")
    if body.get("type") != "AVAILABLE":
        problems.append("type: AVAILABLE")
    return problems


def _unrouted(request: Request, status: int, error: Exception) -> str:
    return f"no route for {request.method} {request.url.path}" if status in (404, 405) else str(error)


__all__ = [
    "SANDBOX_CLIENT_ID",
    "SANDBOX_CLIENT_SECRET",
    "SANDBOX_REFRESH_TOKEN",
    "MagaluStandin",
    "Refusal",
]
