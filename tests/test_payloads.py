"""Connector payloads: given a canonical listing, expect these exact bodies (and these refusals)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar

import pytest
from hypothesis import given
from hypothesis import strategies as st

from engine.connectors import Connector, connector_class
from engine.jsonio import dumps
from engine.model._listing import Listing
from marketplaces.amazon import AmazonConnector
from marketplaces.google import GoogleConnector, micros
from marketplaces.mercadolibre import MercadoLibreConnector

US = "ATVPDKIKX0DER"


def listing(marketplace: str = "amazon", **changes: Any) -> Listing:
    """A sample SKU; ``fields={...}`` updates single fields, other keywords replace Listing attributes."""
    fields: dict[str, Any] = {
        "title": "Acme Runner Sneaker",
        "description": "Light and comfortable.",
        "condition": "new",
        "brand": "Acme",
        "gtin": "4006381333931",
        "images": ["https://img.example/1.jpg", "https://img.example/2.jpg"],
        "attributes": {"color": "Blue"},
    }
    fields.update(changes.pop("fields", {}))
    base: dict[str, Any] = dict(
        sku_id="SKU-1",
        product_id="P-1",
        marketplace=marketplace,
        category="SHOES",
        fields=fields,
        price=Decimal("134.90"),
        currency="USD",
        quantity=7,
    )
    return Listing(**{**base, **changes})


def test_the_registry_finds_the_three_built_in_connectors() -> None:
    assert connector_class("amazon") is AmazonConnector
    assert connector_class("mercadolibre") is MercadoLibreConnector
    assert connector_class("google") is GoogleConnector


# -- Amazon ------------------------------------------------------------------------------------


def test_amazon_put_body() -> None:
    body = AmazonConnector().payload(listing(fields={"bullet_points": ["Breathable mesh"], "mpn": "RUN-1"}))
    assert body == {
        "productType": "SHOES",
        "requirements": "LISTING",
        "attributes": {
            "item_name": [{"value": "Acme Runner Sneaker", "language_tag": "en_US", "marketplace_id": US}],
            "brand": [{"value": "Acme", "language_tag": "en_US", "marketplace_id": US}],
            "product_description": [
                {"value": "Light and comfortable.", "language_tag": "en_US", "marketplace_id": US}
            ],
            "part_number": [{"value": "RUN-1", "marketplace_id": US}],
            "bullet_point": [{"value": "Breathable mesh", "language_tag": "en_US", "marketplace_id": US}],
            "externally_assigned_product_identifier": [
                {"type": "ean", "value": "4006381333931", "marketplace_id": US}
            ],
            "condition_type": [{"value": "new_new", "marketplace_id": US}],
            "main_product_image_locator": [
                {"media_location": "https://img.example/1.jpg", "marketplace_id": US}
            ],
            "other_product_image_locator_1": [
                {"media_location": "https://img.example/2.jpg", "marketplace_id": US}
            ],
            "purchasable_offer": [
                {
                    "marketplace_id": US,
                    "currency": "USD",
                    "audience": "ALL",
                    "our_price": [{"schedule": [{"value_with_tax": Decimal("134.90")}]}],
                }
            ],
            "fulfillment_availability": [{"fulfillment_channel_code": "DEFAULT", "quantity": 7}],
            "color": [{"value": "Blue", "language_tag": "en_US", "marketplace_id": US}],
        },
    }


def test_amazon_options_choose_marketplace_language_and_product_type() -> None:
    connector = AmazonConnector(
        {"marketplace_id": "A2Q3Y263D00KWC", "language_tag": "pt_BR", "product_type": "SHOES_BR"}
    )
    body = connector.payload(listing(currency="BRL"))
    assert body["productType"] == "SHOES_BR"
    assert body["attributes"]["item_name"] == [
        {"value": "Acme Runner Sneaker", "language_tag": "pt_BR", "marketplace_id": "A2Q3Y263D00KWC"}
    ]
    assert AmazonConnector().payload(listing(fields={"product_type": "SNEAKER"}))["productType"] == "SNEAKER"


def test_amazon_prices_go_out_to_the_cent_as_json_numbers() -> None:
    given = listing(price=Decimal("1999.99"), sale_price=Decimal("0.10"))
    text = dumps(AmazonConnector().price_payload(given))
    assert '"value_with_tax": 1999.99' in text
    assert '"value_with_tax": 0.10' in text


def test_amazon_price_patch_replaces_the_offer_with_its_sale_price() -> None:
    assert AmazonConnector().price_payload(listing(sale_price=Decimal("119.90"))) == {
        "productType": "SHOES",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/purchasable_offer",
                "value": [
                    {
                        "marketplace_id": US,
                        "currency": "USD",
                        "audience": "ALL",
                        "our_price": [{"schedule": [{"value_with_tax": Decimal("134.90")}]}],
                        "discounted_price": [
                            {
                                "schedule": [
                                    {
                                        "value_with_tax": Decimal("119.90"),
                                        "start_at": "2000-01-01",
                                        "end_at": "2999-12-31",
                                    }
                                ]
                            }
                        ],
                    }
                ],
            }
        ],
    }


def test_amazon_sale_window_comes_from_the_listing_when_it_has_one() -> None:
    given = listing(
        sale_price=Decimal("99.00"), fields={"sale_start_at": "2025-11-28", "sale_end_at": "2025-12-01"}
    )
    offer = AmazonConnector().price_payload(given)["patches"][0]["value"][0]
    assert offer["discounted_price"][0]["schedule"][0] == {
        "value_with_tax": Decimal("99.00"),
        "start_at": "2025-11-28",
        "end_at": "2025-12-01",
    }


@pytest.mark.parametrize(("quantity", "sent"), [(7, 7), (0, 0), (-3, 0)])
def test_amazon_stock_patch_replaces_fulfillment_availability_only(quantity: int, sent: int) -> None:
    assert AmazonConnector().stock_payload(listing(quantity=quantity)) == {
        "productType": "SHOES",
        "patches": [
            {
                "op": "replace",
                "path": "/attributes/fulfillment_availability",
                "value": [{"fulfillment_channel_code": "DEFAULT", "quantity": sent}],
            }
        ],
    }


@pytest.mark.parametrize(
    ("gtin", "kind", "value"),
    [
        ("036000291452", "upc", "036000291452"),
        ("4006381333931", "ean", "4006381333931"),
        ("10036000291459", "gtin", "10036000291459"),
        ("96385074", "gtin", "00000096385074"),
    ],
)
def test_amazon_identifier_type_follows_the_gtin_length(gtin: str, kind: str, value: str) -> None:
    attributes = AmazonConnector().payload(listing(fields={"gtin": gtin}))["attributes"]
    assert attributes["externally_assigned_product_identifier"] == [
        {"type": kind, "value": value, "marketplace_id": US}
    ]


def test_amazon_without_a_gtin_declares_the_exemption_and_sends_the_part_number() -> None:
    attributes = AmazonConnector().payload(listing(fields={"gtin": None, "mpn": "RUN-1"}))["attributes"]
    assert "externally_assigned_product_identifier" not in attributes
    assert attributes["supplier_declared_has_product_identifier_exemption"] == [
        {"value": True, "marketplace_id": US}
    ]
    assert attributes["part_number"] == [{"value": "RUN-1", "marketplace_id": US}]


@pytest.mark.parametrize(
    ("value", "sent"),
    [
        ("Blue", [{"value": "Blue", "language_tag": "en_US", "marketplace_id": US}]),
        (
            ["Blue", "Navy"],
            [
                {"value": "Blue", "language_tag": "en_US", "marketplace_id": US},
                {"value": "Navy", "language_tag": "en_US", "marketplace_id": US},
            ],
        ),
        (
            {"value": "Blue", "standardized_values": ["blue"]},
            [{"value": "Blue", "standardized_values": ["blue"]}],
        ),
    ],
)
def test_amazon_rule_file_attributes_are_wrapped_unless_already_amazon_shaped(value: Any, sent: Any) -> None:
    body = AmazonConnector().payload(listing(fields={"attributes": {"color": value}}))
    assert body["attributes"]["color"] == sent


def test_amazon_sends_price_and_stock_in_one_patch_when_both_changed() -> None:
    connector, given = AmazonConnector(), listing()
    [body] = connector.payloads_for("update", ["price", "stock"], given, given.sku_id)
    paths = [patch["path"] for patch in body["patches"]]
    assert paths == ["/attributes/purchasable_offer", "/attributes/fulfillment_availability"]
    assert connector.payloads_for("update", ["price"], given, "SKU-1") == [connector.price_payload(given)]
    assert connector.payloads_for("delete", [], None, "SKU-1") == []


@pytest.mark.parametrize(
    ("kind", "expected"),
    [
        ("create", {"operationType": "UPDATE", "productType": "SHOES", "requirements": "LISTING"}),
        ("content", {"operationType": "UPDATE", "productType": "SHOES", "requirements": "LISTING"}),
        ("price", {"operationType": "PATCH", "productType": "SHOES"}),
        ("stock", {"operationType": "PATCH", "productType": "SHOES"}),
        ("delete", {"operationType": "DELETE"}),
    ],
)
def test_amazon_feed_messages(kind: Any, expected: dict[str, Any]) -> None:
    message = AmazonConnector().feed_message(listing(), 3, kind)
    assert {key: message[key] for key in ("messageId", "sku")} == {"messageId": 3, "sku": "SKU-1"}
    assert {key: message[key] for key in expected} == expected
    assert (
        set(message) - {"messageId", "sku", *expected}
        == {
            "create": {"attributes"},
            "content": {"attributes"},
            "price": {"patches"},
            "stock": {"patches"},
            "delete": set(),
        }[kind]
    )


def test_amazon_feed_document_header() -> None:
    connector = AmazonConnector({"seller_id": "A1SELLER", "language_tag": "pt_BR"})
    message = connector.feed_message(listing(), 1, "stock")
    assert connector.feed_document([message]) == {
        "header": {"sellerId": "A1SELLER", "version": "2.0", "issueLocale": "pt_BR"},
        "messages": [message],
    }
    assert connector.feed_document([message], "A2OTHER")["header"]["sellerId"] == "A2OTHER"


@pytest.mark.parametrize(
    ("call", "complaint"),
    [
        (lambda c: c.feed_document([{"messageId": 1}]), "seller id"),
        (lambda c: c.feed_message(listing(), 0, "stock"), "messageId 0"),
        (lambda c: AmazonConnector({"seller_id": "A1"}).feed_document([]), "1 to 25000 messages"),
    ],
)
def test_amazon_feed_refuses_what_the_feed_schema_would(call: Any, complaint: str) -> None:
    with pytest.raises(ValueError, match=complaint):
        call(AmazonConnector())


# -- Mercado Libre -----------------------------------------------------------------------------


def ml(sku_id: str = "SKU-10", **changes: Any) -> Listing:
    fields = {
        "title": "Tênis Acme Runner",
        "images": [f"https://img.example/{sku_id}.jpg"],
        "attributes": {"COLOR": "Azul", "SIZE": "M"},
        **changes.pop("fields", {}),
    }
    defaults = {"sku_id": sku_id, "category": "MLB23332", "currency": "BRL", "fields": fields}
    return listing("mercadolibre", **{**defaults, **changes})


def test_mercadolibre_post_items_body() -> None:
    assert MercadoLibreConnector().payload(ml()) == {
        "title": "Tênis Acme Runner",
        "category_id": "MLB23332",
        "price": Decimal("134.90"),
        "currency_id": "BRL",
        "available_quantity": 7,
        "buying_mode": "buy_it_now",
        "listing_type_id": "gold_special",
        "condition": "new",
        "pictures": [{"source": "https://img.example/SKU-10.jpg"}],
        "attributes": [
            {"id": "BRAND", "value_name": "Acme"},
            {"id": "GTIN", "value_name": "4006381333931"},
            {"id": "COLOR", "value_name": "Azul"},
            {"id": "SIZE", "value_name": "M"},
            {"id": "SELLER_SKU", "value_name": "SKU-10"},
        ],
        "description": {"plain_text": "Light and comfortable."},
    }


def test_mercadolibre_options_fields_and_sale_terms() -> None:
    connector = MercadoLibreConnector({"listing_type_id": "gold_pro", "buying_mode": "classified"})
    body = connector.payload(
        ml(fields={"sale_terms": {"WARRANTY_TYPE": {"value_id": "2230280"}, "WARRANTY_TIME": "90 days"}})
    )
    assert (body["listing_type_id"], body["buying_mode"]) == ("gold_pro", "classified")
    assert body["sale_terms"] == [
        {"id": "WARRANTY_TYPE", "value_id": "2230280"},
        {"id": "WARRANTY_TIME", "value_name": "90 days"},
    ]
    assert connector.payload(ml(fields={"listing_type_id": "free"}))["listing_type_id"] == "free"


def test_mercadolibre_sale_price_is_the_price_the_buyer_pays() -> None:
    given = ml(sale_price=Decimal("119.90"))
    assert MercadoLibreConnector().payload(given)["price"] == Decimal("119.90")
    assert MercadoLibreConnector().price_payload(given) == {"price": Decimal("119.90")}


@pytest.mark.parametrize(
    ("op", "kinds", "expected"),
    [
        ("update", ["price"], [{"price": Decimal("134.90")}]),
        ("update", ["stock"], [{"available_quantity": 7}]),
        ("update", ["price", "stock"], [{"price": Decimal("134.90"), "available_quantity": 7}]),
        ("delete", [], [{"status": "paused"}]),
    ],
)
def test_mercadolibre_update_bodies(op: str, kinds: list[str], expected: list[dict[str, Any]]) -> None:
    given = ml() if op != "delete" else None
    assert MercadoLibreConnector().payloads_for(op, kinds, given, "SKU-10") == expected


def test_mercadolibre_family_is_one_item_with_variations_at_the_highest_price() -> None:
    blue = ml("SKU-10", axes={"COLOR": "Azul", "SIZE": "M"}, quantity=4)
    black = ml(
        "SKU-11",
        price=Decimal("139.90"),
        quantity=2,
        axes={"COLOR": "Preto", "SIZE": "G"},
        fields={"gtin": "4006381333948", "attributes": {"COLOR": "Preto", "SIZE": "G"}},
    )
    assert MercadoLibreConnector().family_payload([black, blue]) == {
        "title": "Tênis Acme Runner",
        "category_id": "MLB23332",
        "price": Decimal("139.90"),
        "currency_id": "BRL",
        "available_quantity": 6,
        "buying_mode": "buy_it_now",
        "listing_type_id": "gold_special",
        "condition": "new",
        "pictures": [
            {"source": "https://img.example/SKU-10.jpg"},
            {"source": "https://img.example/SKU-11.jpg"},
        ],
        "attributes": [{"id": "BRAND", "value_name": "Acme"}],
        "description": {"plain_text": "Light and comfortable."},
        "variations": [
            {
                "attribute_combinations": [
                    {"id": "COLOR", "value_name": "Azul"},
                    {"id": "SIZE", "value_name": "M"},
                ],
                "price": Decimal("139.90"),
                "available_quantity": 4,
                "picture_ids": ["https://img.example/SKU-10.jpg"],
                "attributes": [
                    {"id": "SELLER_SKU", "value_name": "SKU-10"},
                    {"id": "GTIN", "value_name": "4006381333931"},
                ],
            },
            {
                "attribute_combinations": [
                    {"id": "COLOR", "value_name": "Preto"},
                    {"id": "SIZE", "value_name": "G"},
                ],
                "price": Decimal("139.90"),
                "available_quantity": 2,
                "picture_ids": ["https://img.example/SKU-11.jpg"],
                "attributes": [
                    {"id": "SELLER_SKU", "value_name": "SKU-11"},
                    {"id": "GTIN", "value_name": "4006381333948"},
                ],
            },
        ],
    }


def test_mercadolibre_family_members_must_vary_on_the_same_axes() -> None:
    with pytest.raises(ValueError, match="SKU-11 varies on"):
        MercadoLibreConnector().family_payload(
            [ml("SKU-10", axes={"COLOR": "Azul"}), ml("SKU-11", axes={"SIZE": "M"})]
        )
    assert MercadoLibreConnector().family_payload([]) is None


def test_mercadolibre_empty_gtin_reason_waives_gtin() -> None:
    given = ml(fields={"gtin": None, "attributes": {"EMPTY_GTIN_REASON": {"value_id": "17055160"}}})
    assert MercadoLibreConnector().check(given) == []
    attributes = MercadoLibreConnector().payload(given)["attributes"]
    assert {"id": "EMPTY_GTIN_REASON", "value_id": "17055160"} in attributes


def test_mercadolibre_checks_the_attributes_it_sends() -> None:
    connector = MercadoLibreConnector()

    def codes(listing: Listing) -> list[tuple[str, str]]:
        return [(r.code, r.rule) for r in connector.check(listing)]

    # A lower-case waiver waives as well; an empty one, written by hand, is present all the same.
    assert codes(ml(fields={"gtin": None, "brand": "Acme", "attributes": {"empty_gtin_reason": "x"}})) == []
    # A rule-file attribute overrides the standard field under Mercado Libre's id, either case.
    assert codes(ml(fields={"gtin": "7891", "brand": "Acme", "attributes": {"brand": ""}})) == [
        ("TP914", "listing.attributes.BRAND")
    ]
    assert (
        codes(ml(fields={"gtin": None, "brand": None, "attributes": {"Gtin": "7891", "BRAND": "Acme"}})) == []
    )
    assert codes(ml(fields={"gtin": None, "brand": "Acme"})) == [("TP914", "listing.attributes.GTIN")]


_KEYS = st.sampled_from(["BRAND", "brand", "Brand", "GTIN", "gtin", "MPN", "seller_sku", "COLOR", "color"])
_VALUES = st.one_of(st.none(), st.just(""), st.sampled_from(["Acme", "7891", "x"]))


@given(
    st.lists(st.tuples(_KEYS, _VALUES), max_size=8),
    st.fixed_dictionaries({"brand": _VALUES, "gtin": _VALUES, "mpn": _VALUES}),
    st.lists(st.sampled_from(["BRAND", "GTIN", "MPN", "SELLER_SKU", "COLOR", "SIZE"]), unique=True),
)
def test_mercadolibre_knows_what_it_would_not_send_without_building_it(
    attributes: list[tuple[str, object]], standard: dict[str, object], names: list[str]
) -> None:
    connector = MercadoLibreConnector()
    planned = ml(fields={**standard, "attributes": dict(attributes)})
    sent = connector._attribute_values(planned)  # the values the payload sends
    expected = [name for name in names if name not in sent]
    assert connector.attributes_missing(planned, names) == expected
    assert connector.attributes_missing(planned, names) == expected  # the keys' ids, kept, agree


class _PerCategory(Connector):
    name = "per-category"
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {"shoes/*": ("size",), "bags": ("material",)}


def test_a_connector_asks_each_category_for_its_own_attributes() -> None:
    """The required attributes are kept per category: another category's are never the answer."""
    connector = _PerCategory()
    sized = {"title": "Bag", "attributes": {"size": "M"}}
    asked = [
        [r.rule for r in connector.check(listing("per-category", category=category, fields=sized))]
        for category in ("shoes/running", "bags", "hats", "shoes/boots", "bags")
    ]
    assert asked == [[], ["listing.attributes.material"], [], [], ["listing.attributes.material"]]


# -- Google ------------------------------------------------------------------------------------

GOOGLE_OPTIONS = {
    "link_template": "https://shop.example/p/{sku_id}",
    "account": "123",
    "content_language": "en",
    "feed_label": "US",
}


def gl(**changes: Any) -> Listing:
    return listing("google", **{"category": "187", "group": "P-1", **changes})


@pytest.mark.parametrize(
    ("amount", "expected"),
    [
        ("0.01", "10000"),
        ("134.90", "134900000"),
        ("1999.99", "1999990000"),
        ("1", "1000000"),
        ("0", "0"),
        ("0.000001", "1"),
        ("123456789.12", "123456789120000"),
    ],
)
def test_google_micros_are_exact_integer_strings(amount: str, expected: str) -> None:
    assert micros(Decimal(amount)) == expected


def test_google_refuses_amounts_finer_than_a_micro() -> None:
    with pytest.raises(ValueError, match="six decimal places"):
        micros(Decimal("0.0000001"))


def test_google_product_input() -> None:
    given = gl(
        sale_price=Decimal("99.90"),
        fields={"mpn": "RUN-1", "attributes": {"color": "Blue", "ageGroup": "adult", "Voltage": "110V"}},
    )
    assert GoogleConnector(GOOGLE_OPTIONS).payload(given) == {
        "offerId": "SKU-1",
        "contentLanguage": "en",
        "feedLabel": "US",
        "productAttributes": {
            "title": "Acme Runner Sneaker",
            "description": "Light and comfortable.",
            "link": "https://shop.example/p/SKU-1",
            "imageLink": "https://img.example/1.jpg",
            "additionalImageLinks": ["https://img.example/2.jpg"],
            "availability": "IN_STOCK",
            "price": {"amountMicros": "134900000", "currencyCode": "USD"},
            "salePrice": {"amountMicros": "99900000", "currencyCode": "USD"},
            "brand": "Acme",
            "mpn": "RUN-1",
            "gtins": ["4006381333931"],
            "condition": "NEW",
            "googleProductCategory": "187",
            "itemGroupId": "P-1",
            "color": "Blue",
            "ageGroup": "ADULT",
        },
        "customAttributes": [{"name": "Voltage", "value": "110V"}],
    }


@pytest.mark.parametrize(
    ("sale_price", "expected"),
    [
        (None, {"price": {"amountMicros": "1999990000", "currencyCode": "USD"}}),
        (
            Decimal("0.01"),
            {
                "price": {"amountMicros": "1999990000", "currencyCode": "USD"},
                "salePrice": {"amountMicros": "10000", "currencyCode": "USD"},
            },
        ),
    ],
)
def test_google_price_patch(sale_price: Decimal | None, expected: dict[str, Any]) -> None:
    connector = GoogleConnector(GOOGLE_OPTIONS)
    body = connector.price_payload(gl(price=Decimal("1999.99"), sale_price=sale_price))
    identity = {"offerId": "SKU-1", "contentLanguage": "en", "feedLabel": "US"}
    assert body == {**identity, "productAttributes": expected}
    # The mask names salePrice even when there is none: naming it without a value deletes an ended sale.
    assert connector.update_mask_for("price") == "productAttributes.price,productAttributes.salePrice"


@pytest.mark.parametrize(
    ("quantity", "availability"),
    [
        (7, "IN_STOCK"),
        (1, "IN_STOCK"),
        (0, "OUT_OF_STOCK"),
    ],
)
def test_google_stock_patch(quantity: int, availability: str) -> None:
    connector = GoogleConnector(GOOGLE_OPTIONS)
    body = connector.stock_payload(gl(quantity=quantity))
    assert body["productAttributes"] == {"availability": availability}
    assert connector.update_mask_for("stock") == "productAttributes.availability"


def test_google_resource_name_is_encoded_and_delete_has_no_body() -> None:
    connector = GoogleConnector(GOOGLE_OPTIONS)
    assert connector.product_input_name("sku/123") == "accounts/123/productInputs/ZW5-VVN-c2t1LzEyMw"
    assert connector.delete_payload("SKU-1") is None


@pytest.mark.parametrize(
    ("options", "expected"),
    [
        ({"account": "123", "data_source": "104628"}, "accounts/123/dataSources/104628"),
        ({"data_source": "accounts/9/dataSources/7"}, "accounts/9/dataSources/7"),
    ],
)
def test_google_data_source_name(options: dict[str, str], expected: str) -> None:
    assert GoogleConnector(options).data_source_name() == expected


def test_google_names_need_the_account_options() -> None:
    with pytest.raises(ValueError, match=r"options\.account"):
        GoogleConnector({}).product_input_name("SKU-1")
    with pytest.raises(ValueError, match=r"options\.data_source"):
        GoogleConnector({"account": "123"}).data_source_name()


@pytest.mark.parametrize(
    ("category", "valid"),
    [
        ("187", True),
        ("2271", True),
        ("0", False),
        ("MLB23332", False),
        ("Apparel > Shoes", False),
        ("", False),
    ],
)
def test_google_categories_must_be_taxonomy_ids(category: str, valid: bool) -> None:
    assert (GoogleConnector.validate_category(category) is None) is valid


# -- requirements ------------------------------------------------------------------------------


def reasons(connector: Connector, given: Listing) -> list[tuple[str, str]]:
    return [(reason.code, reason.message) for reason in connector.check(given)]


REFUSALS: list[tuple[str, Connector, Listing, tuple[str, str]]] = [
    (
        "amazon: long title",
        AmazonConnector(),
        listing(fields={"title": "x" * 201}),
        ("TP911", "title is 201 characters; Amazon allows 200"),
    ),
    (
        "amazon: no images",
        AmazonConnector(),
        listing(fields={"images": []}),
        ("TP912", "0 image(s); Amazon requires at least 1"),
    ),
    (
        "amazon: ten images",
        AmazonConnector(),
        listing(fields={"images": ["https://img.example/x.jpg"] * 10}),
        ("TP912", "10 images; Amazon allows at most 9"),
    ),
    (
        "amazon: no gtin, no mpn",
        AmazonConnector(),
        listing(fields={"gtin": None}),
        ("TP913", "Amazon requires a GTIN, or a brand and an MPN"),
    ),
    (
        "ml: long title",
        MercadoLibreConnector(),
        ml(fields={"title": "x" * 61}),
        ("TP911", "title is 61 characters; Mercado Libre allows 60"),
    ),
    (
        "ml: no images",
        MercadoLibreConnector(),
        ml(fields={"images": []}),
        ("TP912", "0 image(s); Mercado Libre requires at least 1"),
    ),
    (
        "ml: no brand",
        MercadoLibreConnector(),
        ml(fields={"brand": None}),
        ("TP914", "attribute BRAND is required by Mercado Libre in category MLB23332"),
    ),
    (
        "ml: no gtin",
        MercadoLibreConnector(),
        ml(fields={"gtin": None}),
        ("TP914", "attribute GTIN is required by Mercado Libre in category MLB23332"),
    ),
    (
        "google: long title",
        GoogleConnector(GOOGLE_OPTIONS),
        gl(fields={"title": "x" * 151}),
        ("TP911", "title is 151 characters; Google allows 150"),
    ),
    (
        "google: no images",
        GoogleConnector(GOOGLE_OPTIONS),
        gl(fields={"images": []}),
        ("TP912", "0 image(s); Google requires at least 1"),
    ),
    (
        "google: no gtin, no mpn",
        GoogleConnector(GOOGLE_OPTIONS),
        gl(fields={"gtin": None}),
        ("TP913", "Google requires a GTIN, or a brand and an MPN"),
    ),
    (
        "google: category is a path",
        GoogleConnector(GOOGLE_OPTIONS),
        gl(category="Apparel > Shoes"),
        (
            "TP915",
            "category 'Apparel > Shoes' is not a Google product taxonomy id; map it to a number from "
            "taxonomy-with-ids (e.g. 2271 for Apparel & Accessories > Clothing > Dresses)",
        ),
    ),
    (
        "google: no link",
        GoogleConnector(),
        gl(),
        ("TP916", "Google requires a link: set listing.link or options.link_template"),
    ),
    (
        "google: bad link template",
        GoogleConnector({"link_template": "https://shop.example/{sku}"}),
        gl(),
        ("TP916", "options.link_template has an unknown placeholder 'sku'"),
    ),
]


@pytest.mark.parametrize(
    ("connector", "given", "expected"), [case[1:] for case in REFUSALS], ids=[case[0] for case in REFUSALS]
)
def test_requirements_refuse_with_a_reason(
    connector: Connector, given: Listing, expected: tuple[str, str]
) -> None:
    assert reasons(connector, given) == [expected]


@pytest.mark.parametrize(
    ("connector", "given"),
    [
        (AmazonConnector(), listing()),
        (AmazonConnector(), listing(fields={"gtin": None, "mpn": "RUN-1"})),
        (MercadoLibreConnector(), ml()),
        (GoogleConnector(GOOGLE_OPTIONS), gl()),
        (GoogleConnector(GOOGLE_OPTIONS), gl(fields={"gtin": None, "mpn": "RUN-1"})),
        (
            GoogleConnector(GOOGLE_OPTIONS),
            gl(fields={"gtin": None, "brand": None, "identifier_exists": False}),
        ),
        (GoogleConnector(), gl(fields={"link": "https://shop.example/sneaker"})),
    ],
    ids=[
        "amazon",
        "amazon: brand + mpn",
        "ml",
        "google",
        "google: brand + mpn",
        "google: no identifiers",
        "google: own link",
    ],
)
def test_requirements_accept_a_complete_listing(connector: Connector, given: Listing) -> None:
    assert connector.check(given) == []
