"""`tradepost serve --sync` end to end: a stock change in VTEX until each marketplace has it.

    python bench/bench_sync_latency.py [--rates 10 100] [--seconds 20] [--burst 10000] [--latency 0.05]

The sandbox's stand-ins (VTEX, Mercado Libre, Amazon, Google), seeded with the bundled catalog,
each served by uvicorn in a child process of its own on 127.0.0.1, every API answer ``--latency``
seconds late (a network away; the sandbox's controls are not delayed). The project's catalog is
applied in full first (no latency), then ``tradepost serve --sync`` runs as its own process.

A warm-up first (``--warm-up`` seconds of changes at 5 a second, printed, not counted): the run a
service is judged by is its steady state, not its first second, when the worker still imports
its modules, compiles the rules, opens its connections and fetches its tokens (the first run's
p95 at 10/s was 1.3 s without it, its p50 0.33 s).

Latency runs: at each ``--rates`` changes per second for ``--seconds``, one SKU's stock is set in
the VTEX stand-in (``POST /_sandbox/stock``), which notifies its three affiliates (the project's
endpoint) as VTEX does. Each change of a SKU flips it between sold out and in stock, so every
marketplace's value changes each time; the SKUs are taken round robin, so one SKU is changed again
only after (SKUs / rate) seconds. Each marketplace stand-in records, for every request, which SKUs'
held quantity (Google: availability) it changed and when the request arrived; a change's latency
on a marketplace is the time from sending it to the arrival of the first request that gave the
SKU its value or a later change's value (the queue merges a SKU's changes: one merged into a
later one counts until that one arrived). A change that never arrived is ``merged`` when the
marketplace ends holding its SKU's last value (it was merged into a later change whose value the
marketplace held already: nothing was left to send), ``lost`` when it does not, ``--bound``
seconds after the last change was sent. Each SKU changes again only after (SKUs / rate) seconds:
with a bigger catalog (``--skus``) fewer changes merge. The bench (as VTEX) sends over plain aiohttp,
each stand-in looks at what it holds at most every 20 ms (a change is seen up to that much late),
and the bench reads the stand-ins' records incrementally: it shares the two cores with what it
measures.

The burst: the VTEX stand-in stops notifying; ``--burst`` times, a SKU's stock is flipped in it and
the notification posted to the endpoint by this script, 16 in flight, as fast as ``serve`` answers.
Then the queue must drain (``GET /healthz``) and every SKU's value on every marketplace must be its
final VTEX stock's: a SKU that is not is lost. ``serve``'s RSS is read every 0.5 s from the burst's
start until the queue is empty.

Prints a table and one JSON line per run (``"bench": "sync_latency"`` and ``"sync_burst"``). The
whole bench is bounded by ``--timeout`` and stops every process it started.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import multiprocessing
import os
import re
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from multiprocessing.connection import Connection
from pathlib import Path
from typing import Any, TypeVar

import aiohttp
import httpx
import uvicorn
from ruamel.yaml import YAML
from starlette.types import ASGIApp, Receive, Scope, Send

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench.synth import generate  # noqa: E402
from marketplaces._standin import Faults  # noqa: E402
from marketplaces.sandbox import Sandbox, build_sandbox, read_catalog  # noqa: E402

T = TypeVar("T")
MARKETPLACES = ("mercadolibre", "amazon", "google")
SOLD_OUT: dict[str, list[Any]] = {"mercadolibre": [0], "amazon": [0], "google": ["OUT_OF_STOCK"]}
IN_STOCK = 40
"""Units per warehouse of a SKU in stock: every marketplace's rules list it above 0."""
WARM_UP_RATE = 5.0
"""Changes a second of the warm-up (``--warm-up``), whose latencies are printed but not counted."""
IN_FLIGHT = 16
"""Notifications the burst keeps in flight."""
CONNECTIONS = 128
"""Connections the bench (as VTEX) opens at most; more requests wait for one."""


# -- the stand-ins, each in a process of its own ------------------------------------------------


def held_values(box: Sandbox, marketplace: str) -> dict[str, list[Any]]:
    """SKU -> the quantity (Google: availability) of each listing holding it, read from the stand-in
    itself as ``bench_kills.holdings`` reads it, without its copies (this runs after every request);
    Mercado Libre's is 0 for a paused item (how a SKU listed alone is withdrawn when sold out)."""
    standin: Any = box.standins[marketplace]
    found: dict[str, list[Any]] = {}
    if marketplace == "mercadolibre":
        for item in standin.items.values():
            for holder in item.get("variations") or [item]:
                for attribute in holder.get("attributes") or []:
                    if attribute["id"] == "SELLER_SKU":
                        sold = holder["available_quantity"] if item["status"] == "active" else 0
                        found.setdefault(str(attribute["value_name"]), []).append(sold)
    elif marketplace == "google":
        for stored in standin.inputs.values():
            availability = (stored.get("productAttributes") or {}).get("availability")
            found.setdefault(str(stored["offerId"]), []).append(availability)
    else:
        for sku, item in standin.items.items():
            offer = item["attributes"].get("fulfillment_availability") or [{}]
            found.setdefault(str(sku), []).append(offer[0].get("quantity"))
    return found


class Recorder:
    """An ASGI wrapper noting, after requests, which SKUs' values changed, and when.

    The time is a request's end (a stand-in applies a request after its ``latency``, then
    answers): a change is seen at the end of the first request to finish after it was applied, its
    own or another's, so never before it happened (an arrival time would be, for a change made
    while a request that arrived earlier was in flight). The stand-in is looked at after a request
    at most every :data:`LOOK_EVERY` seconds (a look walks every listing: a third of a stand-in's
    CPU when done after each of 150 requests a second); a request ending sooner after the last look
    has the next look made when that time is up: a change can be seen that much later than it
    happened, never sooner."""

    def __init__(self, app: ASGIApp, box: Sandbox, marketplace: str) -> None:
        self.app, self.box, self.marketplace = app, box, marketplace
        self.last = held_values(box, marketplace)
        self.changes: list[tuple[str, list[Any], float]] = []
        self._looked = 0.0
        self._next: asyncio.TimerHandle | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await self.app(scope, receive, send)
        finally:
            if scope["type"] == "http":
                self._loop = asyncio.get_running_loop()
                wait = self._looked + LOOK_EVERY - time.monotonic()
                if wait <= 0:
                    self.look()
                elif self._next is None:
                    self._next = self._loop.call_later(wait, self.look)

    def recorded(self, start: int) -> list[tuple[str, list[Any], float]]:
        """The changes from the ``start``-th on, a look due made first (called from another thread:
        the look runs on the server's loop, as every other)."""
        if self._loop is not None:

            async def due() -> None:
                if self._next is not None:
                    self.look()

            asyncio.run_coroutine_threadsafe(due(), self._loop).result(10)
        return self.changes[start:]

    def look(self) -> None:
        if self._next is not None:
            self._next.cancel()
            self._next = None
        now, seen = held_values(self.box, self.marketplace), time.time()
        self._looked = time.monotonic()
        for sku, value in now.items():
            if self.last.get(sku) != value:
                self.changes.append((sku, value, seen))
        self.last = now


LOOK_EVERY = 0.02
"""Seconds between two looks of a :class:`Recorder` at its stand-in, at least."""


def _serve_one(box: Sandbox, name: str, sock: socket.socket, control: Connection) -> None:
    """A child process: one stand-in on ``sock``; commands from the parent over ``control``."""
    app: Any = box.standins[name]
    recorder = Recorder(app, box, name) if name in MARKETPLACES else None
    config = uvicorn.Config(recorder or app, lifespan="off", access_log=False, log_level="warning")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    while True:
        command, argument = control.recv()
        if command == "latency":
            app.faults = Faults(slow_rate=1.0 if argument else 0.0, slow_seconds=argument)
            control.send(None)
        elif command == "quiet":  # VTEX stops notifying its affiliates
            app.affiliates.endpoints.clear()
            control.send(None)
        elif command == "changes":
            control.send(recorder.recorded(argument) if recorder else [])
        elif command == "requests":
            control.send(dict(app.requests))
        elif command == "held":
            control.send(held_values(box, name))
        else:
            server.should_exit = True
            thread.join(10)
            control.send(None)
            return


@dataclass
class Standins:
    """The stand-in processes and the pipes that control them."""

    box: Sandbox
    processes: dict[str, multiprocessing.Process] = field(default_factory=dict)
    pipes: dict[str, Connection] = field(default_factory=dict)

    def ask(self, name: str, command: str, argument: Any = None) -> Any:
        self.pipes[name].send((command, argument))
        return self.pipes[name].recv()

    def start(self, sockets: dict[str, socket.socket]) -> None:
        context = multiprocessing.get_context("fork")
        for name, sock in sockets.items():
            ours, theirs = context.Pipe()
            process = context.Process(target=_serve_one, args=(self.box, name, sock, theirs), daemon=True)
            process.start()
            sock.close()
            self.processes[name], self.pipes[name] = process, ours
        for name in sockets:  # answering: the server thread is up once a command comes back
            self.ask(name, "latency", 0.0)

    def stop(self) -> None:
        for name, process in self.processes.items():
            with suppress(OSError, EOFError):
                self.ask(name, "stop")
            process.join(5)
            if process.is_alive():
                process.kill()


def _bind() -> socket.socket:
    # IPPROTO_TCP named: asyncio sets TCP_NODELAY only then; without it answers wait ~40 ms (Nagle).
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(512)
    return sock


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def project(box: Sandbox, folder: Path, rate: float, every: bool) -> Path:
    """The sandbox's project (VTEX notifying its endpoint), every marketplace paced at ``rate``;
    only the three measured unless ``every``."""
    config = box.write_project(folder, ROOT / "rules", serve_port=free_port())
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    for name in list(document["marketplaces"]):
        if not every and name not in MARKETPLACES:
            del document["marketplaces"][name]
    for settings in document["marketplaces"].values():
        settings["rate_limit"] = rate
    # Every notification comes from this one address: VTEX's come from many. The endpoint's limit
    # per address (500 a second by default) would answer the burst's flood with 429s.
    document["serve"]["rate_limit"] = 100_000
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    return config


# -- tradepost as its own processes --------------------------------------------------------------


def _env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT)}


def _cli(*args: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", *args]


@contextmanager
def serving(config: Path, log: Path) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`tradepost serve --sync` until the block ends (SIGTERM; SIGKILL after 30 s); its URL."""
    with log.open("w", encoding="utf-8") as err:
        server = subprocess.Popen(
            _cli("serve", "-c", str(config), "--sync"),
            env=_env(),
            stdout=subprocess.PIPE,
            stderr=err,
            text=True,
        )
        try:
            assert server.stdout is not None
            found = re.search(r"127\.0\.0\.1:(\d+)", server.stdout.readline())
            if not found:
                raise SystemExit(f"tradepost serve did not say where it listens; see {log}")
            # The worker's reports, a few lines a pass: read, or the pipe fills and the worker waits.
            threading.Thread(target=server.stdout.read, daemon=True).start()
            yield server, f"http://127.0.0.1:{found.group(1)}"
        finally:
            stop(server)


def stop(process: subprocess.Popen[str]) -> None:
    """SIGTERM (a graceful stop), and SIGKILL if it is not over within 30 s."""
    process.send_signal(signal.SIGTERM)
    with suppress(subprocess.TimeoutExpired):
        process.communicate(timeout=30)
    if process.poll() is None:
        process.kill()
        process.communicate()


@contextmanager
def profiling(pids: dict[str, int], folder: Path | None) -> Iterator[None]:
    """py-spy sampling each process (``serve`` and the stand-ins) while the block runs: raw stacks,
    idle ones included, in ``folder/<name>.txt`` (for flame graphs or a count per function)."""
    if folder is None:
        yield
        return
    folder.mkdir(parents=True, exist_ok=True)
    spies = [
        subprocess.Popen(
            [
                *("py-spy", "record", "--pid", str(pid), "-f", "raw", "--threads", "--idle"),
                "--subprocesses",
                "-o",
                str(folder / f"{name}.txt"),
            ],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        for name, pid in pids.items()
    ]
    try:
        yield
    finally:
        for spy in spies:
            spy.send_signal(signal.SIGINT)
        for spy in spies:
            spy.wait(60)


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """Each process's CPU seconds (user and system) so far, its children's (``serve``'s sync
    worker) under ``name/child``; the bench's own under ``bench``."""
    ticks = os.sysconf("SC_CLK_TCK")
    found: dict[str, float] = {"bench": sum(os.times()[:2])}
    for name, pid in pids.items():
        with suppress(OSError):
            found[name] = _cpu(pid, ticks)
            for task in Path(f"/proc/{pid}/task").iterdir():
                for child in (task / "children").read_text().split():
                    found[f"{name}/child"] = _cpu(int(child), ticks)
    return found


def _cpu(pid: int, ticks: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / ticks


def rss_mib(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return 0.0


# -- the changes -----------------------------------------------------------------------------------


@dataclass
class Flips:
    """Each SKU's next stock (sold out and in stock by turns), round robin over the SKUs."""

    skus: list[str]
    in_stock: dict[str, bool] = field(default_factory=dict)
    cursor: int = 0

    def next(self) -> tuple[str, bool]:
        sku = self.skus[self.cursor % len(self.skus)]
        self.cursor += 1
        self.in_stock[sku] = not self.in_stock.get(sku, True)
        return sku, self.in_stock[sku]


def matches(marketplace: str, value: list[Any], in_stock: bool) -> bool:
    if not in_stock:
        return value == SOLD_OUT[marketplace]
    return bool(value) and all(v not in (0, "OUT_OF_STOCK") for v in value)


AFFILIATES = ("MLB", "MZN", "GGL")
"""The sandbox's affiliates (the rule files' ids), one per marketplace, all notifying the project."""


@dataclass
class Vtex:
    """What the bench does as VTEX: a stock change in its stand-in, then the notifications."""

    http: aiohttp.ClientSession
    store: str
    """The VTEX stand-in's URL."""
    endpoint: str
    """The project's notification URL, secret included."""

    async def change(self, sku: str, in_stock: bool, affiliates: tuple[str, ...]) -> None:
        """The stock set, then one notification per affiliate with the Broadcaster's body
        (``_standin_affiliates``), posted side by side as VTEX's background tasks post them."""
        body = {"sku_id": sku, "quantity": IN_STOCK if in_stock else 0}
        await self.post(f"{self.store}/_sandbox/stock", body)
        date = time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime())
        notices = [
            {
                "IdSku": sku,
                "An": "sandbox",
                "IdAffiliate": affiliate,
                "DateModified": date,
                "StockModified": True,
            }
            for affiliate in affiliates
        ]
        await asyncio.gather(*(self.post(self.endpoint, n) for n in notices))

    async def post(self, url: str, body: dict[str, Any]) -> None:
        """POST, raising on an error status; sent again when a kept-alive connection was closed
        under it (a server closes an idle one as the request leaves: the request never reached
        it). Both calls are safe to repeat: a stock set, a notification that merges."""
        for attempt in range(3):
            try:
                async with self.http.post(url, json=body) as answer:
                    answer.raise_for_status()
                    await answer.read()
                    return
            except (aiohttp.ServerDisconnectedError, aiohttp.ClientOSError):
                if attempt == 2:
                    raise


def as_vtex(store: str, endpoint: str, work: Callable[[Vtex], Awaitable[T]]) -> T:
    """``work`` done as VTEX over one aiohttp session.

    Plain aiohttp, not httpx over it as Tradepost's clients: the bench shares the two cores with
    what it measures, and httpx's request building and cookie reading were half the bench's CPU
    (6.8 CPU seconds of a 20-second run at 100 changes a second, 4 requests each)."""

    async def working() -> T:
        connector = aiohttp.TCPConnector(limit=CONNECTIONS)
        timeout = aiohttp.ClientTimeout(total=60)
        async with aiohttp.ClientSession(connector=connector, timeout=timeout, trust_env=False) as http:
            return await work(Vtex(http, store, endpoint))

    return asyncio.run(working())


async def changes_at(vtex: Vtex, flips: Flips, rate: float, seconds: float) -> list[tuple[str, bool, float]]:
    """``rate`` stock changes a second for ``seconds``, each notified to the three affiliates."""
    sent: list[tuple[str, bool, float]] = []
    tasks = []
    started = time.monotonic()
    for n in range(int(rate * seconds)):
        await asyncio.sleep(max(0.0, started + n / rate - time.monotonic()))
        sku, in_stock = flips.next()
        sent.append((sku, in_stock, time.time()))
        tasks.append(asyncio.create_task(vtex.change(sku, in_stock, AFFILIATES)))
    await asyncio.gather(*tasks)
    return sent


def arrivals(
    standins: Standins, sent: list[tuple[str, bool, float]], bound: float
) -> tuple[dict[str, list[float | None]], list[dict[str, Any]]]:
    """Per marketplace, each change's seconds until it arrived (None: not within ``bound``); and
    for each change lost, what the marketplace saw of its SKU from a minute before."""
    found: dict[str, list[float | None]] = {m: [None] * len(sent) for m in MARKETPLACES}
    seen: dict[str, dict[str, list[tuple[list[Any], float]]]] = {m: {} for m in MARKETPLACES}
    read = dict.fromkeys(MARKETPLACES, 0)
    waiting = {m: list(range(len(sent))) for m in MARKETPLACES}
    deadline = time.monotonic() + bound
    while True:
        settled = in_step(standins, sent)  # before the look: the arrivals that settled it are in it
        # Only what each stand-in recorded since the last look, and only the changes not yet seen:
        # this loop shares the cores with the processes it measures.
        for marketplace in MARKETPLACES:
            new = standins.ask(marketplace, "changes", read[marketplace])
            read[marketplace] += len(new)
            for sku, value, at in new:
                seen[marketplace].setdefault(sku, []).append((value, at))
            still = []
            for n in waiting[marketplace]:
                sku, in_stock, at_sent = sent[n]
                first = next(
                    (
                        at
                        for value, at in seen[marketplace].get(sku, [])
                        if at >= at_sent and matches(marketplace, value, in_stock)
                    ),
                    None,
                )
                if first is None:
                    still.append(n)
                else:
                    found[marketplace][n] = first - at_sent
            waiting[marketplace] = still
        if not any(waiting.values()) or settled or time.monotonic() > deadline:
            lost = [
                {
                    "marketplace": m,
                    "sku": sku,
                    "in_stock": in_stock,
                    "sent_at": at_sent,
                    "seen": [v for v in seen[m].get(sku, []) if v[1] > at_sent - 60],
                }
                for m in MARKETPLACES
                for (sku, in_stock, at_sent), at in zip(sent, found[m], strict=True)
                if at is None
            ]
            return found, lost
        time.sleep(0.5)


def in_step(standins: Standins, sent: list[tuple[str, bool, float]]) -> bool:
    """Whether every marketplace holds each changed SKU's last value (nothing more is coming)."""
    last = {sku: in_stock for sku, in_stock, _ in sent}
    for marketplace in MARKETPLACES:
        held = standins.ask(marketplace, "held")
        if not all(matches(marketplace, held.get(sku, []), value) for sku, value in last.items()):
            return False
    return True


def caught_up(sent: list[tuple[str, bool, float]], found: list[float | None]) -> list[float | None]:
    """Each change's seconds until the marketplace showed its value or a later change's: a change
    the queue merged with a later one (its SKU read once, at the later value) counts until the later
    one arrived, so merging never shortens a latency."""
    times: list[float | None] = [None] * len(sent)
    first: dict[str, float] = {}  # per SKU, the earliest arrival among the changes after this one
    for n in range(len(sent) - 1, -1, -1):
        sku, _, at_sent = sent[n]
        took = found[n]
        if took is not None:
            first[sku] = min(first.get(sku, float("inf")), at_sent + took)
        if sku in first:
            times[n] = first[sku] - at_sent
    return times


def percentiles(
    sent: list[tuple[str, bool, float]],
    found: list[float | None],
    held: dict[str, list[Any]],
    marketplace: str,
) -> dict[str, Any]:
    """:func:`caught_up`'s times; ``merged``: the changes that never arrived though the marketplace
    holds its SKU's last value (each was merged into a later change whose value the marketplace
    held already: nothing was left to send); ``lost``: those of a SKU whose last value it does not
    hold."""
    times = caught_up(sent, found)
    last = {sku: in_stock for sku, in_stock, _ in sent}
    right = {sku: matches(marketplace, held.get(sku, []), value) for sku, value in last.items()}
    missing = [sku for (sku, _, _), t in zip(sent, times, strict=True) if t is None]
    return {
        "arrived": sorted(t for t in times if t is not None),
        "merged": sum(1 for sku in missing if right[sku]),
        "lost": sum(1 for sku in missing if not right[sku]),
    }


def summary(parts: list[dict[str, Any]]) -> dict[str, float | int | None]:
    """The p50, p95 and max in ms of the parts' times together, and their counts."""
    arrived: list[float] = sorted(t for part in parts for t in part["arrived"])
    counts = {"merged": sum(p["merged"] for p in parts), "lost": sum(p["lost"] for p in parts)}
    if not arrived:
        return {"p50_ms": None, "p95_ms": None, "max_ms": None, **counts}

    def ms(share: float) -> float:
        return round(1000 * arrived[min(len(arrived) - 1, int(len(arrived) * share))], 1)

    return {"p50_ms": ms(0.5), "p95_ms": ms(0.95), "max_ms": ms(1.0), **counts}


def latency_run(
    standins: Standins, vtex: tuple[str, str], flips: Flips, rate: float, options: argparse.Namespace
) -> dict[str, Any]:
    sent = as_vtex(*vtex, lambda v: changes_at(v, flips, rate, options.seconds))
    found, lost = arrivals(standins, sent, options.bound)
    if lost and options.lost:
        (options.lost / f"lost-{rate:g}.json").write_text(json.dumps(lost, indent=1), encoding="utf-8")
    parts = {m: percentiles(sent, found[m], standins.ask(m, "held"), m) for m in MARKETPLACES}
    return {
        "bench": "sync_latency",
        "rate": rate,
        "changes": len(sent),
        "notifications": len(sent) * len(AFFILIATES),
        "skus": len(flips.skus),
        "latency_s": options.latency,
        **summary(list(parts.values())),
        "marketplaces": {m: summary([part]) for m, part in parts.items()},
        "cpus": os.cpu_count(),
    }


# -- the burst ---------------------------------------------------------------------------------------


async def burst(vtex: Vtex, flips: Flips, count: int) -> float:
    """``count`` stock changes, each notified once, :data:`IN_FLIGHT` at a time; seconds taken."""
    numbers = iter(range(count))

    async def one_at_a_time() -> None:
        for _ in numbers:
            await vtex.change(*flips.next(), AFFILIATES[:1])

    started = time.monotonic()
    await asyncio.gather(*(one_at_a_time() for _ in range(IN_FLIGHT)))
    return time.monotonic() - started


def burst_run(
    standins: Standins,
    vtex: tuple[str, str],
    serve: tuple[int, str],
    flips: Flips,
    options: argparse.Namespace,
) -> dict[str, Any]:
    """The burst (see the module docstring); ``serve`` is the process id and URL of `tradepost serve`."""
    pid, url = serve
    samples: list[float] = [rss_mib(pid)]
    sampling = threading.Event()

    def sample() -> None:
        while not sampling.wait(0.5):
            samples.append(rss_mib(pid))

    sampler = threading.Thread(target=sample, daemon=True)
    sampler.start()
    started = time.monotonic()
    try:
        posting = as_vtex(*vtex, lambda v: burst(v, flips, options.burst))
        queued = _drain(url, options.drain)
    finally:
        sampling.set()
        sampler.join()
    drained = time.monotonic() - started
    samples.append(rss_mib(pid))
    return {
        "bench": "sync_burst",
        "notifications": options.burst,
        "skus": len(flips.skus),
        "latency_s": options.latency,
        "posted_per_s": round(options.burst / posting, 1),
        "drained_s": round(drained, 1),
        "queued_after": queued,
        "rss_start_mib": round(samples[0], 1),
        "rss_peak_mib": round(max(samples), 1),
        "rss_end_mib": round(samples[-1], 1),
        "lost": {m: _lost(standins, m, flips) for m in MARKETPLACES},
        "cpus": os.cpu_count(),
    }


def _drain(serve: str, bound: float) -> int:
    """Seconds until the queue is empty (or ``bound`` passed); the count left."""
    deadline = time.monotonic() + bound
    while True:
        queued = int(httpx.get(f"{serve}/healthz", timeout=10).json()["queued"])
        if queued == 0 or time.monotonic() > deadline:
            return queued
        time.sleep(0.25)


def _lost(standins: Standins, marketplace: str, flips: Flips) -> int:
    held = standins.ask(marketplace, "held")
    return sum(
        1 for sku, in_stock in flips.in_stock.items() if not matches(marketplace, held.get(sku, []), in_stock)
    )


# -- the bench ---------------------------------------------------------------------------------------


def flippable(standins: Standins) -> Flips:
    """The SKUs in stock on every marketplace, with no warehouse of unlimited stock in VTEX: each
    flip sets every warehouse the SKU has, so each marketplace's value changes every time (a SKU
    sold out somewhere may lack the warehouses a marketplace counts, and never come in stock)."""
    held = [standins.ask(m, "held") for m in MARKETPLACES]
    skus: Any = standins.box.standins["vtex"].skus
    return Flips(
        [
            sku
            for sku in sorted(set.intersection(*(set(h) for h in held)))
            if all(matches(m, h[sku], True) for m, h in zip(MARKETPLACES, held, strict=True))
            and not any(w.get("hasUnlimitedQuantity") for w in skus[sku].inventory["balance"])
        ]
    )


def run(options: argparse.Namespace) -> list[dict[str, Any]]:
    folder = Path(tempfile.mkdtemp(prefix="tradepost-bench-sync-latency-"))
    catalog = list(generate(options.skus, broken=False)) if options.skus else None
    box = build_sandbox(catalog or read_catalog(ROOT / "examples" / "catalog.jsonl"))
    sockets = {name: _bind() for name in box.standins}
    box.ports.update({name: int(sock.getsockname()[1]) for name, sock in sockets.items()})
    config = project(box, folder / "project", options.rate_limit, options.every_marketplace)
    standins = Standins(box)
    standins.start(sockets)
    rows: list[dict[str, Any]] = []
    try:
        applied = subprocess.run(
            _cli("apply", "-c", str(config)), env=_env(), capture_output=True, text=True, timeout=600
        )
        if applied.returncode != 0:
            raise SystemExit(f"tradepost apply failed:\n{applied.stdout}{applied.stderr}")
        flips = flippable(standins)
        standins.ask("vtex", "quiet")  # the bench notifies, as VTEX would (see the module docstring)
        for name in box.standins:
            standins.ask(name, "latency", options.latency)
        secret = (config.parent / "secrets" / "serve_secret").read_text(encoding="utf-8").strip()
        with (
            serving(config, folder / "serve.log") as (server, url),
            profiling(
                {"serve": server.pid, **{name: p.pid for name, p in standins.processes.items() if p.pid}},
                options.profile,
            ),
        ):
            vtex = (box.url("vtex"), f"{url}/api/notification/?k={secret}")
            pids = {"serve": server.pid, **{name: p.pid for name, p in standins.processes.items() if p.pid}}
            if options.warm_up:
                warm = argparse.Namespace(**{**vars(options), "seconds": options.warm_up, "lost": None})
                row = latency_run(standins, vtex, flips, WARM_UP_RATE, warm)
                print(f"warm-up (not counted): {_line(row)}", file=sys.stderr)
            for rate in options.rates:
                before = cpu_seconds(pids)
                rows.append(latency_run(standins, vtex, flips, rate, options))
                after = cpu_seconds(pids)
                rows[-1]["cpu_s"] = {k: round(after[k] - before.get(k, 0.0), 1) for k in after}
                print(_line(rows[-1]), file=sys.stderr)
            if options.burst:
                rows.append(burst_run(standins, vtex, (server.pid, url), flips, options))
    finally:
        standins.stop()
    return rows


def _line(row: dict[str, Any]) -> str:
    if row["bench"] == "sync_burst":
        return (
            f"burst {row['notifications']} notifications over {row['skus']} SKUs: "
            f"posted at {row['posted_per_s']}/s, queue empty after {row['drained_s']} s "
            f"({row['queued_after']} left); serve RSS {row['rss_start_mib']} -> peak {row['rss_peak_mib']} "
            f"-> {row['rss_end_mib']} MiB; lost {row['lost']}"
        )
    cells = [f"{row['rate']:>6}/s {row['changes']:>6}"]
    for part in [row, *row["marketplaces"].values()]:
        times = f"{part['p50_ms']!s:>8} {part['p95_ms']!s:>8} {part['max_ms']!s:>8}"
        cells.append(f"{times} {part['lost']:>4} {part['merged']:>5}")
    return " |".join(cells)


def out_of_time(*_: object) -> None:
    raise SystemExit("the bench ran out of time (--timeout); everything it started is being stopped")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--rates", type=float, nargs="*", default=[10, 100], help="changes per second, one run each"
    )
    parser.add_argument("--seconds", type=float, default=20, help="seconds each rate runs")
    parser.add_argument(
        "--warm-up",
        type=float,
        default=5,
        help="seconds of changes at 5/s first, not counted: serve's worker starts (imports, rules, "
        "connections, tokens) before the runs measure it (0: none)",
    )
    parser.add_argument("--burst", type=int, default=10000, help="notifications in the burst (0: none)")
    parser.add_argument("--skus", type=int, default=0, help="a synthetic catalog of N SKUs (0: examples/)")
    parser.add_argument("--latency", type=float, default=0.05, help="seconds every stand-in API answer takes")
    parser.add_argument(
        "--rate-limit", type=float, default=400, help="requests/s the project allows each marketplace"
    )
    parser.add_argument(
        "--bound", type=float, default=30, help="seconds after the last change a change may take"
    )
    parser.add_argument(
        "--drain", type=float, default=600, help="seconds the burst's queue may take to drain"
    )
    parser.add_argument(
        "--every-marketplace",
        action="store_true",
        help="sync every marketplace of the sandbox (eight), not only the three measured",
    )
    parser.add_argument("--timeout", type=float, default=1500, help="seconds the whole bench may take")
    parser.add_argument("--lost", type=Path, help="a folder for what each lost change's marketplace saw")
    parser.add_argument("--profile", type=Path, help="a folder for py-spy's stacks of each process")
    options = parser.parse_args()
    signal.signal(signal.SIGALRM, out_of_time)
    signal.alarm(int(options.timeout))
    rows = run(options)
    signal.alarm(0)
    head = " ".join(f"{'p50':>8} {'p95':>8} {'max':>8} {'lost':>4} {'mrgd':>5} |" for _ in range(4))
    print(f"{'rate':>8} {'changes':>6} |{head}   (ms; overall, {', '.join(MARKETPLACES)})")
    for row in rows:
        print(_line(row))
    for row in rows:
        print(json.dumps(row))


if __name__ == "__main__":
    main()
