"""The marketplace's own status of a listing: an optional capability of the connector contract.

A marketplace reviews, pauses and rejects listings on its own (a Mercado Libre item under review,
an Amazon listing suppressed by an issue, a Google product disapproved). A connector that can read
that says so with :attr:`~engine.connectors.Connector.reports_listing_status` and yields one
:class:`ListingStatus` per SKU it is asked about from
:meth:`~engine.connectors.Connector.listing_statuses`, its requests made through the
:class:`~engine.connectors.Reader` (authenticated, paced at the marketplace's rate, retried).

The guarantee: whatever a marketplace calls its states, a status is one of the small closed
vocabulary :data:`LISTING_STATES`, so a report counts them across marketplaces; the
marketplace's own code and reason text travel with it, so nothing it said is lost.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal, get_args

ListingState = Literal["active", "paused", "under_review", "rejected", "inactive", "unknown"]
"""active: buyers can find and buy it; paused: the marketplace stopped it (out of stock, a
penalty); under_review: waiting for the marketplace's review; rejected: refused or suppressed, a
person must act; inactive: not offered and nothing to act on (closed, not discoverable);
unknown: the marketplace did not say (a listing it does not find)."""
LISTING_STATES: tuple[ListingState, ...] = get_args(ListingState)
NEEDS_ACTION: frozenset[ListingState] = frozenset({"rejected"})
"""States that need a person (the status command's ``max_rejected`` threshold counts them)."""


@dataclass(frozen=True)
class ListingKey:
    """A listing to ask about: the SKU and the marketplace's id for it (None where it keys by SKU)."""

    sku_id: str
    remote_id: str | None = None


@dataclass(frozen=True)
class ListingStatus:
    """One listing as the marketplace judges it."""

    sku_id: str
    status: ListingState
    code: str = ""
    """The marketplace's own code: ``under_review/forbidden`` (Mercado Libre's status and
    sub-status), an Amazon issue code, a Google item-level issue code."""
    reason: str = ""
    """The marketplace's reason text, or a sentence saying what its code means."""
    checked_at: float = 0.0
    """When it was read (seconds since the epoch); the state store stamps a refresh's time."""
