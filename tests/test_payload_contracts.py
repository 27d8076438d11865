"""Connector payloads checked against the marketplaces' published references in ../shared/specs.

The references are not part of the project (DESIGN.md: read them, do not copy them), so these
tests read them from beside the repository and skip, saying why, where they are absent. Bodies
are checked as they travel: serialised with engine.jsonio and parsed back, so a Decimal that
would not survive the wire fails here rather than at the marketplace.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest

from engine.jsonio import dumps, loads
from engine.model._listing import Listing
from marketplaces.amazon import AmazonConnector, ChangeKind
from marketplaces.google import ChangeKind as GoogleChangeKind
from marketplaces.google import GoogleConnector
from marketplaces.mercadolibre import MercadoLibreConnector

SPECS = Path(__file__).resolve().parents[2] / "shared" / "specs"
if not SPECS.is_dir():
    pytest.skip(f"{SPECS} not found: contract tests need the public API references", allow_module_level=True)

jsonschema = pytest.importorskip(
    "jsonschema", reason="jsonschema is not installed: it validates payloads against the published schemas"
)


def wire(body: Any) -> Any:
    """The body as the marketplace receives it: exact JSON, numbers read back as Decimal."""
    return loads(dumps(body))


def errors_of(validator: Any, instance: Any) -> list[str]:
    return [
        f"{'/'.join(map(str, error.absolute_path)) or '<root>'}: {error.message[:300]}"
        for error in validator.iter_errors(instance)
    ]


# -- Amazon ------------------------------------------------------------------------------------


def _utf8_bytes(check: str) -> Any:
    """Amazon's meta-schema keywords minUtf8ByteLength / maxUtf8ByteLength: limits in encoded bytes."""

    def validate(validator: Any, limit: int, instance: Any, schema: Any) -> Iterator[Any]:
        if not isinstance(instance, str):
            return
        size = len(instance.encode("utf-8"))
        if (check == "max" and size > limit) or (check == "min" and size < limit):
            yield jsonschema.ValidationError(f"{size} UTF-8 bytes; the {check}imum is {limit}")

    return validate


# Draft 2019-09 plus Amazon's vocabulary. editable, hidden, enumNames, selectors, min/maxUniqueItems
# and $lifecycle are annotations to a validator of one body; only the byte lengths constrain it.
AmazonValidator = jsonschema.validators.extend(
    jsonschema.Draft201909Validator,
    {"maxUtf8ByteLength": _utf8_bytes("max"), "minUtf8ByteLength": _utf8_bytes("min")},
)


@cache
def amazon_spec(name: str) -> dict[str, Any]:
    # Decimals in the schema too, so multipleOf 0.01 is exact arithmetic, not float division.
    text = (SPECS / "amazon" / name).read_text(encoding="utf-8")
    data: dict[str, Any] = json.loads(text, parse_float=Decimal)
    return data


def listings_items_validator(definition: str) -> Any:
    swagger = amazon_spec("listingsItems_2021-08-01.json")
    schema = {"definitions": swagger["definitions"], "$ref": f"#/definitions/{definition}"}
    return jsonschema.Draft4Validator(schema)


def bracelet_validator(schema: dict[str, Any] | None = None) -> Any:
    bracelet = amazon_spec("BRACELET.json")
    return AmazonValidator(schema or bracelet, format_checker=jsonschema.Draft201909Validator.FORMAT_CHECKER)


def bracelet_property_validator(name: str) -> Any:
    """The schema of one attribute, with the $defs its references point to."""
    bracelet = amazon_spec("BRACELET.json")
    return bracelet_validator(
        {"$defs": bracelet["$defs"], "type": "object", "properties": {name: bracelet["properties"][name]}}
    )


AMAZON_OPTIONS = {"localized_attributes": ["gem_type", "clasp_type"], "seller_id": "A1SELLER"}


def bracelet(**changes: Any) -> Listing:
    """A women's silver bracelet with every attribute the BRACELET product type asks of it."""
    fields: dict[str, Any] = {
        "title": "Acme Sterling Silver Link Bracelet",
        "description": "Sterling silver, 7 inches.",
        "condition": "new",
        "brand": "Acme",
        "gtin": "4006381333931",
        "mpn": "AC-BR-1",
        "images": ["https://img.example/1.jpg", "https://img.example/2.jpg"],
        "bullet_points": ["Sterling silver", "Lobster claw clasp"],
        "list_price": Decimal("149.00"),
        "attributes": {
            "color": "Silver",
            "size": "Medium",
            "department": "Womens",
            "material": "Silver",
            "gem_type": "No Gemstone",
            "clasp_type": "Lobster Claw",
            "item_length": {"unit": "inches", "value": 7},
            "country_of_origin": "BR",
            "item_type_keyword": "link-bracelets",
            "supplier_declared_dg_hz_regulation": "not_applicable",
            "cpsia_cautionary_statement": "no_warning_applicable",
            "jewelry_material_categorization": "fashion",
            "batteries_required": False,
            "merchant_shipping_group": "legacy-template-id",
        },
    }
    fields.update(changes.pop("fields", {}))
    base: dict[str, Any] = dict(
        sku_id="BR-1",
        product_id="P-1",
        marketplace="amazon",
        category="BRACELET",
        fields=fields,
        price=Decimal("134.90"),
        currency="USD",
        quantity=7,
    )
    return Listing(**{**base, **changes})


AMAZON_CASES = {
    "full": bracelet(),
    "on sale": bracelet(sale_price=Decimal("119.90")),
    "sale with dates": bracelet(
        sale_price=Decimal("0.01"), fields={"sale_start_at": "2025-11-28", "sale_end_at": "2025-12-01"}
    ),
    "out of stock": bracelet(quantity=0),
    "nine images": bracelet(fields={"images": [f"https://img.example/{n}.jpg" for n in range(9)]}),
    "upc": bracelet(fields={"gtin": "036000291452"}),
    "gtin-8": bracelet(fields={"gtin": "96385074"}),
    "no gtin": bracelet(fields={"gtin": None}),
    "asin, no gtin": bracelet(fields={"gtin": None, "asin": "B000000001"}),
}


@pytest.mark.parametrize("listing", AMAZON_CASES.values(), ids=AMAZON_CASES.keys())
def test_amazon_put_body_is_a_listings_item_put_request(listing: Listing) -> None:
    body = wire(AmazonConnector(AMAZON_OPTIONS).payload(listing))
    assert errors_of(listings_items_validator("ListingsItemPutRequest"), body) == []


@pytest.mark.parametrize("listing", AMAZON_CASES.values(), ids=AMAZON_CASES.keys())
def test_amazon_attributes_satisfy_the_bracelet_product_type(listing: Listing) -> None:
    attributes = wire(AmazonConnector(AMAZON_OPTIONS).payload(listing))["attributes"]
    assert errors_of(bracelet_validator(), attributes) == []


@pytest.mark.parametrize(
    "name",
    [
        "item_name",
        "brand",
        "product_description",
        "bullet_point",
        "condition_type",
        "part_number",
        "externally_assigned_product_identifier",
        "main_product_image_locator",
        "other_product_image_locator_1",
        "list_price",
        "purchasable_offer",
        "fulfillment_availability",
        "color",
        "size",
    ],
)
def test_amazon_each_built_attribute_matches_its_property_schema(name: str) -> None:
    attributes = wire(AmazonConnector(AMAZON_OPTIONS).payload(AMAZON_CASES["on sale"]))["attributes"]
    assert name in attributes
    assert errors_of(bracelet_property_validator(name), {name: attributes[name]}) == []


@pytest.mark.parametrize("kind", ["price", "stock"])
def test_amazon_patch_bodies_are_listings_item_patch_requests(kind: str) -> None:
    connector = AmazonConnector(AMAZON_OPTIONS)
    listing = AMAZON_CASES["on sale"]
    body = wire(connector.price_payload(listing) if kind == "price" else connector.stock_payload(listing))
    assert errors_of(listings_items_validator("ListingsItemPatchRequest"), body) == []
    for patch in body["patches"]:
        name = patch["path"].removeprefix("/attributes/")
        assert errors_of(bracelet_property_validator(name), {name: patch["value"]}) == []


def test_amazon_merged_price_and_stock_patch_is_one_valid_request() -> None:
    [body] = AmazonConnector(AMAZON_OPTIONS).payloads_for("update", ["price", "stock"], bracelet(), "BR-1")
    assert errors_of(listings_items_validator("ListingsItemPatchRequest"), wire(body)) == []


def test_amazon_feed_document_and_each_message_match_the_listings_feed_schemas() -> None:
    connector = AmazonConnector(AMAZON_OPTIONS)
    kinds: list[ChangeKind] = ["create", "content", "price", "stock", "delete"]
    messages = [connector.feed_message(AMAZON_CASES["on sale"], n, kind) for n, kind in enumerate(kinds, 1)]
    message_validator = jsonschema.Draft7Validator(amazon_spec("listings-feed-message-schema-v2.json"))
    for message in messages:
        assert errors_of(message_validator, wire(message)) == []
    document = wire(connector.feed_document(messages))
    assert errors_of(jsonschema.Draft7Validator(amazon_spec("listings-feed-schema-v2.json")), document) == []


@pytest.mark.parametrize(
    ("attribute", "value", "complaint"),
    [
        ("product_description", [{"value": "é" * 10_001, "language_tag": "en_US"}], "UTF-8 bytes"),
        ("item_name", [{"value": "no language tag"}], "'language_tag' is a required property"),
        ("condition_type", [{"value": "brand_new"}], "is not one of"),
        ("list_price", [{"currency": "USD", "value": Decimal("134.901")}], "is not a multiple of"),
    ],
)
def test_the_amazon_validator_rejects_what_amazon_would(attribute: str, value: Any, complaint: str) -> None:
    """Guards the guard: a validator that accepts everything would make the tests above pass too."""
    assert any(
        complaint in error for error in errors_of(bracelet_property_validator(attribute), {attribute: value})
    )


# -- Google ------------------------------------------------------------------------------------

_FIELD = re.compile(r"^\s*(?:optional\s+|repeated\s+)?[\w.]+\s+(?P<name>\w+)\s*=\s*\d+")


@cache
def proto_text(name: str) -> str:
    return (SPECS / "google" / "merchantapi" / name).read_text(encoding="utf-8")


def proto_block(text: str, kind: str, name: str) -> list[str]:
    """The lines of one message or enum, nested declarations included, comments removed."""
    match = re.search(rf"^\s*{kind} {name} \{{", text, re.MULTILINE)
    assert match, f"{kind} {name} not found"
    lines, depth = [], 1
    for line in text[match.end() :].splitlines()[1:]:
        code = line.split("//")[0]
        depth += code.count("{") - code.count("}")
        if depth <= 0:
            break
        lines.append(("  " * depth) + code.strip())
    return lines


def proto_fields(file: str, message: str) -> set[str]:
    """Field names declared directly in a message (not in the messages nested inside it)."""
    return {
        m["name"]
        for line in proto_block(proto_text(file), "message", message)
        if line.startswith("  ") and not line.startswith("    ") and (m := _FIELD.match(line))
    }


def proto_enum(file: str, enum: str) -> set[str]:
    lines = proto_block(proto_text(file), "enum", enum)
    return {m[1] for line in lines if (m := re.match(r"\s*(\w+)\s*=", line))}


def snake(name: str) -> str:
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def google_listing(**changes: Any) -> Listing:
    fields: dict[str, Any] = {
        "title": "Acme Runner Sneaker Blue M",
        "description": "Light and comfortable.",
        "condition": "new",
        "brand": "Acme",
        "gtin": "4006381333931",
        "mpn": "RUN-1",
        "images": ["https://img.example/1.jpg", "https://img.example/2.jpg"],
        "attributes": {
            "color": "Blue",
            "size": "M",
            "gender": "female",
            "ageGroup": "adult",
            "size_types": ["regular"],
            "Voltage": "110V",
        },
    }
    fields.update(changes.pop("fields", {}))
    base: dict[str, Any] = dict(
        sku_id="SKU-10",
        product_id="P-1",
        marketplace="google",
        category="187",
        fields=fields,
        price=Decimal("134.90"),
        sale_price=Decimal("99.90"),
        currency="USD",
        quantity=3,
        group="P-1",
    )
    return Listing(**{**base, **changes})


GOOGLE = GoogleConnector({"link_template": "https://shop.example/p/{sku_id}", "account": "123"})


def test_google_product_input_uses_only_proto_fields() -> None:
    body = wire(GOOGLE.payload(google_listing()))
    assert {snake(key) for key in body} <= proto_fields("productinputs.proto", "ProductInput")
    assert {snake(key) for key in body["productAttributes"]} <= proto_fields(
        "products_common.proto", "ProductAttributes"
    )
    price_fields = proto_fields("types.proto", "Price")
    for key in ("price", "salePrice"):
        assert {snake(k) for k in body["productAttributes"][key]} <= price_fields
    custom_fields = proto_fields("types.proto", "CustomAttribute")
    assert body["customAttributes"]
    assert all({snake(k) for k in custom} <= custom_fields for custom in body["customAttributes"])


def test_google_product_input_has_the_fields_the_proto_marks_required() -> None:
    message = "\n".join(proto_block(proto_text("productinputs.proto"), "message", "ProductInput"))
    required = set(re.findall(r"(\w+) = \d+ \[\s*\(google\.api\.field_behavior\) = REQUIRED", message))
    assert required == {"offer_id", "content_language", "feed_label"}
    assert required <= {snake(key) for key in GOOGLE.payload(google_listing())}


@pytest.mark.parametrize(
    ("field", "enum"),
    [
        ("availability", "Availability"),
        ("condition", "Condition"),
        ("gender", "Gender"),
        ("ageGroup", "AgeGroup"),
        ("sizeTypes", "SizeType"),
    ],
)
def test_google_enumerations_are_proto_enum_values(field: str, enum: str) -> None:
    for listing in (google_listing(), google_listing(quantity=0)):
        value = GOOGLE.payload(listing)["productAttributes"][field]
        for item in value if isinstance(value, list) else [value]:
            assert item in proto_enum("products_common.proto", enum) - {f"{snake(enum).upper()}_UNSPECIFIED"}


def test_google_prices_are_int64_micros_strings() -> None:
    attributes = wire(GOOGLE.payload(google_listing()))["productAttributes"]
    for key in ("price", "salePrice"):
        assert re.fullmatch(r"[0-9]+", attributes[key]["amountMicros"])


@pytest.mark.parametrize("kind", ["price", "stock"])
def test_google_update_masks_name_product_attributes_the_body_carries(kind: GoogleChangeKind) -> None:
    given = google_listing()
    body = GOOGLE.price_payload(given) if kind == "price" else GOOGLE.stock_payload(given)
    paths = GOOGLE.update_mask_for(kind).split(",")
    attribute_fields = proto_fields("products_common.proto", "ProductAttributes")
    for path in paths:
        head, _, field = path.partition(".")
        assert snake(head) in proto_fields("productinputs.proto", "ProductInput")
        assert snake(field) in attribute_fields
    assert {f"productAttributes.{key}" for key in body["productAttributes"]} <= set(paths)


def test_google_sample_category_is_in_the_published_taxonomy() -> None:
    taxonomy = (SPECS / "google" / "taxonomy-with-ids.en-US.txt").read_text(encoding="utf-8")
    ids = {line.split(" - ", 1)[0] for line in taxonomy.splitlines() if not line.startswith("#")}
    category = google_listing().category
    assert GOOGLE.validate_category(category) is None
    assert category in ids


# -- Mercado Libre -----------------------------------------------------------------------------


@cache
def items_md() -> str:
    return (SPECS / "mercadolibre" / "ITEMS.md").read_text(encoding="utf-8")


def items_md_section(number: int) -> str:
    match = re.search(rf"^## {number}\..*?(?=^## )", items_md(), re.MULTILINE | re.DOTALL)
    assert match, f"section {number} of ITEMS.md not found"
    return match.group(0)


@cache
def post_items_fields() -> dict[str, tuple[str, list[str]]]:
    """Field -> (documented type, backticked values in its notes) from the POST /items table."""
    fields: dict[str, tuple[str, list[str]]] = {}
    for line in items_md_section(1).splitlines():
        if not line.startswith("| `"):
            continue
        cells = [cell.strip() for cell in line.strip("|").split("|")]
        for name in re.findall(r"`(\w+)`", cells[0]):
            fields[name] = (cells[1], re.findall(r"`(\w+)`", " ".join(cells[2:])))
    return fields


PYTHON_TYPES: dict[str, tuple[type, ...]] = {
    "string": (str,),
    "number": (int, Decimal),
    "integer": (int,),
    "array": (list,),
    "object": (dict,),
}
POST_ITEMS_REQUIRED = [
    "title",
    "category_id",
    "price",
    "currency_id",
    "available_quantity",
    "buying_mode",
    "listing_type_id",
    "condition",
    "pictures",
    "attributes",
]


def ml_listing(sku_id: str = "SKU-10", **changes: Any) -> Listing:
    fields: dict[str, Any] = {
        "title": "Tênis Acme Runner",
        "description": "Leve e confortável",
        "condition": "new",
        "brand": "Acme",
        "gtin": "4006381333931",
        "images": [f"https://img.example/{sku_id}.jpg"],
        "attributes": {"COLOR": "Azul", "SIZE": "M"},
        "sale_terms": {"WARRANTY_TIME": "90 days"},
    }
    fields.update(changes.pop("fields", {}))
    base: dict[str, Any] = dict(
        sku_id=sku_id,
        product_id="1",
        marketplace="mercadolibre",
        category="MLB23332",
        fields=fields,
        price=Decimal("134.90"),
        currency="BRL",
        quantity=12,
    )
    return Listing(**{**base, **changes})


def ml_family() -> dict[str, Any]:
    members = [
        ml_listing("SKU-10", axes={"COLOR": "Azul", "SIZE": "M"}),
        ml_listing(
            "SKU-11",
            price=Decimal("139.90"),
            fields={"gtin": "4006381333948"},
            axes={"COLOR": "Preto", "SIZE": "G"},
        ),
    ]
    body = MercadoLibreConnector().family_payload(members)
    assert body is not None
    return body


def assert_attribute_shape(attribute: dict[str, Any]) -> None:
    """``{id, value_id | value_name}``, the form ITEMS.md gives for attributes and sale terms."""
    assert set(attribute) - {"id"} in ({"value_name"}, {"value_id"}), attribute
    assert all(isinstance(value, str) and value for value in attribute.values())


@pytest.mark.parametrize(
    "body", [MercadoLibreConnector().payload(ml_listing()), ml_family()], ids=["single", "family"]
)
def test_mercadolibre_post_items_body_has_the_documented_fields_and_shapes(body: dict[str, Any]) -> None:
    documented = post_items_fields()
    assert set(POST_ITEMS_REQUIRED) <= set(documented), "ITEMS.md no longer lists a field we send"
    sent = wire(body)
    assert [name for name in POST_ITEMS_REQUIRED if name not in sent] == []
    assert set(sent) <= set(documented)
    for name, value in sent.items():
        kind = documented[name][0]
        if kind in PYTHON_TYPES:
            assert isinstance(value, PYTHON_TYPES[kind]) and not isinstance(value, bool), (name, value)
    assert sent["condition"] in documented["condition"][1]
    assert sent["buying_mode"] in documented["buying_mode"][1]
    assert all(
        set(picture) == {"source"} and picture["source"].startswith("https://")
        for picture in sent["pictures"]
    )
    for attribute in sent["attributes"] + sent.get("sale_terms", []):
        assert_attribute_shape(attribute)
    assert set(sent["description"]) == {"plain_text"}


def test_mercadolibre_variations_follow_the_documented_legacy_model() -> None:
    block = re.search(r"```json\n(.*?)```", items_md_section(3), re.DOTALL)
    assert block
    documented = json.loads("{" + block.group(1) + "}")["variations"][0]
    body = wire(ml_family())
    sources = {picture["source"] for picture in body["pictures"]}
    combinations = set()
    for variation in body["variations"]:
        assert set(variation) == set(documented)
        for attribute in variation["attribute_combinations"] + variation["attributes"]:
            assert_attribute_shape(attribute)
        assert set(variation["picture_ids"]) <= sources
        combinations.add(frozenset(a["id"] for a in variation["attribute_combinations"]))
    assert len(combinations) == 1, "every variation must carry the same attribute_combinations ids"
    prices = {variation["price"] for variation in body["variations"]}
    assert len(prices) == 1, "all variations share one price"
    assert "All variations must have the same price" in items_md()


def test_mercadolibre_updates_send_only_the_changed_fields_ITEMS_md_names() -> None:
    example = json.loads(re.search(r"`(\{ \"price\".*?\})`", items_md_section(2)).group(1))  # type: ignore[union-attr]
    connector, listing = MercadoLibreConnector(), ml_listing()
    assert set(connector.price_payload(listing)) | set(connector.stock_payload(listing)) == set(example)
    assert connector.delete_payload(listing.sku_id) == {"status": "paused"}
    assert '"paused"' in items_md_section(2)
