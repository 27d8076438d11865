"""Sending to the Merchant API: productInputs names, and Google's error messages.

A SKU's remote id is its product input's resource name in the encoded form the proto
recommends, ``accounts/{account}/productInputs/{base64url("lang~label~offerId")}``: it is what
``base64EncodedName`` returns and what ``GoogleConnector.product_input_name`` builds, and it
survives offer ids holding ``/``, ``%`` or ``~``.
"""

from __future__ import annotations

import base64

import httpx

from engine.connectors import json_body as _json

DEFAULT_TOKEN_URL = "https://oauth2.googleapis.com"


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


def error_message(response: httpx.Response) -> str:
    """Google's ``{"error": {code, message, status}}`` as ``STATUS: message``."""
    body = _json(response)
    error = body.get("error") if isinstance(body, dict) else None
    if isinstance(error, dict) and error.get("message"):
        return f"{error.get('status') or 'ERROR'}: {error['message']}"
    text = response.text.strip()
    return text[:300] if text else response.reason_phrase
