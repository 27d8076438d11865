"""Example Market: a made-up marketplace's listings API, as a third-party Tradepost connector.

The whole connector contract seen from a plug-in: declarations (what the marketplace requires,
how fast it may be called, which secrets it needs), then a few hooks that turn a canonical
:class:`~engine.connectors.Listing` into requests and read the answers. It imports public
engine names only (``engine``, ``engine.connectors``), so it keeps working when the engine's
private modules change; ``docs/connectors.md`` walks through it.

The API (``https://api.example-market.test``, the stand-in in :mod:`.standin` answers the same):

- every request carries the seller's key in ``X-Api-Key``; a listing lives at
  ``/v1/shops/{shop}/listings/{sku}``, keyed by the seller's own SKU id;
- ``PUT`` creates or replaces a listing: ``{title, description, category, images, price,
  sale_price, currency, quantity, group}``, money as decimal strings (``"129.90"``). Keyed by
  the SKU, a ``PUT`` sent twice replaces the one listing, so every call is safe to repeat;
- ``PATCH`` changes only ``price``, ``sale_price`` and ``quantity`` (the cheap call);
- ``DELETE`` withdraws it (404 when there is none: done all the same);
- ``GET /v1/shops/{shop}/listings?cursor=`` pages through the shop (``next_cursor``);
- errors are ``{"error": {"code", "message"}}``; 429 comes with ``Retry-After``.

Options (rule file ``options``, or the project config's): ``shop``, the seller's shop id.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar
from urllib.parse import quote

import httpx

from engine import TradepostError
from engine.connectors import (
    Call,
    CallResult,
    Connector,
    Credentials,
    Listing,
    ReadBackError,
    Reader,
    Reason,
    RemoteListing,
    json_body,
)

CENT = Decimal("0.01")
CATEGORIES = frozenset({"fashion", "shoes", "electronics", "home"})
"""Example Market's category tree is flat: a listing names one of these."""
MAX_PAGES = 10_000


class ExampleMarketConnector(Connector):
    """Example Market's requirements and request bodies."""

    name = "example"
    title = "Example Market"

    # -- what the marketplace requires (the engine checks these itself) ---------------------------
    title_max_length = 80
    min_images = 1
    max_images = 8
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {
        "fashion": ("color",),
        "shoes": ("color", "size"),
    }

    # -- how it is called ----------------------------------------------------------------------------
    base_url = "https://api.example-market.test"
    credential_names = ("api_key",)
    rate_limit = 10.0
    batch_size = 1
    reads_back = True

    def check(self, listing: Listing) -> list[Reason]:
        """The declared requirements, plus a category Example Market knows."""
        reasons = super().check(listing)
        if listing.category not in CATEGORIES:
            known = ", ".join(sorted(CATEGORIES))
            message = f"category {listing.category!r} is not an Example Market category ({known})"
            reasons.append(Reason("TP915", message, "categories"))
        return reasons

    # -- bodies: what the plan shows, and what apply sends -------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """The ``PUT`` body: the whole listing."""
        fields = listing.fields
        return {
            "title": listing.title,
            "description": str(fields.get("description") or ""),
            "category": listing.category,
            "images": [str(url) for url in fields.get("images") or []],
            "attributes": {key: str(value) for key, value in listing.attributes.items() if value is not None},
            "group": listing.group,
            **self.price_payload(listing),
            **self.stock_payload(listing),
        }

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """The ``PATCH`` body of a price change; ``sale_price: null`` ends a sale."""
        return {
            "price": money(listing.price),
            "sale_price": None if listing.sale_price is None else money(listing.sale_price),
            "currency": listing.currency,
        }

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """The ``PATCH`` body of a stock change (a negative count is none)."""
        return {"quantity": max(0, listing.quantity)}

    # -- requests -------------------------------------------------------------------------------------

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        """A static key: nothing to refresh."""
        return {"X-Api-Key": credentials.get("api_key")}

    def calls_for(self, change: Mapping[str, Any], remote_id: str | None) -> list[Call]:
        """``PUT`` for a create or a content change, one ``PATCH`` for price and stock together,
        ``DELETE`` for a withdrawal."""
        path = self.listing_path(str(change["sku_id"]))
        payloads: list[dict[str, Any]] = list(change.get("payloads") or [])
        if change["op"] == "delete":
            return [Call("DELETE", path, kind="delete")]
        fields = set(change.get("fields") or ())
        if change["op"] == "create" or "content" in fields:
            kind = "create" if change["op"] == "create" else "content"
            return [Call("PUT", path, payloads[0], kind=kind)]
        merged: dict[str, Any] = {}
        for body in payloads:
            merged.update(body)
        return [Call("PATCH", path, merged, kind="+".join(k for k in ("price", "stock") if k in fields))]

    def read_result(self, call: Call, response: httpx.Response) -> CallResult:
        """2xx is done, and so is a delete of a listing that is not there; 429 and 5xx may pass
        on retry; any other answer is the request's fault, reported with the API's message."""
        status = response.status_code
        if 200 <= status < 300 or (status == 404 and call.method == "DELETE"):
            body = json_body(response)
            remote_id = body.get("id") if isinstance(body, dict) else None
            return CallResult(True, remote_id=str(remote_id) if remote_id else None)
        retryable = status == 429 or status >= 500
        return CallResult(False, retryable=retryable, error=f"{status} {error_message(response)}")

    def idempotent(self, call: Call) -> bool:
        """Every call is: a listing is keyed by the seller's SKU, so a repeated ``PUT`` replaces it."""
        return True

    def listing_path(self, sku_id: str) -> str:
        shop = self.options.get("shop")
        if not shop:
            raise TradepostError("Example Market needs options.shop (the seller's shop id)")
        return f"/v1/shops/{quote(str(shop), safe='')}/listings/{quote(sku_id, safe='')}"

    # -- reading back (``tradepost state rebuild``) -------------------------------------------------

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """Every listing of the shop, a page at a time, following ``next_cursor``."""
        params: dict[str, str] = {}
        try:
            path = self.listing_path("").rstrip("/")
        except TradepostError as exc:
            raise ReadBackError(str(exc)) from None
        for _ in range(MAX_PAGES):
            page = await reader.get(path, params)
            if not isinstance(page, Mapping):
                raise ReadBackError("the listings page is not a JSON object")
            for item in page.get("listings") or []:
                yield RemoteListing(
                    str(item["sku"]),
                    str(item["id"]),
                    Decimal(item["price"]),
                    None if item.get("sale_price") is None else Decimal(item["sale_price"]),
                    quantity=int(item["quantity"]),
                    content={key: item.get(key) for key in CONTENT},
                )
            if not page.get("next_cursor"):
                return
            params = {"cursor": str(page["next_cursor"])}
        raise ReadBackError("the listings pages did not end")

    def listing_content(self, listing: Listing, family: Sequence[Listing]) -> Mapping[str, Any]:
        """The content a ``PUT`` would send, in the form a read listing is compared with."""
        body = self.payload(listing)
        return {key: body[key] for key in CONTENT}


CONTENT = ("title", "description", "category", "images", "attributes", "group")
"""The content fields of a listing (what is neither price nor stock)."""


def money(amount: Decimal) -> str:
    """A price as the API writes it: a decimal string with two places."""
    return str(amount.quantize(CENT))


def error_message(response: httpx.Response) -> str:
    """The API's ``{"error": {"code", "message"}}`` as ``code: message``."""
    body = json_body(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict):
        return f"{error.get('code')}: {error.get('message')}"
    return response.text.strip()[:300] or response.reason_phrase
