"""The sync worker: queued SKUs read again, planned for each marketplace, applied, marked done.

:class:`SyncWorker` is the worker that runs for its life (`tradepost sync`, `serve --sync`): a feed
takes what is queued (everything, up to a bound) and reads it from the source, in a thread, while
each marketplace's lane applies what was read for it before, at its own pace, and records its own
outcome; a lane free again takes everything read for it meanwhile, each SKU at its newest version,
in one batch. A slow or failing marketplace therefore holds up no other, and no read waits for an
apply. The worker takes as an ``owner`` (:meth:`~engine.state.NotificationQueue.take`): a SKU
notified again while a lane still applies its older version is taken and read again at once for the
lanes that are free.

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
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Sequence
from contextlib import closing, suppress
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine import failpoints
from engine._diagnostics import TradepostError
from engine.connectors._http import AiohttpTransport
from engine.connectors._registry import source as source_plugin
from engine.connectors._source import Catalogs, SourceConfig
from engine.model._catalog import CatalogRecord, MalformedRecord, SourceItem
from engine.project._apply import apply_records, authenticate, locked, sent_records
from engine.project._assembly import CONNECTIONS, MarketplaceRun, catalog_records
from engine.project._config import Project
from engine.project._metrics import observe_applied, observe_synced
from engine.state._queue import WORK_LEASE, NotificationQueue, QueuedSku
from engine.state._store import StateStore
from engine.sync._deletes import mass_delete
from engine.sync._executor import ApplySummary

SYNC_BATCH = 250
"""SKUs a worker takes at once, and a lane applies at once at most."""

MAX_BACKOFF = 60.0
"""Seconds at most between two tries of a failing marketplace's SKUs."""


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


@dataclass
class _Lane:
    """One marketplace's share of the worker: what was read for it and waits (``pending``, each
    SKU at its newest version), what it is applying (``active``), and what failed and waits for its
    backoff (``failed``) before going back to the queue."""

    run: MarketplaceRun
    pending: dict[str, tuple[QueuedSku, list[SourceItem], bool]] = field(default_factory=dict)
    active: dict[str, int] = field(default_factory=dict)
    failed: dict[str, QueuedSku] = field(default_factory=dict)
    backoff: float = 0.0
    retry_at: float = 0.0
    ready: asyncio.Event = field(default_factory=asyncio.Event)

    def wants(self, item: QueuedSku) -> bool:
        """Whether this version of the SKU is news to the lane."""
        if self.run.name in item.done_for:
            return False
        waiting = self.pending.get(item.sku_id)
        held = max(
            waiting[0].version if waiting else 0,
            self.active.get(item.sku_id, 0),
            self.failed[item.sku_id].version if item.sku_id in self.failed else 0,
        )
        return item.version > held

    def hold(self, items: Iterable[QueuedSku], poll: float, lease: float) -> None:
        """Keep these SKUs back for the backoff, which doubles while the lane keeps failing."""
        for item in items:
            self.failed[item.sku_id] = item
        self.backoff = min(max(2 * self.backoff, poll), MAX_BACKOFF, lease / 2)
        self.retry_at = time.monotonic() + self.backoff


class SyncWorker:
    """The worker for its life (see the module docstring): :meth:`run` until :meth:`stop`.

    :meth:`wake` (from any thread) starts the feed's next take at once; without it the feed takes
    every ``poll`` seconds. Each lane's batch is reported to ``on_report`` as it ends, a read that
    failed whole (VTEX refusing the keys) to ``on_error``; its SKUs wait for the backoff. On the
    way out, once every lane finished its batch, whatever the worker still holds is handed back.
    """

    def __init__(
        self,
        project: Project,
        runs: Sequence[MarketplaceRun],
        state: StateStore,
        queue: NotificationQueue,
        reads: SyncReads,
        *,
        batch: int = SYNC_BATCH,
        lease: float = WORK_LEASE,
        poll: float = 1.0,
        on_report: Callable[[SyncReport], None] = lambda report: None,
        on_error: Callable[[str], None] = lambda error: None,
        transports: dict[str, httpx.AsyncBaseTransport] | None = None,
        executor_options: dict[str, Any] | None = None,
    ) -> None:
        self.project, self.runs, self.state, self.queue, self.reads = project, runs, state, queue, reads
        self.batch, self.lease, self.poll = batch, lease, poll
        self.on_report, self.on_error = on_report, on_error
        self.transports, self.executor_options = transports or {}, executor_options
        self.owner = uuid.uuid4().hex
        self._loop: asyncio.AbstractEventLoop | None = None
        self._woken = asyncio.Event()
        self._stopping = asyncio.Event()
        self._stop_asked = threading.Event()
        self._rotation, self._rotated = asyncio.Lock(), False

    def wake(self) -> None:
        """Take the queue now (thread-safe)."""
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._woken.set)

    def stop(self) -> None:
        """Take nothing more, let each lane finish its batch, hand the rest back (thread-safe)."""
        self._stop_asked.set()
        if self._loop is not None:
            self._loop.call_soon_threadsafe(self._stopping.set)

    def run(self) -> None:
        asyncio.run(self._run())

    async def _run(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._woken, self._stopping = asyncio.Event(), asyncio.Event()
        if self._stop_asked.is_set():
            self._stopping.set()
        lanes = [_Lane(run) for run in self.runs]
        kept = {
            r.name: _Kept(AiohttpTransport(CONNECTIONS)) for r in self.runs if r.name not in self.transports
        }
        self.transports = {**kept, **self.transports}
        try:
            async with asyncio.TaskGroup() as group:
                for lane in lanes:
                    group.create_task(self._apply(lane))
                await self._feed(lanes)
                for lane in lanes:
                    lane.ready.set()  # each sees the stop once its batch is over
        except ExceptionGroup as failed:  # a lane's own failure (a broken store), as it was raised
            raise failed.exceptions[0] from None
        finally:
            self.queue.release_owned(self.owner)
            for transport in kept.values():
                await transport.inner.aclose()

    async def _rotate(self) -> None:
        """Before the worker's first batch, refresh the token of each marketplace whose refresh kills
        the old refresh token, under its lock, before any lane sends: a kill while the answer is on
        the way is then never one another marketplace's sending brings (later refreshes are hours
        apart)."""
        async with self._rotation:
            if self._rotated:
                return
            self._rotated = True
            await self._refresh()

    async def _refresh(self) -> None:
        for run in self.runs:
            if run.connector.single_use_refresh_token:
                try:
                    with locked(self.state, run.compiled.marketplace, holder="tradepost sync"):
                        await authenticate(run, self.project, self.transports.get(run.name))
                except TradepostError:
                    continue  # held by another run: its lane reports it with its first batch

    async def _feed(self, lanes: list[_Lane]) -> None:
        """Take, read and hand to the lanes until stopped; the SKUs whose backoff is over go back."""
        while not self._stopping.is_set():
            self._woken.clear()
            for lane in lanes:
                if lane.failed and time.monotonic() >= lane.retry_at:
                    self.queue.release(list(lane.failed.values()))
                    lane.failed.clear()
            try:
                taken = self.queue.take(self.batch, self.lease, owner=self.owner)
            except TradepostError as error:  # the store cannot be written now: tried again later
                self.on_error(str(error))
                await self._idle(lanes)
                continue
            wanted = [item for item in taken if any(lane.wants(item) for lane in lanes)]
            if wanted:
                try:
                    read = await asyncio.to_thread(_read, self.project, self.runs, self.reads, wanted)
                except TradepostError as error:
                    self.on_error(str(error))
                    for lane in lanes:
                        if mine := [item for item in wanted if lane.wants(item)]:
                            lane.hold(mine, self.poll, self.lease)
                else:
                    self._hand(lanes, wanted, read)
            if len(taken) < self.batch:
                await self._idle(lanes)

    async def _idle(self, lanes: list[_Lane]) -> None:
        """Until woken, stopped, the poll, or the first backoff's end."""
        due = [lane.retry_at - time.monotonic() for lane in lanes if lane.failed]
        with suppress(TimeoutError):
            async with asyncio.timeout(max(0.0, min([self.poll, *due]))):
                await _first(self._woken, self._stopping)

    def _hand(self, lanes: list[_Lane], taken: list[QueuedSku], read: dict[str, list[SourceItem]]) -> None:
        """Each lane gets the SKUs it wants with their records in its trade policy; one its source
        did not answer for waits for the lane's backoff."""
        for lane in lanes:
            items = [item for item in taken if lane.wants(item)]
            if not items:
                continue
            records, unread, gone = _readable(read[lane.run.trade_policy])
            by_sku: dict[str | None, list[SourceItem]] = {}
            for record in records:
                by_sku.setdefault(_sku_of(record), []).append(record)
            if not_read := [item for item in items if item.sku_id in unread]:
                lane.hold(not_read, self.poll, self.lease)
            for item in items:
                if item.sku_id not in unread:
                    lane.pending[item.sku_id] = (item, by_sku.get(item.sku_id, []), item.sku_id in gone)
            lane.ready.set()

    async def _apply(self, lane: _Lane) -> None:
        """The lane's loop: everything read for it (up to the batch), applied in one go, its outcome
        recorded; until stopped, with its batch in hand finished."""
        names = [run.name for run in self.runs]
        while True:
            await lane.ready.wait()
            lane.ready.clear()
            if self._stopping.is_set():
                return
            if not lane.pending:
                continue
            batch = [lane.pending.pop(sku) for sku in list(lane.pending)[: self.batch]]
            if lane.pending:
                lane.ready.set()
            report = SyncReport(taken=len(batch))
            lane.active = {item.sku_id: item.version for item, _, _ in batch}
            await self._rotate()
            try:
                await self._apply_batch(lane, batch, names, report)
            except TradepostError as error:  # the queue could not be told: the batch is tried again
                self.on_error(str(error))
                lane.hold([item for item, _, _ in batch], self.poll, self.lease)
            finally:
                lane.active = {}
            self.on_report(report)

    async def _apply_batch(
        self,
        lane: _Lane,
        batch: list[tuple[QueuedSku, list[SourceItem], bool]],
        names: list[str],
        report: SyncReport,
    ) -> None:
        run = lane.run
        outcome = report.outcome(run.name)
        records = [record for _, found, _ in batch for record in found]
        ids = {item.sku_id for item, _, _ in batch}
        gone = {item.sku_id for item, _, missing in batch if missing}
        held = await _sync_marketplace(
            self.project,
            run,
            self.state,
            (records, ids, gone),
            outcome,
            self.transports,
            self.executor_options,
            _Rotations(()),
        )
        outcome.held |= held
        finished = [item for item, _, _ in batch if item.sku_id not in held]
        failpoints.reach("sync:applied")  # applied and recorded in the state; the queue not told yet
        report.left_queue += self.queue.done(finished, run.name, names)
        observe_synced(run.name, finished)
        outcome.done += len(finished)
        report.pending = [item for item, _, _ in batch if item.sku_id in held]
        if report.pending:
            lane.hold(report.pending, self.poll, self.lease)
        else:
            lane.backoff = 0.0


class _Kept(httpx.AsyncBaseTransport):
    """A lane's connections, kept for the worker's life: each batch's client (``apply_records``
    builds one) sends through them and leaves them open; the worker closes them at its end."""

    def __init__(self, inner: httpx.AsyncBaseTransport) -> None:
        self.inner = inner

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        return await self.inner.handle_async_request(request)

    async def aclose(self) -> None:
        """Left open: the batch's client is closing, not the worker."""


async def _first(*events: asyncio.Event) -> None:
    """Until one of the events is set."""
    waits = [asyncio.ensure_future(event.wait()) for event in events]
    try:
        await asyncio.wait(waits, return_when=asyncio.FIRST_COMPLETED)
    finally:
        for wait in waits:
            wait.cancel()


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
        observe_synced(run.name, finished)
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
    observe_applied(run.name, summary)
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
