"""`tradepost serve --sync` killed with SIGKILL at each step of a notification's way, then restarted.

Over loopback: the sandbox's project (its `serve:` section, account and affiliates) applied in
full, then one SKU sold out in VTEX and its stock notification posted to `serve --sync`, run as
its own process with ``TRADEPOST_FAILPOINT`` naming where it dies: before the queue's commit,
after it (no answer sent), inside the worker's apply (every point a stock update reaches,
Amazon's feed round trip included) and after the apply before the queue is told. Then `serve
--sync` is started again, and the marketplaces must hold the change once each (one listing, the
new quantity), the queue must be empty, and a full plan must find nothing left to do.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from ruamel.yaml import YAML

from marketplaces.sandbox import Sandbox
from tests._harness import ROOT, Loopback, pace, subset, tradepost, tradepost_process
from tests.test_sandbox_loop import free_port
from tests.test_sync_worker import SOLD_OUT, in_stock_everywhere, quantities, queued, set_stock

TIMEOUT = 30.0
"""Seconds any one wait may take (a server starting, a notification reaching the marketplaces)."""

LEASE = "1"
"""The killed worker's lease (seconds): its SKUs are the restarted worker's right after."""

WORKER_POINTS = (
    # engine/sync/_executor.py, the points a stock update reaches on the three marketplaces
    "apply:before-send",
    "apply:sent",
    "apply:pending-recorded",  # Amazon's feed accepted, not yet processed
    "apply:recorded",
    "apply:confirmed",
    "apply:pending-cleared",
    "amazon:confirm-read",
    # engine/project/_sync.py: applied and recorded, the queue not yet told
    "sync:applied",
)


class Endpoint:
    """The project's `serve` endpoint as VTEX reaches it: its URL, and the body of one affiliate."""

    def __init__(self, config: Path) -> None:
        project = YAML(typ="safe").load(config.read_text(encoding="utf-8"))
        serve = project["serve"]
        secret = (config.parent / "secrets" / "serve_secret").read_text(encoding="utf-8").strip()
        self.base = f"http://{serve['host']}:{serve['port']}"
        self.url = f"{self.base}/api/notification/?k={secret}"
        self.account = serve["account"]
        self.affiliate = "MLB"  # rules/mercadolibre.yaml's affiliate: the sandbox registers it

    def body(self, sku: str) -> dict[str, Any]:
        return {
            "IdSku": sku,
            "An": self.account,
            "IdAffiliate": self.affiliate,
            "DateModified": "2026-12-06T06:00:00.000",
            "StockModified": True,
        }

    def wait_until_up(self) -> None:
        deadline = time.monotonic() + TIMEOUT
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.base}/healthz", timeout=TIMEOUT).status_code == 200:
                    return
            except httpx.TransportError:
                time.sleep(0.05)
        raise AssertionError("serve did not start")

    def notify(self, sku: str) -> httpx.Response | None:
        """VTEX's POST; None when the connection ended without an answer (no 2xx: not acknowledged)."""
        try:
            return httpx.post(self.url, json=self.body(sku), timeout=TIMEOUT)
        except httpx.TransportError:
            return None


@pytest.fixture
def served(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    """The sandbox's project, with its `serve:` section, applied everywhere."""
    box = loopback.sandbox(subset(4))
    config = box.write_project(tmp_path / "project", ROOT / "rules", serve_port=free_port())
    pace(config)
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    return box, config


class Killed:
    """`serve --sync` with a failpoint, in the background (the harness's fork of the CLI)."""

    def __init__(self, config: Path, failpoint: str) -> None:
        self.result: list[subprocess.CompletedProcess[str]] = []
        args = ("serve", "-c", str(config), "--sync", "--lease", LEASE)
        self.thread = threading.Thread(
            target=lambda: self.result.append(tradepost_process(*args, failpoint=failpoint, timeout=TIMEOUT)),
            daemon=True,
        )
        self.thread.start()

    def died(self) -> subprocess.CompletedProcess[str]:
        self.thread.join(TIMEOUT + 5)
        (done,) = self.result
        return done


class Serving:
    """`serve --sync` as its own process (no failpoint), as often as a test starts it; :meth:`close`
    kills what a failed test left running."""

    def __init__(self) -> None:
        self.started: list[subprocess.Popen[str]] = []

    def start(self, config: Path, *options: str) -> subprocess.Popen[str]:
        server = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "-c", str(config), "--sync", *options],
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            cwd=ROOT,
        )
        self.started.append(server)
        return server

    def close(self) -> None:
        for server in self.started:
            if server.poll() is None:
                server.kill()
                server.communicate(timeout=TIMEOUT)


@pytest.fixture
def serving() -> Iterator[Serving]:
    started = Serving()
    yield started
    started.close()


def eventually(check: Callable[[], bool]) -> bool:
    deadline = time.monotonic() + TIMEOUT
    while not check() and time.monotonic() < deadline:
        time.sleep(0.05)
    return check()


def stop(server: subprocess.Popen[str]) -> str:
    server.terminate()
    out, err = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 0, out + err
    return out + err


@pytest.mark.parametrize("failpoint", ["notify:before-commit", "notify:queued", *WORKER_POINTS])
def test_serve_sync_killed_at_each_step_then_restarted_applies_the_change_once(
    served: tuple[Sandbox, Path], serving: Serving, failpoint: str
) -> None:
    box, config = served
    endpoint = Endpoint(config)
    sku = in_stock_everywhere(box)[0]
    set_stock(box, sku, 0)
    killed = Killed(config, failpoint)
    endpoint.wait_until_up()
    answer = endpoint.notify(sku)
    if failpoint.startswith("notify:"):
        assert answer is None  # killed before its 200: VTEX saw no acknowledgement
    else:
        assert answer is not None and answer.status_code == 200
    died = killed.died()
    if failpoint.startswith("notify:"):
        assert died.returncode == -9, died.stdout + died.stderr
    else:  # the worker process died: serve stops with it, and says so
        assert died.returncode == 1, died.stdout + died.stderr
        assert "the sync worker ended (killed by SIGKILL); serve stopped with it" in died.stderr
        assert "Traceback" not in died.stderr
    assert queued(config) == (0 if failpoint == "notify:before-commit" else 1)  # never half

    server = serving.start(config)
    if failpoint == "notify:before-commit":  # nothing was committed: VTEX's copy is the one resent
        endpoint.wait_until_up()
        resent = endpoint.notify(sku)
        assert resent is not None and resent.status_code == 200
    assert eventually(lambda: queued(config) == 0 and quantities(box, sku) == SOLD_OUT), quantities(box, sku)
    output = stop(server)
    assert "Traceback" not in output and "internal error" not in output
    assert quantities(box, sku) == SOLD_OUT  # one listing per marketplace, the new quantity: once
    code, out, _ = tradepost("plan", "-c", str(config), "--detailed-exitcode")
    assert code == 0, out  # the full pass agrees: nothing lost, nothing left half done


def _children(pid: int) -> list[int]:
    """The processes ``pid`` started (Linux's /proc)."""
    text = Path(f"/proc/{pid}/task/{pid}/children").read_text(encoding="utf-8")
    return [int(child) for child in text.split()]


def _alive(pid: int) -> bool:
    try:
        state = Path(f"/proc/{pid}/stat").read_text(encoding="utf-8").rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return False
    return state != "Z"  # a zombie has ended; only its parent has not read its status yet


def test_the_worker_of_a_killed_serve_ends_and_a_killed_worker_stops_serve(
    served: tuple[Sandbox, Path], serving: Serving
) -> None:
    """`serve --sync`'s worker is a process of its own: it never outlives its server (the pipe
    between them ends when the server dies, even by SIGKILL), and serve never goes on without it."""
    _, config = served
    endpoint = Endpoint(config)
    server = serving.start(config)
    endpoint.wait_until_up()
    assert eventually(lambda: len(_children(server.pid)) == 1)
    (worker,) = _children(server.pid)
    server.kill()
    server.communicate(timeout=TIMEOUT)
    assert eventually(lambda: not _alive(worker)), "the worker outlived its server"

    server = serving.start(config)
    endpoint.wait_until_up()
    assert eventually(lambda: len(_children(server.pid)) == 1)
    (worker,) = _children(server.pid)
    os.kill(worker, signal.SIGKILL)
    _, err = server.communicate(timeout=TIMEOUT)
    assert server.returncode == 1, err
    assert "the sync worker ended (killed by SIGKILL); serve stopped with it" in err
    assert "Traceback" not in err
