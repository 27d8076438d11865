"""The file source: a catalog file streamed as canonical records, one at a time.

A store's catalog can hold millions of SKUs, and the engine runs from schedulers on small
containers, so the file is never loaded whole: memory is bounded by one record plus one read
chunk, whatever the size of the file. Two layouts are read, both optionally gzip-compressed:

- JSON Lines (what ``tradepost`` and ``bench/synth.py`` write): one record per line;
- a JSON array of records (what many export tools write), decoded element by element.

One bad record never stops a run: it is yielded as a :class:`MalformedRecord` (located by
line, and for arrays by element index) among the good ones, so the run can report it and
go on. Only a file that cannot be opened at all raises (:class:`SourceError`).

A plan can ask a JSON Lines read to skip the records it already applied
(:meth:`FileSource.skip_unchanged`): each line's bytes are hashed (XXH3, keyed with the
rules' fingerprint), the hashes are looked up in batches, and a line whose hash is known is
not parsed: :meth:`FileSource.items` yields a :class:`Skipped` (its SKU id, its hash) in its place,
so catalog order holds and a long unchanged stretch is never held in memory. Duplicates are still
found, skipped lines included.

The limits of docs/catalog.md ("Limits") are enforced while reading, each costing a record
past it and nothing else: a record over :data:`DEFAULT_MAX_RECORD_SIZE`, nesting deeper than
:data:`MAX_DEPTH`, a number past what Python holds (``1e9999999999999999999``, an
integer of more than 4300 digits) or one JSON does not have (``NaN``, ``Infinity``). The
limits on values (text length, list length, amounts) are the canonical model's, shared with
every other source.
"""

from __future__ import annotations

import codecs
import gzip
import io
import itertools
import json
import os
import re
import sqlite3
import zlib
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import closing
from dataclasses import dataclass
from pathlib import Path
from typing import Literal, TypeAlias, cast

from xxhash import xxh3_128_hexdigest

from engine._diagnostics import TradepostError
from engine.model._catalog import (
    MAX_DEPTH,
    CatalogRecord,
    JsonLimitError,
    MalformedRecord,
    SourceItem,
    printable_id,
    raw_decode,
    too_deep,
)

__all__ = [
    "FileSource",
    "FirstSeen",
    "MalformedElement",
    "Skipped",
    "SourceError",
    "SourceItem",
]

SKIP_BATCH = 100
"""Lines hashed, then looked up at once, while skipping unchanged records (one statement each)."""
Unchanged: TypeAlias = Callable[[Sequence[str]], Mapping[str, str]]
"""Source hashes -> ``{source hash: SKU id}`` of those whose records need no planning."""

DEFAULT_CHUNK_SIZE = 64 * 1024
DEFAULT_MAX_RECORD_SIZE = 1024 * 1024
"""Bytes of a line (characters of an array element): 1 MiB, a hundred times a record with a long
description; a longer one is malformed, and memory stays bounded by it."""

_GZIP_MAGIC = b"\x1f\x8b"
_BOM = b"\xef\xbb\xbf"
_JSON_SPACE = b" \t\r\n"
_SPACE = re.compile(r"[ \t\r\n]*")
_STRUCTURE = re.compile(r'[\[\]{}",\\\n]')
# The SKU id of a line that is not valid JSON, read as text: the "id" key directly inside
# "sku" (the lazy scan skips whole strings and stops at any nested object).
_SKU_ID = re.compile(r'"sku"\s*:\s*\{(?:[^{}"]|"(?:[^"\\]|\\.)*")*?"id"\s*:\s*(?:"([^"\\]+)"|(-?\d+))')


class SourceError(TradepostError):
    """The catalog cannot be read at all: missing, unreadable, or not the file it claims to be.

    Raised, not yielded: with no catalog there is nothing to run, and going on would make every
    listing look deleted.
    """

    def __init__(self, message: str, path: Path) -> None:
        self.path = path
        super().__init__(message)


class MalformedElement(MalformedRecord):
    """A malformed element of a JSON-array catalog, located by its index as well as its line.

    Arrays are often written on a single line, where the line alone does not say which record
    failed; ``index`` (0-based, counting every element, good or bad) does.
    """

    def __init__(
        self,
        sku_id: str | None,
        errors: list[tuple[str, str]],
        line: int | None = None,
        index: int | None = None,
    ) -> None:
        super().__init__(sku_id, errors, line)
        self.index = index
        if index is not None:
            self.args = (
                str(self).replace("malformed catalog ", f"malformed catalog element [{index}], ", 1),
            )

    def __reduce__(  # type: ignore[override]  # one more field than MalformedRecord rebuilds from
        self,
    ) -> tuple[type[MalformedElement], tuple[str | None, list[tuple[str, str]], int | None, int | None]]:
        return (type(self), (self.sku_id, self.errors, self.line, self.index))


@dataclass(frozen=True, slots=True)
class Skipped:
    """A line left unparsed: its bytes are those of a record applied with the same rules."""

    sku_id: str
    source_hash: str
    line: int


def source_hash(text: bytes, key: bytes) -> str:
    """The hash of one record's bytes under a key (a digest of the rules' fingerprint): XXH3's 128
    bits, 0.2 us for a 1.6 kB line where SHA-256 took 1.9 us with the processor's SHA instructions.

    It only has to tell one line's bytes from another's: a record's next version has another hash
    but for a chance of one in 2**128 a change. It is no cryptographic hash, and need not be: the
    lines are the catalog's, written by whoever could change them outright.
    """
    return xxh3_128_hexdigest(key + text)


class FirstSeen:
    """Where each SKU id was first read in one pass over a catalog: the second read is a duplicate.

    A catalog that lists a SKU twice would have it planned twice, and the second payload
    overwrite the first on the marketplace; the source reports every later occurrence as
    malformed instead, naming the first. The ids live in a private temporary SQLite database
    (on disk, deleted on close, a 2 MB page cache), not in a set: a million ids would cost
    a hundred megabytes of memory on the small containers the engine runs in.
    """

    def __init__(self) -> None:
        self._db = sqlite3.connect("", isolation_level=None)  # "": private, temporary, on disk
        self._db.execute(
            "CREATE TABLE first (sku_id TEXT PRIMARY KEY, at INTEGER, idx INTEGER) WITHOUT ROWID"
        )
        self._db.execute("BEGIN")  # never committed: one transaction, no journal sync per id

    def first(
        self, sku_id: str, at: int | None, index: int | None = None
    ) -> tuple[int | None, int | None] | None:
        """None the first time ``sku_id`` is given, else the ``(at, index)`` it was first given with."""
        if self._db.execute("INSERT OR IGNORE INTO first VALUES (?, ?, ?)", (sku_id, at, index)).rowcount:
            return None
        row = self._db.execute("SELECT at, idx FROM first WHERE sku_id = ?", (sku_id,)).fetchone()
        return (row[0], row[1])

    def all_first(self, ids: Sequence[tuple[str, int]]) -> bool:
        """Record every ``(sku_id, line)`` at once if none of the ids was given before (nor twice
        among them): one statement for a run of lines. False, with nothing recorded, otherwise."""
        self._db.execute("SAVEPOINT run")
        if self._db.executemany("INSERT OR IGNORE INTO first VALUES (?, ?, NULL)", ids).rowcount == len(ids):
            self._db.execute("RELEASE run")
            return True
        self._db.execute("ROLLBACK TO run")
        self._db.execute("RELEASE run")
        return False

    def close(self) -> None:
        self._db.close()


class FileSource:
    """A catalog file (JSON Lines or a JSON array, plain or gzip) read as a stream of records.

    ``records()`` yields, in file order, a :class:`CatalogRecord` for every good record and a
    :class:`MalformedRecord` for every bad one; it can be called again to read the file anew.
    After (or during) a pass, ``count`` is the number of good records, ``errors`` the number of
    malformed ones, and ``complete`` says whether the file was read to its end: a run that read
    an incomplete catalog must not treat the SKUs it did not see as deleted.

    ``chunk_size`` is how many bytes are read at a time; ``max_record_size`` (bytes of a line,
    characters of an array element) is where a record that never ends is given up on, so a
    damaged file cannot exhaust memory.
    """

    def __init__(
        self,
        path: str | os.PathLike[str],
        *,
        chunk_size: int = DEFAULT_CHUNK_SIZE,
        max_record_size: int = DEFAULT_MAX_RECORD_SIZE,
    ) -> None:
        if chunk_size < 1:
            raise ValueError(f"chunk_size must be at least 1, got {chunk_size}")
        self.path = Path(path)
        self.chunk_size = chunk_size
        self.max_record_size = max(max_record_size, chunk_size)
        self.count = 0
        self.errors = 0
        self.complete = False
        self.format: Literal["jsonl", "array"] | None = None
        self.compressed: bool | None = None
        self.last_hash: str | None = None
        """The source hash of the last record yielded, while skipping (None otherwise)."""
        self._skip: tuple[bytes, Unchanged | None] | None = None

    def __repr__(self) -> str:
        return f"FileSource({str(self.path)!r})"

    def __iter__(self) -> Iterator[SourceItem]:
        return self.records()

    def records(self) -> Iterator[SourceItem]:
        """Every record of the file in order, good ones and malformed ones alike.

        Raises :class:`SourceError` (on the first ``next``) when the file cannot be opened or
        its first bytes cannot be read; a failure further on is yielded as a last
        :class:`MalformedRecord` saying where reading stopped, and leaves ``complete`` false.
        A pass that skips unchanged lines (:meth:`skip_unchanged`) leaves them out here:
        :meth:`items` yields them in their place.
        """
        items = self.items()
        if self._skip is None:
            return cast(Iterator[SourceItem], items)  # nothing is skipped: no Skipped among them
        return (item for item in items if not isinstance(item, Skipped))

    def items(self) -> Iterator[SourceItem | Skipped]:
        """:meth:`records`, and the lines skipped as unchanged as :class:`Skipped`, in file order."""
        self.count = self.errors = 0
        self.complete = False
        self.last_hash = None
        with (
            closing(FirstSeen()) as first,
            self._open() as raw,
            _decompressed(raw, self.compressed) as stream,
        ):
            reader = _Reader(stream, self.path, self.chunk_size)
            blank_lines, head = reader.head()
            self.format = "array" if head.lstrip(_JSON_SPACE)[:1] == b"[" else "jsonl"
            parse = self._array if self.format == "array" else self._jsonl
            for item in parse(blank_lines, head, reader, first):
                if isinstance(item, MalformedRecord):
                    self.errors += 1
                else:
                    self.count += 1
                yield item

    def skip_unchanged(self, key: bytes, unchanged: Unchanged | None) -> None:
        """From the next pass on, leave out the JSON Lines records ``unchanged`` knows by hash.

        ``key`` keys the hash (so records read under other rules hash otherwise). A skipped line
        counts as a good record; :meth:`items` yields it as a :class:`Skipped`, in its place, one
        at a time (a catalog unchanged from end to end is never held), and :attr:`last_hash`
        holds the hash of each record yielded. ``unchanged`` None: nothing is known by hash yet
        (a first pass), so each record is hashed and none looked up. A JSON array is read in
        full: its elements are not lines.
        """
        self._skip = (key, unchanged)

    def batches(self, size: int) -> Iterator[list[SourceItem]]:
        """The records in lists of up to ``size``, for steps that work (or send) in batches."""
        if size < 1:
            raise ValueError(f"batch size must be at least 1, got {size}")
        items = self.records()
        while batch := list(itertools.islice(items, size)):
            yield batch

    def _open(self) -> io.BufferedReader:
        try:
            raw = open(self.path, "rb")  # noqa: SIM115  # closed by records(), or below
        except FileNotFoundError:
            raise SourceError(f"catalog file not found: {self.path}", self.path) from None
        except IsADirectoryError:
            raise SourceError(f"catalog file {self.path} is a directory, not a file", self.path) from None
        except OSError as error:
            reason = error.strerror or str(error)
            raise SourceError(f"cannot open catalog file {self.path}: {reason}", self.path) from None
        try:
            # Sniffed, not guessed from the name: a gzip file keeps working once renamed.
            self.compressed = raw.peek(2)[:2] == _GZIP_MAGIC
        except OSError as error:
            raw.close()
            reason = error.strerror or str(error)
            raise SourceError(f"cannot read catalog file {self.path}: {reason}", self.path) from None
        return raw

    def _jsonl(
        self, blank_lines: int, head: bytes, reader: _Reader, first: FirstSeen
    ) -> Iterator[SourceItem | Skipped]:
        """One record per line, parsed unless skipped as unchanged."""
        lines = self._lines(blank_lines, head, reader)
        key, unchanged = self._skip or (None, None)
        if key is not None and unchanged is not None:
            yield from self._skipping(lines, first, key, unchanged)
            return
        # Nothing to look up: each record read, and hashed when the pass notes hashes (a first one).
        for piece in lines:
            if isinstance(piece, MalformedRecord):
                self.last_hash = None
                yield piece
                continue
            item = _once(first, _parse_line(*piece), piece[1])
            if key is not None:
                self.last_hash = None if isinstance(item, MalformedRecord) else source_hash(piece[0], key)
            yield item

    def _skipping(
        self,
        lines: Iterator[tuple[bytes, int] | MalformedRecord],
        first: FirstSeen,
        key: bytes,
        unchanged: Unchanged,
    ) -> Iterator[SourceItem | Skipped]:
        """The records of lines whose hash ``unchanged`` does not know; the others as :class:`Skipped`."""
        while batch := list(itertools.islice(lines, SKIP_BATCH)):
            pieces = [(p, "" if isinstance(p, MalformedRecord) else source_hash(p[0], key)) for p in batch]
            known = unchanged([digest for _, digest in pieces if digest])
            run: list[Skipped] = []  # consecutive lines known by hash, their ids checked at once
            for piece, digest in pieces:
                self.last_hash = None
                sku_id = known.get(digest) if digest else None
                if sku_id is not None:
                    run.append(Skipped(sku_id, digest, piece[1]))  # type: ignore[index]  # a line, not malformed
                    continue
                if run:  # not a generator per line read: only after lines skipped
                    yield from self._skipped_run(run, first)
                    run = []
                if isinstance(piece, MalformedRecord):
                    yield piece
                    continue
                item = _once(first, _parse_line(*piece), piece[1])
                if not isinstance(item, MalformedRecord):
                    self.last_hash = digest
                yield item
            yield from self._skipped_run(run, first)

    def _skipped_run(self, run: list[Skipped], first: FirstSeen) -> Iterator[SourceItem | Skipped]:
        """Skip a run of lines known by hash; a duplicate among them is yielded malformed, in its place."""
        if not run:
            return
        if first.all_first([(line.sku_id, line.line) for line in run]):
            yield from run
            return
        for line in run:
            if (seen := first.first(line.sku_id, line.line)) is None:
                yield line
            else:
                yield _duplicate_of(seen, line.sku_id, None, line.line, None)

    def _lines(
        self, blank_lines: int, head: bytes, reader: _Reader
    ) -> Iterator[tuple[bytes, int] | MalformedRecord]:
        """Each line's bytes and number; the bytes of a line are buffered only until it ends."""
        line = blank_lines
        pending: list[bytes] = []  # the start of a line the last chunk cut
        pending_size = 0
        too_long = False  # the line being read is over max_record_size: skip to its end
        chunk = head
        while chunk:
            *lines, tail = chunk.split(b"\n")
            for number, text in enumerate(lines):
                line += 1
                if number == 0 and (pending or too_long):
                    if too_long or pending_size + len(text) > self.max_record_size:
                        too_long = False
                        pending.clear()
                        pending_size = 0
                        yield self._too_long(line)
                        continue
                    text = b"".join((*pending, text))
                    pending.clear()
                    pending_size = 0
                if text.strip(_JSON_SPACE):
                    yield text, line
            if tail and not too_long:
                pending.append(tail)
                pending_size += len(tail)
                if pending_size > self.max_record_size:
                    pending.clear()
                    pending_size = 0
                    too_long = True
            chunk = reader.read(self.chunk_size)
        if reader.failure:  # the last line is cut: not worth a report of its own
            yield _unreadable(reader.failure, line + 1)
            return
        if too_long:
            yield self._too_long(line + 1)
        elif pending and (text := b"".join(pending)).strip(_JSON_SPACE):
            yield text, line + 1
        self.complete = True

    def _too_long(self, line: int) -> MalformedRecord:
        return MalformedRecord(None, [("", f"line is longer than {self.max_record_size} bytes")], line)

    def _array(
        self, blank_lines: int, head: bytes, reader: _Reader, first: FirstSeen
    ) -> Iterator[SourceItem]:
        """Elements of a JSON array, decoded one at a time from a rolling window of text.

        Commas are only separators here: a missing or doubled one loses no record, so it is
        tolerated rather than reported.
        """
        window = _Window(_TextReader(reader, head), self.chunk_size, 1 + blank_lines)
        window.skip_space()
        window.advance(window.pos + 1)  # the "[" that made this an array
        index = 0
        while window.skip_space():
            char = window.data[window.pos]
            if char == "]":
                break
            if char == ",":
                window.advance(window.pos + 1)
                continue
            line = window.line
            item, readable = self._element(window, index)
            yield _once(first, item, line, index)
            if not readable:
                return
            index += 1
        else:
            reason = reader.failure or "the file ends before the array's closing ']'"
            yield _unreadable(reason, window.line, index)
            return
        window.advance(window.pos + 1)
        if window.skip_space():
            yield _unreadable("unexpected text after the array's closing ']'", window.line)
        elif reader.failure:
            yield _unreadable(reader.failure, window.line)
        else:
            self.complete = True

    def _element(self, window: _Window, index: int) -> tuple[SourceItem, bool]:
        """The element at the window's position, and whether the file can be read past it.

        An element cut by the end of the window is read on (by at least its own size, so a
        large element is re-decoded a logarithmic number of times, not once per chunk). A
        syntax error costs that element only: its end is found by brackets and quotes, and
        decoding resumes after it.
        """
        line = window.line
        while True:
            text, start = window.data, window.pos
            try:
                value, end = raw_decode(text, start)
            except (json.JSONDecodeError, JsonLimitError, RecursionError) as error:
                found = _element_end(text, start)
                if found is not None:
                    window.advance(found)
                    return _undecodable(error, text, start, found, line, index), True
                if window.eof:
                    reason = window.failure or "the file ends inside this element"
                    return _unreadable(reason, line, index), False
            else:
                # A number cut by the window decodes too ("12" of "123"): be sure it has ended.
                if end < len(text) or window.eof or isinstance(value, dict | list | str):
                    window.advance(end)
                    if text.count("[", start, end) + text.count("{", start, end) > MAX_DEPTH and too_deep(
                        text[start:end]
                    ):
                        return _too_deep_element(text[start:end], line, index), True
                    return _parse_element(value, line, index), True
            if len(text) - start > self.max_record_size:
                reason = f"the element is over {self.max_record_size} characters long, or never ends"
                return _unreadable(reason, line, index), False
            window.refill(len(text) - start)


def _decompressed(raw: io.BufferedReader, compressed: bool | None) -> io.BufferedIOBase:
    # Closing a GzipFile leaves the file it was given open: records() closes both.
    return gzip.GzipFile(fileobj=raw, mode="rb") if compressed else raw


class _Window:
    """The decoded text still needed: the element being decoded and the rest of the last chunk."""

    def __init__(self, text: _TextReader, chunk_size: int, line: int) -> None:
        self._text = text
        self._chunk_size = chunk_size
        self.data = text.read(chunk_size)
        self.pos = 0
        self.line = line  # the line of data[pos]
        self.eof = text.eof

    @property
    def failure(self) -> str | None:
        return self._text.failure

    def advance(self, end: int) -> None:
        self.line += self.data.count("\n", self.pos, end)
        self.pos = end

    def skip_space(self) -> bool:
        """Move past whitespace, reading on as needed; False at the end of the file."""
        while True:
            self.advance(_skip_space(self.data, self.pos))
            if self.pos < len(self.data):
                return True
            if self.eof:
                return False
            self.refill(0)

    def refill(self, at_least: int) -> None:
        """Drop what has been decoded and read on by a chunk, or by ``at_least`` if larger."""
        self.data = self.data[self.pos :] + self._text.read(max(self._chunk_size, at_least))
        self.pos = 0
        self.eof = self._text.eof


class _Reader:
    """Chunks of the (decompressed) file; a read failure ends the stream and is kept as a reason.

    A truncated or corrupt gzip file fails only when its damaged part is reached; the records
    before it are good, so the failure is reported after them rather than raised over them.
    """

    def __init__(self, stream: io.BufferedIOBase, path: Path, chunk_size: int) -> None:
        self._stream = stream
        self._path = path
        self._chunk_size = chunk_size
        self.offset = 0  # bytes of (decompressed) content delivered so far
        self.failure: str | None = None

    def head(self) -> tuple[int, bytes]:
        """The first chunk that shows what the file is, and the count of blank lines before it.

        A failure this early raises: nothing has been read, so there is nothing to go on with.
        """
        data = self.read(max(self._chunk_size, len(_BOM)))
        if data.startswith(_BOM):
            data = data[len(_BOM) :] or self.read(self._chunk_size)
        blank_lines = 0
        while data and not data.strip(_JSON_SPACE):
            blank_lines += data.count(b"\n")
            data = self.read(self._chunk_size)
        if self.failure:
            message = f"cannot read catalog file {self._path}: {self.failure}"
            raise SourceError(message, self._path)
        return blank_lines, data

    def read(self, size: int) -> bytes:
        if self.failure:
            return b""
        try:
            data = self._stream.read(size)
        except (OSError, EOFError, zlib.error) as error:
            self.failure = _describe(error)
            return b""
        self.offset += len(data)
        return data


class _TextReader:
    """UTF-8 text from a :class:`_Reader`; invalid UTF-8 ends the stream where it starts."""

    def __init__(self, reader: _Reader, head: bytes) -> None:
        self._reader = reader
        self._decoder = codecs.getincrementaldecoder("utf-8")()
        self._fed = reader.offset - len(head)  # bytes of the file given to the decoder so far
        self._head: bytes | None = head
        self.eof = False

    @property
    def failure(self) -> str | None:
        return self._reader.failure

    def read(self, size: int) -> str:
        """The next piece of text, or "" once the file (or its readable part) has ended."""
        while not self.eof:
            if self._head is not None:
                data, self._head = self._head, None
            else:
                data = self._reader.read(size)
            final = not data
            self._fed += len(data)
            try:
                text = self._decoder.decode(data, final)
            except UnicodeDecodeError as error:
                # error.object is what the decoder held back from the last chunk, then data.
                position = self._fed - len(error.object) + error.start
                self._reader.failure = f"not valid UTF-8 at byte {position}"
                self.eof = True
                return codecs.decode(error.object[: error.start], "utf-8")
            if final:
                self.eof = True
            if text or final:
                return text
        return ""


def _once(first: FirstSeen, item: SourceItem, line: int, index: int | None = None) -> SourceItem:
    """The item, or a malformed record if its SKU id was read before in this pass."""
    sku_id = item.sku_id if isinstance(item, MalformedRecord) else item.sku.id
    if sku_id is None:
        return item
    seen = first.first(sku_id, line, index)
    if seen is None:
        return item
    return _duplicate_of(seen, sku_id, item, line, index)


def _duplicate_of(
    seen: tuple[int | None, int | None], sku_id: str, item: SourceItem | None, line: int, index: int | None
) -> MalformedRecord:
    first_line, first_index = seen
    where = f"line {first_line}"
    if first_index is not None:
        where = f"element [{first_index}] ({where})"
    errors = item.errors if isinstance(item, MalformedRecord) else []
    duplicate = ("sku.id", f"duplicate of {where}: a SKU is read once, from its first record")
    if index is None:
        return MalformedRecord(sku_id, [*errors, duplicate], line)
    return MalformedElement(sku_id, [*errors, duplicate], line, index)


def _parse_line(text: bytes, line: int) -> SourceItem:
    try:
        return CatalogRecord.parse_json(text, line=line)
    except MalformedRecord as error:
        if error.sku_id is None and (sku_id := _sniff_sku_id(text.decode("utf-8", "replace"))):
            return MalformedRecord(sku_id, error.errors, line)
        return error


def _parse_element(value: object, line: int, index: int) -> SourceItem:
    try:
        return CatalogRecord.parse(value, line=line)
    except MalformedRecord as error:
        return MalformedElement(error.sku_id, error.errors, line, index)


def _undecodable(
    error: json.JSONDecodeError | JsonLimitError | RecursionError,
    text: str,
    start: int,
    end: int,
    line: int,
    index: int,
) -> MalformedElement:
    if isinstance(error, RecursionError):
        return _too_deep_element(text[start:end], line, index)
    if isinstance(error, JsonLimitError):
        return MalformedElement(_sniff_sku_id(text[start:end]), [("", str(error))], line, index)
    # error.lineno counts from the start of the buffer, which is not the start of the file.
    at_line = line + error.doc.count("\n", start, error.pos)
    message = f"not valid JSON: {error.msg} (line {at_line})"
    return MalformedElement(_sniff_sku_id(error.doc[start:end]), [("", message)], line, index)


def _too_deep_element(text: str, line: int, index: int) -> MalformedElement:
    reason = f"objects and lists are nested deeper than {MAX_DEPTH} levels"
    return MalformedElement(_sniff_sku_id(text), [("", reason)], line, index)


def _unreadable(reason: str, line: int, index: int | None = None) -> MalformedRecord:
    message = f"the file cannot be read from here on: {reason}"
    if index is None:
        return MalformedRecord(None, [("", message)], line)
    return MalformedElement(None, [("", message)], line, index)


def _skip_space(text: str, pos: int) -> int:
    match = _SPACE.match(text, pos)
    return match.end() if match else pos


def _element_end(text: str, start: int) -> int | None:
    """Where the element at ``start`` ends, judged by brackets and quotes alone, or None if cut.

    Used only once decoding has failed: to tell an element cut by the chunk (read more) from
    one with a syntax error (skip it), and to find where the next element starts.
    """
    depth = 0
    in_string = False
    pos = start
    while match := _STRUCTURE.search(text, pos):
        char, at = match.group(), match.start()
        pos = at + 1
        if in_string:
            if char == "\\":
                pos += 1
                if pos > len(text):
                    return None
            elif char in '"\n':  # JSON text has no raw newline: an unterminated string ends there
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            if depth == 0:
                return at  # the array's own ']' ends an element that is not an object
            depth -= 1
            if depth == 0:
                return pos
        elif char == "," and depth == 0:
            return at
    return None


def _sniff_sku_id(text: str) -> str | None:
    """The SKU id of a record that is not valid JSON, when its text still shows one."""
    match = _SKU_ID.search(text, 0, 1 << 16)
    if match is None:
        return None
    return printable_id(match.group(1) or match.group(2))


def _describe(error: BaseException) -> str:
    if isinstance(error, EOFError):
        return "the compressed file is truncated"
    if isinstance(error, gzip.BadGzipFile | zlib.error):
        return f"the compressed file is corrupt ({error})"
    if isinstance(error, OSError) and error.strerror:
        return error.strerror
    return str(error) or type(error).__name__
