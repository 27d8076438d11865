"""`tradepost state rebuild` cost: requests per listing read back, and the plan it leaves.

    python bench/bench_rebuild.py [--skus 2000] [--marketplace google ...]

For each marketplace, a synthetic catalog (``synth.py``, no broken records) is served by the
VTEX stand-in and applied to the marketplace's stand-in in process; then the state store is
deleted and rebuilt from the stand-in. Reported: listings rebuilt, requests the rebuild made
(besides the token), requests per listing, seconds, and the changes the next plan finds
(must be 0: the rebuild recorded exactly what the marketplace holds). The stand-ins page as
the real APIs do: Mercado Libre 100 ids per scan page and 20 items per multiget, Amazon 20
listings per page, Google 1,000 products per page. Prints a table and one JSON line per
marketplace (``"bench": "rebuild"``).
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

from synth import generate  # noqa: E402

from engine.project._apply import apply_records, planned_records  # noqa: E402
from engine.project._assembly import catalog_records, open_marketplace, open_state  # noqa: E402
from engine.project._config import load_project  # noqa: E402
from engine.project._rebuild import rebuild_state  # noqa: E402
from marketplaces.sandbox import build_sandbox  # noqa: E402

MARKETPLACES = ("mercadolibre", "amazon", "google")


def bench(skus: int, marketplaces: tuple[str, ...]) -> list[dict[str, Any]]:
    box = build_sandbox(list(generate(skus, broken=False)))
    box.start()
    results = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            config = box.write_project(Path(folder) / "project", ROOT / "rules")
            text = config.read_text(encoding="utf-8")
            for name in MARKETPLACES:  # the stand-ins do not limit: send as fast as the engine goes
                text = text.replace(f"  {name}:\n", f"  {name}:\n    rate_limit: 1000\n")
            config.write_text(text, encoding="utf-8")
            for name in marketplaces:
                results.append(_one(config, name, box))
    finally:
        box.stop()
    return results


def _one(config: Path, name: str, box: Any) -> dict[str, Any]:
    project = load_project(config)
    run = open_marketplace(project, name)
    standin = box.standins[name]
    with open_state(project) as state:
        records = planned_records(run, project, state)
        applied = asyncio.run(apply_records(run, project, state, records, transport=standin.transport()))
    for path in config.parent.glob("state.sqlite*"):
        path.unlink()
    run = open_marketplace(project, name)
    start = time.perf_counter()
    with open_state(project) as state:
        summary = asyncio.run(rebuild_state(run, project, state, transport=standin.transport()))
        seconds = time.perf_counter() - start
        planner = run.planner(state)
        changes = sum(
            1
            for change in planner.changes(catalog_records(project, run.trade_policy))
            if change.op in ("create", "update", "delete")
        )
    return {
        "bench": "rebuild",
        "marketplace": name,
        "applied": applied.applied,
        "listings": summary.listings,
        "requests": summary.requests,
        "requests_per_listing": round(summary.requests / max(1, summary.listings), 4),
        "seconds": round(seconds, 2),
        "next_plan_changes": changes,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--marketplace", action="append", choices=MARKETPLACES)
    args = parser.parse_args()
    results = bench(args.skus, tuple(args.marketplace or MARKETPLACES))
    header = ("applied", "listings", "requests", "req/list", "seconds", "changes")
    print(f"{'marketplace':>13} " + " ".join(f"{h:>9}" for h in header))
    for r in results:
        print(
            f"{r['marketplace']:>13} {r['applied']:>9} {r['listings']:>9} {r['requests']:>9} "
            f"{r['requests_per_listing']:>9} {r['seconds']:>9} {r['next_plan_changes']:>9}"
        )
    for r in results:
        print(json.dumps(r))
    if any(r["next_plan_changes"] for r in results):
        sys.exit(1)


if __name__ == "__main__":
    main()
