"""The file source: JSON Lines and JSON arrays, plain or gzip, streamed in bounded memory.

A bad record never stops the stream: it comes out as a MalformedRecord, located, among the
good ones; only a file that cannot be opened raises.
"""

from __future__ import annotations

import gzip
import json
import pickle
import time
import tracemalloc
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pytest

from engine._diagnostics import TradepostError
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.sync._source import FileSource, MalformedElement, SourceError, SourceItem


def record(sku_id: int, **changes: Any) -> dict[str, Any]:
    """A valid catalog record; ``changes`` replace top-level sections or set "section.key" paths."""
    data: dict[str, Any] = {
        "product": {
            "id": 1000 + sku_id // 3,
            "name": 'Tênis Corrida "Leve" \\ Ação',  # quotes, a backslash and accents cross chunks too
            "brand": "Passo Firme",
            "category_path": ["Apparel", "Shoes", "Sneakers"],
        },
        "sku": {
            "id": sku_id,
            "product_id": 1000 + sku_id // 3,
            "name": "Azul 42",
            "ean": "7891234567895",
            "active": True,
            "specs": {"Cor": "Azul", "Tamanho": "42"},
            "images": [{"url": f"https://cdn.example.com/{sku_id}.jpg", "is_main": True}],
        },
        "price": {"selling": 199.9, "list": 249.9, "cost": 89.95, "promotional": None},
        "stock": {"warehouses": [{"warehouse": "main", "quantity": 10, "reserved": 3}]},
    }
    for path, value in changes.items():
        section, _, key = path.partition(".")
        if key:
            data[section] = {**data[section], key: value}
        else:
            data[section] = value
    return data


RECORDS = [record(n) for n in range(1, 8)]


def write_jsonl(path: Path, lines: Iterable[str]) -> Path:
    path.write_text("".join(f"{line}\n" for line in lines), encoding="utf-8")
    return path


def write_array(path: Path, records: list[Any], *, indent: int | None = None) -> Path:
    path.write_text(json.dumps(records, ensure_ascii=False, indent=indent), encoding="utf-8")
    return path


def sku_ids(items: Iterable[SourceItem]) -> list[str]:
    return [item.sku.id if isinstance(item, CatalogRecord) else f"error:{item.sku_id}" for item in items]


def summary(item: SourceItem) -> tuple[str, str | None, int | None, int | None]:
    """(kind, SKU id, line, array index) of one item, for given/expect tables."""
    if isinstance(item, CatalogRecord):
        return ("record", item.sku.id, None, None)
    index = item.index if isinstance(item, MalformedElement) else None
    return ("error", item.sku_id, item.line, index)


# -- formats -------------------------------------------------------------------------------------


@pytest.mark.parametrize("layout", ["jsonl", "array", "array-indented", "jsonl.gz", "array.gz"])
def test_every_layout_gives_the_same_records(tmp_path: Path, layout: str) -> None:
    reference = [CatalogRecord.parse(data) for data in RECORDS]
    path = tmp_path / "catalog"
    if layout.startswith("jsonl"):
        write_jsonl(path, (json.dumps(data, ensure_ascii=False) for data in RECORDS))
    else:
        write_array(path, RECORDS, indent=2 if layout == "array-indented" else None)
    if layout.endswith(".gz"):
        path = tmp_path / "catalog.gz"
        path.write_bytes(gzip.compress((tmp_path / "catalog").read_bytes()))

    source = FileSource(path)
    items = list(source)

    assert items == reference
    assert (source.count, source.errors, source.complete) == (len(RECORDS), 0, True)
    assert source.format == ("jsonl" if layout.startswith("jsonl") else "array")
    assert source.compressed is layout.endswith(".gz")


def test_gzip_is_recognised_by_its_content_not_its_name(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"  # compressed, but not named .gz
    path.write_bytes(gzip.compress("".join(json.dumps(data) + "\n" for data in RECORDS).encode()))
    assert len(list(FileSource(path))) == len(RECORDS)


def test_amounts_are_exact_decimals(tmp_path: Path) -> None:
    exact = record(1, **{"price.selling": "x"})
    text = json.dumps([exact]).replace('"selling": "x"', '"selling": 199.900000000000000001')
    (tmp_path / "c.json").write_text(text, encoding="utf-8")
    (item,) = FileSource(tmp_path / "c.json")
    assert isinstance(item, CatalogRecord)
    assert str(item.price.selling) == "199.900000000000000001"


@pytest.mark.parametrize(
    "content",
    ["", "\n\n  \n", "[]", "  \n[ \n ]\n", "\ufeff"],
    ids=["empty", "blank lines", "empty array", "empty array with space", "only a BOM"],
)
def test_an_empty_catalog_has_no_records_and_is_complete(tmp_path: Path, content: str) -> None:
    path = tmp_path / "catalog"
    path.write_text(content, encoding="utf-8")
    source = FileSource(path)
    assert list(source) == []
    assert (source.count, source.errors, source.complete) == (0, 0, True)


@pytest.mark.parametrize("chunk_size", [1, 65536])
def test_a_byte_order_mark_is_skipped(tmp_path: Path, chunk_size: int) -> None:
    path = tmp_path / "catalog.json"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps(RECORDS[:2]).encode())
    assert sku_ids(FileSource(path, chunk_size=chunk_size)) == ["1", "2"]


# -- chunk boundaries ----------------------------------------------------------------------------


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 5, 7, 16, 64, 333])
@pytest.mark.parametrize("indent", [None, 1], ids=["compact", "indented"])
def test_array_elements_cut_by_chunks_decode_whole(
    tmp_path: Path, chunk_size: int, indent: int | None
) -> None:
    path = write_array(tmp_path / "c.json", RECORDS, indent=indent)
    source = FileSource(path, chunk_size=chunk_size)
    assert list(source) == list(FileSource(path))
    assert (source.count, source.errors, source.complete) == (len(RECORDS), 0, True)


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 7, 64])
def test_jsonl_lines_cut_by_chunks_decode_whole(tmp_path: Path, chunk_size: int) -> None:
    path = write_jsonl(tmp_path / "c.jsonl", (json.dumps(data, ensure_ascii=False) for data in RECORDS))
    assert list(FileSource(path, chunk_size=chunk_size)) == list(FileSource(path))


@pytest.mark.parametrize("chunk_size", [1, 2, 3, 4, 5])
def test_numbers_and_multibyte_characters_cut_by_chunks(tmp_path: Path, chunk_size: int) -> None:
    # Non-object elements are malformed records, but a number cut in two ("12" + "345") must be
    # read as 12345, not as 12 followed by garbage; "é" is two bytes that a chunk can split.
    path = tmp_path / "c.json"
    path.write_text('[12345, "é\\u00e9\\"x", ' + json.dumps(record(9)) + "]", encoding="utf-8")
    items = list(FileSource(path, chunk_size=chunk_size))
    assert [summary(item)[0] for item in items] == ["error", "error", "record"]
    assert str(items[0]).endswith("must be a JSON object (got 12345)")
    assert [item.index for item in items if isinstance(item, MalformedElement)] == [0, 1]


# -- malformed records ---------------------------------------------------------------------------


def test_malformed_jsonl_lines_are_yielded_in_place_with_line_numbers(tmp_path: Path) -> None:
    lines = [
        json.dumps(record(1)),
        json.dumps(record(2))[:-20],  # cut short: not JSON, yet its SKU id is readable
        "",
        json.dumps(record(3, **{"price.selling": "129,90"})),  # valid JSON, invalid record
        json.dumps(record(4)),
        "{not json at all",
        "   ",
        json.dumps(record(5, sku={"name": "no id"})),
        json.dumps(record(6)),
    ]
    source = FileSource(write_jsonl(tmp_path / "c.jsonl", lines), chunk_size=50)

    items = list(source)

    assert [summary(item) for item in items] == [
        ("record", "1", None, None),
        ("error", "2", 2, None),
        ("error", "3", 4, None),
        ("record", "4", None, None),
        ("error", None, 6, None),
        ("error", None, 8, None),
        ("record", "6", None, None),
    ]
    assert (source.count, source.errors, source.complete) == (3, 4, True)
    assert "line 2" in str(items[1]) and "not valid JSON" in str(items[1])
    assert str(items[2]) == "malformed catalog SKU 3 (line 4): price.selling: must be a number (got '129,90')"


def test_a_last_line_without_newline_is_read(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(json.dumps(record(1)) + "\n" + json.dumps(record(2)), encoding="utf-8")
    assert sku_ids(FileSource(path, chunk_size=7)) == ["1", "2"]


def test_crlf_line_endings(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(b"".join(json.dumps(data).encode() + b"\r\n" for data in RECORDS[:3]) + b"\r\n")
    assert sku_ids(FileSource(path)) == ["1", "2", "3"]


def test_invalid_utf8_costs_one_jsonl_line(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    bad = json.dumps(record(2)).encode().replace(b"Azul 42", b"Azul \xff42")
    path.write_bytes(json.dumps(record(1)).encode() + b"\n" + bad + b"\n" + json.dumps(record(3)).encode())
    assert [summary(item)[:3] for item in FileSource(path)] == [
        ("record", "1", None),
        ("error", "2", 2),
        ("record", "3", None),
    ]


@pytest.mark.parametrize("chunk_size", [1, 8, 65536])
def test_malformed_array_elements_are_yielded_with_index_and_line(tmp_path: Path, chunk_size: int) -> None:
    elements = [
        json.dumps(record(1), indent=1),
        json.dumps(record(2), indent=1).replace('"selling": 199.9', '"selling": 199.9,,'),  # syntax
        json.dumps(record(3, **{"price.selling": -5}), indent=1),  # invalid record
        "42",  # not an object
        json.dumps(record(4), indent=1).replace('"Azul 42"', '"Azul 42'),  # unterminated string
        json.dumps(record(5), indent=1),
    ]
    path = tmp_path / "c.json"
    path.write_text("[\n" + ",\n".join(elements) + "\n]\n", encoding="utf-8")
    starts = [2]
    for element in elements[:-1]:
        starts.append(starts[-1] + element.count("\n") + 1)
    source = FileSource(path, chunk_size=chunk_size)

    items = list(source)

    assert [summary(item) for item in items] == [
        ("record", "1", None, None),
        ("error", "2", starts[1], 1),
        ("error", "3", starts[2], 2),
        ("error", None, starts[3], 3),
        ("error", "4", starts[4], 4),
        ("record", "5", None, None),
    ]
    assert (source.count, source.errors, source.complete) == (2, 4, True)
    syntax_line = starts[1] + next(n for n, text in enumerate(elements[1].splitlines()) if ",," in text)
    assert str(items[1]).startswith(
        f"malformed catalog element [1], SKU 2 (line {starts[1]}): not valid JSON"
    )
    assert f"(line {syntax_line})" in str(items[1])
    assert str(items[2]) == (
        f"malformed catalog element [2], SKU 3 (line {starts[2]}): price.selling: must be >= 0 (got -5)"
    )


def test_missing_and_extra_commas_lose_no_record(tmp_path: Path) -> None:
    one, two, three = (json.dumps(data) for data in RECORDS[:3])
    path = tmp_path / "c.json"
    path.write_text(f"[{one} {two},, {three},]", encoding="utf-8")
    source = FileSource(path, chunk_size=16)
    assert sku_ids(source) == ["1", "2", "3"]
    assert source.complete


@pytest.mark.parametrize(
    ("tail", "expect_reason"),
    [
        ("", "the file ends before the array's closing ']'"),
        (
            ', {"product": {"id": 1, "na',
            "element [2], record with no readable SKU id (line 1): the file cannot be read from here on: "
            "the file ends inside this element",
        ),
        ("] garbage", "unexpected text after the array's closing ']'"),
    ],
    ids=["no closing bracket", "cut inside an element", "text after the array"],
)
def test_an_array_that_becomes_unreadable_ends_with_one_error(
    tmp_path: Path, tail: str, expect_reason: str
) -> None:
    path = tmp_path / "c.json"
    path.write_text("[" + ", ".join(json.dumps(data) for data in RECORDS[:2]) + tail, encoding="utf-8")
    source = FileSource(path, chunk_size=10)

    items = list(source)

    assert sku_ids(items[:2]) == ["1", "2"]
    assert len(items) == 3
    assert isinstance(items[2], MalformedRecord)
    assert expect_reason in str(items[2])
    assert "cannot be read from here on" in str(items[2])
    assert (source.count, source.errors, source.complete) == (2, 1, False)


def test_invalid_utf8_in_an_array_ends_the_stream_where_it_starts(tmp_path: Path) -> None:
    head = ("[" + json.dumps(record(1)) + ", ").encode()
    path = tmp_path / "c.json"
    path.write_bytes(head + json.dumps(record(2)).encode().replace(b"Azul", b"Az\xffl") + b"]")
    source = FileSource(path, chunk_size=16)

    items = list(source)

    assert sku_ids(items) == ["1", "error:None"]
    assert f"not valid UTF-8 at byte {len(head) + json.dumps(record(2)).index('Azul') + 2}" in str(items[1])
    assert not source.complete


def test_a_record_over_the_size_limit_is_skipped_in_jsonl(tmp_path: Path) -> None:
    long = json.dumps(record(2, **{"product.description": "x" * 2000}))
    lines = [json.dumps(record(1)), long, json.dumps(record(3))]
    source = FileSource(write_jsonl(tmp_path / "c.jsonl", lines), chunk_size=16, max_record_size=1000)

    items = list(source)

    assert [summary(item)[:3] for item in items] == [
        ("record", "1", None),
        ("error", None, 2),
        ("record", "3", None),
    ]
    assert "line is longer than 1000 bytes" in str(items[1])
    assert source.complete


def test_an_array_element_over_the_size_limit_stops_the_stream(tmp_path: Path) -> None:
    elements = [record(1), record(2, **{"product.description": "x" * 5000}), record(3)]
    source = FileSource(write_array(tmp_path / "c.json", elements), chunk_size=64, max_record_size=1000)

    items = list(source)

    assert sku_ids(items) == ["1", "error:None"]
    assert (
        "element [1], record with no readable SKU id (line 1): the file cannot be read from here on: "
        "the element is over 1000 characters long, or never ends" in str(items[1])
    )
    assert not source.complete


def test_malformed_element_survives_pickling() -> None:
    error = MalformedElement("7", [("price.selling", "must be a number")], line=3, index=2)
    copy = pickle.loads(pickle.dumps(error))
    assert (copy.sku_id, copy.errors, copy.line, copy.index, str(copy)) == (
        "7",
        [("price.selling", "must be a number")],
        3,
        2,
        str(error),
    )
    assert str(error) == "malformed catalog element [2], SKU 7 (line 3): price.selling: must be a number"


# -- gzip ----------------------------------------------------------------------------------------


def test_a_truncated_gzip_file_keeps_the_records_before_the_damage(tmp_path: Path) -> None:
    text = "".join(json.dumps(record(n)) + "\n" for n in range(1, 2001))
    packed = gzip.compress(text.encode())
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(packed[: len(packed) // 2])
    source = FileSource(path, chunk_size=4096)

    items = list(source)

    good = [item for item in items if isinstance(item, CatalogRecord)]
    assert 0 < len(good) < 2000
    assert all(isinstance(item, CatalogRecord) for item in items[:-1])
    assert isinstance(items[-1], MalformedRecord)
    assert "the compressed file is truncated" in str(items[-1])
    assert not source.complete


def test_a_file_that_is_not_gzip_past_its_magic_bytes_raises(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl.gz"
    path.write_bytes(b"\x1f\x8bthis is not gzip")
    with pytest.raises(SourceError, match=r"cannot read catalog file .*c\.jsonl\.gz"):
        list(FileSource(path))


# -- files that cannot be read -------------------------------------------------------------------


def test_a_missing_file_raises_a_clear_source_error(tmp_path: Path) -> None:
    path = tmp_path / "nowhere.jsonl"
    with pytest.raises(SourceError) as raised:
        next(iter(FileSource(path)))
    assert str(raised.value) == f"catalog file not found: {path}"
    assert isinstance(raised.value, TradepostError)
    assert raised.value.path == path


def test_a_directory_raises_a_clear_source_error(tmp_path: Path) -> None:
    with pytest.raises(SourceError, match="is a directory, not a file"):
        list(FileSource(tmp_path))


# -- counters and batches ------------------------------------------------------------------------


def test_counters_start_again_on_every_pass(tmp_path: Path) -> None:
    lines = [json.dumps(record(1)), "{bad", json.dumps(record(2))]
    source = FileSource(write_jsonl(tmp_path / "c.jsonl", lines))
    for _ in range(2):
        assert len(list(source.records())) == 3
        assert (source.count, source.errors, source.complete) == (2, 1, True)


@pytest.mark.parametrize(("size", "expect"), [(1, [1] * 7), (3, [3, 3, 1]), (7, [7]), (100, [7])])
def test_batches_hold_up_to_size_items_in_order(tmp_path: Path, size: int, expect: list[int]) -> None:
    source = FileSource(write_array(tmp_path / "c.json", RECORDS))
    batches = list(source.batches(size))
    assert [len(batch) for batch in batches] == expect
    assert sku_ids(item for batch in batches for item in batch) == [str(n) for n in range(1, 8)]


def test_batches_refuse_a_size_below_one(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="at least 1"):
        next(FileSource(write_array(tmp_path / "c.json", RECORDS)).batches(0))


# -- memory --------------------------------------------------------------------------------------


@pytest.mark.parametrize(("layout", "count"), [("array", 20_000), ("jsonl", 5_000)])
def test_memory_is_bounded_by_a_record_not_by_the_file(tmp_path: Path, layout: str, count: int) -> None:
    # Records of ~1.9 kB: the array is a 38 MB file, streamed with a traced peak of ~0.3 MB.
    # (JSON Lines is smaller only to keep the suite quick; its bound is the same.)
    ids = {"product.id": "@ID@", "sku.id": "@ID@", "sku.product_id": "@ID@"}
    template = json.dumps(record(0, **ids, **{"product.description": "Malha macia que não desbota. " * 40}))
    path = tmp_path / f"big.{layout}"
    with path.open("w", encoding="utf-8") as out:
        if layout == "array":
            out.write("[\n")
            out.writelines(template.replace('"@ID@"', str(n)) + ",\n" for n in range(1, count))
            out.write(template.replace('"@ID@"', str(count)) + "\n")
            out.write("]\n")
        else:
            out.writelines(template.replace('"@ID@"', str(n)) + "\n" for n in range(1, count + 1))
    size = path.stat().st_size
    assert size > count * 1800

    source = FileSource(path)
    started = time.perf_counter()
    tracemalloc.start()
    try:
        for _item in source:
            pass
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()

    assert (source.count, source.errors, source.complete) == (count, 0, True)
    assert peak < 2_000_000, f"peak {peak:,} bytes while streaming a {size:,}-byte file"
    assert time.perf_counter() - started < 60
