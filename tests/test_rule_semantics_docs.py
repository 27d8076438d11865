"""What docs/rules.md says the engine does, each statement run on a small rule file.

One test per statement of the "What the engine decides for you" section and of the functions
added with it (``text`` of money, ``available_in``, ``strip_html``): given a record, expect the
outcome the page promises.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.connectors import connector_class
from engine.model import Outcome
from engine.rules._functions import FUNCTIONS
from engine.sync._evaluate import SkuEvaluator
from tests.conftest import MINIMAL_RULES, sample_record

RULES = MINIMAL_RULES.replace("price:\n  value: price.selling\n", "")
CATEGORIES = """categories:
  Apparel: MLB1
  Apparel/Shoes:
    - when: product.specs.Gênero == "Masculino"
      category: MLB2
"""


def evaluate(rule_file: Callable[..., Path], extra: str, **record: Any) -> Outcome:
    compiled = engine.compile_rules(rule_file(extra, RULES))
    evaluator = SkuEvaluator(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    return evaluator.evaluate(sample_record(**record), explain=True)


def listed(rule_file: Callable[..., Path], extra: str, **record: Any) -> engine.Listing:
    outcome = evaluate(rule_file, extra, **record)
    assert outcome.status == "listed" and outcome.listing is not None, outcome.reasons
    return outcome.listing


LISTING = (
    'listing:\n  title: =product.name\n  attributes:\n    COLOR: =sku.specs.Cor | lookup(colors, "none")\n'
)
PRICE = "price:\n  value: price.selling\n"


# --- lookup of null --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("cor", "expected"),
    [("Azul", "Blue"), (None, "none")],  # a SKU without the spec: null key, the default
)
def test_a_null_key_gives_the_lookups_default(
    rule_file: Callable[..., Path], cor: str | None, expected: str
) -> None:
    specs = {"Tamanho": "M"} if cor is None else {"Cor": cor}
    listing = listed(rule_file, CATEGORIES + LISTING + PRICE, sku={"specs": specs})

    assert listing.fields["attributes"]["COLOR"] == expected


def test_a_null_key_without_a_default_gives_null_not_an_error(rule_file: Callable[..., Path]) -> None:
    extra = CATEGORIES + LISTING.replace(' | lookup(colors, "none")', " | lookup(colors)") + PRICE
    listing = listed(rule_file, extra, sku={"specs": {}})

    assert "COLOR" not in listing.fields["attributes"]  # null attributes are left out


# --- categories: a `when` list that matches nothing ---------------------------------------------


@pytest.mark.parametrize(
    ("gender", "category"),
    [("Masculino", "MLB2"), ("Feminino", "MLB1"), (None, "MLB1")],  # no choice holds: the parent path
)
def test_a_when_list_that_matches_nothing_falls_back_to_the_parent_path(
    rule_file: Callable[..., Path], gender: str | None, category: str
) -> None:
    specs = {} if gender is None else {"Gênero": gender}
    product = {"category_path": ["Apparel", "Shoes", "Sneakers"], "specs": specs}

    assert listed(rule_file, CATEGORIES + LISTING + PRICE, product=product).category == category


def test_a_when_list_with_no_parent_mapping_leaves_the_sku_unmapped(rule_file: Callable[..., Path]) -> None:
    extra = CATEGORIES.replace("  Apparel: MLB1\n", "") + LISTING + PRICE
    outcome = evaluate(rule_file, extra, product={"specs": {"Gênero": "Feminino"}})

    assert [r.code for r in outcome.reasons] == ["TP921"]


# --- a sale price not below the price ---------------------------------------------------------


def test_a_sale_price_not_below_the_price_is_dropped_and_noted(rule_file: Callable[..., Path]) -> None:
    outcome = evaluate(rule_file, CATEGORIES + LISTING + PRICE + "  sale: price.list\n")  # 120.00 > 99.40

    assert outcome.status == "listed" and outcome.listing is not None
    assert outcome.listing.sale_price is None
    assert [n.message for n in outcome.notes] == [
        "sale price 120.00 is not below the price 99.40: no sale price is sent"
    ]


# --- require and the marketplace's checks run on a complete listing only ------------------------


def test_require_runs_only_when_the_listing_was_built(rule_file: Callable[..., Path]) -> None:
    require = "require:\n  - check: len(listing.title) > 100\n    message: title too short\n"
    unmapped = evaluate(rule_file, LISTING + PRICE + require)  # no categories: TP921 first
    mapped = evaluate(rule_file, CATEGORIES + LISTING + PRICE + require)

    assert [r.code for r in unmapped.reasons] == ["TP921"]
    assert [(r.code, r.message) for r in mapped.reasons] == [("TP922", "title too short")]


def test_every_require_check_and_marketplace_check_is_reported_together(
    rule_file: Callable[..., Path],
) -> None:
    require = "require:\n  - check: false\n    message: first\n  - check: false\n    message: second\n"
    outcome = evaluate(rule_file, CATEGORIES + LISTING + PRICE + require, sku={"images": []})

    assert [r.message for r in outcome.reasons][:2] == ["first", "second"]
    assert any(r.code == "TP912" for r in outcome.reasons)  # Mercado Libre: no picture


# --- text() of money ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("expression", "currency", "expected"),
    [
        ("text(price.selling)", "BRL", "216.90"),  # money keeps its cents
        ("price.selling | text", "BRL", "216.90"),
        ("text(price.selling)", "JPY", "216.9"),  # no digits are ever rounded away
        ("text(price.list ?? price.selling)", "BRL", "300.00"),
        ("text(price.selling * 1)", "BRL", "216.9"),  # a computed number is written as it is
        ("text(round(price.selling * 2, 2))", "BRL", "433.80"),
        ("text(stock.available)", "BRL", "24"),
    ],
)
def test_text_of_money_keeps_the_currencys_minor_units(
    rule_file: Callable[..., Path], expression: str, currency: str, expected: str
) -> None:
    extra = CATEGORIES + LISTING + f"    NOTE: ={expression}\n" + PRICE
    path = rule_file(extra, RULES.replace("currency: BRL", f"currency: {currency}"))
    compiled = engine.compile_rules(path)
    evaluator = SkuEvaluator(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    outcome = evaluator.evaluate(sample_record(price={"selling": "216.9", "list": "300"}))

    assert outcome.listing is not None, outcome.reasons
    assert outcome.listing.fields["attributes"]["NOTE"] == expected


# --- available_in ------------------------------------------------------------------------------

WAREHOUSES = {
    "warehouses": [
        {"warehouse": "main", "quantity": 0},
        {"warehouse": "rj_cd", "quantity": 50},
    ]
}


@pytest.mark.parametrize(
    ("condition", "status"),
    [
        ("stock.available > 0", "listed"),  # every warehouse: rj_cd's 50
        ("available_in(stock, ['main', 'sp_cd']) > 0", "excluded"),  # the stock step's warehouses
        ("(stock | available_in(['rj_cd'])) == 50", "listed"),
    ],
)
def test_available_in_counts_the_warehouses_it_is_given(
    rule_file: Callable[..., Path], condition: str, status: str
) -> None:
    extra = f"select:\n  - {condition}\n" + CATEGORIES + LISTING + PRICE
    extra += "stock:\n  warehouses: [main, sp_cd]\n"

    assert evaluate(rule_file, extra, stock=WAREHOUSES).status == status


# --- strip_html --------------------------------------------------------------------------------

strip_html = FUNCTIONS["strip_html"].impl


@pytest.mark.parametrize(
    ("html", "text"),
    [
        ("<p>Leve &amp; macio</p><p>Algodão</p>", "Leve & macio\nAlgodão"),
        ("<ul><li>Um</li><li>Dois</li></ul>", "Um\nDois"),
        ("al<b>go</b>dão<br/>2&nbsp;cores", "algodão\n2 cores"),
        ("<table><tr><td>a</td><td>b</td></tr></table>", "a b"),
        ("<SCRIPT>alert(1)</script>ok<style>p {}</style>", "ok"),
        ("<!-- a > b -->texto", "texto"),
        ("3 < 5 e 5 > 3", "3 < 5 e 5 > 3"),  # a '<' that opens no tag stays
        ("&lt;b&gt; &eacute; &#233; &#x41;", "<b> é é A"),  # decoded once, never read as a tag
        ("texto <a href='x'", "texto <a href='x'"),  # an unclosed tag is text
        ("visível<!-- sem fim", "visível"),
        ("", ""),
    ],
)
def test_strip_html(html: str, text: str) -> None:
    assert strip_html(html) == text


@pytest.mark.parametrize("unit", ["<a ", "<!--", "<script>", "<b>x</b>", "<" * 3, "&amp;", "< a"])
def test_strip_html_is_linear_on_hostile_input(unit: str) -> None:
    def seconds(characters: int) -> float:
        best = float("inf")
        for attempt in range(3):  # the best of three: a loaded machine only ever adds time
            text = (
                unit * (characters // len(unit)) + f" {attempt}"
            )  # a new text: strip_html keeps its last few
            start = time.perf_counter()
            strip_html(text)
            best = min(best, time.perf_counter() - start)
        return best

    small, large = seconds(50_000), seconds(400_000)
    assert large < 16 * small + 0.05  # 8 times the input: quadratic would take 64 times as long
