"""`tradepost worker` and `tradepost apply --shards N` on a throw-away PostgreSQL, over loopback.

Worker processes run as a user runs them (``python -m cli.main worker``) against the sandbox's
stand-ins; the coordinator runs in process. What must hold: a sharded apply lists every SKU
exactly once, as a plain apply does; a Mercado Libre family never spans two shards; a worker
SIGKILLed mid-shard loses nothing (another takes its job over, nothing is listed twice); workers
drain the real-time sync's queue; with an SQLite state both commands refuse (exit 2). Every wait
is bounded and every process started is stopped.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

from bench.bench_kills import holdings
from engine.project import apply_records, load_project, open_marketplace, open_state, planned_records
from engine.project._shards import family_key, shard_of
from marketplaces.sandbox import Sandbox
from tests import _postgres
from tests._harness import ROOT, Loopback, subset, tradepost, write_project
from tests.test_state_contract import server as server
from tests.test_sync_worker import SOLD_OUT, in_stock_everywhere, quantities, queue, queued, set_stock

pytest.importorskip("procrastinate", reason="procrastinate is not installed (pip install -e .)")

TIMEOUT = 60.0
"""Seconds any one wait may take."""
HEARTBEAT = "1"
"""The workers' heartbeat: a killed worker's job is handed over about three seconds after its death."""
MARKETPLACES = ("mercadolibre", "amazon", "google", "facebook", "carrefour", "magalu", "dafiti", "netshoes")


def on_postgres(config: Path, server: _postgres.Server, monkeypatch: pytest.MonkeyPatch) -> Path:
    """The project's state moved to a fresh PostgreSQL database (password from the environment)."""
    url = server.url(server.database(), "env:TRADEPOST_TEST_PG")
    text = config.read_text(encoding="utf-8")
    config.write_text(re.sub(r"(?m)^state: .*$", f"state: {url}", text), encoding="utf-8")
    monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
    assert load_project(config).state_url == url
    return config


@pytest.fixture
def project(
    loopback: Loopback, tmp_path: Path, server: _postgres.Server, monkeypatch: pytest.MonkeyPatch
) -> tuple[Sandbox, Path]:
    box = loopback.sandbox(subset(30))
    return box, on_postgres(write_project(box, tmp_path / "project"), server, monkeypatch)


class Workers:
    """`tradepost worker` processes; each one's output in a file, all stopped at the end."""

    def __init__(self, config: Path, folder: Path) -> None:
        self.config, self.folder = config, folder
        self.processes: list[subprocess.Popen[bytes]] = []

    def start(self, failpoint: str | None = None) -> subprocess.Popen[bytes]:
        env = {k: v for k, v in os.environ.items() if k != "TRADEPOST_FAILPOINT"}
        if failpoint:
            env["TRADEPOST_FAILPOINT"] = failpoint
        log = (self.folder / f"worker{len(self.processes)}.log").open("wb")
        args = ["worker", "-c", str(self.config), "--heartbeat", HEARTBEAT, "--poll", "0.1", "--lease", "2"]
        process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", *args], cwd=ROOT, env=env, stdout=log, stderr=log
        )
        self.processes.append(process)
        return process

    def logs(self) -> str:
        return "\n".join(p.read_text(errors="replace") for p in sorted(self.folder.glob("worker*.log")))

    def stop(self) -> list[int | None]:
        """SIGTERM each (graceful), SIGKILL any still running after the timeout; their exit codes."""
        for process in self.processes:
            if process.poll() is None:
                process.send_signal(signal.SIGTERM)
        codes: list[int | None] = []
        for process in self.processes:
            try:
                codes.append(process.wait(timeout=TIMEOUT))
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=TIMEOUT)
                codes.append(None)
        return codes


@contextmanager
def workers(config: Path, folder: Path) -> Iterator[Workers]:
    running = Workers(config, folder)
    try:
        yield running
    finally:
        running.stop()


def until(condition: Callable[[], bool], what: str) -> None:
    deadline = time.monotonic() + TIMEOUT
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def listed_once(box: Sandbox) -> dict[str, set[str]]:
    """Each marketplace's SKUs; fails when one is held by more than one listing."""
    found = {}
    for marketplace in MARKETPLACES:
        held = holdings(box, marketplace)
        twice = {sku: h for sku, h in held.items() if len(h) > 1}
        assert not twice, f"{marketplace} lists these SKUs more than once: {twice}"
        found[marketplace] = set(held)
    return found


def test_a_sharded_apply_with_two_workers_lists_what_a_plain_apply_lists_once(
    project: tuple[Sandbox, Path],
    loopback: Loopback,
    tmp_path: Path,
    server: _postgres.Server,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    box, config = project
    with workers(config, tmp_path) as running:
        running.start()
        running.start()
        code, out, err = tradepost("apply", "-c", str(config), "--shards", "3", "--json")
        assert code == 0, out + err + running.logs()
        assert running.stop() == [0, 0], running.logs()
    document = json.loads(out)["marketplaces"]
    assert {d["marketplace"] for d in document} == set(MARKETPLACES)
    assert all(d["failed"] == 0 and not d["failed_shards"] and d["given_up"] is None for d in document)
    sharded = listed_once(box)
    code, out, err = tradepost("plan", "-c", str(config), "--format", "json")
    assert code == 0, err
    assert {c["op"] for m in json.loads(out)["marketplaces"] for c in m["changes"]} <= {
        "unchanged",
        "invalid",
    }

    plain_box = loopback.sandbox(subset(30))
    plain = on_postgres(write_project(plain_box, tmp_path / "plain"), server, monkeypatch)
    code, out, err = tradepost("apply", "-c", str(plain))
    assert code == 0, out + err
    assert listed_once(plain_box) == sharded
    assert sum(d["applied"] for d in document) == sum(len(s) for s in sharded.values())


def test_a_mercado_libre_family_never_spans_two_shards(loopback: Loopback, tmp_path: Path) -> None:
    box = loopback.sandbox(subset(30))
    project = load_project(write_project(box, tmp_path / "project"))
    run = open_marketplace(project, "mercadolibre")
    with open_state(project) as state:
        records = planned_records(run, project, state)
    shards_of: dict[str, set[int]] = {}
    for record in records:
        shard = shard_of(family_key(record, {}), 3)
        for sku in record.get("family") or [record["sku_id"]]:
            shards_of.setdefault(str(record["after"]["product_id"]), set()).add(shard)
            shards_of.setdefault(f"sku:{sku}", set()).add(shard)
    families = [r for r in records if r.get("family")]
    assert families, "the sample catalog must have a family to test"
    assert all(len(shards) == 1 for shards in shards_of.values()), shards_of
    assert len({s for shards in shards_of.values() for s in shards}) > 1  # the work is spread
    pinned = int.from_bytes(hashlib.sha256(b"family:123").digest()[:8], "big") % 3
    assert shard_of("family:123", 3) == pinned  # SHA-256: the same in every process and host


def test_a_worker_killed_mid_shard_loses_nothing_and_lists_nothing_twice(
    project: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    box, config = project
    with workers(config, tmp_path) as running:
        doomed = running.start(failpoint="apply:recorded:#3")
        result: list[tuple[int, str, str]] = []

        def coordinate() -> None:
            result.append(
                tradepost("apply", "-c", str(config), "-m", "mercadolibre", "--shards", "1", "--json")
            )

        coordinator = threading.Thread(target=coordinate)
        coordinator.start()
        try:
            until(lambda: doomed.poll() is not None, "the worker to die at its failpoint")
            assert doomed.returncode == -signal.SIGKILL, running.logs()
            running.start()
        finally:
            coordinator.join(timeout=TIMEOUT)
        assert not coordinator.is_alive(), running.logs()
        code, out, err = result[0]
        assert code == 0, out + err + running.logs()
    listed_once(box)
    code, out, err = tradepost("plan", "-c", str(config), "-m", "mercadolibre", "--format", "json")
    assert {c["op"] for m in json.loads(out)["marketplaces"] for c in m["changes"]} <= {
        "unchanged",
        "invalid",
    }


def test_workers_drain_the_notification_queue(project: tuple[Sandbox, Path], tmp_path: Path) -> None:
    box, config = project
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    skus = in_stock_everywhere(box)[:4]
    for sku in skus:
        set_stock(box, sku, 0)
    before = {m: box.standins[m].total_requests() for m in MARKETPLACES}
    queue(config, *skus)
    with workers(config, tmp_path) as running:
        running.start()
        running.start()
        until(lambda: queued(config) == 0, "the workers to drain the queue")
        assert running.stop() == [0, 0], running.logs()
    assert all(quantities(box, sku) == SOLD_OUT for sku in skus)
    listed_once(box)
    sent = {m: box.standins[m].total_requests() - before[m] for m in MARKETPLACES}
    assert all(0 < count <= 4 * len(skus) for count in sent.values()), sent  # each SKU sent once, not twice


def test_without_postgresql_both_commands_refuse_and_say_how_to_move(
    loopback: Loopback, tmp_path: Path
) -> None:
    config = write_project(loopback.sandbox(subset(4)), tmp_path / "project")
    for args in (["worker"], ["apply", "--shards", "2"]):
        code, out, err = tradepost(*args, "-c", str(config))
        assert code == 2, out + err
        assert "needs a PostgreSQL state" in err and "tradepost state migrate" in err, err


def test_with_no_worker_the_coordinator_gives_up_and_a_rerun_finishes(
    project: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    box, config = project
    code, out, err = tradepost(
        "apply", "-c", str(config), "-m", "google", "--shards", "2", "--shard-timeout", "1"
    )
    assert code == 1, out + err
    assert "waiting for workers: 0 of 2 shards taken" in err and "no worker took 2 of 2 shards" in err, err
    assert not holdings(box, "google")
    with workers(config, tmp_path) as running:
        running.start()
        code, out, err = tradepost("apply", "-c", str(config), "-m", "google", "--shards", "2")
        assert code == 0, out + err + running.logs()
    assert listed_once(box)["google"]


def test_a_family_applied_before_is_skipped_whole_when_its_records_come_again(
    loopback: Loopback, tmp_path: Path
) -> None:
    """What a shard run again after a kill does: the leader found applied lets its followers go
    (they waited for it forever before)."""
    box = loopback.sandbox(subset(30))
    project = load_project(write_project(box, tmp_path / "project"))
    run = open_marketplace(project, "mercadolibre")
    with open_state(project) as state:
        records = planned_records(run, project, state)
        assert any(r.get("family") for r in records)
        first = asyncio.run(apply_records(run, project, state, records))
        again = asyncio.run(asyncio.wait_for(apply_records(run, project, state, records), TIMEOUT))
    assert first.failed == again.failed == again.requests == 0
    listed_once(box)
