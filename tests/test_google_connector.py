"""The Google connector against its Merchant API stand-in, in process: token, insert, masked patches, errors.

Changes are what the real planner saves for the bundled catalog and ``rules/google.yaml``,
read back from JSON as ``tradepost apply`` reads a plan; the hooks are driven one by one, as
the executor drives them: ``auth_headers``, ``calls_for``, send, ``result_of``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Awaitable, Callable
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import pytest

import engine
from engine.jsonio import dumps, loads
from engine.sync._plan import Change, Op, Planner, UpdateKind
from engine.sync._planfile import change_record
from engine.sync._source import FileSource
from marketplaces._standin import Faults
from marketplaces.google import GoogleConnector, TokenError
from marketplaces.google.standin import GoogleStandin
from tests import _harness as harness

ROOT = Path(__file__).resolve().parent.parent
SECRETS = {
    "client_id": "42.apps.googleusercontent.com",
    "client_secret": "s3cret-value",
    "refresh_token": "1//first",
}
ACCOUNT, DATA_SOURCE = "123456789", "987654321"  # rules/google.yaml's options
INSERT = f"/products/v1/accounts/{ACCOUNT}/productInputs:insert"
SOURCE = {"dataSource": f"accounts/{ACCOUNT}/dataSources/{DATA_SOURCE}"}
T = TypeVar("T")


# -- the plan --------------------------------------------------------------------------------------


@dataclasses.dataclass
class Planned:
    """The bundled catalog planned for Google with no state: every SKU is a create."""

    options: dict[str, Any]
    creates: dict[str, Change]

    def connector(self) -> GoogleConnector:
        return GoogleConnector(self.options)

    def saved(self, change: Change) -> dict[str, Any]:
        record: dict[str, Any] = loads(dumps(change_record(change, self.connector())))
        return record

    def on_sale(self) -> Change:
        """A SKU in stock with a sale price, so that price and stock patches both have work to do."""
        return next(
            c
            for c in self.creates.values()
            if c.listing is not None and c.listing.sale_price is not None and c.listing.quantity > 0
        )

    def change(
        self, op: Op, sku_id: str, kinds: tuple[UpdateKind, ...] = (), **listing: Any
    ) -> dict[str, Any]:
        after = self.creates[sku_id].listing
        assert after is not None
        changed = dataclasses.replace(after, **listing) if op != "delete" else None
        return self.saved(Change(op, sku_id, "google", kinds, changed))


@pytest.fixture(scope="module")
def planned() -> Planned:
    compiled = engine.compile_rules(ROOT / "rules" / "google.yaml")
    options = {**compiled.rules.options, "token_url": "http://oauth.test"}
    planner = Planner(compiled, GoogleConnector(options))
    changes = planner.changes(FileSource(ROOT / "examples" / "catalog.jsonl"))
    return Planned(options, {c.sku_id: c for c in changes if c.op == "create"})


# -- the marketplace -------------------------------------------------------------------------------


Session = harness.Session[GoogleStandin, GoogleConnector]


def stand_in(**options: Any) -> GoogleStandin:
    """A stand-in that accepts exactly ``SECRETS``."""
    return GoogleStandin(SECRETS["client_id"], SECRETS["client_secret"], SECRETS["refresh_token"], **options)


def run(
    scenario: Callable[[Session], Awaitable[T]],
    connector: GoogleConnector,
    standin: GoogleStandin | None = None,
    secrets: dict[str, str] = SECRETS,
) -> T:
    return harness.drive(scenario, standin or stand_in(), connector, secrets)


def price(amount: str) -> dict[str, str]:
    return {"amountMicros": str(int(Decimal(amount) * 1_000_000)), "currencyCode": "BRL"}


# -- the token -------------------------------------------------------------------------------------


def test_the_token_comes_from_the_token_url_once_then_is_cached_until_a_minute_before_it_expires(
    planned: Planned,
) -> None:
    connector = planned.connector()
    now = [0.0]
    connector.token.clock = lambda: now[0]
    assert connector.token.url == "http://oauth.test/token"
    assert GoogleConnector({}).token.url == "https://oauth2.googleapis.com/token"
    standin = stand_in(token_lifetime=3599)

    async def scenario(s: Session) -> None:
        first = await s.connector.auth_headers(s.client, s.credentials)
        now[0] = 3599 - 61
        assert await s.connector.auth_headers(s.client, s.credentials) == first
        now[0] = 3599 - 60
        second = await s.connector.auth_headers(s.client, s.credentials)
        assert second != first and second["Authorization"].startswith("Bearer ya29.")
        assert standin.requests["POST /token"] == 2

    run(scenario, connector, standin)


def test_a_refused_refresh_says_why_without_repeating_the_secret(planned: Planned) -> None:
    async def scenario(s: Session) -> None:
        with pytest.raises(TokenError) as refused:
            await s.connector.auth_headers(s.client, s.credentials)
        assert "invalid_grant: Token has been expired or revoked." in str(refused.value)
        assert "1//stale" not in str(refused.value)

    run(scenario, planned.connector(), secrets={**SECRETS, "refresh_token": "1//stale"})


def test_a_revoked_token_is_retryable_and_the_retry_refreshes_it(planned: Planned) -> None:
    change = planned.on_sale()

    async def scenario(s: Session) -> None:
        assert (await s.one(planned.saved(change))).ok
        s.standin.revoke_tokens()
        update = planned.change("update", change.sku_id, ("stock",), quantity=0)
        refused = await s.one(update)
        assert (refused.ok, refused.retryable) == (False, True)
        assert (await s.one(update)).ok and s.standin.requests["POST /token"] == 2

    run(scenario, planned.connector())


# -- inserts ---------------------------------------------------------------------------------------


def test_a_create_inserts_the_product_input_into_the_data_source(planned: Planned) -> None:
    change = planned.on_sale()
    saved = planned.saved(change)

    async def scenario(s: Session) -> None:
        (call,) = s.connector.calls_for(saved, None)
        assert (call.method, call.path, call.params, call.kind) == ("POST", INSERT, SOURCE, "create")
        result, _ = await s.send(call)
        assert result.ok, result.error
        assert result.remote_id == s.connector.product_input_name(change.sku_id)
        assert s.standin.product_input(change.sku_id) == saved["payloads"][0]

    run(scenario, planned.connector())


def test_a_content_change_inserts_again_and_replaces_the_whole_input(planned: Planned) -> None:
    change = planned.on_sale()
    assert change.listing is not None
    fields = {**change.listing.fields, "title": "Novo título", "description": None}
    update = planned.change("update", change.sku_id, ("content",), fields=fields)

    async def scenario(s: Session) -> None:
        assert (await s.one(planned.saved(change))).ok
        assert [(c.method, c.kind) for c in s.connector.calls_for(update, None)] == [("POST", "content")]
        assert (await s.one(update)).ok
        stored = s.standin.product_input(change.sku_id)["productAttributes"]
        assert stored["title"] == "Novo título" and "description" not in stored
        assert len(s.standin.inputs) == 1

    run(scenario, planned.connector())


def test_an_offer_id_with_slashes_and_tildes_travels_in_the_encoded_name(planned: Planned) -> None:
    change = planned.on_sale()
    assert change.listing is not None
    odd = dataclasses.replace(change.listing, sku_id="SKU/1~a%b")
    saved = planned.saved(Change("create", odd.sku_id, "google", (), odd))
    stock = planned.saved(
        Change("update", odd.sku_id, "google", ("stock",), dataclasses.replace(odd, quantity=0))
    )

    async def scenario(s: Session) -> None:
        created = await s.one(saved)
        assert created.ok and created.remote_id is not None and "~" not in created.remote_id
        assert (await s.one(stock, created.remote_id)).ok
        assert s.standin.product_input("SKU/1~a%b")["productAttributes"]["availability"] == "OUT_OF_STOCK"

    run(scenario, planned.connector())


# -- patches ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kinds", "listing", "mask", "expected"),
    [
        (
            ("price",),
            {"price": Decimal("199.90")},
            "productAttributes.price,productAttributes.salePrice",
            {"price": price("199.90")},
        ),
        (("stock",), {"quantity": 0}, "productAttributes.availability", {"availability": "OUT_OF_STOCK"}),
        (
            ("price", "stock"),
            {"price": Decimal("199.90"), "sale_price": None, "quantity": 0},
            "productAttributes.price,productAttributes.salePrice,productAttributes.availability",
            {"price": price("199.90"), "salePrice": None, "availability": "OUT_OF_STOCK"},
        ),
    ],
    ids=["price", "stock", "price and stock"],
)
def test_a_price_or_stock_change_is_one_patch_whose_mask_names_only_what_it_changes(
    planned: Planned,
    kinds: tuple[UpdateKind, ...],
    listing: dict[str, Any],
    mask: str,
    expected: dict[str, Any],
) -> None:
    change = planned.on_sale()
    update = planned.change("update", change.sku_id, kinds, **listing)

    async def scenario(s: Session) -> None:
        assert (await s.one(planned.saved(change))).ok
        before = dict(s.standin.product_input(change.sku_id)["productAttributes"])
        (call,) = s.connector.calls_for(update, None)
        name = s.connector.product_input_name(change.sku_id)
        assert (call.method, call.path, call.params) == (
            "PATCH",
            f"/products/v1/{name}",
            {**SOURCE, "updateMask": mask},
        )
        assert set(call.body["productAttributes"]) <= {"price", "salePrice", "availability"}
        result, _ = await s.send(call)
        assert result.ok, result.error
        after = s.standin.product_input(change.sku_id)["productAttributes"]
        wanted = {**before, **expected}
        assert after == {key: value for key, value in wanted.items() if value is not None}

    run(scenario, planned.connector())


def test_a_delete_removes_the_input_and_a_second_delete_is_already_done(planned: Planned) -> None:
    change = planned.on_sale()
    delete = planned.change("delete", change.sku_id)

    async def scenario(s: Session) -> None:
        assert (await s.one(planned.saved(change))).ok
        (call,) = s.connector.calls_for(delete, None)
        assert (call.method, call.params, call.body) == ("DELETE", SOURCE, None)
        assert (await s.one(delete)).ok and s.standin.inputs == {}
        result, response = await s.send(call)
        assert response.status_code == 404 and result.ok

    run(scenario, planned.connector())


# -- errors ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "value", "message"),
    [
        (
            ("productAttributes", "title"),
            "T" * 151,
            "[productAttributes.title] is 151 characters; the maximum is 150",
        ),
        (
            ("productAttributes", "price"),
            {"amountMicros": "1.5", "currencyCode": "BRL"},
            "[productAttributes.price].amountMicros must be an integer (micros), got '1.5'",
        ),
        (
            ("productAttributes", "price"),
            {"amountMicros": "1500000", "currencyCode": "real"},
            "currencyCode must be an ISO 4217 code",
        ),
        (
            ("productAttributes", "availability"),
            "in stock",
            "Invalid value 'in stock'; expected one of IN_STOCK",
        ),
        (
            ("productAttributes", "colour"),
            "Azul",
            "Unknown name 'colour' at 'product_input.product_attributes'",
        ),
        (("offerId",), "", "[offerId] Required field is missing."),
        (("feedLabel",), "br", "[feedLabel] 'br' must be 1 to 20 of A-Z, 0-9, '-' and '_'"),
    ],
)
def test_a_refused_insert_is_not_retryable_and_carries_googles_message(
    planned: Planned, path: tuple[str, ...], value: Any, message: str
) -> None:
    saved = planned.saved(planned.on_sale())
    target = saved["payloads"][0]
    for key in path[:-1]:
        target = target[key]
    target[path[-1]] = value

    async def scenario(s: Session) -> None:
        result = await s.one(saved)
        assert (result.ok, result.retryable) == (False, False)
        assert result.error is not None and result.error.startswith("400 INVALID_ARGUMENT: ")
        assert message in result.error
        assert s.standin.inputs == {}

    run(scenario, planned.connector())


@pytest.mark.parametrize(
    ("params", "status", "message"),
    [
        ({"updateMask": "productAttributes.price.amountMicros"}, 400, "Invalid field path"),
        ({"updateMask": "productAttributes.colour"}, 400, "Invalid field path"),
        ({"updateMask": ""}, 400, "name the fields to update"),
        ({"dataSource": "accounts/123456789/dataSources/1"}, 400, "is not an API data source"),
    ],
)
def test_a_patch_must_name_real_fields_and_the_data_source(
    planned: Planned, params: dict[str, str], status: int, message: str
) -> None:
    change = planned.on_sale()
    update = planned.change("update", change.sku_id, ("stock",), quantity=0)

    async def scenario(s: Session) -> None:
        assert (await s.one(planned.saved(change))).ok
        (call,) = s.connector.calls_for(update, None)
        result, response = await s.send(dataclasses.replace(call, params={**(call.params or {}), **params}))
        assert response.status_code == status and not result.retryable and message in str(result.error)

    run(scenario, planned.connector())


def test_patching_an_unknown_input_is_not_found_and_not_retried(planned: Planned) -> None:
    update = planned.change("update", planned.on_sale().sku_id, ("stock",), quantity=0)

    async def scenario(s: Session) -> None:
        result = await s.one(update)
        assert (result.ok, result.retryable) == (False, False)
        assert str(result.error).startswith(
            "404 NOT_FOUND: Product input accounts/123456789/productInputs/pt~BR~"
        )

    run(scenario, planned.connector())


@pytest.mark.parametrize(
    ("faults", "status", "name"),
    [(Faults(error_rate=1.0), 500, "INTERNAL"), (Faults(throttle_rate=1.0), 429, "RESOURCE_EXHAUSTED")],
)
def test_throttling_and_server_errors_are_retryable(
    planned: Planned, faults: Faults, status: int, name: str
) -> None:
    saved = planned.saved(planned.on_sale())

    async def scenario(s: Session) -> None:
        await s.connector.auth_headers(s.client, s.credentials)
        s.standin.faults = faults
        result = await s.one(saved)
        assert (result.ok, result.retryable) == (False, True)
        assert str(result.error).startswith(f"{status} {name}: ")

    run(scenario, planned.connector())


def test_every_create_of_the_bundled_plan_is_accepted(planned: Planned) -> None:
    async def scenario(s: Session) -> list[str]:
        results = [await s.one(planned.saved(change)) for change in planned.creates.values()]
        return [str(r.error) for r in results if not r.ok]

    assert run(scenario, planned.connector()) == []
