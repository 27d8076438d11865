"""Connectors as declarations: a route table and a merge flag give the calls of a saved change.

Given a connector that declares only ``routes`` (and, in some rows, ``merge_price_and_stock``),
expect these calls: the contract, not the connector, decides how a change becomes requests.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, ClassVar

import httpx
import pytest

from engine.connectors import Call, ChangeRecord, Connector, RefreshedToken, Route, RouteKind


class Declared(Connector):
    """A marketplace keyed by SKU: PUT creates and replaces, PATCH changes a part, DELETE withdraws."""

    name = "declared"
    routes: ClassVar[Mapping[RouteKind, Route]] = {
        "create": Route("PUT", "/items/{sku_id}", {"market": "{market}"}),
        "content": Route("PUT", "/items/{sku_id}", {"market": "{market}"}),
        "price": Route("PATCH", "/items/{sku_id}", {"market": "{market}", "fields": "price"}),
        "stock": Route("PATCH", "/items/{sku_id}", {"market": "{market}", "fields": "stock"}),
        "delete": Route("DELETE", "/items/{remote_id}"),
    }

    def path_values(self, change: ChangeRecord, remote_id: str | None) -> dict[str, str]:
        return {"market": "BR"}


class MergedWhenSent(Declared):
    merge_price_and_stock = "send"


PRICE = {"offer": {"price": "9.90"}, "patches": [1]}
STOCK = {"offer": {"stock": 3}, "patches": [2]}


@pytest.mark.parametrize(
    ("connector", "change", "expected"),
    [
        (
            Declared(),
            {"op": "create", "sku_id": "A/1", "payloads": [{"title": "t"}]},
            [Call("PUT", "/items/A%2F1", {"title": "t"}, {"market": "BR"}, "create")],
        ),
        (  # a family's follower carries no body: the first member's request creates it
            Declared(),
            {"op": "create", "sku_id": "A2", "payloads": [], "family": ["A1", "A2"]},
            [],
        ),
        (
            Declared(),
            {"op": "update", "sku_id": "A", "fields": ["content", "price"], "payloads": [{"title": "t"}]},
            [Call("PUT", "/items/A", {"title": "t"}, {"market": "BR"}, "content")],
        ),
        (
            Declared(),
            {"op": "update", "sku_id": "A", "fields": ["price", "stock"], "payloads": [PRICE, STOCK]},
            [
                Call("PATCH", "/items/A", PRICE, {"market": "BR", "fields": "price"}, "price"),
                Call("PATCH", "/items/A", STOCK, {"market": "BR", "fields": "stock"}, "stock"),
            ],
        ),
        (  # merged when sent: objects key by key, lists end to end, differing query values joined
            MergedWhenSent(),
            {"op": "update", "sku_id": "A", "fields": ["price", "stock"], "payloads": [PRICE, STOCK]},
            [
                Call(
                    "PATCH",
                    "/items/A",
                    {"offer": {"price": "9.90", "stock": 3}, "patches": [1, 2]},
                    {"market": "BR", "fields": "price,stock"},
                    "price+stock",
                )
            ],
        ),
        (  # merged in the plan: one saved body carries both
            Declared(),
            {"op": "update", "sku_id": "A", "fields": ["price", "stock"], "payloads": [{"both": 1}]},
            [
                Call(
                    "PATCH", "/items/A", {"both": 1}, {"market": "BR", "fields": "price,stock"}, "price+stock"
                )
            ],
        ),
        (
            Declared(),
            {"op": "delete", "sku_id": "A", "payloads": []},
            [Call("DELETE", "/items/R-9", None, None, "delete")],
        ),
    ],
    ids=["create", "follower", "content", "price and stock", "merged when sent", "merged in plan", "delete"],
)
def test_a_declared_route_table_gives_the_calls(
    connector: Connector, change: dict[str, Any], expected: list[Call]
) -> None:
    assert connector.calls_for(change, "R-9") == expected
    assert connector.calls_for(ChangeRecord.of(change), "R-9") == expected


def test_a_saved_change_reads_into_a_typed_record() -> None:
    saved = {
        "op": "create",
        "sku_id": "10",
        "marketplace": "m",
        "payloads": [{"a": 1}],
        "family": ["11", "10"],
        "digest": "d",
    }
    record = ChangeRecord.of(saved)
    assert (record.op, record.sku_id, record.payloads, record.family, record.leader) == (
        "create",
        "10",
        ({"a": 1},),
        ("11", "10"),
        "10",
    )
    assert record.route_kinds == ("create",) and record.listing is None
    assert ChangeRecord.of(record) is record


@pytest.mark.parametrize(
    ("status", "retryable"),
    [(401, True), (403, False), (404, False), (429, True), (503, True)],
)
def test_a_refused_token_is_dropped_once_by_the_contract(status: int, retryable: bool) -> None:
    dropped: list[bool] = []

    class WithToken(Declared):
        def forget_token(self) -> None:
            dropped.append(True)

    connector = WithToken()
    connector.token = RefreshedToken("/token", "Declared")
    result = connector.result_of(Call("PUT", "/items/A"), httpx.Response(status, text="no"))
    assert (result.ok, result.retryable, result.error) == (False, retryable, f"{status}: no")
    assert dropped == ([True] if status == 401 else [])
