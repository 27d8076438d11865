"""`tradepost report`: the KPIs of a scripted sandbox session, checked against figures worked out by hand.

The session (once per backend, SQLite and PostgreSQL): Amazon's listings applied, Carrefour's
applied with every request failing; five Amazon orders bought on its stand-in and taken through
the real order flow into VTEX's stand-in: one shipped (two units), one cancelled by the buyer,
one cancelled after VTEX invoiced it (a return), one 30% under our price (held), one for a SKU
VTEX has run out of (oversold); a notification one marketplace has finished. Every KPI is then
asserted against what the script did, through ``--json``; the other outputs show the same figures.
"""

from __future__ import annotations

import asyncio
import json
import re
import time
from dataclasses import dataclass
from decimal import ROUND_HALF_UP, Decimal
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest

from engine.orders import OrderStore
from engine.project import load_project, open_state
from engine.project._order_desks import order_desks
from engine.state import NotificationQueue
from engine.state._queue import Change
from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests import _postgres
from tests._harness import Loopback, run_apply, subset, tradepost, write_project
from tests.test_state_contract import server as server  # the PostgreSQL fixture, per worker

CENT = Decimal("0.01")


@dataclass
class Session:
    box: Sandbox
    config: Path
    orders: dict[str, str]
    """Role (shipped, cancelled, returned, held, oversold) -> Amazon order id."""
    applied: int
    carrefour_failed: int
    started: float

    def tradepost(self, *args: str) -> tuple[int, str, str]:
        return tradepost(*args, "-c", str(self.config))

    def report(self, *args: str) -> dict[str, Any]:
        code, out, err = self.tradepost("report", "--json", *args)
        assert code == 0, err
        document: dict[str, Any] = json.loads(out)
        return document

    def stored(self) -> dict[str, Any]:
        with open_state(load_project(self.config)) as state:
            return {o.order_id: o for o in OrderStore(state).select(["amazon"])}


def run_orders(session_box: Sandbox, config: Path, *steps: str) -> None:
    project = load_project(config)
    transports = {name: standin.transport() for name, standin in session_box.standins.items()}

    async def go() -> None:
        with open_state(project) as state:
            async with order_desks(project, state, ["amazon"], transports=transports) as desks:
                for step in steps:
                    await getattr(desks["amazon"], step)()

    asyncio.run(go())


def listed(config: Path) -> list[str]:
    with open_state(load_project(config)) as state:
        rows = state.db.execute(
            "SELECT sku_id FROM listings WHERE marketplace = 'amazon' AND quantity >= 2 ORDER BY sku_id"
        )
        return [str(row[0]) for row in rows]


def scripted_session(box: Sandbox, config: Path) -> Session:
    started = time.time()
    applied = run_apply(config, "amazon", box).applied
    carrefour = run_apply(config, "carrefour", box, faults=Faults(error_rate=1.0))
    amazon: Any = box.standins["amazon"]
    vtex: Any = box.standins["vtex"]
    skus = listed(config)
    orders = {
        "shipped": amazon.create_order(skus[0], 2),
        "cancelled": amazon.create_order(skus[1], 1),
        "returned": amazon.create_order(skus[2], 1),
    }
    run_orders(box, config, "pull", "push")
    placed = {o.order_id: o.vtex_order_id for o in _stored(config).values()}
    vtex.invoice_order(placed[orders["shipped"]])
    vtex.invoice_order(placed[orders["returned"]], tracking=False)  # invoiced, not yet with a carrier
    amazon.set_order_status(orders["cancelled"], "CANCELLED")
    run_orders(box, config, "pull", "push")
    amazon.set_order_status(orders["returned"], "CANCELLED")  # the buyer cancels after VTEX invoiced
    cheaper = _listed_price(config, skus[3]) * Decimal("0.9")  # beyond approve_within, within hold_within
    orders["held"] = amazon.create_order(skus[3], 1, unit_price=cheaper)
    for balance in vtex.skus[skus[4]].inventory["balance"]:  # VTEX runs out after the listing was sent
        balance["totalQuantity"] = balance["reservedQuantity"]
    vtex.skus[skus[4]].available = 0
    orders["oversold"] = amazon.create_order(skus[4], 1)
    run_orders(box, config, "pull", "push")
    with open_state(load_project(config)) as state, NotificationQueue(state) as queue:
        queue.enqueue(skus[0], Change.STOCK, "2026-12-01T00:00:00Z")
        queue.done(queue.take(10), "amazon", ["amazon", "mercadolibre"])  # Mercado Libre still to do
    return Session(box, config, orders, applied, carrefour.failed, started)


def _listed_price(config: Path, sku: str) -> Decimal:
    with open_state(load_project(config)) as state:
        (price,) = state.db.execute(
            "SELECT price FROM listings WHERE marketplace = 'amazon' AND sku_id = ?", (sku,)
        ).fetchone()
    return Decimal(price)


def _stored(config: Path) -> dict[str, Any]:
    with open_state(load_project(config)) as state:
        return {o.order_id: o for o in OrderStore(state).select(["amazon"])}


@pytest.fixture(params=["sqlite", "postgresql"])
def session(
    request: pytest.FixtureRequest, loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Session:
    box = loopback.sandbox(subset(20))
    config = write_project(box, tmp_path / "project")
    if request.param == "postgresql":
        pg: _postgres.Server = request.getfixturevalue("server")
        monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
        url = pg.url(pg.database(), "env:TRADEPOST_TEST_PG")
        text = config.read_text(encoding="utf-8")
        config.write_text(re.sub(r"(?m)^state:.*$", f"state: {url}", text), encoding="utf-8")
    return scripted_session(box, config)


def _events(config: Path, event: str) -> dict[str, float]:
    """Order -> when ``event`` first happened to it, read straight from order_events."""
    with open_state(load_project(config)) as state:
        rows = state.db.execute(
            "SELECT order_id, at FROM order_events WHERE marketplace = 'amazon' AND event = ? ORDER BY at",
            (event,),
        ).fetchall()
    found: dict[str, float] = {}
    for order_id, at in rows:
        found.setdefault(str(order_id), float(at))
    return found


def _quantities(config: Path, marketplace: str) -> list[int]:
    with open_state(load_project(config)) as state:
        rows = state.db.execute("SELECT quantity FROM listings WHERE marketplace = ?", (marketplace,))
        return [int(row[0]) for row in rows]


def test_every_kpi_of_a_scripted_session_is_the_figure_worked_out_by_hand(session: Session) -> None:
    document = session.report("-m", "amazon", "-m", "carrefour")
    assert list(document["marketplaces"]) == ["amazon", "carrefour"]
    amazon, carrefour = document["marketplaces"]["amazon"], document["marketplaces"]["carrefour"]
    stored = session.stored()
    role = {order_id: name for name, order_id in session.orders.items()}
    assert {role[o.order_id]: o.state for o in stored.values()} == {
        "shipped": "shipped",
        "cancelled": "cancelled",
        "returned": "returned",
        "held": "held",
        "oversold": "approved",  # VTEX refused it: it waits, with the error, for a person or stock
    }

    quantities = _quantities(session.config, "amazon")
    assert amazon["products"] == {
        "exported": session.applied,
        "active": sum(1 for q in quantities if q > 0),
        "out_of_stock": sum(1 for q in quantities if q == 0),
        "pending": 0,
        "with_errors": 0,
        "invalid": 0,
        "apply_runs": 1,
        "applied": session.applied,
        "failed": 0,
        "sync_success_rate": 1.0,
    }
    assert len(quantities) == session.applied > 5
    failed = session.carrefour_failed
    assert failed > 0
    assert carrefour["products"] | {"sync_success_rate": None} == {
        "exported": 0,
        "active": 0,
        "out_of_stock": 0,
        "pending": 0,
        "with_errors": failed,
        "invalid": 0,
        "apply_runs": 1,
        "applied": 0,
        "failed": failed,
        "sync_success_rate": None,
    }
    assert carrefour["products"]["sync_success_rate"] == 0.0

    orders = amazon["orders"]
    today = time.strftime("%Y-%m-%d", time.gmtime())
    assert orders["received"] == 5 and orders["per_day"][today] == 5 and sum(orders["per_day"].values()) == 5
    assert len(orders["per_day"]) in (8, 9)  # every day of the 7-day window, today included
    assert orders["by_state"] == {"approved": 1, "cancelled": 1, "held": 1, "returned": 1, "shipped": 1}
    assert (orders["cancelled"], orders["cancellation_rate"], orders["returned"], orders["held"]) == (
        1,
        0.2,
        1,
        1,
    )
    assert orders["oversold"] == amazon["inventory"]["oversold_orders"] == 1
    assert orders["divergence_decisions"] == {"approve": 4, "hold": 1}
    totals = [o.order.total for o in stored.values()]
    assert orders["average_order_value"] == str((sum(totals) / 5).quantize(CENT, ROUND_HALF_UP))
    assert orders["currency"] == "USD"

    received = {o.order_id: o.received_at for o in stored.values()}
    placed = _events(session.config, "placed in VTEX")
    assert set(placed) == {session.orders[r] for r in ("shipped", "cancelled", "returned")}
    waits = [placed[o] - received[o] for o in placed]
    assert orders["to_vtex_placement"]["count"] == 3
    assert orders["to_vtex_placement"]["mean_seconds"] == pytest.approx(sum(waits) / 3, abs=0.001)
    assert orders["to_vtex_placement"]["longest_seconds"] == pytest.approx(max(waits), abs=0.001)
    shipped = _events(session.config, "every item shipped and confirmed")
    assert list(shipped) == [session.orders["shipped"]]
    wait = shipped[session.orders["shipped"]] - received[session.orders["shipped"]]
    assert orders["to_shipment"]["count"] == 1
    assert orders["to_shipment"]["median_seconds"] == pytest.approx(wait, abs=0.001)

    lag = amazon["inventory"]["stock_sync_lag"]
    assert lag["count"] == 1 and 0 <= lag["mean_seconds"] < 60
    assert carrefour["inventory"]["stock_sync_lag"]["count"] == 0
    assert amazon["inventory"]["out_of_stock"] == amazon["products"]["out_of_stock"]

    (item,) = stored[session.orders["shipped"]].order.items  # the one order in VTEX and not undone
    assert item.quantity == 2
    revenue = stored[session.orders["shipped"]].order.total
    commission = (item.unit_price * 2 * Decimal("0.15")).quantize(CENT, ROUND_HALF_UP)  # amazon.yaml's 15%
    assert amazon["financial"] == {
        "revenue": str(revenue),
        "items_value": str(item.unit_price * 2),
        "commission": str(commission),
        "margin": str(revenue - commission),
        "margin_rate": round(float((revenue - commission) / revenue), 4),
        "currency": "USD",
        "fees": amazon["financial"]["fees"],
    }
    assert (
        amazon["financial"]["fees"].startswith("15% of the item price (")
        and "amazon.yaml:" in amazon["financial"]["fees"]
    )
    assert carrefour["financial"]["revenue"] == "0.00" and carrefour["financial"]["commission"] == "0.00"
    assert any("cost of goods" in sentence for sentence in document["not_recorded"])
    assert set(document) == {"since", "until", "marketplaces", "not_recorded"}
    assert set(amazon) == {"products", "orders", "inventory", "financial"}

    later = session.report("-m", "amazon", "--since", "1s")  # a window after the session: no orders
    time.sleep(1.1)
    assert (
        session.report("-m", "amazon", "--since", "1s")["marketplaces"]["amazon"]["orders"]["received"] == 0
    )
    assert later["marketplaces"]["amazon"]["products"]["exported"] == session.applied  # listings: as now

    _same_figures_in_lines_and_html(session, amazon)


class _Page(HTMLParser):
    """Every tag and the URL attributes of an HTML page."""

    def __init__(self) -> None:
        super().__init__()
        self.tags: list[str] = []
        self.urls: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.append(tag)
        self.urls += [value or "" for name, value in attrs if name in ("src", "href", "xlink:href")]


def _same_figures_in_lines_and_html(session: Session, amazon: dict[str, Any]) -> None:
    code, out, err = session.tradepost("report", "-m", "amazon")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[0].startswith("report\t")
    assert "amazon\torders\treceived\t5" in lines
    assert "amazon\torders\treturned\t1" in lines
    assert "amazon\tinventory\toversold orders\t1" in lines
    assert f"amazon\tfinancial\trevenue\t{amazon['financial']['revenue']} USD" in lines
    assert any(line.startswith("not recorded\t") for line in lines)

    page_file = session.config.parent / "report.html"
    code, out, err = session.tradepost("report", "-m", "amazon", "-m", "carrefour", "--html", str(page_file))
    assert code == 0, err
    assert str(page_file) in out
    html = page_file.read_text(encoding="utf-8")
    page = _Page()
    page.feed(html)
    page.close()
    assert html.startswith("<!DOCTYPE html>") and page.tags.count("html") == 1
    assert "script" not in page.tags and "link" not in page.tags and "img" not in page.tags
    assert [url for url in page.urls if re.match(r"\s*(https?:)?//", url)] == []
    assert "@import" not in html and "url(" not in html
    assert page.tags.count("svg") == 5
    for figure in (
        amazon["financial"]["revenue"],
        amazon["financial"]["commission"],
        amazon["financial"]["margin"],
    ):
        assert f"{figure} USD" in html
    assert ">amazon<" in html and ">carrefour<" in html


def test_json_and_html_are_alternatives_and_the_window_is_checked(loopback: Loopback, tmp_path: Path) -> None:
    config = write_project(loopback.sandbox(subset(2)), tmp_path / "project")
    code, _, err = tradepost("report", "--json", "--html", str(tmp_path / "r.html"), "-c", str(config))
    assert code == 2 and "alternatives" in err
    code, _, err = tradepost("report", "--since", "a week", "-c", str(config))
    assert code == 2 and "7d" in err
    assert not (tmp_path / "r.html").exists()
