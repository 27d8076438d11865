"""How long `tradepost status` and `tradepost log` take to read a large state store.

A fresh SQLite store gets ``--skus`` listings, one SKU in a hundred failing and ``--invalid``
records noted invalid (as a plan keeps them); then the engine reads the status and the whole
log of that marketplace, as the commands do, and prints the figures and one JSON line.

Usage (from the repository root)::

    python bench/bench_status.py                    # 100,000 listings, 10,000 invalid records
    python bench/bench_status.py --skus 1000000
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from decimal import Decimal
from pathlib import Path

from engine.project import integration_log, load_project, project_status
from engine.state import StateStore
from engine.state._store import AppliedListing, Failed

REASONS = json.dumps(
    ["w", [["TP922", "require", "GTIN 1 has a wrong check digit", ["rules/google.yaml", 66, 12, 66, 50]]]]
)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=100_000)
    parser.add_argument("--invalid", type=int, default=10_000)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        config = Path(folder) / "tradepost.yaml"
        config.write_text("source: {type: file, path: c.jsonl}\nstate: state.sqlite\nmarketplaces: {}\n")
        project = load_project(config)
        with StateStore(project.state_url) as state:
            rows = [
                AppliedListing(str(n), "p", "h", Decimal("10.00"), None, 1, None) for n in range(args.skus)
            ]
            state.record_applied("google", rows)
            state.note_excluded("google", [(f"x{n}", f"h{n}", REASONS) for n in range(args.invalid)])
            state.record_outcomes(
                "google", [Failed(str(n), f"HTTP 500 for {n}") for n in range(0, args.skus, 100)]
            )
            started = time.perf_counter()
            status = project_status(project, state, ["google"]).marketplaces[0]
            status_seconds = time.perf_counter() - started
            started = time.perf_counter()
            log = integration_log(state, ["google"])
            log_seconds = time.perf_counter() - started
    print(
        f"status: {status.live} live, {status.failing} failing, {status.invalid} invalid "
        f"in {status_seconds:.3f} s; "
        f"log: {len(log.entries)} entries, {len(log.recurring)} recurring groups in {log_seconds:.3f} s"
    )
    figures = {"skus": args.skus, "status_seconds": status_seconds, "log_seconds": log_seconds}
    print(json.dumps(figures))


if __name__ == "__main__":
    main()
