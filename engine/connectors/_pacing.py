"""Pacing: a token bucket that spaces requests at a rate, shared by every caller that must be polite.

The executor paces each marketplace's writes with one (at the connector's rate limit); the VTEX
source paces each VTEX API it reads with one (at the limit VTEX documents for it). ``acquire``
returns when a request may go: at once while the bucket holds a token, else after the wait
until one accrues; concurrent callers queue on a lock, so the rate holds however many tasks
ask at once. The clock and the sleep are parameters, so tests run it on a fake clock.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable

Sleep = Callable[[float], Awaitable[None]]


class TokenBucket:
    """Paces requests at ``rate`` per second; a burst of one keeps the marketplace's own bucket full."""

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
        self.tokens = burst
        self.clock = clock
        self.sleep = sleep
        self.updated = clock()
        self.lock = asyncio.Lock()

    async def acquire(self) -> None:
        async with self.lock:
            now = self.clock()
            self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
            self.updated = now
            if self.tokens >= 1:
                self.tokens -= 1
                return
            await self.sleep((1 - self.tokens) / self.rate)
            # The token that accrued while sleeping is this request's; time beyond it carries over.
            now = self.clock()
            self.tokens = min(self.burst, max(0.0, self.tokens + (now - self.updated) * self.rate - 1))
            self.updated = now
