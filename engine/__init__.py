"""Tradepost's engine: rule files, their compiler, the plan and the sync executor.

Only the names below are public; every ``engine._*`` module is an
implementation detail and may change without notice.
"""

from __future__ import annotations

from engine._catalog import CatalogRecord, MalformedRecord, Price, Product, Sku, Stock, WarehouseStock
from engine._check import CheckResult, check_all, check_rules, compile_rules
from engine._compiler import CompiledRules
from engine._diagnostics import Diagnostic, EvaluationError, Rejected, RuleError, Span, TradepostError
from engine._rulefile import RuleFile, load_rules, rule_file_schema
from engine._runtime import Context

__all__ = [
    "CatalogRecord",
    "CheckResult",
    "CompiledRules",
    "Context",
    "Diagnostic",
    "EvaluationError",
    "MalformedRecord",
    "Price",
    "Product",
    "Rejected",
    "RuleError",
    "RuleFile",
    "Sku",
    "Span",
    "Stock",
    "TradepostError",
    "WarehouseStock",
    "check_all",
    "check_rules",
    "compile_rules",
    "load_rules",
    "rule_file_schema",
]
