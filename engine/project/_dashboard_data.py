"""The listings with errors, as the dashboard lists them: read from the state store, filtered, bounded.

Two kinds, each what the state keeps: a SKU whose last change failed to reach the marketplace
(one row per SKU, its latest error; code :data:`FAILED`), and a record the last plan found invalid,
one row per reason code with the rule's location (its TP code). Memory stays bounded whatever the
catalog: every row is counted by code, but only the first ``limit`` that pass the filter are kept.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from engine.project._status import noted_reasons
from engine.state._store import StateStore

FAILED = "FAILED"
"""The code of a SKU whose last change the marketplace refused or that could not be sent."""
SHOWN = 500
"""Rows a listing page keeps at most; the counts are over every row."""


@dataclass(frozen=True)
class ListingProblem:
    """One SKU's problem on one marketplace: a failed change, or one reason it is invalid."""

    marketplace: str
    sku_id: str
    kind: Literal["failing", "invalid"]
    code: str
    message: str
    location: str | None = None
    """``file:line:col`` of the rule an invalid record's reason points at."""
    at: float | None = None
    """When a failure was recorded; None for an invalid record (the state keeps no date)."""


@dataclass
class ListingProblems:
    """The rows that pass the filter (at most ``limit``), and how many rows there are of each code."""

    rows: list[ListingProblem] = field(default_factory=list)
    matching: int = 0
    by_code: dict[str, int] = field(default_factory=dict)


def listing_problems(
    state: StateStore, names: Sequence[str], *, code: str | None = None, limit: int = SHOWN
) -> ListingProblems:
    """The failing and invalid listings of ``names``, those of ``code`` only when given (failing
    first, newest first, then invalid ones in SKU order)."""
    found = ListingProblems()
    for name in names:
        for problem in _problems(state, name):
            found.by_code[problem.code] = found.by_code.get(problem.code, 0) + 1
            if code and problem.code != code:
                continue
            found.matching += 1
            if len(found.rows) < limit:
                found.rows.append(problem)
    return found


def _problems(state: StateStore, name: str) -> Iterator[ListingProblem]:
    for sku_id, error, at in state.error_rows(name):
        yield ListingProblem(name, sku_id, "failing", FAILED, error, at=at)
    for sku_id, text in state.invalid_reasons(name):
        seen: set[str] = set()
        for reason_code, _, message, location in noted_reasons(text):
            if reason_code not in seen:
                seen.add(reason_code)
                yield ListingProblem(name, sku_id, "invalid", reason_code, message, location)
