"""The Example Market stand-in: the listings API of :mod:`tradepost_example_market`, in memory.

A stand-in answers like the marketplace, so a connector can be tried and tested without an
account: the same paths and bodies, requests validated and refused in the API's own error
shape. It is a plain ASGI app (starlette, as Tradepost's built-in stand-ins are), served by
``tradepost sandbox`` on 127.0.0.1 once registered under the ``tradepost.standins`` entry point,
or mounted in process by a test (``httpx.ASGITransport(app=standin)``).

What it checks: the ``X-Api-Key`` it was given, the one shop it holds, a title of 1 to 80
characters, a category of the flat tree, 1 to 8 image URLs, money as positive decimal strings
with at most two places (a sale price below the price), a three-letter currency, a whole
quantity of 0 or more; a ``PATCH`` may carry only price, sale price, currency and quantity.

The hooks below the constructor are what the sandbox reads (``marketplaces/sandbox.py``): how
to make one, the well-known credentials to write into the sandbox project, and the sample rule
file its ``marketplaces:`` entry uses.
"""

from __future__ import annotations

import hmac
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from pathlib import Path
from typing import Any

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route
from starlette.types import Receive, Scope, Send

from engine.jsonio import dumps, loads

SANDBOX_API_KEY = "example-market-sandbox-key-not-a-secret"
SANDBOX_SHOP = "demo-shop"
RULES = Path(__file__).with_name("rules") / "example.yaml"

CATEGORIES = frozenset({"fashion", "shoes", "electronics", "home"})
PUT_FIELDS = frozenset(
    {"title", "description", "category", "images", "attributes", "group", "price", "sale_price", "currency",
     "quantity"}
)  # fmt: skip
PATCH_FIELDS = frozenset({"price", "sale_price", "currency", "quantity"})
PAGE_SIZE = 50
_MONEY = re.compile(r"[0-9]+(\.[0-9]{1,2})?")


@dataclass
class Refusal(Exception):
    """An answer in the API's error shape, raised from anywhere in a handler."""

    status: int
    code: str
    message: str


class ExampleMarketStandin:
    """One shop's listings, in memory; ``listings`` maps a SKU id to what the shop holds."""

    def __init__(self, api_key: str = SANDBOX_API_KEY, shop: str = SANDBOX_SHOP) -> None:
        self.api_key, self.shop = api_key, shop
        self.listings: dict[str, dict[str, Any]] = {}
        self.requests = 0
        listing = "/v1/shops/{shop}/listings/{sku:path}"
        routes = [
            Route(listing, self.put, methods=["PUT"]),
            Route(listing, self.patch, methods=["PATCH"]),
            Route(listing, self.delete, methods=["DELETE"]),
            Route("/v1/shops/{shop}/listings", self.list_listings, methods=["GET"]),
        ]
        self.app = Starlette(routes=routes, exception_handlers={Refusal: _refused})

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http":
            self.requests += 1
        await self.app(scope, receive, send)

    # -- what `tradepost sandbox` reads ----------------------------------------------------------

    sandbox_rules = RULES
    """The rule file of the sandbox project's ``example`` entry."""

    @classmethod
    def for_sandbox(
        cls, catalog: Sequence[Mapping[str, Any]], *, rate_limit: float | None, faults: object
    ) -> ExampleMarketStandin:
        """The sandbox's stand-in: no catalog to seed, no rate limit or injected faults."""
        return cls()

    def sandbox_credentials(self) -> dict[str, str]:
        """The project's ``credentials`` for this stand-in (names as the connector declares them)."""
        return {"api_key": self.api_key}

    def sandbox_options(self, url: str) -> dict[str, str]:
        """Options over the rule file's: the shop this stand-in holds."""
        return {"shop": self.shop}

    # -- the API -----------------------------------------------------------------------------------

    async def put(self, request: Request) -> Response:
        """Create or replace the SKU's listing."""
        sku = self._authorize(request)
        body = await _body(request, PUT_FIELDS)
        problems = _listing_problems(body) + _money_problems(body)
        if problems:
            raise Refusal(400, "invalid_listing", "; ".join(problems))
        created = sku not in self.listings
        self.listings[sku] = {"id": f"EX-{sku}", "sku": sku, **body}
        return _json(self.listings[sku], 201 if created else 200)

    async def patch(self, request: Request) -> Response:
        """Change the price, sale price or quantity of a listing that exists."""
        sku = self._authorize(request)
        body = await _body(request, PATCH_FIELDS)
        stored = self.listings.get(sku)
        if stored is None:
            raise Refusal(404, "not_found", f"no listing for SKU {sku!r} in shop {self.shop}")
        updated = {**stored, **body}
        problems = _money_problems(updated)
        if problems:
            raise Refusal(400, "invalid_listing", "; ".join(problems))
        self.listings[sku] = updated
        return _json(updated)

    async def delete(self, request: Request) -> Response:
        sku = self._authorize(request)
        if self.listings.pop(sku, None) is None:
            raise Refusal(404, "not_found", f"no listing for SKU {sku!r} in shop {self.shop}")
        return Response(status_code=204)

    async def list_listings(self, request: Request) -> Response:
        """The shop's listings by SKU, ``PAGE_SIZE`` a page; ``next_cursor`` leads to the next."""
        self._authorize(request)
        cursor = request.query_params.get("cursor", "0")
        if not cursor.isdigit():
            raise Refusal(400, "invalid_cursor", "cursor is not one this list gave")
        start = int(cursor)
        skus = sorted(self.listings)
        page = [self.listings[sku] for sku in skus[start : start + PAGE_SIZE]]
        more = start + PAGE_SIZE < len(skus)
        return _json({"listings": page, "next_cursor": str(start + PAGE_SIZE) if more else None})

    def _authorize(self, request: Request) -> str:
        """The SKU of the path, once the key and the shop are this stand-in's."""
        key = request.headers.get("X-Api-Key", "")
        if not hmac.compare_digest(key.encode(), self.api_key.encode()):
            raise Refusal(401, "unauthorized", "missing or wrong X-Api-Key")
        if request.path_params["shop"] != self.shop:
            raise Refusal(403, "forbidden", f"this key cannot act on shop {request.path_params['shop']}")
        return str(request.path_params.get("sku", ""))


async def _body(request: Request, allowed: frozenset[str]) -> dict[str, Any]:
    try:
        body = loads(await request.body())
    except ValueError:
        raise Refusal(400, "invalid_json", "the body is not JSON") from None
    if not isinstance(body, dict):
        raise Refusal(400, "invalid_json", "the body must be a JSON object")
    unknown = sorted(set(body) - allowed)
    if unknown:
        raise Refusal(400, "unknown_field", f"unknown field(s): {', '.join(unknown)}")
    return body


def _listing_problems(body: Mapping[str, Any]) -> list[str]:
    problems = []
    title = body.get("title")
    if not isinstance(title, str) or not 1 <= len(title) <= 80:
        problems.append("title must be 1 to 80 characters")
    if body.get("category") not in CATEGORIES:
        problems.append(f"category must be one of {', '.join(sorted(CATEGORIES))}")
    images = body.get("images")
    if not isinstance(images, list) or not 1 <= len(images) <= 8:
        problems.append("images must list 1 to 8 URLs")
    elif not all(isinstance(url, str) and url.startswith(("http://", "https://")) for url in images):
        problems.append("every image must be an http(s) URL")
    return problems


def _money_problems(body: Mapping[str, Any]) -> list[str]:
    problems = []
    price, sale = _amount(body.get("price")), _amount(body.get("sale_price"))
    if price is None:
        problems.append("price must be a positive decimal string with at most two places")
    if body.get("sale_price") is not None and (sale is None or (price is not None and sale >= price)):
        problems.append("sale_price must be a decimal string below price")
    if not re.fullmatch(r"[A-Z]{3}", str(body.get("currency") or "")):
        problems.append("currency must be an ISO 4217 code")
    quantity = body.get("quantity")
    if isinstance(quantity, bool) or not isinstance(quantity, int | Decimal) or quantity != int(quantity):
        problems.append("quantity must be a whole number")
    elif quantity < 0:
        problems.append("quantity must be 0 or more")
    return problems


def _amount(value: Any) -> Decimal | None:
    """A money string as a positive Decimal, or None when it is not one."""
    if not isinstance(value, str) or not _MONEY.fullmatch(value):
        return None
    try:
        amount = Decimal(value)
    except InvalidOperation:
        return None
    return amount if amount > 0 else None


def _json(data: Any, status: int = 200) -> Response:
    """Exact decimals out, as the real API writes them (``engine.jsonio``)."""
    return Response(dumps(data), status_code=status, media_type="application/json")


async def _refused(request: Request, error: Exception) -> Response:
    assert isinstance(error, Refusal)
    return _json({"error": {"code": error.code, "message": error.message}}, error.status)
