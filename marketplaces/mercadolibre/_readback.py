"""Reading a seller's items back from Mercado Libre, for ``tradepost state rebuild``.

``GET /users/{seller_id}/items/search?search_type=scan&limit=100`` lists the seller's item ids
(scan mode, because plain ``offset`` paging stops at 1,000 results; each answer carries the
``scroll_id`` of the next page, and an empty page ends it). Ids are then read 20 at a time with
the multiget ``GET /items?ids=...&include_attributes=all`` (20 is the most one multiget takes;
``include_attributes=all`` adds the variations' own attributes, where SELLER_SKU lives). So a
rebuild costs about one request per 20 items, plus one per 100 for the ids.

Each item gives one :class:`RemoteListing` per SKU, with the remote id the connector stores
(``MLB123``, or ``MLB123/987`` for a variation): the SKU is the ``SELLER_SKU`` attribute of the
item or variation; an item or variation without one is not Tradepost's to manage and is left out
(counted in ``Reader.unnamed``). Closed items can never be changed again and are left out too. A
paused item (how the connector withdraws a SKU listed alone) is read as withdrawn
(``live=False``): selected again, the SKU brings its item back instead of creating one. A
variation with no stock (how it withdraws a variation) is ``idle``: withdrawn if the rules do not
list it, a listing at quantity 0 if they do. Variations of an item paused by hand are read as
live, since the connector never pauses a family: bringing them back one by one could not work.

What is compared (see :meth:`MercadoLibreConnector.remote_differences`): title, category and
the attributes Tradepost sends, not pictures (Mercado Libre rehosts them, so the URL read back is
never the one sent) nor the description (one more request per item).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Iterator, Mapping, Sequence
from decimal import Decimal
from typing import Any

from engine.connectors import ReadBackError, Reader, RemoteListing
from marketplaces.mercadolibre._http import ME, seller_id_in

SCAN_LIMIT = 100
"""Ids per page of the scan search."""
MULTIGET_MAX = 20
"""Items per ``GET /items?ids=``."""
MAX_PAGES = 100_000
"""A bound on the scan, against a server that never ends it (10 million items)."""


class ItemReader:
    """Pages through the seller's items; items and variations without SELLER_SKU count in
    ``reader.unnamed``."""

    def __init__(self, reader: Reader) -> None:
        self.reader = reader

    async def listings(self) -> AsyncIterator[RemoteListing]:
        seller_id = seller_id_in(await self.reader.get(ME))
        if seller_id is None:
            raise ReadBackError(f"GET {ME} did not say who the seller is")
        path = f"/users/{seller_id}/items/search"
        params = {"search_type": "scan", "limit": str(SCAN_LIMIT)}
        seen: set[str] = set()
        for _ in range(MAX_PAGES):
            page = await self.reader.get(path, params)
            ids = [str(i) for i in (page.get("results") or [])] if isinstance(page, Mapping) else []
            if not ids:
                return
            fresh = [i for i in dict.fromkeys(ids) if i not in seen]
            seen.update(fresh)
            for start in range(0, len(fresh), MULTIGET_MAX):
                chunk = fresh[start : start + MULTIGET_MAX]
                async for item in multiget_items(self.reader, chunk, {"include_attributes": "all"}):
                    for listing in self._from_item(item):
                        yield listing
            scroll = page.get("scroll_id")
            if not scroll:
                return
            params = {**params, "scroll_id": str(scroll)}
        raise ReadBackError(f"the item search did not end after {MAX_PAGES} pages")

    def _from_item(self, item: Mapping[str, Any]) -> Iterator[RemoteListing]:
        status = str(item.get("status") or "active")
        if status == "closed":
            return
        item_id = str(item["id"])
        shared = _attributes(item.get("attributes"))
        content = {"title": item.get("title"), "category_id": item.get("category_id")}
        variations = item.get("variations") or []
        if not variations:
            sku = _seller_sku(item)
            if sku is None:
                self.reader.unnamed += 1
                return
            yield RemoteListing(
                sku,
                item_id,
                _price(item.get("price")),
                quantity=int(item.get("available_quantity") or 0),
                content={**content, "attributes": shared},
                live=status != "paused",
            )
            return
        for variation in variations:  # a paused family stays live: see the module docstring
            sku = _seller_sku(variation)
            if sku is None:
                self.reader.unnamed += 1
                continue
            quantity = int(variation.get("available_quantity") or 0)
            attributes = {
                **shared,
                **_attributes(variation.get("attributes")),
                **_attributes(variation.get("attribute_combinations")),
            }
            yield RemoteListing(
                sku,
                f"{item_id}/{variation['id']}",
                _price(variation.get("price", item.get("price"))),
                quantity=quantity,
                content={**content, "attributes": attributes},
                group=item_id,
                idle=quantity == 0,
            )


async def multiget_items(
    reader: Reader, ids: Sequence[str], params: Mapping[str, str]
) -> AsyncIterator[Mapping[str, Any]]:
    """The items of one multiget ``GET /items?ids=`` (at most :data:`MULTIGET_MAX` ids) that
    Mercado Libre still has."""
    for item in _items(await reader.get("/items", {"ids": ",".join(ids), **params})):
        yield item


def _items(answers: Any) -> Iterator[Mapping[str, Any]]:
    """The items of a multiget answer ``[{code, body}]``; one gone since the search is skipped."""
    if not isinstance(answers, list):
        raise ReadBackError("GET /items?ids= did not answer a list")
    for answer in answers:
        code = answer.get("code") if isinstance(answer, Mapping) else None
        body = answer.get("body") if isinstance(answer, Mapping) else None
        if code == 404:
            continue
        if code != 200 or not isinstance(body, Mapping) or not body.get("id"):
            raise ReadBackError(f"GET /items?ids= answered {code} for an item: {str(body)[:200]}")
        yield body


def _attributes(attributes: Any) -> dict[str, dict[str, Any]]:
    """``[{id, value_name, value_id...}]`` -> id -> the rest, as the connector's comparison reads it."""
    found: dict[str, dict[str, Any]] = {}
    for attribute in attributes or []:
        if isinstance(attribute, Mapping) and attribute.get("id"):
            found[str(attribute["id"])] = {k: v for k, v in attribute.items() if k != "id" and v is not None}
    return found


def _seller_sku(holder: Mapping[str, Any]) -> str | None:
    for attribute in holder.get("attributes") or []:
        if (
            isinstance(attribute, Mapping)
            and attribute.get("id") == "SELLER_SKU"
            and attribute.get("value_name")
        ):
            return str(attribute["value_name"])
    return None


def _price(value: Any) -> Decimal | None:
    return None if value is None else Decimal(str(value))
