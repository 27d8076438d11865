"""Saved plans: what `tradepost plan -o plan.json` writes and `tradepost apply plan.json` sends.

A saved plan carries, per change, the exact request bodies the connector
built, so apply sends what was previewed and nothing else. It also records
each marketplace's state fingerprint: if anything was applied since, the
plan is stale and apply refuses it rather than sending outdated changes.
The file is written as it is planned (one change per line inside a JSON
document), so saving a plan of a million SKUs needs no more memory than
printing it.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from engine._diagnostics import TradepostError
from engine._jsonio import dumps, loads
from engine._plan import Change
from marketplaces import Connector

PLAN_FORMAT = "tradepost-plan"
PLAN_FORMAT_VERSION = 1


class PlanFileError(TradepostError):
    """A saved plan cannot be read, is of another format version, or is stale."""


def change_record(change: Change, connector: Connector) -> dict[str, Any]:
    """A change as saved: its data plus the bodies the connector would send."""
    data = change.to_dict()
    if change.family and change.op == "create":
        # One request creates the whole family; it is carried by the family's first SKU.
        leader = min(listing.sku_id for listing in change.family)
        family = connector.family_payload(change.family) if change.sku_id == leader else None
        data["payloads"] = [family] if family is not None else []
    elif change.op in ("create", "update", "delete"):
        data["payloads"] = connector.payloads_for(change.op, change.kinds, change.listing, change.sku_id)
    return data


class PlanWriter:
    """Streams a plan file: header, then each marketplace's changes, then its summary."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.tmp = path.with_name(path.name + ".partial")
        self.out: IO[str] = self.tmp.open("w", encoding="utf-8", errors="backslashreplace")
        self.out.write(
            f'{{"format": "{PLAN_FORMAT}", "format_version": {PLAN_FORMAT_VERSION}, '
            f'"created_at": {time.time():.3f},\n "marketplaces": {{'
        )
        self._first_marketplace = True
        self._first_change = True

    def begin(self, marketplace: str, rules: str, fingerprint: str) -> None:
        sep = "" if self._first_marketplace else ","
        self._first_marketplace = False
        self.out.write(
            f'{sep}\n  {dumps(marketplace)}: {{"rules": {dumps(rules)}, '
            f'"state_fingerprint": {dumps(fingerprint)},\n   "changes": ['
        )
        self._first_change = True

    def change(self, record: dict[str, Any]) -> None:
        sep = "" if self._first_change else ","
        self._first_change = False
        self.out.write(f"{sep}\n    {dumps(record)}")

    def end(self, summary: dict[str, Any]) -> None:
        self.out.write(f'\n   ],\n   "summary": {dumps(summary)}}}')

    def close(self) -> None:
        """Finish the document and move it into place, so a killed run never leaves half a plan."""
        self.out.write("\n }\n}\n")
        self.out.close()
        self.tmp.replace(self.path)

    def abort(self) -> None:
        self.out.close()
        self.tmp.unlink(missing_ok=True)


def read_plan(path: Path) -> dict[str, Any]:
    """Read a saved plan, checking its format and version."""
    try:
        document = loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise PlanFileError(f"cannot read plan {path}: {exc}") from None
    except ValueError as exc:
        raise PlanFileError(f"{path} is not a valid plan file: {exc}") from None
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        raise PlanFileError(f"{path} is not a tradepost plan")
    version = document.get("format_version")
    if version != PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"{path} has plan format version {version}; this tradepost reads version {PLAN_FORMAT_VERSION}"
        )
    return document


def saved_changes(document: dict[str, Any], marketplace: str) -> Iterator[dict[str, Any]]:
    yield from document["marketplaces"][marketplace]["changes"]
