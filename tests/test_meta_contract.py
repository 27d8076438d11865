"""Meta payloads and stand-in answers checked against Meta's published node descriptions.

``../shared/specs/meta`` holds the SDK code generator's JSON descriptions (ProductCatalog,
ProductItem, CheckBatchRequestStatus, enum_types) and CATALOG.md; they are not part of the project,
so these tests read them from beside the repository and skip, saying why, where they are absent.
Bodies are checked as they travel: serialised with engine.jsonio and parsed back.
"""

from __future__ import annotations

import asyncio
import json
import re
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

import engine
from engine.connectors import Credentials
from engine.jsonio import dumps, loads
from engine.sync._plan import Planner
from engine.sync._planfile import change_record
from engine.sync._source import FileSource
from marketplaces.meta import MetaConnector
from marketplaces.meta._readback import FIELDS
from marketplaces.meta.standin import SANDBOX_ACCESS_TOKEN, MetaStandin

ROOT = Path(__file__).resolve().parent.parent
SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs" / "meta"
if not SPECS.is_dir():
    pytest.skip(
        f"{SPECS} not found: contract tests need Meta's published node descriptions", allow_module_level=True
    )

PRICE = re.compile(r"^\d+\.\d{2} [A-Z]{3}$")
"""CATALOG.md section 3: two decimals, a dot, one space, the ISO 4217 code."""


@cache
def node(name: str) -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads((SPECS / f"{name}.json").read_text(encoding="utf-8"))
    return loaded


@cache
def enum(name: str) -> tuple[str, ...]:
    entries = json.loads((SPECS / "enum_types.json").read_text(encoding="utf-8"))
    return tuple(next(entry["values"] for entry in entries if entry["name"] == name))


def api(endpoint: str, method: str) -> dict[str, Any]:
    found: dict[str, Any] = next(
        a for a in node("ProductCatalog")["apis"] if a.get("endpoint") == endpoint and a["method"] == method
    )
    return found


def item_fields() -> set[str]:
    return {field["name"] for field in node("ProductItem")["fields"]}


def feed_fields() -> set[str]:
    """The feed field names CATALOG.md section 3 lists for ``items_batch`` data (its table's rows)."""
    text = (SPECS / "CATALOG.md").read_text(encoding="utf-8")
    section = text.split("## 3.", 1)[1].split("## 4.", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return {name for row in rows for name in re.findall(r"`([a-z_0-9]+)`", row.split("|")[1])}


@pytest.fixture(scope="module")
def batch() -> dict[str, Any]:
    """The items_batch body of the bundled catalog planned for Meta, as it travels."""
    compiled = engine.compile_rules(ROOT / "rules" / "facebook.yaml")
    connector = MetaConnector(compiled.rules.options)
    changes = Planner(compiled, connector).changes(FileSource(ROOT / "examples" / "catalog.jsonl"))
    records = [change_record(c, connector) for c in changes if c.op == "create"]
    requests = [entry for record in records for entry in record["payloads"]]
    body: dict[str, Any] = loads(dumps(connector.batch_body(requests)))
    return body


def test_the_items_batch_body_names_only_documented_parameters_and_every_required_one(
    batch: dict[str, Any],
) -> None:
    params = {p["name"]: p for p in api("items_batch", "POST")["params"]}
    assert set(batch) <= set(params)
    assert {name for name, p in params.items() if p["required"]} <= set(batch)
    assert batch["item_type"] == "PRODUCT_ITEM"
    assert batch["item_sub_type"] in enum("productcatalogitems_batch_item_sub_type_enum_param")
    assert 1 <= len(batch["requests"]) <= 5000


def test_every_entry_uses_feed_or_product_item_field_names(batch: dict[str, Any]) -> None:
    known = feed_fields() | item_fields()
    for entry in batch["requests"]:
        assert entry["method"] in ("CREATE", "UPDATE", "DELETE")
        assert set(entry["data"]) <= known, set(entry["data"]) - known


def test_every_entry_has_the_fields_catalog_md_requires(batch: dict[str, Any]) -> None:
    required = (
        "id",
        "title",
        "description",
        "availability",
        "condition",
        "price",
        "link",
        "image_link",
        "brand",
    )
    for entry in batch["requests"]:
        missing = [name for name in required if not entry["data"].get(name)]
        assert not missing, (entry["data"]["id"], missing)


@pytest.mark.parametrize(
    ("field", "enum_name"),
    [
        ("availability", "ProductItem_availability"),
        ("condition", "ProductItem_condition"),
        ("gender", "ProductItem_gender"),
        ("age_group", "ProductItem_age_group"),
    ],
)
def test_enumerated_fields_take_the_published_values(
    batch: dict[str, Any], field: str, enum_name: str
) -> None:
    values = {entry["data"].get(field) for entry in batch["requests"]} - {None, ""}
    assert values and values <= set(enum(enum_name))


def test_prices_are_feed_strings_with_two_decimals_and_the_currency(batch: dict[str, Any]) -> None:
    for entry in batch["requests"]:
        data = entry["data"]
        assert PRICE.match(data["price"]), data["price"]
        assert data["sale_price"] == "" or PRICE.match(data["sale_price"]), data["sale_price"]


def test_the_status_check_and_the_read_back_ask_for_documented_parameters_and_fields() -> None:
    status = {p["name"] for p in api("check_batch_request_status", "GET")["params"]}
    assert {"handle", "load_ids_of_invalid_requests"} <= status
    assert set(FIELDS.split(",")) <= item_fields()


def test_the_stand_in_answers_in_the_published_shapes(batch: dict[str, Any]) -> None:
    standin = MetaStandin()
    connector = MetaConnector({"catalog_id": standin.catalog_id, "poll_seconds": "0.001"})
    status_fields = {f["name"] for f in node("CheckBatchRequestStatus")["fields"]}

    async def scenario() -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://graph.test") as client:
            headers = await connector.auth_headers(
                client, Credentials({"access_token": SANDBOX_ACCESS_TOKEN})
            )
            sent = await client.post(
                connector.path("items_batch"),
                content=dumps({**batch, "requests": batch["requests"][:5]}),
                headers={**headers, "Content-Type": "application/json"},
            )
            handle = sent.json()["handles"][0]
            entries = []
            for _ in range(2):
                answer = await client.get(
                    connector.path("check_batch_request_status"),
                    params={"handle": handle, "load_ids_of_invalid_requests": "true"},
                    headers=headers,
                )
                entries.extend(answer.json()["data"])
            items = (
                await client.get(connector.path("products"), params={"fields": FIELDS}, headers=headers)
            ).json()
            return entries, items["data"]

    entries, items = asyncio.run(scenario())
    assert [entry["status"] for entry in entries] == ["in_progress", "finished"]
    for entry in entries:
        assert set(entry) <= status_fields
    assert len(items) == 5
    for item in items:
        assert set(item) <= item_fields()
        assert item["availability"] in enum("ProductItem_availability")
        assert item["review_status"] in enum("ProductItem_review_status")
