"""The sync: a catalog planned against the state per marketplace, saved as a plan file, applied.

Plan and apply share one path (STYLE.md 9): a :class:`Change` is data; a saved plan is applied
only while its rules and state are those it was made from.
"""

from __future__ import annotations

from engine._apply import EXIT_PARTIAL, ApplySummary, SkuResult
from engine._applyrun import apply_records, check_not_stale, fingerprint_of, locked, planned_records
from engine._deletes import MassDelete, mass_delete
from engine._plan import Change, PlanSummary
from engine._planfile import PlanWriter, change_record, checked_changes, read_plan
from engine._planfile import check_rules as check_plan_rules
from engine._run import MarketplaceRun, catalog_records, open_marketplace

__all__ = [
    "EXIT_PARTIAL",
    "ApplySummary",
    "Change",
    "MarketplaceRun",
    "MassDelete",
    "PlanSummary",
    "PlanWriter",
    "SkuResult",
    "apply_records",
    "catalog_records",
    "change_record",
    "check_not_stale",
    "check_plan_rules",
    "checked_changes",
    "fingerprint_of",
    "locked",
    "mass_delete",
    "open_marketplace",
    "planned_records",
    "read_plan",
]
