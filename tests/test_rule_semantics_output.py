"""What `plan` and `explain` write where no one looks at a terminal, and how they write money.

Given the bundled example: into a pipe or a file (here click's runner, which is not a terminal)
``plan`` writes one tab-separated line per change and ``explain`` one per field, never box
drawing; a forced terminal (``FORCE_COLOR``) still gets the table. Tradepost's own JSON writes
amounts as decimal strings, the request bodies as the marketplace's API takes them.
"""

from __future__ import annotations

from pathlib import Path

from click.testing import CliRunner

from cli.main import cli
from engine.jsonio import loads
from tests.conftest import ROOT
from tests.test_cli_plan import config

__all__ = ["config"]  # the bundled example's project, shared with the plan command's own tests

BOX = set("┏┃━┡│└┘─┌┐")
SKU = "2000001"


def run(*args: str, env: dict[str, str] | None = None) -> str:
    result = CliRunner().invoke(cli, list(args), env=env)
    assert result.exit_code == 0, result.output
    return result.output


def test_plan_into_a_pipe_writes_one_tab_separated_line_per_change(config: Path) -> None:
    output = run("plan", "-c", str(config), "-m", "mercadolibre", "--sku", SKU)

    lines = output.splitlines()
    assert not BOX & set(output)
    assert lines[0].split("\t") == [
        "mercadolibre",
        "create",
        SKU,
        "",
        "644.90 (sale 515.90)",
        "0",
        "Tênis Academia Couro Pisada",
    ]
    assert lines[-1].startswith("mercadolibre Plan: 1 to create, 0 to update, 0 to delete, 0 invalid")


def test_plan_on_a_terminal_draws_the_table(config: Path) -> None:
    output = run("plan", "-c", str(config), "-m", "mercadolibre", "--sku", SKU, env={"FORCE_COLOR": "1"})

    assert BOX & set(output)
    assert "\tcreate\t" not in output


def test_explain_into_a_pipe_writes_one_line_per_field_with_money_as_text(config: Path) -> None:
    output = run("explain", "-c", str(config), "-m", "mercadolibre", SKU)

    rows = {line.split("\t")[0]: line.split("\t")[1:] for line in output.splitlines() if "\t" in line}
    assert not BOX & set(output)
    assert rows["price"][0] == '"644.90"'
    assert rows["price"][1].endswith("mercadolibre.yaml:82")
    assert rows["listing.description"][0].startswith('"Tênis Academia Couro, da Pisada.')  # strip_html


def test_money_is_a_decimal_string_in_plan_and_explain_json_and_a_number_in_the_body(config: Path) -> None:
    plan = loads(
        run(
            "plan",
            "-c",
            str(config),
            "-m",
            "mercadolibre",
            "--sku",
            SKU,
            "--format",
            "json",
            "--show-payload",
        )
    )
    explain = loads(run("explain", "-c", str(config), "-m", "mercadolibre", SKU, "--format", "json"))
    saved = config.parent / "plan.json"
    run("plan", "-c", str(config), "-m", "mercadolibre", "--sku", SKU, "-o", str(saved))

    (change,) = plan["marketplaces"][0]["changes"]
    assert change["after"]["price"] == "644.90"
    assert {f["field"]: f["value"] for f in explain["fields"]}["price"] == "644.90"
    assert '"price": "644.90"' in saved.read_text(encoding="utf-8")
    assert '"price": 515.90' in saved.read_text(encoding="utf-8")  # the request body: the sale price


def test_explain_says_a_sale_price_was_dropped(config: Path, tmp_path: Path) -> None:
    rules = (ROOT / "rules" / "mercadolibre.yaml").read_text(encoding="utf-8")
    (tmp_path / "shared").symlink_to(ROOT / "rules" / "shared")
    (tmp_path / "ml.yaml").write_text(
        rules.replace("sale: price.promotional * (1 + 15% + 20%)", "sale: price.selling * 3"),
        encoding="utf-8",
    )
    config.write_text(
        config.read_text(encoding="utf-8").replace(
            str(ROOT / "rules" / "mercadolibre.yaml"), str(tmp_path / "ml.yaml")
        ),
        encoding="utf-8",
    )

    text = run("explain", "-c", str(config), "-m", "mercadolibre", SKU)
    document = loads(run("explain", "-c", str(config), "-m", "mercadolibre", SKU, "--format", "json"))

    assert "note: price.sale: sale price 1431.90 is not below the price 644.90: no sale price is sent" in text
    assert [n["code"] for n in document["notes"]] == ["TP926"]
