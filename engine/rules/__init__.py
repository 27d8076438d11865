"""The rule language: a marketplace's YAML rule file read, checked and compiled once.

A rule file runs through one tuple of passes, each testable alone
(:data:`engine.rules._passes.PASSES`): read the located YAML (:mod:`engine.rules._yaml`: every
scalar knows its file:line:col), load its shape (:mod:`engine.rules._rulefile`: includes,
pydantic, tables), compile its sections (:mod:`engine.rules._compiler`) into the records of
:mod:`engine.rules._compiled`, a :class:`CompiledRules` the planner evaluates per SKU. Each
expression goes through parse (:mod:`engine.rules._ast`), resolve and type-check
(:mod:`engine.rules._typecheck`) and lowering to Python (:mod:`engine.rules._lowering`), run in
order by :mod:`engine.rules._expressions`; templates are jinja2, sandboxed and bounded
(:mod:`engine.rules._templates`). Every problem becomes a positioned :class:`Diagnostic`; a rule
file cannot run code nor exhaust time or memory (:mod:`engine.rules._limits`). The language
knows no plug-in: whether ``marketplace:`` names an installed connector is checked against the
names the caller passes (``engine.check_rules`` passes the registry's).
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
