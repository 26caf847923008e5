"""The bound IR: EQL after name resolution, with types and one/many cardinality known.

Every expression is evaluated in a scope: the rows of one entity or of one event stream. A
`Path` walks from the scope's row through one-valued steps (one-relations, event references) to
another entity's row; two mentions of the same path share one join (EdgeDB's path identity).
An aggregate reads a many-valued source (a many-relation or a stream seen from an entity) and
binds its argument and filter in the source's element scope.
"""

from __future__ import annotations

import datetime as dt
import enum
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, assert_never

from eql.catalog import Virtual
from eql.types import Type


class ScopeKind(enum.Enum):
    ENTITY = "entity"
    EVENT = "event"


@dataclass(frozen=True, slots=True)
class Scope:
    kind: ScopeKind
    name: str  # the entity or stream


@dataclass(frozen=True, slots=True)
class Step:
    """One one-valued hop: `name` on the current row, held in column `via`, reaching `target`."""

    name: str
    via: str
    target: str


@dataclass(frozen=True, slots=True)
class Path:
    steps: tuple[Step, ...] = ()

    def __str__(self) -> str:
        return ".".join(s.name for s in self.steps) or "<row>"

    def child(self, step: Step) -> Path:
        return Path((*self.steps, step))


ROOT = Path()


class AggFunc(enum.Enum):
    COUNT = "count"
    SUM = "sum"
    AVG = "avg"
    MIN = "min"
    MAX = "max"
    FIRST = "first"
    LAST = "last"


class UnaryOp(enum.Enum):
    NEG = "-"
    NOT = "NOT"


class BinOp(enum.Enum):
    ADD = "+"
    SUB = "-"
    MUL = "*"
    DIV = "/"
    MOD = "%"
    EQ = "="
    NE = "!="
    LT = "<"
    LE = "<="
    GT = ">"
    GE = ">="
    AND = "AND"
    OR = "OR"


COMPARISONS = frozenset({BinOp.EQ, BinOp.NE, BinOp.LT, BinOp.LE, BinOp.GT, BinOp.GE})
LOGICAL = frozenset({BinOp.AND, BinOp.OR})


@dataclass(frozen=True, slots=True)
class StreamSource:
    """The events of `stream` whose reference `ref` (column `column`) is the row at `path`."""

    path: Path
    stream: str
    ref: str
    column: str
    time: str  # the stream's time column


@dataclass(frozen=True, slots=True)
class RelationSource:
    """The rows of `target` whose attribute `via` holds the key of the row at `path`."""

    path: Path
    relation: str
    target: str
    via: str


Source = StreamSource | RelationSource


@dataclass(frozen=True, slots=True)
class Window:
    """A half-open time range [start, end) in UTC; `start` None means from the beginning."""

    start: dt.datetime | None
    end: dt.datetime


@dataclass(frozen=True, slots=True)
class Literal:
    value: Any
    type: Type


@dataclass(frozen=True, slots=True)
class Param:
    name: str
    value: Any  # already converted to `type`
    type: Type


@dataclass(frozen=True, slots=True)
class Column:
    """A column of the row at `path`: a stored attribute by name, or a `Virtual` one (a tag's
    value, a segment's membership) read from a version table."""

    path: Path
    column: str | Virtual
    type: Type


@dataclass(frozen=True, slots=True)
class Aggregate:
    """`func` over a source's elements (or, with source None, over the rows of a group)."""

    func: AggFunc
    source: Source | None
    arg: BExpr | None  # bound in the element scope; None for count of elements
    filter: BExpr | None  # element scope
    window: Window | None
    distinct: bool
    type: Type
    order_column: str | None = None  # first/last: the element column that orders them
    # what the user wrote for it, to name it in a message while running (an integer sum that
    # leaves int64); not part of its identity: `SUM(x)` and `sum(x)` are one aggregate
    text: str = field(default="", compare=False)


@dataclass(frozen=True, slots=True)
class Call:
    func: str  # a name in eql.functions.REGISTRY
    args: tuple[BExpr, ...]
    type: Type


@dataclass(frozen=True, slots=True)
class Unary:
    op: UnaryOp
    arg: BExpr
    type: Type


@dataclass(frozen=True, slots=True)
class Binary:
    op: BinOp
    left: BExpr
    right: BExpr
    type: Type


@dataclass(frozen=True, slots=True)
class IsNull:
    arg: BExpr
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class InList:
    arg: BExpr
    items: tuple[BExpr, ...]
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class Between:
    arg: BExpr
    low: BExpr
    high: BExpr
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class Like:
    arg: BExpr
    pattern: BExpr
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class Case:
    whens: tuple[tuple[BExpr, BExpr], ...]
    otherwise: BExpr | None
    type: Type


@dataclass(frozen=True, slots=True)
class Cast:
    arg: BExpr
    type: Type


BExpr = (
    Literal
    | Param
    | Column
    | Aggregate
    | Call
    | Unary
    | Binary
    | IsNull
    | InList
    | Between
    | Like
    | Case
    | Cast
)


@dataclass(frozen=True, slots=True)
class Item:
    expr: BExpr
    name: str


@dataclass(frozen=True, slots=True)
class Order:
    expr: BExpr
    descending: bool
    nulls_first: bool


@dataclass(frozen=True, slots=True)
class BoundQuery:
    """`FIND entity` (scope ENTITY) or `FIND EVENTS stream` (scope EVENT)."""

    scope: Scope
    where: BExpr | None
    during: Window | None  # FIND EVENTS only
    group_by: tuple[Item, ...]
    items: tuple[Item, ...]
    order_by: tuple[Order, ...]
    limit: int | None
    reference_time: dt.datetime
    grouped: bool  # GROUP BY present, or only aggregates returned (one group)
    # the result depends on the reference time given by the caller (a window, `days_since`,
    # events before "now"); false when the text fixes it (AS OF) or nothing reads it
    reads_clock: bool = False
    # the names (no `$`) of the parameters the query reads (every `$name` of its text): a given
    # parameter not among them is unused (the CLI warns about such a `--param`)
    parameters: frozenset[str] = frozenset()


def type_of(e: BExpr) -> Type:
    return e.type


def children(e: BExpr) -> Iterator[BExpr]:
    """The direct sub-expressions of a bound expression (aggregates: argument and filter)."""
    match e:
        case Literal() | Param() | Column():
            return
        case Aggregate(arg=arg, filter=flt):
            yield from (x for x in (arg, flt) if x is not None)
        case Call(args=args):
            yield from args
        case Unary(arg=arg) | IsNull(arg=arg) | Cast(arg=arg):
            yield arg
        case Binary(left=left, right=right):
            yield left
            yield right
        case InList(arg=arg, items=items):
            yield arg
            yield from items
        case Between(arg=arg, low=lo, high=hi):
            yield from (arg, lo, hi)
        case Like(arg=arg, pattern=p):
            yield from (arg, p)
        case Case(whens=whens, otherwise=other):
            for c, v in whens:
                yield c
                yield v
            if other is not None:
                yield other
        case _:
            assert_never(e)
