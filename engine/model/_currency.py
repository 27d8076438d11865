"""Currencies: how many decimal places an amount in each one carries.

Money is ``Decimal`` in an ISO 4217 currency throughout the engine; the minor unit decides
where a price is rounded (the rule file's ``price.round``) and how an amount is shown (the
order desk, the CLI). Most currencies have cents; the exceptions are listed here, once.
"""

from __future__ import annotations

MINOR_UNITS: dict[str, int] = {"BHD": 3, "CLP": 0, "COP": 2, "JPY": 0, "KRW": 0, "KWD": 3, "PYG": 0, "VND": 0}
"""Decimal places of a currency's minor unit where it is not 2 (ISO 4217)."""


def minor_unit_places(currency: str) -> int:
    """Decimal places of ``currency``'s minor unit: 2 unless :data:`MINOR_UNITS` says otherwise."""
    return MINOR_UNITS.get(currency, 2)
