"""The marketplace's own status of our listings: `tradepost status --refresh`, over the stand-ins.

Given the sandbox project of ``test_status`` (SQLite or PostgreSQL state: every test runs on
both), listings applied to Mercado Libre and Amazon for real, and the stand-ins then judging some
of them as the marketplaces do (an item taken down by moderation, one paused for lack of stock, an
Amazon listing suppressed by an ERROR issue), each test refreshes as a scheduler would and reads
what `tradepost status` shows: counts per status, the top reasons with a sample SKU, the exit code
under the ``max_rejected`` threshold, and a marketplace that cannot be read leaving the others
refreshed and its own earlier statuses in place.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from engine.connectors import ListingKey, ListingStatus
from engine.project import load_project, open_marketplace, open_state, refresh_listing_statuses
from engine.state import ListingStatuses, StateStore, migrate_state
from marketplaces._standin import Faults
from marketplaces.amazon.standin import AmazonStandin
from marketplaces.google.standin import GoogleStandin
from marketplaces.magalu.standin import MagaluStandin
from marketplaces.mercadolibre._status import judged
from marketplaces.mercadolibre.standin import MercadoLibreStandin
from marketplaces.meta.standin import MetaStandin
from marketplaces.mirakl._status import judged as mirakl_judged
from marketplaces.mirakl.standin import MiraklStandin
from marketplaces.netshoes.standin import NetshoesStandin
from tests import _postgres
from tests.test_state_contract import server as server  # the PostgreSQL fixture, per worker
from tests.test_status import Shop, edit_config
from tests.test_status import shop as shop  # the sandbox project on SQLite and on PostgreSQL

FAST = {"max_attempts": 3, "base_delay": 0.001}
SUPPRESSED = ("8541", "The product identifier conflicts with the Amazon catalog.")


def applied(shop: Shop, *marketplaces: str) -> dict[str, list[str]]:
    """Apply each marketplace in full; its SKUs live by the state store, those listed alone (not
    a variation of a family, which shares its item's status) first, sorted."""
    for name in marketplaces:
        code, _, err = shop.tradepost("apply", "-m", name)
        assert code == 0, err
    with open_state(load_project(shop.config)) as state:
        rows = {name: state.get_many(name, list(state.all_sku_ids(name))) for name in marketplaces}
    return {
        name: sorted(found, key=lambda sku: ("/" in (found[sku].remote_id or ""), sku))
        for name, found in rows.items()
    }


def judge(shop: Shop, skus: dict[str, list[str]]) -> dict[str, str]:
    """The stand-ins judge three listings as the marketplaces do; which SKU each."""
    ml: MercadoLibreStandin = shop.box.standins["mercadolibre"]
    amazon: AmazonStandin = shop.box.standins["amazon"]
    taken_down, paused, suppressed = skus["mercadolibre"][0], skus["mercadolibre"][1], skus["amazon"][0]
    ml.set_item_status(taken_down, "under_review", ["forbidden"])
    ml.set_item_status(paused, "paused", ["out_of_stock"])
    amazon.add_issue(suppressed, *SUPPRESSED)
    return {"taken_down": taken_down, "paused": paused, "suppressed": suppressed}


def test_rejected_listings_show_with_their_reason_and_a_sample_sku(shop: Shop) -> None:
    skus = applied(shop, "mercadolibre", "amazon")
    judged_skus = judge(shop, skus)
    code, document = shop.status("--refresh", "-m", "mercadolibre", "-m", "amazon")
    assert code == 2
    assert [r["error"] for r in document["refreshed"]] == [None, None]
    ml = document["marketplaces"]["mercadolibre"]["listing_statuses"]
    assert ml["counts"]["rejected"] == 1 and ml["counts"]["paused"] >= 1
    assert sum(ml["counts"].values()) == len(skus["mercadolibre"])
    assert {
        "status": "rejected",
        "code": "under_review/forbidden",
        "count": 1,
        "sample_sku": judged_skus["taken_down"],
        "reason": "taken down by Mercado Libre's moderation: the listing breaks a policy",
    } in ml["reasons"]
    amazon = document["marketplaces"]["amazon"]["listing_statuses"]
    assert amazon["counts"]["rejected"] == 1
    assert amazon["reasons"][0] == {
        "status": "rejected",
        "code": SUPPRESSED[0],
        "count": 1,
        "sample_sku": judged_skus["suppressed"],
        "reason": SUPPRESSED[1],
    }
    assert sum(amazon["counts"].values()) == len(skus["amazon"])
    assert sorted(document["problems"]) == [
        f"{name}: 1 listing(s) rejected by the marketplace (more than 0): see the reasons, correct the "
        "rules or the catalog, and apply"
        for name in ("amazon", "mercadolibre")
    ]
    code, out, _ = shop.tradepost("status", "-m", "mercadolibre")  # from the state: nothing read
    assert code == 2
    assert (
        f"  rejected under_review/forbidden: 1 listing(s), e.g. {judged_skus['taken_down']}: "
        "taken down by Mercado Libre's moderation: the listing breaks a policy"
    ) in out
    assert "  marketplace's own status of the listings: active " in out and "rejected 1 (read " in out
    shop.set_status(max_rejected=1)
    assert shop.status("-m", "mercadolibre", "-m", "amazon")[0] == 0


def test_a_refresh_replaces_the_statuses_read_before(shop: Shop) -> None:
    skus = applied(shop, "mercadolibre")
    ml: MercadoLibreStandin = shop.box.standins["mercadolibre"]
    ml.set_item_status(skus["mercadolibre"][0], "under_review", ["forbidden"])
    assert shop.status("--refresh", "-m", "mercadolibre")[0] == 2
    with open_state(load_project(shop.config)) as state:  # withdrawn since: no longer counted
        held = state.get_many("mercadolibre", [skus["mercadolibre"][0]])
        state.record_deleted("mercadolibre", [skus["mercadolibre"][0]])
        assert shop.status("-m", "mercadolibre")[0] == 0
        state.record_applied("mercadolibre", held.values())
    assert shop.status("-m", "mercadolibre")[0] == 2
    ml.set_item_status(skus["mercadolibre"][0], "active")  # the seller corrected it
    code, document = shop.status("--refresh", "-m", "mercadolibre")
    statuses = document["marketplaces"]["mercadolibre"]["listing_statuses"]
    assert (code, statuses["counts"], statuses["reasons"]) == (
        0,
        {"active": len(skus["mercadolibre"])},
        [],
    )


class _Garbage(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"<html>Service Unavailable</html>"
        self.send_response(200)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: Any) -> None:
        pass


@pytest.fixture
def garbage() -> Iterator[str]:
    """A server on loopback that answers every GET with a 200 HTML page: not any marketplace's API."""
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _Garbage)
    thread = threading.Thread(target=httpd.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{httpd.server_address[1]}"
    httpd.shutdown()
    httpd.server_close()


def test_a_marketplace_answering_garbage_exits_1_and_the_others_are_refreshed(
    shop: Shop, garbage: str
) -> None:
    skus = applied(shop, "mercadolibre", "amazon")
    judge(shop, skus)
    assert shop.status("--refresh", "-m", "amazon")[0] == 2  # read once: Amazon's rejected listing
    edit_config(
        shop.config, lambda document: document["marketplaces"]["amazon"].__setitem__("base_url", garbage)
    )
    code, out, err = shop.tradepost("status", "--refresh", "-m", "mercadolibre", "-m", "amazon")
    assert code == 1 and "Traceback" not in out + err
    assert err.strip().splitlines() == [
        "error: amazon: status not refreshed: GET /listings/2021-08-01/items/"
        f"{shop.box.standins['amazon'].seller_id}: the answer is not JSON"
    ]
    assert out.splitlines()[0].startswith(
        f"mercadolibre: refreshed {len(skus['mercadolibre'])} listing status"
    )
    assert "  marketplace's own status of the listings: active " in out
    remote = [line for line in out.splitlines() if "marketplace's own status of the listings" in line]
    assert len(remote) == 2 and all("rejected 1" in line for line in remote)  # Amazon's kept from before
    code, out, _ = shop.tradepost("status", "--refresh", "--json", "-m", "amazon")
    assert code == 1 and '"error": "GET /listings/' in out


def test_a_marketplace_failing_500_keeps_its_statuses_and_says_why(shop: Shop) -> None:
    skus = applied(shop, "mercadolibre")
    project = load_project(shop.config)
    run = open_marketplace(project, "mercadolibre")
    standin: MercadoLibreStandin = shop.box.standins["mercadolibre"]
    with open_state(project) as state:
        before = asyncio.run(refresh_listing_statuses(run, project, state, transport=standin.transport()))
        assert (before.error, before.listings) == (None, len(skus["mercadolibre"]))
        assert before.requests == 1  # the SKUs are in fewer than 20 items: one multiget
        standin.faults = Faults(error_rate=1.0)
        failed = asyncio.run(
            refresh_listing_statuses(run, project, state, transport=standin.transport(), reader_options=FAST)
        )
        assert failed.error is not None and "failed 3 times: 500" in failed.error
        assert failed.line().startswith("mercadolibre: status not refreshed: GET ")
        assert ListingStatuses(state).counts("mercadolibre") == {"active": len(skus["mercadolibre"])}


def test_google_disapproved_products_show_their_issue(shop: Shop) -> None:
    skus = applied(shop, "google")["google"]
    google: GoogleStandin = shop.box.standins["google"]
    google.disapprove(skus[0], "image_link_broken", "Invalid image [image_link]", "image_link")
    code, document = shop.status("--refresh", "-m", "google")
    statuses = document["marketplaces"]["google"]["listing_statuses"]
    assert (code, statuses["counts"]) == (2, {"active": len(skus) - 1, "rejected": 1})
    assert statuses["reasons"] == [
        {
            "status": "rejected",
            "code": "image_link_broken",
            "count": 1,
            "sample_sku": skus[0],
            "reason": "Invalid image [image_link] (image_link)",
        }
    ]


def test_magalu_and_netshoes_reviews_show_in_the_status(shop: Shop) -> None:
    skus = applied(shop, "magalu", "netshoes")
    assert skus["magalu"] and skus["netshoes"]
    magalu: MagaluStandin = shop.box.standins["magalu"]
    magalu.skus[skus["magalu"][0]].update(status="REJECTED", reason="a imagem principal tem marca d'água")
    netshoes: NetshoesStandin = shop.box.standins["netshoes"]
    netshoes.skus[skus["netshoes"][0]].active["NS"] = False  # Netshoes took it off sale
    code, document = shop.status("--refresh", "-m", "magalu", "-m", "netshoes")
    assert code == 2 and document["problems"] == [
        "magalu: 1 listing(s) rejected by the marketplace (more than 0): see the reasons, correct the "
        "rules or the catalog, and apply"
    ]
    on_magalu = document["marketplaces"]["magalu"]["listing_statuses"]
    assert on_magalu["counts"] == {"active": len(skus["magalu"]) - 1, "rejected": 1}
    assert on_magalu["reasons"] == [
        {
            "status": "rejected",
            "code": "REJECTED",
            "count": 1,
            "sample_sku": skus["magalu"][0],
            "reason": "a imagem principal tem marca d'água",
        }
    ]
    on_netshoes = document["marketplaces"]["netshoes"]["listing_statuses"]
    assert on_netshoes["counts"] == {"active": len(skus["netshoes"]) - 1, "paused": 1}
    assert on_netshoes["reasons"][0]["reason"] == "approved, but not for sale in business unit NS"


def test_a_meta_item_rejected_by_its_review_shows_the_reasons(shop: Shop) -> None:
    skus = applied(shop, "facebook")["facebook"]
    meta: MetaStandin = shop.box.standins["facebook"]
    meta.set_review(skus[0], "rejected", ["ADULT_CONTENT", "MISLEADING"])
    code, document = shop.status("--refresh", "-m", "facebook")
    statuses = document["marketplaces"]["facebook"]["listing_statuses"]
    assert (code, statuses["counts"]) == (2, {"active": len(skus) - 1, "rejected": 1})
    assert statuses["reasons"][0]["sample_sku"] == skus[0]
    assert statuses["reasons"][0]["reason"] == "ADULT_CONTENT, MISLEADING"


def test_a_carrefour_offer_inactive_for_a_rejected_product_shows_why(shop: Shop) -> None:
    skus = applied(shop, "carrefour")["carrefour"]
    carrefour: MiraklStandin = shop.box.standins["carrefour"]
    carrefour.deactivate(skus[0], "PRODUCT_STATUS_REJECTED")
    code, document = shop.status("--refresh", "-m", "carrefour")
    statuses = document["marketplaces"]["carrefour"]["listing_statuses"]
    assert code == 2 and statuses["counts"]["rejected"] == 1
    assert sum(statuses["counts"].values()) == len(skus)
    assert statuses["reasons"][0] == {
        "status": "rejected",
        "code": "PRODUCT_STATUS_REJECTED",
        "count": 1,
        "sample_sku": skus[0],
        "reason": "the operator's catalogue rejected the product",
    }


def test_a_marketplace_without_status_reads_says_so() -> None:
    from engine.connectors import connector_class

    assert connector_class("sellercenter").reports_listing_status is False


@pytest.mark.parametrize(
    ("item", "expected"),
    [
        ({"status": "active", "sub_status": []}, ("active", "active", "")),
        (
            {"status": "paused", "sub_status": ["out_of_stock"]},
            ("paused", "paused/out_of_stock", "paused by Mercado Libre: no stock left"),
        ),
        (
            {"status": "inactive", "sub_status": ["waiting_for_patch"]},
            (
                "rejected",
                "inactive/waiting_for_patch",
                "Mercado Libre asks for a correction of the listing before it is shown again",
            ),
        ),
        ({"status": "closed"}, ("inactive", "closed", "Mercado Libre shows the item closed")),
        ({"status": "mystery", "sub_status": ["odd"]}, ("unknown", "mystery/odd", "odd")),
    ],
)
def test_mercado_libre_states_map_to_the_vocabulary(
    item: dict[str, Any], expected: tuple[str, str, str]
) -> None:
    assert judged(item) == expected


@pytest.mark.parametrize(
    ("reasons", "expected"),
    [
        (["ZERO_QUANTITY"], "inactive"),
        (["PRODUCT_STATUS_NEW", "ZERO_QUANTITY"], "under_review"),
        (["SHOP_NOT_OPEN"], "paused"),
        (["ZERO_QUANTITY", "BRAND_UNAUTHORIZED_TO_SELL"], "rejected"),
    ],
)
def test_mirakl_inactivity_reasons_map_to_the_vocabulary(reasons: list[str], expected: str) -> None:
    state, code, _ = mirakl_judged({"active": False, "inactivity_reasons": reasons})
    assert (state, code) == (expected, ",".join(reasons))


def test_the_statuses_travel_with_a_migration(tmp_path: Path, server: _postgres.Server) -> None:
    with StateStore(tmp_path / "state.sqlite") as source:
        ListingStatuses(source).replace("amazon", [ListingStatus("1", "rejected", "8541", "why")], 100.0)
    with StateStore(tmp_path / "state.sqlite") as source, StateStore(server.url(server.database())) as target:
        migration = migrate_state(source, target)
        assert {t.table: t.copied for t in migration.tables}["listing_status"] == 1
        assert ListingStatuses(target).of("amazon", "1") == ListingStatus(
            "1", "rejected", "8541", "why", 100.0
        )
    assert ListingKey("1").remote_id is None
