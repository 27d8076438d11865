"""Peak memory of a first apply: a plan made now, and a saved plan, against an in-process stand-in.

    python bench/bench_apply_memory.py --skus 100000 1000000     # catalogs generated under $TMPDIR
    python bench/bench_apply_memory.py --skus 100000 --saved     # also a saved plan, planned then applied
    python bench/bench_apply_memory.py --skus 100000 --hold      # also the plan held in a list first
    python bench/bench_apply_memory.py --skus 100000 --state sqlite,postgresql  # on both backends

For each size, a catalog is generated once with bench/synth.py (seed 1, broken records in), and
each measurement runs in a fresh subprocess so its peak RSS (``VmHWM``) is its own, on each state
backend asked for (``--state``: SQLite by default; PostgreSQL is a throw-away server, as the tests
start one with ``tests/_postgres.py``, an empty database per run):

* ``stream``: what `tradepost apply -m google` does on an empty state: the project's
  rules/google.yaml planned over the catalog file, the changes sent as they are planned through
  the Google stand-in (Merchant API, one request per change) mounted in process (an httpx
  transport to its ASGI app: no network, no pacing); every outcome written to the state.
* ``saved``: `tradepost plan -o` then `tradepost apply plan.json` on a fresh state: the apply
  reads the plan in passes (checked, staleness, sent), in a subprocess of its own.
* ``hold`` (for comparison): the same plan made into a list before the first change is sent, as
  apply did before it streamed.

The stand-in keeps only the input it answered last (its answer is built from it): it stands for
a marketplace, whose memory is not tradepost's. Prints a table and one JSON line per run
(``"bench": "apply_memory"``).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from ruamel.yaml import YAML

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_plan import _catalog, _peak_rss_mb  # noqa: E402  (the same synthetic catalog, generated once per size)

MARKETPLACE = "google"
STATE_URL = "TRADEPOST_BENCH_STATE_URL"
"""The PostgreSQL database of a run's state (its password as ``env:``); unset: an SQLite file."""
PASSWORD_VARIABLE = "TRADEPOST_BENCH_PG"


class _LastOnly(dict[str, Any]):
    """The stand-in's store of inputs, keeping only the one written last."""

    def __setitem__(self, key: str, value: Any) -> None:
        self.clear()
        super().__setitem__(key, value)


def _project(catalog: Path, folder: Path) -> Path:
    """A sandbox project of the Google marketplace alone, over ``catalog``, unpaced."""
    from marketplaces.sandbox import build_sandbox

    box = build_sandbox([])
    box.ports.update(dict.fromkeys(box.standins, 9))  # never connected to: the transport is in process
    config = box.write_project(folder, ROOT / "rules", catalog_from_vtex=False)
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    document["source"]["path"] = str(catalog)
    if os.environ.get(STATE_URL):
        document["state"] = os.environ[STATE_URL]
    document["marketplaces"] = {MARKETPLACE: document["marketplaces"][MARKETPLACE]}
    document["marketplaces"][MARKETPLACE]["rate_limit"] = 1_000_000
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)
    return config


def _measure(mode: str, catalog: Path, folder: Path) -> dict[str, Any]:
    """One run in this process (a subprocess of the bench); its figures."""
    from cli.main import main as tradepost
    from engine.project import (
        PlannedApply,
        apply_records,
        check_not_stale,
        fingerprint_of,
        load_project,
        open_marketplace,
        open_state,
    )
    from engine.sync import SavedPlan, check_plan_rules
    from marketplaces.google.standin import GoogleStandin

    config = _project(catalog, folder)
    plan_file = folder / "plan.json"
    plan_seconds = 0.0
    if mode == "saved":
        start = time.perf_counter()
        subprocess.run(
            [
                sys.executable,
                "-m",
                "cli.main",
                "plan",
                "-c",
                str(config),
                "-m",
                MARKETPLACE,
                "-o",
                str(plan_file),
            ],
            check=True,
            stdout=subprocess.DEVNULL,
            cwd=ROOT,
        )
        plan_seconds = time.perf_counter() - start
    del tradepost
    project = load_project(config)
    run = open_marketplace(project, MARKETPLACE)
    standin = GoogleStandin()
    standin.inputs = _LastOnly()
    start = time.perf_counter()
    with open_state(project) as state:
        if mode == "saved":
            with SavedPlan(plan_file) as saved:
                check_plan_rules(plan_file, saved.document, MARKETPLACE, fingerprint_of(run))
                saved.check(MARKETPLACE, run.connector)
                check_not_stale(saved.changes(MARKETPLACE), state, run.compiled.marketplace)
                summary = asyncio.run(
                    apply_records(
                        run, project, state, saved.changes(MARKETPLACE), transport=standin.transport()
                    )
                )
        else:
            with PlannedApply(run, project, state) as planned:
                records = list(planned) if mode == "hold" else planned
                summary = asyncio.run(
                    apply_records(run, project, state, records, transport=standin.transport())
                )
        stored = state.count(run.compiled.marketplace)
    seconds = time.perf_counter() - start
    return {
        "applied": summary.applied,
        "failed": summary.failed,
        "stored": stored,
        "requests": standin.total_requests(),
        "apply_seconds": round(seconds, 1),
        "plan_seconds": round(plan_seconds, 1),
        "peak_rss_mb": round(_peak_rss_mb(), 1),
    }


def _child(mode: str, catalog: Path, state_url: str | None) -> dict[str, Any]:
    """One run in a subprocess, its state in ``state_url`` (PostgreSQL) or an SQLite file (None)."""
    env = {**os.environ, **({STATE_URL: state_url} if state_url else {})}
    with tempfile.TemporaryDirectory() as folder:
        completed = subprocess.run(
            [sys.executable, __file__, "--child", mode, str(catalog), folder],
            check=True,
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
        )
    return dict(json.loads(completed.stdout.strip().splitlines()[-1]))


def _postgres() -> Any:
    """A throw-away PostgreSQL server (stopped at exit); its password where the runs read it."""
    from tests import _postgres

    server = _postgres.start()
    if isinstance(server, str):
        raise SystemExit(f"no PostgreSQL here: {server}")
    os.environ[PASSWORD_VARIABLE] = _postgres.PASSWORD
    return server


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == "--child":
        print(json.dumps(_measure(sys.argv[2], Path(sys.argv[3]), Path(sys.argv[4]))))
        return
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, nargs="+", default=[100_000])
    parser.add_argument("--saved", action="store_true", help="also apply a saved plan (made first)")
    parser.add_argument("--hold", action="store_true", help="also the plan held in a list, as before")
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()), help="where catalogs go")
    parser.add_argument(
        "--state", default="sqlite", help="state backends, comma-separated: sqlite,postgresql"
    )
    args = parser.parse_args()
    modes = ["stream", *(["saved"] if args.saved else []), *(["hold"] if args.hold else [])]
    backends = args.state.split(",")
    server = _postgres() if "postgresql" in backends else None
    print(
        f"{'SKUs':>9} {'state':>10} {'mode':>7} {'applied':>8} {'requests':>9} {'apply s':>8} "
        f"{'SKUs/s':>7} {'peak MB':>8}"
    )
    lines = []
    for skus in args.skus:
        catalog = _catalog(skus, args.dir)
        for backend, mode in ((backend, mode) for backend in backends for mode in modes):
            url = (
                server.url(server.database(), f"env:{PASSWORD_VARIABLE}") if backend == "postgresql" else None
            )
            figures = _child(mode, catalog, url)
            result = {"bench": "apply_memory", "skus": skus, "state": backend, "mode": mode, **figures}
            rate = result["applied"] / result["apply_seconds"] if result["apply_seconds"] else 0.0
            print(
                f"{skus:>9} {backend:>10} {mode:>7} {result['applied']:>8} {result['requests']:>9} "
                f"{result['apply_seconds']:>8} {rate:>7.0f} {result['peak_rss_mb']:>8}",
                flush=True,
            )
            lines.append(json.dumps(result))
    for line in lines:
        print(line)


if __name__ == "__main__":
    main()
