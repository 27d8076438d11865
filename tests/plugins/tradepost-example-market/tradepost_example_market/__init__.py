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

from engine.connectors import (
    Call,
    ChangeRecord,
    Connector,
    Credentials,
    Listing,
    Reader,
    Reason,
    RemoteListing,
    Route,
    RouteKind,
    json_body,
    token_pages,
)

CENT = Decimal("0.01")
CATEGORIES = frozenset({"fashion", "shoes", "electronics", "home"})
"""Example Market's category tree is flat: a listing names one of these."""
LISTING = "/v1/shops/{shop}/listings/{sku_id}"


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
    required_options: ClassVar[Mapping[str, str]] = {"shop": "the seller's shop id"}
    rate_limit = 10.0
    batch_size = 1
    reads_back = True

    # -- which request sends each kind of change (the contract builds the calls) -------------------
    routes: ClassVar[Mapping[RouteKind, Route]] = {
        "create": Route("PUT", LISTING),
        "content": Route("PUT", LISTING),
        "price": Route("PATCH", LISTING),
        "stock": Route("PATCH", LISTING),
        "delete": Route("DELETE", LISTING),
    }
    merge_price_and_stock = "send"  # one PATCH carries both
    creates_are_keyed = True  # keyed by the SKU, a PUT sent twice replaces the one listing
    deleted_when_absent = True  # a DELETE answered 404: the listing is gone, as wanted

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

    def path_values(self, change: ChangeRecord, remote_id: str | None) -> dict[str, str]:
        """The shop in every path (the contract fills in the SKU id, percent-encoded)."""
        return {"shop": quote(self.option("shop"), safe="")}

    def listing_path(self, sku_id: str) -> str:
        return f"/v1/shops/{quote(self.option('shop'), safe='')}/listings/{quote(sku_id, safe='')}"

    def remote_id_in(self, call: Call, response: httpx.Response) -> str | None:
        body = json_body(response)
        remote_id = body.get("id") if isinstance(body, dict) else None
        return str(remote_id) if remote_id else None

    def error_of(self, response: httpx.Response) -> str:
        return f"{response.status_code} {error_message(response)}"

    # -- reading back (``tradepost state rebuild``) -------------------------------------------------

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """Every listing of the shop, a page at a time, following ``next_cursor``."""
        path = self.listing_path("").rstrip("/")
        async for page in token_pages(reader, path, {}, next_token="next_cursor", token_param="cursor"):
            for item in page.get("listings") or []:
                yield RemoteListing(
                    str(item["sku"]),
                    str(item["id"]),
                    Decimal(item["price"]),
                    None if item.get("sale_price") is None else Decimal(item["sale_price"]),
                    quantity=int(item["quantity"]),
                    content={key: item.get(key) for key in CONTENT},
                )

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
