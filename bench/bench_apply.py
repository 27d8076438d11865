"""Apply throughput against a stand-in limited to N requests per second, and requests per changed SKU.

    python bench/bench_apply.py [--rate 40] [--skus 600]

For Google (one request per change) and Mercado Libre (families: one request per family), a
synthetic catalog is planned and applied in process against the stand-in, whose own token
bucket answers 429 beyond N requests per second. Reported: changes applied, requests sent,
requests per changed SKU, throughput as a share of N, and 429s after the first second
(warm-up). Amazon is run above its feed threshold to show a whole run in a handful of
requests. Prints a table and one JSON line per marketplace (``"bench": "apply"``).
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
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from synth import generate  # noqa: E402

import engine  # noqa: E402
from engine.connectors import Credentials, connector_class  # noqa: E402
from engine.model._catalog import CatalogRecord  # noqa: E402
from engine.state._store import StateStore  # noqa: E402
from engine.sync._executor import Executor  # noqa: E402
from engine.sync._plan import Planner  # noqa: E402
from engine.sync._planfile import change_record  # noqa: E402

SETUPS: dict[str, dict[str, Any]] = {
    "google": {
        "standin": "marketplaces.google.standin:GoogleStandin",
        "credentials": {
            "client_id": "sandbox.apps.googleusercontent.com",
            "client_secret": "sandbox-client-secret-not-a-secret",
            "refresh_token": "1//sandbox-refresh-token",
        },
        "options": {"token_url": "http://bench.test"},
    },
    "mercadolibre": {
        "standin": "marketplaces.mercadolibre.standin:MercadoLibreStandin",
        "credentials": {
            "client_id": "1234567890123456",
            "client_secret": "sandbox-client-secret-not-a-secret",
            "refresh_token": "TG-sandbox-refresh-token",
        },
        "options": {},
    },
    "amazon": {
        "standin": "marketplaces.amazon.standin:AmazonStandin",
        "credentials": {
            "lwa_client_id": "amzn1.application-oa2-client.standin",
            "lwa_client_secret": "standin-client-secret",
            "refresh_token": "Atzr|standin-refresh-token",
            "seller_id": "A1SELLER",
        },
        "options": {"lwa_url": "http://bench.test", "seller_id": "A1SELLER", "feed_poll_seconds": "0.05"},
    },
}


def _load(target: str) -> Any:
    module, _, name = target.partition(":")
    return getattr(__import__(module, fromlist=[name]), name)


def bench(marketplace: str, rate: float, skus: int) -> dict[str, Any]:
    setup = SETUPS[marketplace]
    compiled = engine.compile_rules(ROOT / "rules" / f"{marketplace}.yaml")
    connector = connector_class(compiled.marketplace)({**compiled.rules.options, **setup["options"]})
    records = []
    for item in generate(skus, seed=3, broken=False):
        try:
            records.append(CatalogRecord.parse(item))
        except engine.MalformedRecord:
            continue
    planner = Planner(compiled, connector)
    changes = [change_record(c, connector) for c in planner.changes(records) if c.op == "create"]
    standin = _load(setup["standin"])(rate_limit=rate, burst=2.0)  # stricter than any real API's burst
    throttled_after_warmup = 0
    start = time.monotonic()

    def count_429(result: Any) -> None:
        return None

    async def main() -> Any:
        nonlocal throttled_after_warmup
        transport = standin.transport()
        async with httpx.AsyncClient(transport=transport, base_url="http://bench.test") as client:
            with tempfile.TemporaryDirectory() as tmp, StateStore(Path(tmp) / "s.sqlite") as state:
                executor = Executor(
                    connector,
                    client,
                    state,
                    Credentials(dict(setup["credentials"])),
                    rate=rate,
                    on_result=count_429,
                )
                warm = standin.throttled
                summary = await executor.apply(changes)
                throttled_after_warmup = standin.throttled - warm
                return summary

    summary = asyncio.run(main())
    seconds = time.monotonic() - start
    sent = standin.total_requests()
    return {
        "bench": "apply",
        "marketplace": marketplace,
        "rate_limit": rate,
        "changes": len(changes),
        "applied": summary.applied,
        "failed": summary.failed,
        "requests": sent,
        "requests_per_sku": round(sent / max(1, len(changes)), 3),
        "seconds": round(seconds, 2),
        "throughput_share_of_limit": round((sent / seconds) / rate, 3) if seconds else 0.0,
        "429_after_warmup": throttled_after_warmup,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=40.0)
    parser.add_argument("--skus", type=int, default=600)
    args = parser.parse_args()
    header = ("changes", "requests", "req/SKU", "seconds", "of N", "429")
    print(f"{'marketplace':>13} " + " ".join(f"{h:>8}" for h in header))
    results = [
        bench("google", args.rate, args.skus),
        bench("mercadolibre", args.rate, args.skus),
        bench("amazon", args.rate, max(args.skus, 700)),
    ]
    for r in results:
        print(
            f"{r['marketplace']:>13} {r['changes']:>8} {r['requests']:>9} {r['requests_per_sku']:>8} "
            f"{r['seconds']:>8} {r['throughput_share_of_limit']:>6.0%} {r['429_after_warmup']:>5}"
        )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
