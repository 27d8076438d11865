"""After the sale: the returns and customer questions an order channel may read, and its answers.

Optional, next to :class:`~engine.connectors.OrderChannel`: a channel whose marketplace exposes
returns and questions (Mercado Libre's claims and questions, Mirakl's returns and message
threads) also implements :class:`AfterSalesChannel`; the engine checks with ``isinstance`` and
says "not offered" for the others. Records come canonical (:class:`MarketplaceReturn`,
:class:`CustomerQuestion`) and carry no personal data: no buyer name, id or address, only what an
operations team needs to act (the order, the reason, the question's text).

Answering is a side effect the engine makes exactly once (``engine.orders._aftersales``): it
records the answer before :meth:`AfterSalesChannel.answer`, reads the question back with
:meth:`AfterSalesChannel.question` before any repeat, and counts an answer the marketplace already
shows as sent. A channel therefore makes :meth:`~AfterSalesChannel.question` report the answer
the marketplace holds, whoever wrote it.
"""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import datetime
from typing import ClassVar, Protocol, runtime_checkable

__all__ = ["AfterSalesChannel", "CustomerQuestion", "MarketplaceReturn"]


@dataclass(frozen=True)
class MarketplaceReturn:
    """A return the buyer opened on the marketplace, linked to its order.

    ``reason`` is readable text with the marketplace's code (``PDD9549: different or defective
    product``); ``open`` is false once the marketplace refused or cancelled the return, so the
    order is not moved for it. ``items`` lists ``(line or listing id, quantity)`` when known.
    """

    marketplace: str
    return_id: str
    order_id: str
    reason: str
    status: str
    open: bool = True
    created_at: datetime | None = None
    items: tuple[tuple[str, int], ...] = ()


@dataclass(frozen=True)
class CustomerQuestion:
    """A buyer's question, before the sale (on a listing) or after it (on an order).

    ``answer`` is the answer the marketplace shows, by the seller through Tradepost or elsewhere;
    None while unanswered. ``item_id`` is the marketplace's listing id, ``sku_id`` the VTEX SKU
    when known; ``order_id`` links a question asked about an order.
    """

    marketplace: str
    question_id: str
    text: str
    asked_at: datetime | None = None
    order_id: str | None = None
    item_id: str | None = None
    sku_id: str | None = None
    answer: str | None = None


@runtime_checkable
class AfterSalesChannel(Protocol):
    """What an order channel implements to bring returns and questions in and send answers out.

    ``answer_length`` is the (shortest, longest) answer the marketplace accepts, in characters:
    the engine refuses others before any call, with a message that says so.
    """

    answer_length: ClassVar[tuple[int, int]]

    def returns(self, since: datetime | None) -> AsyncIterator[MarketplaceReturn]:
        """Returns opened or changed since ``since`` (all recent ones when None)."""
        ...

    def questions(self, since: datetime | None) -> AsyncIterator[CustomerQuestion]:
        """Questions asked or changed since ``since`` (all recent ones when None), answered or not."""
        ...

    async def question(self, question_id: str) -> CustomerQuestion:
        """One question as the marketplace shows it now (its answer, if any): the read-back."""
        ...

    async def answer(self, question: CustomerQuestion, text: str) -> None:
        """Post the seller's answer; raises :class:`~engine.connectors.OrderCallError` when refused."""
        ...
