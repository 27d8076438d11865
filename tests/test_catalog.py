"""The canonical catalog: what a VTEX record becomes, and what rules can read of it."""

from __future__ import annotations

import copy
import json
import pickle
from decimal import Decimal
from typing import Any

import pytest
from pydantic import BaseModel

from engine._diagnostics import TradepostError
from engine.model._catalog import (
    CatalogRecord,
    Dimensions,
    Image,
    MalformedRecord,
    Price,
    Product,
    Sku,
    Stock,
    WarehouseStock,
)
from engine.rules._types import record_from_model

# One SKU as the VTEX source connector writes it to the catalog file: ids as VTEX's JSON
# integers, prices as JSON floats, specifications as VTEX's value lists.
VTEX_LIKE: dict[str, Any] = {
    "product": {
        "id": 2001426,
        "ref_id": "0987",
        "name": "Tênis Runner",
        "description": "<p>Leve e <b>confortável</b></p>",
        "brand": "Passo Firme",
        "brand_id": 2000018,
        "category_path": ["Apparel", "Shoes", "Sneakers"],
        "category_id": "10",
        "specs": {"Material": ["Couro", "Borracha"], "Faixa Etária": "Adulto", "Garantia": "", "Meses": 12},
        "collections": ["Black Friday", "Lançamentos"],
        "link": "tenis-runner",
        "keywords": "tênis, corrida , runner",
        "some_field_from_a_newer_version": 1,
    },
    "sku": {
        "id": 2001773,
        "product_id": 2001426,
        "ref_id": "878181",
        "name": "Azul M 110V",
        "ean": "7891234567895",
        "mpn": "RUN-AZ-M",
        "active": True,
        "specs": {"Cor": ["Azul"], "Tamanho": "M", "Voltagem": "110V"},
        "images": [
            {"url": "https://example.vteximg.com.br/arquivos/ids/168952/1.jpg", "label": None},
            {"url": "https://example.vteximg.com.br/arquivos/ids/168953/2.jpg", "is_main": True},
        ],
        "dimensions": {"height": 12, "width": 30.5, "length": 20, "weight": 850.25},
        "unit_multiplier": 1.0,
    },
    "price": {"selling": 199.9, "list": 249.9, "base": "180", "cost": 89.95, "promotional": None},
    "stock": {
        "warehouses": [
            {"warehouse": "main", "quantity": 10, "reserved": 3, "unlimited": False},
            {"warehouse": "sp_cd", "quantity": -4, "reserved": 0},
            {"warehouse": "dropship", "quantity": 5, "reserved": 7},
        ]
    },
}


def vtex_like(**changes: Any) -> dict[str, Any]:
    """A deep copy of VTEX_LIKE with dotted paths replaced: vtex_like(**{"price.selling": -1})."""
    data = copy.deepcopy(VTEX_LIKE)
    for path, value in changes.items():
        *parents, last = path.split(".")
        node = data
        for key in parents:
            node = node[key]
        node[last] = value
    return data


def test_parses_a_vtex_like_record_into_rule_vocabulary() -> None:
    record = CatalogRecord.parse(VTEX_LIKE)

    assert record.product.id == "2001426"
    assert record.product.brand == "Passo Firme"
    assert record.product.brand_id == "2000018"
    assert record.product.category_path == ("Apparel", "Shoes", "Sneakers")
    assert record.product.category == "Apparel/Shoes/Sneakers"
    assert record.product.specs == {
        "Material": "Couro, Borracha",
        "Faixa Etária": "Adulto",
        "Garantia": None,
        "Meses": "12",
    }
    assert record.product.collections == ("Black Friday", "Lançamentos")
    assert record.product.keywords == ("tênis", "corrida", "runner")
    assert record.product.active is True
    assert record.sku.id == "2001773"
    assert record.sku.product_id == "2001426"
    assert record.sku.specs.get("Cor") == "Azul"
    assert record.sku.specs.get("Tamanho") == "M"
    assert record.sku.specs.get("Sabor") is None
    assert record.sku.main_image == "https://example.vteximg.com.br/arquivos/ids/168953/2.jpg"
    assert record.sku.images[0].is_main is False
    assert record.sku.dimensions.width == Decimal("30.5")
    assert record.sku.dimensions.weight == Decimal("850.25")
    assert (record.sku.dimensions.dimension_unit, record.sku.dimensions.weight_unit) == ("cm", "g")
    assert record.price.base == Decimal("180")
    assert record.price.promotional is None


@pytest.mark.parametrize(
    ("given", "expect"),
    [
        (19.9, Decimal("19.9")),
        (0.1, Decimal("0.1")),
        (134.2, Decimal("134.2")),
        (89.95, Decimal("89.95")),
        (0.1 + 0.2, Decimal("0.30000000000000004")),  # the float's own digits, nothing invented
        ("12.50", Decimal("12.50")),
        (10, Decimal("10")),
        (Decimal("7.77"), Decimal("7.77")),
    ],
)
def test_money_is_the_exact_decimal_the_json_shows(given: object, expect: Decimal) -> None:
    price = Price.model_validate({"selling": given, "cost": given})
    assert isinstance(price.selling, Decimal)
    assert str(price.selling) == str(expect)  # "12.50" keeps its trailing zero
    assert price.cost == expect


def test_parse_json_keeps_digits_a_float_would_lose() -> None:
    line = json.dumps(VTEX_LIKE).replace('"selling": 199.9', '"selling": 199.900000000000000001')
    record = CatalogRecord.parse_json(line)
    assert record.price.selling == Decimal("199.900000000000000001")
    assert record.price.list == Decimal("249.9")


@pytest.mark.parametrize(
    ("quantity", "reserved", "available"),
    [
        (10, 3, 7),
        (3, 3, 0),
        (2, 5, 0),  # more reserved than on hand: nothing to sell, not a debt
        (-4, 0, 0),  # negative stock from broken VTEX data stays representable
        (0, 0, 0),
    ],
)
def test_warehouse_available_is_on_hand_minus_reserved_floored_at_zero(
    quantity: int, reserved: int, available: int
) -> None:
    warehouse = WarehouseStock(warehouse="main", quantity=quantity, reserved=reserved)
    assert warehouse.quantity == quantity
    assert warehouse.available == available


def test_stock_floors_each_warehouse_before_summing() -> None:
    stock = CatalogRecord.parse(VTEX_LIKE).stock
    # main 10-3=7, sp_cd -4 -> 0, dropship 5-7 -> 0: the broken warehouses do not eat main's 7.
    assert stock.available == 7
    assert stock.quantity == 10 - 4 + 5
    assert stock.reserved == 10
    assert stock.unlimited is False


@pytest.mark.parametrize(
    ("warehouses", "available"),
    [
        (None, 7 + 2 + 8),
        (["main"], 7),
        (["sp_cd"], 2),
        (["main", "sp_cd"], 9),
        ({"sp_cd", "nowhere"}, 2),
        ([], 0),
        ("main", 7),  # a lone id, not the characters of one
        ("m", 8),
    ],
)
def test_available_in_counts_only_the_allocated_warehouses(
    warehouses: list[str] | set[str] | str | None, available: int
) -> None:
    stock = Stock(
        warehouses=(
            WarehouseStock(warehouse="main", quantity=10, reserved=3),
            WarehouseStock(warehouse="sp_cd", quantity=2),
            WarehouseStock(warehouse="m", quantity=8),
        )
    )
    assert stock.available_in(warehouses) == available


def test_unlimited_is_a_flag_not_a_quantity() -> None:
    stock = Stock(
        warehouses=(
            WarehouseStock(warehouse="main", quantity=0, unlimited=True),
            WarehouseStock(warehouse="sp_cd", quantity=4, reserved=1),
        )
    )
    assert stock.available == 3
    assert stock.unlimited is True
    assert stock.unlimited_in(["main"]) is True
    assert stock.unlimited_in(["sp_cd"]) is False


@pytest.mark.parametrize(
    ("changes", "path"),
    [
        ({"price.selling": -1}, "price.selling"),
        ({"price.selling": "abc"}, "price.selling"),
        ({"price.selling": float("nan")}, "price.selling"),
        ({"price.selling": True}, "price.selling"),
        ({"price.cost": float("inf")}, "price.cost"),
        ({"price.list": -0.01}, "price.list"),
        ({"sku.active": "maybe"}, "sku.active"),
        ({"sku.specs": {"Cor": {"nested": "object"}}}, "sku.specs.Cor"),
        ({"sku.dimensions": {"weight": 1, "weight_unit": "kg"}}, "sku.dimensions.weight_unit"),
        ({"sku.unit_multiplier": 0}, "sku.unit_multiplier"),
        ({"product.name": None}, "product.name"),
        ({"stock.warehouses": [{"warehouse": "main", "quantity": 1.5}]}, "stock.warehouses[0].quantity"),
        (
            {"stock.warehouses": [{"warehouse": "main", "quantity": 1, "reserved": -1}]},
            "stock.warehouses[0].reserved",
        ),
        ({"sku.product_id": "999"}, "sku.product_id"),
    ],
)
def test_malformed_records_name_the_field(changes: dict[str, Any], path: str) -> None:
    with pytest.raises(MalformedRecord) as caught:
        CatalogRecord.parse(vtex_like(**changes))
    error = caught.value
    assert error.sku_id == "2001773"
    assert [p for p, _ in error.errors] == [path]
    assert path in str(error)


def test_malformed_record_collects_every_problem_and_its_line() -> None:
    data = vtex_like(**{"price.selling": -5, "sku.active": None})
    del data["product"]["name"]
    with pytest.raises(MalformedRecord) as caught:
        CatalogRecord.parse(data, line=42)
    error = caught.value
    assert dict(error.errors) == {
        "product.name": "is required",
        "sku.active": "must be true or false (got None)",
        "price.selling": "must be >= 0 (got -5)",
    }
    assert error.line == 42
    assert isinstance(error, TradepostError)
    assert str(error).startswith("malformed catalog SKU 2001773 (line 42): ")


@pytest.mark.parametrize(
    "data",
    [[1, 2], "text", None, {"sku": "not an object"}, {"sku": {"id": True}}, vtex_like(**{"sku.id": ""})],
)
def test_malformed_record_without_a_readable_sku_id(data: object) -> None:
    with pytest.raises(MalformedRecord) as caught:
        CatalogRecord.parse(data)
    assert caught.value.sku_id is None
    assert caught.value.errors


def test_parse_json_reports_broken_json_as_malformed() -> None:
    with pytest.raises(MalformedRecord) as caught:
        CatalogRecord.parse_json('{"sku": ', line=7)
    assert caught.value.line == 7
    assert caught.value.errors[0][0] == ""
    assert "not valid JSON" in caught.value.errors[0][1]


def test_malformed_record_survives_pickling() -> None:
    with pytest.raises(MalformedRecord) as caught:
        CatalogRecord.parse(vtex_like(**{"price.selling": -1}), line=3)
    copied = pickle.loads(pickle.dumps(caught.value))
    assert (copied.sku_id, copied.errors, copied.line) == ("2001773", caught.value.errors, 3)


def test_records_are_frozen() -> None:
    record = CatalogRecord.parse(VTEX_LIKE)
    with pytest.raises(ValueError, match="frozen"):
        record.price.selling = Decimal(1)  # type: ignore[misc]


def test_minimal_record_takes_documented_defaults() -> None:
    record = CatalogRecord.parse(
        {
            "product": {"id": "1", "name": "Caneca"},
            "sku": {"id": "2", "product_id": "1", "active": False},
            "price": {"selling": 30},
        }
    )
    assert record.product.brand is None
    assert record.product.category == ""
    assert record.sku.ean is None
    assert record.sku.unit_multiplier == Decimal(1)
    assert record.sku.main_image is None
    assert record.sku.dimensions == Dimensions()
    assert record.stock.available == 0
    assert record.stock.available_in(["main"]) == 0


def test_dump_and_parse_round_trip_is_exact() -> None:
    record = CatalogRecord.parse(VTEX_LIKE)
    again = CatalogRecord.parse_json(record.model_dump_json())
    assert again == record
    assert again.price.selling == Decimal("199.9")


# What rule authors type, and the rule-language type the compiler must see for it.
EXPOSED: dict[type[BaseModel], dict[str, str]] = {
    Product: {
        "id": "string",
        "ref_id": "string or null",
        "name": "string",
        "description": "string",
        "brand": "string or null",
        "brand_id": "string or null",
        "category_path": "list of string",
        "category": "string",
        "category_id": "string or null",
        "specs": "map of string or null",
        "collections": "list of string",
        "link": "string or null",
        "keywords": "list of string",
        "active": "bool",
    },
    Sku: {
        "id": "string",
        "product_id": "string",
        "ref_id": "string or null",
        "name": "string",
        "ean": "string or null",
        "mpn": "string or null",
        "active": "bool",
        "specs": "map of string or null",
        "images": "list of image",
        "main_image": "string or null",
        "dimensions": "dimensions",
        "unit_multiplier": "number",
        "measurement_unit": "string",
    },
    Image: {"url": "string", "label": "string or null", "is_main": "bool"},
    Dimensions: {
        "height": "number or null",
        "width": "number or null",
        "length": "number or null",
        "weight": "number or null",
        "dimension_unit": "string",
        "weight_unit": "string",
    },
    Price: {
        "selling": "number",
        "list": "number or null",
        "base": "number or null",
        "cost": "number or null",
        "promotional": "number or null",
    },
    WarehouseStock: {
        "warehouse": "string",
        "quantity": "number",
        "reserved": "number",
        "unlimited": "bool",
        "available": "number",
    },
    Stock: {
        "warehouses": "list of warehousestock",
        "available": "number",
        "quantity": "number",
        "reserved": "number",
        "unlimited": "bool",
    },
    CatalogRecord: {"product": "product", "sku": "sku", "price": "price", "stock": "stock"},
}


@pytest.mark.parametrize("model", list(EXPOSED), ids=lambda m: m.__name__)
def test_rule_language_sees_the_documented_fields(model: type[BaseModel]) -> None:
    record = record_from_model(model)
    assert {name: str(type_) for name, type_ in record.fields.items()} == EXPOSED[model]
    undocumented = [name for name, doc in record.docs.items() if not doc.strip()]
    assert undocumented == []


def test_docs_reference_every_field() -> None:
    """docs/catalog.md is the reference users read; a field missing there is a field nobody finds."""
    from pathlib import Path

    text = (Path(__file__).resolve().parents[1] / "docs" / "catalog.md").read_text(encoding="utf-8")
    for model, fields in EXPOSED.items():
        for name in fields:
            assert f"| `{name}` |" in text, f"{model.__name__}.{name} is missing from docs/catalog.md"
