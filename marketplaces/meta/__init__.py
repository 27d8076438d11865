"""Meta (Facebook and Instagram) catalog: ``items_batch`` requests, checked by their batch handles.

For a Brazilian seller Meta is a catalog only: Brazil's Shops link out to the store's own site,
and Meta's order API belongs to the US-only on-platform checkout (``shared/specs/meta/CATALOG.md``
section 0). So this connector keeps a catalog in step and nothing more: there is no order channel,
and orders arrive through VTEX from the item's ``link``.

Every change goes through ``POST /{catalog_id}/items_batch`` (``item_type=PRODUCT_ITEM``): each
SKU is one entry of ``requests``, ``{"method", "data": {"id": <VTEX SKU id>, ...feed fields}}``.

- A create or a content change is an ``UPDATE`` carrying the whole item, sent with
  ``allow_upsert=true``: "The UPDATE method can also be used to create items if they don't
  already exist" (Meta's batch guide). ``CREATE`` is not sent: what it does to a retailer id the
  catalog already holds is not documented, and a create sent again after a lost answer, a killed
  run or a lost state store must replace the one item, never fail or add a second. Optional fields
  the listing no longer has are sent empty, so an ``UPDATE`` (a partial update) clears them.
- A price change is an ``UPDATE`` of ``price`` and ``sale_price`` only (an ended sale is sent as
  an empty ``sale_price``); a stock change one of ``availability`` and ``inventory`` only; both
  changed travel as one entry.
- A delete is ``DELETE`` with the id alone.

Prices are the feed's strings, ``"89.90 BRL"`` (two decimals, a dot, one space, ISO 4217).
Batches hold at most :data:`BATCH_MAX_REQUESTS` entries (the limit is 5,000, fewer than 3,000
recommended) and :data:`BATCH_MAX_BYTES` of JSON (the limit is 28 MB). Meta validates some entries
at once (``validation_status``: those SKUs fail now) and processes the rest later: every handle is
polled with ``GET /{catalog_id}/check_batch_request_status`` (``load_ids_of_invalid_requests``)
until ``finished``, and its ``errors`` and ``ids_of_invalid_requests`` become each SKU's reason.
A batch still unfinished when :attr:`Pacing.batch_timeout_seconds` runs out fails its SKUs as
retryable: the next run sends them again, which is safe since every entry is keyed by the SKU.

Requests are paced by ``_graph.GraphSender``: ``items_batch`` at ``batch_calls_per_minute``,
everything else at the connector's rate, and Meta's ``X-Business-Use-Case-Usage`` header and
throttling codes (80014, 80009, 4, 17, 32, 613) obeyed.

Reading back (``tradepost state rebuild``): ``GET /{catalog_id}/products`` page by page; items a
product feed supplies (they name their ``product_feed``) are not Tradepost's and are left alone.

Options: ``catalog_id`` (required), ``graph_version`` (v23.0), ``link_template`` (e.g.
``https://shop.example/p/{product_id}?sku={sku_id}``, for listings without a ``link`` field),
``item_sub_type`` (a vertical of ``productcatalogitems_batch_item_sub_type_enum_param``, e.g.
CLOTHING), and the pacing options of ``_graph.Pacing``. Credentials: ``access_token``, a system
user's token with ``catalog_management`` (sent as a bearer header, never in a URL, so no log or
error message carries it).
"""

from __future__ import annotations

import html
import re
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from engine.connectors import (
    CallResult,
    ChangeRecord,
    Connector,
    Credentials,
    Listing,
    ListingKey,
    ListingStatus,
    Reader,
    Reason,
    RemoteListing,
    differing,
)
from marketplaces.meta._batches import BATCH_MAX_BYTES, BATCH_MAX_REQUESTS, run_batches
from marketplaces.meta._graph import GraphError, GraphSender, Pacing
from marketplaces.meta._readback import read_items
from marketplaces.meta._status import item_statuses

CONDITIONS = frozenset(
    {"cpo", "new", "open_box_new", "refurbished", "used", "used_fair", "used_good", "used_like_new"}
)
"""``ProductItem_condition`` in enum_types.json."""
GENDERS = frozenset({"female", "male", "unisex"})
AGE_GROUPS = frozenset({"adult", "all ages", "infant", "kids", "newborn", "teen", "toddler"})
ATTRIBUTES = ("color", "size", "gender", "age_group", "material", "pattern", "product_type")
"""Rule-file attributes Meta has a feed field of the same name for."""
CUSTOM_LABELS = tuple(f"custom_label_{n}" for n in range(5))
CLEARED = ("sale_price", "gtin", "mpn", "item_group_id", "additional_image_link", *ATTRIBUTES, *CUSTOM_LABELS)
"""Optional fields a content update sends empty when the listing has none, so an UPDATE clears them."""
DESCRIPTION_MAX_LENGTH = 9999
"""Meta's feed specification: descriptions of up to 9,999 characters (titles: 200)."""
PRICE_PARTS = ("price", "sale_price")
STOCK_PARTS = ("availability", "inventory")
READ_NAMES = {"title": "name", "link": "url", "image_link": "image_url",
              "additional_image_link": "additional_image_urls", "item_group_id": "retailer_product_group_id",
              "google_product_category": "category", "mpn": "manufacturer_part_number"}  # fmt: skip
"""Feed field (what ``items_batch`` takes) -> the ProductItem field it is read back as."""


class MetaConnector(Connector):
    """Meta's catalog requirements and ``items_batch`` entries."""

    name = "facebook"
    listing_fields = ("link",)
    title = "Facebook (Meta)"

    title_max_length = 200  # Meta's feed specification (65 or fewer recommended)
    min_images = 1  # image_link is required
    max_images = 21  # image_link plus up to 20 additional_image_link

    rate_limit = 4.0  # Catalog Management calls (status polls, reads); the batches have their own pace
    batch_size = BATCH_MAX_REQUESTS
    bulk_threshold = 1  # everything goes in batches: one item alone is a batch of one

    base_url = "https://graph.facebook.com"
    credential_names = ("access_token",)
    creates_are_keyed = True  # UPDATE with allow_upsert: the retailer id is the key
    merge_price_and_stock = "plan"
    deleted_when_absent = True

    option_defaults: ClassVar[Mapping[str, str]] = {"graph_version": "v23.0"}
    required_options: ClassVar[Mapping[str, str]] = {"catalog_id": "the id of the Meta catalog"}

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.last_bulk_requests = self.last_bulk_retries = self.last_bulk_throttled = 0
        """Requests the last :meth:`apply_in_bulk` made, those sent again, and the throttled answers,
        for the executor's summary."""
        self.last_sender: GraphSender | None = None
        """The sender of the last :meth:`apply_in_bulk`: its throttling and waits, for the benchmark."""

    @property
    def pacing(self) -> Pacing:
        return Pacing.from_options(self.options)

    def path(self, edge: str) -> str:
        """``/{version}/{catalog_id}/{edge}``."""
        return f"/{self.option('graph_version')}/{self.option('catalog_id')}/{edge}"

    # -- requirements ------------------------------------------------------------------------

    def check(self, listing: Listing) -> list[Reason]:
        """The declared checks, plus what every Meta item needs: a description, a brand, a landing
        page, a known condition, and attributes Meta has a field for."""
        reasons = super().check(listing)
        fields = listing.fields
        description = plain_text(str(fields.get("description") or ""))
        if not description:
            reasons.append(Reason("TP911", "description is empty; Meta requires one", "listing.description"))
        elif len(description) > DESCRIPTION_MAX_LENGTH:
            why = f"description is {len(description)} characters; Meta allows {DESCRIPTION_MAX_LENGTH}"
            reasons.append(Reason("TP911", why, "listing.description"))
        if not fields.get("brand"):
            reasons.append(Reason("TP913", "Meta requires a brand", "listing.brand"))
        if not self.link_for(listing):
            why = "Meta requires a link to the item: set listing.link or options.link_template"
            reasons.append(Reason("TP916", why, "listing.link"))
        condition = str(fields.get("condition") or "new")
        if condition not in CONDITIONS:
            why = f"condition {condition!r} is not one of Meta's: {', '.join(sorted(CONDITIONS))}"
            reasons.append(Reason("TP914", why, "listing.condition"))
        for name, value in listing.attributes.items():
            problem = _attribute_problem(name, value)
            if problem:
                reasons.append(Reason("TP914", problem, f"listing.attributes.{name}"))
        return reasons

    def link_for(self, listing: Listing) -> str | None:
        """The listing's own ``link``, else ``options.link_template`` filled with its ids."""
        if listing.fields.get("link"):
            return str(listing.fields["link"])
        template = self.options.get("link_template")
        if not template:
            return None
        try:
            return str(template).format(sku_id=listing.sku_id, product_id=listing.product_id)
        except (KeyError, IndexError, ValueError):
            return None

    # -- entries of ``requests`` ---------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """The whole item, as an upsert: creates it, or replaces what the listing says."""
        fields = listing.fields
        images = [str(url) for url in fields.get("images") or []]
        data: dict[str, Any] = {
            "id": listing.sku_id,
            "title": listing.title,
            "description": plain_text(str(fields.get("description") or "")),
            "link": self.link_for(listing) or "",
            "image_link": images[0] if images else "",
            "brand": str(fields.get("brand") or ""),
            "condition": str(fields.get("condition") or "new"),
            "google_product_category": listing.category,
            **self._price(listing),
            **self._stock(listing),
        }
        if images[1:]:
            data["additional_image_link"] = images[1:]
        for field in ("gtin", "mpn"):
            if fields.get(field):
                data[field] = str(fields[field])
        if listing.group:
            data["item_group_id"] = listing.group
        for name, value in listing.attributes.items():
            if value not in (None, ""):
                data[name] = _text(value)
        data.update({name: "" for name in CLEARED if name not in data})
        return {"method": "UPDATE", "data": data}

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        return {"method": "UPDATE", "data": {"id": listing.sku_id, **self._price(listing)}}

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        return {"method": "UPDATE", "data": {"id": listing.sku_id, **self._stock(listing)}}

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        return {"method": "DELETE", "data": {"id": sku_id}}

    @staticmethod
    def _price(listing: Listing) -> dict[str, str]:
        sale = listing.sale_price
        return {
            "price": price_text(listing.price, listing.currency),
            "sale_price": price_text(sale, listing.currency) if sale is not None else "",
        }

    @staticmethod
    def _stock(listing: Listing) -> dict[str, Any]:
        quantity = max(0, listing.quantity)
        return {"availability": "in stock" if quantity > 0 else "out of stock", "inventory": quantity}

    # -- sending -----------------------------------------------------------------------------

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        """The system user's token as a bearer header (never as ``access_token`` in a URL)."""
        return {"Authorization": f"Bearer {credentials.get('access_token')}"}

    def token_refused(self, response: httpx.Response) -> bool:
        """Graph's code 190 (or 102): the token is invalid, expired or revoked."""
        error = GraphError.of(response)
        return error is not None and error.token_refused

    def may_pass_later(self, response: httpx.Response) -> bool:
        """Throttling (by Graph code, whatever the status), a server error, a transient error."""
        error = GraphError.of(response)
        return error is not None and error.retryable

    def error_of(self, response: httpx.Response) -> str:
        error = GraphError.of(response)
        return error.line() if error else f"{response.status_code}"

    def batch_body(self, requests: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
        """The body of one ``items_batch`` call."""
        body: dict[str, Any] = {"item_type": "PRODUCT_ITEM", "allow_upsert": True, "requests": list(requests)}
        if self.options.get("item_sub_type"):
            body["item_sub_type"] = str(self.options["item_sub_type"])
        return body

    def entries(self, change: ChangeRecord) -> list[Any]:
        """The ``requests`` entries a saved change sends: the bodies the plan showed."""
        if change.op not in ("create", "update", "delete"):
            return []
        return [body for _, body in self.bodies_sent(change) if body is not None]

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """Every change in ``items_batch`` calls, then each handle polled to its per-SKU outcomes."""
        sender = GraphSender(client, self.pacing, headers)
        if self.last_sender is not None:  # the catalog's budget spans the executor's chunks
            sender.resume_at, sender.next_batch_at = (
                self.last_sender.resume_at,
                self.last_sender.next_batch_at,
            )
        self.last_sender = sender
        try:
            return await run_batches(self, sender, [(c.sku_id, self.entries(c)) for c in changes])
        finally:
            self.last_bulk_requests = sender.count
            self.last_bulk_retries, self.last_bulk_throttled = sender.retries, sender.throttled

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        return read_items(reader, self.path("products"))

    reports_listing_status = True

    def listing_statuses(self, reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
        """Each item's ``review_status`` and rejection reasons, 500 items a request; see ``_status``."""
        return item_statuses(reader, self.path("products"), keys)

    def listing_content(self, listing: Listing, family: Sequence[Listing]) -> Mapping[str, Any]:
        """What a content upsert sends, under the names Meta reads it back by; price and stock
        fields aside, and empty fields as Meta shows them: absent."""
        data = self.payload(listing)["data"]
        content = {}
        for key, value in data.items():
            if key in ("id", *PRICE_PARTS, *STOCK_PARTS):
                continue
            content[READ_NAMES.get(key, key)] = value if value != "" else None
        return content

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        kinds: list[str] = []
        if differing(self.listing_content(listing, family), remote.content):
            kinds.append("content")
        if (remote.price, remote.sale_price) != (listing.price, listing.sale_price):
            kinds.append("price")
        if remote.quantity != max(0, listing.quantity):
            kinds.append("stock")
        return tuple(kinds)


def price_text(amount: Decimal, currency: str) -> str:
    """The feed's price string: ``"89.90 BRL"``."""
    cents = amount.quantize(Decimal("0.01"))
    if cents != amount:
        raise ValueError(f"{amount} has more than two decimal places; Meta prices are in cents")
    return f"{cents:f} {currency}"


def plain_text(text: str) -> str:
    """HTML (VTEX descriptions often are) as the plain text Meta's ``description`` takes."""
    without_tags = re.sub(r"<br\s*/?>|</p>|</li>", "\n", text, flags=re.IGNORECASE)
    without_tags = re.sub(r"<[^>]+>", " ", without_tags)
    lines = (" ".join(line.split()) for line in html.unescape(without_tags).splitlines())
    return "\n".join(line for line in lines if line)


def _attribute_problem(name: str, value: Any) -> str | None:
    if name not in ATTRIBUTES and name not in CUSTOM_LABELS:
        known = ", ".join((*ATTRIBUTES, "custom_label_0..4"))
        return f"Meta has no item field {name!r}; attributes may be {known}"
    allowed = {"gender": GENDERS, "age_group": AGE_GROUPS}.get(name)
    if allowed and value not in (None, "") and str(value) not in allowed:
        return f"{name} {value!r} is not one of Meta's: {', '.join(sorted(allowed))}"
    return None


def _text(value: Any) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


__all__ = ["BATCH_MAX_BYTES", "BATCH_MAX_REQUESTS", "MetaConnector", "plain_text", "price_text"]
