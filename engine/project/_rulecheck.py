"""Rule files checked against the connectors installed here: what ``engine.check_rules`` means.

The rule language (:mod:`engine.rules`) knows no plug-in, so whether ``marketplace: amazn``
names a connector is decided here, where the registry is at hand: a rule file that passes
these checks is one this installation can run. `tradepost check`, `tradepost test` and every
run built from a config go through these, or pass the same names themselves.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

from engine.connectors._registry import available_connectors
from engine.rules import _check
from engine.rules._check import CheckResult
from engine.rules._compiled import CompiledRules


def check_rules(path: str | Path) -> CheckResult:
    """Every diagnostic of one rule file, its marketplace checked against the installed connectors."""
    return _check.check_rules(path, available_connectors())


def check_all(paths: Iterable[str | Path]) -> list[CheckResult]:
    """Every diagnostic of several rule files, and what only shows across them (stock over 100%)."""
    return _check.check_all(paths, available_connectors())


def compile_rules(path: str | Path) -> CompiledRules:
    """A rule file compiled for a run here; :class:`RuleError` with every diagnostic if it has errors."""
    return _check.compile_rules(path, available_connectors())
