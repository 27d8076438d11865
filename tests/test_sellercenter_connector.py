"""The SellerCenter (Dafiti) connector against its stand-in: which feed sends what, families,
feed errors as per-SKU reasons, feed spacing, the signature, read-back and the documented fields.

Given a sandbox project whose catalog is a file this test edits, expect: a create to go
GetProducts -> ProductCreate -> FeedStatus -> Image; a price-only change and a stock-only change
in one ProductUpdate, each record carrying only what changed; a family created together and
never split; refused records to come back as per-SKU reasons; the feed spacing kept (or the
change deferred); a lost state to create nothing twice.
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

from engine import TradepostError
from engine.connectors import Credentials, Listing
from engine.project._assembly import open_marketplace, open_state
from engine.project._config import load_project
from marketplaces.sandbox import Sandbox
from marketplaces.sellercenter import DafitiConnector, SellerCenterConnector
from marketplaces.sellercenter._http import FeedSlots, SlotClock
from marketplaces.sellercenter.standin import SANDBOX_API_KEY, SellerCenterStandin
from tests._harness import run_apply
from tests.test_mirakl_connector import edit_catalog
from tests.test_mirakl_connector import shop as shop
from tests.test_state_rebuild import lose_state, plan, rebuild


@pytest.fixture
def seller(shop: tuple[Sandbox, Path, Path]) -> tuple[Sandbox, Path, Path]:
    """A sandbox whose project reads its catalog from a file the test may edit (Mirakl's fixture)."""
    return shop


def standin(box: Sandbox) -> SellerCenterStandin:
    found = box.standins["dafiti"]
    assert isinstance(found, SellerCenterStandin)
    return found


def applied_rows(config: Path) -> dict[str, Any]:
    with open_state(load_project(config)) as state:
        return {sku: state.get("dafiti", sku) for sku in state.all_sku_ids("dafiti")}


def test_a_create_looks_up_then_creates_the_families_then_sends_their_images(
    seller: tuple[Sandbox, Path, Path],
) -> None:
    box, config, _ = seller
    summary = run_apply(config, "dafiti", box)
    assert summary.failed == 0, summary.failures
    assert summary.applied > 10
    actions = [a for a in standin(box).actions if a != "FeedStatus"]
    assert actions == ["GetProducts", "ProductCreate", "Image"]
    products = standin(box).products
    rows = applied_rows(config)
    assert set(products) == set(rows)
    assert all(row is not None and row.remote_id == sku for sku, row in rows.items())
    parents = {p["ParentSku"] for p in products.values() if p.get("ParentSku")}
    assert parents and parents <= set(products)
    assert all(p["Images"] for p in products.values())


def feed_records(box: Sandbox, action: str) -> list[dict[str, Any]]:
    return [
        record for feed in standin(box).feeds.values() if feed.action == action for record in feed.records
    ]


def test_price_and_stock_changes_go_in_one_product_update_carrying_only_them(
    seller: tuple[Sandbox, Path, Path],
) -> None:
    box, config, catalog = seller
    assert run_apply(config, "dafiti", box).failed == 0
    priced, stocked = sorted(standin(box).products)[:2]
    standin(box).actions.clear()
    edit_catalog(catalog, priced, selling=600.00)
    edit_catalog(catalog, stocked, quantity=40)
    summary = run_apply(config, "dafiti", box)
    assert (summary.applied, summary.failed) == (2, 0), summary.failures
    assert [a for a in standin(box).actions if a != "FeedStatus"] == ["ProductUpdate"]
    records = {r["SellerSku"]: r for r in feed_records(box, "ProductUpdate")}
    assert set(records[priced]) == {"SellerSku", "Price", "SalePrice"}
    assert set(records[stocked]) == {"SellerSku", "Quantity"}
    product = standin(box).products[priced]
    assert (product["Price"], product.get("SalePrice")) == (
        "708.90",
        "",
    )  # 600 * 1.18 = 708 -> 708.90; sale ended
    assert standin(box).products[stocked]["Quantity"] == records[stocked]["Quantity"]


def test_a_second_apply_sends_nothing(seller: tuple[Sandbox, Path, Path]) -> None:
    box, config, _ = seller
    assert run_apply(config, "dafiti", box).failed == 0
    before = standin(box).total_requests()
    second = run_apply(config, "dafiti", box)
    assert (second.applied, second.requests) == (0, 0)
    assert standin(box).total_requests() == before


def test_refused_records_come_back_as_per_sku_reasons_and_a_family_fails_whole(
    seller: tuple[Sandbox, Path, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, config, _ = seller
    shop = standin(box)
    refuse = "2000002"  # a child of the family whose parent is 2000001
    create = shop._create
    monkeypatch.setattr(
        shop,
        "_create",
        lambda sku, record: (
            "Field Gender (for Seller SKU: 2000002) with value 'x' has a problem"
            if sku == refuse
            else create(sku, record)
        ),
    )
    first = run_apply(config, "dafiti", box)
    failed = {f.sku_id: f.error or "" for f in first.failures}
    assert "ProductCreate feed" in failed[refuse] and "Field Gender" in failed[refuse]
    family = {"2000001", "2000002", "2000003", "2000004"}
    assert family <= set(failed)  # never split: its parent and siblings fail with it
    assert all(f"its family member {refuse}" in failed[sku] for sku in family - {refuse})
    assert not family & set(applied_rows(config))
    monkeypatch.undo()
    shop.actions.clear()
    second = run_apply(config, "dafiti", box)
    assert (second.applied, second.failed) == (len(failed), 0), second.failures
    assert "ProductUpdate" in shop.actions  # the members that had landed are updated, not created again
    assert shop.products[refuse]["ParentSku"] == "2000001"


def test_the_feed_spacing_is_kept_after_the_free_calls(seller: tuple[Sandbox, Path, Path]) -> None:
    """The stand-in counts 50 feed calls already, one just now, and its 2 minutes last 3 s: each
    feed meets a 429 whose Retry-After is within the connector's patience, and waits it out."""
    box, config, _ = seller
    shop = standin(box)
    shop.time_scale = 40.0
    shop.feed_calls, shop.last_feed_call = 50, shop.clock()
    summary = run_apply(config, "dafiti", box)
    assert summary.failed == 0, summary.failures
    assert shop.feed_refusals >= 2  # ProductCreate, then Image: each met a 429 and waited it out


def test_a_feed_beyond_its_turn_is_deferred_without_sending() -> None:
    """Two feed calls a documented 30 s apart once the free ones are spent: the second waits its
    turn, or is deferred when that is further than the caller may wait."""
    now = [0.0]

    async def sleep(seconds: float) -> None:
        now[0] += seconds

    slots = FeedSlots(SlotClock(scale=1.0, now=lambda: now[0], sleep=sleep), free=1)

    async def scenario() -> tuple[float, float, float, float]:
        free = await slots.wait_turn(max_wait=0)
        first = await slots.wait_turn(max_wait=0)
        now[0] += 30
        deferred = await slots.wait_turn(max_wait=10)
        waited = await slots.wait_turn(max_wait=200)
        return free, first, deferred, waited

    free, first, deferred, waited = asyncio.run(scenario())
    assert (free, first, waited) == (0, 0, 0)
    assert deferred == pytest.approx(92.41)  # 120 s * 1.02 margin + 0.01 s slack - 30 s
    assert now[0] == pytest.approx(122.41)


def test_a_lost_state_creates_nothing_twice(seller: tuple[Sandbox, Path, Path]) -> None:
    box, config, _ = seller
    first = run_apply(config, "dafiti", box)
    assert first.failed == 0
    (config.parent / "state.sqlite").unlink()
    standin(box).actions.clear()
    again = run_apply(config, "dafiti", box)
    assert (again.applied, again.failed) == (first.applied, 0), again.failures
    assert "ProductCreate" not in standin(box).actions  # every SKU was found by GetProducts
    assert set(standin(box).products) == set(applied_rows(config))


def test_a_wrong_key_is_refused_with_e007_and_never_printed(
    seller: tuple[Sandbox, Path, Path], capsys: pytest.CaptureFixture[str]
) -> None:
    box, config, _ = seller
    standin(box).api_key = "another-key"
    summary = run_apply(config, "dafiti", box)
    assert summary.failed > 0 and summary.applied == 0
    text = json.dumps(summary.to_dict()) + "".join(capsys.readouterr())
    assert "E007" in text and "check the user_id and api_key credentials" in text
    assert SANDBOX_API_KEY not in text and "another-key" not in text
    assert standin(box).signature_refusals > 0 and not standin(box).products


def test_read_back_lists_products_with_their_price_and_quantity(seller: tuple[Sandbox, Path, Path]) -> None:
    box, config, _ = seller
    assert run_apply(config, "dafiti", box).failed == 0
    run = open_marketplace(load_project(config), "dafiti")
    credentials = Credentials({"api_key": SANDBOX_API_KEY})

    async def read() -> list[Any]:
        async with httpx.AsyncClient(
            transport=standin(box).transport(), base_url=box.url("dafiti")
        ) as client:
            reader = run.connector.open_reader(client, credentials)
            return [listing async for listing in run.connector.read_back(reader)]

    found = {listing.sku_id: listing for listing in asyncio.run(read())}
    products = standin(box).products
    assert set(found) == set(products)
    for sku, remote in found.items():
        assert remote.remote_id == sku
        assert remote.price == Decimal(products[sku]["Price"])
        assert remote.quantity == int(products[sku]["Quantity"])


def test_after_losing_the_state_a_rebuild_leaves_nothing_to_send_but_a_price_changed_by_hand(
    seller: tuple[Sandbox, Path, Path],
) -> None:
    box, config, _ = seller
    applied = run_apply(config, "dafiti", box)
    changed = sorted(standin(box).products)[0]
    standin(box).products[changed]["Price"] = "1.23"  # someone in SellerCenter's UI
    lose_state(config)
    summary = rebuild(config, "dafiti", box)
    assert (summary.listings, summary.not_in_catalog) == (applied.applied, 0)
    assert dict(summary.differing) == {"price": 1}
    _, changes = plan(config, "dafiti")
    assert [(c.op, c.sku_id, c.kinds) for c in changes] == [("update", changed, ("price",))]


def dafiti_listing(**changes: Any) -> Listing:
    attributes = {
        "Variation": "40",
        "Gender": "Feminino",
        "Origin": "Nacional",
        "ColorFamily": "Azul",
        "Color": "Azul",
        "OriginCountry": "Brasil",
    }
    attributes.update(changes.pop("attributes", {}))
    fields: dict[str, Any] = {
        "title": "Tênis",
        "description": "Tênis azul de corrida",
        "brand": "Pisada",
        "images": ["https://i/1.jpg"],
        "attributes": attributes,
        **changes,
    }
    return Listing("1", "1", "dafiti", "1010", fields, Decimal("99.90"), "BRL", 3)


@pytest.mark.parametrize(
    ("given", "code"),
    [
        ({"attributes": {"Gender": None}}, "TP914"),
        ({"attributes": {"OriginCountry": None}}, "TP914"),
        ({"description": "curta"}, "TP914"),
        ({"brand": None}, "TP914"),
        ({"images": []}, "TP912"),
    ],
)
def test_dafiti_requirements_are_checked_by_the_engine(given: dict[str, Any], code: str) -> None:
    connector = DafitiConnector()
    assert connector.check(dafiti_listing()) == []
    assert [r.code for r in connector.check(dafiti_listing(**given))] == [code]


def test_any_operator_needs_only_its_host_user_and_key() -> None:
    connector = SellerCenterConnector({"user_id": "u@example.com"})
    bare = dafiti_listing(attributes={name: None for name in ("Gender", "Origin", "ColorFamily")}, images=[])
    assert connector.check(bare) == []
    with pytest.raises(TradepostError, match=r"options\.user_id"):
        SellerCenterConnector().option("user_id")


# -- bodies against the spec ---------------------------------------------------------------------

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "dafiti" / "API.md"


def documented_tags(element: str) -> set[str]:
    """The child tags API.md's example gives for ``<element>`` (read at test time)."""
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is absent: the documented fields cannot be read")
    text = SPEC.read_text(encoding="utf-8")
    example = re.search(rf"<{element}>(.*?)</{element}>", text, re.DOTALL)
    assert example, f"API.md no longer shows a <{element}> example"
    return set(re.findall(r"<([A-Z]\w*)>", example.group(1)))


def test_every_field_sent_is_documented(seller: tuple[Sandbox, Path, Path]) -> None:
    box, config, catalog = seller
    product_fields = documented_tags("Product")
    assert {"SellerSku", "ParentSku", "Variation", "Price", "Quantity", "ProductData"} <= product_fields
    image_fields = documented_tags("ProductImage")
    assert run_apply(config, "dafiti", box).failed == 0
    edit_catalog(catalog, sorted(standin(box).products)[0], selling=600.00, quantity=3)
    assert run_apply(config, "dafiti", box).failed == 0
    for action in ("ProductCreate", "ProductUpdate"):
        records = feed_records(box, action)
        assert records
        for record in records:
            assert set(record) <= product_fields, f"{action}: {set(record) - product_fields} undocumented"
    for record in feed_records(box, "Image"):
        assert set(record) <= image_fields
        assert set(record["Images"]) == {"Image"}
