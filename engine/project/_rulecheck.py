"""Rule files checked against the connectors installed here: what ``engine.check_rules`` means.

The rule language (:mod:`engine.rules`) knows no plug-in, so whether ``marketplace: amazn``
names a connector is decided here, where the registry is at hand: a rule file that passes
these checks is one this installation can run. `tradepost check`, `tradepost test` and every
run built from a config go through these, or pass the same names themselves.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from functools import cache
from pathlib import Path

from engine.connectors._registry import available_connectors, connector_class
from engine.model._listing import STANDARD_FIELDS
from engine.rules import _check
from engine.rules._check import CheckResult
from engine.rules._compiled import CompiledRules
from engine.sync._ruletests import check_test_file


def check_rules(path: str | Path) -> CheckResult:
    """Every diagnostic of one rule file, its marketplace checked against the installed connectors."""
    return _check.check_rules(path, available_connectors(), listing_keys())


def check_all(paths: Iterable[str | Path]) -> list[CheckResult]:
    """Every diagnostic of several rule files, and what only shows across them (stock over 100%).

    A rule-test file (``NAME.test.yaml``, as a shell glob ``rules/*.yaml`` brings them in) is
    checked as a rule test, in its place among the results.
    """
    paths = list(paths)
    results = iter(
        _check.check_all([p for p in paths if not _is_test_file(p)], available_connectors(), listing_keys())
    )
    return [check_test_file(Path(p)) if _is_test_file(p) else next(results) for p in paths]


def _is_test_file(path: str | Path) -> bool:
    return Path(path).name.endswith(".test.yaml")


def compile_rules(path: str | Path) -> CompiledRules:
    """A rule file compiled for a run here; :class:`RuleError` with every diagnostic if it has errors."""
    return _check.compile_rules(path, available_connectors(), listing_keys())


@cache
def listing_keys() -> Mapping[str, frozenset[str]]:
    """Marketplace -> the listing keys its connector reads, for the connectors that declare them."""
    known: dict[str, frozenset[str]] = {}
    for name in available_connectors():
        try:
            declared = connector_class(name).listing_fields
        except Exception:  # a plug-in that does not load is reported when a run needs it
            continue
        if declared is not None:
            known[name] = frozenset((*STANDARD_FIELDS, *declared))
    return known
