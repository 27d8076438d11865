"""Amazon's own status of our listings, for ``tradepost status --refresh``.

``searchListingsItems`` (``GET /listings/2021-08-01/items/{sellerId}``) with ``identifiers`` (20
SKUs at most, ``identifiersType=SKU``) and ``includedData=summaries,issues``: one request per 20
SKUs, where ``getListingsItem`` would cost one per SKU at the same 5 requests a second. Each item
is judged by its issues and its summary's ``status`` (``BUYABLE``, ``DISCOVERABLE``):

* an ERROR issue that Amazon enforces (no ``EXEMPT`` exemption): ``rejected``, with the issue's
  code and message (the first such issue; Amazon suppresses the listing for it);
* ``BUYABLE``: ``active``;
* ``DISCOVERABLE`` only: ``inactive`` (shown, not for sale: no offer, or no stock);
* neither: ``under_review`` (Amazon has not yet made it discoverable).

A SKU Amazon does not find is left out, so it is recorded unknown.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping, Sequence
from typing import Any

from engine.connectors import ListingKey, ListingState, ListingStatus, ReadBackError, Reader

IDENTIFIERS_MAX = 20
"""``identifiers`` ``maxItems`` in listingsItems_2021-08-01.json."""
EXEMPT = frozenset({"EXEMPT", "EXEMPT_UNTIL_EXPIRY_DATE"})


async def listing_statuses(
    reader: Reader, path: str, query: Mapping[str, str], keys: Sequence[ListingKey]
) -> AsyncIterator[ListingStatus]:
    """Each SKU of ``keys`` that Amazon finds in the marketplace of ``query``, judged."""
    skus = [key.sku_id for key in keys]
    for start in range(0, len(skus), IDENTIFIERS_MAX):
        chunk = skus[start : start + IDENTIFIERS_MAX]
        page = await reader.get(path, {**query, **by_identifiers(chunk, "summaries,issues")})
        if not isinstance(page, Mapping) or not isinstance(page.get("items", []), list):
            raise ReadBackError(f"GET {path} did not answer an ItemSearchResults object")
        for item in page.get("items") or []:
            if isinstance(item, Mapping) and item.get("sku"):
                yield ListingStatus(str(item["sku"]), *judged(item))


def by_identifiers(skus: Sequence[str], included: str) -> dict[str, str]:
    """``searchListingsItems``' query for these SKUs (:data:`IDENTIFIERS_MAX` at most, none with a
    comma: the list is comma-separated), one page of them, with ``included`` (``includedData``)."""
    return {
        "identifiers": ",".join(skus),
        "identifiersType": "SKU",
        "includedData": included,
        "pageSize": str(IDENTIFIERS_MAX),
    }


def judged(item: Mapping[str, Any]) -> tuple[ListingState, str, str]:
    """An item's (Tradepost status, Amazon's code, the reason)."""
    enforced = [i for i in item.get("issues") or [] if isinstance(i, Mapping) and _enforced(i)]
    if enforced:
        return "rejected", str(enforced[0].get("code") or ""), str(enforced[0].get("message") or "")
    summaries = [s for s in item.get("summaries") or [] if isinstance(s, Mapping)]
    shown = {str(s) for summary in summaries for s in summary.get("status") or []}
    if "BUYABLE" in shown:
        return "active", "BUYABLE", ""
    if "DISCOVERABLE" in shown:
        return "inactive", "DISCOVERABLE", "shown on Amazon but not buyable: no offer, or no stock"
    return "under_review", "", "Amazon shows the listing neither buyable nor discoverable yet"


def _enforced(issue: Mapping[str, Any]) -> bool:
    if issue.get("severity") != "ERROR":
        return False
    enforcements = issue.get("enforcements")
    exemption = enforcements.get("exemption") if isinstance(enforcements, Mapping) else None
    return not (isinstance(exemption, Mapping) and exemption.get("status") in EXEMPT)
