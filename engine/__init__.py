"""Tradepost's engine: rule files, their compiler, the plan and the sync executor.

Only the names below are public; every ``engine._*`` module is an
implementation detail and may change without notice. The subpackages group
the public names of each subsystem: :mod:`engine.connectors` (the contract
every plug-in implements, and the registry that finds plug-ins),
:mod:`engine.model` (the records every layer speaks), :mod:`engine.rules`
(the rule language), :mod:`engine.catalog`, :mod:`engine.project` (the assembly: the only
place a run is built from a config), :mod:`engine.sync`,
:mod:`engine.state`, :mod:`engine.orders`, :mod:`engine.secrets`,
:mod:`engine.jsonio` and :mod:`engine.failpoints`.
"""

from __future__ import annotations

from engine import (
    catalog,
    connectors,
    failpoints,
    jsonio,
    model,
    orders,
    project,
    rules,
    secrets,
    state,
    sync,
)
from engine._diagnostics import Diagnostic, EvaluationError, Rejected, RuleError, Span, TradepostError
from engine.model._catalog import CatalogRecord, MalformedRecord, Price, Product, Sku, Stock, WarehouseStock
from engine.project._rulecheck import check_all, check_rules, compile_rules
from engine.rules._check import CheckResult
from engine.rules._compiled import CompiledRules
from engine.rules._rulefile import RuleFile, load_rules, rule_file_schema
from engine.rules._runtime import Context
from engine.sync._ruletests import TestFileResult, run_test_file

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
    "model",
    "orders",
    "project",
    "rule_file_schema",
    "rules",
    "run_test_file",
    "secrets",
    "state",
    "sync",
]
