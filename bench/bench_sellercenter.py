"""The SellerCenter (Dafiti) connector against its stand-in, at the platform's feed spacing.

    python bench/bench_sellercenter.py [--skus 200] [--minutes 10] [--changes-per-minute 30] [--scale 60]

Feed-creating calls share one budget (API.md §7): 50 at once, then one per 2 minutes; the
stand-in answers 429 beyond it. Time is simulated: stand-in and connector run ``--scale`` times
faster than the documented durations, and durations are reported in documented minutes. The
connector's ``apply_in_bulk`` is driven directly with the change records a plan would hold.

1. first load: ``--skus`` creates in families of 4 (GetProducts, ProductCreate, FeedStatus polls,
   Image, FeedStatus polls);
2. a price change of every SKU (one ProductUpdate);
3. a sync stream with the 50 free feed calls spent: ``--changes-per-minute`` price changes a
   documented minute for ``--minutes``, in batches every 10 documented seconds, each applied at
   once (a batch that finds the feed turn taken defers its changes to the next batch).

Reported: requests and requests per SKU, 429s, minutes; for the stream, the feeds sent against
those the 2-minute rule allows in its duration (the share of the limit used) and the documented
minutes from each price change to the feed that carried it (p50, p95, max). One JSON line
(``"bench": "sellercenter"``) after the table.
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

from engine.connectors import ChangeRecord, Credentials, Listing  # noqa: E402
from marketplaces.sellercenter import DafitiConnector  # noqa: E402
from marketplaces.sellercenter._http import FEED_INTERVAL, FREE_FEED_CALLS  # noqa: E402
from marketplaces.sellercenter.standin import SANDBOX_API_KEY, SANDBOX_USER_ID, SellerCenterStandin  # noqa: E402

FAMILY = 4
BATCH_SECONDS = 10.0
ATTRIBUTES = {"Gender": "Unissex", "Origin": "Nacional", "ColorFamily": "Azul", "Color": "Azul"}


def shoe(n: int, price: Decimal) -> Listing:
    attributes = {**ATTRIBUTES, "OriginCountry": "Brasil", "Variation": str(34 + n % FAMILY)}
    fields = {
        "title": f"Tênis {n // FAMILY}",
        "description": f"Tênis de corrida número {n}",
        "brand": "Pisada",
        "images": [f"https://cdn.example.com/{n}.jpg"],
        "attributes": attributes,
    }
    return Listing(
        f"{n:06d}", str(n // FAMILY), "dafiti", "1010", fields, price, "BRL", 5, group=str(n // FAMILY)
    )


def creates(connector: DafitiConnector, items: list[Listing]) -> list[ChangeRecord]:
    records = []
    for start in range(0, len(items), FAMILY):
        family = items[start : start + FAMILY]
        ids = tuple(item.sku_id for item in family)
        body = connector.family_payload(family)
        for item in family:
            payloads = (body,) if item.sku_id == ids[0] else ()
            records.append(
                ChangeRecord("create", item.sku_id, "dafiti", (), payloads, item.to_dict(), family=ids)
            )
    return records


def repriced(connector: DafitiConnector, item: Listing) -> ChangeRecord:
    before = {"remote_id": item.sku_id}
    return ChangeRecord(
        "update", item.sku_id, "dafiti", ("price",), (connector.price_payload(item),), item.to_dict(), before
    )


async def measure(skus: int, minutes: float, per_minute: int, scale: float) -> dict[str, Any]:
    standin = SellerCenterStandin(time_scale=scale)
    connector = DafitiConnector({"user_id": SANDBOX_USER_ID, "time_scale": str(scale)})
    connector.patience_floor /= scale  # 5 real seconds of patience, as against SellerCenter
    began = time.monotonic()

    def now() -> float:
        """Documented minutes since the start."""
        return (time.monotonic() - began) * scale / 60.0

    report: dict[str, Any] = {}
    async with httpx.AsyncClient(transport=standin.transport(), base_url="http://dafiti.test") as client:
        headers = await connector.auth_headers(client, Credentials({"api_key": SANDBOX_API_KEY}))

        async def apply(name: str, changes: list[ChangeRecord]) -> set[str]:
            requests, refused, start = standin.total_requests(), standin.feed_refusals, now()
            outcomes = await connector.apply_in_bulk(client, headers, changes)
            done = {sku for sku, outcome in outcomes.items() if outcome.ok}
            sent = standin.total_requests() - requests
            report[name] = {
                "changed": len(changes),
                "failed": len(changes) - len(done),
                "requests": sent,
                "requests_per_sku": round(sent / max(1, len(changes)), 4),
                "429s": standin.feed_refusals - refused,
                "minutes": round(now() - start, 2),
            }
            return done

        items = [shoe(n, Decimal("100.00")) for n in range(skus)]
        await apply("first load", creates(connector, items))
        await apply(
            "price of every SKU", [repriced(connector, shoe(n, Decimal("110.00"))) for n in range(skus)]
        )
        # The free calls spent, on both sides; the next feed may go now, the one after 2 minutes later.
        standin.feed_calls, standin.last_feed_call = max(standin.feed_calls, FREE_FEED_CALLS), None
        connector.slots.used = connector.slots.free
        report["stream"] = await stream(connector, standin, minutes, per_minute, scale, now, apply)
        report.pop("stream batch", None)
    return {"bench": "sellercenter", "skus": skus, "scale": scale, "phases": report}


async def stream(
    connector: DafitiConnector,
    standin: SellerCenterStandin,
    minutes: float,
    per_minute: int,
    scale: float,
    now: Any,
    apply: Any,
) -> dict[str, Any]:
    feeds_before, waiting, delays = standin.feed_calls, {}, []
    start, n = now(), 0
    while now() - start < minutes:
        tick = now()
        for _ in range(round(per_minute * BATCH_SECONDS / 60.0)):
            sku = n % max(1, len(standin.products))
            waiting.setdefault(f"{sku:06d}", tick)
            n += 1
        changes = [repriced(connector, shoe(int(sku), Decimal(110 + n % 7))) for sku in waiting]
        for sku in await apply("stream batch", changes):
            delays.append(now() - waiting.pop(sku))
        await asyncio.sleep(max(0.0, BATCH_SECONDS / scale - (now() - tick) * 60.0 / scale))
    feeds = standin.feed_calls - feeds_before
    allowed = int((now() - start) * 60.0 // FEED_INTERVAL) + 1
    ordered = sorted(delays) or [0.0]
    return {
        "changes": n,
        "feeds": feeds,
        "feeds_allowed": allowed,
        "share_of_feed_limit": round(feeds / allowed, 2),
        "429s": standin.feed_refusals,
        "minutes_to_feed": {
            "p50": round(statistics.median(ordered), 2),
            "p95": round(ordered[int(0.95 * (len(ordered) - 1))], 2),
            "max": round(ordered[-1], 2),
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=200)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--changes-per-minute", type=int, default=30)
    parser.add_argument("--scale", type=float, default=60.0)
    args = parser.parse_args()
    result = asyncio.run(measure(args.skus, args.minutes, args.changes_per_minute, args.scale))
    for name, phase in result["phases"].items():
        print(f"{name:20} {json.dumps(phase)}")
    print(json.dumps(result))


if __name__ == "__main__":
    main()
