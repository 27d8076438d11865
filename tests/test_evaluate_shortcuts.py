"""The evaluator's second round of shortcuts give what the long way gives (issue 11: plan CPU).

``gtin_valid`` sums digit codes instead of digits, ``ending`` leaves out a divide and a multiply
by 1 and knows a rule's ending by identity, constant figures are computed once, ``and``/``or`` of
proven booleans skip ``bool()``, and a listing's mapping runs its expressions unrolled: each is
compared with the computation it replaces, or with the reasons a failing field gave before.
"""

from __future__ import annotations

import dataclasses
import decimal
import functools
from collections.abc import Callable
from decimal import Decimal
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

import engine
from engine._diagnostics import EvaluationError
from engine.connectors import connector_class
from engine.model._catalog import CatalogRecord
from engine.rules._expressions import CompiledExpression
from engine.rules._functions import FUNCTIONS
from engine.rules._limits import LimitExceeded
from engine.rules._runtime import Context
from engine.rules._templates import CompiledTemplate
from engine.sync import _unrolled as unrolled_module
from engine.sync._evaluate import SkuEvaluator
from engine.sync._unrolled import _folded, _listing_read
from tests.test_plan import record
from tests.test_properties import TABLES, compile_in_scope

gtin_valid = FUNCTIONS["gtin_valid"].impl
ending = FUNCTIONS["ending"].impl


def _gtin_by_digits(code: object) -> bool:
    """gtin_valid as it was written: each digit turned into an int."""
    if isinstance(code, (Decimal, int)) and not isinstance(code, bool):
        code = format(code, "f") if isinstance(code, Decimal) else str(code)
    if not isinstance(code, str) or len(code) not in (8, 12, 13, 14):
        return False
    if not (code.isascii() and code.isdigit()):
        return False
    body = code[-2::-1]
    total = 3 * sum(map(int, body[0::2])) + sum(map(int, body[1::2]))
    return (10 - total % 10) % 10 == int(code[-1])


@given(st.text(alphabet="0123456789", min_size=7, max_size=15))
def test_gtin_valid_sums_as_the_digits_do(digits: str) -> None:
    for code in (digits, int(digits), Decimal(digits), digits + "x", " " + digits[1:]):
        assert gtin_valid(code) is _gtin_by_digits(code)


def test_gtin_valid_refuses_other_digits_and_values() -> None:
    assert gtin_valid("7891443121048") is True
    assert gtin_valid("٧٨٩١٤٤٣١٢١٠٤٨") is False  # Arabic-Indic digits are digits, not ASCII
    assert gtin_valid(None) is False
    assert gtin_valid(True) is False


def _ending_in_full(value: Decimal, end: Decimal, direction: str) -> Decimal:
    """ending() with every step taken, the step of 1 included, in operators under a 60-digit context."""
    with decimal.localcontext(decimal.Context(prec=60)):
        step = Decimal(1) if end < 1 else Decimal(10) ** (end.adjusted() + 1)
        below = ((value - end) / step).to_integral_value(decimal.ROUND_FLOOR) * step + end
        above = below + step if below != value else below
        nearest = above if above - value <= value - below else below
    return {"down": below, "up": above}.get(direction, nearest)


ENDS = [Decimal("0.90"), Decimal("0.9"), Decimal("0"), Decimal("0.99"), Decimal("9.99"), Decimal("99")]


@given(
    st.decimals(min_value=-(10**9), max_value=10**9, places=4, allow_nan=False),
    st.lists(st.tuples(st.sampled_from(ENDS), st.sampled_from(["up", "down", "nearest"])), min_size=1),
)
def test_ending_gives_the_full_computation(value: Decimal, endings: list[tuple[Decimal, str]]) -> None:
    # Several endings one after another: the one known by identity must be the one asked for; an
    # equal end of another object (0.9 after 0.90) is known by its text, its exponent kept; and
    # the function a rule's written ending compiles to gives the same.
    fixed = FUNCTIONS["ending"].fixed
    assert fixed is not None
    for end, direction in endings:
        full = _ending_in_full(value, end, direction)
        once, anew = fixed(end, direction), Decimal(str(end))
        assert once is not None
        for got in (ending(value, end, direction), ending(value, anew, direction), once(value)):
            assert (got, str(got)) == (full, str(full))


def test_an_ending_the_rule_fixes_wrongly_runs_as_written() -> None:
    fixed = FUNCTIONS["ending"].fixed
    assert fixed is not None
    assert [fixed(Decimal("-1")), fixed(Decimal("0.90"), "sideways"), fixed("0.90"), fixed(None)] == [
        None
    ] * 4
    assert fixed(Decimal("0.90"), "up") is not None and fixed(5, "down") is not None


MINIMAL = """\
marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
tables:
  colors: {Azul: Blue}
categories:
  Apparel/Shoes: MLB1276
listing:
  title: =product.name
  attributes:
    COLOR: =sku.specs.Cor | lookup(colors)
    BRAND: =product.brand
price:
  value: price.selling
stock:
  safety: 2
  share: 50%
  max: 7
"""


def _evaluator(tmp_path: Path, text: str = MINIMAL) -> SkuEvaluator:
    path = tmp_path / "rules.yaml"
    path.write_text(text, encoding="utf-8")
    return SkuEvaluator(engine.compile_rules(path), connector_class("mercadolibre")({}))


def _sku(**changes: object) -> CatalogRecord:
    return CatalogRecord.parse(record("2000001", **changes))


def test_constant_stock_figures_are_numbers_once(tmp_path: Path) -> None:
    evaluator = _evaluator(tmp_path)
    rule = evaluator.compiled.stock
    assert tuple(map(_folded, (rule.max, rule.safety, rule.share))) == (
        Decimal(7),
        Decimal(2),
        Decimal("0.5"),
    )
    assert _folded(None) is None
    stock = {"warehouses": [{"warehouse": "main", "quantity": 30}]}
    outcome = evaluator.evaluate(_sku(stock__warehouses=stock["warehouses"]))
    assert outcome.listing is not None and outcome.listing.quantity == 7  # min(7, (30 - 2) * 50%)
    few = {"warehouses": [{"warehouse": "main", "quantity": 8}]}
    outcome = evaluator.evaluate(_sku(stock__warehouses=few["warehouses"]))
    assert outcome.listing is not None and outcome.listing.quantity == 3  # (8 - 2) * 50%


def test_a_failing_attribute_is_its_reason_and_the_others_are_built(tmp_path: Path) -> None:
    evaluator = _evaluator(tmp_path)
    listed = evaluator.evaluate(_sku())
    assert listed.listing is not None
    assert listed.listing.attributes == {"COLOR": "Blue", "BRAND": "Acme"}
    colourless = evaluator.evaluate(_sku(sku__specs={}))
    assert colourless.listing is not None
    assert colourless.listing.attributes == {"BRAND": "Acme"}  # a null leaves its key out
    failed = evaluator.evaluate(_sku(sku__specs={"Cor": "Roxo"}))
    assert failed.status == "invalid"
    reason = failed.reasons[0]
    assert (reason.code, reason.rule) == ("TP902", "listing.attributes.COLOR")
    assert reason.message.startswith("no entry for 'Roxo' in table 'colors'")
    assert reason.span is not None and reason.span.line == 12


HOSTILE = """\
marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
select:
  - "product.name != '\\"); import os; os._exit(3) #{x}'"
categories:
  Apparel/Shoes: MLB1276
listing:
  title: =product.name
  "a\\"b{x}\\n": =product.brand
  attributes:
    "'; raise SystemExit #": =product.brand
price:
  value: price.selling
stock:
  safety: 0
require:
  - check: len(listing.title) > 50
    message: "{{ '\\"\\"\\"' }} too short"
"""


def test_rule_file_text_is_bound_into_the_unrolled_steps_never_written_into_them(tmp_path: Path) -> None:
    # The steps of a rule file are Python source: keys, conditions and messages with quotes,
    # braces and newlines must arrive as the values they are, not as code.
    evaluator = _evaluator(tmp_path, HOSTILE)
    outcome = evaluator.evaluate(_sku())
    assert outcome.status == "invalid"
    assert [(r.code, r.message) for r in outcome.reasons] == [("TP922", '""" too short')]
    assert evaluator.compiled.listing.keys() >= {'a"b{x}\n'}
    assert set(outcome.provenance) == {"category", "price"}  # not explained: no listing.* rules
    explained = evaluator.evaluate(_sku(), explain=True)
    assert 'listing.a"b{x}\n' in explained.provenance
    passing = evaluator.evaluate(_sku(product__name="Tênis Runner de corrida, cano médio, tamanho grande"))
    assert passing.listing is not None
    assert passing.listing.fields['a"b{x}\n'] == "Acme"
    assert passing.listing.attributes == {"'; raise SystemExit #": "Acme"}
    selected_out = evaluator.evaluate(_sku(product__name='"); import os; os._exit(3) #{x}'))
    assert selected_out.status == "excluded"
    assert selected_out.reasons[0].message.startswith("not selected: product.name != '\"); import os")


PYTHON_ERRORS = """\
marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
categories:
  Apparel/Shoes: MLB1276
listing:
  title: =product.name
  description: =strip_html(product.description)
price:
  value: price.selling
"""


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (decimal.Overflow("huge"), "a number went out of range (Overflow)"),
        (TypeError("unsupported operand"), "values of the wrong type: unsupported operand"),
        (RecursionError(), "the expression nests too deeply to run"),
    ],
)
def test_an_expression_run_in_place_fails_as_its_function_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    # The unrolled steps run a field's lowered source in place, not its function: a Python error
    # inside must still be the SKU's reason, worded and placed as the function words and places it.
    def broken(*args: object, **kwargs: object) -> str:
        raise error

    monkeypatch.setitem(FUNCTIONS, "strip_html", dataclasses.replace(FUNCTIONS["strip_html"], impl=broken))
    evaluator = _evaluator(tmp_path, PYTHON_ERRORS)
    outcome = evaluator.evaluate(_sku())
    assert outcome.status == "invalid"
    [reason] = outcome.reasons
    field = evaluator.compiled.listing["description"].compiled
    assert isinstance(field, CompiledExpression)
    with pytest.raises(EvaluationError) as called:
        field.fn(Context(*(getattr(_sku(), part) for part in ("product", "sku", "price", "stock"))))
    assert (reason.code, reason.message, reason.span) == (called.value.code, message, called.value.span)
    assert reason.rule == "listing.description" and reason.span is not None and reason.span.line == 9


TEMPLATED = PYTHON_ERRORS.replace(
    "  description: =strip_html(product.description)\n",
    '  description: "Por {{ product.brand }}: {{ strip_html(product.description) }}"\n',
)


@pytest.mark.parametrize(
    "error",
    [
        decimal.Overflow("huge"),
        TypeError("unsupported operand"),
        RecursionError(),
        ValueError("not a value"),  # the template's own failure (TP904), not the expression's
        EvaluationError("refused here", None),  # no span of its own: the template's
        LimitExceeded("too long", None),
    ],
)
def test_a_template_run_in_place_fails_as_calling_it_does(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, error: Exception
) -> None:
    # A template that only prints values runs as its translated source in place: its failures must
    # be the reasons calling the template gives (CompiledTemplate.__call__), span and code included.
    def broken(*args: object, **kwargs: object) -> str:
        raise error

    monkeypatch.setitem(FUNCTIONS, "strip_html", dataclasses.replace(FUNCTIONS["strip_html"], impl=broken))
    evaluator = _evaluator(tmp_path, TEMPLATED)
    template = evaluator.compiled.listing["description"].compiled
    assert isinstance(template, CompiledTemplate) and template.translated is not None
    with pytest.raises(EvaluationError) as called:
        template(Context(*(getattr(_sku(), part) for part in ("product", "sku", "price", "stock"))))
    outcome = evaluator.evaluate(_sku())
    assert outcome.status == "invalid"
    [reason] = outcome.reasons
    expected = (called.value.code, called.value.message, called.value.span)
    assert (reason.code, reason.message, reason.span) == expected
    assert reason.rule == "listing.description" and reason.span is not None and reason.span.line == 9
    monkeypatch.undo()
    assert _evaluator(tmp_path, TEMPLATED).evaluate(_sku()).reasons == []  # nothing else fails


TOO_LARGE = "is too large to round to the currency"
ROUNDED = MINIMAL.replace(
    "  value: price.selling\n", "  value: price.selling\n  round: ROUND\n  sale: SALE\n"
)


@pytest.mark.parametrize(
    ("round_", "sale", "changes", "expected"),
    [
        # The price and the sale price each rounded by the rule, then to the cents.
        ("ending(0.90)", "price.promotional", {"price__selling": "99.40", "price__promotional": "80.01"},
         ("listed", Decimal("99.90"), Decimal("80.90"), [])),
        ("ending(9.99, 'down')", "price.promotional", {"price__selling": "125", "price__promotional": "118"},
         ("listed", Decimal("119.99"), Decimal("109.99"), [])),
        # A round that gives null is the price step's reason, and the SKU has neither price.
        # (an ending read from the record runs as written, not fixed when compiled)
        ("ending(price.cost)", "price.promotional", {"price__cost": None},
         ("invalid", None, None, [("TP923", "price.round gave null", "price")])),
        ("ending(price.cost)", "price.promotional", {"price__cost": "0.5", "price__promotional": "80.01"},
         ("listed", Decimal("99.50"), Decimal("80.50"), [])),
        # Past what the currency's places can hold: TP905, not a crash.
        ("ending(0.90)", "null", {"price__selling": "99.40", "MARKUP": "1" + "0" * 30},
         ("invalid", None, None, [("TP905", f"the price 994{'0' * 29}.90 {TOO_LARGE}", "price")])),
    ],
)  # fmt: skip
def test_the_rounding_written_in_place_gives_the_prices_and_the_reasons_it_gave(
    tmp_path: Path, round_: str, sale: str, changes: dict[str, object], expected: tuple[object, ...]
) -> None:
    changes = dict(changes)
    markup = str(changes.pop("MARKUP", "1"))
    text = ROUNDED.replace("ROUND", round_).replace("SALE", sale)
    evaluator = _evaluator(tmp_path, text.replace("value: price.selling", f"value: price.selling * {markup}"))
    outcome = evaluator.evaluate(_sku(**changes))
    listing = outcome.listing
    price, sale_price = (None, None) if listing is None else (listing.price, listing.sale_price)
    reasons = [(r.code, r.message, r.rule) for r in outcome.reasons]
    assert (outcome.status, price, sale_price, reasons) == expected
    if price is not None:
        assert (str(price), str(sale_price)) == (str(expected[1]), str(expected[2]))


CHECKED = MINIMAL + (
    "require:\n"
    '  - check: listing.price >= 100 and listing.category == "MLB1276"\n'
    '    message: "{{ listing.category }} at {{ listing.price }}: {{ listing.quantity }} left"\n'
    '  - check: contains(listing.title, "Runner") or listing.attributes.BRAND == "Acme"\n'
    "  - check: WHOLE\n"
    "    message: MESSAGE\n"
)
SAID = '"{{ listing.title }} at {{ listing.sale_price }}"'
READ = ["price", "category", "quantity", "title", "attributes", "sale_price"]


@pytest.mark.parametrize(
    ("whole", "message", "read"),
    [
        ("len(listing.attributes) > 1", SAID, READ),
        ("len(listing) > 4", SAID, None),  # the listing as a table: every field in it
        ('contains(listing, "gtin")', SAID, None),  # the listing as a table, its keys
        # A message jinja2 renders gets the listing whole.
        ("len(listing.attributes) > 1", '"{% if listing.sale_price %}on sale{% endif %}"', None),
    ],
)
def test_the_checks_see_the_listing_they_saw_with_every_field_copied(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, whole: str, message: str, read: list[str] | None
) -> None:
    # The require checks get only the fields they read by name: the same outcomes as with a copy of
    # the whole listing, which a check reading it otherwise still gets.
    text = CHECKED.replace("WHOLE", whole).replace("MESSAGE", message)
    evaluator = _evaluator(tmp_path, text)
    assert _listing_read(evaluator.compiled.require) == read
    records = [
        _sku(),
        _sku(price__selling="99.99"),
        _sku(product__name="Tênis", product__brand="Other", sku__specs={"Cor": "Azul", "Tamanho": "M"}),
        _sku(product__category_path=["Apparel", "Other"]),
        _sku(price__promotional="150.00", price__selling="160.00"),
        _sku(price__promotional="150.00", price__selling="160.00", sku__specs={}),
    ]
    trimmed = [evaluator.evaluate(record, explain=True) for record in records]
    monkeypatch.setattr(unrolled_module, "_listing_read", lambda rules: None)
    copied = [_evaluator(tmp_path, text).evaluate(record, explain=True) for record in records]
    assert [(o.status, o.reasons, o.notes) for o in trimmed] == [
        (o.status, o.reasons, o.notes) for o in copied
    ]
    assert {o.status for o in trimmed} == {"listed", "invalid"}


def test_a_category_path_asked_again_is_resolved_for_this_sku() -> None:
    """The choices of a path are kept; which one holds is still decided for each SKU."""
    categories = engine.compile_rules(Path(__file__).parent.parent / "rules/mercadolibre.yaml").categories

    def resolved(path: list[str], gender: str) -> str | None:
        sku = _sku(product__category_path=path, product__specs={"Gênero": gender})
        choice = categories.resolve(path, Context(sku.product, sku.sku, sku.price, sku.stock))
        return None if choice is None else choice.category

    asks = [
        (["Apparel", "Shoes", "Boots"], "Feminino", "MLB186563"),
        (["Apparel", "Shoes", "Boots"], "Masculino", "MLB186566"),  # the same path, its other choice
        (["Apparel", "Shoes", "Boots"], "Feminino", "MLB186563"),
        (["Apparel", "Shoes", "Sandals", "Kids"], "Feminino", "MLB1276"),  # a shorter path's choice
        (["Pets", "Toys"], "Feminino", None),
        (["Pets", "Toys"], "Feminino", None),
    ]
    assert [resolved(path, gender) for path, gender, _ in asks] == [category for _, _, category in asks]


_KEYS = st.one_of(
    st.none(),
    st.sampled_from(["Azul", "Preto", "Roxo", "", "azul"]),
    st.integers(-3, 3),
    st.just({"Azul": "x"}),
    st.just(["Azul"]),
)


def _outcome(run: Callable[[], object]) -> object:
    try:
        return ("value", run())
    except EvaluationError as error:
        return ("error", error.code, error.message)


@given(_KEYS, st.sampled_from(["", "Tênis Runner", "x" * 70]), st.one_of(st.none(), st.just("Acme")))
def test_lookup_and_len_written_out_give_what_the_functions_give(
    key: object, title: str, brand: object
) -> None:
    # The lowering writes a lookup of text found in a named table, and len of proven text or
    # lists, without a call: every other case still goes to the function, with the same result.
    listing = {"title": title, "attributes": {"COLOR": key, "BRAND": brand}}
    ctx = Context(listing=listing)
    table = TABLES["colors"]
    lookup, length = (
        functools.partial(FUNCTIONS["lookup"].guarded, table_name="colors"),
        FUNCTIONS["len"].impl,
    )
    cases = [
        ("lookup(colors, listing.attributes.COLOR)", lambda: lookup(table, key)),
        ('lookup(colors, listing.attributes.COLOR, "none")', lambda: lookup(table, key, "none")),
        ("listing.attributes.COLOR | lookup(colors)", lambda: lookup(table, key)),
        ("lookup(colors, listing.attributes.COLOR, listing.title)", lambda: lookup(table, key, title)),
        ("len(listing.title)", lambda: length(title)),
        ("len(listing.attributes.BRAND)", lambda: length(brand)),
    ]
    for text, expected in cases:
        compiled, sink = compile_in_scope(text)
        assert compiled is not None, sink.diagnostics
        assert _outcome(functools.partial(compiled.fn, ctx)) == _outcome(expected), text
