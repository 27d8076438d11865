"""Several processes applying for one seller account against a stand-in limited to N requests a second.

    python bench/bench_workers_rate.py [--rate 200] [--burst 10] [--skus 2000]

The Google stand-in is served on loopback with its own token bucket answering 429 beyond ``--rate``
(``--burst`` requests at once: 10 at 200/s is 50 ms of loopback jitter, stricter than a real API's
per-second window); the project's ``rate_limit`` is the same. 1, 2 and 4
worker processes each plan the catalog and apply their shard of it (every Nth change) with their
own executor, on one PostgreSQL state store, so they pace through the shared bucket; a last row
gives 4 processes their own SQLite state (one bucket each: what every process did before).
The processes start sending together (a barrier after planning). Reported per row: requests the
stand-in answered, the share of the limit used (answered requests a second over the run, over
``--rate``), 429s after the first second (warm-up), the busiest second (sliding window) and the
statements the shared bucket took (its round trips: one per batch of requests waiting). The
PostgreSQL is a throw-away one (``tests/_postgres.py``), a database per row. Prints a table and one
JSON line per row (``"bench": "workers_rate"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from ruamel.yaml import YAML  # noqa: E402
from starlette.types import ASGIApp, Message, Receive, Scope, Send  # noqa: E402

from engine.project._apply import apply_records, planned_records  # noqa: E402
from engine.project._assembly import open_marketplace, open_state  # noqa: E402
from engine.project._config import load_project  # noqa: E402

MARKETPLACE = "google"
PASSWORD_VARIABLE = "TRADEPOST_BENCH_PG"
WARM_UP = 1.0
"""Seconds after the first request whose 429s are not counted: the stand-in's bucket and ours meet."""


class Recorder:
    """An ASGI app in front of a stand-in, noting when each request arrived and its answer's status."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self.log: list[tuple[float, int]] = []

    def __getattr__(self, name: str) -> Any:
        return getattr(self.app, name)  # the sandbox reads the stand-in's credentials and role

    @property
    def times(self) -> list[float]:
        return [at for at, _ in self.log]

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        arrived, status = time.monotonic(), [0]

        async def sending(message: Message) -> None:
            if message["type"] == "http.response.start":
                status[0] = int(message["status"])
            await send(message)

        await self.app(scope, receive, sending)
        self.log.append((arrived, status[0]))


def busiest_second(times: list[float]) -> int:
    """The most arrivals in any window of one second (sliding: each window starts at an arrival)."""
    times = sorted(times)
    most, first = 0, 0
    for last, at in enumerate(times):
        while at - times[first] >= 1.0:
            first += 1
        most = max(most, last - first + 1)
    return most


def apply_shard(config: str, shard: int, shards: int, ready: Any, results: Any) -> None:
    """One worker process: plan, wait for the others at ``ready`` (a barrier), apply every
    ``shards``-th change from ``shard`` on, and put (applied, failed) on ``results``."""
    project = load_project(config)
    run = open_marketplace(project, MARKETPLACE)
    with open_state(project) as state:
        records = planned_records(run, project, state)[shard::shards]
        ready.wait(120)
        summary = asyncio.run(apply_records(run, project, state, records))
    results.put((summary.applied, summary.failed))


def run_workers(configs: list[str]) -> list[tuple[int, int]]:
    """Run one worker process per config (the n-th applies shard n of len(configs)); their results."""
    context = multiprocessing.get_context("spawn")
    ready, results = context.Barrier(len(configs)), context.Queue()
    workers = [
        context.Process(target=apply_shard, args=(config, n, len(configs), ready, results))
        for n, config in enumerate(configs)
    ]
    for worker in workers:
        worker.start()
    done = [results.get(timeout=600) for _ in workers]
    for worker in workers:
        worker.join(60)
    return done


def set_project(config: Path, state: str, rate: float, catalog: Path) -> None:
    """Point the project at ``state`` and ``catalog``, and give its marketplace the stand-in's limit."""
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["state"] = state
    document["source"]["path"] = str(catalog)
    document["marketplaces"][MARKETPLACE]["rate_limit"] = rate
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)


def bucket_statements(state: str) -> int:
    """Statements the shared bucket took (rows it inserted and updated: one per statement), read
    from the server's statistics once every worker has closed its connection."""
    from engine.state._pg import PostgresDialect

    time.sleep(1.0)  # a backend's statistics reach the views within a second of its exit
    dialect = PostgresDialect(state, busy_timeout=5)
    with dialect.connect() as connection:
        row = connection.execute(
            "SELECT n_tup_ins + n_tup_upd FROM pg_stat_user_tables WHERE relname = 'rate_buckets'"
        ).fetchone()
    return int(row[0]) if row else 0


def bench(
    processes: int, state: str | None, rate: float, burst: float, catalog: Path, folder: Path
) -> dict[str, Any]:
    """``processes`` workers on the PostgreSQL ``state``, or each on its own SQLite file (None)."""
    from marketplaces.google.standin import GoogleStandin
    from marketplaces.sandbox import Sandbox

    recorder = Recorder(GoogleStandin(rate_limit=rate, burst=burst))
    box = Sandbox({MARKETPLACE: recorder})
    box.start()
    try:
        configs = []
        for n in range(1 if state else processes):
            config = box.write_project(
                folder / f"{processes}-{'shared' if state else 'own'}-{n}", ROOT / "rules", False
            )
            set_project(config, state or "state.sqlite", rate, catalog)
            configs.append(str(config))
        done = run_workers(configs * processes if state else configs)
    finally:
        box.stop()
    log = sorted(recorder.log)
    start, end = log[0][0], log[-1][0]
    statements = bucket_statements(state) if state else None
    answered = sum(1 for _, status in log if status != 429)
    return {
        "bench": "workers_rate",
        "processes": processes,
        "shared_bucket": state is not None,
        "rate_limit": rate,
        "burst": burst,
        "applied": sum(a for a, _ in done),
        "failed": sum(f for _, f in done),
        "requests": len(log),
        "seconds": round(end - start, 2),
        "share_of_limit": round(answered / (end - start) / rate, 3),
        "429_after_warmup": sum(1 for at, status in log if status == 429 and at > start + WARM_UP),
        "busiest_second": busiest_second([at for at, _ in log]),
        "bucket_statements": statements,
    }


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--burst", type=float, default=10.0)
    parser.add_argument("--skus", type=int, default=2000)
    args = parser.parse_args()
    from bench.synth import write_jsonl
    from tests import _postgres

    server = _postgres.start()
    if isinstance(server, str):
        sys.exit(f"no PostgreSQL for this benchmark: {server}")
    os.environ[PASSWORD_VARIABLE] = _postgres.PASSWORD  # the workers read it as every secret is read
    rows = []
    try:
        with tempfile.TemporaryDirectory() as tmp:
            catalog = Path(tmp) / "catalog.jsonl"
            with catalog.open("w", encoding="utf-8") as out:
                write_jsonl(out, args.skus, seed=3, broken=False)
            for processes, shared in ((1, True), (2, True), (4, True), (4, False)):
                state = server.url(server.database(), f"env:{PASSWORD_VARIABLE}") if shared else None
                rows.append(bench(processes, state, args.rate, args.burst, catalog, Path(tmp)))
    finally:
        server.stop()
    header = ("applied", "requests", "seconds", "of N", "429", "busiest", "turns")
    print(f"{'processes':>15} " + " ".join(f"{h:>8}" for h in header))
    for r in rows:
        label = f"{r['processes']} {'shared' if r['shared_bucket'] else 'own bucket'}"
        print(
            f"{label:>15} {r['applied']:>8} {r['requests']:>8} {r['seconds']:>8} "
            f"{r['share_of_limit']:>8.0%} {r['429_after_warmup']:>8} {r['busiest_second']:>8} "
            f"{r['bucket_statements'] if r['bucket_statements'] is not None else '-':>8}"
        )
    for r in rows:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
