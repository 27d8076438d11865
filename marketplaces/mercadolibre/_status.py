"""Mercado Libre's own status of our items, for ``tradepost status --refresh``.

Items are read 20 at a time with the multiget ``GET /items?ids=...&attributes=id,status,sub_status``
(20 is the most it takes; ``attributes`` keeps each answer to the three fields), so a refresh costs
one request per 20 items; the SKUs of a family share their item's status. An item's ``status``
(``active``, ``paused``, ``under_review``, ``inactive``, ``closed``, ``not_yet_active``,
``payment_required``; ITEMS.md) and ``sub_status`` (a list: ``out_of_stock``, ``forbidden``,
``waiting_for_patch``, ``held``...) map to Tradepost's vocabulary as below; the code recorded is
``status/sub_status``. Mercado Libre gives codes, not sentences, so the reason is what the code
means, from :data:`REASONS` (the code itself where it is not known).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from engine.connectors import ListingKey, ListingState, ListingStatus, Reader
from marketplaces.mercadolibre._readback import MULTIGET_MAX, multiget_items

STATES: Mapping[str, ListingState] = {
    "active": "active",
    "paused": "paused",
    "under_review": "under_review",
    "inactive": "inactive",
    "closed": "inactive",
    "not_yet_active": "under_review",
    "payment_required": "paused",
}
REJECTING = frozenset({"forbidden", "suspended", "waiting_for_patch", "deleted"})
"""Sub-statuses that mean the listing was refused or taken down: a person must act."""
REASONS: Mapping[str, str] = {
    "out_of_stock": "paused by Mercado Libre: no stock left",
    "forbidden": "taken down by Mercado Libre's moderation: the listing breaks a policy",
    "suspended": "suspended by Mercado Libre",
    "waiting_for_patch": "Mercado Libre asks for a correction of the listing before it is shown again",
    "held": "held by Mercado Libre for review",
    "warning": "shown with a warning by Mercado Libre's moderation",
    "freezed": "frozen by Mercado Libre",
    "deleted": "deleted by Mercado Libre",
    "expired": "expired",
    "picture_download_pending": "waiting for Mercado Libre to download the pictures",
}
FIELDS = "id,status,sub_status"


async def item_statuses(reader: Reader, keys: Sequence[ListingKey]) -> AsyncIterator[ListingStatus]:
    """Each key's item status; a key without a remote id, or whose item Mercado Libre no longer
    has, is left out (recorded unknown)."""
    by_item: dict[str, list[str]] = {}
    for key in keys:
        if key.remote_id:
            by_item.setdefault(key.remote_id.split("/", 1)[0], []).append(key.sku_id)
    ids = list(by_item)
    for start in range(0, len(ids), MULTIGET_MAX):
        async for item in multiget_items(reader, ids[start : start + MULTIGET_MAX], {"attributes": FIELDS}):
            state, code, reason = judged(item)
            for sku_id in by_item.get(str(item["id"]), []):
                yield ListingStatus(sku_id, state, code, reason)


def judged(item: Mapping[str, Any]) -> tuple[ListingState, str, str]:
    """An item's (Tradepost status, Mercado Libre's code, the reason in words)."""
    status = str(item.get("status") or "")
    subs = [str(s) for s in item.get("sub_status") or [] if s]
    state: ListingState = STATES.get(status, "unknown")
    if state != "active" and any(s in REJECTING for s in subs):
        state = "rejected"
    code = "/".join([status, *subs])
    reason = "; ".join(REASONS.get(s, s) for s in subs) or _plain(status)
    return state, code, reason


def _plain(status: str) -> str:
    if status == "active":
        return ""
    return f"Mercado Libre shows the item {status.replace('_', ' ')}" if status else "no status given"
