"""bench/synth.py: a deterministic, realistic catalog whose broken records are exactly the intended ones.

The broken kinds are recognised here from the records themselves (an EAN check digit, a null
brand, ...), not from the generator's bookkeeping, so these tests check what a reader of the
file would see.
"""

from __future__ import annotations

import gzip
import importlib.util
import io
import json
import sys
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest

from engine.model._catalog import CatalogRecord, MalformedRecord
from engine.sync._source import FileSource

ROOT = Path(__file__).resolve().parent.parent
EXAMPLE = ROOT / "examples" / "catalog.jsonl"
EXAMPLE_SKUS, EXAMPLE_SEED = 420, 7  # examples/README.md gives the same command


def _load_synth() -> ModuleType:
    # bench/ is a folder of scripts, not a package: load the file itself.
    spec = importlib.util.spec_from_file_location("synth", ROOT / "bench" / "synth.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["synth"] = module  # dataclasses look their module up while the class is built
    spec.loader.exec_module(module)
    return module


synth = _load_synth()

MAPPED_CATEGORIES = {
    "Apparel/Clothing/T-Shirts", "Apparel/Clothing/Dresses", "Apparel/Clothing/Jeans",
    "Apparel/Shoes/Sneakers", "Apparel/Shoes/Boots", "Apparel/Shoes/Sandals",
    "Electronics/Phones", "Electronics/Audio/Headphones", "Electronics/Appliances/Blenders",
    "Electronics/Appliances/Hair Dryers", "Home/Kitchen/Cookware", "Home/Bedding/Sheets",
    "Home/Decor/Vases",
}  # fmt: skip
COLORS = {"Azul", "Preto", "Branco", "Vermelho", "Verde", "Amarelo", "Cinza", "Rosa", "Marrom", "Bege"}
SIZES = {
    "Apparel/Clothing/T-Shirts": {"P", "M", "G", "GG"},
    "Apparel/Clothing/Dresses": {"P", "M", "G", "GG"},
    "Apparel/Clothing/Jeans": {"36", "38", "40", "42", "44", "46"},
    "Apparel/Shoes/Sneakers": {str(size) for size in range(34, 45)},
    "Apparel/Shoes/Boots": {str(size) for size in range(34, 45)},
    "Apparel/Shoes/Sandals": {str(size) for size in range(34, 45)},
    "Home/Bedding/Sheets": {"Solteiro", "Casal", "Queen", "King"},
}


def text(n_skus: int, seed: int = 1, broken: bool = True) -> str:
    out = io.StringIO()
    synth.write_jsonl(out, n_skus, seed=seed, broken=broken)
    return out.getvalue()


def gtin_valid(ean: str) -> bool:
    digits = [int(digit) for digit in ean]
    return len(digits) == 13 and (sum(digits[0::2]) + 3 * sum(digits[1::2])) % 10 == 0


def broken_kinds(record: dict[str, Any]) -> set[str]:
    """The deliberate defects a reader of the file can see in one record."""
    product, sku, price, stock = record["product"], record["sku"], record["price"], record["stock"]
    checks = {
        "bad_ean": not gtin_valid(sku["ean"]),
        "missing_brand": product["brand"] is None,
        "negative_stock": any(entry["quantity"] < 0 for entry in stock["warehouses"]),
        "no_images": not sku["images"],
        "unmapped_category": "/".join(product["category_path"]) not in MAPPED_CATEGORIES,
        "non_numeric_price": isinstance(price["selling"], str),
        "inactive_sku": sku["active"] is False,
    }
    return {kind for kind, found in checks.items() if found}


def products(records: list[dict[str, Any]]) -> Iterator[list[dict[str, Any]]]:
    """The records grouped by consecutive product id."""
    group: list[dict[str, Any]] = []
    for record in records:
        if group and record["product"]["id"] != group[0]["product"]["id"]:
            yield group
            group = []
        group.append(record)
    if group:
        yield group


# -- determinism and format ----------------------------------------------------------------------


def test_the_same_seed_gives_the_same_bytes_and_another_seed_does_not() -> None:
    assert text(1500, seed=3) == text(1500, seed=3)
    assert text(1500, seed=3) != text(1500, seed=4)
    # A smaller catalog is the start of a larger one: benchmarks at several sizes compare alike.
    assert text(300, seed=3) == "".join(text(1500, seed=3).splitlines(keepends=True)[:300])


def test_every_line_is_exactly_json_dumps_of_its_record() -> None:
    # The lines are assembled from templates for speed; they must be what json.dumps writes.
    lines = text(2000, seed=11).splitlines(keepends=True)
    assert len(lines) == 2000
    for line, record in zip(lines, synth.generate(2000, seed=11), strict=True):
        assert line == json.dumps(record, ensure_ascii=False) + "\n"


@pytest.mark.parametrize("n_skus", [0, 1, 7, 201])
def test_exactly_the_number_of_skus_asked_for(n_skus: int) -> None:
    assert len(text(n_skus).splitlines()) == n_skus


def test_the_script_writes_plain_and_reproducible_gzip_files(tmp_path: Path) -> None:
    plain, packed, again = tmp_path / "c.jsonl", tmp_path / "c.jsonl.gz", tmp_path / "again.jsonl.gz"
    for path in (plain, packed, again):
        assert synth.main(["--skus", "250", "--seed", "5", "-o", str(path)]) == 0

    assert plain.read_text(encoding="utf-8") == text(250, seed=5)
    assert gzip.decompress(packed.read_bytes()) == plain.read_bytes()
    assert packed.read_bytes() == again.read_bytes()  # no timestamp in the gzip header


def test_no_broken_leaves_every_defect_out() -> None:
    records = [json.loads(line) for line in text(3000, seed=2, broken=False).splitlines()]
    assert [kinds for record in records if (kinds := broken_kinds(record))] == []
    assert all(CatalogRecord.parse(record) for record in records)


# -- broken records ------------------------------------------------------------------------------


def test_broken_records_come_at_a_fixed_rate_one_of_each_kind_per_block() -> None:
    records = [json.loads(line) for line in text(2000, seed=9).splitlines()]
    by_kind: dict[str, list[int]] = {kind: [] for kind in synth.BROKEN_KINDS}
    for position, record in enumerate(records):
        for kind in broken_kinds(record):
            by_kind[kind].append(position)

    for kind in ("bad_ean", "negative_stock", "no_images", "non_numeric_price", "inactive_sku"):
        # one SKU in every block of 200
        assert sorted(position // 200 for position in by_kind[kind]) == list(range(10)), kind

    groups = list(products(records))
    for kind in ("missing_brand", "unmapped_category"):
        # one product in every block of 40 (the last block may be incomplete)
        flawed = [number for number, group in enumerate(groups) if kind in broken_kinds(group[0])]
        assert [number // 40 for number in flawed][: len(groups) // 40] == list(range(len(groups) // 40)), (
            kind
        )
        assert len(flawed) <= len(groups) // 40 + 1


def test_every_record_parses_except_the_one_with_a_text_price(tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_text(text(1200, seed=4), encoding="utf-8")
    records = [json.loads(line) for line in text(1200, seed=4).splitlines()]

    for item, record in zip(FileSource(path), records, strict=True):
        if "non_numeric_price" in broken_kinds(record):
            assert isinstance(item, MalformedRecord)
            assert item.sku_id == str(record["sku"]["id"])
            assert [path for path, _ in item.errors] == ["price.selling"]
        else:
            assert isinstance(item, CatalogRecord), str(item)


def test_eans_are_valid_unique_and_brazilian_except_the_bad_ones() -> None:
    records = [json.loads(line) for line in text(3000, seed=6).splitlines()]
    eans = [record["sku"]["ean"] for record in records]
    assert len(set(eans)) == len(eans)
    assert all(ean.startswith("789") and len(ean) == 13 and ean.isdigit() for ean in eans)
    bad = [record for record in records if not gtin_valid(record["sku"]["ean"])]
    assert len(bad) == 3000 // 200


# -- realism -------------------------------------------------------------------------------------


def test_the_skus_of_a_product_are_consecutive_and_share_the_product() -> None:
    records = [json.loads(line) for line in text(3000, seed=8).splitlines()]
    seen: set[int] = set()
    for group in products(records):
        product_id = group[0]["product"]["id"]
        assert product_id not in seen, f"product {product_id} comes back after other products"
        seen.add(product_id)
        assert all(record["product"] == group[0]["product"] for record in group)
        assert all(record["sku"]["product_id"] == product_id for record in group)
        assert len({record["sku"]["name"] for record in group}) == len(group)  # distinct variations
    assert len({record["sku"]["id"] for record in records}) == len(records)


def test_specifications_prices_images_and_stock_look_like_a_brazilian_store() -> None:
    records = [json.loads(line) for line in text(3000, seed=10, broken=False).splitlines()]
    promotions = 0
    for record in records:
        product, sku, price, stock = record["product"], record["sku"], record["price"], record["stock"]
        category = "/".join(product["category_path"])
        specs = sku["specs"]
        assert category in MAPPED_CATEGORIES
        assert specs["Cor"] in COLORS
        if category in SIZES:
            assert specs["Tamanho"] in SIZES[category], (category, specs)
        if category.startswith("Electronics"):
            assert specs["Voltagem"] in {"110V", "220V", "Bivolt"}
        if category.startswith("Apparel"):
            assert product["specs"]["Gênero"] in {"Feminino", "Masculino", "Unissex"}
            assert product["specs"]["Material"]

        selling, cost, listed = (Decimal(str(price[key])) for key in ("selling", "cost", "list"))
        assert selling % 1 in {Decimal("0.9"), Decimal("0.99")}
        assert cost * Decimal("1.5") < selling <= cost * Decimal("2.4") + 1
        assert listed >= selling
        if price["promotional"] is not None:
            promotions += 1
            assert Decimal(str(price["promotional"])) < selling

        assert 1 <= len(sku["images"]) <= 6
        assert all(image["url"].startswith("https://cdn.example.com/") for image in sku["images"])
        assert sku["images"][0]["is_main"] is True
        assert {entry["warehouse"] for entry in stock["warehouses"]} <= {"main", "sp_cd", "rj_cd"}
        assert sku["dimensions"]["weight"] > 0
    assert 0.18 < promotions / len(records) < 0.32


# -- the bundled example -------------------------------------------------------------------------


def test_the_example_catalog_is_exactly_a_fresh_generation() -> None:
    # Regenerate with: python bench/synth.py --skus 420 --seed 7 -o examples/catalog.jsonl
    assert EXAMPLE.read_bytes() == text(EXAMPLE_SKUS, seed=EXAMPLE_SEED).encode("utf-8")


def test_the_example_catalog_holds_every_category_and_every_broken_kind() -> None:
    records = [json.loads(line) for line in EXAMPLE.read_text(encoding="utf-8").splitlines()]
    kinds = set().union(*(broken_kinds(record) for record in records))
    categories = {"/".join(record["product"]["category_path"]) for record in records}

    assert len(records) >= 400
    assert len(list(products(records))) >= 60
    assert kinds == set(synth.BROKEN_KINDS)
    assert categories == MAPPED_CATEGORIES | {"Pets/Toys"}


def test_the_example_readme_counts_match_the_file() -> None:
    readme = (ROOT / "examples" / "README.md").read_text(encoding="utf-8")
    rows = [line.split("|")[1:4] for line in readme.splitlines() if line.startswith("| ") and "/" in line]
    table = {
        category.strip(): (int(count), int(skus)) for category, count, skus in rows if count.strip().isdigit()
    }
    records = [json.loads(line) for line in EXAMPLE.read_text(encoding="utf-8").splitlines()]
    actual: dict[str, tuple[int, int]] = {}
    for group in products(records):
        category = "/".join(group[0]["product"]["category_path"])
        count, skus = actual.get(category, (0, 0))
        actual[category] = (count + 1, skus + len(group))
    assert table == actual
