"""Magalu (Magazine Luiza) Open API: the seller's SKU portfolio, then price and stock per channel.

The current Open API (``https://api.magalu.com/seller/v1/portfolios/...``, OAuth 2.0 through ID
Magalu), not the legacy Integra Commerce: Magalu migrates every Integra Commerce SKU to it under
the same id (``shared/specs/magalu/SOURCE.md``). Basics (hosts, token, headers, cents, errors) are
in ``_http``; the per-SKU work of one apply in ``_portfolio``.

A SKU is created with ``POST /skus`` (keyed by the seller's ``sku``: a second POST answers 409, so
a create is never listed twice, whatever the state store holds), then reviewed by Magalu. Price
(``/prices/{sku}``) and stock (``/stocks/{sku}``) are their own resources per channel, created
with POST (409: exists, sent again with PATCH) and changed with PATCH; they only count once the
SKU is published, so they are sent only then: a SKU still in review fails as retryable
("waiting for Magalu's review") and keeps no state row, and the next run (or sync batch) finds it
(409), reads its status and sends the price and stock of then. A SKU the review refuses fails
with Magalu's reason. The state row's remote id (the seller SKU) therefore means "published, priced
and stocked". A variation family (``group.id``, one ``main_variation``) is created whole: the
main variation first, the others only once it exists. A content change is a ``PATCH /skus/{sku}``
whose asynchronous review is read back before price or stock go with it. A withdrawal zeroes the
stock (Magalu documents no delete).

Every write is answered asynchronously (201/202), so the executor hands every change to
:meth:`MagaluConnector.apply_in_bulk` (``bulk_threshold = 1``), which runs the SKUs side by side
through the executor's paced client and returns one outcome, with its reason, per SKU.

Options: ``channel_id`` (the sales channel's UUID, from ``GET /seller/v1/portfolios/me``;
required), ``id_url`` (ID Magalu, ``https://id.magalu.com``), ``origin`` (``nacional``),
``review_polls`` (3) and ``review_poll_seconds`` (2): how often and how far apart a SKU's review is
read within one apply, ``concurrency`` (8). Credentials: ``client_id``, ``client_secret``,
``refresh_token`` (of the ID Magalu client created with the ``-seller`` scopes of
``_http.CATALOG_SCOPES``).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from engine.connectors import (
    CallResult,
    ChangeRecord,
    Connector,
    Listing,
    ListingKey,
    ListingStatus,
    Reader,
    Reason,
    RemoteListing,
    RetryPolicy,
)
from marketplaces.magalu._http import (
    API_URL,
    CURRENCY,
    ID_URL,
    NORMALIZER,
    MagaluSender,
    cents,
    channel_ref,
    magalu_token,
)
from marketplaces.magalu._portfolio import Portfolio, read_back
from marketplaces.magalu._status import sku_statuses

TITLE_MAX = 150
DESCRIPTION_MAX = 7000


class MagaluConnector(Connector):
    """Magalu's requirements, SKU bodies and the per-SKU portfolio calls."""

    name = "magalu"
    listing_fields = ("origin",)
    title = "Magalu"

    title_max_length = TITLE_MAX
    min_images = 1
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {"*": ("brand", "description")}

    base_url = API_URL
    credential_names = ("client_id", "client_secret", "refresh_token")
    rate_limit = 5.0  # Magalu's rate-limit page could not be read: no figure known; 5 rps is a guess
    batch_size = 10_000
    bulk_threshold = 1  # every write is answered asynchronously: see apply_in_bulk
    creates_are_keyed = True  # POST /skus is keyed by the seller SKU (409 when it exists)
    lists_families = True  # a family's SKUs are created together, main variation first

    option_defaults: ClassVar[Mapping[str, str]] = {
        "id_url": ID_URL,
        "origin": "nacional",
        "review_polls": "3",
        "review_poll_seconds": "2",
        "concurrency": "8",
    }
    required_options: ClassVar[Mapping[str, str]] = {
        "channel_id": "the sales channel's UUID, from GET /seller/v1/portfolios/me"
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.token = magalu_token(self.option("id_url"))
        self.last_bulk_requests = 0
        self.last_bulk_retries = 0
        self.last_bulk_throttled = 0

    # -- requirements ------------------------------------------------------------------------

    def check(self, listing: Listing) -> list[Reason]:
        """The declared requirements, an EAN (``identifiers`` is required) and the description's length."""
        reasons = super().check(listing)
        if len(str(listing.fields.get("gtin") or "")) < 8:
            reasons.append(Reason("TP913", "Magalu requires an EAN of 8 digits or more", "listing.gtin"))
        if len(str(listing.fields.get("description") or "")) > DESCRIPTION_MAX:
            reasons.append(
                Reason("TP911", f"description is over {DESCRIPTION_MAX} characters", "listing.description")
            )
        return reasons

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        """The datasheet, with the brand and the description the SKU body requires."""
        fields = listing.fields
        return {**listing.attributes, "brand": fields.get("brand"), "description": fields.get("description")}

    # -- bodies ------------------------------------------------------------------------------

    def sku_body(self, listing: Listing, main_variation: bool | None = None) -> dict[str, Any]:
        """``POST /seller/v1/portfolios/skus``: the documented fields, then ``images`` and ``origin``
        (both *unverified*: the page read was cut off after ``datasheet``)."""
        fields = listing.fields
        body: dict[str, Any] = {
            "sku": listing.sku_id,
            "title": listing.title,
            "description": str(fields.get("description") or ""),
            "brand": str(fields.get("brand") or ""),
            "condition": str(fields.get("condition") or "NEW").upper(),
            "channels": [channel_ref(self.option("channel_id"))],
            "identifiers": [{"type": "ean", "value": str(fields.get("gtin") or "")}],
            "datasheet": [
                {"name": str(name), "value": _text(value)}
                for name, value in sorted(listing.attributes.items())
                if value not in (None, "")
            ],
            "images": [{"url": str(url)} for url in fields.get("images") or []],
            "origin": str(fields.get("origin") or self.option("origin")),
        }
        if listing.group is not None and main_variation is not None:
            body["group"] = {"id": listing.group, "main_variation": main_variation}
        return body

    def payload(self, listing: Listing) -> dict[str, Any]:
        """A create or a content change: the SKU, then its price and stock once it is published."""
        return {
            "sku": self.sku_body(listing, main_variation=False if listing.group else None),
            "price": self.price_payload(listing),
            "stock": self.stock_payload(listing),
        }

    def family_payload(self, listings: Sequence[Listing]) -> dict[str, Any] | None:
        """A family's creates, its main variation (the first SKU by id) first; one ``group.id``."""
        members = sorted(listings, key=lambda listing: listing.sku_id)
        if not members:
            return None
        bodies = []
        for index, member in enumerate(members):
            body = self.payload(member)
            body["sku"] = self.sku_body(member, main_variation=index == 0)
            bodies.append(body)
        return {"family": bodies}

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """``/prices/{sku}``: ``list_price`` the "from" price, ``price`` what the buyer pays, in cents."""
        paid = listing.sale_price if listing.sale_price is not None else listing.price
        return {
            "channel": channel_ref(self.option("channel_id")),
            "currency": CURRENCY,
            "list_price": cents(listing.price),
            "price": cents(paid),
            "normalizer": NORMALIZER,
        }

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """``/stocks/{sku}``: the available quantity on the channel."""
        return {
            "channel": channel_ref(self.option("channel_id")),
            "quantity": max(0, listing.quantity),
            "type": "AVAILABLE",
        }

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """No delete is documented: the stock goes to 0, which takes the SKU off sale."""
        return {"channel": channel_ref(self.option("channel_id")), "quantity": 0, "type": "AVAILABLE"}

    # -- sending -----------------------------------------------------------------------------

    def sender(self, client: httpx.AsyncClient, headers: Mapping[str, str]) -> MagaluSender:
        retry = RetryPolicy(attempts=8, base=0.2, cap=10.0, retry_after_cap=30.0)  # as the executor tries
        return MagaluSender(client, headers, retry)

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """Each SKU (a family: each member, main variation first) through its calls; one outcome each."""
        sender = self.sender(client, headers)
        portfolio = Portfolio(
            self,
            sender,
            polls=max(1, int(self.option("review_polls"))),
            poll_seconds=float(self.option("review_poll_seconds")),
        )
        try:
            return await portfolio.apply(
                [ChangeRecord.of(c) for c in changes], int(self.option("concurrency"))
            )
        finally:
            self.last_bulk_requests, self.last_bulk_retries = sender.count, sender.retries
            self.last_bulk_throttled = sender.throttled
            if portfolio.token_refused:
                self.forget_token()

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """The portfolio 100 SKUs a page, each published one with its channel's price and stock."""
        async for listing in read_back(reader, self.option("channel_id")):
            yield listing

    reports_listing_status = True

    def listing_statuses(self, reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
        """Each SKU's review status from the portfolio list, 100 a request; see ``_status``."""
        return sku_statuses(reader, keys)

    def listing_content(self, listing: Listing, family: Sequence[Listing]) -> Mapping[str, Any]:
        body = self.sku_body(listing)
        return {key: body[key] for key in ("title", "description", "brand")}


def _text(value: Any) -> str:
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


__all__ = ["MagaluConnector"]
