"""A full plan of one marketplace over a synthetic catalog: SKUs per second and peak RSS.

    python bench/bench_plan.py --skus 100000 1000000        # generates catalogs under $TMPDIR
    python bench/bench_plan.py --skus 20000 --check-only    # only check engine and baseline agree
    python bench/bench_plan.py --skus 20000 --ratio-only    # only time engine and baseline (no re-plan)
    python bench/bench_plan.py --skus 100000 --replan-only  # only the re-plan with 1% changed
    python bench/bench_plan.py --skus 100000 --state postgresql  # the state on PostgreSQL
    python bench/bench_plan.py --skus 1000000 --state postgresql --sides engine  # only the engine
    python bench/bench_plan.py --skus 20000 --instructions  # instructions a record (valgrind)
    python bench/bench_plan.py --skus 20000 --interleaved 5  # both sides in one process, in turns

For each size, a catalog is generated once with bench/synth.py (deterministic, seed 1), then
three measurements run, each in a fresh subprocess so peak RSS is its own:

* ``engine``: `tradepost plan` minus the printing: the compiled rules/mercadolibre.yaml run by
  the Planner over the streamed catalog, diffed against an empty SQLite state store. Compiling
  the rule file (and importing the connector's plug-in) is timed apart, as ``compile``: the
  hand-written side has no such step, and its cost does not grow with the catalog (0.15 s).
* ``handwritten``: bench/handwritten.py, the same transformation written by hand in Python,
  over the same streamed catalog.
* ``replan``: the engine's first plan into an SQLite state store, its creates recorded as an
  apply records them (each row with its record's source hash), then 1% of the lines changed (a
  product name, every 100th line) and the catalog planned again: the incremental full pass, as
  apply plans it (the state rows of the lines skipped are not read: apply sends no unchanged SKU).
  Its figure is the ratio re-plan / first plan (goal <= 0.15).

``--state postgresql`` keeps the state store in a throw-away PostgreSQL server (as the tests start
one: ``tests/_postgres.py``), an empty database per measurement, instead of an SQLite file.

Times are CPU seconds of the measuring process (``time.process_time``), besides wall seconds:
other work on the machine stretches wall time, not CPU time, so the ratios hold on a busy host.
A shared virtual machine still moves CPU seconds by a fifth from run to run, so two more ways:
``--interleaved RUNS`` times both sides in one process, taking turns of 200 records and adding up
each side's CPU (a slower spell of the machine lands on both: runs agree within a few percent),
and ``--instructions`` counts (valgrind's callgrind, the same count on every run): each side over
the catalog's first 2,000 and first 6,000 lines, the difference over 4,000 records, so imports,
the compile and start-up cancel out. The engine's line hash (XXH3-128, for the incremental pass)
is printed apart.

Before timing, both are run over the first 5,000 records and must give the same listings
(price, sale price, quantity, category, content) and the same invalid SKUs. Prints a table
and one JSON line per size (``"bench": "plan"``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from itertools import islice
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))
STATE_URL = "TRADEPOST_BENCH_STATE_URL"
"""The PostgreSQL database a measurement's state goes to (``--state postgresql``); unset: SQLite."""


def _catalog(skus: int, folder: Path) -> Path:
    path = folder / f"catalog-{skus}.jsonl"
    if not path.exists():
        from synth import write_jsonl

        with path.open("w", encoding="utf-8") as out:
            write_jsonl(out, skus, seed=1, broken=True)
    return path


def _planner(state: Any) -> Any:
    import engine
    from engine.connectors import connector_class
    from engine.sync._plan import Planner

    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    return Planner(compiled, connector_class("mercadolibre")({}), state)


def _measure(kind: str, catalog: Path) -> dict[str, float]:
    """Run one side in this process (called in a subprocess) and return its figures."""
    from handwritten import listing_for

    import engine
    from engine.state._store import StateStore
    from engine.sync._source import FileSource

    if kind == "replan":
        return _replan(catalog)
    if kind == "interleaved":
        return _interleaved(catalog)
    if kind in ("hash", "lines"):
        return _hashes(catalog, kind == "hash")
    listed = invalid = 0
    compiling = 0.0
    if kind == "engine":
        with (
            tempfile.TemporaryDirectory() as tmp,
            StateStore(os.environ.get(STATE_URL) or Path(tmp) / "state.sqlite") as state,
        ):
            compiling = time.process_time()
            planner = _planner(state)
            compiling = time.process_time() - compiling
            start, cpu = time.perf_counter(), time.process_time()
            for change in planner.changes(FileSource(catalog)):
                if change.op == "create":
                    listed += 1
                elif change.op == "invalid":
                    invalid += 1
    else:
        start, cpu = time.perf_counter(), time.process_time()
        for item in FileSource(catalog):
            if isinstance(item, engine.MalformedRecord):
                invalid += 1
                continue
            result = listing_for(item)
            if isinstance(result, list):
                invalid += 1
            elif result is not None:
                listed += 1
    seconds, cpu = time.perf_counter() - start, time.process_time() - cpu
    return {
        "seconds": seconds,
        "cpu_seconds": cpu,
        "compile_cpu_seconds": compiling,
        "peak_rss_mb": _peak_rss_mb(),
        "listed": listed,
        "invalid": invalid,
    }


INTERLEAVE = 200
"""Records each side plans in its turn (``--interleaved``): some 20 ms, short enough that a change
in the machine's speed lands on both sides alike."""


def _interleaved(catalog: Path) -> dict[str, float]:
    """Both sides in this one process, :data:`INTERLEAVE` records each in turn, the CPU of each turn
    added to its side's: the ratio of the sums, steady within a few percent where runs apart differ
    by a fifth. The hand-written side runs with the interpreter's own collector settings (the
    planner changes them for itself, and its generator is suspended between its turns)."""
    import gc

    from handwritten import listing_for

    import engine
    from engine.state._store import StateStore
    from engine.sync._source import FileSource

    cpu = {"engine": 0.0, "handwritten": 0.0}
    with (
        tempfile.TemporaryDirectory() as tmp,
        StateStore(os.environ.get(STATE_URL) or Path(tmp) / "state.sqlite") as state,
    ):
        planner = _planner(state)
        changes = planner.changes(FileSource(catalog))
        items = iter(FileSource(catalog))
        defaults = gc.get_threshold()
        engine_left = handwritten_left = True
        while engine_left or handwritten_left:
            if handwritten_left:
                planner_settings = gc.get_threshold()
                gc.set_threshold(*defaults)
                gc.unfreeze()
                start = time.process_time()
                handwritten_left = False
                for count, item in enumerate(items, 1):
                    if not isinstance(item, engine.MalformedRecord):
                        listing_for(item)
                    if count == INTERLEAVE:
                        handwritten_left = True
                        break
                cpu["handwritten"] += time.process_time() - start
                gc.set_threshold(*planner_settings)
                gc.freeze()
            if engine_left:
                start = time.process_time()
                target = planner.summary.records + INTERLEAVE
                engine_left = False
                for _ in changes:
                    if planner.summary.records >= target:
                        engine_left = True
                        break
                cpu["engine"] += time.process_time() - start
    return {
        "engine_cpu_seconds": cpu["engine"],
        "handwritten_cpu_seconds": cpu["handwritten"],
        "ratio": cpu["engine"] / cpu["handwritten"],
    }


def _replan(catalog: Path) -> dict[str, float]:
    """CPU seconds of a first plan and of a re-plan with 1% of the lines changed, on one state."""
    from engine.state._store import StateStore, applied_from
    from engine.sync._source import FileSource

    with (
        tempfile.TemporaryDirectory() as tmp,
        StateStore(os.environ.get(STATE_URL) or Path(tmp) / "state.sqlite") as state,
    ):
        changed = _changed_copy(catalog, Path(tmp) / "changed.jsonl")
        cpu = time.process_time()
        planner = _planner(state)
        rows = [
            applied_from(c.listing, None, c.source_hash)
            for c in planner.changes(FileSource(catalog))
            if c.op == "create" and c.listing is not None
        ]
        first = time.process_time() - cpu
        for at in range(0, len(rows), 1000):  # what apply records as the changes land
            state.record_applied("mercadolibre", rows[at : at + 1000])
        cpu = time.process_time()
        planner = _planner(state)
        planner.skipped_rows = False  # as apply plans: it sends no unchanged SKU
        updated = sum(1 for c in planner.changes(FileSource(changed)) if c.op == "update")
        again = time.process_time() - cpu
    return {
        "first_cpu_seconds": first,
        "replan_cpu_seconds": again,
        "ratio": again / first,
        "applied": len(rows),
        "skipped": planner.summary.skipped,
        "updated": updated,
        "peak_rss_mb": _peak_rss_mb(),
    }


def _changed_copy(catalog: Path, path: Path, every: int = 100) -> Path:
    """The catalog with every ``every``-th line's product name changed: 1% of the SKUs by default."""
    with catalog.open("rb") as lines, path.open("wb") as out:
        for number, line in enumerate(lines, 1):
            out.write(line.replace(b'"name": "', b'"name": "Novo ', 1) if number % every == 0 else line)
    return path


def _peak_rss_mb() -> float:
    """This process's own peak RSS. ``ru_maxrss`` would not do: Linux carries the parent's
    high-water mark into a child across fork and exec, so every child would report the parent's."""
    with open("/proc/self/status", encoding="ascii") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def _same_results(catalog: Path, records: int = 5000) -> None:
    """Engine and baseline must agree before their speeds are worth comparing."""
    from handwritten import listing_for

    import engine
    from engine.connectors import connector_class
    from engine.sync._plan import Planner
    from engine.sync._source import FileSource

    compiled = engine.compile_rules(ROOT / "rules" / "mercadolibre.yaml")
    planner = Planner(compiled, connector_class("mercadolibre")({}))
    items = [i for i in islice(FileSource(catalog), records) if not isinstance(i, engine.MalformedRecord)]
    engine_changes = {c.sku_id: c for c in planner.changes(items)}
    for item in items:
        mine = listing_for(item)
        theirs = engine_changes.get(item.sku.id)
        if mine is None:
            assert theirs is None, f"{item.sku.id}: baseline excludes, engine says {theirs and theirs.op}"
        elif isinstance(mine, list):
            assert theirs is not None and theirs.op == "invalid", f"{item.sku.id}: baseline invalid {mine}"
        else:
            assert theirs is not None and theirs.listing is not None, f"{item.sku.id}: engine {theirs}"
            a, b = mine, theirs.listing
            assert (a.price, a.sale_price, a.quantity, a.category, a.group) == (
                b.price,
                b.sale_price,
                b.quantity,
                b.category,
                b.group,
            ), f"{item.sku.id}: {a} != {b}"
            assert a.content_hash() == b.content_hash(), f"{item.sku.id}: {a.fields} != {b.fields}"


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--skus", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--dir", type=Path, default=Path(tempfile.gettempdir()) / "tradepost-bench")
    parser.add_argument("--check-only", action="store_true")
    parser.add_argument("--ratio-only", action="store_true", help="only engine and handwritten, no re-plan")
    parser.add_argument("--replan-only", action="store_true", help="only the re-plan with 1%% changed")
    parser.add_argument("--state", choices=("sqlite", "postgresql"), default="sqlite")
    parser.add_argument(
        "--sides",
        nargs="+",
        choices=("handwritten", "engine", "replan"),
        help="only these measurements (default: all three)",
    )
    parser.add_argument(
        "--instructions", action="store_true", help="count instructions a record under valgrind instead"
    )
    parser.add_argument(
        "--interleaved",
        type=int,
        metavar="RUNS",
        help="time both sides in one process, taking turns, RUNS times; print each ratio and the median",
    )
    parser.add_argument("--measure", nargs=2, metavar=("KIND", "CATALOG"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.measure:
        print(json.dumps(_measure(args.measure[0], Path(args.measure[1]))))
        return
    args.dir.mkdir(parents=True, exist_ok=True)
    server = _postgres_server() if args.state == "postgresql" else None
    columns = ("seconds", "SKUs/s", "peak RSS MB", "listed", "invalid", "CPU seconds")
    print(f"{'SKUs':>10} {'side':>12} " + " ".join(f"{c:>12}" for c in columns))
    for skus in args.skus:
        catalog = _catalog(skus, args.dir)
        _same_results(catalog)
        if args.check_only:
            print(f"{skus:>10} engine and handwritten agree on the first 5,000 records")
            continue
        if args.instructions:
            _print_instructions(catalog, args.dir)
            continue
        if args.interleaved:
            _print_interleaved(skus, catalog, args.interleaved, server)
            continue
        figures = {}
        kinds = ("replan",) if args.replan_only else tuple(args.sides or ("handwritten", "engine", "replan"))
        kinds = tuple(k for k in kinds if k != "replan") if args.ratio_only else kinds
        for kind in kinds:
            if server is not None:
                os.environ[STATE_URL] = server.url(server.database())
            figures[kind] = _run(kind, catalog)
            f = figures[kind]
            if kind == "replan":
                continue
            print(
                f"{skus:>10} {kind:>12} {f['seconds']:>12.1f} {skus / f['seconds']:>12,.0f} "
                f"{f['peak_rss_mb']:>12.1f} {f['listed']:>12} {f['invalid']:>12} {f['cpu_seconds']:>12.1f}"
            )
        ratio = None
        if "engine" in figures and "handwritten" in figures:
            ratio = figures["engine"]["cpu_seconds"] / figures["handwritten"]["cpu_seconds"]
            print(
                f"{skus:>10} {'ratio':>12} {ratio:>11.2f}x (engine CPU / handwritten CPU; goal <= 1.0; "
                f"the engine's compile apart: {figures['engine']['compile_cpu_seconds']:.2f} s)"
            )
        if (replan := figures.get("replan")) is not None:
            print(
                f"{skus:>10} {'re-plan':>12} {replan['ratio']:>11.3f}x (1% changed: re-plan / first plan, "
                f"CPU: {replan['replan_cpu_seconds']:.2f} s / {replan['first_cpu_seconds']:.2f} s; "
                f"{replan['skipped']:,} skipped, {replan['updated']:,} updated; goal <= 0.15)"
            )
        print(
            json.dumps(
                {
                    "bench": "plan",
                    "skus": skus,
                    "cpus": os.cpu_count(),
                    "state": args.state,
                    **({} if ratio is None else {"ratio": round(ratio, 3)}),
                    **{f"{k}_{m}": round(v, 3) for k, f in figures.items() for m, v in f.items()},
                }
            )
        )


def _print_interleaved(skus: int, catalog: Path, runs: int, server: Any) -> None:
    """The ratio of ``runs`` interleaved measurements, each in a fresh process, and their median."""
    ratios = []
    for _ in range(runs):
        if server is not None:
            os.environ[STATE_URL] = server.url(server.database())
        f = _run("interleaved", catalog)
        ratios.append(f["ratio"])
        print(
            f"{skus:>10} {'interleaved':>12} engine {f['engine_cpu_seconds']:.2f} s, hand-written "
            f"{f['handwritten_cpu_seconds']:.2f} s of CPU: {f['ratio']:.3f}x"
        )
    median = statistics.median(ratios)
    print(f"{skus:>10} {'ratio':>12} {median:>11.3f}x (median of {runs} interleaved runs; goal <= 1.0)")
    figures = {"bench": "plan-interleaved", "skus": skus, "ratios": ratios, "ratio": round(median, 3)}
    print(json.dumps(figures))


INSTRUCTION_SIZES = (2000, 6000)
"""The two runs of each side under callgrind: their difference is 4,000 records' instructions."""


def _print_instructions(catalog: Path, folder: Path) -> None:
    """Instructions a record of each side, and of the engine's line hash, from callgrind."""
    small, large = INSTRUCTION_SIZES
    heads = {n: _head(catalog, n, folder) for n in (small, large)}
    kinds = ("handwritten", "engine", "hash", "lines")
    runs = [(kind, n) for kind in kinds for n in (small, large)]
    with ThreadPoolExecutor(max_workers=os.cpu_count() or 1) as pool:
        counts = dict(zip(runs, pool.map(lambda run: _counted(run[0], heads[run[1]]), runs), strict=True))
    per = {kind: (counts[kind, large] - counts[kind, small]) / (large - small) for kind in kinds}
    per["hash"] -= per.pop("lines")  # the hashing, not the reading of the lines it hashes
    ratio = per["engine"] / per["handwritten"]
    print(f"instructions a record (callgrind, records {small + 1:,} to {large:,} of {catalog.name}):")
    print(f"{'handwritten':>24} {per['handwritten']:>12,.0f}")
    print(f"{'engine':>24} {per['engine']:>12,.0f}  {ratio:.3f}x the hand-written rules (goal <= 1.0)")
    print(f"{'of which the line hash':>24} {per['hash']:>12,.0f}  (XXH3-128, for the incremental pass)")
    print(
        json.dumps({"bench": "plan-instructions", "records": large - small, "ratio": round(ratio, 3), **per})
    )


def _head(catalog: Path, lines: int, folder: Path) -> Path:
    path = folder / f"{catalog.stem}-head-{lines}.jsonl"
    with catalog.open("rb") as source, path.open("wb") as out:
        out.writelines(islice(source, lines))
    return path


def _counted(kind: str, catalog: Path) -> int:
    """Instructions callgrind counted in one measurement (``hash``: the engine's line hash alone)."""
    valgrind = shutil.which("valgrind")
    if valgrind is None:
        raise SystemExit("--instructions needs valgrind (Debian: apt-get install valgrind)")
    command = [valgrind, "--tool=callgrind", "--callgrind-out-file=/dev/null", sys.executable]
    command += [__file__, "--measure", kind, str(catalog)]
    out = subprocess.run(command, check=True, capture_output=True, text=True, cwd=ROOT)
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"callgrind printed no count: {out.stderr[-500:]}")
    return int(found.group(1))


def _hashes(catalog: Path, hashing: bool) -> dict[str, float]:
    """The engine's line hash over the catalog's lines (``hash``), or the same loop without it
    (``lines``): ``--instructions`` takes one from the other."""
    from engine.sync._source import source_hash

    key = bytes(32)
    cpu = time.process_time()
    with catalog.open("rb") as lines:
        for line in lines:
            text = line.rstrip(b"\n")
            if hashing:
                source_hash(text, key)
    return {"cpu_seconds": time.process_time() - cpu}


def _postgres_server() -> Any:
    """A throw-away PostgreSQL server, stopped at exit: a SIGTERM (``timeout``, ``kill``) exits
    through it too, so no server is left running the measurement's query."""
    from tests import _postgres

    signal.signal(signal.SIGTERM, lambda number, frame: sys.exit(128 + number))
    server = _postgres.start()
    if isinstance(server, str):
        raise SystemExit(f"no PostgreSQL here: {server}")
    return server


def _run(kind: str, catalog: Path) -> dict[str, float]:
    """One measurement in a fresh subprocess, so its peak RSS is its own."""
    out = subprocess.run(
        [sys.executable, __file__, "--measure", kind, str(catalog)],
        check=True,
        capture_output=True,
        text=True,
        cwd=ROOT,
    )
    figures: dict[str, float] = json.loads(out.stdout.strip().splitlines()[-1])
    return figures


if __name__ == "__main__":
    main()
