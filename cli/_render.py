"""Rendering engine data for people: diagnostics with colour on a terminal, plain text elsewhere."""

from __future__ import annotations

from collections.abc import Sequence

from rich.console import Console
from rich.text import Text

from engine import Diagnostic

_STYLE = {"error": "bold red", "warning": "bold yellow"}


def console(stderr: bool = False) -> Console:
    """A console that colours only on a terminal, so logs and pipes get plain text."""
    return Console(stderr=stderr, highlight=False, soft_wrap=True)


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
