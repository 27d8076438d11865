"""The dashboard of `tradepost serve`, route by route, in process (starlette's TestClient).

Given a project whose state store holds what runs leave (a failing SKU, invalid records with
their rule locations, a run, held orders) and the app `tradepost serve` builds (the notification
endpoint with the dashboard mounted at ``/``), each test reads or posts as a browser does and
checks the answer and, for an action, the state store: nothing is served before sign-in but the
notification endpoint and ``/healthz``; every POST needs the session's CSRF token.
"""

from __future__ import annotations

import json
import re
import tomllib
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
from starlette.applications import Starlette
from starlette.responses import PlainTextResponse
from starlette.routing import Route

with warnings.catch_warnings():  # starlette 1.x would rather have httpx2 under its TestClient: not here
    warnings.simplefilter("ignore")
    from starlette.testclient import TestClient

from cli.dashboard import dashboard_app
from engine.connectors import CustomerQuestion, MarketplaceReturn
from engine.orders import AfterSalesStore, OrderStore
from engine.project import ConfigError, load_project
from engine.secrets import forget
from engine.state import Change, NotificationQueue, StateStore
from marketplaces.vtex._notifications import notification_app
from tests.conftest import ROOT
from tests.test_cli_orders import HOLD, order

TOKEN = "dashboard-token-0123456789abcdef"
SECRET = "notification-secret-0123456789"
ENV = "TRADEPOST_TEST_DASHBOARD_TOKEN"
INVALID = json.dumps(
    [
        "record",
        [
            ["TP922", "require", "GTIN 7891234567890 has a wrong check digit", ["rules/google.yaml", 66, 12]],
            ["TP930", "price.min", "price 10.00 is below the minimum 12.00", ["rules/google.yaml", 40, 8]],
        ],
    ]
)


def write_config(folder: Path, serve: str) -> Path:
    config = folder / "tradepost.yaml"
    config.write_text(
        "source: {type: file, path: catalog.jsonl}\nstate: state.sqlite\n"
        "marketplaces:\n  mercadolibre: {rules: rules/mercadolibre.yaml}\n"
        "  google: {rules: rules/google.yaml}\n"
        f"serve:\n  secret: env:{ENV}_SECRET\n{serve}",
        encoding="utf-8",
    )
    return config


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A project with a dashboard token, and a state with a failing SKU, two invalid records, a run
    and three orders (two held, one approved)."""
    monkeypatch.setenv(ENV, TOKEN)
    monkeypatch.setenv(f"{ENV}_SECRET", SECRET)
    config = write_config(tmp_path, f"  dashboard_token: env:{ENV}\n")
    with StateStore(tmp_path / "state.sqlite") as state:
        state.record_error("mercadolibre", "2000001", "HTTP 400: item.attributes.BRAND is required")
        state.note_excluded("google", [("2000010", "h10", INVALID), ("2000011", "h11", INVALID)])
        state.note_run("google", "apply", 0.0, {"applied": 7, "failed": 0, "skipped": 0, "requests": 9})
        orders = OrderStore(state)
        orders.insert(order("H-1", "580.41", 2), "held", HOLD, "received: hold")
        orders.insert(order("H-2", "99.00"), "held", HOLD, "received: hold")
        orders.insert(order("A-1", "644.90"), "approved", {"decision": "approve", "reasons": []}, "received")
        after_sales = AfterSalesStore(state)
        after_sales.record_question(
            CustomerQuestion("mercadolibre", "Q-1", "Tem na cor azul?", sku_id="2000003")
        )
        after_sales.record_return(
            MarketplaceReturn("mercadolibre", "R-1", "A-1", "PDD9549: defective", "opened")
        )
    return config


def serve_app(config: Path, store: StateStore, queue: NotificationQueue, host: str) -> Starlette:
    """The app `tradepost serve` runs: VTEX's endpoint, the dashboard for every other path."""
    app = notification_app(queue, SECRET)
    app.router.default = dashboard_app(load_project(config), store, queue, host=host)
    return app


@contextmanager
def browser(config: Path, host: str = "127.0.0.1", **options: Any) -> Iterator[TestClient]:
    """A client of the app `tradepost serve` builds over the project's state, which follows no redirect."""
    with StateStore(config.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        app = serve_app(config, store, queue, host)
        with TestClient(app, follow_redirects=False, **options) as http:
            yield http


@pytest.fixture
def client(project: Path) -> Iterator[TestClient]:
    with browser(project) as http:
        yield http


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, html
    return found.group(1)


def sign_in(http: TestClient, token: str = TOKEN) -> int:
    form = http.get("/login")
    return http.post("/login", data={"token": token, "csrf_token": csrf_of(form.text)}).status_code


def signed_in(http: TestClient) -> str:
    """Sign in; the CSRF token of the session."""
    assert sign_in(http) == 303
    return csrf_of(http.get("/").text)


def held_state(project: Path, order_id: str) -> str:
    with StateStore(project.parent / "state.sqlite") as state:
        stored = OrderStore(state).get("mercadolibre", order_id)
    assert stored is not None
    return stored.state


PAGES = ["/", "/kpis", "/listings", "/orders", "/orders/mercadolibre/H-1", "/aftersales", "/log"]
FORMS = [
    "/listings/retry",
    "/orders/mercadolibre/H-1/approve",
    "/orders/mercadolibre/H-1/reject",
    "/questions/mercadolibre/Q-1/answer",
    "/logout",
]


@pytest.mark.parametrize("path", PAGES)
def test_every_page_before_sign_in_redirects_to_the_sign_in_form(client: TestClient, path: str) -> None:
    answer = client.get(path)
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")


@pytest.mark.parametrize("path", FORMS)
def test_every_form_before_sign_in_is_refused(client: TestClient, path: str, project: Path) -> None:
    form = client.get("/login")
    answer = client.post(path, data={"csrf_token": csrf_of(form.text), "reason": "x"})
    assert answer.status_code == 403
    assert held_state(project, "H-1") == "held"


def test_the_notification_endpoint_and_healthz_need_no_sign_in(client: TestClient) -> None:
    assert client.get("/healthz").json()["status"] == "ok"
    assert client.post(f"/api/notification?k={SECRET}", json={"IdSku": "2000001"}).status_code == 200
    assert client.post("/api/notification?k=wrong", json={"IdSku": "2000001"}).status_code == 401
    assert client.get("/nothing-here").status_code == 404


def test_sign_in_sets_a_strict_http_only_session_cookie(client: TestClient) -> None:
    form = client.get("/login")
    assert form.status_code == 200 and 'type="password" name="token"' in form.text
    assert "default-src 'none'" in form.headers["content-security-policy"]
    answer = client.post("/login", data={"token": TOKEN, "csrf_token": csrf_of(form.text)})
    assert (answer.status_code, answer.headers["location"]) == (303, "/")
    cookie = answer.headers["set-cookie"].lower()
    assert "httponly" in cookie and "samesite=strict" in cookie and "secure" not in cookie  # loopback
    assert TOKEN not in answer.headers["set-cookie"]
    assert client.get("/login").headers["location"] == "/"  # signed in already


def test_a_wrong_token_is_refused_and_signs_nobody_in(client: TestClient) -> None:
    form = client.get("/login")
    answer = client.post("/login", data={"token": TOKEN[:-1] + "X", "csrf_token": csrf_of(form.text)})
    assert answer.status_code == 401 and "not the dashboard" in answer.text
    assert client.get("/").status_code == 303


def test_sign_in_needs_the_form_csrf_token_and_is_paced(client: TestClient) -> None:
    client.get("/login")
    assert client.post("/login", data={"token": TOKEN}).status_code == 403
    answers = [sign_in(client, "wrong-token-wrong-token") for _ in range(3)]
    assert 429 in answers  # one attempt a second per address
    assert client.get("/").status_code == 303


def test_a_session_cookie_from_another_server_or_forged_is_worth_nothing(project: Path) -> None:
    with browser(project) as first:
        signed_in(first)
        cookies = dict(first.cookies)
    with browser(project) as second:
        second.cookies.update(cookies)  # a restart draws a new key: everyone signs in again
        assert second.get("/").status_code == 303
        second.cookies.set("tradepost_dashboard", "eyJpZCI6ICJ4In0=.forged.signature")
        assert second.get("/").status_code == 303


def test_cookies_are_secure_off_loopback(project: Path) -> None:
    with browser(project, host="0.0.0.0", base_url="https://dashboard.example") as http:
        assert "secure" in http.get("/login").headers["set-cookie"].lower()


def test_overview_shows_each_marketplace_from_the_state(client: TestClient) -> None:
    signed_in(client)
    page = client.get("/")
    assert page.status_code == 200
    text = re.sub(r"\s+", " ", page.text)
    assert '<td class="n held"><a href="/orders?marketplace=mercadolibre">2</a></td>' in text
    assert "held 2" in text and "approved 1" in text
    assert "TP922" in text and "rules/google.yaml:66:12" in text
    assert "mercadolibre: 1 SKU(s) failing (more than 0)" in text


def test_listings_filter_by_marketplace_and_code(client: TestClient) -> None:
    signed_in(client)
    every = client.get("/listings").text
    assert "2000001" in every and "2000010" in every and "HTTP 400: item.attributes.BRAND" in every
    assert "5 problem(s)" in every  # 1 failing, 2 records x 2 codes
    tp930 = client.get("/listings", params={"marketplace": "google", "code": "TP930"}).text
    assert "2 problem(s)" in tp930 and "rules/google.yaml:40:8" in tp930 and "2000001" not in tp930
    failed = client.get("/listings", params={"code": "FAILED"}).text
    assert "1 problem(s)" in failed and "2000010" not in failed
    unknown = client.get("/listings", params={"marketplace": "nowhere"})
    assert unknown.status_code == 400 and "marketplace &#39;nowhere&#39; is not in" in unknown.text


def test_retry_queues_the_sku_as_a_vtex_notification_does(client: TestClient, project: Path) -> None:
    csrf = signed_in(client)
    answer = client.post(
        "/listings/retry",
        data={"csrf_token": csrf, "sku": "2000001", "marketplace": "mercadolibre", "code": ""},
    )
    assert (answer.status_code, answer.headers["location"]) == (
        303,
        "/listings?marketplace=mercadolibre&code=",
    )
    assert "SKU 2000001 is queued" in client.get(answer.headers["location"]).text
    with StateStore(project.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        (taken,) = queue.take(10)
    assert (taken.sku_id, taken.changes) == ("2000001", Change.CATALOG)
    bad = client.post("/listings/retry", data={"csrf_token": csrf, "sku": "../../etc"})
    assert "That is not a SKU id." in client.get(bad.headers["location"]).text


def test_the_review_queue_shows_every_reason_with_its_rule(client: TestClient) -> None:
    signed_in(client)
    page = client.get("/orders").text
    assert "2 order(s) held for review" in page and "A-1" not in page
    assert "held for review" in page and "rules/mercadolibre.yaml:104:16" in page
    assert "1160.82 BRL" in page  # 2 x 580.41
    assert "Joana" not in page  # no personal data
    assert "H-1" in client.get("/orders", params={"marketplace": "mercadolibre"}).text
    assert "No order waits" in client.get("/orders", params={"marketplace": "google"}).text


def test_approve_with_a_note_moves_the_order_as_the_cli_does(client: TestClient, project: Path) -> None:
    csrf = signed_in(client)
    answer = client.post("/orders/mercadolibre/H-1/approve", data={"csrf_token": csrf, "note": "agreed"})
    assert (answer.status_code, answer.headers["location"]) == (303, "/orders/mercadolibre/H-1")
    page = client.get("/orders/mercadolibre/H-1").text
    assert '<span id="order-state">approved</span>' in page and "approved by reviewer" in page
    assert "Order H-1 is approved; it will be placed in VTEX" in page
    assert held_state(project, "H-1") == "approved"
    again = client.post("/orders/mercadolibre/H-1/approve", data={"csrf_token": csrf})
    assert "only held orders can be approved" in client.get(again.headers["location"]).text


def test_reject_needs_a_reason_and_moves_the_order(client: TestClient, project: Path) -> None:
    csrf = signed_in(client)
    empty = client.post("/orders/mercadolibre/H-2/reject", data={"csrf_token": csrf, "reason": "  "})
    assert "a rejection needs a reason" in client.get(empty.headers["location"]).text
    assert held_state(project, "H-2") == "held"
    client.post("/orders/mercadolibre/H-2/reject", data={"csrf_token": csrf, "reason": "price error"})
    assert held_state(project, "H-2") == "rejected"
    assert "<td>rejected by reviewer</td><td>price error</td>" in client.get("/orders/mercadolibre/H-2").text


def test_a_form_without_its_csrf_token_is_refused_and_changes_nothing(
    client: TestClient, project: Path
) -> None:
    signed_in(client)
    for data in ({}, {"csrf_token": "another-sessions-token"}):
        answer = client.post("/orders/mercadolibre/H-1/approve", data=data)
        assert answer.status_code == 403 and "CSRF" in answer.text
    assert held_state(project, "H-1") == "held"
    assert client.post("/logout").status_code == 403


def test_an_unknown_order_says_so(client: TestClient) -> None:
    signed_in(client)
    answer = client.get("/orders/mercadolibre/NOPE")
    assert answer.status_code == 400 and "no mercadolibre order NOPE" in answer.text


def test_the_log_filters_by_level_marketplace_sku_and_age(client: TestClient) -> None:
    signed_in(client)
    page = client.get("/log").text
    assert "apply: 7 applied, 0 failed" in page and "HTTP 400" in page and "received: hold" in page
    errors = client.get("/log", params={"level": "error"}).text
    assert "HTTP 400" in errors and "apply: 7 applied" not in errors
    google = client.get("/log", params={"marketplace": "google", "sku": "2000011"}).text
    assert "2000011" in google and "2000010" not in google and "HTTP 400" not in google
    assert "recurring" in client.get("/log", params={"marketplace": "google"}).text.lower()
    assert client.get("/log", params={"since": "soon"}).status_code == 400
    assert "HTTP 400" in client.get("/log", params={"since": "1h"}).text


def test_sign_out_ends_the_session_for_good(client: TestClient) -> None:
    csrf = signed_in(client)
    cookies = dict(client.cookies)
    answer = client.post("/logout", data={"csrf_token": csrf})
    assert (answer.status_code, answer.headers["location"]) == (303, "/login")
    assert client.get("/").status_code == 303
    client.cookies.update(cookies)  # the old cookie, kept by someone: signed out all the same
    assert client.get("/").status_code == 303


def test_markup_from_the_state_is_escaped(client: TestClient, project: Path) -> None:
    with StateStore(project.parent / "state.sqlite") as state:
        state.record_error("google", "2000099", "<script>alert(1)</script>")
    signed_in(client)
    page = client.get("/listings").text
    assert "<script>" not in page and "&lt;script&gt;alert(1)&lt;/script&gt;" in page


def test_without_a_token_the_dashboard_is_off_and_says_how_to_turn_it_on(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv(f"{ENV}_SECRET", SECRET)
    config = write_config(tmp_path, "")
    with browser(config) as http:
        page = http.get("/")
        assert page.status_code == 200 and "dashboard_token: env:" in page.text
        assert http.get("/login").status_code == 404 and http.get("/orders").status_code == 404
        assert http.get("/healthz").status_code == 200


def test_a_short_token_is_refused_when_serve_starts(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "Qv7-tiny-Zp9")
    config = write_config(tmp_path, f"  dashboard_token: env:{ENV}\n")
    try:
        with pytest.raises(ConfigError, match="shorter than 16 characters") as raised, browser(config):
            pass
    finally:
        forget("Qv7-tiny-Zp9")  # read_secret registered it with this process's redactor
    assert "Qv7" not in str(raised.value)


def test_sessions_signed_in_elsewhere_are_not_shared(project: Path) -> None:
    with StateStore(project.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        app = serve_app(project, store, queue, "127.0.0.1")
        with TestClient(app, follow_redirects=False) as one, TestClient(app, follow_redirects=False) as two:
            signed_in(one)
            assert two.get("/").status_code == 303
            assert one.get("/").status_code == 200


def test_received_at_is_shown_in_utc(client: TestClient) -> None:
    signed_in(client)
    year = datetime.now(UTC).strftime("%Y")
    assert f"{year}-" in client.get("/orders").text


def test_every_template_ships_with_a_non_editable_install() -> None:
    pyproject = tomllib.loads((ROOT / "pyproject.toml").read_text(encoding="utf-8"))
    patterns = pyproject["tool"]["setuptools"]["package-data"]["cli.dashboard"]
    package = ROOT / "cli" / "dashboard"
    shipped = {path for pattern in patterns for path in package.glob(pattern)}
    templates = set((package / "templates").iterdir())
    assert templates and templates <= shipped


def test_the_kpi_page_shows_the_report_with_its_charts(client: TestClient) -> None:
    signed_in(client)
    page = client.get("/kpis")
    assert page.status_code == 200 and '<section class="tp-report">' in page.text
    assert "<svg" in page.text and "<script" not in page.text
    assert "Window: " in page.text
    assert client.get("/kpis", params={"since": "2w", "marketplace": "google"}).status_code == 200
    assert client.get("/kpis", params={"since": "soon"}).status_code == 400


def test_questions_and_returns_are_listed_with_their_orders(client: TestClient) -> None:
    signed_in(client)
    page = client.get("/aftersales").text
    assert "Tem na cor azul?" in page and "SKU 2000003" in page and "unanswered" in page
    assert "PDD9549: defective" in page and '<a href="/orders/mercadolibre/A-1">A-1</a>' in page
    assert "No questions." in client.get("/aftersales", params={"marketplace": "google"}).text


def test_an_answer_the_marketplace_cannot_take_is_said_and_kept_unsent(client: TestClient) -> None:
    csrf = signed_in(client)
    answer = client.post("/questions/mercadolibre/Q-9/answer", data={"csrf_token": csrf, "text": "Sim"})
    assert answer.headers["location"] == "/aftersales?marketplace=mercadolibre"
    assert "Question Q-9: " in client.get(answer.headers["location"]).text


def test_a_route_added_to_serve_after_the_dashboard_still_answers(project: Path) -> None:
    """`/metrics` (its own bearer token) is added to serve's app beside the dashboard, in any order."""
    with StateStore(project.parent / "state.sqlite") as store, NotificationQueue(store) as queue:
        app = serve_app(project, store, queue, "127.0.0.1")
        app.router.routes.append(Route("/metrics", lambda request: PlainTextResponse("up 1\n")))
        with TestClient(app, follow_redirects=False) as http:
            assert http.get("/metrics").text == "up 1\n"
            assert http.get("/orders").headers["location"] == "/login"
