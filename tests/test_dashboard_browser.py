"""The dashboard in a real browser: Debian's chromium, driven by playwright, against `tradepost serve`.

Given a sandbox session (Mercado Libre's listings applied from the example catalog, a buyer's
order at the listed price and one 10% below it and a buyer's question, pulled by `tradepost orders
pull`: one order approved, one held) and `tradepost serve` started on 127.0.0.1 (port 0) as its
own process with a dashboard token, a browser signs in, reads the run's numbers on the overview
and the KPI page, approves the held order from the review queue and sees its new state (and the
state store has it), answers the question (and the marketplace has the answer, once); a page
before sign-in is redirected, a wrong token refused, a form posted without its CSRF token refused
(403).

Skipped, saying why, where playwright (the test extra) or Debian's chromium is missing: playwright
never downloads a browser here, it drives ``/usr/bin/chromium`` (.ci/run installs it).
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from engine.orders import OrderStore
from engine.project import load_project, open_state
from tests._harness import ROOT, Loopback, run_apply, subset, tradepost, write_project
from tests.test_orders_e2e import listed_skus

try:
    from playwright.sync_api import Browser, Locator, Page, sync_playwright
except ImportError:  # the test extra is not installed
    sync_playwright = None

CHROMIUM = os.environ.get("TRADEPOST_TEST_CHROMIUM") or shutil.which("chromium") or "/usr/bin/chromium"
"""Debian's chromium; ``TRADEPOST_TEST_CHROMIUM`` names another build of it."""
CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--no-first-run",
]
TOKEN = "browser-test-token-5Jq2-x8Lw-0pZr"
SECRET = "browser-test-secret-Vn3k-7Hs1-Qm"
TIMEOUT = 60.0

pytestmark = [
    pytest.mark.skipif(
        sync_playwright is None,
        reason="playwright (the Python package) is not installed: pip install -e '.[test]'",
    ),
    pytest.mark.skipif(
        not os.access(CHROMIUM, os.X_OK),
        reason=f"no chromium at {CHROMIUM} (apt-get install chromium chromium-driver; .ci/run does)",
    ),
]


@dataclass
class Shop:
    config: Path
    live: int
    """Listings applied to Mercado Libre by the session's apply."""
    held: str
    approved: str
    question: str
    marketplace: Any
    """The Mercado Libre stand-in, whose answers the test reads."""
    url: str = ""

    def state_of(self, order_id: str) -> str:
        with open_state(load_project(self.config)) as state:
            stored = OrderStore(state).get("mercadolibre", order_id)
        assert stored is not None
        return stored.state


def sandbox_session(loopback: Loopback, folder: Path) -> Shop:
    """Listings applied, two orders bought and pulled (one held for its price), the dashboard on."""
    box = loopback.sandbox(subset(20))
    config = write_project(box, folder)
    summary = run_apply(config, "mercadolibre", box)
    assert summary.failed == 0 and summary.applied > 5, summary.failures
    sku = listed_skus(config, "mercadolibre")[0]
    ml: Any = box.standins["mercadolibre"]
    approved = ml.create_order(sku, 1)
    listed = Decimal(str(ml.order_record(approved)["order_items"][0]["unit_price"]))
    held = ml.create_order(sku, 1, unit_price=str((listed * Decimal("0.9")).quantize(Decimal("0.01"))))
    with open_state(load_project(config)) as state:
        applied = state.get("mercadolibre", sku)
    assert applied is not None and applied.remote_id
    question = ml.after_sales.ask(applied.remote_id.split("/")[0], "Tem na cor azul?")
    code, _, err = tradepost("orders", "pull", "-m", "mercadolibre", "-c", str(config))
    assert code == 0, err
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["serve"] = {
        "host": "127.0.0.1",
        "port": 0,
        "secret": "env:TRADEPOST_TEST_SERVE_SECRET",
        "dashboard_token": "env:TRADEPOST_TEST_DASHBOARD_TOKEN",
    }
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    return Shop(config, summary.applied, held, approved, question, ml)


@pytest.fixture
def shop(loopback: Loopback, tmp_path: Path) -> Iterator[Shop]:
    """The sandbox session, with `tradepost serve` running over its state (stopped by SIGTERM)."""
    found = sandbox_session(loopback, tmp_path / "project")
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "TRADEPOST_TEST_SERVE_SECRET": SECRET,
        "TRADEPOST_TEST_DASHBOARD_TOKEN": TOKEN,
    }
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "serve", "-c", str(found.config)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    assert process.stdout is not None
    watchdog = threading.Timer(TIMEOUT, process.kill)  # a server that never says where it listens
    watchdog.start()
    try:
        banner = process.stdout.readline()
    finally:
        watchdog.cancel()
    try:
        assert banner.startswith("listening on http://127.0.0.1:"), banner + process.stderr.read()
        found.url = "http://127.0.0.1:" + banner.split(":")[2].split("/")[0]
        yield found
    finally:
        process.send_signal(signal.SIGTERM)
        _, err = process.communicate(timeout=TIMEOUT)
        assert TOKEN not in err and SECRET not in err


@pytest.fixture
def browser(shop: Shop) -> Iterator[Browser]:
    """Chromium, started once the session's state is written (playwright's loop then owns this
    thread: the in-process CLI cannot run beside it)."""
    assert sync_playwright is not None
    with sync_playwright() as playwright:
        started = playwright.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            yield started
        finally:
            started.close()


def new_page(browser: Browser) -> Page:
    page = browser.new_page()
    page.set_default_timeout(TIMEOUT * 1000)
    return page


def follow(page: Page, target: str | Locator) -> None:
    """Click a link or a button and wait for the page it leads to (after a POST's redirect too)."""
    with page.expect_navigation():
        (page.locator(target) if isinstance(target, str) else target).click()


def sign_in(page: Page, shop: Shop, token: str = TOKEN) -> None:
    page.goto(shop.url + "/login")
    page.fill("input[name=token]", token)
    follow(page, "button[type=submit]:has-text('Sign in')")


def kpi(page: Page, label: str) -> str:
    """The KPI page's value of ``label`` (one marketplace chosen: one value)."""
    return page.locator(f"#report tr:has(th:text-is('{label}')) td").first.inner_text()


def test_sign_in_read_the_figures_approve_an_order_and_answer_a_question(
    browser: Browser, shop: Shop
) -> None:
    page = new_page(browser)
    page.goto(shop.url + "/")
    assert page.url == shop.url + "/login"  # before sign-in: the form, nothing else
    sign_in(page, shop)
    assert page.url == shop.url + "/"
    row = page.locator("#marketplaces tr[data-marketplace=mercadolibre]")
    assert row.locator("td.live").inner_text() == str(shop.live)
    assert row.locator("td.held").inner_text() == "1"
    assert "approved 1, held 1" in row.inner_text()

    follow(page, "header a:has-text('Review queue')")
    held = page.locator(f"#held tr[data-order='{shop.held}']")
    assert "held for review" in held.inner_text()
    assert "rules/mercadolibre.yaml:" in held.inner_text()  # the rule that held it
    assert page.locator(f"#held tr[data-order='{shop.approved}']").count() == 0
    held.locator("input[name=note]").fill("agreed with the buyer")
    follow(page, held.locator("button:has-text('Approve')"))

    assert page.url == f"{shop.url}/orders/mercadolibre/{shop.held}"
    assert page.inner_text("#order-state") == "approved"
    assert page.inner_text("#order-note") == "agreed with the buyer"
    assert "it will be placed in VTEX at the next" in page.inner_text("#flash")
    assert shop.state_of(shop.held) == "approved"
    follow(page, "header a:has-text('Review queue')")
    assert "No order waits for review." in page.inner_text("#held")

    follow(page, "header a:has-text('KPIs')")
    page.select_option("select[name=marketplace]", "mercadolibre")
    follow(page, "button:has-text('Show')")
    assert kpi(page, "exported") == str(shop.live)
    assert kpi(page, "received") == "2"
    assert page.locator("#report svg").count() >= 3  # the charts, drawn on the server

    follow(page, "header a:has-text('Questions and returns')")
    asked = page.locator(f"#questions tr[data-question='{shop.question}']")
    assert "Tem na cor azul?" in asked.inner_text() and asked.locator("td.state").inner_text() == "unanswered"
    asked.locator("input[name=text]").fill("Sim, temos azul.")
    follow(page, asked.locator("button:has-text('Answer')"))
    assert f"Question {shop.question} answered." in page.inner_text("#flash")
    assert asked.locator("td.state").inner_text() == "answered"
    assert shop.marketplace.after_sales.answers_posted == 1

    follow(page, "#sign-out")
    assert page.url == shop.url + "/login"
    page.goto(shop.url + "/orders")
    assert page.url == shop.url + "/login"


def test_a_wrong_token_and_a_form_without_its_csrf_token_are_refused(browser: Browser, shop: Shop) -> None:
    page = new_page(browser)
    sign_in(page, shop, token=TOKEN[::-1])
    assert page.url == shop.url + "/login"
    assert "not the dashboard's" in page.inner_text("#wrong-token")
    page.goto(shop.url + "/")
    assert page.url == shop.url + "/login"  # still signed out

    page.wait_for_timeout(1100)  # sign-in attempts are paced at one a second per address
    sign_in(page, shop)
    assert page.url == shop.url + "/"
    page.goto(shop.url + "/orders")
    held = page.locator(f"#held tr[data-order='{shop.held}']")
    held.locator("form.approve input[name=csrf_token]").evaluate("input => input.remove()")
    with page.expect_response(lambda answer: answer.request.method == "POST") as posted:
        held.locator("button:has-text('Approve')").click()
    assert posted.value.status == 403
    assert "CSRF" in page.inner_text("#refused")
    assert shop.state_of(shop.held) == "held"
