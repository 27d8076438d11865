"""Meta catalog apply at its limits: requests per changed SKU, and the share of the batch budget used.

    python bench/bench_meta.py [--skus 20000] [--budget 8] [--changed 0.1] [--poll 1.0]

A synthetic catalog is planned for ``rules/facebook.yaml`` and applied in process against the Meta
stand-in, whose Catalog Batch budget is ``--budget`` ``items_batch`` calls a minute (a third-party
client reports about 8 for a new catalog; Meta does not publish its formula) and which refuses a
call over it with code 80014; the connector is told the same budget. Batches hold at most 2,999
requests (the limit is 5,000, fewer than 3,000 recommended). Two runs: every SKU created, then
``--changed`` of them given a new price (price-only entries). Reported per run: changes, requests
(``items_batch`` calls and status checks), requests per changed SKU, the busiest minute's batch
calls as a share of the budget, 80014 refusals, seconds. A handle finishes on its second status
check (the stand-in's default), checked every ``--poll`` seconds. Prints a table and one JSON line
per run (``"bench": "meta"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import sys
import tempfile
import time
from bisect import bisect_left
from decimal import Decimal
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

import httpx  # noqa: E402
from synth import generate  # noqa: E402

import engine  # noqa: E402
from engine.connectors import Credentials  # noqa: E402
from engine.model._catalog import CatalogRecord  # noqa: E402
from engine.state._store import StateStore  # noqa: E402
from engine.sync._executor import Executor  # noqa: E402
from engine.sync._plan import Planner  # noqa: E402
from engine.sync._planfile import change_record  # noqa: E402
from marketplaces.meta import MetaConnector  # noqa: E402
from marketplaces.meta.standin import SANDBOX_ACCESS_TOKEN, MetaStandin  # noqa: E402

BATCH = "items_batch"
STATUS = "check_batch_request_status"


def busiest_minute(times: list[float]) -> int:
    """The most calls any 60-second window holds (each window starting at a call; times ascending)."""
    return max((bisect_left(times, at + 60.0) - n for n, at in enumerate(times)), default=0)


def catalog(skus: int) -> list[CatalogRecord]:
    """The synthetic catalog without its deliberately broken records (every record parses)."""
    return [CatalogRecord.parse(item) for item in generate(skus, seed=3, broken=False)]


def apply_run(
    name: str,
    standin: MetaStandin,
    connector: MetaConnector,
    state: StateStore,
    changes: list[Any],
    budget: float,
) -> dict[str, Any]:
    before_batches, before_status = standin.requests.copy(), standin.batch_calls
    refused = standin.refused_for_usage
    start = time.monotonic()

    async def main() -> Any:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://graph.test") as client:
            executor = Executor(
                connector,
                client,
                state,
                Credentials({"access_token": SANDBOX_ACCESS_TOKEN}),
                rate=connector.rate_limit,
            )
            return await executor.apply(changes)

    summary = asyncio.run(main())
    seconds = time.monotonic() - start
    calls = {
        kind: sum(n for call, n in standin.requests.items() if call.endswith(kind))
        for kind in (BATCH, STATUS)
    }
    earlier = {
        kind: sum(n for call, n in before_batches.items() if call.endswith(kind)) for kind in (BATCH, STATUS)
    }
    batches, statuses = calls[BATCH] - earlier[BATCH], calls[STATUS] - earlier[STATUS]
    run_log = standin.batch_log[before_status:]
    return {
        "bench": "meta",
        "run": name,
        "changes": len(changes),
        "applied": summary.applied,
        "failed": summary.failed,
        "items_batch_calls": batches,
        "status_checks": statuses,
        "requests": batches + statuses,
        "requests_per_sku": round((batches + statuses) / max(1, len(changes)), 5),
        "busiest_minute_batch_calls": busiest_minute(run_log),
        "share_of_batch_budget": round(busiest_minute(run_log) / budget, 3),
        "refused_80014": standin.refused_for_usage - refused,
        "seconds": round(seconds, 1),
    }


def bench(skus: int, budget: float, changed: float, poll: float) -> list[dict[str, Any]]:
    compiled = engine.compile_rules(ROOT / "rules" / "facebook.yaml")
    standin = MetaStandin(batch_calls_per_minute=budget)
    options = {
        **compiled.rules.options,
        "catalog_id": standin.catalog_id,
        "batch_calls_per_minute": str(budget),
        "poll_seconds": str(poll),
    }
    connector = MetaConnector(options)
    planner = Planner(compiled, connector)
    records = catalog(skus)
    creates = [change_record(c, connector) for c in planner.changes(records) if c.op == "create"]
    rows = []
    with tempfile.TemporaryDirectory() as tmp, StateStore(Path(tmp) / "s.sqlite") as state:
        rows.append(apply_run("create", standin, connector, state, creates, budget))
        step = max(1, round(1 / changed)) if changed else 0
        repriced = []
        for n, record in enumerate(records):
            if step and n % step == 0:
                raised = {key: value + Decimal("1.00") for key, value in _prices(record).items()}
                repriced.append(record.model_copy(update={"price": record.price.model_copy(update=raised)}))
            else:
                repriced.append(record)
        replanner = Planner(compiled, connector, state)
        updates = [change_record(c, connector) for c in replanner.changes(repriced) if c.op == "update"]
        rows.append(apply_run("price update", standin, connector, state, updates, budget))
    return rows


def _prices(record: CatalogRecord) -> dict[str, Decimal]:
    """The record's prices that are set (selling, list, promotional): all raised, so the listing's
    price moves whatever the rule file reads."""
    return {
        key: value
        for key in ("selling", "list", "promotional")
        if isinstance(value := getattr(record.price, key), Decimal)
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=20000)
    parser.add_argument("--budget", type=float, default=8.0, help="items_batch calls a minute")
    parser.add_argument("--changed", type=float, default=0.1, help="share of SKUs repriced in the second run")
    parser.add_argument("--poll", type=float, default=1.0, help="seconds between status checks")
    args = parser.parse_args()
    rows = bench(args.skus, args.budget, args.changed, args.poll)
    header = ("changes", "batches", "checks", "req/SKU", "of budget", "80014", "seconds")
    print(f"{'run':>13} " + " ".join(f"{h:>9}" for h in header))
    for row in rows:
        values = (
            row["changes"],
            row["items_batch_calls"],
            row["status_checks"],
            row["requests_per_sku"],
            row["share_of_batch_budget"],
            row["refused_80014"],
            row["seconds"],
        )
        print(f"{row['run']:>13} " + " ".join(f"{v:>9}" for v in values))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
