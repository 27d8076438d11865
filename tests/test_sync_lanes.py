"""The sync worker's marketplaces each at their own pace (issue 10: p95 <= 2 s at 100 changes/s).

The queue on both backends: a worker taking as an ``owner`` takes its own rows again once they
are notified again, and never the versions it holds; a release or a done for an older version
leaves the newer lease alone. Then over loopback, `tradepost sync` with Amazon answering each
request 3 s late: Google and Mercado Libre get every change within their own latency, a second
change of the same SKU included, while Amazon's batch is still on its way.
"""

from __future__ import annotations

from engine.state import Change, NotificationQueue
from engine.state._store import StateStore
from tests.test_state_contract import server, store, url

__all__ = ["server", "store", "url"]  # the fixtures: a fresh store on each backend

DATE = "2026-12-06T06:00:00Z"


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
