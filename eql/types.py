"""EQL's value types and the rules that combine them (widening, comparability).

Pure: imports only entities.model (to map schema types) and the standard library.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from entities.model import DataType, TypeKind


class Kind(enum.Enum):
    INT = "int"
    DECIMAL = "decimal"
    FLOAT = "float"
    STRING = "string"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMP = "timestamp"
    DURATION = "duration"
    NULL = "null"  # the type of a bare `null` literal: fits anywhere


@dataclass(frozen=True, slots=True)
class Type:
    kind: Kind
    precision: int = 0
    scale: int = 0
    enum_values: tuple[str, ...] = ()  # a string known to come from an enum column

    def __str__(self) -> str:
        if self.kind is Kind.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        return str(self.kind.value)

    @property
    def numeric(self) -> bool:
        return self.kind in (Kind.INT, Kind.DECIMAL, Kind.FLOAT)

    @property
    def temporal(self) -> bool:
        return self.kind in (Kind.DATE, Kind.TIMESTAMP)


INT = Type(Kind.INT)
FLOAT = Type(Kind.FLOAT)
STRING = Type(Kind.STRING)
BOOL = Type(Kind.BOOL)
DATE = Type(Kind.DATE)
TIMESTAMP = Type(Kind.TIMESTAMP)
DURATION = Type(Kind.DURATION)
NULL = Type(Kind.NULL)


def decimal(precision: int, scale: int) -> Type:
    return Type(Kind.DECIMAL, min(precision, 38), min(scale, 38))


def from_schema(t: DataType) -> Type:
    match t.kind:
        case TypeKind.INT:
            return INT
        case TypeKind.DECIMAL:
            return decimal(t.precision, t.scale)
        case TypeKind.FLOAT:
            return FLOAT
        case TypeKind.STRING:
            return STRING
        case TypeKind.ENUM:
            return Type(Kind.STRING, enum_values=t.values)
        case TypeKind.BOOL:
            return BOOL
        case TypeKind.DATE:
            return DATE
        case TypeKind.TIMESTAMP:
            return TIMESTAMP
    raise AssertionError(t.kind)


def plain(t: Type) -> Type:
    """The type without enum provenance."""
    return STRING if t.kind is Kind.STRING else t


def widen(a: Type, b: Type) -> Type | None:
    """The common type of two values (for arithmetic, CASE branches, IN lists); None if none."""
    if a.kind is Kind.NULL:
        return plain(b)
    if b.kind is Kind.NULL:
        return plain(a)
    if a.kind is b.kind:
        if a.kind is Kind.DECIMAL:
            ints = max(a.precision - a.scale, b.precision - b.scale)
            scale = max(a.scale, b.scale)
            return decimal(ints + scale, scale)
        return plain(a)
    if a.numeric and b.numeric:
        if Kind.FLOAT in (a.kind, b.kind):
            return FLOAT
        dec = a if a.kind is Kind.DECIMAL else b
        # an int fits 19 integer digits
        return decimal(max(dec.precision - dec.scale, 19) + dec.scale, dec.scale)
    if {a.kind, b.kind} == {Kind.DATE, Kind.TIMESTAMP}:
        return TIMESTAMP
    return None


def comparable(a: Type, b: Type) -> bool:
    return widen(a, b) is not None


def decimal_of_int() -> Type:
    return decimal(19, 0)
