"""`tradepost sync`: queued SKUs reach every marketplace, once, and only they.

Over loopback: the sandbox applied in full, then a change made in the VTEX stand-in and its SKU
queued as `tradepost serve` queues it; `sync --once` must bring Mercado Libre, Amazon and Google
to it and leave the queue empty, touch nothing else, keep a failing marketplace's SKUs queued
without holding up the others, and survive a SIGKILL mid-apply.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.bench_kills import holdings
from engine.jsonio import loads
from engine.project import load_project, open_state
from engine.state import Change, NotificationQueue
from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests._harness import ROOT, Loopback, subset, tradepost, tradepost_process, write_project

MARKETPLACES = ("mercadolibre", "amazon", "google", "facebook")
SOLD_OUT = {"mercadolibre": [0], "amazon": [0], "google": ["OUT_OF_STOCK"], "facebook": ["out of stock"]}
CONTEXT = "GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/"


@pytest.fixture
def applied(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    """The sandbox's catalog listed on every marketplace by a full apply."""
    box = loopback.sandbox(subset(24))
    config = write_project(box, tmp_path / "project")
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    return box, config


def listed_everywhere(box: Sandbox) -> list[str]:
    held = [set(holdings(box, m)) for m in MARKETPLACES]
    return sorted(set.intersection(*held))


def in_stock_everywhere(box: Sandbox) -> list[str]:
    return [sku for sku in listed_everywhere(box) if quantities(box, sku) != SOLD_OUT]


def set_stock(box: Sandbox, sku_id: str, quantity: int) -> None:
    """What the store's admin does: the SKU's stock, all in its first warehouse."""
    sku: Any = box.standins["vtex"].skus[sku_id]  # type: ignore[attr-defined]
    for index, warehouse in enumerate(sku.inventory["balance"]):
        warehouse.update(totalQuantity=quantity if index == 0 else 0, reservedQuantity=0)
    sku.available = quantity


def queue(config: Path, *skus: str, changes: Change = Change.STOCK) -> None:
    with open_state(load_project(config)) as store, NotificationQueue(store) as notifications:
        for sku in skus:
            notifications.enqueue(sku, changes, "2026-12-06T06:00:00Z")


def queued(config: Path) -> int:
    with open_state(load_project(config)) as store, NotificationQueue(store) as notifications:
        return notifications.counts().queued


def quantities(box: Sandbox, sku_id: str) -> dict[str, Any]:
    """The quantity (or availability) each marketplace's stand-in holds for the SKU."""
    found = {m: [loads(h) for h in holdings(box, m)[sku_id]] for m in MARKETPLACES}
    return {
        "mercadolibre": [h[1] for h in found["mercadolibre"]],
        "amazon": [h[1][0]["quantity"] for h in found["amazon"]],
        "google": [h[2] for h in found["google"]],
        "facebook": [h[2] for h in found["facebook"]],
    }


def sent(box: Sandbox) -> dict[str, int]:
    return {m: box.standins[m].total_requests() for m in MARKETPLACES}


def sell_out(box: Sandbox, config: Path) -> str:
    """A SKU listed in stock everywhere sold out in VTEX, and notified."""
    sku = in_stock_everywhere(box)[0]
    set_stock(box, sku, 0)
    queue(config, sku)
    return sku


def polling_worker(config: Path) -> subprocess.Popen[str]:
    """`tradepost sync` polling every 0.1 s, as its own process (stop it with SIGTERM)."""
    return subprocess.Popen(
        [sys.executable, "-m", "cli.main", "sync", "-c", str(config), "--poll", "0.1"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
    )


def sync(config: Path, exit_code: int = 0) -> None:
    code, out, err = tradepost("sync", "-c", str(config), "--once")
    assert code == exit_code, out + err


def test_a_stock_change_reaches_every_marketplace_and_a_second_run_sends_nothing(
    applied: tuple[Sandbox, Path],
) -> None:
    box, config = applied
    sku = sell_out(box, config)
    sync(config)
    assert quantities(box, sku) == SOLD_OUT
    assert queued(config) == 0
    before = sent(box)
    sync(config)
    assert sent(box) == before
    code, out, _ = tradepost("plan", "-c", str(config), "--detailed-exitcode")
    assert code == 0, out  # the full pass agrees: nothing left to do


def test_a_sku_notified_fifty_times_is_read_once(applied: tuple[Sandbox, Path]) -> None:
    box, config = applied
    sku = in_stock_everywhere(box)[0]
    set_stock(box, sku, 0)
    for _ in range(50):
        queue(config, sku)
    vtex = box.standins["vtex"]
    vtex.requests.clear()
    sync(config)
    reads = sum(n for path, n in vtex.requests.items() if path.startswith(CONTEXT))
    assert reads == 1  # once for every trade policy, not per notification nor per trade policy
    assert quantities(box, sku) == SOLD_OUT


def test_a_sku_gone_from_the_catalog_is_withdrawn_and_no_other_listing_is_touched(
    applied: tuple[Sandbox, Path],
) -> None:
    box, config = applied
    gone = in_stock_everywhere(box)[0]
    others = {m: {s: h for s, h in holdings(box, m).items() if s != gone} for m in MARKETPLACES}
    del box.standins["vtex"].skus[gone]  # type: ignore[attr-defined]
    queue(config, gone, changes=Change.REMOVED)
    sync(config)
    assert queued(config) == 0
    with open_state(load_project(config)) as store:
        assert all(store.get(m, gone) is None for m in MARKETPLACES)
    for marketplace in MARKETPLACES:
        now = holdings(box, marketplace)
        # Withdrawn: gone (Amazon, Google), or on Mercado Libre an item closed or a variation emptied.
        assert gone not in now or all(loads(h)[1] == 0 or loads(h)[2] != "active" for h in now[gone]), (
            marketplace
        )
        assert {s: h for s, h in now.items() if s != gone} == others[marketplace], marketplace


def test_a_sku_removed_while_the_whole_catalog_left_vtex_withdraws_only_it(
    applied: tuple[Sandbox, Path],
) -> None:
    """The mass-delete danger: the batch's SKU is withdrawn; the SKUs not notified are not,
    even though the restricted plan never saw them."""
    box, config = applied
    listed = listed_everywhere(box)
    vtex: Any = box.standins["vtex"]
    for sku in listed[:-1]:
        del vtex.skus[sku]  # the whole catalog is gone from VTEX, but only the last SKU is notified
    queue(config, listed[-1], changes=Change.REMOVED)
    del vtex.skus[listed[-1]]
    before = {m: dict(holdings(box, m)) for m in MARKETPLACES}
    sync(config)
    for marketplace in MARKETPLACES:
        now = holdings(box, marketplace)
        changed = {s for s in set(now) | set(before[marketplace]) if now.get(s) != before[marketplace].get(s)}
        assert changed <= {listed[-1]}, marketplace


def test_a_failing_marketplace_keeps_its_skus_queued_and_the_others_are_done(
    applied: tuple[Sandbox, Path],
) -> None:
    box, config = applied
    sku = sell_out(box, config)
    box.standins["amazon"].faults = Faults(error_rate=1.0)
    sync(config, exit_code=3)
    assert quantities(box, sku)["mercadolibre"] == [0]
    assert quantities(box, sku)["google"] == ["OUT_OF_STOCK"]
    assert quantities(box, sku)["amazon"] != [0]
    assert queued(config) == 1
    with open_state(load_project(config)) as store, NotificationQueue(store) as notifications:
        (item,) = notifications.take(10)
        assert item.done_for == {
            "mercadolibre",
            "google",
            "facebook",
            "carrefour",
            "magalu",
            "dafiti",
            "netshoes",
        }
        notifications.release([item])
    box.standins["amazon"].faults = Faults()
    before = sent(box)
    sync(config)
    assert quantities(box, sku)["amazon"] == [0]
    assert queued(config) == 0
    after = sent(box)
    assert after["mercadolibre"] == before["mercadolibre"]  # done already: not sent again
    assert after["google"] == before["google"]


@pytest.mark.parametrize("failpoint", ["apply:sent", "apply:recorded", "sync:applied"])
def test_a_sync_killed_mid_apply_then_run_again_sends_every_sku_once(
    applied: tuple[Sandbox, Path], failpoint: str
) -> None:
    box, config = applied
    skus = in_stock_everywhere(box)[:6]
    for sku in skus:
        set_stock(box, sku, 0)
    queue(config, *skus)
    killed = tradepost_process("sync", "-c", str(config), "--once", "--lease", "1", failpoint=failpoint)
    assert killed.returncode == -9, killed.stdout + killed.stderr
    assert queued(config) == len(skus)
    time.sleep(1.1)  # the killed worker's lease runs out
    again = tradepost_process("sync", "-c", str(config), "--once")
    assert again.returncode == 0, again.stdout + again.stderr
    assert queued(config) == 0
    for sku in skus:
        assert quantities(box, sku) == SOLD_OUT  # one listing each, at the right quantity
    code, out, _ = tradepost("plan", "-c", str(config), "--detailed-exitcode")
    assert code == 0, out


def test_the_worker_applies_what_is_queued_while_it_runs_and_stops_on_sigterm(
    applied: tuple[Sandbox, Path],
) -> None:
    box, config = applied
    worker = polling_worker(config)
    try:
        sku = sell_out(box, config)
        deadline = time.monotonic() + 30
        while queued(config) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert queued(config) == 0
        assert quantities(box, sku) == SOLD_OUT
    finally:
        worker.send_signal(signal.SIGTERM)
        out, err = worker.communicate(timeout=30)
    assert worker.returncode == 0, out + err
    assert "stopped by SIGTERM" in out


def test_serve_with_sync_takes_a_notification_to_every_marketplace(applied: tuple[Sandbox, Path]) -> None:
    """The loop of issue 10: VTEX notifies `tradepost serve --sync`, the marketplaces follow."""
    box, config = applied
    secret = "sync-test-secret-0123456789"
    with config.open("a", encoding="utf-8") as out:
        out.write("serve:\n  host: 127.0.0.1\n  port: 0\n  secret: env:TRADEPOST_TEST_SYNC_SECRET\n")
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "-c", str(config), "--sync"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT), "TRADEPOST_TEST_SYNC_SECRET": secret},
    )
    try:
        assert server.stdout is not None
        banner = server.stdout.readline()
        port = int(banner.split(":")[2].split("/")[0])
        sku = in_stock_everywhere(box)[0]
        set_stock(box, sku, 0)
        notification = {
            "IdSku": sku,
            "IdAffiliate": "MLB",  # rules/mercadolibre.yaml's: serve takes the rule files' affiliates
            "DateModified": "2026-12-06T06:00:00Z",
            "StockModified": True,
        }
        answer = httpx.post(f"http://127.0.0.1:{port}/api/notification/?k={secret}", json=notification)
        assert answer.status_code == 200
        deadline = time.monotonic() + 30
        while quantities(box, sku) != SOLD_OUT and time.monotonic() < deadline:
            time.sleep(0.1)
        assert quantities(box, sku) == SOLD_OUT
    finally:
        server.send_signal(signal.SIGTERM)
        out, err = server.communicate(timeout=30)
    assert server.returncode == 0, out + err
    assert queued(config) == 0


def test_vtex_not_answering_keeps_the_skus_queued_for_every_marketplace(
    applied: tuple[Sandbox, Path],
) -> None:
    box, config = applied
    sku = sell_out(box, config)
    box.standins["vtex"].faults = Faults(throttle_rate=1.0)  # 429 to every retry (Retry-After: 0.05 s)
    before = sent(box)
    sync(config, exit_code=3)
    assert sent(box) == before  # nothing planned from what could not be read
    assert queued(config) == 1
    box.standins["vtex"].faults = Faults()
    sync(config)
    assert quantities(box, sku) == SOLD_OUT
    assert queued(config) == 0


def test_many_skus_gone_from_vtex_at_once_are_refused_as_a_mass_delete(applied: tuple[Sandbox, Path]) -> None:
    """VTEX answering 404 for whatever is notified must not empty the marketplaces."""
    box, config = applied
    vtex: Any = box.standins["vtex"]
    gone = listed_everywhere(box)[:10]
    for sku in gone:
        del vtex.skus[sku]
    queue(config, *gone, changes=Change.REMOVED)
    before = {m: holdings(box, m) for m in MARKETPLACES}
    code, out, err = tradepost("sync", "-c", str(config), "--once")
    assert code == 3, out + err
    assert "--allow-mass-delete" in err
    assert {m: holdings(box, m) for m in MARKETPLACES} == before
    assert queued(config) == len(gone)
