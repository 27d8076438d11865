"""The shared rate limit at a high rate: a round trip takes turns ahead of the tasks asking.

At 200 requests a second a process's tasks ask for turns one at a time as their answers come
back, and a statement per request costs the database (and the process) more than the request.
From ``AHEAD_RATE`` on, a round trip of the buckets ``account_pacing`` builds takes ``AHEAD`` turns
at least; the next tasks take the kept ones, each once, in order; a kept turn gone stale is
dropped, never sent late.
"""

from __future__ import annotations

import asyncio

import pytest

from engine.connectors._pacing import LATE
from engine.state._pg import PostgresDialect
from engine.state._ratelimit import AHEAD, AHEAD_RATE, SharedBucket, account_pacing
from engine.state._store import StateStore
from tests import _postgres
from tests.test_state_contract import server as server  # the fixture: this worker's PostgreSQL

RATE = 400.0


@pytest.fixture
def pg(server: _postgres.Server) -> str:
    return server.url(server.database())


def test_requests_asking_one_at_a_time_share_a_round_trip_and_each_turn_is_used_once(pg: str) -> None:
    assert RATE >= AHEAD_RATE
    dues: list[float] = []

    async def note(seconds: float) -> None:  # the instant each request would leave at
        dues.append(asyncio.get_running_loop().time() + seconds)

    async def main() -> int:
        with StateStore(pg) as state:
            async with account_pacing(state, "ahead", "http://m.test") as pacing:
                bucket = pacing(RATE)
                assert isinstance(bucket, SharedBucket)
                bucket.sleep = note
                for _ in range(2 * AHEAD):
                    await bucket.acquire()  # one at a time: never two waiting together
                return bucket.round_trips

    assert asyncio.run(main()) == 2
    assert dues == sorted(dues) and len(set(dues)) == len(dues)  # every turn handed out once


def test_a_kept_turn_gone_stale_is_dropped_and_a_new_one_taken(pg: str) -> None:
    async def main() -> tuple[int, int]:
        bucket = SharedBucket(PostgresDialect(pg, busy_timeout=5), "stale http://m.test", RATE, ahead=AHEAD)
        await bucket.acquire()  # takes AHEAD turns, uses one
        await asyncio.sleep(LATE + AHEAD / RATE + 0.05)  # the kept ones are now too late
        await bucket.acquire()
        await bucket.aclose()
        return bucket.round_trips, bucket.missed

    assert asyncio.run(main()) == (2, 0)
