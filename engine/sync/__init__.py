"""The sync: a catalog planned against the state per marketplace, saved as a plan file, applied.

Plan and apply share one path (STYLE.md 9): a :class:`Change` is data; a saved plan is applied
only while its rules and state are those it was made from.
"""

from __future__ import annotations

from engine.sync._deletes import MassDelete, mass_delete
from engine.sync._executor import EXIT_PARTIAL, ApplySummary, SkuResult
from engine.sync._plan import Change, PlanSummary
from engine.sync._planfile import PlanWriter, SavedPlan, change_record, checked_changes, read_plan
from engine.sync._planfile import check_rules as check_plan_rules

__all__ = [
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
]
