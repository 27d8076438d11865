"""Apply end to end: stand-ins in process with faults, over loopback sockets, and a run killed midway."""

from __future__ import annotations

import asyncio
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path
from typing import Any

import pytest

from engine.project._assembly import open_state
from engine.project._config import load_project
from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests._harness import (
    CATALOG,
    ROOT,
    Loopback,
    pace,
    run_apply,
    set_options,
    subset,
    tradepost_process,
    write_project,
)


def seller_skus(standin: Any) -> Counter[str]:
    """How many times each SKU exists on the Mercado Libre stand-in (items and variations)."""
    found: Counter[str] = Counter()
    for item in standin.items.values():
        holders = item.get("variations") or [item]
        for holder in holders:
            for attribute in holder.get("attributes", []):
                if attribute["id"] == "SELLER_SKU":
                    found[attribute["value_name"]] += 1
    return found


@pytest.fixture
def sandbox(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    box = loopback.sandbox(subset(60))
    return box, write_project(box, tmp_path / "project")


@pytest.mark.parametrize(
    "marketplace",
    ["mercadolibre", "google", "amazon", "facebook", "carrefour", "magalu", "dafiti", "netshoes"],
)
def test_with_20_percent_faults_every_change_lands_exactly_once(
    sandbox: tuple[Sandbox, Path], marketplace: str
) -> None:
    box, config = sandbox
    # Amazon's own requests (tokens, confirmations) back off from 1 s; the executor's retries are
    # shortened the same way by run_apply. Every retry still happens.
    # Five tries of a request each faulted 20% of the time fail once in 3,000 requests: Amazon's own
    # reads try eight times here, as the executor does, so the test does not fail by chance.
    set_options(config, "amazon", retry_seconds="0.001", max_attempts="8")
    set_options(config, "facebook", retry_seconds="0.001")
    faults = Faults(error_rate=0.07, throttle_rate=0.07, drop_rate=0.06, seed=7)
    summary = run_apply(config, marketplace, box, faults)
    assert summary.failed == 0, summary.failures
    assert summary.retries > 0  # the faults really happened
    standin = box.standins[marketplace]
    with open_state(load_project(config)) as state:
        applied = set(state.all_sku_ids(marketplace))
    assert len(applied) == summary.applied > 20
    if marketplace == "mercadolibre":
        counts = seller_skus(standin)
        assert set(counts) == applied
        assert set(counts.values()) == {1}  # none twice, none missing
    elif marketplace == "google":
        assert {i["offerId"] for i in standin.inputs.values()} == applied
        assert len(standin.inputs) == len(applied)
    elif marketplace == "facebook":
        standin.settle(everything=True)
        assert set(standin.items) == applied
    elif marketplace == "carrefour":
        assert set(standin.offers) == applied  # one offer per SKU, on its catalogued product
    elif marketplace == "magalu":
        published = {sku for sku, stored in standin.skus.items() if stored["status"] == "PUBLISHED"}
        assert published == set(standin.prices) == set(standin.stocks) == applied
        assert not standin.discarded  # no price or stock went before the review
    elif marketplace == "dafiti":
        assert set(standin.products) == applied  # SellerSku is unique on SellerCenter
    elif marketplace == "netshoes":
        assert set(standin.skus) == applied  # one SKU each, in its family's one product
        assert all(standin.skus[sku].active == {"NS": True} for sku in applied)
    else:
        assert set(standin.items) == applied


def test_a_second_apply_with_no_catalog_change_sends_nothing(sandbox: tuple[Sandbox, Path]) -> None:
    box, config = sandbox
    first = run_apply(config, "google", box)
    assert first.applied > 20
    before = box.standins["google"].total_requests()
    second = run_apply(config, "google", box)
    assert (second.applied, second.requests) == (0, 0)
    assert box.standins["google"].total_requests() == before


def test_end_to_end_over_loopback_sockets(sandbox: tuple[Sandbox, Path]) -> None:
    """sandbox, `tradepost apply` as a user runs it, then the marketplace holds what the plan said."""
    box, config = sandbox
    plan = tradepost_process("plan", "-c", str(config), "-m", "google", "--format", "json")
    creates = {
        c["sku_id"]: c for c in json.loads(plan.stdout)["marketplaces"][0]["changes"] if c["op"] == "create"
    }
    result = tradepost_process("apply", "-c", str(config), "-m", "google", "--json", timeout=300)
    assert result.returncode == 0, result.stderr
    summary = json.loads(result.stdout)["marketplaces"][0]
    assert summary["applied"] == len(creates) and summary["failed"] == 0
    inputs = {i["offerId"]: i for i in box.standins["google"].inputs.values()}
    assert set(inputs) == set(creates)
    for sku_id, change in creates.items():
        price = inputs[sku_id]["productAttributes"]["price"]
        expected = int((float(change["after"]["price"]) * 1_000_000) + 0.5)
        assert int(price["amountMicros"]) == expected  # to the cent, in micros
    for secret in ("sandbox-client-secret-not-a-secret", "1//sandbox-refresh-token"):
        assert secret not in result.stdout + result.stderr


def test_a_second_apply_for_the_same_marketplace_exits_at_once(sandbox: tuple[Sandbox, Path]) -> None:
    box, config = sandbox
    project = load_project(config)
    with open_state(project) as state:
        state.db.execute(  # pid 1 is alive here, and its lease runs for another hour
            "INSERT INTO locks VALUES ('google', 'another apply', 1, ?, 0, ?, 'token', '')",
            (os.uname().nodename, time.time() + 3600),
        )
    result = tradepost_process("apply", "-c", str(config), "-m", "google", timeout=60)
    assert result.returncode == 1
    assert "google is locked by another apply" in result.stderr
    assert box.standins["google"].total_requests() == 0


def test_an_apply_killed_midway_resends_nothing_and_misses_nothing(
    loopback: Loopback, tmp_path: Path
) -> None:
    box = loopback.sandbox(subset(60))
    standin = box.standins["mercadolibre"]
    standin.faults = Faults(slow_rate=1.0, slow_seconds=0.05, seed=1)  # slow enough to be killed midway
    # At Mercado Libre's own pace (10 a second) too: a run that could finish first would test nothing.
    config = write_project(box, tmp_path / "project", rate=None)
    state_file = tmp_path / "project" / "state.sqlite"
    command = [sys.executable, "-m", "cli.main", "apply", "-c", str(config), "-m", "mercadolibre"]
    process = subprocess.Popen(command, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    applied = 0
    while time.monotonic() < deadline and applied < 8:
        time.sleep(0.05)
        if state_file.exists():
            with sqlite3.connect(state_file) as db:
                try:
                    applied = db.execute("SELECT count(*) FROM listings").fetchone()[0]
                except sqlite3.OperationalError:
                    applied = 0
    process.send_signal(signal.SIGKILL)
    process.wait(timeout=30)
    assert applied >= 8, "the run was not killed midway"
    standin.faults = Faults(seed=2)
    pace(config)  # the run again need not wait
    again = tradepost_process("apply", "-c", str(config), "-m", "mercadolibre", timeout=300)
    assert again.returncode == 0, again.stderr
    counts = seller_skus(standin)
    assert set(counts.values()) == {1}, {s: n for s, n in counts.items() if n > 1}  # nothing twice
    with sqlite3.connect(state_file) as db:
        recorded = {row[0] for row in db.execute("SELECT sku_id FROM listings")}
    assert set(counts) == recorded  # nothing missed, nothing unrecorded
    plan = tradepost_process("plan", "-c", str(config), "-m", "mercadolibre", "--detailed-exitcode")
    assert plan.returncode == 0, plan.stdout  # nothing left to send


def test_a_saved_plan_is_applied_exactly_and_refused_once_stale(
    sandbox: tuple[Sandbox, Path], tmp_path: Path
) -> None:
    box, config = sandbox
    plan_file = tmp_path / "plan.json"
    made = tradepost_process("plan", "-c", str(config), "-m", "google", "-o", str(plan_file))
    assert made.returncode == 0, made.stderr
    stale_file = tmp_path / "stale.json"
    stale_file.write_bytes(plan_file.read_bytes())
    applied = tradepost_process("apply", str(plan_file), "-c", str(config), "--json", timeout=300)
    assert applied.returncode == 0, applied.stderr
    saved = json.loads(plan_file.read_text())["marketplaces"]["google"]["changes"]
    sent = {c["sku_id"]: c["payloads"][0] for c in saved if c["op"] == "create"}
    inputs = {i["offerId"]: i for i in box.standins["google"].inputs.values()}
    assert set(inputs) == set(sent)
    sku, body = next(iter(sent.items()))
    assert inputs[sku]["productAttributes"]["title"] == body["productAttributes"]["title"]
    # Re-applying the same plan is a no-op (everything already applied) ...
    again = tradepost_process("apply", str(plan_file), "-c", str(config), "--json")
    assert again.returncode == 0 and json.loads(again.stdout)["marketplaces"][0]["requests"] == 0
    # ... but once the state moved on in another way, an old plan is refused.
    project = load_project(config)
    with open_state(project) as state:
        state.db.execute(
            "UPDATE listings SET price = '1.00' WHERE marketplace = 'google' AND sku_id = ?", (sku,)
        )
    stale = tradepost_process("apply", str(stale_file), "-c", str(config))
    assert stale.returncode == 1
    assert "the plan is stale" in stale.stderr and sku in stale.stderr


def test_a_withdrawn_mercadolibre_sku_selected_again_brings_its_item_back(tmp_path: Path) -> None:
    import httpx

    import engine
    from engine.connectors import Credentials, connector_class
    from engine.state._store import StateStore
    from engine.sync._executor import Executor
    from engine.sync._plan import Planner
    from engine.sync._planfile import change_record
    from engine.sync._source import FileSource
    from marketplaces.mercadolibre.standin import (
        SANDBOX_CLIENT_ID,
        SANDBOX_CLIENT_SECRET,
        SANDBOX_REFRESH_TOKEN,
        MercadoLibreStandin,
    )

    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    connector = connector_class("mercadolibre")({})
    single = next(
        change_record(c, connector)
        for c in Planner(compiled, connector).changes(FileSource(CATALOG))
        if c.op == "create" and not c.family
    )
    withdraw = {"op": "delete", "sku_id": single["sku_id"], "payloads": [{"status": "paused"}]}
    standin = MercadoLibreStandin()
    credentials = Credentials(
        {
            "client_id": SANDBOX_CLIENT_ID,
            "client_secret": SANDBOX_CLIENT_SECRET,
            "refresh_token": SANDBOX_REFRESH_TOKEN,
        }
    )

    async def apply(state: StateStore, record: dict[str, Any]) -> Any:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://ml.test") as client:
            return await Executor(connector, client, state, credentials).apply([record])

    with StateStore(tmp_path / "state.sqlite") as state:
        for record in (single, withdraw, single):
            summary = asyncio.run(apply(state, record))
            assert summary.failed == 0, summary.failures
        (item,) = standin.items.values()  # one item, never a second one for the same SKU
        assert item["status"] == "active"
        row = state.get("mercadolibre", single["sku_id"])
        assert row is not None and row.remote_id == item["id"]
