"""One rate limit per seller account, shared by every process sending for it (PostgreSQL).

Four worker processes, each applying its own shard of a plan with its own executor, send to one
loopback stand-in that notes when each request arrives: at 50 requests a second, no second (a
sliding window over the arrivals) holds more than 55, and together they use most of the limit.
Then the arithmetic of the turns, one process's bucket against the database, and the database
failing under it: the request is not sent, the change is retried or fails saying why, never a
traceback.
"""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import httpx
import psycopg
import pytest
from ruamel.yaml import YAML

from bench.bench_workers_rate import Recorder, busiest_second, run_workers
from engine.connectors._pacing import send_delays
from engine.state._pg import PostgresDialect
from engine.state._ratelimit import SharedBucket, account_key, account_pacing
from engine.state._store import StateStore
from engine.sync._executor import Executor
from tests import _postgres
from tests._harness import Loopback, write_project
from tests.test_executor import ScriptedConnector, record
from tests.test_state_contract import server as server  # the fixture: this worker's PostgreSQL

RATE = 50.0
WORKERS = 4
PASSWORD_VARIABLE = "TRADEPOST_TEST_PG"


@pytest.fixture
def pg(server: _postgres.Server) -> str:
    """A fresh PostgreSQL database's URL."""
    return server.url(server.database())


def timeline(times: list[float]) -> str:
    """Arrivals per tenth of a second, for a failure's message."""
    start = min(times)
    counts = [0] * (int((max(times) - start) * 10) + 1)
    for at in times:
        counts[int((at - start) * 10)] += 1
    return " ".join(map(str, counts))


def test_four_workers_together_stay_under_the_limit_and_use_most_of_it(
    loopback: Loopback, tmp_path: Path, server: _postgres.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    box = loopback.sandbox([])  # the catalog is the project's file: examples/catalog.jsonl
    config = write_project(box, tmp_path / "project", catalog_from_vtex=False, rate=RATE)
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["state"] = server.url(server.database(), f"env:{PASSWORD_VARIABLE}")
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    monkeypatch.setenv(PASSWORD_VARIABLE, _postgres.PASSWORD)
    arrivals = Recorder(box.standins["google"])
    box.standins["google"] = arrivals
    done = run_workers([str(config)] * WORKERS)
    applied = sum(n for n, _ in done)
    assert sum(failed for _, failed in done) == 0 and applied > 150, done
    assert busiest_second(arrivals.times) <= 55, timeline(arrivals.times)
    # Paced at 47.5 a second; a loaded machine (the suite's other workers) wakes them late, and a
    # turn woken too late is given up (engine.connectors._pacing.LATE): most of it, not all.
    span = max(arrivals.times) - min(arrivals.times)
    assert len(arrivals.times) / span >= 35, timeline(arrivals.times)


def test_turns_are_an_interval_apart_from_now_or_from_the_last_one_taken() -> None:
    assert send_delays(10.0 + 3 * 0.02, 10.0, 3, 0.02) == pytest.approx([0.0, 0.02, 0.04])
    # a backlog: the bucket was reserved up to 10.5 before these three were taken
    assert send_delays(10.5 + 3 * 0.02, 10.0, 3, 0.02) == pytest.approx([0.5, 0.52, 0.54])
    # a burst of 3 lets the first three of an idle bucket go at once
    assert send_delays(10.0 + 4 * 0.02, 10.0, 4, 0.02, burst=3) == pytest.approx([0.0, 0.0, 0.0, 0.02])


def test_the_bucket_is_one_row_per_account_taken_by_one_round_trip_per_batch(pg: str) -> None:
    async def no_wait(seconds: float) -> None:
        return None

    async def main() -> tuple[list[float], list[float], int]:
        with StateStore(pg) as state:
            async with account_pacing(state, "google", "https://user:pw@api.example.com/v1/?key=x") as pacing:
                bucket = pacing(RATE)
                assert isinstance(bucket, SharedBucket)
                first = await bucket.take(3)
                second = await bucket.take(2)
            together = SharedBucket(bucket.dialect, bucket.account, RATE, sleep=no_wait)
            await asyncio.gather(*(together.acquire() for _ in range(5)))
            await together.aclose()
            return first, second, together.round_trips

    first, second, round_trips = asyncio.run(main())
    assert first == pytest.approx([0.0, 0.02, 0.04], abs=0.005)
    # after the three taken before (less the moment between the two statements)
    assert second[1] - second[0] == pytest.approx(0.02) and 0.01 < second[0] <= 0.06
    assert round_trips == 1  # five tasks waiting together: one statement
    with psycopg.connect(pg) as connection:
        rows = connection.execute("SELECT account FROM rate_buckets").fetchall()
    assert rows == [("google https://api.example.com/v1",)]  # no user, password or query
    assert account_key("amazon", "http://127.0.0.1:8080") == "amazon http://127.0.0.1:8080"


def test_a_turn_woken_for_too_late_is_taken_again(pg: str) -> None:
    async def oversleep(seconds: float) -> None:
        await asyncio.sleep(seconds + 0.2)  # a busy process: woken 200 ms after its turn

    async def main() -> tuple[int, int]:
        bucket = SharedBucket(
            PostgresDialect(pg, busy_timeout=5), "late http://m.test", RATE, sleep=oversleep
        )
        await bucket.take(1)  # the next turn is an interval away: waiting for it oversleeps
        await bucket.acquire()  # late: a new turn, due at once (no sleep), taken
        await bucket.aclose()
        return bucket.missed, bucket.round_trips

    assert asyncio.run(main()) == (1, 3)


def test_sqlite_keeps_the_bucket_in_process(tmp_path: Path) -> None:
    async def main() -> object:
        with StateStore(tmp_path / "s.sqlite") as state:
            async with account_pacing(state, "google", "http://m.test") as pacing:
                return pacing(RATE)

    assert type(asyncio.run(main())).__name__ == "TokenBucket"


def _terminate_others(url: str) -> None:
    with psycopg.connect(url, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )


def _apply(tmp_path: Path, bucket: Any, handler: Any, count: int) -> Any:
    async def no_wait(seconds: float) -> None:
        return None

    async def main() -> Any:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://m.test") as client:
            with StateStore(tmp_path / "s.sqlite") as state:
                executor = Executor(
                    ScriptedConnector(), client, state, sleep=no_wait, seed=1, concurrency=1, bucket=bucket
                )
                return await executor.apply([record(str(n)) for n in range(count)])

    return asyncio.run(main())


def test_a_database_blip_fails_the_request_unsent_and_the_change_is_retried(pg: str, tmp_path: Path) -> None:
    dialect = PostgresDialect(pg, busy_timeout=5)
    buckets: list[SharedBucket] = []
    sent: list[str] = []

    def bucket(rate: float) -> SharedBucket:
        buckets.append(SharedBucket(dialect, "test http://m.test", rate))
        return buckets[-1]

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        if len(sent) == 1:
            _terminate_others(pg)  # the bucket's connection dies between two requests
        return httpx.Response(200, json={})

    summary = _apply(tmp_path, bucket, handler, 3)
    assert (summary.applied, summary.failed, summary.retries) == (3, 0, 1)
    assert sent == ["/items/0", "/items/1", "/items/2"]  # the failed turn sent nothing
    assert buckets[0].round_trips == 3


def test_a_database_that_stays_down_fails_the_change_saying_why(tmp_path: Path) -> None:
    closed = _postgres._free_port()
    dialect = PostgresDialect(
        f"postgresql://tradepost@127.0.0.1:{closed}/x?connect_timeout=1", busy_timeout=5
    )
    sent: list[str] = []

    def handler(request: httpx.Request) -> httpx.Response:
        sent.append(request.url.path)
        return httpx.Response(200, json={})

    summary = _apply(tmp_path, lambda rate: SharedBucket(dialect, "test http://m.test", rate), handler, 1)
    assert (summary.applied, summary.failed, sent) == (0, 1, [])
    error = summary.failures[0].error or ""
    assert (
        "no turn from the shared rate limit" in error and "cannot connect to the PostgreSQL server" in error
    )
    assert "Traceback" not in error
