"""Orders: the canonical order, the store that tracks each one, and the desk that moves it.

An order channel (:mod:`engine.connectors`) reads a marketplace's orders into :class:`Order`;
the desk decides, places it in VTEX, and confirms or cancels on the marketplace. After the sale,
returns and customer questions are kept beside the orders (:class:`AfterSalesStore`); a return
moves its order to ``returned``, and each question is answered once (:func:`answer_question`).
"""

from __future__ import annotations

from engine.model._order import Address, Buyer, FulfilmentStatus, Order, OrderItem, PaymentStatus
from engine.orders._aftersales import (
    AfterSalesError,
    AfterSalesStore,
    AnswerOutcome,
    QuestionsSummary,
    ReturnsSummary,
    StoredQuestion,
    StoredReturn,
    answer_question,
    pull_questions,
    pull_returns,
)
from engine.orders._flow import (
    EXIT_PARTIAL,
    OrderError,
    PullSummary,
    PushSummary,
    VtexPlacement,
    approve,
    reject,
)
from engine.orders._store import OPEN, STATES, OrderStore, StoredOrder

__all__ = [
    "EXIT_PARTIAL",
    "OPEN",
    "STATES",
    "Address",
    "AfterSalesError",
    "AfterSalesStore",
    "AnswerOutcome",
    "Buyer",
    "FulfilmentStatus",
    "Order",
    "OrderError",
    "OrderItem",
    "OrderStore",
    "PaymentStatus",
    "PullSummary",
    "PushSummary",
    "QuestionsSummary",
    "ReturnsSummary",
    "StoredOrder",
    "StoredQuestion",
    "StoredReturn",
    "VtexPlacement",
    "answer_question",
    "approve",
    "pull_questions",
    "pull_returns",
    "reject",
]
