"""Reading a seller's listings back from Amazon, for ``tradepost state rebuild``.

``searchListingsItems`` (``GET /listings/2021-08-01/items/{sellerId}``) with ``includedData=
summaries,attributes,issues,offers,fulfillmentAvailability`` and ``pageSize=20`` (the most it
takes), following ``pagination.nextToken`` as ``pageToken``: one request per 20 SKUs. One search
pages through at most 1,000 SKUs (``ItemSearchResults.numberOfResults``), so a larger seller is
read in windows: sorted by ``createdDate`` ascending, each window starts at the creation time of
the last SKU the previous one reached (SKUs seen twice are read once).

A listing with an ERROR issue is read as withdrawn (``live=False``): Amazon suppressed it, and the
executor treats an accepted-then-refused change the same way, so the next plan sends it again.
Amazon keys listings by SKU, so no remote id is stored, as after an apply.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Mapping
from decimal import Decimal
from typing import Any

from marketplaces._base import ReadBackError, Reader, RemoteListing

PAGE_SIZE = 20
"""``pageSize`` maximum in listingsItems_2021-08-01.json."""
SEARCH_REACH = 1000
"""SKUs one search can page through (``numberOfResults``' note)."""
INCLUDED = "summaries,attributes,issues,offers,fulfillmentAvailability"
MAX_REQUESTS = 1_000_000


async def read_listings(reader: Reader, path: str, query: Mapping[str, str]) -> AsyncIterator[RemoteListing]:
    """Every SKU of the seller in the marketplace of ``query``; see the module docstring."""
    seen: set[str] = set()
    base = {**query, "includedData": INCLUDED, "pageSize": str(PAGE_SIZE), "sortBy": "createdDate",
            "sortOrder": "ASC"}  # fmt: skip
    window: dict[str, str] = {}
    for _ in range(MAX_REQUESTS):
        params, reached, fresh, last_created = {**base, **window}, 0, 0, None
        while True:
            page = await reader.get(path, params)
            if not isinstance(page, Mapping):
                raise ReadBackError(f"GET {path} did not answer an ItemSearchResults object")
            items = [i for i in page.get("items") or [] if isinstance(i, Mapping) and i.get("sku")]
            reached += len(items)
            for item in items:
                created = _created(item)
                last_created = created or last_created
                sku = str(item["sku"])
                if sku in seen:
                    continue
                seen.add(sku)
                fresh += 1
                yield _listing(item)
            token = (page.get("pagination") or {}).get("nextToken")
            if not token:
                break
            params = {**base, **window, "pageToken": str(token)}
        total = int(page.get("numberOfResults") or 0)
        if total <= reached or reached < SEARCH_REACH:
            return
        if not fresh or last_created is None:
            raise ReadBackError(
                f"more than {SEARCH_REACH} Amazon listings share one creation time; "
                "searchListingsItems cannot page through them"
            )
        window = {"createdAfter": last_created}
    raise ReadBackError("the listings search did not end")


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
