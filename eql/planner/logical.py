"""The logical plan: a small engine-neutral relational IR.

Columns are referred to by `ColumnId`s allocated during lowering, never by name; an emitter picks
its own column names (c1, c2, ...) and aliases only the final output. Nodes are frozen; rules
rewrite them with `dataclasses.replace`.
"""

from __future__ import annotations

import enum
from collections.abc import Mapping
from dataclasses import dataclass, replace
from typing import Any, assert_never

from eql.binder.bound import AggFunc, BinOp, UnaryOp
from eql.catalog import TableRef
from eql.types import Type


@dataclass(frozen=True, slots=True, order=True)
class ColumnId:
    n: int

    def __str__(self) -> str:
        return f"c{self.n}"


# ---- expressions over columns ---------------------------------------------------------------
@dataclass(frozen=True, slots=True)
class LCol:
    id: ColumnId
    type: Type


@dataclass(frozen=True, slots=True)
class LLit:
    value: Any
    type: Type


@dataclass(frozen=True, slots=True)
class LCall:
    func: str
    args: tuple[LExpr, ...]
    type: Type


@dataclass(frozen=True, slots=True)
class LUnary:
    op: UnaryOp
    arg: LExpr
    type: Type


@dataclass(frozen=True, slots=True)
class LBinary:
    op: BinOp
    left: LExpr
    right: LExpr
    type: Type


@dataclass(frozen=True, slots=True)
class LIsNull:
    arg: LExpr
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class LInList:
    arg: LExpr
    items: tuple[LExpr, ...]
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class LLike:
    arg: LExpr
    pattern: LExpr
    negated: bool
    type: Type


@dataclass(frozen=True, slots=True)
class LCase:
    whens: tuple[tuple[LExpr, LExpr], ...]
    otherwise: LExpr | None
    type: Type


@dataclass(frozen=True, slots=True)
class LCast:
    arg: LExpr
    type: Type


LExpr = LCol | LLit | LCall | LUnary | LBinary | LIsNull | LInList | LLike | LCase | LCast


@dataclass(frozen=True, slots=True)
class LAgg:
    func: AggFunc
    arg: LExpr | None  # None: count of rows
    distinct: bool
    filter: LExpr | None
    order_by: LExpr | None  # first/last
    type: Type
    # an integer sum whose value may leave int64: the text naming it in the error the emitter
    # raises then (`eql.planner.overflow`); None: nothing to check
    overflow: str | None = None


# ---- relations -----------------------------------------------------------------------------
class JoinKind(enum.Enum):
    INNER = "inner"
    LEFT = "left"
    SEMI = "semi"
    ANTI = "anti"


@dataclass(frozen=True, slots=True)
class Scan:
    """Rows of a stored table; `columns` maps stored column names to the ids they get."""

    table: TableRef
    columns: tuple[tuple[str, ColumnId, Type], ...]


@dataclass(frozen=True, slots=True)
class Filter:
    input: Plan
    predicate: LExpr


@dataclass(frozen=True, slots=True)
class Project:
    """Exactly the listed columns, each computed from the input."""

    input: Plan
    items: tuple[tuple[LExpr, ColumnId], ...]


@dataclass(frozen=True, slots=True)
class Join:
    left: Plan
    right: Plan
    left_keys: tuple[ColumnId, ...]
    right_keys: tuple[ColumnId, ...]
    kind: JoinKind


@dataclass(frozen=True, slots=True)
class Aggregate:
    input: Plan
    group: tuple[tuple[LExpr, ColumnId], ...]
    aggs: tuple[tuple[LAgg, ColumnId], ...]


@dataclass(frozen=True, slots=True)
class Sort:
    input: Plan
    keys: tuple[tuple[LExpr, bool, bool], ...]  # (expr, descending, nulls_first)


@dataclass(frozen=True, slots=True)
class Limit:
    input: Plan
    count: int


@dataclass(frozen=True, slots=True)
class Output:
    """The result: columns in order, with their user-facing names."""

    input: Plan
    columns: tuple[tuple[ColumnId, str, Type], ...]


Plan = Scan | Filter | Project | Join | Aggregate | Sort | Limit | Output


def tables(plan: Plan) -> frozenset[TableRef]:
    """Every table the plan reads: what must be registered before it runs."""
    match plan:
        case Scan(table=t):
            return frozenset((t,))
        case Join(left=left, right=right):
            return tables(left) | tables(right)
        case (
            Filter(input=inp)
            | Project(input=inp)
            | Aggregate(input=inp)
            | Sort(input=inp)
            | Limit(input=inp)
            | Output(input=inp)
        ):
            return tables(inp)
    assert_never(plan)


def replace_tables(plan: Plan, mapping: Mapping[TableRef, TableRef]) -> Plan:
    """The plan reading `mapping[t]` wherever it read a table `t` in `mapping` (the same plan
    object when it reads none of them)."""
    match plan:
        case Scan(table=t):
            new = mapping.get(t)
            return plan if new is None else replace(plan, table=new)
        case Join(left=left, right=right):
            lhs, rhs = replace_tables(left, mapping), replace_tables(right, mapping)
            return plan if lhs is left and rhs is right else replace(plan, left=lhs, right=rhs)
        case (
            Filter(input=inp)
            | Project(input=inp)
            | Aggregate(input=inp)
            | Sort(input=inp)
            | Limit(input=inp)
            | Output(input=inp)
        ):
            new_input = replace_tables(inp, mapping)
            return plan if new_input is inp else replace(plan, input=new_input)
    assert_never(plan)


def output_ids(plan: Plan) -> tuple[ColumnId, ...]:
    """The columns a plan node produces, in order."""
    match plan:
        case Scan(columns=cols):
            return tuple(cid for _, cid, _ in cols)
        case Filter(input=inp) | Sort(input=inp) | Limit(input=inp):
            return output_ids(inp)
        case Project(items=items):
            return tuple(cid for _, cid in items)
        case Join(left=left, right=right, kind=kind):
            if kind in (JoinKind.SEMI, JoinKind.ANTI):
                return output_ids(left)
            return output_ids(left) + output_ids(right)
        case Aggregate(group=group, aggs=aggs):
            return tuple(cid for _, cid in group) + tuple(cid for _, cid in aggs)
        case Output(columns=cols):
            return tuple(cid for cid, _, _ in cols)
        case _:
            assert_never(plan)
