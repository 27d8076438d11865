"""`tradepost check rules/*.yaml` checks the `.test.yaml` files the glob brings in as rule tests (issue 15).

Before, each was checked as a rule file: "missing required key 'marketplace'" and a dozen more
errors for a file that is fine. Now its own mistakes are reported (its keys, the rule file it
tests, the shape of each case); running the cases stays `tradepost test`'s job.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli

ROOT = Path(__file__).resolve().parent.parent
CASE = "  - name: a case\n    given: {sku: {id: '1'}}\n    expect: {status: valid}\n"


def test_the_bundled_rules_and_their_tests_check_clean_together(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(ROOT)
    files = sorted(str(p.relative_to(ROOT)) for p in (ROOT / "rules").glob("*.yaml"))
    assert any(name.endswith(".test.yaml") for name in files)
    result = CliRunner().invoke(cli, ["check", *files])
    assert result.exit_code == 0, result.output
    assert "rules/mercadolibre.test.yaml: ok" in result.output
    assert "error[" not in result.output


@pytest.mark.parametrize(
    ("text", "code", "line", "column", "words"),
    [
        ("case:\n" + CASE, "TP111", 1, 1, "did you mean 'cases'?"),
        ("defualts: {}\ncases:\n" + CASE, "TP111", 1, 1, "did you mean 'defaults'?"),
        ("rules: nowhere.yaml\ncases:\n" + CASE, "TP130", 1, 8, "'nowhere.yaml', does not exist"),
        ("cases:\n  - name: no expect\n    given: {sku: {id: '1'}}\n", "TP151", 2, 5, "an 'expect:' mapping"),
        ("cases: []\n", "TP150", 1, 1, "needs a 'cases:' list"),
        ("cases:\n  - name: 'open\n", "TP101", 2, 11, "the quote opened here is never closed"),
    ],
)
def test_a_rule_test_files_own_mistakes_are_reported_at_their_place(
    tmp_path: Path, text: str, code: str, line: int, column: int, words: str
) -> None:
    shutil.copy(ROOT / "rules" / "mercadolibre.yaml", tmp_path / "mercadolibre.yaml")
    shutil.copytree(ROOT / "rules" / "shared", tmp_path / "shared")
    test_file = tmp_path / "mercadolibre.test.yaml"
    test_file.write_text(text, encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", "--format", "json", str(test_file)])
    assert result.exit_code == 1, result.output
    (entry,) = json.loads(result.stdout)["files"]
    found = [(d["code"], d["line"], d["column"]) for d in entry["diagnostics"]]
    assert (code, line, column) in found, entry["diagnostics"]
    assert any(words in d["message"] or words in (d["hint"] or "") for d in entry["diagnostics"])
    assert "marketplace" not in result.stdout  # not checked as a rule file
