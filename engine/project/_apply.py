"""Apply for a project: plan (or read a saved plan), lock, authenticate, send, record.

`tradepost apply` and the end-to-end tests go through here, so what a test proves about
resuming, staleness and locking is what a scheduler run does.
"""

from __future__ import annotations

import tempfile
import time
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Mapping
from contextlib import asynccontextmanager, contextmanager
from itertools import islice
from typing import IO, Any

import httpx

from engine._diagnostics import TradepostError
from engine.connectors._contract import Credentials
from engine.connectors._reader import Reader
from engine.jsonio import dumps, loads
from engine.project._assembly import MarketplaceRun, catalog_records, marketplace_client
from engine.project._config import Project
from engine.secrets._redact import read_secrets, register
from engine.state._ratelimit import account_pacing
from engine.state._store import StateStore
from engine.sync._deletes import MassDelete, mass_delete
from engine.sync._executor import SENT, ApplySummary, Executor, SkuResult, _already_applied, state_matches
from engine.sync._plan import BATCH, Change
from engine.sync._planfile import change_record, rules_fingerprint


class StalePlanError(TradepostError):
    """The state moved on since the plan was made: sending it could undo newer changes."""


def planned_records(run: MarketplaceRun, project: Project, state: StateStore) -> list[dict[str, Any]]:
    """Plan now, as `tradepost plan` would, and return the change records to send, held whole
    (:class:`PlannedApply` streams them)."""
    with PlannedApply(run, project, state) as planned:
        return list(planned)


class PlannedApply:
    """The change records of a plan made now, as they are planned.

    The catalog is read here, under the marketplace's lock, never shared with the marketplaces
    applied before it (as ``plan`` shares VTEX's answers): an answer read before the lock could be
    older than what the real-time worker sent meanwhile, and sending it would put the older stock
    back with no notification left to correct it. Applying a full plan without a failure
    reconciles the marketplace (:attr:`full`, :func:`record_full_apply`).

    Iterated once, by the executor: the first change is sent while the planner is still at work,
    and memory holds a batch of the planner's, not the plan. With ``spool``, the whole plan is made
    first into a temporary file (one change in memory at a time) and read back from there: then
    its deletes are counted before anything is sent, for the mass-delete guard
    (:meth:`for_apply` spools only when the guard could refuse).
    """

    def __init__(
        self, run: MarketplaceRun, project: Project, state: StateStore, *, spool: bool = False
    ) -> None:
        self.planner = run.planner(state)
        self.planner.skipped_rows = False  # an apply sends no unchanged SKU: their rows are not read
        changes = self.planner.changes(catalog_records(project, run.trade_policy))
        self.total: int | None = None
        """How many records there are, once known (a spooled plan); None while they are planned."""
        self._spool: IO[str] | None = None
        if spool:
            self._spool, self.total = _spooled(sent_stream(run, changes))
            self._records = _read_back(self._spool)
        else:
            self._records = sent_stream(run, _seen_as_created(changes, state))

    @classmethod
    def for_apply(
        cls, run: MarketplaceRun, project: Project, state: StateStore, allow_mass_delete: bool
    ) -> tuple[PlannedApply, MassDelete | None]:
        """The plan an apply sends, and the mass delete that needs consent first (None if none does).

        A plan made now deletes only SKUs the state holds, so when even deleting every live listing
        would need no consent (or consent was given), nothing needs counting first and the plan
        streams; otherwise it is spooled and its deletes counted before anything is sent.
        """
        marketplace = run.compiled.marketplace
        live = state.count(marketplace)
        share = project.marketplace(run.name).max_delete_share
        if allow_mass_delete or mass_delete(run.name, live, live, share) is None:
            return cls(run, project, state), None
        planned = cls(run, project, state, spool=True)
        return planned, mass_delete(run.name, planned.deletes, live, share)

    def __iter__(self) -> Iterator[dict[str, Any]]:
        return self._records

    @property
    def deletes(self) -> int:
        """The deletes planned so far (all of them once the plan is spooled or sent)."""
        return self.planner.summary.ops["delete"]

    @property
    def full(self) -> bool:
        """Whether the catalog was read to its end (known once every record was read)."""
        return not self.planner.summary.deletes_skipped

    def __enter__(self) -> PlannedApply:
        return self

    def __exit__(self, *exc: object) -> None:
        close = getattr(self._records, "close", None)
        if close is not None:
            close()  # a run stopped midway ends the planner's pass too (its GC settings restored)
        if self._spool is not None:
            self._spool.close()


def _spooled(records: Iterable[dict[str, Any]]) -> tuple[IO[str], int]:
    """``records`` written to a temporary file (gone once closed), and how many there are."""
    spool = tempfile.TemporaryFile("w+", encoding="utf-8")  # noqa: SIM115 - PlannedApply closes it
    count = 0
    try:
        for record in records:
            spool.write(dumps(record) + "\n")
            count += 1
    except BaseException:
        spool.close()
        raise
    return spool, count


def _read_back(spool: IO[str]) -> Iterator[dict[str, Any]]:
    spool.seek(0)
    for line in spool:
        yield loads(line)


def _seen_as_created(changes: Iterator[Change], state: StateStore) -> Iterator[Change]:
    """The planner's changes, each batch's creates marked seen before any of them is sent.

    The planner finds deletes at the end, as the state's SKUs it did not see in the catalog; it
    marks seen only the SKUs the state held. A create applied while the plan still streams gets a
    state row, and unmarked it would come back as a delete of what was just created.
    """
    while batch := list(islice(changes, BATCH)):
        state.add_seen(change.sku_id for change in batch if change.op == "create")
        yield from batch


def sent_records(run: MarketplaceRun, changes: Iterable[Change]) -> list[dict[str, Any]]:
    """The records of the changes an apply sends (creates, updates, deletes), in plan order."""
    return list(sent_stream(run, changes))


def sent_stream(run: MarketplaceRun, changes: Iterable[Change]) -> Iterator[dict[str, Any]]:
    """:func:`sent_records` as the changes come."""
    for change in changes:
        if change.op in SENT:
            yield change_record(change, run.connector)


def record_full_apply(state: StateStore, marketplace: str, summary: ApplySummary) -> bool:
    """Record a full reconciliation of ``marketplace`` (a config name) if its full plan all applied.

    Only a plan made now from a whole catalog counts (not a saved plan, not `tradepost sync`);
    an apply with a failure is not a reconciliation: what failed still differs.
    """
    if summary.failed:
        return False
    state.record_full_pass(marketplace, "apply", summary.applied, summary.failed)
    return True


def fingerprint_of(run: MarketplaceRun) -> str:
    """The fingerprint of the rules and options a plan for this marketplace is made with now."""
    return rules_fingerprint(run.compiled, run.connector.options)


def check_not_stale(records: Iterable[Mapping[str, Any]], state: StateStore, marketplace: str) -> None:
    """Every change must find the state as the plan saw it, or already applied (a resumed run)."""
    for record in records:
        if record["op"] == "invalid":
            continue
        row = state.get(marketplace, str(record["sku_id"]))
        if not _already_applied(record, row) and not state_matches(record, row):
            raise StalePlanError(
                f"the plan is stale: {marketplace} SKU {record['sku_id']} changed since the plan was made; "
                "run `tradepost plan` again"
            )


def credentials_for(project: Project, name: str) -> Credentials:
    return Credentials(read_secrets(project.marketplace(name).credentials, project.folder))


@contextmanager
def locked(state: StateStore, marketplace: str, holder: str = "tradepost apply") -> Iterator[None]:
    """Hold the marketplace's lock for the block; its lease is renewed until the block ends.

    Raises :class:`~engine.state._store.LockedError` while another live run holds it; a run that loses it
    (lease run out, `tradepost unlock`) stops at its next state statement with ``LockLostError``.
    """
    state.acquire_lock(marketplace, holder)
    try:
        yield
    finally:
        state.release_lock(marketplace)


async def apply_records(
    run: MarketplaceRun,
    project: Project,
    state: StateStore,
    records: Iterable[Mapping[str, Any]],
    *,
    transport: httpx.AsyncBaseTransport | None = None,
    on_result: Callable[[SkuResult], None] | None = None,
    executor_options: dict[str, Any] | None = None,
) -> ApplySummary:
    """Send the records through the marketplace's connector; outcomes go to the state as they come."""
    config = project.marketplace(run.name)
    credentials = credentials_for(project, run.name)
    async with (
        marketplace_client(project, run, transport) as client,
        account_pacing(state, run.name, client.base_url) as bucket,
    ):
        executor = Executor(
            run.connector,
            client,
            state,
            credentials,
            marketplace=run.compiled.marketplace,
            on_result=on_result,
            rate=config.rate_limit,
            bucket=bucket,
            after_auth=lambda: persist_rotated(project, run, credentials),
            **(executor_options or {}),
        )
        started = time.time()
        try:
            summary = await executor.apply(records)
        finally:
            persist_rotated(project, run, credentials)
    figures = {k: v for k, v in summary.to_dict().items() if k != "failures"}  # those are in sku_errors
    state.note_run(run.name, "apply", started, figures)  # the integration log's runs
    return summary


async def authenticate(
    run: MarketplaceRun, project: Project, transport: httpx.AsyncBaseTransport | None = None
) -> None:
    """Get the connector's token now (refreshed when due) and write a rotated refresh token down at
    once; the apply that follows reuses the token. A refusal is left for that apply to report."""
    credentials = credentials_for(project, run.name)
    async with marketplace_client(project, run, transport) as client:
        try:
            await run.connector.auth_headers(client, credentials)
        except TradepostError:
            return
        finally:
            persist_rotated(project, run, credentials)


@asynccontextmanager
async def marketplace_reader(
    project: Project,
    run: MarketplaceRun,
    transport: httpx.AsyncBaseTransport | None,
    options: Mapping[str, Any],
) -> AsyncIterator[Reader]:
    """The connector's :class:`~engine.connectors.Reader` over the marketplace's API, paced at the
    config's ``rate_limit`` (``options`` override it and the retries); on leaving, whatever happened,
    the secrets the marketplace rotated meanwhile are written back (:func:`persist_rotated`)."""
    credentials = credentials_for(project, run.name)
    rate = project.marketplace(run.name).rate_limit
    async with marketplace_client(project, run, transport) as client:
        reader = run.connector.open_reader(client, credentials, **{"rate": rate, **options})
        try:
            yield reader
        finally:
            persist_rotated(project, run, credentials)


def persist_rotated(project: Project, run: MarketplaceRun, credentials: Credentials) -> None:
    """Write back secrets the marketplace rotated, where the config keeps them in a file.

    A refresh token kept in an environment variable cannot be updated from here: the next run
    would fail, so say so instead of losing it silently.
    """
    references = project.marketplace(run.name).credentials
    for name, value in run.connector.rotated_credentials().items():
        if credentials.values.get(name) == value:
            continue
        credentials.values[name] = value
        register(value)
        reference = references.get(name, "")
        if reference.startswith("file:"):
            project.resolve(reference.removeprefix("file:")).write_text(value + "\n", encoding="utf-8")
        else:
            raise TradepostError(
                f"{run.name} rotated its {name}; keep it in a file (credentials: {name}: file:PATH) so "
                "tradepost can store the new one"
            )
