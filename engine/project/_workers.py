"""Workers past one machine: ``tradepost worker`` and ``tradepost apply --shards N``, on PostgreSQL.

The task queue is procrastinate's (:mod:`engine.project._taskqueue`, loaded only here, so a
project on SQLite never imports it). A worker runs shard jobs; the CLI runs the real-time sync
loop beside it, so the same processes drain the notification queue.

``apply_sharded`` is ``tradepost apply`` spread over the workers, with the same guarantees:

- the coordinator takes the marketplace's lock as ``apply`` does, and keeps it to the end: a
  ``tradepost sync`` (or a worker's sync loop) and another apply wait for it;
- it plans once (one catalog read, under the lock) and writes the change records to their shards
  in PostgreSQL as the planner yields them (:mod:`engine.project._shards`), then enqueues one job
  per non-empty shard and waits, merging the shards' summaries into one;
- a shard job joins the coordinator's lock by its token (:meth:`~engine.state.StateStore.join_lock`):
  once the coordinator lost it, every state write of the shard stops with ``LockLostError``, so no
  shard sends after its run lost the lock; the executor records each SKU as it lands, so a shard
  run again (its worker killed: procrastinate's stalled-job recovery hands the job to another)
  sends only what did not land and never lists a SKU twice;
- with no worker taking shards, the coordinator gives up after ``timeout`` seconds without
  progress, cancels the jobs no worker took, waits for the ones running, and releases the lock.
  Nothing is half done that a rerun cannot finish: the rerun plans again from the state.
"""

from __future__ import annotations

import asyncio
import threading
import time
import uuid
from collections.abc import Callable, Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field

from engine._diagnostics import TradepostError
from engine.project._apply import apply_records, fingerprint_of, locked, record_full_apply, sent_stream
from engine.project._assembly import MarketplaceRun, catalog_records, open_marketplace, open_state
from engine.project._config import Project
from engine.project._shards import ShardOutcome, ShardRun, ShardStore
from engine.project._sync import _merge
from engine.state._store import StateStore
from engine.sync._deletes import MassDelete, mass_delete
from engine.sync._executor import ApplySummary

HEARTBEAT = 10.0
"""Seconds between a worker's heartbeats; a worker silent for three is stalled and its jobs retried."""

LOCK_POLL = 0.2
"""Seconds between two tries of an advisory lock another worker holds."""

SHARD_TIMEOUT = 600.0
"""Seconds ``apply --shards`` waits for a worker to take a shard, without any progress, before it gives up."""


class WorkersNeedPostgresError(TradepostError):
    """Workers share their work through PostgreSQL; an SQLite state cannot be shared."""


def require_postgres(project: Project, command: str) -> None:
    """Refuse ``command`` unless the project's state is PostgreSQL, saying why and how to move."""
    if not project.state_url.startswith(("postgresql://", "postgres://")):
        raise WorkersNeedPostgresError(
            f"`{command}` needs a PostgreSQL state: workers on several processes or hosts share their "
            f"work through it, and {project.path}'s `state:` is an SQLite file ({project.state_url}); "
            "create a database, run `tradepost state migrate` into it, and set `state:` to its "
            "postgresql://USER@HOST:PORT/DATABASE URL"
        )


@dataclass(frozen=True)
class WorkerOptions:
    """How a worker runs: jobs at once, heartbeat (a worker silent for three is stalled), polling."""

    concurrency: int = 2
    heartbeat: float = HEARTBEAT
    poll: float = 1.0


def run_worker(
    project: Project, runs: Sequence[MarketplaceRun], stop: threading.Event, options: WorkerOptions
) -> None:
    """Run shard jobs until ``stop`` is set; then finish the jobs in hand and return.

    The queue's tables (procrastinate's, the shards') are created here on first use."""
    require_postgres(project, "tradepost worker")
    from engine.project import _taskqueue  # procrastinate loads only for a worker

    asyncio.run(_taskqueue.work(project, {run.name: run for run in runs}, stop, options))


@dataclass
class ShardedApply:
    """What ``apply --shards`` did on one marketplace: the merged summary of its shards, or why not."""

    summary: ApplySummary
    shards: int = 0
    refused: MassDelete | None = None
    failed_shards: dict[int, str] = field(default_factory=dict)
    """Shards that could not run (their worker's rules differ, the lock was lost), and why."""
    given_up: str | None = None
    """Why the coordinator stopped waiting (no worker took some shards in time), or None."""


WaitReport = Callable[[int, int, int], None]
"""Called as shards move: (taken, finished, total)."""


def apply_sharded(
    project: Project,
    run: MarketplaceRun,
    state: StateStore,
    *,
    shards: int,
    allow_mass_delete: bool = False,
    timeout: float = SHARD_TIMEOUT,
    poll: float = 0.5,
    on_wait: WaitReport | None = None,
) -> ShardedApply:
    """Plan ``run``'s marketplace now and apply it over ``shards`` worker jobs; see the module docstring."""
    require_postgres(project, "tradepost apply --shards")
    from engine.project import _taskqueue  # procrastinate loads only for sharded work

    marketplace = run.compiled.marketplace
    store = ShardStore(state)
    with locked(state, marketplace, holder="tradepost apply --shards"):
        holder = state.lock_holder(marketplace)
        assert holder is not None  # taken a moment ago, renewed since
        plan = ShardRun(uuid.uuid4().hex, run.name, holder.token, fingerprint_of(run), shards)
        store.begin(plan)
        try:
            planner = run.planner(state)
            planner.skipped_rows = False  # the shards get no unchanged SKU: their rows are not read
            changes = planner.changes(catalog_records(project, run.trade_policy))
            written = store.write(plan, sent_stream(run, changes), marketplace)
            result = ShardedApply(ApplySummary(run.name), shards=len(written.per_shard))
            guard = mass_delete(
                run.name,
                written.deletes,
                state.count(marketplace),
                project.marketplace(run.name).max_delete_share,
            )
            if guard is not None and not allow_mass_delete:
                result.refused = guard
                return result
            if written.per_shard:  # nothing to send: no job to hand out
                started = time.monotonic()
                outcomes, result.given_up = asyncio.run(
                    _taskqueue.run_shards(
                        state, store, plan.run_id, sorted(written.per_shard), timeout, poll, on_wait
                    )
                )
                _merge_outcomes(result, outcomes)
                result.summary.seconds = time.monotonic() - started  # the shards' wall time, not their sum
            if not planner.summary.deletes_skipped and not result.failed_shards and not result.given_up:
                record_full_apply(state, run.name, result.summary)
            return result
        finally:
            store.forget(plan.run_id)


def _merge_outcomes(result: ShardedApply, outcomes: dict[int, ShardOutcome]) -> None:
    for shard, outcome in sorted(outcomes.items()):
        if outcome.summary is not None:
            _merge(result.summary, outcome.summary)
        if outcome.status != "done":
            result.failed_shards[shard] = outcome.error or outcome.status


def apply_shard(project: Project, runs: dict[str, MarketplaceRun], run_id: str, shard: int) -> None:
    """A shard job's work, in a worker: apply the shard's records under the coordinator's lock and
    record the summary. Whatever stops it short is recorded as the shard's failure (the
    coordinator reports it); a kill records nothing, and the job is run again elsewhere.

    One run of a shard at a time: a job holds the shard's advisory lock on its own connection, so
    a job handed back while its first run still lives (a worker paused past its heartbeats, not
    dead) waits for that run to end, then resumes where it stopped; a dead worker's connection,
    and its lock, go with it. The job builds its own connector (jobs run side by side in
    threads). A marketplace whose refresh token is single-use (Mercado Libre) runs one shard at a
    time across the workers: each refresh kills the token the others would use."""
    with open_state(project) as state:
        store = ShardStore(state)
        plan = store.run(run_id)
        if plan is None:  # the coordinator is done with this run: it gave up or finished
            return
        try:
            run = _run_for(project, runs, plan)
            state.join_lock(run.compiled.marketplace, plan.lock_token)
            with ExitStack() as turns:
                turns.enter_context(_advisory_lock(state, f"tradepost-shard:{run_id}:{shard}"))
                if run.connector.single_use_refresh_token:
                    turns.enter_context(_advisory_lock(state, f"tradepost-token:{run.compiled.marketplace}"))
                earlier = store.outcomes(run_id).get(shard)
                if earlier is not None and earlier.status == "done":  # an earlier run of the job finished it
                    return
                store.mark(run_id, shard, "taken")
                summary = ApplySummary(run.name)
                # One executor for the whole shard, fed as the batches are read: no pause to drain
                # its tasks, nor a new bucket connection, every batch.
                records = (record for batch in store.records(run_id, shard) for record in batch)
                _merge(summary, asyncio.run(apply_records(run, project, state, records)))
        except TradepostError as error:  # the lock may be lost: the outcome is written all the same
            store.mark(run_id, shard, "failed", error=str(error), checked=False)
            return
        store.mark(run_id, shard, "done", summary)


@contextmanager
def _advisory_lock(state: StateStore, name: str) -> Iterator[None]:
    """Hold a PostgreSQL advisory lock (of this connection) for the block; wait for it while another
    connection holds it, stopping if this run's marketplace lock is lost meanwhile."""
    key = (name,)
    while not state.db.execute("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", key).fetchone()[0]:
        time.sleep(LOCK_POLL)
    try:
        yield
    finally:
        state.db.execute("SELECT pg_advisory_unlock(hashtextextended(?, 0))", key, checked=False)


def _run_for(project: Project, runs: dict[str, MarketplaceRun], plan: ShardRun) -> MarketplaceRun:
    """The shard's marketplace, compiled again for this job, with the coordinator's rules."""
    if plan.marketplace not in runs:
        raise TradepostError(
            f"this worker's config has no marketplace {plan.marketplace}; start it with the "
            "coordinator's config"
        )
    run = open_marketplace(project, plan.marketplace)
    if fingerprint_of(run) != plan.fingerprint:
        raise TradepostError(
            f"this worker's {plan.marketplace} rules differ from the coordinator's; restart the workers "
            "after changing rules"
        )
    return run
