"""One rate limit per seller account, shared by every process sending for it (on PostgreSQL).

A ``tradepost sync`` worker, ``tradepost worker`` processes and a nightly apply each pace their
requests; with a bucket each, N of them send N times the marketplace's limit. On a PostgreSQL state
store they take their turns from one bucket per seller account instead, in the database they
already share. On SQLite (one machine, as a rule one process per marketplace under its lock) each
run keeps the in-process :class:`~engine.connectors._pacing.TokenBucket`.

The account is a marketplace of the config, as its listings and its lock already are: the key is
the config's name for it and the API its requests go to (``mercadolibre
https://api.mercadolibre.com``; a sandbox is another account). Never a credential, nor anything
derived from one: a hash of a secret still tells whether a guess is right.

The bucket is one row: the server's instant from which the account's next request is free (the
generic cell rate algorithm). Taking ``n`` requests is one statement, an upsert that pushes the
instant ``n`` intervals past the later of itself and now, and returns it with now; both are read
from the server's clock (``clock_timestamp()``), so processes on hosts whose clocks disagree share
one timeline, and the row lock orders processes taking at once. Each request then waits for its
own slot (:func:`~engine.connectors._pacing.send_delays`); slots are an interval apart whoever
took them, so the bound holds however requests are batched. Tasks of one process that wait
together are served by one round trip. At a high rate (from :data:`AHEAD_RATE` requests a
second, as :class:`AccountPacing` builds buckets) a round trip takes :data:`AHEAD` turns at
least, and the ones no task waits for yet are kept for the next tasks to ask (dropped once past
``LATE``): requests trickling in one at a time would otherwise cost a statement each. A slot
taken and never used (a process killed, a kept turn dropped) is lost, never doubled.

The table is ``UNLOGGED`` and written without waiting for the disk (``synchronous_commit = off``):
a crash empties it, and an empty bucket only means the next request may go at once. It is created
on first use with ``IF NOT EXISTS``, outside the store's schema version: it holds no state worth
migrating. A database error fails the request with
:class:`~engine.connectors._pacing.PacingUnavailable` (it was not sent: the executor retries it
like a connection error); the next request connects again.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any

import httpx
import psycopg

from engine.connectors._pacing import LATE, RETAKES, Pacer, PacingUnavailable, Sleep, TokenBucket, send_delays
from engine.state._pg import SCHEMA_LOCK, PostgresDialect
from engine.state._store import StateStore

STATEMENT_TIMEOUT = 10.0
"""Seconds one turn may wait for the database before the request fails (and is retried)."""

AHEAD_RATE = 100.0
"""Requests a second from which a round trip takes turns ahead of the tasks asking (:data:`AHEAD`)."""
AHEAD = 5
"""Turns a round trip takes at least at a high rate: 25 ms of turns at 200 a second."""

_TABLE = """CREATE UNLOGGED TABLE IF NOT EXISTS rate_buckets (
    account TEXT PRIMARY KEY,
    free_at DOUBLE PRECISION NOT NULL
)"""
_TAKE = """WITH clock AS (SELECT extract(epoch FROM clock_timestamp())::double precision AS now)
INSERT INTO rate_buckets AS bucket (account, free_at) SELECT %s, now + %s FROM clock
ON CONFLICT (account) DO UPDATE SET free_at = greatest(bucket.free_at + %s, excluded.free_at)
RETURNING bucket.free_at, (SELECT now FROM clock)"""


def account_key(marketplace: str, base_url: str | httpx.URL) -> str:
    """The bucket of the config's marketplace ``marketplace`` sending to ``base_url`` (no user info,
    no query: only the API's address)."""
    url = httpx.URL(str(base_url))
    port = f":{url.port}" if url.port else ""
    return f"{marketplace} {url.scheme}://{url.host}{port}{url.path.rstrip('/')}"


class SharedBucket:
    """Paces one account's requests at ``rate`` per second across every process using the database."""

    def __init__(
        self,
        dialect: PostgresDialect,
        account: str,
        rate: float,
        burst: float = 1.0,
        sleep: Sleep = asyncio.sleep,
        ahead: int = 1,
    ) -> None:
        """``ahead``: turns a round trip takes at least (the ones no request waits for are kept)."""
        self.dialect, self.account, self.rate, self.burst = dialect, account, rate, burst
        self.interval = 1.0 / rate
        self.sleep = sleep
        self.round_trips = 0
        """Statements sent to take turns (one per batch of waiting requests)."""
        self.missed = 0
        """Turns given up because this process woke too late for them."""
        self._connection: psycopg.AsyncConnection[Any] | None = None
        self._waiting: list[asyncio.Future[float]] = []
        self._taker: asyncio.Task[None] | None = None
        self._kept: list[float] = []
        """Turns taken ahead (the loop's instants they are due), earliest first."""
        self._ahead = ahead

    async def acquire(self) -> None:
        loop = asyncio.get_running_loop()
        for retake in range(RETAKES + 1):
            due = self._kept_turn(loop.time())
            if due is None:
                turn: asyncio.Future[float] = loop.create_future()
                self._waiting.append(turn)
                if self._taker is None or self._taker.done():
                    self._taker = asyncio.create_task(self._serve())
                due = await turn
            if due > loop.time():
                await self.sleep(due - loop.time())
            if loop.time() - due <= LATE or retake == RETAKES:
                return
            # Woken too late (a busy process): sent now, it would arrive with the turns after it.
            self.missed += 1

    def _kept_turn(self, now: float) -> float | None:
        """The earliest turn taken ahead that is not yet too late, or None."""
        while self._kept:
            due = self._kept.pop(0)
            if now - due <= LATE:
                return due
        return None

    async def _serve(self) -> None:
        """Take turns for the requests waiting, a batch per round trip, until none waits."""
        loop = asyncio.get_running_loop()
        while self._waiting:
            batch, self._waiting = self._waiting, []
            try:
                delays = await self.take(max(len(batch), self._ahead))
            except BaseException as exc:
                why = str(exc) if isinstance(exc, PacingUnavailable) else f"{self.account}: pacing stopped"
                for turn in batch:
                    if not turn.done():
                        turn.set_exception(PacingUnavailable(why))
                if isinstance(exc, PacingUnavailable):
                    continue
                raise
            now = loop.time()
            for turn, delay in zip(batch, delays[: len(batch)], strict=True):
                if not turn.done():
                    turn.set_result(now + delay)
            self._kept.extend(now + delay for delay in delays[len(batch) :])

    async def take(self, count: int) -> list[float]:
        """Reserve ``count`` turns; seconds from now until each may go."""
        span = count * self.interval
        try:
            connection = await self._connect()
            cursor = await connection.execute(_TAKE, (self.account, span, span))
            row = await cursor.fetchone()
        except psycopg.Error as exc:
            await self._drop()
            raise PacingUnavailable(
                f"{self.account}: no turn from the shared rate limit ({self.dialect.translate(exc)}); "
                "the request was not sent"
            ) from None
        assert row is not None  # an upsert returns its row
        self.round_trips += 1
        return send_delays(float(row[0]), float(row[1]), count, self.interval, self.burst)

    async def _connect(self) -> psycopg.AsyncConnection[Any]:
        if self._connection is not None and not self._connection.closed:
            return self._connection
        connection = await self.dialect.connect_async()
        try:
            await connection.execute("SET synchronous_commit = off")
            await connection.execute(f"SET statement_timeout = {int(STATEMENT_TIMEOUT * 1000)}")
            async with connection.transaction():
                await connection.execute("SELECT pg_advisory_xact_lock(%s)", (SCHEMA_LOCK,))
                await connection.execute(_TABLE)
        except BaseException:
            await connection.close()
            raise
        self._connection = connection
        return connection

    async def aclose(self) -> None:
        taker, self._taker = self._taker, None
        if taker is not None and not taker.done():
            taker.cancel()
            with contextlib.suppress(asyncio.CancelledError, PacingUnavailable):
                await taker
        await self._drop()

    async def _drop(self) -> None:
        """Close the connection (after an error: the next turn connects again)."""
        connection, self._connection = self._connection, None
        if connection is not None:
            with contextlib.suppress(psycopg.Error):
                await connection.close()


class AccountPacing:
    """The pacer factory of one seller account: shared buckets on PostgreSQL, in-process ones else."""

    def __init__(self, state: StateStore, account: str) -> None:
        self.dialect = state.dialect if isinstance(state.dialect, PostgresDialect) else None
        self.account = account
        self.buckets: list[SharedBucket] = []

    def __call__(self, rate: float) -> Pacer:
        if self.dialect is None:
            return TokenBucket(rate, name=self.account)
        bucket = SharedBucket(self.dialect, self.account, rate, ahead=AHEAD if rate >= AHEAD_RATE else 1)
        self.buckets.append(bucket)
        return bucket

    async def aclose(self) -> None:
        for bucket in self.buckets:
            await bucket.aclose()


@asynccontextmanager
async def account_pacing(
    state: StateStore, marketplace: str, base_url: str | httpx.URL
) -> AsyncIterator[AccountPacing]:
    """The pacers of ``marketplace`` (a config name) sending to ``base_url``, closed when the block ends."""
    pacing = AccountPacing(state, account_key(marketplace, base_url))
    try:
        yield pacing
    finally:
        await pacing.aclose()
