"""`tradepost log`: the integration log from the state store, newest first, recurring errors grouped.

A rich table on a terminal, plain lines into a pipe (one entry a line, tab-separated), one JSON
document with ``--json``. Exit 0, or 1 when the config or the state store cannot be read.
"""

from __future__ import annotations

import re
import sys
import time
from pathlib import Path
from typing import cast

import click
from rich.markup import escape
from rich.table import Table

from cli._plan import _project, config_option
from cli._render import console
from engine.jsonio import dumps
from engine.project import LOG_LEVELS, IntegrationLog, LogEntry, LogLevel, integration_log, open_state

_UNITS = {"s": 1, "m": 60, "min": 60, "h": 3600, "d": 86400, "w": 604800}
_SINCE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*(s|min|m|h|d|w)\s*$")


def since_seconds(text: str) -> float:
    """``7d``, ``12h``, ``30min`` (or ``30m``), ``90s``, ``2w``: how far back, in seconds."""
    match = _SINCE.match(text)
    if match is None:
        raise click.BadParameter(
            f"{text!r} is not an age such as 7d, 12h, 30min or 90s", param_hint="--since"
        )
    return float(match.group(1)) * _UNITS[match.group(2)]


@click.command()
@config_option
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option("--sku", help="Only this SKU's entries (its failure, its invalid reasons).")
@click.option(
    "--level",
    type=click.Choice(LOG_LEVELS),
    default="info",
    show_default=True,
    help="The least severe level shown: error, warning (and errors), info (everything).",
)
@click.option("--since", "since", help="Only entries this recent: 7d, 12h, 30min, 90s (default: all).")
@click.option("--limit", default=200, show_default=True, help="Entries shown at most (0: all).")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (every entry, no limit).")
def log(
    config_path: Path | None,
    marketplaces: tuple[str, ...],
    sku: str | None,
    level: str,
    since: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Show the integration log: runs, SKUs failing, invalid records with their rule's location,
    order events; newest first, then the errors that recur, grouped with their counts.

    What the state store keeps: each SKU's latest failure (not earlier ones), the reasons the last
    plan found a record invalid (not when: listed last), every run's figures and order event.
    """
    project = _project(config_path)
    names = project.marketplace_names(marketplaces)
    after = 0.0 if since is None else time.time() - since_seconds(since)
    with open_state(project) as store:
        found = integration_log(store, names, sku=sku, level=cast(LogLevel, level), since=after)
    if as_json:
        click.echo(dumps(found.to_dict(), indent=2))
        return
    shown = found.entries[:limit] if limit > 0 else found.entries
    if sys.stdout.isatty():
        _render_table(found, shown)
        return
    for entry in shown:
        click.echo(entry_line(entry))
    if len(shown) < len(found.entries):
        click.echo(f"... {len(found.entries) - len(shown)} more (--limit 0 shows every entry)")
    for line in recurring_lines(found):
        click.echo(line)


def _when(at: float | None) -> str:
    return "current" if at is None else time.strftime("%Y-%m-%d %H:%M:%S", time.gmtime(at))


def entry_line(entry: LogEntry) -> str:
    """One entry as a tab-separated line: when (UTC), marketplace, level, kind subject, message."""
    where = f" ({entry.location})" if entry.location else ""
    what = f"{entry.kind} {entry.subject}"
    return "\t".join((_when(entry.at), entry.marketplace, entry.level, what, entry.message + where))


def recurring_lines(found: IntegrationLog) -> list[str]:
    if not found.recurring:
        return []
    return ["recurring:"] + [
        f"  {r.count}x {r.pattern} ({', '.join(r.marketplaces)}; e.g. {r.sample.kind} {r.sample.subject})"
        for r in found.recurring
    ]


def _render_table(found: IntegrationLog, shown: list[LogEntry]) -> None:
    out = console()
    table = Table(show_edge=False, pad_edge=False)
    for column in ("when (UTC)", "marketplace", "level", "what", "message"):
        table.add_column(column)
    style = {"error": "red", "warning": "yellow", "info": ""}
    for entry in shown:
        message = entry.message + (f" ({entry.location})" if entry.location else "")
        table.add_row(
            _when(entry.at),
            escape(entry.marketplace),
            f"[{style[entry.level]}]{entry.level}[/]" if style[entry.level] else entry.level,
            escape(f"{entry.kind} {entry.subject}"),
            escape(message),
        )
    out.print(table)
    if len(shown) < len(found.entries):
        out.print(f"... {len(found.entries) - len(shown)} more (--limit 0 shows every entry)")
    for line in recurring_lines(found):
        out.print(escape(line))
