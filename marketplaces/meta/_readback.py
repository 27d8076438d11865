"""Reading a catalog's items back from Meta, for ``tradepost state rebuild``.

``GET /{catalog_id}/products`` with the fields a comparison needs, :data:`PAGE_SIZE` a page,
following Graph's cursor (``paging.cursors.after``) while the page names a ``paging.next``: one
request per page. Items a product feed supplies (their ``product_feed`` is set) are another
tool's and are skipped, as are items with no ``retailer_id``.

Meta reads prices back as display strings whose format is not documented (CATALOG.md section 3):
:func:`amount` reads the usual forms (``"89.90 BRL"``, ``"R$89,90"``, ``"BRL 1,234.50"``) and
gives None for any other, which the rebuild treats as a price that differs: the next apply sends
the price again, which costs one entry and can never be wrong. Stock is read from ``inventory``.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping
from decimal import Decimal, InvalidOperation
from typing import Any

from engine.connectors import ReadBackError, Reader, RemoteListing

PAGE_SIZE = 500
"""Items asked for a page (``limit``); Meta does not document the most it serves, and may serve fewer."""
FIELDS = (
    "id,retailer_id,name,description,url,image_url,additional_image_urls,brand,condition,availability,"
    "inventory,price,sale_price,currency,category,gtin,manufacturer_part_number,retailer_product_group_id,"
    "color,size,gender,age_group,material,pattern,product_type,custom_label_0,custom_label_1,"
    "custom_label_2,custom_label_3,custom_label_4,product_feed,review_status"
)
MAX_PAGES = 1_000_000


async def read_items(reader: Reader, path: str) -> AsyncIterator[RemoteListing]:
    """Every item of the catalog that Tradepost may own; see the module docstring."""
    async for item in catalog_items(reader, path, FIELDS):
        yield _listing(item)


async def catalog_items(reader: Reader, path: str, fields: str) -> AsyncIterator[Mapping[str, Any]]:
    """The catalog's items with ``fields``, page by page, but those a feed supplies or with no
    ``retailer_id`` (counted in ``reader.unnamed``)."""
    params = {"fields": fields, "limit": str(PAGE_SIZE)}
    for _ in range(MAX_PAGES):
        page = await reader.get(path, params)
        if not isinstance(page, Mapping):
            raise ReadBackError(f"GET {path} did not answer a Graph list")
        for item in page.get("data") or []:
            if not isinstance(item, Mapping) or not item.get("retailer_id"):
                reader.unnamed += 1
                continue
            if item.get("product_feed"):
                continue
            yield item
        given = page.get("paging")
        paging: Mapping[str, Any] = given if isinstance(given, Mapping) else {}
        after = (paging.get("cursors") or {}).get("after")
        if not paging.get("next") or not after:
            return
        params = {"fields": fields, "limit": str(PAGE_SIZE), "after": str(after)}
    raise ReadBackError(f"GET {path} did not end after {MAX_PAGES} pages")


def _listing(item: Mapping[str, Any]) -> RemoteListing:
    content = {k: v for k, v in item.items() if k not in ("price", "sale_price", "availability", "inventory")}
    inventory = item.get("inventory")
    return RemoteListing(
        str(item["retailer_id"]),
        None,
        amount(item.get("price")),
        amount(item.get("sale_price")) if item.get("sale_price") else None,
        quantity=int(inventory) if isinstance(inventory, int | str) and str(inventory).isdigit() else None,
        content=content,
    )


def amount(text: Any) -> Decimal | None:
    """The number in a display price, or None when it cannot be told."""
    if text in (None, ""):
        return None
    digits = re.sub(r"[^0-9.,]", "", str(text))
    if not re.fullmatch(r"\d[\d.,]*", digits):
        return None
    if "," in digits and "." in digits:
        decimal_mark = "," if digits.rfind(",") > digits.rfind(".") else "."
    else:
        mark = "," if "," in digits else "."
        tail = digits.rsplit(mark, 1)[-1] if mark in digits else ""
        decimal_mark = mark if mark in digits and len(tail) <= 2 and digits.count(mark) == 1 else ""
    thousands = {",", "."} - {decimal_mark}
    for separator in thousands:
        digits = digits.replace(separator, "")
    try:
        return Decimal(digits.replace(decimal_mark, ".") if decimal_mark else digits)
    except InvalidOperation:
        return None
