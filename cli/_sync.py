"""`tradepost sync`: the worker that applies queued notifications to every marketplace.

``--once`` drains the queue once and exits (for schedulers); without it the worker
(:class:`~engine.project.SyncWorker`: a feed reading, one lane per marketplace applying) runs until
Ctrl-C or SIGTERM, which let each lane's batch in hand finish. In `serve --sync` the endpoint
wakes the worker as soon as a notification is committed (:func:`syncing`), so a change waits for
no poll; the poll stays, for what another process queued and for failed SKUs coming back.

SKUs a marketplace failed for are kept (leased to this worker) and handed back to the queue after
a backoff of their lane that doubles while its batches keep failing, so one failing marketplace
neither holds up the others nor is hammered; whatever is held is handed back on exit.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import click
from rich.markup import escape

from cli._plan import _compile_or_exit, _project, config_option
from cli._render import console
from engine.jsonio import dumps
from engine.project import (
    SYNC_BATCH,
    MarketplaceRun,
    Project,
    SyncReads,
    SyncReport,
    SyncWorker,
    open_state,
    sync_once,
)
from engine.secrets import redact
from engine.state import WORK_LEASE, NotificationQueue, StateStore
from engine.sync import EXIT_PARTIAL

F = TypeVar("F", bound=Callable[..., Any])


def lease_option(condition: str) -> Callable[[F], F]:
    """``--lease``: seconds a taken batch is the worker's (``condition``: when the option applies)."""
    return click.option(
        "--lease",
        type=click.FloatRange(1.0),
        default=WORK_LEASE,
        show_default=True,
        help=f"{condition}Seconds a taken batch is the worker's; a killed worker's SKUs come back after it.",
    )


@click.command()
@config_option
@click.option("--once", is_flag=True, help="Drain the queue once and exit (0 all done, 3 some failed).")
@click.option(
    "--batch", type=click.IntRange(1, 1000), default=SYNC_BATCH, show_default=True, help="SKUs per batch."
)
@click.option(
    "--poll", type=click.FloatRange(0.05), default=1.0, show_default=True, help="Seconds between polls."
)
@lease_option("")
@click.option("--json", "as_json", is_flag=True, help="Print one JSON document per pass.")
@click.option("--wake-fd", type=int, hidden=True, help="`serve --sync`'s pipe: wake-ups, and its end.")
def sync(
    config_path: Path | None,
    once: bool,
    batch: int,
    poll: float,
    lease: float,
    as_json: bool,
    wake_fd: int | None,
) -> None:
    """Apply the SKUs `tradepost serve` queued: read them again, plan and apply each marketplace.

    A SKU leaves the queue once every marketplace's outcome is recorded; one a marketplace failed
    for stays queued for it. Exit codes: 0 all done (or stopped by Ctrl-C/SIGTERM), 1 error,
    3 some SKUs failed (--once).
    """
    project = _project(config_path)
    runs = marketplace_runs(project)
    with open_state(project) as state, NotificationQueue(state) as queue:
        if once:
            report = sync_once(project, runs, state, queue, batch=batch, lease=lease)
            queue.release(report.pending)
            _print(report, as_json)
            if report.failed:
                sys.exit(EXIT_PARTIAL)
            return
        pace = Pace(batch, poll, lease, as_json)
        stopped_by = _until_signal(lambda stop: _work(project, runs, state, queue, stop, pace, wake_fd))
        if wake_fd is not None:
            return  # the server says why it stopped
    click.echo(f"stopped by {stopped_by}")


def marketplace_runs(project: Project) -> list[MarketplaceRun]:
    """Every marketplace's run, all compiled before anything is read (exit 1 on a rule error)."""
    return [_compile_or_exit(project, name) for name in project.marketplace_names([])]


@dataclass(frozen=True)
class Pace:
    """How a polling worker takes the queue: batch size, poll interval, lease, output."""

    batch: int = SYNC_BATCH
    poll: float = 1.0
    lease: float = WORK_LEASE
    as_json: bool = False


def _until_signal(work: Callable[[threading.Event], None]) -> str:
    """Run ``work`` until SIGINT or SIGTERM sets its stop event; name the signal."""
    stop = threading.Event()
    received: list[str] = []

    def stopping(number: int, _: object) -> None:
        received.append(signal.Signals(number).name)
        stop.set()

    previous = {sig: signal.signal(sig, stopping) for sig in (signal.SIGINT, signal.SIGTERM)}
    try:
        work(stop)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)
    return received[0] if received else "the worker"


def _work(
    project: Project,
    runs: Sequence[MarketplaceRun],
    state: StateStore,
    queue: NotificationQueue,
    stop: threading.Event,
    pace: Pace,
    wake_fd: int | None = None,
) -> None:
    """The worker (:class:`~engine.project.SyncWorker`) until ``stop``: each marketplace's batches
    reported as they end, failed SKUs handed back after their backoff, and on the way out. The feed
    takes the queue every ``pace.poll`` seconds, or as soon as `serve` writes to ``wake_fd``."""
    reads = SyncReads(project)  # what VTEX answered, kept for the worker's life
    worker = SyncWorker(
        project,
        runs,
        state,
        queue,
        reads,
        batch=pace.batch,
        lease=pace.lease,
        poll=pace.poll,
        on_report=lambda report: _print(report, pace.as_json),
        on_error=lambda error: click.echo(f"error: {redact(error)}", err=True),
    )

    def stopping() -> None:
        stop.wait()
        worker.stop()

    threading.Thread(target=stopping, name="tradepost-stop", daemon=True).start()
    if wake_fd is not None:
        _woken_by(wake_fd, worker.wake, worker.stop)
    try:
        worker.run()
    finally:
        reads.close()


class Wake:
    """The parent's end of the worker's wake-up pipe: :meth:`set` after a commit to the queue, and
    the worker's next pass starts at once. Never blocks: a full pipe already holds a wake-up."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        os.set_blocking(fd, False)

    def set(self) -> None:
        with suppress(BlockingIOError, BrokenPipeError):  # full: a wake-up is waiting; broken: it died
            os.write(self.fd, b"w")


@contextmanager
def syncing(project: Project, pace: Pace, on_exit: Callable[[int], None] | None = None) -> Iterator[Wake]:
    """The worker as a process of its own (`tradepost sync`, on the same config), while the block
    runs (`tradepost serve --sync`): the endpoint and the worker each get a core instead of
    sharing one interpreter's lock, and at 100 notifications a second both are busy.

    The block gets the worker's :class:`Wake`. At the block's end the pipe closes: the worker
    finishes its batch and exits, and this waits for it. The pipe closes as well when this process
    dies (even by SIGKILL), so a worker never outlives its server by more than a batch.
    ``on_exit(returncode)`` is called (from a thread) if the worker ends before the block does.
    """
    read_end, write_end = os.pipe()
    command = [
        sys.executable, "-m", "cli.main", "sync", "-c", str(project.path),
        "--batch", str(pace.batch), "--poll", str(pace.poll), "--lease", str(pace.lease),
        f"--wake-fd={read_end}",
    ]  # fmt: skip
    try:
        worker = subprocess.Popen(command, pass_fds=(read_end,))
    finally:
        os.close(read_end)
    stopping = threading.Event()

    def watch() -> None:
        code = worker.wait()
        if not stopping.is_set() and on_exit is not None:
            on_exit(code)

    watcher = threading.Thread(target=watch, name="tradepost-sync-watch", daemon=True)
    watcher.start()
    try:
        yield Wake(write_end)
    finally:
        stopping.set()
        os.close(write_end)  # the worker's pipe ends: it finishes its batch and exits
        worker.wait()
        watcher.join()


def exit_status(code: int) -> str:
    """A process's return code as people read it: "exit code 1", "killed by SIGKILL"."""
    if code < 0:
        with suppress(ValueError):
            return f"killed by {signal.Signals(-code).name}"
        return f"killed by signal {-code}"
    return f"exit code {code}"


def _woken_by(fd: int, wake: Callable[[], None], end: Callable[[], None]) -> None:
    """Call ``wake`` for every read of what the server writes to ``fd``; at its end (the server
    stopped, or died) call ``end``."""

    def listen() -> None:
        while True:
            try:
                data = os.read(fd, 4096)
            except OSError:
                data = b""
            if not data:
                end()
                return
            wake()

    threading.Thread(target=listen, name="tradepost-wake", daemon=True).start()


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
