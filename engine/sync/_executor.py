"""The executor: send a plan's changes to a marketplace, and record each outcome as it arrives.

Plan and apply share one code path: apply takes the very change records a saved plan
holds (``engine.sync._planfile.change_record``), built by the same planner. What it adds:

* a token bucket at the connector's declared rate and bounded concurrency, so a run
  stays under the marketplace's limit instead of bouncing off it;
* retries under a :class:`~engine.connectors.RetryPolicy` (exponential backoff and jitter
  that honour Retry-After), for what the connector reads as retryable (429, 5xx) and transport
  failures only: a 4xx means the request is wrong and resending it cannot help;
* before every call that is not safe to repeat (Mercado Libre's ``POST /items``), the
  connector's look-up of the SKU on the marketplace (:meth:`Connector.find_existing`): a
  listing found is adopted (its remote id recorded, its price, quantity and content brought
  to the plan) instead of created again. The state store is a cache of what the marketplace
  holds: deleting, truncating or restoring it never duplicates a listing;
* a state-store write for every SKU as soon as its calls succeed, so a run killed
  midway resumes without resending what landed; a family created by one request is recorded
  by one transaction (every member's row, or none). The concurrent tasks' state calls go
  through :class:`~engine.state._batched.BatchedState`: those that arrive together share a
  query or a transaction, and on PostgreSQL they leave the event loop, which keeps sending;
  each task still waits for its outcome's commit before it counts the change or takes the next;
* failpoints (``engine.failpoints``) at every state write and every remote call, named
  ``apply:...``, for the kill tests (``tests/test_kills.py``, ``bench/bench_kills.py``);
* a check of accepted-but-unprocessed changes (Amazon submissions) before they count.
"""

from __future__ import annotations

import asyncio
import contextvars
import dataclasses
import math
import random
import time
from collections.abc import Awaitable, Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from decimal import Decimal
from itertools import chain, islice
from typing import Any

import httpx

from engine import failpoints as _failpoints
from engine._diagnostics import TradepostError
from engine.connectors._change import ChangeRecord
from engine.connectors._contract import CallResult, Connector, Credentials
from engine.connectors._pacing import PacerFactory, TokenBucket
from engine.connectors._retry import RetryPolicy, retry_after
from engine.connectors._routes import Call
from engine.jsonio import dumps
from engine.model._listing import Listing
from engine.secrets._redact import redact
from engine.state._batched import BatchedState
from engine.state._store import (
    Applied,
    AppliedListing,
    Deleted,
    Failed,
    Outcome,
    StateError,
    StateStore,
    Withdrawn,
    applied_from,
)

Sleep = Callable[[float], Awaitable[None]]
_REQUESTS: contextvars.ContextVar[list[int] | None] = contextvars.ContextVar("requests", default=None)
"""Requests made by the current task while set (each worker is a task of its own)."""
EXIT_PARTIAL = 3
SENT = ("create", "update", "delete")
BULK_CHUNK = 10_000
"""Changes handed to the connector's ``apply_in_bulk`` at a time once a plan reaches its bulk
threshold: one Amazon feed's worth, so a chunk's records are all that is held."""
PACE = 0.95
"""Share of the declared rate the executor sends at."""
REQUEST_BUDGET = 900.0
"""Seconds one change's tries may take, waits included. A marketplace asking to wait longer
(``Retry-After: 86400``) fails the change now, reported and sent by the next run, instead of
holding the marketplace's lock, and a scheduler's run, for a day."""


@dataclass
class SkuResult:
    """The outcome of one change."""

    sku_id: str
    op: str
    ok: bool
    error: str | None = None
    requests: int = 0
    skipped: bool = False


@dataclass
class ApplySummary:
    """What an apply did, for the CLI's summary line and --json."""

    marketplace: str
    applied: int = 0
    failed: int = 0
    skipped: int = 0
    requests: int = 0
    retries: int = 0
    throttled: int = 0
    seconds: float = 0.0
    failures: list[SkuResult] = field(default_factory=list)

    def add(self, result: SkuResult) -> None:
        self.requests += result.requests
        if result.skipped:
            self.skipped += 1
        elif result.ok:
            self.applied += 1
        else:
            self.failed += 1
            self.failures.append(result)

    def line(self) -> str:
        return (
            f"Apply: {self.applied} applied, {self.failed} failed, {self.skipped} already applied "
            f"({self.requests} requests, {self.retries} retries, {self.seconds:.1f}s)"
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "applied": self.applied,
            "failed": self.failed,
            "skipped": self.skipped,
            "requests": self.requests,
            "retries": self.retries,
            "throttled": self.throttled,
            "seconds": round(self.seconds, 3),
            "failures": [{"sku_id": f.sku_id, "op": f.op, "error": f.error} for f in self.failures],
        }


class Executor:
    """Applies change records for one marketplace."""

    def __init__(
        self,
        connector: Connector,
        client: httpx.AsyncClient,
        state: StateStore,
        credentials: Credentials | None = None,
        *,
        marketplace: str | None = None,
        rate: float | None = None,
        concurrency: int | None = None,
        max_attempts: int = 8,
        base_delay: float = 0.1,
        max_delay: float = 30.0,
        sleep: Sleep = asyncio.sleep,
        on_result: Callable[[SkuResult], None] | None = None,
        after_auth: Callable[[], None] | None = None,
        seed: int | None = None,
        bucket: PacerFactory = TokenBucket,
    ) -> None:
        """``bucket`` builds the pacer at the paced rate: one of this process, or shared by every
        process sending for the same seller account (``engine.state._ratelimit``)."""
        self.connector = connector
        self.client = client
        self.state = state
        self.credentials = credentials or Credentials()
        self.marketplace = marketplace or connector.name
        # A little headroom: requests leave at our pace but arrive with network jitter, and the
        # marketplace counts arrivals; 429s cost more than the 5% given up.
        self.bucket = bucket((rate or connector.rate_limit) * PACE)
        # Every request the client sends waits for its token, whoever makes it: the executor's
        # calls, and the connector's own (look-ups before a create, token refreshes, read-backs,
        # feeds), which would otherwise leave in bursts and come back as 429s.
        hooks = client.event_hooks
        client.event_hooks = {**hooks, "request": [*hooks.get("request", []), self._pace]}
        self.concurrency = concurrency or max(1, min(16, int((rate or connector.rate_limit) // 2) or 1))
        self.retry = RetryPolicy(
            attempts=max_attempts,
            base=base_delay,
            cap=max_delay,
            jitter=(0.5, 1.5),
            retry_after_mode="floor",
            retry_after_cap=math.inf,
            budget=REQUEST_BUDGET,
            exceptions=(),
            random=random.Random(seed),
        )
        self.sleep = sleep
        self.on_result = on_result
        self.after_auth = after_auth
        self.summary = ApplySummary(self.marketplace)
        self._members: dict[str, ChangeRecord] = {}
        """SKU id -> change record of every family member in the run, for the leader's transaction."""
        self._state = BatchedState(state, self.marketplace)
        """The state calls made while changes are sent (closed when the run ends)."""

    # -- the run -----------------------------------------------------------------------------

    async def apply(self, changes: Iterable[ChangeRecord | Mapping[str, Any]]) -> ApplySummary:
        """Send ``changes`` (a saved plan's records, read into :class:`ChangeRecord` here) as they come.

        ``changes`` may be a planner's stream: the first is sent while the planner is still at
        work, and no more than a queue's worth (or one bulk chunk) is held at a time.
        """
        start = time.monotonic()
        records = (r for r in map(ChangeRecord.of, changes) if r.op in SENT)
        first = next(records, None)
        if first is not None or self.state.pending(self.marketplace):
            # Authenticate first: a refused login stops the run before anything is sent, and the
            # connector learns from its credentials what its calls need (Amazon's seller id).
            await self._headers()
        await self._confirm_leftovers()
        if first is not None:
            try:
                await self._send_all(chain([first], records))
            finally:
                await self._state.aclose()
        self.summary.seconds = time.monotonic() - start
        return self.summary

    async def _send_all(self, records: Iterator[ChangeRecord]) -> None:
        """One request per change, or, once the connector's bulk threshold is reached, bulk
        chunk by bulk chunk (a plan of fewer changes than the threshold goes per change)."""
        threshold = self.connector.bulk_threshold
        if threshold is None:
            await self._apply_each(records)
            return
        head = list(islice(records, threshold))
        if len(head) < threshold:
            await self._apply_each(head)
            return
        size = max(threshold, BULK_CHUNK)
        rest = chain(head, records)
        del head
        while chunk := list(islice(rest, size)):
            await self._apply_in_bulk(chunk)

    async def _headers(self) -> dict[str, str]:
        """Authentication headers; a refresh token the marketplace rotated is saved at once.

        Saved after every authentication, not once per run: a token can be refreshed (and its
        refresh token rotated) hours into a long run, and a run killed after that must not
        leave the next one holding a refresh token that was already used.
        """
        headers = await self.connector.auth_headers(self.client, self.credentials)
        if self.after_auth is not None:
            self.after_auth()
        return headers

    async def _apply_each(self, records: Iterable[ChangeRecord]) -> None:
        """Workers pull changes from a bounded queue that a feeder fills from ``records``."""
        queue: asyncio.Queue[ChangeRecord | None] = asyncio.Queue(maxsize=self.concurrency * 2)
        leaders: dict[str, asyncio.Future[CallResult]] = {}
        left: dict[tuple[str, ...], int] = {}
        pending: dict[str, str] = {}

        async def feed() -> None:
            error: Exception | None = None
            try:
                for group in _whole_families(records):
                    for record in group:
                        if record.family:
                            self._members[record.sku_id] = record
                            left[record.family] = left.get(record.family, 0) + 1
                            if record.payloads:
                                leaders[record.sku_id] = asyncio.get_running_loop().create_future()
                    for record in group:
                        await queue.put(record)
                    await asyncio.sleep(0)  # the workers' answers are read between changes planned
            except Exception as exc:  # the planner's or the plan file's: raised once the queue is sent
                error = exc
            for _ in range(self.concurrency):
                await queue.put(None)
            if error is not None:
                raise error

        async def worker() -> None:
            while (record := await queue.get()) is not None:
                result = await self._apply_one(record, leaders, pending)
                self._finish(result)
                if record.family:
                    self._forget_family_member(record, left, leaders)

        feeder = asyncio.ensure_future(feed())
        workers = [asyncio.ensure_future(worker()) for _ in range(self.concurrency)]
        try:
            # Changes already handed over are sent and recorded before an error of the planner's
            # stops the run; a worker's StateError stops it at once.
            await asyncio.gather(*workers)
            await feeder
        finally:
            for task in (feeder, *workers):
                task.cancel()
        if pending:
            await self._confirm(pending)

    def _forget_family_member(
        self,
        record: ChangeRecord,
        left: dict[tuple[str, ...], int],
        leaders: dict[str, asyncio.Future[CallResult]],
    ) -> None:
        """Once every member of a family in the run is done, its bookkeeping goes (memory stays
        bounded by the families in flight, not the plan)."""
        left[record.family] -= 1
        if left[record.family]:
            return
        del left[record.family]
        for sku_id in record.family:
            leaders.pop(sku_id, None)
            self._members.pop(sku_id, None)

    async def _apply_one(
        self,
        record: ChangeRecord,
        leaders: dict[str, asyncio.Future[CallResult]],
        pending: dict[str, str],
    ) -> SkuResult:
        try:
            return await self._apply_one_unguarded(record, leaders, pending)
        except StateError:
            raise  # the state store failed (damaged, busy, lock lost): the run stops, no SKU is to blame
        except TradepostError as exc:
            # A change the connector cannot express, or a token refused mid-run: this SKU fails,
            # the run goes on (a family's followers learn it through the leader's future).
            sku_id = record.sku_id
            if sku_id in leaders and not leaders[sku_id].done():
                leaders[sku_id].set_result(CallResult(False, error=str(exc)))
            return await self._record(record, False, None, str(exc), 0)

    async def _apply_one_unguarded(
        self,
        record: ChangeRecord,
        leaders: dict[str, asyncio.Future[CallResult]],
        pending: dict[str, str],
    ) -> SkuResult:
        sku_id, op, family, leader = record.sku_id, record.op, record.family, record.leader
        if leader is not None and leader != sku_id and leader in leaders:
            # A family member travels in its leader's request: its fate is the leader's, and its
            # row is written by the leader's transaction.
            outcome = await asyncio.shield(leaders[leader])
            if outcome.ok:
                return SkuResult(sku_id, op, True)
            return await self._record(record, False, None, outcome.error, 0)
        row, withdrawn = await self._state.known(sku_id)
        if _already_applied(record, row):
            if sku_id in leaders and not leaders[sku_id].done():  # its followers landed with it
                leaders[sku_id].set_result(CallResult(True, remote_id=row.remote_id if row else None))
            return SkuResult(sku_id, op, True, skipped=True)
        remote_id = row.remote_id if row else withdrawn.remote_id if withdrawn else None
        kept = await self._kept(record, withdrawn) if op == "create" and row is None else {}
        calls = self.connector.calls_for(record, remote_id, kept)
        if not calls and family:
            return SkuResult(sku_id, op, False, "its family's first SKU is not in this run")
        requests = 0
        result = CallResult(True, remote_id=remote_id)
        for call in calls:
            if not self.connector.idempotent(call):
                # The marketplace, not the state store, says whether the SKU exists: look first.
                found, looked = await self._look_up(call, record)
                requests += looked
                if found is not None:
                    result = found
                    if not result.ok:
                        break
                    continue
            result, sent = await self._send(call, record)
            requests += sent
            if not result.ok:
                break
        if result.ok and kept:  # a listing brought back keeps its id, unless the answer names another
            result = dataclasses.replace(result, remote_ids={**kept, **(result.remote_ids or {})})
        if result.ok and result.pending:
            token = pending[sku_id] = result.pending
            await self._state.call(lambda store: store.record_pending(self.marketplace, sku_id, token))
            _failpoints.reach("apply:pending-recorded")
        remote = result.remote_id or remote_id
        if family and sku_id in leaders:
            recorded = await self._record_family(record, result, remote, requests)
            if not leaders[sku_id].done():
                leaders[sku_id].set_result(result)
            return recorded
        return await self._record(record, result.ok, remote, result.error, requests)

    async def _kept(self, record: ChangeRecord, withdrawn: Withdrawn | None) -> dict[str, str]:
        """SKU -> remote id of each listing this create brings back with the content it was withdrawn
        with (the SKU's own, or each member of the family it carries): see ``Connector.calls_for``.
        Nothing when the SKU itself was never withdrawn (a first create: no state read)."""
        if withdrawn is None:
            return {}
        members: list[tuple[ChangeRecord, Withdrawn | None]] = [(record, withdrawn)]
        if record.family:
            records = [self._members.get(sku) for sku in record.family]
            if any(member is None for member in records):
                return {}
            known = await asyncio.gather(*(self._state.known(sku) for sku in record.family))
            members = [(member, w) for member, (_, w) in zip(records, known, strict=True) if member]
        return {
            member.sku_id: w.remote_id
            for member, w in members
            if w is not None
            and w.content_hash is not None
            and (listing := member.listing) is not None
            and w.content_hash == listing.content_hash()
        }

    async def _pace(self, request: httpx.Request) -> None:
        """The client's request hook: every request waits for a token of the bucket (and is
        counted where a caller asked, since a connector's look-up makes requests of its own)."""
        await self.bucket.acquire()
        counted = _REQUESTS.get()
        if counted is not None:
            counted[0] += 1

    async def _find(self, call: Call, record: ChangeRecord) -> tuple[CallResult | None, int]:
        """The connector's look-up of the SKU(s) ``call`` would create, retried like any call."""
        requests = [0]

        async def attempt(n: int) -> CallResult | None:
            headers = await self._headers()
            counted = [0]
            token = _REQUESTS.set(counted)  # this task's requests, counted by _pace
            try:
                found = await self.connector.find_existing(self.client, headers, call, record)
            finally:
                _REQUESTS.reset(token)
            _failpoints.reach("apply:looked-up")
            requests[0] += counted[0]
            return found

        found = await self.retry.run_async(
            attempt,
            retry_if=lambda found: found is not None and not found.ok and found.retryable,
            asked=lambda found: None,
            sleep=self.sleep,
            on_retry=self._count_retry,
        )
        if found is None or found.ok or not found.retryable:
            return (None if found is None else _redacted(found)), requests[0]
        why = f"not created: could not tell whether it exists already ({found.error})"
        return CallResult(False, error=redact(why)), requests[0]

    async def _look_up(self, call: Call, record: ChangeRecord) -> tuple[CallResult | None, int]:
        """The listing ``call`` would create, if the marketplace holds it already, adopted; None when
        creating is safe; a failed result when it could not be told. With the requests it took."""
        found, looked = await self._find(call, record)
        if found is None or not found.ok:
            return found, looked
        adopted, sent = await self._adopt(found, record)
        return adopted, looked + sent

    async def _adopt(self, found: CallResult, record: ChangeRecord) -> tuple[CallResult, int]:
        """Bring a listing found on the marketplace to the plan with the calls the connector gave."""
        requests = 0
        ids = dict(found.remote_ids or {})
        remote = found.remote_id
        for call in found.then:
            result, sent = await self._send(call, record)
            requests += sent
            if not result.ok:
                return result, requests
            ids.update(result.remote_ids or {})
        if found.remote_ids is not None and ids:
            remote = ids.get(record.leader or min(ids), remote)
        return CallResult(True, remote_id=remote, remote_ids=ids or None), requests

    async def _send(self, call: Call, record: ChangeRecord) -> tuple[CallResult, int]:
        """One call with retries; returns its result and how many requests it took."""
        tries = [0]

        async def attempt(n: int) -> tuple[CallResult, float | None]:
            tries[0] = n + 1
            headers = await self._headers()
            _failpoints.reach("apply:before-send")
            try:
                response = await self.client.request(
                    call.method,
                    call.path,
                    params=dict(call.params) if call.params else None,
                    content=dumps(call.body).encode("utf-8") if call.body is not None else None,
                    headers={**headers, "Content-Type": "application/json"}
                    if call.body is not None
                    else headers,
                )
            except (httpx.TimeoutException, httpx.TransportError) as exc:
                if not self.connector.idempotent(call):
                    # The request may have landed before the answer was lost: look before resending.
                    found, looked = await self._look_up(call, record)
                    if found is not None:
                        tries[0] += looked
                        return found, None
                return CallResult(False, retryable=True, error=f"{type(exc).__name__}: {exc}"), None
            _failpoints.reach("apply:sent")
            if response.status_code == 429:
                self.summary.throttled += 1
            return self.connector.result_of(call, response), retry_after(response)

        result, asked = await self.retry.run_async(
            attempt,
            retry_if=lambda sent: not sent[0].ok and sent[0].retryable,
            asked=lambda sent: sent[1],
            sleep=self.sleep,
            on_retry=self._count_retry,
        )
        if result.ok or not result.retryable:
            return _redacted(result), tries[0]
        why = f"gave up after {tries[0]} attempts: {result.error}"
        if tries[0] < self.retry.attempts and asked is not None:
            why = (
                f"gave up after {tries[0]} attempt(s): the marketplace asked to wait {asked:.0f} s "
                f"(Retry-After), past what is left of the {REQUEST_BUDGET:.0f} s a change may take; "
                f"the next run sends it: {result.error}"
            )
        return _redacted(CallResult(False, error=why)), tries[0]

    def _count_retry(self, attempt: int, wait: float) -> None:
        self.summary.retries += 1

    async def _record_family(
        self, record: ChangeRecord, result: CallResult, remote: str | None, requests: int
    ) -> SkuResult:
        """The leader writes every member's row in one transaction: a kill leaves all or none."""
        if not result.ok:
            return await self._record(record, False, None, result.error, requests)
        ids = result.remote_ids or {}
        members = [self._members.get(sku) for sku in record.family]
        rows = tuple(
            applied_from(Listing.from_dict(dict(m.after or {})), ids.get(m.sku_id, remote), m.source_hash)
            for m in members
            if m is not None
        )
        await self._state.record(Applied(rows, family=True))
        _failpoints.reach("apply:family-recorded")
        return SkuResult(record.sku_id, record.op, True, requests=requests)

    async def _record(
        self, record: ChangeRecord, ok: bool, remote_id: str | None, error: str | None, requests: int
    ) -> SkuResult:
        """Write the outcome to the state store now, so an interrupted run resumes from here."""
        sku_id, op = record.sku_id, record.op
        outcome: Outcome
        if not ok:
            reason = redact(error or "failed")
            await self._state.record(Failed(sku_id, reason))
            _failpoints.reach("apply:error-recorded")
            return SkuResult(sku_id, op, False, reason, requests)
        if op == "delete":
            outcome = Deleted(sku_id)
        else:
            listing = Listing.from_dict(dict(record.after or {}))
            row = applied_from(listing, remote_id, record.source_hash)
            outcome = Applied((row,), family=bool(record.family))
        await self._state.record(outcome)
        _failpoints.reach("apply:recorded")
        return SkuResult(sku_id, op, True, requests=requests)

    def _finish(self, result: SkuResult) -> None:
        self.summary.add(result)
        if self.on_result is not None:
            self.on_result(result)

    # -- asynchronous outcomes -----------------------------------------------------------------

    async def _confirm(self, pending: Mapping[str, str]) -> None:
        headers = await self._headers()
        outcomes = await self.connector.confirm(self.client, headers, pending)
        _failpoints.reach("apply:confirmed")
        for sku_id, outcome in outcomes.items():
            self.state.clear_pending(self.marketplace, sku_id)
            _failpoints.reach("apply:pending-cleared")
            if not outcome.ok:
                # Accepted, then refused: forget it was applied so the next plan sends it again.
                self.state.record_deleted(self.marketplace, [sku_id])
                error = redact(outcome.error or "refused after acceptance")
                self.state.record_error(self.marketplace, sku_id, error)
                _failpoints.reach("apply:error-recorded")
                self.summary.applied -= 1
                failure = SkuResult(sku_id, "confirm", False, error)
                self.summary.failed += 1
                self.summary.failures.append(failure)
                if self.on_result is not None:
                    self.on_result(failure)

    async def _confirm_leftovers(self) -> None:
        """Submissions a killed run never got to check are checked before anything new is sent."""
        leftovers = self.state.pending(self.marketplace)
        if leftovers:
            self.summary.applied += len(leftovers)  # _confirm subtracts the refused ones
            await self._confirm(leftovers)
            self.summary.applied -= len(leftovers)

    async def _apply_in_bulk(self, records: Sequence[ChangeRecord]) -> None:
        """One chunk: its rows read by one batch, its feed sent, its outcomes written by one batch."""
        known = await asyncio.gather(*(self._state.known(record.sku_id) for record in records))
        todo = []
        for record, (row, _) in zip(records, known, strict=True):
            if _already_applied(record, row):
                self._finish(SkuResult(record.sku_id, record.op, True, skipped=True))
            else:
                todo.append(record)
        if not todo:
            return
        headers = await self._headers()
        outcomes = await self.connector.apply_in_bulk(self.client, headers, todo)
        _failpoints.reach("apply:bulk-done")
        missing = CallResult(False, error="missing from the feed report")
        results = await asyncio.gather(
            *(
                self._record(record, outcome.ok, outcome.remote_id, outcome.error, 0)
                for record, outcome in ((r, outcomes.get(r.sku_id, missing)) for r in todo)
            )
        )
        for result in results:
            self._finish(result)
        self.summary.requests += getattr(self.connector, "last_bulk_requests", 0)
        self.summary.retries += getattr(self.connector, "last_bulk_retries", 0)
        self.summary.throttled += getattr(self.connector, "last_bulk_throttled", 0)


def _whole_families(records: Iterable[ChangeRecord]) -> Iterator[list[ChangeRecord]]:
    """Each change alone, or a family's creates together once every member has come, its first
    SKU (whose request carries the family) first: a member never waits for a leader not yet queued.

    A plan keeps a family's creates together, so only the family being read is held.
    """
    held: dict[tuple[str, ...], list[ChangeRecord]] = {}
    for record in records:
        if not record.family:
            yield [record]
            continue
        group = held.setdefault(record.family, [])
        group.append(record)
        if len(group) >= len(set(record.family)):
            yield _leader_first(held.pop(record.family))
    for group in held.values():
        yield _leader_first(group)


def _leader_first(group: list[ChangeRecord]) -> list[ChangeRecord]:
    return sorted(group, key=lambda record: record.sku_id != record.leader)


def _already_applied(change: ChangeRecord | Mapping[str, Any], row: AppliedListing | None) -> bool:
    """Whether the state already shows this change done (a resumed run, or a re-applied plan)."""
    record = ChangeRecord.of(change)
    if record.op == "delete":
        return row is None
    if row is None:
        return False
    after = Listing.from_dict(dict(record.after or {}))
    return (row.content_hash, row.price, row.sale_price, row.quantity) == (
        after.content_hash(),
        after.price,
        after.sale_price,
        after.quantity,
    )


def _redacted(result: CallResult) -> CallResult:
    if result.error is None:
        return result
    return dataclasses.replace(result, error=redact(result.error))


def state_matches(record: Mapping[str, Any], row: AppliedListing | None) -> bool:
    """Whether the state is still what the plan saw (``before``), so the change is not stale."""
    before = record.get("before")
    if before is None:
        return row is None
    if row is None:
        return False
    sale = before.get("sale_price")
    return (row.price, row.sale_price, row.quantity, row.content_hash) == (
        Decimal(str(before["price"])),
        None if sale is None else Decimal(str(sale)),
        int(before["quantity"]),
        before["content_hash"],
    )
