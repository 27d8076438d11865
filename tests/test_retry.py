"""The retry policy: what it retries, how long it waits, when it stops; on a fake clock, never sleeping."""

from __future__ import annotations

import asyncio
import math
import random
from collections.abc import Callable
from datetime import UTC, datetime

import httpx
import pytest

from engine.connectors import RetryPolicy, retry_after


class FakeTime:
    """A clock that moves only when the code under test sleeps; every sleep is recorded."""

    def __init__(self) -> None:
        self.now = 0.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds

    async def async_sleep(self, seconds: float) -> None:
        self.sleep(seconds)


def answer(status: int, retry_after_header: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after_header} if retry_after_header is not None else {}
    return httpx.Response(status, headers=headers)


def scripted(
    responses: list[httpx.Response | Exception], tries: list[int]
) -> Callable[[int], httpx.Response]:
    """An attempt function answering ``responses`` in order; ``tries`` records the tries made."""

    def attempt(n: int) -> httpx.Response:
        tries.append(n)
        item = responses[n]
        if isinstance(item, Exception):
            raise item
        return item

    return attempt


NO_JITTER = (1.0, 1.0)
LOST = httpx.ConnectError("connection refused")


# -- Retry-After -------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("header", "cap", "expected"),
    [
        (None, None, None),
        ("", None, None),
        ("3", None, 3.0),
        ("0.25", None, 0.25),  # the stand-ins send fractions
        ("-4", None, 0.0),
        ("120", 60.0, 60.0),
        ("Wed, 21 Oct 2026 07:28:30 GMT", None, 30.0),  # an HTTP date, 30 s after "now"
        ("Wed, 21 Oct 2026 07:27:00 GMT", None, 0.0),  # a date already past
        ("Wed, 21 Oct 2026 08:28:00 GMT", 60.0, 60.0),
        ("soon", None, None),
    ],
)
def test_retry_after_reads_seconds_and_http_dates(
    header: str | None, cap: float | None, expected: float | None
) -> None:
    now = datetime(2026, 10, 21, 7, 28, 0, tzinfo=UTC)
    assert retry_after(answer(429, header), cap=cap, now=lambda: now) == expected


# -- waits ------------------------------------------------------------------------------------------


def test_backoff_doubles_up_to_the_cap_without_jitter() -> None:
    policy = RetryPolicy(attempts=8, base=0.5, cap=4.0, jitter=NO_JITTER)
    assert [policy.backoff(n) for n in range(6)] == [0.5, 1.0, 2.0, 4.0, 4.0, 4.0]


def test_full_jitter_stays_between_zero_and_the_backoff_and_is_seeded() -> None:
    first = RetryPolicy(base=1.0, cap=8.0, random=random.Random(7))
    again = RetryPolicy(base=1.0, cap=8.0, random=random.Random(7))
    waits = [first.backoff(n % 4) for n in range(200)]
    assert waits == [again.backoff(n % 4) for n in range(200)]
    assert all(0.0 <= wait <= min(8.0, 2.0 ** (n % 4)) for n, wait in enumerate(waits))
    assert len(set(waits)) == len(waits)  # drawn anew for every wait


def test_a_jitter_range_bounds_every_wait() -> None:
    policy = RetryPolicy(base=2.0, cap=100.0, jitter=(0.5, 1.5), random=random.Random(1))
    assert all(1.0 <= policy.backoff(0) <= 3.0 for _ in range(100))


@pytest.mark.parametrize(
    ("mode", "asked", "cap", "expected"),
    [
        ("exact", 0.05, None, 0.05),  # the server's ask replaces the backoff (1 s)
        ("floor", 0.05, None, 1.0),  # ... or only bounds it from below
        ("floor", 3.0, None, 3.0),
        ("exact", 30.0, None, 10.0),  # capped at ``cap`` unless told otherwise
        ("exact", 30.0, 20.0, 20.0),
        ("exact", 3600.0, math.inf, 3600.0),
    ],
)
def test_retry_after_replaces_or_floors_the_backoff_and_is_capped(
    mode: str, asked: float, cap: float | None, expected: float
) -> None:
    policy = RetryPolicy(base=1.0, cap=10.0, jitter=NO_JITTER, retry_after_mode=mode, retry_after_cap=cap)  # type: ignore[arg-type]
    assert policy.delay(0, asked) == expected


# -- running a request ------------------------------------------------------------------------------


def test_throttling_and_server_errors_are_retried_honouring_retry_after() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(attempts=5, base=0.1, jitter=NO_JITTER, clock=fake.clock)
    responses: list[httpx.Response | Exception] = [answer(429, "2"), answer(503), LOST, answer(200)]
    result = policy.run(scripted(responses, tries), sleep=fake.sleep)
    assert result.status_code == 200
    assert tries == [0, 1, 2, 3]
    assert fake.slept == [2.0, 0.2, 0.4]


@pytest.mark.parametrize("status", [200, 201, 400, 401, 404, 409, 422])
def test_other_statuses_pass_through_at_once(status: int) -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(clock=fake.clock)
    result = policy.run(scripted([answer(status)], tries), sleep=fake.sleep)
    assert (result.status_code, tries, fake.slept) == (status, [0], [])


def test_the_last_answer_is_returned_when_the_attempts_run_out() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(attempts=3, base=1.0, jitter=NO_JITTER, clock=fake.clock)
    result = policy.run(scripted([answer(500), answer(502), answer(503)], tries), sleep=fake.sleep)
    assert (result.status_code, tries, fake.slept) == (503, [0, 1, 2], [1.0, 2.0])


def test_the_last_exception_is_raised_when_the_attempts_run_out() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(attempts=2, clock=fake.clock)
    with pytest.raises(httpx.ConnectError):
        policy.run(scripted([LOST, LOST], tries), sleep=fake.sleep)
    assert tries == [0, 1]


def test_exceptions_not_named_are_never_retried() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(exceptions=(httpx.TimeoutException,), clock=fake.clock)
    with pytest.raises(httpx.ConnectError):
        policy.run(scripted([LOST, answer(200)], tries), sleep=fake.sleep)
    assert tries == [0]


def test_the_budget_stops_before_a_wait_that_would_end_past_it() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(attempts=10, base=1.0, cap=100.0, jitter=NO_JITTER, budget=5.0, clock=fake.clock)
    result = policy.run(scripted([answer(503)] * 10, tries), sleep=fake.sleep)
    assert result.status_code == 503
    assert fake.slept == [1.0, 2.0]  # a third wait (4 s) would end at 7 s, past the 5 s budget
    assert tries == [0, 1, 2]


def test_a_retry_after_past_the_budget_ends_the_tries() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(budget=30.0, retry_after_cap=math.inf, clock=fake.clock)
    result = policy.run(scripted([answer(429, "3600"), answer(200)], tries), sleep=fake.sleep)
    assert (result.status_code, tries, fake.slept) == (429, [0], [])


def test_any_value_may_be_retried_with_its_own_test_and_ask() -> None:
    fake, retries = FakeTime(), list[tuple[int, float]]()
    policy = RetryPolicy(attempts=4, base=1.0, jitter=NO_JITTER, retry_after_mode="floor", clock=fake.clock)
    values = iter(["busy:3", "busy:0", "done"])
    result = policy.run(
        lambda n: next(values),
        retry_if=lambda value: value.startswith("busy"),
        asked=lambda value: float(value.split(":")[1]),
        sleep=fake.sleep,
        on_retry=lambda n, wait: retries.append((n, wait)),
    )
    assert result == "done"
    assert retries == [(0, 3.0), (1, 2.0)]


def test_the_async_run_behaves_like_the_sync_one() -> None:
    fake, tries = FakeTime(), list[int]()
    policy = RetryPolicy(attempts=3, base=0.5, jitter=NO_JITTER, clock=fake.clock)
    responses: list[httpx.Response | Exception] = [LOST, answer(429, "0.25"), answer(201)]
    attempt = scripted(responses, tries)

    async def attempt_async(n: int) -> httpx.Response:
        return attempt(n)

    result = asyncio.run(policy.run_async(attempt_async, sleep=fake.async_sleep))
    assert (result.status_code, tries, fake.slept) == (201, [0, 1, 2], [0.5, 0.25])


def test_a_policy_needs_an_attempt() -> None:
    with pytest.raises(ValueError, match="at least one attempt"):
        RetryPolicy(attempts=0)
