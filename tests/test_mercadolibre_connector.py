"""The Mercado Libre connector against its stand-in, in process: token, creates, cheapest updates, errors.

Changes are what the real planner saves for the bundled catalog and rule file
(``change_record``, read back from JSON as ``tradepost apply`` reads a plan); the hooks are
driven one by one, as the executor drives them: ``auth_headers``, ``calls_for``, send,
``result_of``.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import engine
from engine._diagnostics import TradepostError
from engine.connectors import Call
from engine.jsonio import dumps, loads
from engine.sync._plan import Change, Planner, UpdateKind
from engine.sync._planfile import change_record
from engine.sync._source import FileSource
from marketplaces._standin import Faults
from marketplaces.mercadolibre import MercadoLibreConnector, TokenError, variation_ids
from marketplaces.mercadolibre.standin import MercadoLibreStandin
from tests import _harness as harness

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {"client_id": "5501", "client_secret": "s3cret-value", "refresh_token": "TG-first"}
T = TypeVar("T")


# -- the plan --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Planned:
    """The bundled catalog planned for Mercado Libre with no state: every SKU is a create."""

    options: dict[str, Any]
    creates: dict[str, Change]

    def connector(self) -> MercadoLibreConnector:
        return MercadoLibreConnector(self.options)

    def saved(self, change: Change) -> dict[str, Any]:
        """The change as a saved plan holds it, read back the way ``tradepost apply`` reads it."""
        record: dict[str, Any] = loads(dumps(change_record(change, self.connector())))
        return record

    def single(self) -> Change:
        return next(c for c in self.creates.values() if not c.family)

    def family(self) -> list[Change]:
        leader = next(c for c in self.creates.values() if c.family and len(c.family) >= 3)
        assert leader.family is not None
        return [self.creates[member.sku_id] for member in leader.family]

    def update(self, sku_id: str, kinds: tuple[UpdateKind, ...], **listing: Any) -> dict[str, Any]:
        after = self.creates[sku_id].listing
        assert after is not None
        return self.saved(
            Change("update", sku_id, "mercadolibre", kinds, dataclasses.replace(after, **listing))
        )

    def delete(self, sku_id: str) -> dict[str, Any]:
        return self.saved(Change("delete", sku_id, "mercadolibre"))


@pytest.fixture(scope="module")
def planned() -> Planned:
    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    options = dict(compiled.rules.options)
    planner = Planner(compiled, MercadoLibreConnector(options))
    changes = planner.changes(FileSource(ROOT / "examples" / "catalog.jsonl"))
    return Planned(options, {c.sku_id: c for c in changes if c.op == "create"})


# -- the marketplace -------------------------------------------------------------------------------


Session = harness.Session[MercadoLibreStandin, MercadoLibreConnector]


def stand_in(**options: Any) -> MercadoLibreStandin:
    """A stand-in that accepts exactly ``SECRETS``."""
    return MercadoLibreStandin(
        SECRETS["client_id"], SECRETS["client_secret"], SECRETS["refresh_token"], **options
    )


def run(
    scenario: Callable[[Session], Awaitable[T]],
    connector: MercadoLibreConnector,
    standin: MercadoLibreStandin | None = None,
    secrets: dict[str, str] = SECRETS,
) -> T:
    return harness.drive(scenario, standin or stand_in(), connector, secrets)


def without(item: dict[str, Any], *keys: str) -> dict[str, Any]:
    return {key: value for key, value in item.items() if key not in keys}


# -- the token -------------------------------------------------------------------------------------


def test_the_token_is_refreshed_once_then_cached_until_a_minute_before_it_expires(planned: Planned) -> None:
    connector = planned.connector()
    now = [1000.0]
    connector.token.clock = lambda: now[0]
    standin = stand_in(token_lifetime=21600)

    async def scenario(s: Session) -> None:
        first = await s.connector.auth_headers(s.client, s.credentials)
        now[0] += 21600 - 61
        assert await s.connector.auth_headers(s.client, s.credentials) == first
        assert standin.requests["POST /oauth/token"] == 1
        now[0] += 1  # 60 s before expiry: refreshed, with the refresh token Mercado Libre rotated
        second = await s.connector.auth_headers(s.client, s.credentials)
        assert second != first and second["Authorization"].startswith("Bearer APP_USR-")
        assert standin.requests["POST /oauth/token"] == 2
        assert connector.refresh_token == standin.refresh_token != SECRETS["refresh_token"]
        assert (await s.send(Call("GET", "/users/me")))[0].ok

    run(scenario, connector, standin)


def test_concurrent_requests_share_one_refresh(planned: Planned) -> None:
    standin = stand_in()

    async def scenario(s: Session) -> None:
        headers = await asyncio.gather(*(s.connector.auth_headers(s.client, s.credentials) for _ in range(5)))
        assert len({h["Authorization"] for h in headers}) == 1
        assert standin.requests["POST /oauth/token"] == 1

    run(scenario, planned.connector(), standin)


def test_a_refused_refresh_says_why_without_repeating_the_secret(planned: Planned) -> None:
    async def scenario(s: Session) -> None:
        with pytest.raises(TokenError) as refused:
            await s.connector.auth_headers(s.client, s.credentials)
        assert "invalid_client" in str(refused.value)
        assert "wrong-secret" not in str(refused.value)

    run(scenario, planned.connector(), secrets={**SECRETS, "client_secret": "wrong-secret"})


def test_a_revoked_token_is_retryable_and_the_retry_refreshes_it(planned: Planned) -> None:
    change = planned.saved(planned.single())

    async def scenario(s: Session) -> None:
        item_id = (await s.create(change)).remote_id
        s.standin.revoke_tokens()
        call = Call("PUT", f"/items/{item_id}", {"available_quantity": 3}, kind="stock")
        refused, _ = await s.send(call)
        assert (refused.ok, refused.retryable) == (False, True)
        retried, _ = await s.send(call)
        assert retried.ok and s.standin.requests["POST /oauth/token"] == 2

    run(scenario, planned.connector())


# -- creates ---------------------------------------------------------------------------------------


def test_a_sku_of_its_own_is_created_as_one_item(planned: Planned) -> None:
    change = planned.single()
    listing = change.listing
    assert listing is not None
    saved = planned.saved(change)

    async def scenario(s: Session) -> None:
        calls = s.connector.calls_for(saved, None)
        assert [(c.method, c.path, c.kind) for c in calls] == [("POST", "/items", "create")]
        result = await s.create(saved)
        assert result.remote_id is not None and result.remote_id.startswith("MLB")
        item = s.standin.items[result.remote_id]
        assert (item["title"], item["price"], item["available_quantity"]) == (
            listing.title,
            listing.sale_price or listing.price,
            listing.quantity,
        )
        assert {"id": "SELLER_SKU", "value_name": change.sku_id} in item["attributes"]
        assert s.standin.descriptions[result.remote_id] == listing.fields["description"]

    run(scenario, planned.connector())


def test_a_family_is_one_item_whose_answer_names_each_skus_variation(planned: Planned) -> None:
    family = planned.family()
    leader, *followers = sorted(family, key=lambda c: c.sku_id)

    async def scenario(s: Session) -> None:
        assert all(s.connector.calls_for(planned.saved(f), None) == [] for f in followers)
        (call,) = s.connector.calls_for(planned.saved(leader), None)
        result, response = await s.send(call)
        assert result.ok, result.error
        assert result.remote_ids is not None and set(result.remote_ids) == {c.sku_id for c in family}
        assert result.remote_id == result.remote_ids[leader.sku_id]
        assert variation_ids(response) == result.remote_ids
        item_ids = {remote.partition("/")[0] for remote in result.remote_ids.values()}
        assert len(item_ids) == 1 and len(s.standin.items) == 1
        for member in family:
            assert member.listing is not None
            variation = s.standin.variation(result.remote_ids[member.sku_id])
            assert {"id": "SELLER_SKU", "value_name": member.sku_id} in variation["attributes"]
            assert variation["available_quantity"] == member.listing.quantity

    run(scenario, planned.connector())


def test_variations_are_told_apart_by_their_combination_when_the_answer_omits_their_attributes(
    planned: Planned,
) -> None:
    leader = min(planned.family(), key=lambda c: c.sku_id)
    (call,) = planned.connector().calls_for(planned.saved(leader), None)
    sent = call.body
    variations: list[dict[str, Any]] = [
        {"id": 10 + index, "attribute_combinations": variation["attribute_combinations"]}
        for index, variation in enumerate(sent["variations"])
    ]
    answer = {"id": "MLB1", "variations": variations}
    skus = [a["value_name"] for v in sent["variations"] for a in v["attributes"] if a["id"] == "SELLER_SKU"]
    assert variation_ids(answer, sent) == {sku: f"MLB1/{10 + index}" for index, sku in enumerate(skus)}
    assert variation_ids(answer) == {}
    # One variation that cannot be told: its SKU gets the bare item id, never a sibling's variation.
    variations[1]["attribute_combinations"] = [{"id": "COLOR", "value_name": "Unknown"}]
    result = planned.connector().read_result(call, httpx.Response(201, json=answer))
    assert result.remote_ids == {**{sku: f"MLB1/{10 + i}" for i, sku in enumerate(skus)}, skus[1]: "MLB1"}
    assert result.remote_id == "MLB1/10"


def test_a_lost_create_answer_finds_the_item_instead_of_listing_it_twice(planned: Planned) -> None:
    leader = min(planned.family(), key=lambda c: c.sku_id)
    saved = planned.saved(leader)

    async def scenario(s: Session) -> None:
        (call,) = s.connector.calls_for(saved, None)
        created, _ = await s.send(call)
        headers = await s.connector.auth_headers(s.client, s.credentials)
        found = await s.connector.find_existing(s.client, headers, call, saved)
        assert found is not None and found.ok
        assert (found.remote_id, found.remote_ids) == (created.remote_id, created.remote_ids)
        assert found.then and all(c.method == "PUT" for c in found.then)  # adopted, never POSTed again
        s.standin.items.clear()
        assert await s.connector.find_existing(s.client, headers, call, saved) is None

    run(scenario, planned.connector())


# -- updates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "listing", "sent"),
    [
        ("price", {"price": Decimal("999.90"), "sale_price": None}, {"price": Decimal("999.90")}),
        ("stock", {"quantity": 7}, {"available_quantity": 7}),
    ],
)
def test_a_price_or_stock_change_sends_and_changes_only_that(
    planned: Planned, kind: UpdateKind, listing: dict[str, Any], sent: dict[str, Any]
) -> None:
    change = planned.single()
    update = planned.update(change.sku_id, (kind,), **listing)

    async def scenario(s: Session) -> None:
        item_id = (await s.create(planned.saved(change))).remote_id
        assert item_id is not None
        before = dict(s.standin.items[item_id])
        assert s.connector.calls_for(update, item_id) == [Call("PUT", f"/items/{item_id}", sent, kind=kind)]
        assert all(r.ok for r in await s.apply(update, item_id))
        after = s.standin.items[item_id]
        field = next(iter(sent))
        assert after[field] == sent[field]
        assert without(after, field) == without(before, field)

    run(scenario, planned.connector())


@pytest.mark.parametrize(
    ("kind", "listing", "field"),
    [
        ("price", {"price": Decimal("1999.90"), "sale_price": None}, "price"),
        ("stock", {"quantity": 42}, "available_quantity"),
    ],
)
def test_a_price_or_stock_change_of_a_family_sku_changes_only_its_variation(
    planned: Planned, kind: UpdateKind, listing: dict[str, Any], field: str
) -> None:
    leader, member, *_ = sorted(planned.family(), key=lambda c: c.sku_id)
    update = planned.update(member.sku_id, (kind,), **listing)

    async def scenario(s: Session) -> None:
        remote_ids = (await s.create(planned.saved(leader))).remote_ids
        assert remote_ids is not None
        remote = remote_ids[member.sku_id]
        item_id, _, variation_id = remote.partition("/")
        siblings = {
            sku: dict(s.standin.variation(r)) for sku, r in remote_ids.items() if sku != member.sku_id
        }
        (call,) = s.connector.calls_for(update, remote)
        value = next(iter(listing.values()))
        assert call == Call(
            "PUT", f"/items/{item_id}", {"variations": [{"id": int(variation_id), field: value}]}, kind=kind
        )
        (result,) = await s.apply(update, remote)
        assert result.ok, result.error
        assert s.standin.variation(remote)[field] == value
        assert {
            sku: s.standin.variation(r) for sku, r in remote_ids.items() if sku != member.sku_id
        } == siblings

    run(scenario, planned.connector())


def test_an_item_with_variations_refuses_an_item_level_price(planned: Planned) -> None:
    leader = min(planned.family(), key=lambda c: c.sku_id)

    async def scenario(s: Session) -> None:
        result = await s.create(planned.saved(leader))
        item_id = str(result.remote_id).partition("/")[0]
        refused, _ = await s.send(Call("PUT", f"/items/{item_id}", {"price": Decimal("10")}))
        assert not refused.ok and not refused.retryable
        assert "the item has variations: change price per variation" in str(refused.error)

    run(scenario, planned.connector())


def test_a_content_change_sends_pictures_and_attributes_then_the_description_then_the_title(
    planned: Planned,
) -> None:
    change = planned.single()
    assert change.listing is not None
    fields = {
        **change.listing.fields,
        "title": "Panela Nova",
        "description": "Nova descrição",
        "images": ["https://img.example/new.jpg"],
    }
    update = planned.update(change.sku_id, ("content",), fields=fields)

    async def scenario(s: Session) -> None:
        item_id = (await s.create(planned.saved(change))).remote_id
        assert item_id is not None
        calls = s.connector.calls_for(update, item_id)
        assert [(c.method, c.path, sorted(c.body)) for c in calls] == [
            ("PUT", f"/items/{item_id}", ["attributes", "pictures"]),
            ("PUT", f"/items/{item_id}/description", ["plain_text"]),
            ("PUT", f"/items/{item_id}", ["title"]),
        ]
        assert all(r.ok for r in await s.apply(update, item_id))
        item = s.standin.items[item_id]
        assert item["title"] == "Panela Nova"
        assert [p["url"] for p in item["pictures"]] == ["https://img.example/new.jpg"]
        assert s.standin.descriptions[item_id] == "Nova descrição"

    run(scenario, planned.connector())


def test_once_the_item_has_sales_its_title_is_refused_after_the_rest_is_updated(planned: Planned) -> None:
    change = planned.single()
    assert change.listing is not None
    title = change.listing.title
    fields = {**change.listing.fields, "title": "Outro Título", "images": ["https://img.example/new.jpg"]}
    update = planned.update(change.sku_id, ("content",), fields=fields)

    async def scenario(s: Session) -> None:
        item_id = (await s.create(planned.saved(change))).remote_id
        assert item_id is not None
        s.standin.sell(item_id)
        *done, refused = await s.apply(update, item_id)
        assert all(r.ok for r in done) and len(done) == 2
        assert (refused.ok, refused.retryable) == (False, False)
        assert "title cannot be modified: the item has sales" in str(refused.error)
        item = s.standin.items[item_id]
        assert item["title"] == title
        assert [p["url"] for p in item["pictures"]] == ["https://img.example/new.jpg"]

    run(scenario, planned.connector())


# -- deletes ---------------------------------------------------------------------------------------


def test_a_delete_pauses_an_item_and_zeroes_a_variation_leaving_its_siblings_on_sale(
    planned: Planned,
) -> None:
    single = planned.single()
    leader, member, *_ = sorted(planned.family(), key=lambda c: c.sku_id)

    async def scenario(s: Session) -> None:
        item_id = (await s.create(planned.saved(single))).remote_id
        assert all(r.ok for r in await s.apply(planned.delete(single.sku_id), item_id))
        assert s.standin.items[str(item_id)]["status"] == "paused"

        remote_ids = (await s.create(planned.saved(leader))).remote_ids
        assert remote_ids is not None
        assert all(r.ok for r in await s.apply(planned.delete(member.sku_id), remote_ids[member.sku_id]))
        family_item = s.standin.items[remote_ids[member.sku_id].partition("/")[0]]
        assert family_item["status"] == "active"
        assert s.standin.variation(remote_ids[member.sku_id])["available_quantity"] == 0

    run(scenario, planned.connector())


def test_an_update_without_a_remote_id_is_an_error_not_a_request(planned: Planned) -> None:
    update = planned.update(planned.single().sku_id, ("stock",), quantity=1)
    with pytest.raises(TradepostError, match="no Mercado Libre item id"):
        planned.connector().calls_for(update, None)


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"title": "T" * 61}, "title has 61 characters; the maximum is 60"),
        ({"price": 0}, "price must be a number greater than 0"),
        ({"currency_id": "USD"}, "currency_id 'USD' is not accepted on site MLB; use BRL"),
        ({"available_quantity": -1}, "available_quantity must be an integer of at least 0"),
        ({"condition": "refurbished"}, "condition 'refurbished' is not one of new, used, not_specified"),
        ({"category_id": "MLA1055"}, "category_id 'MLA1055' is not a category of site MLB"),
        ({"pictures": []}, "at least one picture is required"),
        ({"attributes": [{"id": "BRAND"}]}, "attributes[0] must be {id, value_name | value_id}"),
        ({"listing_type": "gold"}, "field 'listing_type' is not a field of an item"),
        ({"buying_mode": None}, "buying_mode must be one of buy_it_now, classified, auction"),
    ],
)
def test_a_refused_create_is_not_retryable_and_carries_mercado_libres_message(
    planned: Planned, change: dict[str, Any], message: str
) -> None:
    saved = planned.saved(planned.single())
    saved["payloads"][0].update(change)

    async def scenario(s: Session) -> None:
        (result,) = await s.apply(saved)
        assert (result.ok, result.retryable) == (False, False)
        assert result.error is not None and result.error.startswith(
            "400 validation_error: Validation error; "
        )
        assert message in result.error
        assert s.standin.items == {}

    run(scenario, planned.connector())


@pytest.mark.parametrize(
    ("variations", "message"),
    [
        (lambda vs: [{**v, "price": v["price"] + i} for i, v in enumerate(vs)], "same price"),
        (
            lambda vs: [vs[0], {**vs[1], "attribute_combinations": vs[1]["attribute_combinations"][:1]}],
            "same attribute_combinations ids",
        ),
        (
            lambda vs: [vs[0], {**vs[1], "attribute_combinations": vs[0]["attribute_combinations"]}],
            "same attribute_combinations",
        ),
        (
            lambda vs: [{**vs[0], "picture_ids": ["https://elsewhere.example/x.jpg"]}],
            "are not pictures of the item",
        ),
    ],
)
def test_variations_are_checked_as_mercado_libre_documents_them(
    planned: Planned, variations: Callable[[list[dict[str, Any]]], list[dict[str, Any]]], message: str
) -> None:
    saved = planned.saved(min(planned.family(), key=lambda c: c.sku_id))
    body = saved["payloads"][0]
    body["variations"] = variations(body["variations"])

    async def scenario(s: Session) -> None:
        (result,) = await s.apply(saved)
        assert not result.ok and not result.retryable and message in str(result.error)

    run(scenario, planned.connector())


def test_an_unknown_item_is_not_found_and_not_retried(planned: Planned) -> None:
    update = planned.update(planned.single().sku_id, ("stock",), quantity=1)

    async def scenario(s: Session) -> None:
        (result,) = await s.apply(update, "MLB999")
        assert (result.ok, result.retryable) == (False, False)
        assert result.error == "404 not_found: Item with id MLB999 not found"

    run(scenario, planned.connector())


@pytest.mark.parametrize(
    ("faults", "status"), [(Faults(error_rate=1.0), 500), (Faults(throttle_rate=1.0), 429)]
)
def test_throttling_and_server_errors_are_retryable(planned: Planned, faults: Faults, status: int) -> None:
    update = planned.update(planned.single().sku_id, ("stock",), quantity=1)

    async def scenario(s: Session) -> None:
        await s.connector.auth_headers(s.client, s.credentials)
        s.standin.faults = faults
        (call,) = s.connector.calls_for(update, "MLB4000000001")
        result, response = await s.send(call)
        assert response.status_code == status
        assert (result.ok, result.retryable) == (False, True)
        assert response.json()["status"] == status and "cause" in response.json()

    run(scenario, planned.connector())


def test_the_stand_in_enforces_its_rate_limit_with_429_and_retry_after(planned: Planned) -> None:
    standin = stand_in(rate_limit=1.0, burst=2.0)

    async def scenario(s: Session) -> None:
        results = [await s.send(Call("GET", "/users/me")) for _ in range(2)]  # the token took one
        result, response = results[-1]
        assert response.status_code == 429 and float(response.headers["Retry-After"]) > 0
        assert result.retryable

    run(scenario, planned.connector(), standin)


def test_every_create_of_the_bundled_plan_is_accepted(planned: Planned) -> None:
    """Product 1000074 (a hair dryer) comes in 110V and 220V of the same colours: with VOLTAGE as an
    axis of rules/mercadolibre.yaml its variations differ, so Mercado Libre accepts the family."""

    async def scenario(s: Session) -> dict[str, str]:
        refused = {}
        for change in planned.creates.values():
            for result in await s.apply(planned.saved(change)):
                if not result.ok:
                    refused[change.sku_id] = str(result.error)
        return refused

    refused = run(scenario, planned.connector())
    assert refused == {}
