"""The rule language: a marketplace's YAML rule file read, checked and compiled once.

The passes run in order, each testable alone: :mod:`engine.rules._yaml` (located YAML: every
scalar knows its file:line:col), :mod:`engine.rules._rulefile` (the file's shape, pydantic),
:mod:`engine.rules._expressions` (parse, resolve and type-check, lower to Python),
:mod:`engine.rules._templates` (jinja2 templates, sandboxed and bounded), and
:mod:`engine.rules._compiler` (a :class:`CompiledRules` the planner evaluates per SKU). Every
problem becomes a positioned :class:`Diagnostic`; a rule file cannot run code nor exhaust time
or memory (:mod:`engine.rules._limits`).
"""

from __future__ import annotations

from engine._diagnostics import Diagnostic, EvaluationError, Rejected, RuleError, Span
from engine.rules._check import CheckResult, check_all, check_rules, compile_rules
from engine.rules._compiled import CompiledRules
from engine.rules._coverage import Coverage, catalog_coverage
from engine.rules._rulefile import RuleFile, load_rules, rule_file_schema
from engine.rules._runtime import Context

__all__ = [
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
]
