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
import threading
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
_stale = False
_lock = threading.Lock()  # logs are redacted from the server's threads too


class SecretError(TradepostError):
    """A secret the config names cannot be read or used (without saying what it is)."""


def register(value: str) -> None:
    """Remember a secret so that :func:`redact` hides it, in every encoded form, from now on."""
    global _stale
    with _lock:
        if len(value) >= _MIN_LENGTH and value not in _known:
            _known[value] = None
            _stale = True


def forget(value: str) -> None:
    """Stop masking a secret that is no longer valid (an access token that was replaced)."""
    global _stale
    with _lock:
        if _known.pop(value, "absent") is None:
            _stale = True


def redact(text: str) -> str:
    """The text with every registered secret, in any of its encoded forms, replaced by ***."""
    global _pattern, _stale
    if _stale:  # rebuilt once after a run of registrations, not once per secret
        with _lock:
            if _stale:
                _pattern, _stale = (_compile(_known) if _known else None), False
    pattern = _pattern
    return pattern.sub(_MASK, text) if pattern is not None else text


_ENV_NAME = re.compile(r"[A-Z_][A-Z0-9_]*")
"""How environment variables are named by convention; a bare reference of another shape is not
echoed in errors."""


def read_secret(reference: str, base: Path | None = None) -> str:
    """Resolve ``env:NAME``, ``file:PATH`` (relative to ``base``) or a bare environment variable name.

    The value is stripped of surrounding whitespace, checked (:func:`check_header_value`) and
    registered with the redactor before it is returned.
    """
    kind, _, name = reference.partition(":") if ":" in reference else ("env", "", reference)
    if kind == "env":
        value = os.environ.get(name, "").strip()
        if not value and ":" not in reference and not _ENV_NAME.fullmatch(name):
            # A bare word that is no environment variable's usual name may be the secret itself,
            # pasted where its reference goes: never repeat it.
            raise SecretError(
                "a secret reference is neither env:NAME nor file:PATH nor an environment variable "
                "name in capitals; write where the secret is, never the secret itself"
            )
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
    """Each reference read (:func:`read_secret`); an error names the credential it is for."""
    values = {}
    for name, reference in references.items():
        try:
            values[name] = read_secret(reference, base)
        except SecretError as exc:
            raise SecretError(f"credentials.{name}: {exc}") from None
    return values


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
    """One pattern for every form of every secret, as a trie: shared prefixes are tried once.

    A flat alternation of a few hundred forms costs each position of a message a few hundred
    attempts; a trie costs it one attempt per distinct first character. At each node longer
    continuations are tried before the form that ends there, so a secret that contains another
    (and an escaped form that starts with the plain one) is masked whole.
    """
    trie: _Trie = {}
    for secret in secrets:
        forms = [[re.escape(char) for char in form] for form in _literal_forms(secret)]
        forms += [[re.escape(char) for char in form] for form in _base64_forms(secret)]
        forms += _url_encoded(secret)
        for atoms in forms:
            node = trie
            for atom in atoms:
                node = node.setdefault(atom, {})
            node[_END] = {}
    return re.compile(_trie_pattern(trie))


_Trie = dict[str, "_Trie"]
_END = ""  # the key that marks a form ending at a node (no atom is empty)


def _trie_pattern(node: _Trie) -> str:
    branches = []
    for atom, child in sorted(node.items()):
        if atom == _END:
            continue
        run = atom
        while len(child) == 1 and _END not in child:  # a chain without choices is one literal run
            ((next_atom, child),) = child.items()
            run += next_atom
        branches.append(run + _trie_pattern(child))
    if not branches:
        return ""
    body = branches[0] if len(branches) == 1 else f"(?:{'|'.join(branches)})"
    return f"(?:{body})?" if _END in node else body


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


def _url_encoded(secret: str) -> list[list[str]]:
    """The secret as URL encoders write it, as pattern atoms: percent-escapes in either case.

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
    return [
        [
            f"%(?i:{part[1:]})" if part.startswith("%") else re.escape(char)
            for part in re.split(r"(%[0-9A-F]{2})", form)
            if part
            for char in ([part] if part.startswith("%") else part)
        ]
        for form in sorted(encoded)
        if form != secret
    ]


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
