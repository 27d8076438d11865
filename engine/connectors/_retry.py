"""One retry policy for every request Tradepost repeats: the executor's, order channels', sources', tokens'.

A :class:`RetryPolicy` says how often a request is tried (``attempts``), how long to wait between
tries (exponential from ``base``, capped at ``cap``, scaled by a random factor drawn from
``jitter``), how long a server's Retry-After may make it wait (``retry_after_cap``), and how long
all the tries of one request may take together (``budget``). :meth:`RetryPolicy.run` and
:meth:`RetryPolicy.run_async` run one request under it:

- an exception of ``exceptions`` (by default any ``httpx.TransportError``: the request may not
  have arrived) is retried, and raised as it is when no try is left;
- a value ``retry_if`` accepts (by default an ``httpx.Response`` whose status is in
  ``statuses``: 429 and 5xx) is retried, and returned as it is when no try is left, so the
  caller's message names the marketplace's last answer; any other value is returned at once;
- the wait before the next try is the backoff, or what Retry-After asks (delta-seconds or an
  HTTP date, at most ``retry_after_cap``): at least the backoff when ``retry_after_mode`` is
  ``"floor"``, exactly what was asked when it is ``"exact"``;
- a try is not started when its wait would end past the budget.

The clock, the random draws and the sleep are parameters, so tests run a policy on a fake clock
without sleeping.

Hand-rolled rather than tenacity or stamina (neither is installed; both would fit in principle):
the call sites need the last *answer* back when tries run out (not a ``RetryError``), the wait
depends on that answer's Retry-After header, and the budget must count the wait about to be
slept. In tenacity each of these is a callback on ``RetryCallState`` (``retry_error_callback``, a
``wait`` reading ``outcome.result()``, a custom ``stop``); together they are longer than the one
loop below, and stamina retries on exceptions only.
"""

from __future__ import annotations

import asyncio
import email.utils
import random
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Literal, TypeVar, cast

import httpx

T = TypeVar("T")

RETRYABLE_STATUSES = frozenset({429, *range(500, 600)})
"""Throttling and server errors: the same request may pass later. Any other 4xx is the request's fault."""


def retry_after(
    response: httpx.Response, cap: float | None = None, now: Callable[[], datetime] | None = None
) -> float | None:
    """Seconds a Retry-After header asks for: delta-seconds (stand-ins send fractions) or an HTTP date
    (measured from ``now``, the wall clock by default); None when absent or unreadable. ``cap``
    bounds what a server may ask for."""
    value = response.headers.get("Retry-After", "").strip()
    if not value:
        return None
    try:
        seconds = max(0.0, float(value))
    except ValueError:
        try:
            when = email.utils.parsedate_to_datetime(value)
        except (TypeError, ValueError):
            return None
        if when.tzinfo is None:
            when = when.replace(tzinfo=UTC)
        seconds = max(0.0, (when - (now or _utcnow)()).total_seconds())
    return seconds if cap is None else min(seconds, cap)


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass(frozen=True)
class RetryPolicy:
    """How a request is retried: see the module docstring."""

    attempts: int = 5
    """Tries in all, the first included."""
    base: float = 0.2
    """The backoff before the second try; it doubles with each try after."""
    cap: float = 10.0
    """The longest backoff (before jitter)."""
    jitter: tuple[float, float] = (0.0, 1.0)
    """The range the backoff is scaled by, drawn anew for each wait: (0, 1) is full jitter."""
    retry_after_mode: Literal["floor", "exact"] = "exact"
    """Whether Retry-After is a lower bound on the backoff, or replaces it."""
    retry_after_cap: float | None = None
    """The longest a Retry-After may make a request wait (None: ``cap``; ``math.inf``: no bound)."""
    budget: float | None = None
    """Seconds all the tries of one request may take, waits included (None: no bound)."""
    statuses: frozenset[int] = RETRYABLE_STATUSES
    exceptions: tuple[type[BaseException], ...] = (httpx.TransportError,)
    clock: Callable[[], float] = field(default=time.monotonic, compare=False, repr=False)
    random: random.Random = field(default_factory=random.Random, compare=False, repr=False)

    def __post_init__(self) -> None:
        if self.attempts < 1:
            raise ValueError(f"a retry policy needs at least one attempt, not {self.attempts}")

    def backoff(self, attempt: int) -> float:
        """The jittered wait after try ``attempt`` (0 for the first) when the server asked for none."""
        return min(self.cap, self.base * 2.0**attempt) * self.random.uniform(*self.jitter)

    def delay(self, attempt: int, asked: float | None) -> float:
        """The wait after try ``attempt``, given what the server's Retry-After asked (None: nothing)."""
        if asked is None:
            return self.backoff(attempt)
        asked = min(asked, self.cap if self.retry_after_cap is None else self.retry_after_cap)
        return max(asked, self.backoff(attempt)) if self.retry_after_mode == "floor" else asked

    def retryable(self, response: httpx.Response) -> bool:
        return response.status_code in self.statuses

    def run(
        self,
        attempt: Callable[[int], T],
        *,
        retry_if: Callable[[T], bool] | None = None,
        asked: Callable[[T], float | None] | None = None,
        sleep: Callable[[float], object] = time.sleep,
        on_retry: Callable[[int, float], object] | None = None,
    ) -> T:
        """``attempt(n)`` for n = 0, 1, ... until it returns a value not to retry or no try is left.

        The same loop as :meth:`run_async`, driven by hand: with a blocking attempt and sleep,
        nothing in it suspends, so the coroutine finishes on its first step, without an event loop.
        """

        async def attempt_now(n: int) -> T:
            return attempt(n)

        async def sleep_now(seconds: float) -> None:
            sleep(seconds)

        running = self.run_async(
            attempt_now, retry_if=retry_if, asked=asked, sleep=sleep_now, on_retry=on_retry
        )
        try:
            running.send(None)
        except StopIteration as finished:
            return cast(T, finished.value)
        running.close()
        raise AssertionError("unreachable: a run of blocking calls never suspends")

    async def run_async(
        self,
        attempt: Callable[[int], Awaitable[T]],
        *,
        retry_if: Callable[[T], bool] | None = None,
        asked: Callable[[T], float | None] | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
        on_retry: Callable[[int, float], object] | None = None,
    ) -> T:
        """``await attempt(n)`` for n = 0, 1, ... until it returns a value not to retry or no try is
        left, waiting with ``await sleep(seconds)``."""
        started = self.clock()
        for n in range(self.attempts):
            try:
                value = await attempt(n)
            except self.exceptions:
                wait = self._wait(n, started, None)
                if wait is None:
                    raise
            else:
                wait = self._after(n, started, value, retry_if, asked)
                if wait is None:
                    return value
            if on_retry is not None:
                on_retry(n, wait)
            await sleep(wait)
        raise AssertionError("unreachable: the last try returns or raises")

    def _after(
        self,
        n: int,
        started: float,
        value: T,
        retry_if: Callable[[T], bool] | None,
        asked: Callable[[T], float | None] | None,
    ) -> float | None:
        """The wait before retrying ``value``, or None when it is final (good, refused, or the last)."""
        if retry_if is not None:
            again = retry_if(value)
        else:
            again = isinstance(value, httpx.Response) and self.retryable(value)
        if not again:
            return None
        if asked is not None:
            return self._wait(n, started, asked(value))
        return self._wait(n, started, retry_after(value) if isinstance(value, httpx.Response) else None)

    def _wait(self, n: int, started: float, asked: float | None) -> float | None:
        """The wait after try ``n``, or None when no try is left (attempts or budget spent)."""
        if n + 1 >= self.attempts:
            return None
        wait = self.delay(n, asked)
        if self.budget is not None and self.clock() - started + wait > self.budget:
            return None
        return wait
