"""Listing keys a marketplace's connector does not read are warned about (issue 15, TP116).

Connectors declare the keys they read besides the standard ones (``Connector.listing_fields``);
the eight built-in ones do, so a misspelt ``titel:`` is caught, and the bundled rule files,
which use only keys their connector reads, get no such warning.
"""

from __future__ import annotations

from pathlib import Path

import pytest

import engine
from engine.connectors._registry import connector_class
from engine.project._rulecheck import listing_keys
from engine.rules._check import check_rules

ROOT = Path(__file__).resolve().parent.parent
RULES = sorted(p for p in (ROOT / "rules").glob("*.yaml") if not p.name.endswith(".test.yaml"))


@pytest.mark.parametrize(
    "name",
    [
        "amazon",
        "mercadolibre",
        "google",
        "facebook",
        "carrefour",
        "magalu",
        "dafiti",
        "sellercenter",
        "netshoes",
    ],
)
def test_the_built_in_connectors_declare_the_listing_keys_they_read(name: str) -> None:
    assert connector_class(name).listing_fields is not None
    assert {"title", "description", "attributes"} <= listing_keys()[name]


@pytest.mark.parametrize("rule_file", RULES, ids=[p.name for p in RULES])
def test_the_bundled_rule_files_use_only_keys_their_connector_reads(rule_file: Path) -> None:
    assert not [d for d in engine.check_rules(rule_file).diagnostics if d.code == "TP116"]


def _rules_with_listing(tmp_path: Path, listing: str) -> Path:
    path = tmp_path / "rules.yaml"
    path.write_text(
        "marketplace: mercadolibre\naffiliate: MLB\ntrade_policy: '1'\ncurrency: BRL\n"
        f"listing:\n{listing}price: {{value: price.selling}}\n",
        encoding="utf-8",
    )
    return path


def test_a_misspelt_key_is_a_warning_with_the_key_meant(tmp_path: Path) -> None:
    path = _rules_with_listing(tmp_path, "  titel: =product.name\n")
    (warning,) = engine.check_rules(path).diagnostics
    assert (warning.code, warning.severity, warning.span.line, warning.span.column) == (
        "TP116",
        "warning",
        6,
        3,
    )
    assert warning.hint == "did you mean 'title'?"


def test_without_a_declaration_the_keys_are_not_checked(tmp_path: Path) -> None:
    path = _rules_with_listing(tmp_path, "  titel: =product.name\n")
    assert check_rules(path, ["mercadolibre"], {}).diagnostics == []
    assert check_rules(path, ["mercadolibre"]).diagnostics == []
