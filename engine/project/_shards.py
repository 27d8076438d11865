"""The shards of an ``apply --shards N`` run, kept in the PostgreSQL state store.

A coordinator plans once and writes each change record to the shard its family key hashes to
(:func:`shard_of`: SHA-256, the same on every host and Python, unlike ``hash``); a Mercado
Libre family (a create carrying every member) and every change of one product go to one shard,
so no two workers ever send parts of one listing at once. The records are written in batches as
the plan yields them and read back in batches by the shard's job: neither side holds a shard.

Each run remembers the marketplace, the coordinator's lock token (a shard job works only while
that lock is the coordinator's: :meth:`~engine.state.StateStore.join_lock`) and the rules'
fingerprint (a worker with other rules refuses the shard). Each shard's outcome is one row: the
job's :class:`~engine.sync.ApplySummary` once it finished, or why it could not run. A run's rows
are deleted when the coordinator is done with it, whatever happened: a rerun plans again from
the state, which the executor updated SKU by SKU, so it sends only what is still missing.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any

from engine.jsonio import dumps
from engine.state._db import replace_into
from engine.state._store import StateStore
from engine.sync._executor import ApplySummary, SkuResult

WRITE_BATCH = 500
"""Change records written, or read back, per statement."""

SHARDS_SCHEMA = """
CREATE TABLE IF NOT EXISTS shard_runs (
    run_id TEXT PRIMARY KEY,
    marketplace TEXT NOT NULL,
    lock_token TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    shards INTEGER NOT NULL,
    created_at REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS shard_changes (
    run_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    seq INTEGER NOT NULL,
    record TEXT NOT NULL,
    PRIMARY KEY (run_id, shard, seq)
);
CREATE TABLE IF NOT EXISTS shard_outcomes (
    run_id TEXT NOT NULL,
    shard INTEGER NOT NULL,
    status TEXT NOT NULL,
    summary TEXT,
    error TEXT,
    updated_at REAL NOT NULL,
    PRIMARY KEY (run_id, shard)
);
"""
_SET_OUTCOME = replace_into(
    "shard_outcomes", ("run_id", "shard", "status", "summary", "error", "updated_at"), ("run_id", "shard")
)


def shard_of(key: str, shards: int) -> int:
    """The shard of a family key: stable across processes, hosts and Python versions."""
    digest = hashlib.sha256(key.encode("utf-8")).digest()
    return int.from_bytes(digest[:8], "big") % shards


def family_key(record: dict[str, Any], product_of: dict[str, str]) -> str:
    """What must stay on one shard: a family create's first member, else the SKU's product (from
    the listing, or for a delete from the state row the plan saw: ``product_of``), else the SKU."""
    family = record.get("family")
    if family:
        return "family:" + min(str(sku) for sku in family)
    after = record.get("after") or {}
    product = after.get("product_id") or product_of.get(str(record["sku_id"]))
    return f"product:{product}" if product else f"sku:{record['sku_id']}"


@dataclass(frozen=True)
class ShardRun:
    """What a shard job needs to know about the run that handed it out."""

    run_id: str
    marketplace: str
    lock_token: str
    fingerprint: str
    shards: int


@dataclass
class Written:
    """How many change records went to each shard, and how many of them are deletes."""

    per_shard: dict[int, int] = field(default_factory=dict)
    deletes: int = 0

    @property
    def total(self) -> int:
        return sum(self.per_shard.values())


@dataclass(frozen=True)
class ShardOutcome:
    """A shard's row: ``taken`` (a job started it), ``done`` with its summary, or ``failed``."""

    shard: int
    status: str
    summary: ApplySummary | None = None
    error: str | None = None


class ShardStore:
    """The shard tables, on the state store's connection (created on first use, idempotently)."""

    def __init__(self, state: StateStore) -> None:
        self.state = state
        self.db = state.db
        with self.db.schema():
            self.db.executescript(SHARDS_SCHEMA)

    def begin(self, run: ShardRun) -> None:
        """Record a new run; the rows an earlier run of the marketplace left (its coordinator was
        killed) go: the caller holds the marketplace's lock, so no earlier run is still going."""
        for (run_id,) in self.db.execute(
            "SELECT run_id FROM shard_runs WHERE marketplace = ?", (run.marketplace,)
        ).fetchall():
            self.forget(str(run_id))
        self.db.execute(
            "INSERT INTO shard_runs VALUES (?, ?, ?, ?, ?, ?)",
            (run.run_id, run.marketplace, run.lock_token, run.fingerprint, run.shards, time.time()),
        )

    def run(self, run_id: str) -> ShardRun | None:
        row = self.db.execute(
            "SELECT run_id, marketplace, lock_token, fingerprint, shards FROM shard_runs WHERE run_id = ?",
            (run_id,),
        ).fetchone()
        return (
            None if row is None else ShardRun(str(row[0]), str(row[1]), str(row[2]), str(row[3]), int(row[4]))
        )

    def write(self, run: ShardRun, records: Iterable[dict[str, Any]], state_key: str) -> Written:
        """Write each record to its shard, a batch at a time, as ``records`` yields them
        (``state_key``: the marketplace's name in the state, where a delete's product is found)."""
        written = Written()
        batch: list[dict[str, Any]] = []
        for record in records:
            batch.append(record)
            if len(batch) >= WRITE_BATCH:
                self._write_batch(run, batch, written, state_key)
                batch = []
        if batch:
            self._write_batch(run, batch, written, state_key)
        return written

    def _write_batch(
        self, run: ShardRun, batch: list[dict[str, Any]], written: Written, state_key: str
    ) -> None:
        deleted = [str(r["sku_id"]) for r in batch if r["op"] == "delete"]
        product_of = {sku: row.product_id for sku, row in self.state.get_many(state_key, deleted).items()}
        rows = []
        for record in batch:
            shard = shard_of(family_key(record, product_of), run.shards)
            seq = written.per_shard.get(shard, 0)
            written.per_shard[shard] = seq + 1
            rows.append((run.run_id, shard, seq, dumps(record)))
        written.deletes += len(deleted)
        self.db.executemany("INSERT INTO shard_changes VALUES (?, ?, ?, ?)", rows)

    def records(self, run_id: str, shard: int) -> Iterator[list[dict[str, Any]]]:
        """The shard's records in plan order, a batch at a time (each batch one short query)."""
        after = -1
        while True:
            rows = self.db.execute(
                "SELECT seq, record FROM shard_changes WHERE run_id = ? AND shard = ? AND seq > ? "
                "ORDER BY seq LIMIT ?",
                (run_id, shard, after, WRITE_BATCH),
            ).fetchall()
            if not rows:
                return
            after = int(rows[-1][0])
            yield [json.loads(str(row[1])) for row in rows]

    def mark(
        self,
        run_id: str,
        shard: int,
        status: str,
        summary: ApplySummary | None = None,
        *,
        error: str | None = None,
        checked: bool = True,
    ) -> None:
        """Record the shard's outcome (``checked=False``: even after the run's lock was lost)."""
        self.db.execute(
            _SET_OUTCOME,
            (
                run_id,
                shard,
                status,
                None if summary is None else dumps(summary.to_dict()),
                error,
                time.time(),
            ),
            checked=checked,
        )

    def outcomes(self, run_id: str) -> dict[int, ShardOutcome]:
        rows = self.db.execute(
            "SELECT shard, status, summary, error FROM shard_outcomes WHERE run_id = ?", (run_id,)
        )
        return {
            int(shard): ShardOutcome(
                int(shard),
                str(status),
                None if summary is None else summary_from(json.loads(str(summary))),
                error,
            )
            for shard, status, summary, error in rows
        }

    def forget(self, run_id: str) -> None:
        """Delete the run's rows (its records, its outcomes): after the coordinator merged them."""
        for table in ("shard_runs", "shard_outcomes", "shard_changes"):  # a job finding no run stops
            self.db.execute(f"DELETE FROM {table} WHERE run_id = ?", (run_id,), checked=False)


def summary_from(data: dict[str, Any]) -> ApplySummary:
    """An :class:`ApplySummary` read back from its ``to_dict``."""
    summary = ApplySummary(
        str(data["marketplace"]),
        **{key: data[key] for key in ("applied", "failed", "skipped", "requests", "retries", "throttled")},
        seconds=float(data["seconds"]),
    )
    summary.failures = [
        SkuResult(str(f["sku_id"]), str(f["op"]), ok=False, error=f.get("error")) for f in data["failures"]
    ]
    return summary
