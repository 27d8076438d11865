"""The sync worker's marketplaces each at their own pace (issue 10: p95 <= 2 s at 100 changes/s).

The queue on both backends: a worker taking as an ``owner`` takes its own rows again once they
are notified again, and never the versions it holds; a release or a done for an older version
leaves the newer lease alone. Then over loopback, `tradepost sync` with Amazon answering each
request 5 s late: Google and Mercado Libre get every change within their own latency, a second
change of the same SKU included, while Amazon's batch is still on its way.
"""

from __future__ import annotations

import signal
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from engine.state import Change, NotificationQueue
from engine.state._store import StateStore
from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests._harness import tradepost
from tests.test_state_contract import server, store, url
from tests.test_sync_worker import (
    MARKETPLACES,
    SOLD_OUT,
    applied,
    in_stock_everywhere,
    polling_worker,
    quantities,
    queue,
    queued,
    set_stock,
)

__all__ = ["applied", "server", "store", "url"]  # the fixtures: a fresh store on each backend, the sandbox

DATE = "2026-12-06T06:00:00Z"
SLOW = 5.0
"""Seconds Amazon's stand-in takes to answer each request."""
FAST = ("mercadolibre", "google")
RESTOCK = 40
"""Units in each warehouse of a SKU back in stock: every marketplace's rules list it above 0."""
DEADLINE = 20.0
"""Seconds the fast marketplaces may take (a loaded machine); Amazon's batch takes longer than
this whatever the load: each of its calls is 5 s, and a stock update is a token and a feed at least."""
SETTLE = 90.0
"""Seconds Amazon may take to catch up once it answers at once again."""


def eventually(check: Callable[[], bool], seconds: float = DEADLINE) -> bool:
    deadline = time.monotonic() + seconds
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def sold_out(box: Sandbox, sku: str, marketplaces: tuple[str, ...]) -> bool:
    held = quantities(box, sku)
    return all(held[m] == SOLD_OUT[m] for m in marketplaces)


def restock(box: Sandbox, sku_id: str) -> None:
    """What the store's admin does: RESTOCK units in each of the SKU's warehouses."""
    sku: Any = box.standins["vtex"].skus[sku_id]  # type: ignore[attr-defined]
    for warehouse in sku.inventory["balance"]:
        warehouse.update(totalQuantity=RESTOCK, reservedQuantity=0)
    sku.available = RESTOCK * len(sku.inventory["balance"])


def restocked(box: Sandbox, sku: str) -> bool:
    """Back in stock on the fast marketplaces."""
    held = quantities(box, sku)
    return all(held[m] not in (SOLD_OUT[m], []) for m in FAST)


def test_an_owner_takes_its_own_rows_again_once_notified_again_and_no_other_worker_does(
    store: StateStore,
) -> None:
    with NotificationQueue(store) as queue:
        queue.enqueue("1", Change.STOCK, DATE)
        queue.enqueue("2", Change.STOCK, DATE)
        first = queue.take(10, owner="worker")
        assert [(t.sku_id, t.version) for t in first] == [("1", 1), ("2", 1)]
        assert queue.take(10, owner="worker") == []  # held, at the version taken
        queue.enqueue("1", Change.PRICE, DATE)  # notified again while the worker holds it
        assert queue.take(10) == []  # still leased: no other worker takes it
        assert queue.take(10, owner="other") == []
        (again,) = queue.take(10, owner="worker")
        assert (again.sku_id, again.version, again.changes) == ("1", 2, Change.STOCK | Change.PRICE)
        assert queue.take(10, owner="worker") == []
        queue.release([first[0]])  # the older version's lease is gone: the newer one stays
        assert queue.take(10, owner="other") == []
        assert queue.done([first[0]], "google", ["google"]) == 0  # the row is at version 2 now
        assert queue.take(10, owner="other") == []
        assert queue.done([again], "google", ["google"]) == 1
        assert queue.done([first[1]], "google", ["google"]) == 1
        assert queue.counts().queued == 0


def test_a_slow_marketplace_delays_no_other_not_even_for_a_sku_it_still_applies(
    applied: tuple[Sandbox, Path],
) -> None:
    """Amazon answering every request 5 s late: Google and Mercado Libre get a change before Amazon
    does, then a second SKU and a second change of the first while Amazon still has the first
    change on its way; then Amazon gets the newest of each, and a full plan has nothing to do."""
    box, config = applied
    first, second = in_stock_everywhere(box)[:2]
    before = quantities(box, first)["amazon"]
    box.standins["amazon"].faults = Faults(slow_rate=1.0, slow_seconds=SLOW)
    worker = polling_worker(config)
    try:
        set_stock(box, first, 0)
        queue(config, first)
        assert eventually(lambda: sold_out(box, first, FAST)), quantities(box, first)
        assert quantities(box, first)["amazon"] == before  # on its way: the others did not wait
        set_stock(box, second, 0)
        restock(box, first)
        queue(config, second, first)
        assert eventually(lambda: sold_out(box, second, FAST) and restocked(box, first)), quantities(
            box, first
        )
        assert quantities(box, first)["amazon"] == before  # Amazon still on its first batch
        box.standins["amazon"].faults = Faults()
        assert eventually(lambda: queued(config) == 0, SETTLE)
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=60)
    assert worker.returncode == 0, out + err
    assert sold_out(box, second, MARKETPLACES)
    code, out, _ = tradepost("plan", "-c", str(config), "--detailed-exitcode")
    assert code == 0, out  # Amazon has the restock too
