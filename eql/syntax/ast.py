"""The EQL abstract syntax tree: frozen dataclasses in closed unions, every node with a `Span`.

Names are not resolved here: a `Path` is a tuple of names, a `Call` is any `name(...)` with
optional DISTINCT / WHERE / DURING modifiers; the binder decides what they mean.

Invariants kept by the parser (and expected by the printer):
* `Logical.operands` has at least two items; AND/OR chains are flat, a nested `Logical` with the
  same operator only comes from explicit parentheses.
* Number literals are non-negative; `-5` is `Negate(IntLiteral(5))`.
* `TimestampLiteral.value` is timezone-aware UTC.
* `Call.star` implies no `args` and no `distinct`.

May import only the standard library and `eql.diagnostics`.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass
from datetime import date, datetime
from decimal import Decimal
from typing import TypeAlias

from eql.diagnostics import Span

__all__ = [
    "AnyNode",
    "Arith",
    "ArithOp",
    "AsOfValue",
    "Between",
    "BoolLiteral",
    "Call",
    "Case",
    "Compare",
    "CompareOp",
    "DateLiteral",
    "DecimalLiteral",
    "DefineClusters",
    "DefineSegment",
    "DefineTag",
    "Definition",
    "Describe",
    "Did",
    "Drop",
    "Explain",
    "ExplainMembership",
    "ExplainStage",
    "Expr",
    "Feature",
    "Find",
    "FindEvents",
    "Ident",
    "InList",
    "InParam",
    "InSegment",
    "IntLiteral",
    "IsNull",
    "LastWindow",
    "Like",
    "Literal",
    "Logical",
    "LogicalOp",
    "MembershipKey",
    "Negate",
    "Not",
    "NullLiteral",
    "NullsOrder",
    "ObjectKind",
    "OrderItem",
    "Param",
    "Path",
    "Query",
    "RangeWindow",
    "Refresh",
    "ReturnItem",
    "Show",
    "SortDirection",
    "Statement",
    "StringLiteral",
    "TimePoint",
    "TimeUnit",
    "TimestampLiteral",
    "WhenClause",
    "Window",
]


# --- enums ----------------------------------------------------------------------------------


class CompareOp(enum.Enum):
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="


class ArithOp(enum.Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"


class LogicalOp(enum.Enum):
    AND = "AND"
    OR = "OR"


class TimeUnit(enum.Enum):
    HOUR = "HOUR"
    DAY = "DAY"
    WEEK = "WEEK"
    MONTH = "MONTH"
    YEAR = "YEAR"


class SortDirection(enum.Enum):
    ASC = "ASC"
    DESC = "DESC"


class NullsOrder(enum.Enum):
    FIRST = "FIRST"
    LAST = "LAST"


class ExplainStage(enum.Enum):
    AST = "AST"
    BOUND = "BOUND"
    PLAN = "PLAN"
    DATAFUSION = "DATAFUSION"
    ALL = "ALL"


class ObjectKind(enum.Enum):
    """What DEFINE / REFRESH / DROP / DESCRIBE / SHOW act on."""

    TAG = "TAG"
    SEGMENT = "SEGMENT"
    CLUSTERS = "CLUSTERS"


# --- names ----------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Ident:
    """A name as written (backticks removed); case is kept, the binder decides about case."""

    name: str
    span: Span


@dataclass(frozen=True, slots=True)
class Path:
    """`a.b.c`: an attribute, relation, stream, field, tag, ... of the entity or event in focus."""

    parts: tuple[Ident, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Param:
    """`$name`: a value supplied at run time, never spliced into text. `name` has no `$`."""

    name: str
    span: Span


# --- literals -------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class IntLiteral:
    value: int
    span: Span


@dataclass(frozen=True, slots=True)
class DecimalLiteral:
    """`123.45`, exact: the digits as written, as a `Decimal`."""

    value: Decimal
    span: Span


@dataclass(frozen=True, slots=True)
class StringLiteral:
    value: str
    span: Span


@dataclass(frozen=True, slots=True)
class BoolLiteral:
    value: bool
    span: Span


@dataclass(frozen=True, slots=True)
class NullLiteral:
    span: Span


@dataclass(frozen=True, slots=True)
class DateLiteral:
    """`DATE '2026-01-01'`."""

    value: date
    span: Span


@dataclass(frozen=True, slots=True)
class TimestampLiteral:
    """`TIMESTAMP '2026-01-01 10:00:00'`; UTC unless the text gives an offset."""

    value: datetime
    span: Span


# --- windows --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class LastWindow:
    """`LAST 30 DAYS`: `[t - 30 days, t)` for the query's reference time `t`."""

    count: IntLiteral | Param
    unit: TimeUnit
    span: Span


@dataclass(frozen=True, slots=True)
class RangeWindow:
    """`'2026-10-01' TO '2026-11-01'`: half-open `[start, end)`."""

    start: TimePoint
    end: TimePoint
    span: Span


# --- expressions ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Call:
    """`f(args)`, `f()`, `f(*)`, `f(DISTINCT a)`, `f(a WHERE cond DURING window)`."""

    name: Ident
    args: tuple[Expr, ...]
    star: bool
    distinct: bool
    filter: Expr | None
    window: Window | None
    span: Span


@dataclass(frozen=True, slots=True)
class AsOfValue:
    """`(value_tier AS OF '2026-10-01')`: a tag's value as of an earlier time."""

    path: Path
    time: TimePoint
    span: Span


@dataclass(frozen=True, slots=True)
class WhenClause:
    condition: Expr
    result: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Case:
    """`CASE [operand] WHEN .. THEN .. [ELSE ..] END`; the first matching branch wins."""

    operand: Expr | None
    whens: tuple[WhenClause, ...]
    else_: Expr | None
    span: Span


@dataclass(frozen=True, slots=True)
class Negate:
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Arith:
    op: ArithOp
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Compare:
    op: CompareOp
    left: Expr
    right: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class IsNull:
    """`x IS NULL`, or `x IS NOT NULL` when `negated`."""

    operand: Expr
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class InList:
    """`x [NOT] IN (a, b, ...)`."""

    operand: Expr
    items: tuple[Expr, ...]
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class InParam:
    """`x [NOT] IN $param` (the parameter supplies a list)."""

    operand: Expr
    param: Param
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Between:
    """`x [NOT] BETWEEN low AND high` (inclusive, as in SQL)."""

    operand: Expr
    low: Expr
    high: Expr
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class Like:
    operand: Expr
    pattern: Expr
    negated: bool
    span: Span


@dataclass(frozen=True, slots=True)
class InSegment:
    """`in segment lapsed_vip`: the entity in focus is a member of the segment."""

    segment: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class Did:
    """`DID visit [WHERE cond] [DURING window]`, i.e. `count(...) > 0`."""

    path: Path
    filter: Expr | None
    window: Window | None
    span: Span


@dataclass(frozen=True, slots=True)
class Not:
    operand: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class Logical:
    """`a AND b AND c` or `a OR b`: two or more operands."""

    op: LogicalOp
    operands: tuple[Expr, ...]
    span: Span


# --- clauses --------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class ReturnItem:
    expr: Expr
    alias: Ident | None
    span: Span


@dataclass(frozen=True, slots=True)
class OrderItem:
    expr: Expr
    direction: SortDirection
    nulls: NullsOrder | None
    span: Span


@dataclass(frozen=True, slots=True)
class Feature:
    """`recency = days_since(last(purchase.time))` in DEFINE CLUSTERS."""

    name: Ident
    expr: Expr
    span: Span


# --- statements -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Find:
    """`FIND users [WHERE ..] [GROUP BY ..] [RETURN ..] [ORDER BY ..] [LIMIT ..] [AS OF ..]`."""

    entity: Ident
    where: Expr | None
    group_by: tuple[Expr, ...]
    returns: tuple[ReturnItem, ...]
    order_by: tuple[OrderItem, ...]
    limit: IntLiteral | Param | None
    as_of: TimePoint | None
    span: Span


@dataclass(frozen=True, slots=True)
class FindEvents:
    """`FIND EVENTS purchase [DURING ..] [WHERE ..] ...`: one row per event, or per group."""

    stream: Ident
    during: Window | None
    where: Expr | None
    group_by: tuple[Expr, ...]
    returns: tuple[ReturnItem, ...]
    order_by: tuple[OrderItem, ...]
    limit: IntLiteral | Param | None
    as_of: TimePoint | None
    span: Span


@dataclass(frozen=True, slots=True)
class DefineTag:
    name: Ident
    entity: Ident
    expr: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class DefineSegment:
    name: Ident
    entity: Ident
    where: Expr
    span: Span


@dataclass(frozen=True, slots=True)
class DefineClusters:
    name: Ident
    entity: Ident
    k: IntLiteral
    seed: IntLiteral
    features: tuple[Feature, ...]
    span: Span


@dataclass(frozen=True, slots=True)
class Explain:
    """`EXPLAIN [AST|BOUND|PLAN|DATAFUSION|ALL] <statement>`; `stage` None: the default."""

    stage: ExplainStage | None
    statement: Query | Definition
    span: Span


@dataclass(frozen=True, slots=True)
class ExplainMembership:
    """`EXPLAIN MEMBERSHIP lapsed_vip FOR 42`: why (or why not) one key is in a segment."""

    segment: Ident
    key: MembershipKey
    span: Span


@dataclass(frozen=True, slots=True)
class Refresh:
    kind: ObjectKind
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class Drop:
    kind: ObjectKind
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class Describe:
    kind: ObjectKind
    name: Ident
    span: Span


@dataclass(frozen=True, slots=True)
class Show:
    """`SHOW TAGS|SEGMENTS|CLUSTERS`."""

    kind: ObjectKind
    span: Span


# --- unions ---------------------------------------------------------------------------------

Literal: TypeAlias = (
    IntLiteral
    | DecimalLiteral
    | StringLiteral
    | BoolLiteral
    | NullLiteral
    | DateLiteral
    | TimestampLiteral
)
TimePoint: TypeAlias = StringLiteral | DateLiteral | TimestampLiteral | Param
MembershipKey: TypeAlias = IntLiteral | StringLiteral | Param
Window: TypeAlias = LastWindow | RangeWindow
Expr: TypeAlias = (
    IntLiteral
    | DecimalLiteral
    | StringLiteral
    | BoolLiteral
    | NullLiteral
    | DateLiteral
    | TimestampLiteral
    | Param
    | Path
    | Call
    | AsOfValue
    | Case
    | Negate
    | Arith
    | Compare
    | IsNull
    | InList
    | InParam
    | Between
    | Like
    | InSegment
    | Did
    | Not
    | Logical
)
Query: TypeAlias = Find | FindEvents
Definition: TypeAlias = DefineTag | DefineSegment | DefineClusters
Statement: TypeAlias = (
    Find
    | FindEvents
    | Explain
    | ExplainMembership
    | DefineTag
    | DefineSegment
    | DefineClusters
    | Refresh
    | Drop
    | Describe
    | Show
)
AnyNode: TypeAlias = (
    Expr | Statement | Window | Ident | WhenClause | ReturnItem | OrderItem | Feature
)
