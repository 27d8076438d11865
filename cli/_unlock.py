"""`tradepost unlock`: release a marketplace's lock by hand.

A run's lock carries a lease it renews while it lives, and a lock whose lease ran
out is taken over by the next run on its own; this command is for not waiting
that long (or for a lock whose lease was set far ahead). It prints who held the
lock and exits 0, also when nothing was locked. A run still holding the lock
finds it gone at its next renewal and stops.
"""

from __future__ import annotations

import time
from pathlib import Path

import click

from cli._plan import _compile_or_exit, _project, config_option
from engine.project import open_state


@click.command()
@config_option
@click.option("-m", "--marketplace", "name", required=True, help="The marketplace whose lock to release.")
@click.option(
    "--orders", "orders", is_flag=True, help="Release the lock of its order runs instead of apply's."
)
def unlock(config_path: Path | None, name: str, orders: bool) -> None:
    """Release a marketplace's apply lock (or, with --orders, its order runs' lock) by hand.

    Use it when a run was killed and you do not want to wait for its lease to expire.
    """
    project = _project(config_path)
    project.marketplace(name)  # an unknown marketplace is an error (exit 1), not "not locked"
    lock = f"orders:{name}" if orders else _compile_or_exit(project, name).compiled.marketplace
    with open_state(project) as state:
        held = state.break_lock(lock)
    if held is None:
        click.echo(f"{lock} is not locked; nothing to release")
        return
    state_of = "expired" if held.expires_at <= time.time() else "still valid: if that run is alive, it stops"
    click.echo(f"released the lock on {lock}, held by {held.describe()} ({state_of})")
