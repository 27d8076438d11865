"""The Mirakl (Carrefour) connector against its stand-in at Mirakl's documented call frequencies.

    python bench/bench_mirakl.py [--skus 500] [--minutes 10] [--changes-per-minute 30] [--scale 60]

The stand-in enforces each operation's "Maximum usage" (P41 once per 15 minutes, OF01, PRI01,
STO01 and the status polls once a minute, STO02 every 15 s) and answers 429 beyond it. Time is
simulated: the stand-in and the connector both run ``--scale`` times faster than the documented
frequencies (60 by default: a documented minute lasts 1 s; 600, as in the sandbox, is at the mercy of
the machine's load), and every duration below is reported in
documented minutes (real seconds x scale / 60). The connector's ``apply_in_bulk`` is driven directly
with the change records a plan would hold (planning is not what this measures). Three phases:

1. first load: ``--skus`` creates (P31, P41, P42 polls until catalogued, P45, OF01, OF02);
2. a price change of every SKU in one apply (PRI01, PRI02);
3. a sync stream: ``--changes-per-minute`` price changes a documented minute for ``--minutes``,
   arriving in batches every 10 documented seconds, each batch applied at once (``max_wait_seconds``
   0, the default: a sync batch never waits for a slot; a change that finds PRI01's slot taken is
   deferred, retried with the next batch, and goes in the next allowed import).

Reported per phase: requests, requests per changed SKU, 429s, documented minutes; for the stream,
the share of PRI01's limit used (imports sent over the imports the minute-rule allows in the
stream's duration) and the minutes from each price change to the PRI01 import that carried it
(p50, p95, max). Prints a table and one JSON line (``"bench": "mirakl"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
import sys
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import httpx  # noqa: E402

from engine.connectors import ChangeRecord, Listing  # noqa: E402
from marketplaces.mirakl import CarrefourConnector  # noqa: E402
from marketplaces.mirakl._http import auth_headers  # noqa: E402
from marketplaces.mirakl.standin import SANDBOX_API_KEY, MiraklStandin  # noqa: E402

BATCH_EVERY = 10.0
"""Documented seconds between two sync batches."""


def ean(n: int) -> str:
    body = f"789{n:09d}"
    total = sum(int(d) * (3 if i % 2 == 0 else 1) for i, d in enumerate(reversed(body)))
    return body + str((10 - total % 10) % 10)


def listing(n: int, price: Decimal) -> Listing:
    fields = {
        "title": f"Produto {n}",
        "description": f"Produto de teste {n}",
        "brand": "Aurora",
        "gtin": ean(n),
        "images": [f"https://cdn.example.com/{n}.jpg"],
        "weight": 500,
        "height": 10,
        "width": 20,
        "length": 30,
        "attributes": {"regulatory_certificate": "Não se aplica"},
    }
    return Listing(str(n), str(n), "carrefour", "casa/panelas", fields, price, "BRL", 10)


def create(connector: CarrefourConnector, item: Listing) -> ChangeRecord:
    return ChangeRecord("create", item.sku_id, "carrefour", (), (connector.payload(item),), item.to_dict())


def price_change(connector: CarrefourConnector, item: Listing, remote: str | None) -> ChangeRecord:
    before = {"remote_id": remote}
    body = connector.price_payload(item)
    return ChangeRecord("update", item.sku_id, "carrefour", ("price",), (body,), item.to_dict(), before)


class Clock:
    """Documented time, from the real clock and the scale."""

    def __init__(self, scale: float) -> None:
        self.scale, self.start = scale, time.monotonic()

    def minutes(self) -> float:
        return (time.monotonic() - self.start) * self.scale / 60.0


async def run(skus: int, minutes: float, per_minute: int, scale: float) -> dict[str, Any]:
    standin = MiraklStandin(time_scale=scale, catalogue_polls=2)
    options = {"time_scale": str(scale), "shop_id": "2000"}
    connector = CarrefourConnector(options)
    connector.patience_floor /= scale  # as against Mirakl: 5 s waited for a slot, not 5 scaled minutes
    headers = auth_headers(SANDBOX_API_KEY)
    clock = Clock(scale)
    phases: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=standin.transport(), base_url="http://mirakl.test") as client:

        async def phase(name: str, changes: list[ChangeRecord]) -> dict[str, Any]:
            before, refused, start = standin.total_requests(), standin.frequency_refusals, clock.minutes()
            outcomes = await connector.apply_in_bulk(client, headers, changes)
            failed = [sku for sku, outcome in outcomes.items() if not outcome.ok]
            requests = standin.total_requests() - before
            phases[name] = {
                "changed": len(changes),
                "failed": len(failed),
                "requests": requests,
                "requests_per_sku": round(requests / max(1, len(changes)), 4),
                "429s": standin.frequency_refusals - refused,
                "minutes": round(clock.minutes() - start, 2),
            }
            return {sku: outcome.remote_id for sku, outcome in outcomes.items() if outcome.ok}

        items = [listing(n, Decimal("100.00")) for n in range(1, skus + 1)]
        remote = await phase("first load", [create(connector, item) for item in items])
        items = [listing(n, Decimal("110.00")) for n in range(1, skus + 1)]
        await phase(
            "price of every SKU", [price_change(connector, item, remote.get(item.sku_id)) for item in items]
        )
        phases["stream"] = await stream(
            connector, client, headers, clock, standin, remote, minutes, per_minute
        )
    return {"bench": "mirakl", "skus": skus, "scale": scale, "phases": phases}


async def stream(
    connector: CarrefourConnector,
    client: httpx.AsyncClient,
    headers: dict[str, str],
    clock: Clock,
    standin: MiraklStandin,
    remote: dict[str, str | None],
    minutes: float,
    per_minute: int,
) -> dict[str, Any]:
    """Price changes arriving every :data:`BATCH_EVERY` documented seconds, applied batch by batch."""
    per_batch = max(1, round(per_minute * BATCH_EVERY / 60.0))
    skus = sorted(remote, key=int)
    waiting: dict[str, tuple[float, Listing]] = {}
    latencies: list[float] = []
    before, refused, uploads_before = standin.total_requests(), standin.frequency_refusals, _uploads(standin)
    start, changed, n, batches = clock.minutes(), 0, 0, int(minutes * 60 / BATCH_EVERY)
    arrived = 0
    while arrived < batches or waiting:
        # Every batch due by now arrives, stamped with its own time (an apply that took long
        # finds several waiting, as a sync worker would).
        while arrived < batches and start + arrived * BATCH_EVERY / 60 <= clock.minutes():
            for _ in range(per_batch):
                sku = skus[n % len(skus)]
                n += 1
                due = start + arrived * BATCH_EVERY / 60
                waiting.setdefault(sku, (due, listing(int(sku), Decimal(120 + n % 50))))
                changed += 1
            arrived += 1
        changes = [price_change(connector, item, remote.get(sku)) for sku, (_, item) in waiting.items()]
        outcomes = await connector.apply_in_bulk(client, headers, changes)
        for sku, outcome in outcomes.items():
            if outcome.ok:
                latencies.append(clock.minutes() - waiting.pop(sku)[0])
        await asyncio.sleep(BATCH_EVERY / clock.scale)
    duration = clock.minutes() - start
    uploads = _uploads(standin) - uploads_before
    latencies.sort()
    return {
        "changed": changed,
        "requests": standin.total_requests() - before,
        "requests_per_sku": round((standin.total_requests() - before) / max(1, changed), 4),
        "429s": standin.frequency_refusals - refused,
        "minutes": round(duration, 2),
        "pri01_imports": uploads,
        "pri01_limit_share": round(uploads / max(1.0, duration), 3),
        "change_to_import_minutes": {
            "p50": round(statistics.median(latencies), 2),
            "p95": round(latencies[int(0.95 * (len(latencies) - 1))], 2),
            "max": round(latencies[-1], 2),
        },
    }


def _uploads(standin: MiraklStandin) -> int:
    """PRI01 imports the stand-in accepted (429s excluded)."""
    return standin.requests["POST /api/offers/pricing/imports"] - standin.refused["PRI01"]


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--skus", type=int, default=500)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--changes-per-minute", type=int, default=30)
    parser.add_argument("--scale", type=float, default=60.0)
    options = parser.parse_args(argv)
    result = asyncio.run(run(options.skus, options.minutes, options.changes_per_minute, options.scale))
    print(f"{'phase':22} {'changed':>8} {'requests':>9} {'req/SKU':>8} {'429s':>5} {'minutes':>8}")
    for name, row in result["phases"].items():
        print(
            f"{name:22} {row['changed']:>8} {row['requests']:>9} {row['requests_per_sku']:>8} "
            f"{row['429s']:>5} {row['minutes']:>8}"
        )
    stream = result["phases"]["stream"]
    latency = stream["change_to_import_minutes"]
    print(
        f"stream: {stream['pri01_imports']} PRI01 imports in {stream['minutes']} documented minutes "
        f"({stream['pri01_limit_share']:.0%} of the once-a-minute limit); price change -> its import: "
        f"p50 {latency['p50']} min, p95 {latency['p95']} min, max {latency['max']} min"
    )
    print(json.dumps(result))


if __name__ == "__main__":
    main()
