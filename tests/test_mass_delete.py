"""Mass deletes need consent: an emptied catalog must not withdraw every listing on the next apply.

Given a Google stand-in holding what a first apply sent, each test changes the catalog file and
runs `tradepost plan` / `apply` as a user types them, then counts what reached the stand-in.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.project._assembly import open_state
from engine.project._config import load_project
from engine.sync._deletes import FREE_DELETES, mass_delete, parse_share
from marketplaces.sandbox import Sandbox, read_catalog
from tests._harness import ROOT, Loopback, tradepost, write_project

RECORDS = read_catalog(ROOT / "examples" / "catalog.jsonl")[:90]


@dataclass
class Shop:
    box: Sandbox
    config: Path
    catalog: Path

    def tradepost(self, *args: str) -> tuple[int, str, str]:
        """Run the command in process as `tradepost ARGS -c CONFIG -m google`: exit code, stdout, stderr."""
        return tradepost(*args, "-c", str(self.config), "-m", "google")

    @property
    def live(self) -> set[str]:
        """The SKUs the stand-in lists."""
        return {i["offerId"] for i in self.box.standins["google"].inputs.values()}

    @property
    def requests(self) -> int:
        return self.box.standins["google"].total_requests()

    def state_count(self) -> int:
        with open_state(load_project(self.config)) as state:
            return state.count("google")

    def keep(self, records: list[dict[str, Any]]) -> None:
        self.catalog.write_text("".join(json.dumps(r) + "\n" for r in records), encoding="utf-8")

    def without(self, count: int) -> list[str]:
        """Drop the records of ``count`` live SKUs from the catalog; returns their ids."""
        gone = sorted(self.live)[:count]
        self.keep([r for r in RECORDS if str(r["sku"]["id"]) not in gone])
        return gone

    def set_share(self, value: str) -> None:
        text = self.config.read_text(encoding="utf-8")
        self.config.write_text(
            text.replace("  google:\n", f"  google:\n    max_delete_share: {value}\n"), encoding="utf-8"
        )


@pytest.fixture
def shop(loopback: Loopback, tmp_path: Path) -> Shop:
    """A Google stand-in after a first apply of the catalog: every valid SKU listed once."""
    box = loopback.sandbox(RECORDS)
    # The stand-in has no rate limit: do not pace at Merchant API's 5 requests a second.
    config = write_project(box, tmp_path / "project", catalog_from_vtex=False, rate=1000)
    catalog = tmp_path / "catalog.jsonl"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(str(ROOT / "examples" / "catalog.jsonl"), str(catalog)), encoding="utf-8")
    shop = Shop(box, config, catalog)
    shop.keep(RECORDS)
    code, _, err = shop.tradepost("apply")
    assert code == 0, err
    assert len(shop.live) == shop.state_count() > 60
    return shop


def test_an_emptied_catalog_is_shown_by_plan_and_refused_by_apply_with_nothing_sent(shop: Shop) -> None:
    live, before = len(shop.live), shop.requests
    shop.keep([])
    code, out, _ = shop.tradepost("plan")
    assert code == 0  # the plan shows the deletes; the refusal is apply's
    assert f"Plan: 0 to create, 0 to update, {live} to delete, 0 invalid" in out
    assert (
        f"apply will refuse to delete {live} of {live} live listings (100% > 10%) without "
        "--allow-mass-delete: the catalog may be incomplete"
    ) in out
    code, _, err = shop.tradepost("apply")
    assert code == 1
    assert (
        f"google refusing to delete {live} of {live} live listings (100% > 10%): the catalog may be "
        "incomplete; pass --allow-mass-delete if this is intended; nothing was sent"
    ) in err
    assert shop.requests == before and len(shop.live) == shop.state_count() == live


def test_apply_json_says_which_marketplace_was_refused(shop: Shop) -> None:
    live = len(shop.live)
    shop.keep([])
    code, out, _ = shop.tradepost("apply", "--json")
    assert code == 1
    [refused] = json.loads(out)["marketplaces"]
    assert refused["marketplace"] == "google"
    assert refused["mass_delete"]["deletes"] == refused["mass_delete"]["live"] == live
    assert refused["mass_delete"]["max_delete_share"] == "0.10"


def test_with_consent_the_deletes_go(shop: Shop) -> None:
    shop.keep([])
    code, out, _ = shop.tradepost("plan", "--allow-mass-delete")
    assert code == 0 and "will refuse" not in out
    code, _, err = shop.tradepost("apply", "--allow-mass-delete")
    assert code == 0, err
    assert shop.live == set() and shop.state_count() == 0


def test_deletes_within_the_share_need_no_consent(shop: Shop) -> None:
    live = len(shop.live)
    count = live // 10  # 10% exactly is not more than 10%
    assert count > FREE_DELETES  # the share decides here, not the floor
    gone = shop.without(count)
    code, out, _ = shop.tradepost("plan")
    assert f"{count} to delete" in out and "will refuse" not in out
    code, _, err = shop.tradepost("apply")
    assert code == 0, err
    assert shop.live.isdisjoint(gone) and len(shop.live) == live - count


def test_max_delete_share_in_the_config_sets_the_share(shop: Shop) -> None:
    live = len(shop.live)
    count = live // 5  # about 20%
    gone = shop.without(count)
    share = f"{Decimal(100 * count / live).quantize(Decimal('0.1'), rounding='ROUND_UP'):f}%"
    before = shop.requests
    code, _, err = shop.tradepost("apply")
    assert code == 1 and f"refusing to delete {count} of {live} live listings ({share} > 10%)" in err
    assert shop.requests == before
    shop.set_share("25%")
    code, _, err = shop.tradepost("apply")
    assert code == 0, err
    assert shop.live.isdisjoint(gone) and len(shop.live) == live - count


def test_a_bad_max_delete_share_is_a_config_error(shop: Shop) -> None:
    shop.set_share("150%")
    code, out, err = shop.tradepost("plan")
    assert code == 1
    assert "max_delete_share" in out + err and "between 0% and 100%" in out + err


def test_a_saved_plan_with_mass_deletes_is_refused_at_apply(shop: Shop, tmp_path: Path) -> None:
    live, before = len(shop.live), shop.requests
    shop.keep([])
    plan_file = tmp_path / "plan.json"
    code, out, _ = shop.tradepost("plan", "-o", str(plan_file))
    assert code == 0 and "apply will refuse" in out
    code, _, err = shop.tradepost("apply", str(plan_file))
    assert code == 1 and f"refusing to delete {live} of {live} live listings" in err
    assert shop.requests == before and len(shop.live) == live
    code, _, err = shop.tradepost("apply", str(plan_file), "--allow-mass-delete")
    assert code == 0, err
    assert shop.live == set()


@pytest.mark.parametrize(
    ("deletes", "live", "share", "refused"),
    [
        (1, 3, "10%", False),  # a small shop withdrawing one of three: under the floor
        (FREE_DELETES, FREE_DELETES, "10%", False),  # all of a tiny shop: still under the floor
        (FREE_DELETES + 1, FREE_DELETES + 1, "10%", True),
        (10, 100, "10%", False),  # exactly the share is allowed
        (11, 100, "10%", True),
        (11, 100, "0.2", False),
        (1000, 1000, "100%", False),  # 100% turns the guard off
        (6, 1000, "0%", True),
        (6, 0, "10%", True),  # the state lost its rows: the deletes count as live
    ],
)
def test_when_consent_is_needed(deletes: int, live: int, share: str, refused: bool) -> None:
    assert (mass_delete("m", deletes, live, parse_share(share)) is not None) == refused


def test_the_share_in_the_message_is_rounded_up() -> None:
    guard = mass_delete("m", 1001, 10_000, Decimal("0.1"))
    assert guard is not None and guard.reason() == "1001 of 10000 live listings (10.1% > 10%)"


@pytest.mark.parametrize("value", ["150%", "-1%", "1.5", "ten", "nan", True])
def test_a_share_outside_0_to_100_percent_is_refused(value: object) -> None:
    with pytest.raises(ValueError, match="between 0% and 100%"):
        parse_share(value)
