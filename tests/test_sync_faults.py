"""The worker of `tradepost serve --sync` while VTEX or a marketplace fails, during a burst.

Over loopback: the sandbox's project applied in full, then a burst of stock notifications (one
SKU each, sold out in VTEX) posted to `serve --sync`, run as its own process, while the VTEX
stand-in answers 429, 500 or drops the connection for its first calls. Nothing may be lost or
applied twice, the failing reads must be retried with backoff (a bounded number of calls, not a
loop), the output must show no traceback and no "internal error", and once VTEX answers again
every SKU must reach every marketplace. One marketplace answering 500 to everything must not
hold the others up: they get the burst while its SKUs stay queued for it alone.
"""

from __future__ import annotations

import subprocess
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests._harness import ROOT, Loopback, pace, subset, tradepost
from tests.test_sandbox_loop import free_port
from tests.test_serve_kills import TIMEOUT, Endpoint, Serving, eventually, stop
from tests.test_sync_worker import MARKETPLACES, SOLD_OUT, in_stock_everywhere, quantities, queued, set_stock

BURST = 6
"""SKUs notified at once."""
FAULTED_CALLS = 8
"""VTEX calls that fail before it recovers (each a read of the worker's, retried)."""
FAULT_WINDOW = 2.5
"""Seconds VTEX keeps failing at least: long enough for a pass, its backoff and the next."""
QUIET = 0.5
"""Seconds without a VTEX call the worker must leave at least once in that window: its backoff
(a pass that failed is tried again after the poll interval, then doubling), where a loop leaves none."""
MAX_CALL_RATE = 500
"""VTEX calls a second the worker may average over that window: a pass re-reads each SKU's four
resources a few times (429s say to retry in 50 ms); a loop without backoff makes thousands."""

VTEX_FAULTS = {
    "429": Faults(throttle_rate=1.0),
    "500": Faults(error_rate=1.0),
    "no answer": Faults(drop_rate=1.0),
}


@pytest.fixture
def burst(loopback: Loopback, tmp_path: Path) -> Iterator[tuple[Sandbox, Path, list[str]]]:
    """The sandbox applied everywhere, and BURST of its SKUs sold out in VTEX (not yet notified)."""
    box = loopback.sandbox(subset(16))
    config = box.write_project(tmp_path / "project", ROOT / "rules", serve_port=free_port())
    pace(config)
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    skus = in_stock_everywhere(box)[:BURST]
    assert len(skus) == BURST
    for sku in skus:
        set_stock(box, sku, 0)
    yield box, config, skus


@pytest.fixture
def serving() -> Iterator[Serving]:
    started = Serving()
    yield started
    started.close()


def start(serving: Serving, config: Path) -> subprocess.Popen[str]:
    """`serve --sync` with a short lease (a failing marketplace is retried within 2 s), once it answers."""
    server = serving.start(config, "--lease", "4")
    Endpoint(config).wait_until_up()
    return server


def notify_all(config: Path, skus: list[str]) -> None:
    endpoint = Endpoint(config)
    for sku in skus:
        answer = endpoint.notify(sku)
        assert answer is not None and answer.status_code == 200


def watch(count: Callable[[], int]) -> list[tuple[float, int]]:
    """``count()`` sampled every 50 ms until it reached FAULTED_CALLS and FAULT_WINDOW passed."""
    started = time.monotonic()
    samples = [(0.0, count())]
    while samples[-1][1] < FAULTED_CALLS or samples[-1][0] < FAULT_WINDOW:
        assert samples[-1][0] < TIMEOUT, samples[-1]
        time.sleep(0.05)
        samples.append((time.monotonic() - started, count()))
    return samples


def longest_quiet(samples: list[tuple[float, int]]) -> float:
    """The longest stretch of the samples over which the count did not move."""
    longest, since = 0.0, samples[0]
    for at, value in samples[1:]:
        if value != since[1]:
            since = (at, value)
        longest = max(longest, at - since[0])
    return longest


def writes(box: Sandbox) -> dict[str, int]:
    return {m: box.standins[m].total_requests() for m in MARKETPLACES}


def all_sold_out(box: Sandbox, skus: list[str], marketplaces: tuple[str, ...] = MARKETPLACES) -> bool:
    return all(quantities(box, sku)[m] == SOLD_OUT[m] for sku in skus for m in marketplaces)


def settled(box: Sandbox, config: Path, server: subprocess.Popen[str], skus: list[str]) -> None:
    """Every SKU once on every marketplace, the queue empty, a clean stop, and nothing left to do."""
    assert eventually(lambda: queued(config) == 0 and all_sold_out(box, skus)), [
        quantities(box, s) for s in skus
    ]
    output = stop(server)
    assert "Traceback" not in output and "internal error" not in output, output
    for sku in skus:
        assert quantities(box, sku) == SOLD_OUT  # one listing each, at the new quantity
    code, out, _ = tradepost("plan", "-c", str(config), "--detailed-exitcode")
    assert code == 0, out


@pytest.mark.parametrize("fault", list(VTEX_FAULTS))
def test_vtex_failing_during_a_burst_loses_nothing_and_is_retried_with_backoff(
    burst: tuple[Sandbox, Path, list[str]], serving: Serving, fault: str
) -> None:
    box, config, skus = burst
    vtex = box.standins["vtex"]
    vtex.faults = VTEX_FAULTS[fault]
    before, calls = writes(box), vtex.total_requests()
    server = start(serving, config)
    notify_all(config, skus)
    calls_at = watch(lambda: vtex.total_requests() - calls)
    elapsed, failed_calls = calls_at[-1]
    assert FAULTED_CALLS <= failed_calls <= MAX_CALL_RATE * elapsed, calls_at  # retried, not in a loop
    assert longest_quiet(calls_at) >= QUIET, calls_at
    assert writes(box) == before  # nothing planned from what could not be read
    assert queued(config) == BURST
    vtex.faults = Faults()
    settled(box, config, server, skus)


def test_one_marketplace_failing_does_not_hold_the_others_up(
    burst: tuple[Sandbox, Path, list[str]], serving: Serving
) -> None:
    box, config, skus = burst
    amazon = box.standins["amazon"]
    amazon.faults = Faults(error_rate=1.0)
    listed = {sku: quantities(box, sku)["amazon"] for sku in skus}
    server = start(serving, config)
    notify_all(config, skus)
    assert eventually(lambda: all_sold_out(box, skus, ("mercadolibre", "google")))
    assert {sku: quantities(box, sku)["amazon"] for sku in skus} == listed
    assert queued(config) == BURST  # each still owed to Amazon
    amazon.faults = Faults()
    settled(box, config, server, skus)
