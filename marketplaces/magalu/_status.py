"""Magalu's own status of our SKUs, for ``tradepost status --refresh``: the review the apply waits for.

The portfolio list (``GET /seller/v1/portfolios/skus``, 100 SKUs a request) shows each SKU's
``status``, the same field the apply polls a SKU's review with (``_portfolio``): ``PUBLISHED`` is
``active``; ``REJECTED`` (or ``REFUSED``) is ``rejected``, with the review's ``reason``; in review
(``IN_REVIEW``, or no status yet) is ``under_review``. Other names are unverified (only
``PUBLISHED`` appears in the documentation read): ``PAUSED`` is read as ``paused``, ``INACTIVE`` and
``DISABLED`` as ``inactive``, anything else as ``unknown`` with Magalu's word as its code.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from engine.connectors import ListingKey, ListingState, ListingStatus, Reader
from marketplaces.magalu._portfolio import PUBLISHED, REFUSED, portfolio, refusal_reason

OTHERS: Mapping[str, ListingState] = {
    "IN_REVIEW": "under_review",
    "": "under_review",
    "PAUSED": "paused",
    "INACTIVE": "inactive",
    "DISABLED": "inactive",
}


async def sku_statuses(reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
    """The portfolio page by page, each SKU of ``keys`` judged."""
    wanted = {key.sku_id for key in keys}
    async for found in portfolio(reader):
        if str(found["sku"]) in wanted:
            yield ListingStatus(str(found["sku"]), *judged(found))


def judged(found: Mapping[str, Any]) -> tuple[ListingState, str, str]:
    """A SKU's (Tradepost status, Magalu's status, the reason)."""
    status = str(found.get("status") or "").upper()
    if status in PUBLISHED:
        return "active", status, ""
    if status in REFUSED:
        return "rejected", status, refusal_reason(found)
    state = OTHERS.get(status, "unknown")
    return state, status, "waiting for Magalu's review" if state == "under_review" else ""
