"""`tradepost orders`: bring marketplace orders into VTEX and their fulfilment back, with a review queue.

Every subcommand is made for schedulers as much as for people: no prompts,
``--json`` for machines, and exit codes 0 (done), 1 (error: nothing could
run), 3 (some orders failed a step or could not be read; they are kept and
retried by the next run).
"""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any

import click
from rich.markup import escape
from rich.table import Table

from cli._plan import _project, config_option
from cli._render import console
from engine.catalog import MINOR_UNITS
from engine.connectors import connector_class, order_channel_class
from engine.jsonio import dumps
from engine.orders import (
    EXIT_PARTIAL,
    OPEN,
    STATES,
    AfterSalesStore,
    OrderError,
    OrderStore,
    PullSummary,
    PushSummary,
    QuestionsSummary,
    ReturnsSummary,
    StoredOrder,
    pull_questions,
    pull_returns,
)
from engine.orders import approve as approve_order
from engine.orders import reject as reject_order
from engine.project import Project, open_state, order_desks, order_marketplaces
from engine.secrets import redact
from engine.state import StateStore

marketplace_option = click.option(
    "-m", "--marketplace", "marketplaces", multiple=True, help="Only this marketplace (repeatable)."
)
json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON (for schedulers and scripts).")


@click.group()
def orders() -> None:
    """Import marketplace orders into VTEX, review held ones, send invoices and tracking back.

    \b
    A scheduler runs `tradepost orders pull` then `tradepost orders push` every few minutes:
      pull     read new and changed orders; approve, hold or reject each by the divergence rules;
               read returns (a return moves its order to returned) and customer questions
      push     place approved orders in VTEX, authorize paid ones, cancel rejected ones,
               confirm VTEX invoices and tracking on the marketplace, pass cancellations on
    People work the review queue:
      list --held, show ID, approve ID, reject ID --reason TEXT
    """


@orders.command()
@config_option
@marketplace_option
@json_option
def pull(config_path: Path | None, marketplaces: Sequence[str], as_json: bool) -> None:
    """Read new and changed orders from the marketplaces and decide each new one.

    Returns and customer questions are read too, where the marketplace offers them: a return
    moves its order to returned (see `tradepost orders returns`, `tradepost questions list`).
    """
    project = _project(config_path)
    names = _taking_orders(project, order_marketplaces(project, marketplaces), "pull")
    after: list[ReturnsSummary | QuestionsSummary] = []

    async def pull_all(desk: Any, state: StateStore) -> PullSummary:
        pulled: PullSummary = await desk.pull()
        read = await _after_sales(desk, state, returns=True, questions=True)
        after.extend(summary for summary in read if summary.offered)
        return pulled

    summaries = _run(project, names, "pull", pull_all)
    out = console(stderr=True)
    if as_json:
        returns = [s.to_dict() for s in after if isinstance(s, ReturnsSummary)]
        questions = [s.to_dict() for s in after if isinstance(s, QuestionsSummary)]
        click.echo(
            dumps(
                {"pull": [s.to_dict() for s in summaries], "returns": returns, "questions": questions},
                indent=2,
            )
        )
    for summary in summaries:
        assert isinstance(summary, PullSummary)
        if not as_json:
            _print_pull(out, summary)
    if not as_json:
        for read in after:
            print_after_sales(out, read)
    _exit(summaries, partial=any(read.error for read in after))


@orders.command()
@config_option
@marketplace_option
@click.option("--order", "order_ids", multiple=True, help="Only this marketplace order id (repeatable).")
@json_option
def push(
    config_path: Path | None, marketplaces: Sequence[str], order_ids: Sequence[str], as_json: bool
) -> None:
    """Move every open order as far as it can go: into VTEX, and fulfilment back to the marketplace."""
    project = _project(config_path)
    names = _taking_orders(project, order_marketplaces(project, marketplaces), "push")
    summaries = _run(project, names, "push", lambda desk, state: desk.push(order_ids or None))
    out = console(stderr=True)
    if as_json:
        click.echo(dumps({"push": [s.to_dict() for s in summaries]}, indent=2))
    for summary in summaries:
        assert isinstance(summary, PushSummary)
        if not as_json:
            _print_push(out, summary)
    _exit(summaries)


@orders.command(name="list")
@config_option
@marketplace_option
@click.option("--held", is_flag=True, help="Only orders waiting for review (same as --state held).")
@click.option(
    "--state", "states", multiple=True, type=click.Choice(STATES), help="Only this state (repeatable)."
)
@click.option("--open", "only_open", is_flag=True, help="Only orders not yet in a final state.")
@click.option("--failing", is_flag=True, help="Only orders whose last step failed.")
@json_option
def list_orders(
    config_path: Path | None,
    marketplaces: Sequence[str],
    held: bool,
    states: Sequence[str],
    only_open: bool,
    failing: bool,
    as_json: bool,
) -> None:
    """The orders in the state store, oldest first: state, decision, VTEX id, last error."""
    project = _project(config_path)
    wanted: list[str] | None = list(states) or None
    if held:
        wanted = [*(wanted or []), "held"]
    if only_open:
        wanted = [s for s in (wanted or OPEN) if s in OPEN]
    with open_state(project) as state:
        store = OrderStore(state)
        rows = list(store.select(list(marketplaces) or None, wanted))
        unreadable = store.unreadable()
    if failing:
        rows = [row for row in rows if row.error]
    if as_json:
        click.echo(
            dumps(
                {
                    "orders": [row.to_dict() for row in rows],
                    "unreadable": [
                        {"marketplace": m, "order_id": o, "message": message}
                        for (m, o), message in unreadable.items()
                        if not marketplaces or m in marketplaces
                    ],
                },
                indent=2,
            )
        )
        return
    out = console()
    if not out.is_terminal:
        out.width = 200  # a log or a pipe: one order per line rather than a table folded to 80 columns
    if not rows:
        out.print("No orders" + (" in the review queue" if held else "") + ".")
    else:
        table = Table(show_edge=False, pad_edge=False)
        for column in (
            "marketplace",
            "order",
            "state",
            "decision",
            "value",
            "VTEX order",
            "why / last error",
        ):
            table.add_column(column, overflow="fold")
        for row in rows:
            table.add_row(
                row.marketplace,
                row.order_id,
                row.state,
                row.decision.get("decision", ""),
                f"{_money_in(row.order.currency)(row.order.items_value)} {row.order.currency}",
                row.vtex_order_id or "",
                redact(_why(row))[:120],
            )
        out.print(table)
    for (marketplace, order_id), message in unreadable.items():
        if not marketplaces or marketplace in marketplaces:
            out.print(f"[red]unreadable[/red] {marketplace} {order_id}: {redact(message)}")


@orders.command()
@click.argument("order_id")
@config_option
@click.option("-m", "--marketplace", help="The order's marketplace, when two share the id.")
@json_option
def show(order_id: str, config_path: Path | None, marketplace: str | None, as_json: bool) -> None:
    """One order: its lines, the decision and every reason (with the rule's file:line), its history."""
    project = _project(config_path)
    with open_state(project) as state:
        store = OrderStore(state)
        stored = _find(store, order_id, marketplace)
        events = store.events(stored.marketplace, stored.order_id)
    if as_json:
        click.echo(dumps({**stored.to_dict(), "history": events}, indent=2))
        return
    out = console()
    order = stored.order
    out.print(f"[bold]{stored.marketplace} order {stored.order_id}[/bold]: {stored.state}")
    out.print(f"  VTEX order: {stored.vtex_order_id or '-'}")
    out.print(
        f"  marketplace status: {stored.marketplace_status}, payment: {stored.payment_status}, "
        f"placed {order.created_at.isoformat()}"
    )
    money = _money_in(order.currency)
    out.print(
        f"  value: {money(order.items_value)} {order.currency} items + {money(order.shipping_total)} "
        f"shipping (marketplace total {money(order.total)})"
    )
    for item in order.items:
        price = _money_in(item.currency)(item.unit_price)
        out.print(f"  - SKU {item.sku_id} x {item.quantity} at {price} {item.currency}")
    out.print(f"  decision: [bold]{stored.decision.get('decision')}[/bold]")
    for reason in stored.decision.get("reasons", []):
        where = reason.get("location") or reason.get("rule") or ""
        out.print(f"    {reason.get('decision')}: {reason.get('message')} [dim]{where}[/dim]")
    if stored.note:
        out.print(f"  note: {stored.note}")
    if stored.error:
        kind = "will retry" if stored.error_retryable else "needs attention"
        out.print(f"  [red]last error ({kind}, {stored.attempts} attempt(s))[/red]: {redact(stored.error)}")
    out.print("  history:")
    for event in events:
        detail = f": {redact(event['detail'])}" if event["detail"] else ""
        out.print(f"    {event['at']} {event['event']}{detail}")


@orders.command()
@click.argument("order_id")
@config_option
@click.option("-m", "--marketplace", help="The order's marketplace, when two share the id.")
@click.option("--note", help="Why it is approved (kept in the order's history).")
@json_option
def approve(
    order_id: str, config_path: Path | None, marketplace: str | None, note: str | None, as_json: bool
) -> None:
    """Approve a held order: the next `tradepost orders push` places it in VTEX."""
    _review(
        config_path, order_id, marketplace, as_json, lambda store, stored: approve_order(store, stored, note)
    )


@orders.command()
@click.argument("order_id")
@config_option
@click.option("-m", "--marketplace", help="The order's marketplace, when two share the id.")
@click.option("--reason", required=True, help="Why: sent to the marketplace with the cancellation.")
@json_option
def reject(
    order_id: str, config_path: Path | None, marketplace: str | None, reason: str, as_json: bool
) -> None:
    """Reject a held (or approved, not yet placed) order: the next push cancels it on the marketplace."""
    _review(
        config_path, order_id, marketplace, as_json, lambda store, stored: reject_order(store, stored, reason)
    )


@orders.command(name="returns")
@config_option
@marketplace_option
@click.option(
    "--stored", is_flag=True, help="Only list what the state store holds; read nothing from marketplaces."
)
@json_option
def list_returns(config_path: Path | None, marketplaces: Sequence[str], stored: bool, as_json: bool) -> None:
    """Read the marketplaces' returns, then list every return with its order and reason.

    A return the marketplace holds open moves its order (placed, ready or shipped) to returned,
    with the return's reason in the order's note and history; `tradepost orders pull` does the same.
    Each return is kept once, however often it is read. Exits 1 when a marketplace could not be read
    (what is stored is listed all the same).
    """
    project = _project(config_path)
    read: list[ReturnsSummary] = []
    if not stored:
        names = _taking_orders(project, order_marketplaces(project, marketplaces), "read returns from")
        for found in _run(project, names, "returns", _read_returns):
            read.extend(found)
    with open_state(project) as state:
        rows = AfterSalesStore(state).returns(list(marketplaces) or None)
        orders = OrderStore(state)
        states = {(r.marketplace, r.order_id): _state_of(orders, r.marketplace, r.order_id) for r in rows}
    if as_json:
        listed = [{**r.to_dict(), "order_state": states[(r.marketplace, r.order_id)]} for r in rows]
        click.echo(dumps({"pull": [summary.to_dict() for summary in read], "returns": listed}, indent=2))
    else:
        out = console()
        if not out.is_terminal:
            out.width = 200  # a log or a pipe: one return per line
        for summary in read:
            print_after_sales(console(stderr=True), summary)
        if not rows:
            out.print("No returns.")
        else:
            table = Table(show_edge=False, pad_edge=False)
            for column in ("marketplace", "return", "order", "order state", "return status", "reason"):
                table.add_column(column, overflow="fold")
            for r in rows:
                status = r.status if r.open else f"{r.status} (closed)"
                order_state = states[(r.marketplace, r.order_id)] or "not imported"
                table.add_row(r.marketplace, r.return_id, r.order_id, order_state, status, escape(r.reason))
            out.print(table)
    if any(summary.error for summary in read):
        sys.exit(1)


async def _read_returns(desk: Any, state: StateStore) -> list[ReturnsSummary | QuestionsSummary]:
    return await _after_sales(desk, state, returns=True, questions=False)


def _state_of(orders: OrderStore, marketplace: str, order_id: str) -> str | None:
    stored = orders.get(marketplace, order_id)
    return stored.state if stored else None


# -- helpers -----------------------------------------------------------------------------------


def _review(
    config_path: Path | None, order_id: str, marketplace: str | None, as_json: bool, act: Any
) -> None:
    project = _project(config_path)
    with open_state(project) as state:
        store = OrderStore(state)
        stored = _find(store, order_id, marketplace)
        updated = act(store, stored)
    if as_json:
        click.echo(dumps(updated.to_dict(), indent=2))
        return
    then = "placed in VTEX" if updated.state == "approved" else "cancelled on the marketplace"
    console().print(
        f"{updated.marketplace} order {updated.order_id} is {updated.state}; "
        f"it will be {then} at the next `tradepost orders push`."
    )


def _find(store: OrderStore, order_id: str, marketplace: str | None) -> StoredOrder:
    found = store.find(order_id, marketplace)
    if not found:
        where = f"{marketplace} " if marketplace else ""
        raise OrderError(f"no {where}order {order_id} in the state store; run `tradepost orders list`")
    if len(found) > 1:
        names = ", ".join(sorted(o.marketplace for o in found))
        raise OrderError(f"order {order_id} exists on several marketplaces ({names}); pass -m MARKETPLACE")
    return found[0]


def _taking_orders(project: Project, names: list[str], verb: str) -> list[str]:
    """The marketplaces among ``names`` that take orders; each other one named gets a line saying why
    there is nothing to do (a catalog-only marketplace, such as Facebook in Brazil), not an error."""
    taking = []
    out = console(stderr=True)
    for name in names:
        if order_channel_class(name) is not None:
            taking.append(name)
            continue
        try:
            title = connector_class(name).title or name
        except KeyError:  # a project key that is not a connector's name: the rule file names it
            title = name
        out.print(
            f"[bold]{name}[/bold]: no orders to {verb}: {title} takes no orders for this seller; its buyers "
            "check out on the store itself (the listing's link), so their orders reach VTEX directly"
        )
    return taking


def _run(project: Project, names: list[str], verb: str, action: Any, lock: str = "orders") -> list[Any]:
    """``action(desk, state)`` for each marketplace's desk, under its ``lock:marketplace`` lock."""

    async def go(state: StateStore) -> list[Any]:
        results: list[Any] = []
        async with order_desks(project, state, names) as desks:
            for name, desk in desks.items():
                held = f"{lock}:{name}"
                state.acquire_lock(held, f"tradepost {lock} {verb}")
                try:
                    results.append(await action(desk, state))
                finally:
                    state.release_lock(held)
        return results

    with open_state(project) as state:
        return asyncio.run(go(state))


async def _after_sales(
    desk: Any, state: StateStore, *, returns: bool, questions: bool
) -> list[ReturnsSummary | QuestionsSummary]:
    """Read the marketplace's returns and/or questions (nothing when it offers none)."""
    store = AfterSalesStore(state)
    read: list[ReturnsSummary | QuestionsSummary] = []
    if returns:
        read.append(await pull_returns(store, desk.store, desk.marketplace, desk.channel))
    if questions:
        read.append(await pull_questions(store, desk.marketplace, desk.channel))
    return read


def print_after_sales(out: Any, summary: ReturnsSummary | QuestionsSummary) -> None:
    """One line per marketplace for what a pull of returns or questions found."""
    kind = "returns" if isinstance(summary, ReturnsSummary) else "questions"
    if not summary.offered:
        out.print(
            f"[bold]{summary.marketplace}[/bold]: {kind} are not read through Tradepost "
            '(README, "Returns and questions", says what this marketplace offers)'
        )
        return
    if summary.error:
        out.print(f"[bold]{summary.marketplace}[/bold] [red]{kind} not read[/red]: {redact(summary.error)}")
        return
    line = f"[bold]{summary.marketplace}[/bold] {summary.read} {kind} read, {summary.new} new"
    if isinstance(summary, ReturnsSummary):
        moved = ", ".join(summary.returned)
        line += f"; order(s) now returned: {moved}" if moved else ""
        if summary.unknown_orders:
            line += f"; {len(summary.unknown_orders)} of orders Tradepost never imported"
    elif summary.answered_elsewhere:
        line += f"; {summary.answered_elsewhere} answered on the marketplace's site"
    out.print(line)


def _print_pull(out: Any, summary: PullSummary) -> None:
    if summary.error:
        out.print(f"[bold]{summary.marketplace}[/bold] [red]pull failed[/red]: {redact(summary.error)}")
        return
    new = ", ".join(f"{count} {state}" for state, count in sorted(summary.new.items())) or "none new"
    out.print(
        f"[bold]{summary.marketplace}[/bold] {summary.read} order(s) read: {new}; {summary.updated} updated"
    )
    for order_id, message in summary.unreadable.items():
        out.print(f"  [red]unreadable[/red] {order_id}: {redact(message)} (kept; retried next pull)")
    for order_id, message in summary.deferred.items():
        out.print(f"  [yellow]deferred[/yellow] {order_id}: {redact(message)}")


def _print_push(out: Any, summary: PushSummary) -> None:
    if summary.error:
        out.print(f"[bold]{summary.marketplace}[/bold] [red]push failed[/red]: {redact(summary.error)}")
        return
    moved = [o for o in summary.outcomes if o.steps]
    out.print(f"[bold]{summary.marketplace}[/bold] {len(moved)} order(s) moved, {len(summary.failed)} failed")
    for outcome in moved:
        out.print(f"  {outcome.order_id}: {', '.join(outcome.steps)}")
    for outcome in summary.failed:
        kind = "will retry" if outcome.retryable else "needs attention"
        out.print(
            f"  [red]failed[/red] {outcome.order_id} ({outcome.state}, {kind}): {redact(outcome.error or '')}"
        )


def _exit(summaries: Sequence[PullSummary | PushSummary], *, partial: bool = False) -> None:
    codes = [s.exit_code for s in summaries]
    if 1 in codes:
        sys.exit(1)
    if EXIT_PARTIAL in codes or partial:
        sys.exit(EXIT_PARTIAL)


def _money_in(currency: str) -> Callable[[Decimal], str]:
    """Amounts with the currency's minor unit (0 -> 0.00 BRL, 1500 -> 1500 JPY), more digits kept."""
    places = MINOR_UNITS.get(currency, 2)

    def money(value: Decimal) -> str:
        exponent = value.as_tuple().exponent
        if isinstance(exponent, int) and -exponent < places:
            value = value.quantize(Decimal(1).scaleb(-places))
        return f"{value:f}"

    return money


def _why(row: StoredOrder) -> str:
    if row.error:
        return f"error: {row.error}"
    if row.note:
        return row.note
    if row.state in ("held", "rejected", "cancelled") and row.decision.get("decision") != "approve":
        verdict = "hold" if row.decision.get("decision") == "hold" else "reject"
        for reason in row.decision.get("reasons", []):
            if reason.get("decision") == verdict:
                return str(reason.get("message", ""))
    return ""
