"""The VTEX reader under load: bounded, paced, polite on 429, in order, and sharing across trade policies.

The stand-in runs in process (``VtexStandin.sync_transport()`` for the synchronous client, its
ASGI transport for the asynchronous one); its ``latency`` makes each answer take a while, so
calls overlap as they would against VTEX, and ``max_in_flight`` shows how many did.
"""

from __future__ import annotations

import random
import threading
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import httpx
import pytest

import marketplaces.vtex
from engine.connectors import Changed, RetryPolicy
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.project._config import SourceConfig
from engine.sync._source import SourceItem
from marketplaces.vtex import VtexCatalogs, VtexReader, VtexSource, vtex_records
from marketplaces.vtex._reader import Reads, SharedAnswers, reads_for
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin
from tests.test_vtex_source import (
    BASE_URL,
    CONTEXT,
    FailingPaths,
    catalog,
    file_records,
    same_items,
    vtex_source,
)

INVENTORY = "/api/logistics/pvt/inventory/skus/"
COMPUTED = "/computed"
"""``.../computed``: every price table's computed prices; ``.../computed/{tp}``: one trade policy's."""


class Delayed(httpx.BaseTransport):
    """Each request waits a random few milliseconds (seeded) before the stand-in answers it, so
    answers come back in another order than they were asked; records request times per path."""

    def __init__(self, inner: httpx.BaseTransport, seed: int = 3) -> None:
        self.inner, self.random = inner, random.Random(seed)
        self.lock = threading.Lock()
        self.times: dict[str, list[float]] = {}

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        with self.lock:
            delay = self.random.uniform(0.0, 0.02)
            self.times.setdefault(request.url.path.split("/")[2], []).append(time.monotonic())
        time.sleep(delay)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


def test_no_more_requests_in_flight_than_the_concurrency() -> None:
    standin = VtexStandin(catalog(40), latency=0.02)
    with vtex_source(standin, concurrency=4, page_size=20) as source:
        got = list(source)
    same_items(got, file_records(40))
    assert standin.max_in_flight == 4  # the bound is used, never passed


def test_records_come_in_listing_order_whatever_order_the_answers_take() -> None:
    delayed: list[Delayed] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        delayed.append(Delayed(inner))
        return delayed[0]

    with vtex_source(VtexStandin(catalog(60)), concurrency=16, page_size=25, transport=wrap) as source:
        got = list(source)
    same_items(got, file_records(60))
    assert [item.sku.id for item in got if isinstance(item, CatalogRecord)] == [
        item.sku.id for item in file_records(60) if isinstance(item, CatalogRecord)
    ]


def test_each_vtex_api_is_paced_at_its_rate() -> None:
    delayed: list[Delayed] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        delayed.append(Delayed(inner))
        return delayed[0]

    standin = VtexStandin(catalog(30))
    rates = {"/api/catalog_system/": 40.0, "/api/logistics/": 1000.0}
    headers = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}
    with httpx.Client(base_url=BASE_URL, headers=headers, transport=wrap(standin.sync_transport())) as client:
        reader = VtexReader(client, RetryPolicy(attempts=1), concurrency=16, rates=rates)
        try:
            got = list(VtexSource(client, "1", page_size=30, reader=reader))
        finally:
            reader.close()
    same_items(got, file_records(30))
    catalog_calls = delayed[0].times["catalog_system"]  # 30 contexts and 2 listing pages
    burst = 40.0 / 10
    assert catalog_calls[-1] - catalog_calls[0] >= (len(catalog_calls) - burst - 1) / 40.0
    logistics = delayed[0].times["logistics"]
    assert logistics[-1] - logistics[0] < catalog_calls[-1] - catalog_calls[0]  # its own, faster bucket


def test_a_429_waits_what_retry_after_asks_then_the_read_goes_on() -> None:
    class ThrottledOnce(httpx.BaseTransport):
        def __init__(self, inner: httpx.BaseTransport) -> None:
            self.inner, self.throttled = inner, 0

        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path.startswith(INVENTORY) and not self.throttled:
                self.throttled += 1
                body = {"error": {"code": "429", "message": "slow down", "exception": None}}
                return httpx.Response(429, json=body, headers={"Retry-After": "0.7"}, request=request)
            return self.inner.handle_request(request)

        def close(self) -> None:
            self.inner.close()

    with vtex_source(VtexStandin(catalog(10)), transport=ThrottledOnce) as source:
        got = list(source)
    same_items(got, file_records(10))
    assert source.waits == [0.7] and source.retries == 1  # type: ignore[attr-defined]


def test_a_failing_sku_is_malformed_and_the_concurrent_others_come_in_order() -> None:
    records = catalog(30)
    broken = str(records[17]["sku"]["id"])
    with vtex_source(
        VtexStandin(records, latency=0.005),
        max_attempts=2,
        concurrency=8,
        transport=lambda inner: FailingPaths(inner, (INVENTORY + broken,)),
    ) as source:
        got = list(source)
    expected = file_records(30)
    malformed = sum(isinstance(item, MalformedRecord) for item in expected)
    assert source.complete and (source.count, source.errors) == (29 - malformed, 1 + malformed)
    assert isinstance(got[17], MalformedRecord) and got[17].sku_id == broken and got[17].unavailable
    assert "failed 2 times, last with 500" in str(got[17])
    same_items(got[:17] + got[18:], expected[:17] + expected[18:])


def read_catalogs(
    standin: VtexStandin, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> dict[str, list[SourceItem]]:
    """Trade policies 1, 2 and 3 of the stand-in read as a run reads them (``VtexCatalogs``)."""
    monkeypatch.setenv("VTEX_APP_KEY", SANDBOX_APP_KEY)
    monkeypatch.setenv("VTEX_APP_TOKEN", SANDBOX_APP_TOKEN)
    config = SourceConfig(type="vtex", base_url=BASE_URL, concurrency=8)

    def records_over_asgi(source: SourceConfig, folder: Path, trade_policy: str = "1") -> VtexSource:
        client = httpx.AsyncClient(base_url=BASE_URL, transport=standin.transport())
        built = vtex_records(source, folder, client, trade_policy=trade_policy)
        built._owns_reader = built.reader._owns_client = True  # closed with the run, as a built one
        return built

    monkeypatch.setattr(marketplaces.vtex, "vtex_records", records_over_asgi)
    catalogs = VtexCatalogs(config, tmp_path)
    try:
        return {policy: list(catalogs.records(policy)) for policy in ("1", "2", "3")}
    finally:
        catalogs.close()


def test_three_trade_policies_share_one_context_prices_and_inventory_call_per_sku(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    records = catalog(24)
    standin = VtexStandin(records, trade_policies=("1", "2", "3"))
    read = read_catalogs(standin, tmp_path, monkeypatch)
    calls = Counter(path.split(" ")[1].rstrip("0123456789/") for path in standin.requests)
    sku_paths = [p for p in standin.requests if p.startswith((f"GET {CONTEXT}", f"GET {INVENTORY}"))]
    assert all(count == 1 for path, count in standin.requests.items() if path in sku_paths)
    assert calls[CONTEXT.rstrip("/")] == calls[INVENTORY.rstrip("/")] == len(records)
    assert sum(n for p, n in standin.requests.items() if p.endswith(COMPUTED)) == len(records)
    assert not [p for p in standin.requests if COMPUTED + "/" in p]  # each took its entry of those
    for policy, items in read.items():
        assert [(type(i), getattr(i, "sku_id", None) or i.sku.id) for i in items] == [  # type: ignore[union-attr]
            (type(i), getattr(i, "sku_id", None) or i.sku.id)  # type: ignore[union-attr]
            for i in file_records(24)
        ], policy
        computed = [i.price for i in items if isinstance(i, CatalogRecord)]
        assert computed == [i.price for i in file_records(24) if isinstance(i, CatalogRecord)]


def by_sku(items: list[SourceItem]) -> dict[str, SourceItem]:
    return {getattr(i, "sku_id", None) or i.sku.id: i for i in items}  # type: ignore[union-attr]


def test_each_trade_policy_takes_its_own_entry_of_the_computed_prices(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given SKU 2000001 priced apart in trade policy 2 (476.99 elsewhere), expect that price in
    trade policy 2's record only, from the one computed prices call of the SKU."""
    standin = VtexStandin(catalog(6), trade_policies=("1", "2", "3"))
    standin.set_price(standin.skus["2000001"], Decimal("499.99"), "2")
    read = read_catalogs(standin, tmp_path, monkeypatch)
    expected = by_sku(file_records(6))["2000001"]
    assert isinstance(expected, CatalogRecord)
    for policy, items in read.items():
        got = by_sku(items)["2000001"]
        assert isinstance(got, CatalogRecord), policy
        selling = Decimal("499.99") if policy == "2" else expected.price.selling
        assert got.price == expected.price.model_copy(update={"selling": selling}), policy
        assert got.product == expected.product and got.stock == expected.stock, policy
    assert standin.requests[f"GET /pricing/prices/2000001{COMPUTED}"] == 1
    assert not [p for p in standin.requests if COMPUTED + "/" in p]


def test_a_trade_policy_the_computed_prices_lack_asks_its_own(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Given SKU 2000003 without a fixed price in trade policy 3 (the computed prices of every
    price table leave it out, as VTEX does), expect trade policy 3 to ask its own computed price,
    once, and the same records as the catalog file in every trade policy."""
    standin = VtexStandin(catalog(6), trade_policies=("1", "2", "3"))
    prices = standin.skus["2000003"].prices
    prices["fixedPrices"] = [f for f in prices["fixedPrices"] if f["tradePolicyId"] != "3"]
    read = read_catalogs(standin, tmp_path, monkeypatch)
    for items in read.values():
        same_items(items, file_records(6))
    asked = {p: n for p, n in standin.requests.items() if COMPUTED + "/" in p}
    assert asked == {f"GET /pricing/prices/2000003{COMPUTED}/3": 1}
    assert standin.requests[f"GET /pricing/prices/2000003{COMPUTED}"] == 1


def test_a_consumer_that_stops_early_leaves_nothing_running() -> None:
    standin = VtexStandin(catalog(60), latency=0.01)
    with vtex_source(standin, concurrency=8, page_size=10) as source:
        stream = source.records()
        for _ in range(12):
            next(stream)
        stream.close()
        time.sleep(0.05)
        assert standin.in_flight == 0
        asked = standin.total_requests()
        time.sleep(0.1)
        assert standin.total_requests() == asked  # nothing read ahead after the stop


# What a notified SKU's record reads (context, prices, inventory, the trade policy's prices),
# given what changed and what is kept: kept whole at t=0 in round 1, the bound 60 s.
_ALL, _NONE = (True, True, True, True), (False, False, False, False)
READS = [
    # changed, now, round, priced kept, expect
    (None, 1.0, 2, True, _ALL),
    (Changed.CATALOG, 1.0, 2, True, _ALL),
    (Changed.REMOVED, 1.0, 2, True, _ALL),
    (Changed(0), 1.0, 2, True, _ALL),
    (Changed(16), 1.0, 2, True, _ALL),  # a flag this reader does not know
    (Changed.STOCK, 1.0, 2, True, (False, False, True, False)),
    (Changed.PRICE, 1.0, 2, True, (False, True, False, True)),
    (Changed.PRICE | Changed.STOCK, 1.0, 2, True, (False, True, True, True)),
    (Changed.STOCK, 1.0, 2, False, (False, False, True, True)),  # no prices kept in this policy
    (Changed.STOCK, 61.0, 2, True, _ALL),  # past the bound
    # read in this round for another trade policy:
    (Changed.STOCK, 1.0, 1, True, _NONE),
    (Changed.PRICE, 1.0, 1, True, (False, False, False, True)),
    (Changed.CATALOG, 1.0, 1, True, (False, False, False, True)),
    (Changed.REMOVED, 1.0, 1, True, (True, False, False, True)),  # its context asked with its sc
]


@pytest.mark.parametrize(("changed", "now", "round_", "priced", "expect"), READS)
def test_a_notified_sku_reads_only_what_changed(
    changed: Changed | None, now: float, round_: int, priced: bool, expect: tuple[bool, ...]
) -> None:
    clock = [0.0]
    shared = SharedAnswers(max_age=60.0, clock=lambda: clock[0])
    try:
        shared.new_round()
        shared.put("7", [{"Id": 7}, {}, [], {}])
        if priced:
            shared.put_priced("7", "2", [{}, None])
        while shared.round < round_:
            shared.new_round()
        clock[0] = now
        got = reads_for(shared, "7", "2", changed)
        assert (got.context, got.prices, got.inventory, got.priced) == expect
    finally:
        shared.close()


def test_a_source_with_nothing_kept_reads_everything() -> None:
    assert reads_for(None, "7", "2", Changed.STOCK) == Reads()
