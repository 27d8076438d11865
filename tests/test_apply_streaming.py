"""Apply streams: memory holds a queue's worth of changes (or a bulk chunk), never the plan.

Given a planner or a saved plan of any size, the executor sends the first change while the
planner is still at work, a connector with feeds gets them chunk by chunk, and a saved plan is
read in passes; what a pass would have refused whole (a truncated or edited file, a mass delete)
is still refused before anything is sent.
"""

from __future__ import annotations

import asyncio
import io
import json
import sys
import tracemalloc
from collections.abc import Callable, Iterator, Mapping, Sequence
from decimal import Decimal
from pathlib import Path
from typing import Any, ClassVar

import httpx
import pytest

from cli._apply import _run_with_progress
from engine.connectors import CallResult, ChangeRecord
from engine.jsonio import dumps, loads
from engine.project import PlannedApply, apply_records, load_project, open_marketplace, open_state
from engine.project import _apply as project_apply
from engine.state._store import StateStore
from engine.sync import _executor, _planfile
from engine.sync._planfile import PlanFileError, PlanWriter, SavedPlan, read_plan
from marketplaces.sandbox import Sandbox, read_catalog
from tests._harness import ROOT, Loopback, tradepost, write_project
from tests.test_executor import ScriptedConnector, record

CATALOG = read_catalog(ROOT / "examples" / "catalog.jsonl")  # 420 SKUs: more than a planner's batch


@pytest.fixture
def state(tmp_path: Path) -> StateStore:
    return StateStore(tmp_path / "state.sqlite")


def ok(request: httpx.Request) -> httpx.Response:
    return httpx.Response(200, json={"ok": True})


def send(
    state: StateStore,
    records: Any,
    connector: ScriptedConnector | None = None,
    handler: Callable[[httpx.Request], Any] = ok,
) -> Any:
    async def main() -> Any:
        transport = httpx.MockTransport(handler)
        async with httpx.AsyncClient(transport=transport, base_url="http://m.test") as client:
            executor = _executor.Executor(connector or ScriptedConnector(), client, state, rate=1e6, seed=1)
            return await executor.apply(records)

    return asyncio.run(main())


def big(sku_id: str) -> dict[str, Any]:
    """A create whose payload carries 2 KB of its own text (as a real listing's description)."""
    change = record(sku_id)
    change["payloads"] = [{"price": Decimal("134.90"), "description": f"{sku_id} " + "x" * 2000}]
    return change


# -- the executor pulls its changes --------------------------------------------------------------


def test_the_first_change_is_sent_before_the_planner_has_made_the_last(state: StateStore) -> None:
    events: list[tuple[str, str]] = []

    def planner() -> Iterator[dict[str, Any]]:
        for n in range(200):
            events.append(("planned", str(1000 + n)))
            yield record(str(1000 + n))

    def handler(request: httpx.Request) -> httpx.Response:
        events.append(("sent", request.url.path.rsplit("/", 1)[-1]))
        return ok(request)

    summary = send(state, planner(), handler=handler)
    assert summary.applied == 200 and state.count("test") == 200
    first_sent = next(i for i, (what, _) in enumerate(events) if what == "sent")
    assert first_sent < events.index(("planned", "1199"))
    ahead = sum(1 for what, _ in events[:first_sent] if what == "planned")
    assert ahead <= 3 * 16 + 1  # the queue (twice the 16 workers), what the workers hold, one more


def test_memory_holds_a_queue_of_changes_not_the_plan(state: StateStore) -> None:
    count = 3000

    def planner() -> Iterator[dict[str, Any]]:
        return (big(str(n)) for n in range(count))

    tracemalloc.start()
    try:
        whole = list(planner())  # what holding the plan in a list costs
        _, held = tracemalloc.get_traced_memory()
        del whole
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        summary = send(state, planner())
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert summary.applied == count
    assert held > 6_000_000  # the plan is several MB...
    assert peak - start < held / 4, (peak - start, held)  # ...and sending it never held a quarter


def test_an_error_of_the_planner_midway_stops_the_run_once_what_it_handed_over_is_recorded(
    state: StateStore,
) -> None:
    def planner() -> Iterator[dict[str, Any]]:
        yield from (record(str(n)) for n in range(40))
        raise PlanFileError("plan.json changed while it was applied")

    async def slow(request: httpx.Request) -> httpx.Response:
        await asyncio.sleep(0.02)  # so that changes are in flight when the planner fails
        return ok(request)

    with pytest.raises(PlanFileError, match="changed while it was applied"):
        send(state, planner(), handler=slow)
    assert state.count("test") == 40  # none of the changes in flight was dropped


class FeedConnector(ScriptedConnector):
    """Bulk from 3 changes on; each apply_in_bulk call is one chunk, recorded."""

    bulk_threshold: ClassVar[int | None] = 3

    def __init__(self, events: list[str]) -> None:
        super().__init__()
        self.events = events

    async def apply_in_bulk(
        self, client: httpx.AsyncClient, headers: Mapping[str, str], changes: Sequence[ChangeRecord]
    ) -> dict[str, CallResult]:
        self.events.append(f"bulk {len(changes)}")
        return {change.sku_id: CallResult(True, remote_id=change.sku_id) for change in changes}


@pytest.mark.parametrize(
    ("changes", "chunks", "requests"),
    [
        (2, [], 2),  # under the threshold: one request per change, as before
        (3, ["bulk 3"], 0),  # at the threshold: bulk
        (10, ["bulk 4", "bulk 4", "bulk 2"], 0),  # then chunk by chunk
    ],
)
def test_bulk_goes_chunk_by_chunk_from_the_threshold_on(
    state: StateStore, monkeypatch: pytest.MonkeyPatch, changes: int, chunks: list[str], requests: int
) -> None:
    monkeypatch.setattr(_executor, "BULK_CHUNK", 4)
    events: list[str] = []

    def planner() -> Iterator[dict[str, Any]]:
        for n in range(changes):
            events.append(f"planned {n}")
            yield record(str(n))

    summary = send(state, planner(), FeedConnector(events))
    assert [e for e in events if e.startswith("bulk")] == chunks
    assert (summary.applied, summary.requests) == (changes, requests) and state.count("test") == changes
    if changes == 10:
        assert events.index("bulk 4") < events.index("planned 9")  # the first chunk left early


def test_bulk_chunks_skip_what_is_applied_already(state: StateStore, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(_executor, "BULK_CHUNK", 4)
    events: list[str] = []
    send(state, [record(str(n)) for n in range(5)], FeedConnector(events))
    summary = send(state, [record(str(n)) for n in range(8)], FeedConnector(events))
    assert events == ["bulk 4", "bulk 1", "bulk 3"]  # the second run's chunks: 0-3 skipped, 4 done
    assert (summary.skipped, summary.applied) == (5, 3)


# -- a plan made now ---------------------------------------------------------------------------------


class Logged(httpx.AsyncBaseTransport):
    """A transport that notes each request it passes on."""

    def __init__(self, inner: httpx.AsyncBaseTransport, events: list[str]) -> None:
        self.inner, self.events = inner, events

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.events.append(f"{request.method} {request.url.path}")
        return await self.inner.handle_async_request(request)


@pytest.fixture
def google(loopback: Loopback, tmp_path: Path) -> tuple[Sandbox, Path]:
    box = loopback.sandbox(CATALOG)
    return box, write_project(box, tmp_path / "project", catalog_from_vtex=False, rate=1000)


def test_a_first_apply_sends_while_it_plans_and_deletes_nothing_it_created(
    google: tuple[Sandbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    box, config = google
    events: list[str] = []
    read = project_apply.catalog_records

    def catalog(project: Any, trade_policy: str) -> Iterator[Any]:
        for item in read(project, trade_policy):
            events.append("read")
            yield item

    monkeypatch.setattr(project_apply, "catalog_records", catalog)
    project = load_project(config)
    run = open_marketplace(project, "google")
    standin = box.standins["google"]
    with open_state(project) as state:
        planned, guard = PlannedApply.for_apply(run, project, state, allow_mass_delete=False)
        assert guard is None and planned.total is None  # nothing live: no delete to count first
        with planned:
            transport = Logged(standin.transport(), events)
            summary = asyncio.run(apply_records(run, project, state, planned, transport=transport))
        assert planned.full and summary.failed == 0
        live = state.count("google")
    first_sent = next(i for i, e in enumerate(events) if e.startswith("POST") and "productInputs" in e)
    assert "read" in events[first_sent:]  # sent while the catalog was still being read
    # Creates recorded while the plan streamed are not taken for SKUs that left the catalog.
    assert not any(e.startswith("DELETE") for e in events)
    assert summary.applied == live == len(standin.inputs) > 300  # type: ignore[attr-defined]


def test_a_mass_delete_is_refused_before_the_creates_planned_ahead_of_it_are_sent(
    google: tuple[Sandbox, Path],
) -> None:
    box, config = google
    catalog = config.parent / "catalog.jsonl"
    text = config.read_text(encoding="utf-8")
    config.write_text(text.replace(str(ROOT / "examples" / "catalog.jsonl"), str(catalog)), encoding="utf-8")
    catalog.write_text("".join(json.dumps(r) + "\n" for r in CATALOG[:100]), encoding="utf-8")
    code, _, err = tradepost("apply", "-c", str(config), "-m", "google")
    assert code == 0, err
    standin = box.standins["google"]
    before, listed = standin.total_requests(), len(standin.inputs)  # type: ignore[attr-defined]
    catalog.write_text("".join(json.dumps(r) + "\n" for r in CATALOG[100:300]), encoding="utf-8")
    code, _, err = tradepost("apply", "-c", str(config), "-m", "google")
    assert code == 1 and "refusing to delete" in err and "nothing was sent" in err
    assert standin.total_requests() == before and len(standin.inputs) == listed  # type: ignore[attr-defined]
    code, _, err = tradepost("apply", "-c", str(config), "-m", "google", "--allow-mass-delete")
    assert code == 0, err
    listed_now = {i["offerId"] for i in standin.inputs.values()}  # type: ignore[attr-defined]
    assert listed_now <= {str(r["sku"]["id"]) for r in CATALOG[100:300]}


class Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_on_a_terminal_counts_without_a_total(
    google: tuple[Sandbox, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    _, config = google
    screen = Terminal()
    monkeypatch.setattr(sys, "stderr", screen)
    project = load_project(config)
    run = open_marketplace(project, "google")
    with open_state(project) as state, PlannedApply(run, project, state) as planned:
        summary = _run_with_progress(run, project, state, planned, planned.total, quiet=False)
    assert summary.applied > 300 and summary.failed == 0
    assert f"{summary.applied}/?" in screen.getvalue()  # the bar's count, of a total not known


# -- a saved plan, read in passes --------------------------------------------------------------------


def saved_plan(config: Path) -> Path:
    plan = config.parent / "plan.json"
    code, _, err = tradepost("plan", "-c", str(config), "-m", "google", "-o", str(plan))
    assert code == 0, err
    return plan


def last_change(document: dict[str, Any]) -> dict[str, Any]:
    return next(c for c in reversed(document["marketplaces"]["google"]["changes"]) if c["op"] == "create")


def cut_the_trailer(plan: Path) -> None:
    plan.write_bytes(plan.read_bytes()[:-40])


def edit_the_last(plan: Path) -> None:
    document = loads(plan.read_bytes())
    last_change(document)["after"]["price"] = "0.01"
    plan.write_text(dumps(document), encoding="utf-8")


def drop_the_last(plan: Path) -> None:
    document = loads(plan.read_bytes())
    document["marketplaces"]["google"]["changes"].remove(last_change(document))
    plan.write_text(dumps(document), encoding="utf-8")


@pytest.mark.parametrize(
    ("damage", "message"),
    [
        (cut_the_trailer, "is not a valid tradepost plan (not JSON: "),
        (edit_the_last, "was edited after the plan was made"),
        (drop_the_last, "changes were removed or added after the plan was made"),
    ],
    ids=["truncated", "last-edited", "last-removed"],
)
def test_a_plan_damaged_at_its_end_is_refused_with_nothing_sent(
    google: tuple[Sandbox, Path], damage: Callable[[Path], None], message: str
) -> None:
    box, config = google
    plan = saved_plan(config)
    damage(plan)
    code, _, err = tradepost("apply", str(plan), "-c", str(config))
    assert code == 1 and message in err, err
    assert box.standins["google"].total_requests() == 0


def test_an_intact_saved_plan_is_sent_from_its_passes(google: tuple[Sandbox, Path]) -> None:
    box, config = google
    plan = saved_plan(config)
    creates = sum(1 for c in read_plan(plan)["marketplaces"]["google"]["changes"] if c["op"] == "create")
    code, out, err = tradepost("apply", str(plan), "-c", str(config), "--json")
    assert code == 0, err
    [summary] = json.loads(out)["marketplaces"]
    assert summary["applied"] == creates == len(box.standins["google"].inputs) > 300  # type: ignore[attr-defined]


@pytest.mark.parametrize("chunk", [1, 7, 4096])
def test_the_streaming_reader_reads_what_the_whole_reader_reads(
    google: tuple[Sandbox, Path], monkeypatch: pytest.MonkeyPatch, chunk: int
) -> None:
    """Values cut anywhere by a chunk's end (a number, a string, an escape) read the same."""
    _, config = google
    plan = saved_plan(config)
    expected = loads(plan.read_bytes())
    monkeypatch.setattr(_planfile, "_CHUNK", chunk)
    assert read_plan(plan) == expected
    with SavedPlan(plan) as saved:
        assert list(saved.changes("google")) == expected["marketplaces"]["google"]["changes"]


def test_reading_a_saved_plan_holds_a_chunk_not_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    plan = tmp_path / "plan.json"
    writer = PlanWriter(plan)
    writer.begin("test", "rules.yaml", "0:0", "sha256:x")
    for n in range(2000):
        writer.change({**big(str(n)), "marketplace": "test"})
    writer.end({"create": 2000})
    writer.close()
    monkeypatch.setattr(_planfile, "_CHUNK", 1 << 16)
    tracemalloc.start()
    try:
        whole = read_plan(plan)
        _, held = tracemalloc.get_traced_memory()
        del whole
        tracemalloc.reset_peak()
        start, _ = tracemalloc.get_traced_memory()
        with SavedPlan(plan) as saved:
            read = sum(1 for _ in saved.changes("test"))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert read == 2000 and plan.stat().st_size > 4_000_000
    assert peak - start < held / 10, (peak - start, held)
