"""Secrets: read from the environment or files, and kept out of every line the engine writes.

Rule files never hold secrets; the project config only names where they are
(``env:NAME`` or ``file:/path``). Every secret read is registered with the
redactor, and every message that leaves the engine (errors, per-SKU reasons,
logs) goes through :func:`redact`, so a token echoed back in a marketplace's
error body cannot end up in a log or a plan.
"""

from __future__ import annotations

import logging
import os
import re
from collections.abc import Mapping
from pathlib import Path

from engine._diagnostics import TradepostError

_MASK = "***"
_MIN_LENGTH = 4
_known: set[str] = set()
_pattern: re.Pattern[str] | None = None


class SecretError(TradepostError):
    """A secret the config names cannot be read (without saying what it is)."""


def register(value: str) -> None:
    """Remember a secret so that :func:`redact` hides it from now on."""
    global _pattern
    if len(value) >= _MIN_LENGTH and value not in _known:
        _known.add(value)
        ordered = sorted(_known, key=len, reverse=True)  # longest first: a secret may contain another
        _pattern = re.compile("|".join(re.escape(v) for v in ordered))


def redact(text: str) -> str:
    """The text with every registered secret replaced by ***."""
    return _pattern.sub(_MASK, text) if _pattern is not None else text


def read_secret(reference: str, base: Path | None = None) -> str:
    """Resolve ``env:NAME``, ``file:PATH`` (relative to ``base``) or a bare environment variable name."""
    kind, _, name = reference.partition(":") if ":" in reference else ("env", "", reference)
    if kind == "env":
        value = os.environ.get(name)
        if not value:
            raise SecretError(f"environment variable {name} is not set")
    elif kind == "file":
        path = Path(name)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
        if not value:
            raise SecretError(f"secret file {path} is empty")
    else:
        raise SecretError(f"secret reference must be env:NAME or file:PATH, not {kind}:...")
    register(value)
    return value


def read_secrets(references: Mapping[str, str], base: Path | None = None) -> dict[str, str]:
    return {name: read_secret(reference, base) for name, reference in references.items()}


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record's final message."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        return True
