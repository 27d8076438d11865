"""Order channels end to end in tests: a marketplace's order desk stand-in, VTEX's stand-in and a
state store, driven as a scheduler drives them, and the SIGKILL scenario every channel must pass.

:class:`OrderFlow` runs the order flow's steps (``pull``, ``push``) once each, in process or over
loopback sockets; :func:`kill_and_recover` kills a run at one of the flow's failpoints
(``tests.test_orders_e2e.STEPS``) in a forked child and checks that the next runs finish the job
with every order exactly once in VTEX. A marketplace's test says only how a customer buys, how the
marketplace cancels, and what its desk must show afterwards.
"""

from __future__ import annotations

import asyncio
import dataclasses
import multiprocessing
import os
import signal
from collections.abc import Callable
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, Generic, TypeVar

import httpx

import engine
from engine.connectors import OrderChannel, source
from engine.orders._flow import OrderDesk
from engine.orders._store import OrderStore, StoredOrder
from engine.state._store import StateStore
from marketplaces._standin import Standin
from marketplaces.sandbox import Sandbox
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin

ORDERS_NOW = datetime(2026, 11, 20, 12, 0, tzinfo=UTC)
"""When an order desk test's :class:`Clock` starts."""
S = TypeVar("S", bound=Standin)
VTEX_KEYS = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}


class Clock:
    """A stand-in's time, moved by hand so update-date filters are exact."""

    def __init__(self, now: datetime = ORDERS_NOW) -> None:
        self.now = now

    def __call__(self) -> datetime:
        return self.now

    def tick(self, minutes: float = 1) -> datetime:
        self.now += timedelta(minutes=minutes)
        return self.now


def plenty_skus(vtex: VtexStandin, count: int = 4, price: Decimal = Decimal("59.90")) -> dict[str, Decimal]:
    """SKUs of the VTEX stand-in's catalog with at least 10 units, each sold on a marketplace at ``price``."""

    def available(sku: Any) -> int:
        return sum(int(b["totalQuantity"]) - int(b["reservedQuantity"]) for b in sku.inventory["balance"])

    plenty = [sku_id for sku_id, sku in vtex.skus.items() if available(sku) >= 10]
    return {sku_id: price for sku_id in plenty[:count]}


def killed_run(run: Callable[[], object], failpoint: str) -> int | None:
    """``run`` in a forked process that SIGKILLs itself at ``failpoint``: its exit code."""

    def child() -> None:
        os.environ["TRADEPOST_FAILPOINT"] = failpoint
        run()

    process = multiprocessing.get_context("fork").Process(target=child)
    process.start()
    process.join(60)
    return process.exitcode


@dataclasses.dataclass
class OrderFlow(Generic[S]):
    """A marketplace's desk stand-in, VTEX's stand-in and a state store in ``folder``.

    ``channel`` makes the marketplace's order channel on a client reaching ``shop``; ``rules`` is
    the rule file whose divergence section decides; ``skus`` are the prices the rules give.
    """

    marketplace: str
    shop: S
    vtex: VtexStandin
    folder: Path
    rules: Path
    skus: dict[str, Decimal]
    channel: Callable[[httpx.AsyncClient], OrderChannel]
    affiliate: str

    def run(self, *steps: str, shop_url: str | None = None, vtex_url: str | None = None) -> list[Any]:
        """Pull and/or push once each, in process or (URLs given) over loopback: their summaries."""
        return asyncio.run(self._steps(steps, shop_url, vtex_url))

    def stored(self, order_id: str) -> StoredOrder:
        with StateStore(self.folder / "state.sqlite") as state:
            stored = OrderStore(state).get(self.marketplace, order_id)
        assert stored is not None
        return stored

    def in_vtex(self, order_id: str) -> list[str]:
        found: list[str] = self.vtex.orders_by_marketplace_id().get(order_id, [])
        return found

    async def _steps(self, steps: tuple[str, ...], shop_url: str | None, vtex_url: str | None) -> list[Any]:
        def client(url: str | None, standin: Standin) -> httpx.AsyncClient:
            transport = None if url else standin.transport()
            return httpx.AsyncClient(transport=transport, base_url=url or "http://standin.test")

        with StateStore(self.folder / "state.sqlite") as state:
            async with client(shop_url, self.shop) as shop, client(vtex_url, self.vtex) as vtex:
                placement = source("vtex").placement(
                    vtex, VTEX_KEYS, affiliate_id=self.affiliate, sales_channel="1"
                )
                desk = OrderDesk(
                    self.marketplace,
                    engine.compile_rules(self.rules),
                    OrderStore(state),
                    self.channel(shop),
                    placement,
                    lambda skus: {sku: self.skus.get(sku) for sku in skus},
                )
                return [await getattr(desk, step)() for step in steps]


def kill_and_recover(
    flow: OrderFlow[Any],
    command: str,
    failpoint: str,
    *,
    buy: Callable[[str, bool], str],
    cancel: Callable[[str], None],
    cancel_rejected: bool = False,
) -> list[str]:
    """Three orders taken to ``failpoint``, a ``command`` killed there, then two scheduler rounds:
    every order once in VTEX (none for rejected ones) and in the state the step leads to. Returns
    the order ids, for the marketplace's own checks.

    ``buy(sku, divergent)`` is a customer's order (divergent: far below the rules' price, so the
    rules reject it); ``cancel(order_id)`` is the marketplace cancelling it; ``cancel_rejected``:
    a rejected order is cancelled on the marketplace by a person (Magalu has no seller cancel),
    so the flow's own cancellation finds it done.
    """
    box = Sandbox({flow.marketplace: flow.shop, "vtex": flow.vtex})
    box.start()
    urls = {"shop_url": box.url(flow.marketplace), "vtex_url": box.url("vtex")}
    try:
        rejected = failpoint == "cancel:after-marketplace"
        order_ids = [buy(sku, rejected) for sku in list(flow.skus)[:3]]
        expected, in_vtex = ("cancelled", 0) if rejected else ("ready", 1)
        if command == "push":
            flow.run("pull", **urls)
        if rejected and cancel_rejected:
            for order_id in order_ids:
                cancel(order_id)
        elif failpoint == "cancel:after-vtex":  # placed, then cancelled on the marketplace
            flow.run("push", **urls)
            for order_id in order_ids:
                cancel(order_id)
            flow.run("pull", **urls)
            expected = "cancelled"
        elif failpoint == "ship:after-marketplace":  # placed, then invoiced in VTEX
            flow.run("push", **urls)
            for order_id in order_ids:
                (vtex_id,) = flow.in_vtex(order_id)
                flow.vtex.invoice_order(vtex_id)
            expected = "shipped"

        nth = 1 if command == "pull" else 2  # a push passes its points once per order: die at the second
        assert killed_run(lambda: flow.run(command, **urls), f"{failpoint}:#{nth}") == -signal.SIGKILL

        flow.run("pull", "push", **urls)  # what the scheduler does next
        flow.run("pull", "push", **urls)  # (a pull killed before storing needs one more round to place)
        for order_id in order_ids:
            assert len(flow.in_vtex(order_id)) == in_vtex, order_id  # none twice, none lost
            assert flow.stored(order_id).state == expected
            if failpoint == "cancel:after-vtex":
                (vtex_id,) = flow.in_vtex(order_id)
                assert flow.vtex.order_record(vtex_id)["status"] == "canceled"
        return order_ids
    finally:
        box.stop()
