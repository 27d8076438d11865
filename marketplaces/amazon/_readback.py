"""Reading a seller's listings back from Amazon, for ``tradepost state rebuild``.

``searchListingsItems`` (``GET /listings/2021-08-01/items/{sellerId}``) with ``includedData=
summaries,attributes,issues,offers,fulfillmentAvailability`` and ``pageSize=20`` (the most it
takes), following ``pagination.nextToken`` as ``pageToken``: one request per 20 SKUs. One search
pages through at most 1,000 SKUs (``ItemSearchResults.numberOfResults``), so a larger seller is
read in windows: sorted by ``createdDate`` ascending, each window starts at the creation time of
the last SKU the previous one reached (SKUs seen twice are read once). Where a thousand SKUs or
more were created in one second (a feed does that), that second is read sorted by SKU from both
ends, so up to 2,000 per second are reached; any beyond are counted in ``Reader.unreached`` and
reported. Amazon keys a listing by SKU, so a catalog SKU left unread costs the next apply one PUT
that replaces the listing, never a second listing; a SKU not in the catalog left unread is not
withdrawn.

A listing with an ERROR issue is read as withdrawn (``live=False``): Amazon suppressed it, and the
executor treats an accepted-then-refused change the same way, so the next plan sends it again.
Amazon keys listings by SKU, so no remote id is stored, as after an apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any

from engine.connectors import ReadBackError, Reader, RemoteListing

PAGE_SIZE = 20
"""``pageSize`` maximum in listingsItems_2021-08-01.json."""
SEARCH_REACH = 1000
"""SKUs one search can page through (``numberOfResults``' note)."""
INCLUDED = "summaries,attributes,issues,offers,fulfillmentAvailability"
MAX_WINDOWS = 1_000_000


async def read_listings(reader: Reader, path: str, query: Mapping[str, str]) -> AsyncIterator[RemoteListing]:
    """Every SKU of the seller in the marketplace of ``query``; see the module docstring."""
    seen: set[str] = set()
    by_creation = {**query, "sortBy": "createdDate", "sortOrder": "ASC"}
    after: str | None = None
    for _ in range(MAX_WINDOWS):
        window = {**by_creation, **({"createdAfter": after} if after else {})}
        reached, total, first, last = 0, 0, None, None
        async for item, count in _pages(reader, path, window):
            reached, total = reached + 1, count
            created = _created(item)
            first, last = first or created, created or last
            if str(item["sku"]) not in seen:
                seen.add(str(item["sku"]))
                yield _listing(item)
        if total <= reached or reached < SEARCH_REACH:
            return
        if last is None:
            raise ReadBackError("Amazon listings show no creation time; cannot page past the first 1,000")
        if first != last:
            after = last  # inclusive: the SKUs of that second not reached yet come next
            continue
        # A thousand or more SKUs created in one second (a feed): read that second by SKU from
        # both ends; what lies beyond 1,000 from each end cannot be reached by any search.
        end = _next_second(last)
        clump: set[str] = set()
        clump_total = 0
        for order in ("ASC", "DESC"):
            by_sku = {
                **query,
                "sortBy": "sku",
                "sortOrder": order,
                "createdAfter": last,
                "createdBefore": end,
            }
            async for item, count in _pages(reader, path, by_sku):
                clump_total = count
                clump.add(str(item["sku"]))
                if str(item["sku"]) not in seen:
                    seen.add(str(item["sku"]))
                    yield _listing(item)
            if clump_total <= len(clump):
                break
        reader.unreached += max(0, clump_total - len(clump))
        after = end
    raise ReadBackError("the listings search did not end")


async def _pages(
    reader: Reader, path: str, params: Mapping[str, str]
) -> AsyncIterator[tuple[Mapping[str, Any], int]]:
    """Each item of one search, page after page, with the search's ``numberOfResults``."""
    query = {**params, "includedData": INCLUDED, "pageSize": str(PAGE_SIZE)}
    for _ in range(SEARCH_REACH // PAGE_SIZE + 1):
        page = await reader.get(path, query)
        if not isinstance(page, Mapping):
            raise ReadBackError(f"GET {path} did not answer an ItemSearchResults object")
        total = int(page.get("numberOfResults") or 0)
        for item in page.get("items") or []:
            if isinstance(item, Mapping) and item.get("sku"):
                yield item, total
        token = (page.get("pagination") or {}).get("nextToken")
        if not token:
            return
        query = {**params, "includedData": INCLUDED, "pageSize": str(PAGE_SIZE), "pageToken": str(token)}


def _next_second(stamp: str) -> str:
    moment = datetime.fromisoformat(stamp.replace("Z", "+00:00")).replace(microsecond=0)
    return (moment + timedelta(seconds=1)).astimezone(UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _listing(item: Mapping[str, Any]) -> RemoteListing:
    given = item.get("attributes")
    attributes: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
    summaries = item.get("summaries") or [{}]
    errors = [i for i in item.get("issues") or [] if isinstance(i, Mapping) and i.get("severity") == "ERROR"]
    price, sale = _prices(attributes.get("purchasable_offer"))
    return RemoteListing(
        str(item["sku"]),
        None,
        price,
        sale,
        quantity=_quantity(attributes.get("fulfillment_availability")),
        content={"productType": summaries[0].get("productType"), "attributes": attributes},
        live=not errors,
    )


def _created(item: Mapping[str, Any]) -> str | None:
    for summary in item.get("summaries") or []:
        if isinstance(summary, Mapping) and summary.get("createdDate"):
            return str(summary["createdDate"])
    return None


def _prices(offers: Any) -> tuple[Decimal | None, Decimal | None]:
    """Our price and the discounted price of the offer for every buyer (audience ALL)."""
    for offer in offers or []:
        if not isinstance(offer, Mapping) or offer.get("audience", "ALL") != "ALL":
            continue
        return _scheduled(offer.get("our_price")), _scheduled(offer.get("discounted_price"))
    return None, None


def _scheduled(prices: Any) -> Decimal | None:
    for price in prices or []:
        for entry in (price.get("schedule") or []) if isinstance(price, Mapping) else []:
            if isinstance(entry, Mapping) and entry.get("value_with_tax") is not None:
                return Decimal(str(entry["value_with_tax"]))
    return None


def _quantity(availability: Any) -> int | None:
    for entry in availability or []:
        if isinstance(entry, Mapping) and entry.get("fulfillment_channel_code") == "DEFAULT":
            return int(entry.get("quantity") or 0)
    return None
