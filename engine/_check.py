"""The entry points for rule files: check them (report everything) or compile them (or raise).

`tradepost check` and the Python API share this code, so what the CLI reports
is exactly what a scheduler run would refuse.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path

from engine._compiler import CompiledRules, compile_loaded
from engine._diagnostics import Diagnostic, DiagnosticSink, RuleError
from engine._rulefile import load_rules as _load


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


def check_rules(path: str | Path) -> CheckResult:
    """Load and compile one rule file, collecting every diagnostic instead of stopping at the first."""
    sink = DiagnosticSink()
    loaded = _load(path, sink)
    compiled = compile_loaded(loaded, sink) if loaded is not None else None
    return CheckResult(str(path), sink.sorted(), compiled if not sink.errors else None)


def check_all(paths: Iterable[str | Path]) -> list[CheckResult]:
    return [check_rules(p) for p in paths]


def compile_rules(path: str | Path) -> CompiledRules:
    """Compile a rule file for running; raises :class:`RuleError` with all diagnostics if it has errors."""
    result = check_rules(path)
    if result.compiled is None:
        raise RuleError(result.errors or result.diagnostics)
    result.compiled.warnings = [d for d in result.diagnostics if d.severity == "warning"]
    return result.compiled
