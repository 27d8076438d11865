"""`apply --shards` over 1, 2 and 4 `tradepost worker` processes, against a rate-limited stand-in.

    python bench/bench_workers.py [--skus 2000] [--workers 1,2,4] [--rate 200] [-m google]

A synthetic catalog (bench/synth.py, no broken records) is applied to one marketplace's
stand-in, served on loopback and answering 429 beyond ``--rate`` requests per second; the
project paces each process at the same rate. Each run starts from an empty PostgreSQL database
(a throw-away server, as the tests start one: Debian's ``postgresql`` package) and fresh
stand-ins; the coordinator runs as its own process with twice as many shards as workers.
Reported per run: wall seconds of the apply (start-up, planning and queueing included) and
changes applied per second over them; then, from the stand-in's own log of arrivals, the seconds
from the apply's start to the first request, the sending window (first request to last), the
requests answered a second over that window as a share of the limit, 429s after the first second
of sending (warm-up) and the busiest second (a sliding window), and the load average at the end.
The busiest second is also counted by the workers' send times ("sent": each worker process
notes the instant its transport, after the pacing, takes a request for the stand-in's address,
through a ``sitecustomize`` this bench puts on the workers' path). Arrivals bunch when the
stand-in's process is kept off the CPU; the two counts tell what the workers send from what a
starved receiver counts.
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

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_workers_rate import WARM_UP, Recorder, busiest_second  # noqa: E402
from synth import write_jsonl  # noqa: E402

from marketplaces.sandbox import build_sandbox  # noqa: E402
from tests import _postgres  # noqa: E402 - the tests' throw-away server

SENT_HOOK = """
import os, time
import httpx_aiohttp

_folder = os.environ.get("BENCH_SENT_DIR")
_host = os.environ.get("BENCH_SENT_HOST")
if _folder and _host:
    _out = open(os.path.join(_folder, f"sent-{os.getpid()}.log"), "a", buffering=1)
    _send = httpx_aiohttp.AiohttpTransport.handle_async_request

    async def send(self, request):
        if request.url.netloc.decode() == _host:
            _out.write(f"{time.monotonic()}\\n")
        return await _send(self, request)

    httpx_aiohttp.AiohttpTransport.handle_async_request = send
"""
"""Put on the workers' path as ``sitecustomize``: notes each request's send instant (bench only)."""


def sent_times(folder: Path) -> list[float]:
    """Every instant a worker process noted sending a request to the stand-in."""
    return [float(line) for log in folder.glob("sent-*.log") for line in log.read_text().split()]


def one_run(
    server: _postgres.Server, catalog: Path, folder: Path, args: argparse.Namespace, workers: int
) -> dict[str, object]:
    box = build_sandbox([], rate_limit=args.rate)
    arrivals = box.standins[args.marketplace] = Recorder(box.standins[args.marketplace])
    box.start()
    try:
        config = box.write_project(folder, ROOT / "rules", catalog_from_vtex=False)
        text = config.read_text(encoding="utf-8")
        text = re.sub(r"(?m)^state: .*$", f"state: {server.url(server.database(), 'env:BENCH_PG')}", text)
        text = re.sub(r"(?m)^(\s+)path: .*$", rf"\1path: {catalog}", text, count=1)
        text = re.sub(r"(?m)^(\s+)base_url: (.*)$", rf"\1base_url: \2\n\1rate_limit: {args.rate}", text)
        config.write_text(text, encoding="utf-8")
        hook = folder / "hook"
        hook.mkdir()
        (hook / "sitecustomize.py").write_text(SENT_HOOK, encoding="utf-8")
        env = {
            **os.environ,
            "BENCH_PG": _postgres.PASSWORD,
            "PYTHONPATH": f"{hook}{os.pathsep}{ROOT}",
            "BENCH_SENT_DIR": str(hook),
            "BENCH_SENT_HOST": httpx.URL(box.url(args.marketplace)).netloc.decode(),
        }
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
            begin, began = time.perf_counter(), time.monotonic()
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
        log = sorted(arrivals.log)
        first, last = log[0][0], log[-1][0]
        window = max(last - first, 1e-9)
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
            "to_first_request_s": round(first - began, 2),
            "sending_s": round(window, 2),
            "sending_share_of_limit": round(
                sum(1 for _, status in log if status != 429) / window / args.rate, 3
            ),
            "429_after_warmup": sum(1 for at, status in log if status == 429 and at > first + WARM_UP),
            "busiest_second": busiest_second([at for at, _ in log]),
            "busiest_second_sent": busiest_second(sent_times(hook)),
            "load": round(os.getloadavg()[0], 1),
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
    header = (
        "workers",
        "applied",
        "seconds",
        "applied/s",
        "to first",
        "sending",
        "of limit",
        "429",
        "busiest",
        "sent",
        "load",
    )
    print(" ".join(f"{name:>9}" for name in header))
    keys = ("workers", "applied", "seconds", "applied_per_s", "to_first_request_s", "sending_s")
    for row in rows:
        print(
            " ".join(f"{row[key]:>9}" for key in keys),
            f"{row['sending_share_of_limit']:>9.0%} {row['429_after_warmup']:>9} {row['busiest_second']:>9} "
            f"{row['busiest_second_sent']:>9} {row['load']:>9}",
        )
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
