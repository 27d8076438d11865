"""Positions, diagnostics and the typed errors the engine raises.

Every problem a user can cause carries a :class:`Span` from the token that
caused it to the message that reports it (see STYLE.md, "errors carry
positions"). Library exceptions (lark, ruamel, pydantic, jinja2) are turned
into :class:`Diagnostic` objects at the boundary, so that nothing but our own
types ever reaches the CLI.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Literal

Severity = Literal["error", "warning"]

LINE_BREAK = re.compile("\r\n|[\r\n]")
"""Line breaks as editors count them: YAML also breaks on NEL, LS and PS, editors do not."""


def split_lines(text: str) -> list[str]:
    """Split text into lines where an editor shows a new line."""
    return LINE_BREAK.split(text)


@dataclass(frozen=True)
class Span:
    """A range in a source file; lines and columns are 1-based, end exclusive."""

    file: str
    line: int
    column: int
    end_line: int | None = None
    end_column: int | None = None

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.column}"

    def to_dict(self) -> dict[str, object]:
        return {
            "file": self.file,
            "line": self.line,
            "column": self.column,
            "end_line": self.end_line or self.line,
            "end_column": self.end_column or self.column + 1,
        }


@dataclass(frozen=True)
class Diagnostic:
    """One problem in a rule file: where, a stable code, what is wrong and how to fix it."""

    code: str
    message: str
    span: Span
    severity: Severity = "error"
    hint: str | None = None
    source_line: str | None = field(default=None, compare=False)

    def to_dict(self) -> dict[str, object]:
        return {
            "code": self.code,
            "severity": self.severity,
            "message": self.message,
            "hint": self.hint,
            **self.span.to_dict(),
        }

    def render(self) -> str:
        """The diagnostic as text: location, message, the source line and a caret under the span."""
        head = f"{self.span}: {self.severity}[{self.code}]: {self.message}"
        lines = [head]
        if self.source_line is not None:
            source = self.source_line.rstrip("\n").expandtabs(1)
            start = max(self.span.column - 1, 0)
            if self.span.end_line in (None, self.span.line) and self.span.end_column:
                width = max(self.span.end_column - self.span.column, 1)
            else:
                width = max(len(source) - start, 1)
            gutter = f"{self.span.line:>4} | "
            lines.append(gutter + source)
            lines.append(" " * (len(gutter) - 2) + "| " + " " * start + "^" * width)
        if self.hint:
            lines.append(f"  = help: {self.hint}")
        return "\n".join(lines)


class TradepostError(Exception):
    """Base of every error the engine raises on purpose."""


class RuleError(TradepostError):
    """A rule file (or its includes) has errors; all of them are in ``diagnostics``."""

    def __init__(self, diagnostics: Sequence[Diagnostic]) -> None:
        self.diagnostics = list(diagnostics)
        first = self.diagnostics[0].render() if self.diagnostics else "rule file has errors"
        more = len(self.diagnostics) - 1
        super().__init__(first + (f"\n(and {more} more)" if more > 0 else ""))


class EvaluationError(TradepostError):
    """A rule failed for one SKU at run time: the SKU is invalid, the run goes on.

    ``span`` is the location of the rule that failed, so the per-SKU reason
    points at the same file:line:col as a compile-time diagnostic would.
    """

    def __init__(self, message: str, span: Span | None = None, code: str = "TP900") -> None:
        self.message = message
        self.span = span
        self.code = code
        super().__init__(f"{span}: {message}" if span else message)


class Rejected(EvaluationError):
    """Raised by ``reject(message)``: the rule file chose to refuse this SKU."""

    def __init__(self, message: str, span: Span | None = None) -> None:
        super().__init__(message, span, code="TP901")


def did_you_mean(name: str, candidates: Iterable[str]) -> str | None:
    """A "did you mean" suggestion for a misspelt name, or None when nothing is close."""
    pool = list(candidates)
    matches = difflib.get_close_matches(name, pool, n=1, cutoff=0.6)
    if not matches:
        lowered = {c.lower(): c for c in pool}
        if name.lower() in lowered:
            return lowered[name.lower()]
        return None
    return matches[0]


class DiagnosticSink:
    """Collects diagnostics for one run (STYLE.md: collect, then report once)."""

    def __init__(self, sources: dict[str, list[str]] | None = None) -> None:
        self.items: list[Diagnostic] = []
        self.sources: dict[str, list[str]] = sources if sources is not None else {}

    def add_source(self, file: str, text: str) -> None:
        self.sources[file] = split_lines(text)

    def error(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self._add(code, message, span, "error", hint)

    def warning(self, code: str, message: str, span: Span, hint: str | None = None) -> None:
        self._add(code, message, span, "warning", hint)

    def _add(self, code: str, message: str, span: Span, severity: Severity, hint: str | None) -> None:
        lines = self.sources.get(span.file)
        source = lines[span.line - 1] if lines and 0 < span.line <= len(lines) else None
        diagnostic = Diagnostic(code, message, span, severity, hint, source)
        if diagnostic not in self.items:
            self.items.append(diagnostic)

    def has_error_at(self, span: Span) -> bool:
        """Whether a node already has an error, so a later pass does not report it twice."""
        return any(d.span.line == span.line and d.span.column == span.column for d in self.errors)

    @property
    def errors(self) -> list[Diagnostic]:
        return [d for d in self.items if d.severity == "error"]

    def raise_if_errors(self) -> None:
        if self.errors:
            raise RuleError(sorted(self.items, key=_order))

    def sorted(self) -> list[Diagnostic]:
        return sorted(self.items, key=_order)


def _order(d: Diagnostic) -> tuple[str, int, int, str]:
    return (d.span.file, d.span.line, d.span.column, d.code)
