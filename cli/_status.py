"""`tradepost status`: each marketplace at a glance, and an exit code a scheduler can page on.

Exit 0 healthy, 2 when a figure passes a threshold of the config's ``status:`` section (each
problem is said), 1 when the config or the state store cannot be read (a message, no traceback).
A rich table on a terminal, plain lines into a pipe (the first two kinds kept as they were, so
scripts that read them still do), one JSON document with ``--json``.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cli._plan import _project, age, config_option
from cli._render import console
from engine.jsonio import dumps
from engine.project import MarketplaceStatus, ProjectStatus, open_state, project_status
from engine.state import FullPass

EXIT_HEALTHY = 0
EXIT_NEEDS_A_PERSON = 2


@click.command()
@config_option
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for monitoring).")
def status(config_path: Path | None, marketplaces: tuple[str, ...], as_json: bool) -> None:
    """Show each marketplace at a glance, from the state store; exit 2 when something needs a person.

    Per marketplace: listings live, SKUs failing with their last error, invalid records by reason
    code, the last full apply and plan, orders by state and the oldest held, the lock. Also the
    notification queue. The thresholds are the config's `status:` section (see README, Status and
    log). A full apply is `tradepost apply` without a saved plan, over a catalog read to its end,
    with every change applied: the periodic reconciliation that catches what notifications missed.
    """
    project = _project(config_path)
    names = project.marketplace_names(marketplaces)
    with open_state(project) as store:
        found = project_status(project, store, names)
    if as_json:
        click.echo(dumps(found.to_dict(), indent=2))
    elif sys.stdout.isatty():
        _render_table(found)
    else:
        for line in status_lines(found):
            click.echo(line)
    sys.exit(EXIT_HEALTHY if found.healthy else EXIT_NEEDS_A_PERSON)


def status_lines(found: ProjectStatus) -> list[str]:
    """The status as plain lines: the queue, then each marketplace's pass line and its details."""
    counts = found.notifications
    line = f"notifications queued: {counts.queued} ({counts.leased} being processed)"
    if counts.oldest_received_at is not None:
        line += f"; the oldest arrived {max(0, found.at - counts.oldest_received_at):.0f} s ago"
    lines = [line]
    for market in found.marketplaces:
        lines.append(
            f"{market.name}: last full apply {_describe(market.last_full_apply, found.at)}; "
            f"last full plan {_describe(market.last_full_plan, found.at)}"
        )
        lines.extend(f"  {detail}" for detail in _details(market, found.at))
    lines.append(_verdict(found))
    return lines


def _details(market: MarketplaceStatus, now: float) -> list[str]:
    details = [
        f"listings live: {market.live}; failing: {market.failing}; invalid: {market.invalid}",
        *(f"failing {e.sku_id} ({age(now - e.recorded_at)} ago): {e.error}" for e in market.last_errors),
        *(
            f"invalid {r.code}: {r.count} SKU(s), e.g. {r.sample_sku}: {r.message}"
            + (f" ({r.location})" if r.location else "")
            for r in market.invalid_reasons
        ),
        f"marketplace's own status of the listings: {market.remote_status}",
        f"orders: {_orders(market, now)}",
        f"lock: {market.lock.describe() if market.lock else 'free'}",
    ]
    return details + [f"needs a person: {problem}" for problem in market.problems]


def _orders(market: MarketplaceStatus, now: float) -> str:
    if not market.orders:
        return "none"
    text = ", ".join(f"{state} {count}" for state, count in sorted(market.orders.items()))
    if market.oldest_held_at is not None:
        text += f"; the oldest held for {age(now - market.oldest_held_at)}"
    return text


def _verdict(found: ProjectStatus) -> str:
    if found.healthy:
        return "status: healthy"
    queue = [f"needs a person: {p}" for p in found.queue_problems]
    return "\n".join([*queue, f"status: {len(found.problems)} problem(s) need a person"])


def _describe(done: FullPass | None, now: float) -> str:
    if done is None:
        return "never"
    at = time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime(done.finished_at))
    text = f"{at} ({age(now - done.finished_at)} ago)"
    return text + (f", {done.applied} applied, {done.failed} failed" if done.kind == "apply" else "")


def _render_table(found: ProjectStatus) -> None:
    """The terminal's view: one row per marketplace, then each one's details and problems."""
    out = console()
    table = Table(show_edge=False, pad_edge=False)
    for column in ("marketplace", "live", "failing", "invalid", "full apply", "orders", "lock"):
        table.add_column(column, justify="right" if column in ("live", "failing", "invalid") else "left")
    for market in found.marketplaces:
        applied = market.last_full_apply
        table.add_row(
            f"[bold red]{escape(market.name)}[/]" if market.problems else escape(market.name),
            str(market.live),
            f"[red]{market.failing}[/]" if market.failing else "0",
            str(market.invalid),
            "never" if applied is None else f"{age(found.at - applied.finished_at)} ago",
            escape(_orders(market, found.at)),
            "held" if market.lock else "free",
        )
    out.print(escape(status_lines(found)[0]))
    out.print(table)
    for market in found.marketplaces:
        out.print(f"[bold]{escape(market.name)}[/]")
        for detail in _details(market, found.at)[1:]:
            out.print(f"  {escape(detail)}", style="red" if detail.startswith("needs a person") else None)
    out.print(escape(_verdict(found)), style="green" if found.healthy else "bold red")
