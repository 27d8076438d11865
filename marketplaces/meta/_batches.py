"""``items_batch`` round trips: entries packed into batches, sent, their handles polled to outcomes.

The guarantee: every SKU handed in gets an outcome. A SKU Meta refused (at once in
``validation_status``, or once processed in the handle's ``errors`` and ``ids_of_invalid_requests``)
fails with Meta's words and is not retryable (its data must change); a SKU whose batch could not be
sent, or whose handle did not finish in time, fails as retryable: its outcome is unknown, and the
next run sends it again, which is safe because every entry is keyed by the SKU (an upsert or a
delete by retailer id).
"""

from __future__ import annotations

import asyncio
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import httpx

from engine import failpoints
from engine.connectors import CallResult, json_body
from engine.jsonio import dumps
from marketplaces.meta._graph import GraphError, GraphSender, TooLongAWait

if TYPE_CHECKING:
    from marketplaces.meta import MetaConnector

BATCH_MAX_REQUESTS = 2_999
"""Entries per ``items_batch`` call: the limit is 5,000, and Meta recommends fewer than 3,000."""
BATCH_MAX_BYTES = 20_000_000
"""JSON bytes of one call's ``requests``: the limit is 28 MB; the rest is margin for the envelope."""
FINISHED = "finished"
FAILED = frozenset({"error", "failed", "canceled", "cancelled"})
"""Statuses that end a handle without its outcome: Meta names only ``finished`` as final."""
POLL_CAP = 60.0

SkuEntries = tuple[str, Sequence[Any]]
"""A SKU and the ``requests`` entries it sends (one, or two for a price and a stock update)."""


@dataclass
class Sent:
    """A batch Meta took: its handles, and the SKUs still waiting for their outcome."""

    handles: list[str]
    skus: list[str]


def packed(items: Iterable[SkuEntries]) -> list[list[SkuEntries]]:
    """The SKUs in batches of at most :data:`BATCH_MAX_REQUESTS` entries and :data:`BATCH_MAX_BYTES`;
    a SKU's entries always travel in the same batch, in order."""
    batches: list[list[SkuEntries]] = []
    current: list[SkuEntries] = []
    count = size = 0
    for sku, entries in items:
        weight = sum(len(dumps(entry)) + 1 for entry in entries)
        if current and (count + len(entries) > BATCH_MAX_REQUESTS or size + weight > BATCH_MAX_BYTES):
            batches.append(current)
            current, count, size = [], 0, 0
        current.append((sku, entries))
        count, size = count + len(entries), size + weight
    if current:
        batches.append(current)
    return batches


async def run_batches(
    connector: MetaConnector, sender: GraphSender, items: Sequence[SkuEntries]
) -> dict[str, CallResult]:
    """Send every batch, then poll every handle; SKU id -> outcome."""
    outcomes: dict[str, CallResult] = {sku: CallResult(True) for sku, entries in items if not entries}
    sent: list[Sent] = []
    for batch in packed((sku, entries) for sku, entries in items if entries):
        skus = [sku for sku, _ in batch]
        try:
            answer = await _send_batch(connector, sender, [e for _, entries in batch for e in entries])
        except _BatchRefused as refused:
            outcomes.update({sku: refused.result for sku in skus})
            continue
        invalid = _reasons(answer.get("validation_status"), "retailer_id")
        outcomes.update(
            {sku: CallResult(False, error="; ".join(invalid[sku])) for sku in skus if sku in invalid}
        )
        waiting = [sku for sku in skus if sku not in invalid]
        handles = [str(handle) for handle in answer.get("handles") or [] if handle]
        if waiting and not handles:
            why = "Meta took the batch but answered no handle to check it by; it will be sent again"
            outcomes.update({sku: CallResult(False, retryable=True, error=why) for sku in waiting})
        elif waiting:
            sent.append(Sent(handles, waiting))
    for batch_sent in sent:
        outcomes.update(await _outcomes(connector, sender, batch_sent))
    return outcomes


class _BatchRefused(Exception):
    def __init__(self, result: CallResult) -> None:
        super().__init__(result.error)
        self.result = result


async def _send_batch(
    connector: MetaConnector, sender: GraphSender, requests: list[Any]
) -> Mapping[str, Any]:
    """One ``items_batch`` call's answer; :class:`_BatchRefused` with the outcome of all its SKUs."""
    body = dumps(connector.batch_body(requests)).encode("utf-8")
    try:
        response = await sender.send("POST", connector.path("items_batch"), content=body, batch=True)
    except TooLongAWait as exc:
        raise _BatchRefused(CallResult(False, retryable=True, error=f"not sent: {exc}")) from None
    except httpx.TransportError as exc:
        why = f"items_batch: {type(exc).__name__}: {exc}"
        raise _BatchRefused(CallResult(False, retryable=True, error=why)) from None
    failpoints.reach("meta:batch-sent")
    connector.drop_refused_token(response)
    error = GraphError.of(response)
    if error is not None:
        result = CallResult(False, retryable=error.retryable, error=f"items_batch: {error.line()}")
        raise _BatchRefused(result)
    answer = json_body(response)
    return answer if isinstance(answer, Mapping) else {}


async def _outcomes(connector: MetaConnector, sender: GraphSender, batch: Sent) -> dict[str, CallResult]:
    """Poll the batch's handles until each is finished (or time runs out); its SKUs' outcomes."""
    pacing = sender.pacing
    loop = asyncio.get_running_loop()
    deadline = loop.time() + pacing.batch_timeout_seconds
    pause = pacing.poll_seconds
    statuses: dict[str, Mapping[str, Any]] = {}
    while True:
        for handle in batch.handles:
            if handle in statuses:
                continue
            status = await _status(connector, sender, handle)
            failpoints.reach("meta:batch-polled")
            if isinstance(status, CallResult):
                return {sku: status for sku in batch.skus}
            if str(status.get("status")) == FINISHED or str(status.get("status")) in FAILED:
                statuses[handle] = status
        if len(statuses) == len(batch.handles):
            break
        if loop.time() + pause > deadline:
            why = (
                f"batch {', '.join(batch.handles)} still processing after "
                f"{pacing.batch_timeout_seconds:g} s; its outcome is unknown, so it will be sent again"
            )
            return {sku: CallResult(False, retryable=True, error=why) for sku in batch.skus}
        await sender.sleep(pause)
        pause = min(pause * 2, POLL_CAP)
    return _per_sku(statuses, batch.skus)


async def _status(
    connector: MetaConnector, sender: GraphSender, handle: str
) -> Mapping[str, Any] | CallResult:
    """The handle's status entry, or the outcome of its whole batch when it cannot be read."""
    params = {"handle": handle, "load_ids_of_invalid_requests": "true"}
    try:
        response = await sender.send("GET", connector.path("check_batch_request_status"), params=params)
    except (TooLongAWait, httpx.TransportError) as exc:
        return CallResult(False, retryable=True, error=f"batch {handle} could not be checked: {exc}")
    connector.drop_refused_token(response)
    error = GraphError.of(response)
    if error is not None:
        why = f"batch {handle} could not be checked, so it will be sent again: {error.line()}"
        return CallResult(False, retryable=True, error=why)
    body = json_body(response)
    entries = body.get("data") if isinstance(body, Mapping) else None
    for entry in entries if isinstance(entries, list) else []:
        if isinstance(entry, Mapping) and str(entry.get("handle") or handle) == handle:
            return entry
    return CallResult(False, retryable=True, error=f"batch {handle}: the status answer names no such handle")


def _per_sku(statuses: Mapping[str, Mapping[str, Any]], skus: Sequence[str]) -> dict[str, CallResult]:
    """Finished handles' errors as each SKU's outcome; a handle that ended otherwise fails them all."""
    for handle, status in statuses.items():
        if str(status.get("status")) in FAILED:
            messages = [m for ms in _reasons(status.get("errors"), "id", "retailer_id").values() for m in ms]
            why = f"batch {handle} ended {status.get('status')}" + (
                f": {'; '.join(messages)}" if messages else ""
            )
            return {sku: CallResult(False, retryable=True, error=why) for sku in skus}
    reasons: dict[str, list[str]] = {}
    unnamed: list[str] = []
    invalid: set[str] = set()
    for status in statuses.values():
        for sku, messages in _reasons(status.get("errors"), "id", "retailer_id").items():
            reasons.setdefault(sku, []).extend(messages)
        unnamed.extend(_unnamed(status.get("errors")))
        invalid.update(str(sku) for sku in status.get("ids_of_invalid_requests") or [])
    outcomes = {}
    for sku in skus:
        if sku in reasons or sku in invalid:
            why = "; ".join(reasons.get(sku) or unnamed or ["refused by Meta (ids_of_invalid_requests)"])
            outcomes[sku] = CallResult(False, error=why)
        elif unnamed and not invalid:
            # Errors that name no item, and no list of the invalid ones: none of the batch is known good.
            outcomes[sku] = CallResult(False, error="; ".join(unnamed))
        else:
            outcomes[sku] = CallResult(True)
    return outcomes


def _reasons(entries: Any, *keys: str) -> dict[str, list[str]]:
    """Retailer id -> the messages of the entries that name it (under any of ``keys``)."""
    found: dict[str, list[str]] = {}
    for entry in entries if isinstance(entries, list) else []:
        if not isinstance(entry, Mapping):
            continue
        sku = next((entry[key] for key in keys if entry.get(key) not in (None, "")), None)
        if sku is None:
            continue
        messages = [_message(error) for error in entry.get("errors") or []] or [_message(entry)]
        found.setdefault(str(sku), []).extend(m for m in messages if m)
    return found


def _unnamed(entries: Any) -> list[str]:
    return [
        _message(entry)
        for entry in (entries if isinstance(entries, list) else [])
        if isinstance(entry, Mapping) and not (entry.get("id") or entry.get("retailer_id"))
    ]


def _message(entry: Any) -> str:
    if not isinstance(entry, Mapping):
        return str(entry)
    text = str(entry.get("message") or entry.get("error_message") or "refused")
    field = entry.get("field") or entry.get("attribute")
    return f"{text} [{field}]" if field else text
