"""The plan: desired listings diffed against the state store, as a stream of changes.

A change is data (STYLE.md 8): ``op``, the SKU, which parts changed, the
listing after and the applied row before. Plan and apply share this code;
apply only adds a step that sends. The catalog is consumed in batches so
memory is bounded by the batch, not by the catalog: state rows are looked up
per batch, and the SKUs seen are kept in a temporary table on disk so that
deletes (applied SKUs the catalog no longer selects) cost no memory either.

A full pass is incremental: a JSON Lines record whose bytes are those of the record a SKU's
listing was applied from, under the same rules and connector options (the source hash keyed
with :func:`~engine.sync._planfile.rules_fingerprint`), is neither parsed nor evaluated: it is
"unchanged", and seen, so deletes are still found. Only a settled SKU is skipped (its last
apply did not fail, no submission of it is still to confirm), and only when the plan is of the
whole catalog and its rules do not read the clock (:data:`CLOCK_FUNCTIONS`: none does today,
so a listing is a function of the record, the rules and the options alone). A record found
unchanged after evaluation has its hash noted on its row, so the next pass skips it too. A
record the rules do not select, or find invalid, of a SKU with nothing listed, is settled as well
(there is nothing to apply): its hash is noted apart, with the reasons of an invalid one, and the
next pass counts it as not selected, or reports it invalid with the same reasons, unread. A
skipped line's change carries its state row as ``before`` for the outputs that show it;
:attr:`Planner.skipped_rows` off (apply sends no unchanged SKU) finds the lines to skip without
reading their rows.
"""

from __future__ import annotations

import functools
import gc
import hashlib
import json
import re
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Any, Literal, Protocol, TypeAlias, cast

from engine._diagnostics import Span
from engine.connectors._contract import Connector
from engine.jsonio import dumps
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.model._listing import Listing, Outcome, Reason, to_json_value
from engine.rules._compiled import CompiledRules
from engine.rules._limits import per_sku
from engine.secrets._redact import redact
from engine.state._store import AppliedListing, StateStore
from engine.sync._evaluate import SkuEvaluator
from engine.sync._source import FileSource, Skipped

Op = Literal["create", "update", "delete", "unchanged", "invalid"]
UpdateKind = Literal["content", "price", "stock"]
BATCH = 100
"""Records evaluated, then looked up in the state, at a time. 100, not 1,000: peak RSS of a
100,000-SKU plan 62 MB instead of 85 MB for the same time (``bench/bench_plan.py``); the state
look-ups per batch stay one statement each."""
LINES = 1000
"""Lines in a batch at most, skipped ones included: a skipped line holds a few small objects, so a
re-plan looks its rows up, and notes its SKUs seen, once per 1,000 lines rather than per 100."""
NOTES = 1000
"""Hashes of records found unchanged or not selected, written to the state at once: one transaction
per 1,000 rather than one per batch (a first plan notes some 3% of its records as not selected)."""
ASIDE = 1000
"""Changes that are no family's creates held at most amid a family's run (see ``_Families``)."""
CLOCK_FUNCTIONS: frozenset[str] = frozenset()
"""Functions of the rule language whose result depends on the time. None today; a rule file using
one makes every pass whole, since an unchanged record could then yield another listing."""

Planned: TypeAlias = tuple[Outcome | Skipped, str | None]
"""A record's outcome, or a line skipped, and its source hash (None when the pass is not incremental)."""


@dataclass(slots=True)
class Change:
    """One SKU's change on one marketplace."""

    op: Op
    sku_id: str
    marketplace: str
    kinds: tuple[UpdateKind, ...] = ()
    listing: Listing | None = None
    before: AppliedListing | None = None
    reasons: list[Reason] = field(default_factory=list)
    outcome: Outcome | None = field(default=None, repr=False)
    family: list[Listing] | None = field(default=None, repr=False)
    """For a create on a marketplace that lists variations together: every new SKU of the family."""
    source_hash: str | None = field(default=None, repr=False)
    """The hash of the catalog record planned (an incremental pass): recorded when applied."""
    skipped: bool = field(default=False, repr=False)
    """Not parsed: ``listing`` is None; ``before`` is the row applied of an unchanged SKU (None when
    the planner does not read it: :attr:`Planner.skipped_rows`); an invalid one has its reasons."""

    def to_dict(self) -> dict[str, Any]:
        return self._data(None if self.listing is None else to_json_value(self.listing.to_dict()))

    def to_json(self) -> str:
        """``dumps(self.to_dict())``, the same text, with the listing walked once rather than twice
        (copied with its amounts as text, then encoded): encoded as it is, amounts as text."""
        if self.listing is None:
            return dumps(self._data(None))
        text = dumps(self._data(_AFTER))
        after = json.dumps(self.listing.to_dict(), default=_as_text, ensure_ascii=False)
        return text.replace(_AFTER_TEXT, f'"after": {after}', 1)

    def _data(self, after: Any) -> dict[str, Any]:
        data: dict[str, Any] = {"op": self.op, "sku_id": self.sku_id, "marketplace": self.marketplace}
        if self.kinds:
            data["fields"] = list(self.kinds)
        if after is not None:
            data["after"] = after
        if self.before is not None:
            data["before"] = {
                "price": str(self.before.price),
                "sale_price": None if self.before.sale_price is None else str(self.before.sale_price),
                "quantity": self.before.quantity,
                "content_hash": self.before.content_hash,
                "remote_id": self.before.remote_id,
            }
        if self.reasons:
            # A reason may quote a source's or marketplace's message: no secret in any output.
            data["reasons"] = [{**r.to_dict(), "message": redact(r.message)} for r in self.reasons]
        if self.family:
            data["family"] = [listing.sku_id for listing in self.family]
        return data


_AFTER = "\u0000after"
"""Where :meth:`Change.to_json` puts the listing's own text (a string no change holds)."""
_AFTER_TEXT = '"after": "\\u0000after"'


def _as_text(value: Any) -> Any:
    """What :func:`~engine.model._listing.to_json_value` makes of a value JSON cannot encode."""
    if isinstance(value, Decimal):
        return str(value)
    if isinstance(value, set | frozenset):
        return list(value)
    raise TypeError(f"{type(value).__name__} is not JSON serializable")


@dataclass
class PlanSummary:
    """Counts of a plan, and the one-line summary users read first."""

    marketplace: str
    ops: Counter[str] = field(default_factory=Counter)
    updates: Counter[str] = field(default_factory=Counter)
    excluded: int = 0
    records: int = 0
    deletes_skipped: bool = False
    skipped: int = 0
    """Records not parsed, being the same as when last planned (counted among the unchanged, the
    invalid or the not selected too)."""

    def add(self, change: Change) -> None:
        self.ops[change.op] += 1
        self.skipped += change.skipped
        if change.op == "update":
            for kind in change.kinds:
                self.updates[kind] += 1

    @property
    def has_changes(self) -> bool:
        return any(self.ops[op] for op in ("create", "update", "delete"))

    def line(self) -> str:
        update = f"{self.ops['update']} to update"
        if self.ops["update"]:
            detail = ", ".join(
                f"{self.updates[k]} {k}" for k in ("price", "stock", "content") if self.updates[k]
            )
            update += f" ({detail})"
        return (
            f"Plan: {self.ops['create']} to create, {update}, {self.ops['delete']} to delete, "
            f"{self.ops['invalid']} invalid"
        )

    def to_dict(self) -> dict[str, Any]:
        """The counts; ``skipped`` only when records were skipped, so a whole pass reads as before."""
        skipped = {"skipped": self.skipped} if self.skipped else {}
        return {
            "marketplace": self.marketplace,
            "create": self.ops["create"],
            "update": self.ops["update"],
            "update_fields": {k: self.updates[k] for k in ("price", "stock", "content")},
            "delete": self.ops["delete"],
            "unchanged": self.ops["unchanged"],
            "invalid": self.ops["invalid"],
            "excluded": self.excluded,
            "records": self.records,
            "deletes_skipped": self.deletes_skipped,
            **skipped,
        }


def diff(listing: Listing, before: AppliedListing | None) -> tuple[Op, tuple[UpdateKind, ...]]:
    """create, unchanged, or update with the parts that changed (the connector picks the call)."""
    if before is None:
        return "create", ()
    kinds: list[UpdateKind] = []
    if listing.content_hash() != before.content_hash:
        kinds.append("content")
    if listing.price != before.price or listing.sale_price != before.sale_price:
        kinds.append("price")
    if listing.quantity != before.quantity:
        kinds.append("stock")
    return ("update", tuple(kinds)) if kinds else ("unchanged", ())


class _WithSkipped(Protocol):
    """A catalog that yields the lines skipped as unchanged in their place (FileSource, Catalog)."""

    def items(self) -> Iterator[CatalogRecord | MalformedRecord | Skipped]: ...


class Planner:
    """Runs one marketplace's compiled rules over a catalog stream and yields its changes."""

    def __init__(
        self, compiled: CompiledRules, connector: Connector, state: StateStore | None = None
    ) -> None:
        self.compiled = compiled
        self.connector = connector
        self.state = state
        self.marketplace = compiled.marketplace
        self.evaluator = SkuEvaluator(compiled, connector)
        self.summary = PlanSummary(self.marketplace)
        self.families = compiled.variations is not None and connector.lists_families
        self.incremental = not reads_clock(compiled)
        """Skip the records applied unchanged (``--no-incremental`` turns it off)."""
        self.skipped_rows = True
        """Read the state row of each skipped line, for ``before`` (off: apply sends no unchanged SKU)."""
        self._unchanged: dict[str, AppliedListing | None] = {}  # rows of skipped lines not yet planned
        self._excluded: set[str] = set()  # SKUs of skipped lines not selected, not yet planned
        self._invalid: dict[str, list[Reason]] = {}  # reasons of skipped lines invalid, not yet planned
        self._noting = True  # noting hashes of unchanged records (off once the store refuses)
        self._unchanged_notes: list[tuple[AppliedListing, str]] = []  # noted, not yet written
        self._excluded_notes: list[tuple[str, str, str | None]] = []
        self._looking_up = True  # off for a marketplace with no row: a first plan (see _changes)

    def changes(
        self,
        records: Iterable[CatalogRecord | MalformedRecord],
        only: set[str] | None = None,
        explain: bool = False,
    ) -> Iterator[Change]:
        """The plan's changes, in catalog order, then the deletes; ``only`` limits it to some SKUs."""
        state = self.state
        families = _Families()
        with _few_collections():
            if state is not None:
                state.begin_seen()
                # A marketplace with no row yet (its first plan) has none to look up, batch after
                # batch: the rows an apply records while this plan streams are those of SKUs planned.
                self._looking_up = state.has_listings(self.marketplace)
            source = self._skipping(records, only)
            # The lines skipped in their place (_skipping turned skipping on only for such a catalog).
            items = iter(records) if source is None else cast(_WithSkipped, records).items()
            while (planned := self._batch(items, source, only, explain)) is not None:
                applied = self._applied(planned)
                if applied and state is not None:
                    # Only SKUs with a state row can become deletes, so only they need remembering.
                    # A malformed record with a readable id still counts as seen: a typo in the
                    # catalog must not withdraw a live listing. An excluded one is seen too: its
                    # withdrawal is the change made below, with its rule's reasons, not a second
                    # delete for "no longer in the catalog". A skipped one is seen, unchanged.
                    state.add_seen(o.sku_id for o, _ in planned if o.sku_id in applied)
                get, change_of, skipped = applied.get, self._change, self._planned
                changes = [
                    change_of(o, get(o.sku_id), digest) if isinstance(o, Outcome) else skipped(o, digest)
                    for o, digest in planned
                ]
                if applied:  # an evaluated record is unchanged only against a row
                    self._note_unchanged(changes)
                if len(self._excluded_notes) >= NOTES:  # noted by _change
                    self._write_notes()
                add, grouping = self.summary.add, self.families
                for change in changes:
                    if change is None:
                        continue
                    add(change)
                    if not grouping:
                        yield change
                        continue
                    listing = change.listing
                    group = listing.group if listing is not None and change.op == "create" else None
                    if group is None and not families.held:
                        yield change
                    else:
                        yield from families.push(change, group)
            yield from self._end(records, only, families)

    def _end(
        self, records: Iterable[CatalogRecord | MalformedRecord], only: set[str] | None, families: _Families
    ) -> Iterator[Change]:
        """After the catalog: the notes still held, the families still held, then the deletes."""
        state = self.state
        self._write_notes()
        yield from families.flush()
        if state is None:
            return
        if only is None and not getattr(records, "complete", True):
            # The catalog could not be read to its end: the SKUs after that point are not
            # gone, they are unread. Deleting them would empty a marketplace over a bad file.
            self.summary.deletes_skipped = True
            return
        for row in state.unseen(self.marketplace, only):
            change = Change(
                "delete",
                row.sku_id,
                self.marketplace,
                before=row,
                reasons=[Reason("TP925", "no longer in the catalog or not selected", "select")],
            )
            self.summary.add(change)
            yield change

    def _batch(
        self,
        items: Iterator[CatalogRecord | MalformedRecord | Skipped],
        source: FileSource | None,
        only: set[str] | None,
        explain: bool,
    ) -> list[Planned] | None:
        """The next :data:`BATCH` records evaluated, with the lines skipped among them (:data:`LINES`
        at most), each with its source hash (None when the pass is not incremental); None at the
        end. Each record is evaluated as it is read and dropped: a batch holds outcomes, not records.
        """
        planned: list[Planned] = []
        evaluated = read = 0
        evaluate = self.evaluator.evaluate
        with per_sku():  # one budget, filled for each SKU (no yield to the caller in this loop)
            for item in items:
                read += 1
                if item.__class__ is CatalogRecord or not isinstance(item, Skipped | MalformedRecord):
                    evaluated += 1
                    if only is None or item.sku.id in only:
                        # The hash of the line just read (the source keeps it until the next one).
                        digest = None if source is None else source.last_hash
                        planned.append((evaluate(item, explain), digest))
                elif isinstance(item, Skipped):
                    planned.append((item, item.source_hash))
                else:
                    evaluated += 1
                    sku_id = item.sku_id or f"line {item.line}"
                    if only is None or sku_id in only:
                        planned.append((_malformed(item, sku_id), None))
                if evaluated == BATCH or read == LINES:
                    break
        self.summary.records += read
        return planned if read else None

    def _skipping(
        self, records: Iterable[CatalogRecord | MalformedRecord], only: set[str] | None
    ) -> FileSource | None:
        """The file source to skip unchanged records of, when this pass may (see the module)."""
        source = getattr(records, "source", records)  # a project's Catalog wraps its source
        if self.state is None or only is not None or not self.incremental:
            return None
        if not isinstance(source, FileSource) or not callable(getattr(records, "items", None)):
            return None  # a wrapper that cannot yield the lines skipped would lose them: read all
        from engine.sync._planfile import rules_fingerprint  # here: that module imports this one

        fingerprint = rules_fingerprint(self.compiled, self.connector.options)
        key = hashlib.sha256(fingerprint.encode("utf-8")).digest()
        # Before the first plan nothing is known by hash: the lines are hashed (for apply to record)
        # but not looked up.
        source.skip_unchanged(key, self._lookup if self.state.has_sources(self.marketplace) else None)
        return source

    def _lookup(self, source_hashes: Sequence[str]) -> Mapping[str, str]:
        assert self.state is not None
        if self.skipped_rows:
            rows = self.state.unchanged_sources(self.marketplace, source_hashes)
            self._unchanged.update((row.sku_id, row) for row in rows.values())
            known = {digest: row.sku_id for digest, row in rows.items()}
        else:
            known = self.state.settled_skus(self.marketplace, source_hashes)
            self._unchanged.update(dict.fromkeys(known.values()))
        # A record applied is not also noted as not selected: only the others are looked up there.
        missing = [digest for digest in source_hashes if digest not in known]
        noted = self.state.excluded_sources(self.marketplace, missing) if missing else {}
        for digest, (sku_id, text) in noted.items():
            if text is None:
                self._excluded.add(sku_id)
            elif (reasons := _reasons_of(text, self._where)) is not None:
                self._invalid[sku_id] = reasons
            else:
                continue  # other rule positions, or reasons the store garbled: planned in full
            known.setdefault(digest, sku_id)
        return known

    @functools.cached_property
    def _where(self) -> str:
        """The rule file's path and bytes, hashed: the reasons of a record kept by hash point at
        positions in this text (its rules' fingerprint ignores comments and layout, positions do
        not). Empty when the file cannot be read now: no reasons are then kept or reused."""
        try:
            text = Path(self.compiled.file).read_bytes()
        except OSError:
            return ""
        return hashlib.sha256(self.compiled.file.encode("utf-8") + b"\0" + text).hexdigest()

    def _applied(self, planned: list[Planned]) -> dict[str, AppliedListing | None]:
        """The state's rows of the SKUs evaluated, and of those skipped (read with their hash)."""
        if self.state is None or not self._looking_up:
            return dict(self._unchanged)
        evaluated = [o.sku_id for o, _ in planned if isinstance(o, Outcome)]
        return {**self.state.get_many(self.marketplace, evaluated), **self._unchanged}

    def _planned(self, planned: Skipped, digest: str | None) -> Change | None:
        """The change of a line skipped: none for one not selected, else invalid or unchanged."""
        if planned.sku_id in self._excluded:
            self._excluded.discard(planned.sku_id)
            self.summary.excluded += 1
            self.summary.skipped += 1
            return None
        if planned.sku_id in self._invalid:
            reasons = self._invalid.pop(planned.sku_id)
            return Change(
                "invalid", planned.sku_id, self.marketplace, reasons=reasons, source_hash=digest, skipped=True
            )
        row = self._unchanged.pop(planned.sku_id)
        return Change(
            "unchanged", planned.sku_id, self.marketplace, before=row, source_hash=digest, skipped=True
        )

    def _note_settled(self, outcome: Outcome, digest: str) -> None:
        """Note the hash of a record evaluated as not selected or invalid, its SKU listed nowhere (an
        invalid one with its reasons, to report them again unread); written :data:`NOTES` at a time."""
        if outcome.status == "excluded":
            self._excluded_notes.append((outcome.sku_id, digest, None))
        elif self._where:
            self._excluded_notes.append((outcome.sku_id, digest, _reasons_text(outcome.reasons, self._where)))

    def _note_unchanged(self, changes: list[Change | None]) -> None:
        """Note the hash of each record evaluated as unchanged on its row: skipped next time."""
        noted = [
            (c.before, c.source_hash)
            for c in changes
            if c is not None
            and c.op == "unchanged"
            and not c.skipped
            and c.before is not None
            and c.source_hash is not None
            and c.before.source_hash != c.source_hash
        ]
        self._unchanged_notes.extend(noted)
        if len(self._unchanged_notes) >= NOTES:
            self._write_notes()

    def _write_notes(self) -> None:
        """Write the hashes noted so far, unless the store refused before."""
        unchanged, self._unchanged_notes = self._unchanged_notes, []
        excluded, self._excluded_notes = self._excluded_notes, []
        if unchanged and self._noting and self.state is not None:
            self._noting = self.state.note_sources(self.marketplace, unchanged)
        if excluded and self._noting and self.state is not None:
            self._noting = self.state.note_excluded(self.marketplace, excluded)

    def _change(self, outcome: Outcome, before: AppliedListing | None, digest: str | None) -> Change | None:
        status, listing = outcome.status, outcome.listing
        if status == "listed":
            assert listing is not None
            op, kinds = ("create", ()) if before is None else diff(listing, before)
            return Change(
                op, outcome.sku_id, self.marketplace, kinds, listing, before, [], outcome, None, digest
            )
        if before is None and digest:  # a record that lists nothing, of a SKU listed nowhere
            self._note_settled(outcome, digest)
        if status == "excluded":
            self.summary.excluded += 1
            if before is None:
                return None
        # An excluded SKU that is listed is withdrawn; an invalid one is reported, never sent.
        op = "delete" if status == "excluded" else "invalid"
        return Change(
            op,
            outcome.sku_id,
            self.marketplace,
            before=before,
            reasons=outcome.reasons,
            outcome=outcome,
            source_hash=digest,
        )


def _reasons_text(reasons: Sequence[Reason], where: str) -> str:
    """An invalid record's reasons as the state keeps them (messages redacted: no secret is stored),
    with ``where`` (:meth:`Planner._where`): the positions they point at are those of that text."""
    listed = [
        [
            r.code,
            r.rule,
            redact(r.message),
            None
            if r.span is None
            else [r.span.file, r.span.line, r.span.column, r.span.end_line, r.span.end_column],
        ]
        for r in reasons
    ]
    return json.dumps([where, listed], ensure_ascii=False)


def _reasons_of(text: str, where: str) -> list[Reason] | None:
    """The reasons :func:`_reasons_text` kept; None when the text is not what it wrote, or they point
    into another text of the rule file (a line added above moves every position after it)."""
    try:
        kept, listed = json.loads(text)
        reasons = [
            Reason(code, message, rule, None if span is None else Span(*span))
            for code, rule, message, span in listed
        ]
    except (ValueError, TypeError):
        return None
    if not where or kept != where:
        return None
    fields = [(r.code, r.rule, r.message) for r in reasons]
    if not reasons or not all(isinstance(f, str) for three in fields for f in three):
        return None
    return reasons


def reads_clock(compiled: CompiledRules) -> bool:
    """Whether a rule of ``compiled`` calls a function of :data:`CLOCK_FUNCTIONS`."""
    if not CLOCK_FUNCTIONS:
        return False
    call = re.compile(r"\b(?:" + "|".join(map(re.escape, sorted(CLOCK_FUNCTIONS))) + r")\s*\(")
    return call.search(str(compiled.rules.model_dump(mode="json"))) is not None


@contextmanager
def _few_collections() -> Iterator[None]:
    """Run the cyclic garbage collector less often while a catalog streams through.

    A plan allocates a few dozen short-lived objects per SKU while the compiled rules, the
    grammar and the models stay alive; with the default thresholds the collector keeps
    re-scanning those survivors and costs as much as the rules themselves. Freezing what
    exists before the run and collecting young objects less often removes most of that;
    nothing here leaks, since the per-SKU objects hold no cycles.
    """
    threshold = gc.get_threshold()
    gc.freeze()
    gc.set_threshold(max(threshold[0], 20_000), threshold[1], threshold[2])
    try:
        yield
    finally:
        gc.set_threshold(*threshold)
        gc.unfreeze()


def _grouped(change: Change) -> bool:
    """Whether ``change`` is a create of a variation family's member (held until its family is)."""
    return change.op == "create" and change.listing is not None and change.listing.group is not None


class _Families:
    """Holds back the creates of one variation family until the family is complete.

    A catalog lists the SKUs of a product together, so a family is a run of consecutive
    creates with the same group key; only that run is held, never the catalog. A change amid the
    run that is no create of a family (a member found invalid, one already listed) is held with
    it, in its place, and does not end the run: the family's creates after it are the same
    family, sent together (an invalid member once split a family in two, and Magalu refused the
    second part's main variation). At most :data:`ASIDE` such changes are held: past that the
    run ends, so a family followed by a long stretch of other SKUs holds no more than that.
    """

    def __init__(self) -> None:
        self.group: str | None = None
        self.held: list[Change] = []
        self.aside = 0

    def push(self, change: Change, group: str | None) -> Sequence[Change]:
        """The changes to pass on now (a list, not a generator: most calls hold and pass none);
        ``group`` is the change's family when it is a create of one (None otherwise)."""
        if group is None:
            if not self.held:
                return (change,)
            self.held.append(change)
            self.aside += 1
            return self.flush() if self.aside >= ASIDE else ()
        flushed = self.flush() if group != self.group else ()
        self.group = group
        self.held.append(change)
        return flushed

    def flush(self) -> Sequence[Change]:
        members = [c for c in self.held if _grouped(c)]
        creates = [c.listing for c in members if c.listing is not None]
        if len(creates) > 1:
            for change in members:
                change.family = creates
        held, self.held, self.group, self.aside = self.held, [], None, 0
        return held


def _malformed(error: MalformedRecord, sku_id: str) -> Outcome:
    where = f"catalog line {error.line}" if error.line else "catalog"
    reasons = [Reason("TP930", f"{path}: {message}", where) for path, message in error.errors] or [
        Reason("TP930", str(error), where)
    ]
    return Outcome(sku_id, "invalid", reasons=reasons)
