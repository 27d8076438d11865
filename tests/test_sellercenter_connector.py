"""The SellerCenter (Dafiti) connector against its stand-in: which feed sends what, families,
feed errors as per-SKU reasons, feed spacing, the signature, read-back and the documented fields.

Given a sandbox project whose catalog is a file this test edits, expect: a create to go
GetProducts -> ProductCreate -> FeedStatus -> Image; a price-only change and a stock-only change
in one ProductUpdate, each record carrying only what changed; a family created together and
never split; refused records to come back as per-SKU reasons; the feed spacing kept (or the
change deferred); a lost state to create nothing twice.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from ruamel.yaml import YAML

from engine.project._assembly import open_state
from engine.project._config import load_project
from marketplaces.sandbox import Sandbox
from marketplaces.sellercenter.standin import SellerCenterStandin
from tests._harness import Loopback, run_apply, subset, write_project


@pytest.fixture
def seller(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path, Path]:
    """A sandbox whose project reads its catalog from a file the test may edit."""
    records = subset(24)
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
