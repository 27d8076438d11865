"""The plan: from catalog records to create / update / delete / unchanged / invalid, against state."""

from __future__ import annotations

import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.connectors import connector_class
from engine.model._catalog import CatalogRecord
from engine.state._store import StateStore, applied_from
from engine.sync._plan import Change, Planner
from engine.sync._planfile import PLAN_FORMAT_VERSION, PlanWriter, change_record, read_plan
from engine.sync._source import FileSource
from tests.conftest import ROOT

RULES = """\
marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
tables:
  colors: {Azul: Azul, Preto: Preto}
select:
  - sku.active
categories:
  Apparel/Shoes: MLB1276
listing:
  title: "{{ product.name }} {{ sku.specs.Cor }}"
  attributes:
    BRAND: =product.brand
    COLOR: =lookup(colors, sku.specs.Cor)
price:
  value: price.selling * 1.35
  round: ending(0.90)
  min: price.cost * 1.10
stock:
  safety: 2
  share: 50%
  max: 10
"""


def record(sku_id: str, **changes: Any) -> dict[str, Any]:
    data: dict[str, Any] = {
        "product": {
            "id": "1",
            "name": "Tênis Runner",
            "brand": "Acme",
            "category_path": ["Apparel", "Shoes"],
        },
        "sku": {
            "id": sku_id,
            "product_id": "1",
            "ean": "4006381333931",
            "active": True,
            "specs": {"Cor": "Azul"},
            "images": [{"url": f"https://img.example/{sku_id}.jpg"}],
        },
        "price": {"selling": "99.40", "cost": "50.00"},
        "stock": {"warehouses": [{"warehouse": "main", "quantity": 12, "reserved": 2}]},
    }
    for path, value in changes.items():
        section, key = path.split("__")
        data[section][key] = value
    return data


class Project:
    """A rule file, a catalog file and a state store in a temporary folder."""

    def __init__(self, folder: Path) -> None:
        self.folder = folder
        self.rules = folder / "rules.yaml"
        self.rules.write_text(RULES, encoding="utf-8")
        self.catalog = folder / "catalog.jsonl"
        self.state = StateStore(folder / "state.sqlite")
        self.compiled = engine.compile_rules(self.rules)
        self.connector = connector_class("mercadolibre")({})

    def write_catalog(self, records: list[dict[str, Any] | str]) -> None:
        lines = [r if isinstance(r, str) else json.dumps(r, ensure_ascii=False) for r in records]
        self.catalog.write_text("\n".join(lines) + "\n", encoding="utf-8")

    def plan(self, only: set[str] | None = None) -> tuple[list[Change], Planner]:
        planner = Planner(self.compiled, self.connector, self.state)
        return list(planner.changes(FileSource(self.catalog), only)), planner

    def apply(self, changes: list[Change]) -> None:
        """What a successful apply records (the sending itself is issue 4's)."""
        self.state.record_applied(
            "mercadolibre",
            [applied_from(c.listing) for c in changes if c.listing and c.op in ("create", "update")],
        )
        self.state.record_deleted("mercadolibre", [c.sku_id for c in changes if c.op == "delete"])


@pytest.fixture
def project(tmp_path: Path) -> Iterator[Project]:
    p = Project(tmp_path)
    yield p
    p.state.close()


def ops(changes: list[Change]) -> dict[str, tuple[str, tuple[str, ...]]]:
    return {c.sku_id: (c.op, c.kinds) for c in changes}


def test_first_plan_creates_with_exact_price_and_quantity(project: Project) -> None:
    project.write_catalog([record("10"), record("11")])
    changes, planner = project.plan()
    assert ops(changes) == {"10": ("create", ()), "11": ("create", ())}
    listing = changes[0].listing
    assert listing is not None
    assert listing.price == Decimal("134.90")  # 99.40 * 1.35 = 134.19 -> ending .90
    assert listing.quantity == 4  # min(10, floor((12 - 2 reserved - 2 safety) * 50%))
    assert listing.fields["title"] == "Tênis Runner Azul"
    assert listing.attributes == {"BRAND": "Acme", "COLOR": "Azul"}
    assert listing.category == "MLB1276"
    assert planner.summary.line() == "Plan: 2 to create, 0 to update, 0 to delete, 0 invalid"


def test_after_apply_nothing_changes(project: Project) -> None:
    project.write_catalog([record("10"), record("11")])
    project.apply(project.plan()[0])
    changes, planner = project.plan()
    assert ops(changes) == {"10": ("unchanged", ()), "11": ("unchanged", ())}
    assert not planner.summary.has_changes


def test_updates_say_which_part_changed(project: Project) -> None:
    project.write_catalog([record("10"), record("11"), record("12"), record("13")])
    project.apply(project.plan()[0])
    project.write_catalog(
        [
            record("10", price__selling="120.00"),
            record("11", stock__warehouses=[{"warehouse": "main", "quantity": 30}]),
            record("12", product__name="Tênis Runner Pro"),
            record("13", price__selling="120.00", stock__warehouses=[{"warehouse": "main", "quantity": 3}]),
        ]
    )
    changes, planner = project.plan()
    assert ops(changes) == {
        "10": ("update", ("price",)),
        "11": ("update", ("stock",)),
        "12": ("update", ("content",)),
        "13": ("update", ("price", "stock")),
    }
    assert (
        planner.summary.line()
        == "Plan: 0 to create, 4 to update (2 price, 2 stock, 1 content), 0 to delete, 0 invalid"
    )


def test_deselected_and_vanished_skus_are_deleted(project: Project) -> None:
    project.write_catalog([record("10"), record("11"), record("12")])
    project.apply(project.plan()[0])
    project.write_catalog([record("10"), record("11", sku__active=False)])
    changes, planner = project.plan()
    assert ops(changes) == {"10": ("unchanged", ()), "11": ("delete", ()), "12": ("delete", ())}
    # Each SKU once: the deselected one is withdrawn for its rule's reason, not a second time
    # as "no longer in the catalog" (that doubled the deletes and the mass-delete share).
    assert sorted(c.sku_id for c in changes if c.op == "delete") == ["11", "12"]
    assert planner.summary.ops["delete"] == 2


def test_invalid_skus_carry_every_reason_with_its_rule_location(project: Project) -> None:
    bad = record("10", sku__specs={"Cor": "Verde"}, price__cost="200.00")
    project.write_catalog([bad, record("11")])
    changes, planner = project.plan()
    assert ops(changes)["11"] == ("create", ())  # one bad SKU never stops the rest
    reasons = {(r.code, str(r.span)) for r in changes[0].reasons}
    rules = str(project.rules)
    assert ("TP902", f"{rules}:15:13") in reasons  # COLOR: no entry for 'Verde' in table 'colors'
    assert ("TP924", f"{rules}:19:8") in reasons  # price 134.90 below the minimum 220.00
    assert any("'Verde'" in r.message and "colors" in r.message for r in changes[0].reasons)
    assert any(r.message == "price 134.90 is below the minimum 220.00" for r in changes[0].reasons)
    assert planner.summary.ops["invalid"] == 1


def test_unmapped_category_is_invalid_with_the_path(project: Project) -> None:
    project.write_catalog([record("10", product__category_path=["Pets", "Toys"])])
    (change,), _ = project.plan()
    assert change.op == "invalid"
    assert [r.message for r in change.reasons] == ["no category mapping for Pets/Toys"]


def test_malformed_records_are_invalid_with_the_catalog_line(project: Project) -> None:
    project.write_catalog([record("10"), record("11", price__selling="83,90"), "{not json"])
    changes, _ = project.plan()
    assert [c.op for c in changes] == ["create", "invalid", "invalid"]
    assert changes[1].sku_id == "11"
    assert changes[1].reasons[0].rule == "catalog line 2"
    assert "price.selling" in changes[1].reasons[0].message


def test_an_incomplete_catalog_deletes_nothing(project: Project) -> None:
    project.catalog.write_text("[" + json.dumps(record("10")) + ", " + json.dumps(record("11")) + "]")
    project.apply(project.plan()[0])
    project.catalog.write_text("[" + json.dumps(record("10")) + ', {"product": ')  # truncated file
    changes, planner = project.plan()
    assert [c.op for c in changes if c.op == "delete"] == []
    assert planner.summary.deletes_skipped


def test_only_some_skus(project: Project) -> None:
    project.write_catalog([record("10"), record("11")])
    changes, _ = project.plan({"11"})
    assert ops(changes) == {"11": ("create", ())}


def test_saved_plan_has_a_format_version_and_the_exact_payloads(project: Project, tmp_path: Path) -> None:
    project.write_catalog([record("10")])
    changes, planner = project.plan()
    out = tmp_path / "plan.json"
    writer = PlanWriter(out)
    writer.begin("mercadolibre", str(project.rules), project.state.fingerprint("mercadolibre"))
    for change in changes:
        writer.change(change_record(change, project.connector))
    writer.end(planner.summary.to_dict())
    writer.close()
    document = read_plan(out)
    assert document["format_version"] == PLAN_FORMAT_VERSION
    saved = document["marketplaces"]["mercadolibre"]
    (change,) = saved["changes"]
    body = change["payloads"][0]
    assert body["price"] == Decimal("134.90")  # an exact JSON number, read back as Decimal
    assert body["available_quantity"] == 4
    assert {"id": "SELLER_SKU", "value_name": "10"} in body["attributes"]
    assert saved["summary"]["create"] == 1


def test_stock_allocation(project: Project) -> None:
    cases = [
        ([{"warehouse": "main", "quantity": 12, "reserved": 2}], 4),
        ([{"warehouse": "main", "quantity": 100}], 10),  # max
        ([{"warehouse": "main", "quantity": 3, "reserved": 2}], 0),  # below safety
        ([{"warehouse": "main", "quantity": -5}], 0),  # negative stock floors at 0
        ([{"warehouse": "main", "quantity": 0, "unlimited": True}], 10),  # unlimited: the max
    ]
    project.write_catalog([record(str(i), stock__warehouses=w) for i, (w, _) in enumerate(cases)])
    changes, _ = project.plan()
    assert [c.listing.quantity if c.listing else None for c in changes] == [q for _, q in cases]


def test_sale_price_is_rounded_and_dropped_when_not_lower(tmp_path: Path) -> None:
    rules = RULES.replace("  min: price.cost * 1.10\n", "  sale: price.promotional * 1.35\n")
    path = tmp_path / "sale.yaml"
    path.write_text(rules, encoding="utf-8")
    compiled = engine.compile_rules(path)
    planner = Planner(compiled, connector_class("mercadolibre")({}))
    catalog = [
        CatalogRecord.parse(record("10", price__promotional="89.90")),
        CatalogRecord.parse(record("11", price__promotional="99.40")),
    ]
    first, second = planner.changes(catalog)
    assert first.listing is not None and second.listing is not None
    assert first.listing.sale_price == Decimal("121.90")  # 89.90 * 1.35 = 121.365 -> ending .90
    assert second.listing.sale_price is None  # not below the price: no promotion


def test_an_invalid_member_amid_a_family_does_not_split_it(tmp_path: Path) -> None:
    """The example's product 1000102 lists 12 SKUs; 2000381, amid them, has no image. Its family is
    still one: the 11 others are created together (a split once sent 2000382 as a second main
    variation, which Magalu refuses), and the invalid one is reported on its own."""
    rules = ROOT / "rules" / "magalu.yaml"
    compiled = engine.compile_rules(rules)
    planner = Planner(compiled, connector_class("magalu")({}), None)
    changes = {c.sku_id: c for c in planner.changes(FileSource(ROOT / "examples" / "catalog.jsonl"))}
    members = [f"20003{n}" for n in range(73, 85) if n != 81]
    assert changes["2000381"].op == "invalid"
    for sku in members:
        family = changes[sku].family
        assert changes[sku].op == "create" and family is not None
        assert [listing.sku_id for listing in family] == members
