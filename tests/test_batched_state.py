"""The executor's state calls, batched: many tasks' reads share a query, their outcomes a transaction.

On both backends: 40 tasks each reading their SKU's row and recording its outcome leave every
outcome written (errors cleared, deletes withdrawn) in far fewer batches than calls; a batch
that fails fails every call in it with the store's error, and the next batch runs.
"""

from __future__ import annotations

import asyncio
from decimal import Decimal
from pathlib import Path

import pytest

from engine.state._batched import BatchedState
from engine.state._store import Applied, AppliedListing, Deleted, Failed, StateError, StateStore
from tests import _postgres
from tests.test_state_contract import server as server  # the fixture: this worker's PostgreSQL

TASKS = 40


@pytest.fixture(params=["sqlite", "postgresql"])
def state(request: pytest.FixtureRequest, tmp_path: Path) -> StateStore:
    if request.param == "sqlite":
        return StateStore(tmp_path / "state.sqlite")
    pg: _postgres.Server = request.getfixturevalue("server")
    return StateStore(pg.url(pg.database()))


def row(sku_id: str) -> AppliedListing:
    return AppliedListing(sku_id, "p" + sku_id, "hash", Decimal("10.00"), None, 3, "r" + sku_id)


def test_many_tasks_share_batches_and_every_outcome_is_written(state: StateStore) -> None:
    with state:
        state.record_applied("m", [row("gone")])
        state.record_error("m", "0", "500 from the marketplace")

        async def main() -> int:
            batched = BatchedState(state, "m")

            async def one(n: int) -> None:
                known, withdrawn = await batched.known(str(n))
                assert known is None and withdrawn is None
                await batched.record(Failed(str(n), "refused") if n % 10 == 9 else Applied((row(str(n)),)))

            await asyncio.gather(*(one(n) for n in range(TASKS)), batched.record(Deleted("gone")))
            await batched.aclose()
            return batched.batches

        batches = asyncio.run(main())
        assert batches <= 4  # the reads together, then the writes together (a straggler or two)
        assert state.count("m") == TASKS - TASKS // 10
        assert state.errors("m") == {str(n): "refused" for n in range(9, TASKS, 10)}  # "0" cleared
        assert state.withdrawn_remote_ids("m", ["gone", "1"]) == {"gone": "rgone"}


def test_a_batch_that_fails_fails_each_of_its_calls_and_the_next_batch_runs(state: StateStore) -> None:
    with state:

        def broken(store: StateStore) -> None:
            raise StateError("the state store is busy")

        async def main() -> tuple[list[object], AppliedListing | None]:
            batched = BatchedState(state, "m")
            failed = await asyncio.gather(batched.call(broken), batched.call(broken), return_exceptions=True)
            await batched.record(Applied((row("1"),)))
            known, _ = await batched.known("1")
            await batched.aclose()
            return failed, known

        failed, known = asyncio.run(main())
        assert [str(error) for error in failed] == ["the state store is busy"] * 2
        assert known == row("1")
