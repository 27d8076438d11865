"""`tradepost serve`: VTEX's notifications are answered 2xx only once queued, and stay queued.

Most cases run the endpoint in process (httpx's ASGITransport); one serves it with uvicorn on a
loopback socket, and the kill tests run ``python -m cli.main serve`` as its own process, SIGKILL it
right after a 200 and look in the state store it leaves.
"""

from __future__ import annotations

import asyncio
import json
import logging
import os
import signal
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine.secrets import forget
from engine.state import Change, NotificationQueue, QueuedSku, StateStore
from engine.state._queue import newer
from engine.state._store import SCHEMA_VERSION, StateError
from marketplaces.vtex._notifications import BODY_LIMIT, ClientLimits, Integrations, notification_app
from tests._harness import tradepost

ROOT = Path(__file__).resolve().parent.parent
RULES = ROOT / "rules"
SECRET = "s3cr3t-0123456789abcdefXYZ"
ENV = "TRADEPOST_TEST_NOTIFY_SECRET"
URL = f"/api/notification/?an=lojaexemplo&affiliate=TPC&k={SECRET}"
DOCUMENTED = {  # NOTIFICATIONS.md, section 2
    "IdSku": "1070",
    "ProductId": 1001,
    "An": "lojaexemplo",
    "IdAffiliate": "TPC",
    "DateModified": "2024-05-02T13:45:10.123",
    "IsActive": True,
    "StockModified": True,
    "PriceModified": False,
    "HasStockKeepingUnitModified": False,
    "HasStockKeepingUnitRemovedFromAffiliate": False,
}
TIMEOUT = 20.0


@pytest.fixture
def store(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite", busy_timeout=0.2) as store:
        yield store


@pytest.fixture
def queue(store: StateStore) -> Iterator[NotificationQueue]:
    with NotificationQueue(store) as queue:
        yield queue


class Client:
    """The endpoint in process: each request runs the app through httpx's ASGI transport."""

    def __init__(self, queue: NotificationQueue, **options: Any) -> None:
        self.app = notification_app(queue, SECRET, **options)
        self.address = "127.0.0.1"

    def request(self, method: str, url: str, **options: Any) -> httpx.Response:
        async def send() -> httpx.Response:
            transport = httpx.ASGITransport(app=self.app, client=(self.address, 123))
            async with httpx.AsyncClient(transport=transport, base_url="http://tradepost.test") as http:
                return await http.request(method, url, **options)

        return asyncio.run(send())

    def post(self, url: str, **options: Any) -> httpx.Response:
        return self.request("POST", url, **options)

    def get(self, url: str) -> httpx.Response:
        return self.request("GET", url)


@pytest.fixture
def client(queue: NotificationQueue) -> Client:
    return Client(queue)


def _queued(queue: NotificationQueue) -> dict[str, tuple[Change, str]]:
    return {item.sku_id: (item.changes, item.changed_at) for item in queue.take(100, lease=0)}


# -- the documented body ------------------------------------------------------------------------


def test_the_documented_body_is_answered_200_once_queued(client: Client, queue: NotificationQueue) -> None:
    answer = client.post(URL, json=DOCUMENTED)
    assert (answer.status_code, answer.content) == (200, b"")
    assert _queued(queue) == {"1070": (Change.STOCK, "2024-05-02T13:45:10.123")}


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        (
            {"idSKU": 2000003, "StockModified": True, "PriceModified": True, "Extra": [1]},
            Change.STOCK | Change.PRICE,
        ),
        ({"IdSku": "7", "HasStockKeepingUnitModified": True}, Change.CATALOG),
        ({"IdSku": "7", "HasStockKeepingUnitRemovedFromAffiliate": True}, Change.REMOVED),
        ({"idsku": "7", "isActive": False}, Change.REMOVED),
        ({"IdSku": "7"}, Change.CATALOG),  # no flag: something changed, so read it all
    ],
)
def test_either_casing_and_a_numeric_id_map_to_the_queue_flags(
    client: Client, queue: NotificationQueue, body: dict[str, object], expected: Change
) -> None:
    assert client.post("/api/notification?k=" + SECRET, json=body).status_code == 200
    ((changes, _),) = _queued(queue).values()
    assert changes == expected


def test_repeats_for_a_sku_merge_flags_ored_and_the_newest_date_kept(
    client: Client, queue: NotificationQueue
) -> None:
    for date, flag in (
        ("2024-05-02T13:45:10.123", "StockModified"),
        ("2024-05-02T13:40:00", "PriceModified"),  # older, arriving late
        ("2024-05-02T13:45:11", "HasStockKeepingUnitModified"),
        ("2024-05-02T13:45:09", "StockModified"),
    ):
        assert client.post(URL, json={"IdSku": "1070", "DateModified": date, flag: True}).status_code == 200
    assert client.post(URL, json={**DOCUMENTED, "IdSku": "1071"}).status_code == 200
    assert _queued(queue) == {
        "1070": (Change.STOCK | Change.PRICE | Change.CATALOG, "2024-05-02T13:45:11"),
        "1071": (Change.STOCK, "2024-05-02T13:45:10.123"),
    }


@pytest.mark.parametrize(
    ("first", "second", "kept"),
    [
        ("2024-05-02T13:45:10", "2024-05-02T13:45:09", "2024-05-02T13:45:10"),
        ("2024-05-02T13:45:10Z", "2024-05-02T16:45:09+03:00", "2024-05-02T13:45:10Z"),
        ("yesterday", "2024-05-02T13:45:09", "2024-05-02T13:45:09"),  # unreadable: the last received
        ("2024-05-02T13:45:10", "2024-05-02T13:45:09Z", "2024-05-02T13:45:09Z"),  # naive vs aware
    ],
)
def test_the_newest_date_is_compared_as_a_date_when_it_reads_as_one(
    first: str, second: str, kept: str
) -> None:
    assert newer(first, second) == kept


# -- refusals -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "url",
    [
        "/api/notification/",
        "/api/notification/?k=",
        f"/api/notification/?k={SECRET[:-1]}",
        f"/api/notification/?k={SECRET}x",
        f"/api/notification/?K={SECRET}",
    ],
)
def test_a_missing_or_wrong_secret_is_401_and_logged_without_it(
    client: Client, queue: NotificationQueue, url: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.INFO, logger="tradepost.serve"):
        answer = client.post(url, json=DOCUMENTED)
    assert (answer.status_code, answer.content) == (401, b"")
    assert "the secret is missing or wrong (401)" in caplog.text
    assert SECRET[:8] not in caplog.text and SECRET[:8] not in answer.text
    assert queue.counts().queued == 0


@pytest.mark.parametrize(
    ("body", "reason"),
    [
        (b"not json", "the body is not JSON"),
        (b"", "the body is not JSON"),
        (b"\xff\xfe", "the body is not JSON"),
        pytest.param(b"[" * 5000 + b"]" * 5000, "the body is not JSON", id="nested-5000-deep"),
        (b'[{"IdSku": "1"}]', "the body is a JSON list, not an object"),
        (b'"1070"', "the body is a JSON str, not an object"),
        (b"{}", "wrong or missing field(s): idsku"),
        (b'{"IdSku": true}', "wrong or missing field(s): idsku"),
        (b'{"IdSku": "1 0"}', "wrong or missing field(s): idsku"),
        (b'{"IdSku": "' + b"9" * 65 + b'"}', "wrong or missing field(s): idsku"),
        (b'{"IdSku": "1", "StockModified": "yes"}', "wrong or missing field(s): stockmodified"),
        (
            b'{"IdSku": "1", "ProductId": "x", "IsActive": 0}',
            "wrong or missing field(s): isactive, productid",
        ),
    ],
)
def test_a_malformed_body_is_400_and_nothing_is_queued(
    client: Client, queue: NotificationQueue, body: bytes, reason: str, caplog: pytest.LogCaptureFixture
) -> None:
    with caplog.at_level(logging.WARNING, logger="tradepost.serve"):
        answer = client.post(URL, content=body, headers={"content-type": "text/plain"})
    assert answer.status_code == 400
    assert f"refused a notification from 127.0.0.1: {reason} (400)" in caplog.text
    assert queue.counts().queued == 0


def test_a_body_over_the_limit_is_413_whatever_its_length_header_says(
    client: Client, queue: NotificationQueue
) -> None:
    padded = json.dumps({**DOCUMENTED, "pad": "x" * BODY_LIMIT}).encode()
    assert client.post(URL, content=padded).status_code == 413

    async def chunks() -> AsyncIterator[bytes]:  # no Content-Length at all: chunked
        for _ in range(BODY_LIMIT // 1024 + 2):
            yield b" " * 1024

    assert client.post(URL, content=chunks()).status_code == 413
    assert queue.counts().queued == 0
    at_limit = json.dumps(DOCUMENTED).encode().ljust(BODY_LIMIT)
    assert client.post(URL, content=at_limit).status_code == 200


def test_a_state_store_that_cannot_commit_is_503_and_nothing_is_acknowledged(
    client: Client, queue: NotificationQueue, store: StateStore, caplog: pytest.LogCaptureFixture
) -> None:
    other = sqlite3.connect(store.path, isolation_level=None)
    other.execute("BEGIN IMMEDIATE")  # another writer holds the file past the busy timeout
    try:
        with caplog.at_level(logging.WARNING, logger="tradepost.serve"):
            answer = client.post(URL, json=DOCUMENTED)
    finally:
        other.execute("ROLLBACK")
        other.close()
    assert answer.status_code == 503
    assert "it could not be queued: state store" in caplog.text and " is busy" in caplog.text
    assert queue.counts().queued == 0
    assert client.post(URL, json=DOCUMENTED).status_code == 200  # and works again once it can


def test_notifications_posted_together_share_a_commit_and_fail_together(queue: NotificationQueue) -> None:
    """The endpoint hands the notifications that arrive while a commit runs to the next one: 60
    posted at once are every one queued (merged per SKU) in a few transactions, each answered only
    after its own committed; a transaction that fails is 503 for every notification in it."""
    commits: list[int] = []
    commit = queue.enqueue_many

    def slow_commit(notifications: Any) -> None:
        time.sleep(0.02)  # a commit's fsync: the others arrive meanwhile
        commit(notifications)
        commits.append(len(notifications))

    queue.enqueue_many = slow_commit  # type: ignore[method-assign]
    app = notification_app(queue, SECRET)

    async def post_all(skus: list[str]) -> list[int]:
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 123))
        async with httpx.AsyncClient(transport=transport, base_url="http://tradepost.test") as http:
            answers = await asyncio.gather(
                *(http.post(URL, json={**DOCUMENTED, "IdSku": sku}) for sku in skus)
            )
        return [answer.status_code for answer in answers]

    assert asyncio.run(post_all([str(n % 40) for n in range(60)])) == [200] * 60
    assert sum(commits) == 60 and len(commits) <= 6, commits
    assert sorted(_queued(queue), key=int) == [str(n) for n in range(40)]

    def failing(notifications: Any) -> None:
        time.sleep(0.02)
        raise StateError("state store /x is busy")

    queue.enqueue_many = failing  # type: ignore[method-assign]
    assert asyncio.run(post_all([f"new-{n}" for n in range(10)])) == [503] * 10
    queue.enqueue_many = commit  # type: ignore[method-assign]
    assert not any(sku.startswith("new-") for sku in _queued(queue))


def test_healthz_shows_the_queue(client: Client) -> None:
    assert client.post(URL, json=DOCUMENTED).status_code == 200
    answer = client.get("/healthz")
    assert answer.status_code == 200
    body = answer.json()
    assert (body["status"], body["queued"], body["leased"]) == ("ok", 1, 0)
    assert client.get("/api/notification/").status_code == 405


# -- whose notifications, and how many --------------------------------------------------------

LOJA = Integrations.of("lojaexemplo", ["TPC", "MLB"])


@pytest.mark.parametrize(
    ("fields", "status", "reason"),
    [
        ({}, 200, None),
        ({"An": "LojaExemplo", "IdAffiliate": "mlb"}, 200, None),  # names, not their casing
        ({"An": "outraloja"}, 403, "its account (An) is 'outraloja', not the configured one"),
        ({"An": None}, 403, "its account (An) is none, not the configured one"),
        ({"An": "loja exemplo!"}, 403, "its account (An) is one that is not a name, not the configured one"),
        ({"An": SECRET}, 403, "its account (An) is '<the secret>', not the configured one"),
        ({"IdAffiliate": "GGL"}, 403, "its affiliate (IdAffiliate) is 'GGL', not a configured one"),
        ({"IdAffiliate": None}, 403, "its affiliate (IdAffiliate) is none, not a configured one"),
    ],
)
def test_a_notification_for_another_account_or_affiliate_is_403_and_not_queued(
    queue: NotificationQueue,
    caplog: pytest.LogCaptureFixture,
    fields: dict[str, object],
    status: int,
    reason: str | None,
) -> None:
    body = {k: v for k, v in {**DOCUMENTED, **fields}.items() if v is not None}
    with caplog.at_level(logging.WARNING, logger="tradepost.serve"):
        answer = Client(queue, integrations=LOJA).post(URL, json=body)
    assert (answer.status_code, answer.content) == (status, b"")
    assert queue.counts().queued == (status == 200)
    if reason is not None:
        assert f"refused a notification from 127.0.0.1: {reason} (403)" in caplog.text
    assert SECRET not in caplog.text


@pytest.mark.parametrize(
    ("integrations", "fields", "status"),
    [
        (Integrations(), {"An": "anyone", "IdAffiliate": "XYZ"}, 200),  # none configured: any
        (Integrations.of("lojaexemplo", []), {"IdAffiliate": "XYZ"}, 200),  # the account alone
        (Integrations.of("lojaexemplo", []), {"An": "outra"}, 403),
        (Integrations.of(None, ["TPC"]), {"An": "anyone"}, 200),  # the affiliates alone
        (Integrations.of(None, ["TPC"]), {"IdAffiliate": "MLB"}, 403),
    ],
)
def test_only_what_is_configured_is_checked(
    queue: NotificationQueue, integrations: Integrations, fields: dict[str, object], status: int
) -> None:
    answer = Client(queue, integrations=integrations).post(URL, json={**DOCUMENTED, **fields})
    assert answer.status_code == status


def test_a_client_over_the_rate_limit_gets_429_with_retry_after_and_others_do_not(
    queue: NotificationQueue, caplog: pytest.LogCaptureFixture
) -> None:
    now = [0.0]
    client = Client(queue, limits=ClientLimits(5, clock=lambda: now[0]))
    with caplog.at_level(logging.WARNING, logger="tradepost.serve"):
        statuses = [client.post(URL, json={**DOCUMENTED, "IdSku": str(n)}).status_code for n in range(5)]
        refused = [client.post(URL, json=DOCUMENTED) for _ in range(3)]
        wrong_secret = client.post("/api/notification/?k=guess", json=DOCUMENTED)
    assert statuses == [200] * 5  # a second's worth at once
    assert {(r.status_code, r.headers["Retry-After"], r.content) for r in refused} == {(429, "1", b"")}
    assert wrong_secret.status_code == 429  # guessing the secret is paced too
    assert caplog.text.count("over 5 a second") == 1  # once per run of refusals, not per request
    assert client.get("/healthz").status_code == 200  # exempt
    client.address = "10.0.0.2"  # another client address has its own bucket
    assert client.post(URL, json=DOCUMENTED).status_code == 200
    assert queue.counts().queued == 6
    client.address = "127.0.0.1"
    now[0] = 0.2  # a fifth of a second later: one more
    assert [client.post(URL, json=DOCUMENTED).status_code for _ in range(2)] == [200, 429]


def test_a_refused_client_is_let_through_again_once_its_bucket_refills() -> None:
    now = [0.0]
    limits = ClientLimits(2, clients=3, clock=lambda: now[0])

    async def waits(client: str, count: int) -> list[float]:
        return [await limits.wait(client) for _ in range(count)]

    assert asyncio.run(waits("a", 3)) == [0.0, 0.0, 0.5]
    assert limits.first_refusal("a") and not limits.first_refusal("a")
    now[0] = 0.5
    assert asyncio.run(waits("a", 2)) == [0.0, 0.5]
    assert limits.first_refusal("a")  # let through in between: a new run of refusals
    for client in ("b", "c", "d"):  # past three clients, the idle (full again) go first
        asyncio.run(waits(client, 1))
    assert list(limits.buckets) == ["b", "c", "d"]


# -- the queue a worker takes from --------------------------------------------------------------


def _enqueue(queue: NotificationQueue, *sku_ids: str) -> None:
    for sku_id in sku_ids:
        queue.enqueue(sku_id, Change.STOCK, "2024-05-02T13:45:10")


def test_a_taken_batch_is_leased_and_comes_back_when_its_lease_runs_out(queue: NotificationQueue) -> None:
    _enqueue(queue, "1", "2", "3")
    first = queue.take(2, lease=1.5)
    assert [item.sku_id for item in first] == ["1", "2"]
    assert [item.sku_id for item in queue.take(10)] == ["3"]  # the others are leased
    assert queue.counts().leased == 3
    assert queue.take(10) == []
    time.sleep(1.55)  # a killed worker's batch
    assert [item.sku_id for item in queue.take(10)] == ["1", "2"]


def test_released_skus_come_back_at_once(queue: NotificationQueue) -> None:
    _enqueue(queue, "1")
    taken = queue.take(10)
    queue.release(taken)
    assert [item.sku_id for item in queue.take(10)] == ["1"]


def test_a_sku_leaves_the_queue_once_every_marketplace_has_its_outcome(queue: NotificationQueue) -> None:
    everyone = ("amazon", "google", "mercadolibre")
    _enqueue(queue, "1", "2")
    taken = queue.take(10, lease=0)
    assert queue.done(taken, "google", everyone) == 0
    assert queue.done(taken[:1], "amazon", everyone) == 0
    again = {item.sku_id: item.done_for for item in queue.take(10, lease=0)}
    assert again == {"1": frozenset({"amazon", "google"}), "2": frozenset({"google"})}
    assert queue.done(taken, "mercadolibre", everyone) == 1
    assert [item.sku_id for item in queue.take(10)] == ["2"]


def test_a_notification_merged_while_taken_is_read_again(queue: NotificationQueue) -> None:
    _enqueue(queue, "1")
    (taken,) = queue.take(10, lease=0)
    queue.enqueue("1", Change.PRICE, "2024-05-02T13:45:11")
    assert queue.done([taken], "google", ["google"]) == 0
    (again,) = queue.take(10)
    assert (again.changes, again.version, again.done_for) == (Change.STOCK | Change.PRICE, 2, frozenset())
    assert queue.done([again], "google", ["google"]) == 1
    assert queue.counts().queued == 0


def test_a_notification_merged_while_taken_is_free_to_take_as_soon_as_the_old_one_is_done(
    queue: NotificationQueue,
) -> None:
    """The worker's lease (300 s) must not hold back a change notified while it worked on the
    SKU: once every marketplace is done with the old version, the new one is taken at once."""
    _enqueue(queue, "1")
    (taken,) = queue.take(10)
    queue.enqueue("1", Change.PRICE, "2024-05-02T13:45:11")
    assert queue.done([taken], "google", ["google", "amazon"]) == 0
    assert queue.take(10) == []  # amazon is not done with version 1: still this worker's
    assert queue.done([taken], "amazon", ["google", "amazon"]) == 0
    (again,) = queue.take(10)
    assert (again.sku_id, again.version, again.done_for) == ("1", 2, frozenset())


def test_a_version_2_state_file_opens_and_gains_the_queue(tmp_path: Path) -> None:
    path = tmp_path / "state.sqlite"
    StateStore(path).close()
    with sqlite3.connect(path) as raw:  # as the code before the queue left it
        raw.execute("DROP TABLE notifications")
        raw.execute("DROP TABLE notification_outcomes")
        raw.execute("UPDATE meta SET value = '2' WHERE key = 'schema_version'")
    with StateStore(path) as store, NotificationQueue(store) as queue:
        _enqueue(queue, "1")
        assert queue.counts().queued == 1
    with sqlite3.connect(path) as raw:
        assert raw.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone() == (
            str(SCHEMA_VERSION),
        )


def test_queued_sku_is_what_a_worker_needs() -> None:
    fields = set(QueuedSku.__dataclass_fields__)
    assert fields == {"sku_id", "changes", "changed_at", "received_at", "version", "lease_token", "done_for"}
    with pytest.raises(StateError):
        StateStore("postgresql://nowhere/db")


# -- over loopback, and as its own process ------------------------------------------------------


def test_a_real_uvicorn_server_on_loopback_queues_the_documented_body(queue: NotificationQueue) -> None:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    port = sock.getsockname()[1]
    config = uvicorn.Config(
        notification_app(queue, SECRET), lifespan="off", access_log=False, log_config=None
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    try:
        deadline = time.monotonic() + TIMEOUT
        while not server.started:
            assert thread.is_alive() and time.monotonic() < deadline
            time.sleep(0.02)
        with httpx.Client(base_url=f"http://127.0.0.1:{port}", timeout=TIMEOUT) as http:
            assert http.post(URL, json=DOCUMENTED).status_code == 200
            assert http.post(URL.replace(SECRET, "wrong"), json=DOCUMENTED).status_code == 401
            assert http.get("/healthz").json()["queued"] == 1
    finally:
        server.should_exit = True
        thread.join(TIMEOUT)
        sock.close()
    assert not thread.is_alive()
    assert _queued(queue) == {"1070": (Change.STOCK, "2024-05-02T13:45:10.123")}


@pytest.fixture
def project(tmp_path: Path) -> Path:
    (tmp_path / "catalog.jsonl").write_text("", encoding="utf-8")
    config = tmp_path / "tradepost.yaml"
    config.write_text(
        "source:\n  type: file\n  path: catalog.jsonl\nstate: state.sqlite\nmarketplaces: {}\n"
        f"serve:\n  host: 127.0.0.1\n  port: 0\n  secret: env:{ENV}\n",
        encoding="utf-8",
    )
    return config


class Served:
    """`python -m cli.main serve -c CONFIG` as its own process, and the port it printed."""

    def __init__(self, config: Path, failpoint: str = "") -> None:
        env = {**os.environ, ENV: SECRET, "PYTHONPATH": str(ROOT), "TRADEPOST_LOG": "info"}
        env["TRADEPOST_FAILPOINT"] = failpoint
        self.process = subprocess.Popen(
            [sys.executable, "-m", "cli.main", "serve", "-c", str(config)],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        assert self.process.stdout is not None
        watchdog = threading.Timer(TIMEOUT, self.process.kill)  # a server that never says where it is
        watchdog.start()
        try:
            self.banner = self.process.stdout.readline()
        finally:
            watchdog.cancel()
        assert self.banner.startswith("listening on http://127.0.0.1:"), self.banner
        self.port = int(self.banner.split(":")[2].split("/")[0])

    def post(self, body: object) -> httpx.Response:
        return httpx.post(f"http://127.0.0.1:{self.port}{URL}", json=body, timeout=TIMEOUT)

    def finish(self, sig: signal.Signals) -> tuple[int, str, str]:
        self.process.send_signal(sig)
        out, err = self.process.communicate(timeout=TIMEOUT)
        return self.process.returncode, self.banner + out, err


@pytest.fixture
def served(project: Path) -> Iterator[Served]:
    server = Served(project)
    try:
        yield server
    finally:
        if server.process.poll() is None:
            server.process.kill()
            server.process.communicate(timeout=TIMEOUT)


def test_sigkill_right_after_a_200_keeps_the_notification_queued(served: Served, project: Path) -> None:
    assert served.post(DOCUMENTED).status_code == 200
    code, out, err = served.finish(signal.SIGKILL)
    assert code == -signal.SIGKILL
    assert SECRET not in out + err
    with StateStore(project.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        assert _queued(queue) == {"1070": (Change.STOCK, "2024-05-02T13:45:10.123")}
    restarted = Served(project)  # and a restart serves the same queue
    try:
        assert restarted.post({**DOCUMENTED, "PriceModified": True}).status_code == 200
    finally:
        code, _, _ = restarted.finish(signal.SIGTERM)
    assert code == 0
    code, out, _ = tradepost("status", "-c", str(project))
    assert code == 0 and out.startswith("notifications queued: 1 (0 being processed); the oldest arrived ")
    code, out, _ = tradepost("status", "-c", str(project), "--json")
    counts = json.loads(out)["notifications"]
    assert (code, counts["queued"], counts["leased"]) == (0, 1, 0)


def test_sigterm_stops_gracefully_and_the_secret_is_nowhere(served: Served, project: Path) -> None:
    assert served.post(DOCUMENTED).status_code == 200
    assert served.post({"IdSku": "2"}).status_code == 200
    refused = httpx.post(f"http://127.0.0.1:{served.port}/api/notification/?k=nope", json=DOCUMENTED)
    assert refused.status_code == 401
    code, out, err = served.finish(signal.SIGTERM)
    assert (code, out.splitlines()[-1]) == (0, "stopped by SIGTERM; 2 notification(s) queued")
    assert f"<the secret in env:{ENV}>" in out
    assert "the secret is missing or wrong (401)" in err
    state = b"".join(p.read_bytes() for p in project.parent.glob("state.sqlite*"))
    for text in (out, err, state.decode("latin-1")):
        assert SECRET not in text


def test_serve_without_a_serve_section_or_with_a_short_secret_says_what_to_do(
    project: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(ENV, "x7Qp-3kL9-Zw")  # 12 characters
    try:
        code, _, err = tradepost("serve", "-c", str(project))
    finally:
        forget("x7Qp-3kL9-Zw")  # read_secret registered it with this process's redactor
    assert (code, err) == (
        1,
        f"error: the secret in env:{ENV} is shorter than 16 characters; use a long random one "
        "(e.g. `python -c 'import secrets; print(secrets.token_urlsafe(32))'`)\n",
    )
    project.write_text(project.read_text(encoding="utf-8").split("serve:")[0], encoding="utf-8")
    code, _, err = tradepost("serve", "-c", str(project))
    assert code == 1 and err.startswith(f"error: {project} has no `serve:` section; add one")


def test_serve_says_once_at_start_whose_notifications_it_takes(project: Path) -> None:
    served = Served(project)
    assert httpx.get(f"http://127.0.0.1:{served.port}/healthz", timeout=TIMEOUT).status_code == 200
    _, _, err = served.finish(signal.SIGTERM)
    assert err.count("warning: any VTEX account and affiliate may notify") == 1, err
    text = project.read_text(encoding="utf-8")
    project.write_text(
        # The affiliate is the rule file's: rules/mercadolibre.yaml says `affiliate: MLB`.
        text.replace("marketplaces: {}", f"marketplaces:\n  ml: {{rules: {RULES / 'mercadolibre.yaml'}}}\n")
        + "  account: lojaexemplo\n  rate_limit: 1\n",
        encoding="utf-8",
    )
    served = Served(project)
    try:
        statuses = [served.post(DOCUMENTED).status_code for _ in range(3)]
        other = served.post({**DOCUMENTED, "IdAffiliate": "MLB"}).status_code
    finally:
        _, _, err = served.finish(signal.SIGTERM)
    assert statuses == [403, 429, 429]  # TPC is not the affiliate configured; then one a second
    assert other == 429
    assert (
        err.count(
            "taking notifications only for account lojaexemplo (An) and affiliate(s) MLB (IdAffiliate); "
            "others are refused (403)"
        )
        == 1
    )
    assert "its affiliate (IdAffiliate) is 'TPC', not a configured one (403)" in err


@pytest.mark.parametrize(
    ("setting", "message"),
    [
        (
            "affiliate: mlb",
            "affiliate id must be three upper-case consonants, no vowels, like 'MLB'; got 'mlb'",
        ),
        ("rate_limit: 0", "rate_limit"),
    ],
)
def test_a_wrong_affiliate_or_rate_limit_stops_serve_before_it_listens(
    project: Path, setting: str, message: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A rule file's bad ``affiliate:`` (the IdAffiliate serve takes) or a bad rate limit: exit 1."""
    monkeypatch.setenv(ENV, SECRET)
    text = project.read_text(encoding="utf-8")
    if setting.startswith("affiliate"):
        rules = (ROOT / "rules" / "mercadolibre.yaml").read_text(encoding="utf-8")
        (project.parent / "ml.yaml").write_text(rules.replace("affiliate: MLB", setting), encoding="utf-8")
        text = text.replace("marketplaces: {}", "marketplaces:\n  ml: {rules: ml.yaml}\n")
    else:
        text += f"  {setting}\n"
    project.write_text(text, encoding="utf-8")
    code, out, err = tradepost("serve", "-c", str(project))
    assert code == 1 and message in out + err, out + err


@pytest.mark.parametrize(("failpoint", "queued"), [("notify:before-commit", 0), ("notify:queued", 1)])
def test_sigkill_before_the_answer_acknowledges_nothing_it_could_lose(
    project: Path, failpoint: str, queued: int
) -> None:
    served = Served(project, failpoint)
    try:
        with pytest.raises(httpx.TransportError):  # no answer at all: VTEX saw no 2xx
            served.post(DOCUMENTED)
        code, _, _ = served.finish(signal.SIGKILL)
    finally:
        if served.process.poll() is None:
            served.process.kill()
    assert code == -signal.SIGKILL
    with StateStore(project.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        assert queue.counts().queued == queued  # committed or not, never half
    restarted = Served(project)
    try:
        assert restarted.post(DOCUMENTED).status_code == 200  # VTEX's next notification merges
    finally:
        restarted.finish(signal.SIGTERM)
    with StateStore(project.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        assert _queued(queue) == {"1070": (Change.STOCK, "2024-05-02T13:45:10.123")}


def test_a_request_in_flight_when_sigterm_arrives_is_finished_and_answered(served: Served) -> None:
    body = json.dumps(DOCUMENTED).encode()
    head = f"POST {URL} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n\r\n".encode()
    with socket.create_connection(("127.0.0.1", served.port), timeout=TIMEOUT) as sock:
        sock.sendall(head + body[:10])
        time.sleep(0.3)  # the server is reading the body
        served.process.send_signal(signal.SIGTERM)
        time.sleep(0.3)  # and stopping: no new connection is accepted
        with pytest.raises(httpx.TransportError):
            served.post(DOCUMENTED)
        sock.sendall(body[10:])
        answer = sock.recv(4096)
    assert answer.startswith(b"HTTP/1.1 200 ")
    out, _ = served.process.communicate(timeout=TIMEOUT)
    assert (served.process.returncode, out.splitlines()[-1]) == (
        0,
        "stopped by SIGTERM; 1 notification(s) queued",
    )


def test_serve_runs_on_uvicorns_c_parser_and_loop() -> None:
    """httptools and uvloop are dependencies: uvicorn picks them when installed, and serve (and the
    stand-ins) then spend a quarter less CPU per notification than on h11 and asyncio's loop
    (``bench/bench_sync_latency.py``). Not on Windows, where uvloop has no build."""
    import sys

    import uvicorn

    config = uvicorn.Config(lambda scope, receive, send: None, lifespan="off")
    config.load()
    assert config.http_protocol_class.__name__ == "HttpToolsProtocol"
    if sys.platform != "win32":
        assert config.loop == "auto"
        import uvloop  # noqa: F401  # what uvicorn's "auto" loop picks
