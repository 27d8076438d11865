"""Saved plans: `tradepost apply plan.json` sends what `tradepost plan -o` printed, or nothing.

Given a plan file that was truncated, edited, or made with other rules, apply must refuse it
with a message naming the file and what is wrong (the JSON path, the SKU), exit 1, and send
nothing; never a KeyError or a TypeError. The sweep at the end corrupts a real plan in every
way listed in issue 8 and counts the outcomes: internal errors must be 0.
"""

from __future__ import annotations

import random
import shutil
from collections import Counter
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from engine.jsonio import dumps, loads
from engine.project._apply import fingerprint_of
from engine.project._assembly import open_marketplace
from engine.project._config import load_project
from engine.sync._planfile import PlanFileError, change_digest, check_rules, checked_changes, read_plan
from marketplaces.sandbox import Sandbox, read_catalog
from tests._harness import ROOT, Loopback, tradepost, write_project

CATALOG = ROOT / "examples" / "catalog.jsonl"
INVALID_PLAN = "is not a valid tradepost plan"


def subset(count: int) -> list[dict[str, Any]]:
    """The first products of the example catalog (families whole), and a pet toy Google cannot map."""
    records = read_catalog(CATALOG)
    chosen = records[:count]
    last = chosen[-1]["product"]["id"]
    pets = next(r for r in records if r["product"]["category_path"][0] == "Pets")
    return [*chosen, *(r for r in records[count:] if r["product"]["id"] == last), pets]


@pytest.fixture
def box(loopback: Loopback) -> Sandbox:
    return loopback.sandbox(subset(12))


@pytest.fixture
def project(box: Sandbox, tmp_path: Path) -> Path:
    """A sandbox project with its own rules and catalog (so a test can edit them), and an empty Google."""
    rules = tmp_path / "rules"
    shutil.copytree(ROOT / "rules", rules)
    # A catalog file beside the rules (where the sandbox looks for one): planning from a file
    # takes milliseconds, from the VTEX stand-in seconds.
    (tmp_path / "examples").mkdir()
    lines = [dumps(record) for record in subset(12)]
    (tmp_path / "examples" / "catalog.jsonl").write_text("\n".join(lines) + "\n", encoding="utf-8")
    return write_project(box, tmp_path / "project", rules, catalog_from_vtex=False)


def make_plan(config: Path, *only: str) -> Path:
    plan = config.parent / "plan.json"
    marketplaces = [arg for name in only for arg in ("-m", name)]
    code, _, err = tradepost("plan", "-c", str(config), *marketplaces, "-o", str(plan))
    assert code == 0, err
    return plan


def edit(plan: Path, change: Any) -> None:
    """Rewrite a plan through the exact-decimal JSON reader and writer, as a careful tool would."""
    document = loads(plan.read_bytes())
    change(document)
    plan.write_text(dumps(document), encoding="utf-8")


def google_inputs(box: Sandbox) -> dict[str, Any]:
    """What the Google stand-in holds, by offer id (the SKU)."""
    inputs = box.standins["google"].inputs  # type: ignore[attr-defined]
    return {i["offerId"]: i for i in inputs.values()}


def first_create(document: dict[str, Any], marketplace: str = "google") -> dict[str, Any]:
    return next(c for c in document["marketplaces"][marketplace]["changes"] if c["op"] == "create")


# -- what apply refuses, with the message a user reads -------------------------------------------


def test_an_intact_plan_is_applied(box: Sandbox, project: Path) -> None:
    plan = make_plan(project, "google")
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 0, err
    saved = [c for c in read_plan(plan)["marketplaces"]["google"]["changes"] if c["op"] == "create"]
    assert saved and set(google_inputs(box)) == {c["sku_id"] for c in saved}


def test_a_plan_made_with_other_rules_is_refused(box: Sandbox, project: Path) -> None:
    plan = make_plan(project, "google")
    rules = project.parent.parent / "rules" / "google.yaml"
    text = rules.read_text(encoding="utf-8")
    markup = "value: (price.list ?? price.selling) * 1.90  # +90%"
    assert "value: price.list ?? price.selling" in text
    rules.write_text(text.replace("value: price.list ?? price.selling", markup, 1), encoding="utf-8")
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err == (
        f"error: the rules for google changed since {plan} was made (or its connector options, or the "
        "tradepost version); nothing was sent. Run `tradepost plan` again\n"
    )
    assert google_inputs(box) == {}


def test_a_comment_in_the_rules_does_not_invalidate_a_plan(project: Path) -> None:
    plan = make_plan(project, "google")
    rules = project.parent.parent / "rules" / "google.yaml"
    rules.write_text("# reviewed\n" + rules.read_text(encoding="utf-8"), encoding="utf-8")
    document = read_plan(plan)
    run = open_marketplace(load_project(project), "google")
    check_rules(plan, document, "google", fingerprint_of(run))  # does not raise


def test_an_edited_payload_price_is_refused_naming_the_sku(box: Sandbox, project: Path) -> None:
    plan = make_plan(project, "google")
    document = read_plan(plan)
    create = first_create(document)
    index = document["marketplaces"]["google"]["changes"].index(create)

    def cheapen(doc: dict[str, Any]) -> None:
        body = doc["marketplaces"]["google"]["changes"][index]["payloads"][0]
        body["productAttributes"]["price"]["amountMicros"] = "10000"  # 0.01

    edit(plan, cheapen)
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err == (
        f"error: {plan}: the google change for SKU {create['sku_id']} (marketplaces.google.changes[{index}]) "
        "was edited after the plan was made (its digest does not match); nothing was sent. "
        "Run `tradepost plan` again\n"
    )
    assert google_inputs(box) == {}


def test_an_edited_payload_with_a_recomputed_digest_is_still_refused(box: Sandbox, project: Path) -> None:
    plan = make_plan(project, "google")
    document = read_plan(plan)
    create = first_create(document)
    index = document["marketplaces"]["google"]["changes"].index(create)

    def cheapen(doc: dict[str, Any]) -> None:
        change = doc["marketplaces"]["google"]["changes"][index]
        change["payloads"][0]["productAttributes"]["price"]["amountMicros"] = "10000"
        change["digest"] = change_digest(change)

    edit(plan, cheapen)
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err == (
        f"error: {plan}: the google payload for SKU {create['sku_id']} "
        f"(marketplaces.google.changes[{index}]) is not the one tradepost builds from its listing "
        "('after'): the plan was edited, or made with another connector; nothing was sent. "
        "Run `tradepost plan` again\n"
    )
    assert google_inputs(box) == {}


def test_a_deliberate_edit_of_listing_and_payload_is_recorded_as_sent_and_the_next_plan_corrects_it(
    box: Sandbox, project: Path
) -> None:
    """The limit of the guarantee: whoever rewrites `after`, the payload and the digest alike sends
    their price; the state then records that price, so the next plan puts the rules' price back."""
    plan = make_plan(project, "google")
    document = read_plan(plan)
    create = first_create(document)
    index = document["marketplaces"]["google"]["changes"].index(create)
    sku = create["sku_id"]

    def cheapen(doc: dict[str, Any]) -> None:
        change = doc["marketplaces"]["google"]["changes"][index]
        change["after"]["price"] = "0.01"
        change["after"]["sale_price"] = None
        change["payloads"][0]["productAttributes"]["price"]["amountMicros"] = "10000"
        change["payloads"][0]["productAttributes"].pop("salePrice", None)
        change["digest"] = change_digest(change)

    edit(plan, cheapen)
    code, _, err = tradepost("apply", str(plan), "-c", str(project), "-m", "google")
    assert code == 0, err
    sent = google_inputs(box)[sku]["productAttributes"]["price"]
    assert sent["amountMicros"] == "10000"
    code, out, err = tradepost("plan", "-c", str(project), "-m", "google", "--format", "jsonl")
    assert code == 0, err
    changes = {c["sku_id"]: c for c in map(loads, out.splitlines()) if "sku_id" in c}
    assert changes[sku]["op"] == "update" and "price" in changes[sku]["fields"]
    assert Decimal(changes[sku]["before"]["price"]) == Decimal("0.01")


def test_an_invalid_turned_into_a_create_is_refused(project: Path) -> None:
    plan = make_plan(project, "google")
    document = read_plan(plan)
    changes = document["marketplaces"]["google"]["changes"]
    index = next(i for i, c in enumerate(changes) if c["op"] == "invalid")
    edit(plan, lambda doc: doc["marketplaces"]["google"]["changes"][index].update(op="create"))
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err == (
        f"error: {plan} {INVALID_PLAN} at marketplaces.google.changes[{index}]: a change with op 'create' "
        "needs 'after' and 'payloads'; nothing was sent. Make a new one with `tradepost plan -o FILE`\n"
    )


@pytest.mark.parametrize(
    ("change", "where"),
    [
        (lambda doc: doc.pop("marketplaces"), "at marketplaces: Field required"),
        (
            lambda doc: doc["marketplaces"]["google"].update(changes=5),
            "at marketplaces.google.changes: Input should be a valid list",
        ),
        (
            lambda doc: doc["marketplaces"]["google"]["changes"][0].update(sku_id=7),
            "at marketplaces.google.changes[0].sku_id: Input should be a valid string",
        ),
        (
            lambda doc: doc["marketplaces"]["google"]["changes"][0]["after"].update(quantity="many"),
            "at marketplaces.google.changes[0].after.quantity: Input should be a valid integer",
        ),
        (
            lambda doc: doc["marketplaces"]["google"]["changes"][0]["after"].update(price="Infinity"),
            "at marketplaces.google.changes[0].after.price: Input should be a finite number",
        ),
    ],
    ids=["no-marketplaces", "changes-5", "sku-id-number", "quantity-text", "price-infinite"],
)
def test_a_plan_of_the_wrong_shape_names_the_json_path(project: Path, change: Any, where: str) -> None:
    plan = make_plan(project, "google")
    edit(plan, change)
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err.startswith(f"error: {plan} {INVALID_PLAN} {where}"), err
    assert err.endswith("nothing was sent. Make a new one with `tradepost plan -o FILE`\n")


def test_a_truncated_plan_is_refused(project: Path) -> None:
    plan = make_plan(project, "google")
    plan.write_bytes(plan.read_bytes()[:-40])
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err.startswith(f"error: {plan} {INVALID_PLAN} (not JSON: ")


def test_a_plan_of_the_old_format_is_refused(project: Path) -> None:
    plan = make_plan(project, "google")
    edit(plan, lambda doc: doc.update(format_version=1))
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err == (
        f"error: {plan} has plan format version 1; this tradepost reads version 2; "
        "make a new plan with `tradepost plan -o FILE`\n"
    )


# -- the sweep: every corruption of a real plan is a PlanFileError, never anything else ------------


def _verdict(path: Path, runs: dict[str, Any], fingerprints: dict[str, str]) -> str:
    """'refused' (PlanFileError), 'accepted', or 'internal' (any other exception: a bug)."""
    try:
        document = read_plan(path)
        for name in document["marketplaces"]:
            if name not in runs:
                raise PlanFileError(f"{name} is not in the project")
            check_rules(path, document, name, fingerprints[name])
            checked_changes(path, document, name, runs[name].connector)
    except PlanFileError:
        return "refused"
    except Exception:
        return "internal"
    return "accepted"


def _changes_of(data: bytes) -> Any:
    return {name: m["changes"] for name, m in loads(data)["marketplaces"].items()}


def _variants(original: bytes) -> Iterator[tuple[str, bytes]]:
    size = len(original)
    for twentieth in range(20):
        yield "truncated", original[: size * twentieth // 20]
    rng = random.Random(8)
    for _ in range(150):
        data = bytearray(original)
        for _ in range(rng.randint(1, 3)):
            data[rng.randrange(size)] = rng.randrange(256)
        yield "byte edit", bytes(data)
    document = loads(original)
    paths: list[tuple[Any, ...]] = [(key,) for key in document]
    for name, market in document["marketplaces"].items():
        paths += [("marketplaces", name, key) for key in market]
        for index, change in enumerate(market["changes"][:3]):
            paths += [("marketplaces", name, "changes", index, key) for key in change]
            paths += [("marketplaces", name, "changes", index, "after", k) for k in change.get("after", {})]
    for path in paths:
        yield "key deleted", _with(document, path, None, delete=True)
        values: tuple[Any, ...] = (5, "x", None, {}, True, -1)
        for value in values:
            yield "type changed", _with(document, path, value)


def _with(document: Any, path: tuple[Any, ...], value: Any, delete: bool = False) -> bytes:
    copy = loads(dumps(document))
    parent = copy
    for part in path[:-1]:
        parent = parent[part]
    if delete:
        del parent[path[-1]]
    else:
        parent[path[-1]] = value
    return dumps(copy).encode("utf-8")


def test_corrupt_plan_files_are_refused_never_an_internal_error(project: Path, tmp_path: Path) -> None:
    plan = make_plan(project, "google", "mercadolibre")
    original = plan.read_bytes()
    loaded = load_project(project)
    runs = {name: open_marketplace(loaded, name) for name in ("google", "mercadolibre")}
    fingerprints = {name: fingerprint_of(run) for name, run in runs.items()}
    assert _verdict(plan, runs, fingerprints) == "accepted"
    counts: Counter[tuple[str, str]] = Counter()
    target = tmp_path / "corrupt.json"
    for kind, data in _variants(original):
        target.write_bytes(data)
        verdict = _verdict(target, runs, fingerprints)
        if verdict == "accepted":
            # Only an edit outside the changes (created_at, the rules path…) may pass.
            assert _changes_of(data) == _changes_of(original), kind
        counts[kind, verdict] += 1
    print("plan sweep:", dict(counts))  # the figures of the issue note (pytest -s)
    assert sum(n for (_, verdict), n in counts.items() if verdict == "internal") == 0
    assert counts["truncated", "refused"] == 20
    assert sum(counts.values()) > 900


# -- Mercado Libre families: one body for the family, carried by its first SKU ---------------------


def _mercadolibre_plan(project: Path) -> tuple[Path, dict[str, Any], Any]:
    plan = make_plan(project, "mercadolibre")
    run = open_marketplace(load_project(project), "mercadolibre")
    return plan, read_plan(plan), run


def test_an_intact_family_passes(project: Path) -> None:
    plan, document, run = _mercadolibre_plan(project)
    changes = checked_changes(plan, document, "mercadolibre", run.connector)
    leaders = [c for c in changes if c.get("family") and c["payloads"]]
    assert leaders and all(c["sku_id"] == min(c["family"]) for c in leaders)


def test_an_edited_family_price_is_refused_naming_the_leader(project: Path) -> None:
    plan, document, run = _mercadolibre_plan(project)
    changes = document["marketplaces"]["mercadolibre"]["changes"]
    index, leader = next((i, c) for i, c in enumerate(changes) if c.get("family") and c["payloads"])
    leader["payloads"][0]["price"] = Decimal("0.01")
    leader["digest"] = change_digest(leader)
    with pytest.raises(PlanFileError) as refused:
        checked_changes(plan, document, "mercadolibre", run.connector)
    assert str(refused.value).startswith(
        f"{plan}: the mercadolibre payload for SKU {leader['sku_id']} "
        f"(marketplaces.mercadolibre.changes[{index}]) is not the one tradepost builds"
    )


def test_a_family_member_removed_is_refused(project: Path) -> None:
    plan, document, run = _mercadolibre_plan(project)
    changes = document["marketplaces"]["mercadolibre"]["changes"]
    follower = next(c for c in changes if c.get("family") and not c["payloads"])
    changes.remove(follower)
    with pytest.raises(PlanFileError) as refused:
        checked_changes(plan, document, "mercadolibre", run.connector)
    assert str(refused.value) == (
        f"{plan}: the mercadolibre family of SKU {min(follower['family'])} has no change for "
        f"{follower['sku_id']}; nothing was sent. Run `tradepost plan` again"
    )


def test_a_plan_for_a_marketplace_not_in_the_project_is_refused(project: Path) -> None:
    plan = make_plan(project, "google")
    edit(plan, lambda doc: doc["marketplaces"].update(ebay=doc["marketplaces"].pop("google")))
    code, _, err = tradepost("apply", str(plan), "-c", str(project))
    assert code == 1
    assert err == (
        f"error: {plan} has changes for ebay, not in {project}; nothing was sent "
        "(pass -m to apply only some marketplaces of the plan)\n"
    )


def test_apply_m_a_marketplace_the_plan_does_not_have_says_so(box: Sandbox, project: Path) -> None:
    plan = make_plan(project, "google")
    code, _, err = tradepost("apply", str(plan), "-c", str(project), "-m", "amazon")
    assert code == 1
    assert err == f"error: {plan} has no changes for amazon (it has google); nothing was sent\n"
    assert google_inputs(box) == {}
