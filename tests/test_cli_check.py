"""`tradepost check` and `tradepost schema` as a scheduler or an editor would use them."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from tests._harness import tradepost_process


def test_check_clean_file_exits_0(rule_file: Callable[..., Path]) -> None:
    result = CliRunner().invoke(cli, ["check", str(rule_file(""))])
    assert result.exit_code == 0, result.output
    assert ": ok" in result.output


def test_check_with_errors_exits_1_and_shows_every_error_with_caret(rule_file: Callable[..., Path]) -> None:
    path = rule_file("select:\n  - product.brnd\n  - sku.activ\n")
    result = CliRunner().invoke(cli, ["check", str(path)])
    assert result.exit_code == 1
    assert f"{path}:11:13: error[TP302]: unknown field 'brnd' on product" in result.output
    assert f"{path}:12:9: error[TP302]: unknown field 'activ' on sku" in result.output
    assert "did you mean 'brand'?" in result.output
    assert "  11 |   - product.brnd\n" in result.output
    assert "^^^^" in result.output


def test_check_json_for_machines(rule_file: Callable[..., Path]) -> None:
    path = rule_file("select:\n  - product.brnd\n")
    result = CliRunner().invoke(cli, ["check", "--format", "json", str(path)])
    assert result.exit_code == 1
    document = json.loads(result.output)
    assert document["errors"] == 1
    (diagnostic,) = document["files"][0]["diagnostics"]
    assert (diagnostic["code"], diagnostic["line"], diagnostic["column"], diagnostic["end_column"]) == (
        "TP302",
        11,
        13,
        17,
    )


def test_check_missing_file_is_a_diagnostic_not_a_traceback(tmp_path: Path) -> None:
    result = tradepost_process("check", str(tmp_path / "nope.yaml"), timeout=60)
    assert result.returncode == 1
    assert "TP130" in result.stdout and "does not exist" in result.stdout
    assert "Traceback" not in result.stdout + result.stderr


def test_bundled_rule_files_are_clean() -> None:
    result = tradepost_process("check", timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_schema_is_json_schema_of_the_rule_file(tmp_path: Path) -> None:
    out = tmp_path / "schema.json"
    result = CliRunner().invoke(cli, ["schema", "-o", str(out)])
    assert result.exit_code == 0
    schema = json.loads(out.read_text())
    assert schema["title"] == "Tradepost rule file"
    assert {"marketplace", "affiliate", "price", "listing", "categories"} <= set(schema["properties"])
    assert set(schema["required"]) >= {"marketplace", "affiliate", "price"}
    assert schema["additionalProperties"] is False
