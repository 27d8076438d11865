"""A hostile catalog: every bad record is one invalid change, never an abort, and the rest is planned.

Each case of issue 8 ("one record stops the whole plan") is pinned with the exact message a
user reads; a hypothesis fuzz test then feeds random and mutated lines (huge numbers, deep
nesting, lone surrogates, wrong types, long lists and texts, duplicates, truncated lines,
binary garbage) through the real file source and planner, and the CLI over a catalog of all
of them. The limits are documented in docs/catalog.md ("Limits").
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from click.testing import CliRunner
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import engine
from cli.main import cli
from engine.connectors import connector_class
from engine.jsonio import dumps
from engine.model._catalog import MAX_DEPTH, too_deep
from engine.sync._plan import Change, Planner
from engine.sync._planfile import change_record
from engine.sync._source import FileSource, FirstSeen, MalformedElement
from marketplaces.vtex import VtexSource

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE_LINES = (ROOT / "examples" / "catalog.jsonl").read_text(encoding="utf-8").splitlines()
BASE = json.loads(EXAMPLE_LINES[0])  # SKU 2000001: created on Mercado Libre by rules/mercadolibre.yaml
BASE_ID = "2000001"
SENTINEL = "__HOSTILE__"


def line_with(path: str, raw: str, sku_id: str = "9000001") -> str:
    """The example record with the value at ``path`` ("price.selling") replaced by raw JSON text."""
    data = json.loads(json.dumps(BASE))
    data["sku"]["id"] = sku_id
    *parents, key = path.split(".")
    node = data
    for part in parents:
        node = node[part]
    node[key] = SENTINEL
    return json.dumps(data, ensure_ascii=False).replace(f'"{SENTINEL}"', raw)


def read(tmp_path: Path, lines: list[str], name: str = "catalog.jsonl") -> list[Any]:
    path = tmp_path / name
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return list(FileSource(path))


def errors_of(item: Any) -> list[tuple[str, str]]:
    assert isinstance(item, engine.MalformedRecord), f"expected a malformed record, got {item!r}"
    return list(item.errors)


# -- each limit, with the message a user reads -------------------------------------------------

DEEP = "[" * 1000 + "]" * 1000

CASES = [
    # issue 8: InvalidOperation while rounding
    ("price.selling", "1e400", "price.selling", "must be < 1000000000000 (got Decimal('1E+400'))"),
    ("price.selling", "1E+999999", "price.selling", "must be < 1000000000000 (got Decimal('1E+999999'))"),
    (
        "price.cost",
        "1e9999999999999999999",
        "",
        "a number is out of range (its exponent is past what a decimal holds)",
    ),
    ("price.selling", "1000000000000", "price.selling", "must be < 1000000000000 (got 1000000000000)"),
    (
        "price.selling",
        "1e-999999",
        "price.selling",
        "must be 0 or at least 1e-20 (got Decimal('1E-999999'))",
    ),
    ("price.selling", "9" * 65, "price.selling", f"must be < 1000000000000 (got {'9' * 37}...)"),
    ("product.extra", "9" * 5000, "", "a whole number has more than 4300 digits"),
    ("price.selling", "NaN", "", "NaN is not a JSON number"),
    ("price.list", "-Infinity", "", "-Infinity is not a JSON number"),
    (
        "sku.dimensions.weight",
        "1e13",
        "sku.dimensions.weight",
        "must be < 1000000000000 (got Decimal('1E+13'))",
    ),
    (
        "stock.warehouses",
        '[{"warehouse": "main", "quantity": 1000000001}]',
        "stock.warehouses[0].quantity",
        "must be <= 1000000000 (got 1000000001)",
    ),
    # issue 8: RecursionError
    ("product.extra", DEEP, "", "objects and lists are nested deeper than 32 levels"),
    # issue 8: UnicodeEncodeError when printing
    (
        "product.name",
        '"T\\u00eanis \\ud800"',
        "product.name",
        "is not valid Unicode text (a lone surrogate such as \\ud800); no marketplace accepts it "
        "(got 'Tênis \\ud800')",
    ),
    (
        "sku.specs",
        '{"Cor": "\\udfff"}',
        "sku.specs.Cor",
        "is not valid Unicode text (a lone surrogate such as \\ud800); no marketplace accepts it "
        "(got '\\udfff')",
    ),
    # issue 8: a category path of 100,000 names took 35 s
    (
        "product.category_path",
        json.dumps(["A"] * 100_000),  # 500 kB: under the line limit
        "product.category_path",
        "has 100000 entries; at most 20 are read",
    ),
    (
        "sku.images",
        json.dumps([{"url": "u"}] * 1001),
        "sku.images",
        "has 1001 entries; at most 1000 are read",
    ),
    (
        "product.description",
        json.dumps("x" * 100_001),
        "product.description",
        "is longer than 100000 characters (got 'xxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxxx...)",
    ),
]


@pytest.mark.parametrize(
    ("path", "raw", "field", "message"), CASES, ids=[c[0] + ":" + c[1][:20] for c in CASES]
)
def test_a_record_past_a_limit_is_malformed_with_the_field_and_the_limit(
    tmp_path: Path, path: str, raw: str, field: str, message: str
) -> None:
    good = line_with("price.selling", "99.9", sku_id="9000002")
    items = read(tmp_path, [line_with(path, raw), good])
    assert errors_of(items[0]) == [(field, message)]
    assert items[0].sku_id == "9000001"
    assert items[0].line == 1
    assert isinstance(items[1], engine.CatalogRecord) and items[1].sku.id == "9000002"


def test_values_at_the_limits_are_read(tmp_path: Path) -> None:
    nested = "[" * (MAX_DEPTH - 2) + "]" * (MAX_DEPTH - 2)  # inside the record and its product: 32
    lines = [
        line_with("price.selling", "999999999999.99", sku_id="1"),
        line_with("price.selling", "0.30000000000000004", sku_id="2"),  # a float's repr: 17 decimals
        line_with("product.category_path", json.dumps(["A"] * 20), sku_id="3"),
        line_with("product.extra", nested, sku_id="4"),
        line_with(
            "product.name", '"\\ud83d\\ude00 [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ \\"[[[ \\\\"', sku_id="5"
        ),
        line_with("stock.warehouses", '[{"warehouse": "w", "quantity": -1000000000}]', sku_id="6"),
    ]
    items = read(tmp_path, lines)
    assert [type(i).__name__ for i in items] == ["CatalogRecord"] * 6
    assert items[4].product.name == '😀 [[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[[ "[[[ \\'


def test_nesting_one_level_past_the_limit_is_refused(tmp_path: Path) -> None:
    nested = "[" * (MAX_DEPTH - 1) + "]" * (MAX_DEPTH - 1)  # inside the record and its product: 33
    assert errors_of(read(tmp_path, [line_with("product.extra", nested)])[0]) == [
        ("", "objects and lists are nested deeper than 32 levels")
    ]


@pytest.mark.parametrize(
    ("text", "deep"),
    [
        ("[" * 33 + "]" * 33, True),
        ("[" * 32 + "]" * 32, False),
        ("[]" * 5000, False),  # many brackets, shallow
        ('["' + "[" * 100 + '"]', False),  # brackets inside a string do not nest
        ('["\\"' + "[" * 100 + '"]', False),  # nor after an escaped quote
        ('["\\\\", ' + "[" * 40 + "]" * 40 + "]", True),  # an escaped backslash ends no string
        ("{" * 17 + "[" * 17, True),  # objects and lists both count
        ("[" * 20 + "]" * 20 + "[" * 20 + "]" * 20, False),  # side by side, not nested
        ("[[]" + "[" * 32, True),  # never closed: what is left open counts
        ("[[]" + "[" * 30, False),
        ("]]]]" + "[]" * 40, False),
    ],
)
def test_depth_is_counted_outside_strings(text: str, deep: bool) -> None:
    assert too_deep(text) is deep
    assert too_deep(text.encode()) is deep


def test_a_line_over_one_mebibyte_is_malformed_and_the_next_is_read(tmp_path: Path) -> None:
    big = line_with("product.description", json.dumps("x" * (1 << 20)))
    items = read(tmp_path, [big, line_with("price.selling", "1", sku_id="9000002")])
    assert errors_of(items[0]) == [("", "line is longer than 1048576 bytes")]
    assert isinstance(items[1], engine.CatalogRecord)


def test_a_sku_id_no_record_could_have_is_reported_by_line(tmp_path: Path) -> None:
    long_id = line_with("price.selling", "-1", sku_id="9" * 129)
    surrogate_id = line_with("price.selling", "-1").replace('"id": "9000001"', '"id": "\\ud800X"')
    items = read(tmp_path, [long_id, surrogate_id])
    assert items[0].sku_id is None
    assert "malformed catalog record with no readable SKU id (line 1)" in str(items[0])
    assert items[1].sku_id == "\\ud800X"  # escaped: it reaches terminals and the state store


def test_a_hostile_record_costs_milliseconds(tmp_path: Path) -> None:
    lines = [line_with(path, raw, sku_id=str(n)) for n, (path, raw, _, _) in enumerate(CASES)]
    started = time.perf_counter()
    items = read(tmp_path, lines)
    elapsed = time.perf_counter() - started
    assert all(isinstance(item, engine.MalformedRecord) for item in items)
    assert elapsed < 0.1 * len(lines), f"{elapsed:.2f}s for {len(lines)} hostile records"


# -- duplicates -----------------------------------------------------------------------------------


def test_a_duplicate_sku_is_malformed_naming_the_line_of_the_first(tmp_path: Path) -> None:
    first = line_with("price.selling", "10")
    items = read(tmp_path, [first, line_with("price.selling", "10", "9000002"), first, first])
    assert isinstance(items[0], engine.CatalogRecord)
    duplicate = ("sku.id", "duplicate of line 1: a SKU is read once, from its first record")
    assert errors_of(items[2]) == [duplicate]
    assert errors_of(items[3]) == [duplicate]
    assert str(items[2]) == (
        "malformed catalog SKU 9000001 (line 3): "
        "sku.id: duplicate of line 1: a SKU is read once, from its first record"
    )


def test_a_malformed_first_occurrence_still_makes_the_second_a_duplicate(tmp_path: Path) -> None:
    items = read(tmp_path, [line_with("price.selling", "-1"), line_with("price.selling", "10")])
    assert errors_of(items[0]) == [("price.selling", "must be >= 0 (got -1)")]
    assert errors_of(items[1]) == [
        ("sku.id", "duplicate of line 1: a SKU is read once, from its first record")
    ]


def test_a_duplicate_element_of_an_array_names_the_element(tmp_path: Path) -> None:
    record = line_with("price.selling", "10")
    path = tmp_path / "catalog.json"
    path.write_text(
        f"[{record},\n{record}, {line_with('product.extra', DEEP, '7')}, {record}]", encoding="utf-8"
    )
    items = list(FileSource(path))
    assert isinstance(items[0], engine.CatalogRecord)
    assert isinstance(items[1], MalformedElement)
    assert errors_of(items[1]) == [
        ("sku.id", "duplicate of element [0] (line 1): a SKU is read once, from its first record")
    ]
    assert errors_of(items[2]) == [("", "objects and lists are nested deeper than 32 levels")]
    assert items[2].sku_id == "7" and items[2].index == 2
    assert errors_of(items[3])[0][1].startswith("duplicate of element [0] (line 1)")


def test_a_second_pass_starts_afresh(tmp_path: Path) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_text(line_with("price.selling", "10") + "\n", encoding="utf-8")
    source = FileSource(path)
    assert [type(i).__name__ for i in source] == ["CatalogRecord"]
    assert [type(i).__name__ for i in source] == ["CatalogRecord"]


def test_first_seen_keeps_the_ids_on_disk() -> None:
    """300,000 ids cost a few MB of page cache (in a dict, about 36 MB; a million, about 120)."""
    import resource

    seen = FirstSeen()
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    for n in range(300_000):
        assert seen.first(str(2_000_000 + n), n, n % 3 or None) is None
    assert seen.first("2000007", 99) == (7, 1)
    assert seen.first("2299999", 99) == (299_999, 2)
    assert seen.first("2000003", 99) == (3, None)
    assert seen.first("9", 5) is None
    grown_mb = (resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before) / 1024
    seen.close()
    assert grown_mb < 10, f"peak RSS grew {grown_mb:.0f} MB"


# -- the planner and the CLI ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def planner_parts() -> tuple[Any, Any]:
    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    return compiled, connector_class("mercadolibre")({})


def plan(parts: tuple[Any, Any], path: Path) -> tuple[list[Change], Planner]:
    planner = Planner(parts[0], parts[1])
    return list(planner.changes(FileSource(path))), planner


def test_the_planner_plans_the_first_of_a_duplicate_and_reports_the_second(
    tmp_path: Path, planner_parts: tuple[Any, Any]
) -> None:
    path = tmp_path / "catalog.jsonl"
    path.write_text(
        "\n".join([EXAMPLE_LINES[0], EXAMPLE_LINES[5], EXAMPLE_LINES[0]]) + "\n", encoding="utf-8"
    )
    changes, planner = plan(planner_parts, path)
    assert [(c.op, c.sku_id) for c in changes] == [
        ("create", "2000001"),
        ("create", "2000006"),
        ("invalid", "2000001"),
    ]
    assert [str(r) for r in changes[2].reasons] == [
        "catalog line 3: sku.id: duplicate of line 1: a SKU is read once, from its first record"
    ]
    assert planner.summary.line() == "Plan: 2 to create, 0 to update, 0 to delete, 1 invalid"


# Raw JSON texts for one value: each must end as an invalid change or a valid one, never an abort.
NUMBERS = st.sampled_from(
    [
        "1e400", "1E+999999", "-1e400", "1e-999999", "1e9999999999999999999", "-1e-9999999999999999999",
        "NaN", "Infinity", "-Infinity", "9" * 65, "0." + "0" * 70 + "1", "999999999999.995",
        "999999999999.99", "1000000000000", "-0", "-0.0", "0", "1e12", "1e11", "0.1e-20", "1E-20",
        "1000000001", "-1000000001", "1000000000", "12345678901234567890", "\"83,90\"", "\"1e400\"",
        "\"" + "9" * 5000 + "\"", "1.5", "true",
    ]
)  # fmt: skip
TEXTS = st.one_of(
    st.text(max_size=40).map(json.dumps),
    st.sampled_from(
        [
            '"\\ud800"', '"a\\udfff"', '"\\udc00\\ud800"', '"\\ud83d\\ude00"',
            '"\\u0000"', '"[/red]"',
            '"\\u001b[31m"', '""', '"   "',
            json.dumps("x" * 100_001), json.dumps("y" * 128), json.dumps("z" * 129),
        ]
    ),
)  # fmt: skip
DEPTHS = st.integers(min_value=1, max_value=1200).map(
    lambda n: "[" * n + "]" * n if n % 2 else '{"a": ' * n + "1" + "}" * n
)
LISTS = st.sampled_from([0, 1, 20, 21, 1000, 1001, 20_000]).map(lambda n: json.dumps(["A"] * n))
OTHERS = st.sampled_from(["null", "true", "[]", "{}", "[1, 2]", '{"a": []}', '[{"url": 1}]', "-5"])
VALUES = st.one_of(NUMBERS, TEXTS, DEPTHS, LISTS, OTHERS)
PATHS = st.sampled_from(
    [
        "price.selling", "price.list", "price.cost", "price.promotional", "product.name", "product.id",
        "product.description", "product.brand", "product.category_path", "product.specs", "product.keywords",
        "product.collections", "product.extra", "sku.id", "sku.name", "sku.ean", "sku.specs", "sku.images",
        "sku.dimensions", "sku.dimensions.weight", "sku.unit_multiplier", "sku.active", "stock.warehouses",
        "stock", "price",
    ]
)  # fmt: skip


@st.composite
def hostile_lines(draw: st.DrawFn, sku_id: str) -> str:
    """One catalog line that is hostile in one way; its SKU id (when it has one) is ``sku_id``."""
    kind = draw(st.sampled_from(["value", "value", "value", "truncated", "garbage", "not an object"]))
    if kind == "value":
        return line_with(draw(PATHS), draw(VALUES), sku_id)
    if kind == "truncated":
        line = line_with(draw(PATHS), draw(VALUES), sku_id)
        return line[: draw(st.integers(min_value=1, max_value=len(line) - 1))]
    if kind == "garbage":
        data = draw(st.binary(min_size=1, max_size=200).filter(lambda b: b"\n" not in b and b.strip()))
        return data.decode("latin-1")  # written back as UTF-8: invalid JSON either way
    return draw(st.sampled_from(["[]", "1", '"x"', "null", DEEP, "[" * 5000, "{" * 5000]))


FUZZED = {"lines": 0, "examples": 0, "slowest": 0.0}


@settings(
    max_examples=int(os.environ.get("TRADEPOST_FUZZ_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(data=st.data())
def test_fuzz_hostile_lines_are_invalid_and_the_rest_is_planned(
    tmp_path: Path, planner_parts: tuple[Any, Any], data: st.DataObject
) -> None:
    hostile = [
        data.draw(hostile_lines(f"9{n:06d}"), label=f"line {n}") for n in range(data.draw(st.integers(1, 8)))
    ]
    good = [line_with("sku.name", '"Vermelho 35"', sku_id=f"8{n:06d}") for n in range(3)]
    lines = [good[0], *hostile[: len(hostile) // 2], good[1], *hostile[len(hostile) // 2 :], good[2]]
    if data.draw(st.booleans(), label="duplicate"):
        lines.append(data.draw(st.sampled_from(lines), label="duplicated line"))
    path = tmp_path / "fuzz.jsonl"
    path.write_bytes(b"\n".join(line.encode("utf-8", "surrogatepass") for line in lines) + b"\n")

    started = time.perf_counter()
    changes, planner = plan(planner_parts, path)
    elapsed = time.perf_counter() - started
    FUZZED["lines"] += len(lines)
    FUZZED["examples"] += 1
    FUZZED["slowest"] = max(float(FUZZED["slowest"]), elapsed / len(lines))

    assert planner.summary.records == len(lines)
    assert {c.op for c in changes} <= {"create", "invalid"}
    ops = {(c.op, c.sku_id) for c in changes}
    assert {("create", f"8{n:06d}") for n in range(3)} <= ops  # the good records are planned
    for change in changes:
        if change.op == "invalid":
            assert change.reasons and all(r.code.startswith("TP9") for r in change.reasons)
        # Whatever came in, what goes out can be written as UTF-8 (the plan, the table, JSON).
        dumps(change.to_dict()).encode("utf-8")
        dumps(change_record(change, planner_parts[1])).encode("utf-8")
    assert elapsed < 2 + 0.5 * len(lines), f"{elapsed:.2f}s for {len(lines)} lines"


# -- the CLI over every case at once -------------------------------------------------------------


@pytest.fixture
def hostile_project(tmp_path: Path) -> Iterator[Path]:
    """The example project, with a catalog of every hostile case above and three good SKUs."""
    config = (ROOT / "examples" / "tradepost.yaml").read_text(encoding="utf-8")
    (tmp_path / "tradepost.yaml").write_text(
        config.replace("../rules/", f"{ROOT / 'rules'}/"), encoding="utf-8"
    )
    lines = [EXAMPLE_LINES[0], EXAMPLE_LINES[5]]
    lines += [line_with(path, raw, sku_id=f"90000{n:02d}") for n, (path, raw, _, _) in enumerate(CASES)]
    lines += [
        line_with("product.category_path", '["Weird[/]", "X"]', sku_id="9100001"),  # rich markup
        line_with("price.selling", '"x"', sku_id="[/red]"),
        EXAMPLE_LINES[0],  # a duplicate
        "\x00\x01garbage",
        EXAMPLE_LINES[6][:200],  # truncated
        EXAMPLE_LINES[6],
    ]
    (tmp_path / "catalog.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    yield tmp_path / "tradepost.yaml"
    shutil.rmtree(tmp_path / ".tradepost", ignore_errors=True)


INVALID = len(CASES) + 5  # the cases, [/red], the duplicate, the garbage, the truncated line; Weird[/] too


def test_cli_plan_reports_every_hostile_record_as_invalid(hostile_project: Path) -> None:
    runner = CliRunner()
    config = str(hostile_project)
    result = runner.invoke(cli, ["plan", "-c", config, "-m", "mercadolibre", "--format", "jsonl"])
    assert result.exit_code == 0, result.output
    summary = json.loads(result.output.splitlines()[-1])["summary"]
    assert (summary["create"], summary["invalid"], summary["records"]) == (3, INVALID, 3 + INVALID)

    table = runner.invoke(cli, ["plan", "-c", config, "-m", "mercadolibre", "--limit", "100"])
    assert table.exit_code == 0, table.output
    assert f"mercadolibre Plan: 3 to create, 0 to update, 0 to delete, {INVALID} invalid" in table.output
    assert "[/red]" in table.output and "Weird[/]/X" in table.output

    saved = hostile_project.parent / "plan.json"
    result = runner.invoke(cli, ["plan", "-c", config, "-o", str(saved)])
    assert result.exit_code == 0, result.output
    assert json.loads(saved.read_text(encoding="utf-8"))["format_version"] >= 1

    check = runner.invoke(cli, ["check", "-c", config, "--catalog"])
    assert check.exit_code == 0, check.output
    assert "unmapped category Weird[/]/X: 1 SKU(s) invalid" in check.output

    explain = runner.invoke(cli, ["explain", "[/red]", "-c", config, "-m", "mercadolibre"])
    assert explain.exit_code == 0, explain.output
    assert re.search(r"reason: catalog line \d+: price.selling: must be a number \(got 'x'\)", explain.output)


def test_cli_prints_on_a_terminal_that_cannot_encode_the_catalog(hostile_project: Path) -> None:
    """An ASCII-only stdout (a cron job's C locale) escapes 'Tênis' instead of an internal error."""
    env = {**os.environ, "PYTHONIOENCODING": "ascii", "PYTHONPATH": str(ROOT)}
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "plan",
            "-c",
            str(hostile_project),
            "-m",
            "mercadolibre",
            "--sku",
            BASE_ID,
        ],
        capture_output=True,
        text=True,
        encoding="ascii",
        env=env,
        timeout=60,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    assert "T\\xeanis" in result.stdout
    assert "internal error" not in result.stderr


# -- the VTEX source: the same limits, and a SKU listed twice --------------------------------------


class Rewriting(httpx.BaseTransport):
    """Passes requests to the stand-in and lets ``rewrite`` replace the body of some answers."""

    def __init__(
        self, inner: httpx.BaseTransport, rewrite: Callable[[httpx.Request, bytes], bytes | None]
    ) -> None:
        self.inner, self.rewrite = inner, rewrite

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        response = self.inner.handle_request(request)
        body = self.rewrite(request, response.read())
        if body is None:
            return response
        return httpx.Response(response.status_code, content=body, request=request)

    def close(self) -> None:
        self.inner.close()


def vtex_items(
    rewrite: Callable[[httpx.Request, bytes], bytes | None], skus: int = 4
) -> tuple[list[Any], Any]:
    from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin

    standin = VtexStandin([json.loads(line) for line in EXAMPLE_LINES[:skus]])
    headers = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}
    transport = Rewriting(standin.sync_transport(), rewrite)
    with httpx.Client(
        base_url="https://teststore.vtexcommercestable.com.br", headers=headers, transport=transport
    ) as client:
        items = list(VtexSource(client, "1", page_size=2, sleep=lambda _: None).records())
    return items, standin


def test_vtex_a_sku_listed_on_two_pages_is_read_once_and_reported_the_second_time() -> None:
    def relist_first(request: httpx.Request, body: bytes) -> bytes | None:
        if (
            request.url.path.endswith("stockkeepingunitidsbysaleschannel")
            and request.url.params["page"] == "2"
        ):
            return json.dumps([2000001, *json.loads(body)]).encode()
        return None

    items, standin = vtex_items(relist_first)
    assert [
        (type(i).__name__, i.sku_id if isinstance(i, engine.MalformedRecord) else i.sku.id) for i in items
    ] == [
        ("CatalogRecord", "2000001"),
        ("CatalogRecord", "2000002"),
        ("MalformedRecord", "2000001"),
        ("CatalogRecord", "2000003"),
        ("CatalogRecord", "2000004"),
    ]
    assert items[2].errors == [("sku.id", "duplicate: VTEX listed it on page 1 already; a SKU is read once")]
    context_calls = [path for path in standin.requests if "stockkeepingunitbyid/2000001" in path]
    assert [standin.requests[path] for path in context_calls] == [1]  # not fetched again


@pytest.mark.parametrize(
    ("rewrite", "field", "message"),
    [
        (
            lambda data: {**data, "Deep": json.loads("[" * 40 + "]" * 40)},
            "",
            "GET /api/catalog_system/pvt/sku/stockkeepingunitbyid/2000002 answered 200 with a body past a "
            "limit: objects and lists are nested deeper than 32 levels",
        ),
        (
            lambda data: {**data, "ProductName": "\ud800"},
            "product.name",
            "is not valid Unicode text (a lone surrogate such as \\ud800); no marketplace accepts it "
            "(got '\\ud800')",
        ),
        (
            lambda data: {**data, "ProductCategoryIds": "/" + "1/" * 21, "ProductCategories": {"1": "A"}},
            "product.category_path",
            "has 21 entries; at most 20 are read",
        ),
    ],
)
def test_vtex_an_answer_past_a_limit_makes_its_sku_malformed(
    rewrite: Callable[[dict[str, Any]], dict[str, Any]], field: str, message: str
) -> None:
    def hostile(request: httpx.Request, body: bytes) -> bytes | None:
        if request.url.path.endswith("stockkeepingunitbyid/2000002"):
            return json.dumps(rewrite(json.loads(body))).encode("utf-8", "surrogatepass")
        return None

    items, _ = vtex_items(hostile)
    assert [type(i).__name__ for i in items] == [
        "CatalogRecord",
        "MalformedRecord",
        "CatalogRecord",
        "CatalogRecord",
    ]
    assert items[1].errors == [(field, message)]


def test_vtex_a_price_of_1e400_is_malformed() -> None:
    def huge(request: httpx.Request, body: bytes) -> bytes | None:
        if "/computed" in request.url.path and "2000002" in request.url.path:
            return body.replace(b'"sellingPrice":', b'"sellingPrice": 1e400, "x":')
        return None

    items, _ = vtex_items(huge)
    assert items[1].errors == [("price.selling", "must be < 1000000000000 (got Decimal('1E+400'))")]
