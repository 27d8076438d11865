"""What one rule may cost: the bounds that keep a rule file from hurting the machine.

A rule file is code written by a user, run once per SKU over catalogs of a million SKUs,
and checked in an editor on every save. Whatever it says, the engine guarantees:

* every text a function, filter, operator or template builds has at most ``MAX_TEXT``
  characters, and every list at most ``MAX_LIST`` items; the size is computed *before* the
  value is built (repeat counts, joins, replacements), so a refused value never takes memory;
* a number built by a template operator has at most ``MAX_DIGITS`` digits, and a number
  literal in a rule at most ``MAX_LITERAL_DIGITS``;
* the evaluation of one SKU builds or scans at most ``MAX_WORK`` characters and runs at most
  ``MAX_LOOP_STEPS`` template loop iterations in all (a deterministic step budget, not a
  clock: the same SKU is valid or invalid on every machine);
* regular expressions run on RE2 (:mod:`engine.rules._functions`), in time linear in the text.

Past a bound, :class:`LimitExceeded` (an :class:`EvaluationError`, code TP905 for a value,
TP906 for the budget) makes the SKU invalid with the rule's location; a constant that
exceeds one is a ``tradepost check`` diagnostic instead (TP313, TP203, TP405).
"""

from __future__ import annotations

from contextvars import ContextVar, Token
from decimal import Decimal

from engine._diagnostics import EvaluationError, Span

MAX_TEXT = 1_048_576
"""Characters in one text value: above any listing field a marketplace takes, and any description."""
MAX_LIST = 10_000
"""Items in one list built by a template (``[x] * n``, ``a + b``)."""
MAX_DIGITS = 100
"""Digits of a whole number built by a template operator (``**``, ``*``)."""
MAX_LITERAL_DIGITS = 40
"""Digits of a number written in a rule: far beyond any price, far below a slow one."""
MAX_WORK = 16 * MAX_TEXT
"""Characters built or scanned while evaluating one SKU, all fields together."""
MAX_LOOP_STEPS = 10_000
"""Template loop iterations while evaluating one SKU, nested loops counted in full."""
MAX_TEMPLATE_DEPTH = 48
"""Nesting of brackets (and of syntax nodes) in one template, as for expressions."""

VALUE_CODE = "TP905"
BUDGET_CODE = "TP906"


class LimitExceeded(EvaluationError):
    """A value or the SKU's budget went past a bound; the SKU is invalid, the run goes on."""

    def __init__(self, message: str, span: Span | None = None, code: str = VALUE_CODE) -> None:
        super().__init__(message, span, code)


class Budget:
    """What is left of one SKU's allowance of work; ``with Budget():`` arms it for the block.

    ``per_sku`` marks a budget armed around a run of SKUs (:func:`per_sku`): the evaluator fills it
    anew before each SKU rather than arming a fresh one, which costs two context changes a SKU.
    """

    __slots__ = ("_token", "per_sku", "steps", "work")

    def __init__(self, per_sku: bool = False) -> None:
        self.work = MAX_WORK
        self.steps = MAX_LOOP_STEPS
        self.per_sku = per_sku
        self._token: Token[Budget | None] | None = None

    def __enter__(self) -> Budget:
        self._token = _current.set(self)
        return self

    def __exit__(self, *exc: object) -> None:
        if self._token is not None:
            _current.reset(self._token)


def per_sku() -> Budget:
    """A budget to arm around a run of SKU evaluations (``with per_sku():``), each of which fills it
    to :data:`MAX_WORK` and :data:`MAX_LOOP_STEPS` before its SKU: every SKU still has the whole
    allowance, and none of another's. Arm it where no other code runs between two SKUs (not
    across a generator's ``yield``): code outside an evaluation would be charged to it."""
    return Budget(per_sku=True)


_current: ContextVar[Budget | None] = ContextVar("tradepost_budget", default=None)
SKU_BUDGET = _current
"""The budget armed for the SKU being evaluated (None outside one): the plan's evaluator sets a
fresh :class:`Budget` before each SKU and resets it after (``engine.sync._unrolled``), or fills
the one armed by :func:`per_sku` around its run of SKUs."""


def budget() -> Budget:
    """A fresh budget for one SKU (or one template render outside a SKU's evaluation)."""
    return Budget()


def armed() -> bool:
    return _current.get() is not None


def charge(characters: int, at: Span | None = None) -> None:
    """Count characters built or scanned against the current SKU's budget."""
    current = _current.get()
    if current is None:
        return
    current.work -= characters
    if current.work < 0:
        raise LimitExceeded(
            f"this SKU's rules built or scanned more than {MAX_WORK:,} characters; "
            "simplify the templates and functions that repeat or grow text",
            at,
            BUDGET_CODE,
        )


def step(at: Span | None = None) -> None:
    """Count one template loop iteration against the current SKU's budget."""
    current = _current.get()
    if current is None:
        return
    current.steps -= 1
    if current.steps < 0:
        raise LimitExceeded(
            f"this SKU's templates ran more than {MAX_LOOP_STEPS:,} loop iterations; "
            "loop over shorter lists, or do not nest loops",
            at,
            BUDGET_CODE,
        )


def text_fits(size: int, what: str, at: Span | None = None) -> None:
    """Refuse a text of ``size`` characters before it is built; charge it otherwise."""
    if size > MAX_TEXT:
        raise LimitExceeded(f"{what} would be {size:,} characters; the limit is {MAX_TEXT:,}", at)
    charge(size, at)


def list_fits(size: int, what: str, at: Span | None = None) -> None:
    if size > MAX_LIST:
        raise LimitExceeded(f"{what} would have {size:,} items; the limit is {MAX_LIST:,}", at)


def digits_fit(digits: int, what: str, at: Span | None = None) -> None:
    if digits > MAX_DIGITS:
        raise LimitExceeded(f"{what} would have about {digits:,} digits; the limit is {MAX_DIGITS}", at)


def whole_digits(value: int | Decimal) -> int:
    """Digits before the decimal point (at least 1), without building the text."""
    if isinstance(value, Decimal):
        if not value.is_finite() or value.is_zero():
            return 1
        return max(value.adjusted() + 1, 1)
    return abs(value).bit_length() * 30103 // 100000 + 1  # log10(2) = 0.30103
