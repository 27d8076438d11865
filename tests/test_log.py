"""`tradepost log`: the integration log read back from a real state store, on SQLite and PostgreSQL.

Given the sandbox project of ``tests/test_status.py`` (two records Google's rules find invalid),
filled by real applies against the stand-ins and orders written through the order store, each
test runs `tradepost log` as a user types it and reads its entries and recurring groups.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest

from engine.orders import OrderStore
from engine.project import load_project, open_state, pattern_of
from marketplaces._standin import Faults
from tests._harness import run_apply
from tests.test_orderflow import make_order
from tests.test_status import Shop
from tests.test_status import server as server  # the PostgreSQL fixture, per worker
from tests.test_status import shop as shop  # the sandbox project on each backend


def read_log(shop: Shop, *args: str) -> dict[str, Any]:
    code, out, err = shop.tradepost("log", "--json", *args)
    assert code == 0, err
    document: dict[str, Any] = json.loads(out)
    return document


def test_a_run_and_the_invalid_records_with_their_rule_locations(shop: Shop) -> None:
    code, out, err = shop.tradepost("apply", "-m", "google", "--json")
    assert code == 0, err
    applied = json.loads(out)["marketplaces"][0]["applied"]
    document = read_log(shop, "-m", "google")
    run, *invalid = document["entries"]
    assert (run["kind"], run["subject"], run["level"], run["marketplace"]) == (
        "run",
        "apply",
        "info",
        "google",
    )
    assert run["message"].startswith(f"apply: {applied} applied, 0 failed, 0 already applied (")
    assert run["at"] <= time.time()
    assert [(e["kind"], e["level"], e["at"], e["location"]) for e in invalid] == [
        ("invalid", "warning", None, "rules/google.yaml:66:12")
    ] * 2
    assert all(e["message"].startswith("TP922 GTIN ") for e in invalid)
    [recurring] = document["recurring"]
    assert recurring["count"] == 2 and recurring["marketplaces"] == ["google"]
    assert recurring["pattern"] == "TP922 GTIN … has a wrong check digit; Google disapproves such offers"
    assert read_log(shop, "-m", "google", "--level", "error") == {"entries": [], "recurring": []}
    sku = invalid[0]["subject"]
    assert [e["subject"] for e in read_log(shop, "--sku", sku)["entries"]] == [sku]
    code, out, _ = shop.tradepost("log", "-m", "google")
    lines = out.splitlines()
    assert code == 0 and lines[0].split("\t")[1:4] == ["google", "info", "run apply"]
    assert lines[1].startswith("current\tgoogle\twarning\tinvalid ") and lines[1].endswith(
        "(rules/google.yaml:66:12)"
    )
    assert lines[-2:] == [
        "recurring:",
        f"  2x {recurring['pattern']} (google; e.g. invalid {invalid[0]['subject']})",
    ]


def test_failing_skus_are_errors_grouped_as_one_recurring_error(shop: Shop) -> None:
    summary = run_apply(shop.config, "carrefour", shop.box, faults=Faults(error_rate=1.0))
    assert summary.failed > 1
    document = read_log(shop, "-m", "carrefour", "--level", "error")
    entries = document["entries"]
    assert len(entries) == summary.failed and {(e["kind"], e["level"]) for e in entries} == {("sku", "error")}
    assert [e["at"] for e in entries] == sorted((e["at"] for e in entries), reverse=True)
    assert [(r["count"], r["marketplaces"]) for r in document["recurring"]] == [
        (summary.failed, ["carrefour"])
    ]
    run = read_log(shop, "-m", "carrefour", "--level", "warning")["entries"][0]
    assert (run["kind"], run["level"]) == ("run", "warning")  # a run with failures
    assert f", {summary.failed} failed, " in run["message"]
    code, out, _ = shop.tradepost("log", "-m", "carrefour", "--level", "error", "--limit", "2")
    lines = out.splitlines()
    assert code == 0 and len([line for line in lines if "\tcarrefour\terror\tsku " in line]) == 2
    assert f"... {summary.failed - 2} more (--limit 0 shows every entry)" in lines


def test_order_events_and_errors_are_in_the_log(shop: Shop) -> None:
    with open_state(load_project(shop.config)) as state:
        orders = OrderStore(state)
        orders.insert(make_order("MLB-7", ("1", 1, "10.00")), "held", {"reasons": []}, "received")
        stored = orders.get("mercadolibre", "MLB-7")
        assert stored is not None
        orders.record_error(stored, "VTEX refused the order: 503", retryable=True)
    entries = read_log(shop, "-m", "mercadolibre")["entries"]
    assert [(e["kind"], e["subject"], e["level"], e["message"]) for e in entries] == [
        ("order", "MLB-7", "error", "error: VTEX refused the order: 503"),
        ("order", "MLB-7", "info", "received"),
    ]
    assert read_log(shop, "-m", "mercadolibre", "--sku", "1")["entries"] == []  # an order is no one SKU's
    time.sleep(1.1)
    assert read_log(shop, "-m", "mercadolibre", "--since", "1s")["entries"] == []
    assert len(read_log(shop, "-m", "mercadolibre", "--since", "7d")["entries"]) == 2


def test_a_wrong_since_is_refused_with_a_message(shop: Shop) -> None:
    code, out, err = shop.tradepost("log", "--since", "yesterday")
    assert code == 2 and "'yesterday' is not an age such as 7d" in err and "Traceback" not in out + err


@pytest.mark.parametrize(
    ("message", "pattern"),
    [
        ("HTTP 400: price 10.50 below 12", "HTTP …: price … below …"),
        ("SKU '2000031' has no image", "SKU … has no image"),
        ('offer "A-1" rejected', "offer … rejected"),
        ("no digits here", "no digits here"),
        ("P31: 500 internal error", "P31: … internal error"),  # a code keeps its digits
    ],
)
def test_a_pattern_sets_aside_numbers_and_quoted_values(message: str, pattern: str) -> None:
    assert pattern_of(message) == pattern
