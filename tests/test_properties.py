"""Property tests: whatever a user types, the compiler answers with diagnostics, never a traceback.

Four promises of DESIGN.md, checked on inputs nobody wrote by hand:

* an expression, however broken, compiles or gets diagnostics placed inside its text;
* a rule file, however mangled, gets diagnostics placed inside the file, with the caret
  under the mistake;
* a compiled rule, run on any valid catalog record, fails only with ``EvaluationError``
  (the SKU is invalid, the run goes on); so does every operator and every function on untyped
  values of every type (null, text, numbers, true/false, lists, tables, records, missing paths),
  and both sides of ``??`` must have one type, as the branches of ``if`` do;
* money stays ``Decimal``: ``price.selling * (1 + 15% + 20%)`` is exactly ``selling * 1.35``.

Each engine bug these properties found is pinned by its minimal example as an ``@example``
(deep nesting, places beyond the decimal context, NEL/LS/PS inside a quoted string), so it
is checked on every run whatever the random draw.
"""

from __future__ import annotations

import json
import re
import shutil
from collections.abc import Callable, Iterator
from decimal import Decimal
from functools import cache
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, example, given, settings
from hypothesis import strategies as st

import engine
from engine._diagnostics import Diagnostic, DiagnosticSink, Span
from engine.rules._expressions import CompiledExpression, compile_expression
from engine.rules._functions import FUNCTIONS
from engine.rules._runtime import Context
from engine.rules._scopes import CATALOG_NAMES
from engine.rules._typecheck import Scope, Source
from engine.rules._types import ANY, NUMBER, STRING, RecordType, record_of, table_of
from engine.rules._yaml import Node, parse_yaml

RULES = Path(__file__).resolve().parent.parent / "rules"
RULE_FILE = RULES / "mercadolibre.yaml"
EXPRESSION_FILE = "<expression>"

# ---------------------------------------------------------------------------
# A realistic scope: what a `require` check may read (the widest one).

TABLES: dict[str, dict[str, Any]] = {
    "colors": {"Azul": "Blue", "Preto": "Black", "Branco": "White", "Vermelho": "Red"},
    "sizes": {"P": "S", "M": "M", "G": "L", "GG": "XL"},
    "markup": {"Apparel": Decimal("1.2"), "Electronics": Decimal("1.05")},
}
LISTING = record_of(
    RecordType(
        "listing",
        {
            "title": STRING,
            "condition": STRING,
            "category": STRING,
            "price": NUMBER,
            "sale_price": NUMBER.or_null(),
            "quantity": NUMBER,
            "attributes": record_of(
                RecordType("listing.attributes", {"BRAND": STRING.or_null(), "COLOR": ANY})
            ),
        },
    )
)
SCOPE = Scope(
    "in require",
    {**CATALOG_NAMES, "listing": LISTING},
    {"colors": table_of(STRING), "sizes": table_of(STRING), "markup": table_of(NUMBER)},
    {
        "order": "'order' exists only in divergence rules, where an order is being checked",
        "item": "'item' exists only in divergence rules, where an order is being checked",
    },
)


def plain_node(text: str) -> Node:
    """A plain YAML scalar holding ``text`` from line 1, column 1 of its own file."""
    return Node(text, Span(EXPRESSION_FILE, 1, 1), text=text, _raw=text, _raw_start=(0, 0))


def compile_in_scope(text: str, node: Node | None = None) -> tuple[CompiledExpression | None, DiagnosticSink]:
    sink = DiagnosticSink()
    sink.add_source(EXPRESSION_FILE, text)
    source = Source(node if node is not None else plain_node(text), text)
    return compile_expression(source, SCOPE, sink, TABLES, None, "this check"), sink


EDITOR_LINE_BREAK = re.compile("\r\n|[\r\n]")
"""Where an editor starts a new line (not YAML 1.1's NEL, LS and PS)."""


def assert_within(diagnostic: Diagnostic, text: str) -> None:
    """The diagnostic's span starts and ends inside ``text``, in lines as an editor numbers them."""
    lines = EDITOR_LINE_BREAK.split(text)
    span = diagnostic.span
    where = f"{diagnostic.code} {diagnostic.message!r} at {span}-{span.end_line}:{span.end_column}"
    assert 1 <= span.line <= len(lines), where
    assert 1 <= span.column <= len(lines[span.line - 1]) + 1, where
    if span.end_line is not None:
        assert span.line <= span.end_line <= len(lines), where
        assert span.end_column is not None and span.end_column >= 1, where
        if span.end_line == span.line:
            assert span.end_column >= span.column, where


# ---------------------------------------------------------------------------
# Strategies: expression text built from the language's tokens, then mangled.

FIELD_NAMES = (
    "product.brand",
    "product.name",
    "product.id",
    "product.category",
    "product.category_path",
    "product.specs.Material",
    "product.keywords",
    "sku.specs.Cor",
    "sku.specs.Tamanho",
    "sku.ean",
    "sku.active",
    "sku.images",
    "sku.main_image",
    "sku.dimensions.weight",
    "price.selling",
    "price.cost",
    "price.promotional",
    "price.list",
    "stock.available",
    "stock.warehouses",
    "listing.title",
    "listing.price",
    "listing.attributes.BRAND",
    "colors",
    "sizes",
    "markup",
    # mistakes users make: typos, names out of scope, fields of scalars
    "product.brnd",
    "prodcut.name",
    "order.total",
    "item",
    "foo",
    "price.selling.amount",
    "colors.Azul",
)
FUNCTION_NAMES = (*sorted(FUNCTIONS), "lookpu", "sum", "int")
BINARY_OPERATORS = ("+", "-", "*", "/", "==", "!=", "<", "<=", ">", ">=", "and", "or", "in", "not in", "??")
UNICODE = st.characters(codec="utf-8")  # any character a UTF-8 file can hold (no lone surrogates)
SEPARATORS = st.sampled_from(["", " ", " ", "  ", "\n", "\t"])
# Characters that matter to the lexer, YAML or position mapping, besides arbitrary unicode.
SPECIAL_CHARACTERS = "()[]{}\"'\\|?%.,=:#-+*/<>!&$@`~ \t\n\r\u00a0\u200b\ufeffé漢😀"

numbers = st.one_of(
    st.integers(0, 10**9).map(str),
    st.decimals(min_value=0, max_value=10**6, places=2, allow_nan=False, allow_infinity=False).map(str),
    st.sampled_from(["0", "0.0", "1.10", "12.5", "000", "1e3", "99999999999999999999999999999.99"]),
)
percentages = st.one_of(
    st.integers(0, 200).map(lambda n: f"{n}%"), st.sampled_from(["0.5%", "15%", "100.00%"])
)
string_literals = st.one_of(
    st.text(UNICODE, max_size=12).map(lambda s: json.dumps(s, ensure_ascii=False)),
    st.text(st.characters(codec="utf-8", exclude_characters="'\\\n"), max_size=8).map(lambda s: f"'{s}'"),
    st.sampled_from(['""', '"Private Label"', '"V"', "'colors'", '"\\u00e9"', '"[0-9]+"', '"half_even"']),
)
keywords = st.sampled_from(["true", "false", "null", "[]", "if", "then", "else", "not", "and", "or", "in"])
expression_leaves = st.one_of(
    st.sampled_from(FIELD_NAMES),
    numbers,
    percentages,
    string_literals,
    keywords,
)


def _wrap(template: str, *parts: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    return st.tuples(*parts).map(lambda values: template.format(*values))


def _extend(children: st.SearchStrategy[str]) -> st.SearchStrategy[str]:
    arguments = st.lists(children, max_size=4).map(", ".join)
    function = st.sampled_from(FUNCTION_NAMES)
    return st.one_of(
        _wrap("{}{}{}{}{}", children, SEPARATORS, st.sampled_from(BINARY_OPERATORS), SEPARATORS, children),
        _wrap("{}{}", st.sampled_from(["-", "not ", "- "]), children),
        _wrap("({})", children),
        _wrap("{}({})", function, arguments),
        _wrap("{} | {}({})", children, function, arguments),
        _wrap("{} | {}", children, function),
        _wrap("if {} then {} else {}", children, children, children),
        _wrap("{}[{}]", children, children),
        _wrap("[{}]", arguments),
        _wrap("({}).{}", children, st.sampled_from(["brand", "Cor", "selling", "x"])),
    )


expressions = st.recursive(expression_leaves, _extend, max_leaves=12)


@st.composite
def mutated(draw: st.DrawFn, base: st.SearchStrategy[str], max_mutations: int = 3) -> str:
    """``base`` with a few characters deleted, inserted, swapped or replaced."""
    text = draw(base)
    characters = st.one_of(st.sampled_from(SPECIAL_CHARACTERS), UNICODE)
    for _ in range(draw(st.integers(0, max_mutations))):
        operation = draw(st.sampled_from(["delete", "insert", "swap", "replace", "duplicate"]))
        at = draw(st.integers(0, len(text)))
        if operation == "insert":
            text = text[:at] + draw(characters) + text[at:]
        elif operation == "delete":
            text = text[:at] + text[at + 1 :]
        elif operation == "swap" and at + 1 < len(text):
            text = text[:at] + text[at + 1] + text[at] + text[at + 2 :]
        elif operation == "replace" and at < len(text):
            text = text[:at] + draw(characters) + text[at + 1 :]
        elif operation == "duplicate":
            end = draw(st.integers(at, min(len(text), at + 10)))
            text = text[:end] + text[at:end] + text[end:]
    return text


# ---------------------------------------------------------------------------
# (a) Expressions: compile or diagnose, never raise.


@settings(max_examples=200, deadline=None)
@given(text=mutated(expressions))
def test_any_expression_compiles_or_gets_diagnostics_inside_its_text(text: str) -> None:
    compiled, sink = compile_in_scope(text)

    assert (compiled is None) == bool(sink.errors), (compiled, sink.items)
    if compiled is not None:
        assert isinstance(compiled, CompiledExpression)
    for diagnostic in sink.items:
        assert re.fullmatch(r"TP\d{3}", diagnostic.code)
        assert diagnostic.message
        assert_within(diagnostic, text)


@st.composite
def quoted_in_yaml(draw: st.DrawFn) -> tuple[str, str]:
    """A YAML document ``value: <expression>`` in one of the scalar styles a user may pick."""
    text = draw(mutated(expressions))
    style = draw(st.sampled_from(["double", "single", "literal", "folded", "plain"]))
    if style == "double":
        scalar = json.dumps(text, ensure_ascii=draw(st.booleans()))
    elif style == "single":
        scalar = "'" + text.replace("'", "''") + "'"
    elif style in ("literal", "folded"):
        body = "\n".join("  " + line for line in text.split("\n"))
        scalar = ("|" if style == "literal" else ">") + "\n" + body
    else:
        scalar = text
    return text, f"# an expression\nvalue: {scalar}\n"


@settings(max_examples=150, deadline=None)
@given(case=quoted_in_yaml())
def test_an_expression_inside_yaml_gets_diagnostics_inside_the_file(case: tuple[str, str]) -> None:
    _, document = case
    sink = DiagnosticSink()
    root = parse_yaml(document, EXPRESSION_FILE, sink)
    if root is not None and root.is_mapping and (node := root.get("value")) is not None and node.is_scalar:
        sink.items.clear()
        source = Source(node, node.text)
        compiled = compile_expression(source, SCOPE, sink, TABLES, None, "this check")
        assert (compiled is None) == bool(sink.errors)
    for diagnostic in sink.items:
        assert_within(diagnostic, document)


NESTINGS = {
    "negation": ("-", "price.selling", ""),
    "not": ("not ", "sku.active", ""),
    "sum": ("(", "price.selling", " + 1)"),
    "call": ("abs(", "price.selling", ")"),
}


@settings(max_examples=50, deadline=None)
@example(kind="negation", depth=200)
@given(kind=st.sampled_from(sorted(NESTINGS)), depth=st.integers(1, 1200))
def test_deeply_nested_expressions_get_diagnostics_not_exceptions(kind: str, depth: int) -> None:
    opening, core, closing = NESTINGS[kind]
    text = opening * depth + core + closing * depth
    compiled, sink = compile_in_scope(text)

    assert (compiled is None) == bool(sink.errors)
    for diagnostic in sink.items:
        assert_within(diagnostic, text)


# ---------------------------------------------------------------------------
# (b) Rule files: every mangled version gets diagnostics inside the file, never an exception.

VALUE_LINE = re.compile(r"^(\s*(?:- )?(?:[\w/]+:\s+)?)(\S.*)$")
EXPRESSION_KEYS = re.compile(
    r"^(\s*(?:- )?(?:check|value|min|max|sale|safety|share|approve_within|hold_within|"
    r"min_order_value|max_order_value|BRAND|COLOR|SIZE|VOLTAGE|GTIN):\s+)(\S.*)$"
)


def _scalar(text: str, style: str) -> str:
    if style == "double":
        return json.dumps(text, ensure_ascii=False)
    if style == "single":
        return "'" + text.replace("'", "''") + "'"
    if style == "equals":
        return "=" + text
    return text


@st.composite
def mangled_rule_files(draw: st.DrawFn) -> str:
    lines = RULE_FILE.read_text(encoding="utf-8").split("\n")
    characters = st.one_of(
        st.sampled_from(SPECIAL_CHARACTERS + "\udcff"),  # \udcff is written as the invalid UTF-8 byte 0xff
        UNICODE,
    )
    for _ in range(draw(st.integers(1, 4))):
        operation = draw(
            st.sampled_from(["delete", "duplicate", "indent", "insert", "expression", "template", "truncate"])
        )
        index = draw(st.integers(0, len(lines) - 1))
        line = lines[index]
        if operation == "delete":
            del lines[index]
        elif operation == "duplicate":
            lines.insert(index, line)
        elif operation == "indent":
            change = draw(st.sampled_from(["", " ", "  ", "    ", "\t"]))
            lines[index] = change + line if draw(st.booleans()) else line[len(line) - len(line.lstrip()) :]
        elif operation == "insert":
            at = draw(st.integers(0, len(line)))
            lines[index] = line[:at] + "".join(draw(st.lists(characters, min_size=1, max_size=4))) + line[at:]
        elif operation in ("expression", "template") and (match := VALUE_LINE.match(line)):
            body = draw(mutated(expressions, max_mutations=2))
            if operation == "template":
                body = "{{ " + body + " }}"
            lines[index] = match.group(1) + _scalar(
                body, draw(st.sampled_from(["plain", "double", "single", "equals"]))
            )
        elif operation == "truncate":
            text = "\n".join(lines)
            return text[: draw(st.integers(0, len(text)))]
        if not lines:
            return ""
    return "\n".join(lines)


@pytest.fixture
def rules_dir(tmp_path: Path) -> Path:
    """A copy of rules/ (for the include of shared/tables.yaml) where a test may write rule files."""
    shutil.copytree(RULES / "shared", tmp_path / "shared")
    return tmp_path


def write_rule_file(folder: Path, text: str) -> tuple[Path, str]:
    """Write ``text`` as the engine will read it back: UTF-8, universal newlines."""
    path = folder / "mangled.yaml"
    data = text.encode("utf-8", "surrogateescape")
    path.write_bytes(data)
    as_read = data.decode("utf-8", "replace").replace("\r\n", "\n").replace("\r", "\n")
    return path, as_read


def file_text_of(diagnostic: Diagnostic, path: Path, text: str) -> str:
    if Path(diagnostic.span.file).resolve() == path.resolve():
        return text
    other = Path(diagnostic.span.file)
    assert other.is_file(), f"diagnostic in a file that does not exist: {diagnostic.span}"
    return other.read_text(encoding="utf-8")


@settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(text=mangled_rule_files())
def test_a_mangled_rule_file_gets_diagnostics_inside_the_file(rules_dir: Path, text: str) -> None:
    path, as_read = write_rule_file(rules_dir, text)

    result = engine.check_rules(path)

    assert (result.compiled is None) == bool(result.errors)
    for diagnostic in result.diagnostics:
        lines = file_text_of(diagnostic, path, as_read)
        # Generous line count: '\n' and str.splitlines() disagree on \x85, \u2028, \x0c ...
        count = max(len(lines.split("\n")), len(lines.splitlines()))
        span = diagnostic.span
        assert 1 <= span.line <= count + 1, (diagnostic.code, diagnostic.message, span, count)
        assert span.column >= 1, (diagnostic.code, diagnostic.message, span)
        assert span.end_line is None or span.line <= span.end_line <= count + 1, (diagnostic.message, span)
        assert diagnostic.render()


UNKNOWN = "zq_unknown_name"


def first_quoted(line: str) -> tuple[int, int] | None:
    """Where the text of the line's first double-quoted string starts and ends (not in a comment)."""
    match = re.match(r'[^#"]*"([^"\\]*)"', line)
    return (match.start(1), match.end(1)) if match else None


def line_separator_example() -> tuple[str, int]:
    """The minimal case of a bug found here: an LS in a quoted string moved every later caret a line up."""
    lines = RULE_FILE.read_text(encoding="utf-8").split("\n")
    quoted = next(i for i, line in enumerate(lines) if first_quoted(line))
    start, _ = first_quoted(lines[quoted]) or (0, 0)
    lines[quoted] = lines[quoted][:start] + "\u2028" + lines[quoted][start:]
    last = max(i for i, line in enumerate(lines) if EXPRESSION_KEYS.match(line))
    match = EXPRESSION_KEYS.match(lines[last])
    assert match is not None and last > quoted
    lines[last] = match.group(1) + f"1 + {UNKNOWN}"
    return "\n".join(lines), last + 1


@st.composite
def rule_files_with_a_misspelt_name(draw: st.DrawFn, line_breaks: str = "") -> tuple[str, int]:
    """The rule file with an unknown name in one expression, in some YAML style; other lines mangled.

    ``line_breaks`` are characters the mangling may insert into the quoted strings of
    other lines (see the xfail test on unusual line breaks).
    """
    lines = RULE_FILE.read_text(encoding="utf-8").split("\n")
    targets = [i for i, line in enumerate(lines) if EXPRESSION_KEYS.match(line)]
    index = draw(st.sampled_from(targets))
    match = EXPRESSION_KEYS.match(lines[index])
    assert match is not None
    before = draw(st.sampled_from(["price.selling", "1", "len(product.name)", "(2)", "abs(3)"]))
    spacing = draw(st.sampled_from([" ", "  ", "\t"]))  # ruamel refuses a tab in a plain scalar
    body = f"{before} +{spacing}{UNKNOWN} * 2"
    style = draw(
        st.sampled_from(["plain", "double", "double-escaped", "single", "literal", "folded", "equals"])
    )
    if style != "equals" and re.match(r"\s*[A-Z]+:", lines[index]):
        body = "=" + body  # a listing attribute is a literal unless it starts with '='
    prefix = match.group(1)
    if style in ("literal", "folded"):
        key_column = len(prefix) - len(prefix.lstrip()) + (2 if prefix.lstrip().startswith("- ") else 0)
        indent = " " * (key_column + 2)  # block content is indented past its key
        head, tail = body.split("+", 1)
        replacement = [
            prefix + ("|" if style == "literal" else ">"),
            indent + head + "+",
            indent + tail.lstrip(),
        ]
    elif style == "double-escaped":
        replacement = [prefix + json.dumps(body, ensure_ascii=True).replace("price", "\\x70rice")]
    else:
        plain = style in ("plain", "equals")
        replacement = [prefix + _scalar(body.replace("\t", " ") if plain else body, style)]
    lines[index : index + 1] = replacement
    # Mangle quoted strings elsewhere: unicode in a title or a message must not move the caret.
    quoted = [i for i, line in enumerate(lines) if first_quoted(line) and i != index]
    characters = st.sampled_from("é漢😀\u00a0\ufeff" + line_breaks)
    for _ in range(draw(st.integers(0, 3))):
        at = draw(st.sampled_from(quoted))
        line = lines[at]
        start, end = first_quoted(line) or (0, 0)
        position = draw(st.integers(start, end))
        lines[at] = line[:position] + draw(characters) + line[position:]
    shift = len(replacement) - 1
    return "\n".join(lines), index + 1 + (shift if style in ("literal", "folded") else 0)


def assert_caret_under_unknown_name(result: engine.CheckResult, line: int) -> None:
    found = [d for d in result.diagnostics if d.code == "TP301" and UNKNOWN in d.message]
    assert found, [d.render() for d in result.diagnostics]
    for diagnostic in found:
        span = diagnostic.span
        assert span.line == line, diagnostic.render()
        assert diagnostic.source_line is not None, diagnostic.render()
        under_caret = diagnostic.source_line[span.column - 1 : span.column - 1 + len(UNKNOWN)]
        assert under_caret == UNKNOWN, diagnostic.render()
        assert span.end_line == span.line and span.end_column == span.column + len(UNKNOWN), (
            diagnostic.render()
        )


@settings(max_examples=100, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(case=rule_files_with_a_misspelt_name())
def test_the_caret_sits_under_an_unknown_name_whatever_the_yaml_style(
    rules_dir: Path, case: tuple[str, int]
) -> None:
    text, line = case
    path, _ = write_rule_file(rules_dir, text)

    result = engine.check_rules(path)

    assert_caret_under_unknown_name(result, line)


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@example(case=line_separator_example())
@given(case=rule_files_with_a_misspelt_name(line_breaks="\x85\u2028\u2029"))
def test_the_caret_survives_unusual_line_breaks_in_strings(rules_dir: Path, case: tuple[str, int]) -> None:
    text, line = case
    path, _ = write_rule_file(rules_dir, text)

    result = engine.check_rules(path)

    assert_caret_under_unknown_name(result, line)


# ---------------------------------------------------------------------------
# (c) Evaluation on random valid catalog records: only EvaluationError may escape.


def decimal_texts(places: int = 4) -> st.SearchStrategy[str]:
    return st.one_of(
        st.integers(0, 10**7).map(str),
        st.tuples(st.integers(0, 10**6), st.integers(1, places)).flatmap(
            lambda t: st.integers(0, 10 ** t[1] - 1).map(lambda f: f"{t[0]}.{f:0{t[1]}d}")
        ),
        st.sampled_from(["0", "0.00", "0.01", "1E+3", "1e-9", "999999999999.99"]),  # the largest amount read
    )


money = decimal_texts()
optional_money = st.none() | money
texts = st.text(UNICODE, max_size=30)
CATEGORY_WORDS = ["Apparel", "Shoes", "Sneakers", "Electronics", "Phones", "Hats"]


@st.composite
def catalog_records(draw: st.DrawFn) -> engine.CatalogRecord:
    product_id = str(draw(st.integers(1, 10**9)))
    spec_value = st.none() | texts | st.lists(st.text(UNICODE, max_size=6), max_size=3)
    data = {
        "product": {
            "id": product_id,
            "name": draw(texts),
            "description": draw(texts),
            "brand": draw(st.none() | st.sampled_from(["Passo Firme", "Private Label", ""]) | texts),
            "category_path": draw(st.lists(st.sampled_from(CATEGORY_WORDS), max_size=4)),
            "specs": draw(st.dictionaries(st.sampled_from(["Material", "Garantia"]), spec_value, max_size=2)),
            "keywords": draw(texts),
            "collections": draw(st.lists(texts, max_size=2)),
            "active": draw(st.booleans()),
        },
        "sku": {
            "id": str(draw(st.integers(1, 10**9))),
            "product_id": product_id,
            "name": draw(texts),
            "ean": draw(
                st.none() | st.text("0123456789", max_size=14) | st.sampled_from(["7891234567895", "x"])
            ),
            "active": draw(st.booleans()),
            "specs": draw(
                st.fixed_dictionaries(
                    {},
                    optional={
                        "Cor": st.sampled_from([*TABLES["colors"], "Azul ", "Roxo"]) | spec_value,
                        "Tamanho": st.sampled_from([*TABLES["sizes"], "XG"]) | spec_value,
                        "Voltagem": st.sampled_from(["110V", "220V", "Bivolt"]) | spec_value,
                    },
                )
            ),
            "images": draw(
                st.lists(
                    st.fixed_dictionaries({"url": st.just("https://x/1.jpg"), "is_main": st.booleans()}),
                    max_size=2,
                )
            ),
            "dimensions": {"weight": draw(optional_money)},
        },
        "price": {
            "selling": draw(money),
            "cost": draw(optional_money),
            "promotional": draw(optional_money),
            "list": draw(optional_money),
        },
        "stock": {
            "warehouses": draw(
                st.lists(
                    st.fixed_dictionaries(
                        {
                            "warehouse": st.sampled_from(["main", "sp_cd", "rj"]),
                            "quantity": st.integers(-50, 10**6),
                            "reserved": st.integers(0, 100),
                            "unlimited": st.booleans(),
                        }
                    ),
                    max_size=3,
                )
            )
        },
    }
    return engine.CatalogRecord.model_validate(data)


def context_of(record: engine.CatalogRecord, listing: dict[str, Any] | None = None) -> Context:
    return Context(record.product, record.sku, record.price, record.stock, listing)


INVALID = object()
"""What a rule gives for a SKU it made invalid (it raised ``EvaluationError``)."""


def evaluate(rule: Callable[[Context], Any], ctx: Context) -> Any:
    """Run one rule for one SKU: its value, or INVALID when the rule made the SKU invalid."""
    try:
        return rule(ctx)
    except engine.EvaluationError:
        return INVALID


@cache
def mercadolibre() -> engine.CompiledRules:
    return engine.compile_rules(RULE_FILE)


def run_rule_file(rules: engine.CompiledRules, record: engine.CatalogRecord) -> Iterator[Any]:
    """Every compiled rule of the file, in the order a run takes them; yields each value.

    A step that made the SKU invalid stops the steps that read what it built, as a run
    would: a title that failed is not measured by a `require` check.
    """
    ctx = context_of(record)
    for condition in rules.select:
        yield evaluate(condition, ctx)
    choice = rules.categories.resolve(record.product.category_path, ctx)
    listing = {key: evaluate(field.evaluate, ctx) for key, field in rules.listing.items()}
    yield from listing.values()
    if INVALID in listing.values():
        return
    ctx.listing = listing
    if (variations := rules.variations) is not None:
        yield evaluate(variations.group_by, ctx)
    price = rules.price
    ctx.value = value = evaluate(price.value, ctx)
    yield value
    if value is INVALID:
        return
    rounded = evaluate(price.round, ctx) if price.round else value
    yield rounded
    for bound in (price.min, price.max, price.sale):
        if bound is not None:
            yield evaluate(bound, ctx)
    stock = rules.stock
    for figure in (stock.safety, stock.share, stock.max):
        if figure is not None:
            yield evaluate(figure, ctx)
    if rounded is INVALID:
        return
    ctx.listing = {
        **listing,
        "category": choice.category if choice else "",
        "price": rounded,
        "sale_price": None,
        "quantity": record.stock.available_in(stock.warehouses),
    }
    for requirement in rules.require:
        yield evaluate(requirement.check, ctx)
        message = requirement.message
        if message is not None and not isinstance(message, str):
            yield evaluate(message, ctx)


@settings(max_examples=200, deadline=None)
@given(record=catalog_records())
def test_the_rule_file_runs_on_any_valid_record_failing_only_with_evaluation_error(
    record: engine.CatalogRecord,
) -> None:
    for value in run_rule_file(mercadolibre(), record):
        assert not isinstance(value, float)


# Well-typed expressions, so that most of them compile and are actually run.

NUMBER_LEAVES = st.one_of(
    st.sampled_from(
        [
            "price.selling",
            "price.cost",
            "price.promotional",
            "price.list",
            "stock.available",
            "stock.quantity",
            "listing.price",
            "listing.quantity",
            "sku.unit_multiplier",
            "sku.dimensions.weight",
        ]
    ),
    decimal_texts(),
    percentages,
)
STRING_LEAVES = st.one_of(
    st.sampled_from(
        [
            "product.name",
            "product.brand",
            "product.category",
            "product.description",
            "sku.specs.Cor",
            "sku.specs.Tamanho",
            "sku.specs.Voltagem",
            "product.specs.Material",
            "sku.ean",
            "sku.name",
            "sku.main_image",
            "listing.title",
            "listing.category",
        ]
    ),
    st.text(UNICODE, max_size=8).map(lambda s: json.dumps(s, ensure_ascii=False)),
)
BOOL_LEAVES = st.sampled_from(["sku.active", "product.active", "stock.unlimited", "true", "false"])
LEAVES = {"number": NUMBER_LEAVES, "string": STRING_LEAVES, "bool": BOOL_LEAVES}
Builder = Callable[[st.DrawFn, Callable[[str], str]], str]
ENDINGS = st.sampled_from(["0.90", "0.99", "9.99", "0", "5", "99"])
DIRECTIONS = st.sampled_from(["", ', "down"', ', "nearest"'])
TRUNCATION_ENDS = st.sampled_from(["", ', "…"'])
PATTERNS = st.sampled_from(['"[0-9]+"', '"^A"', '"(?i)azul"'])


def _number_builders() -> list[Builder]:
    places = st.integers(0, 10).map(str)
    modes = st.sampled_from(["", ', "half_even"', ', "down"', ', "ceiling"'])
    return [
        lambda d, e: f"{e('number')} {d(st.sampled_from('+-*/'))} {e('number')}",
        lambda d, e: f"-({e('number')})",
        lambda d, e: f"round({e('number')}, {d(places)}{d(modes)})",
        lambda d, e: f"{d(st.sampled_from(['ceil', 'floor']))}({e('number')}, {d(places)})",
        lambda d, e: f"{d(st.sampled_from(['min', 'max']))}({e('number')}, {e('number')})",
        lambda d, e: f"abs({e('number')})",
        lambda d, e: f"ending({e('number')}, {d(ENDINGS)}{d(DIRECTIONS)})",
        lambda d, e: (
            f"round_to({e('number')}, {d(st.sampled_from(['0.05', '0.5', '5', '10', '1']))}{d(modes)})"
        ),
        lambda d, e: f"{e('number')} | round(2)",
        lambda d, e: f"if {e('bool')} then {e('number')} else {e('number')}",
        lambda d, e: f"{e('number')} ?? {e('number')}",
        lambda d, e: f"len({e('string')})",
        lambda d, e: f"number({e('string')})",
        lambda d, e: f"lookup(markup, {e('string')}, 1)",
    ]


def _string_builders() -> list[Builder]:
    return [
        lambda d, e: f"{d(st.sampled_from(['lower', 'upper', 'title', 'trim', 'slug']))}({e('string')})",
        lambda d, e: f"replace({e('string')}, {e('string')}, {e('string')})",
        lambda d, e: f"truncate({e('string')}, {e('number')}{d(TRUNCATION_ENDS)})",
        lambda d, e: f"text({e(d(st.sampled_from(['number', 'string', 'bool'])))})",
        lambda d, e: f"{e('string')} + {e('string')}",
        lambda d, e: f"lookup(colors, {e('string')})",
        lambda d, e: f'lookup(sizes, {e("string")}, "?")',
        lambda d, e: f'{e("string")} | lookup(colors, "?")',
        lambda d, e: f"{e('string')} ?? {e('string')}",
        lambda d, e: f"if {e('bool')} then {e('string')} else {e('string')}",
    ]


def _bool_builders() -> list[Builder]:
    return [
        lambda d, e: f"{e('number')} {d(st.sampled_from(['<', '<=', '>', '>=', '==', '!=']))} {e('number')}",
        lambda d, e: f"{e('string')} {d(st.sampled_from(['==', '!=', '<', '>=']))} {e('string')}",
        lambda d, e: f"{e('bool')} {d(st.sampled_from(['and', 'or']))} {e('bool')}",
        lambda d, e: f"not ({e('bool')})",
        lambda d, e: (
            f"{d(st.sampled_from(['contains', 'startswith', 'endswith']))}({e('string')}, {e('string')})"
        ),
        lambda d, e: f"matches({e('string')}, {d(PATTERNS)})",
        lambda d, e: f"gtin_valid({e('string')})",
        lambda d, e: f'{e("string")} {d(st.sampled_from(["in", "not in"]))} ["Azul", "P", ""]',
        lambda d, e: f"{e('string')} in {d(st.sampled_from(['colors', 'sizes']))}",
        lambda d, e: f"{e('number')} in [1, 5%, 0]",
        lambda d, e: f"{e('string')} in {e('string')}",
        lambda d, e: f"({e('bool')}) ?? false",
    ]


BUILDERS: dict[str, list[Builder]] = {
    "number": _number_builders(),
    "string": _string_builders(),
    "bool": _bool_builders(),
}


@st.composite
def typed_expressions(draw: st.DrawFn, kind: str, depth: int = 3) -> str:
    """An expression of ``kind`` (number, string or bool) that should pass the type checker."""
    if depth <= 0 or draw(st.integers(0, 3)) == 0:
        return draw(LEAVES[kind])
    builder = draw(st.sampled_from(BUILDERS[kind]))
    return "(" + builder(draw, lambda inner: draw(typed_expressions(inner, depth - 1))) + ")"


any_typed_expression = st.sampled_from(["number", "string", "bool"]).flatmap(
    lambda kind: st.tuples(st.just(kind), typed_expressions(kind))
)
PYTHON_TYPES: dict[str, tuple[type, ...]] = {"number": (Decimal, int), "string": (str,), "bool": (bool,)}


def listing_for(record: engine.CatalogRecord) -> dict[str, Any]:
    return {
        "title": f"{record.product.brand} {record.product.name}",
        "condition": "new",
        "category": "MLB1276",
        "price": record.price.selling,
        "sale_price": record.price.promotional,
        "quantity": record.stock.available,
        "attributes": {"BRAND": record.product.brand, "COLOR": record.sku.specs.get("Cor")},
    }


@settings(max_examples=200, deadline=None)
@given(case=any_typed_expression, record=catalog_records())
def test_compiled_expressions_raise_only_evaluation_error_and_keep_their_type(
    case: tuple[str, str], record: engine.CatalogRecord
) -> None:
    kind, text = case
    compiled, _ = compile_in_scope(text)
    assume(compiled is not None)
    assert compiled is not None
    assert compiled.type.kind in (kind, "any", "null", "never"), (text, compiled.type)

    try:
        value = compiled(context_of(record, listing_for(record)))
    except engine.EvaluationError:
        return
    assert value is None or isinstance(value, PYTHON_TYPES[kind]), (text, value)
    assert not isinstance(value, float), (text, value)
    if isinstance(value, bool):
        assert kind == "bool", (text, value)


@settings(max_examples=50, deadline=None)
@example(function="round", places=60, selling="1")
@given(
    function=st.sampled_from(["round", "ceil", "floor"]),
    places=st.integers(0, 100),
    selling=decimal_texts(),
)
def test_rounding_to_many_places_fails_only_with_evaluation_error(
    function: str, places: int, selling: str
) -> None:
    compiled, sink = compile_in_scope(f"{function}(price.selling, {places})")
    if compiled is None:
        # Too many places for any price is a compile-time mistake, reported on the argument.
        assert [d.code for d in sink.items] == ["TP310"], sink.items
        assert places > 20
        return
    ctx = Context(price=engine.Price(selling=Decimal(selling)))
    try:
        value = compiled(ctx)
    except engine.EvaluationError:
        return
    assert isinstance(value, Decimal)


# ---------------------------------------------------------------------------
# (d) Money is exact: Decimal in, Decimal out, no float anywhere.

prices = st.decimals(min_value=Decimal("0.01"), max_value=Decimal("99999.99"), places=2)


@settings(max_examples=200, deadline=None)
@given(selling=prices)
def test_markup_is_exact_decimal_arithmetic(selling: Decimal) -> None:
    ctx = Context(price=engine.Price(selling=selling))
    expected = selling * Decimal("1.35")
    from_file = mercadolibre().price.value(ctx)
    inline, _ = compile_in_scope("price.selling * (1 + 15% + 20%)")
    assert inline is not None

    for value in (from_file, inline(ctx)):
        assert type(value) is Decimal
        assert value == expected
        assert value.as_tuple() == expected.as_tuple()  # same digits and exponent, not only equal


# ---------------------------------------------------------------------------
# (e) Every operator and every function, on values of every type: only EvaluationError escapes.
#
# The names below are untyped (``any``), as a value read from a table of mixed entries or a
# specification is, so the checker lets everything through and the run-time helpers meet
# whatever a catalog or a table can hold: null, text, numbers (Decimal and int, zero, negative,
# huge, tiny), true/false, lists, tables, records and paths that lead nowhere.

UNTYPED = Scope("in this test", {"value": ANY, "item": ANY, "order": ANY}, {"mixed": table_of(ANY)})
UNTYPED_TABLES: dict[str, dict[str, Any]] = {"mixed": {"a": "x", "1": Decimal(1), "t": True}}
OPERANDS = ("value", "item", "order")
LITERAL_CHOICES: dict[str, tuple[str, ...]] = {
    "mode": ('"half_up"', '"down"', '"ceiling"'),
    "pattern": ('"[0-9]+"', '"^A"', '"(?i)azul"', '""'),
    "direction": ('"up"', '"down"', '"nearest"'),
}

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.text(UNICODE, max_size=8),
    st.sampled_from(["", "12,5", "0", "Azul", "a", "1", "NaN", "1e999", "-3"]),
    st.integers(-(10**6), 10**6),
    st.sampled_from(
        [Decimal(0), Decimal("-0.00"), Decimal("0.01"), Decimal("-7.5"), Decimal("1E+30"), Decimal("1E-30")]
    ),
    st.decimals(allow_nan=False, allow_infinity=False, places=3, min_value=-(10**9), max_value=10**9),
)
any_values = st.recursive(
    scalars | st.builds(lambda: engine.Price(selling=Decimal("9.90"))),
    lambda children: (
        st.lists(children, max_size=3) | st.dictionaries(st.sampled_from(["a", "1", "x"]), children)
    ),
    max_leaves=6,
)


def _call_texts(name: str) -> list[str]:
    """Every arity of ``name``, its arguments the untyped operands (literal parameters: a literal)."""
    function = FUNCTIONS[name]
    required = sum(1 for p in function.params if not p.optional)
    most = 3 if function.variadic else len(function.params)
    texts = []
    for count in range(required, most + 1):
        params = [function.params[min(i, len(function.params) - 1)] for i in range(count)]
        args = [
            LITERAL_CHOICES[p.name][0] if p.literal else OPERANDS[i % len(OPERANDS)]
            for i, p in enumerate(params)
        ]
        texts.append(f"{name}({', '.join(args)})")
        if name == "lookup":
            texts.append(f"lookup(mixed, {', '.join(args[1:])})")
    return texts


OPERATIONS = (
    *(f"value {op} item" for op in BINARY_OPERATORS),
    "-value",
    "not value",
    "value[item]",
    "value.x",
    "value.a.x",
    "value.selling",
    "if value then item else order",
    "value ?? item ?? order",
    "value | round(2)",
    "value | lookup(mixed)",
    *(text for name in sorted(FUNCTIONS) for text in _call_texts(name)),
)


@cache
def compile_untyped(text: str) -> CompiledExpression:
    sink = DiagnosticSink()
    sink.add_source(EXPRESSION_FILE, text)
    compiled = compile_expression(Source(plain_node(text), text), UNTYPED, sink, UNTYPED_TABLES)
    assert compiled is not None, (text, [d.message for d in sink.items])
    return compiled


def test_every_operator_and_function_compiles_on_untyped_values() -> None:
    assert {name for name in FUNCTIONS if not any(t.startswith(name + "(") for t in OPERATIONS)} == set()
    for text in OPERATIONS:
        compile_untyped(text)


@settings(max_examples=250, deadline=None)
@given(text=st.sampled_from(OPERATIONS), values=st.tuples(any_values, any_values, any_values))
def test_every_operator_and_function_fails_only_with_evaluation_error(
    text: str, values: tuple[Any, Any, Any]
) -> None:
    compiled = compile_untyped(text)
    value, item, order = values
    try:
        result = compiled(Context(value=value, item=item, order=order))
    except engine.EvaluationError:
        return
    assert not isinstance(result, float), (text, result)


KIND_PAIRS = st.sampled_from(
    [(a, b) for a in ("number", "string", "bool") for b in ("number", "string", "bool")]
)


@settings(max_examples=100, deadline=None)
@given(data=st.data(), kinds=KIND_PAIRS)
def test_both_sides_of_a_fallback_need_one_type(data: st.DataObject, kinds: tuple[str, str]) -> None:
    left, right = (data.draw(typed_expressions(kind, depth=2)) for kind in kinds)
    alone = [compile_in_scope(side)[0] for side in (left, right)]
    assume(all(c is not None and c.type.kind not in ("any", "null", "never") for c in alone))

    compiled, sink = compile_in_scope(f"{left} ?? {right}")

    if kinds[0] == kinds[1]:
        assert compiled is not None and compiled.type.kind == kinds[0], sink.items
    else:
        assert compiled is None
        assert [d.code for d in sink.errors] == ["TP306"]
        assert sink.errors[0].message.startswith("the fallback after '??'")
