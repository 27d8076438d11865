"""The canonical order: what every marketplace order reader produces and the divergence rules read.

One shape for every marketplace, so the divergence check, the review queue and
the VTEX placement are written once. Money is ``Decimal`` in the order's
currency, never float.

Personal data (the buyer, the shipping address) is kept only as far as
fulfilment needs it and is never printed: those fields are ``repr=False``, so
``repr()``, ``str()``, rich and devtools show the order without them, and
validation errors do not echo input values (``hide_input_in_errors``), because
an exception message is the easiest way for an address to end up in a log.
Logs use :meth:`Order.model_dump_safe`; only the VTEX placement reads the
personal fields.

The models are frozen and forbid unknown fields: an order is a record of what
the marketplace said, written once to the state store and read back as is
(``Order.model_validate(order.model_dump())`` round-trips). They validate
shape only; anything odd but representable (an item in another currency, a
total that does not add up) is left for :func:`engine.orders._divergence.decide` to
hold for review, so a strange order is still imported exactly once instead of
failing at the door.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Any, Literal

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field

__all__ = ["Address", "Buyer", "FulfilmentStatus", "Order", "OrderItem", "PaymentStatus"]

PaymentStatus = Literal["pending", "paid", "refunded", "cancelled"]
FulfilmentStatus = Literal["pending", "unshipped", "shipped", "cancelled"]
"""Where the marketplace says the order stands: ``pending`` (not yet paid or confirmed; VTEX may
reserve stock but must not dispatch), ``unshipped`` (ready to ship), ``shipped``, ``cancelled``."""

_REDACTED = "<personal data redacted>"


class _Model(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid", hide_input_in_errors=True)


class OrderItem(_Model):
    """One line of an order: a VTEX SKU, how many, and the unit price the buyer paid.

    ``unit_price`` is per unit even where a marketplace reports the line total
    (Amazon's ``ItemPrice`` is for the whole quantity): readers divide, so the
    divergence check compares like with like.
    """

    sku_id: str = Field(min_length=1, description="VTEX SKU id (the marketplace's seller SKU).")
    quantity: int = Field(ge=1, description="Units ordered.")
    unit_price: Decimal = Field(gt=0, description="Price of one unit as the buyer paid it, before shipping.")
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of unit_price.")
    marketplace_item_id: str | None = Field(
        default=None, description="The marketplace's id of this line, needed to cancel or invoice it."
    )

    @property
    def line_value(self) -> Decimal:
        """``unit_price * quantity``: what this line adds to the order value."""
        return self.unit_price * self.quantity


class Address(_Model):
    """Where to deliver: only the fields a carrier and VTEX fulfilment need.

    ``name`` (the receiver) is optional because Amazon releases it only with a
    restricted-data token; the VTEX placement refuses an address without one.
    ``number`` and ``neighborhood`` are optional because many countries have
    neither ("S/N" addresses in Brazil have no number). Only ``country`` is
    shown in ``repr()``: alone it identifies nobody.
    """

    name: str | None = Field(default=None, repr=False, description="Receiver's name.")
    street: str = Field(repr=False, description="Street, or the whole first address line.")
    number: str | None = Field(default=None, repr=False, description="House number.")
    complement: str | None = Field(default=None, repr=False, description="Apartment, block, floor.")
    neighborhood: str | None = Field(default=None, repr=False, description="Bairro / district.")
    city: str = Field(repr=False)
    state: str | None = Field(default=None, repr=False, description="State or region code, e.g. SP.")
    postal_code: str = Field(repr=False)
    country: str = Field(min_length=2, max_length=3, description="ISO 3166 code, e.g. BR or BRA.")

    def __repr__(self) -> str:
        return f"Address(country={self.country!r}, {_REDACTED})"

    def __str__(self) -> str:
        return self.__repr__()


class Buyer(_Model):
    """Who bought: used to place the order in VTEX, never logged.

    Every field is optional because marketplaces disclose little: Amazon gives
    no buyer id and its name and e-mail only with a restricted-data token;
    Mercado Libre masks the e-mail. Even the marketplace's buyer id is personal
    data (it links orders to one person), so it is redacted too.
    """

    id: str | None = Field(default=None, repr=False, description="The marketplace's buyer id.")
    name: str | None = Field(default=None, repr=False)
    email: str | None = Field(default=None, repr=False)
    document: str | None = Field(default=None, repr=False, description="Tax id (CPF/CNPJ), if given.")

    def __repr__(self) -> str:
        return f"Buyer({_REDACTED})"

    def __str__(self) -> str:
        return self.__repr__()


class Order(_Model):
    """One marketplace order in canonical form; ``(marketplace, order_id)`` identifies it."""

    marketplace: str = Field(min_length=1, description="Connector name, as in the rule file.")
    order_id: str = Field(min_length=1, description="The marketplace's order id.")
    created_at: AwareDatetime = Field(
        description="When the buyer placed it; with a time zone, so orders from any marketplace compare."
    )
    currency: str = Field(pattern=r"^[A-Z]{3}$", description="ISO 4217 code of every amount.")
    items: tuple[OrderItem, ...] = Field(min_length=1)
    total: Decimal = Field(ge=0, description="What the buyer paid in all, as the marketplace reports it.")
    shipping_total: Decimal = Field(default=Decimal(0), ge=0, description="Shipping charged to the buyer.")
    shipping_method: str | None = Field(default=None, description="The marketplace's shipping option.")
    payment_status: PaymentStatus
    status: FulfilmentStatus = Field(default="unshipped", description="The marketplace's fulfilment status.")
    updated_at: AwareDatetime | None = Field(
        default=None, description="When the marketplace last changed the order (pull watermarks use it)."
    )
    references: dict[str, str] = Field(
        default_factory=dict,
        description="Marketplace ids needed later and named by the reader, e.g. Mercado Libre's "
        "'shipment_id' and 'pack_id', Amazon's 'marketplace_id'. Never personal data.",
    )
    buyer: Buyer = Field(default_factory=Buyer, repr=False)
    shipping_address: Address | None = Field(
        default=None,
        repr=False,
        description="None when the marketplace ships (Amazon FBA, Mercado Envios Full) or hides it.",
    )

    @property
    def items_value(self) -> Decimal:
        """Sum of ``unit_price * quantity`` over the items: the order value, shipping excluded."""
        return sum((item.line_value for item in self.items), Decimal(0))

    @property
    def shipping_country(self) -> str | None:
        """The delivery country: identifies nobody, and explains region-dependent decisions."""
        return self.shipping_address.country if self.shipping_address else None

    def model_dump_safe(self) -> dict[str, Any]:
        """The order for logs and summaries: everything but the buyer and the address.

        Amounts come out as strings (``"105.01"``), so no precision is lost
        when the dict is written as JSON. The shipping country is kept: it
        identifies nobody and explains region-dependent decisions.
        """
        data = self.model_dump(mode="json", exclude={"buyer", "shipping_address"})
        data["shipping_country"] = self.shipping_country
        return data

    def personal_values(self) -> list[str]:
        """Every personal text in the order, so messages built from rule output can be scrubbed."""
        values: list[str | None] = [self.buyer.id, self.buyer.name, self.buyer.email, self.buyer.document]
        address = self.shipping_address
        if address is not None:
            values += [
                address.name,
                address.street,
                address.number,
                address.complement,
                address.neighborhood,
                address.postal_code,
            ]
        return [value for value in values if value and value.strip()]


def aware_time(value: str) -> datetime:
    """An ISO 8601 time with its offset ('Z' or ``+hh:mm``), as marketplaces stamp orders.

    Raises ``ValueError`` when ``value`` is not one, or names no offset (it names no moment).
    """
    moment = datetime.fromisoformat(value)
    if moment.tzinfo is None:
        raise ValueError(f"{value} has no time zone")
    return moment
