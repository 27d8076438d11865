"""The model: the records every layer speaks, with no behaviour beyond checking themselves.

A catalog record (:class:`CatalogRecord`: product, SKU, price, stock) is what a source yields;
a :class:`Listing` is what the plan computes for one SKU on one marketplace; an :class:`Order`
is what an order channel reads. Money is ``Decimal`` throughout, in places of its currency's
minor unit (:data:`MINOR_UNITS`). Nothing here imports another layer of the engine.
"""

from __future__ import annotations

from engine.model._catalog import (
    CatalogRecord,
    Dimensions,
    Image,
    MalformedRecord,
    Price,
    Product,
    Sku,
    SourceItem,
    Stock,
    WarehouseStock,
)
from engine.model._currency import MINOR_UNITS, minor_unit_places
from engine.model._listing import STANDARD_FIELDS, Listing, Outcome, Reason
from engine.model._order import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus, aware_time

__all__ = [
    "MINOR_UNITS",
    "STANDARD_FIELDS",
    "Address",
    "Buyer",
    "CatalogRecord",
    "Dimensions",
    "FulfilmentStatus",
    "Image",
    "Listing",
    "MalformedRecord",
    "Order",
    "OrderItem",
    "Outcome",
    "PaymentStatus",
    "Price",
    "Product",
    "Reason",
    "Sku",
    "SourceItem",
    "Stock",
    "WarehouseStock",
    "aware_time",
    "minor_unit_places",
]
