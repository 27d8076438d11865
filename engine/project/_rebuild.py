"""Rebuilding a marketplace's state rows from what the marketplace holds (`tradepost state rebuild`).

The state store is a cache of the marketplaces. When it is lost (or restored from an old copy),
or when a seller moves onto Tradepost with listings made elsewhere, this reads every listing
back through the connector (:meth:`Connector.read_back`) and writes the marketplace's rows anew,
in one transaction, under the marketplace's lock (other marketplaces' rows are untouched).

What a rebuilt row holds. A marketplace cannot say which content hash Tradepost recorded, so
each SKU's listing is recomputed from the catalog and the rules, and the connector compares what
it would send with what was read (:meth:`Connector.remote_differences`):

* the parts that match are recorded as planned: the listing's content hash, price, sale price
  and quantity, so the next plan sends nothing for them;
* a part that differs is recorded as read (the price and quantity the marketplace shows; for
  content a ``remote:`` marker no listing hash can equal), so the next plan sends exactly that
  update. Where the marketplace's value cannot be told from the planned one (Google shows
  availability, not a count), the row holds -1, which no plan computes;
* a SKU live on the marketplace that the catalog does not list (gone, or not selected) is
  recorded as read, so the next plan withdraws it like any applied SKU; one the rules find
  invalid is kept, and the plan reports it invalid;
* a listing the marketplace shows as withdrawn (a paused Mercado Libre item, an Amazon listing
  with an ERROR issue) gets no row; its remote id is kept where the connector has one, so a SKU
  selected again brings its listing back instead of creating a second one.

Memory holds the listings read back (a few hundred bytes each), not the catalog: only SKUs found
on the marketplace are evaluated.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections import Counter, defaultdict
from collections.abc import Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._readback import RemoteListing, comparable
from engine.model._catalog import MalformedRecord
from engine.model._listing import Listing
from engine.project._apply import locked, marketplace_reader
from engine.project._assembly import MarketplaceRun, catalog_records
from engine.project._config import Project
from engine.state._store import AppliedListing, StateStore
from engine.sync._evaluate import SkuEvaluator

UNKNOWN = -1
"""Recorded for a price or quantity that differs from the plan by an amount the marketplace does
not show: no plan computes it, so the next one sends the update."""
REMOTE_MARK = "remote:"
"""Prefix of a rebuilt content hash whose content differs from the plan's (never a listing's hash)."""


@dataclass
class RebuildSummary:
    """What a rebuild found, for the CLI's summary line and --json."""

    marketplace: str
    listings: int = 0
    """Rows written: live listings of SKUs read back."""
    not_in_catalog: int = 0
    """Live listings the catalog does not list (gone or not selected): the next plan withdraws them."""
    invalid: int = 0
    """Live listings whose SKU the rules now find invalid."""
    withdrawn: int = 0
    """Listings the marketplace shows withdrawn: no row, remote id kept."""
    differing: Counter[str] = field(default_factory=Counter)
    """Rows recorded as read because that part differs from the plan: content, price, stock."""
    duplicates: list[str] = field(default_factory=list)
    """SKUs listed more than once on the marketplace (one listing kept; the others are not Tradepost's)."""
    unnamed: int = 0
    """Listings that name no SKU (Mercado Libre items without SELLER_SKU): left alone."""
    unreached: int = 0
    """Listings the marketplace counts but its API lets no search reach: not recorded."""
    catalog_complete: bool = True
    requests: int = 0
    seconds: float = 0.0

    def line(self) -> str:
        where = f"{self.not_in_catalog} not in the catalog"
        return f"rebuilt {self.listings} listings for {self.marketplace} ({where})"

    def details(self) -> list[str]:
        lines = []
        if self.differing:
            parts = ", ".join(
                f"{self.differing[k]} {k}" for k in ("content", "price", "stock") if self.differing[k]
            )
            lines.append(f"differ from the rules, to be updated by the next apply: {parts}")
        if self.invalid:
            lines.append(f"{self.invalid} invalid under the rules now (kept; `tradepost plan` says why)")
        if self.withdrawn:
            lines.append(f"{self.withdrawn} withdrawn on the marketplace (no row; brought back if selected)")
        if self.duplicates:
            shown = ", ".join(self.duplicates[:10]) + (" …" if len(self.duplicates) > 10 else "")
            lines.append(f"{len(self.duplicates)} SKU(s) listed more than once, one kept: {shown}")
        if self.unnamed:
            lines.append(f"{self.unnamed} listing(s) name no SKU and were left alone")
        if self.unreached:
            lines.append(
                f"{self.unreached} listing(s) out of the search's reach were not read: the next apply "
                "re-sends those in the catalog (replaced by SKU, not duplicated), cannot withdraw the others"
            )
        if not self.catalog_complete:
            lines.append("the catalog could not be read to its end: SKUs after that point count as not in it")
        lines.append(f"{self.requests} requests in {self.seconds:.1f}s")
        return lines

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "listings": self.listings,
            "not_in_catalog": self.not_in_catalog,
            "invalid": self.invalid,
            "withdrawn": self.withdrawn,
            "differing": {k: self.differing[k] for k in ("content", "price", "stock")},
            "duplicates": self.duplicates,
            "unnamed": self.unnamed,
            "unreached": self.unreached,
            "catalog_complete": self.catalog_complete,
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
        }


async def rebuild_state(
    run: MarketplaceRun,
    project: Project,
    state: StateStore,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    reader_options: Mapping[str, Any] | None = None,
) -> RebuildSummary:
    """Read the marketplace back and replace its rows; see the module docstring."""
    connector = run.connector
    who = connector.title or connector.name
    if not connector.reads_back:
        raise TradepostError(
            f"the {who} connector cannot read its listings back; state rebuild is not available"
        )
    marketplace = run.compiled.marketplace
    summary = RebuildSummary(marketplace)
    start = time.monotonic()
    with locked(state, marketplace, "tradepost state rebuild"):
        remote = await _read(run, project, summary, transport, reader_options or {})
        rows, withdrawn = _rows(run, project, remote, summary)
        state.replace_marketplace(marketplace, rows, withdrawn)
    summary.seconds = time.monotonic() - start
    return summary


async def _read(
    run: MarketplaceRun,
    project: Project,
    summary: RebuildSummary,
    transport: httpx.AsyncBaseTransport | None,
    options: Mapping[str, Any],
) -> dict[str, RemoteListing]:
    found: dict[str, RemoteListing] = {}
    duplicates: set[str] = set()
    async with marketplace_reader(project, run, transport, options) as reader:
        try:
            async for listing in run.connector.read_back(reader):
                held = found.get(listing.sku_id)
                if held is not None:
                    duplicates.add(listing.sku_id)
                    if held.live or not listing.live:
                        continue
                found[listing.sku_id] = listing
        finally:
            summary.requests, summary.unnamed = reader.requests, reader.unnamed
            summary.unreached = reader.unreached
    summary.duplicates = sorted(duplicates)
    return found


def _rows(
    run: MarketplaceRun, project: Project, remote: Mapping[str, RemoteListing], summary: RebuildSummary
) -> tuple[list[AppliedListing], dict[str, str]]:
    """The rows to write, from the listings read and the catalog as the rules see it now."""
    evaluator = SkuEvaluator(run.compiled, run.connector)
    listed: dict[str, Listing] = {}
    products: dict[str, str] = {}
    invalid: set[str] = set()
    records = catalog_records(project, run.trade_policy)
    for record in records:
        if isinstance(record, MalformedRecord):
            if record.sku_id is not None and record.sku_id in remote:
                invalid.add(record.sku_id)
            continue
        sku_id = record.sku.id
        if sku_id not in remote or sku_id in products:
            continue
        products[sku_id] = record.product.id
        outcome = evaluator.evaluate(record)
        if outcome.status == "listed" and outcome.listing is not None:
            listed[sku_id] = outcome.listing
        elif outcome.status == "invalid":
            invalid.add(sku_id)
    summary.catalog_complete = bool(getattr(records, "complete", True))
    families: dict[str, list[Listing]] = defaultdict(list)
    for member in listed.values():
        if member.group is not None:
            families[member.group].append(member)
    rows: list[AppliedListing] = []
    withdrawn: dict[str, str] = {}
    for sku_id, read in sorted(remote.items()):
        listing = listed.get(sku_id)
        if not read.live or (read.idle and listing is None):
            summary.withdrawn += 1
            if read.remote_id is not None:
                withdrawn[sku_id] = read.remote_id
            continue
        if listing is None:
            if sku_id in invalid:
                summary.invalid += 1
            else:
                summary.not_in_catalog += 1
            rows.append(_as_read(read, products.get(sku_id)))
        else:
            family = families[listing.group] if listing.group is not None else [listing]
            kinds = run.connector.remote_differences(listing, read, family)
            summary.differing.update(kinds)
            rows.append(_as_planned(listing, read, kinds))
    summary.listings = len(rows)
    return rows, withdrawn


def _as_read(read: RemoteListing, product_id: str | None) -> AppliedListing:
    """A row for a SKU the rules do not list: what the marketplace shows."""
    return AppliedListing(
        read.sku_id,
        product_id or read.group or read.sku_id,
        _remote_hash(read),
        read.price if read.price is not None else Decimal(UNKNOWN),
        read.sale_price,
        read.quantity if read.quantity is not None else UNKNOWN,
        read.remote_id,
    )


def _as_planned(listing: Listing, read: RemoteListing, kinds: tuple[str, ...]) -> AppliedListing:
    """The planned values where the marketplace matches them, what it shows where it does not."""
    content_hash = _remote_hash(read) if "content" in kinds else listing.content_hash()
    price, sale = listing.price, listing.sale_price
    if "price" in kinds:
        price, sale = (read.price, read.sale_price) if read.price is not None else (Decimal(UNKNOWN), None)
        if (price, sale) == (listing.price, listing.sale_price):
            price, sale = Decimal(UNKNOWN), None
    quantity = listing.quantity
    if "stock" in kinds:
        quantity = (
            read.quantity if read.quantity is not None and read.quantity != listing.quantity else UNKNOWN
        )
    return AppliedListing(
        listing.sku_id, listing.product_id, content_hash, price, sale, quantity, read.remote_id
    )


def _remote_hash(read: RemoteListing) -> str:
    text = json.dumps(comparable(read.content), sort_keys=True, ensure_ascii=False)
    return REMOTE_MARK + hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()
