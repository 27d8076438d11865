"""The public surface of the engine is exactly this list; anything else is private (STYLE.md 1)."""

from __future__ import annotations

import importlib
import types

import pytest

import engine

SUBPACKAGES = {
    "engine.catalog": [
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
    ],
    "engine.connectors": [
        "CONNECTORS",
        "ENTRY_POINT_GROUP",
        "ORDER_CHANNELS",
        "SOURCES",
        "STANDINS",
        "BadOrder",
        "Call",
        "CallResult",
        "Catalogs",
        "ChangeRecord",
        "Changed",
        "Connector",
        "Credentials",
        "Fulfilment",
        "Invoice",
        "Listing",
        "OrderCallError",
        "OrderChannel",
        "ReadBackError",
        "Reader",
        "Reason",
        "RecordStream",
        "RefreshedToken",
        "RemoteListing",
        "RetryPolicy",
        "Route",
        "RouteKind",
        "Source",
        "SourceConfig",
        "TokenBucket",
        "TokenError",
        "Tracking",
        "VtexAccount",
        "VtexPlacement",
        "available_connectors",
        "available_standins",
        "comparable",
        "connector_class",
        "differing",
        "json_body",
        "order_channel_class",
        "parts_differing",
        "retry_after",
        "send",
        "source",
        "standin_class",
        "token_pages",
    ],
    "engine.failpoints": [
        "APPLY_POINTS",
        "reach",
    ],
    "engine.jsonio": [
        "dumps",
        "loads",
    ],
    "engine.model": [
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
    ],
    "engine.orders": [
        "EXIT_PARTIAL",
        "OPEN",
        "STATES",
        "Address",
        "Buyer",
        "FulfilmentStatus",
        "Order",
        "OrderError",
        "OrderItem",
        "OrderStore",
        "PaymentStatus",
        "PullSummary",
        "PushSummary",
        "StoredOrder",
        "VtexPlacement",
        "approve",
        "reject",
    ],
    "engine.project": [
        "SYNC_BATCH",
        "CatalogReads",
        "ConfigError",
        "MarketplaceOutcome",
        "MarketplaceRun",
        "PlannedApply",
        "Project",
        "ServeConfig",
        "SourceConfig",
        "SyncReads",
        "SyncReport",
        "VtexAccount",
        "apply_records",
        "catalog_reads",
        "catalog_records",
        "check_not_stale",
        "fingerprint_of",
        "load_project",
        "locked",
        "open_marketplace",
        "open_state",
        "order_desks",
        "order_marketplaces",
        "planned_pass",
        "planned_records",
        "rebuild_state",
        "record_full_apply",
        "sync_once",
        "vtex_orders_account",
    ],
    "engine.rules": [
        "CheckResult",
        "CompiledRules",
        "Context",
        "Coverage",
        "Diagnostic",
        "EvaluationError",
        "Rejected",
        "RuleError",
        "RuleFile",
        "Span",
        "catalog_coverage",
        "check_all",
        "check_rules",
        "compile_rules",
        "load_rules",
        "rule_file_schema",
    ],
    "engine.secrets": [
        "RedactingFilter",
        "check_header_value",
        "forget",
        "read_secret",
        "redact",
        "register",
    ],
    "engine.state": [
        "WORK_LEASE",
        "Change",
        "FullPass",
        "NotificationQueue",
        "QueueCounts",
        "QueuedSku",
        "StateStore",
    ],
    "engine.sync": [
        "EXIT_PARTIAL",
        "ApplySummary",
        "Change",
        "MassDelete",
        "PlanSummary",
        "PlanWriter",
        "SavedPlan",
        "SkuResult",
        "change_record",
        "check_plan_rules",
        "checked_changes",
        "mass_delete",
        "read_plan",
    ],
}


def test_engine_exports() -> None:
    assert engine.__all__ == sorted(engine.__all__)
    exported = {name for name in dir(engine) if not name.startswith("_")}
    assert set(engine.__all__) == exported - {"annotations"}


def test_every_public_subpackage_is_exported_by_the_engine() -> None:
    modules = {name for name in engine.__all__ if isinstance(getattr(engine, name), types.ModuleType)}
    assert {f"engine.{name}" for name in modules} == set(SUBPACKAGES)


@pytest.mark.parametrize("name", sorted(SUBPACKAGES))
def test_subpackage_exports(name: str) -> None:
    """Given a public subpackage, expect its ``__all__`` pinned here (sorted as ruff's RUF022 sorts:
    constants, classes, functions) and nothing else public."""
    module = importlib.import_module(name)
    assert module.__all__ == SUBPACKAGES[name]
    public = {n for n in vars(module) if not n.startswith("_") and n != "annotations"}
    if not hasattr(module, "__path__"):  # a plain module: what it defines, not what it imports
        public = {n for n in public if getattr(getattr(module, n), "__module__", name) == name}
    submodules = {n for n in public if isinstance(getattr(module, n), types.ModuleType)}
    assert public - submodules == set(module.__all__)
