"""Meta's own status of our catalog items, for ``tradepost status --refresh``.

Each ``ProductItem`` carries ``review_status`` (``approved``, ``pending``, ``rejected``,
``outdated``, or empty; enum_types.json) and ``review_rejection_reasons``. The catalog's items are
read as a rebuild reads them (``GET /{catalog_id}/products``, 500 a page), with only the fields a
status needs, and those asked about kept: ``approved`` is ``active``; ``rejected`` is ``rejected``
with Meta's reasons; ``pending``, ``outdated`` (reviewed again after a change) and empty are
``under_review``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from engine.connectors import ListingKey, ListingState, ListingStatus, Reader
from marketplaces.meta._readback import catalog_items

FIELDS = "id,retailer_id,product_feed,review_status,review_rejection_reasons"
STATES: Mapping[str, ListingState] = {
    "approved": "active",
    "rejected": "rejected",
    "pending": "under_review",
    "outdated": "under_review",
    "": "under_review",
}


async def item_statuses(
    reader: Reader, path: str, keys: Sequence[ListingKey]
) -> AsyncIterator[ListingStatus]:
    """Each item of ``keys`` in the catalog at ``path``, judged."""
    wanted = {key.sku_id for key in keys}
    async for item in catalog_items(reader, path, FIELDS):
        if str(item["retailer_id"]) in wanted:
            yield ListingStatus(str(item["retailer_id"]), *judged(item))


def judged(item: Mapping[str, Any]) -> tuple[ListingState, str, str]:
    """An item's (Tradepost status, Meta's review status, the reason)."""
    status = str(item.get("review_status") or "")
    reasons = [str(r) for r in item.get("review_rejection_reasons") or [] if r]
    state = STATES.get(status, "unknown")
    if state == "rejected":
        return state, status, ", ".join(reasons) or "no reason given"
    return state, status, "waiting for Meta's review" if state == "under_review" else ""
