"""The Meta connector against its catalog stand-in, in process: batches, handles, per-SKU outcomes,
price-only and stock-only updates, throttling, a refused token, reading the catalog back.

Changes are what the real planner saves for the bundled catalog and ``rules/facebook.yaml``, read
back from JSON as ``tradepost apply`` reads a plan; ``apply_in_bulk`` is driven as the executor
drives it.
"""

from __future__ import annotations

import asyncio
import dataclasses
from collections.abc import Awaitable, Callable, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest

import engine
from engine.connectors import CallResult, ChangeRecord, Credentials
from engine.jsonio import dumps, loads
from engine.model import Listing
from engine.sync._plan import Change, Op, Planner, UpdateKind
from engine.sync._planfile import change_record
from engine.sync._source import FileSource
from marketplaces.meta import MetaConnector, _batches, _readback, plain_text, price_text
from marketplaces.meta._graph import GraphSender
from marketplaces.meta._readback import amount
from marketplaces.meta.standin import SANDBOX_ACCESS_TOKEN, SANDBOX_CATALOG_ID, MetaStandin

ROOT = Path(__file__).resolve().parent.parent
TOKEN = {"access_token": SANDBOX_ACCESS_TOKEN}
FAST = {"poll_seconds": "0.001", "retry_seconds": "0.001", "batch_calls_per_minute": "6000"}
T = TypeVar("T")


@dataclasses.dataclass
class Planned:
    """The bundled catalog planned for Meta with no state: every SKU is a create."""

    options: dict[str, Any]
    creates: dict[str, Change]

    def connector(self, **options: str) -> MetaConnector:
        return MetaConnector({**self.options, **FAST, **options})

    def saved(self, change: Change) -> ChangeRecord:
        return ChangeRecord.of(loads(dumps(change_record(change, self.connector()))))

    def all_creates(self) -> list[ChangeRecord]:
        return [self.saved(change) for change in self.creates.values()]

    def on_sale(self) -> Listing:
        return next(
            c.listing
            for c in self.creates.values()
            if c.listing is not None and c.listing.sale_price is not None and c.listing.quantity > 0
        )

    def change(self, op: Op, sku_id: str, kinds: tuple[UpdateKind, ...] = (), **listing: Any) -> ChangeRecord:
        after = self.creates[sku_id].listing
        assert after is not None
        changed = dataclasses.replace(after, **listing) if op != "delete" else None
        return self.saved(Change(op, sku_id, "facebook", kinds, changed))


@pytest.fixture(scope="module")
def planned() -> Planned:
    compiled = engine.compile_rules(ROOT / "rules" / "facebook.yaml")
    options = dict(compiled.rules.options)
    planner = Planner(compiled, MetaConnector(options))
    changes = planner.changes(FileSource(ROOT / "examples" / "catalog.jsonl"))
    return Planned(options, {c.sku_id: c for c in changes if c.op == "create"})


def run(scenario: Callable[[httpx.AsyncClient], Awaitable[T]], standin: MetaStandin) -> T:
    async def main() -> T:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://graph.test") as client:
            return await scenario(client)

    return asyncio.run(main())


def apply(
    connector: MetaConnector,
    standin: MetaStandin,
    changes: Sequence[ChangeRecord],
    token: str = SANDBOX_ACCESS_TOKEN,
) -> dict[str, CallResult]:
    async def scenario(client: httpx.AsyncClient) -> dict[str, CallResult]:
        headers = await connector.auth_headers(client, Credentials({"access_token": token}))
        return await connector.apply_in_bulk(client, headers, changes)

    return run(scenario, standin)


def sent_batches(standin: MetaStandin) -> list[dict[str, Any]]:
    return [loads(body) for call, body in standin.bodies if call.endswith("/items_batch")]


# -- creating ------------------------------------------------------------------------------------


def test_every_create_of_the_bundled_plan_is_one_upsert_in_one_batch_and_lands_as_planned(
    planned: Planned,
) -> None:
    standin, connector = MetaStandin(), planned.connector()
    changes = planned.all_creates()
    outcomes = apply(connector, standin, changes)
    assert len(changes) > 300
    assert {sku for sku, result in outcomes.items() if not result.ok} == set()
    (batch,) = sent_batches(standin)
    assert (batch["item_type"], batch["allow_upsert"], batch["item_sub_type"]) == (
        "PRODUCT_ITEM",
        True,
        "CLOTHING",
    )
    assert {entry["method"] for entry in batch["requests"]} == {"UPDATE"}  # upserts: safe to send again
    # One items_batch, then the handle checked until finished (in progress once, then finished).
    assert connector.last_bulk_requests == 3
    for change in changes:
        data = change.payloads[0]["data"]
        assert standin.item(change.sku_id) == {k: v for k, v in data.items() if v not in ("", [])}


def test_an_item_sent_twice_is_still_one_item(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    changes = planned.all_creates()[:20]
    apply(connector, standin, changes)
    apply(connector, standin, changes)
    assert sorted(standin.items) == sorted(c.sku_id for c in changes)


def test_batches_hold_at_most_2999_requests_and_a_sku_never_spans_two() -> None:
    items = [
        (str(n), [{"method": "UPDATE", "data": {"id": str(n)}}] * (2 if n % 3 == 0 else 1))
        for n in range(7000)
    ]
    batches = _batches.packed(items)
    assert [sum(len(e) for _, e in b) <= 2999 for b in batches] == [True] * len(batches)
    assert [sku for batch in batches for sku, _ in batch] == [sku for sku, _ in items]
    assert len(batches) == 4  # 9,333 requests


def test_batches_also_stay_under_the_byte_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_batches, "BATCH_MAX_BYTES", 1000)
    items = [(str(n), [{"method": "UPDATE", "data": {"id": str(n), "title": "x" * 300}}]) for n in range(10)]
    batches = _batches.packed(items)
    assert len(dumps(items[0][1][0])) + 1 == 355  # so two entries fit in 1,000 bytes, not three
    assert [len(b) for b in batches] == [2, 2, 2, 2, 2]


# -- updates -------------------------------------------------------------------------------------


def test_a_price_change_sends_price_and_sale_price_only_and_an_ended_sale_clears_it(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    listing = planned.on_sale()
    apply(connector, standin, [planned.saved(planned.creates[listing.sku_id])])
    title = standin.item(listing.sku_id)["title"]
    change = planned.change("update", listing.sku_id, ("price",), price=Decimal("120.00"), sale_price=None)
    assert change.payloads == (
        {"method": "UPDATE", "data": {"id": listing.sku_id, "price": "120.00 BRL", "sale_price": ""}},
    )
    assert apply(connector, standin, [change])[listing.sku_id].ok
    item = standin.item(listing.sku_id)
    assert (item["price"], "sale_price" in item, item["title"]) == ("120.00 BRL", False, title)


def test_a_stock_change_sends_availability_and_inventory_only(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    listing = planned.on_sale()
    apply(connector, standin, [planned.saved(planned.creates[listing.sku_id])])
    change = planned.change("update", listing.sku_id, ("stock",), quantity=0)
    assert change.payloads[0]["data"] == {
        "id": listing.sku_id,
        "availability": "out of stock",
        "inventory": 0,
    }
    apply(connector, standin, [change])
    assert (standin.item(listing.sku_id)["availability"], standin.item(listing.sku_id)["inventory"]) == (
        "out of stock",
        0,
    )


def test_price_and_stock_changed_together_are_one_entry(planned: Planned) -> None:
    listing = planned.on_sale()
    change = planned.change("update", listing.sku_id, ("price", "stock"), price=Decimal("99.00"), quantity=3)
    assert len(planned.connector().entries(change)) == 1
    assert set(change.payloads[0]["data"]) == {"id", "price", "sale_price", "availability", "inventory"}


def test_a_content_change_clears_the_optional_fields_the_listing_lost(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    listing = planned.on_sale()
    apply(connector, standin, [planned.saved(planned.creates[listing.sku_id])])
    assert "gtin" in standin.item(listing.sku_id)
    fields = {k: v for k, v in listing.fields.items() if k != "gtin"}
    apply(connector, standin, [planned.change("update", listing.sku_id, ("content",), fields=fields)])
    assert "gtin" not in standin.item(listing.sku_id)


def test_a_delete_removes_the_item_and_a_second_delete_is_done_too(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    sku = planned.on_sale().sku_id
    apply(connector, standin, [planned.saved(planned.creates[sku])])
    for _ in range(2):
        assert apply(connector, standin, [planned.change("delete", sku)])[sku].ok
        assert sku not in standin.items


# -- refusals ------------------------------------------------------------------------------------


def test_an_entry_meta_refuses_fails_its_sku_with_metas_words_and_the_rest_lands(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    good, bad = planned.all_creates()[:2]
    broken = dataclasses.replace(
        bad, payloads=({"method": "UPDATE", "data": {**bad.payloads[0]["data"], "price": "89,90"}},)
    )
    outcomes = apply(connector, standin, [good, broken])
    assert outcomes[good.sku_id].ok
    assert not outcomes[bad.sku_id].ok and not outcomes[bad.sku_id].retryable
    assert "price '89,90' must be an amount and an ISO 4217 currency" in str(outcomes[bad.sku_id].error)
    assert bad.sku_id not in standin.items


def test_an_entry_refused_at_once_in_validation_status_fails_without_waiting(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    good, bad = planned.all_creates()[:2]
    broken = dataclasses.replace(bad, payloads=({"method": "UPSERT", "data": bad.payloads[0]["data"]},))
    outcomes = apply(connector, standin, [good, broken])
    assert outcomes[good.sku_id].ok
    assert "method must be CREATE, UPDATE or DELETE" in str(outcomes[bad.sku_id].error)


def test_a_refused_token_fails_the_batch_without_retry_and_without_repeating_the_token(
    planned: Planned,
) -> None:
    standin, connector = MetaStandin(), planned.connector()
    changes = planned.all_creates()[:3]
    wrong = "EAAwrong-token-value-123"
    outcomes = apply(connector, standin, changes, token=wrong)
    for result in outcomes.values():
        assert not result.ok and not result.retryable
        assert "(#190)" in str(result.error) and "create a new system user token" in str(result.error)
        assert wrong not in str(result.error)
    assert standin.total_requests() == 1


def test_a_batch_still_processing_at_the_timeout_fails_retryable(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector(batch_timeout_seconds="0.01")
    standin.polls_to_finish, standin.finish_seconds = 10**6, 10**6
    outcomes = apply(connector, standin, planned.all_creates()[:2])
    for result in outcomes.values():
        assert not result.ok and result.retryable and "still processing" in str(result.error)


def test_server_errors_and_dropped_connections_are_retried(planned: Planned) -> None:
    from marketplaces._standin import Faults

    standin = MetaStandin(faults=Faults(error_rate=0.3, drop_rate=0.2, seed=3))
    connector = planned.connector(max_attempts="12")
    outcomes = apply(connector, standin, planned.all_creates()[:30])
    assert all(result.ok for result in outcomes.values())
    assert connector.last_bulk_retries > 0


# -- Meta's rate limits --------------------------------------------------------------------------


class FakeTime:
    def __init__(self) -> None:
        self.now = 1000.0
        self.slept: list[float] = []

    def clock(self) -> float:
        return self.now

    async def sleep(self, seconds: float) -> None:
        self.slept.append(seconds)
        self.now += seconds


def throttling_run(planned: Planned, **options: str) -> tuple[MetaStandin, GraphSender, FakeTime]:
    """Three batches, one each, to a catalog that allows two batch calls a minute, while the
    connector believes in 6,000 (its ``options`` aside)."""
    time = FakeTime()
    standin = MetaStandin(batch_calls_per_minute=2, clock=time.clock)
    connector = planned.connector(**options)
    items = [(c.sku_id, connector.entries(c)) for c in planned.all_creates()[:3]]

    async def scenario(client: httpx.AsyncClient) -> GraphSender:
        headers = await connector.auth_headers(client, Credentials(dict(TOKEN)))
        sender = GraphSender(client, connector.pacing, headers, sleep=time.sleep, clock=time.clock)
        for item in items:
            outcomes = await _batches.run_batches(connector, sender, [item])
            assert all(result.ok for result in outcomes.values())
        return sender

    return standin, run(scenario, standin), time


def test_a_budget_the_usage_header_says_is_spent_is_waited_for_before_the_next_call(planned: Planned) -> None:
    standin, sender, time = throttling_run(planned)
    assert (standin.refused_for_usage, sender.throttled, standin.batch_calls) == (0, 0, 3)
    assert max(time.slept) >= 59  # call_count 100%: a minute's pause, then the third call passes


def test_a_throttled_call_is_sent_again_once_the_regain_time_has_passed(planned: Planned) -> None:
    """With the usage header's warning ignored (ceiling above 100%), the third call is refused with
    code 80014 and ``estimated_time_to_regain_access`` of a minute; it is sent again after it."""
    standin, sender, time = throttling_run(planned, usage_ceiling="101")
    assert (standin.refused_for_usage, sender.throttled, standin.batch_calls) == (1, 1, 3)
    assert max(time.slept) >= 59


def test_batch_calls_are_spaced_at_the_declared_budget(planned: Planned) -> None:
    time = FakeTime()
    standin = MetaStandin(clock=time.clock)
    connector = planned.connector(batch_calls_per_minute="8")
    items = [(c.sku_id, connector.entries(c)) for c in planned.all_creates()[:3]]

    async def scenario(client: httpx.AsyncClient) -> float:
        headers = await connector.auth_headers(client, Credentials(dict(TOKEN)))
        sender = GraphSender(client, connector.pacing, headers, sleep=time.sleep, clock=time.clock)
        start = time.now
        for item in items:
            await _batches.run_batches(connector, sender, [item])
        return time.now - start

    assert run(scenario, standin) >= 2 * 7.5  # three calls at 8 a minute: two gaps of 7.5 s
    assert standin.refused_for_usage == 0


def test_a_wait_past_the_budget_fails_the_batch_as_retryable_without_sending(planned: Planned) -> None:
    time = FakeTime()
    standin = MetaStandin(clock=time.clock)
    connector = planned.connector(max_wait_seconds="30")
    items = [(c.sku_id, connector.entries(c)) for c in planned.all_creates()[:1]]

    async def scenario(client: httpx.AsyncClient) -> dict[str, CallResult]:
        headers = await connector.auth_headers(client, Credentials(dict(TOKEN)))
        sender = GraphSender(client, connector.pacing, headers, sleep=time.sleep, clock=time.clock)
        sender.resume_at = time.now + 3600  # the usage header said: an hour to regain access
        return await _batches.run_batches(connector, sender, items)

    (result,) = run(scenario, standin).values()
    assert not result.ok and result.retryable and "throttled for another 60 min" in str(result.error)
    assert standin.total_requests() == 0


# -- reading back ----------------------------------------------------------------------------------


def test_the_catalog_read_back_matches_what_was_sent(
    planned: Planned, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_readback, "PAGE_SIZE", 7)  # several pages
    standin, connector = MetaStandin(), planned.connector()
    changes = planned.all_creates()[:30]
    apply(connector, standin, changes)
    standin.items["feed-1"] = {"id": "feed-1", "title": "from a feed"}
    standin.item_ids["feed-1"] = "1"

    async def scenario(client: httpx.AsyncClient) -> tuple[list[Any], int]:
        reader = connector.open_reader(client, Credentials(dict(TOKEN)))
        found = [remote async for remote in connector.read_back(reader)]
        return found, reader.requests

    original = standin._read
    monkeypatch.setattr(
        standin,
        "_read",
        lambda rid: {**original(rid), **({"product_feed": {"id": "9"}} if rid == "feed-1" else {})},
    )
    found, requests = run(scenario, standin)
    assert requests == 5  # 31 items, 7 a page
    by_sku = {remote.sku_id: remote for remote in found}
    assert set(by_sku) == {c.sku_id for c in changes}  # the feed's item is not Tradepost's
    for change in changes:
        listing = Listing.from_dict(dict(change.after or {}))
        assert connector.remote_differences(listing, by_sku[change.sku_id], [listing]) == ()


@pytest.mark.parametrize(
    ("shown", "value"),
    [
        ("89.90 BRL", "89.90"),
        ("R$89,90", "89.90"),
        ("R$1.234,50", "1234.50"),
        ("BRL 1,234.50", "1234.50"),
        ("$10", "10"),
        ("R$1.234", "1234"),
        ("", None),
        ("free", None),
    ],
)
def test_display_prices_are_read_or_left_unknown(shown: str, value: str | None) -> None:
    assert amount(shown) == (Decimal(value) if value else None)


# -- requirements and bodies -----------------------------------------------------------------------


def test_meta_requires_a_brand_a_description_a_link_and_known_attributes(planned: Planned) -> None:
    listing = planned.on_sale()
    fields = {k: v for k, v in listing.fields.items() if k not in ("brand", "link", "description")}
    fields["attributes"] = {**listing.attributes, "voltage": "220V", "gender": "Masculino"}
    broken = dataclasses.replace(listing, fields=fields)
    reasons = {(r.code, r.rule) for r in MetaConnector({"catalog_id": "1"}).check(broken)}
    assert reasons == {
        ("TP911", "listing.description"),
        ("TP913", "listing.brand"),
        ("TP916", "listing.link"),
        ("TP914", "listing.attributes.voltage"),
        ("TP914", "listing.attributes.gender"),
    }
    assert MetaConnector({"catalog_id": "1"}).check(listing) == []


def test_prices_are_feed_strings_and_descriptions_plain_text() -> None:
    assert price_text(Decimal("89.9"), "BRL") == "89.90 BRL"
    assert price_text(Decimal("1234"), "BRL") == "1234.00 BRL"
    with pytest.raises(ValueError, match="two decimal places"):
        price_text(Decimal("1.005"), "BRL")
    assert plain_text("<p>Tênis &amp; meia.</p><ul><li>Couro</li></ul>") == "Tênis & meia.\nCouro"


def test_the_access_token_travels_in_a_header_never_in_the_url(planned: Planned) -> None:
    standin, connector = MetaStandin(), planned.connector()
    apply(connector, standin, planned.all_creates()[:1])
    assert all(SANDBOX_ACCESS_TOKEN not in call for call in standin.requests)
    assert SANDBOX_CATALOG_ID in next(iter(standin.requests))
