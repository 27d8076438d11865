"""Secrets: read from the environment or files, and kept out of every line the engine writes.

Rule files never hold secrets; the project config only names where they are
(``env:NAME`` or ``file:/path``). Every secret read is registered with the
redactor, and every message that leaves the engine (errors, per-SKU reasons,
logs) goes through :func:`redact`, so a token echoed back in a marketplace's
error body cannot end up in a log or a plan.

The guarantee, and its limits:

- A registered secret is masked in every form a message is likely to carry it in: as is;
  escaped as Python writes it (``unicode_escape``, ``repr`` of the text and of its UTF-8 or
  Latin-1 bytes, which is how h11 and httpx quote a header value they refuse); as a JSON
  string (ASCII or not, ``/`` escaped or not); URL-encoded (``quote``, ``quote_plus``,
  ``encodeURIComponent``, hex digits in either case); and in base64
  (standard or URL-safe, padded or not), also inside a longer base64 text such as a Basic
  ``Authorization`` header's ``base64(id:secret)``, whatever the secret's offset in it (the
  few characters that mix the secret with its neighbours are the only ones left).
- A secret is masked whole; a message cut inside a secret can keep the part before the cut.
  Secrets shorter than 4 characters are not registered (masking them would mangle any text).
- A secret must be able to travel in an HTTP header: printable ASCII, no line break or other
  control character. One that is not is refused when it is read, with a message that names
  where it comes from (``env:NAME`` / ``file:PATH``), never the value or any part of it.
  Surrounding whitespace (a file's trailing newline) is stripped first.
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
from collections.abc import Iterator, Mapping
from pathlib import Path
from urllib.parse import quote, quote_plus

from engine._diagnostics import TradepostError

_MASK = "***"
_MIN_LENGTH = 4
_MIN_BASE64_FRAGMENT = 8
"""Base64 runs of a secret inside a longer text are masked from this length on: shorter
runs (a secret under 6 bytes) would match too much unrelated base64."""

_known: dict[str, None] = {}  # an ordered set: registration order, for a stable pattern
_pattern: re.Pattern[str] | None = None


class SecretError(TradepostError):
    """A secret the config names cannot be read or used (without saying what it is)."""


def register(value: str) -> None:
    """Remember a secret so that :func:`redact` hides it, in every encoded form, from now on."""
    global _pattern
    if len(value) >= _MIN_LENGTH and value not in _known:
        _known[value] = None
        _pattern = _compile(_known)


def forget(value: str) -> None:
    """Stop masking a secret that is no longer valid (an access token that was replaced)."""
    global _pattern
    if _known.pop(value, "absent") is None:
        _pattern = _compile(_known) if _known else None


def redact(text: str) -> str:
    """The text with every registered secret, in any of its encoded forms, replaced by ***."""
    return _pattern.sub(_MASK, text) if _pattern is not None else text


def read_secret(reference: str, base: Path | None = None) -> str:
    """Resolve ``env:NAME``, ``file:PATH`` (relative to ``base``) or a bare environment variable name.

    The value is stripped of surrounding whitespace, checked (:func:`check_header_value`) and
    registered with the redactor before it is returned.
    """
    kind, _, name = reference.partition(":") if ":" in reference else ("env", "", reference)
    if kind == "env":
        value = os.environ.get(name, "").strip()
        if not value:
            raise SecretError(f"environment variable {name} is not set")
        where = f"env:{name}"
    elif kind == "file":
        path = Path(name)
        if base is not None and not path.is_absolute():
            path = base / path
        try:
            value = path.read_text(encoding="utf-8").strip()
        except OSError as exc:
            raise SecretError(f"cannot read secret file {path}: {exc.strerror}") from None
        except UnicodeDecodeError:
            raise SecretError(
                f"the secret in {reference} is not UTF-8 text; write the secret itself, in ASCII"
            ) from None
        if not value:
            raise SecretError(f"secret file {path} is empty")
        where = reference
    else:
        raise SecretError(f"secret reference must be env:NAME or file:PATH, not {kind}:...")
    check_header_value(where, value)
    register(value)
    return value


def read_secrets(references: Mapping[str, str], base: Path | None = None) -> dict[str, str]:
    return {name: read_secret(reference, base) for name, reference in references.items()}


def check_header_value(reference: str, value: str) -> str:
    """The value, if it can be sent in an HTTP header; else a SecretError naming ``reference``.

    Header values are ASCII without control characters (RFC 9110 field values; httpx encodes
    them as ASCII and h11 refuses line breaks). Caught here, a bad secret is one clear message
    before anything is sent, instead of an encoding error or a refused request whose text
    quotes the value. The message says which character is wrong by position, never by value.
    """
    for position, char in enumerate(value, start=1):
        if char in "\r\n":
            problem = "a line break"
        elif char == "\t":
            problem = "a tab"
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            problem = "a control character"
        elif not char.isascii():
            problem = "a character outside ASCII"
        else:
            continue
        raise SecretError(
            f"the secret in {reference} has {problem} (character {position}), so it cannot be sent in "
            "an HTTP header; write the secret alone, on one line, in ASCII"
        )
    return value


class RedactingFilter(logging.Filter):
    """A logging filter that redacts secrets from every record's final message and traceback."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.msg = redact(record.getMessage())
        record.args = None
        if record.exc_info and not record.exc_text:
            record.exc_text = logging.Formatter().formatException(record.exc_info)
        if record.exc_text:
            record.exc_text = redact(record.exc_text)
        if record.stack_info:
            record.stack_info = redact(record.stack_info)
        return True


# -- the forms a secret can take in a message ---------------------------------------------------


def _compile(secrets: Mapping[str, None]) -> re.Pattern[str]:
    """One alternation of every form of every secret, longest secrets (and forms) first.

    Python's alternation takes the first branch that matches, so a secret that contains
    another is tried before it, and an escaped form before the plain text it starts with.
    """
    branches: dict[str, tuple[int, int]] = {}
    for secret in secrets:
        for form in _literal_forms(secret):
            branches.setdefault(re.escape(form), (len(secret), len(form)))
        for pattern in _url_encoded(secret):
            branches.setdefault(pattern, (len(secret), len(pattern)))
        for fragment in _base64_forms(secret):
            branches.setdefault(re.escape(fragment), (len(secret), len(fragment)))
    ordered = sorted(branches, key=lambda branch: branches[branch], reverse=True)
    return re.compile("|".join(ordered))


def _literal_forms(secret: str) -> set[str]:
    """The secret as is, and as Python's escapes, ``repr`` and JSON write it."""
    escaped = secret.encode("unicode_escape").decode("ascii")
    forms = {secret, escaped, repr(secret)[1:-1], repr(secret.encode("utf-8"))[2:-1]}
    if all(ord(char) < 256 for char in secret):
        forms.add(repr(secret.encode("latin-1"))[2:-1])
    for text in (escaped, repr(secret)[1:-1]):  # either quote escaped, as repr picks one
        forms |= {text.replace("'", "\\'"), text.replace('"', '\\"')}
    for ascii_only in (True, False):
        quoted = json.dumps(secret, ensure_ascii=ascii_only)[1:-1]
        forms |= {quoted, quoted.replace("/", "\\/")}
    return forms


def _url_encoded(secret: str) -> set[str]:
    """Patterns for the secret as URL encoders write it, percent-escapes in either case.

    ``quote`` and ``quote_plus`` with the safe sets in common use (Python's defaults, none,
    JavaScript's ``encodeURIComponent``); an encoder that escapes unreserved letters too is not
    covered (none of the clients in use does).
    """
    encoded = {
        quote(secret, safe=""),
        quote(secret),
        quote(secret, safe="!'()*~"),
        quote_plus(secret),
        quote_plus(secret, safe="/"),
        quote_plus(secret, safe="!'()*~"),
    }
    return {
        "".join(
            f"%(?i:{part[1:]})" if part.startswith("%") else re.escape(part)
            for part in re.split(r"(%[0-9A-F]{2})", form)
            if part
        )
        for form in encoded
        if form != secret
    }


def _base64_forms(secret: str) -> Iterator[str]:
    """The secret's base64 (standard and URL-safe), whole and as a run inside a longer base64 text.

    In a longer text (``base64(id:secret)``) the secret starts at one of three offsets within a
    3-byte group; at each, the groups wholly inside the secret always encode to the same run.
    """
    data = secret.encode("utf-8")
    for encode in (base64.b64encode, base64.urlsafe_b64encode):
        whole = encode(data).decode("ascii")
        yield whole
        yield whole.rstrip("=")
        for start in range(3):
            usable = (len(data) - start) // 3 * 3
            if usable <= 0:
                continue
            fragment = encode(data[start : start + usable]).decode("ascii")
            if len(fragment) >= _MIN_BASE64_FRAGMENT:
                yield fragment
                # At the end of the text (as in id:secret) the last, partial group is known too.
                tail = encode(data[start:]).decode("ascii")
                yield from (tail, tail.rstrip("="))
