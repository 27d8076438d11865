"""Rule tests (`rules/*.test.yaml`, `tradepost test`): the bundled ones pass, and failures are useful.

A failing case must show expected against actual, the case name and the rule (file:line) that
produced the actual value; a malformed `given` is a case error, not a traceback; a test file
whose rule file is broken prints the rule file's diagnostics. Every run exits 1 on any failure.
"""

from __future__ import annotations

import json
import re
import textwrap
from pathlib import Path

import pytest
from click.testing import CliRunner, Result

from cli.main import cli
from engine import RuleError
from engine.sync._ruletests import TestFileResult as FileResult
from engine.sync._ruletests import run_test_file
from tests.conftest import MINIMAL_RULES, ROOT

BUNDLED = ("mercadolibre", "amazon", "google", "facebook", "carrefour", "magalu", "dafiti", "netshoes")
ML_RULES = ROOT / "rules" / "mercadolibre.yaml"

# A record the Mercado Libre rules list: price ending(87.90 * 1.35 = 118.665, 0.90) = 118.90.
ML_DEFAULTS = """\
defaults:
  product: {id: "1", name: Camiseta Polo, brand: Aurora, category_path: [Apparel, Clothing, T-Shirts]}
  sku:
    id: "10"
    product_id: "1"
    ean: "7893478236483"
    active: true
    specs: {Cor: Rosa, Tamanho: M}
    images: [{url: "https://cdn.example.com/10.jpg"}]
  price: {selling: 87.90, cost: 37.91}
  stock: {warehouses: [{warehouse: main, quantity: 20}]}
"""


def _write_test_file(folder: Path, rules: Path | str, cases: str, name: str = "shop.test.yaml") -> Path:
    """A rule-test file testing ``rules``, with ML_DEFAULTS and the given ``cases:`` YAML (unindented)."""
    path = folder / name
    body = f"rules: {json.dumps(str(rules))}\n{ML_DEFAULTS}cases:\n{textwrap.indent(cases, '  ')}"
    path.write_text(body, encoding="utf-8")
    return path


def _line_of(path: Path, section: str, key: str) -> int:
    """1-based line of ``key:`` in the top-level ``section:`` of a YAML file, read from the text itself."""
    lines = path.read_text(encoding="utf-8").splitlines()
    start = lines.index(f"{section}:")
    for number, line in enumerate(lines[start + 1 :], start + 2):
        if not line.startswith(" "):
            break
        if line.strip().startswith(f"{key}:"):
            return number
    raise AssertionError(f"no {section}.{key} in {path}")


def _rule_ref(text: str) -> tuple[Path, int]:
    """``file:line`` as a mismatch names its rule; the file may be relative to the working directory."""
    file, _, line = text.rpartition(":")
    return Path(file).resolve(), int(line)


def _invoke(args: list[str]) -> Result:
    return CliRunner().invoke(cli, args)


def _failures(result: FileResult) -> list[str]:
    return [f"{c.name}: {c.error or c.mismatches}" for c in result.failed]


# -- the bundled rule tests ----------------------------------------------------------------------


@pytest.mark.parametrize("marketplace", BUNDLED)
def test_bundled_rule_tests_pass_through_the_api(marketplace: str) -> None:
    test_file = ROOT / "rules" / f"{marketplace}.test.yaml"
    result = run_test_file(test_file)
    assert Path(result.rules) == ROOT / "rules" / f"{marketplace}.yaml"  # same stem, no rules: key
    assert len(result.cases) >= 12
    assert _failures(result) == []
    statuses = {case.outcome.status for case in result.cases if case.outcome is not None}
    assert statuses == {"listed", "excluded", "invalid"}, "each file exercises every outcome"


def test_bundled_rule_tests_pass_through_the_cli(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    expected_total = sum(len(run_test_file(ROOT / "rules" / f"{m}.test.yaml").cases) for m in BUNDLED)
    result = _invoke(["test"])
    assert result.exit_code == 0, result.output
    for marketplace in BUNDLED:
        assert f"rules/{marketplace}.test.yaml (rules: rules/{marketplace}.yaml)" in result.output
    assert f"{expected_total} passed, 0 failed" in result.output
    assert "✗" not in result.output


# -- a failing test file -------------------------------------------------------------------------

FAILING_CASES = """\
- name: wrong price expectation
  given: {}
  expect:
    status: listed
    price: 134.90
- name: wrong reason expectation
  given: {price: {cost: 110.00}}
  expect:
    status: invalid
    reason: "price 118.90 is below the minimum 999.00"
- name: a passing case
  given: {}
  expect:
    price: 118.90
"""


def test_failing_expectations_exit_1_with_expected_actual_and_the_rule_line(tmp_path: Path) -> None:
    test_file = _write_test_file(tmp_path, ML_RULES, FAILING_CASES)
    price_line = _line_of(ML_RULES, "price", "value")
    result = _invoke(["test", str(test_file)])
    assert result.exit_code == 1, result.output
    out = result.output
    assert "✗ wrong price expectation" in out
    assert "price: expected 134.90" in out.replace('"', "")
    assert "actual 118.90" in out.replace('"', "")
    rules_named = re.findall(r"^\s+from\s+(\S+)$", out, flags=re.MULTILINE)
    assert [_rule_ref(ref) for ref in rules_named] == [(ML_RULES, price_line)]  # only the price mismatch
    assert "✗ wrong reason expectation" in out
    assert "price 118.90 is below the minimum 999.00" in out  # what was expected
    assert "price 118.90 is below the minimum 121.00" in out  # what the rules said: 110.00 * 1.10
    assert "✓ a passing case" in out
    assert "1 passed, 2 failed" in out
    assert f"(case at {test_file}:" in out


def test_failing_expectations_through_the_api_name_the_price_rule(tmp_path: Path) -> None:
    test_file = _write_test_file(tmp_path, ML_RULES, FAILING_CASES)
    result = run_test_file(test_file)
    by_name = {case.name: case for case in result.cases}
    (price,) = by_name["wrong price expectation"].mismatches
    assert (price.key, str(price.expected), str(price.actual)) == ("price", "134.90", "118.90")
    assert price.rule is not None
    assert _rule_ref(price.rule) == (ML_RULES, _line_of(ML_RULES, "price", "value"))
    (reason,) = by_name["wrong reason expectation"].mismatches
    assert reason.key == "reason"
    assert any("below the minimum 121.00" in message for message in reason.actual)
    assert by_name["a passing case"].passed


def test_failing_expectations_as_json(tmp_path: Path) -> None:
    test_file = _write_test_file(tmp_path, ML_RULES, FAILING_CASES)
    result = _invoke(["test", "--format", "json", str(test_file)])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert (document["passed"], document["failed"], document["broken_files"]) == (1, 2, 0)
    (price,) = document["files"][0]["cases"][0]["mismatches"]
    assert _rule_ref(price["rule"]) == (ML_RULES, _line_of(ML_RULES, "price", "value"))


# -- broken inputs -------------------------------------------------------------------------------


def test_a_malformed_given_is_a_case_error_not_a_traceback(tmp_path: Path) -> None:
    cases = """\
- name: negative selling price
  given: {price: {selling: -5}}
  expect:
    status: listed
- name: still runs the next case
  given: {}
  expect:
    status: listed
"""
    test_file = _write_test_file(tmp_path, ML_RULES, cases)
    result = _invoke(["test", str(test_file)])
    assert result.exit_code == 1, result.output
    assert isinstance(result.exception, SystemExit)  # a clean exit, not an exception escaping
    assert "Traceback" not in result.output
    assert "✗ negative selling price" in result.output
    assert "'given' is not a valid catalog record" in result.output
    assert "price.selling: must be >= 0" in result.output
    assert "✓ still runs the next case" in result.output
    assert "1 passed, 1 failed" in result.output


def test_a_broken_rule_file_prints_its_diagnostics_and_exits_1(tmp_path: Path) -> None:
    rules = tmp_path / "broken.yaml"
    rules.write_text(MINIMAL_RULES + "select:\n  - product.brnd\n", encoding="utf-8")
    test_file = _write_test_file(tmp_path, "broken.yaml", "- name: never runs\n  given: {}\n  expect: {}\n")
    with pytest.raises(RuleError):
        run_test_file(test_file)
    result = _invoke(["test", str(test_file)])
    assert result.exit_code == 1, result.output
    assert "Traceback" not in result.output
    assert "TP302" in result.output
    assert "unknown field 'brnd' on product" in result.output
    assert "did you mean 'brand'?" in result.output
    assert f"{rules}:11:" in result.output  # the line of the broken select
    assert "0 passed, 0 failed, 1 file(s) broken" in result.output
