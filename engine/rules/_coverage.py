"""Catalog coverage: what in the catalog the rule files do not cover yet.

`tradepost check --catalog` walks the catalog once per marketplace and counts
the category paths no mapping reaches and the specification values missing
from the tables that rules look them up in. Those are the gaps that turn
into invalid SKUs (or silently defaulted attributes) on the next run, so
they are worth fixing before it.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any

from engine._diagnostics import EvaluationError, Span
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.rules._compiled import CompiledRules, ContentField
from engine.rules._expressions import CompiledExpression
from engine.rules._runtime import Context
from engine.rules._typecheck import LookupSite


@dataclass
class MissingValue:
    table: str
    path: str
    value: str
    defaulted: bool
    span: Span
    skus: int = 0


@dataclass
class Coverage:
    """Gaps of one marketplace's rule file against the catalog."""

    marketplace: str
    file: str
    records: int = 0
    selected: int = 0
    malformed: int = 0
    unmapped: Counter[str] = field(default_factory=Counter)
    missing: dict[tuple[str, str, str], MissingValue] = field(default_factory=dict)

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "file": self.file,
            "records": self.records,
            "selected": self.selected,
            "malformed": self.malformed,
            "unmapped_categories": [{"category": c, "skus": n} for c, n in self.unmapped.most_common()],
            "missing_table_values": [
                {
                    "table": m.table,
                    "path": m.path,
                    "value": m.value,
                    "skus": m.skus,
                    "effect": "default used" if m.defaulted else "SKU invalid",
                    "rule": str(m.span),
                }
                for m in sorted(self.missing.values(), key=lambda m: (-m.skus, m.table, m.value))
            ],
        }


def lookup_sites(compiled: CompiledRules) -> list[LookupSite]:
    """Every lookup of a catalog value in a table, anywhere in the rule file (deduplicated)."""
    found: dict[tuple[str, tuple[str, ...], bool], LookupSite] = {}
    for site in _sites(compiled):
        found.setdefault((site.table, site.path, site.has_default), site)
    return list(found.values())


def _sites(compiled: CompiledRules) -> Iterator[LookupSite]:
    expressions: list[Any] = [
        *compiled.select,
        compiled.price.value,
        compiled.price.sale,
        compiled.price.min,
        compiled.price.max,
        *(r.check for r in compiled.require),
    ]
    for choices in compiled.categories.entries.values():
        expressions.extend(c.when for c in choices)
    for expression in expressions:
        if isinstance(expression, CompiledExpression):
            yield from expression.lookups
    stack: list[ContentField] = list(compiled.listing.values())
    while stack:
        content = stack.pop()
        if content.compiled is not None:
            yield from content.compiled.lookups
        if isinstance(content.children, dict):
            stack.extend(content.children.values())
        elif isinstance(content.children, list):
            stack.extend(content.children)


def catalog_coverage(compiled: CompiledRules, records: Iterable[CatalogRecord | MalformedRecord]) -> Coverage:
    coverage = Coverage(compiled.marketplace, compiled.file)
    sites = lookup_sites(compiled)
    tables = {name: table.entries for name, table in compiled.tables.items()}
    for record in records:
        coverage.records += 1
        if isinstance(record, MalformedRecord):
            coverage.malformed += 1
            continue
        ctx = Context(record.product, record.sku, record.price, record.stock)
        if not _selected(compiled, ctx):
            continue
        coverage.selected += 1
        if compiled.categories.resolve(record.product.category_path, ctx) is None:
            coverage.unmapped[record.product.category or "(no category)"] += 1
        for site in sites:
            value = _resolve(record, site.path)
            if value is None:
                continue
            text = format(value, "f") if isinstance(value, Decimal) else str(value)
            if text in tables.get(site.table, {}):
                continue
            key = (site.table, ".".join(site.path), text)
            missing = coverage.missing.get(key)
            if missing is None:
                missing = coverage.missing[key] = MissingValue(
                    site.table, key[1], text, site.has_default, site.span
                )
            missing.defaulted = missing.defaulted and site.has_default
            missing.skus += 1
    return coverage


def _selected(compiled: CompiledRules, ctx: Context) -> bool:
    """Only SKUs the rule file selects can be unmapped: the others are never listed anyway."""
    try:
        return all(condition.fn(ctx) is True for condition in compiled.select)
    except EvaluationError:
        return True


def _resolve(record: CatalogRecord, path: tuple[str, ...]) -> Any:
    value: Any = getattr(record, path[0], None)
    for part in path[1:]:
        if value is None:
            return None
        value = value.get(part) if isinstance(value, dict) else getattr(value, part, None)
    return value
