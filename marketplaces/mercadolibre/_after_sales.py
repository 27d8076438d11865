"""Mercado Libre after the sale: returns through claims, and the questions buyers ask on listings.

Returns. A buyer unhappy with a delivered sale opens a claim on the order
(``GET /post-purchase/v1/claims/search?resource=order``); when the claim leads to the goods
coming back, the claim's ``related_entities`` names ``return`` and
``GET /post-purchase/v2/claims/{id}/returns`` holds it: its status (``opened``,
``label_generated``, ``shipped``, ``delivered``, ``closed``; ``cancelled``, ``expired`` and
``failed`` end it without goods coming back) and the order lines. The return's reason is the
claim's ``reason_id`` (``PDD…`` different or defective, ``PNR…`` not received, ``CS…`` cancelled
purchase). Claims search filters by status but not by update date: each pull reads the open claims,
and those updated since the last pull among the rest of the first pages, newest first.

Questions. ``GET /questions/search?seller_id=&status=UNANSWERED&api_version=4`` lists what buyers
asked on the seller's listings and is still waiting (the pull ignores the watermark: unanswered
questions are few, and one answered on Mercado Libre's site is noticed by reading it back by id,
``GET /questions/{id}``). ``POST /answers`` ``{question_id, text}`` answers; Mercado Libre allows
2,000 characters and one answer per question, so a question it shows answered is answered. The
asker's user id (``from.id``) is never read into Tradepost.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import datetime
from typing import Any, ClassVar

import httpx

from engine.connectors import CustomerQuestion, MarketplaceReturn, OrderCallError, OrderChannel
from engine.model import aware_time

__all__ = ["CLAIMS", "QUESTIONS", "MercadoLibreAfterSales", "return_reason"]

CLAIMS = "/post-purchase/v1/claims/search"
QUESTIONS = "/questions/search"
CLAIM_PAGE = 30
QUESTION_PAGE = 50
CLOSED_CLAIM_PAGES = 2
"""Pages of claims (newest first) read past the open ones to catch those closed since the last pull."""
ENDED_RETURNS = frozenset({"cancelled", "expired", "failed"})
"""A return in these states brings nothing back: its order is not moved."""
REASON_KINDS = {
    "PDD": "different or defective product",
    "PNR": "product not received",
    "CS": "purchase cancelled",
}


def return_reason(reason_id: str) -> str:
    """The claim's reason, readable: ``PDD9549: different or defective product``."""
    kind = next((name for prefix, name in REASON_KINDS.items() if reason_id.startswith(prefix)), None)
    return f"{reason_id}: {kind}" if kind else reason_id or "no reason given"


class MercadoLibreAfterSales(OrderChannel):
    """The claims, returns and questions half of :class:`MercadoLibreOrders` (its base)."""

    answer_length: ClassVar[tuple[int, int]] = (1, 2000)

    # The order channel's own calls, which it defines (see MercadoLibreOrders).
    seller_id: Callable[[], Awaitable[str]]
    _call: Callable[..., Awaitable[httpx.Response]]
    _json: Callable[..., Awaitable[dict[str, Any]]]

    # -- returns -------------------------------------------------------------------------------

    async def returns(self, since: datetime | None) -> AsyncIterator[MarketplaceReturn]:
        """The returns of order claims open now or updated since ``since``, each once."""
        seen: set[str] = set()
        async for claim in self._claims(since):
            claim_id = str(claim.get("id") or "")
            if not claim_id or claim_id in seen or "return" not in (claim.get("related_entities") or []):
                continue
            seen.add(claim_id)
            found = await self._json("GET", f"/post-purchase/v2/claims/{claim_id}/returns")
            yield _return(claim, found, self.name)

    async def _claims(self, since: datetime | None) -> AsyncIterator[Mapping[str, Any]]:
        for status, pages in (("opened", None), (None, CLOSED_CLAIM_PAGES)):
            params: dict[str, Any] = {"resource": "order", "limit": CLAIM_PAGE}
            if status:
                params["status"] = status
            offset, page = 0, 0
            while pages is None or page < pages:
                answer = await self._json("GET", CLAIMS, params={**params, "offset": offset})
                data = answer.get("data")
                if not isinstance(data, list):
                    raise OrderCallError(f"Mercado Libre answered {CLAIMS} without data", retryable=True)
                for claim in data:
                    if isinstance(claim, Mapping) and _updated_since(claim, since):
                        yield claim
                offset, page = offset + len(data), page + 1
                total = (answer.get("paging") or {}).get("total")
                if not data or not isinstance(total, int) or offset >= total:
                    break

    # -- questions -----------------------------------------------------------------------------

    async def questions(self, since: datetime | None) -> AsyncIterator[CustomerQuestion]:
        """Every question still unanswered on the seller's listings (``since`` is not needed)."""
        params = {"seller_id": await self.seller_id(), "status": "UNANSWERED", "api_version": "4"}
        offset = 0
        while True:
            answer = await self._json(
                "GET", QUESTIONS, params={**params, "offset": offset, "limit": QUESTION_PAGE}
            )
            found = answer.get("questions")
            if not isinstance(found, list):
                raise OrderCallError(f"Mercado Libre answered {QUESTIONS} without questions", retryable=True)
            for raw in found:
                if isinstance(raw, Mapping) and raw.get("id") is not None:
                    yield self._question(raw)
            offset += len(found)
            total = answer.get("total")
            if not found or not isinstance(total, int) or offset >= total:
                return

    async def question(self, question_id: str) -> CustomerQuestion:
        raw = await self._json("GET", f"/questions/{question_id}", params={"api_version": "4"})
        if raw.get("id") is None:
            raise OrderCallError(
                f"Mercado Libre answered /questions/{question_id} without the question", retryable=True
            )
        return self._question(raw)

    async def answer(self, question: CustomerQuestion, text: str) -> None:
        await self._call("POST", "/answers", {"question_id": int(question.question_id), "text": text})

    def _question(self, raw: Mapping[str, Any]) -> CustomerQuestion:
        item_id = str(raw.get("item_id") or "") or None
        answer = raw.get("answer") if isinstance(raw.get("answer"), Mapping) else None
        return CustomerQuestion(
            self.name,
            str(raw["id"]),
            str(raw.get("text") or ""),
            asked_at=_when(raw.get("date_created")),
            item_id=item_id,
            sku_id=self.sku_of(item_id) if item_id else None,
            answer=str(answer.get("text") or "") or None if answer else None,
        )


def _return(claim: Mapping[str, Any], found: Mapping[str, Any], marketplace: str) -> MarketplaceReturn:
    status = str(found.get("status") or claim.get("status") or "opened")
    orders = [o for o in found.get("orders") or [] if isinstance(o, Mapping)]
    order_id = str(orders[0].get("order_id") if orders else claim.get("resource_id"))
    items = tuple(
        (str(o.get("item_id") or ""), int(o.get("return_quantity") or o.get("total_quantity") or 1))
        for o in orders
    )
    return MarketplaceReturn(
        marketplace,
        str(found.get("id") or claim.get("id")),
        order_id,
        return_reason(str(claim.get("reason_id") or "")),
        status,
        open=status not in ENDED_RETURNS,
        created_at=_when(found.get("date_created")),
        items=items,
    )


def _when(value: Any) -> datetime | None:
    try:
        return aware_time(str(value)) if value else None
    except ValueError:
        return None


def _updated_since(claim: Mapping[str, Any], since: datetime | None) -> bool:
    updated = _when(claim.get("last_updated"))
    return since is None or updated is None or updated >= since
