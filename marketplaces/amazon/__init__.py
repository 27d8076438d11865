"""Amazon Selling Partner API: Listings Items 2021-08-01 per SKU, ``JSON_LISTINGS_FEED`` in bulk.

A listing is created or replaced with ``putListingsItem`` (the full attribute set), and a
price or stock change is a ``patchListingsItem`` that replaces one attribute, so a price
update never re-submits content Amazon would have to re-review. The same bodies become feed
messages when a run is large enough to go through the Feeds API instead.

Options (the rule file's ``options:``): ``marketplace_id`` (default ATVPDKIKX0DER, amazon.com),
``language_tag`` (en_US), ``product_type`` (default for every SKU; otherwise the category the
rule file maps to is the product type), ``seller_id`` (feed header), ``issue_locale`` (feed
messages' language, default the language tag), ``localized_attributes`` (extra text attributes
that take a language tag).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, ClassVar, Literal

from engine._listing import Listing
from marketplaces._base import Connector
from marketplaces.amazon._payloads import (
    LOCALIZED_ATTRIBUTES,
    OPEN_SALE_WINDOW,
    Attribute,
    Scope,
    condition_type,
    fulfillment_availability,
    image_locators,
    product_identifier,
    purchasable_offer,
    replace_patch,
)

ChangeKind = Literal["create", "content", "price", "stock", "delete"]

FEED_VERSION = "2.0"
FEED_MAX_MESSAGES = 25_000
"""``messages.maxItems`` in listings-feed-schema-v2.json."""


class AmazonConnector(Connector):
    """Amazon's requirements and request bodies."""

    name = "amazon"
    title = "Amazon"

    title_max_length = 200  # Amazon's title policy; item_name's schema allows longer
    min_images = 1  # main_product_image_locator
    max_images = 9  # the main image plus other_product_image_locator_1..8
    requires_gtin_or_brand_mpn = True  # GTIN, or brand + part_number with a GTIN exemption

    rate_limit = 5.0  # Listings Items usage plan: 5 rps (PUT burst 10, PATCH/DELETE burst 5)
    batch_size = 10_000  # messages per JSON_LISTINGS_FEED document; the schema allows 25,000,
    # smaller documents are processed sooner and cost less to resubmit

    localized_attributes: ClassVar[frozenset[str]] = LOCALIZED_ATTRIBUTES

    @property
    def scope(self) -> Scope:
        """Marketplace, language and localized attribute names, as this rule file's options set them."""
        extra = frozenset(self.options.get("localized_attributes") or ())
        return Scope(
            marketplace_id=str(self.options.get("marketplace_id", "ATVPDKIKX0DER")),
            language_tag=str(self.options.get("language_tag", "en_US")),
            localized=self.localized_attributes | extra,
        )

    def product_type(self, listing: Listing) -> str:
        """The listing's own ``product_type`` field, else the option, else the mapped category."""
        return str(listing.fields.get("product_type") or self.options.get("product_type") or listing.category)

    # -- attributes --------------------------------------------------------------------------

    def attributes(self, listing: Listing) -> dict[str, Attribute]:
        """Every attribute of the listing; rule-file attributes come last and win on a clash."""
        scope, fields = self.scope, listing.fields
        built: dict[str, Attribute] = {"item_name": scope.attribute("item_name", listing.title)}
        for field, attribute in (
            ("brand", "brand"),
            ("description", "product_description"),
            ("mpn", "part_number"),
            ("asin", "merchant_suggested_asin"),
        ):
            if fields.get(field):
                built[attribute] = scope.attribute(attribute, fields[field])
        if fields.get("bullet_points"):
            built["bullet_point"] = scope.attribute("bullet_point", list(fields["bullet_points"]))
        if fields.get("gtin"):
            built["externally_assigned_product_identifier"] = product_identifier(str(fields["gtin"]), scope)
        elif not fields.get("asin"):
            # Without a GTIN or an ASIN to match, Amazon needs the brand's GTIN exemption declared.
            built["supplier_declared_has_product_identifier_exemption"] = scope.attribute(
                "supplier_declared_has_product_identifier_exemption", True
            )
        built["condition_type"] = scope.attribute("condition_type", condition_type(fields.get("condition")))
        built.update(image_locators(list(fields.get("images") or []), scope))
        if fields.get("list_price") is not None:
            built["list_price"] = [
                {
                    "currency": listing.currency,
                    "value": fields["list_price"],
                    "marketplace_id": scope.marketplace_id,
                }
            ]
        built["purchasable_offer"] = self._offer(listing)
        built["fulfillment_availability"] = fulfillment_availability(listing.quantity)
        for name, value in listing.attributes.items():
            if value is not None:
                built[name.lower()] = scope.attribute(name.lower(), value)
        return built

    def _offer(self, listing: Listing) -> Attribute:
        window = (
            str(listing.fields.get("sale_start_at") or OPEN_SALE_WINDOW[0]),
            str(listing.fields.get("sale_end_at") or OPEN_SALE_WINDOW[1]),
        )
        return purchasable_offer(listing.price, listing.sale_price, listing.currency, self.scope, window)

    # -- hooks -------------------------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """``ListingsItemPutRequest``: product facts and sales terms together (requirements LISTING)."""
        return {
            "productType": self.product_type(listing),
            "requirements": "LISTING",
            "attributes": self.attributes(listing),
        }

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """``ListingsItemPatchRequest`` replacing ``purchasable_offer``: an ended sale disappears with it."""
        return self._patch(listing, "purchasable_offer", self._offer(listing))

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """``ListingsItemPatchRequest`` replacing ``fulfillment_availability`` only."""
        return self._patch(listing, "fulfillment_availability", fulfillment_availability(listing.quantity))

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """``deleteListingsItem`` takes no body: the SKU in the path is the whole request."""
        return None

    def payloads_for(
        self, op: str, kinds: Sequence[str], listing: Listing | None, sku_id: str
    ) -> list[dict[str, Any]]:
        """Price and stock changed together go in one PATCH with two operations: half the calls."""
        price_and_stock = op == "update" and set(kinds) == {"price", "stock"}
        if listing is not None and price_and_stock:
            price, stock = self.price_payload(listing), self.stock_payload(listing)
            return [{**price, "patches": price["patches"] + stock["patches"]}]
        return super().payloads_for(op, kinds, listing, sku_id)

    def _patch(self, listing: Listing, name: str, value: Attribute) -> dict[str, Any]:
        return {"productType": self.product_type(listing), "patches": [replace_patch(name, value)]}

    # -- feeds -------------------------------------------------------------------------------

    def feed_message(self, listing: Listing, message_id: int, operation: ChangeKind) -> dict[str, Any]:
        """One message of a ``JSON_LISTINGS_FEED``, built from the same bodies as the single calls.

        create/content -> UPDATE (full replace), price/stock -> PATCH, delete -> DELETE.
        """
        if not 1 <= message_id <= 2_147_483_647:
            raise ValueError(f"messageId {message_id} is outside 1..2147483647")
        message: dict[str, Any] = {"messageId": message_id, "sku": listing.sku_id}
        if operation == "delete":
            return {**message, "operationType": "DELETE"}
        if operation in ("price", "stock"):
            body = self.price_payload(listing) if operation == "price" else self.stock_payload(listing)
            return {**message, "operationType": "PATCH", **body}
        return {**message, "operationType": "UPDATE", **self.payload(listing)}

    def feed_document(
        self, messages: Sequence[dict[str, Any]], seller_id: str | None = None
    ) -> dict[str, Any]:
        """The feed document: a header naming the seller, then between 1 and 25,000 messages."""
        seller = seller_id or self.options.get("seller_id")
        if not seller:
            raise ValueError("an Amazon feed needs a seller id: set options.seller_id in the rule file")
        if not 1 <= len(messages) <= FEED_MAX_MESSAGES:
            raise ValueError(f"a feed carries 1 to {FEED_MAX_MESSAGES} messages, not {len(messages)}")
        locale = str(self.options.get("issue_locale") or self.scope.language_tag)
        return {
            "header": {"sellerId": str(seller), "version": FEED_VERSION, "issueLocale": locale},
            "messages": list(messages),
        }


__all__ = ["AmazonConnector", "ChangeKind"]
