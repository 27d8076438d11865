"""Facebook: the catalog is the truth. A lost state store is rebuilt from the catalog's items
(``GET /{catalog_id}/products``), and what someone changed in Meta's Commerce Manager since is
the one update the next plan makes. The helpers and the sandbox fixture are
``tests/test_state_rebuild.py``'s, so Meta is held to what the other marketplaces are.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from engine.project._assembly import open_state
from engine.project._config import load_project
from marketplaces.sandbox import Sandbox
from tests._harness import Loopback, run_apply, subset, write_project
from tests.test_state_rebuild import lose_state, plan, rebuild

PRODUCTS = "GET /v23.0/1234567890/products"


@pytest.fixture
def sandbox(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    """60 catalog SKUs, and the catalog answering 25 items a page so that paging is exercised."""
    box = loopback.sandbox(subset(60))
    config = write_project(box, tmp_path / "project", rate=500)
    box.standins["facebook"].list_page_max = 25  # type: ignore[attr-defined]
    return box, config


def test_after_losing_the_state_a_rebuild_leaves_nothing_to_send(sandbox: tuple[Sandbox, Path]) -> None:
    box, config = sandbox
    applied = run_apply(config, "facebook", box)
    assert applied.failed == 0 and applied.applied > 40
    lose_state(config)

    summary = rebuild(config, "facebook", box)

    assert (summary.listings, summary.not_in_catalog, summary.withdrawn) == (applied.applied, 0, 0)
    assert sum(summary.differing.values()) == 0 and summary.duplicates == []
    assert box.standins["facebook"].requests[PRODUCTS] == -(-applied.applied // 25)
    assert plan(config, "facebook")[1] == []
    before = box.standins["facebook"].total_requests()
    again = run_apply(config, "facebook", box)
    assert (again.applied, again.requests) == (0, 0)
    assert box.standins["facebook"].total_requests() == before


@pytest.mark.parametrize(
    ("field", "value", "kind"),
    [("price", "1.23 BRL", "price"), ("inventory", 0, "stock"), ("title", "Retitled by hand", "content")],
)
def test_a_change_made_in_meta_behind_tradeposts_back_is_the_one_update_planned(
    sandbox: tuple[Sandbox, Path], field: str, value: Any, kind: str
) -> None:
    box, config = sandbox
    run_apply(config, "facebook", box)
    standin: Any = box.standins["facebook"]
    with open_state(load_project(config)) as state:
        sku_id = next(
            sku
            for sku in sorted(state.all_sku_ids("facebook"))
            if state.get("facebook", sku).quantity > 0  # type: ignore[union-attr]
        )
    standin.item(sku_id)[field] = value
    lose_state(config)

    summary = rebuild(config, "facebook", box)

    assert dict(summary.differing) == {kind: 1}
    _, changes = plan(config, "facebook")
    assert [(c.op, c.sku_id, c.kinds) for c in changes] == [("update", sku_id, (kind,))]
    fixed = run_apply(config, "facebook", box)
    assert (fixed.applied, fixed.failed) == (1, 0)
    assert plan(config, "facebook")[1] == []
