"""`tradepost serve` intake: notifications per second and answer latency, durably queued.

    python bench/bench_notify.py [--notifications 2000] [--concurrency 1 16]

Starts ``tradepost serve`` as its own process on 127.0.0.1 (a project with no marketplaces, the
secret in an environment variable), posts VTEX stock notifications for half as many SKUs as
notifications (so half of them merge into a queued row), ``--concurrency`` at a time over one
httpx client, and stops it with SIGTERM. Every 200 means the SKU was committed to the state store
with fsync (``synchronous=FULL``), so this is the rate at which VTEX's calls can be acknowledged
on this disk. Reported per concurrency: notifications per second, p50 and p95 of the answer
time, and the queued count ``tradepost status`` then reads (must equal the SKUs notified).
Prints a table and one JSON line per run (``"bench": "notify"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
SECRET = "bench-secret-0123456789abcdef"
CONFIG = """\
source:
  type: file
  path: catalog.jsonl
marketplaces: {}
serve:
  port: 0
  secret: env:BENCH_NOTIFY_SECRET
  rate_limit: 1000000
"""


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


async def _post_all(url: str, notifications: int, concurrency: int) -> tuple[float, list[float]]:
    latencies: list[float] = []
    gate = asyncio.Semaphore(concurrency)
    skus = max(notifications // 2, 1)
    async with httpx.AsyncClient(limits=httpx.Limits(max_connections=concurrency), timeout=30) as http:

        async def one(n: int) -> None:
            async with gate:
                started = time.perf_counter()
                answer = await http.post(url, json={"IdSku": str(n % skus), "StockModified": True})
                if answer.status_code != 200:
                    raise SystemExit(f"notification {n} answered {answer.status_code}: {answer.text}")
                latencies.append(time.perf_counter() - started)

        started = time.perf_counter()
        await asyncio.gather(*(one(n) for n in range(notifications)))
        return time.perf_counter() - started, sorted(latencies)


def run(notifications: int, concurrency: int) -> dict[str, object]:
    folder = Path(tempfile.mkdtemp(prefix="tradepost-bench-notify-"))
    (folder / "catalog.jsonl").write_text("", encoding="utf-8")
    config = folder / "tradepost.yaml"
    config.write_text(CONFIG, encoding="utf-8")
    env = {**os.environ, "BENCH_NOTIFY_SECRET": SECRET, "PYTHONPATH": str(ROOT)}
    server = subprocess.Popen(_cli("serve", "-c", str(config)), env=env, stdout=subprocess.PIPE, text=True)
    try:
        assert server.stdout is not None
        found = re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline())
        if not found:
            raise SystemExit("tradepost serve did not say where it listens")
        url = f"http://127.0.0.1:{found.group(1)}/api/notification/?k={SECRET}"
        seconds, latencies = asyncio.run(_post_all(url, notifications, concurrency))
    finally:
        server.send_signal(signal.SIGTERM)
        server.communicate(timeout=30)
    status = subprocess.run(
        _cli("status", "-c", str(config), "--json"), env=env, capture_output=True, text=True, timeout=60
    )
    queued = json.loads(status.stdout)["notifications"]["queued"] if status.returncode == 0 else None
    return {
        "bench": "notify",
        "notifications": notifications,
        "concurrency": concurrency,
        "per_second": round(notifications / seconds, 1),
        "p50_ms": round(1000 * latencies[len(latencies) // 2], 1),
        "p95_ms": round(1000 * latencies[int(len(latencies) * 0.95)], 1),
        "queued_after": queued,
        "skus_notified": max(notifications // 2, 1),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--notifications", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, nargs="+", default=[1, 16])
    args = parser.parse_args()
    rows = [run(args.notifications, c) for c in args.concurrency]
    print(f"{'in flight':>9} {'per s':>8} {'p50 ms':>8} {'p95 ms':>8} {'queued':>8}")
    for row in rows:
        print(
            f"{row['concurrency']:>9} {row['per_second']:>8} {row['p50_ms']:>8} {row['p95_ms']:>8}"
            f" {row['queued_after']!s:>8}"
        )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
