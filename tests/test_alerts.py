"""Alerts: posted to a webhook once until they clear, retried, and never carrying a secret or a buyer.

Given a project whose state (SQLite or PostgreSQL: the tests that read a store run on both) holds
listings with the stock last sent, failing SKUs, a held order and a queued notification, and a
webhook that is a local receiver (a starlette app served on 127.0.0.1 that answers what the test
scripts, 500 then 200 say), each test runs the check (in process, or `tradepost alerts check` as a
scheduler does) and reads what the receiver got: one message per kind and marketplace, none again
on the next run, a "resolved" one when an alert clears.
"""

from __future__ import annotations

import json
import re
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from engine.connectors import RetryPolicy
from engine.orders import OrderStore
from engine.project import AlertBook, Webhook, alerting, check_alerts, firing_alerts, load_project
from engine.project import _alerts as alerts_module
from engine.state import NotificationQueue, StateStore
from engine.state._queue import Change
from engine.state._store import AppliedListing
from marketplaces.sandbox import Sandbox
from tests import _postgres
from tests._harness import tradepost
from tests.test_orderflow import make_order
from tests.test_state_contract import server as server  # the PostgreSQL fixture, per worker

TOKEN = "xoxb-SECRET-webhook-token-42"
ENV = "TRADEPOST_TEST_WEBHOOK"
FAST = RetryPolicy(attempts=3, base=0.001, cap=0.01)
PERSONAL = ("Maria Souza", "maria@example.com", "Rua das Flores", "01000-000")


@dataclass
class Receiver:
    """A Slack-like webhook on loopback: every body posted, and the statuses to answer in turn."""

    answers: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    raw: list[bytes] = field(default_factory=list)
    port: int = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}/services/T0/B0/{TOKEN}"

    def app(self) -> Starlette:
        async def hook(request: Request) -> Response:
            body = await request.body()
            self.raw.append(body)
            status = self.answers.pop(0) if self.answers else 200
            if status == 200:
                self.bodies.append(json.loads(body))
            return Response("ok" if status == 200 else "try later", status_code=status)

        return Starlette(routes=[Route("/services/{rest:path}", hook, methods=["POST"])])

    def texts(self) -> list[str]:
        return [body["text"] for body in self.bodies]


@pytest.fixture
def receiver() -> Iterator[Receiver]:
    found = Receiver()
    box = Sandbox({"receiver": found.app()})
    box.start()
    found.port = box.ports["receiver"]
    try:
        yield found
    finally:
        box.stop()
    for body in found.raw:  # whatever a test did, nothing posted carries a secret or a buyer
        assert TOKEN.encode() not in body
        assert not any(word.encode() in body for word in PERSONAL)


@pytest.fixture(params=["sqlite", "postgresql"])
def project(
    request: pytest.FixtureRequest, tmp_path: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> Path:
    """A project of two marketplaces whose webhook is the receiver; its state on the test's backend."""
    state = "state.sqlite"
    if request.param == "postgresql":
        pg: _postgres.Server = request.getfixturevalue("server")
        state = pg.url(pg.database(), "env:TRADEPOST_TEST_PG")
        monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
    monkeypatch.setenv(ENV, receiver.url)
    monkeypatch.setattr(alerts_module, "WEBHOOK_RETRIES", FAST)
    return write_config(tmp_path / "tradepost.yaml", state)


def write_config(config: Path, state: str) -> Path:
    config.write_text(
        f"source: {{type: file, path: catalog.jsonl}}\nstate: {state}\n"
        "marketplaces:\n  mercadolibre: {rules: mercadolibre.yaml}\n  google: {rules: google.yaml}\n"
        f"alerts:\n  webhook: env:{ENV}\n  low_stock: {{threshold: 3, marketplaces: [mercadolibre]}}\n"
        "  max_failing_rate: 20%\n  max_held_order_hours: 1\n  max_queue_age_minutes: 10\n",
        encoding="utf-8",
    )
    return config


def opened(config: Path) -> StateStore:
    found = load_project(config)
    return StateStore(found.state_url, secrets_base=found.folder)


def stock(store: StateStore, marketplace: str, **quantities: int) -> None:
    store.record_applied(
        marketplace,
        [
            AppliedListing(sku, "p1", f"h-{sku}", Decimal("10"), None, qty, None)
            for sku, qty in quantities.items()
        ],
    )


def troubled(config: Path) -> None:
    """Low stock (a: 2, c: 0; d unknown, google's not watched), 1 of 4 SKUs failing, an order held,
    a notification queued."""
    with opened(config) as store:
        stock(store, "mercadolibre", a=2, b=10, c=0, d=-1)
        stock(store, "google", a=1)
        store.record_error("mercadolibre", "b", "Maria Souza's item refused: token xoxb-other")
        OrderStore(store).insert(
            make_order("MLB-77", ("a", 1, "10.00")), "held", {"outcome": "hold"}, "received"
        )
        with NotificationQueue(store) as queue:
            queue.enqueue("a", Change.STOCK, "2026-01-01T00:00:00Z")


LATER = 2 * 86400
"""Seconds ahead the in-process checks look: the order and the notification are old by then."""


def check(config: Path, receiver: Receiver, ahead: float = LATER) -> Any:
    project = load_project(config)
    with opened(config) as store:
        return check_alerts(
            project, store, webhook=Webhook(receiver.url, f"env:{ENV}", policy=FAST), now=time.time() + ahead
        )


def test_each_alert_is_posted_once_then_resolved_when_it_clears(project: Path, receiver: Receiver) -> None:
    troubled(project)
    receiver.answers = [500]  # the first post fails once: it is retried, and arrives once
    first = check(project, receiver)
    assert {(a.kind, a.marketplace, a.subject) for a in first.firing} == {
        ("low_stock", "mercadolibre", "a"),
        ("low_stock", "mercadolibre", "c"),
        ("failing_rate", "mercadolibre", ""),
        ("held_order", "mercadolibre", "MLB-77"),
        ("queue_age", "", ""),
    }
    assert len(receiver.raw) == 5 and len(receiver.bodies) == 4
    low, failing, held, queue = receiver.texts()
    assert low == (
        ":rotating_light: *Tradepost alert*: mercadolibre: low stock (2)\n"
        "• SKU a: 2 unit(s) last sent\n• SKU c: 0 unit(s) last sent"
    )
    assert failing.endswith(
        "mercadolibre: SKUs failing (1)\n• 1 of 4 SKU(s) failing (25.0%, more than 20.0%)"
    )
    assert "• order MLB-77: held 48.0 h" in held
    assert "project: notifications waiting too long (1)\n• 1 SKU(s) queued" in queue
    assert receiver.bodies[0]["blocks"][0]["text"] == {"type": "mrkdwn", "text": low}

    again = check(project, receiver)  # nothing new: nothing posted, the same firing
    assert len(receiver.bodies) == 4 and len(again.firing) == 5 and not again.posted

    with opened(project) as store:  # a restocked, b's error cleared
        stock(store, "mercadolibre", a=50)
        store.clear_error("mercadolibre", "b")
    cleared = check(project, receiver)
    assert sorted(a.key for a in cleared.resolved) == [
        "failing_rate:mercadolibre:",
        "low_stock:mercadolibre:a",
    ]
    assert receiver.texts()[4:] == [
        ":white_check_mark: *Tradepost resolved*: mercadolibre: low stock (1)\n• SKU a: 2 unit(s) last sent",
        ":white_check_mark: *Tradepost resolved*: mercadolibre: SKUs failing (1)\n"
        "• 1 of 4 SKU(s) failing (25.0%, more than 20.0%)",
    ]
    with opened(project) as store:  # and c running low again later is the same alert, still posted once
        stock(store, "mercadolibre", c=1)
    assert not check(project, receiver).posted and len(receiver.bodies) == 6


def test_a_claim_left_by_a_killed_checker_is_taken_over_later(project: Path, receiver: Receiver) -> None:
    troubled(project)
    with opened(project) as store:
        firing = firing_alerts(load_project(project), store, time.time() + LATER)
        claimed = AlertBook(store).claim(firing, time.time() - alerts_module.CLAIM - 1)  # then killed
    assert len(claimed) == 5 and not receiver.bodies
    assert len(check(project, receiver).posted) == 5 and len(receiver.bodies) == 4


def test_a_failing_webhook_leaves_the_alerts_unposted_for_the_next_check(
    project: Path, receiver: Receiver
) -> None:
    troubled(project)
    receiver.answers = [200, 503, 503, 503]  # the low-stock message arrives, the next never does
    code, out, err = tradepost("alerts", "check", "-c", str(project))
    assert code == 1 and "Traceback" not in err
    assert err == (
        f"error: the webhook in env:{ENV} answered 503 Service Unavailable (429 and 5xx are tried 3 times); "
        "check its URL\n"
    )
    assert len(receiver.bodies) == 1
    code, out, err = tradepost("alerts", "check", "-c", str(project), "--json")  # the rest, once
    assert code == 2, err
    assert len(receiver.bodies) == 2 and json.loads(out)["posted"] == 1  # only the failing rate, now


def test_the_command_exits_2_while_firing_and_0_once_cleared(project: Path, receiver: Receiver) -> None:
    with opened(project) as store:
        stock(store, "mercadolibre", a=1)
    code, out, err = tradepost("alerts", "check", "-c", str(project))
    assert (code, err) == (2, "")
    assert out == (
        "firing low_stock: mercadolibre: SKU a: 1 unit(s) last sent\n"
        "1 alert(s) firing; posted 1 new, 0 resolved\n"
    )
    with opened(project) as store:
        stock(store, "mercadolibre", a=9)
    code, out, err = tradepost("alerts", "check", "-c", str(project))
    assert (code, out) == (0, "0 alert(s) firing; posted 0 new, 1 resolved\n")
    assert [text.split(":", 2)[1] for text in receiver.texts()] == ["rotating_light", "white_check_mark"]


def test_an_unreachable_webhook_is_one_clear_message_and_exit_1(
    project: Path, receiver: Receiver, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(project) as store:
        stock(store, "mercadolibre", a=1)
    monkeypatch.setenv(ENV, f"http://127.0.0.1:9/services/{TOKEN}")  # the discard port: nobody answers
    code, out, err = tradepost("alerts", "check", "-c", str(project))
    assert code == 1 and out == "" and "Traceback" not in err
    assert err.startswith(f"error: could not post to the webhook in env:{ENV} after 3 tries (ConnectError: ")
    assert err.endswith("check its URL and that its host answers\n") and TOKEN not in err
    with opened(project) as store:  # nothing was recorded as posted
        assert AlertBook(store).stored() == {}


@pytest.mark.parametrize(
    ("alerts", "expected"),
    [
        (f"  webhook: https://hooks.slack.com/services/T0/B0/{TOKEN}\n", "never the URL"),
        ("  webhook: env:X\n  max_failing_rate: 150%\n", "must be a share between 0% and 100%"),
        ("  webhook: env:X\n  low_stock: {threshold: -1}\n", "greater than or equal to 0"),
    ],
)
def test_a_wrong_alerts_section_is_a_config_error_that_never_repeats_the_url(
    tmp_path: Path, alerts: str, expected: str
) -> None:
    config = tmp_path / "tradepost.yaml"
    config.write_text(
        f"source: {{type: file, path: c.jsonl}}\nmarketplaces: {{}}\nalerts:\n{alerts}", encoding="utf-8"
    )
    code, out, err = tradepost("alerts", "check", "-c", str(config))
    assert code == 1 and expected in out + err and TOKEN not in out + err and "Traceback" not in out + err


def test_without_an_alerts_section_the_command_says_what_to_add(tmp_path: Path) -> None:
    config = tmp_path / "tradepost.yaml"
    config.write_text("source: {type: file, path: c.jsonl}\nmarketplaces: {}\n", encoding="utf-8")
    code, _, err = tradepost("alerts", "check", "-c", str(config))
    assert code == 1 and err == (
        f"error: {config} has no `alerts:` section; add one with `webhook: env:NAME` (see README, Alerts)\n"
    )


def test_serve_checks_in_the_background_every_few_minutes(project: Path, receiver: Receiver) -> None:
    with opened(project) as store:
        stock(store, "mercadolibre", a=1)
    errors: list[str] = []
    with alerting(load_project(project), errors.append):
        deadline = time.monotonic() + 10
        while not receiver.bodies and time.monotonic() < deadline:
            time.sleep(0.02)
    assert receiver.texts() == [
        ":rotating_light: *Tradepost alert*: mercadolibre: low stock (1)\n• SKU a: 1 unit(s) last sent"
    ]
    assert errors == []


@pytest.mark.parametrize("project", ["sqlite"], indirect=True)  # from SQLite into PostgreSQL
def test_state_migrate_copies_the_alerts_so_none_is_posted_again(
    project: Path, receiver: Receiver, server: _postgres.Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    with opened(project) as store:
        stock(store, "mercadolibre", a=1)
    assert tradepost("alerts", "check", "-c", str(project))[0] == 2
    monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
    target = write_config(project.parent / "pg.yaml", server.url(server.database(), "env:TRADEPOST_TEST_PG"))
    code, out, err = tradepost(
        "state", "migrate", "-c", str(target), "--from", str(project.parent / "state.sqlite")
    )
    assert code == 0, err
    assert re.search(r"\n  alerts +1 +1 +1  ok\n", out), out
    assert tradepost("alerts", "check", "-c", str(target))[0] == 2 and len(receiver.bodies) == 1
