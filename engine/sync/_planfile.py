"""Saved plans: what `tradepost plan -o plan.json` writes and `tradepost apply plan.json` sends.

A saved plan carries, per change, the exact request bodies the connector
built, so apply sends what was previewed and nothing else. It also records
each marketplace's state fingerprint: if anything was applied since, the
plan is stale and apply refuses it rather than sending outdated changes.
The file is written as it is planned (one change per line inside a JSON
document), so saving a plan of a million SKUs needs no more memory than
printing it.

What apply checks before it sends anything (:func:`read_plan`, :func:`checked_changes`):

- the document's shape, with pydantic: a truncated, garbled or hand-edited file is a
  :class:`PlanFileError` naming the file and the JSON path that is wrong;
- each marketplace's ``rules_fingerprint``: a hash of its compiled rules (the rule file's
  validated content and every table, includes too), the connector options and this tradepost's
  version. A plan made with other rules (a changed markup) is refused: re-plan;
- each change's ``digest``: SHA-256 of its canonical JSON (``after``, ``before``, payloads…), so
  an edit anywhere in a change is refused naming the SKU;
- each change's payloads against those the connector builds now from its ``after`` listing: what
  is sent is what the state then records, so even an edit made with a recomputed digest (both
  ``after`` and payload changed alike) is recorded as sent, and the next plan corrects it.

The digest is not a signature: anyone who can write the file can recompute it. It guards
against accidents (an editor, a truncated copy, a merge), not against someone who means to
send another price; the payload check makes sure such a price is at least recorded truly.
"""

from __future__ import annotations

import codecs
import hashlib
import json
import re
import time
from collections import Counter
from collections.abc import Callable, Generator, Iterable, Iterator, Mapping
from decimal import Decimal
from functools import partial
from importlib import metadata
from pathlib import Path
from typing import IO, Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StrictStr, ValidationError, model_validator

from engine._diagnostics import TradepostError
from engine.connectors._change import ChangeRecord
from engine.connectors._contract import Connector
from engine.jsonio import dumps, loads
from engine.model._listing import Listing
from engine.rules._compiled import CompiledRules
from engine.sync._plan import Change

PLAN_FORMAT = "tradepost-plan"
PLAN_FORMAT_VERSION = 2


class PlanFileError(TradepostError):
    """A saved plan cannot be read, is of another format version, or is stale."""


SOURCE_HASH = "source_hash"
"""The key of a record's source hash: apply records it with the row; never saved nor printed."""


def change_record(change: Change, connector: Connector, *, source_hash: bool = True) -> dict[str, Any]:
    """A change as saved: its data plus the bodies the connector would send. Apply reads it back
    into a :class:`~engine.connectors.ChangeRecord`, the form connectors are handed. A change of
    an incremental pass carries its record's source hash too (:data:`SOURCE_HASH`) for apply to
    record, unless ``source_hash`` is false (a record printed)."""
    data = change.to_dict()
    if source_hash and change.source_hash is not None:
        data[SOURCE_HASH] = change.source_hash
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
        try:
            self.out: IO[str] = self.tmp.open("w", encoding="utf-8", errors="backslashreplace")
        except OSError as exc:
            raise PlanFileError(f"cannot write the plan to '{path}': {exc.strerror or exc}") from None
        self.out.write(
            f'{{"format": "{PLAN_FORMAT}", "format_version": {PLAN_FORMAT_VERSION}, '
            f'"created_at": {time.time():.3f},\n "marketplaces": {{'
        )
        self._first_marketplace = True
        self._first_change = True

    def begin(self, marketplace: str, rules: str, fingerprint: str, rules_fingerprint: str = "") -> None:
        sep = "" if self._first_marketplace else ","
        self._first_marketplace = False
        self.out.write(
            f'{sep}\n  {dumps(marketplace)}: {{"rules": {dumps(rules)}, '
            f'"rules_fingerprint": {dumps(rules_fingerprint)}, '
            f'"state_fingerprint": {dumps(fingerprint)},\n   "changes": ['
        )
        self._first_change = True

    def change(self, record: dict[str, Any]) -> None:
        sep = "" if self._first_change else ","
        self._first_change = False
        # The digest is of the change as apply will read it back (JSON numbers as Decimal): of the
        # text written, parsed. The source hash stays out: the saved format has no place for it.
        text = dumps({k: v for k, v in record.items() if k not in ("digest", SOURCE_HASH)})
        self.out.write(f'{sep}\n    {text[:-1]}, "digest": "{change_digest(loads(text))}"}}')

    def end(self, summary: dict[str, Any]) -> None:
        self.out.write(f'\n   ],\n   "summary": {dumps(summary)}}}')

    def close(self) -> None:
        """Finish the document and move it into place, so a killed run never leaves half a plan."""
        self.out.write("\n }\n}\n")
        self.out.close()
        try:
            self.tmp.replace(self.path)
        except OSError as exc:
            self.tmp.unlink(missing_ok=True)
            raise PlanFileError(f"cannot write the plan to '{self.path}': {exc.strerror or exc}") from None

    def abort(self) -> None:
        self.out.close()
        self.tmp.unlink(missing_ok=True)


def change_digest(record: Mapping[str, Any]) -> str:
    """SHA-256 of a change's canonical JSON (sorted keys, exact numbers), without its digest."""
    text = dumps({k: v for k, v in record.items() if k != "digest"}, sort_keys=True)
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def rules_fingerprint(compiled: CompiledRules, options: Mapping[str, Any]) -> str:
    """A hash of what makes a marketplace's listings and payloads: rules, tables, options, version.

    Taken from the validated rules rather than the file's bytes, so a comment or a reformatted
    file does not invalidate a plan, while any change of meaning (a markup, a table entry in an
    included file, a connector option in the project config, another tradepost) does.
    """
    content = {
        "format_version": PLAN_FORMAT_VERSION,
        "tradepost": _version(),
        "rules": compiled.rules.model_dump(mode="json"),
        "tables": {name: table.entries for name, table in sorted(compiled.tables.items())},
        "options": dict(options),
    }
    return "sha256:" + hashlib.sha256(dumps(content, sort_keys=True).encode("utf-8")).hexdigest()


def _version() -> str:
    try:
        return metadata.version("tradepost")
    except metadata.PackageNotFoundError:  # pragma: no cover - running from a bare checkout
        return "unknown"


# -- the shape of a saved plan ----------------------------------------------------------------

_Text = Annotated[StrictStr, Field(min_length=1)]


class _Saved(BaseModel):
    model_config = ConfigDict(extra="forbid")


class _SavedListing(_Saved):
    sku_id: _Text
    product_id: StrictStr
    marketplace: StrictStr
    category: StrictStr
    fields: dict[str, Any]
    price: Decimal = Field(allow_inf_nan=False)
    sale_price: Decimal | None = Field(None, allow_inf_nan=False)
    currency: StrictStr
    quantity: StrictInt
    group: StrictStr | None = None
    axes: dict[str, Any] = Field(default_factory=dict)


class _SavedBefore(_Saved):
    price: Decimal = Field(allow_inf_nan=False)
    sale_price: Decimal | None = Field(None, allow_inf_nan=False)
    quantity: StrictInt
    content_hash: StrictStr
    remote_id: StrictStr | None = None


class _SavedChange(_Saved):
    op: Literal["create", "update", "delete", "unchanged", "invalid"]
    sku_id: _Text
    marketplace: StrictStr
    fields: list[Literal["price", "stock", "content"]] = Field(default_factory=list)
    after: _SavedListing | None = None
    before: _SavedBefore | None = None
    reasons: list[dict[str, Any]] = Field(default_factory=list)
    family: list[_Text] | None = None
    payloads: list[dict[str, Any]] | None = None
    digest: StrictStr

    @model_validator(mode="after")
    def _what_the_op_needs(self) -> _SavedChange:
        needs = {
            "create": ("after", "payloads"),
            "update": ("after", "before", "payloads"),
            "delete": ("before", "payloads"),
        }.get(self.op, ())
        missing = [name for name in needs if getattr(self, name) is None]
        if missing:
            raise ValueError(f"a change with op '{self.op}' needs {' and '.join(repr(m) for m in missing)}")
        if self.op == "create" and self.before is not None:
            raise ValueError("a create has no 'before' (the SKU is not listed yet)")
        if self.op == "update" and not self.fields:
            raise ValueError("an update names the fields that changed ('fields')")
        if self.after is not None and self.after.sku_id != self.sku_id:
            raise ValueError(f"'after' is SKU {self.after.sku_id}, the change is SKU {self.sku_id}")
        return self


class _SavedMarketplace(_Saved):
    rules: StrictStr
    rules_fingerprint: StrictStr
    state_fingerprint: StrictStr
    changes: list[Any]
    summary: dict[str, Any]


class _SavedPlan(_Saved):
    format: Literal["tradepost-plan"]
    format_version: Literal[2]
    created_at: Decimal | StrictInt
    marketplaces: dict[str, _SavedMarketplace] = Field(min_length=1)


def _where(loc: tuple[int | str, ...]) -> str:
    path = ""
    for part in loc:
        path += f"[{part}]" if isinstance(part, int) else (f".{part}" if path else str(part))
    return path or "the document"


def _first_error(exc: ValidationError, prefix: tuple[int | str, ...] = ()) -> str:
    error = exc.errors(include_url=False)[0]
    loc = tuple(part for part in error["loc"] if not (isinstance(part, str) and part.startswith("function-")))
    message = str(error["msg"]).removeprefix("Value error, ")
    more = f" (and {exc.error_count() - 1} more problems)" if exc.error_count() > 1 else ""
    return f"at {_where(prefix + loc)}: {message}{more}"


def _invalid(path: Path, what: str) -> PlanFileError:
    return PlanFileError(
        f"{path} is not a valid tradepost plan {what}; nothing was sent. "
        "Make a new one with `tradepost plan -o FILE`"
    )


def read_plan(path: Path) -> dict[str, Any]:
    """Read a saved plan whole, checking its format, version and shape (not yet each change).

    For a plan of any size, :class:`SavedPlan` reads the same checks in passes and never holds the
    changes; this whole form is for small plans and tests.
    """
    with _opened(path) as stream:
        return _checked_document(path, _scanned(path, stream, keep=True))


class SavedPlan:
    """A saved plan read in streaming passes, never whole: memory does not grow with the plan.

    Opening it reads the document once, keeping all but the changes (format, version, shape of
    the rest). :meth:`check` reads one marketplace's changes and shows each intact, as
    :func:`checked_changes` does, and counts them by op (the mass-delete guard's deletes);
    :meth:`changes` reads them again, for apply to send. The file stays open between the passes,
    so a plan moved or replaced meanwhile (``plan -o`` writes a new file and renames it) is not
    what is sent; each change's digest is checked again as it is read.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self._stream = _opened(path)
        try:
            self.document = _checked_document(path, _scanned(path, self._stream, keep=False))
        except BaseException:
            self._stream.close()
            raise

    def __enter__(self) -> SavedPlan:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    def close(self) -> None:
        self._stream.close()

    @property
    def marketplaces(self) -> list[str]:
        return list(self.document["marketplaces"])

    def check(self, marketplace: str, connector: Connector) -> Counter[str]:
        """Show every change of ``marketplace`` intact (see :func:`checked_changes`); its counts by op."""
        summary = self.document["marketplaces"][marketplace]["summary"]
        return _checked_counts(self.path, marketplace, connector, self._indexed(marketplace), summary)

    def changes(self, marketplace: str) -> Iterator[dict[str, Any]]:
        """The changes of ``marketplace`` as they are read, each with its digest checked again."""
        for index, record in self._indexed(marketplace):
            if not isinstance(record, dict) or change_digest(record) != record.get("digest"):
                raise PlanFileError(
                    f"{self.path} changed while it was applied (at marketplaces.{marketplace}"
                    f".changes[{index}]); what came before was sent. Run `tradepost plan` again"
                )
            yield record

    def _indexed(self, marketplace: str) -> Iterator[tuple[int, Any]]:
        self._stream.seek(0)
        for name, index, record in _scan(_Reader(self._stream, self.path)):
            if name == marketplace:
                yield index, record


def _opened(path: Path) -> IO[bytes]:
    try:
        return path.open("rb")
    except OSError as exc:
        raise PlanFileError(f"cannot read plan {path}: {exc.strerror or exc}") from None


def _checked_document(path: Path, document: Any) -> dict[str, Any]:
    if not isinstance(document, dict) or document.get("format") != PLAN_FORMAT:
        raise PlanFileError(f'{path} is not a tradepost plan (no "format": "{PLAN_FORMAT}")')
    version = document.get("format_version")
    if version != PLAN_FORMAT_VERSION:
        raise PlanFileError(
            f"{path} has plan format version {version}; this tradepost reads version {PLAN_FORMAT_VERSION}; "
            "make a new plan with `tradepost plan -o FILE`"
        )
    try:
        _SavedPlan.model_validate(document)
    except ValidationError as exc:
        raise _invalid(path, _first_error(exc)) from None
    return document


def check_rules(path: Path, document: Mapping[str, Any], marketplace: str, fingerprint: str) -> None:
    """Refuse a plan made with other rules (or options, or another tradepost) than those of now."""
    if document["marketplaces"][marketplace]["rules_fingerprint"] != fingerprint:
        raise PlanFileError(
            f"the rules for {marketplace} changed since {path} was made (or its connector options, or "
            "the tradepost version); nothing was sent. Run `tradepost plan` again"
        )


def checked_changes(
    path: Path, document: Mapping[str, Any], marketplace: str, connector: Connector
) -> list[dict[str, Any]]:
    """A marketplace's saved changes once each is shown intact: shape, digest, payloads.

    Raises :class:`PlanFileError` at the first that is not, naming the SKU; nothing is sent then.
    One pass; beyond the document itself, only the listings of a family not yet complete are held
    (a family's creates are saved together), so checking costs no memory that grows with the plan.
    """
    market = document["marketplaces"][marketplace]
    records: list[dict[str, Any]] = market["changes"]
    _checked_counts(path, marketplace, connector, enumerate(records), market["summary"])
    return records


def _checked_counts(
    path: Path,
    marketplace: str,
    connector: Connector,
    records: Iterable[tuple[int, Any]],
    summary: Mapping[str, Any],
) -> Counter[str]:
    """Each change shown intact (its shape, digest and payloads, a family whole), then the counts
    by op against the summary saved after the changes; the counts."""
    families: dict[tuple[str, ...], _Family] = {}
    ops: Counter[str] = Counter()
    for index, record in records:
        where = ("marketplaces", marketplace, "changes", index)
        try:
            change = _SavedChange.model_validate(record)
        except ValidationError as exc:
            raise _invalid(path, _first_error(exc, where)) from None
        if change_digest(record) != change.digest:
            raise PlanFileError(
                f"{path}: the {marketplace} change for SKU {change.sku_id} ({_where(where)}) was edited "
                "after the plan was made (its digest does not match); nothing was sent. "
                "Run `tradepost plan` again"
            )
        ops[change.op] += 1
        if change.op not in ("create", "update", "delete"):
            continue
        if change.family and change.op == "create":
            key = tuple(change.family)
            family = families.setdefault(key, _Family())
            family.listings[change.sku_id] = Listing.from_dict(record["after"])
            if change.sku_id == min(key):
                family.leader = (index, record)
            elif record["payloads"]:
                raise _edited_payload(path, marketplace, change.sku_id, where)
            if family.leader is not None and set(family.listings) == set(key):
                del families[key]
                leader_index, leader = family.leader
                build = partial(_family_body, connector, [family.listings[member] for member in key])
                _check_payloads(path, marketplace, leader, leader_index, build)
            continue
        _check_payloads(path, marketplace, record, index, partial(_payloads, record, connector))
    for key, family in families.items():
        missing = ", ".join(sorted(set(key) - set(family.listings)))
        raise PlanFileError(
            f"{path}: the {marketplace} family of SKU {min(key)} has no change for {missing}; "
            "nothing was sent. Run `tradepost plan` again"
        )
    for op in ("create", "update", "delete", "unchanged", "invalid"):
        if summary.get(op) != ops[op]:
            raise PlanFileError(
                f"{path}: {marketplace} has {ops[op]} changes with op '{op}' and its summary says "
                f"{summary.get(op)}: changes were removed or added after the plan was made; nothing was "
                "sent. Run `tradepost plan` again"
            )
    return ops


class _Family:
    """The creates of one variation family seen so far, and where its leader (first SKU) is."""

    def __init__(self) -> None:
        self.listings: dict[str, Listing] = {}
        self.leader: tuple[int, dict[str, Any]] | None = None


def _check_payloads(
    path: Path, marketplace: str, record: Mapping[str, Any], index: int, build: Callable[[], list[Any]]
) -> None:
    try:
        expected = build()
    except Exception:  # connector code fed an edited listing: whatever it raises, it is not the plan's
        expected = [{"the connector cannot build a payload from this listing": True}]
    if _loose(expected) != _loose(record["payloads"]):
        where = ("marketplaces", marketplace, "changes", index)
        raise _edited_payload(path, marketplace, record["sku_id"], where)


def _edited_payload(path: Path, marketplace: str, sku_id: Any, where: tuple[int | str, ...]) -> PlanFileError:
    return PlanFileError(
        f"{path}: the {marketplace} payload for SKU {sku_id} ({_where(where)}) is not the "
        "one tradepost builds from its listing ('after'): the plan was edited, or made with "
        "another connector; nothing was sent. Run `tradepost plan` again"
    )


def _family_body(connector: Connector, members: list[Listing]) -> list[Any]:
    body = connector.family_payload(members)
    return [body] if body is not None else []


def _payloads(record: Mapping[str, Any], connector: Connector) -> list[Any]:
    """The bodies :func:`change_record` saves for a change that is not a family's create."""
    change = ChangeRecord.of(record)
    return connector.payloads_for(change.op, change.fields, change.listing, change.sku_id)


_NUMBER = re.compile(r"-?[0-9]+(?:\.[0-9]+)?")


def _loose(value: Any) -> Any:
    """A payload with every number, and every string that is a plain number, as one normal text.

    ``after`` keeps the Decimals of listing fields as strings, so a body rebuilt from it can
    carry ``"116.47"`` where the planned one had ``116.47``; the digest already holds each
    body to the byte, this comparison is about values.
    """
    if isinstance(value, dict):
        return {str(k): _loose(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_loose(v) for v in value]
    if isinstance(value, bool) or value is None:
        return value
    if isinstance(value, int | Decimal) or (isinstance(value, str) and _NUMBER.fullmatch(value)):
        number = Decimal(value) if not isinstance(value, Decimal) else value
        return format(number.normalize(), "f") if number.is_finite() else str(number)
    return value


# -- reading a plan as a stream ----------------------------------------------------------------
#
# The layout is a JSON document whose only long part is each marketplace's "changes" array. The
# levels above it (the document, "marketplaces", each marketplace) are walked here a token at a
# time; every other value, a change included, is decoded whole by the json module's own scanner
# (the one :func:`engine.jsonio.loads` uses, numbers as Decimal), so what a pass reads is exactly
# what reading the file whole gives, whitespace, key order and a one-line rewrite included.

_DECODER = json.JSONDecoder(parse_float=Decimal)
_SPACE = re.compile(r"[ \t\n\r]*")
_CHUNK = 1 << 20
_LONGEST = 64 << 20
"""Characters read ahead for one value that does not decode before the file is refused: a plan
damaged in its middle costs this much memory at most, not the rest of the file."""


class _Reader:
    """A UTF-8 file read a chunk at a time: the next token, or the next JSON value whole."""

    def __init__(self, stream: IO[bytes], path: Path) -> None:
        self.stream, self.path = stream, path
        self.utf8 = codecs.getincrementaldecoder("utf-8")()
        self.buffer, self.pos, self.read, self.eof = "", 0, 0, False

    def _more(self) -> bool:
        """Read more (at least as much again as is held, so a long value costs linear time)."""
        if self.eof:
            return False
        data = self.stream.read(max(_CHUNK, len(self.buffer) - self.pos))
        try:
            text = self.utf8.decode(data, final=not data)
        except UnicodeDecodeError as exc:
            raise self.error(f"not UTF-8: {exc.reason}") from None
        self.eof = not data
        self.read += self.pos
        self.buffer, self.pos = self.buffer[self.pos :] + text, 0
        return True

    def error(self, what: str, pos: int | None = None) -> PlanFileError:
        where = self.read + (self.pos if pos is None else pos)
        return _invalid(self.path, f"(not JSON: {what} at character {where})")

    def peek(self) -> str:
        """The next character that is not white space ("" at the end of the file)."""
        while True:
            match = _SPACE.match(self.buffer, self.pos)
            self.pos = match.end() if match else self.pos
            if self.pos < len(self.buffer):
                return self.buffer[self.pos]
            if not self._more():
                return ""

    def take(self, expected: str) -> str:
        char = self.peek()
        if char not in expected:
            raise self.error(f"expecting one of {expected!r}, found {char or 'the end of the file'!r}")
        self.pos += 1
        return char

    def value(self) -> Any:
        """The next JSON value, decoded whole."""
        self.peek()
        while True:
            try:
                value, end = _DECODER.raw_decode(self.buffer, self.pos)
            except RecursionError:
                raise _invalid(self.path, "(nested too deeply)") from None
            except json.JSONDecodeError as exc:
                if len(self.buffer) - self.pos < _LONGEST and self._more():
                    continue
                raise self.error(exc.msg, exc.pos) from None
            if end == len(self.buffer) and self._more():
                continue  # a number cut by the chunk's end goes on in the next one
            self.pos = end
            return value

    def end(self) -> None:
        if self.peek():
            raise self.error("extra data")


def _members(text: _Reader) -> Iterator[str]:
    """The keys of the object that starts here; the caller reads each key's value in turn."""
    text.take("{")
    if text.peek() == "}":
        text.take("}")
        return
    seen: set[str] = set()
    while True:
        key = text.value() if text.peek() == '"' else None
        if not isinstance(key, str) or key in seen:
            raise text.error("expecting a property name not used before in its object")
        seen.add(key)
        text.take(":")
        yield key
        if text.take(",}") == "}":
            return


def _elements(text: _Reader) -> Iterator[Any]:
    """The values of the array that starts here, one at a time."""
    text.take("[")
    if text.peek() == "]":
        text.take("]")
        return
    while True:
        yield text.value()
        if text.take(",]") == "]":
            return


Scan = Generator[tuple[str, int, Any], None, Any]


def _scan(text: _Reader, keep: bool = False) -> Scan:
    """Yield every change as ``(marketplace, index, change)``; return the document, its "changes"
    arrays empty (or holding the changes, with ``keep``)."""
    if text.peek() != "{":
        other = text.value()
        text.end()
        return other
    document: dict[str, Any] = {}
    for key in _members(text):
        if key != "marketplaces" or text.peek() != "{":
            document[key] = text.value()
            continue
        document[key] = marketplaces = {}
        for name in _members(text):
            if text.peek() != "{":
                marketplaces[name] = text.value()
                continue
            marketplaces[name] = market = {}
            for part in _members(text):
                if part != "changes" or text.peek() != "[":
                    market[part] = text.value()
                    continue
                market[part] = kept = []
                for index, change in enumerate(_elements(text)):
                    if keep:
                        kept.append(change)
                    yield name, index, change
    text.end()
    return document


def _scanned(path: Path, stream: IO[bytes], keep: bool) -> Any:
    """The document that :func:`_scan` reads (every change decoded; kept only with ``keep``)."""
    scan = _scan(_Reader(stream, path), keep)
    while True:
        try:
            next(scan)
        except StopIteration as done:
            return done.value


def saved_changes(document: dict[str, Any], marketplace: str) -> Iterator[dict[str, Any]]:
    yield from document["marketplaces"][marketplace]["changes"]
