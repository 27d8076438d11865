"""The desired state of one SKU on one marketplace, or the reasons it cannot be listed.

A :class:`Listing` is what the plan computes and what connectors turn into
request bodies. It holds plain JSON-able data (``Decimal`` for money) so that
a saved plan is self-contained: ``tradepost apply plan.json`` needs neither
the catalog nor the rule file to send exactly what was previewed.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal

from engine._diagnostics import Span

STANDARD_FIELDS = ("title", "description", "condition", "brand", "gtin", "mpn", "images", "attributes")
"""Listing fields every connector understands; a rule file may add marketplace-specific ones."""


@dataclass(frozen=True)
class Reason:
    """Why a SKU is invalid or excluded: a message, a stable code, and the rule that said so."""

    code: str
    message: str
    rule: str
    span: Span | None = None

    def __str__(self) -> str:
        where = f" ({self.span})" if self.span else ""
        return f"{self.rule}: {self.message}{where}"

    def to_dict(self) -> dict[str, Any]:
        return {
            "code": self.code,
            "rule": self.rule,
            "message": self.message,
            "location": str(self.span) if self.span else None,
        }


@dataclass(slots=True)
class Listing:
    """One SKU as a marketplace should show it: content, category, price, quantity, family."""

    sku_id: str
    product_id: str
    marketplace: str
    category: str
    fields: dict[str, Any]
    price: Decimal
    currency: str
    quantity: int
    sale_price: Decimal | None = None
    group: str | None = None
    axes: dict[str, Any] = field(default_factory=dict)

    @property
    def title(self) -> str:
        return str(self.fields.get("title") or "")

    @property
    def attributes(self) -> dict[str, Any]:
        value = self.fields.get("attributes")
        return value if isinstance(value, dict) else {}

    def content_hash(self) -> str:
        """Hash of everything but price and quantity: a change here needs a content update."""
        body = {"category": self.category, "fields": self.fields, "group": self.group, "axes": self.axes}
        return _hash(body)

    def to_dict(self) -> dict[str, Any]:
        return {
            "sku_id": self.sku_id,
            "product_id": self.product_id,
            "marketplace": self.marketplace,
            "category": self.category,
            "fields": self.fields,
            "price": self.price,
            "sale_price": self.sale_price,
            "currency": self.currency,
            "quantity": self.quantity,
            "group": self.group,
            "axes": self.axes,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Listing:
        return cls(
            sku_id=data["sku_id"],
            product_id=data["product_id"],
            marketplace=data["marketplace"],
            category=data["category"],
            fields=data["fields"],
            price=Decimal(str(data["price"])),
            sale_price=Decimal(str(data["sale_price"])) if data.get("sale_price") is not None else None,
            currency=data["currency"],
            quantity=int(data["quantity"]),
            group=data.get("group"),
            axes=data.get("axes") or {},
        )


Status = Literal["listed", "excluded", "invalid"]


@dataclass(slots=True)
class Outcome:
    """What the plan made of one catalog record."""

    sku_id: str
    status: Status
    listing: Listing | None = None
    reasons: list[Reason] = field(default_factory=list)
    provenance: dict[str, Span] = field(default_factory=dict)
    notes: list[Reason] = field(default_factory=list)
    """What the rules decided without failing the SKU (a sale price not below the price, dropped)."""


def to_json_value(value: Any) -> Any:
    """JSON-able form of listing data: Decimals as strings, so no precision is lost."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, dict):
        return {str(k): to_json_value(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [to_json_value(v) for v in value]
    return value


def _hash(body: Any) -> str:
    """The digest of the body's canonical JSON (keys sorted, Decimals as strings).

    The C encoder turns Decimals into strings through ``default``, as :func:`to_json_value` does,
    without first copying the body (a third of the cost: the plan, the executor and the state each
    hash a listing). The text is the copy's, so the hashes in existing states stay the same: a
    listing's keys are text (the rule file's reader and JSON make them so); a body the encoder
    refuses (keys of mixed types) is copied first."""
    try:
        text = json.dumps(body, **_CANONICAL)
    except TypeError:
        text = json.dumps(to_json_value(body), **_CANONICAL)
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).hexdigest()


def _decimal_text(value: Any) -> str:
    if isinstance(value, Decimal):
        return str(value)
    raise TypeError(f"{type(value).__name__} is not JSON")


_CANONICAL: dict[str, Any] = {
    "sort_keys": True,
    "ensure_ascii": False,
    "separators": (",", ":"),
    "default": _decimal_text,
}
