"""The sync worker: queued SKUs read again, planned for each marketplace, applied, marked done.

:func:`sync_once` drains the notification queue once, batch by batch. A batch's SKUs are read
from the source once for every trade policy (:class:`SyncReads`: what does not depend on the
trade policy is read once, and, from VTEX, only what each SKU's notification says changed, the
rest from the answers the worker keeps), then each marketplace not yet done for them plans
exactly those SKUs (``Planner.changes(only=...)``: a delete is planned only for a SKU
of the batch, never for another listing) and applies the plan under its lock with the executor,
as ``tradepost apply`` does. Only then is that marketplace's outcome recorded in the queue
(:meth:`~engine.state.NotificationQueue.done`); a row leaves the queue when every marketplace
has one for the version taken.

What is never marked done: a SKU the source did not answer for (it is read again later), and a
marketplace's SKUs whose apply failed, or that the marketplace's lock or mass-delete guard held
back. They stay leased to this worker, so the other marketplaces and the rest of the queue go on;
the caller hands them back (:meth:`~engine.state.NotificationQueue.release`) when it wants them
retried, after its backoff. A SIGKILL at any point loses nothing: the rows are still queued and
come back when the lease runs out; the executor's state makes the next apply send only what
was not yet applied, so nothing is sent twice.

A SKU the source no longer has for the trade policy (VTEX answers 404 for its context: removed
from the trade policy or the affiliate) is left out of the records, so the planner withdraws it,
as a full plan does for a SKU gone from the catalog; a deactivated one is read, and the rules'
``select`` withdraws it.
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Sequence
from contextlib import closing
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine import failpoints
from engine._diagnostics import TradepostError
from engine.connectors._registry import source as source_plugin
from engine.connectors._source import Catalogs, SourceConfig
from engine.model._catalog import CatalogRecord, MalformedRecord, SourceItem
from engine.project._apply import apply_records, authenticate, locked, sent_records
from engine.project._assembly import MarketplaceRun, catalog_records
from engine.project._config import Project
from engine.state._queue import WORK_LEASE, NotificationQueue, QueuedSku
from engine.state._store import StateStore
from engine.sync._deletes import mass_delete
from engine.sync._executor import ApplySummary

SYNC_BATCH = 100
"""SKUs a worker takes at once."""


class SyncReads:
    """How a worker reads its batches, kept for the worker's life (a pass is one poll).

    From a source plug-in, through its :class:`~engine.connectors.Catalogs`: a batch is read
    once for every trade policy, with what each SKU's notification says changed, so a source
    that keeps its last answers (VTEX) re-reads only that; closing it drops what it kept, so a
    worker started again reads each SKU's first notification whole. From a catalog file, its
    lines for the batch's SKUs (a file has no index and keeps nothing).
    """

    def __init__(self, project: Project) -> None:
        self.source: SourceConfig = project.config.source
        source = self.source
        self.catalogs: Catalogs | None = (
            source_plugin(source.type).catalogs(source, project.folder) if source.type != "file" else None
        )

    def read(
        self, project: Project, trade_policies: Sequence[str], taken: Sequence[QueuedSku]
    ) -> dict[str, list[SourceItem]]:
        """The taken SKUs' records (and malformed-record reports) in each trade policy."""
        sku_ids = sorted({item.sku_id for item in taken})
        if self.catalogs is None:
            return {policy: batch_records(project, policy, sku_ids) for policy in trade_policies}
        changed = {item.sku_id: item.changes for item in taken}
        return self.catalogs.records_for(trade_policies, sku_ids, changed)

    def close(self) -> None:
        if self.catalogs is not None:
            self.catalogs.close()


@dataclass
class MarketplaceOutcome:
    """One marketplace over a sync pass: what was sent, and what stays queued for it and why."""

    marketplace: str
    summary: ApplySummary
    done: int = 0
    held: set[str] = field(default_factory=set)
    errors: list[str] = field(default_factory=list)

    @property
    def failed(self) -> bool:
        return bool(self.held or self.errors or self.summary.failed)

    def to_dict(self) -> dict[str, Any]:
        return {
            **self.summary.to_dict(),
            "done": self.done,
            "held": sorted(self.held),
            "errors": self.errors,
        }


@dataclass
class SyncReport:
    """A pass over the queue: SKUs taken, SKUs that left it, and each marketplace's outcome."""

    taken: int = 0
    left_queue: int = 0
    unread: set[str] = field(default_factory=set)
    marketplaces: dict[str, MarketplaceOutcome] = field(default_factory=dict)
    pending: list[QueuedSku] = field(default_factory=list)
    """SKUs still leased to this worker, not done for some marketplace: release them to retry."""

    @property
    def failed(self) -> bool:
        return bool(self.unread) or any(m.failed for m in self.marketplaces.values())

    def outcome(self, name: str) -> MarketplaceOutcome:
        return self.marketplaces.setdefault(name, MarketplaceOutcome(name, ApplySummary(name)))

    def to_dict(self) -> dict[str, Any]:
        return {
            "taken": self.taken,
            "left_queue": self.left_queue,
            "unread": sorted(self.unread),
            "marketplaces": [m.to_dict() for m in self.marketplaces.values()],
        }


def sync_once(
    project: Project,
    runs: Sequence[MarketplaceRun],
    state: StateStore,
    queue: NotificationQueue,
    *,
    batch: int = SYNC_BATCH,
    lease: float = WORK_LEASE,
    transports: dict[str, httpx.AsyncBaseTransport] | None = None,
    executor_options: dict[str, Any] | None = None,
    reads: SyncReads | None = None,
) -> SyncReport:
    """Take batches until the queue has nothing this pass has not tried; see the module docstring.

    ``reads`` is how batches are read: a worker passes its own, kept for its life, so that what
    VTEX answered before serves later notifications; without it, this pass reads with its own,
    closed at its end (``tradepost sync --once``)."""
    if reads is None:
        with closing(SyncReads(project)) as own:
            return sync_once(
                project,
                runs,
                state,
                queue,
                batch=batch,
                lease=lease,
                transports=transports,
                executor_options=executor_options,
                reads=own,
            )
    report = SyncReport()
    tried: set[str] = set()
    while taken := queue.take(batch, lease):
        fresh = [item for item in taken if item.sku_id not in tried]
        again = [item for item in taken if item.sku_id in tried]
        if again:  # its lease ran out during this pass: the next pass retries it
            queue.release(again)
        if not fresh:
            break
        tried.update(item.sku_id for item in fresh)
        report.taken += len(fresh)
        try:
            read = _read(project, runs, reads, fresh)
            _sync_batch(
                project, runs, state, queue, (fresh, read), report, transports or {}, executor_options
            )
        except Exception:  # VTEX refusing the keys, a broken store: hand everything back, then raise
            queue.release([*report.pending, *fresh])
            raise
    return report


class _Rotations:
    """The marketplaces of a batch whose token refresh kills the old refresh token, until each has
    refreshed (or failed to): the others send nothing before, so a kill while such a refresh's
    answer is on the way (the new token not yet written down) is never one their sending brings."""

    def __init__(self, names: Iterable[str]) -> None:
        self.pending = set(names)
        self.over = asyncio.Event()
        if not self.pending:
            self.over.set()

    def finish(self, name: str) -> None:
        self.pending.discard(name)
        if not self.pending:
            self.over.set()


_Planned = tuple[list[SourceItem], set[str], set[str]]
"""A marketplace's share of a batch: the records to plan from, the SKUs to plan, those VTEX no
longer has."""


def _sync_batch(
    project: Project,
    runs: Sequence[MarketplaceRun],
    state: StateStore,
    queue: NotificationQueue,
    batch: tuple[list[QueuedSku], dict[str, list[SourceItem]]],
    report: SyncReport,
    transports: dict[str, httpx.AsyncBaseTransport],
    executor_options: dict[str, Any] | None,
) -> None:
    """Plan and apply the taken SKUs, read in every trade policy, on each marketplace not done.

    The marketplaces go side by side (one event loop, one task each): a marketplace that keeps
    failing (its retries, its backoff) holds up none of the others. Each task plans before its
    first ``await``, so planners never interleave on the store; the executors' writes are each a
    statement or a transaction of their own, on the one thread."""
    taken, read = batch
    names = [run.name for run in runs]
    work: list[tuple[MarketplaceRun, list[QueuedSku], _Planned]] = []
    for run in runs:
        wanted = [item for item in taken if run.name not in item.done_for]
        if not wanted:
            continue
        records, unread, gone = _readable(read[run.trade_policy])
        report.unread |= unread
        work.append((run, wanted, (records, {item.sku_id for item in wanted} - unread, gone)))

    async def one(run: MarketplaceRun, wanted: list[QueuedSku], planned: _Planned) -> set[str]:
        outcome = report.outcome(run.name)
        ids = planned[1]
        held = await _sync_marketplace(
            project, run, state, planned, outcome, transports, executor_options, rotations
        )
        outcome.held |= held
        finished = [item for item in wanted if item.sku_id in ids - held]
        failpoints.reach("sync:applied")  # applied and recorded in the state; the queue not told yet
        report.left_queue += queue.done(finished, run.name, names)
        outcome.done += len(finished)
        return {item.sku_id for item in wanted} - {item.sku_id for item in finished}

    async def every() -> list[set[str]]:
        return list(await asyncio.gather(*(one(*task) for task in work)))

    rotations = _Rotations(run.name for run, _, _ in work if run.connector.single_use_refresh_token)

    pending = set().union(*asyncio.run(every())) if work else set()
    report.pending += [item for item in taken if item.sku_id in pending]


def _read(
    project: Project, runs: Sequence[MarketplaceRun], reads: SyncReads, taken: list[QueuedSku]
) -> dict[str, list[SourceItem]]:
    """The batch in the trade policies of the marketplaces not yet done for some of its SKUs."""
    policies = {run.trade_policy for run in runs if any(run.name not in item.done_for for item in taken)}
    return reads.read(project, sorted(policies), taken)


def batch_records(project: Project, trade_policy: str, sku_ids: Sequence[str]) -> list[SourceItem]:
    """These SKUs' lines of the catalog file (a file is read whole: it has no index); a source
    plug-in's batches are read through its ``Catalogs`` (:class:`SyncReads`)."""
    wanted = set(sku_ids)
    return [item for item in catalog_records(project, trade_policy) if _sku_of(item) in wanted]


def _sku_of(item: SourceItem) -> str | None:
    return item.sku.id if isinstance(item, CatalogRecord) else item.sku_id


def _readable(items: Iterable[SourceItem]) -> tuple[list[SourceItem], set[str], set[str]]:
    """The records to plan from, the SKUs the source did not answer for (planned nowhere), and
    those it says it no longer has: left out of the records, so the planner withdraws them."""
    records: list[SourceItem] = []
    unread: set[str] = set()
    gone: set[str] = set()
    for item in items:
        if isinstance(item, MalformedRecord) and item.sku_id:
            if item.unavailable:
                unread.add(item.sku_id)
                continue
            if item.missing:
                gone.add(item.sku_id)
                continue
        records.append(item)
    return records, unread, gone


async def _sync_marketplace(
    project: Project,
    run: MarketplaceRun,
    state: StateStore,
    batch: _Planned,
    outcome: MarketplaceOutcome,
    transports: dict[str, httpx.AsyncBaseTransport],
    executor_options: dict[str, Any] | None,
    rotations: _Rotations,
) -> set[str]:
    """Plan and apply the batch's SKUs (``ids``, planned from ``records``) on one marketplace;
    returns the SKUs whose outcome is not settled.

    The mass-delete guard counts the withdrawals of SKUs the source no longer has (``gone``): a
    source answering 404 for everything must not empty a marketplace batch by batch. A SKU the
    rules no longer select (sold out, deactivated) was read, and is withdrawn as the rules say."""
    records, ids, gone = batch
    marketplace = run.compiled.marketplace
    try:
        if not ids:
            return set()
        with locked(state, marketplace, holder="tradepost sync"):
            if run.connector.single_use_refresh_token:  # under the lock: no other run refreshes it
                await authenticate(run, project, transports.get(run.name))
                rotations.finish(run.name)
            await rotations.over.wait()
            changes = _planned(run, state, records, ids)
            deletes = sum(1 for r in changes if r["op"] == "delete" and r["sku_id"] in gone)
            guard = mass_delete(
                run.name, deletes, state.count(marketplace), project.marketplace(run.name).max_delete_share
            )
            if guard is not None:
                outcome.errors.append(f"{guard.refusal()}; run `tradepost apply --allow-mass-delete`")
                return set(ids)
            summary = await apply_records(
                run,
                project,
                state,
                changes,
                transport=transports.get(run.name),
                executor_options=executor_options,
            )
    except TradepostError as error:
        outcome.errors.append(str(error))
        return set(ids)
    finally:
        rotations.finish(run.name)
    _merge(outcome.summary, summary)
    return _failed_skus(summary, changes)


def _planned(
    run: MarketplaceRun, state: StateStore, records: list[SourceItem], ids: set[str]
) -> list[dict[str, Any]]:
    """The change records an apply sends for these SKUs only."""
    return sent_records(run, run.planner(state).changes(records, only=ids))


def _failed_skus(summary: ApplySummary, changes: list[dict[str, Any]]) -> set[str]:
    """The SKUs of failed changes; a failed family create fails every member it carried."""
    failed = {result.sku_id for result in summary.failures}
    for record in changes:
        if record["sku_id"] in failed:
            failed.update(str(sku) for sku in record.get("family") or ())
    return failed


def _merge(total: ApplySummary, part: ApplySummary) -> None:
    total.applied += part.applied
    total.failed += part.failed
    total.skipped += part.skipped
    total.requests += part.requests
    total.retries += part.retries
    total.throttled += part.throttled
    total.seconds += part.seconds
    total.failures += part.failures
