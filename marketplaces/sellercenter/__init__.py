"""SellerCenter: products by feeds, prices and stock by ProductUpdate carrying only those fields.

One connector for the platform Dafiti shares with other operators (``shared/specs/dafiti/API.md``):
``sellercenter`` (any operator: the project's ``base_url`` names its host, ``options.user_id``
the seller's login) and ``dafiti`` (Dafiti Brazil's host, and the attributes Dafiti requires).
Every write is a feed (``_feeds``), never a per-SKU call, so the executor hands every change to
:meth:`SellerCenterConnector.apply_in_bulk` (``bulk_threshold = 1``):

1. creates: their SKUs are looked up first (``GetProducts`` by ``SkuSellerList``); one the seller
   already has (sent by a run killed before it recorded it, or with the state lost) goes as a
   ProductUpdate instead, so nothing is created twice. The rest go in one ProductCreate feed,
   polled with FeedStatus until final; its errors become per-SKU reasons;
2. then, in parallel: images by an Image feed for the SKUs just created or whose content changed
   (API.md: images go separately, after the product exists, and replace the old ones whole); one
   ProductUpdate feed with every update, each record carrying only ``SellerSku`` and what changed
   (the whole content; the price and sale price; the quantity); one ProductRemove feed.

Variations: a rule file's ``variations`` family is created together (:attr:`lists_families`):
its first SKU by id is the parent (no ``ParentSku``), the others name it in ``ParentSku``. A
family is never split: when any member is refused, every member fails and the next run sends the
family again (members that landed go as updates). ``Variation`` and ``ParentSku`` are never in an
update (the bootic client drops ``Variation`` from updates: it cannot change, *unverified*). A
SKU added to a family already listed is created on its own (API.md does not say how a variation
joins an existing parent; *unverified*).

Approval: API.md documents no quality check before price and stock count (unlike Carrefour's
cataloguing), so nothing is held back or re-sent for it; a SKU counts as applied once its feed
finished without an error for it. A feed still running when polling stops (``feed_wait_minutes``)
fails its SKUs as retryable, and the next run sends them again (every feed is keyed by SellerSku).

Feed spacing (API.md §7): the first 50 feed calls go at once, then one per 2 minutes (Falabella's
numbers; Dafiti's are not public). The connector waits for a turn up to ``max_wait_seconds``
(0 by default: only :data:`PATIENCE_FLOOR` real seconds); a turn further away fails the feed's
SKUs as retryable *deferred* without sending, so a sync batch never holds the other marketplaces.

Options: ``user_id`` (required), ``tax_class`` (``default``), ``shipment_type``
(``dropshipping``), ``time_scale`` (1; the sandbox runs SellerCenter's minutes 600 times faster),
``max_wait_seconds`` (0), ``feed_wait_minutes`` (10), ``free_feed_calls`` (50),
``user_agent`` (sent as ``User-Agent`` when set), ``max_attempts`` (5), ``retry_seconds`` (0.5).
Credential: ``api_key``.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from typing import Any, ClassVar

import httpx

from engine import TradepostError
from engine.connectors import (
    CallResult,
    ChangeRecord,
    Connector,
    Credentials,
    Listing,
    ReadBackError,
    Reader,
    Reason,
    RemoteListing,
    RetryPolicy,
    TokenBucket,
)
from marketplaces.sellercenter._feeds import Deferred, FeedRunner
from marketplaces.sellercenter._http import (
    FeedSlots,
    SellerCenterError,
    SellerCenterSender,
    SlotClock,
    answer_of,
    as_list,
    decimal_of,
    read_envelope,
    redact,
    signed_params,
    text_of,
)

TOP_LEVEL_ATTRIBUTES = ("Variation",)
"""Attributes that are product fields; every other attribute goes in ``ProductData``."""
NOT_UPDATED = ("Variation", "ParentSku")
DESCRIPTION_LENGTH = (6, 25_000)
"""The Mobly SDK's bounds on ``Description`` (API.md §4)."""
LOOKUP_PAGE = 100
"""SellerSkus one ``GetProducts`` call looks up (the page size; the platform's cap is unverified)."""
PATIENCE_FLOOR = 5.0
"""Real seconds a feed turn, or a 429's Retry-After, is always waited: a few seconds hold no sync
batch, and under the sandbox's time scale they cover the documented spacing."""
GONE = ("not found", "does not exist")
COMPARED = ("Name", "Brand", "PrimaryCategory", "Description")
"""Content read back and compared on ``state rebuild``."""


class SellerCenterConnector(Connector):
    """Any SellerCenter operator's requirements, bodies and feeds."""

    name = "sellercenter"
    listing_fields = ()  # the standard fields; the rest goes in attributes
    title = "SellerCenter"

    base_url = ""  # each operator has its own host: the project's base_url names it
    credential_names = ("api_key",)
    required_options: ClassVar[Mapping[str, str]] = {"user_id": "the seller user's login (e-mail)"}
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {"*": ("description", "brand")}
    rate_limit = 10.0  # about 30 requests per 3 s (a third party's figure, unverified)
    batch_size = 10_000
    bulk_threshold = 1  # every write is a feed
    creates_are_keyed = True  # every feed record is keyed by SellerSku
    lists_families = True  # a family's creates travel together (parent first)

    option_defaults: ClassVar[Mapping[str, str]] = {
        "tax_class": "default",
        "shipment_type": "dropshipping",
        "time_scale": "1",
        "max_wait_seconds": "0",
        "feed_wait_minutes": "10",
        "free_feed_calls": "50",
        "max_attempts": "5",
        "retry_seconds": "0.5",
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self._key = ""
        clock = SlotClock(scale=float(self.option("time_scale")))
        self.slots = FeedSlots(clock, free=int(self.option("free_feed_calls")))
        self.patience_floor = PATIENCE_FLOOR
        self.last_bulk_requests = 0
        self.last_bulk_retries = 0

    # -- requirements ------------------------------------------------------------------------

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        """The attributes, with the description and brand the product record carries."""
        fields = listing.fields
        return {**listing.attributes, "description": fields.get("description"), "brand": fields.get("brand")}

    def check(self, listing: Listing) -> list[Reason]:
        reasons = super().check(listing)
        length, (low, high) = len(text_of(listing.fields.get("description"))), DESCRIPTION_LENGTH
        if length and not low <= length <= high:
            message = f"description is {length} characters; {self.title} takes {low} to {high}"
            reasons.append(Reason("TP914", message, "listing.description"))
        return reasons

    # -- bodies ------------------------------------------------------------------------------

    def product(self, listing: Listing, parent: str | None = None) -> dict[str, Any]:
        """The ``<Product>`` record of a create, or of a content update (less :data:`NOT_UPDATED`)."""
        fields, attributes = listing.fields, listing.attributes
        record: dict[str, Any] = {"SellerSku": listing.sku_id}
        if parent and parent != listing.sku_id:
            record["ParentSku"] = parent
        record.update(
            Status="active",
            Name=listing.title,
            **{name: text_of(attributes[name]) for name in TOP_LEVEL_ATTRIBUTES if name in attributes},
            PrimaryCategory=listing.category,
            Description=text_of(fields.get("description")),
            Brand=text_of(fields.get("brand")),
            Price=text_of(listing.price),
            TaxClass=self.option("tax_class"),
            ShipmentType=self.option("shipment_type"),
            Condition=text_of(fields.get("condition")) or "new",
            Quantity=str(max(0, listing.quantity)),
        )
        if listing.sale_price is not None:
            record["SalePrice"] = text_of(listing.sale_price)
        if fields.get("gtin"):
            record["ProductId"] = text_of(fields["gtin"])
        data = {
            k: text_of(v)
            for k, v in sorted(attributes.items())
            if k not in TOP_LEVEL_ATTRIBUTES and v is not None
        }
        if data:
            record["ProductData"] = data
        return record

    def images(self, listing: Listing) -> list[dict[str, Any]]:
        """The Image feed's record (the first image is the main one), none without images."""
        urls = [str(url) for url in listing.fields.get("images") or []][: self.max_images or None]
        return [{"SellerSku": listing.sku_id, "Images": {"Image": urls}}] if urls else []

    def payload(self, listing: Listing) -> dict[str, Any]:
        """A create or a content change: the product record, and its images (sent after it)."""
        return {"Product": [self.product(listing)], "ProductImage": self.images(listing)}

    def family_payload(self, listings: Sequence[Listing]) -> dict[str, Any] | None:
        """A family's creates: the first SKU by id is the parent, the others name it in ParentSku."""
        if not listings:
            return None
        members = sorted(listings, key=lambda listing: listing.sku_id)
        parent = members[0].sku_id
        return {
            "Product": [self.product(member, parent) for member in members],
            "ProductImage": [image for member in members for image in self.images(member)],
        }

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """Price and sale price only; an empty SalePrice ends a sale (*unverified*)."""
        return {
            "SellerSku": listing.sku_id,
            "Price": text_of(listing.price),
            "SalePrice": text_of(listing.sale_price),
        }

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        return {"SellerSku": listing.sku_id, "Quantity": str(max(0, listing.quantity))}

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """ProductRemove's record."""
        return {"SellerSku": sku_id}

    # -- sending -----------------------------------------------------------------------------

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        """No header: every request is signed in its query (:class:`SellerCenterSender`); the key
        is checked present here and travels only inside this connector."""
        if client.base_url.host == "":
            raise TradepostError(
                f"{self.title} has no API host: set base_url for this marketplace in tradepost.yaml "
                "(each SellerCenter operator has its own)"
            )
        self._key = credentials.get("api_key")
        self.option("user_id")
        return {}

    def sender(self, client: httpx.AsyncClient) -> SellerCenterSender:
        """Signed requests at :attr:`rate_limit`, retried on 5xx and lost connections; a 429 only
        when its Retry-After is within ``max_wait_seconds`` (on the connector's clock) or
        :data:`PATIENCE_FLOOR` seconds."""
        clock = self.slots.clock
        patience = max(clock.seconds(float(self.option("max_wait_seconds"))), self.patience_floor)
        retry = RetryPolicy(
            attempts=max(1, int(self.option("max_attempts"))),
            base=float(self.option("retry_seconds")),
            cap=30.0,
            retry_after_cap=patience,
        )
        user_agent, pacer = self.option("user_agent"), TokenBucket(self.rate_limit)
        return SellerCenterSender(
            client, self.option("user_id"), self._key, retry, patience, user_agent, pacer
        )

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """Creates first, then images, updates and removals, each as one feed; outcomes per SKU."""
        sender = self.sender(client)
        runner = FeedRunner(
            sender,
            self.slots,
            max_wait=max(
                float(self.option("max_wait_seconds")), self.patience_floor * self.slots.clock.scale
            ),
            poll_budget=float(self.option("feed_wait_minutes")) * 60.0,
        )
        batch = _Batch(self, runner)
        for change in changes:
            batch.add(ChangeRecord.of(change))
        try:
            await batch.create(sender)
            await asyncio.gather(
                batch.send("Image", batch.image_records),
                batch.send("ProductUpdate", list(batch.updates.values())),
                batch.send("ProductRemove", batch.removals),
            )
        finally:
            self.last_bulk_requests, self.last_bulk_retries = sender.count, sender.retries
        return batch.outcomes()

    async def existing(self, sender: SellerCenterSender, skus: Iterable[str]) -> set[str]:
        """The SellerSkus among ``skus`` the seller already has (GetProducts by SkuSellerList)."""
        wanted, found = sorted(set(skus)), set()
        for start in range(0, len(wanted), LOOKUP_PAGE):
            page = wanted[start : start + LOOKUP_PAGE]
            params = {"SkuSellerList": json.dumps(page), "Limit": str(LOOKUP_PAGE)}
            for product in _products(answer_of(await sender.send("GetProducts", params), "GetProducts").body):
                found.add(str(product.get("SellerSku") or ""))
        return found & set(wanted)

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """GetProducts, 100 a page by Limit/Offset: each product's price, sale price and quantity."""
        await reader.headers()  # the key, from the credentials, to sign with
        offset = 0
        while True:
            params = {"Limit": str(LOOKUP_PAGE), "Offset": str(offset)}
            page = await reader.get(
                "/", signed_params("GetProducts", self.option("user_id"), self._key, params, "JSON")
            )
            if isinstance(page, Mapping) and "ErrorResponse" in page:
                raise ReadBackError(
                    f"GetProducts was refused: {read_envelope(json.dumps(page, default=str)).describe()}"
                )
            products = _products(page)
            for product in products:
                if product.get("SellerSku"):
                    yield _remote(product)
            offset += len(products)
            if len(products) < LOOKUP_PAGE:
                return

    def listing_content(self, listing: Listing, family: Sequence[Listing]) -> Mapping[str, Any]:
        """The content GetProducts shows back as sent (:data:`COMPARED`); the rest is Dafiti's."""
        record = self.product(listing)
        return {name: text_of(record.get(name)).strip() for name in COMPARED}


class DafitiConnector(SellerCenterConnector):
    """Dafiti Brazil: its host, and the attributes Dafiti requires of every product.

    VTEX's Dafiti connector sends ``Variation``, ``Gender``, ``Origin``, ``ColorFamily``, ``Color``
    and ``OriginCountry`` (new for Brazil); values come from Dafiti's case-sensitive lists, which a
    rule file's tables map to (API.md §4).
    """

    name = "dafiti"
    title = "Dafiti"
    base_url = "https://sellercenter-api.dafiti.com.br"
    min_images = 1  # a fashion catalogue without pictures is not published (VTEX's guide; unverified)
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {
        "*": (
            "description",
            "brand",
            "Variation",
            "Gender",
            "Origin",
            "ColorFamily",
            "Color",
            "OriginCountry",
        )
    }


class _Batch:
    """One apply's changes sorted into feeds, and each SKU's outcome as the feeds answer."""

    def __init__(self, connector: SellerCenterConnector, runner: FeedRunner) -> None:
        self.connector, self.runner = connector, runner
        self.changes: dict[str, ChangeRecord] = {}
        self.creates: dict[str, dict[str, Any]] = {}
        """SKU -> its ProductCreate record (a family's members included, parent first)."""
        self.create_images: dict[str, list[dict[str, Any]]] = {}
        self.families: dict[str, tuple[str, ...]] = {}
        """SKU -> every member of its family created in this batch (the SKU alone otherwise)."""
        self.updates: dict[str, dict[str, Any]] = {}
        """SKU -> its ProductUpdate record, the fields of every body merged."""
        self.image_records: list[dict[str, Any]] = []
        self.removals: list[dict[str, Any]] = []
        self.errors: dict[str, list[tuple[str, bool]]] = {}

    def add(self, change: ChangeRecord) -> None:
        """Sort one change's bodies (the ones the plan showed) into the feeds that send them."""
        self.changes[change.sku_id] = change
        if change.op == "create":
            self._add_create(change)
            return
        for kinds, body in self.connector.bodies_sent(change):
            if body is None:
                continue
            if kinds[0] == "delete":
                self.removals.append(dict(body))
            elif kinds[0] in ("create", "content"):
                self._update(change.sku_id, body["Product"][0])
                self.image_records.extend(body.get("ProductImage") or [])
            else:
                self._update(change.sku_id, body)

    def _add_create(self, change: ChangeRecord) -> None:
        members = change.family or (change.sku_id,)
        self.families[change.sku_id] = tuple(members)
        if change.leader not in (None, change.sku_id):
            return  # travels in its leader's body
        for body in change.payloads[:1]:
            for record in body.get("Product") or []:
                self.creates[str(record["SellerSku"])] = dict(record)
            for image in body.get("ProductImage") or []:
                self.create_images.setdefault(str(image["SellerSku"]), []).append(dict(image))

    def _update(self, sku: str, body: Mapping[str, Any]) -> None:
        record = self.updates.setdefault(sku, {"SellerSku": sku})
        record.update({k: v for k, v in body.items() if k not in NOT_UPDATED})

    def fail(self, skus: Iterable[str], reason: str, retryable: bool) -> None:
        for sku in skus:
            self.errors.setdefault(sku, []).append((redact(reason), retryable))

    async def create(self, sender: SellerCenterSender) -> None:
        """ProductCreate for the SKUs the seller does not have; updates for those it has; images."""
        orphans = [s for s, c in self.changes.items() if c.op == "create" and c.leader not in (None, s)]
        for sku in orphans:
            if self.changes[sku].leader not in self.changes:
                self.fail([sku], "its family's first SKU is not in this run", True)
        if not self.creates:
            return
        try:
            held = await self.connector.existing(sender, self.creates)
        except (SellerCenterError, httpx.TransportError) as exc:
            self.fail(self.creates, f"cannot tell whether the product exists: {exc}", True)
            return
        for sku in held:
            self._update(sku, self.creates.pop(sku))
            self.image_records.extend(self.create_images.get(sku, []))
        if not self.creates:
            return
        outcome = await self.send("ProductCreate", list(self.creates.values()))
        for sku in self.creates:
            if outcome and sku not in self.errors:
                self.image_records.extend(self.create_images.get(sku, []))

    async def send(self, action: str, records: list[dict[str, Any]]) -> bool:
        """One feed; its SKUs' failures noted. Whether the feed was final (its outcome read)."""
        if not records:
            return False
        skus = [str(record["SellerSku"]) for record in records]
        try:
            outcome = await self.runner.run(action, records)
        except (SellerCenterError, httpx.TransportError) as exc:
            reason = str(exc) if isinstance(exc, Deferred) else f"{action}: {exc}"
            self.fail(skus, reason, getattr(exc, "retryable", True))
            return False
        where = f"{action} feed {outcome.feed_id}"
        if not outcome.final:
            self.fail(skus, f"{where} still {outcome.status or 'queued'}; sent again", True)
        elif outcome.failed_whole:
            self.fail(skus, f"{where} ended {outcome.status}", True)
        for sku, reason in outcome.errors.items():
            gone = action == "ProductRemove" and any(word in reason.lower() for word in GONE)
            if not gone:
                self.fail([sku], f"{where} refused it: {reason}", False)
        if outcome.unattributed:
            others = [sku for sku in skus if sku not in outcome.errors]
            self.fail(others, f"{where}: {'; '.join(outcome.unattributed)}", True)
        return outcome.final

    def outcomes(self) -> dict[str, CallResult]:
        """Each SKU's outcome; a family fails whole when any of its members failed."""
        results = {}
        for sku, change in self.changes.items():
            errors = [
                (reason if member == sku else f"its family member {member}: {reason}", again)
                for member in self.families.get(sku, (sku,))
                for reason, again in self.errors.get(member, [])
            ]
            if errors:
                again = all(retry for _, retry in errors)
                text = "; ".join(dict.fromkeys(reason for reason, _ in errors))
                results[sku] = CallResult(False, retryable=again, error=text)
            else:
                results[sku] = CallResult(True, remote_id=sku if change.op != "delete" else None)
        return results


def _products(body: Any) -> list[Mapping[str, Any]]:
    """The ``Product`` items of a GetProducts Body (an envelope read from JSON or XML)."""
    if isinstance(body, Mapping) and "SuccessResponse" in body:
        body = body["SuccessResponse"].get("Body")
    products = body.get("Products") if isinstance(body, Mapping) else None
    found = as_list(products.get("Product")) if isinstance(products, Mapping) else []
    return [p for p in found if isinstance(p, Mapping)]


def _remote(product: Mapping[str, Any]) -> RemoteListing:
    """A GetProducts product as a read-back listing: price, sale price, quantity, the compared
    content; the SellerSku as the remote id."""
    quantity = decimal_of(product.get("Quantity"))
    return RemoteListing(
        str(product["SellerSku"]),
        str(product["SellerSku"]),
        decimal_of(product.get("Price")),
        decimal_of(product.get("SalePrice")),
        int(quantity) if quantity is not None else None,
        content={name: text_of(product.get(name)).strip() for name in COMPARED},
    )


__all__ = ["DafitiConnector", "SellerCenterConnector"]
