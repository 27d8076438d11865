"""`tradepost sync`: the worker that applies queued notifications to every marketplace.

``--once`` drains the queue once and exits (for schedulers); without it the worker polls until
Ctrl-C or SIGTERM, which let the batch in hand finish. SKUs a marketplace failed for are kept
(leased to this worker) and handed back to the queue after a backoff that doubles while passes
keep failing, so one failing marketplace neither blocks the others nor is hammered; whatever is
held is handed back on exit.
"""

from __future__ import annotations

import signal
import sys
import threading
import time
from collections.abc import Callable
from pathlib import Path

import click
from rich.markup import escape

from cli._plan import _compile_or_exit, _project, config_option
from cli._render import console
from engine.jsonio import dumps
from engine.project import SYNC_BATCH, SyncReport, open_state, sync_once
from engine.secrets import redact
from engine.state import WORK_LEASE, NotificationQueue, QueuedSku
from engine.sync import EXIT_PARTIAL

MAX_BACKOFF = 60.0
"""Seconds at most between two tries of a failing marketplace's SKUs."""


@click.command()
@config_option
@click.option("--once", is_flag=True, help="Drain the queue once and exit (0 all done, 3 some failed).")
@click.option(
    "--batch", type=click.IntRange(1, 1000), default=SYNC_BATCH, show_default=True, help="SKUs per batch."
)
@click.option(
    "--poll", type=click.FloatRange(0.05), default=1.0, show_default=True, help="Seconds between polls."
)
@click.option(
    "--lease",
    type=click.FloatRange(1.0),
    default=WORK_LEASE,
    show_default=True,
    help="Seconds a taken batch is this worker's; a killed worker's SKUs come back after it.",
)
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document per pass.")
def sync(config_path: Path | None, once: bool, batch: int, poll: float, lease: float, as_json: bool) -> None:
    """Apply the SKUs `tradepost serve` queued: read them again, plan and apply each marketplace.

    A SKU leaves the queue once every marketplace's outcome is recorded; one a marketplace failed
    for stays queued for it. Exit codes: 0 all done (or stopped by Ctrl-C/SIGTERM), 1 error,
    3 some SKUs failed (--once).
    """
    project = _project(config_path)
    runs = [_compile_or_exit(project, name) for name in project.marketplace_names([])]
    with open_state(project) as state, NotificationQueue(state) as queue:
        if once:
            report = sync_once(project, runs, state, queue, batch=batch, lease=lease)
            queue.release(report.pending)
            _print(report, as_json)
            if report.failed:
                sys.exit(EXIT_PARTIAL)
            return
        stopped_by = _loop(
            lambda: sync_once(project, runs, state, queue, batch=batch, lease=lease),
            queue,
            poll,
            lease,
            as_json,
        )
    click.echo(f"stopped by {stopped_by}")


def _loop(
    one_pass: Callable[[], SyncReport], queue: NotificationQueue, poll: float, lease: float, as_json: bool
) -> str:
    """Pass after pass until a signal; failed SKUs handed back after the backoff."""
    stop = threading.Event()
    received: list[str] = []

    def stopping(number: int, _: object) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    held: list[QueuedSku] = []
    backoff, retry_at = 0.0, 0.0
    try:
        while not stop.is_set():
            report = one_pass()
            if report.taken:
                _print(report, as_json)
            held += report.pending
            if report.failed:
                backoff = min(max(2 * backoff, poll), MAX_BACKOFF, lease / 2)
                retry_at = time.monotonic() + backoff
            elif report.taken:
                backoff = 0.0
            if held and time.monotonic() >= retry_at:
                queue.release(held)
                held = []
            stop.wait(poll)
    finally:
        queue.release(held)
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else "the worker"


def _print(report: SyncReport, as_json: bool) -> None:
    if as_json:
        click.echo(dumps(report.to_dict()))
        sys.stdout.flush()
        return
    out = console(stderr=True)
    for outcome in report.marketplaces.values():
        line = f"[bold]{outcome.marketplace}[/bold] {outcome.summary.line()}; {outcome.done} SKU(s) done"
        if outcome.held:
            line += f", {len(outcome.held)} still queued"
        out.print(line)
        for failure in outcome.summary.failures[:50]:
            error = escape(redact(failure.error or ""))
            out.print(
                f"  [red]failed[/red] {escape(failure.sku_id)} ({failure.op}): {error}", highlight=False
            )
        for error in outcome.errors:
            out.print(f"  [red]error[/red] {escape(redact(error))}", highlight=False)
    if report.unread:
        out.print(f"the source did not answer for {len(report.unread)} SKU(s); they stay queued")
    click.echo(
        f"{report.taken} SKU(s) taken, {report.left_queue} left the queue, {len(report.pending)} still queued"
    )
    sys.stdout.flush()
