"""`tradepost state migrate` of a large SQLite state into PostgreSQL: rows per second and peak RSS.

    python bench/bench_migrate.py --listings 100000 1000000   # states generated under $TMPDIR

For each size, an SQLite state of that many listings (three marketplaces, every SKU with a
remote id) plus as many per-SKU errors as a hundredth of them is written once; a throw-away
PostgreSQL server starts (``tests/_postgres.py``: Debian's ``postgresql`` package), and the real
command runs as its own process into a fresh database, so its peak RSS is its own. Prints a
table and one JSON line per size (``"bench": "migrate"``).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from engine.state import StateStore  # noqa: E402
from engine.state._store import AppliedListing  # noqa: E402
from tests import _postgres  # noqa: E402

MARKETPLACES = ("mercadolibre", "amazon", "google")
BATCH = 50_000


def _state(listings: int, folder: Path) -> Path:
    """An SQLite state of ``listings`` rows (made once, kept for the next run)."""
    path = folder / f"state-{listings}.sqlite"
    if path.exists():
        return path
    partial = path.with_suffix(".partial")
    partial.unlink(missing_ok=True)
    with StateStore(partial) as store:
        for start in range(0, listings, BATCH):
            numbers = range(start, min(start + BATCH, listings))
            marketplace = MARKETPLACES[start // BATCH % len(MARKETPLACES)]
            store.record_applied(
                marketplace,
                (
                    AppliedListing(
                        f"{n:08}", f"p{n // 4}", f"{n:064x}", Decimal("129.90"), None, n % 50, f"R{n}"
                    )
                    for n in numbers
                ),
            )
            for n in numbers[::100]:
                store.record_error(marketplace, f"{n:08}", "gtin: not a valid GTIN-13")
    partial.rename(path)
    return path


def _migrate(server: _postgres.Server, source: Path, folder: Path) -> dict[str, float]:
    config = folder / "tradepost.yaml"
    url = server.url(server.database(), "env:TRADEPOST_BENCH_PG")
    config.write_text(f"source: {{type: file, path: catalog.jsonl}}\nstate: {url}\nmarketplaces: {{}}\n")
    env = {**os.environ, "TRADEPOST_BENCH_PG": _postgres.PASSWORD, "PYTHONPATH": str(ROOT)}
    command = [sys.executable, "-m", "cli.main", "state", "migrate", "-c", str(config), "--from", str(source)]
    start = time.perf_counter()
    with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
        child = subprocess.Popen([*command, "--json"], stdout=out, stderr=err, env=env)
        _, status, usage = os.wait4(child.pid, 0)  # this child's own peak RSS, not the server's
        child.returncode = os.waitstatus_to_exitcode(status)
        seconds = time.perf_counter() - start
        out.seek(0)
        err.seek(0)
        if child.returncode != 0:
            raise SystemExit(f"migrate failed: {err.read()}")
        summary = json.loads(out.read())
    assert summary["verified"], summary
    return {
        "rows": summary["rows"],
        "seconds": round(seconds, 2),
        "copy_seconds": summary["seconds"],
        "rows_per_s": round(summary["rows"] / summary["seconds"]),
        "peak_rss_mb": round(usage.ru_maxrss / 1024, 1),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--listings", type=int, nargs="+", default=[100_000])
    args = parser.parse_args()
    server = _postgres.start()
    if isinstance(server, str):
        raise SystemExit(f"no PostgreSQL: {server}")
    folder = Path(tempfile.gettempdir()) / "tradepost-bench-migrate"
    folder.mkdir(exist_ok=True)
    try:
        print(f"{'listings':>10}  {'rows':>10}  {'seconds':>8}  {'rows/s':>8}  {'peak RSS MB':>11}")
        for listings in args.listings:
            figures = _migrate(server, _state(listings, folder), folder)
            print(
                f"{listings:>10}  {figures['rows']:>10}  {figures['seconds']:>8}  "
                f"{figures['rows_per_s']:>8}  {figures['peak_rss_mb']:>11}"
            )
            print(json.dumps({"bench": "migrate", "listings": listings, **figures}))
    finally:
        server.stop()


if __name__ == "__main__":
    main()
