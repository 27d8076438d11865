"""A deterministic synthetic VTEX-like catalog, for benchmarks, tests and the bundled example.

Real catalogs cannot ship with the project, yet rule files, the engine and its benchmarks need
one that looks like a Brazilian VTEX store: apparel, shoes, electronics and home goods, with
Portuguese specification values (``Cor``, ``Tamanho``, ``Voltagem``), valid EAN-13s, prices
ending in .90/.99, several warehouses, and, at a small fixed rate, the broken records real
stores have (bad EAN check digits, no brand, negative stock, no images, a category no rule
maps, a price typed as text, inactive SKUs), so that every "invalid" path is exercised too.

The same ``seed`` always gives the same bytes (one ``random.Random`` per stream, no clock, no
hash order), and generation streams: memory does not grow with the number of SKUs.

As a module::

    from bench.synth import generate         # from the repository root
    for record in generate(1000, seed=1):    # dicts shaped like engine.CatalogRecord
        ...

As a script (stdlib only; a ``.gz`` output is gzip-compressed, reproducibly)::

    python bench/synth.py --skus 1000000 --seed 1 -o /tmp/catalog.jsonl [--no-broken]
"""

from __future__ import annotations

import argparse
import functools
import gzip
import io
import json
import random
import sys
import time
import unicodedata
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from json.encoder import encode_basestring as _encode_text
from typing import Any, TextIO

__all__ = ["BROKEN_KINDS", "CATEGORIES", "generate", "main", "write_jsonl"]

Record = dict[str, Any]

BROKEN_KINDS: dict[str, str] = {
    "bad_ean": "the EAN-13 check digit is wrong: gtin_valid(sku.ean) is false",
    "missing_brand": "the product's brand is null: rules that read product.brand must cope",
    "negative_stock": "a warehouse reports a negative quantity: the SKU is listed with no stock from it",
    "no_images": "the SKU has no images: sku.main_image is null",
    "unmapped_category": "the product is in Pets/Toys, which no rule file maps",
    "non_numeric_price": 'price.selling is text with a decimal comma ("129,90"): the record is malformed',
    "inactive_sku": "sku.active is false: select rules leave the SKU out",
}
"""Every kind of deliberately broken record ``broken=True`` produces, and what it exercises."""

# Broken records sit at fixed rates: each SKU-level kind exactly once in every block of
# _SKU_BLOCK SKUs, each product-level kind once in every block of _PRODUCT_BLOCK products, at
# positions drawn per block (from their own generator, seeded by the block). A catalog of a few
# hundred SKUs is therefore guaranteed to hold every kind: the bundled example relies on it.
_SKU_BLOCK = 200
_PRODUCT_BLOCK = 40
_SKU_KINDS = ("bad_ean", "negative_stock", "no_images", "non_numeric_price", "inactive_sku")
_PRODUCT_KINDS = ("missing_brand", "unmapped_category")

_COLORS = ("Azul", "Preto", "Branco", "Vermelho", "Verde", "Amarelo", "Cinza", "Rosa", "Marrom", "Bege")
_COLOR_CODES = {
    "Azul": "AZ", "Preto": "PT", "Branco": "BR", "Vermelho": "VM", "Verde": "VD",
    "Amarelo": "AM", "Cinza": "CZ", "Rosa": "RS", "Marrom": "MR", "Bege": "BG",
}  # fmt: skip
_CLOTHING_SIZES = ("P", "M", "G", "GG")
_JEANS_SIZES = ("36", "38", "40", "42", "44", "46")
_SHOE_SIZES = tuple(str(size) for size in range(34, 45))
_SANDAL_SIZES = tuple(str(size) for size in range(34, 41))
_BED_SIZES = ("Solteiro", "Casal", "Queen", "King")
_BED_SIZE_FACTOR = {"Solteiro": 1.0, "Casal": 1.25, "Queen": 1.45, "King": 1.7}
_VOLTAGES = ("110V", "220V")
_IMAGE_VIEWS = ("frente", "costas", "lateral", "detalhe", "ambiente", "embalagem")
_COLLECTIONS = (("Black Friday", 0.12), ("Lançamentos", 0.15), ("Outlet", 0.06), ("Mais Vendidos", 0.1))
_PRIVATE_LABEL = "Private Label"  # the store's own brand, which the bundled rules leave out


@dataclass(frozen=True)
class Category:
    """How products of one VTEX category are made up: names, brands, variations, sizes, costs."""

    path: tuple[str, ...]
    ids: tuple[int, ...]  # VTEX category id of each level
    weight: int  # relative share of products
    names: tuple[str, ...]
    qualifiers: tuple[str, ...]
    brands: tuple[str, ...]
    axes: Axes
    product_specs: ProductSpecs
    cost: tuple[int, int]  # cost price range, in cents
    box: tuple[tuple[int, int], tuple[int, int], tuple[int, int]]  # height, width, length (cm)
    grams: tuple[int, int]
    sentences: tuple[str, ...]
    ref: str  # reference-code prefix


def _colors(rng: random.Random, most: int) -> list[str]:
    count = min(most, 1 + int(rng.random() ** 2 * most))  # one colour is the most common
    return rng.sample(_COLORS, count)


def _run(rng: random.Random, sizes: tuple[str, ...], shortest: int, longest: int) -> tuple[str, ...]:
    """A contiguous run of sizes, as a store stocks a grade: e.g. 37 to 42."""
    length = rng.randint(shortest, min(longest, len(sizes)))
    start = rng.randint(0, len(sizes) - length)
    return sizes[start : start + length]


@dataclass(frozen=True)
class _Variant:
    """One combination of SKU specifications, with every piece of text the SKU builds from it."""

    name: str  # "Azul M"
    specs: str  # the JSON of sku.specs
    ref_suffix: str  # "-AZ-M"
    mpn_suffix: str  # "AZM"
    cost_factor: float  # a King sheet costs more than a Solteiro one


@functools.cache
def _variant(*specs: tuple[str, str]) -> _Variant:
    # Cached: a catalog has a few hundred distinct combinations, and millions of SKUs.
    values = dict(specs)
    code = _COLOR_CODES.get(values.get("Cor", ""), "XX")
    others = [value for key, value in specs if key != "Cor"]
    return _Variant(
        name=" ".join(values.values()),
        specs=_mapping(values),
        ref_suffix="".join(f"-{part}" for part in (code, *others)),
        mpn_suffix=code + "".join(others).replace(" ", "")[:6].upper(),
        cost_factor=_BED_SIZE_FACTOR.get(values.get("Tamanho", ""), 1.0),
    )


Axes = Callable[[random.Random], list[_Variant]]
"""The variations of one product: how many SKUs it has, and their specifications."""


def _color_size(sizes: tuple[str, ...], shortest: int, longest: int, colors: int) -> Axes:
    def axes(rng: random.Random) -> list[_Variant]:
        run = _run(rng, sizes, shortest, longest)
        return [_variant(("Cor", color), ("Tamanho", size)) for color in _colors(rng, colors) for size in run]

    return axes


def _color_voltage(voltages: tuple[str, ...] | None, colors: int) -> Axes:
    def axes(rng: random.Random) -> list[_Variant]:
        chosen = voltages if voltages and rng.random() < 0.7 else ("Bivolt",)
        return [
            _variant(("Voltagem", volts), ("Cor", color))
            for volts in chosen
            for color in _colors(rng, colors)
        ]

    return axes


def _color_only(colors: int) -> Axes:
    def axes(rng: random.Random) -> list[_Variant]:
        return [_variant(("Cor", color)) for color in _colors(rng, colors)]

    return axes


ProductSpecs = Callable[[random.Random], dict[str, str]]


def _apparel(genders: tuple[str, ...], materials: tuple[str, ...]) -> ProductSpecs:
    def specs(rng: random.Random) -> dict[str, str]:
        return {"Gênero": rng.choice(genders), "Material": rng.choice(materials)}

    return specs


def _home(materials: tuple[str, ...]) -> ProductSpecs:
    def specs(rng: random.Random) -> dict[str, str]:
        return {"Material": rng.choice(materials)}

    return specs


def _electronics(powers: tuple[str, ...]) -> ProductSpecs:
    def specs(rng: random.Random) -> dict[str, str]:
        found = {"Garantia": rng.choice(("12 meses", "12 meses", "24 meses"))}
        if powers:
            found["Potência"] = rng.choice(powers)
        return found

    return specs


_ALL_GENDERS = ("Feminino", "Masculino", "Unissex")

CATEGORIES: tuple[Category, ...] = (
    Category(
        ("Apparel", "Clothing", "T-Shirts"), (1, 11, 111), 14,
        ("Camiseta Básica", "Camiseta Gola V", "Camiseta Estampada", "Camiseta Oversized", "Camiseta Polo",
         "Regata"),
        ("Algodão", "Algodão Orgânico", "Dry Fit", "Manga Longa", "Listrada", "Slim"),
        ("Vento Sul", "Urbana Wear", "Basic Co.", "Maré Alta", "Tropicalis"),
        _color_size(_CLOTHING_SIZES, 2, 4, 3),
        _apparel(_ALL_GENDERS, ("Algodão", "Poliéster", "Algodão e Elastano", "Viscose")),
        (1500, 4500), ((2, 4), (20, 30), (25, 35)), (150, 300),
        ("Malha macia que não desbota.", "Modelagem confortável para o dia a dia.",
         "Costuras reforçadas nos ombros."),
        "TSH",
    ),
    Category(
        ("Apparel", "Clothing", "Dresses"), (1, 11, 112), 8,
        ("Vestido Midi", "Vestido Longo", "Vestido Curto", "Vestido Envelope", "Vestido Chemise"),
        ("Floral", "Liso", "Poá", "Canelado", "de Linho", "Tubinho"),
        ("Flor de Lis", "Maré Alta", "Bella Rua", "Atelier Sol"),
        _color_size(_CLOTHING_SIZES, 2, 4, 2),
        _apparel(("Feminino",), ("Viscose", "Linho", "Crepe", "Algodão")),
        (4000, 12000), ((3, 5), (25, 35), (30, 40)), (250, 500),
        ("Caimento leve e fluido.", "Forro interno na saia.", "Ideal para o verão."),
        "VST",
    ),
    Category(
        ("Apparel", "Clothing", "Jeans"), (1, 11, 113), 9,
        ("Calça Jeans Skinny", "Calça Jeans Reta", "Calça Jeans Mom", "Calça Jeans Flare", "Bermuda Jeans"),
        ("Lavagem Escura", "Lavagem Clara", "Destroyed", "Cintura Alta", "com Elastano"),
        ("Índigo Brasil", "Denim Lab", "Urbana Wear", "Rio Blue"),
        _color_size(_JEANS_SIZES, 3, 6, 2),
        _apparel(_ALL_GENDERS, ("Jeans", "Jeans com Elastano", "Sarja")),
        (5000, 12000), ((4, 6), (25, 35), (30, 40)), (500, 900),
        ("Denim de algodão com toque macio.", "Cinco bolsos e rebites de metal.", "Lavagem que não desbota."),
        "JNS",
    ),
    Category(
        ("Apparel", "Shoes", "Sneakers"), (1, 12, 121), 10,
        ("Tênis Corrida", "Tênis Casual", "Tênis Skate", "Tênis Caminhada", "Tênis Academia"),
        ("Leve", "Amortecido", "Knit", "Couro", "Respirável"),
        ("Passo Firme", "Corre Leve", "StreetRun", "Pisada"),
        _color_size(_SHOE_SIZES, 3, 7, 2),
        _apparel(_ALL_GENDERS, ("Sintético", "Couro", "Tecido Knit", "Lona")),
        (8000, 25000), ((11, 14), (19, 22), (30, 34)), (700, 1200),
        ("Solado de borracha antiderrapante.", "Palmilha com espuma de memória.", "Cabedal respirável."),
        "TEN",
    ),
    Category(
        ("Apparel", "Shoes", "Boots"), (1, 12, 122), 5,
        ("Bota Coturno", "Bota Chelsea", "Bota Cano Alto", "Bota Adventure"),
        ("Couro", "Camurça", "Tratorada", "Impermeável"),
        ("Passo Firme", "Trilha Couro", "Serra Boots"),
        _color_size(_SHOE_SIZES, 3, 6, 2),
        _apparel(_ALL_GENDERS, ("Couro", "Camurça", "Sintético")),
        (10000, 30000), ((13, 16), (20, 24), (32, 36)), (1100, 1800),
        ("Couro legítimo curtido no Brasil.", "Solado tratorado de alta aderência.", "Forro acolchoado."),
        "BOT",
    ),
    Category(
        ("Apparel", "Shoes", "Sandals"), (1, 12, 123), 6,
        ("Sandália Rasteira", "Sandália Plataforma", "Sandália Anabela", "Chinelo Slide"),
        ("Trançada", "Conforto", "Metalizada", "Ortopédica"),
        ("Areia Fina", "Pé na Praia", "Flor de Lis"),
        _color_size(_SANDAL_SIZES, 3, 6, 2),
        _apparel(("Feminino", "Feminino", "Unissex"), ("Couro", "Sintético", "Borracha")),
        (3000, 9000), ((9, 11), (16, 19), (27, 31)), (300, 600),
        ("Tiras macias que não machucam.", "Palmilha anatômica.", "Leve para levar na mala."),
        "SND",
    ),
    Category(
        ("Electronics", "Phones"), (2, 21), 5,
        ("Smartphone Nexo A54", "Smartphone Orbita X", "Smartphone Voltz 5G", "Smartphone Nexo Lite"),
        ("64GB", "128GB", "256GB", "512GB"),
        ("Nexo", "Voltz Mobile", "Orbita"),
        _color_voltage(None, 3),
        _electronics(()),
        (60000, 350000), ((6, 8), (9, 10), (17, 18)), (350, 550),
        ("Tela AMOLED de 6,5 polegadas.", "Bateria para o dia todo.", "Câmera tripla com modo noturno."),
        "CEL",
    ),
    Category(
        ("Electronics", "Audio", "Headphones"), (2, 22, 221), 7,
        ("Fone de Ouvido Bluetooth", "Fone de Ouvido Over-Ear", "Fone Intra-Auricular", "Headset Gamer"),
        ("Cancelamento de Ruído", "Sem Fio", "com Microfone", "Esportivo"),
        ("SomMax", "Orbita", "AuraSound"),
        _color_voltage(None, 3),
        _electronics(()),
        (5000, 60000), ((8, 22), (17, 20), (20, 24)), (250, 600),
        ("Até 30 horas de bateria.", "Graves profundos e voz nítida.", "Estojo de carregamento incluso."),
        "FON",
    ),
    Category(
        ("Electronics", "Appliances", "Blenders"), (2, 23, 231), 4,
        ("Liquidificador", "Liquidificador Turbo", "Mixer de Mão", "Liquidificador Portátil"),
        ("12 Velocidades", "Jarra de Vidro", "com Filtro", "Inox"),
        ("Cozinha Forte", "Mixtra", "Eletrolar"),
        _color_voltage(_VOLTAGES, 2),
        _electronics(("600W", "900W", "1200W", "1400W")),
        (6000, 20000), ((40, 45), (20, 25), (20, 25)), (2500, 4000),
        ("Lâminas de aço inox serrilhadas.", "Jarra com capacidade de 3 litros.", "Função pulsar."),
        "LIQ",
    ),
    Category(
        ("Electronics", "Appliances", "Hair Dryers"), (2, 23, 232), 4,
        ("Secador de Cabelo", "Secador Profissional", "Secador Compacto"),
        ("Íons", "Cerâmica", "Turmalina", "Dobrável"),
        ("Brisa Pro", "Eletrolar", "Salão Plus"),
        _color_voltage(_VOLTAGES, 2),
        _electronics(("1900W", "2000W", "2400W")),
        (5000, 18000), ((25, 30), (10, 12), (25, 30)), (600, 1000),
        ("Duas velocidades e três temperaturas.", "Bico concentrador incluso.", "Jato de ar frio."),
        "SEC",
    ),
    Category(
        ("Home", "Kitchen", "Cookware"), (3, 31, 311), 8,
        ("Panela Antiaderente", "Frigideira", "Jogo de Panelas", "Caçarola", "Panela de Pressão"),
        ("20cm", "24cm", "28cm", "5 Peças", "4,5L"),
        ("Panela de Ouro", "Cozinha Forte", "Inoxa"),
        _color_only(3),
        _home(("Alumínio", "Inox", "Cerâmica", "Ferro Fundido")),
        (3000, 40000), ((12, 30), (25, 45), (25, 45)), (900, 6000),
        ("Revestimento antiaderente sem PFOA.", "Cabos que não esquentam.", "Vai ao fogão de indução."),
        "PAN",
    ),
    Category(
        ("Home", "Bedding", "Sheets"), (3, 32, 321), 7,
        ("Jogo de Lençol", "Lençol com Elástico", "Jogo de Cama"),
        ("200 Fios", "400 Fios", "Percal", "Malha", "Microfibra"),
        ("Sono Bom", "Casa Branca Têxtil", "Lençóis Aurora"),
        _color_size(_BED_SIZES, 2, 4, 2),
        _home(("Algodão", "Percal", "Microfibra", "Algodão Egípcio")),
        (4000, 20000), ((6, 10), (30, 40), (35, 45)), (800, 2200),
        ("Toque macio que melhora a cada lavagem.", "Elástico em toda a volta.", "Fronhas inclusas."),
        "LEN",
    ),
    Category(
        ("Home", "Decor", "Vases"), (3, 33, 331), 6,
        ("Vaso Decorativo", "Vaso de Mesa", "Cachepô", "Vaso de Chão"),
        ("Rústico", "Minimalista", "Grande", "Pequeno", "Texturizado"),
        ("Terra & Barro", "Casa Viva", "Argila Design"),
        _color_only(2),
        _home(("Cerâmica", "Vidro", "Cimento", "Barro")),
        (1500, 12000), ((15, 45), (12, 25), (12, 25)), (600, 3000),
        ("Peça feita à mão.", "Acabamento esmaltado.", "Combina com plantas naturais ou secas."),
        "VAS",
    ),
)  # fmt: skip
"""The categories products are drawn from; their paths are the ones the bundled rule files map."""

_PETS = Category(
    ("Pets", "Toys"), (4, 41), 0,
    ("Brinquedo Mordedor", "Bolinha", "Corda de Puxar", "Arranhador"),
    ("para Cães", "para Gatos", "Resistente"),
    ("Pet Feliz", "AuAu Toys"),
    _color_only(2),
    _home(("Borracha", "Corda de Algodão", "Papelão")),
    (800, 4000), ((5, 12), (8, 15), (10, 20)), (80, 400),
    ("Diversão garantida para o seu pet.", "Material atóxico."),
    "PET",
)  # fmt: skip
_BRANDS = sorted({brand for category in (*CATEGORIES, _PETS) for brand in category.brands} | {_PRIVATE_LABEL})
_BRAND_IDS = {brand: 2000001 + number for number, brand in enumerate(_BRANDS)}
# Categories are dealt like cards from a shuffled deck holding each category `weight` times: the
# shares hold in every run of len(_DECK) products (less the few Pets/Toys ones that replace a
# card), so even a catalog of a few hundred SKUs has every category.
_DECK = tuple(number for number, category in enumerate(CATEGORIES) for _ in range(category.weight))


def generate(n_skus: int, *, seed: int = 1, broken: bool = True) -> Iterator[Record]:
    """``n_skus`` catalog records, shaped like ``engine.CatalogRecord``, grouped by product.

    Each record is decoded from the very line :func:`write_jsonl` writes, so what a test sees
    through this function is what a benchmark reads from the file.
    """
    for _, line in _lines(n_skus, seed, broken):
        yield json.loads(line)


def write_jsonl(out: TextIO, n_skus: int, *, seed: int = 1, broken: bool = True) -> int:
    """Write the catalog as JSON Lines; returns the number of products.

    Every line is exactly ``json.dumps(record, ensure_ascii=False)`` of its record (a test pins
    it), but is assembled from text templates: encoding a dict per SKU took most of the time.
    """
    products = 0
    lines: list[str] = []
    for new_product, line in _lines(n_skus, seed, broken):
        products += new_product
        lines.append(line)
        if len(lines) == 4096:
            out.writelines(lines)
            lines.clear()
    out.writelines(lines)
    return products


def _lines(n_skus: int, seed: int, broken: bool) -> Iterator[tuple[bool, str]]:
    """(whether a new product starts, its JSON line) for every SKU, product after product."""
    rng = random.Random(seed)
    ean_offset = rng.randrange(10**9)
    sku_kinds: dict[int, str] = {}
    product_kinds: dict[int, str] = {}
    deck: list[int] = []
    index = 0
    number = 0
    while index < n_skus:
        if broken and number % _PRODUCT_BLOCK == 0:
            product_kinds = _positions(seed, "products", number, _PRODUCT_BLOCK, _PRODUCT_KINDS)
        if number % len(_DECK) == 0:
            deck = list(_DECK)
            rng.shuffle(deck)
        kind = product_kinds.get(number) if broken else None
        category = _PETS if kind == "unmapped_category" else CATEGORIES[deck[number % len(_DECK)]]
        product = _product(rng, category, number, missing_brand=kind == "missing_brand")
        first = True
        for variant in category.axes(rng):
            if index == n_skus:
                break
            if broken and index % _SKU_BLOCK == 0:
                sku_kinds = _positions(seed, "skus", index, _SKU_BLOCK, _SKU_KINDS)
            flaw = sku_kinds.get(index) if broken else None
            yield first, _sku(rng, product, variant, index, ean_offset, flaw)
            first = False
            index += 1
        number += 1


def _positions(seed: int, what: str, first: int, size: int, kinds: tuple[str, ...]) -> dict[int, str]:
    """Where each broken kind falls in the block starting at ``first``: one position per kind."""
    block = random.Random(f"{seed}/{what}/{first // size}")
    return {
        first + offset: kind
        for offset, kind in zip(block.sample(range(size), len(kinds)), kinds, strict=True)
    }


@dataclass(slots=True)
class _Product:
    """One product: its JSON, and what its SKUs derive their ids, codes, prices and size from."""

    head: str  # '{"product": {...}, "sku": {"id": ' without the SKU id
    id: int
    name: str
    ref_id: str
    mpn_prefix: str | None
    images: str  # the URL every image URL of the product starts with
    cost: int  # cents
    markup: float
    ending: int  # cents: 90 or 99
    list_markup: float | None
    dimensions: str  # the JSON of sku.dimensions, the same for every SKU of the product


def _product(rng: random.Random, category: Category, number: int, *, missing_brand: bool) -> _Product:
    product_id = 1_000_001 + number
    name = f"{rng.choice(category.names)} {rng.choice(category.qualifiers)}"
    brand: str | None = _PRIVATE_LABEL if rng.random() < 0.03 else rng.choice(category.brands)
    about = " ".join(rng.sample(category.sentences, 2))
    if missing_brand:
        brand = None
    description = f"<p>{name}, da {brand}. {about}</p>" if brand else f"<p>{name}. {about}</p>"
    slug, keywords = _slug(name)
    ref_id = f"{category.ref}-{product_id}"
    collections = [collection for collection, share in _COLLECTIONS if rng.random() < share]
    specs = category.product_specs(rng)
    head = (
        f'{{"product": {{"id": {product_id}, "ref_id": "{ref_id}", "name": {_text(name)}, '
        f'"description": {_text(description)}, "brand": {_text(brand)}, '
        f'"brand_id": {_BRAND_IDS[brand] if brand else "null"}, '
        f'"category_path": [{", ".join(map(_text, category.path))}], "category_id": "{category.ids[-1]}", '
        f'"specs": {_mapping(specs)}, "collections": [{", ".join(map(_text, collections))}], '
        f'"link": "{slug}-{product_id}", '
        f'"keywords": "{keywords}", '
        f'"active": true}}, "sku": {{"id": '
    )
    (low_h, high_h), (low_w, high_w), (low_l, high_l) = category.box
    height = round(rng.uniform(low_h, high_h), 1)
    width = round(rng.uniform(low_w, high_w), 1)
    length = round(rng.uniform(low_l, high_l), 1)
    grams = rng.randint(*category.grams)
    # Makers of electronics and shoes register a part number; apparel and home goods rarely do.
    has_mpn = category.path[0] == "Electronics" or category.path[1] == "Shoes"
    return _Product(
        head=head,
        id=product_id,
        name=name,
        ref_id=ref_id,
        mpn_prefix=f"{category.ref}{product_id % 100000:05d}" if has_mpn else None,
        cost=rng.randint(*category.cost),
        markup=rng.uniform(1.6, 2.4),
        ending=rng.choice((90, 99)),
        list_markup=rng.uniform(1.1, 1.5) if rng.random() < 0.6 else None,
        images=f"https://cdn.example.com/catalog/{product_id}/",
        dimensions=f'{{"height": {height!r}, "width": {width!r}, "length": {length!r}, "weight": {grams}}}',
    )


def _sku(
    rng: random.Random, product: _Product, variant: _Variant, index: int, ean_offset: int, flaw: str | None
) -> str:
    # Text is quoted without escaping: every string here comes from the vocabulary above, which
    # needs none (the tests decode and re-encode every line to prove it).
    random_ = rng.random
    sku_id = 2_000_001 + index
    ean = _ean13(789_000_000_000 + (index * 7919 + ean_offset) % 10**9)
    if flaw == "bad_ean":
        ean = ean[:12] + str((int(ean[12]) + 1 + int(random_() * 9)) % 10)
    mpn = f'"{product.mpn_prefix}{variant.mpn_suffix}"' if product.mpn_prefix else "null"
    n_images = 0 if flaw == "no_images" else 1 + int(random_() * 6)
    url = f'{{"url": "{product.images}{sku_id}-'
    label = f'.jpg", "label": "{product.name} {variant.name} - '
    images = ", ".join(
        [
            f'{url}{view + 1}{label}{_IMAGE_VIEWS[view]}", "is_main": {"false" if view else "true"}}}'
            for view in range(n_images)
        ]
    )
    return (
        f'{product.head}{sku_id}, "product_id": {product.id}, '
        f'"ref_id": "{product.ref_id}{variant.ref_suffix}", "name": "{variant.name}", '
        f'"ean": "{ean}", "mpn": {mpn}, "active": {"false" if flaw == "inactive_sku" else "true"}, '
        f'"specs": {variant.specs}, "images": [{images}], "dimensions": {product.dimensions}, '
        '"unit_multiplier": 1, "measurement_unit": "un"}, '
        f'"price": {_price(random_, product, variant, flaw)}, "stock": {_stock(random_, flaw)}}}\n'
    )


def _price(random_: Callable[[], float], product: _Product, variant: _Variant, flaw: str | None) -> str:
    cost = round(product.cost * variant.cost_factor)
    selling = _ending(cost * product.markup, product.ending)
    listed = _ending(selling * product.list_markup, product.ending) if product.list_markup else selling
    promotional = "null"
    if random_() < 0.25:
        promoted = _ending(selling * (0.75 + 0.2 * random_()), product.ending)
        promotional = repr((promoted if promoted < selling else selling - 100) / 100)
    shown = repr(selling / 100)
    if flaw == "non_numeric_price":
        shown = f'"{selling // 100},{selling % 100:02d}"'  # as typed into a Brazilian spreadsheet
    return (
        f'{{"selling": {shown}, "list": {listed / 100!r}, '
        f'"cost": {cost / 100!r}, "promotional": {promotional}}}'
    )


def _ending(cents: float, ending: int) -> int:
    """The amount in whole reais plus the price ending: 134.20 -> 134.90 (or 134.99)."""
    return int(cents) // 100 * 100 + ending


def _stock(random_: Callable[[], float], flaw: str | None) -> str:
    sold_out = random_() < 0.06
    entries = []
    for warehouse, presence in _WAREHOUSE_PRESENCE:
        if presence < 1 and random_() >= presence:
            continue
        quantity = 0 if sold_out or random_() < 0.08 else 1 + int(random_() ** 2.5 * 200)
        reserved = int(random_() * min(quantity, 5) + 1) if quantity and random_() < 0.3 else 0
        unlimited = warehouse == "main" and random_() < 0.002
        entries.append([warehouse, quantity, reserved, unlimited])
    if flaw == "negative_stock":
        entries[-1][1:3] = [-1 - int(random_() * 5), 0]
    warehouses = ", ".join(
        [
            f'{{"warehouse": "{warehouse}", "quantity": {quantity}, "reserved": {reserved}, '
            f'"unlimited": {"true" if unlimited else "false"}}}'
            for warehouse, quantity, reserved, unlimited in entries
        ]
    )
    return f'{{"warehouses": [{warehouses}]}}'


_WAREHOUSE_PRESENCE = (("main", 1.0), ("sp_cd", 0.7), ("rj_cd", 0.4))
# EAN-13 weights are 1, 3, 1, 3, … from the left: digit sums of 3-digit groups, precomputed.
_WEIGHTED_131 = tuple(d // 100 + 3 * (d // 10 % 10) + d % 10 for d in range(1000))
_WEIGHTED_313 = tuple(3 * (d // 100) + d // 10 % 10 + 3 * (d % 10) for d in range(1000))


def _ean13(first12: int) -> str:
    """The 12 digits followed by their EAN-13 check digit."""
    rest, group4 = divmod(first12, 1000)
    rest, group3 = divmod(rest, 1000)
    group1, group2 = divmod(rest, 1000)
    total = _WEIGHTED_131[group1] + _WEIGHTED_313[group2] + _WEIGHTED_131[group3] + _WEIGHTED_313[group4]
    return f"{first12:012d}{-total % 10}"


def _text(value: str | None) -> str:
    """A JSON string (or null) exactly as ``json.dumps(..., ensure_ascii=False)`` writes it."""
    return "null" if value is None else _encode_text(value)


def _mapping(specs: dict[str, str]) -> str:
    return "{" + ", ".join(f"{_text(key)}: {_text(value)}" for key, value in specs.items()) + "}"


@functools.cache
def _slug(name: str) -> tuple[str, str]:
    """The URL slug of a product name, and its search keywords: the words of three letters or more."""
    ascii_text = unicodedata.normalize("NFKD", name).encode("ascii", "ignore").decode()
    words = "".join(char if char.isalnum() else " " for char in ascii_text.lower()).split()
    return "-".join(words), ", ".join(word for word in words if len(word) > 2)


def main(argv: list[str] | None = None) -> int:
    """The command line: write a catalog and report on stderr how long it took."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--skus", type=int, default=1000, help="number of SKUs (default 1000)")
    parser.add_argument("--seed", type=int, default=1, help="random seed (default 1)")
    parser.add_argument("-o", "--output", default="-", help="output file; '-' for stdout; .gz compresses")
    parser.add_argument("--no-broken", action="store_true", help="leave out the deliberately broken records")
    args = parser.parse_args(argv)
    if args.skus < 0:
        parser.error("--skus must be at least 0")

    started = time.perf_counter()
    if args.output == "-":
        if isinstance(sys.stdout, io.TextIOWrapper):
            sys.stdout.reconfigure(encoding="utf-8", newline="\n")
        products = write_jsonl(sys.stdout, args.skus, seed=args.seed, broken=not args.no_broken)
        sys.stdout.flush()
    elif args.output.endswith(".gz"):
        # mtime=0 and no file name in the header: the same seed gives the same compressed bytes.
        with (
            open(args.output, "wb") as raw,
            gzip.GzipFile(fileobj=raw, mode="wb", mtime=0, filename="") as packed,
        ):
            text = io.TextIOWrapper(packed, encoding="utf-8", newline="\n")
            products = write_jsonl(text, args.skus, seed=args.seed, broken=not args.no_broken)
            text.flush()
            text.detach()
    else:
        with open(args.output, "w", encoding="utf-8", newline="\n") as out:
            products = write_jsonl(out, args.skus, seed=args.seed, broken=not args.no_broken)
    elapsed = time.perf_counter() - started
    rate = args.skus / elapsed if elapsed else float("inf")
    wrote = f"wrote {args.skus} SKUs of {products} products to {args.output}"
    print(f"{wrote} in {elapsed:.2f} s ({rate:,.0f} SKUs/s)", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
