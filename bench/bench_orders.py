"""Order import throughput and requests per order, against the stand-ins.

    python bench/bench_orders.py [--orders 200] [--latency 0.1] [--concurrency 4]
        [--marketplace mercadolibre|amazon|carrefour|magalu|dafiti|netshoes]

A sandbox (VTEX and marketplace stand-ins) is seeded with the bundled example, the
marketplace's listings are applied, then ``--orders`` orders are bought on the stand-in
(one unit each, round-robin over the listed SKUs with stock). Measured, in process: the
pull (read and decide every order: one catalog read of the ordered SKUs and their
siblings), the first push (placement in VTEX and dispatch authorization), then, after VTEX
invoices every order, the second push (shipment confirmed on the marketplace). Reported:
seconds and orders per second per phase, and requests per order to the marketplace and to
VTEX. ``--latency`` makes every stand-in answer take that long (a real API is a network away),
to show what ``--concurrency`` (orders pushed side by side) buys. Prints a table and one JSON
line (``"bench": "orders"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.orders._flow import approve  # noqa: E402
from engine.orders._store import OrderStore  # noqa: E402
from engine.project._apply import apply_records, planned_records  # noqa: E402
from engine.project._assembly import open_marketplace, open_state  # noqa: E402
from engine.project._config import load_project  # noqa: E402
from engine.project._order_desks import order_desks  # noqa: E402
from marketplaces._standin import Faults  # noqa: E402
from marketplaces.sandbox import build_sandbox, read_catalog  # noqa: E402


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--orders", type=int, default=200)
    parser.add_argument(
        "--marketplace",
        default="mercadolibre",
        choices=["mercadolibre", "amazon", "carrefour", "magalu", "dafiti", "netshoes"],
    )
    parser.add_argument("--latency", type=float, default=0.0, help="Seconds every stand-in answer takes.")
    parser.add_argument("--concurrency", type=int, default=4, help="Orders pushed side by side.")
    args = parser.parse_args()
    name = args.marketplace

    box = build_sandbox(read_catalog(ROOT / "examples" / "catalog.jsonl"))
    box.start()
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = box.write_project(Path(folder) / "project", ROOT / "rules")
            result = run(box, config, name, args.orders, args.latency, args.concurrency)
    finally:
        box.stop()
    print(f"{'phase':<10} {'seconds':>8} {'orders/s':>9} {name + ' req/order':>22} {'VTEX req/order':>15}")
    for phase in ("pull", "place", "ship"):
        row = result[phase]
        print(
            f"{phase:<10} {row['seconds']:>8.2f} {row['orders_per_second']:>9.1f} "
            f"{row['marketplace_requests_per_order']:>22.2f} {row['vtex_requests_per_order']:>15.2f}"
        )
    print(json.dumps({"bench": "orders", "marketplace": name, "orders": args.orders, **result}))


def run(box: Any, config: Path, name: str, count: int, latency: float, concurrency: int) -> dict[str, Any]:
    project = load_project(config)
    marketplace, vtex = box.standins[name], box.standins["vtex"]
    transports = {n: s.transport() for n, s in box.standins.items()}
    with open_state(project) as state:
        listing_run = open_marketplace(project, name)
        records = planned_records(listing_run, project, state)
        summary = asyncio.run(apply_records(listing_run, project, state, records, transport=transports[name]))
        if summary.failed and not summary.applied:
            raise SystemExit(f"listing failed: {summary.failures[:3]}")
        skus = [
            str(row[0])
            for row in state.db.execute(
                "SELECT sku_id FROM listings WHERE marketplace = ? AND quantity >= 5 ORDER BY sku_id", (name,)
            )
        ]
    # Mirakl, Magalu, SellerCenter and Netshoes: the order desk the stand-in carries
    buyers = marketplace.order_desk if name in ("carrefour", "magalu", "dafiti", "netshoes") else marketplace
    created = [buyers.create_order(skus[i % len(skus)], 1) for i in range(count)]
    for standin in (marketplace, vtex):
        standin.faults = Faults(slow_rate=1.0 if latency else 0.0, slow_seconds=latency)
    result: dict[str, Any] = {"latency": latency, "concurrency": concurrency, "not_listed": summary.failed}

    async def phase(label: str, step: str) -> None:
        before = (marketplace.total_requests(), vtex.total_requests())
        started = time.perf_counter()
        with open_state(project) as state:
            async with order_desks(project, state, [name], transports=transports) as desks:
                desks[name].concurrency = concurrency
                outcome = await getattr(desks[name], step)()
        seconds = time.perf_counter() - started
        if outcome.exit_code:
            raise SystemExit(f"{label} failed: {json.dumps(outcome.to_dict())[:500]}")
        result[label] = {
            "seconds": round(seconds, 3),
            "orders_per_second": round(count / seconds, 1),
            "marketplace_requests_per_order": round((marketplace.total_requests() - before[0]) / count, 2),
            "vtex_requests_per_order": round((vtex.total_requests() - before[1]) / count, 2),
        }

    asyncio.run(phase("pull", "pull"))
    with open_state(project) as state:  # a reviewer approves what max_order_value held
        store = OrderStore(state)
        result["held"] = 0
        for stored in list(store.select([name], ["held"])):
            approve(store, stored, "bench")
            result["held"] += 1
    asyncio.run(phase("place", "push"))
    placed = vtex.orders_by_marketplace_id()
    missing = [order_id for order_id in created if order_id not in placed]
    if missing:
        with open_state(project) as state:
            rows = state.db.execute("SELECT order_id, state, decision FROM orders WHERE state != 'ready'")
            raise SystemExit(f"{len(missing)} orders not in VTEX: {rows.fetchall()[:3]}")
    for order_id in created:
        for vtex_id in placed[order_id]:
            vtex.invoice_order(vtex_id)
    asyncio.run(phase("ship", "push"))
    return result


if __name__ == "__main__":
    main()
