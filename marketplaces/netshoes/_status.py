"""Netshoes' own status of our SKUs, for ``tradepost status --refresh``: the review the apply waits for.

Netshoes has no list of statuses: each SKU's is ``GET /skus/{sku}/bus/{buId}/status`` (API.md §4,
the read the apply polls approval with), one request per SKU in the first business unit, paced at
the seller's call plan (50 a minute on the initial plan: a thousand SKUs take 20 minutes).
``skuSynchronized`` true is approved: ``active`` when the SKU is for sale there, else ``paused``
(deactivated: Tradepost deactivates only what it withdraws, which has no state row). Not yet
synchronized is ``under_review`` with Netshoes' ``statusMatch`` (``PENDENTE_TIPO_PRODUTO``), or
``rejected`` where that says the review refused it (``REPROVADO``, ``REJEITADO``: unverified names).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any
from urllib.parse import quote

from engine.connectors import ListingKey, ListingState, ListingStatus, Reader
from marketplaces.netshoes._http import API

REFUSALS = ("REPROVADO", "REJEITADO")


async def sku_statuses(reader: Reader, keys: Sequence[ListingKey], bu: str) -> AsyncIterator[ListingStatus]:
    """Each SKU's status in business unit ``bu``, one request a SKU."""
    for key in keys:
        body = await reader.get(f"{API}/skus/{quote(key.sku_id, safe='')}/bus/{bu}/status")
        yield ListingStatus(key.sku_id, *judged(body if isinstance(body, Mapping) else {}, bu))


def judged(body: Mapping[str, Any], bu: str) -> tuple[ListingState, str, str]:
    """A SKU's (Tradepost status, Netshoes' ``statusMatch``, the reason)."""
    match = str(body.get("statusMatch") or "")
    if body.get("skuSynchronized") is True:
        if body.get("active") is True:
            return "active", match, ""
        return "paused", match or "inactive", f"approved, but not for sale in business unit {bu}"
    if match.upper().startswith(REFUSALS):
        return "rejected", match, f"Netshoes' review refused the SKU ({match})"
    return "under_review", match, f"waiting for Netshoes' review ({match or 'no status given'})"
