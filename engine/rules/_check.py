"""The entry points for rule files: check them (report everything) or compile them (or raise).

`tradepost check` and the Python API share this code, so what the CLI reports
is exactly what a scheduler run would refuse. The rule language knows no plug-in: the
marketplaces a file may name come from the caller (``marketplaces``, the installed
connectors when :mod:`engine.project` or the public ``engine.check_rules`` calls); without
them the name is left unchecked.
"""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from engine._diagnostics import Diagnostic, DiagnosticSink, RuleError, Span, split_lines
from engine.rules._compiled import CompiledRules
from engine.rules._expressions import constant_value
from engine.rules._passes import RuleUnit, run_passes


@dataclass
class CheckResult:
    """Diagnostics of one rule file (errors and warnings), in file order."""

    file: str
    diagnostics: list[Diagnostic] = field(default_factory=list)
    compiled: CompiledRules | None = None

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.diagnostics if d.severity == "error"]

    @property
    def ok(self) -> bool:
        return not self.errors


def check_rules(
    path: str | Path,
    marketplaces: Collection[str] | None = None,
    listing_keys: Mapping[str, Collection[str]] | None = None,
) -> CheckResult:
    """Load and compile one rule file, collecting every diagnostic instead of stopping at the first.

    ``marketplaces``: the names ``marketplace:`` may take; None leaves it unchecked.
    ``listing_keys``: marketplace -> the listing keys its connector reads; a marketplace not in
    it has its keys unchecked.
    """
    sink = DiagnosticSink()
    unit = run_passes(RuleUnit(Path(path), marketplaces, listing_keys), sink)
    return CheckResult(str(path), sink.sorted(), unit.compiled if not sink.errors else None)


def check_all(
    paths: Iterable[str | Path],
    marketplaces: Collection[str] | None = None,
    listing_keys: Mapping[str, Collection[str]] | None = None,
) -> list[CheckResult]:
    """Check several rule files, then what only shows across them (stock shared beyond 100%)."""
    results = [check_rules(p, marketplaces, listing_keys) for p in paths]
    _check_stock_shares(results)
    return results


def _check_stock_shares(results: list[CheckResult]) -> None:
    """Warn when the shares of one warehouse across rule files add up to more than 100%.

    Each marketplace then believes it may sell that share of the same units: when they all
    sell at once, the store oversells. A file with no warehouse list takes from every one.
    """
    shares: list[tuple[CheckResult, tuple[str, ...] | None, Decimal]] = []
    for result in results:
        compiled = result.compiled
        if compiled is None:
            continue
        share = constant_value(compiled.stock.share)
        if isinstance(share, Decimal | int):
            shares.append((result, compiled.stock.warehouses, Decimal(share)))
    named = sorted({w for _, warehouses, _ in shares if warehouses for w in warehouses})
    for warehouse in named or ["(all)"]:
        takers = [(r, s) for r, warehouses, s in shares if warehouses is None or warehouse in warehouses]
        total = sum((s for _, s in takers), Decimal(0))
        if total <= 1 or len(takers) < 2:
            continue
        parts = ", ".join(f"{r.file} ({_percent(s)})" for r, s in takers)
        for result, _ in takers:
            assert result.compiled is not None
            span = result.compiled.stock.share.span
            message = (
                f"warehouse '{warehouse}' is shared {_percent(total)} across rule files: {parts}; "
                "simultaneous sales can oversell"
            )
            result.diagnostics.append(
                Diagnostic(
                    "TP350",
                    message,
                    span,
                    "warning",
                    "lower the shares so they add up to 100% at most",
                    _source_line(span),
                )
            )


def _percent(value: Decimal) -> str:
    return f"{(value * 100).normalize():f}%"


def _source_line(span: Span) -> str | None:
    try:
        lines = split_lines(Path(span.file).read_text(encoding="utf-8"))
    except OSError:
        return None
    return lines[span.line - 1] if 0 < span.line <= len(lines) else None


def compile_rules(
    path: str | Path,
    marketplaces: Collection[str] | None = None,
    listing_keys: Mapping[str, Collection[str]] | None = None,
) -> CompiledRules:
    """Compile a rule file for running; raises :class:`RuleError` with all diagnostics if it has errors."""
    result = check_rules(path, marketplaces, listing_keys)
    if result.compiled is None:
        raise RuleError(result.errors or result.diagnostics)
    result.compiled.warnings = [d for d in result.diagnostics if d.severity == "warning"]
    return result.compiled
