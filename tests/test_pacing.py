"""The token bucket: requests leave at the rate, the waiting ones side by side, a refused or
cancelled wait gives its slot back."""

from __future__ import annotations

import asyncio
import heapq
import itertools

import pytest

from engine.connectors import TokenBucket


def test_waiting_requests_sleep_side_by_side_each_until_its_own_slot() -> None:
    """Every request takes its slot when it asks: 20 waiting at 100/s sleep 0, 10 ms, ... 190 ms at
    once. (Handing a lock from waiter to waiter took a turn of the event loop each: a busy loop
    then set the rate, not the bucket.)"""
    asked: list[float] = []

    async def main() -> list[float]:
        all_asked = asyncio.Event()

        async def sleep(seconds: float) -> None:
            asked.append(seconds)
            if len(asked) == 19:
                all_asked.set()
            await all_asked.wait()  # nobody wakes before every waiter has asked

        bucket = TokenBucket(100.0, clock=lambda: 5.0, sleep=sleep)
        await asyncio.wait_for(asyncio.gather(*(bucket.acquire() for _ in range(20))), 5)
        return asked

    assert asyncio.run(main()) == pytest.approx([n / 100 for n in range(1, 20)])


def test_a_burst_leaves_at_once_then_the_rate_holds() -> None:
    now = [0.0]
    left: list[float] = []

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    async def main() -> None:
        bucket = TokenBucket(10.0, burst=3, clock=lambda: now[0], sleep=sleep)
        for _ in range(6):
            await bucket.acquire()
            left.append(round(now[0], 6))

    asyncio.run(main())
    assert left == [0.0, 0.0, 0.0, 0.1, 0.2, 0.3]


def test_a_refused_wait_gives_its_slot_back() -> None:
    class Refused(Exception):
        pass

    async def refuse(seconds: float) -> None:
        raise Refused

    async def main() -> None:
        bucket = TokenBucket(1.0, clock=lambda: 0.0, sleep=refuse)
        await bucket.acquire()  # the token
        for _ in range(3):
            with pytest.raises(Refused):
                await bucket.acquire()  # refused, no slot taken
        assert bucket.reserved == pytest.approx(1.0)

    asyncio.run(main())


def test_a_cancelled_wait_gives_its_slot_back_when_it_was_the_last() -> None:
    async def main() -> float:
        bucket = TokenBucket(10.0)
        await bucket.acquire()
        taken = bucket.reserved
        waiter = asyncio.ensure_future(bucket.acquire())
        await asyncio.sleep(0)
        waiter.cancel()
        with pytest.raises(asyncio.CancelledError):
            await waiter
        return bucket.reserved - taken

    assert asyncio.run(main()) == 0


def test_requests_woken_late_take_new_slots_instead_of_leaving_together() -> None:
    """The event loop held up for 0.5 s at 100/s: of the waiters whose slots passed meanwhile, only
    those late by at most 0.05 s leave at once (6); the others take new slots and follow at the
    rate: no window holds more than its share of the rate and those 6."""
    now = [0.0]
    sleepers: list[tuple[float, int, asyncio.Future[None]]] = []
    left: list[float] = []
    order = itertools.count()

    async def sleep(seconds: float) -> None:
        woken: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        heapq.heappush(sleepers, (now[0] + seconds, next(order), woken))  # order: never a future compared
        await woken

    async def main() -> None:
        bucket = TokenBucket(100.0, clock=lambda: now[0], sleep=sleep)

        async def one() -> None:
            await bucket.acquire()
            left.append(now[0])

        tasks = [asyncio.ensure_future(one()) for _ in range(60)]
        stalled = False
        while not all(task.done() for task in tasks):
            for _ in range(5):
                await asyncio.sleep(0)  # every task runs until it sleeps or is done
            if not sleepers:
                continue
            due, _, woken = heapq.heappop(sleepers)
            now[0] = max(now[0], due)
            if not stalled:  # the first wake-up comes half a second late, as do all due by then
                stalled, now[0] = True, now[0] + 0.5
            woken.set_result(None)

    asyncio.run(main())
    assert len(left) == 60
    assert max(left.count(t) for t in left) <= 6
    for start in left:
        assert sum(1 for t in left if start <= t < start + 0.1) <= 10 + 6
