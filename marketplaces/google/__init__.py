"""Google Merchant API v1: one ``ProductInput`` per SKU in an API data source.

``productInputs:insert`` replaces the whole input, so content goes that way; a price or stock
change is a ``productInputs.patch`` whose ``updateMask`` names only the fields it carries (a
field named in the mask but absent from the body is deleted, which is how an ended sale price
goes away). JSON names are the protobuf JSON names (lowerCamelCase) of ``productinputs.proto``
and ``products_common.proto``; money is ``{amountMicros, currencyCode}`` with micros as an
integer string.

Variants are separate products sharing ``itemGroupId`` (the listing's family key), so there is
no family payload. Rule-file attributes that ``ProductAttributes`` knows (color, size, gender,
age_group, material, pattern...) become those fields; any other goes to ``customAttributes``.

Exactly once, with no look-up before creating: ``productInputs:insert`` is a ``POST``, but keyed
by the offer: "If a product input with the same contentLanguage, offerId, and dataSource already
exists, then the product input inserted by this method replaces that entry"
(``shared/specs/google/merchantapi/productinputs.proto``, ``InsertProductInput``). ``offerId`` is
the VTEX SKU id and the language, feed label and data source come from the options, so an insert
sent twice (after a lost answer, a killed run, a deleted or restored state store) replaces the one
input; ``creates_are_keyed`` declares it, and ``tests/test_exactly_once.py`` proves it on
the stand-in. Changing ``content_language``, ``feed_label`` or ``data_source`` between runs does
make a second product: together with the SKU, they name it.

Options: ``content_language`` (default en), ``feed_label`` (default US), ``account`` and
``data_source`` (for request paths), ``link_template`` (e.g. ``https://shop.example/p/{sku_id}``;
``{product_id}`` is also known) used when a listing has no ``link`` field, ``token_url`` (default
``https://oauth2.googleapis.com``; the token comes from ``{token_url}/token``).

Sending (``_http``): OAuth from a refresh token; a SKU's remote id is its product input's
encoded resource name.
"""

from __future__ import annotations

import re
from collections.abc import AsyncIterator, Mapping, Sequence
from decimal import Decimal
from typing import Any, ClassVar, Literal

import httpx

from engine.connectors import (
    Call,
    ChangeRecord,
    Connector,
    Listing,
    ListingKey,
    ListingStatus,
    Reader,
    Reason,
    RefreshedToken,
    RemoteListing,
    Route,
    RouteKind,
    TokenError,
    json_body,
    parts_differing,
    token_pages,
)
from marketplaces.google._http import DEFAULT_TOKEN_URL, encoded_name, encoded_segment, error_message
from marketplaces.google._status import judged

ChangeKind = Literal["price", "stock"]

UPDATE_MASKS: dict[ChangeKind, str] = {
    "price": "productAttributes.price,productAttributes.salePrice",
    "stock": "productAttributes.availability",
}

PRODUCT_ATTRIBUTES = frozenset(
    {
        "adult",
        "age_group",
        "color",
        "custom_label_0",
        "custom_label_1",
        "custom_label_2",
        "custom_label_3",
        "custom_label_4",
        "gender",
        "is_bundle",
        "item_group_title",
        "material",
        "pattern",
        "product_highlights",
        "product_types",
        "shipping_label",
        "size",
        "size_system",
        "size_types",
    }
)
"""``ProductAttributes`` fields a rule-file attribute may set directly (snake_case proto names)."""
ENUM_ATTRIBUTES = frozenset({"age_group", "gender", "size_system", "size_types"})
REPEATED_ATTRIBUTES = frozenset({"product_highlights", "product_types", "size_types"})

_MICROS = Decimal(1_000_000)
INSERT = "/products/v1/accounts/{account}/productInputs:insert"
INPUT = "/products/v1/{name}"
REMOTE_PARTS = {"price": ("price", "salePrice"), "stock": ("availability",)}
SOURCE = {"dataSource": "{data_source}"}


class GoogleConnector(Connector):
    """Google Merchant Center's requirements and request bodies."""

    name = "google"
    listing_fields = ("link", "identifier_exists")
    title = "Google"

    title_max_length = 150
    min_images = 1  # image_link is required
    max_images = 11  # image_link plus up to 10 additional_image_link
    requires_gtin_or_brand_mpn = True  # waived by identifier_exists: false, see check()

    rate_limit = 5.0  # Merchant API quotas are per method and account, adjusted with usage,
    # read with quotas.list; 5 rps is a conservative start, not a documented one
    batch_size = 1  # no batch method; HTTP batching is charged per inner request anyway

    base_url = "https://merchantapi.googleapis.com"
    credential_names = ("client_id", "client_secret", "refresh_token")

    # insert replaces the whole input; a patch's mask names only the fields its body carries, and
    # price and stock changed together go in one patch whose mask names both; delete takes no body
    # (the product leaves Shopping once processed) and is done when the input is already gone.
    routes: ClassVar[Mapping[RouteKind, Route]] = {
        "create": Route("POST", INSERT, SOURCE),
        "content": Route("POST", INSERT, SOURCE),
        "price": Route("PATCH", INPUT, {**SOURCE, "updateMask": UPDATE_MASKS["price"]}),
        "stock": Route("PATCH", INPUT, {**SOURCE, "updateMask": UPDATE_MASKS["stock"]}),
        "delete": Route("DELETE", INPUT, SOURCE),
    }
    merge_price_and_stock = "send"
    deleted_when_absent = True
    creates_are_keyed = True  # an insert with the same offer id replaces the input, never adds one

    option_defaults: ClassVar[Mapping[str, str]] = {
        "content_language": "en",
        "feed_label": "US",
        "token_url": DEFAULT_TOKEN_URL,
    }
    required_options: ClassVar[Mapping[str, str]] = {
        "account": "the Merchant Center account id",
        "data_source": "the id of an API data source",
    }

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        super().__init__(options)
        self.token = RefreshedToken(f"{self.option('token_url').rstrip('/')}/token", self.title)

    # -- requirements ------------------------------------------------------------------------

    def check(self, listing: Listing) -> list[Reason]:
        """The declared requirements, plus a taxonomy id for the category and a landing page."""
        reasons = super().check(listing)
        if listing.fields.get("identifier_exists") is False:  # custom goods: Google allows no GTIN/MPN
            reasons = [reason for reason in reasons if reason.code != "TP913"]
        problem = self.validate_category(listing.category)
        if problem:
            reasons.append(Reason("TP915", problem, "categories"))
        try:
            link = self.link_for(listing)
            message, rule = (
                "Google requires a link: set listing.link or options.link_template",
                "listing.link",
            )
        except (KeyError, IndexError, ValueError) as exc:
            link, message = None, f"options.link_template has an unknown placeholder {exc}"
            rule = "options.link_template"
        if not link:
            reasons.append(Reason("TP916", message, rule))
        return reasons

    @staticmethod
    def validate_category(category: str) -> str | None:
        """Why ``category`` is not a Google product taxonomy id, or None when it is one.

        Only the form is checked (a positive integer, like ``2271``): the taxonomy file is Google's
        to publish and changes between versions, so rule tests, not the connector, pin real ids.
        """
        if re.fullmatch(r"[1-9][0-9]*", category.strip()):
            return None
        return (
            f"category {category!r} is not a Google product taxonomy id; map it to a number "
            "from taxonomy-with-ids (e.g. 2271 for Apparel & Accessories > Clothing > Dresses)"
        )

    def link_for(self, listing: Listing) -> str | None:
        """The listing's own ``link``, else ``options.link_template`` filled with its ids."""
        if listing.fields.get("link"):
            return str(listing.fields["link"])
        template = self.option("link_template")
        return template.format(sku_id=listing.sku_id, product_id=listing.product_id) if template else None

    # -- identity ----------------------------------------------------------------------------

    def _identity(self, listing: Listing) -> dict[str, Any]:
        return {
            "offerId": listing.sku_id,
            "contentLanguage": self.option("content_language"),
            "feedLabel": self.option("feed_label"),
        }

    def product_input_name(self, sku_id: str) -> str:
        """``accounts/{a}/productInputs/{id}``, encoded so that any SKU id survives (``/``, ``~``)."""
        identity = f"{self.option('content_language')}~{self.option('feed_label')}~{sku_id}"
        return f"accounts/{self.option('account')}/productInputs/{encoded_segment(identity)}"

    def data_source_name(self) -> str:
        """``accounts/{a}/dataSources/{d}``: the ``dataSource`` parameter of every productInputs call."""
        source = self.option("data_source")
        if source.startswith("accounts/"):
            return source
        return f"accounts/{self.option('account')}/dataSources/{source}"

    @staticmethod
    def update_mask_for(kind: ChangeKind) -> str:
        """The ``updateMask`` query parameter that goes with ``price_payload`` or ``stock_payload``."""
        return UPDATE_MASKS[kind]

    # -- hooks -------------------------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """The ``ProductInput`` for ``productInputs:insert``."""
        fields = listing.fields
        images = [str(url) for url in fields.get("images") or []]
        attributes: dict[str, Any] = {"title": listing.title}
        if fields.get("description"):
            attributes["description"] = str(fields["description"])
        if link := self.link_for(listing):
            attributes["link"] = link
        if images:
            attributes["imageLink"] = images[0]
        if images[1:]:
            attributes["additionalImageLinks"] = images[1:]
        attributes.update(self._stock(listing))
        attributes.update(self._price(listing))
        for field in ("brand", "mpn"):
            if fields.get(field):
                attributes[field] = str(fields[field])
        if fields.get("gtin"):
            attributes["gtins"] = [str(fields["gtin"])]
        attributes["condition"] = str(fields.get("condition") or "new").upper()
        attributes["googleProductCategory"] = listing.category
        if listing.group:
            attributes["itemGroupId"] = listing.group
        if isinstance(fields.get("identifier_exists"), bool):
            attributes["identifierExists"] = fields["identifier_exists"]
        custom: list[dict[str, Any]] = []
        for name, value in listing.attributes.items():
            key = _snake(name)
            if value is None:
                continue
            if key in PRODUCT_ATTRIBUTES:
                attributes[_camel(key)] = _attribute_value(key, value)
            else:
                custom.append({"name": name, "value": _text(value)})
        body = {**self._identity(listing), "productAttributes": attributes}
        if custom:
            body["customAttributes"] = custom
        return body

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """Body of ``productInputs.patch`` with ``update_mask_for("price")``."""
        return {**self._identity(listing), "productAttributes": self._price(listing)}

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """Body of ``productInputs.patch`` with ``update_mask_for("stock")``: Google takes availability,
        not a count, so only a change across zero alters this body."""
        return {**self._identity(listing), "productAttributes": self._stock(listing)}

    # -- sending -----------------------------------------------------------------------------

    def path_values(self, change: ChangeRecord, remote_id: str | None) -> dict[str, str]:
        """The account, the data source and the input's encoded name (the remote id, once known)."""
        known = remote_id if remote_id and remote_id.startswith("accounts/") else None
        name = known or self.product_input_name(change.sku_id)
        return {"account": self.option("account"), "data_source": self.data_source_name(), "name": name}

    def remote_id_in(self, call: Call, response: httpx.Response) -> str | None:
        """The input's encoded name (``base64EncodedName``), whichever form the answer gives."""
        body = json_body(response)
        name = body.get("base64EncodedName") or body.get("name") if isinstance(body, dict) else None
        return encoded_name(str(name)) if name else None

    def error_of(self, response: httpx.Response) -> str:
        return f"{response.status_code} {error_message(response)}"

    # -- reading back (``tradepost state rebuild``) ---------------------------------------------

    reads_back = True

    async def read_back(self, reader: Reader) -> AsyncIterator[RemoteListing]:
        """Every product of this connector's (:meth:`products`), as a :class:`RemoteListing`.
        Google shows availability, not a count, so ``quantity`` is None."""
        async for product in self.products(reader):
            attributes = dict(product.get("productAttributes") or {})
            yield RemoteListing(
                str(product["offerId"]),
                self.product_input_name(str(product["offerId"])),
                _amount(attributes.get("price")),
                _amount(attributes.get("salePrice")),
                content={
                    "productAttributes": attributes,
                    "customAttributes": product.get("customAttributes") or [],
                },
            )

    async def products(self, reader: Reader) -> AsyncIterator[Mapping[str, Any]]:
        """``products.list`` (``GET /products/v1/accounts/{a}/products``), 1,000 a page (the most it
        takes), following ``nextPageToken``: one request per 1,000 products.

        Only products of this connector's API data source, content language and feed label are
        Tradepost's; those that other data sources (a feed file, another tool) supply are left
        alone.
        """
        source, account = self.data_source_name(), self.option("account")
        language, label = self.option("content_language"), self.option("feed_label")
        path, params = f"/products/v1/accounts/{account}/products", {"pageSize": str(PRODUCTS_PAGE_SIZE)}
        async for page in token_pages(
            reader, path, params, next_token="nextPageToken", token_param="pageToken"
        ):
            for product in page.get("products") or []:
                ours = (product.get("dataSource"), product.get("contentLanguage"), product.get("feedLabel"))
                if ours == (source, language, label) and product.get("offerId"):
                    yield product

    reports_listing_status = True

    async def listing_statuses(
        self, reader: Reader, keys: Sequence[ListingKey]
    ) -> AsyncIterator[ListingStatus]:
        """Each product's ``productStatus``, read with the products (:meth:`products`); see ``_status``."""
        wanted = {key.sku_id for key in keys}
        async for product in self.products(reader):
            if str(product["offerId"]) in wanted:
                yield ListingStatus(str(product["offerId"]), *judged(product))

    def remote_differences(
        self, listing: Listing, remote: RemoteListing, family: Sequence[Listing]
    ) -> tuple[str, ...]:
        """The ``ProductInput`` an insert would send, against the product read: price and sale
        price decide price, availability decides stock, the other attributes content."""
        body = self.payload(listing)
        sent: dict[str, Any] = {k: body[k] for k in ("productAttributes", "customAttributes") if k in body}
        return parts_differing(sent, remote.content, "productAttributes", REMOTE_PARTS)

    @staticmethod
    def _price(listing: Listing) -> dict[str, Any]:
        prices = {"price": price(listing.price, listing.currency)}
        if listing.sale_price is not None:
            prices["salePrice"] = price(listing.sale_price, listing.currency)
        return prices

    @staticmethod
    def _stock(listing: Listing) -> dict[str, Any]:
        return {"availability": "IN_STOCK" if listing.quantity > 0 else "OUT_OF_STOCK"}


PRODUCTS_PAGE_SIZE = 1000
"""``ListProductsRequest.page_size`` maximum (products.proto)."""


def _amount(price: Any) -> Decimal | None:
    """``{amountMicros, currencyCode}`` -> the amount, or None."""
    if not isinstance(price, Mapping) or price.get("amountMicros") is None:
        return None
    return Decimal(str(price["amountMicros"])) / _MICROS


def micros(amount: Decimal) -> str:
    """An amount in millionths of the currency unit, as the integer string proto3 JSON uses for int64."""
    scaled = amount * _MICROS
    if scaled != scaled.to_integral_value():
        raise ValueError(f"{amount} has more than six decimal places; Google prices are whole micros")
    return str(int(scaled))


def price(amount: Decimal, currency: str) -> dict[str, str]:
    """``google.shopping.type.Price``."""
    return {"amountMicros": micros(amount), "currencyCode": currency}


def _attribute_value(key: str, value: Any) -> Any:
    values = list(value) if isinstance(value, list | tuple) else [value]
    if key in ENUM_ATTRIBUTES:
        values = [re.sub(r"[\s-]+", "_", str(v).strip()).upper() for v in values]
    elif not isinstance(value, bool):
        values = [_text(v) for v in values]
    if key in REPEATED_ATTRIBUTES:
        return values
    return values[0] if values else None


def _text(value: Any) -> str:
    return format(value, "f") if isinstance(value, Decimal) else str(value)


def _snake(name: str) -> str:
    if name.isupper():
        return name.lower()
    return re.sub(r"(?<=[a-z0-9])([A-Z])", r"_\1", name).lower()


def _camel(name: str) -> str:
    head, *rest = name.split("_")
    return head + "".join(part.capitalize() for part in rest)


__all__ = ["ChangeKind", "GoogleConnector", "TokenError", "micros", "price"]
