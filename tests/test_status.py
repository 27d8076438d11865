"""`tradepost status`: each marketplace at a glance from a real state store, and its exit code.

Given a sandbox project whose state is SQLite or PostgreSQL (every test runs on both), filled by
real applies against the stand-ins (clean, or every request failing), by orders and notifications
written through the stores, each test runs `tradepost status` as a scheduler does and reads the
exit code (0 healthy, 2 needs a person, 1 unreadable), the plain lines or the JSON document.
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from engine.orders import OrderStore
from engine.project import invalid_by_reason, load_project, open_state, project_status
from engine.state import NotificationQueue
from engine.state._queue import Change
from marketplaces._standin import Faults
from marketplaces.sandbox import Sandbox
from tests import _postgres
from tests._harness import Loopback, run_apply, subset, tradepost, write_project
from tests.test_orderflow import make_order
from tests.test_state_contract import server as server  # the PostgreSQL fixture, per worker


@dataclass
class Shop:
    box: Sandbox
    config: Path

    def tradepost(self, *args: str) -> tuple[int, str, str]:
        return tradepost(*args, "-c", str(self.config))

    def status(self, *args: str) -> tuple[int, dict[str, Any]]:
        code, out, err = self.tradepost("status", "--json", *args)
        assert code in (0, 2), err
        return code, json.loads(out)

    def set_status(self, **limits: float) -> None:
        edit_config(self.config, lambda document: document.__setitem__("status", limits))


def edit_config(config: Path, edit: Any) -> None:
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    edit(document)
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)


@pytest.fixture(params=["sqlite", "postgresql"])
def shop(
    request: pytest.FixtureRequest, loopback: Loopback, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Shop:
    """The sandbox project over 30 example records; its state on the backend of the test's run."""
    records = subset(30)
    for record in records[:2]:  # a wrong check digit: Google's rules find them invalid (TP922)
        ean = record["sku"]["ean"]
        record["sku"]["ean"] = ean[:-1] + str((int(ean[-1]) + 1) % 10)
    box = loopback.sandbox(records)
    config = write_project(box, tmp_path / "project", catalog_from_vtex=False)
    catalog = tmp_path / "catalog.jsonl"  # a file: only its records have the hash invalid ones are kept by
    catalog.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    edit_config(config, lambda document: document["source"].__setitem__("path", str(catalog)))
    if request.param == "postgresql":
        pg: _postgres.Server = request.getfixturevalue("server")
        url = pg.url(pg.database(), "env:TRADEPOST_TEST_PG")
        monkeypatch.setenv("TRADEPOST_TEST_PG", _postgres.PASSWORD)
        edit_config(config, lambda document: document.__setitem__("state", url))
    return Shop(box, config)


def test_a_clean_full_apply_is_healthy_with_its_figures(shop: Shop) -> None:
    code, out, err = shop.tradepost("apply", "-m", "google", "--json")
    assert code == 0, err
    applied = json.loads(out)["marketplaces"][0]["applied"]
    code, document = shop.status("-m", "google")
    assert (code, document["healthy"], document["problems"]) == (0, True, [])
    assert list(document["marketplaces"]) == ["google"]
    google = document["marketplaces"]["google"]
    assert (google["listings_live"], google["failing"], google["last_errors"]) == (applied, 0, [])
    assert google["last_full_apply"]["applied"] == applied and google["last_full_plan"] is None
    assert google["marketplace_status"] == "not recorded"
    assert (google["orders"], google["held_orders"], google["lock"]) == ({}, 0, None)
    assert google["invalid"] == sum(r["count"] for r in google["invalid_by_reason"]) > 0
    reason = google["invalid_by_reason"][0]
    assert google["invalid_by_reason"] == [
        {
            "code": "TP922",
            "count": 2,
            "sample_sku": reason["sample_sku"],
            "message": reason["message"],
            "rule": "require",
            "location": "rules/google.yaml:66:12",
        }
    ]
    assert "has a wrong check digit" in reason["message"]
    assert set(document["notifications"]) >= {"queued", "leased", "oldest_received_at", "oldest_age_seconds"}
    code, out, _ = shop.tradepost("status", "-m", "google")
    lines = out.splitlines()
    assert code == 0 and lines[0] == "notifications queued: 0 (0 being processed)"
    assert lines[1].startswith("google: last full apply ") and lines[-1] == "status: healthy"
    assert f"  listings live: {applied}; failing: 0; invalid: {google['invalid']}" in lines
    assert "  marketplace's own status of the listings: not recorded" in lines
    assert any(line.startswith(f"  invalid {reason['code']}: ") for line in lines)


def test_failing_skus_need_a_person_until_the_threshold_allows_them(shop: Shop) -> None:
    summary = run_apply(shop.config, "carrefour", shop.box, faults=Faults(error_rate=1.0))
    assert summary.failed > 0 and summary.applied == 0
    code, document = shop.status("-m", "carrefour")
    carrefour = document["marketplaces"]["carrefour"]
    assert (code, document["healthy"], carrefour["failing"]) == (2, False, summary.failed)
    assert document["problems"] == [f"carrefour: {summary.failed} SKU(s) failing (more than 0)"]
    assert len(carrefour["last_errors"]) == 5 and all(e["error"] for e in carrefour["last_errors"])
    code, out, _ = shop.tradepost("status", "-m", "carrefour")
    assert code == 2 and f"  needs a person: {summary.failed} SKU(s) failing (more than 0)" in out
    assert out.splitlines()[-1] == "status: 1 problem(s) need a person"
    shop.set_status(max_failing=summary.failed)
    assert shop.status("-m", "carrefour")[0] == 0


def test_held_orders_a_queue_and_a_lock_are_shown_and_judged(shop: Shop) -> None:
    project = load_project(shop.config)
    with open_state(project) as state:
        OrderStore(state).insert(make_order("MLB-1", ("1", 1, "10.00")), "held", {"reasons": []}, "received")
        OrderStore(state).insert(make_order("MLB-2", ("1", 1, "10.00")), "placed", {}, "received")
        with NotificationQueue(state) as queue:
            queue.enqueue("1", Change.STOCK, "2026-01-01T00:00:00Z")
        state.acquire_lock("amazon", "tradepost apply", lease=60)
        code, document = shop.status("-m", "mercadolibre", "-m", "amazon")
        assert code == 0, document["problems"]
        ml = document["marketplaces"]["mercadolibre"]
        assert (ml["orders"], ml["held_orders"]) == ({"held": 1, "placed": 1}, 1)
        assert 0 <= ml["oldest_held_age_seconds"] < 60
        assert document["marketplaces"]["amazon"]["lock"]["holder"] == "tradepost apply"
        assert document["notifications"]["queued"] == 1
        later = project_status(project, state, ["mercadolibre"], now=time.time() + 2 * 86400)
        assert later.problems == [
            "notifications: the oldest queued waits 2880 min (more than 30 min): "
            "is `tradepost sync` running?",
            "mercadolibre: an order held 48.0 h (more than 24 h)",
        ]
        state.release_lock("amazon")
    shop.set_status(max_held_order_hours=0.00001, max_queue_age_minutes=0.0001)
    time.sleep(0.1)
    code, out, _ = shop.tradepost("status", "-m", "mercadolibre")
    assert code == 2 and "  needs a person: an order held " in out
    assert "needs a person: notifications: the oldest queued waits" in out
    assert "  orders: held 1, placed 1; the oldest held for " in out


def test_a_marketplace_with_listings_never_reconciled_needs_a_person(shop: Shop, tmp_path: Path) -> None:
    plan_file = tmp_path / "plan.json"
    code, _, err = shop.tradepost("plan", "-m", "google", "-o", str(plan_file))
    assert code == 0, err
    code, _, err = shop.tradepost("apply", str(plan_file), "-m", "google")  # a saved plan: no full pass
    assert code == 0, err
    code, document = shop.status("-m", "google")
    assert code == 2 and document["problems"] == [
        "google: never reconciled by a full apply (`tradepost apply` without a saved plan)"
    ]


def test_an_unreadable_config_or_state_exits_1_with_a_message(tmp_path: Path) -> None:
    config = tmp_path / "tradepost.yaml"
    config.write_text("source: [\n", encoding="utf-8")
    code, out, err = tradepost("status", "-c", str(config))
    assert code == 1 and "YAML syntax error" in out + err and "Traceback" not in out + err
    box_free = tmp_path / "p"
    box_free.mkdir()
    (box_free / "state.sqlite").write_bytes(b"this is not a database" * 100)
    (box_free / "tradepost.yaml").write_text(
        "source: {type: file, path: catalog.jsonl}\nstate: state.sqlite\nmarketplaces: {}\n", encoding="utf-8"
    )
    code, out, err = tradepost("status", "-c", str(box_free / "tradepost.yaml"))
    assert code == 1 and err.startswith("error: ") and "state.sqlite" in err and "Traceback" not in err


@pytest.mark.parametrize(
    ("section", "message"),
    [
        ({"max_failing": -1}, "max_failing"),
        ({"max_held_order_hours": 0}, "max_held_order_hours"),
        ({"max_queue_minutes": 5}, "max_queue_minutes"),
    ],
)
def test_the_status_section_is_validated(tmp_path: Path, section: dict[str, float], message: str) -> None:
    config = tmp_path / "tradepost.yaml"
    config.write_text(
        "source: {type: file, path: catalog.jsonl}\nmarketplaces: {}\nstatus: " + json.dumps(section) + "\n",
        encoding="utf-8",
    )
    code, out, err = tradepost("status", "-c", str(config))
    assert code == 1 and message in out + err and "Traceback" not in out + err


@pytest.mark.parametrize(
    ("noted", "expected"),
    [
        ([], (0, [])),
        (
            [
                (
                    "b",
                    json.dumps(
                        ["w", [["TP1", "r", "no price", ["f.yaml", 3, 5, 3, 9]], ["TP1", "r", "x", None]]]
                    ),
                ),
                ("a", json.dumps(["w", [["TP2", "r", "no image", None]]])),
                ("c", json.dumps(["w", [["TP1", "r", "no price", None]]])),
                ("d", "garbage"),
            ],
            (4, [("TP1", 2, "b", "f.yaml:3:5"), ("TP2", 1, "a", None), ("UNREADABLE", 1, "d", None)]),
        ),
    ],
)
def test_invalid_records_are_counted_by_code_once_per_sku(
    noted: list[tuple[str, str]], expected: tuple[int, list[tuple[str, int, str, str | None]]]
) -> None:
    skus, reasons = invalid_by_reason(noted)
    assert (skus, [(r.code, r.count, r.sample_sku, r.location) for r in reasons]) == expected
