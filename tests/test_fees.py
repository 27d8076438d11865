"""The ``fees:`` section: its mistakes reported at their line and column, its arithmetic to the cent,
and `tradepost explain`'s commission and margin per SKU, worked out by hand."""

from __future__ import annotations

import json
from decimal import Decimal
from pathlib import Path

import pytest
from click.testing import CliRunner

import engine
from cli.main import cli
from tests.conftest import ROOT

HEAD = """marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
price:
  value: price.selling
"""


def _rules(tmp_path: Path, fees: str) -> Path:
    path = tmp_path / "mercadolibre.yaml"
    path.write_text(HEAD + fees, encoding="utf-8")
    return path


def test_every_mistake_of_a_fees_section_is_reported_at_its_line_and_column(tmp_path: Path) -> None:
    path = _rules(
        tmp_path,
        """fees:
  commission: 160%
  fixed: price.selling * 1%
  categories:
    Electronics: {commision: 11%}
    Toys: {fixed: -1}
    Home//Kitchen: {commission: 10%}
""",
    )
    found = [(d.code, d.span.line, d.span.column, d.message) for d in engine.check_rules(path).errors]
    assert found == [
        ("TP321", 8, 15, "fees.commission is 160%; it must be between 0% and 100%"),
        ("TP324", 9, 10, "fees.fixed must be a constant such as 5.00"),
        ("TP111", 11, 19, "unknown key 'commision' in fees.categories.Electronics"),
        ("TP321", 12, 19, "fees.categories.Toys.fixed is -1; it must be at least 0"),
        ("TP341", 13, 5, "category path 'Home//Kitchen' has an empty part"),
    ]
    misspelt = next(d for d in engine.check_rules(path).errors if d.code == "TP111")
    assert misspelt.hint == "did you mean 'commission'?"


def test_a_fees_section_needs_a_commission(tmp_path: Path) -> None:
    path = _rules(tmp_path, "fees:\n  fixed: 5.00\n")
    (missing,) = engine.check_rules(path).errors
    assert (missing.code, missing.span.line, missing.message) == (
        "TP110",
        7,
        "missing required key 'commission' in fees",
    )


@pytest.mark.parametrize(
    ("path", "price", "quantity", "expected"),
    [
        ((), "99.90", 2, "41.97"),  # 99.90 * 2 * 16% = 31.968, + 2 * 5.00 = 41.968
        (("Electronics", "Phones"), "99.90", 1, "15.99"),  # 11%: 10.989 + 5.00 (inherited)
        (("Electronics",), "1.50", 1, "5.17"),  # 0.165 + 5.00 = 5.165: half-up (half-even gives 5.16)
        (("Apparel", "Shoes", "Boots"), "3.90", 1, "0.62"),  # 16% of 3.90 = 0.624, no fixed fee
        (("Apparel",), "10.00", 1, "6.60"),  # not Apparel/Shoes: the default
    ],
)
def test_the_commission_is_the_most_specific_category_s_rounded_half_up_per_line(
    tmp_path: Path, path: tuple[str, ...], price: str, quantity: int, expected: str
) -> None:
    rules = _rules(
        tmp_path,
        """fees:
  commission: 16%
  fixed: 5.00
  categories:
    Electronics: {commission: 11%}
    Apparel/Shoes: {fixed: 0}
""",
    )
    fees = engine.compile_rules(rules).fees
    assert fees is not None
    assert fees.commission(Decimal(price), quantity, path) == Decimal(expected)


def test_every_bundled_rule_file_declares_its_fees() -> None:
    for path in sorted((ROOT / "rules").glob("*.yaml")):
        if path.name.endswith(".test.yaml"):
            continue
        assert engine.compile_rules(path).fees is not None, path


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """Two example records: a blender on sale (Electronics/Appliances), a sneaker with no cost price."""
    records = {
        json.loads(line)["sku"]["id"]: json.loads(line)
        for line in (ROOT / "examples" / "catalog.jsonl").read_text(encoding="utf-8").splitlines()
    }
    blender, sneaker = records[2000061], records[2000001]
    sneaker["price"]["cost"] = None
    catalog = tmp_path / "catalog.jsonl"
    catalog.write_text(json.dumps(blender) + "\n" + json.dumps(sneaker) + "\n", encoding="utf-8")
    path = tmp_path / "tradepost.yaml"
    path.write_text(
        f"""source: {{type: file, path: {catalog}}}
state: {tmp_path / "state.sqlite"}
marketplaces:
  mercadolibre: {{rules: {ROOT / "rules" / "mercadolibre.yaml"}}}
""",
        encoding="utf-8",
    )
    return path


def _explain(config: Path, sku: str, *args: str) -> str:
    result = CliRunner().invoke(cli, ["explain", sku, "-m", "mercadolibre", "-c", str(config), *args])
    assert result.exit_code == 0, result.output
    return result.output


def test_explain_shows_the_commission_and_the_margin_against_the_cost_price_to_the_cent(config: Path) -> None:
    # Mercado Libre's rules: sale = promotional 214.90 * 1.35 = 290.115, ending(0.90) -> 290.90;
    # Electronics/Appliances pays 14%: 290.90 * 14% = 40.726 -> 40.73; cost 145.70;
    # margin 290.90 - 40.73 - 145.70 = 104.47, 35.9% of the price.
    fees = json.loads(_explain(config, "2000061", "--format", "json"))["fees"]
    assert fees == {
        "price": "290.90",
        "commission_rate": "0.14",
        "fixed_fee": "0.00",
        "commission": "40.73",
        "rule": fees["rule"],
        "cost": "145.7",
        "margin": "104.47",
        "margin_percent": "35.9",
    }
    assert (
        fees["rule"].startswith("fees.categories.Electronics/Appliances (")
        and "mercadolibre.yaml:" in fees["rule"]
    )
    text = _explain(config, "2000061")
    assert "commission: 40.73 BRL (14% of 290.90; fees.categories.Electronics/Appliances (" in text
    assert (
        "margin: 104.47 BRL (35.9% of the price), price less commission less VTEX's cost price 145.7" in text
    )


def test_explain_says_why_there_is_no_margin_without_a_cost_price(config: Path) -> None:
    # sale = 381.99 * 1.35 = 515.6865 -> 515.90; Apparel pays the file's 15%: 77.385 -> 77.39
    text = _explain(config, "2000001")
    assert "commission: 77.39 BRL (15% of 515.90; fees (" in text
    assert "margin: not computed: the catalog record has no cost price (VTEX's costPrice)" in text
