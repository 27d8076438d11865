"""`tradepost plan` and `tradepost explain` on the bundled example, as a user or a scheduler runs them."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from click.testing import CliRunner

from cli.main import cli
from engine.jsonio import loads
from tests._harness import tradepost_process as run
from tests.conftest import MINIMAL_RULES, ROOT


@pytest.fixture
def config(tmp_path: Path) -> Path:
    """The example project with its state in a temporary folder."""
    path = tmp_path / "tradepost.yaml"
    path.write_text(
        f"""source:
  type: file
  path: {ROOT / "examples" / "catalog.jsonl"}
state: {tmp_path / "state.sqlite"}
marketplaces:
  mercadolibre: {{rules: {ROOT / "rules" / "mercadolibre.yaml"}}}
  amazon: {{rules: {ROOT / "rules" / "amazon.yaml"}}}
  google: {{rules: {ROOT / "rules" / "google.yaml"}}}
""",
        encoding="utf-8",
    )
    return path


def test_plan_prints_a_summary_per_marketplace_and_exits_2_with_changes(config: Path) -> None:
    result = run("plan", "-c", str(config), "--detailed-exitcode")
    assert result.returncode == 2, result.stderr
    lines = [line for line in result.stdout.splitlines() if "Plan:" in line]
    assert len(lines) == 3
    assert lines[0].startswith("mercadolibre Plan: ")
    assert " to create, 0 to update, 0 to delete, " in lines[0]
    assert "Traceback" not in result.stderr


def test_plan_json_counts_match_the_changes(config: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", "-c", str(config), "-m", "google", "--format", "json"])
    assert result.exit_code == 0, result.output
    document = loads(result.output)
    (google,) = document["marketplaces"]
    ops = [c["op"] for c in google["changes"]]
    assert google["summary"]["create"] == ops.count("create") > 300
    assert google["summary"]["invalid"] == ops.count("invalid") >= 3
    invalid = [c for c in google["changes"] if c["op"] == "invalid"]
    assert any(r["message"] == "no category mapping for Pets/Toys" for c in invalid for r in c["reasons"])
    assert all(r["location"] or r["rule"].startswith("catalog") for c in invalid for r in c["reasons"])


def test_plan_jsonl_is_one_change_per_line_then_the_summary(config: Path) -> None:
    result = CliRunner().invoke(cli, ["plan", "-c", str(config), "-m", "amazon", "--format", "jsonl"])
    lines = [json.loads(line) for line in result.output.splitlines()]
    assert "summary" in lines[-1]
    assert all("op" in line for line in lines[:-1])
    assert len(lines) - 1 == sum(
        lines[-1]["summary"][k] for k in ("create", "update", "delete", "unchanged", "invalid")
    )


def test_show_payload_for_one_sku(config: Path) -> None:
    result = CliRunner().invoke(
        cli, ["plan", "-c", str(config), "-m", "google", "--sku", "2000001", "--show-payload"]
    )
    assert result.exit_code == 0, result.output
    assert '"offerId": "2000001"' in result.output
    assert '"amountMicros"' in result.output
    assert "Plan: 1 to create, 0 to update, 0 to delete, 0 invalid" in result.output


def test_saved_plan_file(config: Path, tmp_path: Path) -> None:
    out = tmp_path / "plan.json"
    result = CliRunner().invoke(cli, ["plan", "-c", str(config), "-m", "mercadolibre", "-o", str(out)])
    assert result.exit_code == 0, result.output
    document = loads(out.read_text())
    assert document["format"] == "tradepost-plan" and document["format_version"] == 2
    saved = document["marketplaces"]["mercadolibre"]
    creates = [c for c in saved["changes"] if c["op"] == "create"]
    assert len(creates) == saved["summary"]["create"]
    singles = [c for c in creates if "family" not in c]
    leaders = [c for c in creates if c.get("family") and c["payloads"]]
    followers = [c for c in creates if c.get("family") and not c["payloads"]]
    assert singles and leaders and followers
    assert all(c["payloads"][0]["currency_id"] == "BRL" for c in singles + leaders)
    for leader in leaders:  # one item with every new SKU of the family as a variation
        (item,) = leader["payloads"]
        skus = {
            a["value_name"] for v in item["variations"] for a in v["attributes"] if a["id"] == "SELLER_SKU"
        }
        assert skus == set(leader["family"])
        assert leader["sku_id"] == min(leader["family"])
    assert len(leaders) + len(followers) == sum(len(c["family"]) for c in leaders)
    assert not (tmp_path / "plan.json.partial").exists()


def test_explain_shows_each_field_with_its_rule(config: Path) -> None:
    result = CliRunner().invoke(cli, ["explain", "2000001", "-m", "mercadolibre", "-c", str(config)])
    assert result.exit_code == 0, result.output
    assert "2000001 on mercadolibre: listed → create" in result.output
    assert "rules/mercadolibre.yaml:" in result.output  # the rule each value came from
    assert "listing.title" in result.output and "price" in result.output


def test_explain_an_invalid_sku_gives_the_reasons(config: Path) -> None:
    catalog = (ROOT / "examples" / "catalog.jsonl").read_text().splitlines()
    pets = next(json.loads(line) for line in catalog if '"Pets"' in line)
    sku = str(pets["sku"]["id"])
    result = CliRunner().invoke(cli, ["explain", sku, "-m", "google", "-c", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    document = loads(result.output)
    assert document["status"] == "invalid"
    assert document["reasons"][0]["message"] == "no category mapping for Pets/Toys"
    assert "rules/google.yaml:" in document["reasons"][0]["location"]


def test_explain_unknown_sku_exits_1(config: Path) -> None:
    result = CliRunner().invoke(cli, ["explain", "nope", "-m", "google", "-c", str(config)])
    assert result.exit_code == 1
    assert "not in the catalog" in result.output


def test_missing_config_is_a_message_not_a_traceback(tmp_path: Path) -> None:
    result = run("plan", "-c", str(tmp_path / "nope.yaml"))
    assert result.returncode == 1
    assert "does not exist" in result.stderr
    assert "Traceback" not in result.stderr + result.stdout


def test_check_catalog_reports_coverage(config: Path) -> None:
    result = CliRunner().invoke(cli, ["check", "--catalog", "-c", str(config), "--format", "json"])
    assert result.exit_code == 0, result.output
    document = json.loads(result.output)
    coverage = {c["marketplace"]: c for c in document["coverage"]}
    unmapped = {u["category"]: u["skus"] for u in coverage["amazon"]["unmapped_categories"]}
    assert unmapped["Pets/Toys"] >= 1
    assert "Home/Decor/Vases" not in unmapped  # not selected for Amazon, so not a gap


def test_check_warns_when_a_warehouse_is_oversold_across_files(tmp_path: Path) -> None:
    shares = {
        "a": "warehouses: [main, sp_cd]\n  share: 70%",
        "b": "warehouses: [main]\n  share: 40%",
        "c": "share: 20%",
    }
    for name, stock in shares.items():
        (tmp_path / f"{name}.yaml").write_text(MINIMAL_RULES + f"stock:\n  {stock}\n", encoding="utf-8")
    result = CliRunner().invoke(cli, ["check", *(str(tmp_path / f"{n}.yaml") for n in shares)])
    assert result.exit_code == 0, result.output  # a warning, not an error
    assert result.output.count("warning[TP350]: warehouse 'main' is shared 130% across rule files") == 3
    assert result.output.count("warning[TP350]: warehouse 'sp_cd' is shared 90%") == 0
