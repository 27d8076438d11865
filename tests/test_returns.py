"""Returns: read from the marketplaces' stand-ins, kept once, and moving their order to ``returned``.

Over both state backends (SQLite and PostgreSQL): a Mercado Libre claim with a return, and a
Mirakl (Carrefour) return, move an order in VTEX to ``returned`` with the return's reason in its
note and history; read twice, each return is one row and one history event. A claim without a
return, a refused return, an order not yet in VTEX and an order Tradepost never imported move
nothing. Over loopback, `tradepost orders pull` and `tradepost orders returns` do the same.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

from engine.connectors import Credentials, OrderChannel, RetryPolicy
from engine.orders import AfterSalesStore, OrderStore, pull_returns
from engine.state import StateStore
from marketplaces.mirakl import MiraklConnector
from marketplaces.mirakl._order_channel import CarrefourOrders
from marketplaces.mirakl.standin import MiraklStandin
from marketplaces.sandbox import Sandbox
from tests import test_state_contract
from tests._harness import Loopback, run_apply, subset, tradepost, write_project
from tests.test_mercadolibre_orders import Shop
from tests.test_mercadolibre_orders import run as run_ml
from tests.test_orders_e2e import listed_skus

T = TypeVar("T")
APPROVED = {"decision": "approve", "reasons": []}


server, url = test_state_contract.server, test_state_contract.url  # the fixtures: each test on both backends


async def pull_twice(url: str, marketplace: str, channel: OrderChannel) -> list[Any]:
    with StateStore(url) as state:
        return [
            await pull_returns(AfterSalesStore(state), OrderStore(state), marketplace, channel)
            for _ in (1, 2)
        ]


def stored(url: str, marketplace: str, order_id: str) -> tuple[Any, list[Any], list[dict[str, Any]]]:
    """The order, its returns and its history."""
    with StateStore(url) as state:
        orders = OrderStore(state)
        order = orders.get(marketplace, order_id)
        return order, AfterSalesStore(state).returns([marketplace]), orders.events(marketplace, order_id)


# -- Mercado Libre ---------------------------------------------------------------------------------


def test_a_mercado_libre_claim_with_a_return_moves_the_order_to_returned_once(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        await shop.list_item("SKU-1")
        order_id = shop.standin.create_order("SKU-1", 2)
        with StateStore(url) as state:
            OrderStore(state).insert(await shop.read(order_id), "shipped", APPROVED, "received: approve")
        shop.standin.set_order_status(order_id, "delivered")
        shop.standin.after_sales.open_claim(order_id, "PDD9549")
        return [order_id, *await pull_twice(url, "mercadolibre", shop.channel)]

    order_id, first, second = run_ml(scenario)
    assert (first.read, first.new, first.returned) == (1, 1, [order_id])
    assert (second.read, second.new, second.returned) == (1, 0, [])
    order, returns, history = stored(url, "mercadolibre", order_id)
    assert order.state == "returned"
    assert order.note == "PDD9549: different or defective product"
    (kept,) = returns
    assert (kept.order_id, kept.status, kept.open) == (order_id, "opened", True)
    assert kept.items[0][1] == 2
    events = [e for e in history if e["event"] == "return received on the marketplace"]
    assert len(events) == 1 and "PDD9549" in events[0]["detail"]


def test_a_claim_without_a_return_a_cancelled_return_and_unknown_orders_move_nothing(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        await shop.list_item("SKU-1")
        ids = [shop.standin.create_order("SKU-1") for _ in range(4)]
        with StateStore(url) as state:
            orders = OrderStore(state)
            for order_id in ids[:2]:
                orders.insert(await shop.read(order_id), "ready", APPROVED, "received: approve")
            orders.insert(await shop.read(ids[2]), "held", APPROVED, "received: hold")
        desk = shop.standin.after_sales
        desk.open_claim(ids[0], "PNR1", with_return=False)  # not received: a mediation, nothing comes back
        desk.set_return_status(desk.open_claim(ids[1]), "cancelled")
        desk.open_claim(ids[2])  # held: not in VTEX, a person decides
        desk.open_claim(ids[3])  # sold before Tradepost took the orders
        return [ids, *await pull_twice(url, "mercadolibre", shop.channel)]

    ids, first, second = run_ml(scenario)
    assert first.read == 3 and first.returned == [] and first.unknown_orders == [ids[3]]
    assert second.new == 0
    states = [stored(url, "mercadolibre", order_id)[0] for order_id in ids[:3]]
    assert [s.state for s in states] == ["ready", "ready", "held"]
    held_history = stored(url, "mercadolibre", ids[2])[2]
    assert [e["event"] for e in held_history].count("return received on the marketplace") == 1
    returns = stored(url, "mercadolibre", ids[0])[1]
    assert sorted((r.order_id, r.open) for r in returns) == sorted(
        [(ids[1], False), (ids[2], True), (ids[3], True)]
    )


def test_a_return_read_while_the_claims_search_fails_is_an_error_and_the_next_pull_finds_it(url: str) -> None:
    async def scenario(shop: Shop) -> list[Any]:
        await shop.list_item("SKU-1")
        order_id = shop.standin.create_order("SKU-1")
        with StateStore(url) as state:
            OrderStore(state).insert(await shop.read(order_id), "shipped", APPROVED, "received: approve")
        shop.standin.after_sales.open_claim(order_id)
        shop.standin.faults.error_rate = 1.0
        with StateStore(url) as state:
            failed = await pull_returns(
                AfterSalesStore(state), OrderStore(state), "mercadolibre", shop.channel
            )
        shop.standin.faults.error_rate = 0.0
        return [order_id, failed, *await pull_twice(url, "mercadolibre", shop.channel)]

    order_id, failed, first, _ = run_ml(scenario)
    assert failed.error and "500" in failed.error and failed.exit_code == 1
    assert first.returned == [order_id]
    assert stored(url, "mercadolibre", order_id)[0].state == "returned"


# -- Mirakl (Carrefour) ----------------------------------------------------------------------------


def run_mirakl(scenario: Callable[[MiraklStandin, OrderChannel], Awaitable[T]]) -> T:
    shop = MiraklStandin()
    shop.offers["1001"] = {"price": Decimal("49.90"), "quantity": 50}

    async def main() -> T:
        async with httpx.AsyncClient(transport=shop.transport(), base_url="http://mirakl.test") as client:
            channel = CarrefourOrders(
                MiraklConnector({"shop_id": shop.shop_id}), Credentials(shop.sandbox_credentials()), client
            )
            channel.backoff = RetryPolicy(attempts=4, base=0.001, cap=0.005)
            return await scenario(shop, channel)

    return asyncio.run(main())


def test_a_carrefour_return_moves_the_order_and_a_refused_one_does_not(url: str) -> None:
    async def scenario(shop: MiraklStandin, channel: OrderChannel) -> list[Any]:
        ids = [shop.order_desk.create_order("1001", state="SHIPPED") for _ in range(2)]
        with StateStore(url) as state:
            for order_id in ids:
                OrderStore(state).insert(await channel.order(order_id), "shipped", APPROVED, "received")
        shop.after_sales.open_return(ids[0], "RETURN_CHANGED_MIND", state="RECEIVED")
        shop.after_sales.open_return(ids[1], state="REFUSED")
        return [ids, *await pull_twice(url, "carrefour", channel)]

    ids, first, second = run_mirakl(scenario)
    assert (first.read, first.new, first.returned) == (2, 2, [ids[0]])
    assert second.new == 0 and second.returned == []
    order, returns, history = stored(url, "carrefour", ids[0])
    assert order.state == "returned" and order.note == "RETURN_CHANGED_MIND: changed mind"
    assert len(returns) == 2
    assert [e["event"] for e in history].count("return received on the marketplace") == 1
    assert stored(url, "carrefour", ids[1])[0].state == "shipped"


# -- the CLI over loopback -------------------------------------------------------------------------


@pytest.fixture
def project(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    box = loopback.sandbox(subset(20))
    config = write_project(box, tmp_path / "project")
    summary = run_apply(config, "mercadolibre", box)
    assert summary.failed == 0, summary.failures
    return box, config


def test_orders_pull_reads_a_return_and_orders_returns_lists_it_once(project: tuple[Sandbox, Path]) -> None:
    box, config = project
    ml: Any = box.standins["mercadolibre"]
    order_id = ml.create_order(listed_skus(config, "mercadolibre")[0])
    c = str(config)
    assert tradepost("orders", "pull", "-m", "mercadolibre", "-c", c)[0] == 0
    assert tradepost("orders", "push", "-m", "mercadolibre", "-c", c)[0] == 0
    ml.after_sales.open_claim(order_id)

    code, out, err = tradepost("orders", "pull", "-m", "mercadolibre", "-c", c, "--json")
    assert code == 0, err
    (read,) = json.loads(out)["returns"]
    assert read["returned"] == [order_id]
    code, out, err = tradepost("orders", "returns", "-m", "mercadolibre", "-c", c, "--json")
    assert code == 0, err
    document = json.loads(out)
    assert document["pull"][0]["new"] == 0
    (row,) = document["returns"]
    assert row["order_id"] == order_id and row["order_state"] == "returned"
    assert row["reason"].startswith("PDD9549")
    code, out, _ = tradepost("orders", "returns", "--stored", "-c", c)
    assert code == 0 and order_id in out and "returned" in out
    code, out, err = tradepost("orders", "returns", "-m", "amazon", "-c", c)
    assert code == 0 and "not read through Tradepost" in err
