"""`tradepost orders list|show|approve|reject` on a state store with orders in it, no network.

The review queue is what people use by hand and scripts read: these pin its text, its JSON,
its exit codes and that no personal value ever shows.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from cli.main import cli
from engine.model._order import Address, Buyer, Order, OrderItem
from engine.orders._store import OrderStore
from engine.state._store import StateStore
from tests._harness import tradepost_process as run
from tests.conftest import ROOT

PERSONAL = ["Joana Prado", "joana@example.com", "Avenida Paulista", "01310-100", "123.456.789-09"]


def order(order_id: str, price: str, quantity: int = 1, marketplace: str = "mercadolibre") -> Order:
    item = OrderItem(sku_id="2000003", quantity=quantity, unit_price=Decimal(price), currency="BRL")
    return Order(
        marketplace=marketplace,
        order_id=order_id,
        created_at=datetime(2026, 11, 20, 12, 0, tzinfo=UTC),
        currency="BRL",
        items=(item,),
        total=item.line_value,
        payment_status="paid",
        buyer=Buyer(name=PERSONAL[0], email=PERSONAL[1], document=PERSONAL[4]),
        shipping_address=Address(street=PERSONAL[2], city="São Paulo", postal_code=PERSONAL[3], country="BR"),
    )


HOLD = {
    "decision": "hold",
    "reasons": [
        {
            "decision": "hold",
            "code": "TP945",
            "rule": "divergence.hold_within",
            "message": "SKU 2000003: marketplace price 580.41 is 10.00% below our 644.90; held for review",
            "location": "rules/mercadolibre.yaml:104:16",
        }
    ],
}


@pytest.fixture
def config(tmp_path: Path) -> Path:
    path = tmp_path / "tradepost.yaml"
    path.write_text(
        f"""source: {{type: file, path: {ROOT / "examples" / "catalog.jsonl"}}}
state: {tmp_path / "state.sqlite"}
marketplaces:
  mercadolibre: {{rules: {ROOT / "rules" / "mercadolibre.yaml"}}}
  amazon: {{rules: {ROOT / "rules" / "amazon.yaml"}}}
""",
        encoding="utf-8",
    )
    with StateStore(tmp_path / "state.sqlite") as state:
        store = OrderStore(state)
        store.insert(order("H-1", "580.41", 2), "held", HOLD, "received: hold")
        store.insert(order("A-1", "644.90"), "approved", {"decision": "approve", "reasons": []}, "received")
        store.insert(order("H-1", "99.00", marketplace="amazon"), "held", HOLD, "received: hold")
    return path


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args))


def test_list_held_shows_the_queue_with_why(config: Path) -> None:
    result = invoke("orders", "list", "--held", "-c", str(config), "-m", "mercadolibre")
    assert result.exit_code == 0, result.output
    assert "H-1" in result.output and "A-1" not in result.output
    assert "1160.82 BRL" in result.output  # 2 x 580.41
    assert "10.00% below our 644.90" in result.output


def test_list_json_holds_no_personal_data(config: Path) -> None:
    result = invoke("orders", "list", "--json", "-c", str(config))
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    assert [(o["marketplace"], o["order_id"], o["state"]) for o in document["orders"]] == [
        ("mercadolibre", "H-1", "held"),
        ("mercadolibre", "A-1", "approved"),
        ("amazon", "H-1", "held"),
    ]
    assert document["orders"][0]["order"]["items"][0]["unit_price"] == "580.41"
    for value in PERSONAL:
        assert value not in result.output


def test_show_prints_lines_reasons_with_their_rule_and_history(config: Path) -> None:
    result = invoke("orders", "show", "H-1", "-m", "mercadolibre", "-c", str(config))
    assert result.exit_code == 0, result.output
    assert "SKU 2000003 x 2 at 580.41 BRL" in result.output
    assert "1160.82 BRL items + 0.00 shipping" in result.output
    assert "rules/mercadolibre.yaml:104:16" in result.output
    assert "received: hold" in result.output
    for value in PERSONAL:
        assert value not in result.output


def test_an_id_on_two_marketplaces_needs_m(config: Path) -> None:
    result = run("orders", "approve", "H-1", "-c", str(config))
    assert result.returncode == 1
    assert "exists on several marketplaces (amazon, mercadolibre); pass -m" in result.stderr
    assert "Traceback" not in result.stderr


def test_approve_then_reject_follow_the_state_machine(config: Path) -> None:
    approved = invoke("orders", "approve", "H-1", "-m", "amazon", "--json", "-c", str(config))
    assert approved.exit_code == 0, approved.output
    assert json.loads(approved.output)["state"] == "approved"

    rejected = invoke("orders", "reject", "H-1", "-m", "mercadolibre", "--reason", "typo", "-c", str(config))
    assert rejected.exit_code == 0, rejected.output
    assert "is rejected; it will be cancelled on the marketplace at the next `tradepost orders push`" in (
        rejected.output
    )
    again = run("orders", "approve", "H-1", "-m", "mercadolibre", "-c", str(config))
    assert again.returncode == 1 and "is rejected; only held orders can be approved" in again.stderr


def test_reject_needs_a_reason_and_never_prompts(config: Path) -> None:
    result = invoke("orders", "reject", "H-1", "-m", "mercadolibre", "-c", str(config))
    assert result.exit_code == 2 and "--reason" in result.output
