"""The state calls of an apply's concurrent sends: batched, and on PostgreSQL made off the event loop.

The executor sends from many tasks on one event loop, and each change costs state calls: its
row read before it is sent, its outcome written after. Made one by one on the loop, every call
stops every send for a round trip to the database; on PostgreSQL, that capped a process below
the marketplace's limit, and more workers (more processes on one database) made it worse.

:class:`BatchedState` takes the calls of all the tasks: the calls that arrive while a batch is in
the database go together in the next one. Reads of many SKUs cost one query per table, outcomes
one transaction (:meth:`~engine.state._store.StateStore.record_outcomes`); other calls run as they
are, in their turn. Calls are made in the order they came, and each call returns only once its
batch is done (committed, for writes), so the executor's rules hold as they did: a change's
outcome is recorded before the change counts, and before its task takes the next change. A kill
loses at most the outcomes of the batch in the database, which the next run sends again as it
would have sent one (an update again, a create only after looking it up: never twice).

On PostgreSQL the batches run in a thread of their own, on a connection of their own
(:meth:`~engine.state._store.StateStore.on_a_connection_of_its_own`): the loop keeps sending while
the database answers, and the planner streaming into the executor keeps its own connection. On
SQLite they run on the loop, on the store's connection: a call costs microseconds in process, and
a second connection would compete for the file's one write lock with the planner's own writes.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from itertools import groupby
from typing import Any, TypeVar, cast

from engine.state._store import AppliedListing, Outcome, StateStore, Withdrawn

T = TypeVar("T")
Known = tuple[AppliedListing | None, Withdrawn | None]
"""A SKU's applied row, and its listing withdrawn earlier (id and content) when it has no row."""


@dataclass
class _Call:
    kind: str  # "read", "write" or "call"
    argument: Any
    answer: asyncio.Future[Any] = field(repr=False)


class BatchedState:
    """The state calls of one marketplace's apply, from the tasks of one event loop; see the module."""

    def __init__(self, state: StateStore, marketplace: str) -> None:
        self.state, self.marketplace = state, marketplace
        self.batches = 0
        """Batches made (each a query per table read, or a transaction)."""
        self._remote = state.path is None  # PostgreSQL: a round trip per statement
        self._pool: ThreadPoolExecutor | None = None
        self._own: StateStore | None = None
        self._waiting: list[_Call] = []
        self._server: asyncio.Task[None] | None = None

    async def known(self, sku_id: str) -> Known:
        """The SKU's row, and its withdrawn listing when it has no row."""
        return cast(Known, await self._ask("read", sku_id))

    async def record(self, outcome: Outcome) -> None:
        """Write one change's outcome; returns once it is committed."""
        await self._ask("write", outcome)

    async def call(self, work: Callable[[StateStore], T]) -> T:
        """Any other state call, ``work(store)``, in its turn."""
        return cast(T, await self._ask("call", work))

    async def aclose(self) -> None:
        """Wait for the batch in the database, then close the thread and its connection."""
        server, self._server = self._server, None
        if server is not None and not server.done():
            server.cancel()
            await asyncio.gather(server, return_exceptions=True)
        pool, self._pool = self._pool, None
        if pool is not None:
            if self._own is not None:
                await asyncio.get_running_loop().run_in_executor(pool, self._own.close)
                self._own = None
            pool.shutdown(wait=True)

    async def _ask(self, kind: str, argument: Any) -> Any:
        answer: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._waiting.append(_Call(kind, argument, answer))
        if self._server is None or self._server.done():
            self._server = asyncio.create_task(self._serve())
        return await answer

    async def _serve(self) -> None:
        """Make the waiting calls a batch at a time, until none waits."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            if self._remote:
                self._pool = self._pool or ThreadPoolExecutor(1, "tradepost-state")
                answers = await loop.run_in_executor(self._pool, self._run, batch)
            else:
                answers = self._run(batch)
            self.batches += 1
            for call, answer in zip(batch, answers, strict=True):
                if call.answer.done():
                    continue  # its task was cancelled
                if isinstance(answer, BaseException):
                    call.answer.set_exception(answer)
                else:
                    call.answer.set_result(answer)

    def _run(self, batch: list[_Call]) -> list[Any]:
        """Each run of calls of one kind in the order they came; an answer, or the error, per call."""
        answers: list[Any] = []
        for kind, calls in groupby(batch, key=lambda call: call.kind):
            arguments = [call.argument for call in calls]
            try:
                store = self._store()
                if kind == "read":
                    answers.extend(self._read(store, arguments))
                elif kind == "write":
                    store.record_outcomes(self.marketplace, arguments)
                    answers.extend([None] * len(arguments))
                else:
                    answers.extend(self._each(store, arguments))
            except Exception as exc:  # a StateError as a rule: every call of the run raises it
                answers.extend([exc] * len(arguments))
        return answers

    def _read(self, store: StateStore, sku_ids: list[str]) -> list[Known]:
        rows = store.get_many(self.marketplace, sku_ids)
        withdrawn = store.withdrawn_listings(self.marketplace, [s for s in sku_ids if s not in rows])
        return [(rows.get(sku_id), withdrawn.get(sku_id)) for sku_id in sku_ids]

    @staticmethod
    def _each(store: StateStore, works: list[Callable[[StateStore], Any]]) -> list[Any]:
        answers: list[Any] = []
        for work in works:
            try:
                answers.append(work(store))
            except Exception as exc:
                answers.append(exc)
        return answers

    def _store(self) -> StateStore:
        """The store's connection on SQLite; the thread's own, opened on first use, on PostgreSQL."""
        if not self._remote:
            return self.state
        if self._own is None:
            self._own = self.state.on_a_connection_of_its_own()
        return self._own
