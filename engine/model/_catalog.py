"""The canonical catalog: one VTEX SKU with its product, price and stock.

Every rule file reads the store through these models, so their field names are
the vocabulary rule authors type (``product.brand``, ``sku.specs.Cor``,
``price.selling``, ``stock.available``) and their ``Field`` descriptions are
what ``tradepost explain``, the docs and "did you mean" hints show. The rule
compiler derives rule-language types from the annotations
(:func:`engine.rules._types.record_from_model`), so annotations stay plain: ``str``,
``bool``, ``int``, ``Decimal``, ``X | None``, ``tuple[X, ...]``,
``dict[str, X]`` and nested models, each possibly ``Annotated`` with the limits of
docs/catalog.md ("Limits"), which every source's records meet or are malformed.

Each class docstring names the VTEX field every canonical field comes from, so
the VTEX source connector is a mapping and not a guess. The models are frozen
and carry no heavy validators: a catalog of a million SKUs is parsed once per
run, one :class:`CatalogRecord` per line of a JSONL file.

Units and money are fixed here, not per store: lengths are centimetres,
weights grams, money ``Decimal`` in the currency the rule file declares. A
connector whose store is configured otherwise converts before building a
record.
"""

from __future__ import annotations

import itertools
import json
import re
import sys
from array import array
from collections.abc import Callable, Collection, Mapping
from decimal import Decimal
from typing import Annotated, Any, Literal, TypeAlias

from pydantic import (
    AfterValidator,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    model_validator,
)
from pydantic_core import ErrorDetails, PydanticCustomError

from engine._diagnostics import TradepostError

__all__ = [
    "JSON_DECODER",
    "MAX_AMOUNT",
    "MAX_CATEGORY_DEPTH",
    "MAX_DECIMALS",
    "MAX_DEPTH",
    "MAX_ENTRIES",
    "MAX_ID",
    "MAX_QUANTITY",
    "MAX_TEXT",
    "CatalogRecord",
    "Dimensions",
    "Image",
    "JsonLimitError",
    "MalformedRecord",
    "Price",
    "Product",
    "Sku",
    "Stock",
    "WarehouseStock",
    "printable_id",
    "raw_decode",
    "read_json",
    "too_deep",
]


_SPEC_SCALARS = (str, int, float, Decimal)


def _spec_value(value: object) -> object:
    if type(value) is list or type(value) is tuple:
        if not all(isinstance(v, _SPEC_SCALARS) and type(v) is not bool for v in value):
            return value  # let pydantic report the element that is not text
        joined = ", ".join(text for v in value if (text := str(v).strip()))
        return joined or None
    if type(value) is str and not value.strip():
        return None
    return value


def _join_specs(value: object) -> object:
    """Accept VTEX's multi-valued specifications and make blanks missing.

    VTEX returns every specification as a list (``FieldValues``); rules compare
    text, so ``["Iron", "Plastic"]`` becomes ``"Iron, Plastic"``. An empty list
    or a blank value becomes None, so that ``sku.specs.Cor ?? "Sem cor"`` treats
    a blank specification like a missing one.
    """
    if not isinstance(value, Mapping):
        return value
    for v in value.values():
        if type(v) is not str or not v or v.isspace():
            return {key: _spec_value(v) for key, v in value.items()}
    return value  # the common case, already clean: no copy


def _split_keywords(value: object) -> object:
    """VTEX ``KeyWords`` is one comma-separated string; rules want a list."""
    if isinstance(value, str):
        return tuple(word for part in value.split(",") if (word := part.strip()))
    return value


# JSON floats become the Decimal their text shows (19.9 -> Decimal('19.9'), never
# 19.899999999999998578...): pydantic-core converts a float through its shortest repr,
# and bools are refused. A Python BeforeValidator doing the same doubled the cost of
# validating a price, so tests pin pydantic's behaviour instead (test_catalog.py).
# Limits on what one record may hold (docs/catalog.md, "Limits"). A record past one is
# malformed, with the field and the limit named, never a crash further on: an amount of
# 1e400 cannot be rounded to cents, a category path of 100,000 names costs the category
# matcher minutes, and a string with a lone surrogate (``"\\ud800"`` in JSON) cannot be
# printed or sent anywhere. Constrained strings are checked by pydantic-core, which refuses
# a lone surrogate by itself ("string_unicode"), so every text field carries a limit.
MAX_TEXT = 100_000
"""Characters in any text field (a description included)."""
MAX_ID = 128
"""Characters in an id (product, SKU, warehouse)."""
MAX_CATEGORY_DEPTH = 20
"""Names in a category path."""
MAX_ENTRIES = 1_000
"""Entries in any other list or map (images, specifications, collections, keywords, warehouses)."""
MAX_AMOUNT = 10**12
"""Amounts and measures are below this: at most 12 digits before the decimal point."""
MAX_DECIMALS = 20
"""A non-zero amount or measure is at least 10**-MAX_DECIMALS: 1e-999999 would pass the range
check and overflow the first division by it."""
MAX_QUANTITY = 10**9
"""Units in one warehouse, either way."""

Text = Annotated[str, Field(max_length=MAX_TEXT)]


def _not_tiny(value: Decimal) -> Decimal:
    # adjusted() is the exponent of the leading digit, a C call; pydantic's decimal_places
    # would go through normalize() and as_tuple() in Python, 1 µs a field.
    if value and value.adjusted() < -MAX_DECIMALS:
        raise PydanticCustomError(_TOO_SMALL, "must be 0 or at least {smallest}", {"smallest": _SMALLEST})
    return value


_TOO_SMALL = "amount_too_small"
_SMALLEST = f"1e-{MAX_DECIMALS}"


class _MoneyMark:
    """Marks an amount of money: the rule language writes it with its currency's minor units."""

    money = True


Money = Annotated[
    Decimal, Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_not_tiny), _MoneyMark()
]
"""An amount in the rule file's currency: exact, finite, never negative, below 10**12."""

Measure = Annotated[Decimal, Field(ge=0, lt=MAX_AMOUNT, allow_inf_nan=False), AfterValidator(_not_tiny)]
"""A length in centimetres or a weight in grams."""

Specs = Annotated[
    dict[Annotated[str, Field(max_length=MAX_TEXT)], Text | None],
    BeforeValidator(_join_specs),
    Field(max_length=MAX_ENTRIES),
]
"""Specification name -> value; multi-valued VTEX specifications joined with ", "."""

Id = Annotated[str, Field(min_length=1, max_length=MAX_ID)]

Code = Annotated[str, Field(max_length=MAX_ID)]
"""An id that may be blank (a brand or category id)."""


class _Model(BaseModel):
    # Frozen: a record is evaluated by many rules and must not change under them.
    # extra="ignore": the catalog file may carry fields a newer version added.
    # coerce_numbers_to_str: VTEX ids are JSON integers; ours are text.
    model_config = ConfigDict(frozen=True, extra="ignore", coerce_numbers_to_str=True)


class Product(_Model):
    """What all SKUs of one VTEX product share.

    VTEX sources (``GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}``,
    "Get SKU and context", unless noted; ``GET /api/catalog/pvt/product/{productId}`` in brackets):

    - ``id``: ``ProductId`` [``Id``]
    - ``ref_id``: ``ProductRefId`` [``RefId``]
    - ``name``: ``ProductName`` [``Name``]
    - ``description``: ``ProductDescription`` [``Description``]; HTML allowed by VTEX, kept as is
    - ``brand``: ``BrandName``; ``brand_id``: ``BrandId`` [``BrandId``]
    - ``category_path``: ``ProductCategories`` (id -> name), ordered root to leaf by the ids in
      ``ProductCategoryIds`` (``"/1/10/"``); ``category_id``: the last id there [``CategoryId``]
    - ``specs``: ``ProductSpecifications[].FieldName`` -> ``FieldValues`` (joined with ", ")
      [``GET /api/catalog_system/pvt/products/{productId}/specification``: ``Name`` -> ``Value``]
    - ``collections``: ``ProductClusterNames`` values (ids in ``ProductClustersIds``)
    - ``link``: ``DetailUrl`` without the leading ``/`` and trailing ``/p`` [``LinkId``]
    - ``keywords``: ``KeyWords`` [``KeyWords``], split on commas
    - ``active``: ``IsProductActive`` [``IsActive``]
    """

    id: Id = Field(description="VTEX product id; every SKU of the product has it as sku.product_id.")
    ref_id: Text | None = Field(default=None, description="The store's own reference code for the product.")
    name: Text = Field(description="Product name, without SKU details such as colour or size.")
    description: Text = Field(
        default="", description="Long description; may contain HTML, as VTEX allows it."
    )
    brand: Text | None = Field(
        default=None, description="Brand name; null only in broken records, so a rule can reject those."
    )
    brand_id: Code | None = Field(default=None, description="VTEX brand id.")
    category_path: tuple[Text, ...] = Field(
        default=(),
        max_length=MAX_CATEGORY_DEPTH,
        description='Category names from the root, e.g. ["Apparel", "Shoes", "Sneakers"].',
    )
    category_id: Code | None = Field(
        default=None, description="VTEX id of the product's own (deepest) category."
    )
    specs: Specs = Field(
        default_factory=dict,
        description='Product specifications by name; multiple values are joined with ", ", '
        "blank ones are null, and a name the product lacks gives null.",
    )
    collections: tuple[Text, ...] = Field(
        default=(),
        max_length=MAX_ENTRIES,
        description="Names of the VTEX collections (product clusters) the product belongs to.",
    )
    link: Text | None = Field(
        default=None, description="URL slug of the product page, e.g. 'stefan-janoski-canvas'."
    )
    keywords: Annotated[tuple[Text, ...], BeforeValidator(_split_keywords)] = Field(
        default=(),
        max_length=MAX_ENTRIES,
        description="Search keywords and synonyms the store registered for the product.",
    )
    active: bool = Field(
        default=True, description="Whether the product is active in VTEX; an inactive one sells no SKU."
    )

    @computed_field(  # type: ignore[prop-decorator]
        description='The category path joined with "/", e.g. "Apparel/Shoes/Sneakers"; the key '
        "the categories section of a rule file matches, most specific first."
    )
    @property
    def category(self) -> str:
        return "/".join(self.category_path)


class Image(_Model):
    """One SKU image.

    VTEX: ``Images[]`` of "Get SKU and context": ``url`` is ``ImageUrl``, ``label`` is
    ``ImageName`` (empty becomes None); ``is_main`` is true for the image whose URL is the
    top-level ``ImageUrl``, else for the first one.
    """

    url: Text = Field(description="Absolute URL of the full-size image.")
    label: Text | None = Field(default=None, description="Image label (alt text) given in VTEX, if any.")
    is_main: bool = Field(default=False, description="Whether this is the SKU's main image.")


class Dimensions(_Model):
    """Package size and weight used for shipping, in fixed units.

    VTEX: ``Dimension.height``, ``.width``, ``.length``, ``.weight`` of "Get SKU and context"
    (``PackagedHeight``, ``PackagedWidth``, ``PackagedLength``, ``PackagedWeightKg`` of
    ``GET /api/catalog/pvt/stockkeepingunit/{skuId}``): the shipping dimensions, not
    ``RealDimension``, because marketplaces quote freight on the package. VTEX stores weight
    "in the measurement unit configured in the store, by default grams"; the connector
    converts to grams and centimetres, so ``weight_unit`` and ``dimension_unit`` are constants
    a rule can read instead of a convention it must remember.
    """

    height: Measure | None = Field(default=None, description="Package height in centimetres.")
    width: Measure | None = Field(default=None, description="Package width in centimetres.")
    length: Measure | None = Field(default=None, description="Package length in centimetres.")
    weight: Measure | None = Field(default=None, description="Package weight in grams.")
    dimension_unit: Literal["cm"] = Field(
        default="cm", description='Unit of height, width and length: always "cm".'
    )
    weight_unit: Literal["g"] = Field(default="g", description='Unit of weight: always "g".')


class Sku(_Model):
    """One sellable VTEX SKU: the unit a marketplace listing or variation stands for.

    VTEX sources ("Get SKU and context",
    ``GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/{skuId}``):

    - ``id``: ``Id``; ``product_id``: ``ProductId``; ``name``: ``SkuName``
    - ``ref_id``: ``AlternateIds.RefId``; ``ean``: ``AlternateIds.Ean``
    - ``mpn``: ``ManufacturerCode`` (empty becomes None)
    - ``active``: ``IsActive``
    - ``specs``: ``SkuSpecifications[].FieldName`` -> ``FieldValues`` (joined with ", ")
    - ``images``: ``Images[]`` (see :class:`Image`); ``dimensions``: ``Dimension`` (see :class:`Dimensions`)
    - ``unit_multiplier``: ``UnitMultiplier``; ``measurement_unit``: ``MeasurementUnit``
    """

    id: Id = Field(description="VTEX SKU id: the key of the SKU in every marketplace and in the state store.")
    product_id: Id = Field(description="Id of the product this SKU belongs to; groups SKUs into variations.")
    ref_id: Text | None = Field(
        default=None, description="The store's own reference code (VTEX RefId) for the SKU."
    )
    name: Text = Field(default="", description='SKU name, usually its variation, e.g. "Azul M".')
    ean: Text | None = Field(
        default=None, description="EAN/GTIN barcode as registered in VTEX; not checked here."
    )
    mpn: Text | None = Field(default=None, description="Manufacturer part number (VTEX ManufacturerCode).")
    active: bool = Field(description="Whether the SKU is active in VTEX.")
    specs: Specs = Field(
        default_factory=dict,
        description='SKU specifications (variation axes) by name, e.g. {"Cor": "Azul", "Tamanho": "M"}; '
        'multiple values are joined with ", ", blank ones are null, and a name the SKU lacks gives null.',
    )
    images: tuple[Image, ...] = Field(
        default=(), max_length=MAX_ENTRIES, description="Images in the order the store arranged them."
    )
    dimensions: Dimensions = Field(
        default=Dimensions(), description="Package height, width, length (cm) and weight (g)."
    )
    unit_multiplier: Annotated[Decimal, AfterValidator(_not_tiny)] = Field(
        default=Decimal(1),
        gt=0,
        lt=MAX_AMOUNT,
        allow_inf_nan=False,
        description="Units sold together: 5 means sold in 5, 10, 15 …",
    )
    measurement_unit: Text = Field(default="un", description='Unit the SKU is sold in; "un" (unit) for most.')

    @computed_field(  # type: ignore[prop-decorator]
        description="URL of the main image (the first when none is marked main), or null without images."
    )
    @property
    def main_image(self) -> str | None:
        for image in self.images:
            if image.is_main:
                return image.url
        return self.images[0].url if self.images else None


class Price(_Model):
    """The SKU's prices in the rule file's trade policy, in the rule file's currency.

    VTEX sources (Pricing API; Checkout API for promotions):

    - ``selling``: ``sellingPrice`` of the trade policy's entry in ``GET /pricing/prices/{itemId}/computed``
      (or of ``.../computed/{tradePolicyId}`` when that list has none);
      it already includes any fixed price of the trade policy (``fixedPrices[]``), which VTEX
      applies over every other price rule
    - ``list``: ``listPrice`` of the same computed price (the "from" price); when absent, the
      fixed price's ``listPrice``, then ``listPrice`` of ``GET /pricing/prices/{itemId}``
    - ``base``: ``basePrice`` of ``GET /pricing/prices/{itemId}``
    - ``cost``: ``costPrice`` of ``GET /pricing/prices/{itemId}``
    - ``promotional``: ``items[].sellingPrice / 100`` of ``POST /api/checkout/pub/orderForms/simulation``
      (cents) for the trade policy, when promotions (``priceTags``) take it below ``selling``

    No currency field: the rule file declares it, and one catalog feeds several marketplaces.
    Negative or non-finite amounts make the record malformed rather than priced by accident.
    """

    selling: Money = Field(description="Price the store sells at in the trade policy, before promotions.")
    list: Money | None = Field(
        default=None, description='List ("from") price, shown struck through; null if not set.'
    )
    base: Money | None = Field(
        default=None, description="Base price from which VTEX price rules compute others."
    )
    cost: Money | None = Field(
        default=None, description="What the SKU costs the store; null if not registered."
    )
    promotional: Money | None = Field(
        default=None, description="Price after the promotions running now; null when no promotion applies."
    )


class WarehouseStock(_Model):
    """Inventory of the SKU in one VTEX warehouse.

    VTEX: ``balance[]`` of ``GET /api/logistics/pvt/inventory/skus/{skuId}``: ``warehouse`` is
    ``warehouseId``, ``quantity`` is ``totalQuantity``, ``reserved`` is ``reservedQuantity``,
    ``unlimited`` is ``hasUnlimitedQuantity``.

    ``quantity`` may be negative: broken VTEX data reports it, and refusing the record would
    hide the SKU instead of listing it with no stock. ``available`` never goes below zero.
    An unlimited warehouse is not turned into a made-up number here: ``available`` counts
    only the units on hand, and the stock step decides what unlimited means for a
    marketplace (usually its ``max``).
    """

    warehouse: Id = Field(description="VTEX warehouse id, as listed in the stock.warehouses of a rule file.")
    quantity: int = Field(
        ge=-MAX_QUANTITY,
        le=MAX_QUANTITY,
        description="Units on hand (VTEX totalQuantity); negative in broken data.",
    )
    reserved: int = Field(
        default=0, ge=0, le=MAX_QUANTITY, description="Units reserved by orders not yet dispatched."
    )
    unlimited: bool = Field(
        default=False, description="VTEX sells from this warehouse without ever running out."
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Units that can be sold: quantity minus reserved, never below zero "
        "(unlimited warehouses are not counted as more)."
    )
    @property
    def available(self) -> int:
        return max(0, self.quantity - self.reserved)


class Stock(_Model):
    """The SKU's inventory across warehouses.

    VTEX: ``GET /api/logistics/pvt/inventory/skus/{skuId}``, one :class:`WarehouseStock` per
    ``balance[]`` entry. Each warehouse is floored at zero before summing, so a warehouse with
    -3 units does not eat into another's stock.
    """

    warehouses: tuple[WarehouseStock, ...] = Field(
        default=(), max_length=MAX_ENTRIES, description="Inventory per warehouse."
    )

    @computed_field(  # type: ignore[prop-decorator]
        description="Units that can be sold across all warehouses: the sum of each warehouse's "
        "available (quantity minus reserved, at least zero)."
    )
    @property
    def available(self) -> int:
        return sum(w.available for w in self.warehouses)

    @computed_field(  # type: ignore[prop-decorator]
        description="Units on hand across all warehouses (may be negative in broken data)."
    )
    @property
    def quantity(self) -> int:
        return sum(w.quantity for w in self.warehouses)

    @computed_field(  # type: ignore[prop-decorator]
        description="Units reserved by orders across all warehouses."
    )
    @property
    def reserved(self) -> int:
        return sum(w.reserved for w in self.warehouses)

    @computed_field(  # type: ignore[prop-decorator]
        description="Whether any warehouse sells this SKU without limit."
    )
    @property
    def unlimited(self) -> bool:
        return any(w.unlimited for w in self.warehouses)

    def available_in(self, warehouse_ids: Collection[str] | None = None) -> int:
        """Units available in the given warehouses (all of them when None).

        A rule file's ``stock.warehouses`` allocates only some warehouses to a marketplace.
        Ids the SKU has no stock in count as zero: a warehouse can be new, or empty for it.
        """
        if warehouse_ids is None:
            return self.available
        wanted = _as_ids(warehouse_ids)
        return sum(w.available for w in self.warehouses if w.warehouse in wanted)

    def unlimited_in(self, warehouse_ids: Collection[str] | None = None) -> bool:
        """Whether any of the given warehouses (all when None) sells without limit."""
        if warehouse_ids is None:
            return self.unlimited
        wanted = _as_ids(warehouse_ids)
        return any(w.unlimited for w in self.warehouses if w.warehouse in wanted)


def _as_ids(warehouse_ids: Collection[str]) -> Collection[str]:
    # A lone string is a Collection[str] too; "main" must not match warehouse "m".
    return (warehouse_ids,) if isinstance(warehouse_ids, str) else warehouse_ids


MAX_DEPTH = 32
"""Objects and lists nested in one record, the record itself included (a record needs 4)."""
_NOT_BRACKET = bytes(set(range(256)) - set(b"[]{}"))
_STEPS = bytes.maketrans(b"[{]}", b"\x01\x01\xff\xff")  # as signed bytes: +1 in, -1 out
_TOO_MANY_OPEN = b"\x01" * (MAX_DEPTH + 1)
_ESCAPED = re.compile(rb"\\.", re.DOTALL)
_STRING = re.compile(rb'"[^"]*"')


class JsonLimitError(ValueError):
    """JSON text past a reading limit (too deep, a number out of range, NaN): the record is malformed."""


def _constant(name: str) -> object:
    raise JsonLimitError(f"{name} is not a JSON number")


# parse_float=Decimal and the default int parsing stay in C (a Python hook per number cost
# ~2 µs a record); what they raise past their own limits is turned into JsonLimitError below.
JSON_DECODER = json.JSONDecoder(parse_float=Decimal, parse_constant=_constant)
"""Numbers exact as ``Decimal``; ``NaN`` and ``Infinity`` refused. Use :func:`raw_decode` or
:func:`read_json`, which also turn a number past what Python holds into :class:`JsonLimitError`."""


def raw_decode(text: str, start: int) -> tuple[Any, int]:
    """``JSON_DECODER.raw_decode``, raising only ``JSONDecodeError``, :class:`JsonLimitError` and
    ``RecursionError`` (check :func:`too_deep` first where the extent of the text is known)."""
    try:
        return JSON_DECODER.raw_decode(text, start)
    except json.JSONDecodeError:
        raise
    except ArithmeticError:  # decimal.InvalidOperation: an exponent like 1e9999999999999999999
        raise JsonLimitError("a number is out of range (its exponent is past what a decimal holds)") from None
    except ValueError as error:
        if "integer string conversion" in str(error):  # CPython's limit on the digits of an int
            limit = sys.get_int_max_str_digits()
            raise JsonLimitError(f"a whole number has more than {limit} digits") from None
        raise


def read_json(text: str | bytes) -> Any:
    """Decode one JSON document within the reading limits, numbers exact as ``Decimal``.

    Raises ``ValueError`` (:class:`JsonLimitError` past a limit) with a reason a user can act
    on, never ``RecursionError`` or ``decimal.InvalidOperation``.
    """
    if too_deep(text):
        raise JsonLimitError(f"objects and lists are nested deeper than {MAX_DEPTH} levels")
    document = text.decode("utf-8") if isinstance(text, bytes) else text
    value, end = raw_decode(document, _skip_space(document, 0))
    if _skip_space(document, end) != len(document):
        raise json.JSONDecodeError("Extra data", document, end)
    return value


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


_SPACE = re.compile(r"[ \t\r\n]*")


def too_deep(text: str | bytes) -> bool:
    """Whether objects and lists nest deeper than :data:`MAX_DEPTH`, without decoding.

    Counting brackets settles almost every record (a rich one has about 20). Past that, the
    brackets outside strings become +1 and -1 and the deepest running sum is the depth the
    decoder would reach, all at C speed: about 20 ms for a 1 MiB record of brackets, whose
    decoding alone would take ten times as long.
    """
    if isinstance(text, str):
        if text.count("[") + text.count("{") <= MAX_DEPTH:
            return False
        data = text.encode("utf-8", "surrogatepass")
    else:
        if text.count(b"[") + text.count(b"{") <= MAX_DEPTH:
            return False
        data = text
    if b"\\" in data:
        data = _ESCAPED.sub(b"", data)
    brackets = _STRING.sub(b"", data).translate(_STEPS, _NOT_BRACKET)
    if _TOO_MANY_OPEN in brackets:  # the usual attack, found without summing
        return True
    return max(itertools.accumulate(array("b", brackets)), default=0) > MAX_DEPTH


class MalformedRecord(TradepostError):
    """A catalog record that does not fit the canonical model.

    The run goes on without the SKU; the source reports it with every problem found,
    each as (field path, message), e.g. ``("price.selling", "must be >= 0 (got -1)")``.
    """

    def __init__(
        self,
        sku_id: str | None,
        errors: list[tuple[str, str]],
        line: int | None = None,
        *,
        unavailable: bool = False,
        missing: bool = False,
    ) -> None:
        self.sku_id = sku_id
        self.errors = errors
        self.line = line
        self.unavailable = unavailable
        """The source could not be read for this SKU (VTEX did not answer), as opposed to data that
        is wrong: a later read may succeed, so order import retries instead of holding."""
        self.missing = missing
        """The source says it no longer has this SKU (VTEX answers 404 for it): the SKU left the
        catalog, so a sync of just this SKU withdraws it, as a full plan would."""
        where = f"SKU {sku_id}" if sku_id else "record with no readable SKU id"
        if line is not None:
            where += f" (line {line})"
        problems = "; ".join(f"{path}: {message}" if path else message for path, message in errors)
        super().__init__(f"malformed catalog {where}: {problems}")

    def __reduce__(
        self,
    ) -> tuple[
        Callable[..., MalformedRecord], tuple[str | None, list[tuple[str, str]], int | None, bool, bool]
    ]:
        # Rebuild from the fields, not the message, so the error survives worker processes.
        return (_rebuild_malformed, (self.sku_id, self.errors, self.line, self.unavailable, self.missing))


def _rebuild_malformed(
    sku_id: str | None, errors: list[tuple[str, str]], line: int | None, unavailable: bool, missing: bool
) -> MalformedRecord:
    return MalformedRecord(sku_id, errors, line, unavailable=unavailable, missing=missing)


class CatalogRecord(_Model):
    """One SKU with everything rules may read about it.

    The unit the catalog is streamed in (one JSON object per line of the catalog file) and
    the one the rule engine evaluates. Build it with :meth:`parse` or :meth:`parse_json`,
    which turn every validation problem into a :class:`MalformedRecord`.
    """

    product: Product = Field(description="The product the SKU belongs to.")
    sku: Sku = Field(description="The SKU itself: ids, specifications, images, dimensions.")
    price: Price = Field(description="Prices in the rule file's trade policy.")
    stock: Stock = Field(default=Stock(), description="Inventory per warehouse.")

    @model_validator(mode="after")
    def _sku_belongs_to_product(self) -> CatalogRecord:
        # A mismatch means the source joined the wrong records; variations would group wrongly.
        if self.sku.product_id != self.product.id:
            raise PydanticCustomError(
                _PRODUCT_MISMATCH,
                "is {sku_product_id}, but the record's product.id is {product_id}",
                {"sku_product_id": repr(self.sku.product_id), "product_id": repr(self.product.id)},
            )
        return self

    @classmethod
    def parse(cls, data: object, *, line: int | None = None) -> CatalogRecord:
        """Validate one record (a dict decoded from JSON), raising only :class:`MalformedRecord`."""
        try:
            return cls.model_validate(data)
        except ValidationError as error:
            raise MalformedRecord(_sku_id_of(data), _field_errors(error), line) from None

    @classmethod
    def parse_json(cls, text: str | bytes, *, line: int | None = None) -> CatalogRecord:
        """Validate one line of a JSONL catalog, with numbers decoded exactly as Decimal.

        Numbers decode exactly as ``Decimal``, keeping every digit of the file, even past the
        17 a float holds; the reading limits of :func:`read_json` apply.
        """
        try:
            data = read_json(text)
        except JsonLimitError as error:
            raise MalformedRecord(None, [("", str(error))], line) from None
        except ValueError as error:  # JSONDecodeError and UnicodeDecodeError
            raise MalformedRecord(None, [("", f"not valid JSON: {error}")], line) from None
        return cls.parse(data, line=line)


SourceItem: TypeAlias = CatalogRecord | MalformedRecord
"""What a source yields: a record, or the reason one could not be read."""


def _sku_id_of(data: object) -> str | None:
    sku = data.get("sku") if isinstance(data, Mapping) else None
    sku_id = sku.get("id") if isinstance(sku, Mapping) else None
    if isinstance(sku_id, str | int) and not isinstance(sku_id, bool):
        return printable_id(str(sku_id))
    return None


def printable_id(sku_id: str) -> str | None:
    """The id of a malformed record as it can be shown and stored, or None when it cannot be.

    A record is reported under its SKU id, which reaches terminals, plan files and the state
    store's seen set; an id no valid record could have (blank, longer than :data:`MAX_ID`)
    is dropped, so the record is reported by its line, and a lone surrogate is escaped.
    """
    if not sku_id or len(sku_id) > MAX_ID:
        return None
    if sku_id.isascii():
        return sku_id
    return sku_id.encode("utf-8", "backslashreplace").decode("utf-8")


_PRODUCT_MISMATCH = "sku_product_mismatch"


def _field_errors(error: ValidationError) -> list[tuple[str, str]]:
    return [
        ("sku.product_id" if e["type"] == _PRODUCT_MISMATCH else _path(e["loc"]), _message(e))
        for e in error.errors(include_url=False)
    ]


def _path(loc: tuple[int | str, ...]) -> str:
    """('stock', 'warehouses', 0, 'quantity') -> 'stock.warehouses[0].quantity'."""
    text = ""
    for part in loc:
        if isinstance(part, int):
            text += f"[{part}]"
        else:
            text += f".{part}" if text else part
    return text


_MESSAGES = {
    "missing": "is required",
    "greater_than_equal": "must be >= {ge}",
    "greater_than": "must be > {gt}",
    "finite_number": "must be a finite number",
    "decimal_parsing": "must be a number",
    "decimal_type": "must be a number",
    "string_too_short": "must not be empty",
    "string_type": "must be text",
    "bool_parsing": "must be true or false",
    "bool_type": "must be true or false",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "int_type": "must be a whole number",
    "model_type": "must be a JSON object",
    "model_attributes_type": "must be a JSON object",
    "dict_type": "must be a JSON object",
    "tuple_type": "must be a list",
    "literal_error": "must be {expected}",
    "less_than": "must be < {lt}",
    "less_than_equal": "must be <= {le}",
    "string_too_long": "is longer than {max_length} characters",
    "too_long": "has {actual_length} entries; at most {max_length} are read",
    "string_unicode": "is not valid Unicode text (a lone surrogate such as \\ud800); "
    "no marketplace accepts it",
}


def _message(error: ErrorDetails) -> str:
    template = _MESSAGES.get(error["type"])
    message = template.format(**error.get("ctx", {})) if template else error["msg"]  # pydantic's own text
    value = error.get("input")
    if error["type"] != "missing" and isinstance(value, str | int | float | Decimal | bool | None):
        shown = repr(value)
        message += f" (got {shown if len(shown) <= 40 else shown[:37] + '...'})"
    return message
