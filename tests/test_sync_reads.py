"""What the sync worker asks VTEX for a notified SKU: only what its notification says changed.

The sandbox applied in full, then the worker driven in process (``sync_once`` with the reads it
keeps between batches, as ``tradepost sync`` keeps them for its life) against the VTEX stand-in,
which counts every request by method and path. Given a SKU's flags, expect these calls for it,
across the sandbox's three trade policies (1, 2, 3); "computed" is the computed prices of every
price table (``GET /pricing/prices/{id}/computed``), each trade policy taking its entry:

| notification                  | context | prices | inventory | computed | simulations |
|-------------------------------|---------|--------|-----------|----------|-------------|
| first sight (nothing kept)    | 1       | 1      | 1         | 1        | 3           |
| catalog, stale entry          | 1       | 1      | 1         | 1        | 3           |
| removed (or deactivated)      | 3       | 1      | 1         | 1        | 3           |
| stock only                    |         |        | 1         |          |             |
| price only                    |         | 1      |           | 1        | 3           |

and the records (so the payloads) built from a part read plus what is kept equal a whole read's.
"""

from __future__ import annotations

import re
import time
from collections import Counter
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.connectors import Changed
from engine.project import (
    MarketplaceRun,
    Project,
    SyncReads,
    load_project,
    open_marketplace,
    open_state,
    sync_once,
)
from engine.project._apply import sent_records
from engine.state import NotificationQueue, QueuedSku, StateStore
from marketplaces.sandbox import Sandbox
from marketplaces.vtex import vtex_records
from tests._harness import Loopback, subset, tradepost, write_project

CONTEXT = "GET context"
PRICES = "GET prices"
COMPUTED = "GET computed"
INVENTORY = "GET inventory"
SIMULATION = "POST simulation"
POLICIES = ("1", "2", "3")
WHOLE = Counter({CONTEXT: 1, PRICES: 1, COMPUTED: 1, INVENTORY: 1, SIMULATION: 3})
PRICE_ONLY = Counter({PRICES: 1, COMPUTED: 1, SIMULATION: 3})

_PATHS = (
    (re.compile(r"^GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/[^/]+$"), CONTEXT),
    (re.compile(r"^GET (?:/[^/]+)?/pricing/prices/[^/]+$"), PRICES),
    (re.compile(r"^GET (?:/[^/]+)?/pricing/prices/[^/]+/computed$"), COMPUTED),
    (re.compile(r"^GET (?:/[^/]+)?/pricing/prices/[^/]+/computed/([^/]+)$"), "GET computed {}"),
    (re.compile(r"^GET /api/logistics/pvt/inventory/skus/[^/]+$"), INVENTORY),
    (re.compile(r"^POST /api/checkout/pub/orderForms/simulation$"), SIMULATION),
)


def kind(request: str) -> str:
    """A stand-in request ("GET /pricing/prices/12/computed/2") as the table above names it."""
    for pattern, name in _PATHS:
        if match := pattern.match(request):
            return name.format(*match.groups())
    return request


@dataclass
class Worker:
    """A sync worker in process: its project, runs, store, queue and the reads it keeps."""

    box: Sandbox
    config: Path
    project: Project
    runs: list[MarketplaceRun]
    state: StateStore
    queue: NotificationQueue
    reads: SyncReads

    @property
    def vtex(self) -> Any:
        return self.box.standins["vtex"]

    def notify(self, sku_id: str, changes: Changed) -> Counter[str]:
        """Queue the SKU as `tradepost serve` does, run a pass; the VTEX calls it made."""
        self.queue.enqueue(sku_id, changes, "2026-12-06T06:00:00Z")
        self.vtex.requests.clear()
        report = sync_once(self.project, self.runs, self.state, self.queue, reads=self.reads)
        assert not report.failed, report.to_dict()
        assert report.left_queue == 1
        return Counter({kind(request): n for request, n in self.vtex.requests.items()})


@pytest.fixture
def worker(loopback: Loopback, tmp_path: Path) -> Iterator[Worker]:
    box = loopback.sandbox(subset(12))
    config = write_project(box, tmp_path / "project")
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    project = load_project(config)
    runs = [open_marketplace(project, name) for name in project.marketplace_names([])]
    assert sorted({run.trade_policy for run in runs}) == list(POLICIES)
    reads = SyncReads(project)
    try:
        with open_state(project) as state, NotificationQueue(state) as queue:
            yield Worker(box, config, project, runs, state, queue, reads)
    finally:
        reads.close()


def a_sku(worker: Worker) -> str:
    return sorted(worker.vtex.skus)[0]


def set_price(worker: Worker, sku_id: str, price: str, trade_policy: str | None = None) -> None:
    """What the store's admin does: a new selling price in every trade policy, or in one."""
    body = {"sku_id": sku_id, "price": price, **({"trade_policy": trade_policy} if trade_policy else {})}
    answer = httpx.post(worker.box.url("vtex") + "/_sandbox/price", json=body)
    assert answer.status_code == 200, answer.text


def set_stock(worker: Worker, sku_id: str, quantity: int) -> None:
    answer = httpx.post(
        worker.box.url("vtex") + "/_sandbox/stock", json={"sku_id": sku_id, "quantity": quantity}
    )
    assert answer.status_code == 200, answer.text


def test_first_sight_of_a_sku_reads_it_whole_even_for_a_stock_change(worker: Worker) -> None:
    assert worker.notify(a_sku(worker), Changed.STOCK) == WHOLE


@pytest.mark.parametrize(
    "changes", [Changed.CATALOG, Changed.STOCK | Changed.CATALOG, Changed(0), Changed(16)]
)
def test_a_catalog_change_or_an_unknown_one_reads_the_sku_whole(worker: Worker, changes: Changed) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    assert worker.notify(sku, changes) == WHOLE


def test_a_removal_reads_the_sku_whole_and_its_context_in_every_trade_policy(worker: Worker) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    assert worker.notify(sku, Changed.REMOVED) == WHOLE + Counter({CONTEXT: 2})


@pytest.mark.parametrize("changes", [Changed.REMOVED, Changed.CATALOG])
def test_a_sku_removed_from_one_trade_policy_is_withdrawn_there_only(
    worker: Worker, changes: Changed
) -> None:
    """Removed: its context asked in trade policy 3 answers 404. A catalog change: the context
    read once (in trade policy 1) no longer lists 3 in its SalesChannels."""
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    stored = worker.vtex.skus[sku]
    stored.trade_policies = tuple(tp for tp in stored.trade_policies if tp != "3")
    stored.context["SalesChannels"] = [c for c in stored.context["SalesChannels"] if str(c) != "3"]
    worker.notify(sku, changes)
    for run in worker.runs:
        listed = worker.state.get(run.compiled.marketplace, sku) is not None
        assert listed == (run.trade_policy != "3"), run.name


def test_a_stock_change_of_a_sku_read_before_asks_only_for_its_inventory(worker: Worker) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    set_stock(worker, sku, 0)
    assert worker.notify(sku, Changed.STOCK) == Counter({INVENTORY: 1})
    assert worker.notify(sku, Changed.STOCK) == Counter({INVENTORY: 1})  # a part read kept the rest


def test_a_price_change_asks_for_prices_and_computed_prices_once_and_each_trade_policys_simulation(
    worker: Worker,
) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    set_price(worker, sku, "123.45")
    assert worker.notify(sku, Changed.PRICE) == PRICE_ONLY
    assert worker.notify(sku, Changed.PRICE | Changed.STOCK) == PRICE_ONLY + Counter({INVENTORY: 1})


def test_an_entry_older_than_the_bound_is_read_whole(worker: Worker) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    assert worker.reads.catalogs is not None
    shared = worker.reads.catalogs.shared  # type: ignore[attr-defined]
    shared.clock = lambda: time.monotonic() + shared.max_age + 1
    assert worker.notify(sku, Changed.STOCK) == WHOLE


def test_a_restarted_worker_reads_each_skus_first_notification_whole(worker: Worker) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    worker.reads.close()
    worker.reads = SyncReads(worker.project)
    assert worker.notify(sku, Changed.STOCK) == WHOLE


def test_a_batch_costs_the_requests_of_the_table_per_sku(worker: Worker) -> None:
    """The figures the README quotes: requests per SKU for a batch of every SKU, by flag."""
    skus = sorted(worker.vtex.skus)
    per_sku: dict[str, float] = {}
    for name, changes in (("whole", Changed.CATALOG), ("stock", Changed.STOCK), ("price", Changed.PRICE)):
        for sku in skus:
            worker.queue.enqueue(sku, changes, "2026-12-06T06:00:00Z")
        worker.vtex.requests.clear()
        sync_once(worker.project, worker.runs, worker.state, worker.queue, reads=worker.reads)
        per_sku[name] = worker.vtex.total_requests() / len(skus)
    # A page of 12 SKUs: one simulation per trade policy for the page, not per SKU.
    assert per_sku == {"whole": 4 + 3 / len(skus), "stock": 1, "price": 2 + 3 / len(skus)}


@pytest.mark.parametrize("changes", [Changed.PRICE, Changed.STOCK])
def test_a_part_read_gives_the_records_and_payloads_of_a_whole_read(worker: Worker, changes: Changed) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    if changes & Changed.PRICE:
        set_price(worker, sku, "77.70")
    else:
        set_stock(worker, sku, 3)
    taken = QueuedSku(sku, changes, "2026-12-06T06:00:00Z", 0.0, 1, "", frozenset())
    part = worker.reads.read(worker.project, POLICIES, [taken])
    for run in worker.runs:
        with vtex_records(
            worker.project.config.source, worker.project.folder, trade_policy=run.trade_policy
        ) as fresh:
            whole = list(fresh.records_for([sku]))
        assert part[run.trade_policy] == whole, run.name
        planned = [
            sent_records(run, run.planner(None).changes(records, only={sku}))
            for records in (part[run.trade_policy], whole)
        ]
        assert planned[0] == planned[1], run.name


def test_a_price_changed_in_one_trade_policy_reaches_its_marketplace_only(worker: Worker) -> None:
    """Given a SKU priced apart in trade policy 2, expect the price notification's one read of the
    computed prices to give trade policy 2's record that price and the others their own."""
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    before = {tp: Decimal(str(worker.vtex.skus[sku].computed["sellingPrice"])) for tp in POLICIES}
    set_price(worker, sku, "999.90", trade_policy="2")
    assert worker.notify(sku, Changed.PRICE) == PRICE_ONLY
    taken = QueuedSku(sku, Changed.PRICE, "2026-12-06T06:00:00Z", 0.0, 1, "", frozenset())
    read = worker.reads.read(worker.project, POLICIES, [taken])
    selling = {tp: record.price.selling for tp, (record,) in read.items()}  # type: ignore[union-attr]
    assert selling == {**before, "2": Decimal("999.90")}


def test_what_a_part_read_applies_is_what_a_full_plan_wants(worker: Worker) -> None:
    sku = a_sku(worker)
    worker.notify(sku, Changed.CATALOG)
    set_price(worker, sku, "88.80")
    worker.notify(sku, Changed.PRICE)
    set_stock(worker, sku, 0)
    worker.notify(sku, Changed.STOCK)
    code, out, _ = tradepost("plan", "-c", str(worker.config), "--detailed-exitcode")
    assert code == 0, out  # the full pass agrees: nothing left to send


def test_a_worker_keeps_its_answers_between_passes_and_a_pass_alone_does_not(worker: Worker) -> None:
    """A worker passes its reads to every pass (`tradepost sync`, `serve --sync`): what VTEX
    answered serves its later notifications. A pass without (`sync --once`, a worker started
    again) reads whole."""
    sku = a_sku(worker)
    runs, state, project = worker.runs, worker.state, worker.project
    reads = SyncReads(project)
    try:
        worker.queue.enqueue(sku, Changed.CATALOG, "2026-12-06T06:00:00Z")
        sync_once(project, runs, state, worker.queue, reads=reads)
        worker.queue.enqueue(sku, Changed.STOCK, "2026-12-06T06:00:01Z")
        worker.vtex.requests.clear()
        sync_once(project, runs, state, worker.queue, reads=reads)
        assert worker.vtex.total_requests() == 1  # the inventory
    finally:
        reads.close()
    worker.queue.enqueue(sku, Changed.STOCK, "2026-12-06T06:00:02Z")
    worker.vtex.requests.clear()
    sync_once(project, runs, state, worker.queue)
    assert worker.vtex.total_requests() == sum(WHOLE.values())
