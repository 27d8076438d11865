"""Prometheus metrics: what `tradepost serve` answers on ``GET /metrics`` (prometheus-client).

Two kinds, by where the truth is. Counters and histograms count what a process does, in that
process: requests to each marketplace by status (every request a marketplace's client sends, told
by the connectors' HTTP hook, :func:`engine.connectors._http.on_request`), apply outcomes per
marketplace, and the notification-to-marketplace latency (from the notification's arrival to the
marketplace's outcome recorded by the sync worker). Gauges are the state store's figures, read at
scrape time by :class:`StoreCollector`: the notification queue's depth and oldest age, orders by
marketplace and state, listings live and SKUs failing per marketplace, so they hold whoever wrote
them (cron applies, other workers).

Under `serve --sync` the worker is a process of its own: :func:`worker_metrics` gives it a folder
for prometheus-client's multiprocess mode (``PROMETHEUS_MULTIPROC_DIR``, read when the worker
imports the library), and serve's ``/metrics`` reads its counters from there. Counted by no
``/metrics``: a `tradepost apply`, `sync` or `worker` process of its own (their outcomes still show
in the store's gauges).

The endpoint answers only ``Authorization: Bearer <token>`` (``serve: metrics_token: env:NAME``),
compared in constant time; anything else is 401.
"""

from __future__ import annotations

import hmac
import os
import tempfile
import time
from collections.abc import Iterable, Iterator, Sequence
from contextlib import closing, contextmanager
from pathlib import Path

from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, Counter, Histogram, generate_latest
from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.multiprocess import MultiProcessCollector
from prometheus_client.registry import Collector
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.connectors._http import on_request
from engine.orders._store import OrderStore
from engine.project._config import ConfigError, Project
from engine.secrets import read_secret
from engine.state._queue import NotificationQueue, QueuedSku
from engine.state._store import StateStore
from engine.sync._executor import ApplySummary

MULTIPROCESS = "PROMETHEUS_MULTIPROC_DIR"
MIN_TOKEN = 16
"""Characters the metrics token needs at least: it is the endpoint's only protection."""
LATENCY_BUCKETS = (0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 30.0, 60.0, 120.0, 300.0, 600.0, 1800.0, 3600.0)
"""Seconds from a notification to a marketplace's outcome: sub-second when idle, minutes in a bulk
import, an hour when a marketplace keeps failing."""

IN_PROCESS = CollectorRegistry()
"""This process's counters and histograms (not prometheus-client's global registry: the library's
process and platform collectors describe the server, not the sync)."""
REQUESTS = Counter(
    "tradepost_requests",
    "Requests sent to a marketplace, by the answer's status (error: no answer).",
    ["marketplace", "status"],
    registry=IN_PROCESS,
)
APPLY_OUTCOMES = Counter(
    "tradepost_apply_outcomes",
    "Changes the sync worker applied, by outcome (applied, failed, skipped).",
    ["marketplace", "outcome"],
    registry=IN_PROCESS,
)
SYNC_LATENCY = Histogram(
    "tradepost_sync_latency_seconds",
    "Seconds from a SKU's change notification to its outcome recorded for a marketplace.",
    ["marketplace"],
    buckets=LATENCY_BUCKETS,
    registry=IN_PROCESS,
)


def _count_request(marketplace: str, status: int | None) -> None:
    REQUESTS.labels(marketplace, "error" if status is None else str(status)).inc()


on_request(_count_request)


def observe_applied(marketplace: str, summary: ApplySummary) -> None:
    """Count one apply's outcomes."""
    for outcome, count in (
        ("applied", summary.applied),
        ("failed", summary.failed),
        ("skipped", summary.skipped),
    ):
        if count:
            APPLY_OUTCOMES.labels(marketplace, outcome).inc(count)


def observe_synced(marketplace: str, items: Iterable[QueuedSku], now: float | None = None) -> None:
    """Observe the latency of each SKU whose outcome for ``marketplace`` was just recorded."""
    now = time.time() if now is None else now
    histogram = SYNC_LATENCY.labels(marketplace)
    for item in items:
        histogram.observe(max(0.0, now - item.received_at))


class StoreCollector(Collector):
    """The state store's gauges, read at each scrape on connections of the scrape's own (a scrape
    runs in a thread of the server's)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        OrderStore(state)  # the order tables, made on first use

    def collect(self) -> Iterator[Metric]:
        with closing(self.state.on_a_connection_of_its_own()) as state, NotificationQueue(state) as queue:
            counts = queue.counts()
            orders = _grouped(
                state, "SELECT marketplace, state, count(*) FROM orders GROUP BY marketplace, state"
            )
            live = _grouped(state, "SELECT marketplace, count(*) FROM listings GROUP BY marketplace")
            failing = _grouped(state, "SELECT marketplace, count(*) FROM sku_errors GROUP BY marketplace")
        yield GaugeMetricFamily(
            "tradepost_queue_depth", "SKUs queued by change notifications.", counts.queued
        )
        yield GaugeMetricFamily(
            "tradepost_queue_leased", "Queued SKUs a sync worker holds now.", counts.leased
        )
        oldest = (
            0.0 if counts.oldest_received_at is None else max(0.0, time.time() - counts.oldest_received_at)
        )
        yield GaugeMetricFamily(
            "tradepost_queue_oldest_age_seconds",
            "Seconds the oldest queued notification waits (0: none).",
            oldest,
        )
        yield _gauge("tradepost_orders", "Orders by marketplace and state.", ["marketplace", "state"], orders)
        yield _gauge("tradepost_listings", "Listings live per marketplace.", ["marketplace"], live)
        yield _gauge(
            "tradepost_failing_skus",
            "SKUs whose last change failed, per marketplace.",
            ["marketplace"],
            failing,
        )


def _grouped(state: StateStore, sql: str) -> list[tuple[str, ...]]:
    return [tuple(str(value) for value in row) for row in state.db.execute(sql).fetchall()]


def _gauge(name: str, text: str, labels: list[str], rows: Sequence[tuple[str, ...]]) -> GaugeMetricFamily:
    family = GaugeMetricFamily(name, text, labels=labels)
    for *values, count in rows:
        family.add_metric(values, float(count))
    return family


class _InProcess(Collector):
    def collect(self) -> Iterable[Metric]:
        return IN_PROCESS.collect()


def metrics_route(store: StoreCollector, token: str, worker_folder: Path | None = None) -> Route:
    """``GET /metrics``: the store's gauges, and the counters of this process or, given
    ``worker_folder``, of the worker processes writing there; 401 without ``Bearer <token>``."""
    registry = CollectorRegistry()
    registry.register(store)
    if worker_folder is None:
        registry.register(_InProcess())
    else:
        MultiProcessCollector(registry, path=str(worker_folder))  # type: ignore[no-untyped-call]
    expected = f"Bearer {token}".encode()

    def metrics(request: Request) -> Response:  # a plain function: starlette runs it in a thread
        given = request.headers.get("authorization", "").encode("utf-8", "replace")
        if not hmac.compare_digest(given, expected):
            return Response(status_code=401, headers={"WWW-Authenticate": 'Bearer realm="metrics"'})
        return Response(generate_latest(registry), media_type=CONTENT_TYPE_LATEST)

    return Route("/metrics", metrics, methods=["GET"])


def metrics_token(project: Project) -> str | None:
    """The token ``/metrics`` requires (``serve: metrics_token``); None: ``/metrics`` is not served."""
    where = None if project.config.serve is None else project.config.serve.metrics_token
    if where is None:
        return None
    token = read_secret(where, project.folder)
    if len(token) < MIN_TOKEN:
        raise ConfigError(
            f"the metrics token in {where} is shorter than {MIN_TOKEN} characters; use a long random one "
            "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)"
        )
    return token


@contextmanager
def worker_metrics() -> Iterator[Path]:
    """A fresh folder for the worker processes started in the block to write their metrics to
    (multiprocess mode: each process started sees it in its environment); removed after."""
    previous = os.environ.get(MULTIPROCESS)
    with tempfile.TemporaryDirectory(prefix="tradepost-metrics-") as folder:
        os.environ[MULTIPROCESS] = folder
        try:
            yield Path(folder)
        finally:
            if previous is None:
                os.environ.pop(MULTIPROCESS, None)
            else:
                os.environ[MULTIPROCESS] = previous
