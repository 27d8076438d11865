"""The shape of a rule file, validated with pydantic, and loading with includes.

The models here are the single source of truth for what a rule file may
contain: `tradepost schema` turns them into the JSON Schema editors use, and
pydantic's errors are converted into positioned diagnostics (never a
ValidationError dump) by walking each error's ``loc`` down the located YAML
tree.
"""

from __future__ import annotations

import difflib
import re
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path
from typing import Annotated, Any, Literal, get_origin

from iso4217 import Currency
from pydantic import BaseModel, BeforeValidator, ConfigDict, Field, ValidationError, field_validator

from engine._diagnostics import DiagnosticSink, Span, did_you_mean
from engine.rules._yaml import Node, read_yaml


def _as_text(value: Any) -> Any:
    """Expressions may be written as bare YAML numbers or booleans (``safety: 5``)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, Decimal | int):
        return str(value)
    return value


Expression = Annotated[
    str,
    BeforeValidator(_as_text),
    Field(description="An expression of the rule language; a leading '=' is allowed and changes nothing."),
]
TableValue = Annotated[str | Decimal | bool | None, Field(union_mode="left_to_right")]
ContentValue = Annotated[
    Any,
    Field(
        description=(
            "A literal; an expression when it starts with '='; a sandboxed jinja2 template when it "
            "contains '{{ }}'. Mappings and lists of those are allowed (attributes)."
        )
    ),
]


class _Section(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class CategoryRule(_Section):
    """One candidate marketplace category for a VTEX category path, optionally conditional."""

    category: Annotated[str, BeforeValidator(_as_text)] = Field(description="The marketplace category id.")
    when: Expression | None = Field(
        None, description="Use this category only when the expression holds; the first match wins."
    )


CategoryTarget = Annotated[
    Annotated[str, BeforeValidator(_as_text)] | list[CategoryRule],
    Field(union_mode="left_to_right"),
]


class Variations(_Section):
    """How SKUs are grouped under one parent listing."""

    group_by: Expression = Field("product.id", description="SKUs with equal values form one family.")
    axes: list[str] = Field(
        default_factory=list, description="Listing attributes that vary between the SKUs of a family."
    )


class PriceRules(_Section):
    """The marketplace price of a SKU, in the rule file's currency."""

    value: Expression = Field(description="The price before rounding, e.g. price.selling * (1 + 15%).")
    round: Expression | None = Field(
        None,
        description=(
            "A call applied to the value, its first argument left out: ending(0.90), round(2), "
            "round_to(0.05), ceil. Default: round(2) half-up to the currency's minor unit."
        ),
    )
    min: Expression | None = Field(None, description="Below this the SKU is invalid, with the reason.")
    max: Expression | None = Field(None, description="Above this the SKU is invalid, with the reason.")
    sale: Expression | None = Field(
        None, description="Promotional price (rounded the same way); null means no promotion."
    )


class StockRules(_Section):
    """How much of the available stock is offered on this marketplace."""

    warehouses: list[Annotated[str, BeforeValidator(_as_text)]] | Literal["all"] = Field(
        "all", description="VTEX warehouse ids whose availability counts; default all."
    )
    safety: Expression = Field("0", description="Units kept back for the own store.")
    share: Expression = Field("100%", description="Share of what remains after safety.")
    max: Expression | None = Field(None, description="Never offer more than this.")


class Requirement(_Section):
    """A check of our own; a SKU failing it is invalid with the message."""

    check: Expression = Field(description="Must hold for the SKU to be sent.")
    message: str | None = Field(None, description="Text (may be a template) shown when the check fails.")


class DivergenceRule(_Section):
    """A conditional decision for incoming orders, checked before the bands."""

    when: Expression = Field(description="Condition over order and item.")
    decision: Literal["approve", "hold", "reject"]
    reason: str | None = None


class Divergence(_Section):
    """Price-divergence rules for orders coming in from this marketplace."""

    approve_within: Expression = Field(
        description="|order price - our price| / our price at most this: approve."
    )
    hold_within: Expression = Field(description="Beyond approve_within and at most this: hold for review.")
    min_order_value: Expression | None = None
    max_order_value: Expression | None = None
    rules: list[DivergenceRule] = Field(default_factory=list)


class CategoryFee(_Section):
    """The fees of one VTEX category path (and its subcategories), where they differ from the file's."""

    commission: Expression | None = Field(None, description="Share of the item price, e.g. 11%.")
    fixed: Expression | None = Field(None, description="Amount per unit sold, in the file's currency.")


class Fees(_Section):
    """What the marketplace charges per item sold: the report's commission cost, explain's margin."""

    commission: Expression = Field(description="Share of the item price the marketplace keeps, e.g. 16%.")
    fixed: Expression = Field("0", description="Amount per unit sold, in the file's currency, e.g. 5.00.")
    categories: dict[str, CategoryFee] = Field(
        default_factory=dict,
        description="VTEX category path -> its own commission or fixed fee; most specific wins.",
    )


_AFFILIATE = re.compile(r"[B-DF-HJ-NP-TV-Z]{3}")
_LOCALE = re.compile(r"[a-z]{2,3}(-[A-Z]{2})?")
CURRENCIES = frozenset(currency.code for currency in Currency)
"""ISO 4217 codes, from the iso4217 package (the standard's own table, public domain, kept current)."""
_USUAL_CURRENCIES = (
    "USD",
    "EUR",
    "BRL",
    "MXN",
    "ARS",
    "CLP",
    "COP",
    "PEN",
    "GBP",
    "CAD",
    "JPY",
    "CNY",
    "INR",
)
"""Preferred when several codes are one mistake away (``USA`` could be USD or USN)."""


class RuleFile(_Section):
    """A marketplace's rule file: everything that differs from one marketplace to the next."""

    marketplace: str = Field(
        description="Which connector: amazon, mercadolibre, google, or a plug-in's name."
    )
    affiliate: str = Field(description="VTEX affiliate id: three consonants, e.g. MLB.")
    trade_policy: Annotated[str, BeforeValidator(_as_text)] = Field(
        description="VTEX sales channel that supplies assortment and prices."
    )
    currency: str = Field(description="ISO 4217 code of the marketplace prices, e.g. BRL.")
    locale: str = Field("en-US", description="Language of the listing content, e.g. pt-BR.")
    include: list[str] = Field(default_factory=list, description="Table files, relative to this file.")
    options: dict[str, Any] = Field(
        default_factory=dict, description="Connector settings, e.g. Amazon marketplace_id and product_type."
    )
    tables: dict[str, dict[str, TableValue]] = Field(default_factory=dict, description="Lookup tables.")
    select: list[Expression] = Field(
        default_factory=list, description="All must hold for a SKU to be listed."
    )
    categories: dict[str, CategoryTarget] = Field(
        default_factory=dict, description="VTEX category path -> marketplace category; most specific wins."
    )
    listing: dict[str, ContentValue] = Field(default_factory=dict, description="Listing content fields.")
    variations: Variations | None = None
    price: PriceRules
    stock: StockRules = Field(default_factory=StockRules)
    require: list[Requirement] = Field(default_factory=list)
    divergence: Divergence | None = None
    fees: Fees | None = None

    @field_validator("affiliate")
    @classmethod
    def _affiliate_is_three_consonants(cls, value: str) -> str:
        if not _AFFILIATE.fullmatch(value):
            upper = value.upper()
            hint = f" (did you mean '{upper}'?)" if _AFFILIATE.fullmatch(upper) else ""
            raise ValueError(
                "affiliate id must be three upper-case consonants, no vowels, like 'MLB'; "
                f"got {value!r}{hint}"
            )
        return value

    @field_validator("currency")
    @classmethod
    def _currency_is_iso(cls, value: str) -> str:
        if value not in CURRENCIES:
            guess = currency_guess(value)
            hint = f" (did you mean '{guess}'?)" if guess else ""
            raise ValueError(f"currency must be an ISO 4217 code such as BRL or USD; got {value!r}{hint}")
        return value

    @field_validator("locale")
    @classmethod
    def _locale_is_bcp47(cls, value: str) -> str:
        if not _LOCALE.fullmatch(value):
            raise ValueError(f"locale must look like pt-BR or en-US; got {value!r}")
        return value


def currency_guess(written: str) -> str | None:
    """The ISO 4217 code meant by a mistyped one: the same letters (``BLR``, ``UDS``), the same
    country prefix (``USA``), else the closest spelling; usual marketplace currencies first."""
    upper = written.strip().upper()
    if upper in CURRENCIES:
        return upper
    ranked = sorted(CURRENCIES, key=lambda code: (code not in _USUAL_CURRENCIES, code))
    for same in (
        lambda code: sorted(code) == sorted(upper),
        lambda code: len(upper) == 3 and code[:2] == upper[:2],
    ):
        found = [code for code in ranked if same(code)]
        if found:
            return found[0]
    return did_you_mean(upper, _USUAL_CURRENCIES) or did_you_mean(upper, ranked)


class TableFile(_Section):
    """A file of shared tables, included by rule files."""

    include: list[str] = Field(default_factory=list)
    tables: dict[str, dict[str, TableValue]] = Field(default_factory=dict)


@dataclass
class Table:
    """A lookup table with where it was defined (for messages)."""

    name: str
    entries: dict[str, Any]
    node: Node


@dataclass
class LoadedRules:
    """A rule file with its located tree and all tables merged.

    ``rules`` is None when the shape is wrong; the compiler still walks the
    tree so that expression mistakes are reported in the same run.
    """

    file: str
    rules: RuleFile | None
    root: Node
    tables: dict[str, Table] = field(default_factory=dict)
    sources: dict[str, list[str]] = field(default_factory=dict)
    broken_includes: list[Node] = field(default_factory=list)
    """The ``include:`` entries whose file gave no tables (missing, unreadable, not YAML, not a
    mapping): an unknown table is then most likely one of theirs, reported once."""


_TYPE_WORDS = {
    "string_type": "text",
    "dict_type": "a mapping (key: value)",
    "list_type": "a list",
    "model_type": "a mapping (key: value)",
    "bool_type": "true or false",
    "decimal_type": "a number",
}


def _pydantic_to_diagnostics(
    exc: ValidationError, root: Node, model: type[BaseModel], sink: DiagnosticSink
) -> None:
    """Turn each pydantic error into a diagnostic at the node its ``loc`` names."""
    seen: set[tuple[Any, ...]] = set()
    for error in exc.errors(include_url=False):
        loc = _document_loc(root, error["loc"])
        kind = error["type"]
        # A union reports one error per member; report the location once, with the first message.
        if loc in seen:
            continue
        seen.add(loc)
        node = root.find(loc)
        where = ".".join(str(p) for p in loc) or "file"
        if kind == "extra_forbidden" and loc:
            key = str(loc[-1])
            allowed = _allowed_keys(model, loc[:-1])
            guess = did_you_mean(key, allowed)
            span = node.key_span or node.span
            hint = f"did you mean '{guess}'?" if guess else f"allowed keys: {', '.join(sorted(allowed))}"
            sink.error(
                "TP111",
                f"unknown key '{key}' in {'.'.join(map(str, loc[:-1])) or 'the top level'}",
                span,
                hint,
            )
        elif kind == "missing":
            span = node.key_span or Span(node.span.file, node.span.line, node.span.column)
            sink.error(
                "TP110",
                f"missing required key '{loc[-1]}'"
                + (f" in {'.'.join(map(str, loc[:-1]))}" if loc[:-1] else ""),
                span,
                hint=f"add '{loc[-1]}:' here",
            )
        elif kind == "value_error":
            message = str(error["msg"]).removeprefix("Value error, ")
            code = {"affiliate": "TP120", "currency": "TP121", "locale": "TP122"}.get(str(loc[-1]), "TP113")
            sink.error(code, message, node.span)
        elif kind in ("literal_error", "enum"):
            sink.error(
                "TP114", f"{where}: {error['msg'].lower()}; got {node.text or node.plain()!r}", node.span
            )
        else:
            expected = _TYPE_WORDS.get(kind, error["msg"].lower())
            if kind.endswith("_type") and kind in _TYPE_WORDS:
                message = f"{where} must be {expected}"
            else:
                message = f"{where}: {expected}"
            sink.error("TP112", message, node.span)


def _document_loc(root: Node, loc: tuple[Any, ...]) -> tuple[Any, ...]:
    """``loc`` without pydantic's own steps (union members such as ``list[str]``, ``function-after[…]``).

    A step that is a key of the YAML mapping at that point is always kept, so a user's key
    that happens to contain ``[`` is still located (hypothesis found ``([# …`` as a key).
    """
    kept: list[Any] = []
    node: Node | None = root
    for part in loc:
        children = node.value if node is not None else None
        in_mapping = isinstance(children, dict) and isinstance(part, str) and part in children
        in_list = isinstance(children, list) and isinstance(part, int) and 0 <= part < len(children)
        if in_mapping or in_list:
            kept.append(part)
            node = children[part]  # type: ignore[index]
        elif isinstance(part, str) and ("[" in part or part.startswith("function-")):
            continue
        else:
            kept.append(part)
            node = None
    return tuple(kept)


def _allowed_keys(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    current: Any = model
    keyed = False  # the previous step was a field mapping names to models: this part is a name
    for part in loc:
        if keyed:
            keyed = False
            continue
        if isinstance(current, type) and issubclass(current, BaseModel) and isinstance(part, str):
            info = current.model_fields.get(part)
            current = _model_in(info.annotation) if info else None
            keyed = info is not None and get_origin(info.annotation) is dict
        elif isinstance(part, int):
            continue
        else:
            return []
    if isinstance(current, type) and issubclass(current, BaseModel):
        return list(current.model_fields)
    return []


def _model_in(annotation: Any) -> Any:
    from typing import get_args

    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in get_args(annotation):
        found = _model_in(arg)
        if found is not None:
            return found
    return None


def _read(path: Path, sink: DiagnosticSink, at: Span | None, written: str | None = None) -> Node | None:
    """The tree of the file at ``path``; for an include, ``written`` is its path as the file writes it."""
    try:
        return read_yaml(path, sink, at)
    except FileNotFoundError:
        sink.error(
            "TP130",
            f"included file '{written or path}' does not exist"
            if at
            else f"rule file '{path}' does not exist",
            at or Span(str(path), 1, 1),
            hint=f"include paths are relative to the file that includes them (looked for {path})",
        )
        return None
    except OSError as exc:
        sink.error("TP132", f"cannot read '{written or path}': {exc}", at or Span(str(path), 1, 1))
        return None


def _display(path: Path) -> str:
    try:
        return str(path.resolve().relative_to(Path.cwd().resolve()))
    except ValueError:
        return str(path)


def load_rules(path: str | Path, sink: DiagnosticSink | None = None) -> LoadedRules | None:
    """Read a rule file and its includes; shape errors go to ``sink``.

    Returns None when the file cannot be read or validated at all; the
    caller reports ``sink``'s diagnostics.
    """
    sink = sink if sink is not None else DiagnosticSink()
    root = read_rule_file(Path(path), sink)
    return loaded_from(Path(path), root, sink) if root is not None else None


def read_rule_file(path: Path, sink: DiagnosticSink) -> Node | None:
    """The located tree of the rule file at ``path``; None when it is not there or not a mapping."""
    root = _read(Path(_display(path)), sink, None)
    if root is None:
        return None
    if not root.is_mapping:
        sink.error(
            "TP102", "a rule file must be a mapping of sections (marketplace:, price:, ...)", root.span
        )
        return None
    return root


def loaded_from(path: Path, root: Node, sink: DiagnosticSink) -> LoadedRules:
    """The rule file read at ``path`` with its includes' tables, its shape checked, its tables merged.

    ``rules`` is None when the shape is wrong (reported to ``sink``); the tree is kept, so the
    compiler still reports the expressions' mistakes in the same run.
    """
    tables: dict[str, Table] = {}
    broken: list[Node] = []
    _correct_misspelt_sections(root, sink)
    _load_includes(path.resolve(), root, sink, tables, [path.resolve()], broken)
    rules: RuleFile | None = None
    try:
        rules = RuleFile.model_validate(root.plain())
    except ValidationError as exc:
        _pydantic_to_diagnostics(exc, root, RuleFile, sink)
    _merge_tables(root, sink, tables)
    return LoadedRules(root.file, rules, root, tables, sink.sources, broken)


def _correct_misspelt_sections(root: Node, sink: DiagnosticSink) -> None:
    """``tabels:`` for ``tables:``: one TP111 with the fix, then the section is read as meant.

    Left misspelt, every use of the section's content would be an error of its own (five
    "unknown table", an axis per attribute): the one mistake is reported once.
    """
    sections = RuleFile.model_fields
    for key, node in list(root.items()):
        if key in sections:
            continue
        close = difflib.get_close_matches(key, [name for name in sections if name not in root.value], 1, 0.8)
        if not close:
            continue  # not clearly a misspelling (``taxes:``): the shape check reports it as it is
        guess = close[0]
        sink.error(
            "TP111",
            f"unknown key '{key}' in the top level",
            node.key_span or node.span,
            f"did you mean '{guess}'? (read as '{guess}' for the rest of this check)",
        )
        root.value = {guess if name == key else name: child for name, child in root.items()}


def _merge_tables(root: Node, sink: DiagnosticSink, tables: dict[str, Table]) -> None:
    tables_node = root.get("tables")
    if tables_node is None or not tables_node.is_mapping:
        return
    for name, node in tables_node.items():
        if not node.is_mapping:
            # Already reported by the shape check; registered empty so its uses do not cascade.
            tables.setdefault(name, Table(name, {}, node))
            continue
        if name in tables:
            first = tables[name].node.key_span or tables[name].node.span
            sink.error(
                "TP133",
                f"table '{name}' is already defined at {first}",
                node.key_span or node.span,
                hint="rename one of the two tables",
            )
            continue
        tables[name] = Table(name, {k: v.value for k, v in node.items()}, node)


def _load_includes(
    path: Path,
    root: Node,
    sink: DiagnosticSink,
    tables: dict[str, Table],
    stack: list[Path],
    broken: list[Node],
) -> None:
    include = root.get("include")
    if include is None or not include.is_sequence:
        return
    for item in include.value:
        if not isinstance(item.value, str):
            continue
        target = (path.parent / item.value).resolve()
        if target in stack:
            chain = " -> ".join(p.name for p in [*stack[stack.index(target) :], target])
            sink.error("TP131", f"include cycle: {chain}", item.span, hint="remove one of the includes")
            continue
        child = _read(Path(_display(target)), sink, item.span, item.value)
        if child is None or not child.is_mapping:
            if child is not None:
                sink.error("TP102", "an included file must be a mapping with 'tables:'", child.span)
            broken.append(item)
            continue
        try:
            TableFile.model_validate(child.plain())
        except ValidationError as exc:
            # Report, but keep the file's good tables: one bad table must not turn every use of
            # the others into "unknown table".
            _pydantic_to_diagnostics(exc, child, TableFile, sink)
        _load_includes(target, child, sink, tables, [*stack, target], broken)
        _merge_tables(child, sink, tables)


def rule_file_schema() -> dict[str, Any]:
    """JSON Schema of the rule file, for editors (yaml-language-server)."""
    schema = RuleFile.model_json_schema(mode="validation")
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "Tradepost rule file"
    return schema
