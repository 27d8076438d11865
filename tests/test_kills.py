"""Kill tests as a harness: `tradepost apply` SIGKILLed at every failpoint, then run again.

The bounded version of ``bench/bench_kills.py`` (which runs hundreds of kills): per scenario, a
chain of runs each killed the first time it reaches one of the scenario's failpoints (every
failpoint of apply is in one of the chains), then a run to completion and the check, plus one
kill at a random point or a random time checked on its own. The check reads the stand-in's own
state: every SKU held once, at the clean run's price and quantity, and the next plan clean.

The random choices change from run to run; ``TRADEPOST_KILLS_SEED`` replays one (a failure
names its seed).
"""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.bench_kills import SCENARIOS, Harness
from engine.failpoints import APPLY_POINTS
from tests.conftest import ROOT

# One worker runs them all (pytest-xdist): the scenarios' sandboxes and clean runs are built once.
pytestmark = pytest.mark.xdist_group("kills")

SEED = int(os.environ.get("TRADEPOST_KILLS_SEED") or time.time_ns() % 1_000_000)

CHAINS = {
    # scenario -> the failpoints its chain kills at (together: every failpoint of apply)
    "mercadolibre-lost": (
        "apply:looked-up", "mercadolibre:searched", "mercadolibre:item-read", "apply:before-send",
        "apply:sent", "apply:family-recorded", "apply:recorded",
    ),
    "amazon-refused": (
        "apply:pending-recorded", "amazon:confirm-read", "apply:confirmed", "apply:pending-cleared",
        "apply:error-recorded",
    ),
    "amazon-feed": (
        "amazon:feed-document", "amazon:feed-uploaded", "amazon:feed-created", "amazon:feed-polled",
        "amazon:feed-report", "apply:bulk-done",
    ),
    "magalu-lost": ("magalu:sku-sent", "magalu:review-read", "magalu:offer-sent", "apply:bulk-done"),
    "facebook-lost": ("meta:batch-sent", "meta:batch-polled", "apply:bulk-done", "apply:recorded"),
    "carrefour": ("mirakl:import-sent", "mirakl:import-polled", "mirakl:report-read"),
    "dafiti": ("sellercenter:feed-sent", "sellercenter:feed-polled", "sellercenter:feed-read"),
    "netshoes": ("netshoes:products-sent", "apply:bulk-done"),
}  # fmt: skip


def test_every_failpoint_of_apply_is_listed_and_in_a_chain() -> None:
    """A failpoint added to apply without being listed would escape every kill test."""
    sources = [
        *sorted((ROOT / "engine" / "sync").rglob("*.py")),
        *sorted((ROOT / "marketplaces").rglob("*.py")),
    ]
    reached = {
        name
        for path in sources
        for name in re.findall(r'failpoints\.reach\("([^"]+)"\)', path.read_text(encoding="utf-8"))
    }
    assert reached == set(APPLY_POINTS)
    assert {point for chain in CHAINS.values() for point in chain} == set(APPLY_POINTS)


@pytest.fixture(scope="module")
def harnesses(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, Harness]]:
    made: dict[str, Harness] = {}
    try:
        for index, name in enumerate([*CHAINS, "google", "carrefour-lost", "dafiti-lost", "netshoes-lost"]):
            harness = Harness(SCENARIOS[name], tmp_path_factory.mktemp(name), SEED + index)
            made[name] = harness
            harness.baseline()
        yield made
    finally:
        for harness in made.values():
            harness.close()


@pytest.mark.parametrize("scenario", list(CHAINS))
def test_a_run_killed_at_each_failpoint_then_run_again_lists_every_sku_once(
    harnesses: dict[str, Harness], scenario: str
) -> None:
    harness = harnesses[scenario]
    assert set(CHAINS[scenario]) <= set(harness.points()), "the clean run no longer reaches these points"
    chain = list(CHAINS[scenario])
    random.Random(SEED).shuffle(chain)
    harness.survivors.clear()
    trial = harness.chain([(point, 1, None) for point in chain])
    assert trial.ok, f"seed {SEED}: {trial.line()}"
    assert trial.kills >= 1
    # A run of the chain that found its point already passed (other workers went further before
    # the previous kill) is aimed again from scratch, so every point is killed at, every run.
    missed = [point for point, _ in harness.survivors]
    for point in missed:
        again = harness.trial(point, 1)
        assert again.kills == 1, f"seed {SEED}: {again.line()} {harness.survivors[-1:]}"
        assert again.ok, f"seed {SEED}: {again.line()}"


@pytest.mark.parametrize(
    "scenario",
    [
        "mercadolibre-lost",
        "google",
        "amazon-refused",
        "facebook-lost",
        "carrefour-lost",
        "magalu-lost",
        "dafiti-lost",
        "netshoes-lost",
    ],
)
def test_a_run_killed_at_a_random_point_or_time_then_run_again_lists_every_sku_once(
    harnesses: dict[str, Harness], scenario: str
) -> None:
    harness = harnesses[scenario]
    chooser = random.Random(SEED)
    point = chooser.choice([*harness.points(), None])
    trial = harness.trial(point)
    assert trial.ok, f"seed {SEED}: {trial.line()}"
    assert trial.kills <= 1
    assert Path(harness.config).exists()
