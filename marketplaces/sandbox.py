"""The sandbox: every stand-in served on 127.0.0.1, seeded from a catalog, plus a project to use them.

`tradepost sandbox` runs this so a user can try `plan` and `apply` end to end without
credentials; the end-to-end tests use the same code over real loopback sockets. The
sandbox writes a project folder: a `tradepost.yaml` whose source and marketplaces point at
the local servers, and the stand-ins' well-known (not secret) credentials in files the
config references, exactly as a real project would keep real ones.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import uvicorn

from engine import TradepostError
from marketplaces._standin import Faults, Standin
from marketplaces.amazon.standin import AmazonStandin
from marketplaces.google.standin import SANDBOX_CLIENT_ID as GOOGLE_CLIENT_ID
from marketplaces.google.standin import SANDBOX_CLIENT_SECRET as GOOGLE_CLIENT_SECRET
from marketplaces.google.standin import SANDBOX_REFRESH_TOKEN as GOOGLE_REFRESH_TOKEN
from marketplaces.google.standin import GoogleStandin
from marketplaces.mercadolibre.standin import SANDBOX_CLIENT_ID as ML_CLIENT_ID
from marketplaces.mercadolibre.standin import SANDBOX_CLIENT_SECRET as ML_CLIENT_SECRET
from marketplaces.mercadolibre.standin import SANDBOX_REFRESH_TOKEN as ML_REFRESH_TOKEN
from marketplaces.mercadolibre.standin import MercadoLibreStandin
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin

AMAZON = {
    "lwa_client_id": "amzn1.application-oa2-client.standin",
    "lwa_client_secret": "standin-client-secret",
    "refresh_token": "Atzr|standin-refresh-token",
    "seller_id": "A1SELLER",
}


@dataclass
class Sandbox:
    """The stand-ins, their servers once started, and the project that points at them."""

    standins: dict[str, Standin]
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

    def write_project(self, folder: Path, rules: Path, catalog_from_vtex: bool = True) -> Path:
        """A project folder using the running servers; returns its tradepost.yaml."""
        folder.mkdir(parents=True, exist_ok=True)
        secrets = folder / "secrets"
        secrets.mkdir(exist_ok=True)
        values = {
            "vtex_app_key": SANDBOX_APP_KEY,
            "vtex_app_token": SANDBOX_APP_TOKEN,
            "amazon_lwa_client_id": AMAZON["lwa_client_id"],
            "amazon_lwa_client_secret": AMAZON["lwa_client_secret"],
            "amazon_refresh_token": AMAZON["refresh_token"],
            "amazon_seller_id": AMAZON["seller_id"],
            "ml_client_id": ML_CLIENT_ID,
            "ml_client_secret": ML_CLIENT_SECRET,
            "ml_refresh_token": ML_REFRESH_TOKEN,
            "google_client_id": GOOGLE_CLIENT_ID,
            "google_client_secret": GOOGLE_CLIENT_SECRET,
            "google_refresh_token": GOOGLE_REFRESH_TOKEN,
        }
        for name, value in values.items():
            (secrets / name).write_text(value + "\n", encoding="utf-8")
        source = (
            f"source:\n  type: vtex\n  account: sandbox\n  base_url: {self.url('vtex')}\n"
            "  app_key_file: secrets/vtex_app_key\n  app_token_file: secrets/vtex_app_token\n"
            if catalog_from_vtex
            else f"source:\n  type: file\n  path: {rules.parent / 'examples' / 'catalog.jsonl'}\n"
        )
        text = f"""# Written by `tradepost sandbox`: local stand-ins, well-known test credentials.
{source}state: state.sqlite
marketplaces:
  mercadolibre:
    rules: {rules / "mercadolibre.yaml"}
    base_url: {self.url("mercadolibre")}
    credentials:
      client_id: file:secrets/ml_client_id
      client_secret: file:secrets/ml_client_secret
      refresh_token: file:secrets/ml_refresh_token
  amazon:
    rules: {rules / "amazon.yaml"}
    base_url: {self.url("amazon")}
    options: {{lwa_url: "{self.url("amazon")}", seller_id: {AMAZON["seller_id"]}, feed_poll_seconds: "0.2"}}
    credentials:
      lwa_client_id: file:secrets/amazon_lwa_client_id
      lwa_client_secret: file:secrets/amazon_lwa_client_secret
      refresh_token: file:secrets/amazon_refresh_token
      seller_id: file:secrets/amazon_seller_id
  google:
    rules: {rules / "google.yaml"}
    base_url: {self.url("google")}
    options: {{token_url: "{self.url("google")}"}}
    credentials:
      client_id: file:secrets/google_client_id
      client_secret: file:secrets/google_client_secret
      refresh_token: file:secrets/google_refresh_token
"""
        config = folder / "tradepost.yaml"
        config.write_text(text, encoding="utf-8")
        return config


def build_sandbox(
    catalog: Iterable[Mapping[str, Any]], faults: Faults | None = None, rate_limit: float | None = None
) -> Sandbox:
    """The four stand-ins, seeded from canonical catalog records (e.g. examples/catalog.jsonl)."""
    records = list(catalog)
    kinds: dict[str, type[Standin]] = {
        "vtex": VtexStandin,
        "mercadolibre": MercadoLibreStandin,
        "amazon": AmazonStandin,
        "google": GoogleStandin,
    }
    return Sandbox(
        {
            name: kind.for_sandbox(records, faults=faults, rate_limit=rate_limit)
            for name, kind in kinds.items()
        }
    )


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
