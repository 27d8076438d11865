"""Amazon attribute values: every attribute is a list of objects scoped to one marketplace.

Product type schemas (``getDefinitionsProductType``; BRACELET.json is one) shape each
attribute as ``[{"value": ..., "language_tag": ..., "marketplace_id": ...}]``: text
carries a language tag, enumerations, numbers and booleans do not, and offers, stock,
images and identifiers have sub-objects of their own. The builders here keep those
shapes in one place so the connector only says which listing field feeds which attribute.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from decimal import Decimal
from typing import Any

Attribute = list[dict[str, Any]]

LOCALIZED_ATTRIBUTES = frozenset(
    {
        "age_range_description",
        "brand",
        "bullet_point",
        "collection",
        "color",
        "condition_note",
        "configuration",
        "department",
        "edition",
        "fit_type",
        "flavor",
        "generic_keyword",
        "item_name",
        "item_shape",
        "manufacturer",
        "material",
        "model_name",
        "occasion",
        "pattern",
        "product_description",
        "scent",
        "size",
        "special_size_type",
        "style",
        "theme",
    }
)
"""Text attributes whose schema requires ``language_tag``; a rule file adds others with the
``localized_attributes`` option (the product type definition lists them)."""

IMAGE_ATTRIBUTES = ("main_product_image_locator", *(f"other_product_image_locator_{n}" for n in range(1, 9)))

OPEN_SALE_WINDOW = ("2000-01-01", "2999-12-31")
"""``discounted_price`` requires ``start_at`` and ``end_at``. The canonical listing says "on sale now",
not when the sale ends, so without ``sale_start_at``/``sale_end_at`` fields the window is open and
fixed: the same listing always gives the same bytes, and the sale ends when a later price update
replaces ``purchasable_offer`` without it."""

_CONDITIONS = {"new": "new_new", "used": "used_good", "refurbished": "refurbished_refurbished"}


@dataclass(frozen=True)
class Scope:
    """Where a value applies: the marketplace and, for text, the language."""

    marketplace_id: str
    language_tag: str
    localized: frozenset[str] = LOCALIZED_ATTRIBUTES

    def attribute(self, name: str, value: Any) -> Attribute:
        """A rule-file value as an attribute; objects already in Amazon's shape are sent as written."""
        if isinstance(value, Mapping):
            return [dict(value)]
        if isinstance(value, list | tuple):
            if all(isinstance(item, Mapping) for item in value):
                return [dict(item) for item in value]
            return [self._entry(name, item) for item in value]
        return [self._entry(name, value)]

    def _entry(self, name: str, value: Any) -> dict[str, Any]:
        entry: dict[str, Any] = {"value": value}
        if name in self.localized:
            entry["language_tag"] = self.language_tag
        entry["marketplace_id"] = self.marketplace_id
        return entry


def condition_type(condition: str | None) -> str:
    """Amazon's ``condition_type`` enumeration; values already in that form pass through."""
    text = (condition or "new").strip().lower()
    return _CONDITIONS.get(text, text)


def product_identifier(gtin: str, scope: Scope) -> Attribute:
    """``externally_assigned_product_identifier``: 12 digits are a UPC, 13 an EAN, others a GTIN-14."""
    digits = gtin.strip()
    kind = {12: "upc", 13: "ean"}.get(len(digits), "gtin")
    if kind == "gtin":
        digits = digits.zfill(14)
    return [{"type": kind, "value": digits, "marketplace_id": scope.marketplace_id}]


def image_locators(urls: Sequence[str], scope: Scope) -> dict[str, Attribute]:
    """The first image is the main one; the next eight fill ``other_product_image_locator_1..8``."""
    return {
        name: [{"media_location": url, "marketplace_id": scope.marketplace_id}]
        for name, url in zip(IMAGE_ATTRIBUTES, urls, strict=False)
    }


def purchasable_offer(
    price: Decimal,
    sale_price: Decimal | None,
    currency: str,
    scope: Scope,
    sale_window: tuple[str, str] = OPEN_SALE_WINDOW,
) -> Attribute:
    """The offer for every buyer (``audience`` ALL): our price, and the sale price while there is one."""
    offer: dict[str, Any] = {
        "marketplace_id": scope.marketplace_id,
        "currency": currency,
        "audience": "ALL",
        "our_price": [{"schedule": [{"value_with_tax": price}]}],
    }
    if sale_price is not None:
        start_at, end_at = sale_window
        offer["discounted_price"] = [
            {"schedule": [{"value_with_tax": sale_price, "start_at": start_at, "end_at": end_at}]}
        ]
    return [offer]


def fulfillment_availability(quantity: int, channel: str = "DEFAULT") -> Attribute:
    """Stock the seller ships itself (channel DEFAULT); FBA stock is Amazon's to count, not ours."""
    return [{"fulfillment_channel_code": channel, "quantity": max(0, quantity)}]


def replace_patch(name: str, value: Attribute) -> dict[str, Any]:
    """A JSON Patch operation that swaps one whole attribute, dropping sub-values it no longer has."""
    return {"op": "replace", "path": f"/attributes/{name}", "value": value}
