"""Secrets stay out of every output, in every form; a secret that cannot be sent is refused when read;
a catalog of which nothing could be read fails the run instead of planning nothing."""

from __future__ import annotations

import asyncio
import base64
import json
import logging
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any
from urllib.parse import quote, quote_plus

import httpx
import pytest

import marketplaces.vtex
from cli.main import configure_logging, main
from engine.connectors import Credentials, RefreshedToken
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.project._assembly import Catalog, CatalogUnreadableError
from engine.secrets._redact import SecretError, read_secret, redact, register
from engine.state._store import StateStore
from marketplaces.sandbox import read_catalog
from marketplaces.vtex import vtex_records
from marketplaces.vtex.standin import SANDBOX_APP_KEY, VtexStandin
from tests.conftest import ROOT, sample_record
from tests.test_executor import record, run

SECRET = "tok/en+with=a'quote\"and\\slash and-space"
"""Printable ASCII, so it can be a header value, with every character an encoding changes."""
ODD_SECRET = "line one\nline two\tü€"
"""Not a header value (refused when read), but a rotated token may still look like this."""


def encodings(secret: str) -> dict[str, str]:
    """The forms a message may carry a secret in, as the libraries in use write them."""
    data = secret.encode("utf-8")
    return {
        "plain": secret,
        "python escape": secret.encode("unicode_escape").decode("ascii"),
        "repr": repr(secret),
        "repr of bytes (h11)": repr(data),
        "json": json.dumps(secret),
        "json unicode": json.dumps(secret, ensure_ascii=False),
        "json escaped slash": json.dumps(secret).replace("/", "\\/"),
        "quote": quote(secret),
        "quote safe none": quote(secret, safe=""),
        "quote lower hex": quote(secret, safe="").lower(),
        "quote_plus": quote_plus(secret),
        "encodeURIComponent": quote(secret, safe="!'()*~"),
        "base64": base64.b64encode(data).decode(),
        "base64 unpadded": base64.b64encode(data).decode().rstrip("="),
        "base64 urlsafe": base64.urlsafe_b64encode(data).decode(),
    }


@pytest.mark.parametrize("secret", [SECRET, ODD_SECRET], ids=["header-safe", "odd"])
@pytest.mark.parametrize("form", list(encodings(SECRET)))
def test_every_encoding_of_a_secret_is_masked_in_a_message(secret: str, form: str) -> None:
    register(secret)
    encoded = encodings(secret)[form]
    masked = redact(f"refused: {encoded} (try again)")
    assert masked in {f"refused: {quoted} (try again)" for quoted in ("***", "'***'", '"***"', "b'***'")}


@pytest.mark.parametrize("client_id", ["id", "id1", "id12", "amzn1.application-oa2-client.x"])
def test_a_secret_inside_a_basic_auth_header_is_masked_whatever_its_offset(client_id: str) -> None:
    register(SECRET)
    basic = base64.b64encode(f"{client_id}:{SECRET}".encode()).decode()
    masked = redact(f"Authorization: Basic {basic}")
    assert masked.endswith("***")
    left = masked.removeprefix("Authorization: Basic ").removesuffix("***")
    # Only the base64 of "id:" is left, plus at most the one group that mixes it with the secret.
    assert basic.startswith(left) and len(left) <= len(base64.b64encode(f"{client_id}:".encode())) + 4


def test_a_secret_that_contains_another_is_masked_whole() -> None:
    register("abcd-inner")
    register("outer-abcd-inner-outer")
    assert redact("x outer-abcd-inner-outer y abcd-inner") == "x *** y ***"


def test_log_lines_and_their_tracebacks_are_redacted(capsys: pytest.CaptureFixture[str]) -> None:
    register(ODD_SECRET)
    configure_logging()
    try:
        raise ValueError(f"Illegal header value {ODD_SECRET.encode()!r}")
    except ValueError:
        logging.getLogger("httpx").exception("request failed with %s", quote(ODD_SECRET))
    err = capsys.readouterr().err
    assert "request failed with ***" in err and "Illegal header value b'***'" in err
    assert "line one" not in err and "line two" not in err


def test_per_sku_errors_in_the_state_store_are_redacted(tmp_path: Path) -> None:
    register(SECRET)
    forms = encodings(SECRET)
    echoed = iter(forms.values())

    def handler(request: httpx.Request) -> httpx.Response:
        return httpx.Response(400, text=f"invalid credential {next(echoed)}")

    with StateStore(tmp_path / "state.sqlite") as state:
        summary, _ = run(state, handler, [record(str(n)) for n in range(len(forms))])
        errors = state.errors("test")
    assert summary.failed == len(forms) == len(errors)
    stored = json.dumps(errors)
    assert all(error.startswith("400: invalid credential ") and "***" in error for error in errors.values())
    assert all(form not in stored for form in forms.values() if len(form) > 4)


def test_oauth_access_tokens_are_masked_until_replaced() -> None:
    tokens = iter(["APP_USR-first-access-1a2b3c", "APP_USR-second-access-4d5e6f"])

    def token_endpoint(request: httpx.Request) -> httpx.Response:
        return httpx.Response(200, json={"access_token": next(tokens), "expires_in": 0})

    async def refresh_twice() -> None:
        token = RefreshedToken("/oauth/token", "Mercado Libre", margin=0.0)
        credentials = Credentials({"client_id": "c1", "client_secret": "s1", "refresh_token": "r1"})
        transport = httpx.MockTransport(token_endpoint)
        async with httpx.AsyncClient(transport=transport, base_url="http://ml.test") as client:
            await token.headers(client, credentials)
            assert redact("401: invalid token APP_USR-first-access-1a2b3c") == "401: invalid token ***"
            await token.headers(client, credentials)  # expired at once: refreshed

    asyncio.run(refresh_twice())
    assert redact("APP_USR-second-access-4d5e6f") == "***"
    assert redact("APP_USR-first-access-1a2b3c") == "APP_USR-first-access-1a2b3c"  # replaced: forgotten


# -- secrets that cannot be sent ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "problem"),
    [
        ("Zq8xW3kP9m\nRt5vB2nJ7h", "a line break (character 11)"),
        ("Zq8xW3kP9m\r\nRt5vB2nJ7h", "a line break (character 11)"),
        ("Zq8\txW3kP9mRt5v", "a tab (character 4)"),
        ("Zq8x\x07W3kP9mRt5v", "a control character (character 5)"),
        ("Z\u00e9q8xW3kP9mRt5v", "a character outside ASCII (character 2)"),
        ("Zq8xW3k\u4e2d\u6587P9mRt5v", "a character outside ASCII (character 8)"),
    ],
)
def test_a_secret_that_cannot_be_a_header_is_refused_naming_its_reference_only(
    value: str, problem: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "secrets").mkdir()
    (tmp_path / "secrets" / "x").write_text(value + "\n", encoding="utf-8")
    monkeypatch.setenv("VTEX_APP_TOKEN", value)
    for reference in ("file:secrets/x", "env:VTEX_APP_TOKEN"):
        with pytest.raises(SecretError) as caught:
            read_secret(reference, tmp_path)
        message = str(caught.value)
        assert message.startswith(f"the secret in {reference} has {problem}")
        assert not _shares_a_part(message, value)
        assert redact(value) == value  # refused before it was registered: nothing to mask it for


def test_surrounding_whitespace_is_stripped_as_before(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "token").write_text("file-secret-value\r\n", encoding="utf-8")
    monkeypatch.setenv("SOME_TOKEN", "  env-secret-value\n")
    assert read_secret("file:token", tmp_path) == "file-secret-value"
    assert read_secret("env:SOME_TOKEN") == "env-secret-value"


def test_a_secret_file_that_is_not_utf8_is_a_clear_error(tmp_path: Path) -> None:
    (tmp_path / "token").write_bytes(b"secret-\xff\xfe-value")
    with pytest.raises(SecretError, match=r"the secret in file:token is not UTF-8 text"):
        read_secret("file:token", tmp_path)


# -- end to end: the CLI ---------------------------------------------------------------------------

RECORDS = read_catalog(ROOT / "examples" / "catalog.jsonl")[:12]


def _shares_a_part(text: str, secret: str, size: int = 4) -> bool:
    """Whether any run of ``size`` characters of the secret appears in the text."""
    parts = {secret[i : i + size] for i in range(len(secret) - size + 1)}
    return any(part in text for part in parts if part.strip() == part)


def tradepost(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch, *args: str
) -> tuple[int, str, str]:
    """`tradepost ARGS` in process: exit code, stdout, stderr."""
    capsys.readouterr()
    monkeypatch.setattr(sys, "argv", ["tradepost", *args])
    try:
        main()
        code = 0
    except SystemExit as exit:
        code = int(exit.code or 0)
    out, err = capsys.readouterr()
    return code, out, err


def project(folder: Path, token: str, base_url: str = "http://vtex.test") -> Path:
    """A project reading VTEX at ``base_url`` with ``token`` as its AppToken, listing on Google."""
    (folder / "secrets").mkdir(parents=True)
    (folder / "secrets" / "vtex_app_key").write_text(SANDBOX_APP_KEY + "\n", encoding="utf-8")
    (folder / "secrets" / "vtex_app_token").write_text(token + "\n", encoding="utf-8")
    for name in ("google_client_id", "google_client_secret", "google_refresh_token"):
        (folder / "secrets" / name).write_text(f"{name}-value\n", encoding="utf-8")
    config = folder / "tradepost.yaml"
    config.write_text(
        f"""source:
  type: vtex
  base_url: {base_url}
  app_key_file: secrets/vtex_app_key
  app_token_file: secrets/vtex_app_token
state: state.sqlite
marketplaces:
  google:
    rules: {ROOT / "rules" / "google.yaml"}
    base_url: http://127.0.0.1:9
    credentials:
      client_id: file:secrets/google_client_id
      client_secret: file:secrets/google_client_secret
      refresh_token: file:secrets/google_refresh_token
""",
        encoding="utf-8",
    )
    return config


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_a_vtex_token_with_a_newline_is_refused_before_anything_is_sent(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    token = "Zq8xW3kP9mR\nt5vB2nJ7hQ"  # pasted with a line break in the middle
    config = project(tmp_path, token)
    code, out, err = tradepost(capsys, monkeypatch, command, "-c", str(config))
    assert code == 1
    assert err == (
        "error: the secret in file:secrets/vtex_app_token has a line break (character 12), so it cannot "
        "be sent in an HTTP header; write the secret alone, on one line, in ASCII\n"
    )
    assert not _shares_a_part(out + err, token)


def test_a_marketplace_secret_with_a_newline_is_refused_at_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(tmp_path, "fine-token")
    (tmp_path / "catalog.jsonl").write_text(json.dumps(RECORDS[0]) + "\n", encoding="utf-8")
    text = config.read_text(encoding="utf-8").replace("type: vtex\n", "type: file\n  path: catalog.jsonl\n")
    config.write_text(text, encoding="utf-8")
    secret = "Zq8xW3kP9mRt5vB2nJ7\nhQ4cL6dF1g"
    (tmp_path / "secrets" / "google_client_secret").write_text(secret, encoding="utf-8")
    code, out, err = tradepost(capsys, monkeypatch, "apply", "-c", str(config))
    assert code == 1
    assert (
        "error: credentials.client_secret: the secret in file:secrets/google_client_secret "
        "has a line break (character 20)"
    ) in err
    assert not _shares_a_part(out + err, secret)


class EchoingVtex(httpx.BaseTransport):
    """The VTEX stand-in, except that some SKUs' context calls fail quoting the AppToken."""

    def __init__(self, inner: httpx.BaseTransport, echoes: dict[str, str]) -> None:
        self.inner, self.echoes = inner, echoes

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        sku = request.url.path.rsplit("/", 1)[-1]
        if "stockkeepingunitbyid" in request.url.path and sku in self.echoes:
            return httpx.Response(400, json={"Message": f"bad token {self.echoes[sku]}"}, request=request)
        return self.inner.handle_request(request)


@pytest.fixture
def echoing_vtex(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> Iterator[tuple[Path, dict[str, str]]]:
    """A project whose VTEX source echoes its AppToken, one encoding per SKU, in its errors."""
    forms = {k: v for k, v in encodings(SECRET).items() if len(v) < 150}  # VTEX's message is cut at 200
    skus = [str(r["sku"]["id"]) for r in RECORDS]
    echoes = dict(zip(skus, forms.values(), strict=False))
    standin = VtexStandin(RECORDS, app_token=SECRET)
    transport = EchoingVtex(standin.sync_transport(), echoes)
    clients: list[httpx.Client] = []

    def records(source: Any, folder: Path, trade_policy: str = "1") -> Any:
        client = httpx.Client(base_url="http://vtex.test", transport=transport)
        clients.append(client)
        return vtex_records(source, folder, client, trade_policy=trade_policy)

    monkeypatch.setattr(marketplaces.vtex, "vtex_records", records)  # what the registered source calls
    yield project(tmp_path, SECRET), echoes
    for client in clients:
        client.close()


@pytest.mark.parametrize("fmt", ["table", "json", "jsonl"])
def test_a_token_echoed_by_vtex_reaches_no_plan_output(
    fmt: str,
    echoing_vtex: tuple[Path, dict[str, str]],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    config, echoes = echoing_vtex
    saved = tmp_path / "plan.json"
    args = ["plan", "-c", str(config), "--format", fmt, "--limit", "100", "-o", str(saved)]
    code, out, err = tradepost(capsys, monkeypatch, *args)
    assert code == 0, err
    written = out + err + saved.read_text(encoding="utf-8")
    assert written.count("bad token ***") >= len(echoes)  # at least in the saved plan
    assert not _shares_a_part(written.replace("\\\\", "\\"), SECRET, size=12)
    for form in echoes.values():
        assert form not in written


# -- a catalog that could not be read ---------------------------------------------------------------


class FakeSource:
    """A source yielding given items, ending complete or not."""

    def __init__(self, items: list[Any], complete: bool) -> None:
        self.items, self.ends_complete = items, complete
        self.count, self.complete = 0, False

    def __iter__(self) -> Iterator[Any]:
        self.count, self.complete = 0, False
        for item in self.items:
            self.count += isinstance(item, CatalogRecord)
            yield item
        self.complete = self.ends_complete


STOPPED = MalformedRecord(None, [("", "listing the SKUs stopped at page 1: 503 Service Unavailable")])


def test_a_source_that_read_nothing_and_stopped_raises_its_reason() -> None:
    catalog = Catalog(FakeSource([STOPPED], complete=False))  # type: ignore[arg-type]
    with pytest.raises(CatalogUnreadableError) as caught:
        list(catalog)
    assert str(caught.value) == (
        "the catalog could not be read: listing the SKUs stopped at page 1: 503 Service Unavailable; "
        "nothing was planned"
    )


DOWN = MalformedRecord("7", [("", "GET /pricing/prices/7 failed 4 times, last with 503")], unavailable=True)


def test_a_listing_whose_every_sku_went_unanswered_raises() -> None:
    catalog = Catalog(FakeSource([DOWN, DOWN], complete=True))  # type: ignore[arg-type]
    with pytest.raises(CatalogUnreadableError, match=r"could not be read: GET /pricing/prices/7 failed"):
        list(catalog)


@pytest.mark.parametrize(
    ("items", "complete"),
    [
        ([], True),  # an empty catalog is a catalog (the mass-delete guard is for that)
        ([STOPPED], True),
        ([DOWN, MalformedRecord("8", [("price", "bad")])], True),  # some data came: planned as invalid
        ([MalformedRecord("1", [("price", "bad")]), "good", STOPPED], False),  # partial: deletes withheld
    ],
)
def test_a_catalog_that_was_read_goes_through_in_order(items: list[Any], complete: bool) -> None:
    items = [sample_record() if item == "good" else item for item in items]
    assert list(Catalog(FakeSource(items, complete))) == items  # type: ignore[arg-type]


def closed_port() -> str:
    """A loopback address nothing listens on (a port bound, then released)."""
    import socket

    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{probe.getsockname()[1]}"


@pytest.mark.parametrize("command", ["plan", "apply"])
def test_an_unreachable_vtex_fails_plan_and_apply(
    command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(tmp_path, "a-good-token", base_url=closed_port())
    streamed = ["--format", "jsonl"] if command == "plan" else []  # jsonl prints each change as it comes
    code, out, err = tradepost(capsys, monkeypatch, command, "-c", str(config), *streamed)
    assert code == 1
    assert err.startswith(
        "error: the catalog could not be read: listing the SKUs of trade policy 1 stopped at page 1: GET "
        "/api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel failed 4 times, last with ConnectError"
    )
    assert out == ""  # no change, no summary: nothing was planned


def test_a_missing_catalog_file_fails_plan_and_apply(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    config = project(tmp_path, "a-good-token")
    text = config.read_text(encoding="utf-8").replace("type: vtex\n", "type: file\n  path: nope.jsonl\n")
    config.write_text(text, encoding="utf-8")
    for command in ("plan", "apply"):
        code, _, err = tradepost(capsys, monkeypatch, command, "-c", str(config))
        assert (code, err) == (1, f"error: catalog file not found: {tmp_path / 'nope.jsonl'}\n")


def test_a_meta_access_token_echoed_by_graph_is_masked_in_the_state_and_the_summary(tmp_path: Path) -> None:
    """Facebook: a Graph error quoting the system user's token (code 190) fails the batch; neither
    the state store's per-SKU error nor the apply summary carries the token."""
    from engine.sync._executor import Executor
    from marketplaces.meta import MetaConnector

    token = "EAAGm0PX4ZCpsBAM-meta-system-user-token"
    register(token)
    seen: list[httpx.Request] = []

    def graph(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        error = {"message": f"Malformed access token {token}", "type": "OAuthException", "code": 190}
        return httpx.Response(400, json={"error": error})

    async def apply(state: StateStore) -> Any:
        async with httpx.AsyncClient(
            transport=httpx.MockTransport(graph), base_url="http://graph.test"
        ) as client:
            executor = Executor(
                MetaConnector({"catalog_id": "1"}), client, state, Credentials({"access_token": token})
            )
            return await executor.apply([record("1"), record("2")])

    with StateStore(tmp_path / "state.sqlite") as state:
        summary = asyncio.run(apply(state))
        errors = state.errors("facebook")
    assert (summary.failed, len(errors), len(seen)) == (2, 2, 1)  # one batch, not retried
    assert all("(#190)" in error and "***" in error for error in errors.values())
    assert token not in json.dumps(errors) + json.dumps(summary.to_dict()) + summary.line()
    assert all(token not in str(request.url) for request in seen)  # a header, never the URL
