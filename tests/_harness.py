"""The test harness: stand-ins on one loopback server per session, projects that use them, the CLI.

A test that needs the marketplaces over real sockets asks ``conftest``'s ``loopback`` fixture
for stand-ins seeded from its records (``loopback.sandbox(records)``): it gets fresh ones (nothing
a previous test sold, listed or broke survives), reached through relays served on 127.0.0.1 once
per session, so no test pays for starting and stopping servers. :func:`write_project` writes the
sandbox project every such test starts from, paced for stand-ins that set no rate limit. The CLI
runs two ways, both as a user runs it: :func:`tradepost` in process (milliseconds), and
:func:`tradepost_process` as its own process (what a scheduler runs, and what a SIGKILL test needs).

A connector test drives one connector's hooks against its stand-in in process, as the executor
drives them, one attempt each: :func:`drive` runs a scenario with a :class:`Session` whose client
reaches the stand-in through its ASGI transport (``auth_headers``, ``calls_for``, send,
``result_of``).
"""

from __future__ import annotations

import asyncio
import atexit
import dataclasses
import io
import json
import os
import select
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Iterable, Mapping
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any, Generic, TypeVar
from unittest.mock import patch

import httpx
from ruamel.yaml import YAML
from starlette.applications import Starlette
from starlette.types import Receive, Scope, Send

from bench.bench_kills import subset as subset
from cli.main import main
from engine.connectors import BadOrder, Call, CallResult, Connector, Credentials
from engine.jsonio import dumps
from engine.orders import Order
from engine.project._apply import apply_records, planned_records
from engine.project._assembly import open_marketplace, open_state
from engine.project._config import load_project
from marketplaces._standin import Faults, Standin
from marketplaces.sandbox import Sandbox, build_sandbox

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "catalog.jsonl"

FAST_RATE = 400.0
"""Requests per second a test project allows each marketplace. The stand-ins set no rate limit,
and pacing at the real marketplaces' (5 a second for Amazon and Google) would spend minutes of the
suite waiting; pacing itself is tested on its own (``TokenBucket``, the stand-ins' 429s)."""

FAST_RETRIES = {"base_delay": 0.001, "max_delay": 0.01, "max_attempts": 12}
"""Executor options for fault tests: every retry still happens, without its real back-off."""

S = TypeVar("S", bound=Standin)
C = TypeVar("C", bound=Connector)
T = TypeVar("T")


# -- a connector against its stand-in, in process ----------------------------------------------


@dataclasses.dataclass
class Session(Generic[S, C]):
    """One connector talking to one stand-in through an in-process client: a one-attempt executor."""

    standin: S
    connector: C
    client: httpx.AsyncClient
    credentials: Credentials

    async def headers(self) -> dict[str, str]:
        return await self.connector.auth_headers(self.client, self.credentials)

    async def send(self, call: Call) -> tuple[CallResult, httpx.Response]:
        """One request of a change, once: what the connector makes of the answer, and the answer."""
        headers = await self.headers()
        if call.body is not None:
            headers["Content-Type"] = "application/json"
        response = await self.client.request(
            call.method,
            call.path,
            params=dict(call.params or {}),
            content=None if call.body is None else dumps(call.body).encode(),
            headers=headers,
        )
        return self.connector.result_of(call, response), response

    async def apply(self, change: Mapping[str, Any], remote_id: str | None = None) -> list[CallResult]:
        """Every call of the change, stopping at the first that fails (as the executor does)."""
        results = []
        for call in self.connector.calls_for(change, remote_id):
            result, _ = await self.send(call)
            results.append(result)
            if not result.ok:
                break
        return results

    async def one(self, change: Mapping[str, Any], remote_id: str | None = None) -> CallResult:
        """The result of a change that is one call."""
        (result,) = await self.apply(change, remote_id)
        return result

    async def create(self, change: Mapping[str, Any]) -> CallResult:
        """A create that must succeed in one call."""
        result = await self.one(change)
        assert result.ok, result.error
        return result


def drive(
    scenario: Callable[[Any], Awaitable[T]],
    standin: S,
    connector: C,
    credentials: Mapping[str, str],
    session: type[Session[S, C]] = Session,
) -> T:
    """Run ``scenario`` with a ``session`` of ``connector`` and ``standin`` holding ``credentials``."""

    async def main() -> T:
        async with httpx.AsyncClient(transport=standin.transport(), base_url="http://standin.test") as client:
            return await scenario(session(standin, connector, client, Credentials(dict(credentials))))

    return asyncio.run(main())


# -- the stand-ins on loopback -------------------------------------------------------------------


class _Relay(Standin):
    """Serves whatever stand-in the current test's sandbox holds under its name."""

    def __init__(self, loopback: Loopback, name: str) -> None:
        self.loopback, self.name = loopback, name
        super().__init__()

    def build(self) -> Starlette:
        return Starlette()

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        await self.loopback.current.standins[self.name](scope, receive, send)


class Loopback:
    """One server per stand-in kind on 127.0.0.1 for the whole session, relaying to fresh stand-ins."""

    def __init__(self) -> None:
        self.current = build_sandbox([])
        self.server = Sandbox({name: _Relay(self, name) for name in self.current.standins})
        self.server.start()

    def attach(self, box: Sandbox) -> Sandbox:
        """Serve ``box``'s stand-ins (built, never started) at the session's ports from now on."""
        box.host = self.server.host
        box.ports.update(self.server.ports)
        self.current = box
        return box

    def sandbox(
        self,
        records: Iterable[Mapping[str, Any]],
        faults: Faults | None = None,
        rate_limit: float | None = None,
    ) -> Sandbox:
        """Fresh stand-ins seeded from ``records``, as ``tradepost sandbox`` builds them, served here."""
        return self.attach(build_sandbox(records, faults=faults, rate_limit=rate_limit))

    def close(self) -> None:
        self.server.stop()


def write_project(
    box: Sandbox,
    folder: Path,
    rules: Path = ROOT / "rules",
    catalog_from_vtex: bool = True,
    rate: float | None = FAST_RATE,
) -> Path:
    """The sandbox's project in ``folder`` (its tradepost.yaml), every marketplace paced at ``rate``."""
    config = box.write_project(folder, rules, catalog_from_vtex=catalog_from_vtex)
    if rate is not None:
        pace(config, rate)
    return config


def pace(config: Path, rate: float = FAST_RATE) -> None:
    """Set every marketplace of the project at ``config`` to ``rate`` requests per second."""

    def set_rate(name: str, settings: dict[str, Any]) -> None:
        settings["rate_limit"] = rate

    edit_project(config, set_rate)


def set_options(config: Path, marketplace: str, **options: str) -> None:
    """Add connector options to one marketplace of the project at ``config``."""

    def add(name: str, settings: dict[str, Any]) -> None:
        if name == marketplace:
            settings["options"] = {**(settings.get("options") or {}), **options}

    edit_project(config, add)


def edit_project(config: Path, edit: Callable[[str, dict[str, Any]], None]) -> None:
    """Rewrite the project's YAML with ``edit(name, settings)`` applied to each marketplace."""
    yaml = YAML()
    document = yaml.load(config.read_text(encoding="utf-8"))
    for name, settings in document["marketplaces"].items():
        edit(name, settings)
    with config.open("w", encoding="utf-8") as out:
        yaml.dump(document, out)


def run_apply(project_config: Path, marketplace: str, box: Sandbox, faults: Faults | None = None) -> Any:
    """Plan and apply one marketplace in process, through its stand-in's in-process transport;
    with ``faults``, the stand-in misbehaves from a fresh seed and the executor retries fast."""
    project = load_project(project_config)
    run = open_marketplace(project, marketplace)
    standin = box.standins[marketplace]
    if faults is not None:
        standin.faults = faults
        standin.random.seed(faults.seed)
    with open_state(project) as state:
        records = planned_records(run, project, state)
        return asyncio.run(
            apply_records(
                run, project, state, records, transport=standin.transport(), executor_options=FAST_RETRIES
            )
        )


def tradepost(*args: str) -> tuple[int, str, str]:
    """`tradepost ARGS` in process, as the entry point runs it: exit code, stdout, stderr."""
    out, err = io.StringIO(), io.StringIO()
    code = 0
    with redirect_stdout(out), redirect_stderr(err), patch.object(sys, "argv", ["tradepost", *args]):
        try:
            main()
        except SystemExit as exc:
            code = exc.code if isinstance(exc.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def tradepost_process(
    *args: str, failpoint: str | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """`python -m cli.main ARGS` as its own process, as a scheduler runs it (text output).

    The process is forked from a server that has imported the package once (see
    :class:`_Forks`), so it starts in milliseconds rather than the second a fresh interpreter
    spends importing; ``TRADEPOST_TEST_SPAWN=1`` starts each from scratch instead.
    """
    env = {k: v for k, v in os.environ.items() if k != "TRADEPOST_FAILPOINT"}
    if failpoint:
        env["TRADEPOST_FAILPOINT"] = failpoint
    if os.environ.get("TRADEPOST_TEST_SPAWN"):
        return subprocess.run(
            [sys.executable, "-m", "cli.main", *args],
            capture_output=True,
            text=True,
            cwd=ROOT,
            env=env,
            timeout=timeout,
        )
    return _Forks.shared().run(list(args), env, timeout)


_FORK_SERVER = """
import json, os, random, runpy, sys
import cli.main  # what every run imports, paid once
for line in sys.stdin:
    request = json.loads(line)
    pid = os.fork()
    if pid == 0:  # the run: its own argv, environment, output files, no input; exits as `python -m` does
        random.seed()
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        os.dup2(os.open(os.devnull, os.O_RDONLY), 0)
        os.dup2(os.open(request["stdout"], os.O_WRONLY), 1)
        os.dup2(os.open(request["stderr"], os.O_WRONLY), 2)
        sys.argv = ["cli.main", *request["args"]]
        del sys.modules["cli.main"]  # run as __main__, as `python -m` does, not as the module imported
        runpy.run_module("cli.main", run_name="__main__", alter_sys=True)
        sys.exit(0)
    print(pid, flush=True)
    print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]), flush=True)
"""


class _Forks:
    """A process that has imported the package and forks one child per CLI run.

    Each child is a process of its own, as a scheduler's run is: its own arguments, environment,
    working folder and output, an exit code or death by signal (a failpoint's SIGKILL) reported
    as :func:`subprocess.run` reports them, module state as a fresh import leaves it (the server
    only imports). What it shares with its siblings is the interpreter's hash seed, as runs with
    ``PYTHONHASHSEED`` set do; ``random`` is reseeded in each.
    """

    _shared: _Forks | None = None

    def __init__(self) -> None:
        self.server = subprocess.Popen(
            [sys.executable, "-c", _FORK_SERVER], stdin=subprocess.PIPE, stdout=subprocess.PIPE, cwd=ROOT
        )
        atexit.register(self.close)

    @classmethod
    def shared(cls) -> _Forks:
        if cls._shared is None or cls._shared.server.poll() is not None:
            cls._shared = cls()
        return cls._shared

    def run(self, args: list[str], env: dict[str, str], timeout: float) -> subprocess.CompletedProcess[str]:
        assert self.server.stdin is not None
        with tempfile.TemporaryDirectory(prefix="tradepost-run-") as folder:
            out, err = Path(folder) / "stdout", Path(folder) / "stderr"
            out.touch()
            err.touch()
            request = {"args": args, "env": env, "cwd": str(ROOT), "stdout": str(out), "stderr": str(err)}
            self.server.stdin.write((json.dumps(request) + "\n").encode())
            self.server.stdin.flush()
            deadline = time.monotonic() + timeout
            pid = int(self._line(deadline + 60))
            try:
                code = int(self._line(deadline))
            except TimeoutError:
                os.kill(pid, signal.SIGKILL)
                self._line(time.monotonic() + 60)
                raise subprocess.TimeoutExpired(["tradepost", *args], timeout) from None
            return subprocess.CompletedProcess(["tradepost", *args], code, _text(out), _text(err))

    def _line(self, deadline: float) -> str:
        """One line from the server, read byte by byte so that nothing sits in a buffer select cannot see."""
        assert self.server.stdout is not None
        fd, data = self.server.stdout.fileno(), b""
        while not data.endswith(b"\n"):
            if not select.select([fd], [], [], max(0.0, deadline - time.monotonic()))[0]:
                raise TimeoutError
            chunk = os.read(fd, 1)
            if not chunk:
                raise RuntimeError("the CLI fork server died")
            data += chunk
        return data.decode()

    def close(self) -> None:
        if self.server.stdin is not None and not self.server.stdin.closed:
            self.server.stdin.close()
        self.server.wait(timeout=60)


def _text(path: Path) -> str:
    """A captured stream as subprocess.run(text=True) gives it: decoded, universal newlines."""
    with path.open(encoding=None, newline=None) as stream:
        return stream.read()


def orders_only(read: list[Order | BadOrder]) -> list[Order]:
    """An order channel's reads, every one an order (a :class:`BadOrder` fails the test)."""
    assert all(isinstance(order, Order) for order in read), read
    return [order for order in read if isinstance(order, Order)]
