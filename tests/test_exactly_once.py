"""Exactly once against the marketplace, not against a local file.

The state store is a cache of what each marketplace holds. Deleted, truncated, or restored from
an old copy, then applied again: every SKU is held by exactly one listing on the stand-in, at
the planned price and quantity, and the next plan has nothing left to do. Mercado Libre gets
there by looking each SELLER_SKU up before ``POST /items`` and adopting what it finds (families
included: variations mapped to SKUs, a missing one added to the item); Amazon and Google by
keying their creates on the SKU (see their connectors' docstrings).
"""

from __future__ import annotations

import asyncio
import os
import shutil
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from bench.bench_kills import holdings
from engine.jsonio import dumps
from engine.project._apply import apply_records, planned_records
from engine.project._assembly import open_marketplace, open_state
from engine.project._config import load_project
from marketplaces.sandbox import Sandbox
from tests._harness import Loopback, run_apply, subset, write_project

MARKETPLACES = ("mercadolibre", "google", "amazon", "facebook", "carrefour", "magalu", "dafiti", "netshoes")


@pytest.fixture
def sandbox(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    box = loopback.sandbox(subset(24))
    return box, write_project(box, tmp_path / "project")


def state_file(config: Path) -> Path:
    return config.parent / "state.sqlite"


def forget_state(config: Path, how: str) -> None:
    """What an operator does by mistake: delete the file, or leave it empty (0 bytes)."""
    files = [state_file(config), *config.parent.glob("state.sqlite-*")]
    for path in files:
        if how == "delete" or path != state_file(config):
            path.unlink(missing_ok=True)
        else:
            os.truncate(path, 0)


def planned(config: Path, marketplace: str) -> list[dict[str, Any]]:
    project = load_project(config)
    with open_state(project) as state:
        return planned_records(open_marketplace(project, marketplace), project, state)


def expected(records: list[dict[str, Any]], marketplace: str) -> dict[str, list[str]]:
    """SKU -> the one listing it must end in, in :func:`bench.bench_kills.holdings`' terms."""
    wanted: dict[str, list[str]] = {}
    for record in records:
        if record["op"] != "create":
            continue
        if marketplace == "netshoes":  # a family's body has no price: approved SKUs get theirs later
            after = record["after"]
            offered = Decimal(
                str(after["sale_price"] if after.get("sale_price") is not None else after["price"])
            )
            wanted[record["sku_id"]] = [dumps([offered, max(0, int(after["quantity"])), True])]
        for body in record["payloads"] if marketplace != "netshoes" else ():
            if marketplace == "mercadolibre":
                for holder in body.get("variations") or [body]:
                    skus = [a["value_name"] for a in holder["attributes"] if a["id"] == "SELLER_SKU"]
                    held = dumps([holder["price"], holder["available_quantity"], "active"])
                    wanted.update({sku: [held] for sku in skus})
            elif marketplace == "google":
                attributes = body["productAttributes"]
                held = dumps(
                    [attributes.get("price"), attributes.get("salePrice"), attributes.get("availability")]
                )
                wanted[body["offerId"]] = [held]
            elif marketplace == "facebook":
                data = body["data"]
                held = dumps([data["price"], data["sale_price"] or None, data["availability"]])
                wanted[data["id"]] = [held]
            elif marketplace == "carrefour":
                offer = body["offer"]
                held = dumps([offer["price"], offer["discount-price"] or None, int(offer["quantity"])])
                wanted[record["sku_id"]] = [held]
            elif marketplace == "magalu":
                for member in body.get("family") or [body]:
                    price, stock = member["price"], member["stock"]
                    held = dumps([price["list_price"], price["price"], stock["quantity"]])
                    wanted[member["sku"]["sku"]] = [held]
            elif marketplace == "dafiti":
                for product in body["Product"]:
                    held = dumps([product["Price"], product.get("SalePrice"), int(product["Quantity"])])
                    wanted[product["SellerSku"]] = [held]
            else:
                attributes = body["attributes"]
                held = dumps(
                    [attributes.get("purchasable_offer"), attributes.get("fulfillment_availability")]
                )
                wanted[record["sku_id"]] = [held]
    return wanted


def normalised(found: dict[str, list[str]]) -> dict[str, list[str]]:
    return {sku: [dumps(_loads(h)) for h in held] for sku, held in found.items()}


def _loads(text: str) -> Any:
    from engine.jsonio import loads

    return loads(text)


def assert_exactly_once(box: Sandbox, config: Path, marketplace: str, want: dict[str, list[str]]) -> None:
    found = normalised(holdings(box, marketplace))
    twice = {sku: held for sku, held in found.items() if len(held) > 1}
    assert not twice, f"listed more than once: {twice}"
    assert set(found) == set(want)
    wrong = {sku: (found[sku], want[sku]) for sku in want if found[sku] != normalised(want)[sku]}
    assert not wrong, f"not at the planned price and quantity: {wrong}"
    assert planned(config, marketplace) == []  # the next plan has nothing to do


@pytest.mark.parametrize("how", ["delete", "truncate"])
@pytest.mark.parametrize("marketplace", MARKETPLACES)
def test_a_lost_state_store_adopts_what_the_marketplace_holds(
    sandbox: tuple[Sandbox, Path], marketplace: str, how: str
) -> None:
    box, config = sandbox
    want = expected(planned(config, marketplace), marketplace)
    assert len(want) > 15
    first = run_apply(config, marketplace, box)
    assert first.failed == 0, first.failures
    before = box.standins[marketplace].total_requests()
    forget_state(config, how)
    again = run_apply(config, marketplace, box)
    assert again.failed == 0, again.failures
    assert again.applied == len(want)  # every SKU adopted (or replaced in place), none skipped
    assert box.standins[marketplace].total_requests() > before
    assert_exactly_once(box, config, marketplace, want)


@pytest.mark.parametrize("marketplace", MARKETPLACES)
def test_an_old_copy_of_the_state_store_restored_adopts_what_was_listed_since(
    sandbox: tuple[Sandbox, Path], marketplace: str
) -> None:
    """Half the SKUs applied, the state copied; the rest applied; the old copy put back; apply."""
    box, config = sandbox
    records = planned(config, marketplace)
    want = expected(records, marketplace)
    half = _first_half(records)
    summary = _apply(box, config, marketplace, half)
    assert summary.failed == 0, summary.failures
    copy = config.parent / "old-state.sqlite"
    shutil.copy(state_file(config), copy)  # WAL checkpointed on close: the copy is the whole store
    summary = _apply(box, config, marketplace, planned(config, marketplace))
    assert summary.failed == 0, summary.failures
    if marketplace == "mercadolibre":
        # Someone changed an item by hand since the copy: adopting brings it back to the plan.
        standin: Any = box.standins["mercadolibre"]
        newest = max(standin.items.values(), key=lambda item: item["id"])
        for holder in newest.get("variations") or [newest]:
            holder["price"] = 1
    forget_state(config, "delete")
    shutil.copy(copy, state_file(config))
    again = run_apply(config, marketplace, box)
    assert again.failed == 0, again.failures
    assert again.applied == len(want) - len({sku for r in half for sku in _skus(r)})
    assert_exactly_once(box, config, marketplace, want)


def test_a_family_found_with_a_member_missing_gets_the_member_as_a_new_variation(
    sandbox: tuple[Sandbox, Path],
) -> None:
    """State lost, and one variation gone from the item (deleted by hand): one item, member added."""
    box, config = sandbox
    want = expected(planned(config, "mercadolibre"), "mercadolibre")
    assert run_apply(config, "mercadolibre", box).failed == 0
    standin: Any = box.standins["mercadolibre"]
    family = next(item for item in standin.items.values() if len(item["variations"]) >= 3)
    count = len(family["variations"])
    removed = family["variations"].pop()
    items = len(standin.items)
    forget_state(config, "delete")
    again = run_apply(config, "mercadolibre", box)
    assert again.failed == 0, again.failures
    assert len(standin.items) == items  # no second item for the family
    assert len(family["variations"]) == count and removed not in family["variations"]  # added anew
    assert_exactly_once(box, config, "mercadolibre", want)


def test_a_family_recorded_in_part_by_an_older_version_is_completed_in_its_item(
    sandbox: tuple[Sandbox, Path],
) -> None:
    """What the kill left before a family was one transaction: its first SKU's row, not its siblings'."""
    box, config = sandbox
    records = planned(config, "mercadolibre")
    want = expected(records, "mercadolibre")
    followers = [r["sku_id"] for r in records if r.get("family") and not r["payloads"]]
    assert len(followers) >= 3
    assert run_apply(config, "mercadolibre", box).failed == 0
    items = len(box.standins["mercadolibre"].items)  # type: ignore[attr-defined]
    with open_state(load_project(config)) as state:
        state.db.executemany("DELETE FROM listings WHERE sku_id = ?", [(sku,) for sku in followers])
    again = run_apply(config, "mercadolibre", box)
    assert (again.failed, again.applied) == (0, len(followers))  # each one found in its family's item
    assert len(box.standins["mercadolibre"].items) == items  # type: ignore[attr-defined]
    assert_exactly_once(box, config, "mercadolibre", want)


def test_the_look_up_costs_one_request_per_sku_created_and_nothing_for_updates(
    sandbox: tuple[Sandbox, Path],
) -> None:
    box, config = sandbox
    records = planned(config, "mercadolibre")
    creates = [r for r in records if r["op"] == "create"]
    posts = sum(1 for r in creates if r["payloads"])
    summary = run_apply(config, "mercadolibre", box)
    # One POST per item, one search per SKU (nothing found), /users/me once.
    assert summary.requests == posts + len(creates) + 1
    again = run_apply(config, "mercadolibre", box)
    assert (again.applied, again.requests) == (0, 0)


def test_a_family_is_recorded_by_one_transaction(
    sandbox: tuple[Sandbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """A kill between a family's first row and its siblings' made the next run POST them again."""
    from engine.state._store import StateStore

    box, config = sandbox
    families = [r["family"] for r in planned(config, "mercadolibre") if r.get("family") and r["payloads"]]
    assert families
    writes: list[list[str]] = []
    record_applied = StateStore.record_applied

    def spy(self: StateStore, marketplace: str, rows: Any) -> None:
        rows = list(rows)
        writes.append([row.sku_id for row in rows])
        record_applied(self, marketplace, rows)

    monkeypatch.setattr(StateStore, "record_applied", spy)
    assert run_apply(config, "mercadolibre", box).failed == 0
    for family in families:
        (write,) = [w for w in writes if set(w) & set(family)]  # one write holds any of its members
        assert sorted(write) == sorted(family)


def _first_half(records: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The first half of the creates, families kept whole."""
    creates = [r for r in records if r["op"] == "create"]
    cut = creates[: len(creates) // 2]
    families = {tuple(r["family"]) for r in cut if r.get("family")}
    return cut + [r for r in creates[len(cut) :] if r.get("family") and tuple(r["family"]) in families]


def _skus(record: dict[str, Any]) -> list[str]:
    return [record["sku_id"]]


def _apply(box: Sandbox, config: Path, marketplace: str, records: list[dict[str, Any]]) -> Any:
    project = load_project(config)
    run = open_marketplace(project, marketplace)
    with open_state(project) as state:
        return asyncio.run(
            apply_records(run, project, state, records, transport=box.standins[marketplace].transport())
        )


def test_a_create_whose_look_up_fails_is_not_sent(sandbox: tuple[Sandbox, Path]) -> None:
    """Sending POST /items blind could list the SKU twice: the SKU fails this run, and says why."""
    import httpx

    box, config = sandbox
    standin: Any = box.standins["mercadolibre"]
    inner = standin.transport()

    async def search_down(request: httpx.Request) -> httpx.Response:
        if request.url.path.endswith("/items/search"):
            return httpx.Response(503, json={"message": "search unavailable", "status": 503})
        answer: httpx.Response = await inner.handle_async_request(request)
        return answer

    records = [r for r in planned(config, "mercadolibre") if r["op"] == "create" and not r.get("family")]
    project = load_project(config)
    run = open_marketplace(project, "mercadolibre")
    with open_state(project) as state:
        summary = asyncio.run(
            apply_records(
                run,
                project,
                state,
                records[:2],
                transport=httpx.MockTransport(search_down),
                executor_options={"max_attempts": 2, "base_delay": 0.001, "max_delay": 0.01},
            )
        )
    assert (summary.applied, summary.failed) == (0, 2)
    assert standin.items == {}  # nothing POSTed
    for failure in summary.failures:
        assert failure.error is not None
        assert failure.error.startswith("not created: could not tell whether it exists already")
        assert "503 search unavailable" in failure.error


def test_every_request_of_a_run_waits_for_the_rate_limit_look_ups_included(
    sandbox: tuple[Sandbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    """The look-ups before a create are the connector's own requests: sent unpaced, they came back
    as 429s (152 in `bench/bench_apply.py --rate 40`) until the client's request hook paced them."""
    from engine.sync._executor import TokenBucket

    box, config = sandbox
    acquired = [0]
    acquire = TokenBucket.acquire

    async def counting(self: TokenBucket) -> None:
        acquired[0] += not self.name.startswith("VTEX")  # the catalog read paces VTEX's APIs too
        await acquire(self)

    monkeypatch.setattr(TokenBucket, "acquire", counting)
    standin = box.standins["mercadolibre"]
    before = sum(standin.requests.values())
    summary = run_apply(config, "mercadolibre", box)
    sent = sum(standin.requests.values()) - before
    assert summary.failed == 0 and sent > summary.applied  # searches, POSTs, /users/me, the token
    assert acquired[0] == sent
