"""Returns and customer questions in the state store, and the one answer each question gets.

The contract. A return or a question is one row keyed by ``(marketplace, id)``, inserted with
``ON CONFLICT DO NOTHING``: pulls that overlap, or a pull repeated after a crash, store each once.
A return is linked to its order ``(marketplace, order_id)``; an open return moves an order that
reached VTEX (``placed``, ``ready``, ``shipped``) to ``returned`` with the return's reason, through
the orders' compare-and-set (:meth:`~engine.orders._store.OrderStore.transition`, with its history
event), so a pull killed between storing the return and moving the order moves it next time, and
never twice. An order not yet in VTEX keeps its state (a person decides) and gets a history event.

Answering a question is exactly once, whatever is killed or re-run: the answer is recorded
(``answering``) before the marketplace is called; the question is read back from the
marketplace before every send, and an answer it already shows (ours from a run killed after the
call, or one written on the marketplace's site) counts as sent; only a 2xx records ``answered``.
A marketplace that fails (5xx, garbage, no answer) leaves the answer recorded and the question
``answering``: the next run reads it back and sends it only if it is still unanswered.

Personal data: neither table holds a buyer's name, id or address; a question keeps its text
(needed to answer it) and a return its reason and quantities.
"""

from __future__ import annotations

import json
import time
from collections.abc import Awaitable, Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal

from engine import failpoints as _failpoints
from engine._diagnostics import TradepostError
from engine.connectors._aftersales import AfterSalesChannel, CustomerQuestion, MarketplaceReturn
from engine.connectors._orderchannel import OrderCallError, OrderChannel
from engine.orders._flow import PULL_OVERLAP
from engine.orders._store import OrderStore
from engine.state._store import StateStore

__all__ = [
    "RETURNABLE",
    "AfterSalesError",
    "AfterSalesStore",
    "AnswerOutcome",
    "QuestionState",
    "QuestionsSummary",
    "ReturnsSummary",
    "StoredQuestion",
    "StoredReturn",
    "after_sales_of",
    "answer_question",
    "pull_questions",
    "pull_returns",
]

QuestionState = Literal["unanswered", "answering", "answered"]
RETURNABLE = ("placed", "ready", "shipped")
"""Order states a return moves to ``returned``: the order is in VTEX, so the goods may come back."""

_SCHEMA = """
CREATE TABLE IF NOT EXISTS returns (
    marketplace TEXT NOT NULL,
    return_id TEXT NOT NULL,
    order_id TEXT NOT NULL,
    reason TEXT NOT NULL,
    status TEXT NOT NULL,
    is_open INTEGER NOT NULL,
    items TEXT NOT NULL,
    created_at REAL,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (marketplace, return_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS returns_by_order ON returns (marketplace, order_id);
CREATE TABLE IF NOT EXISTS questions (
    marketplace TEXT NOT NULL,
    question_id TEXT NOT NULL,
    order_id TEXT,
    item_id TEXT,
    sku_id TEXT,
    text TEXT NOT NULL,
    asked_at REAL,
    state TEXT NOT NULL,
    answer TEXT,
    answered_by TEXT,
    error TEXT,
    received_at REAL NOT NULL,
    updated_at REAL NOT NULL,
    PRIMARY KEY (marketplace, question_id)
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS questions_by_state ON questions (state, marketplace);
CREATE TABLE IF NOT EXISTS after_sales_cursors (
    marketplace TEXT NOT NULL,
    kind TEXT NOT NULL,
    since TEXT NOT NULL,
    PRIMARY KEY (marketplace, kind)
) WITHOUT ROWID;
"""

_RETURN_COLUMNS = "marketplace, return_id, order_id, reason, status, is_open, items, created_at, received_at"
_QUESTION_COLUMNS = (
    "marketplace, question_id, order_id, item_id, sku_id, text, asked_at, state, answer, answered_by, "
    "error, received_at, updated_at"
)


class AfterSalesError(TradepostError):
    """A returns or questions command cannot do what was asked (unknown question, bad answer text,
    a marketplace that refused or did not answer); the message says what to do."""


@dataclass(frozen=True)
class StoredReturn:
    marketplace: str
    return_id: str
    order_id: str
    reason: str
    status: str
    open: bool
    items: list[tuple[str, int]]
    created_at: float | None
    received_at: float

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "return_id": self.return_id,
            "order_id": self.order_id,
            "reason": self.reason,
            "status": self.status,
            "open": self.open,
            "items": [{"id": item, "quantity": quantity} for item, quantity in self.items],
            "created_at": _iso(self.created_at),
            "received_at": _iso(self.received_at),
        }


@dataclass(frozen=True)
class StoredQuestion:
    marketplace: str
    question_id: str
    order_id: str | None
    item_id: str | None
    sku_id: str | None
    text: str
    asked_at: float | None
    state: QuestionState
    answer: str | None
    answered_by: str | None
    error: str | None
    received_at: float
    updated_at: float

    def canonical(self) -> CustomerQuestion:
        return CustomerQuestion(
            self.marketplace,
            self.question_id,
            self.text,
            order_id=self.order_id,
            item_id=self.item_id,
            sku_id=self.sku_id,
            answer=self.answer if self.state == "answered" else None,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "question_id": self.question_id,
            "order_id": self.order_id,
            "item_id": self.item_id,
            "sku_id": self.sku_id,
            "text": self.text,
            "asked_at": _iso(self.asked_at),
            "state": self.state,
            "answer": self.answer,
            "answered_by": self.answered_by,
            "error": self.error,
            "updated_at": _iso(self.updated_at),
        }


def _iso(timestamp: float | None) -> str | None:
    return None if timestamp is None else time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(timestamp))


def _stamp(moment: datetime | None) -> float | None:
    return None if moment is None else moment.timestamp()


class AfterSalesStore:
    """The ``returns`` and ``questions`` tables of a :class:`StateStore` (same database, same connection)."""

    def __init__(self, state: StateStore) -> None:
        self.db = state.db
        with self.db.schema():
            self.db.executescript(_SCHEMA)

    # -- returns -----------------------------------------------------------------------------

    def record_return(self, found: MarketplaceReturn) -> Literal["new", "changed", "same"]:
        """Store a return once; a known one takes the marketplace's latest status."""
        now = time.time()
        items = json.dumps([list(item) for item in found.items])
        with self.db.transaction(write=True):
            cursor = self.db.execute(
                f"INSERT INTO returns ({_RETURN_COLUMNS}, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?) "
                "ON CONFLICT DO NOTHING",
                (
                    found.marketplace,
                    found.return_id,
                    found.order_id,
                    found.reason,
                    found.status,
                    int(found.open),
                    items,
                    _stamp(found.created_at),
                    now,
                    now,
                ),
            )
            if cursor.rowcount == 1:
                return "new"
            cursor = self.db.execute(
                "UPDATE returns SET status = ?, is_open = ?, reason = ?, updated_at = ? "
                "WHERE marketplace = ? AND return_id = ? AND (status <> ? OR is_open <> ? OR reason <> ?)",
                (
                    found.status,
                    int(found.open),
                    found.reason,
                    now,
                    found.marketplace,
                    found.return_id,
                    found.status,
                    int(found.open),
                    found.reason,
                ),
            )
        return "changed" if cursor.rowcount == 1 else "same"

    def returns(
        self, marketplaces: Iterable[str] | None = None, order_id: str | None = None
    ) -> list[StoredReturn]:
        """Returns oldest first, optionally of some marketplaces or one order."""
        query, params = _filtered(f"SELECT {_RETURN_COLUMNS} FROM returns", marketplaces)
        if order_id is not None:
            query += " AND order_id = ?"
            params.append(order_id)
        rows = self.db.execute(query + " ORDER BY received_at, marketplace, return_id", params).fetchall()
        return [_stored_return(row) for row in rows]

    # -- questions ---------------------------------------------------------------------------

    def record_question(self, found: CustomerQuestion) -> Literal["new", "answered", "same"]:
        """Store a question once; an answer the marketplace now shows marks it answered, and new
        text without an answer (a message thread the buyer wrote in again) opens it again."""
        now = time.time()
        state: QuestionState = "answered" if found.answer else "unanswered"
        with self.db.transaction(write=True):
            cursor = self.db.execute(
                f"INSERT INTO questions ({_QUESTION_COLUMNS}) "
                "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, NULL, ?, ?) ON CONFLICT DO NOTHING",
                (
                    found.marketplace,
                    found.question_id,
                    found.order_id,
                    found.item_id,
                    found.sku_id,
                    found.text,
                    _stamp(found.asked_at),
                    state,
                    found.answer,
                    "marketplace" if found.answer else None,
                    now,
                    now,
                ),
            )
        if cursor.rowcount == 1:
            return "new"
        stored = self.question(found.marketplace, found.question_id)
        if stored is None:
            return "same"
        if found.answer and stored.state != "answered":
            self.finish_answer(stored, found.answer)
            return "answered"
        if not found.answer and stored.state == "answered" and found.text != stored.text:
            self._reopen(stored, found.text)  # a thread the buyer wrote in again after our answer
            return "new"
        return "same"

    def _reopen(self, stored: StoredQuestion, text: str) -> None:
        self._update(
            stored,
            "state = 'unanswered', text = ?, answer = NULL, answered_by = NULL",
            (text,),
            "state = 'answered'",
        )

    def _update(
        self,
        stored: StoredQuestion,
        assignments: str,
        values: tuple[Any, ...],
        only_if: str = "1 = 1",
        only_values: tuple[Any, ...] = (),
    ) -> bool:
        """One question's row changed in a transaction (when ``only_if`` holds); whether it was."""
        with self.db.transaction(write=True):
            cursor = self.db.execute(
                f"UPDATE questions SET {assignments}, updated_at = ? "
                f"WHERE marketplace = ? AND question_id = ? AND {only_if}",
                (*values, time.time(), stored.marketplace, stored.question_id, *only_values),
            )
        return cursor.rowcount == 1

    def question(self, marketplace: str, question_id: str) -> StoredQuestion | None:
        row = self.db.execute(
            f"SELECT {_QUESTION_COLUMNS} FROM questions WHERE marketplace = ? AND question_id = ?",
            (marketplace, question_id),
        ).fetchone()
        return _stored_question(row) if row else None

    def find_question(self, question_id: str, marketplace: str | None = None) -> list[StoredQuestion]:
        query, params = _filtered(
            f"SELECT {_QUESTION_COLUMNS} FROM questions", [marketplace] if marketplace else None
        )
        rows = self.db.execute(query + " AND question_id = ?", [*params, question_id]).fetchall()
        return [_stored_question(row) for row in rows]

    def questions(
        self, marketplaces: Iterable[str] | None = None, *, unanswered: bool = False
    ) -> list[StoredQuestion]:
        """Questions oldest first; ``unanswered``: those still waiting for the seller (or being sent)."""
        query, params = _filtered(f"SELECT {_QUESTION_COLUMNS} FROM questions", marketplaces)
        if unanswered:
            query += " AND state <> 'answered'"
        query += " ORDER BY coalesce(asked_at, received_at), marketplace, question_id"
        return [_stored_question(row) for row in self.db.execute(query, params).fetchall()]

    def begin_answer(self, stored: StoredQuestion, text: str) -> bool:
        """Record the answer before it is sent (compare-and-set from the state it was read in)."""
        return self._update(
            stored,
            "state = 'answering', answer = ?, error = NULL",
            (text,),
            "state = ? AND coalesce(answer, '') = ?",
            (stored.state, stored.answer or ""),
        )

    def finish_answer(self, stored: StoredQuestion, shown: str) -> None:
        """The marketplace shows ``shown`` as the answer: ours when it is the text we recorded."""
        ours = stored.state == "answering" and (stored.answer or "").strip() == shown.strip()
        by = "tradepost" if ours else "marketplace"
        self._update(stored, "state = 'answered', answer = ?, answered_by = ?, error = NULL", (shown, by))

    def answer_failed(self, stored: StoredQuestion, message: str, *, sent_maybe: bool) -> None:
        """The send failed: kept ``answering`` when it may have arrived (read back next time), else
        back to ``unanswered`` with the marketplace's refusal."""
        if sent_maybe:
            self._update(stored, "error = ?", (message,))
        else:
            self._update(
                stored, "state = 'unanswered', answer = NULL, error = ?", (message,), "state = 'answering'"
            )

    # -- cursors -----------------------------------------------------------------------------

    def cursor(self, marketplace: str, kind: str) -> str | None:
        row = self.db.execute(
            "SELECT since FROM after_sales_cursors WHERE marketplace = ? AND kind = ?", (marketplace, kind)
        ).fetchone()
        return str(row[0]) if row else None

    def set_cursor(self, marketplace: str, kind: str, since: str) -> None:
        with self.db.transaction(write=True):
            self.db.execute(
                "INSERT INTO after_sales_cursors VALUES (?, ?, ?) "
                "ON CONFLICT (marketplace, kind) DO UPDATE SET since = excluded.since",
                (marketplace, kind, since),
            )


def _filtered(query: str, marketplaces: Iterable[str] | None) -> tuple[str, list[Any]]:
    query += " WHERE 1 = 1"
    params: list[Any] = []
    if marketplaces is not None:
        chosen = list(marketplaces)
        query += f" AND marketplace IN ({', '.join('?' * len(chosen))})" if chosen else " AND 1 = 0"
        params += chosen
    return query, params


def _stored_return(row: tuple[Any, ...]) -> StoredReturn:
    marketplace, return_id, order_id, reason, status, is_open, items, created_at, received_at = row
    return StoredReturn(
        marketplace,
        return_id,
        order_id,
        reason,
        status,
        bool(is_open),
        [(str(item), int(quantity)) for item, quantity in json.loads(items)],
        created_at,
        received_at,
    )


def _stored_question(row: tuple[Any, ...]) -> StoredQuestion:
    return StoredQuestion(*row)


# -- the flows -----------------------------------------------------------------------------------


def after_sales_of(channel: OrderChannel | None) -> AfterSalesChannel | None:
    """The channel's after-sales side, or None when its marketplace offers none through Tradepost."""
    return channel if isinstance(channel, AfterSalesChannel) else None


@dataclass
class _Read:
    """What one pull of returns or questions read; ``offered`` false when the marketplace has none."""

    marketplace: str
    offered: bool = True
    read: int = 0
    new: int = 0
    error: str | None = None

    @property
    def exit_code(self) -> int:
        return 1 if self.error else 0

    def to_dict(self) -> dict[str, Any]:
        return {
            "marketplace": self.marketplace,
            "offered": self.offered,
            "read": self.read,
            "new": self.new,
            "error": self.error,
        }


@dataclass
class ReturnsSummary(_Read):
    changed: int = 0
    returned: list[str] = field(default_factory=list)
    """Orders moved to ``returned`` by this pull."""
    unknown_orders: list[str] = field(default_factory=list)
    """Returns of orders the state store does not hold (sold before Tradepost took the orders)."""

    def to_dict(self) -> dict[str, Any]:
        return {
            **super().to_dict(),
            "changed": self.changed,
            "returned": self.returned,
            "unknown_orders": self.unknown_orders,
        }


@dataclass
class QuestionsSummary(_Read):
    answered_elsewhere: int = 0

    def to_dict(self) -> dict[str, Any]:
        return {**super().to_dict(), "answered_elsewhere": self.answered_elsewhere}


def _since(store: AfterSalesStore, marketplace: str, kind: str) -> datetime | None:
    cursor = store.cursor(marketplace, kind)
    return datetime.fromisoformat(cursor) - PULL_OVERLAP if cursor else None


async def _gathered(
    summary: _Read,
    channel: OrderChannel | None,
    gather: Callable[[AfterSalesChannel], Awaitable[dict[str, Any]]],
) -> dict[str, Any] | None:
    """Everything ``gather`` reads from the channel's after-sales side, by id; None (said in the
    summary) when the marketplace offers none or did not answer."""
    after_sales = after_sales_of(channel)
    if after_sales is None:
        summary.offered = False
        return None
    try:
        found = await gather(after_sales)
    except OrderCallError as exc:
        summary.error = str(exc)
        return None
    summary.read = len(found)
    return found


async def pull_returns(
    store: AfterSalesStore,
    orders: OrderStore,
    marketplace: str,
    channel: OrderChannel | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> ReturnsSummary:
    """Read the marketplace's returns since the last pull, store each once, move their orders."""
    summary = ReturnsSummary(marketplace)
    started = clock()

    async def gather(after_sales: AfterSalesChannel) -> dict[str, Any]:
        since = _since(store, marketplace, "returns")
        return {item.return_id: item async for item in after_sales.returns(since)}

    found = await _gathered(summary, channel, gather)
    if found is None:
        return summary
    for item in found.values():
        seen = store.record_return(item)
        summary.new += seen == "new"
        summary.changed += seen == "changed"
        _failpoints.reach("returns:stored")
        _move_order(orders, item, seen == "new", summary)
    store.set_cursor(marketplace, "returns", started.isoformat())
    return summary


def _move_order(orders: OrderStore, item: MarketplaceReturn, new: bool, summary: ReturnsSummary) -> None:
    """An open return moves its order to ``returned`` (again on every pull until it has: the
    compare-and-set makes a repeat do nothing)."""
    stored = orders.get(item.marketplace, item.order_id)
    if stored is None:
        summary.unknown_orders.append(item.order_id)
        return
    detail = f"return {item.return_id}: {item.reason}"
    if not item.open or stored.state == "returned":
        return
    if stored.state in RETURNABLE:
        if orders.transition(
            stored, "returned", "return received on the marketplace", detail, note=item.reason
        ):
            summary.returned.append(item.order_id)
    elif new:
        orders.note_event(
            stored, "return received on the marketplace", f"{detail}; the order stays {stored.state}"
        )


async def pull_questions(
    store: AfterSalesStore,
    marketplace: str,
    channel: OrderChannel | None,
    clock: Callable[[], datetime] = lambda: datetime.now(UTC),
) -> QuestionsSummary:
    """Read the marketplace's questions since the last pull and store each once; a stored one
    still waiting that the marketplace no longer lists is read back by id (answered on its site)."""
    summary = QuestionsSummary(marketplace)
    started = clock()

    async def gather(after_sales: AfterSalesChannel) -> dict[str, Any]:
        since = _since(store, marketplace, "questions")
        found = {item.question_id: item async for item in after_sales.questions(since)}
        for waiting in store.questions([marketplace], unanswered=True):
            if waiting.question_id not in found:
                found[waiting.question_id] = await after_sales.question(waiting.question_id)
        return found

    found = await _gathered(summary, channel, gather)
    if found is None:
        return summary
    for item in found.values():
        seen = store.record_question(item)
        summary.new += seen == "new"
        summary.answered_elsewhere += seen == "answered"
    store.set_cursor(marketplace, "questions", started.isoformat())
    return summary


@dataclass(frozen=True)
class AnswerOutcome:
    """What ``questions answer`` did: ``sent`` false when the marketplace already showed an answer."""

    question: StoredQuestion
    sent: bool

    def to_dict(self) -> dict[str, Any]:
        return {"sent": self.sent, "question": self.question.to_dict()}


def checked_answer(text: str, limits: tuple[int, int], title: str) -> str:
    """The answer as it will be sent (trimmed), or why the marketplace would refuse it."""
    answer = text.strip()
    shortest, longest = limits
    if not answer:
        raise AfterSalesError("the answer is empty: give the text the buyer will read")
    if len(answer) < shortest:
        raise AfterSalesError(f"the answer has {len(answer)} characters; {title} needs at least {shortest}")
    if len(answer) > longest:
        raise AfterSalesError(
            f"the answer has {len(answer)} characters; {title} allows at most {longest}: shorten it"
        )
    return answer


async def answer_question(
    store: AfterSalesStore, marketplace: str, channel: OrderChannel | None, question_id: str, text: str
) -> AnswerOutcome:
    """Send one answer exactly once (see the module docstring); raises :class:`AfterSalesError`."""
    after_sales = after_sales_of(channel)
    title = (channel.title if channel is not None else "") or marketplace
    if after_sales is None:
        raise AfterSalesError(f"{title} offers no questions to answer through Tradepost")
    answer = checked_answer(text, after_sales.answer_length, title)
    stored = store.question(marketplace, question_id)
    where = f"{marketplace} question {question_id}"
    if stored is None:
        raise AfterSalesError(f"no {where} in the state store; run `tradepost questions list` to read them")
    if stored.state == "answered":
        if (stored.answer or "").strip() == answer:
            return AnswerOutcome(stored, sent=False)
        raise AfterSalesError(f"{where} is already answered ({stored.answered_by}): {stored.answer!r}")
    if stored.state == "answering" and stored.answer != answer:
        raise AfterSalesError(
            f"an answer to {where} is already on its way ({stored.answer!r}): run the command again with "
            "that text to finish sending it"
        )
    if stored.state == "unanswered" and not store.begin_answer(stored, answer):
        raise AfterSalesError(f"{where} changed meanwhile; look at it again")
    sending = store.question(marketplace, question_id)
    assert sending is not None
    try:
        shown = await after_sales.question(question_id)  # read back: a killed run may have sent it
        if shown.answer:
            store.finish_answer(sending, shown.answer)
            return AnswerOutcome(_reread(store, sending), sent=False)
        _failpoints.reach("answer:before-marketplace")
        await after_sales.answer(shown, answer)
    except OrderCallError as exc:
        return await _after_failure(store, after_sales, sending, exc, where)
    _failpoints.reach("answer:after-marketplace")
    store.finish_answer(sending, answer)
    return AnswerOutcome(_reread(store, sending), sent=True)


async def _after_failure(
    store: AfterSalesStore,
    after_sales: AfterSalesChannel,
    sending: StoredQuestion,
    failed: OrderCallError,
    where: str,
) -> AnswerOutcome:
    """A send that failed may still have arrived (an answer lost on its way back, then a retry
    refused as "already answered"): the question is read back before anything is concluded."""
    try:
        shown = await after_sales.question(sending.question_id)
    except OrderCallError:
        shown = None
    if shown is not None and shown.answer:
        store.finish_answer(sending, shown.answer)
        current = _reread(store, sending)
        return AnswerOutcome(current, sent=current.answered_by == "tradepost")
    unknown = shown is None or failed.retryable
    store.answer_failed(sending, str(failed), sent_maybe=unknown)
    then = (
        "the answer is kept: run the same command again; it reads the question back first and "
        "sends the answer only if the marketplace does not show it yet"
        if unknown
        else "nothing was answered"
    )
    raise AfterSalesError(f"{where}: {failed}; {then}")


def _reread(store: AfterSalesStore, stored: StoredQuestion) -> StoredQuestion:
    current = store.question(stored.marketplace, stored.question_id)
    assert current is not None
    return current
