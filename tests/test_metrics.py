"""`/metrics`: Prometheus's view of the sync, scraped over loopback with the bearer token it requires.

Given the sandbox applied in full and a SKU sold out in the VTEX stand-in and queued, the sync runs
(in process, or as `tradepost serve --sync`'s worker process of its own), then ``GET /metrics`` is
scraped over a real socket and parsed as Prometheus parses it: requests by marketplace and status,
apply outcomes and the notification-to-marketplace latency count what that sync did; the store's
gauges (queue, orders by state, listings, failing SKUs) hold what the state store holds. Without
the token, or with another, the answer is 401 and carries no metric.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families
from ruamel.yaml import YAML
from starlette.applications import Starlette

from engine.orders import OrderStore
from engine.project import StoreCollector, load_project, metrics_route, open_state
from engine.project._metrics import IN_PROCESS
from marketplaces.sandbox import Sandbox
from tests._harness import ROOT, Loopback, pace, subset, tradepost
from tests.test_orderflow import make_order
from tests.test_sandbox_loop import eventually, free_port
from tests.test_serve_kills import Serving, stop
from tests.test_serve_kills import serving as serving  # `serve --sync` processes, killed after
from tests.test_sync_worker import SOLD_OUT, quantities, sell_out

TOKEN = "metrics-token-0123456789abcdef"
ENV = "TRADEPOST_TEST_METRICS_TOKEN"
Samples = dict[tuple[str, frozenset[tuple[str, str]]], float]


def samples(text: str) -> Samples:
    """Every sample of an exposition, by name and labels."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: Samples, name: str, **labels: str) -> float:
    return found.get((name, frozenset(labels.items())), 0.0)


def in_process(name: str, **labels: str) -> float:
    return IN_PROCESS.get_sample_value(name, labels) or 0.0


@pytest.fixture
def applied(loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[Sandbox, Path]:
    """The sandbox's catalog listed everywhere; its project serves /metrics with the test's token."""
    box = loopback.sandbox(subset(12))
    config = box.write_project(tmp_path / "project", ROOT / "rules", serve_port=free_port())
    pace(config)
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["serve"]["metrics_token"] = f"env:{ENV}"
    with config.open("w", encoding="utf-8") as written:
        yaml.dump(document, written)
    monkeypatch.setenv(ENV, TOKEN)
    code, out, err = tradepost("apply", "-c", str(config))
    assert code == 0, out + err
    return box, config


@pytest.fixture
def scrape(applied: tuple[Sandbox, Path]) -> Iterator[str]:
    """The metrics route of the project, served on loopback as `tradepost serve` serves it: its URL."""
    _, config = applied
    with open_state(load_project(config)) as store:
        server = Sandbox({"metrics": Starlette(routes=[metrics_route(StoreCollector(store), TOKEN)])})
        server.start()
        try:
            yield f"{server.url('metrics')}/metrics"
        finally:
            server.stop()


def test_a_scrape_after_a_sync_counts_its_requests_outcomes_and_latency(
    applied: tuple[Sandbox, Path], scrape: str
) -> None:
    box, config = applied
    before = {
        "requests": in_process("tradepost_requests_total", marketplace="mercadolibre", status="200"),
        "applied": in_process(
            "tradepost_apply_outcomes_total", marketplace="mercadolibre", outcome="applied"
        ),
        "synced": in_process("tradepost_sync_latency_seconds_count", marketplace="mercadolibre"),
    }
    sku = sell_out(box, config)
    ml_requests = box.standins["mercadolibre"].total_requests()
    with open_state(load_project(config)) as store:
        OrderStore(store).insert(
            make_order("MLB-9", (sku, 1, "10.00")), "held", {"outcome": "hold"}, "received"
        )
    code, out, err = tradepost("sync", "-c", str(config), "--once")
    assert code == 0, out + err
    assert quantities(box, sku) == SOLD_OUT

    answer = httpx.get(scrape, headers={"Authorization": f"Bearer {TOKEN}"})
    assert answer.status_code == 200 and answer.headers["content-type"].startswith("text/plain")
    found = samples(answer.text)
    sent = box.standins["mercadolibre"].total_requests() - ml_requests
    assert sent > 0
    assert value(found, "tradepost_requests_total", marketplace="mercadolibre", status="200") == (
        before["requests"] + sent
    )
    assert value(found, "tradepost_apply_outcomes_total", marketplace="mercadolibre", outcome="applied") == (
        before["applied"] + 1
    )
    assert (
        value(found, "tradepost_sync_latency_seconds_count", marketplace="mercadolibre")
        == before["synced"] + 1
    )
    assert value(found, "tradepost_sync_latency_seconds_bucket", marketplace="mercadolibre", le="+Inf") >= 1
    with open_state(load_project(config)) as store:
        live = store.count("mercadolibre")
    assert live > 0 and value(found, "tradepost_listings", marketplace="mercadolibre") == live
    assert value(found, "tradepost_orders", marketplace="mercadolibre", state="held") == 1
    assert value(found, "tradepost_queue_depth") == 0 and value(found, "tradepost_failing_skus") == 0
    assert ("tradepost_queue_oldest_age_seconds", frozenset()) in found


@pytest.mark.parametrize(
    "headers",
    [{}, {"Authorization": "Bearer wrong-token-0123456789abcdef"}, {"Authorization": f"Basic {TOKEN}"}],
    ids=["none", "another", "not-bearer"],
)
def test_without_the_token_a_scrape_is_401_and_shows_nothing(scrape: str, headers: dict[str, str]) -> None:
    answer = httpx.get(scrape, headers=headers)
    assert answer.status_code == 401 and answer.text == ""
    assert answer.headers["www-authenticate"] == 'Bearer realm="metrics"'


def test_serve_sync_exposes_its_worker_process_metrics(
    applied: tuple[Sandbox, Path], serving: Serving
) -> None:
    box, config = applied
    port = load_project(config).config.serve.port  # type: ignore[union-attr]
    server = serving.start(config)
    assert server.stdout is not None
    assert "/api/notification" in server.stdout.readline()  # listening
    sku = sell_out(box, config)  # queued in the store: the worker's poll takes it
    assert eventually(lambda: quantities(box, sku) == SOLD_OUT)
    url = f"http://127.0.0.1:{port}/metrics"

    def scraped() -> Samples:
        return samples(httpx.get(url, headers={"Authorization": f"Bearer {TOKEN}"}).text)

    assert eventually(lambda: value(scraped(), "tradepost_queue_depth") == 0)
    found = scraped()
    assert value(found, "tradepost_sync_latency_seconds_count", marketplace="mercadolibre") == 1
    assert value(found, "tradepost_requests_total", marketplace="mercadolibre", status="200") > 0
    assert httpx.get(url).status_code == 401
    stop(server)


def test_a_short_metrics_token_stops_serve_before_it_listens(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = tmp_path / "tradepost.yaml"
    config.write_text(
        "source: {type: file, path: c.jsonl}\nmarketplaces: {}\n"
        "serve: {port: 0, secret: env:TP_TEST_SECRET, metrics_token: env:TP_TEST_TOKEN}\n",
        encoding="utf-8",
    )
    monkeypatch.setenv("TP_TEST_SECRET", "s" * 24)
    monkeypatch.setenv("TP_TEST_TOKEN", "t0k3n-9")
    code, out, err = tradepost("serve", "-c", str(config))
    assert (code, out) == (1, "")
    assert err.startswith(
        "error: the metrics token in env:TP_TEST_TOKEN is shorter than 16 characters; use a long"
    )
