"""The Netshoes connector against its stand-in: families, review before price and stock, call plans,
refusals as per-SKU reasons, requirements, secrets, and the bodies against API.md.

Given a sandbox project whose catalog is a file this test edits, expect: a create to go as one
``POST /products`` per family, then, once Netshoes approves each SKU, its stock, price and
activation; a SKU in review to be sent nothing Netshoes would discard, and its price and stock of
then once approved; a price-only change to go by ``PUT prices`` alone and a stock-only one by
``PUT stocks`` alone; a second apply to send nothing.
"""

from __future__ import annotations

import asyncio
import json
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine.connectors import Listing
from engine.project._assembly import open_state
from engine.project._config import load_project
from marketplaces.netshoes import NetshoesConnector
from marketplaces.netshoes.standin import SANDBOX_ACCESS_TOKEN, SANDBOX_CLIENT_ID, NetshoesStandin
from marketplaces.sandbox import Sandbox
from tests import test_mirakl_connector
from tests._harness import run_apply

API = Path(__file__).resolve().parents[2] / "shared" / "specs" / "netshoes" / "API.md"
HEADERS = {"client_id": SANDBOX_CLIENT_ID, "access_token": SANDBOX_ACCESS_TOKEN}


shop = test_mirakl_connector.shop
"""A sandbox whose project reads its catalog from a file the test may edit (Mirakl's tests' own)."""
edit_catalog = test_mirakl_connector.edit_catalog


def standin(box: Sandbox) -> NetshoesStandin:
    found = box.standins["netshoes"]
    assert isinstance(found, NetshoesStandin)
    return found


def calls(box: Sandbox) -> list[str]:
    return [call for call, _ in standin(box).bodies]


def rows(config: Path) -> dict[str, Any]:
    with open_state(load_project(config)) as state:
        return {sku: state.get("netshoes", sku) for sku in state.all_sku_ids("netshoes")}


def test_a_family_goes_in_one_product_then_stock_price_and_activation(
    shop: tuple[Sandbox, Path, Path],
) -> None:
    box, config, _ = shop
    summary = run_apply(config, "netshoes", box)
    assert summary.failed == 0, summary.failures
    assert summary.applied > 5
    netshoes = standin(box)
    assert calls(box).count("POST /api/v1/products") == len(netshoes.products)  # one per family
    for product_id in netshoes.products:
        family = [sku for sku, held in netshoes.skus.items() if held.product_id == product_id]
        assert len(family) >= 1
    for sku, row in rows(config).items():
        held = netshoes.skus[sku]
        assert row is not None and row.remote_id == held.product_id  # approved: the product id
        assert held.price is not None and held.stock is not None and held.active == {"NS": True}
    for call in ("/stocks", "/prices", "/bus/NS/status"):  # the documented order
        assert any(c.endswith(call) for c in calls(box))
    netshoes.bodies.clear()
    again = run_apply(config, "netshoes", box)
    assert (again.applied, again.failed) == (0, 0)
    assert calls(box) == []  # a second apply sends nothing


def test_a_sku_in_review_gets_nothing_discarded_then_its_price_and_stock_once_approved(
    shop: tuple[Sandbox, Path, Path],
) -> None:
    box, config, catalog = shop
    netshoes = standin(box)
    netshoes.approval_seconds = float("inf")  # Netshoes takes its time
    first = run_apply(config, "netshoes", box)
    assert first.applied == 0 and first.failed > 5
    assert all("waiting for Netshoes to approve the SKU" in (f.error or "") for f in first.failures)
    assert not any(c.endswith(("/prices", "/stocks")) for c in calls(box))  # nothing discarded
    priced = sorted(netshoes.skus)[0]
    edit_catalog(catalog, priced, selling=300.00)
    netshoes.bodies.clear()
    still = run_apply(config, "netshoes", box)
    assert still.failed == first.failed and "POST /api/v1/products" not in calls(box)  # not created twice
    httpx.post(f"{box.url('netshoes')}/_sandbox/approve")
    netshoes.bodies.clear()
    second = run_apply(config, "netshoes", box)
    assert (second.applied, second.failed) == (first.failed, 0), second.failures
    assert not any(c.startswith("POST") for c in calls(box))
    assert netshoes.skus[priced].price == Decimal("348.90")  # the price of now: 300 * 1.16 -> .90


def test_a_price_change_goes_alone_and_a_stock_change_alone(shop: tuple[Sandbox, Path, Path]) -> None:
    box, config, catalog = shop
    assert run_apply(config, "netshoes", box).failed == 0
    netshoes = standin(box)
    priced, stocked = sorted(netshoes.skus)[:2]
    netshoes.bodies.clear()
    edit_catalog(catalog, priced, selling=600.00)
    edit_catalog(catalog, stocked, quantity=40)
    summary = run_apply(config, "netshoes", box)
    assert (summary.applied, summary.failed) == (2, 0), summary.failures
    assert sorted(calls(box)) == sorted(
        [f"PUT /api/v1/skus/{priced}/prices", f"PUT /api/v1/skus/{stocked}/stocks"]
    )
    assert netshoes.skus[priced].price == Decimal("696.90")  # 600 * 1.16 = 696 -> next .90
    assert netshoes.skus[stocked].stock == rows(config)[stocked].quantity  # what the rules give now


def test_a_refusal_comes_back_as_the_skus_reason(shop: tuple[Sandbox, Path, Path]) -> None:
    box, config, _ = shop
    netshoes = standin(box)
    netshoes.templates["colors"] = ["Roxo"]  # the seller's colour template lacks the catalog's colours
    summary = run_apply(config, "netshoes", box)
    assert summary.applied == 0 and summary.failed > 5
    assert all("is not in the templates' colors" in (f.error or "") for f in summary.failures)


def test_the_standin_wants_both_headers_and_keeps_the_call_plan() -> None:
    netshoes = NetshoesStandin(calls_per_minute=3, time_scale=1.0)

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=netshoes.transport(), base_url="http://n.test/api/v1"
        ) as client:
            bare = await client.get("/brands", headers={"client_id": SANDBOX_CLIENT_ID})
            answers = [await client.get("/brands", headers=HEADERS) for _ in range(4)]
            return [bare, *answers]

    bare, *answers = asyncio.run(scenario())
    assert bare.status_code == 401
    assert [a.status_code for a in answers] == [200, 200, 200, 429]  # 3 a minute (a refused call is not one)
    assert 0 < float(answers[-1].headers["Retry-After"]) <= 60


def test_price_and_stock_before_approval_are_a_business_logic_error() -> None:
    netshoes = NetshoesStandin(approval_seconds=float("inf"))
    body = NetshoesConnector().family_payload([listing()])

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(
            transport=netshoes.transport(), base_url="http://n.test/api/v1"
        ) as client:
            created = await client.post("/products", headers=HEADERS, content=json.dumps(body, default=str))
            price = await client.put("/skus/S1/prices", headers=HEADERS, json={"price": 10})
            status = await client.get("/skus/S1/bus/NS/status", headers=HEADERS)
            return [created, price, status]

    created, price, status = asyncio.run(scenario())
    assert created.status_code == 201, created.text
    assert price.status_code == 422 and price.json()["type"] == "Business_Logic_Error"
    assert status.json()["skuSynchronized"] is False


def listing(**fields: Any) -> Listing:
    base: dict[str, Any] = {
        "title": "Tênis Corrida",
        "description": "Tênis de corrida",
        "brand": "Corre Leve",
        "gtin": "7893478236483",
        "images": ["http://i/1.jpg"],
        "color": "Azul",
        "size": "40",
        "weight": 250,
    }
    base.update(fields)
    return Listing("S1", "P1", "netshoes", "Calçados/Tênis", base, Decimal("10.00"), "BRL", 3, group="P1")


@pytest.mark.parametrize(
    ("given", "code"), [({"images": []}, "TP912"), ({"brand": None}, "TP914"), ({"title": ""}, "TP911")]
)
def test_netshoes_requirements_are_checked_by_the_engine(given: dict[str, Any], code: str) -> None:
    connector = NetshoesConnector()
    assert connector.check(listing()) == []
    assert [r.code for r in connector.check(listing(**given))] == [code]


def test_the_call_plan_comes_from_the_options() -> None:
    assert NetshoesConnector().rate_limit == pytest.approx(50 / 60)
    assert NetshoesConnector({"calls_per_minute": "medium"}).rate_limit == pytest.approx(250 / 60)
    assert NetshoesConnector({"calls_per_minute": "100"}).rate_limit == pytest.approx(100 / 60)


def test_the_access_token_is_never_printed(
    shop: tuple[Sandbox, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    box, config, _ = shop
    standin(box).access_token = "another-token"
    summary = run_apply(config, "netshoes", box)
    assert summary.failed > 0
    text = json.dumps(summary.to_dict()) + "".join(capsys.readouterr())
    assert "401" in text
    assert SANDBOX_ACCESS_TOKEN not in text


# -- bodies against API.md -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def api() -> str:
    if not API.exists():
        pytest.skip(f"Netshoes' API.md is not at {API} (../shared/specs is not mounted here)")
    return API.read_text(encoding="utf-8")


def documented(api: str, section: str) -> set[str]:
    """Every quoted field name in one section of API.md."""
    start = api.index(section)
    end = api.find("\n## ", start + 1)
    return set(re.findall(r'"([a-zA-Z]+)"', api[start : end if end > 0 else None]))


def test_the_product_body_has_only_documented_fields(api: str) -> None:
    body = NetshoesConnector().family_payload([listing()])
    assert body is not None
    fields = documented(api, "## 4. Products and SKUs")
    assert set(body) <= fields
    assert set(body["skus"][0]) <= fields | {"url"}


def test_the_price_stock_and_status_bodies_are_documented(api: str) -> None:
    connector, fields = NetshoesConnector(), documented(api, "## 5. Price, stock, activation")
    assert set(connector.price_payload(listing())) <= fields
    assert set(connector.stock_payload(listing())) <= fields
    assert set(connector.delete_payload("S1") or {}) <= fields
    for path in ("PUT /skus/{sku}/prices", "PUT /skus/{sku}/stocks", "PUT /skus/{sku}/bus/{buId}/status"):
        assert path in api
    for path in ("POST /products", "GET /skus/{sku}/bus/{buId}/status", "POST /products/{productId}/skus"):
        assert path.split(" ", 1)[1].split("{")[0] in api


def test_after_losing_the_state_a_rebuild_leaves_nothing_to_send(shop: tuple[Sandbox, Path, Path]) -> None:
    """`tradepost state rebuild`: each approved SKU back with its product id, price and stock; a SKU
    still in review is left out, so the next apply reads its status and releases it."""
    from engine.project._assembly import open_marketplace
    from engine.project._rebuild import rebuild_state
    from tests.test_state_rebuild import lose_state, plan

    box, config, _ = shop
    applied = run_apply(config, "netshoes", box)
    assert applied.failed == 0 and applied.applied > 5
    waiting = sorted(standin(box).skus)[0]
    standin(box).skus[waiting].approved = False  # back in review (a stand-in's liberty)
    standin(box).approval_seconds = float("inf")
    lose_state(config)
    project = load_project(config)
    run = open_marketplace(project, "netshoes")
    with open_state(project) as state:
        summary = asyncio.run(rebuild_state(run, project, state, transport=standin(box).transport()))
    assert (summary.listings, summary.duplicates) == (applied.applied - 1, [])
    assert sum(summary.differing.values()) == 0
    assert [change.sku_id for change in plan(config, "netshoes")[1]] == [waiting]
    held = standin(box).skus
    assert all(row.remote_id == held[sku].product_id for sku, row in rows(config).items())
