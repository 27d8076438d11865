"""SellerCenter feeds, one round trip each: send the records, poll FeedStatus, read each SKU's fate.

Every catalog write is a feed (API.md §5): ProductCreate, ProductUpdate, ProductRemove and Image
answer at once with a feed id (the SuccessResponse's ``RequestId``) and process the records later.
``FeedStatus`` says when the feed is final (``Finished``, ``Canceled``, ``Error``) and lists
``FeedErrors`` (and ``FeedWarnings``), each naming the SellerSku in a field or in its message;
``Finished`` may still hold failed records. :class:`FeedRunner` makes the round trip and answers
a :class:`FeedOutcome`: the feed's final status and, per SKU, the reasons it was refused.

Spacing: a feed-creating call takes a turn of the seller's feed budget
(:class:`~marketplaces.sellercenter._http.FeedSlots`) only when it comes within ``max_wait``
documented seconds; otherwise :class:`Deferred` says how long is left and nothing is sent, so the
caller fails those SKUs as retryable and the next run sends them, with whatever changed since,
in one feed. Polls back off from 2 to 60 documented seconds and stop after ``poll_budget``: a
feed still running then is not :attr:`FeedOutcome.final`, its records neither failed nor done.

Every feed is keyed by SellerSku, so a feed repeated after a lost answer or a killed run changes
nothing twice (a repeated ProductCreate is turned into a ProductUpdate by the connector, which
looks the SKUs up first).
"""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from engine import failpoints
from marketplaces.sellercenter._http import (
    FeedSlots,
    SellerCenterError,
    SellerCenterSender,
    answer_of,
    as_list,
    request_xml,
)

FINAL = frozenset({"Finished", "Canceled", "Error"})
POLL_FIRST, POLL_MAX = 2.0, 60.0
"""Documented seconds before the first FeedStatus poll, and the most between two."""
RECORD_TAGS: Mapping[str, str] = {
    "ProductCreate": "Product",
    "ProductUpdate": "Product",
    "ProductRemove": "Product",
    "Image": "ProductImage",
}
_SKU_IN_MESSAGE = re.compile(r"Seller ?SKU:?\s*['\"]?([^'\")\s]+)", re.IGNORECASE)


class Deferred(SellerCenterError):
    """The seller's next feed turn is further away than the run may wait; nothing was sent."""

    def __init__(self, action: str, left: float) -> None:
        super().__init__(
            f"deferred: SellerCenter spaces feed calls; the next {action} may go in {left:.0f} s "
            "and carries this change with whatever changes until then",
            retryable=True,
        )


@dataclass
class FeedOutcome:
    """What one feed did: its id, its last status, and each refused SKU's reasons."""

    feed_id: str
    status: str = ""
    final: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    unattributed: list[str] = field(default_factory=list)
    """Errors naming no SKU of the feed (its records cannot be told apart)."""

    @property
    def failed_whole(self) -> bool:
        return self.final and self.status != "Finished"


@dataclass
class FeedRunner:
    """Runs feeds for one apply: through ``sender``, on ``slots``' clock and budget."""

    sender: SellerCenterSender
    slots: FeedSlots
    max_wait: float = 0.0
    """Documented seconds a feed may wait for its turn before it is :class:`Deferred`."""
    poll_budget: float = 10 * 60.0
    """Documented seconds a feed is polled before its outcome is left unknown."""

    async def run(self, action: str, records: Sequence[Mapping[str, Any]]) -> FeedOutcome:
        """Send ``records`` as one feed, poll it until final (or the budget is spent), read its errors."""
        left = await self.slots.wait_turn(self.max_wait)
        if left:
            raise Deferred(action, left)
        answer = await self.sender.send(action, body=request_xml(records, RECORD_TAGS[action]))
        feed_id = answer_of(answer, action).request_id
        failpoints.reach("sellercenter:feed-sent")
        if not feed_id:
            raise SellerCenterError(f"{action}: the answer has no RequestId (feed id)", retryable=True)
        outcome = FeedOutcome(feed_id)
        detail = await self._poll(outcome)
        if outcome.final:
            skus = {str(r.get("SellerSku", "")) for r in records}
            outcome.errors, outcome.unattributed = feed_errors(detail, skus)
            failpoints.reach("sellercenter:feed-read")
        return outcome

    async def _poll(self, outcome: FeedOutcome) -> Mapping[str, Any]:
        spent, wait = 0.0, POLL_FIRST
        while True:
            await self.slots.clock.wait(wait)
            spent += wait
            answer = await self.sender.send("FeedStatus", {"FeedID": outcome.feed_id})
            body = answer_of(answer, "FeedStatus").body
            detail = body.get("FeedDetail") if isinstance(body, Mapping) else None
            detail = detail if isinstance(detail, Mapping) else {}
            failpoints.reach("sellercenter:feed-polled")
            outcome.status = str(detail.get("Status") or "")
            if outcome.status in FINAL:
                outcome.final = True
                return detail
            if spent >= self.poll_budget:
                return detail
            wait = min(POLL_MAX, wait * 2)


def feed_errors(detail: Mapping[str, Any], skus: set[str]) -> tuple[dict[str, str], list[str]]:
    """SKU -> its errors' messages, from a FeedDetail's ``FeedErrors``; and the messages naming none
    of ``skus`` (the SKU is the error's ``SellerSku``, else the one its message names)."""
    reasons: dict[str, str] = {}
    unattributed: list[str] = []
    errors = detail.get("FeedErrors")
    for error in as_list(errors.get("Error") if isinstance(errors, Mapping) else None):
        if not isinstance(error, Mapping):
            continue
        message = " ".join(filter(None, (str(error.get("Code") or ""), str(error.get("Message") or ""))))
        named = str(error.get("SellerSku") or "") or _sku_in(str(error.get("Message") or ""))
        if named in skus:
            reasons[named] = "; ".join(filter(None, (reasons.get(named), message)))
        else:
            unattributed.append(message or "refused by the feed")
    return reasons, unattributed


def _sku_in(message: str) -> str:
    found = _SKU_IN_MESSAGE.search(message)
    return found.group(1) if found else ""


__all__ = ["FINAL", "Deferred", "FeedOutcome", "FeedRunner", "feed_errors"]
