"""What compiled rules compute, given a catalog record: the values a marketplace would get."""

from __future__ import annotations

from collections.abc import Callable
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

import engine
from engine import EvaluationError, RuleError
from engine.rules._compiled import CompiledRules
from tests.conftest import MINIMAL_RULES, context_for, sample_record


def compiled(rule_file: Callable[..., Path], extra: str, base: str = MINIMAL_RULES) -> CompiledRules:
    return engine.compile_rules(rule_file(extra, base))


def listing_value(rule_file: Callable[..., Path], value: str, **record: Any) -> Any:
    rules = compiled(rule_file, f"listing:\n  field: {value}\n")
    return rules.listing["field"].evaluate(context_for(sample_record(**record)))


@pytest.mark.parametrize(
    ("expression", "expected"),
    [
        ("=price.selling * (1 + 15% + 20%)", Decimal("134.1900")),
        ("=price.selling - price.cost", Decimal("49.40")),
        ("=price.promotional ?? price.selling", Decimal("89.90")),
        ("=price.base ?? price.selling", Decimal("99.40")),
        ("=price.base * 2", None),  # null propagates through arithmetic
        ("=sku.specs.Cor", "Azul"),
        ("=sku.specs.Material", None),  # a spec the SKU lacks is null, not an error
        ('=sku.specs["Tamanho"]', "M"),
        ("=lookup(colors, sku.specs.Cor)", "Blue"),
        ("=sku.specs.Cor | lookup(colors)", "Blue"),  # the pipe passes the key; the table moves first
        ('=lookup(colors, "Verde", "Other")', "Other"),
        ("=sku.specs.Cor | lower | upper", "AZUL"),
        ('=if price.selling > 100 then "premium" else "standard"', "standard"),
        ('=sku.specs.Cor in ["Azul", "Verde"]', True),
        ("=sku.specs.Cor not in colors", False),
        ('="Azul" in colors', True),
        ("=stock.available", 24),
        ("=len(product.name)", 12),
        ('=product.brand + " " + product.name', "Acme Tênis Runner"),
        ("=not sku.active", False),
        ("=-price.selling", Decimal("-99.40")),
        ("=product.category", "Apparel/Shoes/Sneakers"),
        ("=price.selling / 4", Decimal("24.85")),
        ("plain text", "plain text"),
        ("42", Decimal("42")),
        ("true", True),
    ],
)
def test_expression_values(rule_file: Callable[..., Path], expression: str, expected: Any) -> None:
    quoted = repr(expression) if "'" not in expression else f'"{expression}"'
    value = listing_value(rule_file, expression if expression in ("42", "true") else quoted)
    assert value == expected
    assert not isinstance(value, float)


def test_constants_are_folded_once(rule_file: Callable[..., Path]) -> None:
    rules = compiled(
        rule_file, "", MINIMAL_RULES.replace("value: price.selling", "value: price.selling * (1 + 15% + 20%)")
    )
    code = rules.price.value.fn.__code__
    # the folded constant 1.35 is one name in the namespace; no addition happens per SKU
    assert "_add" not in code.co_names
    assert Decimal("1.35") in rules.price.value.fn.__globals__.values()


def test_lookup_miss_is_an_evaluation_error_with_table_key_and_location(
    rule_file: Callable[..., Path],
) -> None:
    rules = compiled(rule_file, "listing:\n  field: =lookup(colors, sku.specs.Cor)\n")
    record = sample_record(sku={"specs": {"Cor": "Verde"}})
    with pytest.raises(EvaluationError) as caught:
        rules.listing["field"].evaluate(context_for(record))
    assert "Verde" in caught.value.message and "colors" in caught.value.message
    assert caught.value.span is not None
    assert (caught.value.span.line, caught.value.span.column) == (11, 11)


def test_division_by_zero_is_an_evaluation_error(rule_file: Callable[..., Path]) -> None:
    rules = compiled(rule_file, "listing:\n  field: =price.selling / (price.cost - 50)\n")
    with pytest.raises(EvaluationError, match="division by zero"):
        rules.listing["field"].evaluate(context_for(sample_record()))


def test_reject_gives_the_rule_message(rule_file: Callable[..., Path]) -> None:
    rules = compiled(
        rule_file, 'listing:\n  field: "=if sku.active then reject(\\"not for sale\\") else 1"\n'
    )
    with pytest.raises(engine.Rejected, match="not for sale"):
        rules.listing["field"].evaluate(context_for(sample_record()))


@pytest.mark.parametrize(
    ("categories", "path", "expected"),
    [
        ("  Apparel/Shoes/Sneakers: A\n  Apparel/Shoes: B\n", ["Apparel", "Shoes", "Sneakers"], "A"),
        ("  Apparel/Shoes/Sneakers: A\n  Apparel/Shoes: B\n", ["Apparel", "Shoes", "Boots"], "B"),
        ("  Apparel/Shoes: B\n", ["Apparel", "Hats"], None),
        (
            '  Apparel:\n    - when: product.specs.Gênero == "Feminino"\n      category: F\n'
            "    - category: U\n",
            ["Apparel", "Shoes"],
            "F",
        ),
        (
            '  Apparel:\n    - when: product.specs.Gênero == "Masculino"\n      category: M\n'
            "    - category: U\n",
            ["Apparel", "Shoes"],
            "U",
        ),
        # when no condition holds at the specific path, the less specific path is tried
        ("  Apparel/Shoes:\n    - when: false\n      category: X\n  Apparel: Y\n", ["Apparel", "Shoes"], "Y"),
    ],
)
def test_most_specific_category_wins(
    rule_file: Callable[..., Path], categories: str, path: list[str], expected: str | None
) -> None:
    rules = compiled(rule_file, "categories:\n" + categories)
    record = sample_record(product={"category_path": path})
    choice = rules.categories.resolve(record.product.category_path, context_for(record))
    assert (choice.category if choice else None) == expected


@pytest.mark.parametrize(
    ("round_rule", "selling", "expected"),
    [
        ("ending(0.90)", "99.40", "134.90"),
        ("ending(0.99)", "100.00", "135.99"),
        ("round(2)", "99.40", "134.19"),
        ("round(0)", "99.40", "134"),
        ("round_to(0.05)", "99.40", "134.20"),
        ("ceil", "99.40", "135"),
        ("floor(1)", "99.40", "134.1"),
        ("2", "99.41", "134.20"),  # a bare number means round(n), half-up: 134.2035 -> 134.20
    ],
)
def test_price_round_applies_to_the_value(
    rule_file: Callable[..., Path], round_rule: str, selling: str, expected: str
) -> None:
    base = MINIMAL_RULES.replace(
        "value: price.selling", f"value: price.selling * 1.35\n  round: {round_rule}"
    )
    rules = compiled(rule_file, "", base)
    ctx = context_for(sample_record(price={"selling": selling}))
    ctx.value = rules.price.value(ctx)
    assert rules.price.round is not None
    assert str(rules.price.round(ctx)) == expected


def test_compile_rules_raises_rule_error_with_every_diagnostic(rule_file: Callable[..., Path]) -> None:
    path = rule_file("select:\n  - product.brnd == 1\n  - sku.activ\n")
    with pytest.raises(RuleError) as caught:
        engine.compile_rules(path)
    assert [(d.code, d.span.line) for d in caught.value.diagnostics] == [("TP302", 11), ("TP302", 12)]


def test_listing_fields_are_typed_for_later_sections(rule_file: Callable[..., Path]) -> None:
    result = engine.check_rules(
        rule_file("listing:\n  title: =product.name\nrequire:\n  - check: listing.title * 2 > 1\n")
    )
    assert [(d.code, d.span.line, d.span.column) for d in result.errors] == [("TP306", 13, 12)]


def test_include_tables_are_available(tmp_path: Path, rule_file: Callable[..., Path]) -> None:
    (tmp_path / "shared").mkdir()
    (tmp_path / "shared" / "t.yaml").write_text("tables:\n  sizes: {M: Medium}\n", encoding="utf-8")
    rules = compiled(
        rule_file, "include: [shared/t.yaml]\nlisting:\n  size: =lookup(sizes, sku.specs.Tamanho)\n"
    )
    assert rules.listing["size"].evaluate(context_for(sample_record())) == "Medium"
