"""The project assembly: ``tradepost.yaml`` read and checked, and the only place a run is built from it.

Every command starts here: the config names the source, the rule files and the state; this
package opens them through the registry (:mod:`engine.connectors`) and hands the lower layers
(:mod:`engine.sync`, :mod:`engine.orders`, :mod:`engine.state`) what they need, so none of them
reads a config or looks a plug-in up by itself.
"""

from __future__ import annotations

from engine.project._alerts import (
    Alert,
    AlertBook,
    AlertCheck,
    AlertError,
    Webhook,
    alerting,
    check_alerts,
    firing_alerts,
)
from engine.project._apply import (
    PlannedApply,
    apply_records,
    check_not_stale,
    fingerprint_of,
    locked,
    planned_records,
    record_full_apply,
)
from engine.project._assembly import (
    CatalogReads,
    MarketplaceRun,
    catalog_reads,
    catalog_records,
    open_marketplace,
    open_state,
)
from engine.project._config import (
    AlertsConfig,
    ConfigError,
    Project,
    ServeConfig,
    SourceConfig,
    StatusConfig,
    VtexAccount,
    load_project,
)
from engine.project._dashboard_data import FAILED, ListingProblem, ListingProblems, listing_problems
from engine.project._liststatus import StatusRefresh, refresh_listing_statuses
from engine.project._log import (
    LOG_LEVELS,
    IntegrationLog,
    LogEntry,
    LogLevel,
    RecurringError,
    integration_log,
    pattern_of,
)
from engine.project._metrics import (
    StoreCollector,
    metrics_route,
    metrics_token,
    worker_metrics,
)
from engine.project._order_desks import order_desks, order_marketplaces, vtex_orders_account
from engine.project._rebuild import rebuild_state
from engine.project._report import MarketplaceReport, Report, compute_report, project_report
from engine.project._status import (
    FailingSku,
    InvalidReason,
    MarketplaceStatus,
    ProjectStatus,
    invalid_by_reason,
    marketplace_status,
    noted_reasons,
    project_status,
)
from engine.project._sync import SYNC_BATCH, MarketplaceOutcome, SyncReads, SyncReport, SyncWorker, sync_once
from engine.project._workers import (
    HEARTBEAT,
    SHARD_TIMEOUT,
    ShardedApply,
    WorkerOptions,
    WorkersNeedPostgresError,
    apply_sharded,
    require_postgres,
    run_worker,
)

__all__ = [
    "FAILED",
    "HEARTBEAT",
    "LOG_LEVELS",
    "SHARD_TIMEOUT",
    "SYNC_BATCH",
    "Alert",
    "AlertBook",
    "AlertCheck",
    "AlertError",
    "AlertsConfig",
    "CatalogReads",
    "ConfigError",
    "FailingSku",
    "IntegrationLog",
    "InvalidReason",
    "ListingProblem",
    "ListingProblems",
    "LogEntry",
    "LogLevel",
    "MarketplaceOutcome",
    "MarketplaceReport",
    "MarketplaceRun",
    "MarketplaceStatus",
    "PlannedApply",
    "Project",
    "ProjectStatus",
    "RecurringError",
    "Report",
    "ServeConfig",
    "ShardedApply",
    "SourceConfig",
    "StatusConfig",
    "StatusRefresh",
    "StoreCollector",
    "SyncReads",
    "SyncReport",
    "SyncWorker",
    "VtexAccount",
    "Webhook",
    "WorkerOptions",
    "WorkersNeedPostgresError",
    "alerting",
    "apply_records",
    "apply_sharded",
    "catalog_reads",
    "catalog_records",
    "check_alerts",
    "check_not_stale",
    "compute_report",
    "fingerprint_of",
    "firing_alerts",
    "integration_log",
    "invalid_by_reason",
    "listing_problems",
    "load_project",
    "locked",
    "marketplace_status",
    "metrics_route",
    "metrics_token",
    "noted_reasons",
    "open_marketplace",
    "open_state",
    "order_desks",
    "order_marketplaces",
    "pattern_of",
    "planned_records",
    "project_report",
    "project_status",
    "rebuild_state",
    "record_full_apply",
    "refresh_listing_statuses",
    "require_postgres",
    "run_worker",
    "sync_once",
    "vtex_orders_account",
    "worker_metrics",
]
