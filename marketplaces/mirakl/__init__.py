"""Mirakl seller API: products through P41 until catalogued, then offers, prices and stock by import.

Any Mirakl marketplace (``mirakl``: the base URL and ``shop_id`` come from the project and the
rule file's options), and Carrefour Brasil's (``carrefour``: its required fields and regulated
categories declared, ``shared/specs/mirakl/CARREFOUR.md``). Every write is a CSV import
(``_imports``), never a per-SKU call, so the executor hands every change to
:meth:`MiraklConnector.apply_in_bulk` (``bulk_threshold = 1``):

1. a SKU whose product is not known to be catalogued (no remote id: a create, or a row rebuilt
   without one) is looked up by EAN with P31; one Mirakl already holds (catalogued earlier, or
   sold by another shop) is not imported again. The others go in one P41 product import, polled
   with P42 until final; P44's lines become per-SKU reasons, P45's added products are catalogued;
2. catalogued SKUs get their whole offer (price, sale price, quantity, condition) by OF01 in
   NORMAL mode (an upsert by ``sku``), with the withdrawn SKUs' ``delete`` lines;
3. a price-only change goes by PRI01, a stock-only change by STO01; never by OF24, which resets
   every offer field it is not sent (SOURCE.md, "The OF24 gotcha").

The catalogued state is the remote id: Mirakl's product SKU (``product_sku``, from P45, P31 or
OF21), kept in the state store's row like any connector's remote id. A SKU Carrefour has not
catalogued by the end of the apply fails as retryable ("waiting for cataloguing") and keeps no
row, so nothing is sent to Carrefour for it that it would discard (price and stock before
cataloguing); the next run finds it catalogued (P31) and sends its offer with the price and
stock of then. Product data is not sent again once catalogued: Carrefour curates it (a content
change sends the offer only).

Call frequency (each operation's "Maximum usage"): P41 once per 15 minutes, OF01, PRI01 and
STO01 once a minute, status polls once a minute (STO02 every 15 s). The connector keeps each
operation's next slot (:class:`~marketplaces.mirakl._http.CallSlots`) and waits for it up to
``max_wait_seconds`` (0 by default: only the 5 real seconds of ``PATIENCE_FLOOR``); an upload
further away fails its SKUs as retryable
*deferred* without sending, so a sync batch never holds the other marketplaces for a slot, and the
next run (or sync batch) sends them with what changed since in one import. Each apply uses each
import once per 10,000 changes (the executor's bulk chunk), so only a second chunk, or a second
run within the interval in the same process, meets a taken slot; a 429 from Mirakl (another
process took it) is retried after its Retry-After.

Options: ``shop_id`` (when the key reaches several shops), ``offer_state`` (OF61 condition code,
11 = new), ``product_id_type`` (EAN), ``leadtime_to_ship`` (days, empty: the shop's default),
``time_scale`` (1; the sandbox runs Mirakl's minutes 600 times faster, and its stand-in too),
``max_wait_seconds`` (0), ``catalogue_wait_minutes`` (30: how long P42 is polled),
``max_attempts`` (5) and ``retry_seconds`` (0.5) for the connector's own requests.
Credential: ``api_key`` (Carrefour's ShopKey).
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Iterable, Mapping, Sequence
from decimal import Decimal, InvalidOperation
from typing import Any, ClassVar

import httpx

from engine import TradepostError
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
    RetryPolicy,
    json_body,
)
from marketplaces.mirakl._http import (
    CallSlots,
    MiraklClock,
    MiraklError,
    MiraklSender,
    auth_headers,
    raise_for_answer,
    shop_params,
)
from marketplaces.mirakl._imports import OFFERS, PRICES, PRODUCTS, STOCK, Importer, ImportKind
from marketplaces.mirakl._status import offer_statuses

PRODUCT_COLUMNS = (
    "sku",
    "title",
    "description",
    "brand",
    "category",
    "ean",
    "weight",
    "height",
    "width",
    "length",
)
"""The fixed columns of the product file; images follow as ``image-1``..``image-N``, then one column per
attribute code. The real columns are the operator's attribute model (PM11); these are the
stand-in's, named after what CARREFOUR.md lists."""
OFFER_COLUMNS = ("sku", "product-id", "product-id-type", "price", "discount-price", "quantity", "state")
OFFER_COLUMNS_ALL = (*OFFER_COLUMNS, "leadtime-to-ship", "update-delete")
PRICE_COLUMNS = ("offer-sku", "price", "discount-price")
STOCK_COLUMNS = ("offer-sku", "quantity")
MEASURES = ("weight", "height", "width", "length")
P31_REFERENCES = 100
"""Product references one P31 call takes (Mirakl keeps id lists at 100, SOURCE.md "Errors")."""
OF21_PAGE = 100
WAITING = "waiting for the marketplace to catalogue the product"
PATIENCE_FLOOR = 5.0
"""Real seconds a slot, or a 429's Retry-After, is always waited: a few seconds hold no sync batch,
and under the sandbox's time scale they cover every documented interval."""


class MiraklConnector(Connector):
    """Any Mirakl marketplace's requirements, bodies and imports."""

    name = "mirakl"
    listing_fields = MEASURES
    title = "Mirakl"

    title_max_length = 150  # not published by Mirakl; operators set it in PM11 (a TEXT attribute)
    min_images = 1
    max_images = 6  # image-1..image-6 in the product file
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {"*": ("description",)}
    requires_ean: ClassVar[bool] = True
    """Offers attach to products by EAN (``product-id-type``), so a SKU without one cannot be sold."""

    base_url = ""  # each operator has its own host: the project's base_url names it
    credential_names = ("api_key",)
    rate_limit = 5.0  # Mirakl documents frequencies per operation, not a rate; 5 rps is a polite start
    batch_size = 10_000
    bulk_threshold = 1  # every write is an import: one change or a million go through apply_in_bulk
    creates_are_keyed = True  # every import is an upsert by the shop SKU

    option_defaults: ClassVar[Mapping[str, str]] = {
        "offer_state": "11",
        "product_id_type": "EAN",
        "time_scale": "1",
        "max_wait_seconds": "0",
        "catalogue_wait_minutes": "30",
        "max_attempts": "5",
        "retry_seconds": "0.5",
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.clock = MiraklClock(scale=float(self.option("time_scale")))
        self.slots = CallSlots(self.clock)
        self.patience_floor = PATIENCE_FLOOR
        """Real seconds always waited for a slot or a 429 (:data:`PATIENCE_FLOOR`); a benchmark on a
        scaled clock scales it too, to behave as against Mirakl."""
        self.last_bulk_requests = 0
        """Requests the last :meth:`apply_in_bulk` made, for the executor's summary."""
        self.last_bulk_retries = 0
        """Of those, the repeated ones (after a 429, a 5xx or a lost connection)."""

    # -- requirements ------------------------------------------------------------------------

    def check(self, listing: Listing) -> list[Reason]:
        reasons = super().check(listing)
        if self.requires_ean and not listing.fields.get("gtin"):
            who = self.title or self.name
            reasons.append(Reason("TP913", f"{who} requires an EAN (sku.ean)", "listing.gtin"))
        return reasons

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        """The attributes, with the description and the package measures the product file carries."""
        fields = listing.fields
        extra = {name: fields.get(name) for name in ("description", *MEASURES)}
        return {**listing.attributes, **extra}

    # -- bodies ------------------------------------------------------------------------------

    def product_row(self, listing: Listing) -> dict[str, Any]:
        """The product file's line (P41): the shop SKU, content, measures, images, attributes."""
        fields = listing.fields
        row: dict[str, Any] = {
            "sku": listing.sku_id,
            "title": listing.title,
            "description": _text(fields.get("description")),
            "brand": _text(fields.get("brand")),
            "category": listing.category,
            "ean": _text(fields.get("gtin")),
        }
        row.update({name: _text(fields.get(name)) for name in MEASURES})
        for index, url in enumerate(list(fields.get("images") or [])[: self.max_images or None], 1):
            row[f"image-{index}"] = str(url)
        for code, value in sorted(listing.attributes.items()):
            if value is not None and code not in row:
                row[code] = _text(value)
        return row

    def offer_row(self, listing: Listing) -> dict[str, Any]:
        """The whole offer (OF01 line): every field Tradepost manages, so nothing is left to a default."""
        row: dict[str, Any] = {
            "sku": listing.sku_id,
            "product-id": _text(listing.fields.get("gtin")),
            "product-id-type": self.option("product_id_type"),
            "price": _money(listing.price),
            "discount-price": _money(listing.sale_price),
            "quantity": str(max(0, listing.quantity)),
            "state": self.option("offer_state"),
            "update-delete": "update",
        }
        if self.option("leadtime_to_ship"):
            row["leadtime-to-ship"] = self.option("leadtime_to_ship")
        return row

    def payload(self, listing: Listing) -> dict[str, Any]:
        """A create: the product line (P41) and the offer line (OF01) sent once it is catalogued."""
        return {"product": self.product_row(listing), "offer": self.offer_row(listing)}

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """The PRI01 line: the price and the sale price (PRI01 replaces the offer's prices whole, so
        an ended sale goes with an empty ``discount-price``)."""
        return {
            "offer-sku": listing.sku_id,
            "price": _money(listing.price),
            "discount-price": _money(listing.sale_price),
        }

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """The STO01 line: the quantity (no ``warehouse-code``: the offer's global quantity)."""
        return {"offer-sku": listing.sku_id, "quantity": str(max(0, listing.quantity))}

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """The OF01 line that deletes the offer (the product stays: it is Carrefour's)."""
        return {"sku": sku_id, "update-delete": "delete"}

    # -- sending -----------------------------------------------------------------------------

    async def auth_headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        """The shop key, raw in ``Authorization``."""
        if not str(client.base_url).strip("/") or client.base_url.host == "":
            raise TradepostError(
                f"{self.title} has no API host: set base_url for this marketplace in tradepost.yaml "
                "(each Mirakl operator has its own, e.g. https://<instance>.mirakl.net)"
            )
        return auth_headers(credentials.get("api_key"))

    def sender(self, client: httpx.AsyncClient, headers: Mapping[str, str]) -> MiraklSender:
        """The connector's requests: retried on 5xx and lost connections; a 429 only when its
        Retry-After is within ``max_wait_seconds`` (on the connector's clock) or
        :data:`PATIENCE_FLOOR` real seconds, else it defers the work like a taken slot."""
        patience = max(self.clock.seconds(float(self.option("max_wait_seconds"))), self.patience_floor)
        retry = RetryPolicy(
            attempts=max(1, int(self.option("max_attempts"))),
            base=float(self.option("retry_seconds")),
            cap=30.0,
            retry_after_cap=patience,
        )
        shop = self.option("shop_id") or None
        return MiraklSender(client, headers.get("Authorization", ""), shop, retry, patience=patience)

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        """Products, then offers, prices and stock, each as one import; outcomes per SKU."""
        sender = self.sender(client, headers)
        importer = Importer(
            sender,
            self.slots,
            # Documented seconds: the option, or the few real seconds that hold no batch (under the
            # sandbox's time scale, every interval; against Mirakl, none of its minutes).
            max_wait=max(float(self.option("max_wait_seconds")), self.patience_floor * self.clock.scale),
            poll_budget=float(self.option("catalogue_wait_minutes")) * 60.0,
        )
        batch = _Batch(self)
        for change in changes:
            batch.add(ChangeRecord.of(change))
        try:
            await batch.catalogue(sender, importer)
            await asyncio.gather(
                batch.send(importer, OFFERS, OFFER_COLUMNS_ALL, batch.offers),
                batch.send(importer, PRICES, PRICE_COLUMNS, batch.prices),
                batch.send(importer, STOCK, STOCK_COLUMNS, batch.stock),
            )
        finally:
            self.last_bulk_requests, self.last_bulk_retries = sender.count, sender.retries
        return batch.outcomes()

    async def catalogued(self, sender: MiraklSender, eans: Iterable[str]) -> dict[str, str]:
        """EAN -> Mirakl's product SKU, for the EANs whose product Mirakl holds (P31)."""
        found: dict[str, str] = {}
        wanted = sorted(set(eans))
        kind = self.option("product_id_type")
        for start in range(0, len(wanted), P31_REFERENCES):
            refs = ",".join(f"{kind}|{ean}" for ean in wanted[start : start + P31_REFERENCES])
            answer = await sender.send("GET", "/api/products", params={"product_references": refs})
            raise_for_answer(answer, "P31")
            for product in _json_list(answer, "products"):
                if product.get("product_id") and product.get("product_sku"):
                    found[str(product["product_id"])] = str(product["product_sku"])
        return found

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """Each offer (:meth:`offers`): an offer means a catalogued product, so each SKU comes back
        with its product SKU as the remote id."""
        async for offer in self.offers(reader):
            yield _remote(offer)

    async def offers(self, reader: Reader) -> AsyncIterator[Mapping[str, Any]]:
        """OF21, the shop's offers 100 a page (offset paging), those that name a shop SKU."""
        offset, shop = 0, self.option("shop_id") or None
        while True:
            params = shop_params(shop, max=str(OF21_PAGE), offset=str(offset))
            page = await reader.get("/api/offers", params)
            offers = list(page.get("offers") or []) if isinstance(page, Mapping) else []
            for offer in offers:
                if offer.get("shop_sku"):
                    yield offer
            offset += len(offers)
            total = int(page.get("total_count") or 0) if isinstance(page, Mapping) else 0
            if not offers or offset >= total:
                return

    reports_listing_status = True

    def listing_statuses(self, reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
        """Each offer's ``active`` and ``inactivity_reasons`` from OF21; see ``_status``."""
        return offer_statuses(self.offers(reader), keys)

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        """Price and stock only: once catalogued, the product's content is the marketplace's."""
        kinds: list[str] = []
        if (remote.price, remote.sale_price) != (listing.price, listing.sale_price):
            kinds.append("price")
        if remote.quantity is not None and remote.quantity != max(0, listing.quantity):
            kinds.append("stock")
        return tuple(kinds)


class CarrefourConnector(MiraklConnector):
    """Carrefour Brasil's Mirakl: the fields VTEX's own connector must send, regulated categories.

    Required (CARREFOUR.md, "Catalogue"): name, description, EAN, weight, height, width, length and
    images; in categories where Brazilian law asks for an approval code (toys, baby, beauty,
    supplements, pharmacy, tools, drinks) the ``regulatory_certificate`` attribute (an ANATEL,
    INMETRO, ANVISA or MAPA code, or "Não se aplica"). Category codes are the rule file's; the
    regulated ones are recognised by these prefixes. No variations: each SKU is its own product.
    """

    name = "carrefour"
    title = "Carrefour"

    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {
        "*": ("description", *MEASURES),
        **{
            f"{prefix}*": ("regulatory_certificate",)
            for prefix in (
                "brinquedos",
                "bebes",
                "beleza",
                "suplementos",
                "farmacia",
                "ferramentas",
                "bebidas",
            )
        },
    }


class _Batch:
    """One apply's changes sorted into imports, and each SKU's outcome as the imports answer."""

    def __init__(self, connector: MiraklConnector) -> None:
        self.connector = connector
        self.changes: dict[str, ChangeRecord] = {}
        self.remote: dict[str, str | None] = {}
        self.uncatalogued: dict[str, Listing] = {}
        self.offers: list[dict[str, Any]] = []
        self.prices: list[dict[str, Any]] = []
        self.stock: list[dict[str, Any]] = []
        self.errors: dict[str, list[tuple[str, bool]]] = {}

    def add(self, change: ChangeRecord) -> None:
        """Sort one change: into the product import when its product is not known to be catalogued,
        else into the offer, price and stock files, with the bodies the plan showed."""
        self.changes[change.sku_id] = change
        remote = (change.before or {}).get("remote_id") if change.op != "create" else None
        self.remote[change.sku_id] = str(remote) if remote else None
        listing = change.listing
        if change.op != "delete" and not remote and listing is not None:
            self.uncatalogued[change.sku_id] = listing
            return
        for kinds, body in self.connector.bodies_sent(change):
            if body is None:
                continue
            if kinds[0] in ("create", "content"):
                self.offers.append(dict(body["offer"]) if "offer" in body else dict(body))
            elif kinds[0] == "delete":
                self.offers.append(dict(body))
            elif kinds[0] == "price":
                self.prices.append(dict(body))
            else:
                self.stock.append(dict(body))

    def fail(self, skus: Iterable[str], reason: str, retryable: bool) -> None:
        for sku in skus:
            self.errors.setdefault(sku, []).append((reason, retryable))

    async def catalogue(self, sender: MiraklSender, importer: Importer) -> None:
        """P31 for the uncatalogued SKUs, P41 for those Mirakl does not hold; offers for the rest."""
        if not self.uncatalogued:
            return
        listings = self.uncatalogued
        try:
            held = await self.connector.catalogued(sender, (_ean(lst) for lst in listings.values()))
        except (MiraklError, httpx.TransportError) as exc:
            self.fail(listings, f"cannot tell whether the product is catalogued: {exc}", True)
            return
        new = [sku for sku, listing in listings.items() if _ean(listing) not in held]
        if new:
            rows = [self.connector.product_row(listings[sku]) for sku in new]
            try:
                outcome = await importer.run(PRODUCTS, _columns(rows), rows)
            except (MiraklError, httpx.TransportError) as exc:
                self.fail(new, f"P41: {exc}", getattr(exc, "retryable", True))
            else:
                for row in outcome.added:  # P45: the products catalogued, with Mirakl's SKU
                    sku, product_sku = row.get("sku", ""), row.get("product-sku", "")
                    if sku in listings and product_sku:
                        held[_ean(listings[sku])] = product_sku
                for sku, reason in outcome.errors.items():
                    self.fail([sku], f"product refused (P44): {reason}", False)
                waiting = [
                    sku for sku in new if _ean(listings[sku]) not in held and sku not in outcome.errors
                ]
                where = f"product import {outcome.import_id} {outcome.status or 'sent'}"
                self.fail(waiting, f"{WAITING} ({where}); its offer is sent once it is", True)
        for sku, listing in listings.items():
            if _ean(listing) in held and sku not in self.errors:
                self.remote[sku] = held[_ean(listing)]
                self.offers.append(self.connector.offer_row(listing))

    async def send(
        self, importer: Importer, kind: ImportKind, columns: Sequence[str], rows: list[dict[str, Any]]
    ) -> None:
        if not rows:
            return
        skus = [str(row[kind.sku_column]) for row in rows]
        try:
            outcome = await importer.run(kind, columns, rows)
        except (MiraklError, httpx.TransportError) as exc:
            self.fail(skus, f"{kind.upload}: {exc}", getattr(exc, "retryable", True))
            return
        if not outcome.final:
            why = f"{kind.upload} import {outcome.import_id} still {outcome.status or 'waiting'}; sent again"
            self.fail(skus, why, True)
        elif outcome.failed_whole:
            self.fail(skus, f"{kind.upload} import {outcome.import_id} ended {outcome.status}", True)
        for sku, reason in outcome.errors.items():
            # An offer refused for its product (deleted or uncatalogued since) may pass once it is back.
            later = "not catalogued" in reason or "does not exist" in reason
            self.fail([sku], f"{kind.upload} line refused ({kind.report}): {reason}", later)

    def outcomes(self) -> dict[str, CallResult]:
        results = {}
        for sku in self.changes:
            errors = self.errors.get(sku)
            if errors:
                retryable = all(again for _, again in errors)
                results[sku] = CallResult(False, retryable=retryable, error="; ".join(e for e, _ in errors))
            else:
                results[sku] = CallResult(True, remote_id=self.remote.get(sku))
        return results


def _columns(rows: Sequence[Mapping[str, Any]]) -> list[str]:
    """The product file's header: the fixed columns, the images, then every attribute code used."""
    fixed = list(PRODUCT_COLUMNS)
    images = sorted({k for row in rows for k in row if k.startswith("image-")}, key=lambda k: int(k[6:]))
    extra = sorted({k for row in rows for k in row if k not in fixed and not k.startswith("image-")})
    return fixed + images + extra


def _ean(listing: Listing) -> str:
    return _text(listing.fields.get("gtin"))


def _text(value: Any) -> str:
    if value is None:
        return ""
    if isinstance(value, Decimal):
        return format(value, "f")
    if isinstance(value, list | tuple):
        return ", ".join(_text(v) for v in value)
    return str(value)


def _money(amount: Decimal | None) -> str:
    return "" if amount is None else format(amount, "f")


def _decimal(value: Any) -> Decimal | None:
    try:
        return None if value in (None, "") else Decimal(str(value))
    except InvalidOperation:
        return None


def _json_list(response: httpx.Response, key: str) -> list[dict[str, Any]]:
    body = json_body(response)
    items = body.get(key) if isinstance(body, dict) else None
    return [item for item in items or [] if isinstance(item, dict)]


def _remote(offer: Mapping[str, Any]) -> RemoteListing:
    """An OF21 offer as a read-back listing: price, discount price, quantity; the product SKU."""
    discount = offer.get("discount") if isinstance(offer.get("discount"), Mapping) else {}
    quantity = offer.get("quantity")
    return RemoteListing(
        str(offer["shop_sku"]),
        str(offer.get("product_sku") or "") or None,
        _decimal(offer.get("price")),
        _decimal((discount or {}).get("discount_price")),
        int(quantity) if quantity is not None else None,
    )


__all__ = ["CarrefourConnector", "MiraklConnector"]
