"""The sandbox shows the loop (issue 10, item 5), over loopback.

The sandbox's project is applied in full, `tradepost serve --sync` runs on it as its own process,
and `tradepost sandbox stock` / `sandbox price` change the VTEX stand-in as the store's admin
would: the stand-in notifies its affiliates (the project's `serve` endpoint) and the marketplaces
follow within seconds. A notification target that is down is retried, then given up, and the
stand-in keeps answering.
"""

from __future__ import annotations

import asyncio
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from bench.bench_kills import holdings
from engine.jsonio import loads
from marketplaces.sandbox import Sandbox
from marketplaces.vtex.standin import VtexStandin
from tests._harness import ROOT, Loopback, pace, subset, tradepost
from tests.test_sync_worker import SOLD_OUT, in_stock_everywhere, quantities

DEADLINE = 20.0
"""Seconds a change may take to reach the marketplaces."""


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture
def serving(loopback: Loopback, tmp_path: Path) -> Iterator[tuple[Sandbox, Path]]:
    """The sandbox applied everywhere, and `tradepost serve --sync` running on its project."""
    box = loopback.sandbox(subset(24))
    config = box.write_project(tmp_path / "project", ROOT / "rules", serve_port=free_port())
    pace(config)
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    for standin in box.standins.values():
        standin.bodies.clear()  # what the tests look at is what the notifications made sent
    server = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "-c", str(config), "--sync"],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        # A fatal signal makes every thread's stack go to stderr: what a stop that hangs was doing.
        env={**os.environ, "PYTHONPATH": str(ROOT), "PYTHONFAULTHANDLER": "1"},
    )
    try:
        assert server.stdout is not None
        assert "/api/notification" in server.stdout.readline()  # listening
        yield box, config
    finally:
        server.send_signal(signal.SIGTERM)
        try:
            out, err = server.communicate(timeout=30)
        except subprocess.TimeoutExpired:
            # Seen once in some forty runs here, never caught again: abort the sync worker and
            # serve, so nothing is left running and their stacks say where they were.
            subprocess.run(["pkill", "-ABRT", "-P", str(server.pid)], check=False)
            server.send_signal(signal.SIGABRT)
            out, err = server.communicate(timeout=30)
            pytest.fail(f"serve --sync did not stop within 30 s of SIGTERM; its stderr:\n{err[-8000:]}")
    assert server.returncode == 0, out + err


def sent(box: Sandbox, marketplace: str, method: str) -> list[Any]:
    """The bodies of the ``method`` requests the marketplace's stand-in got since the fixture's apply."""
    return [loads(body) for call, body in box.standins[marketplace].bodies if call.startswith(f"{method} ")]


def ml_fields(body: Any) -> dict[str, Any]:
    """The fields a Mercado Libre item update sets: the item's own, or its one variation's (a SKU
    of a family is a variation of the family's item, named by its id)."""
    if "variations" in body:
        ((variation),) = body["variations"]
        return {key: value for key, value in variation.items() if key != "id"} | {
            key: value for key, value in body.items() if key != "variations"
        }
    return dict(body)


def patched(body: Any) -> list[str]:
    """The paths an Amazon ``ListingsItemPatchRequest`` replaces."""
    return [patch["path"] for patch in body["patches"]]


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + DEADLINE
    while not check() and time.monotonic() < deadline:
        time.sleep(0.1)
    return check()


def vtex(box: Sandbox) -> Any:
    return box.standins["vtex"]


def test_a_stock_change_in_the_sandbox_reaches_every_marketplace(serving: tuple[Sandbox, Path]) -> None:
    box, config = serving
    sku = in_stock_everywhere(box)[0]
    code, out, err = tradepost("sandbox", "stock", "-c", str(config), sku, "0")
    assert code == 0, out + err
    assert f"VTEX SKU {sku}: stock 0" in out and "MLB" in out
    assert eventually(lambda: quantities(box, sku) == SOLD_OUT), quantities(box, sku)
    delivered = {(d.affiliate, d.outcome) for d in vtex(box).affiliates.deliveries}
    assert delivered == {
        ("MLB", "delivered"),
        ("MZN", "delivered"),
        ("GGL", "delivered"),
        ("FCB", "delivered"),
        ("CRF", "delivered"),
        ("MGL", "delivered"),
        ("DFT", "delivered"),
        ("NTS", "delivered"),
    }
    # Only the stock was sent: Mercado Libre's item update carries the quantity alone, Amazon's
    # patch replaces fulfillment_availability alone.
    assert [ml_fields(body) for body in sent(box, "mercadolibre", "PUT")] == [{"available_quantity": 0}]
    stock_only = [["/attributes/fulfillment_availability"]]
    assert [patched(body) for body in sent(box, "amazon", "PATCH")] == stock_only


def test_a_price_change_reaches_mercado_libre_and_leaves_its_stock(serving: tuple[Sandbox, Path]) -> None:
    box, config = serving
    sku = in_stock_everywhere(box)[0]
    before = quantities(box, sku)
    selling = Decimal(str(vtex(box).skus[sku].computed["sellingPrice"])) + 10  # above the rules' minimum
    code, out, err = tradepost("sandbox", "price", "-c", str(config), sku, str(selling))
    assert code == 0, out + err
    assert f"selling price {selling}" in out

    def ml_prices() -> list[Decimal]:
        return [Decimal(str(loads(h)[0])) for h in holdings(box, "mercadolibre")[sku]]

    old = ml_prices()
    assert eventually(lambda: ml_prices() != old), ml_prices()
    (listed,) = ml_prices()
    assert selling * Decimal("1.35") <= listed < selling * Decimal("1.35") + 1  # the rules' rounding
    assert quantities(box, sku) == before
    # A price-only call: Mercado Libre's item update carries the price alone.
    assert [ml_fields(body) for body in sent(box, "mercadolibre", "PUT")] == [{"price": listed}]
    assert eventually(lambda: bool(sent(box, "amazon", "PATCH")))
    assert [patched(body) for body in sent(box, "amazon", "PATCH")] == [["/attributes/purchasable_offer"]]


def test_the_price_command_refuses_a_bad_price(serving: tuple[Sandbox, Path]) -> None:
    box, config = serving
    for bad in ("abc", "0", "1.234", "-5", "1e30", "NaN"):
        code, out, err = tradepost("sandbox", "price", "-c", str(config), "2000003", bad)
        assert code != 0 and "PRICE" in out + err, bad
        assert "internal error" not in out + err and "Traceback" not in out + err, bad
    assert vtex(box).affiliates.deliveries == []


def test_a_down_notification_target_is_retried_then_given_up() -> None:
    standin = VtexStandin(subset(4))
    standin.affiliates.attempts, standin.affiliates.backoff = 3, 0.01
    standin.sandbox_affiliate("MLB", f"http://127.0.0.1:{free_port()}/api/notification/?k=x")
    sku = next(iter(standin.skus))

    async def change_twice() -> list[int]:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://vtex") as client:
            statuses = []
            for quantity in (3, 0):
                answer = await client.post("/_sandbox/stock", json={"sku_id": sku, "quantity": quantity})
                statuses.append(answer.status_code)
            deadline = time.monotonic() + DEADLINE
            while len(standin.affiliates.deliveries) < 2 and time.monotonic() < deadline:
                await asyncio.sleep(0.02)
            return statuses

    assert asyncio.run(change_twice()) == [200, 200]
    outcomes = [(d.affiliate, d.outcome, d.attempts) for d in standin.affiliates.deliveries]
    assert outcomes == [("MLB", "given up", 3)] * 2
    assert standin.skus[sku].available == 0


def test_the_stock_control_refuses_unknown_skus_warehouses_and_quantities() -> None:
    standin = VtexStandin(subset(2))
    sku = next(iter(standin.skus))

    async def post(body: dict[str, Any]) -> int:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://vtex") as client:
            return (await client.post("/_sandbox/stock", json=body)).status_code

    assert asyncio.run(post({"sku_id": "nope", "quantity": 1})) == 404
    assert asyncio.run(post({"sku_id": sku, "quantity": 1, "warehouse": "nowhere"})) == 404
    assert asyncio.run(post({"sku_id": sku, "quantity": -1})) == 400
    assert asyncio.run(post({"sku_id": sku, "quantity": 7})) == 200
    assert all(w["totalQuantity"] == 7 for w in standin.skus[sku].inventory["balance"])
