"""The names each section of a rule file may read, with their types: a section's scope.

Every section reads the canonical catalog record (``product``, ``sku``, ``price``, ``stock``)
except divergence rules, which read the order being checked (``order``, ``item``) instead: an
order is checked against the price the rules give its SKUs, not against one catalog record.
``listing`` exists from ``price:`` on. A name a section may not read is not merely unknown:
it is *unavailable*, and its diagnostic says where it can be read. No section ever sees a
buyer's personal data.
"""

from __future__ import annotations

from collections.abc import Mapping

from engine.model._catalog import Price, Product, Sku, Stock
from engine.model._order import Order, OrderItem
from engine.rules._types import NUMBER, STRING, RecordType, Type, list_of, record_from_model, record_of

CATALOG_NAMES: dict[str, Type] = {
    "product": record_of(record_from_model(Product)),
    "sku": record_of(record_from_model(Sku)),
    "price": record_of(record_from_model(Price)),
    "stock": record_of(record_from_model(Stock)),
}
_ORDER_ONLY = "'{name}' exists only in divergence rules, where an order is being checked"
_NO_CATALOG = (
    "'{name}' is not available in divergence rules: an order is checked against the price the rules "
    "give its SKUs, not against one catalog record; read the order through 'order' and 'item'"
)
_PERSONAL = ("buyer", "shipping_address")
"""Order fields rules never see: a rule file cannot read, compare or echo a buyer's personal data."""


def _order_names() -> dict[str, Type]:
    """The typed ``order`` and ``item`` of divergence rules: the canonical order minus personal data."""
    item_model = record_from_model(OrderItem)
    item = RecordType(
        "item",
        {**item_model.fields, "line_value": NUMBER},
        {**item_model.docs, "line_value": "unit_price * quantity"},
        OrderItem,
    )
    order_model = record_from_model(Order)
    fields = {name: t for name, t in order_model.fields.items() if name not in _PERSONAL}
    docs = {name: d for name, d in order_model.docs.items() if name not in _PERSONAL}
    fields["items"] = list_of(record_of(item))
    fields["items_value"] = NUMBER
    docs["items_value"] = "sum of unit_price * quantity over the items, shipping excluded"
    fields["shipping_country"] = STRING.or_null()
    docs["shipping_country"] = "the delivery country (ISO code), or null when the marketplace ships"
    return {
        "order": record_of(RecordType("order", fields, docs, Order)),
        "item": record_of(item, nullable=True),
    }


ORDER_NAMES = _order_names()


def names_in(
    where: str, extra: Mapping[str, Type] | None = None, order: bool = False
) -> tuple[dict[str, Type], dict[str, str]]:
    """The names readable ``where`` (the catalog, or the order when ``order``, plus ``extra``),
    and the message for each name that is not readable there."""
    names: dict[str, Type] = dict(CATALOG_NAMES)
    unavailable: dict[str, str] = {}
    if extra:
        names.update(extra)
    if "listing" not in names:
        unavailable["listing"] = f"'listing' is not built yet {where}; it can be read from 'price' on"
    if order:
        for name in CATALOG_NAMES:
            names.pop(name, None)
            unavailable[name] = _NO_CATALOG.format(name=name)
        names = {**ORDER_NAMES, **names}
    else:
        for name in ("order", "item"):
            unavailable[name] = _ORDER_ONLY.format(name=name)
    return names, unavailable
