"""procrastinate under Tradepost: the app on the state's database, its tables, workers, stalled jobs.

procrastinate (a maintained PostgreSQL task queue) does the queueing, the job locks, the
workers' heartbeats and the retries; this module only wires it to the state store:

- the app connects with the state store's own parameters (its password resolved as every
  secret is); its tables are created on first use, once, under the advisory lock the state
  store creates its own tables under, so processes starting on an empty database at once
  create them once;
- one task, :data:`APPLY_SHARD`, run as a synchronous task (procrastinate runs it in a thread
  of its own): a shard job opens its own state connection and event loop;
- stalled jobs (a worker killed, its heartbeat silent for :data:`STALLED_BEATS` beats) are
  handed back to the queue by every worker, and by a waiting coordinator, one at a time across
  the cluster (a PostgreSQL advisory lock), so a job is never handed back twice.
"""

from __future__ import annotations

import asyncio
import logging
import os
import socket
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from typing import Any

import procrastinate
from procrastinate.exceptions import ProcrastinateException

from engine._diagnostics import TradepostError
from engine.project._assembly import MarketplaceRun, open_state
from engine.project._config import Project
from engine.project._shards import ShardOutcome, ShardStore
from engine.project._workers import WaitReport, WorkerOptions, apply_shard
from engine.secrets import redact
from engine.state._pg import PostgresDialect
from engine.state._store import StateStore

QUEUE = "tradepost"
APPLY_SHARD = "tradepost.apply_shard"
STALLED_BEATS = 3
"""Heartbeats a worker may miss before its jobs are handed to another."""
RECOVERY_LOCK = 0x7472_6164_6570_7772  # "tradepwr": one stalled-job recovery at a time
FINISHED = ("done", "failed")

log = logging.getLogger("tradepost.workers")


@dataclass(frozen=True)
class WorkerSetup:
    """What a worker hands its shard jobs: the project and its compiled marketplaces."""

    project: Project
    runs: dict[str, MarketplaceRun]


def queue_app(state: StateStore) -> procrastinate.App:
    """A procrastinate app on the state store's database, with Tradepost's task."""
    if not isinstance(state.dialect, PostgresDialect):
        raise TradepostError(f"the task queue needs a PostgreSQL state store, not {state.url}")
    connector = procrastinate.PsycopgConnector(
        kwargs=state.dialect.connection_params(), min_size=1, max_size=8
    )
    app = procrastinate.App(connector=connector)
    app.task(name=APPLY_SHARD, queue=QUEUE, pass_context=True)(_apply_shard_job)
    return app


def _apply_shard_job(context: procrastinate.JobContext, run_id: str, shard: int) -> None:
    setup: WorkerSetup = context.additional_context["tradepost"]
    apply_shard(setup.project, setup.runs, run_id, shard)


async def ensure_schema(state: StateStore, app: procrastinate.App) -> None:
    """procrastinate's tables, created if absent (under the state's schema lock) and the shards'."""
    with state.db.schema():
        if state.db.execute("SELECT to_regclass('procrastinate_jobs')").fetchone()[0] is None:
            await app.schema_manager.apply_schema_async()


@contextmanager
def queue_errors(state: StateStore) -> Iterator[None]:
    """procrastinate's errors (the database gone, say) as a :class:`TradepostError` saying what to do."""
    try:
        yield
    except ProcrastinateException as exc:
        raise TradepostError(
            f"the task queue in {state.url} failed: {redact(str(exc))}; check the database and run again"
        ) from exc


async def recover_stalled(app: procrastinate.App, state: StateStore, seconds: float) -> int:
    """Hand the jobs of workers silent for ``seconds`` back to the queue; how many."""
    if not state.db.execute("SELECT pg_try_advisory_lock(?)", (RECOVERY_LOCK,)).fetchone()[0]:
        return 0  # another process is recovering them now
    try:
        stalled = list(await app.job_manager.get_stalled_jobs(queue=QUEUE, seconds_since_heartbeat=seconds))
        for job in stalled:
            log.warning("job %s of a stalled worker goes back to the queue", job.id)
            with suppress(ProcrastinateException):  # it finished or was handed back meanwhile
                await app.job_manager.retry_job(job)
        return len(stalled)
    finally:
        state.db.execute("SELECT pg_advisory_unlock(?)", (RECOVERY_LOCK,), checked=False)


async def work(
    project: Project, runs: dict[str, MarketplaceRun], stop: threading.Event, options: WorkerOptions
) -> None:
    """One worker until ``stop``: procrastinate's worker loop, and the stalled-job recovery beside it."""
    with open_state(project) as state:
        app = queue_app(state)
        async with app.open_async():
            await ensure_schema(state, app)
            ShardStore(state)
            stalled_after = options.heartbeat * STALLED_BEATS
            worker = asyncio.create_task(
                app.run_worker_async(
                    queues=[QUEUE],
                    name=f"tradepost@{socket.gethostname()}:{os.getpid()}",
                    concurrency=options.concurrency,
                    install_signal_handlers=False,  # the CLI's handlers set ``stop``
                    update_heartbeat_interval=options.heartbeat,
                    stalled_worker_timeout=stalled_after,
                    fetch_job_polling_interval=options.poll,
                    delete_jobs="successful",
                    additional_context={"tradepost": WorkerSetup(project, runs)},
                )
            )
            try:
                next_recovery = 0.0
                while not stop.is_set() and not worker.done():
                    if time.monotonic() >= next_recovery:
                        await recover_stalled(app, state, stalled_after)
                        next_recovery = time.monotonic() + options.heartbeat
                    await asyncio.sleep(0.1)
            finally:
                worker.cancel()  # procrastinate stops taking jobs and waits for those in hand
                with queue_errors(state), suppress(asyncio.CancelledError):
                    await worker


async def run_shards(
    state: StateStore,
    store: ShardStore,
    run_id: str,
    shards: list[int],
    timeout: float,
    poll: float,
    on_wait: WaitReport | None,
) -> tuple[dict[int, ShardOutcome], str | None]:
    """Enqueue a job per shard and wait for every one to finish (or to be given up); their outcomes
    and why the wait gave up (None when every shard was taken)."""
    app = queue_app(state)
    with queue_errors(state):
        async with app.open_async():
            await ensure_schema(state, app)
            jobs = {
                shard: await app.configure_task(APPLY_SHARD, queue=QUEUE).defer_async(
                    run_id=run_id, shard=shard
                )
                for shard in shards
            }
            return await _wait(app, state, store, run_id, jobs, _Patience(timeout, poll, on_wait))


@dataclass
class _Patience:
    """How long the coordinator waits without progress, how often it looks, whom it tells."""

    timeout: float
    poll: float
    on_wait: WaitReport | None
    seen: tuple[int, int] | None = None
    since: float = 0.0

    def progressed(self, taken: int, finished: int, total: int) -> None:
        if (taken, finished) != self.seen:
            self.seen, self.since = (taken, finished), time.monotonic()
            if self.on_wait is not None:
                self.on_wait(taken, finished, total)

    @property
    def out(self) -> bool:
        return time.monotonic() - self.since >= self.timeout


async def _wait(
    app: procrastinate.App,
    state: StateStore,
    store: ShardStore,
    run_id: str,
    jobs: dict[int, int],
    patience: _Patience,
) -> tuple[dict[int, ShardOutcome], str | None]:
    given_up: str | None = None
    ended: dict[int, ShardOutcome] = {}
    while True:
        statuses = {shard: await _status(app, job) for shard, job in jobs.items() if shard not in ended}
        outcomes = store.outcomes(run_id)
        for shard, status in statuses.items():
            outcome = outcomes.get(shard)
            if outcome is not None and outcome.status in FINISHED:
                ended[shard] = outcome
            elif status not in ("todo", "doing"):
                why = (
                    "no worker took it" if status == "cancelled" else f"its job ended {status} in the worker"
                )
                ended[shard] = ShardOutcome(shard, "failed", outcome.summary if outcome else None, why)
        waiting = [shard for shard, status in statuses.items() if status == "todo" and shard not in ended]
        patience.progressed(len(jobs) - len(waiting), len(ended), len(jobs))
        if len(ended) == len(jobs):
            return ended, given_up
        if given_up is None and waiting and patience.out:
            given_up = (
                f"no worker took {len(waiting)} of {len(jobs)} shards in {patience.timeout:g} s; is "
                "`tradepost worker -c CONFIG` running against this state?"
            )
        if given_up is not None:
            for shard in waiting:
                await app.job_manager.cancel_job_by_id_async(jobs[shard])
        await recover_stalled(app, state, patience.timeout)
        await asyncio.sleep(patience.poll)


async def _status(app: procrastinate.App, job_id: int) -> str:
    """The job's status; ``succeeded`` once a worker deleted it (it deletes successful jobs)."""
    found: list[Any] = list(await app.job_manager.list_jobs_async(id=job_id))
    return str(found[0].status) if found else "succeeded"
