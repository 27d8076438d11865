"""The Amazon connector against its stand-in, in process: tokens, single calls, confirmations, feeds.

Every change sent here comes from the real planner over the bundled catalog and rules/amazon.yaml,
through ``engine.sync._planfile.change_record``: the bodies are the ones `tradepost plan` shows. Where a
test needs a body Amazon refuses, it edits a planned one, as a hand-edited plan file would.
"""

from __future__ import annotations

import copy
import json
from collections.abc import Awaitable, Callable, Iterable
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import httpx
import pytest

import engine
from engine.connectors import CallResult, Credentials, TokenError
from engine.jsonio import dumps, loads
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.model._listing import Listing
from engine.rules._compiled import CompiledRules
from engine.secrets import redact
from engine.state._store import StateStore, applied_from
from engine.sync._plan import Planner
from engine.sync._planfile import change_record
from marketplaces._standin import Faults
from marketplaces.amazon import AmazonConnector
from marketplaces.amazon.standin import AmazonStandin
from tests import _harness as harness

ROOT = Path(__file__).resolve().parent.parent
SPECS = ROOT.parent / "shared" / "specs" / "amazon"
SELLER = "A1SELLER"
SECRETS = {"lwa_client_id": "amzn1.application-oa2-client.t", "lwa_client_secret": "s3cr3t-value"}
CREDENTIALS = Credentials({**SECRETS, "refresh_token": "Atzr|refresh-me"})

Change = dict[str, Any]


# -- the plan ------------------------------------------------------------------------------------


@cache
def compiled() -> CompiledRules:
    return engine.compile_rules(ROOT / "rules" / "amazon.yaml")


@cache
def catalog() -> tuple[str, ...]:
    return tuple(
        line for line in (ROOT / "examples" / "catalog.jsonl").read_text("utf-8").splitlines() if line
    )


def records(**edits: Callable[[dict[str, Any]], None]) -> list[dict[str, Any]]:
    """The example catalog as dicts; ``edits`` maps a SKU id to a function that edits its record."""
    found = [json.loads(line) for line in catalog()]
    for record in found:
        edit = edits.get(str(record["sku"]["id"]))
        if edit is not None:
            edit(record)
    return found


def connector(**options: Any) -> AmazonConnector:
    defaults = {"lwa_url": "http://amazon.test", "seller_id": SELLER, "feed_poll_seconds": 0.01}
    return AmazonConnector({**compiled().rules.options, **defaults, "retry_seconds": 0.001, **options})


def plan(given: Iterable[dict[str, Any]], state: StateStore | None = None) -> list[Change]:
    """The saved changes the real planner makes of these catalog records (creates, updates, deletes)."""
    amazon = connector()
    planner = Planner(compiled(), amazon, state)
    changes = planner.changes(_parse(record) for record in given)
    return [change_record(c, amazon) for c in changes if c.op in ("create", "update", "delete")]


def _parse(record: dict[str, Any]) -> CatalogRecord | MalformedRecord:
    try:
        return CatalogRecord.parse(record)
    except MalformedRecord as malformed:  # the example catalog holds a few, on purpose
        return malformed


@cache
def _creates() -> tuple[Change, ...]:
    return tuple(plan(records()))


def creates(n: int | None = None) -> list[Change]:
    """The first ``n`` planned creates (384 in the example catalog), safe to edit."""
    return copy.deepcopy(list(_creates()[:n]))


def applied(state: StateStore, changes: Iterable[Change]) -> None:
    """What the executor records once Amazon has the listings."""
    state.record_applied("amazon", [applied_from(Listing.from_dict(c["after"])) for c in changes])


def wire(body: Any) -> Any:
    return loads(dumps(body))


# -- the stand-in, mounted in process --------------------------------------------------------------


def standin(**options: Any) -> AmazonStandin:
    return AmazonStandin(
        client_id=SECRETS["lwa_client_id"],
        client_secret=SECRETS["lwa_client_secret"],
        refresh_token="Atzr|refresh-me",
        seller_id=SELLER,
        **options,
    )


class Amazon(harness.Session[AmazonStandin, AmazonConnector]):
    """A connector, its stand-in and a client between them (``apply`` is a one-attempt executor)."""

    async def send_all(self, changes: Iterable[Change]) -> dict[str, CallResult]:
        return {c["sku_id"]: (await self.apply(c))[-1] for c in changes}

    def token_requests(self) -> int:
        return self.standin.requests["POST /auth/o2/token"]


def run(
    scenario: Callable[[Amazon], Awaitable[None]],
    server: AmazonStandin | None = None,
    amazon: AmazonConnector | None = None,
) -> None:
    harness.drive(scenario, server or standin(), amazon or connector(), CREDENTIALS.values, Amazon)


# -- Login with Amazon -------------------------------------------------------------------------------


def test_the_access_token_is_cached_and_refreshed_a_minute_before_it_expires() -> None:
    now = [1000.0]
    amazon = connector()
    amazon.clock = lambda: now[0]

    async def scenario(a: Amazon) -> None:
        first = await a.headers()
        assert await a.headers() == first
        now[0] += 3600 - 61
        assert await a.headers() == first
        assert a.token_requests() == 1
        now[0] += 1  # 60 s before expiry: replaced before any request can carry a stale token
        second = await a.headers()
        assert second != first and a.token_requests() == 2
        assert set(second) == {"x-amz-access-token"}
        result = await a.apply(creates(1)[0])
        assert result[0].ok

    run(scenario, standin(token_lifetime=3600), amazon)


def test_a_token_that_expired_in_flight_is_retryable_and_replaced() -> None:
    server = standin(token_lifetime=3600)
    server_now = [0.0]
    server.clock = lambda: server_now[0]

    async def scenario(a: Amazon) -> None:
        await a.headers()
        server_now[0] = 3600.0  # the connector's clock lags Amazon's
        [result] = await a.apply(creates(1)[0])
        assert (result.ok, result.retryable) == (False, True)
        assert "expired" in (result.error or "")
        [result] = await a.apply(creates(1)[0])  # the retry fetches a new token first
        assert result.ok and a.token_requests() == 2

    run(scenario, server)


def test_the_access_token_is_masked_in_every_message_like_any_secret() -> None:
    async def scenario(a: Amazon) -> None:
        token = (await a.headers())["x-amz-access-token"]
        assert redact(f"403: token {token} expired") == "403: token *** expired"

    run(scenario)


def test_refused_credentials_raise_a_readable_error_without_the_secrets() -> None:
    wrong = Credentials({**CREDENTIALS.values, "lwa_client_secret": "not-the-secret"})

    async def scenario(a: Amazon) -> None:
        with pytest.raises(TokenError) as raised:
            await a.connector.auth_headers(a.client, wrong)
        assert "invalid_client" in str(raised.value) or "Client authentication failed" in str(raised.value)
        assert not any(secret in str(raised.value) for secret in ("not-the-secret", "Atzr|refresh-me"))

    run(scenario)


def test_listings_calls_without_a_valid_token_are_refused_in_amazons_error_shape() -> None:
    async def scenario(a: Amazon) -> None:
        response = await a.client.get(
            f"/listings/2021-08-01/items/{SELLER}/X", params={"marketplaceIds": "ATVPDKIKX0DER"}
        )
        assert response.status_code == 403
        assert response.json()["errors"][0]["code"] == "Unauthorized"

    run(scenario)


# -- single calls ------------------------------------------------------------------------------------


def test_create_puts_the_planned_body_and_waits_for_confirmation() -> None:
    change = creates(1)[0]
    sku = change["sku_id"]

    async def scenario(a: Amazon) -> None:
        [call] = a.connector.calls_for(change, None)
        assert (call.method, call.path, call.kind) == (
            "PUT",
            f"/listings/2021-08-01/items/{SELLER}/{sku}",
            "create",
        )
        assert call.params is not None and call.params["marketplaceIds"] == "ATVPDKIKX0DER"
        [result] = await a.apply(change)
        assert result.ok and result.pending  # ACCEPTED: Amazon has yet to process it
        item = a.standin.items[sku]
        assert item["productType"] == change["payloads"][0]["productType"] == "SHOES"
        assert item["attributes"] == wire(change["payloads"][0]["attributes"])

    run(scenario)


def test_sku_ids_are_percent_encoded_whole_in_the_path() -> None:
    change = {**creates(1)[0], "sku_id": "KIT 1/AZ#M?x=1"}

    async def scenario(a: Amazon) -> None:
        [call] = a.connector.calls_for(change, None)
        assert call.path.endswith(f"/{SELLER}/KIT%201%2FAZ%23M%3Fx%3D1")
        [result] = await a.apply(change)
        assert result.ok and "KIT 1/AZ#M?x=1" in a.standin.items

    run(scenario)


def test_a_price_only_update_patches_purchasable_offer_and_nothing_else(tmp_path: Path) -> None:
    change = creates(1)[0]
    sku = change["sku_id"]

    def raise_price(record: dict[str, Any]) -> None:
        record["price"]["selling"] = str(Decimal(str(record["price"]["selling"])) + 50)

    with StateStore(tmp_path / "state.sqlite") as state:
        applied(state, [change])
        [update] = [c for c in plan(records(**{sku: raise_price}), state) if c["sku_id"] == sku]

    async def scenario(a: Amazon) -> None:
        await a.apply(change)
        before = copy.deepcopy(a.standin.items[sku]["attributes"])
        assert update["fields"] == ["price"]
        [call] = a.connector.calls_for(update, None)
        assert (call.method, call.kind) == ("PATCH", "price")
        [result] = await a.apply(update)
        assert result.ok and result.pending
        after = a.standin.items[sku]["attributes"]
        assert {name for name in after if after[name] != before.get(name)} == {"purchasable_offer"}
        assert after["purchasable_offer"] == wire(update["payloads"][0]["patches"][0]["value"])

    run(scenario)


def test_price_and_stock_changed_together_go_in_one_patch(tmp_path: Path) -> None:
    change = creates(1)[0]
    sku = change["sku_id"]

    def restock_and_reprice(record: dict[str, Any]) -> None:
        record["price"]["selling"] = str(Decimal(str(record["price"]["selling"])) + 50)
        record["stock"]["warehouses"] = [{"warehouse": "main", "quantity": 80, "reserved": 0}]

    with StateStore(tmp_path / "state.sqlite") as state:
        applied(state, [change])
        [update] = [c for c in plan(records(**{sku: restock_and_reprice}), state) if c["sku_id"] == sku]

    async def scenario(a: Amazon) -> None:
        await a.apply(change)
        [call] = a.connector.calls_for(update, None)
        assert (call.method, call.kind) == ("PATCH", "price+stock")
        [result] = await a.apply(update)
        assert result.ok
        attributes = a.standin.items[sku]["attributes"]
        assert attributes["fulfillment_availability"] == [
            {"fulfillment_channel_code": "DEFAULT", "quantity": 23}
        ]

    run(scenario)


def test_delete_withdraws_the_listing(tmp_path: Path) -> None:
    change = creates(1)[0]
    sku = change["sku_id"]
    with StateStore(tmp_path / "state.sqlite") as state:
        applied(state, [change])
        [delete] = plan([], state)

    async def scenario(a: Amazon) -> None:
        await a.apply(change)
        [call] = a.connector.calls_for(delete, None)
        assert (call.method, call.body, call.kind) == ("DELETE", None, "delete")
        [result] = await a.apply(delete)
        assert result.ok and result.pending is None  # nothing left for Amazon to validate
        assert sku not in a.standin.items
        [again] = await a.apply(delete)  # a retry after a lost answer does no harm
        assert again.ok

    run(scenario)


def test_a_malformed_request_is_a_4xx_with_amazons_message_and_not_retried() -> None:
    change = creates(1)[0]
    del change["payloads"][0]["productType"]

    async def scenario(a: Amazon) -> None:
        [result] = await a.apply(change)
        assert (result.ok, result.retryable) == (False, False)
        assert result.error == "400: InvalidInput: ListingsItemPutRequest: 'productType' is required."
        assert change["sku_id"] not in a.standin.items

    run(scenario)


def _drop_item_name(attributes: dict[str, Any]) -> None:
    del attributes["item_name"]


def _sell_in_reais(attributes: dict[str, Any]) -> None:
    attributes["purchasable_offer"][0]["currency"] = "BRL"


def _break_the_ean(attributes: dict[str, Any]) -> None:
    attributes["externally_assigned_product_identifier"][0]["value"] = "7893477127820"


@pytest.mark.parametrize(
    ("edit", "issue"),
    [
        (_drop_item_name, "90220: '[item_name]' is required but not supplied. [item_name]"),
        (_sell_in_reais, "currency BRL is not USD, the currency of ATVPDKIKX0DER."),
        (_break_the_ean, "The value '7893477127820' is not a valid EAN"),
    ],
)
def test_a_listing_amazon_finds_invalid_fails_with_its_issues(
    edit: Callable[[dict[str, Any]], None], issue: str
) -> None:
    change = creates(1)[0]
    edit(change["payloads"][0]["attributes"])

    async def scenario(a: Amazon) -> None:
        [result] = await a.apply(change)
        assert (result.ok, result.retryable, result.pending) == (False, False, None)
        assert issue in (result.error or "")
        assert change["sku_id"] not in a.standin.items

    run(scenario)


def test_a_patch_for_a_listing_amazon_does_not_have_fails(tmp_path: Path) -> None:
    change = creates(1)[0]
    sku = change["sku_id"]

    def restock(record: dict[str, Any]) -> None:
        record["stock"]["warehouses"] = [{"warehouse": "main", "quantity": 80, "reserved": 0}]

    with StateStore(tmp_path / "state.sqlite") as state:
        applied(state, [change])
        [update] = [c for c in plan(records(**{sku: restock}), state) if c["sku_id"] == sku]

    async def scenario(a: Amazon) -> None:
        [result] = await a.apply(update)
        assert (result.ok, result.retryable) == (False, False)
        assert f"SKU '{sku}' does not exist" in (result.error or "")

    run(scenario)


@pytest.mark.parametrize(
    ("faults", "status"),
    [(Faults(throttle_rate=1.0), 429), (Faults(error_rate=1.0), 500)],
)
def test_throttling_and_server_errors_are_retryable(faults: Faults, status: int) -> None:
    async def scenario(a: Amazon) -> None:
        await a.headers()
        a.standin.faults = faults
        [result] = await a.apply(creates(1)[0])
        assert (result.ok, result.retryable) == (False, True)
        assert (result.error or "").startswith(f"{status}: ")

    run(scenario)


# -- asynchronous outcomes ---------------------------------------------------------------------------


def test_confirm_catches_what_amazon_refused_after_accepting_it() -> None:
    changes = creates(30)

    async def scenario(a: Amazon) -> None:
        sent = await a.send_all(changes)
        assert all(r.ok and r.pending for r in sent.values())
        late = set(a.standin.late_failures)
        assert 0 < len(late) < len(changes)
        pending = {sku: str(result.pending) for sku, result in sent.items()}
        confirmed = await a.connector.confirm(a.client, await a.headers(), pending)
        assert set(confirmed) == set(pending)
        assert {sku for sku, r in confirmed.items() if not r.ok} == late
        for sku in late:
            assert not confirmed[sku].retryable
            assert (confirmed[sku].error or "").startswith("8541: The product identifier conflicts")

    run(scenario, standin(accepted_then_invalid_rate=0.3, seed=3))


def test_confirm_reads_20_skus_a_request_and_a_sku_with_a_comma_alone() -> None:
    """45 accepted SKUs confirmed with 3 searchListingsItems requests (20, 20, 5), not 45 reads; a
    SKU whose id holds a comma (which ``identifiers`` cannot name) by its own getListingsItem."""
    changes = creates(45)
    changes[-1]["sku_id"] = "A,B"
    changes[-1]["after"] = {**changes[-1]["after"], "sku_id": "A,B"}

    async def scenario(a: Amazon) -> None:
        sent = await a.send_all(changes)
        pending = {sku: str(result.pending) for sku, result in sent.items()}
        before = dict(a.standin.requests)
        confirmed = await a.connector.confirm(a.client, await a.headers(), pending)
        reads = {k: n - before.get(k, 0) for k, n in a.standin.requests.items() if n != before.get(k, 0)}
        assert reads == {
            f"GET /listings/2021-08-01/items/{SELLER}": 3,
            f"GET /listings/2021-08-01/items/{SELLER}/A,B": 1,  # the stand-in sees the path decoded
        }
        assert list(confirmed) == list(pending) and all(r.ok for r in confirmed.values())

    run(scenario)


def test_confirm_of_a_listing_that_never_appeared_sends_it_again() -> None:
    async def scenario(a: Amazon) -> None:
        confirmed = await a.connector.confirm(a.client, await a.headers(), {"GONE-1": "sub-1"})
        assert (confirmed["GONE-1"].ok, confirmed["GONE-1"].retryable) == (False, True)
        assert "sub-1" in (confirmed["GONE-1"].error or "")

    run(scenario)


# -- feeds -----------------------------------------------------------------------------------------


def test_a_feed_applies_600_changes_with_an_outcome_per_sku(tmp_path: Path) -> None:
    """Creates, price and stock patches, deletes and three failures, in one JSON_LISTINGS_FEED."""
    live = creates(100)  # already on Amazon before the run
    live_ids = [c["sku_id"] for c in live]

    def raise_price(record: dict[str, Any]) -> None:
        record["price"]["selling"] = str(Decimal(str(record["price"]["selling"])) + 50)

    def restock(record: dict[str, Any]) -> None:
        record["stock"]["warehouses"] = [{"warehouse": "main", "quantity": 80, "reserved": 0}]

    def both(record: dict[str, Any]) -> None:
        raise_price(record)
        restock(record)

    edits = {sku: raise_price for sku in live_ids[:40]}
    edits.update({sku: restock for sku in live_ids[40:70]})
    edits.update({sku: both for sku in live_ids[70:80]})
    catalog_now = [r for r in records(**edits) if str(r["sku"]["id"]) not in live_ids[80:90]]
    # More new SKUs than the catalog has: its records again, under other SKU ids.
    copies = copy.deepcopy(catalog_now[100:])
    for record in copies:
        record["sku"]["id"] = f"{record['sku']['id']}-B"
    with StateStore(tmp_path / "state.sqlite") as state:
        applied(state, live)
        changes = plan(catalog_now + copies, state)
    others = [c for c in changes if c["op"] != "create"]
    changes = others + [c for c in changes if c["op"] == "create"][: 600 - len(others)]
    kinds = [(c["op"], tuple(c.get("fields", ()))) for c in changes]
    assert len(changes) == 600
    assert (kinds.count(("update", ("price",))), kinds.count(("update", ("stock",)))) == (40, 30)
    assert (kinds.count(("update", ("price", "stock"))), kinds.count(("delete", ()))) == (10, 10)
    new = [c for c in changes if c["op"] == "create"]
    _drop_item_name(new[0]["payloads"][0]["attributes"])  # Amazon refuses this message
    lost_in_seller_central = changes[0]["sku_id"]  # a price patch for a listing deleted by hand

    async def scenario(a: Amazon) -> None:
        await a.send_all(live)
        del a.standin.items[lost_in_seller_central]
        outcomes = await a.connector.apply_in_bulk(a.client, await a.headers(), changes)
        assert set(outcomes) == {c["sku_id"] for c in changes}
        failed = {sku: r.error for sku, r in outcomes.items() if not r.ok}
        late = a.standin.late_failures & set(outcomes)
        assert late, "the seeded share of accepted listings refused later"
        assert set(failed) == {new[0]["sku_id"], lost_in_seller_central} | late
        assert "'[item_name]' is required but not supplied." in (failed[new[0]["sku_id"]] or "")
        assert "does not exist" in (failed[lost_in_seller_central] or "")
        assert all("8541" in (failed[sku] or "") for sku in late)
        assert not any(r.retryable or r.pending for r in outcomes.values())
        # Amazon now holds what the plan showed.
        created = new[1]
        assert a.standin.items[created["sku_id"]]["attributes"] == wire(created["payloads"][0]["attributes"])
        repriced = changes[1]
        offer = repriced["payloads"][0]["patches"][0]["value"]
        assert a.standin.items[repriced["sku_id"]]["attributes"]["purchasable_offer"] == wire(offer)
        assert not set(live_ids[80:90]) & set(a.standin.items)
        # One feed: a document, its upload, the feed, a few polls, the report.
        assert a.standin.requests["POST /feeds/2021-06-30/feeds"] == 1
        assert a.connector.last_bulk_requests == 7

    run(scenario, standin(accepted_then_invalid_rate=0.01, seed=5))


def test_a_fatal_feed_fails_every_change_for_good() -> None:
    changes = creates(5)

    async def scenario(a: Amazon) -> None:
        outcomes = await a.connector.apply_in_bulk(a.client, await a.headers(), changes)
        assert {sku for sku, r in outcomes.items() if not r.ok and not r.retryable} == {
            c["sku_id"] for c in changes
        }
        assert all("ended FATAL" in (r.error or "") for r in outcomes.values())
        assert not a.standin.items

    run(scenario, standin(fatal_feed_rate=1.0))


def test_a_feed_rides_out_throttling_server_errors_and_dropped_connections() -> None:
    changes = creates(20)

    async def scenario(a: Amazon) -> None:
        headers = await a.headers()
        a.standin.faults = Faults(error_rate=0.2, throttle_rate=0.2, drop_rate=0.1, seed=1)
        outcomes = await a.connector.apply_in_bulk(a.client, headers, changes)
        assert all(r.ok for r in outcomes.values()) and len(outcomes) == 20
        assert a.connector.last_bulk_requests > 7  # the retries are counted

    run(scenario)


def test_a_feed_still_processing_at_the_deadline_is_sent_again() -> None:
    async def scenario(a: Amazon) -> None:
        outcomes = await a.connector.apply_in_bulk(a.client, await a.headers(), creates(3))
        assert all((r.ok, r.retryable) == (False, True) for r in outcomes.values())
        assert all("still IN_PROGRESS" in (r.error or "") for r in outcomes.values())

    run(scenario, standin(feed_polls=5), connector(feed_timeout_seconds=0))


def test_the_feed_document_and_report_match_amazons_schemas() -> None:
    if not SPECS.is_dir():
        pytest.skip(f"{SPECS} not found: the schemas are the public Amazon references")
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema validates against the published schemas"
    )
    changes = creates(20)
    _drop_item_name(changes[3]["payloads"][0]["attributes"])

    async def scenario(a: Amazon) -> None:
        await a.connector.apply_in_bulk(a.client, await a.headers(), changes)
        uploaded = [d["content"] for d in a.standin.documents.values() if d["contentType"].endswith("UTF-8")]
        reports = [
            d["content"] for d in a.standin.documents.values() if d["contentType"] == "application/json"
        ]
        checks = {"listings-feed-schema-v2.json": uploaded[0]}
        checks["listings-feed-processing-report-schema-v2.json"] = reports[0]
        for schema, content in checks.items():
            validator = jsonschema.Draft7Validator(json.loads((SPECS / schema).read_text("utf-8")))
            assert [e.message for e in validator.iter_errors(json.loads(content))] == []

    run(scenario)


def test_the_standins_listings_answers_match_the_listings_items_model() -> None:
    if not SPECS.is_dir():
        pytest.skip(f"{SPECS} not found: the models are the public Amazon references")
    jsonschema = pytest.importorskip(
        "jsonschema", reason="jsonschema validates against the published schemas"
    )
    definitions = json.loads((SPECS / "listingsItems_2021-08-01.json").read_text("utf-8"))["definitions"]

    def errors(definition: str, response: httpx.Response) -> list[str]:
        validator = jsonschema.Draft4Validator(
            {"definitions": definitions, "$ref": f"#/definitions/{definition}"}
        )
        return [error.message for error in validator.iter_errors(response.json())]

    good, bad = creates(2)
    _drop_item_name(bad["payloads"][0]["attributes"])

    async def scenario(a: Amazon) -> None:
        headers = {**await a.headers(), "content-type": "application/json"}
        for change in (good, bad):
            [call] = a.connector.calls_for(change, None)
            response = await a.client.put(
                call.path, params=call.params, content=dumps(call.body), headers=headers
            )
            assert errors("ListingsItemSubmissionResponse", response) == []
        path = a.connector.calls_for(good, None)[0].path
        query = {**a.connector.query, "includedData": "summaries,attributes,issues"}
        assert errors("Item", await a.client.get(path, params=query, headers=headers)) == []
        missing = await a.client.get(path + "-missing", params=query, headers=headers)
        assert missing.status_code == 404 and errors("ErrorList", missing) == []

    run(scenario, standin(accepted_then_invalid_rate=1.0))
