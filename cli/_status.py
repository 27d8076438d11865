"""`tradepost status`: each marketplace at a glance, and an exit code a scheduler can page on.

Exit 0 healthy, 2 when a figure passes a threshold of the config's ``status:`` section (each
problem is said), 1 when the config or the state store cannot be read (a message, no traceback),
or when ``--refresh`` could not read a marketplace's listing statuses (each other marketplace is
still refreshed, and the status still shown).
A rich table on a terminal, plain lines into a pipe (the first two kinds kept as they were, so
scripts that read them still do), one JSON document with ``--json``.
"""

from __future__ import annotations

import asyncio
import sys
import time
from pathlib import Path

import click
from rich.markup import escape
from rich.table import Table

from cli._plan import _project, age, config_option
from cli._render import console
from engine import TradepostError
from engine.jsonio import dumps
from engine.project import (
    MarketplaceStatus,
    Project,
    ProjectStatus,
    StatusRefresh,
    open_marketplace,
    open_state,
    project_status,
    refresh_listing_statuses,
)
from engine.rules import RuleError
from engine.state import FullPass, StateStore

EXIT_HEALTHY = 0
EXIT_NEEDS_A_PERSON = 2
EXIT_REFRESH_FAILED = 1


@click.command()
@config_option
@click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
@click.option(
    "--refresh",
    is_flag=True,
    help="First read each marketplace's own status of our listings (batched, paced) into the state.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document (for monitoring).")
def status(config_path: Path | None, marketplaces: tuple[str, ...], refresh: bool, as_json: bool) -> None:
    """Show each marketplace at a glance, from the state store; exit 2 when something needs a person.

    Per marketplace: listings live, SKUs failing with their last error, invalid records by reason
    code, the last full apply and plan, orders by state and the oldest held, the lock. Also the
    notification queue. The thresholds are the config's `status:` section (see README, Status and
    log). A full apply is `tradepost apply` without a saved plan, over a catalog read to its end,
    with every change applied: the periodic reconciliation that catches what notifications missed.

    The marketplace's own status of our listings (active, paused, under review, rejected, with its
    reason) is what the last `--refresh` read, where the marketplace's API reports one; a listing
    rejected counts against `max_rejected`. A refresh that fails (the marketplace unreachable, or
    answering what is not its API) keeps the statuses read before, and exits 1.
    """
    project = _project(config_path)
    names = project.marketplace_names(marketplaces)
    with open_state(project) as store:
        refreshed = [_refresh(project, store, name) for name in names] if refresh else []
        found = project_status(project, store, names)
    failed = [r for r in refreshed if r.error is not None]
    if as_json:
        document = found.to_dict()
        if refresh:
            document["refreshed"] = [r.to_dict() for r in refreshed]
        click.echo(dumps(document, indent=2))
    else:
        for done in refreshed:
            if done.error is None:
                click.echo(done.line())
        if sys.stdout.isatty():
            _render_table(found)
        else:
            for line in status_lines(found):
                click.echo(line)
    for done in failed:
        click.echo(f"error: {done.line()}", err=True)
    sys.exit(EXIT_REFRESH_FAILED if failed else EXIT_HEALTHY if found.healthy else EXIT_NEEDS_A_PERSON)


def _refresh(project: Project, store: StateStore, name: str) -> StatusRefresh:
    """One marketplace's listing statuses read into ``store``; a rule file that does not compile
    is that marketplace's error, so the others are still refreshed."""
    try:
        run = open_marketplace(project, name)
    except RuleError as exc:
        why = f"{project.rules_path(name)} has {len(exc.diagnostics)} problem(s); run `tradepost check`"
        return StatusRefresh(name, True, error=why)
    except TradepostError as exc:  # the connector refuses its options
        return StatusRefresh(name, True, error=str(exc))
    return asyncio.run(refresh_listing_statuses(run, project, store))


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
        _remote_line(market, now),
        *(
            f"{r.status} {r.code}: {r.count} listing(s), e.g. {r.sample_sku}: {r.reason}"
            for r in market.status_reasons
        ),
        f"orders: {_orders(market, now)}",
        f"lock: {market.lock.describe() if market.lock else 'free'}",
    ]
    return details + [f"needs a person: {problem}" for problem in market.problems]


def _remote_line(market: MarketplaceStatus, now: float) -> str:
    line = f"marketplace's own status of the listings: {market.remote_status}"
    checked = market.statuses_checked_at
    return line if checked is None else f"{line} (read {age(now - checked)} ago)"


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
