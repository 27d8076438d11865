"""Mirakl's asynchronous CSV imports, one round trip each: upload, poll the status, read the reports.

Every catalog write of a Mirakl shop is an import (``shared/specs/mirakl/SOURCE.md``): P41
products, OF01 offers, PRI01 prices, STO01 stock. Each answers an ``import_id`` at once and
processes the file later; its status call (P42, OF02, PRI02, STO02) says when it is final, and its
error report (P44, OF03, PRI03, STO03) gives the lines it refused with a reason; P41 also has the
report of the products it added (P45). :class:`ImportKind` declares those four operations and
their paths for each import; :func:`run_import` makes the round trip and answers per SKU.

Call frequency: the upload takes its operation's slot (:class:`~marketplaces.mirakl._http.CallSlots`)
only when it comes within ``max_wait`` documented seconds; otherwise :class:`Deferred` says how long
is left and nothing is sent, so the caller fails those SKUs as retryable and the next run sends
them, together with what changed since, in one import. Polls wait for their own slot (once a
minute; STO02 once every 15 s), and stop after ``poll_budget`` documented seconds: an import still
running then is :attr:`ImportOutcome.final` False, its lines neither failed nor done.

Every import is an upsert keyed by the shop SKU (an offer's ``sku``/``offer-sku``, a product's
``sku``), so an upload repeated after a lost answer or a killed run changes nothing twice.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from engine import failpoints
from marketplaces.mirakl._http import (
    CallSlots,
    MiraklError,
    MiraklSender,
    csv_file,
    csv_rows,
    csv_upload,
    raise_for_answer,
)


@dataclass(frozen=True)
class ImportKind:
    """The operations of one import: upload, status, error report (and P41's added products)."""

    upload: str
    """Operation code of the upload (``P41``), the key of its call frequency."""
    path: str
    status: str
    status_path: str
    """With ``{import_id}``; PRI02 lists imports, filtered by ``import_id`` (:meth:`status_call`)."""
    status_field: str
    """``import_status`` (P42) or ``status``."""
    report: str
    report_path: str
    sku_column: str
    """The column that names the shop SKU in the file and in its error report."""
    final: frozenset[str]
    failed: frozenset[str]
    added_path: str | None = None

    def status_call(self, import_id: str) -> tuple[str, dict[str, str]]:
        """The status request's path and query for ``import_id``."""
        if "{import_id}" in self.status_path:
            return self.status_path.format(import_id=quote(import_id, safe="")), {}
        return self.status_path, {"import_id": import_id}


_OFFER_FINAL = frozenset({"COMPLETE", "FAILED"})
PRODUCTS = ImportKind(
    "P41",
    "/api/products/imports",
    "P42",
    "/api/products/imports/{import_id}",
    "import_status",
    "P44",
    "/api/products/imports/{import_id}/error_report",
    "sku",
    frozenset({"COMPLETE", "FAILED", "CANCELLED", "TRANSFORMATION_FAILED"}),
    frozenset({"FAILED", "CANCELLED", "TRANSFORMATION_FAILED"}),
    added_path="/api/products/imports/{import_id}/new_product_report",
)
OFFERS = ImportKind(
    "OF01",
    "/api/offers/imports",
    "OF02",
    "/api/offers/imports/{import_id}",
    "status",
    "OF03",
    "/api/offers/imports/{import_id}/error_report",
    "sku",
    _OFFER_FINAL,
    frozenset({"FAILED"}),
)
PRICES = ImportKind(
    "PRI01",
    "/api/offers/pricing/imports",
    "PRI02",
    "/api/offers/pricing/imports",
    "status",
    "PRI03",
    "/api/offers/pricing/imports/{import_id}/error_report",
    "offer-sku",
    _OFFER_FINAL,
    frozenset({"FAILED"}),
)
STOCK = ImportKind(
    "STO01",
    "/api/offers/stock/imports",
    "STO02",
    "/api/offers/stock/imports/{import_id}/status",
    "status",
    "STO03",
    "/api/offers/stock/imports/{import_id}/error_report",
    "offer-sku",
    _OFFER_FINAL,
    frozenset({"FAILED"}),
)


class Deferred(MiraklError):
    """The import's next allowed upload is further away than the run may wait; nothing was sent."""

    def __init__(self, operation: str, left: float) -> None:
        super().__init__(
            f"deferred: Mirakl allows {operation} only so often; the next one may go in {left:.0f} s "
            "and carries this change with whatever changes until then",
            retryable=True,
        )
        self.left = left


@dataclass
class ImportOutcome:
    """What one import did: its id and final status, the reasons of its refused SKUs, and (P41)
    the rows of its added-products report."""

    import_id: str
    status: str = ""
    final: bool = False
    errors: dict[str, str] = field(default_factory=dict)
    added: list[dict[str, str]] = field(default_factory=list)

    @property
    def failed_whole(self) -> bool:
        return self.final and self.status not in ("COMPLETE",)


@dataclass
class Importer:
    """Runs imports for one apply: through ``sender``, on ``slots``' clock and call frequencies."""

    sender: MiraklSender
    slots: CallSlots
    max_wait: float = 90.0
    """Documented seconds an upload may wait for its slot before it is :class:`Deferred`."""
    poll_budget: float = 30 * 60.0
    """Documented seconds an import is polled before its outcome is left unknown."""

    async def run(
        self, kind: ImportKind, columns: Sequence[str], rows: Sequence[Mapping[str, Any]]
    ) -> ImportOutcome:
        """Upload ``rows`` as one file, poll until final (or the budget is spent), read its reports."""
        left = await self.slots.wait_turn(kind.upload, self.max_wait)
        if left:
            raise Deferred(kind.upload, left)
        answer = await self.sender.send("POST", kind.path, files=csv_upload(csv_file(columns, rows)))
        body = raise_for_answer(answer, kind.upload)
        failpoints.reach("mirakl:import-sent")
        import_id = _import_id(body, kind.upload)
        outcome = ImportOutcome(import_id)
        status = await self._poll(kind, outcome)
        if not outcome.final:
            return outcome
        if status.get("has_error_report"):
            report = await self._file(kind.report, kind.report_path, import_id)
            outcome.errors = report_reasons(report, rows, kind.sku_column)
        if kind.added_path and status.get("has_new_product_report"):
            outcome.added = csv_rows(await self._file(kind.report, kind.added_path, import_id))
        failpoints.reach("mirakl:report-read")
        return outcome

    async def _poll(self, kind: ImportKind, outcome: ImportOutcome) -> dict[str, Any]:
        spent, interval = 0.0, self.slots.intervals.get(kind.status, 60.0)
        path, params = kind.status_call(outcome.import_id)
        while True:
            await self.slots.wait_turn(kind.status)
            status = _status_of(
                raise_for_answer(await self.sender.send("GET", path, params=params), kind.status)
            )
            failpoints.reach("mirakl:import-polled")
            outcome.status = str(status.get(kind.status_field) or "")
            if outcome.status in kind.final:
                outcome.final = True
                return status
            spent += interval
            if spent >= self.poll_budget:
                return status

    async def _file(self, operation: str, path: str, import_id: str) -> bytes:
        await self.slots.wait_turn(operation)
        answer = await self.sender.send("GET", path.format(import_id=quote(import_id, safe="")))
        if not 200 <= answer.status_code < 300:
            raise_for_answer(answer, operation)
        return answer.content


def report_reasons(report: bytes, sent: Sequence[Mapping[str, Any]], sku_column: str) -> dict[str, str]:
    """SKU -> reason, from an error report: by its SKU column, else by its line number (PRI03 and
    STO03 put the file's line number first, the header being line 1), the reason being the
    ``error-message`` column or, failing that, the second one."""
    reasons: dict[str, str] = {}
    for row in csv_rows(report):
        values = list(row.values())
        sku = row.get(sku_column) or _by_line(values[0] if values else "", sent, sku_column)
        reason = row.get("error-message") or row.get("errors") or (values[1] if len(values) > 1 else "")
        if sku:
            reasons[sku] = "; ".join(filter(None, (reasons.get(sku), reason or "refused by the import")))
    return reasons


def _by_line(line: str, sent: Sequence[Mapping[str, Any]], sku_column: str) -> str | None:
    index = int(line) - 2 if line.strip().isdigit() else -1
    return str(sent[index][sku_column]) if 0 <= index < len(sent) else None


def _import_id(body: Any, operation: str) -> str:
    found = body.get("import_id", body.get("importId")) if isinstance(body, dict) else None
    if found in (None, ""):
        raise MiraklError(f"{operation}: the answer has no import_id", retryable=True)
    return str(found)


def _status_of(body: Any) -> dict[str, Any]:
    """The status object: PRI02 lists imports (``data[]``), the others answer one."""
    if isinstance(body, dict) and isinstance(body.get("data"), list):
        return dict(body["data"][0]) if body["data"] else {}
    return dict(body) if isinstance(body, dict) else {}


__all__ = ["OFFERS", "PRICES", "PRODUCTS", "STOCK", "Deferred", "ImportKind", "ImportOutcome", "Importer"]
