"""`tradepost state rebuild`: the state store read back from each marketplace's stand-in.

Given a marketplace that holds listings and a state store that lost them (deleted), or never
had them (made by another tool), a rebuild must leave the next plan sending exactly what differs
from the rules: nothing after a plain loss, one price update after a price changed behind
Tradepost's back, no create for a listing that already exists, a withdrawal for one the catalog
does not list.
"""

from __future__ import annotations

import asyncio
import copy
import json
import time
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest

from engine._diagnostics import TradepostError
from engine.connectors import Credentials, Reader
from engine.connectors._readback import ReadBackError
from engine.jsonio import dumps
from engine.project._apply import planned_records
from engine.project._assembly import catalog_records, open_marketplace, open_state
from engine.project._config import load_project
from engine.project._rebuild import REMOTE_MARK, RebuildSummary, rebuild_state
from engine.state._store import AppliedListing, LockedError, StateStore
from engine.sync._plan import Change, PlanSummary
from marketplaces.sandbox import Sandbox
from tests._harness import Loopback, run_apply, subset, write_project
from tests._harness import tradepost_process as tradepost
from tests.test_apply_e2e import seller_skus

MARKETPLACES = ["mercadolibre", "amazon", "google"]
FAST = {"base_delay": 0.001}


@pytest.fixture
def sandbox(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    """60 catalog SKUs; every marketplace paced at 500 rps (the stand-ins do not limit), and
    Google answering 25 products a page so that its paging is exercised too."""
    box = loopback.sandbox(subset(60))
    config = write_project(box, tmp_path / "project", rate=500)
    box.standins["google"].list_page_max = 25  # type: ignore[attr-defined]
    return box, config


def lose_state(config: Path) -> None:
    for path in config.parent.glob("state.sqlite*"):
        path.unlink()


def rebuild(config: Path, marketplace: str, box: Sandbox) -> RebuildSummary:
    project = load_project(config)
    run = open_marketplace(project, marketplace)
    with open_state(project) as state:
        transport = box.standins[marketplace].transport()
        return asyncio.run(rebuild_state(run, project, state, transport=transport, reader_options=FAST))


def plan(config: Path, marketplace: str) -> tuple[PlanSummary, list[Change]]:
    project = load_project(config)
    run = open_marketplace(project, marketplace)
    with open_state(project) as state:
        planner = run.planner(state)
        changes = [
            c
            for c in planner.changes(catalog_records(project, run.trade_policy))
            if c.op in ("create", "update", "delete")
        ]
        return planner.summary, changes


def search_requests(box: Sandbox, marketplace: str) -> int:
    """Requests of the list endpoint the rebuild pages through."""
    paths = {
        "mercadolibre": "GET /users/123456789/items/search",
        "amazon": "GET /listings/2021-08-01/items/A1SELLER",
        "google": "GET /products/v1/accounts/123456789/products",
    }
    return box.standins[marketplace].requests[paths[marketplace]]


@pytest.mark.parametrize("marketplace", MARKETPLACES)
def test_after_losing_the_state_a_rebuild_leaves_nothing_to_send(
    sandbox: tuple[Sandbox, Path], marketplace: str
) -> None:
    box, config = sandbox
    applied = run_apply(config, marketplace, box)
    assert applied.failed == 0 and applied.applied > 40
    lose_state(config)
    searched = search_requests(box, marketplace)  # apply's own look-ups before creating (Mercado Libre)

    summary = rebuild(config, marketplace, box)

    assert (summary.listings, summary.not_in_catalog, summary.withdrawn) == (applied.applied, 0, 0)
    assert sum(summary.differing.values()) == 0 and summary.duplicates == []
    # Mercado Libre: 10 items, one page of ids and the empty one that ends the scan; Amazon 20
    # listings a page; Google (in this fixture) 25.
    pages = {"mercadolibre": 2, "amazon": -(-applied.applied // 20), "google": -(-applied.applied // 25)}
    assert search_requests(box, marketplace) - searched == pages[marketplace] >= 2
    plan_summary, changes = plan(config, marketplace)
    assert changes == []
    assert (plan_summary.ops["create"], plan_summary.ops["update"], plan_summary.ops["delete"]) == (0, 0, 0)
    before = box.standins[marketplace].total_requests()
    again = run_apply(config, marketplace, box)
    assert (again.applied, again.requests) == (0, 0)
    assert box.standins[marketplace].total_requests() == before


def change_price_behind_the_back(box: Sandbox, marketplace: str, state: StateStore, alone: bool) -> str:
    """Set one SKU's price on the stand-in to 1.23, as someone in the marketplace's UI would; on
    Mercado Libre, a SKU listed alone or (``alone`` false) a variation of a family."""
    standin: Any = box.standins[marketplace]
    skus = sorted(state.all_sku_ids(marketplace))
    if marketplace == "mercadolibre":
        skus = [s for s in skus if ("/" not in str(state.get(marketplace, s).remote_id)) == alone]  # type: ignore[union-attr]
    sku_id = skus[0 if alone else 3]
    row = state.get(marketplace, sku_id)
    assert row is not None
    if marketplace == "mercadolibre":
        assert row.remote_id is not None
        item_id, _, variation = row.remote_id.partition("/")
        holder = standin.variation(row.remote_id) if variation else standin.items[item_id]
        holder["price"] = Decimal("1.23")
    elif marketplace == "amazon":
        offer = standin.items[sku_id]["attributes"]["purchasable_offer"][0]
        offer["our_price"][0]["schedule"][0]["value_with_tax"] = Decimal("1.23")
    else:
        standin.product_input(sku_id)["productAttributes"]["price"]["amountMicros"] = "1230000"
    return sku_id


@pytest.mark.parametrize(
    ("marketplace", "alone"),
    [("mercadolibre", False), ("mercadolibre", True), ("amazon", True), ("google", True)],
)
def test_a_price_changed_behind_tradeposts_back_is_the_one_update_planned(
    sandbox: tuple[Sandbox, Path], marketplace: str, alone: bool
) -> None:
    box, config = sandbox
    run_apply(config, marketplace, box)
    with open_state(load_project(config)) as state:
        sku_id = change_price_behind_the_back(box, marketplace, state, alone)
    lose_state(config)

    summary = rebuild(config, marketplace, box)

    assert dict(summary.differing) == {"price": 1}
    with open_state(load_project(config)) as state:
        row = state.get(marketplace, sku_id)
    assert row is not None and row.price == Decimal("1.23")  # recorded as read, so the plan corrects it
    plan_summary, changes = plan(config, marketplace)
    assert [(c.op, c.sku_id, c.kinds) for c in changes] == [("update", sku_id, ("price",))]
    assert plan_summary.line().startswith("Plan: 0 to create, 1 to update (1 price), 0 to delete")
    fixed = run_apply(config, marketplace, box)
    assert (fixed.applied, fixed.failed) == (1, 0)
    assert plan(config, marketplace)[1] == []


def change_stock_behind_the_back(box: Sandbox, marketplace: str, state: StateStore) -> str:
    """Sell out one SKU with stock, as a sale outside Tradepost's view would."""
    standin: Any = box.standins[marketplace]
    for sku_id in sorted(state.all_sku_ids(marketplace)):
        row = state.get(marketplace, sku_id)
        if row is None or row.quantity <= 0:
            continue
        if marketplace == "mercadolibre":
            item_id, _, variation = str(row.remote_id).partition("/")
            holder = standin.variation(str(row.remote_id)) if variation else standin.items[item_id]
            holder["available_quantity"] = 0
        elif marketplace == "amazon":
            standin.items[sku_id]["attributes"]["fulfillment_availability"][0]["quantity"] = 0
        else:
            standin.product_input(sku_id)["productAttributes"]["availability"] = "OUT_OF_STOCK"
        return sku_id
    raise AssertionError("no SKU with stock")


@pytest.mark.parametrize("marketplace", MARKETPLACES)
def test_stock_sold_behind_tradeposts_back_is_the_one_update_planned(
    sandbox: tuple[Sandbox, Path], marketplace: str
) -> None:
    box, config = sandbox
    run_apply(config, marketplace, box)
    with open_state(load_project(config)) as state:
        sku_id = change_stock_behind_the_back(box, marketplace, state)
    lose_state(config)

    summary = rebuild(config, marketplace, box)

    assert dict(summary.differing) == {"stock": 1}
    with open_state(load_project(config)) as state:
        row = state.get(marketplace, sku_id)
    # Google shows availability, not a count: the row says "unknown" (-1), which no plan computes.
    assert row is not None and row.quantity == (-1 if marketplace == "google" else 0)
    _, changes = plan(config, marketplace)
    assert [(c.op, c.sku_id, c.kinds) for c in changes] == [("update", sku_id, ("stock",))]
    assert run_apply(config, marketplace, box).applied == 1
    assert plan(config, marketplace)[1] == []


def test_an_old_copy_of_the_state_restored_then_rebuilt_follows_the_marketplace(
    sandbox: tuple[Sandbox, Path],
) -> None:
    """The old copy has a row for a product someone deleted in Merchant Center since: after the
    rebuild the row is gone, so the next plan creates it again, and only it."""
    box, config = sandbox
    run_apply(config, "google", box)
    old = {path.name: path.read_bytes() for path in config.parent.glob("state.sqlite*")}
    standin: Any = box.standins["google"]
    gone = sorted(i["offerId"] for i in standin.inputs.values())[5]
    standin.inputs = {k: v for k, v in standin.inputs.items() if v["offerId"] != gone}
    lose_state(config)
    for name, data in old.items():
        (config.parent / name).write_bytes(data)
    assert plan(config, "google")[1] == []  # the old copy believes everything is there

    rebuild(config, "google", box)

    _, changes = plan(config, "google")
    assert [(c.op, c.sku_id) for c in changes] == [("create", gone)]


def test_a_connector_that_cannot_read_back_says_so(sandbox: tuple[Sandbox, Path]) -> None:
    box, config = sandbox
    project = load_project(config)
    run = open_marketplace(project, "google")
    run.connector.reads_back = False  # type: ignore[misc]  # as a connector without read_back
    with open_state(project) as state, pytest.raises(TradepostError) as error:
        asyncio.run(rebuild_state(run, project, state, transport=box.standins["google"].transport()))
    assert str(error.value) == (
        "the Google connector cannot read its listings back; state rebuild is not available"
    )


# -- listings made by another tool -------------------------------------------------------------


SEED_TOKEN = "seed-token-of-another-tool"
FOREIGN = {"mercadolibre": 110, "amazon": 5, "google": 30}
"""SKUs not in the catalog that the other tool listed (110: more than one page of Mercado Libre's
item search, 100, and six multigets of 20)."""


def seed_like_another_tool(box: Sandbox, config: Path, marketplace: str) -> tuple[set[str], str]:
    """List every planned SKU, and FOREIGN SKUs the catalog does not have, straight through the
    stand-in's API with a token of another app; one listing gets a title of its own. Returns the
    catalog SKUs listed and the one whose title differs."""
    project = load_project(config)
    run = open_marketplace(project, marketplace)
    with open_state(project) as state:
        records = planned_records(run, project, state)
    creates = [r for r in records if r["op"] == "create"]
    single = next(r for r in creates if not r.get("family"))
    retitled = str(single["sku_id"])
    sent: list[tuple[str, str, Any, Any]] = []
    for record in creates:
        for call in run.connector.calls_for(record, None)[:1]:
            body = copy.deepcopy(call.body)
            if record["sku_id"] == retitled:
                retitle(marketplace, body)
            sent.append((call.method, call.path, body, call.params))
    method, path, body, params = next(
        (c.method, c.path, c.body, c.params) for c in run.connector.calls_for(single, None)
    )
    for number in range(FOREIGN[marketplace]):
        foreign = f"FOREIGN-{number:03d}"
        other = copy.deepcopy(body)
        if marketplace == "mercadolibre":
            other["attributes"] = [
                {**a, "value_name": foreign} if a["id"] == "SELLER_SKU" else a for a in other["attributes"]
            ]
            sent.append((method, path, other, params))
        elif marketplace == "amazon":
            sent.append((method, path.rpartition("/")[0] + "/" + foreign, other, params))
        else:
            other["offerId"] = foreign
            sent.append((method, path, other, params))

    send_as_another_tool(box, marketplace, sent)
    listed = {str(r["sku_id"]) for r in creates}
    return listed, retitled


def send_as_another_tool(box: Sandbox, marketplace: str, calls: list[tuple[str, str, Any, Any]]) -> None:
    """Send requests to the stand-in with a token it issued to some other app."""
    standin: Any = box.standins[marketplace]
    if marketplace == "amazon":
        standin.tokens[SEED_TOKEN] = standin.clock() + 3600
        auth = {"x-amz-access-token": SEED_TOKEN}
    else:
        standin.tokens[SEED_TOKEN] = time.monotonic() + 3600
        auth = {"Authorization": f"Bearer {SEED_TOKEN}"}

    async def send() -> None:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://standin") as client:
            for method, path, body, params in calls:
                headers = {**auth, "Content-Type": "application/json"}
                content = dumps(body).encode()
                response = await client.request(method, path, params=params, content=content, headers=headers)
                assert response.status_code < 300, response.text

    asyncio.run(send())


def retitle(marketplace: str, body: Any) -> None:
    if marketplace == "mercadolibre":
        body["title"] = "Listed by hand"
    elif marketplace == "amazon":
        body["attributes"]["item_name"][0]["value"] = "Listed by hand"
    else:
        body["productAttributes"]["title"] = "Listed by hand"


@pytest.mark.parametrize("marketplace", MARKETPLACES)
def test_listings_made_by_another_tool_are_adopted_and_those_not_in_the_catalog_withdrawn(
    sandbox: tuple[Sandbox, Path], marketplace: str
) -> None:
    box, config = sandbox
    listed, retitled = seed_like_another_tool(box, config, marketplace)

    summary = rebuild(config, marketplace, box)

    assert summary.listings == len(listed) + FOREIGN[marketplace]
    assert summary.not_in_catalog == FOREIGN[marketplace]
    assert dict(summary.differing) == {"content": 1}
    _, changes = plan(config, marketplace)
    ops = sorted((c.op, c.sku_id, c.kinds) for c in changes)
    foreign = [("delete", f"FOREIGN-{n:03d}", ()) for n in range(FOREIGN[marketplace])]
    assert ops == sorted([("update", retitled, ("content",)), *foreign])  # no create at all
    with open_state(load_project(config)) as state:
        row = state.get(marketplace, retitled)
    assert row is not None and row.content_hash.startswith(REMOTE_MARK)
    if marketplace == "mercadolibre":
        assert search_requests(box, marketplace) == 3  # 100 ids, the other 20-odd, then an empty page
        applied = run_apply(config, marketplace, box)
        assert applied.failed == 0
        counts = seller_skus(box.standins[marketplace])
        assert {counts[sku] for sku in listed} == {1}  # adopted, never listed a second time


def test_mercadolibre_paused_unnamed_and_duplicated_items(sandbox: tuple[Sandbox, Path]) -> None:
    """A paused item is withdrawn (no row; selected, it comes back, never twice); an item with no
    SELLER_SKU is not Tradepost's; a SKU on two items is reported and one of them kept."""
    box, config = sandbox
    run_apply(config, "mercadolibre", box)
    standin: Any = box.standins["mercadolibre"]
    with open_state(load_project(config)) as state:
        rows = {sku: state.get("mercadolibre", sku) for sku in state.all_sku_ids("mercadolibre")}
    singles = sorted(sku for sku, r in rows.items() if r is not None and "/" not in str(r.remote_id))
    paused, doubled = singles[0], singles[1]
    paused_item = str(rows[paused].remote_id)  # type: ignore[union-attr]
    standin.items[paused_item]["status"] = "paused"  # by hand, in Mercado Libre's UI
    model = {k: v for k, v in standin.items[str(rows[doubled].remote_id)].items()}  # type: ignore[union-attr]
    fields = "title category_id price currency_id available_quantity buying_mode listing_type_id condition"
    body = {key: model[key] for key in [*fields.split(), "attributes"]}
    body["pictures"] = [{"source": p["url"]} for p in model["pictures"]]
    nameless = {**body, "attributes": [a for a in body["attributes"] if a["id"] != "SELLER_SKU"]}
    send_as_another_tool(
        box, "mercadolibre", [("POST", "/items", body, None), ("POST", "/items", nameless, None)]
    )
    lose_state(config)

    summary = rebuild(config, "mercadolibre", box)

    assert (summary.withdrawn, summary.unnamed, summary.duplicates) == (1, 1, [doubled])
    assert summary.listings == len(rows) - 1
    with open_state(load_project(config)) as state:
        assert state.get("mercadolibre", paused) is None
        assert state.withdrawn_remote_id("mercadolibre", paused) == paused_item
    _, changes = plan(config, "mercadolibre")
    assert [(c.op, c.sku_id) for c in changes] == [("create", paused)]
    posts = standin.requests["POST /items"]
    assert run_apply(config, "mercadolibre", box).failed == 0
    assert standin.requests["POST /items"] == posts  # brought back, not listed again
    assert standin.items[paused_item]["status"] == "active"


def seed_amazon(box: Sandbox, stamps: list[str]) -> None:
    """One listing per creation time given, straight into the stand-in's inventory."""
    standin: Any = box.standins["amazon"]
    offer = [{"marketplace_id": "ATVPDKIKX0DER", "currency": "USD", "audience": "ALL",
              "our_price": [{"schedule": [{"value_with_tax": Decimal("9.90")}]}]}]  # fmt: skip
    stock = [{"fulfillment_channel_code": "DEFAULT", "quantity": 3}]
    for number, stamp in enumerate(stamps):
        standin.items[f"OLD-{number:04d}"] = {
            "productType": "SHIRT",
            "requirements": "LISTING",
            "attributes": {"purchasable_offer": offer, "fulfillment_availability": stock},
            "issues": [],
            "createdDate": stamp,
            "lastUpdatedDate": stamp,
        }


def test_amazon_past_the_1000_skus_one_search_reaches(sandbox: tuple[Sandbox, Path]) -> None:
    """Two SKUs a second, 1,050 of them: read in two windows of creation time, each SKU once."""
    box, config = sandbox
    seed_amazon(box, [f"2025-01-01T00:{n // 120:02d}:{n // 2 % 60:02d}Z" for n in range(1050)])

    summary = rebuild(config, "amazon", box)

    assert (summary.listings, summary.not_in_catalog, summary.duplicates, summary.unreached) == (
        1050,
        1050,
        [],
        0,
    )
    assert search_requests(box, "amazon") == 50 + 3  # 1,000 in 50 pages, then the 52 from 00:08:19 on
    with open_state(load_project(config)) as state:
        row = state.get("amazon", "OLD-1049")
    assert row is not None and (row.price, row.quantity) == (Decimal("9.90"), 3)


def test_amazon_skus_created_in_one_second_by_a_feed(sandbox: tuple[Sandbox, Path]) -> None:
    """2,100 SKUs of one second, then 10: that second is read by SKU from both ends (2,000 of
    them), and the 100 in the middle, which no search reaches, are counted, not guessed."""
    box, config = sandbox
    seed_amazon(box, ["2025-01-01T00:00:00Z"] * 2100 + ["2025-01-01T00:00:05Z"] * 10)

    summary = rebuild(config, "amazon", box)

    assert (summary.listings, summary.unreached) == (2010, 100)
    assert search_requests(box, "amazon") == 50 + 50 + 50 + 1
    with open_state(load_project(config)) as state:
        read = set(state.all_sku_ids("amazon"))
    assert {"OLD-0000", "OLD-0999", "OLD-1100", "OLD-2099", "OLD-2109"} <= read
    assert not {"OLD-1000", "OLD-1099"} & read


# -- the store, the lock, the connector contract ---------------------------------------------


def row(sku_id: str, price: str = "10") -> AppliedListing:
    return AppliedListing(sku_id, "p", "hash", Decimal(price), None, 1, f"R{sku_id}")


def test_replacing_a_marketplaces_rows_leaves_the_other_marketplaces_alone(tmp_path: Path) -> None:
    with StateStore(tmp_path / "state.sqlite") as state:
        state.record_applied("google", [row("1"), row("2")])
        state.record_applied("amazon", [row("1"), row("9")])
        state.record_deleted("google", ["2"])
        state.record_pending("google", "1", "submission")

        state.replace_marketplace("google", [row("3", "12.50")], {"4": "R4"})

        assert list(state.all_sku_ids("google")) == ["3"]
        assert list(state.all_sku_ids("amazon")) == ["1", "9"]
        assert state.get("google", "3") == row("3", "12.50")
        assert state.withdrawn_remote_id("google", "2") is None  # the old rows went, all of them
        assert state.withdrawn_remote_id("google", "4") == "R4"
        assert state.pending("google") == {}


def test_a_rebuild_waits_for_no_one_it_refuses_while_another_run_holds_the_lock(
    sandbox: tuple[Sandbox, Path],
) -> None:
    box, config = sandbox
    run_apply(config, "google", box)
    project = load_project(config)
    with open_state(project) as state:
        before = sorted(state.all_sku_ids("google"))
        state.acquire_lock("google", "tradepost apply")  # this process is alive: the lock holds
        run = open_marketplace(project, "google")
        with pytest.raises(LockedError, match=r"^google is locked by tradepost apply "):
            asyncio.run(rebuild_state(run, project, state, transport=box.standins["google"].transport()))
        assert sorted(state.all_sku_ids("google")) == before
        assert box.standins["google"].requests["GET /products/v1/accounts/123456789/products"] == 0


class FailingSearch(httpx.AsyncBaseTransport):
    """The stand-in, except that its list endpoint answers 500 every time."""

    def __init__(self, inner: httpx.AsyncBaseTransport, path: str) -> None:
        self.inner, self.path, self.failed = inner, path, 0

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            self.failed += 1
            return httpx.Response(500, json={"errors": [{"code": "InternalFailure", "message": "down"}]})
        return await self.inner.handle_async_request(request)


def test_a_read_that_keeps_failing_writes_nothing_and_says_which_request(
    sandbox: tuple[Sandbox, Path],
) -> None:
    box, config = sandbox
    run_apply(config, "amazon", box)
    project = load_project(config)
    run = open_marketplace(project, "amazon")
    transport = FailingSearch(box.standins["amazon"].transport(), "/listings/2021-08-01/items/A1SELLER")
    with open_state(project) as state:
        before = state.count("amazon")
        with pytest.raises(
            ReadBackError, match=r"^GET /listings/2021-08-01/items/A1SELLER failed 3 times: 500"
        ):
            asyncio.run(
                rebuild_state(
                    run,
                    project,
                    state,
                    transport=transport,
                    reader_options={"max_attempts": 3, "base_delay": 0.001},
                )
            )
        assert transport.failed == 3
        assert state.count("amazon") == before
        state.acquire_lock("amazon", "tradepost apply")  # the failed rebuild released its lock


def test_the_reader_retries_a_throttled_read_and_counts_every_request() -> None:
    answers = iter([httpx.Response(429, headers={"Retry-After": "0"}), httpx.Response(200, json={"ok": 1})])
    transport = httpx.MockTransport(lambda request: next(answers))
    from marketplaces.google import GoogleConnector

    connector = GoogleConnector()

    async def no_auth(client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        return {}

    connector.auth_headers = no_auth  # type: ignore[method-assign]

    async def read() -> tuple[Any, int]:
        async with httpx.AsyncClient(transport=transport, base_url="http://x") as client:
            reader = Reader(connector, client, Credentials(), rate=1000, base_delay=0.001)
            return await reader.get("/products"), reader.requests

    assert asyncio.run(read()) == ({"ok": 1}, 2)


# -- the command ---------------------------------------------------------------------------------


def test_the_command_in_text_and_json_and_its_errors(sandbox: tuple[Sandbox, Path]) -> None:
    box, config = sandbox
    applied = run_apply(config, "google", box)
    lose_state(config)

    text = tradepost("state", "rebuild", "-m", "google", "-c", str(config))
    assert text.returncode == 0, text.stderr
    assert (
        text.stdout.splitlines()[0] == f"rebuilt {applied.applied} listings for google (0 not in the catalog)"
    )

    as_json = tradepost("state", "rebuild", "-m", "google", "-c", str(config), "--json")
    assert as_json.returncode == 0, as_json.stderr
    document = json.loads(as_json.stdout)
    assert (document["marketplace"], document["listings"], document["not_in_catalog"]) == (
        "google",
        applied.applied,
        0,
    )
    assert document["requests"] == 3  # 59 products, 25 a page

    unknown = tradepost("state", "rebuild", "-m", "nope", "-c", str(config))
    assert unknown.returncode == 1
    assert unknown.stderr.startswith("error: marketplace 'nope' is not in ")
    assert (
        "(configured: amazon, carrefour, dafiti, facebook, google, magalu, mercadolibre, netshoes)"
        in unknown.stderr
    )

    (config.parent / "secrets" / "google_refresh_token").write_text("revoked\n", encoding="utf-8")
    refused = tradepost("state", "rebuild", "-m", "google", "-c", str(config))
    assert refused.returncode == 1
    assert refused.stderr.startswith("error: ") and "Traceback" not in refused.stderr
    assert "revoked" not in refused.stderr  # the secret is never shown
    with open_state(load_project(config)) as state:
        assert state.count("google") == applied.applied  # nothing written on failure
