"""The rule language's function library: given arguments, expect exact results.

Numbers are compared through ``str`` so that the exponent is part of the
expectation: a price of ``134.9`` where ``134.90`` was due is a failure.
"""

from __future__ import annotations

from decimal import ROUND_DOWN, Decimal, localcontext
from typing import Any

import pytest
import re2

from engine._diagnostics import EvaluationError, Rejected, Span
from engine.rules._functions import FUNCTIONS, NOT_LITERAL, ROUNDING_MODES, Function, quantize
from engine.rules._types import ANY, BOOL, NEVER, NULL, NUMBER, STRING, Type, list_of, table_of

D = Decimal
AT = Span("rules/mercadolibre.yaml", 12, 5, 12, 30)


def call(name: str, *args: Any, **kwargs: Any) -> Any:
    return FUNCTIONS[name].impl(*args, **kwargs)


def result_type(name: str, *args: Type) -> Type:
    returns = FUNCTIONS[name].returns
    return returns if isinstance(returns, Type) else returns(args)


def check(name: str, *literals: object) -> str | None:
    function_check = FUNCTIONS[name].check
    assert function_check is not None, f"{name} has no compile-time check"
    return function_check(literals)


def exact(value: object) -> str:
    """The value as its exact text, asserting it is a Decimal (never float, never int)."""
    assert isinstance(value, Decimal), f"{value!r} is not a Decimal"
    return str(value)


# Numbers


@pytest.mark.parametrize(
    ("given", "places", "mode", "expect"),
    [
        # halves: the modes differ exactly here
        ("2.345", 2, "half_up", "2.35"),
        ("2.345", 2, "half_even", "2.34"),
        ("2.355", 2, "half_even", "2.36"),
        ("2.345", 2, "half_down", "2.34"),
        ("2.3451", 2, "half_down", "2.35"),
        ("2.341", 2, "up", "2.35"),
        ("2.349", 2, "down", "2.34"),
        ("2.341", 2, "ceiling", "2.35"),
        ("2.349", 2, "floor", "2.34"),
        # negative values: up/down are about zero, ceiling/floor about infinity
        ("-2.345", 2, "half_up", "-2.35"),
        ("-2.345", 2, "half_even", "-2.34"),
        ("-2.345", 2, "half_down", "-2.34"),
        ("-2.341", 2, "up", "-2.35"),
        ("-2.349", 2, "down", "-2.34"),
        ("-2.341", 2, "ceiling", "-2.34"),
        ("-2.349", 2, "floor", "-2.35"),
        # places 0 and 1
        ("2.5", 0, "half_up", "3"),
        ("2.5", 0, "half_even", "2"),
        ("3.5", 0, "half_even", "4"),
        ("2.5", 0, "half_down", "2"),
        ("-2.5", 0, "half_up", "-3"),
        ("2.1", 0, "up", "3"),
        ("2.9", 0, "down", "2"),
        ("0.15", 1, "half_up", "0.2"),
        ("0.25", 1, "half_even", "0.2"),
        ("0.05", 1, "half_down", "0.0"),
        ("-0.15", 1, "half_up", "-0.2"),
        ("0.11", 1, "ceiling", "0.2"),
        ("-0.11", 1, "floor", "-0.2"),
        # already exact: padded to the places asked for
        ("134.2", 2, "half_up", "134.20"),
        ("12", 2, "half_even", "12.00"),
    ],
)
def test_round_every_mode_to_the_cent(given: str, places: int, mode: str, expect: str) -> None:
    assert exact(call("round", D(given), D(places), mode)) == expect


@pytest.mark.parametrize(
    ("given", "expect"),
    [(D("2.5"), "3"), (D("2.4999"), "2"), (D("-2.5"), "-3"), (7, "7")],
)
def test_round_defaults_to_whole_numbers_half_up(given: Decimal | int, expect: str) -> None:
    assert exact(call("round", given)) == expect


@pytest.mark.parametrize(
    ("given", "places", "ceil", "floor"),
    [
        ("2.341", 2, "2.35", "2.34"),
        ("-2.341", 2, "-2.34", "-2.35"),
        ("2.345", 2, "2.35", "2.34"),
        ("2.00", 2, "2.00", "2.00"),
        ("1.21", 1, "1.3", "1.2"),
        ("-1.25", 1, "-1.2", "-1.3"),
        ("2.5", 0, "3", "2"),
        ("-2.5", 0, "-2", "-3"),
        ("7", 0, "7", "7"),
    ],
)
def test_ceil_and_floor(given: str, places: int, ceil: str, floor: str) -> None:
    assert exact(call("ceil", D(given), D(places))) == ceil
    assert exact(call("floor", D(given), D(places))) == floor


def test_ceil_and_floor_default_to_whole_numbers_and_accept_int() -> None:
    assert exact(call("ceil", D("7.01"))) == "8"
    assert exact(call("floor", D("7.99"))) == "7"
    assert exact(call("floor", 7)) == "7"


@pytest.mark.parametrize(
    ("name", "given", "expect"),
    [
        ("min", (D("1.50"), D("2")), "1.50"),
        ("min", (D("3"), D("-0.01"), D("2")), "-0.01"),
        ("min", (100, D("57.9")), "57.9"),
        ("max", (D("1.50"), D("2")), "2"),
        ("max", (D("-3"), D("-0.01"), D("-2")), "-0.01"),
        ("max", (D("0"), 12), "12"),
        ("abs", (D("-1.50"),), "1.50"),
        ("abs", (D("1.50"),), "1.50"),
        ("abs", (-3,), "3"),
    ],
)
def test_min_max_abs(name: str, given: tuple[Decimal | int, ...], expect: str) -> None:
    assert exact(call(name, *given)) == expect


@pytest.mark.parametrize(
    ("given", "step", "mode", "expect"),
    [
        # step 0.05: five-cent prices
        ("1.23", "0.05", "half_up", "1.25"),
        ("1.22", "0.05", "half_up", "1.20"),
        ("1.225", "0.05", "half_up", "1.25"),
        ("1.225", "0.05", "half_even", "1.20"),
        ("1.275", "0.05", "half_even", "1.30"),
        ("1.225", "0.05", "half_down", "1.20"),
        ("1.21", "0.05", "up", "1.25"),
        ("1.24", "0.05", "down", "1.20"),
        ("1.21", "0.05", "ceiling", "1.25"),
        ("1.24", "0.05", "floor", "1.20"),
        ("12.3", "0.05", "half_up", "12.30"),
        ("-1.225", "0.05", "half_up", "-1.25"),
        ("-1.21", "0.05", "up", "-1.25"),
        ("-1.21", "0.05", "ceiling", "-1.20"),
        ("-1.21", "0.05", "floor", "-1.25"),
        # step 0.5; the exponent of the step decides the places of the result
        ("7.25", "0.5", "half_up", "7.5"),
        ("7.25", "0.5", "half_even", "7.0"),
        ("7.25", "0.50", "half_up", "7.50"),
        ("7.24", "0.5", "half_up", "7.0"),
        ("-7.25", "0.5", "half_down", "-7.0"),
        # step 5
        ("132", "5", "half_up", "130"),
        ("132.5", "5", "half_up", "135"),
        ("132.5", "5", "half_even", "130"),
        ("137.5", "5", "half_even", "140"),
        ("132.5", "5", "half_down", "130"),
        ("131", "5", "up", "135"),
        ("134.99", "5", "down", "130"),
        ("-132.5", "5", "half_up", "-135"),
        ("-131", "5", "floor", "-135"),
    ],
)
def test_round_to_a_step(given: str, step: str, mode: str, expect: str) -> None:
    assert exact(call("round_to", D(given), D(step), mode)) == expect


def test_round_to_defaults_to_half_up_and_accepts_int() -> None:
    assert exact(call("round_to", D("1.225"), D("0.05"))) == "1.25"
    assert exact(call("round_to", 12, D("0.5"))) == "12.0"
    assert exact(call("round_to", 12, 5)) == "10"
    assert exact(call("round_to", D("1E+3"), 5)) == "1000"  # the step's exponent, not the value's


@pytest.mark.parametrize(
    ("given", "end", "direction", "expect"),
    [
        # up: the smallest price with the ending that is not below the given one
        ("134.20", "0.90", "up", "134.90"),
        ("134.90", "0.90", "up", "134.90"),
        ("134.95", "0.90", "up", "135.90"),
        ("134.905", "0.90", "up", "135.90"),
        ("134", "0.90", "up", "134.90"),
        ("134.20", "9.99", "up", "139.99"),
        ("139.99", "9.99", "up", "139.99"),
        ("1000", "9.99", "up", "1009.99"),
        ("134.20", "99", "up", "199"),
        ("134.20", "0", "up", "135"),
        ("134.20", "1.00", "up", "141.00"),  # 1 has one integer digit: it repeats every 10
        ("134.20", "0.9", "up", "134.9"),
        # down: the largest price with the ending that is not above it
        ("134.20", "0.90", "down", "133.90"),
        ("134.90", "0.90", "down", "134.90"),
        ("134.95", "0.90", "down", "134.90"),
        ("134.20", "9.99", "down", "129.99"),
        ("134.20", "99", "down", "99"),
        # nearest: the closer of both, ties go up
        ("134.20", "0.90", "nearest", "133.90"),
        ("134.60", "0.90", "nearest", "134.90"),
        ("134.40", "0.90", "nearest", "134.90"),
        ("134.90", "0.90", "nearest", "134.90"),
        ("134.20", "9.99", "nearest", "129.99"),
        ("134.99", "9.99", "nearest", "139.99"),
        # negative values: the same floor-based arithmetic
        ("-134.20", "0.90", "up", "-134.10"),
        ("-134.20", "0.90", "down", "-135.10"),
        ("-134.20", "0.90", "nearest", "-134.10"),
        ("-135.10", "0.90", "up", "-135.10"),
    ],
)
def test_ending(given: str, end: str, direction: str, expect: str) -> None:
    assert exact(call("ending", D(given), D(end), direction)) == expect


def test_ending_defaults_to_up_and_accepts_int() -> None:
    assert exact(call("ending", D("134.20"), D("0.90"))) == "134.90"
    assert exact(call("ending", 134, D("0.90"))) == "134.90"


def test_numeric_functions_ignore_the_ambient_decimal_context() -> None:
    with localcontext() as context:
        context.prec = 3
        context.rounding = ROUND_DOWN
        assert exact(call("round", D("1234.565"), D(2))) == "1234.57"
        assert exact(call("round_to", D("1234.575"), D("0.05"))) == "1234.60"
        assert exact(call("ending", D("1234.20"), D("0.90"))) == "1234.90"
        assert exact(quantize(D("1234.565"), 2)) == "1234.57"


@pytest.mark.parametrize(
    ("given", "places", "mode", "expect"),
    [("2.345", 2, "half_up", "2.35"), ("2.345", 2, "half_even", "2.34"), ("-2.5", 0, "floor", "-3")],
)
def test_quantize_helper(given: str, places: int, mode: str, expect: str) -> None:
    assert exact(quantize(D(given), places, mode)) == expect


def test_quantize_helper_refuses_negative_places_and_unknown_modes() -> None:
    with pytest.raises(ValueError, match="0 or more"):
        quantize(D("1"), -1)
    with pytest.raises(ValueError, match="did you mean 'half_up'"):
        quantize(D("1"), 2, "half-up")


def test_rounding_modes_map_to_decimal_constants() -> None:
    assert ROUNDING_MODES == {
        "ceiling": "ROUND_CEILING",
        "down": "ROUND_DOWN",
        "floor": "ROUND_FLOOR",
        "half_down": "ROUND_HALF_DOWN",
        "half_even": "ROUND_HALF_EVEN",
        "half_up": "ROUND_HALF_UP",
        "up": "ROUND_UP",
    }


def test_floats_are_refused() -> None:
    with pytest.raises(TypeError, match="never float"):
        call("round", 1.005, D(2))
    with pytest.raises(TypeError, match="never float"):
        quantize(1.005, 2)  # type: ignore[arg-type]


# Text


@pytest.mark.parametrize(
    ("name", "given", "expect"),
    [
        ("lower", ("São PAULO",), "são paulo"),
        ("upper", ("são paulo",), "SÃO PAULO"),
        ("title", ("tênis de CORRIDA",), "Tênis De Corrida"),
        ("title", ("d'água 2gb x-men",), "D'água 2gb X-Men"),
        ("title", ("copo d\u2019ÁGUA",), "Copo D\u2019água"),
        ("trim", ("  Tênis Nike \n\t",), "Tênis Nike"),
        ("replace", ("220V", "V", " Volts"), "220 Volts"),
        ("replace", ("a-b-c", "-", ""), "abc"),
        ("replace", ("abc", "", "x"), "abc"),
        ("slug", ("São Paulo",), "sao-paulo"),
        ("slug", ("  Tênis Nike Air Max 90!  ",), "tenis-nike-air-max-90"),
        ("slug", ("Ação & Reação",), "acao-reacao"),
        ("slug", ("Straße",), "strasse"),
        ("slug", ("ﬁle №5",), "file-no5"),
        ("slug", ("---",), ""),
        ("slug", ("日本",), ""),
        ("startswith", ("Tênis Nike", "Tênis"), True),
        ("startswith", ("Tênis Nike", "tênis"), False),
        ("endswith", ("Tênis Nike", "Nike"), True),
        ("endswith", ("Tênis Nike", "Tênis"), False),
    ],
)
def test_text_functions(name: str, given: tuple[Any, ...], expect: object) -> None:
    assert call(name, *given) == expect


@pytest.mark.parametrize(
    ("given", "length", "end", "expect"),
    [
        ("Hello world", 20, "", "Hello world"),  # fits: unchanged
        ("Hello world", 11, "...", "Hello world"),  # fits exactly: no end added
        ("Hello wonderful world", 12, "", "Hello"),  # mid-word: back to the last space
        ("Hello wonderful world", 15, "", "Hello wonderful"),  # the limit falls on a space
        ("Hello wonderful world", 16, "", "Hello wonderful"),  # trailing space stripped
        ("Hello wonderful world", 15, "...", "Hello..."),
        ("Hello wonderful world", 18, "…", "Hello wonderful…"),
        ("Hello    world", 9, "…", "Hello…"),  # whitespace stripped before the end
        ("Camiseta Básica Algodão", 17, "…", "Camiseta Básica…"),
        ("Supercalifragilistic", 5, "", "Super"),  # one long word: hard cut
        ("Supercalifragilistic", 6, "...", "Sup..."),
        ("Hello world", 3, "...", "Hel"),  # the end alone fills the limit: dropped
        ("Hello world", 2, "...", "He"),
        ("Hello", 0, "", ""),
        ("", 0, "...", ""),
    ],
)
def test_truncate(given: str, length: int, end: str, expect: str) -> None:
    result = call("truncate", given, D(length), end)
    assert result == expect
    assert len(result) <= length or result == given


def test_truncate_without_end() -> None:
    assert call("truncate", "Hello wonderful world", D(12)) == "Hello"


@pytest.mark.parametrize(
    ("given", "expect"),
    [("São", 3), ("", 0), ([D(1), D(2)], 2), ({"a": "b"}, 1), ({}, 0)],
)
def test_len_counts_characters_items_and_entries(given: object, expect: int) -> None:
    result = call("len", given)
    assert result == expect
    assert type(result) is int


@pytest.mark.parametrize(
    ("value", "part", "expect"),
    [
        ("Tênis Nike", "Nike", True),
        ("Tênis Nike", "nike", False),
        ("Voltagem 220", D("220"), True),
        ([D("1"), D("2")], D("2"), True),
        ([D("1"), D("2")], 2, True),
        (["a"], "b", False),
        ({"Cor": "Azul"}, "Cor", True),
        ({"Cor": "Azul"}, "Azul", False),
    ],
)
def test_contains(value: object, part: object, expect: bool) -> None:
    assert call("contains", value, part) is expect


@pytest.mark.parametrize(
    ("given", "pattern", "expect"),
    [
        ("MLB1276", r"^MLB\d+$", True),
        ("mlb1276", r"^MLB\d+$", False),
        ("abc123def", r"\d{3}", True),  # search, not fullmatch
        ("abcdef", r"\d", False),
        ("Tênis", r"(?i)tênis", True),
    ],
)
def test_matches(given: str, pattern: str, expect: bool) -> None:
    assert call("matches", given, pattern) is expect


def test_matches_compiles_each_pattern_once(monkeypatch: pytest.MonkeyPatch) -> None:
    compiled: list[str] = []
    real_compile = re2.compile

    def counting_compile(pattern: str, options: Any = None) -> Any:
        compiled.append(pattern)
        return real_compile(pattern, options)

    monkeypatch.setattr(re2, "compile", counting_compile)
    for text in ("a1", "b2", "cc"):
        call("matches", text, r"[a-z]\d#only-in-this-test")
    assert compiled == [r"[a-z]\d#only-in-this-test"]


@pytest.mark.parametrize(
    ("given", "expect"),
    [
        (D("12.50"), "12.50"),
        (D("1E+2"), "100"),
        (D("0.15"), "0.15"),
        (D("-0.00"), "0.00"),
        (D("-3.5"), "-3.5"),
        (7, "7"),
        (True, "true"),
        (False, "false"),
        ("já", "já"),
    ],
)
def test_text_formats_without_exponent(given: object, expect: str) -> None:
    assert call("text", given) == expect


@pytest.mark.parametrize(
    ("given", "expect"),
    [
        ("12.5", "12.5"),
        ("12,5", "12.5"),
        (" 12,50 ", "12.50"),
        ("1 234", "1234"),
        ("-3", "-3"),
        ("+0,50", "0.50"),
        (".5", "0.5"),
        (D("7.10"), "7.10"),
        (7, "7"),
    ],
)
def test_number_reads_point_or_comma_decimals(given: object, expect: str) -> None:
    assert exact(call("number", given, at=AT)) == expect


@pytest.mark.parametrize("given", ["abc", "", "1.234,56", "1,2,3", "12.5 kg", "1e5", "NaN", "Infinity", "٣"])
def test_number_refuses_anything_else(given: str) -> None:
    with pytest.raises(EvaluationError) as raised:
        call("number", given, at=AT)
    assert raised.value.message.startswith(f'cannot read "{given}" as a number')
    assert raised.value.span == AT


# Tables, codes, rejection

COLORS = {"Azul": "Blue", "Vermelho": "Red", "12": "twelve", "true": "yes"}


@pytest.mark.parametrize(
    ("args", "expect"),
    [
        (("Azul",), "Blue"),
        ((D("12"), "?"), "twelve"),  # numbers are looked up by their text
        ((12,), "twelve"),
        ((True,), "yes"),
        (("Azul", "?"), "Blue"),  # a hit ignores the default
        (("Verde", "?"), "?"),
        (("Verde", None), None),  # an explicit null default
        ((None, "?"), "?"),  # a null key is a miss
        ((D("12.0"), "?"), "?"),  # "12.0" is not "12"
    ],
)
def test_lookup(args: tuple[Any, ...], expect: object) -> None:
    key, *default = args
    assert call("lookup", COLORS, key, *default, at=AT, table_name="colors") == expect


def test_lookup_takes_the_key_first_for_the_pipe() -> None:
    assert call("lookup", "Azul", COLORS, at=AT) == "Blue"
    assert call("lookup", "Verde", COLORS, "?", at=AT) == "?"
    assert call("lookup", None, COLORS, "?", at=AT) == "?"


def test_lookup_miss_without_default_names_the_key_the_table_and_the_fix() -> None:
    with pytest.raises(EvaluationError) as raised:
        call("lookup", COLORS, "Verde", at=AT, table_name="colors")
    error = raised.value
    assert error.code == "TP902"
    assert error.span == AT
    assert error.message.startswith("no entry for 'Verde' in table 'colors'; add 'Verde' to table 'colors'")
    assert "give lookup a default" in error.message


def test_lookup_null_key_is_null_or_the_default() -> None:
    # a SKU without the specification has no such attribute; it is not a table miss
    assert call("lookup", COLORS, None, at=AT, table_name="sizes") is None
    assert call("lookup", COLORS, None, "One size", at=AT, table_name="sizes") == "One size"


def test_lookup_of_a_non_table_is_an_evaluation_error() -> None:
    with pytest.raises(EvaluationError, match="lookup\\(\\) needs a table, not text"):
        call("lookup", "Azul", "Verde", at=AT)


@pytest.mark.parametrize(
    "code",
    [
        "73513537",  # EAN-8
        "96385074",  # EAN-8
        "036000291452",  # UPC-A
        "012345678905",  # UPC-A
        "4006381333931",  # EAN-13
        "5901234123457",  # EAN-13
        "9780306406157",  # EAN-13 (ISBN)
        "10012345678902",  # GTIN-14
        "00036000291452",  # GTIN-14 holding a UPC-A
        D("4006381333931"),  # a number is read as its digits
        4006381333931,
    ],
)
def test_gtin_valid(code: object) -> None:
    assert call("gtin_valid", code) is True


@pytest.mark.parametrize(
    "code",
    [
        "73513538",  # EAN-8, wrong check digit
        "036000291453",  # UPC-A, wrong check digit
        "4006381333932",  # EAN-13, wrong check digit
        "10012345678903",  # GTIN-14, wrong check digit
        "1234567",  # 7 digits
        "123456789012345",  # 15 digits
        "40063813339310",  # 14 digits, wrong check digit
        " 4006381333931",  # nothing is stripped
        "4006381333931 ",
        "400638133393A",
        "٤٠٠٦٣٨١٣٣٣٩٣١",  # Arabic-Indic digits are digits, but not a GTIN's
        "",
        None,
        True,
        36000291452,  # the UPC-A above, stored as a number: its leading zero is gone
        D("4006381333931.0"),
    ],
)
def test_gtin_invalid(code: object) -> None:
    assert call("gtin_valid", code) is False


@pytest.mark.parametrize(
    ("message", "expect"),
    [("no stock in Manaus", "no stock in Manaus"), (None, "rejected by the rule file")],
)
def test_reject_raises_rejected_at_the_rule(message: str | None, expect: str) -> None:
    with pytest.raises(Rejected) as raised:
        call("reject", message, at=AT)
    assert raised.value.message == expect
    assert raised.value.span == AT
    assert raised.value.code == "TP901"


# Null propagation


@pytest.mark.parametrize(
    ("name", "args"),
    [
        ("round", (None,)),
        ("round", (D(1), None)),
        ("ceil", (None, D(2))),
        ("floor", (None,)),
        ("min", (D(1), None)),
        ("max", (None, D(1), D(2))),
        ("abs", (None,)),
        ("round_to", (None, D("0.05"))),
        ("round_to", (D(1), None)),
        ("ending", (None, D("0.90"))),
        ("ending", (D(1), None)),
        ("lower", (None,)),
        ("upper", (None,)),
        ("title", (None,)),
        ("trim", (None,)),
        ("replace", (None, "a", "b")),
        ("replace", ("a", None, "b")),
        ("replace", ("a", "a", None)),
        ("truncate", (None, D(5))),
        ("truncate", ("abc", None)),
        ("slug", (None,)),
        ("len", (None,)),
        ("contains", (None, "a")),
        ("contains", ("abc", None)),
        ("startswith", (None, "a")),
        ("endswith", (None, "a")),
        ("matches", (None, "a")),
        ("text", (None,)),
        ("number", (None,)),
    ],
)
def test_null_in_null_out(name: str, args: tuple[Any, ...]) -> None:
    assert call(name, *args) is None


@pytest.mark.parametrize(
    ("name", "args", "expect"),
    [
        ("round", (NUMBER,), "number"),
        ("round", (NUMBER.or_null(), NUMBER, STRING), "number or null"),
        ("round", (NUMBER, NUMBER.or_null()), "number or null"),
        ("min", (NUMBER, NUMBER, NUMBER.or_null()), "number or null"),
        ("ending", (NUMBER, NUMBER), "number"),
        ("lower", (STRING,), "string"),
        ("lower", (STRING.or_null(),), "string or null"),
        ("len", (STRING,), "number"),
        ("contains", (list_of(NUMBER), NUMBER), "bool"),
        ("contains", (STRING.or_null(), STRING), "bool or null"),
        ("text", (NUMBER,), "string"),
        ("number", (STRING,), "number"),
        ("gtin_valid", (STRING.or_null(),), "bool"),
        ("reject", (STRING,), "never"),
        ("lookup", (table_of(STRING), STRING), "string"),
        ("lookup", (STRING.or_null(), table_of(NUMBER)), "number or null"),  # pipe order; null key, null
        ("lookup", (table_of(STRING), STRING, NULL), "string or null"),
        ("lookup", (table_of(STRING), STRING, STRING), "string"),
        ("lookup", (STRING, table_of(STRING), NULL), "string or null"),
        ("lookup", (ANY, ANY), "any"),
    ],
)
def test_result_types(name: str, args: tuple[Type, ...], expect: str) -> None:
    assert str(result_type(name, *args)) == expect


def test_fixed_result_types() -> None:
    assert FUNCTIONS["gtin_valid"].returns == BOOL
    assert FUNCTIONS["reject"].returns == NEVER


# Compile-time checks of literal arguments, and the same problems at run time


@pytest.mark.parametrize(
    ("name", "literals", "expect"),
    [
        ("round", (NOT_LITERAL, D(-1)), "round: places must be a whole number of 0 or more, not -1; "),
        ("round", (NOT_LITERAL, D("1.5")), "round: places must be a whole number of 0 or more, not 1.5"),
        ("ceil", (NOT_LITERAL, D(-2)), "ceil: places must be a whole number of 0 or more, not -2"),
        ("floor", (NOT_LITERAL, D(-2)), "floor: places must be a whole number of 0 or more, not -2"),
        ("round", (NOT_LITERAL, D(2), "half-up"), "unknown rounding mode 'half-up'; did you mean 'half_up'?"),
        (
            "round",
            (NOT_LITERAL, NOT_LITERAL, "bankers"),
            "unknown rounding mode 'bankers'; use one of: ceiling,",
        ),
        ("round_to", (NOT_LITERAL, D(0)), "round_to: step must be greater than 0, not 0"),
        ("round_to", (NOT_LITERAL, D("-0.05")), "round_to: step must be greater than 0, not -0.05"),
        ("round_to", (NOT_LITERAL, D("0.05"), "halfeven"), "unknown rounding mode 'halfeven'; did you mean"),
        ("ending", (NOT_LITERAL, D("-0.10")), "ending: the ending must be 0 or more, not -0.10"),
        (
            "ending",
            (NOT_LITERAL, D("0.90"), "nearst"),
            "unknown ending direction 'nearst'; did you mean 'nearest'?",
        ),
        (
            "matches",
            (NOT_LITERAL, "MLB(\\d+"),
            "invalid regular expression 'MLB(\\\\d+': missing ): MLB(\\d+",
        ),
        ("matches", (NOT_LITERAL, "[a-"), "invalid regular expression '[a-': missing ]: [a-"),
        ("truncate", (NOT_LITERAL, D(-1)), "truncate: length must be a whole number of 0 or more, not -1"),
        (
            "truncate",
            (NOT_LITERAL, D("2.5")),
            "truncate: length must be a whole number of 0 or more, not 2.5",
        ),
        ("number", ("12.5 kg",), 'cannot read "12.5 kg" as a number; write digits'),
    ],
)
def test_check_reports_bad_literals(name: str, literals: tuple[object, ...], expect: str) -> None:
    message = check(name, *literals)
    assert message is not None
    assert message.startswith(expect)


def test_check_messages_say_how_to_fix() -> None:
    assert "round_to(x, 10)" in (check("round", NOT_LITERAL, D(-1)) or "")
    assert "half_even" in (check("round", NOT_LITERAL, D(2), "bankers") or "")
    assert "backslash" in (check("matches", NOT_LITERAL, "(") or "")


@pytest.mark.parametrize(
    ("name", "literals"),
    [
        ("round", (NOT_LITERAL,)),
        ("round", (D("2.5"), D(2), "half_even")),
        ("round", (NOT_LITERAL, NOT_LITERAL, NOT_LITERAL)),
        ("round", (NOT_LITERAL, D("2.0"))),
        ("round_to", (NOT_LITERAL, D("0.05"), "floor")),
        ("ending", (NOT_LITERAL, D("0"), "down")),
        ("matches", (NOT_LITERAL, r"^MLB\d+$")),
        ("matches", (NOT_LITERAL, NOT_LITERAL)),
        ("truncate", (NOT_LITERAL, D(60), "…")),
        ("number", ("12,5",)),
    ],
)
def test_check_accepts_good_or_unknown_literals(name: str, literals: tuple[object, ...]) -> None:
    assert check(name, *literals) is None


@pytest.mark.parametrize(
    ("name", "args", "expect"),
    [
        ("round", (D(1), D(-1)), "round: places must be a whole number"),
        ("round", (D(1), D(2), "half-up"), "unknown rounding mode 'half-up'"),
        ("ceil", (D(1), D("0.5")), "ceil: places must be a whole number"),
        ("round_to", (D(1), D(0)), "round_to: step must be greater than 0"),
        ("ending", (D(1), D(-1)), "ending: the ending must be 0 or more"),
        ("ending", (D(1), D("0.90"), "sideways"), "unknown ending direction 'sideways'"),
        ("truncate", ("abc", D(-1)), "truncate: length must be a whole number"),
        ("matches", ("abc", "("), "invalid regular expression '('"),
        ("len", (D(5),), "len() takes text, a list or a table, not a number"),
        ("contains", (D(5), "5"), "contains() looks inside text, a list or a table, not a number"),
        ("contains", ("abc", ["a"]), "cannot turn a list into text"),
        ("text", ([D(1)],), "cannot turn a list into text"),
        ("text", ({},), "cannot turn a table into text"),
    ],
)
def test_run_time_problems_are_evaluation_errors_at_the_rule(
    name: str, args: tuple[Any, ...], expect: str
) -> None:
    with pytest.raises(EvaluationError) as raised:
        call(name, *args, at=AT)
    assert raised.value.message.startswith(expect)
    assert raised.value.span == AT
    assert raised.value.code == "TP900"


# The library as the compiler sees it


def test_the_library_is_the_documented_set_sorted_by_name() -> None:
    assert list(FUNCTIONS) == [
        "abs", "available_in", "ceil", "contains", "ending", "endswith", "floor", "gtin_valid", "len",
        "lookup", "lower", "matches", "max", "min", "number", "reject", "replace", "round", "round_to",
        "slug", "startswith", "strip_html", "text", "title", "trim", "truncate", "upper",
    ]  # fmt: skip


def test_every_function_has_a_one_line_doc() -> None:
    for function in FUNCTIONS.values():
        assert function.doc, function.name
        assert "\n" not in function.doc, function.name


def test_functions_that_can_fail_take_a_span() -> None:
    assert {name for name, f in FUNCTIONS.items() if f.needs_span} == {
        "available_in", "ceil", "contains", "ending", "floor", "len", "lookup", "lower", "matches", "number",
        "reject", "replace", "round", "round_to", "strip_html", "text", "title", "truncate", "upper",
    }  # fmt: skip


def test_literal_and_optional_parameters() -> None:
    def signature(function: Function) -> list[str]:
        return [p.name + ("?" if p.optional else "") + ("!" if p.literal else "") for p in function.params]

    assert signature(FUNCTIONS["round"]) == ["x", "places?", "mode?!"]
    assert signature(FUNCTIONS["round_to"]) == ["x", "step", "mode?!"]
    assert signature(FUNCTIONS["ending"]) == ["x", "end", "direction?!"]
    assert signature(FUNCTIONS["matches"]) == ["text", "pattern!"]
    assert signature(FUNCTIONS["truncate"]) == ["text", "length", "end?"]
    assert signature(FUNCTIONS["lookup"]) == ["table", "key", "default?"]
    assert [name for name, f in FUNCTIONS.items() if f.variadic] == ["max", "min"]
