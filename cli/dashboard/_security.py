"""Who may see the dashboard: sign-in with the config's token, a session cookie, CSRF-checked forms.

The guarantees:

- The token is compared in constant time (:func:`hmac.compare_digest`), and sign-in attempts
  are paced per client address (:data:`SIGN_IN_RATE`; more get 429), so it can be neither timed
  nor guessed fast.
- A session is a random id in a cookie signed by starlette's ``SessionMiddleware`` (itsdangerous)
  with a key drawn when the server starts; the server keeps the ids signed in, so signing out
  ends a session for good (a copy of the cookie is worth nothing after), a restart signs everyone
  out, and a session lasts :data:`SESSION_HOURS` from sign-in whatever is done with it.
- The cookie is ``HttpOnly`` and ``SameSite=Strict``, and ``Secure`` unless the server listens on
  a loopback address (over plain HTTP on 127.0.0.1 a Secure cookie would never come back).
- Every POST carries the session's CSRF token (a random value kept in the signed session, a
  hidden field in every form), compared in constant time: a form without it or with another
  session's gets 403 and changes nothing. SameSite=Strict already keeps the cookie off other
  sites' requests; the token also covers browsers that ignore it.
"""

from __future__ import annotations

import hmac
import ipaddress
import secrets
import threading
import time
from typing import Any
from urllib.parse import parse_qsl

from starlette.middleware import Middleware
from starlette.middleware.sessions import SessionMiddleware
from starlette.requests import Request

from marketplaces.vtex._notifications import ClientLimits

SESSION_COOKIE = "tradepost_dashboard"
SESSION_HOURS = 8.0
"""Hours a sign-in lasts; then the dashboard asks for the token again."""
CSRF_FIELD = "csrf_token"
FORM_LIMIT = 16 * 1024
"""Bytes a dashboard form may post: a note or a reason is a few hundred."""
SIGN_IN_RATE = 1.0
"""Sign-in attempts a second one client address may make."""


class FormTooLarge(ValueError):
    """A posted form over :data:`FORM_LIMIT` bytes."""


def is_loopback(host: str) -> bool:
    """Whether ``host`` (the address ``serve`` listens on) is reachable only from this machine."""
    if host == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def session_middleware(secure: bool) -> Middleware:
    """Signed session cookies, with a key of this process: a restart signs everyone out."""
    return Middleware(
        SessionMiddleware,
        secret_key=secrets.token_urlsafe(32),
        session_cookie=SESSION_COOKIE,
        max_age=int(SESSION_HOURS * 3600),
        same_site="strict",
        https_only=secure,
    )


class Sessions:
    """The sessions signed in, by id, and the token that signs one in."""

    def __init__(self, token: str) -> None:
        self._token = token.encode("utf-8")
        self._signed_in: dict[str, float] = {}
        self._lock = threading.Lock()
        self.attempts = ClientLimits(SIGN_IN_RATE)
        """Sign-in attempts per client address: :meth:`ClientLimits.wait` says how long to wait."""

    def token_matches(self, given: str) -> bool:
        return hmac.compare_digest(given.encode("utf-8"), self._token)

    def sign_in(self, request: Request) -> None:
        """A new session id and CSRF token for ``request``'s browser (none carried over from before)."""
        session_id = secrets.token_urlsafe(32)
        with self._lock:
            self._forget_expired()
            self._signed_in[session_id] = time.time()
        request.session.clear()
        request.session.update({"id": session_id, CSRF_FIELD: secrets.token_urlsafe(32)})

    def sign_out(self, request: Request) -> None:
        with self._lock:
            self._signed_in.pop(str(request.session.get("id", "")), None)
        request.session.clear()

    def signed_in(self, request: Request) -> bool:
        session_id = request.session.get("id")
        with self._lock:
            since = self._signed_in.get(session_id) if isinstance(session_id, str) else None
        return since is not None and time.time() - since < SESSION_HOURS * 3600

    def _forget_expired(self) -> None:
        oldest = time.time() - SESSION_HOURS * 3600
        for session_id in [s for s, since in self._signed_in.items() if since < oldest]:
            del self._signed_in[session_id]


def csrf_token(request: Request) -> str:
    """The session's CSRF token, drawn on first use (the sign-in form has one too)."""
    token = request.session.get(CSRF_FIELD)
    if not isinstance(token, str):
        token = request.session[CSRF_FIELD] = secrets.token_urlsafe(32)
    return token


def csrf_ok(request: Request, form: dict[str, str]) -> bool:
    expected = request.session.get(CSRF_FIELD)
    given = form.get(CSRF_FIELD, "")
    return isinstance(expected, str) and hmac.compare_digest(given.encode("utf-8"), expected.encode("utf-8"))


async def read_form(request: Request) -> dict[str, str]:
    """A URL-encoded form (what every dashboard form posts), read up to :data:`FORM_LIMIT` bytes;
    a field given twice keeps its first value."""
    body = b""
    async for chunk in request.stream():
        body += chunk
        if len(body) > FORM_LIMIT:
            raise FormTooLarge(f"the form is over {FORM_LIMIT} bytes")
    fields: dict[str, Any] = {}
    for name, value in parse_qsl(body.decode("utf-8", errors="replace"), keep_blank_values=True):
        fields.setdefault(name, value)
    return fields
