"""The sandbox: every registered stand-in served on 127.0.0.1, plus a project that uses them.

`tradepost sandbox` runs this so a user can try `plan` and `apply` end to end without
credentials; the end-to-end tests use the same code over real loopback sockets. The stand-ins
come from the registry (``tradepost.standins`` entry points), a plug-in's as well as the
built-ins, so this module names no marketplace. The sandbox writes a project folder: a
`tradepost.yaml` whose source and marketplaces point at the local servers, and the stand-ins'
well-known (not secret) credentials in files the config references, exactly as a real project
would keep real ones.

What the sandbox reads from a class registered under ``tradepost.standins`` (every hook is
optional):

- ``for_sandbox(catalog, rate_limit=, faults=)``, a class method: the ASGI app to serve, given the
  canonical catalog records; by default ``cls(rate_limit=rate_limit, faults=faults)``.
- ``sandbox_role``: ``"marketplace"`` (the default: an entry under ``marketplaces:``) or
  ``"source"`` (the project's ``source:``, where the catalog comes from).
- ``sandbox_credentials()``: credential name -> the stand-in's well-known value, written to
  ``secrets/<stand-in>_<name>``; a marketplace references it as ``file:`` under
  ``credentials``, the source as ``<name>_file``.
- ``sandbox_options(url)``: a marketplace's ``options`` (a token URL on the stand-in), or the
  source's other keys (its ``type``).
- ``sandbox_rules``: the rule file a marketplace's entry uses; by default ``<rules>/<name>.yaml``.
- ``sandbox_affiliate(marketplace, endpoint)``: a source's; called once per marketplace with the
  URL of the project's `tradepost serve` endpoint (its ``serve:`` section: 127.0.0.1,
  ``serve_port``, and a random secret in ``secrets/serve_secret``), so the source notifies
  `tradepost serve` of its changes as VTEX notifies an affiliate. The id it returns is the
  marketplace's ``affiliate:``, and the source's ``account`` option the ``serve: account:``, so
  the endpoint takes the source's notifications and refuses any other's.
"""

from __future__ import annotations

import io
import json
import secrets as _secrets
import socket
import threading
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn
from ruamel.yaml import YAML

from engine import TradepostError
from engine.connectors import available_standins, standin_class
from engine.rules import load_rules
from marketplaces._standin import Faults

SERVE_PORT = 8787
"""Where the sandbox project's `tradepost serve` listens (the `serve:` default port)."""


@dataclass
class Sandbox:
    """The stand-ins, their servers once started, and the project that points at them."""

    standins: dict[str, Any]
    """Name -> the ASGI app served (a built-in :class:`~marketplaces._standin.Standin` or a plug-in's)."""
    host: str = "127.0.0.1"
    ports: dict[str, int] = field(default_factory=dict)
    servers: list[uvicorn.Server] = field(default_factory=list)
    threads: list[threading.Thread] = field(default_factory=list)

    def url(self, name: str) -> str:
        return f"http://{self.host}:{self.ports[name]}"

    def start(self, base_port: int = 0, timeout: float = 10.0) -> None:
        """Serve every stand-in on its own loopback port (0: any free port) in background threads.

        The ports are bound here, before any server thread starts, and handed to uvicorn: a
        port out of range or already in use is a :class:`SandboxError` naming it, at once,
        rather than a traceback in a server thread and a timeout.
        """
        sockets = self._bind(base_port)
        for (name, app), sock in zip(self.standins.items(), sockets, strict=True):
            port = self.ports[name]
            config = uvicorn.Config(
                app, host=self.host, port=port, log_level="warning", lifespan="off", access_log=False
            )
            server = uvicorn.Server(config)
            thread = threading.Thread(
                target=server.run, kwargs={"sockets": [sock]}, name=f"sandbox-{name}", daemon=True
            )
            thread.start()
            self.servers.append(server)
            self.threads.append(thread)
        deadline = time.monotonic() + timeout
        for server, thread in zip(self.servers, self.threads, strict=True):
            while not server.started:
                if not thread.is_alive() or time.monotonic() > deadline:
                    self.stop()
                    for sock in sockets:
                        sock.close()
                    raise SandboxError(f"the sandbox server {thread.name} did not start")
                time.sleep(0.02)

    def _bind(self, base_port: int) -> list[socket.socket]:
        """One listening socket per stand-in: base_port, base_port + 1, … (or any free ports for 0)."""
        count = len(self.standins)
        if base_port and not 1 <= base_port <= 65536 - count:
            raise SandboxError(
                f"port {base_port} cannot be used: the sandbox needs {count} ports from it "
                f"({base_port}-{base_port + count - 1}) and ports go from 1 to 65535; "
                f"pass --port with a number from 1024 to {65536 - count}, or --port 0 for any free ports"
            )
        bound: list[socket.socket] = []
        for offset, name in enumerate(self.standins):
            port = base_port + offset if base_port else 0
            # IPPROTO_TCP named, as getaddrinfo would: asyncio sets TCP_NODELAY only on sockets whose
            # proto says TCP, and without it every answer waits ~40 ms for a delayed ACK (Nagle).
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
            # As uvicorn does: a port left in TIME_WAIT by the last sandbox is free, one in use is not.
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((self.host, port))
                sock.listen(128)
            except OSError as exc:
                sock.close()
                for other in bound:
                    other.close()
                uses = f"ports {base_port}-{base_port + count - 1}" if base_port else "any free ports"
                raise SandboxError(
                    f"cannot listen on {self.host}:{port} for the {name} stand-in: "
                    f"{exc.strerror or exc}; the sandbox uses {uses}. Stop what uses port {port} "
                    "(another `tradepost sandbox`?), or pass --port N for other ports "
                    "(--port 0: any free ones)"
                ) from None
            bound.append(sock)
            self.ports[name] = int(sock.getsockname()[1])
        return bound

    def stop(self, timeout: float = 5.0) -> None:
        for server in self.servers:
            server.should_exit = True
        for thread in self.threads:
            thread.join(timeout)

    def write_project(
        self, folder: Path, rules: Path, catalog_from_vtex: bool = True, serve_port: int | None = None
    ) -> Path:
        """A project folder using the running servers; returns its tradepost.yaml.

        ``catalog_from_vtex``: the catalog comes from the source stand-in; otherwise from the
        bundled ``examples/catalog.jsonl`` beside ``rules``. The source's affiliates (one per
        marketplace) point at `tradepost serve` on ``serve_port`` (the `tradepost sandbox` default is
        :data:`SERVE_PORT`); None writes no ``serve:`` section and registers no affiliate.
        """
        folder.mkdir(parents=True, exist_ok=True)
        (folder / "secrets").mkdir(exist_ok=True)
        project: dict[str, Any] = {
            "source": {"type": "file", "path": str(rules.parent / "examples" / "catalog.jsonl")},
            "state": "state.sqlite",
            "marketplaces": {},
        }
        for name, app in self.standins.items():
            url, role = self.url(name), getattr(app, "sandbox_role", "marketplace")
            options, secrets = self._configure(folder, name, app)
            if role == "source" and catalog_from_vtex:
                files = {f"{key}_file": path for key, path in secrets.items()}
                project["source"] = {**options, "base_url": url, **files}
            elif role == "marketplace":
                entry: dict[str, Any] = {"rules": str(_rules(app, name, rules)), "base_url": url}
                if options:
                    entry["options"] = options
                if secrets:
                    entry["credentials"] = {key: f"file:{path}" for key, path in secrets.items()}
                project["marketplaces"][name] = entry
        if serve_port is not None:
            project["serve"] = self._serve_section(folder, serve_port, project["marketplaces"])
        text = io.StringIO()
        text.write("# Written by `tradepost sandbox`: local stand-ins, well-known test credentials.\n")
        yaml = YAML()
        yaml.width = 4096  # a long rule-file path stays on its key's line
        yaml.dump(project, text)
        config = folder / "tradepost.yaml"
        config.write_text(text.getvalue(), encoding="utf-8")
        return config

    def _serve_section(self, folder: Path, port: int, marketplaces: dict[str, Any]) -> dict[str, Any]:
        """The project's ``serve:`` section, with a fresh secret in ``secrets/serve_secret``; each
        source stand-in gets one affiliate per marketplace, with the id of its rule file's
        ``affiliate:``, whose endpoint is that server."""
        secret = _secrets.token_urlsafe(32)
        (folder / "secrets" / "serve_secret").write_text(f"{secret}\n", encoding="utf-8")
        endpoint = f"http://{self.host}:{port}/api/notification/?k={secret}"
        section: dict[str, Any] = {"host": self.host, "port": port, "secret": "file:secrets/serve_secret"}
        affiliates = [_affiliate(Path(entry["rules"])) for entry in marketplaces.values()]
        for name, app in self.standins.items():
            if not hasattr(app, "sandbox_affiliate"):
                continue
            for affiliate in affiliates:
                app.sandbox_affiliate(affiliate, endpoint)
            account = self._options(name, app).get("account")
            if account:
                section["account"] = account
        return section

    def _configure(self, folder: Path, name: str, app: Any) -> tuple[dict[str, str], dict[str, str]]:
        """A stand-in's options on its URL, and its well-known credentials, each written to
        ``secrets/<stand-in>_<credential>``: credential -> that path, relative to ``folder``."""
        options = self._options(name, app)
        credentials = app.sandbox_credentials() if hasattr(app, "sandbox_credentials") else {}
        secrets: dict[str, str] = {}
        for key, value in credentials.items():
            secrets[key] = f"secrets/{name}_{key}"
            (folder / secrets[key]).write_text(f"{value}\n", encoding="utf-8")
        return options, secrets

    def _options(self, name: str, app: Any) -> dict[str, str]:
        """The stand-in's options (``sandbox_options`` on its URL), none when it has no such hook."""
        return dict(app.sandbox_options(self.url(name))) if hasattr(app, "sandbox_options") else {}


def _rules(app: Any, name: str, rules: Path) -> Path:
    """The stand-in's own sample rule file, else ``<rules>/<name>.yaml``."""
    own = getattr(app, "sandbox_rules", None)
    return Path(own) if own else rules / f"{name}.yaml"


def build_sandbox(
    catalog: Iterable[Mapping[str, Any]], faults: Faults | None = None, rate_limit: float | None = None
) -> Sandbox:
    """Every registered stand-in (sources first), seeded from canonical catalog records (e.g.
    examples/catalog.jsonl); ``faults`` and ``rate_limit`` go to the marketplaces' stand-ins."""
    records = list(catalog)
    classes = {name: standin_class(name) for name in available_standins()}
    sources = [name for name, cls in classes.items() if getattr(cls, "sandbox_role", "") == "source"]
    order = sources + [name for name in classes if name not in sources]
    return Sandbox({name: _serve(classes[name], records, faults, rate_limit) for name in order})


def _serve(cls: Any, records: Sequence[Mapping[str, Any]], faults: Faults | None, rate: float | None) -> Any:
    """The stand-in app ``cls`` makes for the sandbox (its ``for_sandbox`` hook, if it has one)."""
    if hasattr(cls, "for_sandbox"):
        return cls.for_sandbox(records, rate_limit=rate, faults=faults)
    return cls(rate_limit=rate, faults=faults)


def read_catalog(path: Path) -> list[dict[str, Any]]:
    """Canonical records of a JSON Lines catalog that parse as JSON (broken lines are skipped)."""
    records = []
    for line in path.read_text(encoding="utf-8").splitlines():
        try:
            records.append(json.loads(line))
        except ValueError:
            continue
    return records


class SandboxError(TradepostError):
    """The sandbox cannot start: a port out of range or in use."""


def _affiliate(rules: Path) -> str:
    """The VTEX affiliate id a rule file declares (its ``affiliate:``)."""
    loaded = load_rules(rules)
    if loaded is None or loaded.rules is None:
        raise TradepostError(f"{rules}: not a valid rule file; run `tradepost check {rules}`")
    return loaded.rules.affiliate
