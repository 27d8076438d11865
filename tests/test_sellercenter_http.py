"""SellerCenter's request signature against API.md's worked example, envelopes and error mapping.

The worked example is read from ``../shared/specs/dafiti/API.md`` at test time (the spec is not
copied into the project); without it the test skips and says so.
"""

from __future__ import annotations

import logging
import re
from pathlib import Path

import httpx
import pytest

from marketplaces.sellercenter._http import (
    error_envelope,
    failure,
    parse_xml,
    read_envelope,
    redact,
    render,
    request_xml,
    signature,
    signature_matches,
    signed_query,
    string_to_sign,
    success_envelope,
    timestamp,
    xml_data,
)

SPEC = Path(__file__).resolve().parents[2] / "shared" / "specs" / "dafiti" / "API.md"


def _worked_example() -> tuple[str, dict[str, str], str, str]:
    """API key, parameters, string to sign and signature, as API.md's worked example gives them."""
    if not SPEC.exists():
        pytest.skip(f"{SPEC} is absent: the signature's worked example cannot be read")
    text = SPEC.read_text(encoding="utf-8")
    section = text[text.index("Worked example") :]
    key = re.search(r"API key `([0-9a-f]+)`", section)
    params = re.search(r"Parameters: (.+)", section)
    to_sign = re.search(r"String to sign: `([^`]+)`", section)
    sig = re.search(r"Signature: `([0-9a-f]{64})`", section)
    assert key and params and to_sign and sig, "API.md's worked example changed shape"
    pairs = dict(p.split("=", 1) for p in re.findall(r"`([^`=]+=[^`]*)`", params.group(1)))
    return key.group(1), pairs, to_sign.group(1), sig.group(1)


def test_the_signature_is_api_md_s_worked_example() -> None:
    key, params, expected_string, expected_signature = _worked_example()
    assert string_to_sign(params) == expected_string
    assert signature(params, key) == expected_signature
    assert signed_query(params, key) == f"{expected_string}&Signature={expected_signature}"
    assert signature_matches({**params, "Signature": expected_signature}, key)
    assert not signature_matches({**params, "Signature": expected_signature}, key + "x")


@pytest.mark.parametrize(
    ("value", "encoded"),
    [("a b", "a%20b"), ("a~b-c_d.e", "a~b-c_d.e"), ("ç", "%C3%A7"), ("a+b/c", "a%2Bb%2Fc")],
)
def test_encoding_is_rfc_3986(value: str, encoded: str) -> None:
    assert string_to_sign({"K": value}) == f"K={encoded}"


def test_names_sort_in_byte_order_and_the_signature_is_not_signed() -> None:
    assert string_to_sign({"b": "1", "B": "2", "a": "3", "Signature": "x"}) == "B=2&a=3&b=1"


def test_timestamp_has_the_documented_offset() -> None:
    assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\+00:00", timestamp())


def test_envelopes_round_trip_in_xml_and_json() -> None:
    for fmt in ("XML", "JSON"):
        content, _ = render(success_envelope("ProductCreate", None, request_id="feed-1"), fmt)
        envelope = read_envelope(content)
        assert envelope.ok and envelope.request_id == "feed-1"
        details = [{"Field": "Price", "Message": "must be positive", "SellerSku": "A"}]
        content, _ = render(error_envelope("ProductUpdate", "E001", "bad", details), fmt)
        envelope = read_envelope(content)
        assert not envelope.ok and envelope.code == "E001"
        assert envelope.describe() == "E001: bad; A Price must be positive"


def test_an_error_response_with_200_is_a_failure_and_e007_names_the_credentials() -> None:
    content, _ = render(error_envelope("FeedList", "E007", "Login failed. Signature mismatching"), "XML")
    result = failure(httpx.Response(200, content=content))
    assert result is not None and not result.retryable
    assert "E007" in (result.error or "") and "api_key credentials" in (result.error or "")
    assert failure(httpx.Response(200, content=render(success_envelope("FeedList"), "XML")[0])) is None
    garbled = failure(httpx.Response(200, content=b"<html>oops"))
    assert garbled is not None and garbled.retryable
    throttled = failure(httpx.Response(429, content=b""))
    assert throttled is not None and throttled.retryable


def test_request_bodies_nest_and_repeat() -> None:
    body = request_xml([{"SellerSku": "A", "Images": {"Image": ["u1", "u2"]}, "Skip": None}], "ProductImage")
    data = xml_data(parse_xml(body))
    assert data == {"ProductImage": {"SellerSku": "A", "Images": {"Image": ["u1", "u2"]}}}


def test_entities_are_refused() -> None:
    bomb = b'<?xml version="1.0"?><!DOCTYPE r [<!ENTITY a "aaaa">]><r>&a;</r>'
    with pytest.raises(ValueError, match="not a safe XML document"):
        parse_xml(bomb)


def test_signatures_are_redacted_from_httpx_logs(caplog: pytest.LogCaptureFixture) -> None:
    assert redact("/?Action=X&Signature=abc123") == "/?Action=X&Signature=<redacted>"
    with caplog.at_level(logging.INFO, logger="httpx"):
        logging.getLogger("httpx").info(
            'HTTP Request: %s %s "%s"', "GET", "https://h/?A=1&Signature=abcdef", "ok"
        )
    assert "abcdef" not in caplog.text and "Signature=<redacted>" in caplog.text
