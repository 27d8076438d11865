"""VTEX answers -> one canonical catalog record (a dict that ``CatalogRecord.parse`` validates).

The canonical model (``engine/model/_catalog.py``, ``docs/catalog.md``) names the VTEX field every
canonical field comes from; this module is that table as code, one function per VTEX answer.
It only reshapes: types, ranges and required fields are judged by ``CatalogRecord.parse``, so a
price VTEX sends as ``"83,90"`` is reported with the same message a catalog file would get.
What pydantic cannot judge (a category id with no name, a list that is not a list) raises
:class:`VtexShapeError` with the canonical field it breaks.

Numbers arrive as ``Decimal`` (the source decodes with ``parse_float=Decimal``), so a price is
the digits VTEX sent, never a float's approximation of them.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from decimal import Decimal, InvalidOperation
from typing import Any

__all__ = [
    "VtexShapeError",
    "computed_in",
    "promotional_prices",
    "unit_price",
    "vtex_number",
    "vtex_record",
]


class VtexShapeError(Exception):
    """A VTEX answer that cannot be mapped at all; ``field`` is the canonical field it breaks."""

    def __init__(self, field: str, message: str) -> None:
        self.field = field
        self.message = message
        super().__init__(f"{field}: {message}")


def vtex_record(
    context: Mapping[str, Any],
    prices: Mapping[str, Any],
    computed: Mapping[str, Any],
    inventory: Mapping[str, Any],
    promotional: Decimal | None,
    trade_policy: str,
    now: datetime,
) -> dict[str, Any]:
    """The canonical record of one SKU from its four VTEX answers and its simulated price.

    ``context`` is "Get SKU and context", ``prices`` ``GET /pricing/prices/{itemId}``,
    ``computed`` ``GET /pricing/prices/{itemId}/computed/{tradePolicyId}``, ``inventory``
    ``GET /api/logistics/pvt/inventory/skus/{skuId}``; ``promotional`` is the per-unit
    simulated price from :func:`promotional_prices` (None when the simulation had none).
    """
    product, sku = product_and_sku(context)
    return {
        "product": product,
        "sku": sku,
        "price": price(prices, computed, promotional, trade_policy, now),
        "stock": stock(inventory),
    }


def product_and_sku(context: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """``product`` and ``sku`` from "Get SKU and context" (field by field as in docs/catalog.md)."""
    category_ids = [part for part in _text(context.get("ProductCategoryIds")).split("/") if part]
    category_names = _mapping(context.get("ProductCategories"), "product.category_path", "ProductCategories")
    category_path = []
    for category_id in category_ids:
        if category_id not in category_names:
            raise VtexShapeError(
                "product.category_path",
                f"category {category_id} of ProductCategoryIds has no name in ProductCategories",
            )
        category_path.append(category_names[category_id])
    clusters = _mapping(context.get("ProductClusterNames"), "product.collections", "ProductClusterNames")
    product = {
        "id": context.get("ProductId"),
        "ref_id": _blank_is_none(context.get("ProductRefId")),
        "name": context.get("ProductName"),
        "description": context.get("ProductDescription") or "",
        "brand": _blank_is_none(context.get("BrandName")),
        "brand_id": _blank_is_none(context.get("BrandId")),
        "category_path": category_path,
        "category_id": category_ids[-1] if category_ids else None,
        "specs": _specs(context.get("ProductSpecifications"), "product.specs", "ProductSpecifications"),
        "collections": list(clusters.values()),
        "link": _link(context.get("DetailUrl")),
        "keywords": context.get("KeyWords") or (),
        "active": context.get("IsProductActive", True),
    }
    alternate = _mapping(context.get("AlternateIds"), "sku", "AlternateIds")
    sku = {
        "id": context.get("Id"),
        "product_id": context.get("ProductId"),
        "ref_id": _blank_is_none(alternate.get("RefId")),
        "name": context.get("SkuName") or "",
        "ean": _blank_is_none(alternate.get("Ean")),
        "mpn": _blank_is_none(context.get("ManufacturerCode")),
        "active": context.get("IsActive"),
        "specs": _specs(context.get("SkuSpecifications"), "sku.specs", "SkuSpecifications"),
        "images": _images(context.get("Images"), _text(context.get("ImageUrl"))),
        "dimensions": _dimensions(context.get("Dimension")),
        "unit_multiplier": _or_default(context.get("UnitMultiplier"), 1),
        "measurement_unit": _or_default(context.get("MeasurementUnit"), "un"),
    }
    return product, sku


def price(
    prices: Mapping[str, Any],
    computed: Mapping[str, Any],
    promotional: Decimal | None,
    trade_policy: str,
    now: datetime,
) -> dict[str, Any]:
    """``price``: selling and list from the computed price, base and cost from the price record.

    The computed price is VTEX's own answer to "what does this SKU sell for in this trade
    policy": it applies the fixed prices (scheduled ones included), price tables and rules.
    Rebuilding that from ``fixedPrices`` would re-implement VTEX's pipeline and get it wrong
    for every store with a price rule. A promotion counts only below the selling price:
    a simulated price above it carries taxes or charges, not a discount.
    """
    selling = computed.get("sellingPrice")
    list_price = computed.get("listPrice")
    if list_price is None:
        fixed = active_fixed_price(prices.get("fixedPrices"), trade_policy, now)
        list_price = fixed.get("listPrice") if fixed else None
    if list_price is None:
        list_price = prices.get("listPrice")
    selling_number = vtex_number(selling)
    if promotional is not None and not (selling_number is not None and promotional < selling_number):
        promotional = None
    return {
        "selling": selling,
        "list": list_price,
        "base": prices.get("basePrice"),
        "cost": prices.get("costPrice"),
        "promotional": promotional,
    }


def active_fixed_price(fixed_prices: object, trade_policy: str, now: datetime) -> Mapping[str, Any] | None:
    """The fixed price VTEX applies now to one unit in the trade policy, if any.

    Of the entries for the trade policy with ``minQuantity`` 1 (larger quantities are tier
    prices), a scheduled one whose ``dateRange`` holds ``now`` wins over an unscheduled one,
    as a scheduled price overrides the standing fixed price in VTEX.
    """
    if not isinstance(fixed_prices, list):
        return None
    standing: Mapping[str, Any] | None = None
    for entry in fixed_prices:
        if not isinstance(entry, Mapping) or str(entry.get("tradePolicyId")) != trade_policy:
            continue
        if entry.get("minQuantity", 1) not in (0, 1):
            continue
        date_range = entry.get("dateRange")
        if date_range is None:
            standing = standing or entry
        elif isinstance(date_range, Mapping) and _within(date_range, now):
            return entry
    return standing


def computed_in(computed_prices: object, trade_policy: str) -> Mapping[str, Any] | None:
    """The trade policy's entry of ``GET /pricing/prices/{itemId}/computed`` (the computed prices
    of every price table with a fixed price), or None when the answer has no single one.

    An entry is the trade policy's when its ``tradePolicyId`` is the trade policy and its
    ``priceTable`` (when given) too: the price table ``GET .../computed/{tradePolicyId}``
    answers for. Another price table of the same trade policy (a customer group's) is not it;
    no entry, or two, and the caller asks the trade policy's own call, whose answer decides.
    """
    if not isinstance(computed_prices, list):
        raise VtexShapeError("price.selling", "the VTEX computed prices answer is not a JSON array")
    found: list[Mapping[str, Any]] = []
    for index, entry in enumerate(computed_prices):
        if not isinstance(entry, Mapping):
            message = f"entry {index} of the VTEX computed prices is not a JSON object"
            raise VtexShapeError("price.selling", message)
        table = entry.get("priceTable")
        if str(entry.get("tradePolicyId")) == trade_policy and (table is None or str(table) == trade_policy):
            found.append(entry)
    return found[0] if len(found) == 1 else None


def promotional_prices(simulation: object) -> dict[str, Decimal]:
    """SKU id -> per-unit price after promotions, from a checkout simulation answer.

    ``items[].sellingPrice`` is in cents and covers ``unitMultiplier`` units (VTEX sells a SKU
    with multiplier 5 in packs of 5), so the unit price is ``sellingPrice / 100 /
    unitMultiplier``. Only items with a discount tag (a ``priceTags`` entry of negative
    value) count: a lower price with no discount is the computed price having moved
    between two calls, not a promotion.
    """
    items = simulation.get("items") if isinstance(simulation, Mapping) else None
    if not isinstance(items, list):
        raise VtexShapeError("price.promotional", "the checkout simulation has no items list")
    found: dict[str, Decimal] = {}
    for item in items:
        if not isinstance(item, Mapping) or str(item.get("id")) in found:
            continue
        price, tags = unit_price(item), item.get("priceTags")
        discounted = isinstance(tags, list) and any(
            isinstance(tag, Mapping) and (value := vtex_number(tag.get("value"))) is not None and value < 0
            for tag in tags
        )
        if not discounted or price is None:
            continue
        found[str(item.get("id"))] = price
    return found


def stock(inventory: Mapping[str, Any]) -> dict[str, Any]:
    """``stock``: one warehouse per ``balance[]`` entry of the inventory answer."""
    balance = inventory.get("balance")
    if balance is None:
        return {"warehouses": []}
    if not isinstance(balance, list):
        raise VtexShapeError("stock.warehouses", "inventory balance is not a list")
    return {
        "warehouses": [
            {
                "warehouse": entry.get("warehouseId"),
                "quantity": entry.get("totalQuantity"),
                "reserved": _or_default(entry.get("reservedQuantity"), 0),
                "unlimited": _or_default(entry.get("hasUnlimitedQuantity"), False),
            }
            for entry in balance
            if isinstance(entry, Mapping)
        ]
    }


def _specs(value: object, field: str, vtex_name: str) -> dict[str, Any]:
    """``[{FieldName, FieldValues}]`` -> name -> values; the canonical model joins the list."""
    if value is None:
        return {}
    if not isinstance(value, list):
        raise VtexShapeError(field, f"{vtex_name} is not a list")
    return {
        str(spec.get("FieldName")): spec.get("FieldValues") or []
        for spec in value
        if isinstance(spec, Mapping) and spec.get("FieldName")
    }


def _images(value: object, main_url: str) -> list[dict[str, Any]]:
    """``Images[]``, with the main one found by the top-level ``ImageUrl``.

    VTEX often gives the top-level URL in a resized form (``/ids/168952-55-55/x.jpg`` for the
    file ``/ids/168952/x.jpg``), so an image also matches by its ``FileId``; without any match
    the first image is the main one.
    """
    if value is None:
        return []
    if not isinstance(value, list):
        raise VtexShapeError("sku.images", "Images is not a list")
    images = [image for image in value if isinstance(image, Mapping)]
    main = next((i for i, image in enumerate(images) if main_url and image.get("ImageUrl") == main_url), None)
    if main is None:
        main = next((i for i, image in enumerate(images) if _same_file(image.get("FileId"), main_url)), 0)
    return [
        {"url": image.get("ImageUrl"), "label": _blank_is_none(image.get("ImageName")), "is_main": i == main}
        for i, image in enumerate(images)
    ]


def _same_file(file_id: object, url: str) -> bool:
    if file_id is None or not url:
        return False
    marker = f"/ids/{file_id}"
    at = url.find(marker)
    return at >= 0 and url[at + len(marker) : at + len(marker) + 1] in ("-", "/")


def _dimensions(value: object) -> dict[str, Any]:
    """``Dimension`` (package size), taken as centimetres and grams, VTEX's defaults."""
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise VtexShapeError("sku.dimensions", "Dimension is not an object")
    return {name: value.get(name) for name in ("height", "width", "length", "weight")}


def _link(detail_url: object) -> str | None:
    """``/tenis-runner/p`` -> ``tenis-runner``."""
    text = _text(detail_url).strip()
    text = text.removeprefix("/")
    text = text.removesuffix("/p")
    return text or None


def _within(date_range: Mapping[str, Any], now: datetime) -> bool:
    try:
        start = datetime.fromisoformat(str(date_range.get("from")))
        end = datetime.fromisoformat(str(date_range.get("to")))
        return start <= now < end
    except (TypeError, ValueError):  # a date VTEX did not write, or one with no offset
        return False


def _mapping(value: object, field: str, vtex_name: str) -> Mapping[str, Any]:
    if value is None:
        return {}
    if not isinstance(value, Mapping):
        raise VtexShapeError(field, f"{vtex_name} is not an object")
    return {str(key): item for key, item in value.items()}


def vtex_number(value: object) -> Decimal | None:
    """A number from VTEX's JSON as a finite Decimal (from a JSON number or numeric text, floats by
    their shortest repr), or None for anything else: null, booleans, blank text, "83,90"."""
    if isinstance(value, bool) or not isinstance(value, int | float | Decimal | str):
        return None
    try:
        number = Decimal(str(value)) if isinstance(value, float) else Decimal(value)
    except (InvalidOperation, ValueError):
        return None
    return number if number.is_finite() else None


def unit_price(item: Mapping[str, Any]) -> Decimal | None:
    """A checkout simulation item's price for one unit: ``sellingPrice`` is in cents and for
    ``unitMultiplier`` units (1 when absent or not positive); None when it has no price."""
    cents = vtex_number(item.get("sellingPrice"))
    if cents is None:
        return None
    multiplier = vtex_number(item.get("unitMultiplier"))
    return cents / 100 / (multiplier if multiplier is not None and multiplier > 0 else Decimal(1))


def _text(value: object) -> str:
    return value if isinstance(value, str) else ""


def _blank_is_none(value: object) -> object:
    """VTEX writes an unset text field as ``""``; the canonical model says null."""
    return None if value is None or (isinstance(value, str) and not value.strip()) else value


def _or_default(value: object, default: object) -> object:
    return default if value is None else value
