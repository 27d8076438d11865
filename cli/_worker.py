"""`tradepost worker`, and `tradepost apply --shards N`'s hand-off to the workers (PostgreSQL state).

A worker runs two things until Ctrl-C or SIGTERM: the shard jobs of `apply --shards`
(procrastinate, in ``engine.project``) and the real-time sync loop of `tradepost sync` in a process
beside them (as `serve --sync` runs it), so the same workers drain the notification queue. On a
signal both finish what they hold (the sync loop its batch, each shard job its shard) and the
worker exits 0; if the sync process dies, the worker stops too (exit 1), for its supervisor to
restart both; a worker killed outright loses nothing: its shard job goes back to the queue once its
heartbeat is missed, and its notification batch once its lease runs out.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path

import click
from rich.console import Console
from rich.markup import escape

from cli._plan import _project, config_option
from cli._render import console
from cli._sync import Pace, _until_signal, exit_status, lease_option, marketplace_runs, syncing
from engine.jsonio import dumps
from engine.project import (
    HEARTBEAT,
    SHARD_TIMEOUT,
    MarketplaceRun,
    Project,
    ShardedApply,
    WorkerOptions,
    WorkersNeedPostgresError,
    apply_sharded,
    open_state,
    require_postgres,
    run_worker,
)
from engine.secrets import redact
from engine.sync import EXIT_PARTIAL, ApplySummary

EXIT_ERROR = 1
EXIT_NEEDS_POSTGRES = 2
"""The state is SQLite: workers cannot share it."""


def refuse_without_postgres(project: Project, command: str) -> None:
    """Exit 2, saying why and how to move, unless the state is PostgreSQL."""
    try:
        require_postgres(project, command)
    except WorkersNeedPostgresError as error:
        click.echo(f"error: {error}", err=True)
        sys.exit(EXIT_NEEDS_POSTGRES)


@click.command()
@config_option
@click.option(
    "--concurrency", type=click.IntRange(1, 64), default=2, show_default=True, help="Shard jobs run at once."
)
@click.option(
    "--heartbeat",
    type=click.FloatRange(0.1),
    default=HEARTBEAT,
    show_default=True,
    help="Seconds between heartbeats; a worker silent for three has its shard job handed to another.",
)
@click.option(
    "--poll", type=click.FloatRange(0.05), default=1.0, show_default=True, help="Seconds between polls."
)
@lease_option("The notification queue: ")
def worker(config_path: Path | None, concurrency: int, heartbeat: float, poll: float, lease: float) -> None:
    """Run one worker: `apply --shards` jobs and the real-time sync, until Ctrl-C or SIGTERM.

    Needs a PostgreSQL state (`state: postgresql://...`); the task queue's tables are created in
    it on first use. On Ctrl-C or SIGTERM the worker finishes the shard and the batch in hand and
    exits 0; exit 2: the state is SQLite.
    """
    project = _project(config_path)
    refuse_without_postgres(project, "tradepost worker")
    runs = marketplace_runs(project)
    options = WorkerOptions(concurrency=concurrency, heartbeat=heartbeat, poll=poll)
    click.echo(f"worker started: {concurrency} shard job(s) at once, and the notification queue", err=True)
    ended: list[int] = []

    def sync_ended(code: int) -> None:
        """The notification worker's process ended on its own: stop as SIGTERM stops, then say so."""
        ended.append(code)
        os.kill(os.getpid(), signal.SIGTERM)

    with syncing(project, Pace(poll=poll, lease=lease), sync_ended):
        stopped_by = _until_signal(lambda stop: run_worker(project, runs, stop, options))
    if ended:
        click.echo(
            f"error: the notification worker ended ({exit_status(ended[0])}); this worker stopped with it",
            err=True,
        )
        sys.exit(1)
    click.echo(f"stopped by {stopped_by}")


def apply_in_shards(
    project: Project,
    runs: dict[str, MarketplaceRun],
    *,
    shards: int,
    timeout: float,
    allow_mass_delete: bool,
    as_json: bool,
) -> int:
    """`apply --shards`: each marketplace planned here and applied by the workers, one after the
    other; prints what `apply` prints and returns its exit code (1 also when a shard could not
    run or no worker took it: run the apply again)."""
    refuse_without_postgres(project, "tradepost apply --shards")
    out = console(stderr=True)
    results: list[ShardedApply] = []
    with open_state(project) as state:
        for name, run in runs.items():

            def waiting(taken: int, finished: int, total: int, name: str = name) -> None:
                if not as_json:
                    out.print(
                        f"[bold]{name}[/bold] waiting for workers: {taken} of {total} shards taken, "
                        f"{finished} finished",
                        highlight=False,
                    )

            result = apply_sharded(
                project,
                run,
                state,
                shards=shards,
                allow_mass_delete=allow_mass_delete,
                timeout=timeout,
                on_wait=waiting,
            )
            results.append(result)
            if not as_json:
                _print_sharded(out, name, result)
    if as_json:
        click.echo(dumps({"marketplaces": [_sharded_document(r) for r in results]}, indent=2))
    if any(r.refused or r.failed_shards or r.given_up for r in results):
        return EXIT_ERROR
    return EXIT_PARTIAL if any(r.summary.failed for r in results) else 0


def _print_sharded(out: Console, name: str, result: ShardedApply) -> None:
    if result.refused is not None:
        out.print(f"[bold]{name}[/bold] [red]{result.refused.refusal()}[/red]; nothing was sent")
        return
    print_summary(out, name, result.summary)
    for shard, why in sorted(result.failed_shards.items()):
        out.print(f"  [red]shard {shard}[/red] did not finish: {escape(redact(why))}", highlight=False)
    if result.given_up:
        out.print(f"[red]{escape(result.given_up)}[/red]; run the apply again to finish", highlight=False)


def _sharded_document(result: ShardedApply) -> dict[str, object]:
    if result.refused is not None:
        return {"marketplace": result.refused.marketplace, "mass_delete": result.refused.to_dict()}
    return {
        **result.summary.to_dict(),
        "shards": result.shards,
        "failed_shards": {str(k): redact(v) for k, v in sorted(result.failed_shards.items())},
        "given_up": result.given_up,
    }


def print_summary(out: Console, name: str, summary: ApplySummary) -> None:
    """A marketplace's apply summary line and its first 50 failures (--json lists all)."""
    out.print(f"[bold]{name}[/bold] {summary.line()}")
    for failure in summary.failures[:50]:
        out.print(
            f"  [red]failed[/red] {escape(failure.sku_id)} ({failure.op}): "
            f"{escape(redact(failure.error or ''))}",
            highlight=False,
        )
    if len(summary.failures) > 50:
        out.print(f"  … {len(summary.failures) - 50} more failures (--json lists all)")


shards_option = click.option(
    "--shards",
    type=click.IntRange(1, 1024),
    help="Plan here, then apply in N shards run by `tradepost worker` processes (PostgreSQL state).",
)
shard_timeout_option = click.option(
    "--shard-timeout",
    type=click.FloatRange(1.0),
    default=SHARD_TIMEOUT,
    show_default=True,
    help="With --shards: seconds to wait, without progress, for workers to take the shards before giving up.",
)
