"""The SellerCenter stand-in on its own: the signature gate, envelopes in XML and JSON, feeds
processed later with per-record errors, the feed spacing's 429, and an order desk mounted.

Given signed (or badly signed) calls straight to the stand-in, expect the answers API.md
documents: E007 for a wrong signature or user, the action's Body in a SuccessResponse in the
asked Format, a feed id at once and its FeedErrors after processing.
"""

from __future__ import annotations

import asyncio
from collections.abc import Mapping, Sequence
from typing import Any

import httpx
from starlette.routing import BaseRoute

from marketplaces.sellercenter._http import (
    ActionCall,
    ActionHandler,
    ActionRefused,
    read_envelope,
    request_xml,
    signed_params,
)
from marketplaces.sellercenter.standin import SANDBOX_API_KEY, SANDBOX_USER_ID, SellerCenterStandin

PRODUCT = {
    "SellerSku": "A1",
    "Name": "Tênis",
    "Variation": "40",
    "PrimaryCategory": "1010",
    "Description": "Tênis de corrida",
    "Brand": "Pisada",
    "Price": "99.90",
    "Quantity": "3",
    "ProductData": {
        "Gender": "Unissex",
        "Origin": "Nacional",
        "ColorFamily": "Azul",
        "Color": "Azul",
        "OriginCountry": "Brasil",
    },
}


def call(
    shop: SellerCenterStandin,
    action: str,
    extra: Mapping[str, str] | None = None,
    body: bytes | None = None,
    key: str = SANDBOX_API_KEY,
    fmt: str = "XML",
) -> httpx.Response:
    params = signed_params(action, SANDBOX_USER_ID, key, extra, fmt)

    async def send() -> httpx.Response:
        async with httpx.AsyncClient(transport=shop.transport(), base_url="http://sc.test") as client:
            return await client.request("POST" if body else "GET", "/", params=params, content=body)

    return asyncio.run(send())


def test_a_wrong_signature_or_user_is_e007_and_a_good_one_passes() -> None:
    shop = SellerCenterStandin()
    refused = call(shop, "GetBrands", key="wrong")
    envelope = read_envelope(refused.content)
    assert refused.status_code == 403 and not envelope.ok and envelope.code == "E007"
    assert "Signature mismatching" in envelope.message
    passed = read_envelope(call(shop, "GetBrands").content)
    assert passed.ok and {"Name": "Pisada"} in passed.body["Brands"]["Brand"]
    unknown = read_envelope(call(shop, "NoSuchAction").content)
    assert unknown.code == "E008"


def test_answers_come_in_the_format_asked() -> None:
    shop = SellerCenterStandin()
    as_json = call(shop, "GetCategoryTree", fmt="JSON")
    assert as_json.headers["content-type"].startswith("application/json")
    assert as_json.json()["SuccessResponse"]["Body"]["Categories"]["Category"][0]["CategoryId"] == "1000"
    as_xml = call(shop, "GetCategoryTree")
    assert as_xml.content.startswith(b"<?xml") and read_envelope(as_xml.content).ok


def test_a_feed_answers_its_id_at_once_and_its_errors_once_processed() -> None:
    now = [0.0]
    shop = SellerCenterStandin(clock=lambda: now[0])
    bad = {**PRODUCT, "SellerSku": "B2", "Brand": "Unknown"}
    sent = read_envelope(call(shop, "ProductCreate", body=request_xml([PRODUCT, bad], "Product")).content)
    feed_id = sent.request_id
    assert sent.ok and feed_id and not shop.products
    queued = read_envelope(call(shop, "FeedStatus", {"FeedID": feed_id}).content)
    assert queued.body["FeedDetail"]["Status"] == "Queued"
    now[0] += 11  # FEED_SECONDS later
    detail = read_envelope(call(shop, "FeedStatus", {"FeedID": feed_id}).content).body["FeedDetail"]
    assert (detail["Status"], detail["FailedRecords"]) == ("Finished", "1")
    error = detail["FeedErrors"]["Error"]
    assert "Seller SKU: B2" in error["Message"] and "SellerSku" not in error  # named in the message only
    assert set(shop.products) == {"A1"}


def test_a_feed_call_too_soon_after_the_free_ones_is_429() -> None:
    now = [0.0]
    shop = SellerCenterStandin(clock=lambda: now[0])
    shop.feed_calls = 50
    body = request_xml([{"SellerSku": "A1", "Quantity": "1"}], "Product")
    assert read_envelope(call(shop, "ProductUpdate", body=body).content).ok
    refused = call(shop, "ProductUpdate", body=body)
    assert refused.status_code == 429
    assert float(refused.headers["Retry-After"]) == 117.6  # 2 minutes, less 2% for clocks that jitter
    now[0] += 120
    assert call(shop, "ProductUpdate", body=body).status_code == 200


class Desk:
    """An order desk as the orders part builds one: actions, and sandbox routes."""

    def __init__(self, products: Mapping[str, Any]) -> None:
        self.products = products

    def actions(self) -> Mapping[str, ActionHandler]:
        return {"GetOrders": self.get_orders, "SetStatusToShipped": self.ship}

    def routes(self) -> Sequence[BaseRoute]:
        return []

    async def get_orders(self, call: ActionCall) -> Any:
        return {"Orders": {"Order": [{"OrderId": "1", "Skus": str(len(self.products))}]}}

    async def ship(self, call: ActionCall) -> Any:
        raise ActionRefused("E020", f"Invalid OrderItemId: {call.params.get('OrderItemId')}")


def test_an_order_desk_answers_its_actions_behind_the_same_gate() -> None:
    shop = SellerCenterStandin(order_desk=Desk({}))
    orders = read_envelope(call(shop, "GetOrders").content)
    assert orders.ok and orders.body["Orders"]["Order"]["OrderId"] == "1"
    refused = read_envelope(call(shop, "SetStatusToShipped", {"OrderItemId": "9"}).content)
    assert (refused.code, refused.message) == ("E020", "Invalid OrderItemId: 9")
    assert read_envelope(call(shop, "GetOrders", key="wrong").content).code == "E007"
