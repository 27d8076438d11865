"""The VTEX source against the VTEX stand-in: the same records as the catalog file, whatever fails.

Most tests run the stand-in in process: ``VtexStandin.sync_transport()`` drives the ASGI app
from the synchronous ``httpx.Client`` the source takes (an event loop in a helper thread), so
no socket is opened. One test serves it with uvicorn on 127.0.0.1, to prove the same source
works over a real connection. The stand-in is built from ``examples/catalog.jsonl``: reading
it back through VTEX's API shapes must give the file's records exactly (prices to the cent,
stock per warehouse, specifications), and the file's malformed lines the same errors.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from decimal import Decimal
from pathlib import Path
from typing import Any

import httpx
import pytest
import uvicorn

from engine._diagnostics import TradepostError
from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.project._config import ConfigError, SourceConfig
from engine.sync._source import FileSource, SourceItem
from marketplaces._standin import Faults
from marketplaces.vtex import VtexAccessError, VtexSource, vtex_records
from marketplaces.vtex._mapping import active_fixed_price, product_and_sku, promotional_prices
from marketplaces.vtex.standin import SANDBOX_APP_KEY, SANDBOX_APP_TOKEN, VtexStandin

ROOT = Path(__file__).resolve().parent.parent
CATALOG = ROOT / "examples" / "catalog.jsonl"
BASE_URL = "https://teststore.vtexcommercestable.com.br"
CONTEXT = "/api/catalog_system/pvt/sku/stockkeepingunitbyid/"
LISTING = "/api/catalog_system/pvt/sku/stockkeepingunitidsbysaleschannel"
SIMULATION = "/api/checkout/pub/orderForms/simulation"
COMPUTED = "/pricing/prices/{sku}/computed"
"""Every price table's computed prices of a SKU; ``COMPUTED + "/{tp}"`` one trade policy's."""


def catalog(limit: int | None = None) -> list[dict[str, Any]]:
    with CATALOG.open(encoding="utf-8") as lines:
        records = [json.loads(line, parse_float=Decimal) for line in lines]
    return records[:limit]


def file_records(limit: int | None = None) -> list[SourceItem]:
    items = list(FileSource(CATALOG))
    return items[:limit]


@contextmanager
def vtex_source(
    standin: VtexStandin,
    *,
    trade_policy: str = "1",
    token: str = SANDBOX_APP_TOKEN,
    transport: Callable[[httpx.BaseTransport], httpx.BaseTransport] = lambda t: t,
    **options: Any,
) -> Iterator[VtexSource]:
    """A source reading the stand-in in process; waits are recorded in ``source.waits``, not slept."""
    headers = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": token}
    waits: list[float] = []
    options = {"page_size": 50, "sleep": waits.append, **options}
    with httpx.Client(
        base_url=BASE_URL, headers=headers, transport=transport(standin.sync_transport())
    ) as client:
        source = VtexSource(client, trade_policy, **options)
        source.waits = waits  # type: ignore[attr-defined]
        yield source


def same_items(got: list[SourceItem], expected: list[SourceItem]) -> None:
    """Records equal field for field; malformed ones for the same SKU with the same errors."""
    assert len(got) == len(expected)
    for ours, theirs in zip(got, expected, strict=True):
        if isinstance(theirs, MalformedRecord):
            assert isinstance(ours, MalformedRecord), (ours, theirs)
            assert (ours.sku_id, ours.errors) == (theirs.sku_id, theirs.errors)
        else:
            assert ours == theirs, theirs.sku.id


class FailingPaths(httpx.BaseTransport):
    """Answers ``status`` to every request whose path starts with one of ``prefixes``; the rest pass."""

    def __init__(self, inner: httpx.BaseTransport, prefixes: tuple[str, ...], status: int = 500) -> None:
        self.inner, self.prefixes, self.status = inner, prefixes, status
        self.refused = 0

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path.startswith(self.prefixes):
            self.refused += 1
            body = {"error": {"code": str(self.status), "message": "failing on purpose", "exception": None}}
            return httpx.Response(self.status, json=body, request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


class FailingExactly(FailingPaths):
    """Answers ``status`` to the requests whose path is one of ``prefixes`` exactly."""

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path in self.prefixes:
            return super().handle_request(request)
        return self.inner.handle_request(request)


class Answering(httpx.BaseTransport):
    """Answers 200 with ``body`` to the requests whose path is ``path``; the rest pass."""

    def __init__(self, inner: httpx.BaseTransport, path: str, body: bytes) -> None:
        self.inner, self.path, self.body = inner, path, body

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        if request.url.path == self.path:
            return httpx.Response(200, content=self.body, request=request)
        return self.inner.handle_request(request)

    def close(self) -> None:
        self.inner.close()


# -- the records ---------------------------------------------------------------------------------


def test_the_stand_in_gives_back_the_catalog_file_record_for_record() -> None:
    standin = VtexStandin(catalog())
    with vtex_source(standin) as source:
        got = list(source.records())
    same_items(got, file_records())
    assert (source.count, source.errors, source.complete) == (418, 2, True)
    malformed = [item for item in got if isinstance(item, MalformedRecord)]
    assert [(m.sku_id, m.errors) for m in malformed] == [
        ("2000030", [("price.selling", "must be a number (got '83,90')")]),
        ("2000295", [("price.selling", "must be a number (got '3488,99')")]),
    ]


def test_prices_stock_and_specs_are_exact() -> None:
    standin = VtexStandin(catalog(1))
    with vtex_source(standin) as source:
        (record,) = source.records()
    assert isinstance(record, CatalogRecord)
    assert record.price.selling == Decimal("476.99") and str(record.price.selling) == "476.99"
    assert (record.price.list, record.price.cost, record.price.promotional) == (
        Decimal("612.99"),
        Decimal("206.41"),
        Decimal("381.99"),
    )
    assert record.price.base is None
    assert [(w.warehouse, w.quantity, w.reserved) for w in record.stock.warehouses] == [("main", 1, 0)]
    assert record.sku.specs == {"Cor": "Vermelho", "Tamanho": "35"}
    assert record.product.category == "Apparel/Shoes/Sneakers" and record.product.category_id == "121"
    assert record.sku.main_image == "https://cdn.example.com/catalog/1000001/2000001-1.jpg"


def test_pages_are_read_until_an_empty_one() -> None:
    standin = VtexStandin(catalog(25))
    with vtex_source(standin, page_size=10) as source:
        got = list(source)
    same_items(got, file_records(25))
    assert standin.requests[f"GET {LISTING}"] == 4  # 10 + 10 + 5, then the empty page
    assert standin.requests[f"POST {SIMULATION}"] == 3  # one simulation per page


def test_records_stream_a_page_at_a_time() -> None:
    standin = VtexStandin(catalog(12))
    with vtex_source(standin, page_size=5) as source:
        records = source.records()
        next(records)
        assert standin.requests[f"GET {LISTING}"] == 1  # nothing past the first page was asked for
        assert sum(1 for path in standin.requests if path.startswith(f"GET {CONTEXT}")) == 1
        assert len(list(records)) == 11


def test_only_the_skus_of_the_trade_policy_are_read() -> None:
    records = catalog(6)
    in_two = {str(r["sku"]["id"]) for r in records[::2]}
    standin = VtexStandin(records, trade_policies=("1", "2"), assortment={sku: ("1",) for sku in in_two})
    with vtex_source(standin, trade_policy="2") as source:
        ids = [item.sku.id for item in source if isinstance(item, CatalogRecord)]
    assert ids == [str(r["sku"]["id"]) for r in records[1::2]]


# -- credentials ---------------------------------------------------------------------------------


def test_a_wrong_app_token_is_a_clear_error_without_the_token() -> None:
    wrong = "wrong-token-7f3a9c1e"
    with (
        vtex_source(VtexStandin(catalog(3)), token=wrong) as source,
        pytest.raises(VtexAccessError) as caught,
    ):
        list(source)
    message = str(caught.value)
    assert caught.value.status == 401
    assert "401" in message and "AppToken" in message and LISTING in message
    assert wrong not in message and wrong not in repr(caught.value.args)
    assert SANDBOX_APP_TOKEN not in message


def test_a_token_echoed_in_an_error_body_is_masked() -> None:
    class EchoingServer(httpx.BaseTransport):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            token = request.headers["X-VTEX-API-AppToken"]
            return httpx.Response(502, json={"Message": f"upstream rejected token {token}"}, request=request)

    with vtex_source(VtexStandin([]), max_attempts=1, transport=lambda inner: EchoingServer()) as source:
        (stopped,) = list(source)
    assert "upstream rejected token ***" in str(stopped) and SANDBOX_APP_TOKEN not in str(stopped)


def test_a_key_without_the_pricing_role_names_the_resource() -> None:
    standin = VtexStandin(catalog(3), grants=("catalog", "logistics"))
    with vtex_source(standin) as source, pytest.raises(VtexAccessError) as caught:
        list(source)
    assert caught.value.status == 403
    assert "Pricing: Read prices" in str(caught.value)


# -- faults --------------------------------------------------------------------------------------


def test_injected_errors_throttling_and_dropped_connections_are_retried() -> None:
    faults = Faults(error_rate=0.15, throttle_rate=0.1, drop_rate=0.05, seed=11)
    standin = VtexStandin(catalog(60), faults=faults)
    with vtex_source(standin, page_size=25, max_attempts=8, backoff=0.0) as source:
        got = list(source)
    same_items(got, file_records(60))
    assert source.complete and source.retries > 0 and standin.throttled > 0
    assert 0.05 in [round(wait, 3) for wait in source.waits]  # type: ignore[attr-defined]  # Retry-After


def test_the_real_rate_limit_is_waited_out() -> None:
    standin = VtexStandin(catalog(3), rate_limit=20.0, burst=3)
    with vtex_source(standin, sleep=time.sleep, max_attempts=10) as source:
        got = list(source)
    same_items(got, file_records(3))
    assert standin.throttled > 0 and source.retries >= standin.throttled


def test_a_sku_that_keeps_failing_is_malformed_and_the_others_still_come() -> None:
    records = catalog(8)
    broken = str(records[3]["sku"]["id"])
    with vtex_source(
        VtexStandin(records),
        max_attempts=3,
        transport=lambda inner: FailingPaths(inner, (CONTEXT + broken,)),
    ) as source:
        got = list(source)
    assert source.complete and (source.count, source.errors) == (7, 1)
    failed = got[3]
    assert isinstance(failed, MalformedRecord) and failed.sku_id == broken
    assert failed.errors == [
        ("", f"GET {CONTEXT}{broken} failed 3 times, last with 500 Internal Server Error: failing on purpose")
    ]
    assert source.waits == [pytest.approx(0.5, abs=0.25), pytest.approx(1.0, abs=0.5)]  # type: ignore[attr-defined]
    assert failed.unavailable  # VTEX never answered: a later read may succeed (orders wait for it)
    expected = file_records(8)
    same_items(got[:3] + got[4:], expected[:3] + expected[4:])


def test_a_client_error_is_not_retried() -> None:
    records = catalog(3)
    missing = str(records[1]["sku"]["id"])
    wrappers: list[FailingPaths] = []

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        wrappers.append(FailingPaths(inner, (f"/api/logistics/pvt/inventory/skus/{missing}",), 404))
        return wrappers[0]

    with vtex_source(VtexStandin(records), transport=wrap) as source:
        got = list(source)
    assert wrappers[0].refused == 1
    assert isinstance(got[1], MalformedRecord) and "answered 404 Not Found" in str(got[1])
    assert not got[1].unavailable  # VTEX answered: the SKU is gone, retrying will not bring it back
    assert source.complete


@pytest.mark.parametrize(
    ("path", "missing"),
    [(CONTEXT + "{sku}", True), ("/api/logistics/pvt/inventory/skus/{sku}", False)],
    ids=["context", "inventory"],
)
def test_only_a_404_for_the_sku_itself_says_vtex_no_longer_has_it(path: str, missing: bool) -> None:
    """Given VTEX answering 404 for one SKU's own record, expect the record marked missing (a sync
    of that SKU withdraws it); a 404 for its stock is bad data, not a removal."""
    records = catalog(3)
    sku = str(records[1]["sku"]["id"])

    def wrap(inner: httpx.BaseTransport) -> httpx.BaseTransport:
        return FailingPaths(inner, (path.format(sku=sku),), 404)

    with vtex_source(VtexStandin(records), transport=wrap) as source:
        got = list(source.records_for([sku]))
    (record,) = got
    assert isinstance(record, MalformedRecord) and record.sku_id == sku
    assert (record.missing, record.unavailable) == (missing, False)


def without_fixed_price(standin: VtexStandin, sku: str, trade_policy: str) -> VtexStandin:
    """The stand-in with the SKU's fixed price in the trade policy removed: the computed prices of
    every price table then leave the trade policy out, as VTEX does."""
    prices = standin.skus[sku].prices
    prices["fixedPrices"] = [f for f in prices["fixedPrices"] if f["tradePolicyId"] != trade_policy]
    return standin


@pytest.mark.parametrize(
    ("fixed_price", "failing", "asked"),
    [
        (True, "", {"all": 1}),
        (False, "", {"all": 1, "own": 1}),  # no entry for the trade policy: its own call
        (True, COMPUTED, {"own": 1}),  # a 404 (from the transport: the stand-in sees the own call)
    ],
    ids=["entry", "no-entry", "all-tables-404"],
)
def test_the_trade_policy_takes_its_entry_of_the_computed_prices_else_asks_its_own(
    fixed_price: bool, failing: str, asked: dict[str, int]
) -> None:
    records = catalog(3)
    sku = str(records[1]["sku"]["id"])
    standin = VtexStandin(records, trade_policies=("1", "2"))
    if not fixed_price:
        without_fixed_price(standin, sku, "1")
    paths = (failing.format(sku=sku),) if failing else ()
    with vtex_source(standin, transport=lambda inner: FailingExactly(inner, paths, 404)) as source:
        got = list(source)
    same_items(got, file_records(3))
    own = f"GET {COMPUTED.format(sku=sku)}/1"
    calls = {"all": standin.requests[f"GET {COMPUTED.format(sku=sku)}"], "own": standin.requests[own]}
    assert {name: n for name, n in calls.items() if n} == asked


@pytest.mark.parametrize(
    ("status", "unavailable", "reason"),
    [(404, False, "answered 404 Not Found"), (500, True, "failed 4 times")],
)
def test_the_trade_policys_own_computed_price_decides_as_it_always_did(
    status: int, unavailable: bool, reason: str
) -> None:
    """Given no entry for trade policy 1 in the computed prices, expect its own call's failure
    to make the record malformed, as before the computed prices were read (not missing: a
    price VTEX does not have is not a SKU it no longer has)."""
    records = catalog(3)
    sku = str(records[1]["sku"]["id"])
    standin = without_fixed_price(VtexStandin(records), sku, "1")
    own = COMPUTED.format(sku=sku) + "/1"
    with vtex_source(standin, transport=lambda inner: FailingPaths(inner, (own,), status)) as source:
        (record,) = source.records_for([sku])
    assert isinstance(record, MalformedRecord) and record.sku_id == sku
    assert reason in str(record) and own in str(record)
    assert (record.missing, record.unavailable) == (False, unavailable)


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (
            b'{"tradePolicyId": "1", "sellingPrice": 1}',
            ("price.selling", "the VTEX computed prices answer is not a JSON array"),
        ),
        (
            b'[{"tradePolicyId": "2"}, "1"]',
            ("price.selling", "entry 1 of the VTEX computed prices is not a JSON object"),
        ),
        (b"[{", ("", "GET {path} answered 200 with a body that is not JSON")),
    ],
    ids=["object", "entry", "not-json"],
)
def test_computed_prices_that_are_not_a_list_of_objects_make_the_sku_malformed(
    body: bytes, error: tuple[str, str]
) -> None:
    records = catalog(3)
    sku = str(records[1]["sku"]["id"])
    path = COMPUTED.format(sku=sku)
    with vtex_source(VtexStandin(records), transport=lambda inner: Answering(inner, path, body)) as source:
        got = list(source)
    assert isinstance(got[1], MalformedRecord) and got[1].sku_id == sku
    assert got[1].errors == [(error[0], error[1].format(path=path))]
    same_items(got[:1] + got[2:], file_records(1) + file_records(3)[2:])


def test_a_listing_page_that_keeps_failing_ends_an_incomplete_stream() -> None:
    class SecondPageFails(FailingPaths):
        def handle_request(self, request: httpx.Request) -> httpx.Response:
            if request.url.path == LISTING and request.url.params["page"] == "2":
                return super().handle_request(request)
            return self.inner.handle_request(request)

    with vtex_source(
        VtexStandin(catalog(12)),
        page_size=5,
        max_attempts=2,
        transport=lambda inner: SecondPageFails(inner, (LISTING,), 503),
    ) as source:
        got = list(source)
    assert not source.complete
    assert [type(item) for item in got] == [CatalogRecord] * 5 + [MalformedRecord]
    assert "stopped at page 2" in str(got[-1]) and "503" in str(got[-1])


def test_a_failed_simulation_makes_its_page_malformed_rather_than_unpromoted() -> None:
    with vtex_source(
        VtexStandin(catalog(3)), max_attempts=2, transport=lambda inner: FailingPaths(inner, (SIMULATION,))
    ) as source:
        got = list(source)
    assert all(isinstance(item, MalformedRecord) for item in got)
    assert all(item.errors[0][0] == "price.promotional" for item in got if isinstance(item, MalformedRecord))
    assert all(item.unavailable for item in got if isinstance(item, MalformedRecord))
    assert source.complete


# -- the project config --------------------------------------------------------------------------


def test_vtex_records_reads_the_key_from_the_environment_and_the_token_from_a_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SHOP_VTEX_KEY", SANDBOX_APP_KEY)
    (tmp_path / "vtex.token").write_text(SANDBOX_APP_TOKEN + "\n", encoding="utf-8")
    config = SourceConfig(
        type="vtex", account="teststore", app_key_env="SHOP_VTEX_KEY", app_token_file="vtex.token"
    )
    standin = VtexStandin(catalog(4))
    with httpx.Client(base_url=BASE_URL, transport=standin.sync_transport()) as client:
        source = vtex_records(config, tmp_path, client)
        same_items(list(source), file_records(4))
    assert source.pricing_url == "https://api.vtex.com/teststore"


def test_vtex_records_builds_its_client_from_the_config(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setenv("VTEX_APP_KEY", "vtexappkey-store-ABC")
    monkeypatch.setenv("VTEX_APP_TOKEN", "token-from-the-environment")
    config = SourceConfig(type="vtex", account="mystore")
    with vtex_records(config, tmp_path, trade_policy="2") as source:
        assert str(source.client.base_url) == "https://mystore.vtexcommercestable.com.br"
        assert source.client.headers["X-VTEX-API-AppToken"] == "token-from-the-environment"
        assert source.trade_policy == "2"
    sandbox = SourceConfig(type="vtex", base_url="http://127.0.0.1:8765")
    with vtex_records(sandbox, tmp_path) as source:
        assert source.pricing_url == ""  # the sandbox serves the Pricing API on its own host


@pytest.mark.parametrize(
    ("config", "environment", "expected"),
    [
        (SourceConfig(type="vtex"), {}, "source.account is required"),
        (SourceConfig(type="vtex", account="s"), {}, "export VTEX_APP_KEY"),
        (SourceConfig(type="vtex", account="s"), {"VTEX_APP_KEY": "k"}, "VTEX_APP_TOKEN is not set"),
        (SourceConfig(type="vtex", account="s", app_token_file="none"), {"VTEX_APP_KEY": "k"}, "cannot read"),
    ],
)
def test_vtex_records_says_which_setting_is_missing(
    config: SourceConfig,
    environment: dict[str, str],
    expected: str,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for name in ("VTEX_APP_KEY", "VTEX_APP_TOKEN"):
        monkeypatch.delenv(name, raising=False)
    for name, value in environment.items():
        monkeypatch.setenv(name, value)
    with pytest.raises((ConfigError, TradepostError), match=expected):
        vtex_records(config, tmp_path)


# -- over a real socket --------------------------------------------------------------------------


@contextmanager
def served(app: VtexStandin) -> Iterator[str]:
    """The stand-in on 127.0.0.1 (a free port) in a thread, stopped and joined on exit."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", 0))
    server = uvicorn.Server(uvicorn.Config(app, log_level="warning", lifespan="off"))
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 10
    while not server.started:
        assert thread.is_alive() and time.monotonic() < deadline, "the loopback server did not start"
        time.sleep(0.01)
    try:
        yield f"http://127.0.0.1:{sock.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()


def test_over_a_loopback_socket(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A few SKUs only: each loopback request costs ~45 ms here (h11 writes meet delayed ACKs).
    monkeypatch.setenv("VTEX_APP_KEY", SANDBOX_APP_KEY)
    monkeypatch.setenv("VTEX_APP_TOKEN", SANDBOX_APP_TOKEN)
    with (
        served(VtexStandin(catalog(7))) as url,
        vtex_records(SourceConfig(type="vtex", base_url=url), tmp_path, page_size=3) as source,
    ):
        got = list(source)
    same_items(got, file_records(7))
    assert source.complete


# -- the stand-in's own answers -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("path", "headers", "status", "message"),
    [
        (LISTING + "?sc=1", {}, 401, "X-VTEX-API-AppKey and X-VTEX-API-AppToken are required"),
        (LISTING, None, 400, "sc is required"),
        (CONTEXT + "999", None, 404, "SKU 999 not found"),
        ("/pricing/prices/2000001/computed/7", None, 404, "in price table 7"),
        ("/pricing/prices/999/computed", None, 404, "no price for item 999"),
        ("/sandbox/pricing/prices/999/computed", None, 404, "no price for item 999"),
        ("/api/nothing/here", None, 404, "no such resource"),
    ],
)
def test_the_stand_in_answers_errors_in_vtex_shape(
    path: str, headers: dict[str, str] | None, status: int, message: str
) -> None:
    standin = VtexStandin(catalog(1))
    credentials = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}
    with httpx.Client(base_url=BASE_URL, transport=standin.sync_transport()) as client:
        response = client.get(path, headers=credentials if headers is None else headers)
    assert response.status_code == status
    error = response.json()["error"]
    assert error["code"] == str(status) and message in error["message"] and error["exception"] is None


@pytest.mark.parametrize("account", ["", "/sandbox"])
def test_the_stand_in_answers_every_trade_policys_computed_price_in_one_call(account: str) -> None:
    """Given a SKU in trade policies 1 and 3 priced apart in 3, expect ``.../computed`` to answer
    an entry per trade policy, each the per-table route's answer, with or without the account."""
    standin = VtexStandin(catalog(1), trade_policies=("1", "3"))
    standin.set_price(standin.skus["2000001"], Decimal("500.00"), "3")
    credentials = {"X-VTEX-API-AppKey": SANDBOX_APP_KEY, "X-VTEX-API-AppToken": SANDBOX_APP_TOKEN}
    path = account + COMPUTED.format(sku="2000001")
    with httpx.Client(base_url=BASE_URL, transport=standin.sync_transport(), headers=credentials) as client:
        every = client.get(path).json(parse_float=Decimal)
        own = [client.get(f"{path}/{tp}").json(parse_float=Decimal) for tp in ("1", "3")]
    assert [{**entry, "priceValidUntil": None} for entry in every] == [
        {**answer, "priceTable": tp, "priceValidUntil": None}
        for answer, tp in zip(own, ("1", "3"), strict=True)
    ]
    assert [entry["sellingPrice"] for entry in every] == [Decimal("476.99"), Decimal("500.00")]


# -- the mapping, where the stand-in cannot reach ------------------------------------------------


def test_the_main_image_is_found_in_its_resized_url() -> None:
    context = {
        "Id": 1,
        "ProductId": 2,
        "ImageUrl": "http://store.vteximg.com.br/arquivos/ids/168953-55-55/b.jpg",
        "Images": [
            {
                "ImageUrl": "http://store.vteximg.com.br/arquivos/ids/168952/a.jpg",
                "ImageName": "",
                "FileId": 168952,
            },
            {
                "ImageUrl": "http://store.vteximg.com.br/arquivos/ids/168953/b.jpg",
                "ImageName": "b",
                "FileId": 168953,
            },
        ],
    }
    _, sku = product_and_sku(context)
    assert [(image["label"], image["is_main"]) for image in sku["images"]] == [(None, False), ("b", True)]


def test_a_category_without_a_name_is_malformed() -> None:
    source_context = {
        "Id": 1,
        "ProductId": 2,
        "ProductCategoryIds": "/1/10/",
        "ProductCategories": {"10": "Shoes"},
    }
    with pytest.raises(Exception, match="category 1 of ProductCategoryIds has no name"):
        product_and_sku(source_context)


def test_the_scheduled_fixed_price_of_the_trade_policy_wins_while_it_runs() -> None:
    fixed = [
        {"tradePolicyId": "1", "value": 10, "listPrice": 12, "minQuantity": 1},
        {
            "tradePolicyId": "1",
            "value": 8,
            "listPrice": 11,
            "minQuantity": 1,
            "dateRange": {"from": "2024-11-29T00:00:00Z", "to": "2024-11-30T00:00:00Z"},
        },
        {"tradePolicyId": "1", "value": 7, "listPrice": 9, "minQuantity": 10},
        {"tradePolicyId": "2", "value": 6, "listPrice": 8, "minQuantity": 1},
    ]
    black_friday = datetime(2024, 11, 29, 12, tzinfo=UTC)
    assert active_fixed_price(fixed, "1", black_friday) == fixed[1]
    assert active_fixed_price(fixed, "1", datetime(2024, 12, 1, tzinfo=UTC)) == fixed[0]
    assert active_fixed_price(fixed, "3", black_friday) is None


def test_only_a_discount_makes_a_promotional_price() -> None:
    simulation = {
        "items": [
            {"id": "1", "sellingPrice": 8990, "unitMultiplier": 1, "priceTags": [{"value": -1000}]},
            {"id": "2", "sellingPrice": 8990, "unitMultiplier": 1, "priceTags": []},
            {"id": "3", "sellingPrice": 45000, "unitMultiplier": 5, "priceTags": [{"value": -5000}]},
        ]
    }
    assert promotional_prices(simulation) == {"1": Decimal("89.90"), "3": Decimal("90")}
