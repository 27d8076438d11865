"""`serve --sync` wakes its worker when a notification is committed: no change waits for the poll.

The worker of `serve --sync` (:func:`cli._sync.syncing`, a process of its own) runs here with a
poll of ten minutes, behind the notification endpoint as `serve` composes them (the endpoint sets
the worker's wake-up after each commit). A stock change notified to the endpoint must still reach
the Mercado Libre stand-in within the bound every sandbox test allows, twice: the second
notification comes after the worker went back to waiting, when only the wake-up can start a pass.
Bounded waits only; the test never asserts how long anything took.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from pathlib import Path

import httpx

from cli._sync import Pace, syncing
from engine.project import load_project, open_state
from engine.state import NotificationQueue
from marketplaces.sandbox import Sandbox
from marketplaces.vtex._notifications import notification_app
from tests.test_sync_worker import applied, in_stock_everywhere, quantities, set_stock

__all__ = ["applied"]  # the fixture: the sandbox listed on every marketplace

SECRET = "test-secret-0123456789abcdef"
DEADLINE = 20.0
"""Seconds a change may take to reach the marketplaces (as in tests/test_sandbox_loop.py)."""
NEVER = 600.0
"""The worker's poll: were it waiting for it, no change would arrive within the deadline."""


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def test_a_notification_wakes_the_worker_of_serve_sync(applied: tuple[Sandbox, Path]) -> None:
    box, config = applied
    project = load_project(config)
    first, second = in_stock_everywhere(box)[:2]
    with (
        open_state(project) as store,
        NotificationQueue(store) as queue,
        syncing(project, Pace(poll=NEVER)) as wake,
    ):
        endpoint = httpx.ASGITransport(notification_app(queue, SECRET, queued=wake.set))

        def notify(sku: str) -> None:
            """What VTEX does: the stock changed, then the endpoint notified (answered once committed)."""
            set_stock(box, sku, 0)
            assert asyncio.run(post(endpoint, {"IdSku": sku, "StockModified": True})) == 200

        notify(first)
        assert eventually(lambda: quantities(box, first)["mercadolibre"] == [0]), quantities(box, first)
        assert eventually(lambda: queue.counts().queued == 0)  # done everywhere: the worker waits again
        time.sleep(0.5)  # ... and has surely taken the queue for the last time in that pass
        notify(second)
        assert eventually(lambda: quantities(box, second)["mercadolibre"] == [0]), quantities(box, second)
        assert eventually(lambda: queue.counts().queued == 0)


async def post(endpoint: httpx.ASGITransport, body: dict[str, object]) -> int:
    async with httpx.AsyncClient(transport=endpoint, base_url="http://tradepost") as client:
        return (await client.post("/api/notification/", params={"k": SECRET}, json=body)).status_code
