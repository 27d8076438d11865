"""The Mirakl (Carrefour) connector against its stand-in: what goes by which import, cataloguing,
call frequencies, error reports, read-back, requirements, secrets, and the bodies against the spec.

Given a sandbox project whose catalog is a file this test edits, expect: a create to go P31 ->
P41 -> P42 -> P45 -> OF01; a price-only change by PRI01 alone and a stock-only change by STO01
alone (never OF24); a SKU Carrefour has not catalogued to be sent nothing it would discard, and
its offer to go once it is; each operation's frequency kept (or the change deferred); refused
lines to come back as per-SKU reasons.
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
from ruamel.yaml import YAML

from engine.connectors import Credentials, Listing
from engine.project._assembly import open_marketplace, open_state
from engine.project._config import load_project
from marketplaces.mirakl import CarrefourConnector, MiraklConnector
from marketplaces.mirakl._http import CallSlots, MiraklClock, csv_rows
from marketplaces.mirakl.standin import SANDBOX_API_KEY, MiraklStandin
from marketplaces.sandbox import Sandbox
from tests._harness import Loopback, run_apply, subset, write_project

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs" / "mirakl"
SPEC = SPECS / "mirakl-mmp-seller-openapi.json"


@pytest.fixture
def shop(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path, Path]:
    """A sandbox whose project reads its catalog from a file the test may edit."""
    records = subset(12)
    box = loopback.sandbox(records)
    config = write_project(box, tmp_path / "project")
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")
    yaml = YAML()
    project = yaml.load(config.read_text(encoding="utf-8"))
    project["source"] = {"type": "file", "path": str(catalog)}
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(project, out)
    return box, config, catalog


def standin(box: Sandbox) -> MiraklStandin:
    found = box.standins["carrefour"]
    assert isinstance(found, MiraklStandin)
    return found


def edit_catalog(catalog: Path, sku_id: str, **changes: Any) -> None:
    """Set ``price.selling`` (``selling=``) or the main warehouse's quantity (``quantity=``) of a SKU."""
    records = [json.loads(line) for line in catalog.read_text(encoding="utf-8").splitlines()]
    for record in records:
        if str(record["sku"]["id"]) == sku_id:
            if "selling" in changes:
                record["price"]["selling"] = changes["selling"]
                record["price"]["promotional"] = None
            if "quantity" in changes:
                record["stock"]["warehouses"][0]["quantity"] = changes["quantity"]
                record["stock"]["warehouses"][0]["reserved"] = 0
    catalog.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")


def calls(box: Sandbox) -> list[str]:
    return [call for call, _ in standin(box).bodies]


def test_a_create_goes_product_import_then_offer_import(shop: tuple[Sandbox, Path, Path]) -> None:
    box, config, _ = shop
    summary = run_apply(config, "carrefour", box)
    assert summary.failed == 0, summary.failures
    assert summary.applied > 5
    sent = calls(box)
    order = [c for c in sent if c.startswith("POST")]
    assert order == ["POST /api/products/imports", "POST /api/offers/imports"]
    assert standin(box).requests["GET /api/products"] == 1  # P31 first: nothing is imported twice
    assert not any(c == "POST /api/offers" for c in sent)  # never OF24
    with open_state(load_project(config)) as state:
        rows = {sku: state.get("carrefour", sku) for sku in state.all_sku_ids("carrefour")}
    products = standin(box).products
    for sku, row in rows.items():
        assert row is not None and row.remote_id == products[sku]["product_sku"]  # catalogued


def test_a_price_change_goes_by_pri01_and_a_stock_change_by_sto01(shop: tuple[Sandbox, Path, Path]) -> None:
    box, config, catalog = shop
    assert run_apply(config, "carrefour", box).failed == 0
    offers = standin(box).offers
    priced, stocked = sorted(offers)[:2]
    standin(box).bodies.clear()
    edit_catalog(catalog, priced, selling=600.00)
    edit_catalog(catalog, stocked, quantity=40)
    summary = run_apply(config, "carrefour", box)
    assert (summary.applied, summary.failed) == (2, 0), summary.failures
    posts = {call: body for call, body in standin(box).bodies if call.startswith("POST")}
    assert set(posts) == {"POST /api/offers/pricing/imports", "POST /api/offers/stock/imports"}
    assert priced.encode() in posts["POST /api/offers/pricing/imports"]
    assert stocked.encode() not in posts["POST /api/offers/pricing/imports"]
    assert stocked.encode() in posts["POST /api/offers/stock/imports"]
    assert (offers[priced]["price"], offers[priced]["discount_price"]) == ("672.90", None)  # 600 * 1.12
    sent = csv_rows(posts["POST /api/offers/stock/imports"].split(b"\r\n\r\n", 1)[1].rsplit(b"\r\n--", 1)[0])
    assert offers[stocked]["quantity"] == int(sent[0]["quantity"])


def test_a_sku_not_yet_catalogued_gets_nothing_discarded_then_its_offer_once_catalogued(
    shop: tuple[Sandbox, Path, Path],
) -> None:
    box, config, _ = shop
    shopfront = standin(box)
    shopfront.catalogue_polls = 1_000  # Carrefour takes its time
    from tests._harness import set_options

    set_options(config, "carrefour", catalogue_wait_minutes="3")
    first = run_apply(config, "carrefour", box)
    assert first.applied == 0 and first.failed > 5
    assert all("waiting for the marketplace to catalogue" in f.error for f in first.failures if f.error)
    assert shopfront.offers == {}  # no price or stock sent that Carrefour would discard
    assert "POST /api/offers/imports" not in calls(box)
    httpx.post(f"{box.url('carrefour')}/_sandbox/catalogue")
    shopfront.bodies.clear()
    second = run_apply(config, "carrefour", box)
    assert (second.applied, second.failed) == (first.failed, 0), second.failures
    assert "POST /api/products/imports" not in calls(box)  # found catalogued by P31: not imported again
    assert len(shopfront.offers) == first.failed


def test_refused_lines_come_back_as_per_sku_reasons(shop: tuple[Sandbox, Path, Path]) -> None:
    box, config, catalog = shop
    assert run_apply(config, "carrefour", box).failed == 0
    gone = sorted(standin(box).offers)[0]
    del standin(box).offers[gone]  # deleted on Carrefour's side
    edit_catalog(catalog, gone, selling=600.00)
    summary = run_apply(config, "carrefour", box)
    assert summary.failed == 1
    (failure,) = summary.failures
    assert failure.sku_id == gone
    assert failure.error is not None and "PRI01 line refused (PRI03): offer not found" in failure.error


def test_each_operation_keeps_its_frequency_or_is_deferred() -> None:
    """Two PRI01 uploads a documented 30 s apart: the second waits its slot, or is deferred."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    slots = CallSlots(MiraklClock(scale=1.0, now=lambda: now[0], sleep=sleep))

    async def scenario() -> tuple[float, float, float]:
        first = await slots.wait_turn("PRI01", max_wait=90)
        now[0] += 30
        deferred = await slots.wait_turn("PRI01", max_wait=10)
        waited = await slots.wait_turn("PRI01", max_wait=90)
        return first, deferred, waited

    first, deferred, waited = asyncio.run(scenario())
    assert first == 0 and waited == 0
    assert deferred == pytest.approx(31.2)  # 60 s * 1.02 margin - 30 s
    assert now[0] == pytest.approx(61.2)  # the second upload went at its slot, not before


def test_the_standin_answers_429_to_an_import_sent_too_soon() -> None:
    shopfront = MiraklStandin(time_scale=600.0)
    headers = {"Authorization": SANDBOX_API_KEY}
    files = {"file": ("s.csv", b'"offer-sku";"quantity"\n"x";"1"\n', "text/csv")}

    async def scenario() -> list[httpx.Response]:
        async with httpx.AsyncClient(transport=shopfront.transport(), base_url="http://m.test") as client:
            post = "/api/offers/stock/imports"
            return [await client.post(post, headers=headers, files=files) for _ in range(2)]

    first, second = asyncio.run(scenario())
    assert first.status_code == 201
    assert second.status_code == 429 and 0 < float(second.headers["Retry-After"]) <= 0.1


def test_of24_resets_every_field_it_is_not_sent() -> None:
    """The documented gotcha, implemented so a connector sending partial OF24 bodies fails here."""
    shopfront = MiraklStandin(catalogue_polls=0)
    shopfront.enforce_frequency = False
    headers = {"Authorization": SANDBOX_API_KEY}
    product = (
        '"sku";"title";"description";"brand";"category";"ean";"weight";"height";"width";"length";"image-1"\n'
        '"A1";"Caneca";"Caneca azul";"Aurora";"casa/canecas";"7893478236483";"300";"10";"8";"8";"http://i/1.jpg"\n'
    )
    offer = (
        '"sku";"product-id";"product-id-type";"price";"quantity";"state"\n'
        '"A1";"7893478236483";"EAN";"20.00";"7";"11"\n'
    )

    async def scenario() -> dict[str, Any]:
        async with httpx.AsyncClient(transport=shopfront.transport(), base_url="http://m.test") as client:
            answer = await client.post(
                "/api/products/imports", headers=headers, files={"file": ("p.csv", product.encode())}
            )
            await client.get(f"/api/products/imports/{answer.json()['import_id']}", headers=headers)
            await client.post(
                "/api/offers/imports", headers=headers, files={"file": ("o.csv", offer.encode())}
            )
            before = dict(shopfront.offers["A1"])
            partial = {
                "offers": [{"shop_sku": "A1", "price": 18, "state_code": "11", "update_delete": "update"}]
            }
            assert (await client.post("/api/offers", headers=headers, json=partial)).status_code == 201
            return before

    before = asyncio.run(scenario())
    assert before["quantity"] == 7
    assert shopfront.offers["A1"]["quantity"] == 0  # not sent: reset to 0
    assert shopfront.offers["A1"]["price"] == "18"


def test_read_back_lists_offers_with_their_product_sku(shop: tuple[Sandbox, Path, Path]) -> None:
    box, config, _ = shop
    assert run_apply(config, "carrefour", box).failed == 0
    project = load_project(config)
    run = open_marketplace(project, "carrefour")
    credentials = Credentials({"api_key": SANDBOX_API_KEY})

    async def read() -> list[Any]:
        base = box.url("carrefour")
        async with httpx.AsyncClient(transport=standin(box).transport(), base_url=base) as client:
            reader = run.connector.open_reader(client, credentials)
            return [listing async for listing in run.connector.read_back(reader)]

    found = {listing.sku_id: listing for listing in asyncio.run(read())}
    offers = standin(box).offers
    assert set(found) == set(offers)
    for sku, listing in found.items():
        assert listing.remote_id == offers[sku]["product_sku"]
        assert listing.price == Decimal(offers[sku]["price"]) and listing.quantity == offers[sku]["quantity"]


def listing(category: str = "moda/camisetas", **fields: Any) -> Listing:
    base: dict[str, Any] = {
        "title": "Camiseta",
        "description": "Camiseta azul",
        "gtin": "7893478236483",
        "images": ["http://i/1.jpg"],
        "weight": 250,
        "height": 4,
        "width": 25,
        "length": 32,
    }
    base.update(fields)
    attributes = base.pop("attributes", {})
    return Listing(
        "1", "1", "carrefour", category, {**base, "attributes": attributes}, Decimal("10.00"), "BRL", 3
    )


@pytest.mark.parametrize(
    ("given", "category", "code"),
    [
        ({"gtin": None}, "moda/camisetas", "TP913"),
        ({"weight": None}, "moda/camisetas", "TP914"),
        ({"images": []}, "moda/camisetas", "TP912"),
        ({"title": "x" * 151}, "moda/camisetas", "TP911"),
        ({}, "beleza/secadores", "TP914"),  # regulated: needs regulatory_certificate
    ],
)
def test_carrefour_requirements_are_checked_by_the_engine(
    given: dict[str, Any], category: str, code: str
) -> None:
    connector = CarrefourConnector()
    assert connector.check(listing()) == []
    reasons = connector.check(listing(category, **given))
    assert [r.code for r in reasons] == [code]


def test_a_regulated_category_passes_with_its_certificate() -> None:
    given = listing("beleza/secadores", attributes={"regulatory_certificate": "INMETRO 001"})
    assert CarrefourConnector().check(given) == []


def test_the_shop_key_is_never_printed(
    shop: tuple[Sandbox, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    """A refused key (401) is reported by status, never echoed; the key goes raw in one header only."""
    box, config, _ = shop
    standin(box).api_key = "another-key"
    summary = run_apply(config, "carrefour", box)
    assert summary.failed > 0
    text = json.dumps(summary.to_dict()) + "".join(capsys.readouterr())
    assert "401" in text and "shop key was refused" in text
    assert SANDBOX_API_KEY not in text


# -- bodies against the spec ---------------------------------------------------------------------


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    if not SPEC.exists():
        pytest.skip(f"the Mirakl OpenAPI file is not at {SPEC} (../shared/specs is not mounted here)")
    return json.loads(SPEC.read_text(encoding="utf-8"))


def operation(spec: dict[str, Any], code: str) -> dict[str, Any]:
    for methods in spec["paths"].values():
        for body in methods.values():
            if isinstance(body, dict) and body.get("operationId") == code:
                return body
    raise AssertionError(f"{code} not in the spec")


def documented_columns(spec: dict[str, Any], code: str) -> set[str]:
    """Every quoted or ``;``-separated column name the operation's file description or example gives."""
    text = json.dumps(operation(spec, code).get("requestBody") or {})
    return set(re.findall(r'(?:\\"|^|;|\\n)([a-z][a-z0-9-]*)(?=\\"|;)', text))


@pytest.mark.parametrize(
    ("code", "columns"),
    [
        ("OF01", ("sku", "product-id", "product-id-type", "price", "discount-price", "quantity", "state")),
        ("OF01", ("leadtime-to-ship", "update-delete")),
        ("PRI01", ("offer-sku", "price", "discount-price")),
        ("STO01", ("offer-sku", "quantity")),
    ],
)
def test_import_columns_are_documented(spec: dict[str, Any], code: str, columns: tuple[str, ...]) -> None:
    assert set(columns) <= documented_columns(spec, code)


def test_paths_and_parameters_the_connector_uses_are_in_the_spec(spec: dict[str, Any]) -> None:
    paths = {
        "P31": "/api/products",
        "P41": "/api/products/imports",
        "P42": "/api/products/imports/{import}",
        "P44": "/api/products/imports/{import}/error_report",
        "P45": "/api/products/imports/{import}/new_product_report",
        "OF01": "/api/offers/imports",
        "OF02": "/api/offers/imports/{import}",
        "OF03": "/api/offers/imports/{import}/error_report",
        "OF21": "/api/offers",
        "PRI01": "/api/offers/pricing/imports",
        "PRI02": "/api/offers/pricing/imports",
        "PRI03": "/api/offers/pricing/imports/{import_id}/error_report",
        "STO01": "/api/offers/stock/imports",
        "STO02": "/api/offers/stock/imports/{import_id}/status",
        "STO03": "/api/offers/stock/imports/{import_id}/error_report",
    }
    for code, path in paths.items():
        assert (
            operation(spec, code)
            is spec["paths"][path][("post" if code in ("P41", "OF01", "PRI01", "STO01") else "get")]
        )
    assert "product_references" in {p["name"] for p in operation(spec, "P31")["parameters"]}
    assert "import_id" in {p["name"] for p in operation(spec, "PRI02")["parameters"]}
    for code in ("P41", "OF01", "PRI01", "STO01"):
        assert "file" in json.dumps(
            operation(spec, code)["requestBody"]["content"]["multipart/form-data"]["schema"]
        )


def test_the_final_statuses_the_connector_waits_for_are_documented(spec: dict[str, Any]) -> None:
    from marketplaces.mirakl._imports import OFFERS, PRICES, PRODUCTS, STOCK

    text = json.dumps(spec["components"]["schemas"])
    for kind in (PRODUCTS, OFFERS, PRICES, STOCK):
        for status in kind.final:
            assert f'\\"{status}\\"' in text, (kind.upload, status)


def test_the_offer_file_sends_the_whole_offer(spec: dict[str, Any]) -> None:
    """OF01 lines carry every offer field Tradepost manages: nothing is left to a default."""
    row = MiraklConnector().offer_row(listing())
    assert {"price", "quantity", "state", "product-id", "product-id-type", "update-delete"} <= set(row)
    assert csv_rows('"sku";"price"\n"1";"10.00"\n') == [{"sku": "1", "price": "10.00"}]
