"""Reading the marketplace's own status of our listings into the state store (`tradepost status --refresh`).

For each SKU the state store holds live on a marketplace, the connector asks the marketplace what
it made of the listing (:meth:`~engine.connectors.Connector.listing_statuses`: batched, through the
:class:`~engine.connectors.Reader`, so paced at the marketplace's rate and retried like a rebuild's
reads) and the answers replace that marketplace's rows of ``listing_status`` in one transaction.

The guarantee: a refresh records the whole marketplace or nothing of it. A read that fails (the
marketplace answers 500 past the retries, or something that is not its API) is a
:class:`StatusRefresh` with its ``error`` and the rows of the refresh before are kept, so one
marketplace's outage never blanks another's figures, nor its own. A SKU the marketplace does not
report is recorded ``unknown``. Nothing here takes the marketplace's lock: a refresh writes only
its own table, and may run beside an apply.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._liststatus import ListingKey, ListingStatus
from engine.project._apply import marketplace_reader
from engine.project._assembly import MarketplaceRun
from engine.project._config import Project
from engine.state._liststatus import ListingStatuses
from engine.state._store import StateStore

KEYS_READ = 500
"""SKUs whose remote ids are read from the state store at once."""
NOT_REPORTED = "not_reported"
"""The code of a listing the marketplace did not report (recorded ``unknown``)."""


@dataclass
class StatusRefresh:
    """What one marketplace's refresh read, or why it could not."""

    marketplace: str
    reported: bool
    """Whether the connector reads the marketplace's status at all."""
    listings: int = 0
    counts: Counter[str] = field(default_factory=Counter)
    requests: int = 0
    seconds: float = 0.0
    error: str | None = None

    def line(self) -> str:
        if not self.reported:
            return f"{self.marketplace}: the marketplace's API reports no listing status; nothing to refresh"
        if self.error is not None:
            return f"{self.marketplace}: status not refreshed: {self.error}"
        counts = ", ".join(f"{status} {n}" for status, n in sorted(self.counts.items())) or "no listings"
        return (
            f"{self.marketplace}: refreshed {self.listings} listing status(es) in {self.requests} "
            f"request(s), {self.seconds:.1f} s: {counts}"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "reported": self.reported,
            "listings": self.listings,
            "counts": dict(sorted(self.counts.items())),
            "requests": self.requests,
            "seconds": round(self.seconds, 3),
            "error": self.error,
        }


async def refresh_listing_statuses(
    run: MarketplaceRun,
    project: Project,
    state: StateStore,
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    reader_options: Mapping[str, Any] | None = None,
) -> StatusRefresh:
    """Read and record the marketplace's status of every listing the state holds; never raises for
    the marketplace's faults (see the module's guarantee)."""
    connector = run.connector
    marketplace = run.compiled.marketplace
    refresh = StatusRefresh(run.name, connector.reports_listing_status)
    if not refresh.reported:
        return refresh
    start = time.monotonic()
    keys = list(listing_keys(state, marketplace))
    try:
        found = await _read(run, project, keys, refresh, transport, reader_options or {})
    except TradepostError as exc:
        refresh.error = str(exc)
        return refresh
    who = connector.title or connector.name
    statuses = [
        found.get(key.sku_id)
        or ListingStatus(key.sku_id, "unknown", NOT_REPORTED, f"{who} did not report this listing")
        for key in keys
    ]
    refresh.listings = ListingStatuses(state).replace(marketplace, statuses)
    refresh.counts.update(status.status for status in statuses)
    refresh.seconds = time.monotonic() - start
    return refresh


def listing_keys(state: StateStore, marketplace: str) -> Iterator[ListingKey]:
    """Each SKU live on the marketplace by the state store, with the marketplace's id for it (the
    ids are read whole before the rows: a stream stays open on no connection while they are)."""
    sku_ids = list(state.all_sku_ids(marketplace))
    for start in range(0, len(sku_ids), KEYS_READ):
        chunk = sku_ids[start : start + KEYS_READ]
        rows = state.get_many(marketplace, chunk)
        for sku_id in chunk:
            row = rows.get(sku_id)
            yield ListingKey(sku_id, None if row is None else row.remote_id)


async def _read(
    run: MarketplaceRun,
    project: Project,
    keys: list[ListingKey],
    refresh: StatusRefresh,
    transport: httpx.AsyncBaseTransport | None,
    options: Mapping[str, Any],
) -> dict[str, ListingStatus]:
    wanted = {key.sku_id for key in keys}
    found: dict[str, ListingStatus] = {}
    async with marketplace_reader(project, run, transport, options) as reader:
        try:
            if keys:
                async for status in run.connector.listing_statuses(reader, keys):
                    if status.sku_id in wanted:
                        found[status.sku_id] = status
        except (httpx.HTTPError, ValueError, KeyError, TypeError) as exc:  # an answer not the API's
            raise TradepostError(f"the answer could not be read: {type(exc).__name__}: {exc}") from None
        finally:
            refresh.requests = reader.requests
    return found
