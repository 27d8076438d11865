"""rules/mercadolibre.yaml written by hand in Python: the baseline the plan is measured against.

It does the same transformation the rule file declares (select, category, listing content,
variations, price, stock, require checks, Mercado Libre's own requirements) on the same
canonical records, and hashes the content the way the diff does. What it does not do is what
only a general engine needs: no rule locations on reasons, no explain provenance, no state
lookups. `bench/bench_plan.py` checks that both give the same listings before timing them.
"""

from __future__ import annotations

import html
import re
from decimal import ROUND_FLOOR, ROUND_HALF_UP, Decimal
from typing import Any

from engine.model._catalog import CatalogRecord
from engine.model._listing import Listing

CATEGORIES = {
    ("Apparel", "Clothing", "T-Shirts"): "MLB31447",
    ("Apparel", "Clothing", "Dresses"): "MLB108704",
    ("Apparel", "Clothing", "Jeans"): "MLB108790",
    ("Apparel", "Shoes", "Sneakers"): "MLB23332",
    ("Apparel", "Shoes"): "MLB1276",
    ("Electronics", "Phones"): "MLB1055",
    ("Electronics", "Audio", "Headphones"): "MLB196208",
    ("Electronics", "Appliances", "Blenders"): "MLB4336",
    ("Electronics", "Appliances", "Hair Dryers"): "MLB5373",
    ("Home", "Kitchen", "Cookware"): "MLB1902",
    ("Home", "Bedding", "Sheets"): "MLB1621",
    ("Home", "Decor", "Vases"): "MLB1631",
}
COLORS = {
    c: c
    for c in ("Azul", "Preto", "Branco", "Vermelho", "Verde", "Amarelo", "Cinza", "Rosa", "Marrom", "Bege")
}
SIZES = {s: s for s in ("PP", "P", "M", "G", "GG", "XG", "Solteiro", "Casal", "Queen", "King")}
VOLTAGES = {"110V": "110 Volts", "127V": "127 Volts", "220V": "220 Volts", "Bivolt": "Bivolt (110/220 Volts)"}
MARKUP = Decimal("1.35")
CENT = Decimal("0.01")


def _ending(value: Decimal, end: Decimal = Decimal("0.90")) -> Decimal:
    whole = value.to_integral_value(ROUND_FLOOR)
    candidate = whole + end
    return candidate if candidate >= value else candidate + 1


def _gtin_valid(code: str | None) -> bool:
    if not code or not code.isdigit() or len(code) not in (8, 12, 13, 14):
        return False
    digits = [int(d) for d in code]
    total = sum(d * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(digits[:-1])))
    return (10 - total % 10) % 10 == digits[-1]


def _category(record: CatalogRecord) -> str | None:
    path = record.product.category_path
    if tuple(path[:3]) == ("Apparel", "Shoes", "Boots"):
        return "MLB186563" if record.product.specs.get("Gênero") == "Feminino" else "MLB186566"
    for length in range(len(path), 0, -1):
        found = CATEGORIES.get(tuple(path[:length]))
        if found:
            return found
    return None


_BLOCK = re.compile(r"</?(?:p|div|br|li|ul|ol|h[1-6]|tr|table)\b[^>]*>", re.IGNORECASE)
_TAG = re.compile(r"<[^>]*>")


def _plain_text(text: str | None) -> str | None:
    """HTML as plain text: a block tag ends a line, other tags go, entities are decoded."""
    if text is None:
        return None
    lines = (
        " ".join(line.split()) for line in html.unescape(_TAG.sub("", _BLOCK.sub("\n", text))).split("\n")
    )
    return "\n".join(line for line in lines if line)


def listing_for(record: CatalogRecord) -> Listing | list[str] | None:
    """The Mercado Libre listing of a record, a list of reasons it is invalid, or None if not selected."""
    product, sku, price, stock = record.product, record.sku, record.price, record.stock
    if not sku.active or product.brand is None or product.brand == "Private Label":
        return None
    if not (stock.available_in(("main", "sp_cd")) > 0 or stock.unlimited):
        return None
    reasons: list[str] = []
    category = _category(record)
    if category is None:
        reasons.append(f"no category mapping for {product.category}")
    specs = sku.specs
    title = f"{product.name} {product.brand}"
    attributes: dict[str, Any] = {}
    values = {
        "BRAND": product.brand,
        "MODEL": sku.ref_id if sku.ref_id is not None else product.ref_id,
        "COLOR": COLORS.get(specs["Cor"]) if specs.get("Cor") is not None else None,
        "SIZE": SIZES.get(specs["Tamanho"], specs["Tamanho"]) if specs.get("Tamanho") is not None else None,
        "GENDER": product.specs.get("Gênero"),
        "GTIN": sku.ean,
    }
    voltage = specs.get("Voltagem")
    if voltage is not None:
        if voltage not in VOLTAGES:
            reasons.append(f"no entry for {voltage!r} in table 'voltages'")
        values["VOLTAGE"] = VOLTAGES.get(voltage)
    for key in ("BRAND", "MODEL", "COLOR", "SIZE", "GENDER", "VOLTAGE", "GTIN"):
        value = values.get(key)
        if value is not None and value != "":
            attributes[key] = value
    fields: dict[str, Any] = {
        "title": title,
        "description": _plain_text(product.description),
        "condition": "new",
        "attributes": attributes,
    }
    fields["images"] = [image.url for image in sku.images]
    if sku.ean:
        fields["gtin"] = sku.ean
    fields["brand"] = product.brand
    if sku.mpn:
        fields["mpn"] = sku.mpn

    value = _ending(price.selling * MARKUP).quantize(CENT, ROUND_HALF_UP)
    low = (price.cost if price.cost is not None else price.selling * Decimal("0.5")) * Decimal("1.10")
    if value < low:
        reasons.append(f"price {value} is below the minimum {low.quantize(CENT, ROUND_HALF_UP)}")
    if value > price.selling * 2:
        reasons.append("price above the maximum")
    sale = None
    if price.promotional is not None:
        sale = _ending(price.promotional * MARKUP).quantize(CENT, ROUND_HALF_UP)
        if sale >= value:
            sale = None
        elif sale < low:
            reasons.append("sale price below the minimum")

    if stock.unlimited_in(("main", "sp_cd")):
        quantity = 100
    else:
        available = stock.available_in(("main", "sp_cd"))
        quantity = min(
            100,
            int((max(Decimal(0), Decimal(available) - 2) * Decimal("0.6")).to_integral_value(ROUND_FLOOR)),
        )

    if len(title) > 60:
        reasons.append(f"title is {len(title)} characters; Mercado Libre allows 60")
    if not _gtin_valid(sku.ean):
        reasons.append(f"EAN {sku.ean} has a wrong check digit")
    if len(sku.images) < 1:
        reasons.append("Mercado Libre needs at least one picture")
    if reasons:
        return reasons
    axes = {
        "COLOR": attributes.get("COLOR"),
        "SIZE": attributes.get("SIZE"),
        "VOLTAGE": attributes.get("VOLTAGE"),
    }
    assert category is not None
    listing = Listing(
        sku.id,
        sku.product_id,
        "mercadolibre",
        category,
        fields,
        value,
        "BRL",
        quantity,
        sale,
        product.id,
        axes,
    )
    listing.content_hash()
    return listing
