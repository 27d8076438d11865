"""A third-party connector, installed the way any plug-in is, works with no edit to Tradepost.

The package in ``tests/plugins/tradepost-example-market`` (a listings-only connector, its
stand-in and a rule file, declared by entry points in its own pyproject) is installed with pip
into a virtual environment that sees this project; then that environment's `tradepost` checks
its rule file, serves its stand-in in the sandbox beside the built-in ones, plans, applies to
the stand-in, plans again (nothing left to send) and reads the listings back into a fresh state.
Every command is a subprocess with a timeout; the sandbox is stopped whatever happens.
"""

from __future__ import annotations

import asyncio
import importlib.util
import json
import os
import shutil
import signal
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path

import httpx
import pytest
from ruamel.yaml import YAML

from engine.connectors import Call, CallResult, Credentials

ROOT = Path(__file__).resolve().parent.parent
PLUGIN = ROOT / "tests" / "plugins" / "tradepost-example-market"
RULES = PLUGIN / "tradepost_example_market" / "rules" / "example.yaml"
CATALOG = ROOT / "examples" / "catalog.jsonl"
API_KEY = "example-market-sandbox-key-not-a-secret"  # the stand-in's well-known key
TIMEOUT = 60.0


@dataclass(frozen=True)
class Venv:
    """A virtual environment holding the plug-in, on top of the packages this test runs with."""

    python: Path
    env: dict[str, str]

    def tradepost(self, *args: str, timeout: float = TIMEOUT) -> subprocess.CompletedProcess[str]:
        """`tradepost ARGS` run by the environment's Python."""
        command = [str(self.python), "-m", "cli.main", *args]
        return subprocess.run(command, capture_output=True, text=True, env=self.env, timeout=timeout)


def _pip_install(python: Path, folder: Path) -> subprocess.CompletedProcess[str]:
    """pip installs ``folder`` into the environment of ``python``, offline when it can.

    Offline first: no index, the build backend taken from the environment. Where setuptools
    cannot build a wheel on its own (older than 70.1, without the ``wheel`` package), pip builds
    it in isolation with the backend from its configured index; the plug-in's dependencies are
    never fetched (``--no-deps``).
    """
    pip = [sys.executable, "-m", "pip", "--python", str(python), "install", "--no-deps", "--quiet"]
    done = subprocess.run(
        [*pip, "--no-build-isolation", "--no-index", str(folder)], capture_output=True, text=True, timeout=120
    )
    if done.returncode != 0 and "bdist_wheel" in done.stdout + done.stderr:
        done = subprocess.run([*pip, str(folder)], capture_output=True, text=True, timeout=120)
    return done


@pytest.fixture(scope="module")
def venv(tmp_path_factory: pytest.TempPathFactory) -> Venv:
    if importlib.util.find_spec("venv") is None:
        pytest.skip("the venv module is not available")
    folder = tmp_path_factory.mktemp("plugin")
    made = subprocess.run(
        [sys.executable, "-m", "venv", "--system-site-packages", "--without-pip", str(folder / "venv")],
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )
    if made.returncode != 0:
        pytest.skip(f"cannot make a virtual environment: {made.stderr.strip()[-300:]}")
    python = folder / "venv" / "bin" / "python"
    # A copy, so that building it leaves nothing in the source tree (egg-info, build/).
    installed = _pip_install(python, Path(shutil.copytree(PLUGIN, folder / "plugin")))
    if installed.returncode != 0:
        pytest.skip(f"pip cannot install the plug-in here: {(installed.stdout + installed.stderr)[-500:]}")
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT), os.environ.get("PYTHONPATH", "")])}
    env["PYTHONUNBUFFERED"] = "1"  # the sandbox's lines reach its log file as it prints them
    found = subprocess.run(
        [str(python), "-c", "from importlib.metadata import version; print(version('tradepost'))"],
        capture_output=True,
        env=env,
        timeout=TIMEOUT,
    )
    if found.returncode != 0:  # this project is not installed where the venv can see it: add it
        installed = _pip_install(python, ROOT)
        if installed.returncode != 0:
            pytest.skip(f"pip cannot install Tradepost into the venv: {installed.stderr[-500:]}")
    return Venv(python, env)


@dataclass(frozen=True)
class Sandbox:
    """A running `tradepost sandbox`: what it printed, and the project it wrote."""

    output: str
    config: Path

    def url(self, name: str) -> str:
        line = next(line for line in self.output.splitlines() if line.split()[:1] == [name])
        return line.split()[1]


@pytest.fixture(scope="module")
def sandbox(venv: Venv, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Sandbox]:
    """`tradepost sandbox` on free ports, serving a dozen catalog records; stopped with Ctrl-C."""
    folder = tmp_path_factory.mktemp("sandbox")
    catalog = folder / "catalog.jsonl"
    catalog.write_text("".join(CATALOG.read_text(encoding="utf-8").splitlines(True)[:12]), encoding="utf-8")
    log = folder / "sandbox.log"
    command = ["sandbox", "--catalog", str(catalog), "--dir", str(folder / "project"), "--port", "0"]
    with log.open("w", encoding="utf-8") as out:
        server = subprocess.Popen(
            [str(venv.python), "-m", "cli.main", *command], stdout=out, stderr=subprocess.STDOUT, env=venv.env
        )
    try:
        deadline = time.monotonic() + TIMEOUT
        while "Ctrl-C stops the servers." not in log.read_text(encoding="utf-8"):
            if server.poll() is not None or time.monotonic() > deadline:
                pytest.fail(f"the sandbox did not start:\n{log.read_text(encoding='utf-8')}")
            time.sleep(0.1)
        yield Sandbox(log.read_text(encoding="utf-8"), folder / "project" / "tradepost.yaml")
    finally:
        server.send_signal(signal.SIGINT)
        try:
            server.wait(timeout=15)
        except subprocess.TimeoutExpired:
            server.kill()
            server.wait(timeout=15)


def listings(url: str) -> dict[str, dict[str, object]]:
    """What the Example Market stand-in holds: SKU -> listing."""
    held: dict[str, dict[str, object]] = {}
    params: dict[str, str] = {}
    while True:
        page = httpx.get(f"{url}/v1/shops/demo-shop/listings", params=params, headers={"X-Api-Key": API_KEY})
        page.raise_for_status()
        held.update((item["sku"], item) for item in page.json()["listings"])
        if not page.json()["next_cursor"]:
            return held
        params = {"cursor": page.json()["next_cursor"]}


def planned(plan: Path) -> dict[str, Sequence[str]]:
    """The saved plan's creates for Example Market: SKU -> (price, quantity)."""
    changes = json.loads(plan.read_text(encoding="utf-8"))["marketplaces"]["example"]["changes"]
    return {
        change["sku_id"]: (change["after"]["price"], str(change["after"]["quantity"]))
        for change in changes
        if change["op"] == "create"
    }


def test_the_plugin_rule_file_checks(venv: Venv) -> None:
    checked = venv.tradepost("check", str(RULES))
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert f"{RULES}: ok" in checked.stdout


def test_the_sandbox_serves_the_plugin_stand_in_beside_the_built_ins(sandbox: Sandbox) -> None:
    names = [line.split()[0] for line in sandbox.output.splitlines() if "http://127.0.0.1:" in line]
    assert names[0] == "vtex" and {"amazon", "google", "mercadolibre", "example"} <= set(names)
    entry = YAML(typ="safe").load(sandbox.config)["marketplaces"]["example"]
    assert entry["rules"].endswith("site-packages/tradepost_example_market/rules/example.yaml")
    assert entry["credentials"] == {"api_key": "file:secrets/example_api_key"}


def test_plan_apply_to_the_plugin_stand_in_then_nothing_left_to_send(
    venv: Venv, sandbox: Sandbox, tmp_path: Path
) -> None:
    config, plan = str(sandbox.config), tmp_path / "plan.json"
    made = venv.tradepost("plan", "-c", config, "-m", "example", "-o", str(plan))
    assert made.returncode == 0, made.stdout + made.stderr
    creates = planned(plan)
    assert len(creates) >= 8

    applied = venv.tradepost("apply", "-c", config, "-m", "example", str(plan))
    assert applied.returncode == 0, applied.stdout + applied.stderr
    held = listings(sandbox.url("example"))
    assert {sku: (item["price"], str(item["quantity"])) for sku, item in held.items()} == creates
    for price, _ in creates.values():  # the rule file's price: selling + 10%, ending in .90
        assert Decimal(price) % 1 == Decimal("0.90")

    again = venv.tradepost("plan", "-c", config, "-m", "example", "--detailed-exitcode")
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"0 to create, 0 to update, 0 to delete, 0 invalid ({len(creates)} unchanged" in again.stdout

    rebuilt = venv.tradepost("state", "rebuild", "-m", "example", "-c", config, "--json")
    assert rebuilt.returncode == 0, rebuilt.stdout + rebuilt.stderr
    report = json.loads(rebuilt.stdout)
    assert (report["listings"], report["differing"]) == (len(creates), {"content": 0, "price": 0, "stock": 0})


# -- in process: the connector's reading of answers, against its stand-in -------------------------


def test_the_connector_reads_each_answer_of_its_stand_in(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.syspath_prepend(str(PLUGIN))
    from tradepost_example_market import ExampleMarketConnector
    from tradepost_example_market.standin import ExampleMarketStandin

    standin, connector = ExampleMarketStandin(), ExampleMarketConnector({"shop": "demo-shop"})
    listing = {"title": "Vase", "category": "home", "images": ["https://cdn.test/1.jpg"], "price": "19.90"}
    listing |= {"currency": "BRL", "quantity": 3}
    path = connector.listing_path("SKU/1")

    async def send(call: Call) -> CallResult:
        transport = httpx.ASGITransport(app=standin)
        async with httpx.AsyncClient(base_url="http://example.test", transport=transport) as client:
            headers = await connector.auth_headers(client, Credentials({"api_key": API_KEY}))
            response = await client.request(call.method, call.path, json=call.body, headers=headers)
            return connector.read_result(call, response)

    cases = [  # given a call, expect (ok, retryable, error)
        (Call("PATCH", path, {"quantity": 1}), (False, False, "404 not_found: no listing for SKU 'SKU/1'")),
        (
            Call("PUT", path, {**listing, "title": "x" * 81}),
            (False, False, "400 invalid_listing: title must"),
        ),
        (Call("PUT", path, listing), (True, False, None)),
        (Call("PATCH", path, {"price": "9.999"}), (False, False, "400 invalid_listing: price must")),
        (Call("PATCH", path, {"price": "17.90", "quantity": 0}), (True, False, None)),
        (Call("DELETE", path), (True, False, None)),
        (Call("DELETE", path), (True, False, None)),  # already gone: what the delete wanted
    ]
    for call, (ok, retryable, error) in cases:
        result = asyncio.run(send(call))
        assert (result.ok, result.retryable) == (ok, retryable), (call, result)
        assert (result.error or "").startswith(error or ""), (call, result)
        if call.method == "PATCH" and ok:
            assert standin.listings["SKU/1"]["price"] == "17.90"
    assert standin.listings == {}
