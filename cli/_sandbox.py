"""`tradepost sandbox`: the stand-in servers on 127.0.0.1 and a project that uses them."""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli._render import console
from marketplaces.sandbox import build_sandbox, read_catalog

ROOT = Path(__file__).resolve().parent.parent


@click.command()
@click.option(
    "--catalog",
    type=click.Path(exists=True, path_type=Path),
    default=ROOT / "examples" / "catalog.jsonl",
    show_default=True,
    help="Canonical catalog (JSON Lines) the VTEX stand-in serves.",
)
@click.option(
    "--rules",
    "rules_dir",
    type=click.Path(exists=True, file_okay=False, path_type=Path),
    default=ROOT / "rules",
    show_default=True,
    help="Folder of the rule files the project uses.",
)
@click.option(
    "--dir",
    "folder",
    type=click.Path(path_type=Path),
    default=Path("sandbox"),
    show_default=True,
    help="Where to write the sandbox project (tradepost.yaml, secrets/, state).",
)
@click.option(
    "--port",
    type=int,
    default=8700,
    show_default=True,
    help="First port; VTEX, Mercado Libre, Amazon and Google take the next ones.",
)
def sandbox(catalog: Path, rules_dir: Path, folder: Path, port: int) -> None:
    """Serve VTEX and marketplace stand-ins on 127.0.0.1 until interrupted (Ctrl-C).

    Then, in another terminal: tradepost plan -c sandbox/tradepost.yaml and
    tradepost apply -c sandbox/tradepost.yaml. Nothing leaves this machine.
    """
    box = build_sandbox(read_catalog(catalog))
    box.start(base_port=port)
    config = box.write_project(folder, rules_dir.resolve())
    out = console()
    for name in box.standins:
        out.print(f"{name:>13}  {box.url(name)}")
    out.print(f"\nproject: {config}\n  tradepost plan -c {config}\n  tradepost apply -c {config}\n")
    out.print("Ctrl-C stops the servers.")
    try:
        while True:
            time.sleep(3600)
    except KeyboardInterrupt:
        pass
    finally:
        box.stop()
