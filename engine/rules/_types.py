"""The static types of the rule language.

Rules are checked before any SKU is read, so a rule file that multiplies a
name by two fails at `tradepost check`, not at 3 a.m. in a scheduler. The
types are deliberately few: a rule author thinks in numbers, text, yes/no,
lists, tables and the records of the canonical catalog, and nothing else.
"""

from __future__ import annotations

import types
import typing
from dataclasses import dataclass, field
from decimal import Decimal
from typing import Any, Literal, Union, get_args, get_origin

from pydantic import BaseModel

Kind = Literal["number", "string", "bool", "null", "list", "map", "record", "table", "any", "never"]


@dataclass(frozen=True)
class Type:
    """A type of the rule language.

    ``nullable`` marks values that may be missing at run time (a SKU
    specification that a product does not have, a promotional price that is
    not set). Functions and operators propagate null, and the checker
    tracks it so that a field that may end up null is known at compile time.
    """

    kind: Kind
    nullable: bool = False
    item: Type | None = None
    record: RecordType | None = field(default=None, compare=False)
    record_name: str | None = None
    money: bool = field(default=False, compare=False)
    """A number that is an amount of money (``price.selling``): text() writes its minor units."""

    def __str__(self) -> str:
        if self.kind == "list":
            text = f"list of {self.item or ANY}"
        elif self.kind == "map":
            text = f"map of {self.item or ANY}"
        elif self.kind == "table":
            text = f"table of {self.item or ANY}"
        elif self.kind == "record":
            text = self.record_name or "record"
        else:
            text = self.kind
        return f"{text} or null" if self.nullable and self.kind not in ("null", "any") else text

    def or_null(self, nullable: bool = True) -> Type:
        """The same type, possibly null."""
        if self.nullable == nullable or self.kind in ("null", "any", "never"):
            return self
        return Type(self.kind, nullable, self.item, self.record, self.record_name, self.money)

    def accepts(self, other: Type) -> bool:
        """Whether a value of ``other`` may be used where ``self`` is expected.

        Nullability is not checked here: null propagates through functions
        and operators, and the places that cannot take null (a price) check
        it themselves with a precise message.
        """
        if self.kind == "any" or other.kind in ("any", "never", "null"):
            return True
        if self.kind != other.kind:
            return False
        if self.kind in ("list", "map", "table") and self.item and other.item:
            return self.item.accepts(other.item)
        if self.kind == "record":
            return self.record_name == other.record_name
        return True


@dataclass(frozen=True)
class RecordType:
    """The fields a name of the rule language exposes, with their types and docs.

    ``open`` records (specification maps) accept any field name and give
    null for the ones a SKU does not have.
    """

    name: str
    fields: dict[str, Type]
    docs: dict[str, str] = field(default_factory=dict)
    model: type[BaseModel] | None = None


NUMBER = Type("number")
STRING = Type("string")
BOOL = Type("bool")
NULL = Type("null", nullable=True)
ANY = Type("any", nullable=True)
NEVER = Type("never")
MONEY = Type("number", money=True)


def list_of(item: Type) -> Type:
    return Type("list", item=item)


def map_of(item: Type) -> Type:
    return Type("map", item=item)


def table_of(item: Type) -> Type:
    return Type("table", item=item)


def record_of(record: RecordType, nullable: bool = False) -> Type:
    return Type("record", nullable, record=record, record_name=record.name)


def unify(a: Type, b: Type) -> Type:
    """The type of a value that is either ``a`` or ``b`` (if/else, ``??``)."""
    nullable = a.nullable or b.nullable
    if a.kind == "never":
        return b
    if b.kind == "never":
        return a
    if a.kind == "null":
        return b.or_null()
    if b.kind == "null":
        return a.or_null()
    if a.kind == b.kind and (a.kind not in ("list", "map", "table") or a.item == b.item):
        return a.or_null(nullable) if a.kind != "record" or a.record_name == b.record_name else ANY
    return ANY


_record_cache: dict[type[BaseModel], RecordType] = {}


def record_from_model(model: type[BaseModel]) -> RecordType:
    """Derive the rule-language record of a pydantic model.

    The canonical catalog is the single source of truth for field names:
    adding a field to the model makes it usable in rules, with its docstring
    shown by ``tradepost explain`` and in "did you mean" hints.
    """
    cached = _record_cache.get(model)
    if cached is not None:
        return cached
    fields: dict[str, Type] = {}
    docs: dict[str, str] = {}
    record = RecordType(model.__name__.lower(), fields, docs, model)
    _record_cache[model] = record
    hints = typing.get_type_hints(model, include_extras=True)
    for name, info in model.model_fields.items():
        fields[name] = type_from_annotation(hints.get(name, info.annotation))
        docs[name] = info.description or ""
    for name, prop in model.model_computed_fields.items():
        fields[name] = type_from_annotation(prop.return_type)
        docs[name] = prop.description or ""
    return record


def type_from_annotation(annotation: Any) -> Type:
    """Map a Python annotation of the canonical model to a rule-language type."""
    origin = get_origin(annotation)
    if origin in (Union, types.UnionType):
        args = [a for a in get_args(annotation) if a is not type(None)]
        inner = type_from_annotation(args[0]) if len(args) == 1 else ANY
        return inner.or_null(True)
    if origin is typing.Annotated:
        inner, *metadata = get_args(annotation)
        if any(getattr(mark, "money", False) is True for mark in metadata):
            return MONEY
        return type_from_annotation(inner)
    if origin is Literal:
        return STRING
    if origin in (list, tuple, set, frozenset):
        items = get_args(annotation)
        return list_of(type_from_annotation(items[0]) if items else ANY)
    if origin is dict:
        pair = get_args(annotation)
        return map_of(type_from_annotation(pair[1]) if len(pair) == 2 else ANY)
    if annotation is bool:
        return BOOL
    if annotation in (int, Decimal, float):
        return NUMBER
    if annotation is str:
        return STRING
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return record_of(record_from_model(annotation))
    if isinstance(annotation, type) and issubclass(annotation, str):
        return STRING
    return ANY
