"""Kill `tradepost apply` with SIGKILL at every failpoint and at random times; run again; count what broke.

Each trial starts from an empty marketplace and an empty state store (or, for the ``-lost``
scenarios, from a marketplace holding every listing and a state store that lost them), runs
``python -m cli.main apply`` as a scheduler would, against stand-ins served on 127.0.0.1, and
kills it: at the N-th time it reaches a failpoint (``TRADEPOST_FAILPOINT=name:#N``, see
``engine/failpoints.py``), or after a random delay. Then it applies again to completion and
reads the stand-in's own state:

* duplicates: a SKU held by more than one listing (Mercado Libre items and variations, Google
  product inputs; Amazon keys listings by SKU, so its count is per SKU by construction);
* lost: a SKU the clean run listed that is missing;
* wrong: a SKU whose price or quantity on the marketplace differs from the clean run's;
* unclean: the next plan still has changes the clean run's next plan did not.

Scenarios: Mercado Libre with families, Google, Amazon per SKU (submissions read back), Amazon
with every submission refused after acceptance (the failure paths), the Amazon
``JSON_LISTINGS_FEED`` path (600 SKUs: over ``bulk_threshold``), and Mercado Libre and Google
after a lost state store (every create must adopt what exists).

Usage (from the repository root)::

    python bench/bench_kills.py                  # every failpoint of every scenario, plus random kills
    python bench/bench_kills.py --kills 150 --seed 3

It prints one line per trial, a table, and one JSON line; exit 1 when anything broke.
``tests/test_kills.py`` runs a bounded selection of the same trials.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import os
import random
import signal
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from engine.failpoints import APPLY_POINTS  # noqa: E402
from engine.jsonio import dumps  # noqa: E402
from engine.project._apply import apply_records, locked, planned_records  # noqa: E402
from engine.project._assembly import open_marketplace, open_state  # noqa: E402
from engine.project._config import load_project  # noqa: E402
from marketplaces.sandbox import Sandbox, build_sandbox, read_catalog  # noqa: E402

CATALOG = ROOT / "examples" / "catalog.jsonl"
RATE = 400
"""Requests per second the project allows each marketplace: the stand-ins set no limit, and a
trial should spend its time on kills, not on pacing."""


def subset(count: int) -> list[dict[str, Any]]:
    """The first ``count`` example records, whole products only (families stay whole)."""
    records = read_catalog(CATALOG)
    chosen = records[:count]
    last = chosen[-1]["product"]["id"]
    return chosen + [r for r in records[count:] if r["product"]["id"] == last]


def products(*spans: tuple[int, int]) -> list[dict[str, Any]]:
    """Example records ``start:stop`` for each span, whole products only."""
    records = read_catalog(CATALOG)
    chosen: list[dict[str, Any]] = []
    for start, stop in spans:
        wanted = {r["product"]["id"] for r in records[start:stop]}
        chosen += [r for r in records if r["product"]["id"] in wanted and r not in chosen]
    return chosen


def synthetic(count: int) -> list[dict[str, Any]]:
    from bench.synth import generate

    return list(generate(count, seed=11, broken=False))


@dataclass(frozen=True)
class Scenario:
    name: str
    marketplace: str
    catalog: Callable[[], list[dict[str, Any]]]
    lost_state: bool = False
    """Start each trial from a marketplace holding every listing and an empty state store."""
    refuse_all: bool = False
    """Amazon refuses every accepted submission later (the failure and confirmation paths)."""


SCENARIOS = {
    s.name: s
    for s in (
        # Families of 4, 2 and 3 SKUs, and single SKUs.
        Scenario("mercadolibre", "mercadolibre", lambda: products((0, 4), (15, 22))),
        Scenario("mercadolibre-lost", "mercadolibre", lambda: products((0, 4), (15, 22)), lost_state=True),
        Scenario("google", "google", lambda: subset(10)),
        Scenario("google-lost", "google", lambda: subset(10), lost_state=True),
        Scenario("amazon", "amazon", lambda: subset(10)),
        Scenario("amazon-refused", "amazon", lambda: subset(5), refuse_all=True),
        Scenario("amazon-feed", "amazon", lambda: synthetic(560)),
        Scenario("facebook", "facebook", lambda: subset(10)),
        Scenario("facebook-lost", "facebook", lambda: subset(10), lost_state=True),
        Scenario("carrefour", "carrefour", lambda: subset(10)),
        Scenario("carrefour-lost", "carrefour", lambda: subset(10), lost_state=True),
        Scenario("magalu", "magalu", lambda: products((0, 4), (15, 22))),
        Scenario("magalu-lost", "magalu", lambda: products((0, 4), (15, 22)), lost_state=True),
        Scenario("dafiti", "dafiti", lambda: products((0, 4), (15, 22))),
        Scenario("dafiti-lost", "dafiti", lambda: products((0, 4), (15, 22)), lost_state=True),
        Scenario("netshoes", "netshoes", lambda: products((0, 4), (15, 22))),
        Scenario("netshoes-lost", "netshoes", lambda: products((0, 4), (15, 22)), lost_state=True),
    )
}


@dataclass
class Trial:
    scenario: str
    kill: str
    """``point:#N``, or ``after 1.23s``."""
    killed: bool = False
    kills: int = 0
    """Runs that died by SIGKILL (a chain kills several)."""
    duplicates: int = 0
    lost: int = 0
    wrong: int = 0
    unclean: int = 0
    error: str | None = None
    seconds: float = 0.0

    @property
    def ok(self) -> bool:
        return not (self.duplicates or self.lost or self.wrong or self.unclean or self.error)

    def line(self) -> str:
        verdict = "ok" if self.ok else "BROKEN"
        what = f"dup {self.duplicates} lost {self.lost} wrong {self.wrong} unclean {self.unclean}"
        error = f" error: {self.error}" if self.error else ""
        killed = "killed" if self.killed else "finished"
        return f"{self.scenario:18} {self.kill:32} {killed:8} {what} {verdict}{error} ({self.seconds:.1f}s)"


def holdings(box: Sandbox, marketplace: str) -> dict[str, list[str]]:
    """SKU -> the price and quantity of each listing holding it, read from the stand-in itself."""
    standin: Any = box.standins[marketplace]
    found: dict[str, list[str]] = {}
    if marketplace == "mercadolibre":
        for item in standin.items.values():
            for holder in item.get("variations") or [item]:
                for attribute in holder.get("attributes") or []:
                    if attribute["id"] == "SELLER_SKU":
                        held = dumps([holder["price"], holder["available_quantity"], item["status"]])
                        found.setdefault(str(attribute["value_name"]), []).append(held)
    elif marketplace == "google":
        for stored in standin.inputs.values():
            attributes = stored.get("productAttributes") or {}
            held = dumps(
                [attributes.get("price"), attributes.get("salePrice"), attributes.get("availability")]
            )
            found.setdefault(str(stored["offerId"]), []).append(held)
    elif marketplace == "facebook":
        standin.settle(everything=True)  # batches a killed run never polled are processed by now
        for sku, item in standin.items.items():
            held = dumps([item.get("price"), item.get("sale_price"), item.get("availability")])
            found.setdefault(str(sku), []).append(held)
    elif marketplace == "carrefour":
        for sku, offer in standin.offers.items():
            held = dumps([offer["price"], offer["discount_price"], offer["quantity"]])
            found.setdefault(str(sku), []).append(held)
    elif marketplace == "magalu":
        for sku in standin.skus:  # keyed by the seller SKU: one SKU is one listing, by construction
            price, stock = standin.prices.get(sku) or {}, standin.stocks.get(sku) or {}
            held = dumps([price.get("list_price"), price.get("price"), stock.get("quantity")])
            found.setdefault(str(sku), []).append(held)
    elif marketplace == "dafiti":
        standin.process_feeds(everything=True)  # feeds a killed run never polled are processed by now
        for sku, product in standin.products.items():
            held = dumps([product["Price"], product.get("SalePrice") or None, int(product["Quantity"])])
            found.setdefault(str(sku), []).append(held)
    elif marketplace == "netshoes":  # a SKU is one listing once Netshoes approved it and it is for sale
        for sku, held_sku in standin.skus.items():
            held = dumps([held_sku.price, held_sku.stock, held_sku.active.get("NS", False)])
            found.setdefault(str(sku), []).append(held)
    else:
        for sku, item in standin.items.items():
            attributes = item["attributes"]
            held = dumps([attributes.get("purchasable_offer"), attributes.get("fulfillment_availability")])
            found.setdefault(str(sku), []).append(held)
    return found


def forget_listings(box: Sandbox, marketplace: str) -> None:
    standin: Any = box.standins[marketplace]
    if marketplace == "mercadolibre":
        standin.items.clear()
        standin.descriptions.clear()
    elif marketplace == "google":
        standin.inputs.clear()
    elif marketplace == "facebook":
        standin.settle(everything=True)
        standin.items.clear()
    elif marketplace == "carrefour":
        standin.offers.clear()
        standin.products.clear()
    elif marketplace == "magalu":
        for table in (standin.skus, standin.prices, standin.stocks):
            table.clear()
    elif marketplace == "dafiti":
        standin.process_feeds(everything=True)
        standin.products.clear()
    elif marketplace == "netshoes":
        standin.skus.clear()
        standin.products.clear()
    else:
        standin.items.clear()
        standin.late_failures.clear()


class Harness:
    """One scenario's sandbox and project, and the clean run every trial is compared with."""

    def __init__(self, scenario: Scenario, folder: Path, seed: int = 1) -> None:
        self.scenario = scenario
        self.marketplace = scenario.marketplace
        self.folder = folder
        self.random = random.Random(seed)
        records = scenario.catalog()
        self.box = build_sandbox(records)
        if scenario.refuse_all:
            self.box.standins["amazon"].accepted_then_invalid_rate = 1.0  # type: ignore[attr-defined]
        if scenario.marketplace == "amazon":
            self.box.standins["amazon"].feed_polls = 1  # type: ignore[attr-defined]
        self.box.start()
        # A killed client leaves requests half read; the stand-in's server would log each one
        # (after start: uvicorn configures its loggers as it starts).
        logging.getLogger("uvicorn.error").setLevel(logging.CRITICAL)
        self.config = self.box.write_project(folder / "project", ROOT / "rules")
        # The catalog is read from a file: the VTEX source is not what these trials test, and
        # reading it over HTTP would triple the time of every run.
        catalog = folder / "catalog.jsonl"
        catalog.write_text("".join(dumps(record) + "\n" for record in records), encoding="utf-8")
        text = self.config.read_text(encoding="utf-8").split("\nstate:", 1)[1]
        text = f"source:\n  type: file\n  path: {catalog}\nstate:{text}"
        self.config.write_text(
            text.replace("    base_url:", f"    rate_limit: {RATE}\n    base_url:"), "utf-8"
        )
        self.state_file = folder / "project" / "state.sqlite"
        self.counts: Counter[str] = Counter()
        self.survivors: list[tuple[str, str]] = []
        """Runs aimed at a failpoint that ended otherwise (point, how): with several workers, what a
        killed run left may already be done past that point."""
        self.expected: dict[str, list[str]] = {}
        self.leftover = 0
        self.clean_seconds = 0.0

    def close(self) -> None:
        self.box.stop()

    # -- one run ---------------------------------------------------------------------------------

    def apply_command(self) -> list[str]:
        return [sys.executable, "-m", "cli.main", "apply", "-c", str(self.config), "-m", self.marketplace]

    def environment(self, failpoint: str | None = None, log: Path | None = None) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("TRADEPOST_FAILPOINT")}
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        if failpoint:
            env["TRADEPOST_FAILPOINT"] = failpoint
        if log is not None:
            env["TRADEPOST_FAILPOINT_LOG"] = str(log)
        return env

    def reset(self) -> None:
        """An empty state store; the marketplace empty, or holding every listing (lost state)."""
        forget_listings(self.box, self.marketplace)
        self._forget_state()
        if self.scenario.lost_state:
            self.apply_in_process()
            self._forget_state()

    def _forget_state(self) -> None:
        for path in self.state_file.parent.glob(self.state_file.name + "*"):
            path.unlink()

    def apply_in_process(self) -> tuple[int, str | None]:
        """Apply to completion, as `tradepost apply` does; (failed SKUs, error)."""
        project = load_project(self.config)
        run = open_marketplace(project, self.marketplace)
        try:
            with open_state(project) as state, locked(state, run.compiled.marketplace):
                records = planned_records(run, project, state)
                summary = asyncio.run(apply_records(run, project, state, records))
        except Exception as exc:  # a harness reports every way a resumed run can fail
            return 0, f"{type(exc).__name__}: {exc}"
        return summary.failed, None

    def left_to_do(self) -> int:
        """Changes the next plan still has."""
        project = load_project(self.config)
        run = open_marketplace(project, self.marketplace)
        with open_state(project) as state:
            return len(planned_records(run, project, state))

    # -- the clean run ---------------------------------------------------------------------------

    def baseline(self) -> None:
        """A clean subprocess run: what every trial must end with, and how often each point is hit."""
        self.reset()
        log = self.folder / "failpoints.log"
        log.unlink(missing_ok=True)
        start = time.monotonic()
        done = subprocess.run(
            self.apply_command(), cwd=ROOT, env=self.environment(log=log), capture_output=True, timeout=600
        )
        self.clean_seconds = time.monotonic() - start
        if done.returncode not in (0, 3):
            raise RuntimeError(f"the clean run failed: {done.stderr.decode(errors='replace')[-2000:]}")
        self.counts = Counter(log.read_text(encoding="utf-8").split()) if log.exists() else Counter()
        self.expected = {sku: sorted(set(held)) for sku, held in holdings(self.box, self.marketplace).items()}
        self.leftover = self.left_to_do()
        if not self.expected:
            raise RuntimeError(f"{self.scenario.name}: the clean run listed nothing")

    def points(self) -> list[str]:
        """The failpoints this scenario's apply reaches (in APPLY_POINTS order)."""
        return [point for point in APPLY_POINTS if self.counts[point]]

    # -- a trial ---------------------------------------------------------------------------------

    def trial(self, point: str | None = None, nth: int | None = None, delay: float | None = None) -> Trial:
        """One kill (at ``point``'s N-th hit, or after ``delay``; random when not given), then the check."""
        return self.chain([(point, nth, delay)])

    def chain(self, kills: list[tuple[str | None, int | None, float | None]]) -> Trial:
        """Kills one after the other (each run killed is the previous one's "run again"), then a run
        to completion and the check: what a scheduler retrying a crashing job would leave."""
        start = time.monotonic()
        self.reset()
        names, died = [], 0
        for point, nth, delay in kills:
            name, code = self._killed_run(point, nth, delay)
            names.append(name)
            died += code == -signal.SIGKILL
        trial = Trial(self.scenario.name, " ".join(names), killed=died > 0, kills=died)
        failed, error = self.apply_in_process()
        if error is None and failed and not self.scenario.refuse_all:
            failed, error = self.apply_in_process()  # a SKU may fail for a reason worth one more try
        trial.error = error
        found = holdings(self.box, self.marketplace)
        trial.duplicates = sum(1 for held in found.values() if len(held) > 1)
        trial.lost = sum(1 for sku in self.expected if sku not in found)
        trial.wrong = sum(
            1
            for sku, held in found.items()
            if sku in self.expected and sorted(set(held)) != self.expected[sku]
        )
        if error is None:
            trial.unclean = max(0, self.left_to_do() - self.leftover)
        trial.seconds = time.monotonic() - start
        return trial

    def _killed_run(self, point: str | None, nth: int | None, delay: float | None) -> tuple[str, int]:
        if point is not None:
            nth = nth or self.random.randint(1, max(1, self.counts[point]))
            name = f"{point}:#{nth}"
            done = subprocess.run(
                self.apply_command(), cwd=ROOT, env=self.environment(name), capture_output=True, timeout=600
            )
            if done.returncode != -signal.SIGKILL:
                self.survivors.append(
                    (point, f"exit {done.returncode}: {done.stderr.decode(errors='replace')[-300:]}")
                )
            return name, done.returncode
        delay = delay if delay is not None else self.random.uniform(0.2, max(0.5, self.clean_seconds))
        process = subprocess.Popen(
            self.apply_command(),
            cwd=ROOT,
            env=self.environment(),
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        try:
            code = process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            process.send_signal(signal.SIGKILL)
            code = process.wait(timeout=60)
        return f"after {delay:.2f}s", code


@dataclass
class Tally:
    trials: list[Trial] = field(default_factory=list)

    def add(self, trial: Trial) -> None:
        self.trials.append(trial)

    def figures(self) -> dict[str, Any]:
        return {
            "bench": "kills",
            "trials": len(self.trials),
            "kills": sum(t.kills for t in self.trials),
            "at_failpoints": sum(t.killed and ":#" in t.kill for t in self.trials),
            "at_random_times": sum(t.killed and t.kill.startswith("after") for t in self.trials),
            "duplicates": sum(t.duplicates for t in self.trials),
            "lost": sum(t.lost for t in self.trials),
            "wrong_price_or_quantity": sum(t.wrong for t in self.trials),
            "unclean_next_plan": sum(t.unclean for t in self.trials),
            "errors": sum(1 for t in self.trials if t.error),
            "points_killed": sorted(
                {t.kill.partition(":#")[0] for t in self.trials if t.killed and ":#" in t.kill}
            ),
        }


def harnesses(names: list[str], folder: Path, seed: int) -> Iterator[Harness]:
    for index, name in enumerate(names):
        harness = Harness(SCENARIOS[name], folder / name, seed + index)
        try:
            harness.baseline()
            yield harness
        finally:
            harness.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--kills", type=int, default=120, help="at least this many trials in all (default 120)"
    )
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument(
        "--scenario", action="append", choices=sorted(SCENARIOS), help="repeatable; default all"
    )
    options = parser.parse_args(argv)
    names = options.scenario or list(SCENARIOS)
    tally = Tally()
    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="tradepost-kills-") as tmp:
        per_scenario = max(1, -(-options.kills // len(names)))
        for harness in harnesses(names, Path(tmp), options.seed):
            points = harness.points()
            plan: list[str | None] = list(points)
            # The rest of the scenario's share: random failpoints and random times, half each.
            while len(plan) < per_scenario:
                plan.append(harness.random.choice(points) if len(plan) % 2 else None)
            for point in plan:
                trial = harness.trial(point)
                tally.add(trial)
                print(trial.line(), flush=True)
    figures = tally.figures() | {"seconds": round(time.monotonic() - started, 1), "cpus": os.cpu_count()}
    print()
    for key in ("trials", "kills", "at_failpoints", "at_random_times", "duplicates", "lost",
                "wrong_price_or_quantity", "unclean_next_plan", "errors"):  # fmt: skip
        print(f"{key:24} {figures[key]}")
    print(f"{'failpoints killed at':24} {len(figures['points_killed'])} of {len(APPLY_POINTS)}")
    print(json.dumps(figures))
    broken = any(not t.ok for t in tally.trials)
    return 1 if broken else 0


if __name__ == "__main__":
    sys.exit(main())
