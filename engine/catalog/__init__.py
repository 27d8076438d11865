"""The canonical catalog: records as a source yields them, how they are read, and what they cover.

Sources (VTEX, a file) turn their data into these records; the planner reads nothing else.
"""

from __future__ import annotations

from engine.model._catalog import (
    CatalogRecord,
    JsonLimitError,
    MalformedRecord,
    Price,
    Product,
    Sku,
    SourceItem,
    Stock,
    WarehouseStock,
    read_json,
)
from engine.model._currency import MINOR_UNITS
from engine.rules._coverage import Coverage, catalog_coverage
from engine.sync._source import FirstSeen

__all__ = [
    "MINOR_UNITS",
    "CatalogRecord",
    "Coverage",
    "FirstSeen",
    "JsonLimitError",
    "MalformedRecord",
    "Price",
    "Product",
    "Sku",
    "SourceItem",
    "Stock",
    "WarehouseStock",
    "catalog_coverage",
    "read_json",
]
