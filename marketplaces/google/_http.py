"""Sending to the Merchant API: the OAuth token, productInputs paths, what answers mean.

A SKU's remote id is its product input's resource name in the encoded form the proto
recommends, ``accounts/{account}/productInputs/{base64url("lang~label~offerId")}``: it is what
``base64EncodedName`` returns and what ``GoogleConnector.product_input_name`` builds, and it
survives offer ids holding ``/``, ``%`` or ``~``.
"""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from engine._diagnostics import TradepostError
from engine._jsonio import loads
from marketplaces._base import Call, CallResult, Credentials

DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com"


# -- the token ---------------------------------------------------------------------------------


class TokenError(TradepostError):
    """The token endpoint refused the credentials, or kept failing; the message never repeats them."""


@dataclass
class RefreshedToken:
    """An access token obtained from a refresh token, kept until ``margin`` seconds before it expires.

    Refreshes happen one at a time, so a burst of requests at expiry costs one token request.
    The executor retries only the calls it sends, so throttling and server errors of the token
    endpoint are retried here. (The same class as Mercado Libre's, which also keeps a rotated
    refresh token; Google does not rotate them.)
    """

    url: str
    """Absolute, or relative to the client's base URL."""
    who: str
    margin: float = 60.0
    attempts: int = 4
    clock: Callable[[], float] = time.monotonic
    sleep: Callable[[float], Awaitable[None]] = asyncio.sleep
    access_token: str | None = None
    expires_at: float = 0.0
    refresh_token: str | None = None
    _locks: dict[asyncio.AbstractEventLoop, asyncio.Lock] = field(default_factory=dict, repr=False)

    async def headers(self, client: httpx.AsyncClient, credentials: Credentials) -> dict[str, str]:
        lock = self._locks.setdefault(asyncio.get_running_loop(), asyncio.Lock())
        async with lock:
            if self.access_token is None or self.clock() >= self.expires_at - self.margin:
                await self._refresh(client, credentials)
        return {"Authorization": f"Bearer {self.access_token}"}

    def forget(self) -> None:
        """Drop the access token (the API refused it): the next request refreshes."""
        self.access_token = None

    async def _refresh(self, client: httpx.AsyncClient, credentials: Credentials) -> None:
        form = {
            "grant_type": "refresh_token",
            "client_id": credentials.get("client_id"),
            "client_secret": credentials.get("client_secret"),
            "refresh_token": self.refresh_token or credentials.get("refresh_token"),
        }
        for attempt in range(self.attempts):
            started = self.clock()
            try:
                response = await client.post(self.url, data=form, headers={"Accept": "application/json"})
            except httpx.TransportError as exc:
                if attempt + 1 == self.attempts:
                    raise TokenError(f"{self.who}: the token endpoint did not answer ({exc})") from None
                await self.sleep(2.0**attempt)
                continue
            status, body = response.status_code, _json(response)
            if status == 200 and isinstance(body, dict) and body.get("access_token"):
                self.access_token = str(body["access_token"])
                self.expires_at = started + float(body.get("expires_in") or 0)
                if body.get("refresh_token"):
                    self.refresh_token = str(body["refresh_token"])
                return
            if (status == 429 or status >= 500) and attempt + 1 < self.attempts:
                await self.sleep(_retry_after(response) or 2.0**attempt)
                continue
            raise TokenError(
                f"{self.who} refused to refresh the access token ({status}: "
                f"{_token_error(body) or response.reason_phrase}); check the client_id, client_secret "
                "and refresh_token credentials"
            )


def _token_error(body: Any) -> str:
    if not isinstance(body, dict):
        return ""
    parts = [body.get("error"), body.get("error_description") or body.get("message")]
    return ": ".join(dict.fromkeys(str(p) for p in parts if p and not isinstance(p, dict)))


def _retry_after(response: httpx.Response) -> float | None:
    try:
        return min(max(float(response.headers.get("Retry-After", "")), 0.0), 60.0)
    except ValueError:
        return None


# -- names ---------------------------------------------------------------------------------------


def encoded_segment(identity: str) -> str:
    """``lang~label~offerId`` as the unpadded base64url segment the API detects by its lack of ``~``."""
    return base64.urlsafe_b64encode(identity.encode("utf-8")).rstrip(b"=").decode("ascii")


def decoded_segment(segment: str) -> str | None:
    """The ``lang~label~offerId`` a name segment stands for (plain or encoded); None if neither."""
    if "~" in segment:
        return segment
    try:
        identity = base64.urlsafe_b64decode(segment + "=" * (-len(segment) % 4)).decode("utf-8")
    except ValueError:
        return None
    return identity if identity.count("~") >= 2 else None


def encoded_name(name: str) -> str:
    """A resource name with its last segment in the encoded form."""
    parent, _, segment = name.rpartition("/")
    identity = decoded_segment(segment)
    return f"{parent}/{encoded_segment(identity)}" if identity and "~" in segment else name


# -- answers -------------------------------------------------------------------------------------


def read_input_result(call: Call, response: httpx.Response) -> CallResult:
    """2xx is done; 401, 429 and 5xx may pass on retry; any other 4xx is the request's fault.

    A delete answered 404 is done too: the input is gone, which is what the delete wanted (a
    retried delete whose first answer was lost gets exactly that). A 401 is retryable because
    the connector then drops the token, so the retry refreshes it.
    """
    status = response.status_code
    if 200 <= status < 300:
        body = _json(response)
        name = body.get("base64EncodedName") or body.get("name") if isinstance(body, dict) else None
        return CallResult(True, remote_id=encoded_name(str(name)) if name else None)
    if status == 404 and call.method == "DELETE":
        return CallResult(True)
    retryable = status in (401, 429) or status >= 500
    return CallResult(False, retryable=retryable, error=f"{status} {error_message(response)}")


def error_message(response: httpx.Response) -> str:
    """Google's ``{"error": {code, message, status}}`` as ``STATUS: message``."""
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('status') or 'ERROR'}: {error['message']}"
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase


def _json(response: httpx.Response) -> Any:
    try:
        return loads(response.content) if response.content else None
    except ValueError:
        return None
