"""The operator's own status of our offers (Mirakl: Carrefour), for ``tradepost status --refresh``.

OF21 (``GET /api/offers``, 100 offers a page), which the rebuild reads too, gives each offer
``active`` and, when it is not, its ``inactivity_reasons`` (an enum, mandatory for an inactive
offer). An active offer is ``active``. An inactive one is judged by its reasons, the gravest
first: the product refused by the operator's catalogue (``PRODUCT_STATUS_REJECTED``, ``_INVALID``,
``_SYNCHRO_ERROR``, a category or brand the shop may not sell) is ``rejected``; the product not
yet through it (``PRODUCT_STATUS_NEW``, ``_PENDING``) is ``under_review``; an offer without stock
is ``inactive``; any other reason (the shop closed, no shipping rate, no active price) is
``paused``. The code recorded is the reasons, comma-separated; the reason, what they mean.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from engine.connectors import ListingKey, ListingState, ListingStatus

REJECTING = frozenset(
    {
        "PRODUCT_STATUS_REJECTED",
        "PRODUCT_STATUS_INVALID",
        "PRODUCT_STATUS_SYNCHRO_ERROR",
        "PRODUCT_STATUS_UNAUTHORIZED_TO_SELL",
        "CATEGORY_UNAUTHORIZED_TO_SELL",
        "BRAND_UNAUTHORIZED_TO_SELL",
    }
)
REVIEWING = frozenset({"PRODUCT_STATUS_NEW", "PRODUCT_STATUS_PENDING"})
NO_STOCK = frozenset({"ZERO_QUANTITY"})
MEANINGS: Mapping[str, str] = {
    "PRODUCT_STATUS_REJECTED": "the operator's catalogue rejected the product",
    "PRODUCT_STATUS_INVALID": "the product is invalid in the operator's catalogue",
    "PRODUCT_STATUS_SYNCHRO_ERROR": "the product failed to synchronise with the operator's catalogue",
    "PRODUCT_STATUS_UNAUTHORIZED_TO_SELL": "the shop may not sell this product",
    "CATEGORY_UNAUTHORIZED_TO_SELL": "the shop may not sell in this category",
    "BRAND_UNAUTHORIZED_TO_SELL": "the shop may not sell this brand",
    "PRODUCT_STATUS_NEW": "the product waits for the operator's catalogue",
    "PRODUCT_STATUS_PENDING": "the product is in the operator's review",
    "ZERO_QUANTITY": "no stock",
    "NO_ACTIVE_PRICE": "no price active now",
    "SHOP_NOT_OPEN": "the shop is not open",
    "NO_MIN_SHIPPING_RATE": "no shipping rate set",
}


async def offer_statuses(
    offers: AsyncIterator[Mapping[str, Any]], keys: Sequence[ListingKey]
) -> AsyncIterator[ListingStatus]:
    """Each offer of ``keys`` among ``offers`` (OF21's, page by page), judged."""
    wanted = {key.sku_id for key in keys}
    async for offer in offers:
        if str(offer["shop_sku"]) in wanted:
            yield ListingStatus(str(offer["shop_sku"]), *judged(offer))


def judged(offer: Mapping[str, Any]) -> tuple[ListingState, str, str]:
    """An offer's (Tradepost status, the operator's inactivity reasons, what they mean)."""
    reasons = [str(r) for r in offer.get("inactivity_reasons") or [] if r]
    if offer.get("active") is True and not reasons:
        return "active", "", ""
    given = set(reasons)
    state: ListingState = (
        "rejected"
        if given & REJECTING
        else "under_review"
        if given & REVIEWING
        else "inactive"
        if given and given <= NO_STOCK
        else "paused"
    )
    meaning = "; ".join(MEANINGS.get(r, r) for r in reasons) or "inactive, no reason given"
    return state, ",".join(reasons), meaning
