"""Tradepost's engine: rule files, their compiler, the plan and the sync executor.

Only the names below are public; every ``engine._*`` module is an
implementation detail and may change without notice. The subpackages group
the public names of each subsystem: :mod:`engine.connectors` (the contract
every plug-in implements, and the registry that finds plug-ins),
:mod:`engine.catalog`, :mod:`engine.project`, :mod:`engine.sync`,
:mod:`engine.state`, :mod:`engine.orders`, :mod:`engine.secrets`,
:mod:`engine.jsonio` and :mod:`engine.failpoints`.
"""

from __future__ import annotations

from engine import catalog, connectors, failpoints, jsonio, orders, project, secrets, state, sync
from engine._catalog import CatalogRecord, MalformedRecord, Price, Product, Sku, Stock, WarehouseStock
from engine._check import CheckResult, check_all, check_rules, compile_rules
from engine._compiler import CompiledRules
from engine._diagnostics import Diagnostic, EvaluationError, Rejected, RuleError, Span, TradepostError
from engine._rulefile import RuleFile, load_rules, rule_file_schema
from engine._ruletests import TestFileResult, run_test_file
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
    "TestFileResult",
    "TradepostError",
    "WarehouseStock",
    "catalog",
    "check_all",
    "check_rules",
    "compile_rules",
    "connectors",
    "failpoints",
    "jsonio",
    "load_rules",
    "orders",
    "project",
    "rule_file_schema",
    "run_test_file",
    "secrets",
    "state",
    "sync",
]
