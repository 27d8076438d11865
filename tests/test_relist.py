"""A listing withdrawn and selected again: brought back with its price and stock alone when its
content is the one it was withdrawn with (the state keeps that content's hash), whole otherwise.

Mercado Libre, against its stand-in in process: a sold-out SKU in stock again (the real-time
sync's commonest change) costs one ``PUT`` instead of four, a family withdrawn whole one ``PUT``
instead of a look-up, a read and three; a changed content, or a state that never kept the hash
(a rebuild, or a withdrawal before schema 6), still sends the content.
"""

from __future__ import annotations

import asyncio
import sqlite3
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

import engine
from engine.connectors import Credentials, connector_class
from engine.model._listing import Listing
from engine.state._store import SCHEMA_VERSION, AppliedListing, StateStore, Withdrawn
from engine.sync._executor import Executor
from engine.sync._plan import Planner
from engine.sync._planfile import change_record
from engine.sync._source import FileSource
from marketplaces.mercadolibre.standin import (
    SANDBOX_CLIENT_ID,
    SANDBOX_CLIENT_SECRET,
    SANDBOX_REFRESH_TOKEN,
    MercadoLibreStandin,
)

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "catalog.jsonl"
CREDENTIALS = Credentials(
    {
        "client_id": SANDBOX_CLIENT_ID,
        "client_secret": SANDBOX_CLIENT_SECRET,
        "refresh_token": SANDBOX_REFRESH_TOKEN,
    }
)


@pytest.fixture(scope="module")
def creates() -> list[dict[str, Any]]:
    """The bundled catalog's Mercado Libre creates, as a plan file holds them."""
    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    connector = connector_class("mercadolibre")({})
    return [
        change_record(c, connector)
        for c in Planner(compiled, connector).changes(FileSource(CATALOG))
        if c.op == "create"
    ]


def _single(creates: list[dict[str, Any]]) -> dict[str, Any]:
    return next(c for c in creates if not c.get("family") and not c.get("leader"))


def _family(creates: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The records of the first family of three or more SKUs: its leader, then its followers."""
    leader = next(c for c in creates if len(c.get("family") or ()) >= 3)
    members = set(leader["family"])
    return [leader, *(c for c in creates if c["sku_id"] in members and c is not leader)]


def _withdrawal(record: Mapping[str, Any]) -> dict[str, Any]:
    return {"op": "delete", "sku_id": record["sku_id"], "payloads": [{"status": "paused"}]}


_CONNECTORS: dict[int, Any] = {}
"""Stand-in -> the connector that talks to it: Mercado Libre's refresh token is single use, so the
connector holding the one issued last goes on (one stand-in per test)."""


def _apply(
    standin: MercadoLibreStandin, state: StateStore, records: Iterable[Mapping[str, Any]]
) -> Counter[str]:
    """The records applied; the requests the stand-in was sent for them."""
    before = Counter(standin.requests)

    connector = _CONNECTORS.setdefault(id(standin), connector_class("mercadolibre")({}))

    async def run() -> Any:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://ml.test") as client:
            return await Executor(connector, client, state, CREDENTIALS).apply(list(records))

    summary = asyncio.run(run())
    assert summary.failed == 0, summary.failures
    sent = Counter(standin.requests)
    sent.subtract(before)
    return Counter({call: n for call, n in sent.items() if n and not call.startswith("POST /oauth")})


def _retitled(record: Mapping[str, Any], title: str) -> dict[str, Any]:
    """The same create with another title (a content change made while it was withdrawn)."""
    after = {**record["after"], "fields": {**record["after"]["fields"], "title": title}}
    bodies = [{**body, "title": title} for body in record.get("payloads") or ()]  # a follower has none
    return {**record, "after": after, "payloads": bodies}


@pytest.fixture()
def standin() -> Iterator[MercadoLibreStandin]:
    made = MercadoLibreStandin()
    yield made
    _CONNECTORS.pop(id(made), None)


@pytest.fixture()
def state(tmp_path: Path) -> Iterator[StateStore]:
    with StateStore(tmp_path / "state.sqlite") as store:
        yield store


def test_a_single_sku_back_in_stock_with_its_content_costs_one_put(
    creates: list[dict[str, Any]], standin: MercadoLibreStandin, state: StateStore
) -> None:
    single = _single(creates)
    sku = single["sku_id"]
    _apply(standin, state, [single])
    (item,) = standin.items.values()
    item_id = item["id"]
    _apply(standin, state, [_withdrawal(single)])
    assert item["status"] == "paused"
    hashed = Listing.from_dict(dict(single["after"])).content_hash()
    assert state.withdrawn_listings("mercadolibre", [sku]) == {sku: Withdrawn(item_id, hashed)}
    item["available_quantity"] = 0  # as Mercado Libre shows a paused item sold out

    sent = _apply(standin, state, [single])

    assert sent == Counter({f"PUT /items/{item_id}": 1})  # no look-up, no content, no description
    assert list(standin.items) == [item_id]
    assert (item["status"], item["available_quantity"]) == (
        "active",
        single["payloads"][0]["available_quantity"],
    )
    assert item["price"] == single["payloads"][0]["price"]
    row = state.get("mercadolibre", sku)
    assert row is not None and (row.remote_id, row.content_hash) == (item_id, hashed)
    assert state.withdrawn_listings("mercadolibre", [sku]) == {}


def test_a_single_sku_back_with_new_content_sends_the_content_too(
    creates: list[dict[str, Any]], standin: MercadoLibreStandin, state: StateStore
) -> None:
    single = _single(creates)
    _apply(standin, state, [single])
    (item,) = standin.items.values()
    _apply(standin, state, [_withdrawal(single)])
    retitled = _retitled(single, "Renamed while sold out")

    sent = _apply(standin, state, [retitled])

    assert sent[f"PUT /items/{item['id']}"] >= 3  # status, content (title apart), ...
    assert sent[f"PUT /items/{item['id']}/description"] == 1
    assert "POST /items" not in sent
    assert (item["status"], item["title"]) == ("active", "Renamed while sold out")
    row = state.get("mercadolibre", single["sku_id"])
    assert row is not None
    assert row.content_hash == Listing.from_dict(dict(retitled["after"])).content_hash()


def test_a_family_withdrawn_whole_comes_back_in_one_put_each_member_on_its_variation(
    creates: list[dict[str, Any]], standin: MercadoLibreStandin, state: StateStore
) -> None:
    family = _family(creates)
    members = sorted(r["sku_id"] for r in family)
    _apply(standin, state, family)
    (item,) = standin.items.values()
    ids = {sku: state.get("mercadolibre", sku).remote_id for sku in members}  # type: ignore[union-attr]
    assert all(str(i).startswith(f"{item['id']}/") for i in ids.values())
    _apply(standin, state, [_withdrawal(r) for r in family])
    assert all(v["available_quantity"] == 0 for v in item["variations"])
    assert {s: w.remote_id for s, w in state.withdrawn_listings("mercadolibre", members).items()} == ids

    sent = _apply(standin, state, family)

    assert sent == Counter({f"PUT /items/{item['id']}": 1})  # no search, no read, no POST
    assert list(standin.items) == [item["id"]]
    by_sku = {r["sku_id"]: r for r in family}
    for variation in item["variations"]:
        sku = next(a["value_name"] for a in variation["attributes"] if a["id"] == "SELLER_SKU")
        assert variation["available_quantity"] == max(0, by_sku[sku]["after"]["quantity"])
    assert item["status"] == "active"
    for sku in members:  # each member's row on its own variation, not the leader's
        row = state.get("mercadolibre", sku)
        assert row is not None and row.remote_id == ids[sku]


def test_a_family_with_a_member_whose_content_changed_is_looked_up_and_adopted(
    creates: list[dict[str, Any]], standin: MercadoLibreStandin, state: StateStore
) -> None:
    family = _family(creates)
    _apply(standin, state, family)
    (item,) = standin.items.values()
    _apply(standin, state, [_withdrawal(r) for r in family])
    last = family[-1]
    changed = [*family[:-1], _retitled(last, last["after"]["fields"]["title"] + " II")]

    sent = _apply(standin, state, changed)

    assert sent[f"GET /users/{standin.seller_id}/items/search"] >= 1  # the create's look-up
    assert "POST /items" not in sent  # the item found is adopted, never listed twice
    assert list(standin.items) == [item["id"]]


def test_a_listing_withdrawn_before_schema_6_is_brought_back_whole(
    tmp_path: Path, creates: list[dict[str, Any]], standin: MercadoLibreStandin
) -> None:
    """A state of schema 5 (no content hash kept for its withdrawn rows) migrates; its rows then
    know no content, so bringing one back sends the content, as before."""
    single = _single(creates)
    path = tmp_path / "state.sqlite"
    with StateStore(path) as state:
        _apply(standin, state, [single])
        _apply(standin, state, [_withdrawal(single)])
    (item,) = standin.items.values()
    db = sqlite3.connect(path)
    with db:
        db.execute("ALTER TABLE withdrawn DROP COLUMN content_hash")
        db.execute("UPDATE meta SET value = '5' WHERE key = 'schema_version'")
    db.close()

    with StateStore(path) as state:
        version = state.db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0]
        assert int(version) == SCHEMA_VERSION == 6
        sku = single["sku_id"]
        assert state.withdrawn_listings("mercadolibre", [sku]) == {sku: Withdrawn(item["id"], None)}
        sent = _apply(standin, state, [single])

    assert sent[f"PUT /items/{item['id']}/description"] == 1
    assert sum(n for call, n in sent.items() if call == f"PUT /items/{item['id']}") >= 2
    assert item["status"] == "active"


def test_a_rebuild_keeps_no_content_hash_for_what_it_reads_back_withdrawn(tmp_path: Path) -> None:
    row = AppliedListing("9", "p9", "h9", Decimal("10.00"), None, 3, "R9")
    with StateStore(tmp_path / "state.sqlite") as state:
        state.record_applied("mercadolibre", [row])
        state.record_deleted("mercadolibre", ["9"])
        assert state.withdrawn_listings("mercadolibre", ["9"]) == {"9": Withdrawn("R9", "h9")}
        state.replace_marketplace("mercadolibre", [], {"9": "R9"})
        assert state.withdrawn_listings("mercadolibre", ["9"]) == {"9": Withdrawn("R9", None)}
        assert state.withdrawn_remote_ids("mercadolibre", ["9", "10"]) == {"9": "R9"}
