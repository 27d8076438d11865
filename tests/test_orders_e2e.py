"""Orders end to end: listings applied, orders bought on the stand-ins, imported into VTEX, shipped back.

Over real loopback sockets with `tradepost` run as a scheduler runs it (a
subprocess per command), including runs killed with SIGKILL at each step of
the order state machine; and in process with faults injected on every
marketplace and on VTEX. Each test asserts what a merchant depends on: every
order exactly once in VTEX, none lost, the marketplace told what happened.
"""

from __future__ import annotations

import asyncio
import json
import signal
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.jsonio import dumps
from engine.orders._store import OrderStore
from engine.project._assembly import open_state
from engine.project._config import load_project
from engine.project._order_desks import order_desks
from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests._harness import Loopback, run_apply, subset, tradepost_process, write_project


@pytest.fixture
def project(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    """A fresh sandbox whose Mercado Libre and Amazon stand-ins list the first products of the example."""
    box = loopback.sandbox(subset(20))
    config = write_project(box, tmp_path / "project")
    for marketplace in ("mercadolibre", "amazon"):
        summary = run_apply(config, marketplace, box)
        assert summary.failed == 0 and summary.applied > 5, summary.failures
    return box, config


def listed_skus(config: Path, marketplace: str, stock: int = 2) -> list[str]:
    """SKUs applied to the marketplace with at least ``stock`` units listed (VTEX has more)."""
    with open_state(load_project(config)) as state:
        rows = state.db.execute(
            "SELECT sku_id FROM listings WHERE marketplace = ? AND quantity >= ? ORDER BY sku_id",
            (marketplace, stock),
        )
        return [str(row[0]) for row in rows]


def tradepost(config: Path, *args: str, failpoint: str | None = None, timeout: float = 120) -> Any:
    return tradepost_process(*args, "-c", str(config), failpoint=failpoint, timeout=timeout)


def orders_json(config: Path, *args: str) -> dict[str, Any]:
    result = tradepost(config, "orders", "list", "--json", *args)
    assert result.returncode == 0, result.stderr
    document: dict[str, Any] = json.loads(result.stdout)
    return document


def vtex_count(box: Sandbox, marketplace_order_id: str) -> int:
    """How many VTEX orders carry this marketplace order id (must never exceed one)."""
    vtex: Any = box.standins["vtex"]
    return len(vtex.orders_by_marketplace_id().get(marketplace_order_id, []))


# -- the full cycle over loopback, as a user runs it -------------------------------------------


@pytest.mark.parametrize("marketplace", ["mercadolibre", "amazon"])
def test_full_cycle_listing_order_vtex_invoice_shipment(
    project: tuple[Sandbox, Path], marketplace: str
) -> None:
    box, config = project
    sku = listed_skus(config, marketplace)[0]
    bought = tradepost(config, "sandbox", "order", "-m", marketplace, "--sku", sku, "--quantity", "2")
    assert bought.returncode == 0, bought.stderr
    order_id = bought.stdout.split(" order ")[1].split()[0]

    pulled = tradepost(config, "orders", "pull", "-m", marketplace, "--json")
    assert pulled.returncode == 0, pulled.stderr
    assert json.loads(pulled.stdout)["pull"][0]["new"] == {"approved": 1}

    pushed = tradepost(config, "orders", "push", "-m", marketplace, "--json")
    assert pushed.returncode == 0, pushed.stderr
    (row,) = orders_json(config, "-m", marketplace)["orders"]
    assert row["order_id"] == order_id and row["state"] == "ready"
    assert vtex_count(box, order_id) == 1
    vtex_id = row["vtex_order_id"]
    # Kept while the order is open (VTEX needed them); short ones (a house number) could match a price.
    personal = [v for v in stored_state(config, marketplace, order_id).order.personal_values() if len(v) >= 5]
    assert len(personal) >= 3
    printed = [pulled.stdout, pulled.stderr, pushed.stdout, pushed.stderr]
    for args in (("show", order_id), ("show", order_id, "--json"), ("list",), ("list", "--json")):
        shown = tradepost(config, "orders", *args)
        assert shown.returncode == 0, shown.stderr
        printed += [shown.stdout, shown.stderr]
    for value in personal:
        assert all(value not in text for text in printed), value

    invoiced = tradepost(config, "sandbox", "invoice", vtex_id)
    assert invoiced.returncode == 0, invoiced.stderr
    shipped = tradepost(config, "orders", "push", "-m", marketplace, "--json")
    assert shipped.returncode == 0, shipped.stderr

    (row,) = orders_json(config, "-m", marketplace)["orders"]
    assert row["state"] == "shipped"
    standin: Any = box.standins[marketplace]
    if marketplace == "amazon":
        assert "SHIPPED" in dumps(standin.order_record(order_id))
    else:  # a Mercado Envios order: the invoice is attached to the sale, Mercado Libre prints the label
        record = standin.order_record(order_id)
        assert str(record["pack_id"] or record["id"]) in standin.fiscal_documents
    state = sqlite_text(config)
    assert "Rua" not in state and "@" not in state.split("order_events")[0]  # personal data erased


def sqlite_text(config: Path) -> str:
    with open_state(load_project(config)) as state:
        rows = state.db.execute("SELECT order_json FROM orders").fetchall()
    return "\n".join(row[0] for row in rows)


def test_a_divergent_order_is_held_then_rejected_and_cancelled_on_the_marketplace(
    project: tuple[Sandbox, Path],
) -> None:
    box, config = project
    sku = listed_skus(config, "mercadolibre")[0]
    ml: Any = box.standins["mercadolibre"]
    order_id = ml.create_order(sku, 1)
    listed_price = ml.order_record(order_id)["order_items"][0]["unit_price"]
    ten_percent_off = str((Decimal(str(listed_price)) * Decimal("0.9")).quantize(Decimal("0.01")))
    cheap = ml.create_order(sku, 1, unit_price=ten_percent_off)
    accepted = ml.create_order(sku, 1, unit_price=ten_percent_off)

    tradepost(config, "orders", "pull", "-m", "mercadolibre")
    held = orders_json(config, "--held")["orders"]
    assert [o["order_id"] for o in held] == [cheap, accepted]
    assert any("held for review" in r["message"] for r in held[0]["decision"]["reasons"])

    approved = tradepost(config, "orders", "approve", accepted, "--note", "agreed with the buyer", "--json")
    assert approved.returncode == 0, approved.stderr
    assert json.loads(approved.stdout)["state"] == "approved"

    rejected = tradepost(config, "orders", "reject", cheap, "--reason", "price error on the listing")
    assert rejected.returncode == 0, rejected.stderr
    pushed = tradepost(config, "orders", "push", "-m", "mercadolibre")
    assert pushed.returncode == 0, pushed.stderr

    assert ml.order_record(cheap)["status"] == "cancelled"
    assert vtex_count(box, cheap) == 0 and vtex_count(box, order_id) == 1 and vtex_count(box, accepted) == 1
    again = tradepost(config, "orders", "approve", accepted)
    assert again.returncode == 1 and "only held orders can be approved" in again.stderr
    shown = tradepost(config, "orders", "show", cheap)
    assert "rejected by reviewer: price error on the listing" in shown.stdout


def test_review_commands_fail_clearly_without_a_traceback(project: tuple[Sandbox, Path]) -> None:
    _, config = project
    missing = tradepost(config, "orders", "approve", "NOPE-1")
    assert missing.returncode == 1
    assert "no order NOPE-1 in the state store" in missing.stderr
    assert "Traceback" not in missing.stderr + missing.stdout
    no_reason = tradepost(config, "orders", "reject", "NOPE-1")
    assert no_reason.returncode == 2 and "--reason" in no_reason.stderr


# -- killed at each step -----------------------------------------------------------------------

STEPS = [
    ("pull", "pull:read"),
    ("pull", "pull:stored"),
    ("push", "place:before"),
    ("push", "place:after-vtex"),
    ("push", "authorize:after-vtex"),
    ("push", "ship:after-marketplace"),
    ("push", "cancel:after-marketplace"),
    ("push", "cancel:after-vtex"),
]


@pytest.mark.parametrize(("command", "failpoint"), STEPS, ids=[f for _, f in STEPS])
def test_killed_at_each_step_then_run_again_every_order_once_in_vtex(
    project: tuple[Sandbox, Path], command: str, failpoint: str
) -> None:
    box, config = project
    ml: Any = box.standins["mercadolibre"]
    skus = listed_skus(config, "mercadolibre")[:3]
    expected = "ready"
    if failpoint == "cancel:after-marketplace":  # rejected by the bands: cancelled on Mercado Libre
        order_ids = [ml.create_order(sku, 1, unit_price="1.00") for sku in skus]
        expected = "cancelled"
    else:
        order_ids = [ml.create_order(sku, 1) for sku in skus]
    if failpoint == "cancel:after-vtex":  # placed, then the buyer cancels on Mercado Libre
        assert tradepost(config, "orders", "pull").returncode == 0
        assert tradepost(config, "orders", "push").returncode == 0
        for order_id in order_ids:
            ml.set_order_status(order_id, "cancelled")
        assert tradepost(config, "orders", "pull").returncode == 0
        expected = "cancelled"
    elif failpoint == "ship:after-marketplace":
        assert tradepost(config, "orders", "pull").returncode == 0
        assert tradepost(config, "orders", "push").returncode == 0
        vtex: Any = box.standins["vtex"]
        for order_id in order_ids:
            (vtex_id,) = vtex.orders_by_marketplace_id()[order_id]
            vtex.invoice_order(vtex_id)
    elif command == "push":
        assert tradepost(config, "orders", "pull").returncode == 0

    # A pull passes its points once; a push passes them once per order: die at the second order.
    nth = 1 if command == "pull" else 2
    killed = tradepost(config, "orders", command, "-m", "mercadolibre", failpoint=f"{failpoint}:#{nth}")
    assert killed.returncode == -signal.SIGKILL, (killed.returncode, killed.stderr)

    # What the scheduler does next: pull and push again.
    assert tradepost(config, "orders", "pull", "-m", "mercadolibre").returncode == 0
    again = tradepost(config, "orders", "push", "-m", "mercadolibre")
    assert again.returncode == 0, again.stderr
    rows = {o["order_id"]: o for o in orders_json(config, "-m", "mercadolibre")["orders"]}
    assert set(rows) == set(order_ids)  # none lost
    if failpoint == "cancel:after-vtex":
        vtex_orders: Any = box.standins["vtex"]
        for order_id in order_ids:
            (vtex_id,) = vtex_orders.orders_by_marketplace_id()[order_id]
            assert vtex_orders.order_record(vtex_id)["status"] == "canceled"
    in_vtex = 0 if failpoint == "cancel:after-marketplace" else 1  # rejected orders never go in
    for order_id in order_ids:
        assert vtex_count(box, order_id) == in_vtex  # none twice
        assert rows[order_id]["state"] == ("shipped" if failpoint == "ship:after-marketplace" else expected)
    if failpoint == "cancel:after-marketplace":
        assert {ml.order_record(o)["status"] for o in order_ids} == {"cancelled"}


# -- faults on every side, in process ----------------------------------------------------------


def test_with_faults_on_marketplaces_and_vtex_every_order_lands_once(project: tuple[Sandbox, Path]) -> None:
    box, config = project
    ml: Any = box.standins["mercadolibre"]
    amazon: Any = box.standins["amazon"]
    created = {
        "mercadolibre": [ml.create_order(sku, 1) for sku in listed_skus(config, "mercadolibre")[:5]],
        "amazon": [amazon.create_order(sku, 1) for sku in listed_skus(config, "amazon")[:5]],
    }
    for name, standin in box.standins.items():
        standin.faults = Faults(error_rate=0.1, throttle_rate=0.05, drop_rate=0.05, seed=11)
        standin.random.seed(11 + len(name))
    project_ = load_project(config)
    transports = {name: standin.transport() for name, standin in box.standins.items()}

    def all_ready(state: Any) -> bool:
        store = OrderStore(state)
        return all(
            (stored := store.get(marketplace, order_id)) is not None and stored.state == "ready"
            for marketplace, ids in created.items()
            for order_id in ids
        )

    async def rounds() -> None:
        """Scheduler runs (pull, then push) until every order is in VTEX; at most 10."""
        with open_state(project_) as state:
            for _ in range(10):
                async with order_desks(
                    project_, state, ["mercadolibre", "amazon"], transports=transports
                ) as desks:
                    for desk in desks.values():
                        await desk.pull()
                        await desk.push()
                if all_ready(state):
                    return

    asyncio.run(rounds())
    assert sum(s.throttled for s in box.standins.values()) > 0  # the faults happened
    with open_state(project_) as state:
        store = OrderStore(state)
        for marketplace, ids in created.items():
            for order_id in ids:
                stored = store.get(marketplace, order_id)
                assert stored is not None, f"{marketplace} order {order_id} lost"
                assert stored.state == "ready", (order_id, stored.state, stored.error, stored.decision)
                assert vtex_count(box, order_id) == 1


# -- cancellations both ways, with the real channels -------------------------------------------


def run_orders(config: Path, box: Sandbox, marketplace: str, *steps: str) -> None:
    """Pull and/or push in process, over the stand-ins' transports."""
    project_ = load_project(config)
    transports = {name: standin.transport() for name, standin in box.standins.items()}

    async def go() -> None:
        with open_state(project_) as state:
            async with order_desks(project_, state, [marketplace], transports=transports) as desks:
                for step in steps:
                    summary = await getattr(desks[marketplace], step)()
                    assert summary.exit_code == 0, summary.to_dict()

    asyncio.run(go())


def stored_state(config: Path, marketplace: str, order_id: str) -> Any:
    with open_state(load_project(config)) as state:
        stored = OrderStore(state).get(marketplace, order_id)
    assert stored is not None
    return stored


def bought_and_placed(config: Path, box: Sandbox, marketplace: str) -> tuple[str, str]:
    """A buyer buys one listed SKU; pull and push place it in VTEX. (order id, VTEX order id)"""
    standin: Any = box.standins[marketplace]
    order_id = standin.create_order(listed_skus(config, marketplace)[0], 1)
    run_orders(config, box, marketplace, "pull", "push")
    return order_id, stored_state(config, marketplace, order_id).vtex_order_id


def test_a_buyer_cancelling_on_amazon_cancels_the_vtex_order(project: tuple[Sandbox, Path]) -> None:
    box, config = project
    amazon: Any = box.standins["amazon"]
    vtex: Any = box.standins["vtex"]
    order_id, vtex_id = bought_and_placed(config, box, "amazon")
    assert vtex.order_record(vtex_id)["status"] == "ready-for-handling"

    amazon.set_order_status(order_id, "CANCELLED")
    run_orders(config, box, "amazon", "pull", "push")

    assert stored_state(config, "amazon", order_id).state == "cancelled"
    assert vtex.order_record(vtex_id)["status"] == "canceled"


def test_a_store_cancelling_in_vtex_cancels_on_mercado_libre_with_the_reason(
    project: tuple[Sandbox, Path],
) -> None:
    box, config = project
    ml: Any = box.standins["mercadolibre"]
    vtex: Any = box.standins["vtex"]
    order_id, vtex_id = bought_and_placed(config, box, "mercadolibre")

    vtex.cancel_order_as_store(vtex_id, "out of stock in the warehouse")
    run_orders(config, box, "mercadolibre", "push")

    assert stored_state(config, "mercadolibre", order_id).state == "cancelled"
    assert ml.order_record(order_id)["status"] == "cancelled"
    feedback = json.dumps(ml.feedback, default=str)
    assert "OUT_OF_STOCK" in feedback


def test_a_cancellation_after_invoicing_becomes_a_return(project: tuple[Sandbox, Path]) -> None:
    box, config = project
    amazon: Any = box.standins["amazon"]
    vtex: Any = box.standins["vtex"]
    order_id, vtex_id = bought_and_placed(config, box, "amazon")
    vtex.invoice_order(vtex_id, tracking=False)  # invoiced, not yet handed to a carrier
    run_orders(config, box, "amazon", "push")
    assert stored_state(config, "amazon", order_id).state == "ready"

    amazon.set_order_status(order_id, "CANCELLED")
    run_orders(config, box, "amazon", "pull", "push")

    stored = stored_state(config, "amazon", order_id)
    assert stored.state == "returned"
    assert vtex.order_record(vtex_id)["status"] == "invoiced"  # VTEX keeps it: the return is a new flow


def test_a_second_orders_run_for_a_marketplace_exits_at_once_naming_the_holder(
    project: tuple[Sandbox, Path],
) -> None:
    _, config = project
    with open_state(load_project(config)) as state:
        state.acquire_lock("orders:mercadolibre", "tradepost orders push")  # held by this live process

    blocked = tradepost(config, "orders", "pull", "-m", "mercadolibre")

    assert blocked.returncode == 1
    assert "orders:mercadolibre is locked by tradepost orders push" in blocked.stderr
    assert "Traceback" not in blocked.stderr
