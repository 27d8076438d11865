"""Mirakl after the sale (Carrefour): returns with RT11, customers' messages with M11, M10 and M12.

Returns. ``GET /api/returns`` (RT11) pages by seek token (``page_token``, ``limit`` at most 100)
from ``return_last_updated_from``. Each return names its order (``order_id``), a reason code
(``RETURN_BROKEN_ITEM``...), a state and its lines; ``REFUSED`` and ``CANCELED`` returns bring
nothing back, so their order is not moved.

Questions. A customer writes to the shop in a message thread on an order (M11
``GET /api/inbox/threads``, ``entity_type=MMP_ORDER``, from ``updated_since``, with the last 100
messages). Tradepost reads a thread as one question: the customer's messages since the shop's
last reply; answered when a shop message follows them. Answering is M12
(``POST /api/inbox/threads/{id}/message``, multipart ``message_input`` JSON, addressed to the
customer participant, 3 to 50,000 characters); the read-back is M10 (one thread). A customer who
writes again after the answer opens the thread's question again. Participants' display names are
never read into Tradepost; the customer's participant id is read at answer time only, to address
the reply.
"""

from __future__ import annotations

import json
from collections.abc import AsyncIterator, Awaitable, Callable, Mapping
from datetime import UTC, datetime
from typing import Any, ClassVar

import httpx

from engine.connectors import CustomerQuestion, MarketplaceReturn, OrderCallError, OrderChannel
from engine.model import aware_time
from marketplaces.mirakl._http import shop_params

__all__ = ["RETURNS", "THREADS", "MiraklAfterSales", "return_reason"]

RETURNS = "/api/returns"
THREADS = "/api/inbox/threads"
PAGE_LIMIT = 100
ENDED_RETURNS = frozenset({"REFUSED", "CANCELED"})
CUSTOMER, SHOP = "CUSTOMER_USER", "SHOP_USER"


def return_reason(code: str) -> str:
    """``RETURN_BROKEN_ITEM: broken item``: the code, and words a person reads."""
    words = code.removeprefix("RETURN_").replace("_", " ").lower()
    return f"{code}: {words}" if code else "no reason given"


class MiraklAfterSales(OrderChannel):
    """The returns and message-thread half of :class:`MiraklOrders` (its base)."""

    answer_length: ClassVar[tuple[int, int]] = (3, 50000)

    _json: Callable[..., Awaitable[dict[str, Any]]]
    """The order channel's own call (see MiraklOrders)."""

    # -- returns -------------------------------------------------------------------------------

    async def returns(self, since: datetime | None) -> AsyncIterator[MarketplaceReturn]:
        params: dict[str, Any] = {"limit": PAGE_LIMIT}
        if since is not None:
            params["return_last_updated_from"] = _mirakl_time(since)
        async for raw in self._seek(RETURNS, params):
            if raw.get("id") and raw.get("order_id"):
                yield _return(raw, self.name)

    async def _seek(self, path: str, params: Mapping[str, Any]) -> AsyncIterator[Mapping[str, Any]]:
        """Every record of a seek-paged list (``data``, ``next_page_token``)."""
        token: str | None = None
        while True:
            answer = await self._json(
                "GET", path, params={**params, **({"page_token": token} if token else {})}
            )
            data = answer.get("data")
            if not isinstance(data, list):
                raise OrderCallError(f"Mirakl answered {path} without data", retryable=True)
            for raw in data:
                if isinstance(raw, Mapping):
                    yield raw
            token = answer.get("next_page_token") or None
            if not token or not data:
                return

    # -- questions -----------------------------------------------------------------------------

    async def questions(self, since: datetime | None) -> AsyncIterator[CustomerQuestion]:
        params: dict[str, Any] = {"entity_type": "MMP_ORDER", "with_messages": "true", "limit": PAGE_LIMIT}
        if since is not None:
            params["updated_since"] = _mirakl_time(since)
        async for thread in self._seek(THREADS, params):
            question = _question(thread, self.name)
            if question is not None:
                yield question

    async def question(self, question_id: str) -> CustomerQuestion:
        question = _question(await self._thread(question_id), self.name)
        if question is None:
            raise OrderCallError(f"Mirakl thread {question_id} holds no customer message", retryable=False)
        return question

    async def answer(self, question: CustomerQuestion, text: str) -> None:
        """M12 to the thread's customer, as multipart ``message_input`` (Mirakl takes no JSON body)."""
        thread = await self._thread(question.question_id)
        customer = next(
            (p for p in thread.get("current_participants") or [] if p.get("type") == "CUSTOMER"), None
        )
        if customer is None or not customer.get("id"):
            raise OrderCallError(
                f"Mirakl thread {question.question_id} names no customer to answer", retryable=False
            )
        message = {"body": text, "to": [{"type": "CUSTOMER", "id": str(customer["id"])}]}
        form = httpx.Request(
            "POST", "http://mirakl", files={"message_input": (None, json.dumps(message), "application/json")}
        )
        shop = self.connector.options.get("shop_id")
        await self.request(
            "POST",
            f"{THREADS}/{question.question_id}/message",
            params=shop_params(str(shop) if shop else None),
            content=form.read(),
            headers={"Content-Type": form.headers["Content-Type"], "Accept": "application/json"},
        )

    async def _thread(self, thread_id: str) -> dict[str, Any]:
        return await self._json("GET", f"{THREADS}/{thread_id}")


def _return(raw: Mapping[str, Any], marketplace: str) -> MarketplaceReturn:
    state = str(raw.get("state") or "WAITING_ACCEPTANCE")
    lines = [line for line in raw.get("return_lines") or [] if isinstance(line, Mapping)]
    return MarketplaceReturn(
        marketplace,
        str(raw["id"]),
        str(raw["order_id"]),
        return_reason(str(raw.get("reason_code") or "")),
        state,
        open=state not in ENDED_RETURNS,
        created_at=_when(raw.get("date_created")),
        items=tuple((str(line.get("order_line_id") or ""), int(line.get("quantity") or 0)) for line in lines),
    )


def _question(thread: Mapping[str, Any], marketplace: str) -> CustomerQuestion | None:
    """The customer's messages since the shop last replied (or, once replied, before that reply)."""
    messages = sorted(
        (m for m in thread.get("messages") or [] if isinstance(m, Mapping)),
        key=lambda m: str(m.get("date_created") or ""),
    )
    senders = [str((m.get("from") or {}).get("type") or "") for m in messages]
    if CUSTOMER not in senders:
        return None
    last_customer = max(i for i, sender in enumerate(senders) if sender == CUSTOMER)
    reply = next((messages[i] for i in range(last_customer + 1, len(messages)) if senders[i] == SHOP), None)
    first = last_customer
    while first > 0 and senders[first - 1] != SHOP:
        first -= 1
    asked = [
        str(messages[i].get("body") or "") for i in range(first, last_customer + 1) if senders[i] == CUSTOMER
    ]
    order_id = next(
        (str(e.get("id")) for e in thread.get("entities") or [] if e.get("type") == "MMP_ORDER"), None
    )
    return CustomerQuestion(
        marketplace,
        str(thread.get("id")),
        "\n".join(asked),
        asked_at=_when(messages[first].get("date_created")),
        order_id=order_id,
        answer=str(reply.get("body") or "") or None if reply else None,
    )


def _when(value: Any) -> datetime | None:
    try:
        return aware_time(str(value).replace("Z", "+00:00")) if value else None
    except ValueError:
        return None


def _mirakl_time(moment: datetime) -> str:
    """As Mirakl writes dates: UTC with a Z (the engine's watermarks are aware)."""
    return moment.astimezone(UTC).isoformat(timespec="seconds").replace("+00:00", "Z")
