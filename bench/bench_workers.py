"""`apply --shards` over 1, 2 and 4 `tradepost worker` processes, against a rate-limited stand-in.

    python bench/bench_workers.py [--skus 2000] [--workers 1,2,4] [--rate 200] [-m google]

A synthetic catalog (bench/synth.py, no broken records) is applied to one marketplace's
stand-in, served on loopback and answering 429 beyond ``--rate`` requests per second; the
project paces each process at the same rate. Each run starts from an empty PostgreSQL database
(a throw-away server, as the tests start one: Debian's ``postgresql`` package) and fresh
stand-ins; the coordinator runs as its own process with twice as many shards as workers.
Reported per run: wall seconds of the apply (planning included), changes applied per second,
requests per second as a share of the limit, and 429s. Until the shared rate limit exists,
each worker paces on its own, so several workers exceed the limit: the 429s show it.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from synth import write_jsonl  # noqa: E402

from marketplaces.sandbox import build_sandbox  # noqa: E402
from tests import _postgres  # noqa: E402 - the tests' throw-away server


def one_run(
    server: _postgres.Server, catalog: Path, folder: Path, args: argparse.Namespace, workers: int
) -> dict[str, object]:
    box = build_sandbox([], rate_limit=args.rate)
    box.start()
    try:
        config = box.write_project(folder, ROOT / "rules", catalog_from_vtex=False)
        text = config.read_text(encoding="utf-8")
        text = re.sub(r"(?m)^state: .*$", f"state: {server.url(server.database(), 'env:BENCH_PG')}", text)
        text = re.sub(r"(?m)^(\s+)path: .*$", rf"\1path: {catalog}", text, count=1)
        text = re.sub(r"(?m)^(\s+)base_url: (.*)$", rf"\1base_url: \2\n\1rate_limit: {args.rate}", text)
        config.write_text(text, encoding="utf-8")
        env = {**os.environ, "BENCH_PG": _postgres.PASSWORD, "PYTHONPATH": str(ROOT)}
        command = [sys.executable, "-m", "cli.main"]
        started = [
            subprocess.Popen(
                [*command, "worker", "-c", str(config), "--poll", "0.2"],
                cwd=ROOT,
                env=env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
            for _ in range(workers)
        ]
        try:
            begin = time.perf_counter()
            apply = [
                "apply",
                "-c",
                str(config),
                "-m",
                args.marketplace,
                "--shards",
                str(2 * workers),
                "--json",
            ]
            done = subprocess.run(
                [*command, *apply],
                cwd=ROOT,
                env=env,
                capture_output=True,
                text=True,
                timeout=3600,
                check=False,
            )
            seconds = time.perf_counter() - begin
        finally:
            for process in started:
                process.send_signal(signal.SIGTERM)
            for process in started:
                process.wait(timeout=60)
        if done.returncode != 0:
            raise SystemExit(f"apply --shards failed ({done.returncode}): {done.stderr[-2000:]}")
        summary = json.loads(done.stdout)["marketplaces"][0]
        return {
            "bench": "workers",
            "marketplace": args.marketplace,
            "workers": workers,
            "shards": 2 * workers,
            "applied": summary["applied"],
            "seconds": round(seconds, 2),
            "applied_per_s": round(summary["applied"] / seconds, 1),
            "share_of_limit": round(summary["requests"] / seconds / args.rate, 2),
            "throttled": summary["throttled"],
        }
    finally:
        box.stop()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--skus", type=int, default=2000)
    parser.add_argument("--workers", default="1,2,4")
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("-m", "--marketplace", default="google")
    args = parser.parse_args()
    server = _postgres.start()
    if isinstance(server, str):
        raise SystemExit(f"no PostgreSQL here: {server}")
    try:
        with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
            catalog = Path(tmp) / "catalog.jsonl"
            with catalog.open("w", encoding="utf-8") as out:
                write_jsonl(out, args.skus, broken=False)
            rows = [
                one_run(server, catalog, Path(tmp) / f"run{count}", args, count)
                for count in (int(n) for n in args.workers.split(","))
            ]
    finally:
        server.stop()
    header = ("workers", 7), ("shards", 6), ("applied", 8), ("seconds", 8), ("applied/s", 10), ("of limit", 9)
    print(" ".join(f"{name:>{width}}" for name, width in header), f"{'429s':>5}")
    for row in rows:
        print(
            f"{row['workers']:>7} {row['shards']:>6} {row['applied']:>8} {row['seconds']:>8} "
            f"{row['applied_per_s']:>10} {row['share_of_limit']:>9} {row['throttled']:>5}"
        )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
