"""VTEX full read: SKUs per second and requests per SKU, for one trade policy and for three.

    python bench/bench_vtex_read.py [--skus 10000] [--latency 0.05] [--policies 1 3] [--concurrency 64]

The VTEX stand-in, seeded with ``--skus`` synthetic SKUs (``bench/synth.py``, without broken
records) in trade policies 1, 2 and 3, is served by uvicorn on 127.0.0.1 in a child process
(so the server does not share the reader's interpreter), every answer ``--latency`` seconds
late, as a real API is a network away. The reader is the project's: ``catalog_reads`` of
``engine.project`` over a ``source: {type: vtex, base_url: ...}`` config, one marketplace per
trade policy, each catalog read to its end as ``tradepost plan`` reads it. Reported per run:
seconds, SKUs per second (catalog SKUs over the whole run, all trade policies together),
requests per SKU (every request the stand-in answered, listings, simulations and retries
included, over catalog SKUs), the most requests the stand-in answered at once, and the 429s
it sent. Prints a table and one JSON line per run (``"bench": "vtex_read"``).
"""

from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import socket
import sys
import tempfile
import threading
import time
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synth import generate  # noqa: E402
from engine.model._catalog import CatalogRecord  # noqa: E402
from engine.project import catalog_reads, load_project  # noqa: E402
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin  # noqa: E402

POLICIES = ("1", "2", "3")


def _serve(skus: int, latency: float, port: Connection) -> None:
    """The child: the stand-in on a free loopback port until told to stop, then its counters."""
    import uvicorn

    standin = VtexStandin(generate(skus, seed=1, broken=False), trade_policies=POLICIES, latency=latency)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(standin, log_level="warning", lifespan="off", backlog=4096))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    port.send(sock.getsockname()[1])
    while port.recv() != "stop":
        port.send((standin.total_requests(), standin.max_in_flight, standin.throttled))
        standin.requests.clear()
        standin.max_in_flight = standin.throttled = 0
    server.should_exit = True
    thread.join(timeout=10)


def _project(folder: Path, url: str, policies: int, concurrency: int) -> Path:
    """A project whose marketplaces read trade policies 1..policies of the stand-in."""
    marketplaces = ("mercadolibre", "amazon", "google")[:policies]
    config = folder / "tradepost.yaml"
    lines = [
        "source:",
        "  type: vtex",
        f"  base_url: {url}",
        f"  concurrency: {concurrency}",
        "marketplaces:",
    ]
    lines += [f"  {name}:\n    rules: rules/{name}.yaml" for name in marketplaces]
    config.write_text("\n".join(lines) + "\n", encoding="utf-8")
    (folder / "rules").mkdir(exist_ok=True)
    return config


def _read(config: Path, policies: int) -> int:
    """Every catalog of the first ``policies`` trade policies, read to the end; the records read."""
    project = load_project(config)
    read = 0
    with catalog_reads(project) as reads:
        for policy in POLICIES[:policies]:
            read += sum(1 for item in reads.records(policy) if isinstance(item, CatalogRecord))
    return read


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, default=10_000)
    parser.add_argument("--latency", type=float, default=0.05, help="seconds per stand-in answer")
    parser.add_argument("--policies", type=int, nargs="+", default=[1, 3], choices=[1, 2, 3])
    parser.add_argument("--concurrency", type=int, default=64, help="source.concurrency")
    options = parser.parse_args()
    os.environ["VTEX_APP_KEY"], os.environ["VTEX_APP_TOKEN"] = SANDBOX_APP_KEY, SANDBOX_APP_TOKEN
    ours, theirs = multiprocessing.Pipe()
    child = multiprocessing.get_context("fork").Process(
        target=_serve, args=(options.skus, options.latency, theirs), daemon=True
    )
    child.start()
    url = f"http://127.0.0.1:{ours.recv()}"
    results: list[dict[str, Any]] = []
    try:
        with tempfile.TemporaryDirectory() as folder:
            for policies in options.policies:
                config = _project(Path(folder), url, policies, options.concurrency)
                started = time.perf_counter()
                read = _read(config, policies)
                seconds = time.perf_counter() - started
                ours.send("count")
                requests, in_flight, throttled = ours.recv()
                results.append(
                    {
                        "bench": "vtex_read",
                        "skus": options.skus,
                        "trade_policies": policies,
                        "latency_s": options.latency,
                        "concurrency": options.concurrency,
                        "records": read,
                        "seconds": round(seconds, 2),
                        "skus_per_s": round(options.skus / seconds, 1),
                        "requests_per_sku": round(requests / options.skus, 2),
                        "max_in_flight": in_flight,
                        "throttled": throttled,
                        "cpus": os.cpu_count(),
                    }
                )
    finally:
        ours.send("stop")
        child.join(timeout=15)
    heads = ("policies", "records", "seconds", "SKUs/s", "req/SKU")
    print(" ".join(f"{head:>8}" for head in heads) + f" {'in flight':>9} {'429s':>5}")
    for r in results:
        print(
            f"{r['trade_policies']:>8} {r['records']:>8} {r['seconds']:>8} {r['skus_per_s']:>8}"
            f" {r['requests_per_sku']:>8} {r['max_in_flight']:>9} {r['throttled']:>5}"
        )
    for r in results:
        print(json.dumps(r))


if __name__ == "__main__":
    main()
