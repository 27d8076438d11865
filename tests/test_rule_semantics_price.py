"""The price and stock steps: what they do with figures the checker could not prove numbers, how
they word a broken bound, and what becomes of a sale price that is no sale.

Given a rule file and the sample record, expect one outcome: never an exception other than the
SKU's own failure, a bound written with the digits that show it was broken, a dropped sale
price with a note that ``tradepost explain`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine
from engine.connectors import connector_class
from engine.model import Outcome
from engine.sync._evaluate import SkuEvaluator
from tests.conftest import MINIMAL_RULES, sample_record

RULES = MINIMAL_RULES.replace(
    "  colors: {Azul: Blue, Preto: Black}\n",
    '  colors: {Azul: Blue, Preto: Black}\n  mixed: {text: "cheap", number: 3, yes: true}\n',
).replace(
    "price:\n  value: price.selling\n", "categories:\n  Apparel: MLB1276\nlisting:\n  title: =product.name\n"
)


def evaluate(rule_file: Callable[..., Path], extra: str, **record: Any) -> Outcome:
    compiled = engine.compile_rules(rule_file(extra, RULES))
    evaluator = SkuEvaluator(compiled, connector_class(compiled.marketplace)(compiled.rules.options))
    return evaluator.evaluate(sample_record(**record), explain=True)


PRICE = "price:\n  value: price.selling\n"
FIGURES = [
    ("price:\n  value: lookup(mixed, 'text')\n", "must be a number, but gave 'cheap'"),
    (PRICE + "  min: lookup(mixed, 'yes')\n", "must be a number, but gave true/false"),
    (PRICE + "  max: lookup(mixed, 'text')\n", "must be a number, but gave 'cheap'"),
    (PRICE + "  sale: lookup(mixed, 'text')\n", "must be a number, but gave 'cheap'"),
    # round: is applied to the value: lookup(value, mixed, 'text'), the value missing from the table
    (PRICE + "  round: lookup(mixed, 'text')\n", "must be a number, but gave 'text'"),
    (PRICE + "stock:\n  safety: lookup(mixed, 'text')\n", "must be a number, but gave 'cheap'"),
    (PRICE + "stock:\n  share: lookup(mixed, 'yes')\n", "must be a number, but gave true/false"),
    (PRICE + "stock:\n  max: lookup(mixed, 'text')\n", "must be a number, but gave 'cheap'"),
]


@pytest.mark.parametrize(("extra", "message"), FIGURES)
def test_a_figure_that_is_not_a_number_makes_the_sku_invalid_not_the_run(
    rule_file: Callable[..., Path], extra: str, message: str
) -> None:
    outcome = evaluate(rule_file, extra)

    assert outcome.status == "invalid"
    assert [r.message for r in outcome.reasons] == [message]
    assert all(r.span is not None for r in outcome.reasons)


def test_a_figure_given_as_a_whole_number_from_a_table_is_used(rule_file: Callable[..., Path]) -> None:
    outcome = evaluate(rule_file, PRICE + "stock:\n  safety: lookup(mixed, 'number')\n")

    assert outcome.status == "listed" and outcome.listing is not None
    assert outcome.listing.quantity == 27 - 3 - 3  # main 20-3 reserved, sp_cd 7; safety 3


@pytest.mark.parametrize(
    ("bound", "expected"),
    [
        ("min: price.selling + 0.004", "price 84.99 is below the minimum 84.994"),
        ("min: price.selling + 0.005", "price 84.99 is below the minimum 84.995"),
        ("min: price.selling + 0.01", "price 84.99 is below the minimum 85.00"),
        ("min: price.selling + 0.019", "price 84.99 is below the minimum 85.00"),
        ("max: price.selling - 0.0001", "price 84.99 is above the maximum 84.9899"),
        ("min: price.selling + 1 / 3", "price 84.99 is below the minimum 85.32"),
    ],
)
def test_a_broken_bound_is_written_with_the_digits_that_show_it(
    rule_file: Callable[..., Path], bound: str, expected: str
) -> None:
    outcome = evaluate(rule_file, f"{PRICE}  {bound}\n", price={"selling": "84.99"})

    assert [r.message for r in outcome.reasons] == [expected]


def test_a_sale_price_not_below_the_price_is_dropped_with_a_note(rule_file: Callable[..., Path]) -> None:
    outcome = evaluate(rule_file, PRICE + "  sale: price.selling * 2\n")

    assert outcome.status == "listed" and outcome.listing is not None
    assert outcome.listing.sale_price is None
    assert [(n.code, n.message) for n in outcome.notes] == [
        ("TP926", "sale price 198.80 is not below the price 99.40: no sale price is sent")
    ]
    assert "sale_price" not in outcome.provenance


def test_a_sale_price_below_the_price_is_kept_without_a_note(rule_file: Callable[..., Path]) -> None:
    outcome = evaluate(rule_file, PRICE + "  sale: price.promotional\n")

    assert outcome.listing is not None and outcome.listing.sale_price == Decimal("89.90")
    assert outcome.notes == []
