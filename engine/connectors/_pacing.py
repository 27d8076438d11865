"""Pacing: a token bucket that spaces requests at a rate, shared by every caller that must be polite.

The executor paces each marketplace's writes with one (at the connector's rate limit); the VTEX
source paces each VTEX API it reads with one (at the limit VTEX documents for it). ``acquire``
returns when a request may go: at once while the bucket holds a token, else at the next free
slot, which the request reserves when it asks; concurrent callers each sleep until their own
slot, so the rate holds however many tasks ask at once. The clock and the sleep are parameters,
so tests run it on a fake clock.

A bucket in one process paces that process only: processes sharing one seller account share a
bucket in the state store instead (``engine.state._ratelimit``, on PostgreSQL). Both are a
:class:`Pacer`; both space requests by the same arithmetic (:func:`send_delays`, the generic cell
rate algorithm: a reservation of the next free instant, never a count of requests that can drift).
A pacer that cannot give a request its turn raises :class:`PacingUnavailable`: the request did
not leave, so the executor treats it as a transport failure, retried like one.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Protocol

import httpx

Sleep = Callable[[float], Awaitable[None]]


class Pacer(Protocol):
    """What a request waits on before it leaves."""

    async def acquire(self) -> None:
        """Return when one request may go."""


PacerFactory = Callable[[float], Pacer]
"""A pacer at a rate (requests per second): :class:`TokenBucket` itself, or the state store's."""


class PacingUnavailable(httpx.TransportError):
    """A request could not be given its turn (the shared bucket's database failed); it was not sent."""


def send_delays(
    reserved_until: float, now: float, count: int, interval: float, burst: float = 1.0
) -> list[float]:
    """Seconds from ``now`` until each of ``count`` requests may go, given the reservation that took them.

    ``reserved_until`` is the instant the bucket was pushed to by taking them (the old reservation,
    or ``now`` when it lay in the past, plus ``count`` intervals): request ``k`` owns the slot
    ``count - k`` intervals before it, and may go ``burst - 1`` intervals early, never before now.
    Slots an interval apart keep any window of ``w`` seconds to ``w / interval + burst`` requests.
    """
    first = reserved_until - count * interval
    early = (burst - 1) * interval
    return [max(0.0, first + k * interval - early - now) for k in range(count)]


LATE = 0.05
"""Seconds a request may leave after its slot; later, it takes a new one: requests a stalled process
sent at once would arrive bunched, over the limit (the bound grows by ``LATE`` times the rate)."""
RETAKES = 3
"""Slots taken again at most before a late request goes anyway: a starved process still progresses."""


class TokenBucket:
    """Paces requests at ``rate`` per second; a burst of one keeps the marketplace's own bucket full.

    Each request reserves the next free slot at once (:func:`send_delays`' arithmetic) and sleeps
    until it, without a lock: the requests waiting all sleep side by side and leave each at its
    slot, so the rate does not fall to one request per turn of a busy event loop (a lock handed
    from waiter to waiter took a turn each, and the sync worker's batches ran at a third of their
    rate). A request whose ``sleep`` raises (a cancelled task, a caller that refuses to wait)
    gives its slot back when no later request took one after it.

    A request woken more than :data:`LATE` seconds after its slot (the event loop was held up)
    takes a new one instead of leaving with every other late one at once, :data:`RETAKES` times at
    most (a starved process still progresses): a stall lets about ``LATE * rate`` requests out
    together, so a second holds at most 5% more than the rate's share (the executor sends at 95%
    of a marketplace's limit). The shared bucket (``engine.state._ratelimit``) does the same.
    """

    def __init__(
        self,
        rate: float,
        burst: float = 1.0,
        clock: Callable[[], float] = time.monotonic,
        sleep: Sleep = asyncio.sleep,
        name: str = "",
    ) -> None:
        self.name = name
        """What it paces (e.g. ``VTEX /pricing/``), for messages and tests."""
        self.rate = rate
        self.burst = burst
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        """When a request last took a slot: the bucket is full again ``burst / rate`` after it."""
        self.interval = 1.0 / rate
        self.reserved = self.updated
        """The instant the slots taken so far reach: the next request's slot starts there, and it
        may leave ``burst - 1`` intervals early; a bucket reserved up to now or before is full."""

    async def acquire(self) -> None:
        retakes = 0
        while True:
            now = self.clock()
            before = self.reserved
            self.reserved = max(before, now) + self.interval
            wait = send_delays(self.reserved, now, 1, self.interval, self.burst)[0]
            if wait <= 0:
                break
            taken = self.reserved
            try:
                await self.sleep(wait)
            except BaseException:
                if self.reserved == taken:  # the last slot taken: given back
                    self.reserved = before
                raise
            if self.clock() - (now + wait) <= LATE or retakes == RETAKES:
                break
            retakes += 1
        self.updated = self.clock()
