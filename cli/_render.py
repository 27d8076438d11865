"""Rendering engine data for people: diagnostics with colour on a terminal, plain text elsewhere.

Catalog and marketplace data (SKU ids, names, categories, reasons quoting values) is printed
as text, never as rich markup: a category named ``Shoes[/]`` must show, not raise. And no
string can fail to print: :func:`tolerant_output` makes stdout and stderr escape what their
encoding cannot write (a lone surrogate, or any non-ASCII on an ASCII terminal).
"""

from __future__ import annotations

import io
import sys
from collections import Counter
from collections.abc import Sequence

from rich.console import Console
from rich.markup import escape
from rich.text import Text

from engine import Diagnostic
from engine.catalog import Coverage

COVERAGE_VALUES_SHOWN = 8
"""Values per table in the text report; --format json lists them all."""

_STYLE = {"error": "bold red", "warning": "bold yellow"}


def tolerant_output() -> None:
    """Write what the terminal's encoding cannot hold as ``\\uXXXX`` escapes instead of failing."""
    for stream in (sys.stdout, sys.stderr):
        if isinstance(stream, io.TextIOWrapper):
            stream.reconfigure(errors="backslashreplace")


def console(stderr: bool = False) -> Console:
    """A console that colours only on a terminal, so logs and pipes get plain text."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


def print_plain(cells: Sequence[str]) -> None:
    """One row for a pipe, a file or a log: cells joined by tabs, none holding a tab or a line break.

    Written to ``sys.stdout`` itself, whose errors :func:`tolerant_output` set (``click.echo``
    would swap an ASCII stream for UTF-8 and write bytes a C locale cannot read).
    """
    line = "\t".join(" ".join(cell.split("\t")).replace("\r", " ").replace("\n", " ") for cell in cells)
    sys.stdout.write(line + "\n")


def render_diagnostics(diagnostics: Sequence[Diagnostic]) -> None:
    out = console()
    for diagnostic in diagnostics:
        lines = diagnostic.render().split("\n")
        head = Text(lines[0])
        head.stylize(_STYLE.get(diagnostic.severity, ""), lines[0].find(diagnostic.severity))
        out.print(head)
        for line in lines[1:]:
            style = "cyan" if line.lstrip().startswith(("|", "= help")) or "^" in line else ""
            out.print(Text(line, style=style))
        out.print()


def render_coverage(coverage: Coverage) -> None:
    """The catalog gaps of one rule file: unmapped categories and values missing from tables."""
    out = console()
    malformed = f", {coverage.malformed} malformed" if coverage.malformed else ""
    out.print(
        f"[bold]{coverage.marketplace}[/bold] ({coverage.file}): {coverage.records} records, "
        f"{coverage.selected} selected{malformed}"
    )
    if not coverage.unmapped and not coverage.missing:
        out.print("  every category is mapped and every looked-up value is in its table")
    for category, skus in coverage.unmapped.most_common():
        out.print(
            f"  [yellow]unmapped category[/yellow] {escape(category)}: {skus} SKU(s) invalid", highlight=False
        )
    shown: Counter[str] = Counter()
    for missing in sorted(coverage.missing.values(), key=lambda m: (m.table, -m.skus, m.value)):
        shown[missing.table] += 1
        if shown[missing.table] > COVERAGE_VALUES_SHOWN:
            continue
        effect = "default used" if missing.defaulted else "SKU(s) invalid"
        out.print(
            f"  [yellow]not in table {escape(missing.table)}[/yellow] {missing.path} = "
            f"{escape(repr(missing.value))}: "
            f"{missing.skus} {effect} ({missing.span})",
            highlight=False,
        )
    for table, count in shown.items():
        if count > COVERAGE_VALUES_SHOWN:
            hidden = count - COVERAGE_VALUES_SHOWN
            out.print(f"  … {hidden} more values not in table {table} (--format json lists all)")
