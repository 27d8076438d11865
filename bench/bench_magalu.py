"""The Magalu connector against its stand-in: requests per SKU and the share of the rate limit used.

    python bench/bench_magalu.py [--records 120] [--rate 5]

A sandbox's Magalu stand-in answers 429 beyond ``--rate`` requests a second (burst 1), and the
project paces the connector at the same rate (Magalu's own figure is unknown: the connector
declares 5/s). The bundled example's first ``--records`` records are planned and applied in
process, three times: the first load (creates: SKU, its review read, price, stock), then every
SKU's price raised 10% (price-only changes), then every SKU's first warehouse set to 7 units
(stock-only changes). Reported per phase: SKUs, requests, requests per SKU, 429s, seconds, and the
share of the limit used (requests / seconds / rate). Prints a table and one JSON line
(``"bench": "magalu"``).
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

from bench.bench_kills import subset  # noqa: E402
from engine.jsonio import dumps  # noqa: E402
from engine.project._apply import apply_records, planned_records  # noqa: E402
from engine.project._assembly import open_marketplace, open_state  # noqa: E402
from engine.project._config import load_project  # noqa: E402
from marketplaces.magalu.standin import MagaluStandin  # noqa: E402
from marketplaces.sandbox import build_sandbox  # noqa: E402


def phase(config: Path, standin: MagaluStandin, name: str, rate: float) -> dict[str, Any]:
    project = load_project(config)
    run = open_marketplace(project, "magalu")
    before, throttled = standin.total_requests(), standin.throttled
    with open_state(project) as state:
        records = planned_records(run, project, state)
        start = time.monotonic()
        summary = asyncio.run(apply_records(run, project, state, records, transport=standin.transport()))
        seconds = time.monotonic() - start
    requests = standin.total_requests() - before
    skus = summary.applied + summary.failed
    return {
        "phase": name,
        "skus": skus,
        "failed": summary.failed,
        "requests": requests,
        "per_sku": round(requests / skus, 2) if skus else 0.0,
        "throttled": standin.throttled - throttled,
        "seconds": round(seconds, 2),
        "share_of_limit": round(requests / seconds / rate, 3) if seconds else 0.0,
    }


def edit(catalog: Path, change: str) -> None:
    records = [json.loads(line) for line in catalog.read_text(encoding="utf-8").splitlines()]
    for record in records:
        selling = str(record["price"].get("selling"))
        if change == "price" and selling.replace(".", "", 1).isdigit():  # the example has malformed ones
            record["price"]["selling"] = round(float(selling) * 1.1, 2)
        else:
            record["stock"]["warehouses"][0].update(quantity=7, reserved=0)
    catalog.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=120)
    parser.add_argument("--rate", type=float, default=5.0)
    options = parser.parse_args(argv)
    records = subset(options.records)
    box = build_sandbox(records, rate_limit=options.rate)
    standin = box.standins["magalu"]
    assert isinstance(standin, MagaluStandin)
    box.ports = {name: 1 for name in box.standins}  # never served: the transport is in process
    rows = []
    with tempfile.TemporaryDirectory(prefix="tradepost-magalu-") as tmp:
        folder = Path(tmp)
        config = box.write_project(folder / "project", ROOT / "rules")
        catalog = folder / "catalog.jsonl"
        catalog.write_text("".join(dumps(r) + "\n" for r in records), encoding="utf-8")
        text = config.read_text(encoding="utf-8").split("\nstate:", 1)[1]
        text = f"source:\n  type: file\n  path: {catalog}\nstate:{text}"
        config.write_text(
            text.replace("    base_url:", f"    rate_limit: {options.rate}\n    base_url:"), "utf-8"
        )
        rows.append(phase(config, standin, "first load", options.rate))
        edit(catalog, "price")
        rows.append(phase(config, standin, "price only", options.rate))
        edit(catalog, "stock")
        rows.append(phase(config, standin, "stock only", options.rate))
    print(f"{'phase':12} {'skus':>5} {'requests':>9} {'per SKU':>8} {'429s':>5} {'seconds':>8} {'share':>6}")
    for row in rows:
        print(
            f"{row['phase']:12} {row['skus']:>5} {row['requests']:>9} {row['per_sku']:>8} "
            f"{row['throttled']:>5} {row['seconds']:>8} {row['share_of_limit']:>6}"
        )
    print(json.dumps({"bench": "magalu", "rate": options.rate, "phases": rows}))


if __name__ == "__main__":
    main()
