"""Shared fixtures: a minimal valid rule file to build cases from, sample catalog records, and the
stand-ins served on loopback once per session (``tests/_harness.py`` holds the scaffolding)."""

from __future__ import annotations

import os
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings

from engine import CatalogRecord, Context
from tests._harness import ROOT, Loopback

# The test command is a gate that must give the same answer on every run, so property tests run
# a fixed, derandomised set of examples by default. `HYPOTHESIS_PROFILE=explore` draws fresh random
# examples on every run to look for new failures; each one found becomes a fixed test.
settings.register_profile("default", derandomize=True, print_blob=True)
settings.register_profile("explore", derandomize=False, print_blob=True)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.hookimpl(tryfirst=True)
def pytest_cmdline_main(config: pytest.Config) -> None:
    """Run on every core (pytest-xdist, from the test extra; 2 in CI: about half the time of one)
    unless ``-n`` says otherwise (``-n 0``: in this process, for pdb or one quick file). Tests that
    share a module's costly fixture stay on one worker with ``@pytest.mark.xdist_group``.

    Set here rather than in ``addopts`` so that an environment without pytest-xdist still runs
    the suite, in one process.
    """
    worker = hasattr(config, "workerinput")
    if config.pluginmanager.hasplugin("xdist") and config.option.numprocesses is None and not worker:
        config.option.numprocesses = "auto"
        if config.option.dist == "no":
            config.option.dist = "loadgroup"


SPECS = ROOT.parent / "shared" / "specs"

MINIMAL_RULES = """\
marketplace: mercadolibre
affiliate: MLB
trade_policy: "1"
currency: BRL
locale: pt-BR
tables:
  colors: {Azul: Blue, Preto: Black}
price:
  value: price.selling
"""


def sample_record(**overrides: Any) -> CatalogRecord:
    """A valid catalog record; keyword arguments replace whole sections (product=..., sku=...)."""
    data: dict[str, Any] = {
        "product": {
            "id": "1",
            "name": "Tênis Runner",
            "brand": "Acme",
            "description": "Leve e confortável",
            "category_path": ["Apparel", "Shoes", "Sneakers"],
            "specs": {"Gênero": "Feminino"},
        },
        "sku": {
            "id": "10",
            "product_id": "1",
            "name": "Azul M",
            "ean": "4006381333931",
            "active": True,
            "specs": {"Cor": "Azul", "Tamanho": "M", "Voltagem": "110V"},
            "images": [{"url": "https://img.example/10.jpg", "is_main": True}],
        },
        "price": {"selling": "99.40", "cost": "50.00", "list": "120.00", "promotional": "89.90"},
        "stock": {
            "warehouses": [
                {"warehouse": "main", "quantity": 20, "reserved": 3},
                {"warehouse": "sp_cd", "quantity": 7, "reserved": 0},
            ]
        },
    }
    for key, value in overrides.items():
        data[key] = {**data[key], **value}
    return CatalogRecord.model_validate(data)


def context_for(record: CatalogRecord, listing: dict[str, Any] | None = None) -> Context:
    return Context(record.product, record.sku, record.price, record.stock, listing)


@pytest.fixture
def rule_file(tmp_path: Path) -> Callable[[str], Path]:
    """Write a rule file: MINIMAL_RULES plus the given YAML text appended (or replacing 'price:')."""

    def write(extra: str, base: str = MINIMAL_RULES, name: str = "rules.yaml") -> Path:
        path = tmp_path / name
        path.write_text(base + extra, encoding="utf-8")
        return path

    return write


@pytest.fixture(scope="session")
def loopback() -> Iterator[Loopback]:
    """One server per stand-in kind on 127.0.0.1; ``loopback.sandbox(records)`` gives a test fresh
    stand-ins behind them."""
    served = Loopback()
    yield served
    served.close()
