"""Mercado Libre items API: ``POST /items`` to create, ``PUT /items/{id}`` with only what changed.

Shapes follow the public developer documentation (summarised in ``shared/specs/mercadolibre/
ITEMS.md``; Mercado Libre publishes no formal schema). Attributes are Mercado Libre's own ids
(``BRAND``, ``COLOR``, ``GTIN``...): a rule file writes them under ``listing.attributes``, and
the standard fields ``brand``, ``gtin`` and ``mpn`` fill ``BRAND``, ``GTIN`` and ``MPN`` when the
rule file does not. ``SELLER_SKU`` is always the VTEX SKU id, because orders name the SKU
through it.

Options: ``listing_type_id`` (default gold_special; a listing's own field wins), ``buying_mode``
(default buy_it_now).

Sending (``_http``): OAuth with a refresh token that Mercado Libre rotates on every use; a SKU's
remote id is its item (``MLB123``) or, inside a family, its variation (``MLB123/987``).

Exactly once: ``POST /items`` is not idempotent (sent twice, it lists the product twice), so before
each one :meth:`MercadoLibreConnector.find_existing` looks its SKUs up by SELLER_SKU and, when an
item already holds one, the executor adopts it instead: the state gets its ids, and ``PUT`` calls
bring its price, quantity and content to the plan (a family's missing variations are added to the
item). A lost, truncated or restored state store, or a run killed after Mercado Libre answered,
therefore never lists a SKU twice. The look-up costs one request per SKU created (a family: one per
member until one is found); updates cost nothing more.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import httpx

from engine import TradepostError
from engine.connectors import (
    Call,
    CallResult,
    ChangeRecord,
    Connector,
    Listing,
    ListingKey,
    ListingStatus,
    Reader,
    RefreshedToken,
    RemoteListing,
    Route,
    RouteKind,
    TokenError,
    differing,
    json_body,
)
from marketplaces.mercadolibre._http import (
    ME,
    _content_calls,
    _in_variation,
    _seller_skus,
    error_message,
    find_listing,
    item_result,
    parse_remote_id,
    seller_id_in,
    variation_ids,
    wire_id,
)
from marketplaces.mercadolibre._readback import ItemReader
from marketplaces.mercadolibre._status import item_statuses

STANDARD_ATTRIBUTES = {"BRAND": "brand", "GTIN": "gtin", "MPN": "mpn"}
"""Mercado Libre attribute id -> the canonical listing field that supplies it by default."""

PER_VARIATION = ("SELLER_SKU", "GTIN", "EMPTY_GTIN_REASON", "MPN", "MODEL")
"""Attributes that identify one SKU, so in a family they go on each variation, not on the item:
its own code, barcode, part number and model (``MODEL: =sku.ref_id ?? product.ref_id``); on the
item they would be the first member's for every variation."""


class MercadoLibreConnector(Connector):
    """Mercado Libre's requirements and request bodies."""

    name = "mercadolibre"
    listing_fields = ("listing_type_id", "sale_terms")
    title = "Mercado Libre"

    title_max_length = 60
    min_images = 1
    max_images = 10  # each category sets its own (max_pictures_per_item / _var in GET /categories/{id});
    # 10 is a conservative default, not a documented figure
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {"*": ("BRAND", "GTIN")}
    attribute_waivers: ClassVar[Mapping[str, Sequence[str]]] = {
        "GTIN": ("EMPTY_GTIN_REASON", "empty_gtin_reason")
    }
    """A product without a barcode declares why in ``EMPTY_GTIN_REASON``; Mercado Libre then accepts
    the item without ``GTIN``."""

    rate_limit = 10.0  # Mercado Libre publishes no per-seller figure and answers 429 beyond its limit;
    # 10 rps is a conservative choice, not a documented number
    batch_size = 1  # /items has no batch endpoint

    base_url = "https://api.mercadolibre.com"
    credential_names = ("client_id", "client_secret", "refresh_token")

    routes: ClassVar[Mapping[RouteKind, Route]] = {
        "create": Route("POST", "/items"),
        **dict.fromkeys(("content", "price", "stock", "delete"), Route("PUT", "/items/{item}")),
    }
    merge_price_and_stock = "plan"  # PUT /items/{id} takes both
    lists_families = True  # variations are one item (family_payload)
    single_use_refresh_token = True  # each refresh answers a new refresh token; the old one is dead

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.token = RefreshedToken("/oauth/token", self.title)
        self._seller_id: str | None = None
        self._lock: tuple[asyncio.AbstractEventLoop, asyncio.Lock] | None = None
        self._ids: dict[tuple[str, ...], dict[str, str]] = {}  # attribute keys -> {id: key}

    def _seller_lock(self) -> asyncio.Lock:
        """A lock of the running event loop (a connector may serve several ``asyncio.run``)."""
        loop = asyncio.get_running_loop()
        if self._lock is None or self._lock[0] is not loop:
            self._lock = (loop, asyncio.Lock())
        return self._lock[1]

    # -- requirements ------------------------------------------------------------------------

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        return self._attribute_values(listing)

    def attributes_missing(self, listing: Listing, names: Sequence[str]) -> list[str]:
        """What :meth:`attributes_sent` would hold no value for, without building it: the check
        asks for every SKU planned. The rule file's attribute keys are the same few for every SKU,
        so which key stands for which id (its upper case, the last one winning) is worked out once
        per set of keys."""
        fields = listing.fields
        attributes = fields.get("attributes")
        if not isinstance(attributes, dict):
            attributes = {}
        keys = tuple(attributes)
        ids = self._ids.get(keys)
        if ids is None:
            ids = {key.upper(): key for key in keys}  # in order: the last key of an id wins
            if len(self._ids) < 4096:
                self._ids[keys] = ids
        missing = []
        for id_ in names:
            if id_ == "SELLER_SKU":
                value: Any = listing.sku_id
            elif id_ in ids:
                value = attributes[ids[id_]]
            else:
                standard = STANDARD_ATTRIBUTES.get(id_)
                value = None if standard is None else fields.get(standard)
            if value is None or value == "":
                missing.append(id_)
        return missing

    # -- hooks -------------------------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """The ``POST /items`` body for one SKU listed on its own."""
        return self._item(
            listing,
            self.price_of(listing),
            max(0, listing.quantity),
            _images(listing),
            self._attributes(listing),
        )

    def family_payload(self, listings: Sequence[Listing]) -> dict[str, Any] | None:
        """One item whose ``variations`` are the SKUs of a family (the legacy variations model).

        Mercado Libre shows every variation at one price and, when they differ, the highest; the
        family is priced at the highest of its SKUs so that no SKU sells below the price its rules
        computed. Content (title, category, description) comes from the first SKU by id, so a
        family's title should not name an axis value.
        """
        if not listings:
            return None
        members = sorted(listings, key=lambda listing: listing.sku_id)
        first = members[0]
        axes = list(first.axes)
        for member in members:
            if set(member.axes) != set(axes):
                raise ValueError(f"SKU {member.sku_id} varies on {list(member.axes)}, its family on {axes}")
        price = max(self.price_of(member) for member in members)
        pictures = list(dict.fromkeys(url for member in members for url in _images(member)))
        shared = [a for a in self._attributes(first) if a["id"] not in PER_VARIATION and a["id"] not in axes]
        body = self._item(first, price, sum(max(0, member.quantity) for member in members), pictures, shared)
        body["variations"] = [self._variation(member, price) for member in members]
        return body

    def offered_prices(self, listings: Sequence[Listing]) -> dict[str, Decimal]:
        """A family is one item at its highest member's price (see :meth:`family_payload`)."""
        offered = {listing.sku_id: self.price_of(listing) for listing in listings}
        families: dict[str, Decimal] = {}
        for listing in listings:
            if listing.group is not None:
                price = offered[listing.sku_id]
                families[listing.group] = max(price, families.get(listing.group, price))
        for listing in listings:
            if listing.group is not None:
                offered[listing.sku_id] = families[listing.group]
        return offered

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """``PUT /items/{id}`` with the price only."""
        return {"price": self.price_of(listing)}

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """``PUT /items/{id}`` with the quantity only."""
        return {"available_quantity": max(0, listing.quantity)}

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """Pause, not close: a closed item can never be reactivated, while a SKU that leaves the
        selection (a stock rule, a brand filter) often comes back; ``{"status": "active"}`` resumes it
        with its history and reviews."""
        return {"status": "paused"}

    # -- sending -----------------------------------------------------------------------------

    @property
    def refresh_token(self) -> str | None:
        """The refresh token Mercado Libre issued last (it rotates them on every use), to persist."""
        return self.token.refresh_token if self.token is not None else None

    def path_values(self, change: ChangeRecord, remote_id: str | None) -> dict[str, str]:
        return {"item": parse_remote_id(remote_id)[0] if remote_id else ""}

    def routed(
        self, change: ChangeRecord, remote_id: str | None, calls: list[Call], kept: Mapping[str, str]
    ) -> list[Call]:
        """``POST /items`` creates (none for a family's followers); the rest names the item, and a
        family member's variation in it (see ``_http`` for remote ids).

        A content change goes in parts (``_http._content_calls``); a SKU withdrawn earlier and
        selected again is brought back rather than listed twice, with one request when its content
        is the one it was withdrawn with (``kept``), a whole family too; a variation is withdrawn by
        zeroing its stock, since pausing the item would withdraw its siblings too.
        """
        if change.op == "create":
            if change.family and change.payloads:
                return self._family_relisted(change, kept) or calls
            if remote_id is None or change.family or not change.payloads:
                return calls
            return self._relisted(change, remote_id, change.sku_id in kept)
        if remote_id is None:
            raise TradepostError(
                f"SKU {change.sku_id}: no Mercado Libre item id in the state store; cannot {change.op} it"
            )
        item, variation = parse_remote_id(remote_id)
        if change.route_kinds == ("content",):
            axes = set((change.after or {}).get("axes") or ())
            return _content_calls(
                item, variation, change.payloads[0], set(change.fields), axes, PER_VARIATION
            )
        if variation is None:
            return calls
        if change.op == "delete":
            calls = [dataclasses.replace(call, body={"available_quantity": 0}) for call in calls]
        return [dataclasses.replace(call, body=_in_variation(variation, call.body)) for call in calls]

    def _relisted(self, change: ChangeRecord, remote_id: str, same_content: bool) -> list[Call]:
        """A SKU withdrawn earlier (paused, or its variation's stock zeroed), selected again: its
        content too unless it is the one it was withdrawn with."""
        item, variation = parse_remote_id(remote_id)
        body = change.payloads[0]
        if variation is None and same_content:
            back = {
                "status": "active",
                "price": body.get("price"),
                "available_quantity": body.get("available_quantity", 0),
            }
            return [Call("PUT", f"/items/{item}", back, kind="create")]
        if variation is None:
            fields = {"content", "price", "stock"}
            content = _content_calls(item, None, body, fields, set(), PER_VARIATION)
            return [Call("PUT", f"/items/{item}", {"status": "active"}, kind="create"), *content]
        back = {"price": body.get("price"), "available_quantity": (change.after or {}).get("quantity", 0)}
        return [Call("PUT", f"/items/{item}", _in_variation(variation, back), kind="create")]

    def _family_relisted(self, change: ChangeRecord, kept: Mapping[str, str]) -> list[Call] | None:
        """A family withdrawn whole (each variation's stock zeroed) and selected again, every member
        with the content it was withdrawn with: one ``PUT`` gives its item's variations their price
        and stock back. None otherwise: the family is created, after the look-up that adopts an
        item already holding it (``find_existing``)."""
        if any(sku not in kept for sku in change.family):
            return None
        family = sorted(change.family)
        parsed = [parse_remote_id(kept[sku]) for sku in family]
        ids = [variation for _, variation in parsed if variation is not None]
        if len({item for item, _ in parsed}) != 1 or len(ids) != len(family):
            return None
        sent = {
            sku: variation
            for variation in change.payloads[0].get("variations") or []
            for sku in _seller_skus([variation])
        }
        if set(sent) != set(family):
            return None
        item = parsed[0][0]
        variations = [
            {
                "id": wire_id(variation),
                "price": sent[sku].get("price"),
                "available_quantity": sent[sku].get("available_quantity", 0),
            }
            for sku, variation in zip(family, ids, strict=True)
        ]
        return [Call("PUT", f"/items/{item}", {"status": "active", "variations": variations}, kind="create")]

    def read_result(self, call: Call, response: httpx.Response) -> CallResult:
        """A family's answer names every member's variation (``remote_ids``); a refusal is read
        as every connector's is."""
        if 200 <= response.status_code < 300:
            return item_result(call, response)
        return super().read_result(call, response)

    def error_of(self, response: httpx.Response) -> str:
        """The status and Mercado Libre's ``{message, error, cause[]}`` as one line."""
        return f"{response.status_code} {error_message(response)}"

    async def find_existing(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], call: Call, change: ChangeRecord
    ) -> CallResult | None:
        """Before every ``POST /items``: the item already holding one of its SKUs, adopted (``_http``).

        ``POST /items`` is the one call here that is not idempotent: sent twice it lists the
        product twice. Looking the SELLER_SKU up first (one request per SKU; see
        :func:`~marketplaces.mercadolibre._http.find_listing`) makes the marketplace, not the
        state store, the judge of whether a SKU exists. The seller id the search path needs is
        read once per run from ``GET /users/me``.
        """
        if call.method != "POST":
            return None
        if self._seller_id is None:
            async with self._seller_lock():  # workers start side by side: one reads it, the rest wait
                if self._seller_id is None:
                    failed = await self._read_seller_id(client, headers)
                    if failed is not None:
                        return failed
        seller_id = str(self._seller_id)  # read above, or by the worker that held the lock
        return await find_listing(client, headers, call, seller_id, PER_VARIATION, self)

    async def _read_seller_id(
        self, client: httpx.AsyncClient, headers: Mapping[str, str]
    ) -> CallResult | None:
        """``GET /users/me``: the seller id the item search path needs; a failed result, or None."""
        try:
            response = await client.get(ME, headers=headers)
        except httpx.HTTPError as exc:
            return CallResult(False, retryable=True, error=f"cannot read the seller id: {exc}")
        seller_id = seller_id_in(json_body(response)) if response.status_code == 200 else None
        if seller_id is None:
            self.drop_refused_token(response)
            error = f"cannot read the seller id: {response.status_code}"
            return CallResult(False, retryable=self.may_pass_later(response), error=error)
        self._seller_id = seller_id
        return None

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """The seller's items by scan search and multiget; see ``_readback``."""
        async for listing in ItemReader(reader).listings():
            yield listing

    reports_listing_status = True

    def listing_statuses(self, reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
        """Each item's status and sub-status, 20 items a request; see ``_status``."""
        return item_statuses(reader, keys)

    def listing_content(self, listing: Listing, family: Sequence[Listing]) -> Mapping[str, Any]:
        """Title, category and attributes as :meth:`payload` would send them, or, given a ``family``
        (the SKU is a variation), as :meth:`family_payload` and the SKU's variation in it would."""
        body = (self.family_payload(family) if family else None) or self.payload(listing)
        attributes = {a["id"]: {k: v for k, v in a.items() if k != "id"} for a in body["attributes"]}
        for variation in body.get("variations") or []:
            own = variation.get("attributes") or []
            if any(a["id"] == "SELLER_SKU" and a.get("value_name") == listing.sku_id for a in own):
                for attribute in [*own, *variation["attribute_combinations"]]:
                    attributes[attribute["id"]] = {k: v for k, v in attribute.items() if k != "id"}
        return {"title": body["title"], "category_id": body["category_id"], "attributes": attributes}

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        """A price matches when it is the one an update sends (the SKU's own) or, in a family, the
        one its creation sent (the family's highest); content is compared on what ``_readback`` reads."""
        kinds: list[str] = []
        try:
            sent = self.listing_content(listing, family if remote.group is not None else [])
        except ValueError:  # a family whose members vary on different axes: not sendable as is
            sent = {"title": None}
        if differing(sent, remote.content):
            kinds.append("content")
        offered = {self.price_of(listing)}
        if remote.group is not None and family:
            offered.add(max(self.price_of(member) for member in family))
        if remote.price not in offered:
            kinds.append("price")
        if remote.quantity is not None and remote.quantity != max(0, listing.quantity):
            kinds.append("stock")
        return tuple(kinds)

    # -- parts -------------------------------------------------------------------------------

    @staticmethod
    def price_of(listing: Listing) -> Decimal:
        """What the buyer pays. Through ``/items`` the price is the only price (strike-through prices
        belong to the promotions API), so a sale price, when the rules give one, is the price."""
        return listing.sale_price if listing.sale_price is not None else listing.price

    def _item(
        self,
        listing: Listing,
        price: Decimal,
        quantity: int,
        pictures: Sequence[str],
        attributes: list[dict[str, Any]],
    ) -> dict[str, Any]:
        body: dict[str, Any] = {
            "title": listing.title,
            "category_id": listing.category,
            "price": price,
            "currency_id": listing.currency,
            "available_quantity": quantity,
            "buying_mode": str(self.options.get("buying_mode", "buy_it_now")),
            "listing_type_id": str(
                listing.fields.get("listing_type_id") or self.options.get("listing_type_id", "gold_special")
            ),
            "condition": str(listing.fields.get("condition") or "new").lower(),
            "pictures": [{"source": url} for url in pictures],
            "attributes": attributes,
        }
        # Optional parts, only when the rules give them: plain-text description, sale terms (warranty...).
        if listing.fields.get("description"):
            body["description"] = {"plain_text": str(listing.fields["description"])}
        terms = listing.fields.get("sale_terms")
        if isinstance(terms, Mapping) and terms:
            body["sale_terms"] = [_attribute(id_, value) for id_, value in terms.items()]
        return body

    def _attribute_values(self, listing: Listing) -> dict[str, Any]:
        """Attribute id -> value, as sent: standard fields, the rule file's attributes, SELLER_SKU."""
        fields = listing.fields
        values: dict[str, Any] = {}
        for id_, name in STANDARD_ATTRIBUTES.items():
            values[id_] = fields.get(name)
        for name, value in listing.attributes.items():
            values[name.upper()] = value
        values["SELLER_SKU"] = listing.sku_id
        return {id_: value for id_, value in values.items() if value is not None and value != ""}

    def _attributes(self, listing: Listing) -> list[dict[str, Any]]:
        return [_attribute(id_, value) for id_, value in self._attribute_values(listing).items()]

    def _variation(self, listing: Listing, price: Decimal) -> dict[str, Any]:
        own = {a["id"]: a for a in self._attributes(listing)}
        return {
            "attribute_combinations": [
                _attribute(axis, value) for axis, value in listing.axes.items() if value is not None
            ],
            "price": price,
            "available_quantity": max(0, listing.quantity),
            "picture_ids": _images(listing),
            "attributes": [own[id_] for id_ in PER_VARIATION if id_ in own],
        }


def _attribute(id_: str, value: Any) -> dict[str, Any]:
    """``{id, value_name}`` for text; a mapping (``{"value_id": "52049"}``) is sent as written."""
    if isinstance(value, Mapping):
        return {"id": id_, **value}
    if isinstance(value, Decimal):
        return {"id": id_, "value_name": format(value, "f")}
    return {"id": id_, "value_name": str(value)}


def _images(listing: Listing) -> list[str]:
    return [str(url) for url in listing.fields.get("images") or []]


__all__ = ["MercadoLibreConnector", "TokenError", "variation_ids"]
