"""What a connector is: a declaration of a marketplace's rules plus a few hooks.

A connector subclass reads like a declaration (STYLE.md 2 and 5): class
attributes say what the marketplace requires (title length, images, GTIN,
attributes per category), how fast it may be called and in what batches;
hooks turn a canonical :class:`~engine.Listing` into the marketplace's
request bodies. The engine checks the declared requirements itself, so a
connector author writes no validation loop.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, ClassVar

from engine._listing import Listing, Reason


class Connector:
    """Base of every marketplace connector."""

    name: ClassVar[str] = ""
    title: ClassVar[str] = ""
    """Human name, for messages ("Mercado Libre")."""

    title_max_length: ClassVar[int | None] = None
    min_images: ClassVar[int] = 0
    max_images: ClassVar[int | None] = None
    requires_gtin_or_brand_mpn: ClassVar[bool] = False
    required_attributes: ClassVar[Mapping[str, Sequence[str]]] = {}
    """Category id (or prefix ending in '*', or '*' for all) -> attributes that must be present."""

    rate_limit: ClassVar[float] = 5.0
    """Requests per second the marketplace allows this seller."""
    batch_size: ClassVar[int] = 1
    """Changes one request may carry (feeds, batch endpoints)."""

    def __init__(self, options: Mapping[str, Any] | None = None) -> None:
        self.options: dict[str, Any] = dict(options or {})

    # -- requirements ------------------------------------------------------------------------

    def check(self, listing: Listing) -> list[Reason]:
        """The marketplace's own requirements, from the declarations above."""
        reasons: list[Reason] = []
        who = self.title or self.name
        limit = self.title_max_length
        if limit is not None and len(listing.title) > limit:
            reasons.append(
                Reason(
                    "TP911",
                    f"title is {len(listing.title)} characters; {who} allows {limit}",
                    "listing.title",
                )
            )
        if not listing.title.strip():
            reasons.append(Reason("TP911", f"title is empty; {who} requires one", "listing.title"))
        images = listing.fields.get("images") or []
        if len(images) < self.min_images:
            reasons.append(
                Reason(
                    "TP912",
                    f"{len(images)} image(s); {who} requires at least {self.min_images}",
                    "listing.images",
                )
            )
        if self.max_images is not None and len(images) > self.max_images:
            reasons.append(
                Reason(
                    "TP912", f"{len(images)} images; {who} allows at most {self.max_images}", "listing.images"
                )
            )
        if self.requires_gtin_or_brand_mpn:
            gtin = listing.fields.get("gtin")
            if not gtin and not (listing.fields.get("brand") and listing.fields.get("mpn")):
                reasons.append(
                    Reason("TP913", f"{who} requires a GTIN, or a brand and an MPN", "listing.gtin")
                )
        attributes = self.attributes_sent(listing)
        for name in self.attributes_required_for(listing.category):
            if attributes.get(name) in (None, ""):
                reasons.append(
                    Reason(
                        "TP914",
                        f"attribute {name} is required by {who} in category {listing.category}",
                        f"listing.attributes.{name}",
                    )
                )
        return reasons

    def attributes_sent(self, listing: Listing) -> Mapping[str, Any]:
        """The attributes the marketplace will see, by the names ``required_attributes`` uses."""
        return listing.attributes

    def attributes_required_for(self, category: str) -> list[str]:
        names: list[str] = []
        for key, attributes in self.required_attributes.items():
            if key == "*" or key == category or (key.endswith("*") and category.startswith(key[:-1])):
                names.extend(a for a in attributes if a not in names)
        return names

    # -- payloads ----------------------------------------------------------------------------

    def payload(self, listing: Listing) -> dict[str, Any]:
        """The body that creates the listing or replaces its content."""
        raise NotImplementedError

    def price_payload(self, listing: Listing) -> dict[str, Any]:
        """The body of the cheapest call that changes only the price (and sale price)."""
        return self.payload(listing)

    def stock_payload(self, listing: Listing) -> dict[str, Any]:
        """The body of the cheapest call that changes only the quantity."""
        return self.payload(listing)

    def delete_payload(self, sku_id: str) -> dict[str, Any] | None:
        """The body that withdraws a listing, or None where the marketplace deletes without one."""
        return None

    def payloads_for(
        self, op: str, kinds: Sequence[str], listing: Listing | None, sku_id: str
    ) -> list[dict[str, Any]]:
        """The bodies a change sends: the cheapest calls for what changed.

        A create or a content change sends the whole listing; a price-only or
        stock-only change sends just that. Connectors whose API can carry price
        and stock in one call override this to merge them.
        """
        if op == "delete":
            body = self.delete_payload(sku_id)
            return [body] if body is not None else []
        if listing is None:
            return []
        if op == "create" or "content" in kinds:
            return [self.payload(listing)]
        bodies = []
        if "price" in kinds:
            bodies.append(self.price_payload(listing))
        if "stock" in kinds:
            bodies.append(self.stock_payload(listing))
        return bodies

    def family_payload(self, listings: Sequence[Listing]) -> dict[str, Any] | None:
        """One body for a family of variations, where the marketplace lists them together."""
        return None
