"""Files a command writes (`plan -o`, `schema -o`): checked before any work is done.

Planning a large catalog takes minutes; finding only at the end that the folder is
missing, read-only, or that the name is a folder wastes them and, worse, leaves a
scheduler with an internal error. The check creates (and removes) a temporary file
beside the target, so it asks the file system itself rather than guessing from
permission bits (which say nothing on a read-only mount, and lie for root).
"""

from __future__ import annotations

import tempfile
from pathlib import Path

from engine import TradepostError


def check_writable(path: Path, what: str) -> None:
    """Raise a TradepostError saying what to do when ``what`` cannot be written to ``path``."""
    folder = path.parent
    if path.is_dir():
        raise TradepostError(
            f"cannot write {what} to '{path}': it is a folder; give a file name, e.g. {path / 'plan.json'}"
        )
    if not folder.exists():
        raise TradepostError(
            f"cannot write {what} to '{path}': the folder '{folder}' does not exist; "
            f"create it first (mkdir -p {folder}) or choose another path"
        )
    if not folder.is_dir():
        raise TradepostError(f"cannot write {what} to '{path}': '{folder}' is not a folder")
    try:
        with tempfile.TemporaryFile(dir=folder, prefix=".tradepost-write-check-"):
            pass
        if path.exists():
            with path.open("ab"):
                pass
    except OSError as exc:
        reason = exc.strerror or type(exc).__name__
        raise TradepostError(
            f"cannot write {what} to '{path}': {reason}; choose a folder you can write to"
        ) from None
