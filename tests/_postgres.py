"""A throw-away PostgreSQL server for the tests that need one, on 127.0.0.1.

:func:`start` runs Debian's ``initdb`` and ``pg_ctl`` (as the ``postgres`` user when the tests run
as root, which PostgreSQL refuses to run as) in a fresh folder, on a free port, with password
authentication; :meth:`Server.database` gives each test an empty database of its own. Each
pytest-xdist worker starts its own server (its own folder and port), so workers never share a
database; the server stops at the end of the session. Where the binaries are missing or cannot
run, the tests that need it skip, saying why (``.ci/run`` installs the ``postgresql`` package).
Durability is off (``fsync``): the tests check behaviour, not crash safety.
"""

from __future__ import annotations

import atexit
import glob
import itertools
import os
import shutil
import socket
import subprocess
import tempfile
from dataclasses import dataclass, field
from pathlib import Path

USER = "tradepost"
PASSWORD = "test-pg-password"  # a throw-away server's, on loopback only


def binaries() -> Path | None:
    """The folder of ``initdb`` and ``pg_ctl``: Debian's newest, or the ones on PATH."""
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/initdb"), key=lambda p: int(p.split("/")[4]))
    if found:
        return Path(found[-1]).parent
    initdb = shutil.which("initdb")
    return Path(initdb).parent if initdb else None


@dataclass
class Server:
    """A running server: its folder, port, and the databases made for tests."""

    folder: Path
    port: int
    bin: Path
    as_postgres: bool
    _names: itertools.count[int] = field(default_factory=itertools.count)

    def url(self, database: str = "postgres", password: str | None = PASSWORD) -> str:
        secret = f":{password}" if password else ""
        return f"postgresql://{USER}{secret}@127.0.0.1:{self.port}/{database}"

    def database(self) -> str:
        """A new empty database; its name."""
        import psycopg

        name = f"t{os.getpid()}_{next(self._names)}"
        with psycopg.connect(self.url(), autocommit=True) as admin:
            admin.execute(f"CREATE DATABASE {name}")
        return name

    def stop(self) -> None:
        """Stop the server and remove its folder (once; also at exit, should the session not end cleanly)."""
        if self.folder.exists():
            _run(self, "pg_ctl", "-D", str(self.folder / "data"), "-m", "immediate", "-w", "stop")
            shutil.rmtree(self.folder, ignore_errors=True)


def _run(server: Server, tool: str, *args: str) -> subprocess.CompletedProcess[str]:
    command = [str(server.bin / tool), *args]
    if server.as_postgres:
        command = ["runuser", "-u", "postgres", "--", *command]
    return subprocess.run(command, capture_output=True, text=True, timeout=60, check=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def start() -> Server | str:
    """A running server, or why there cannot be one here (the tests skip with that reason)."""
    try:
        import psycopg  # noqa: F401
    except ImportError:
        return "psycopg is not installed (pip install -e '.[test]')"
    folder = binaries()
    if folder is None:
        return "PostgreSQL is not installed (apt-get install postgresql; .ci/run does it)"
    as_postgres = os.geteuid() == 0
    if as_postgres and shutil.which("runuser") is None:
        return "running as root without runuser: PostgreSQL cannot run as root"
    root = Path(tempfile.mkdtemp(prefix="tradepost-pg-"))
    server = Server(root, _free_port(), folder, as_postgres)
    (root / "password").write_text(PASSWORD + "\n", encoding="utf-8")
    if as_postgres:
        shutil.chown(root, "postgres")
        shutil.chown(root / "password", "postgres")
    steps = (
        ("initdb", "-D", str(root / "data"), "-U", USER, "--pwfile", str(root / "password"),
         "-A", "scram-sha-256", "--no-sync", "-E", "UTF8", "--locale", "C"),
        ("pg_ctl", "-D", str(root / "data"), "-l", str(root / "log"), "-w", "-t", "30", "start", "-o",
         f"-h 127.0.0.1 -p {server.port} -k {root} -c fsync=off -c full_page_writes=off "
         "-c max_connections=200"),
    )  # fmt: skip
    for step in steps:
        try:
            done = _run(server, *step)
        except (OSError, subprocess.SubprocessError) as exc:
            done = subprocess.CompletedProcess(step, 1, "", str(exc))
        if done.returncode != 0:
            log = root / "log"
            tail = log.read_text(errors="replace")[-600:] if log.exists() else ""
            shutil.rmtree(root, ignore_errors=True)
            return f"PostgreSQL's {step[0]} failed here: {(done.stderr or done.stdout).strip()[-600:]} {tail}"
    atexit.register(server.stop)
    return server
