"""Answer per-entity aggregates of a stream from its per-entity index (`RollupRef`).

The lowering gives every aggregate over a stream seen from an entity the shape

    Aggregate group [g := fk] aggs [a := count(*) | count(x) | sum(x) | min(x) | max(x) ...]
      Filter* (fk IS NOT NULL, the time window)
        Scan stream [...]

and every `DID` the same input under a `Project [fk]` on the right side of a semi or anti join
(only there: a `Project` of one column elsewhere, a FIND EVENTS, keeps a row per event).
When the filters are only `fk IS NOT NULL` and a window on one timestamp column, the key is an
integer, and every aggregate is a count (of rows, or of any column's values), a sum, min or max
of a decimal of up to 18 digits (exact in 64 bits), a min or max of an integer or a timestamp,
each with no FILTER but a window on that same column, the rule puts one `Scan` of a `RollupRef`
in place of the subtree: the runtime answers it from the stream's per-entity index
(`storage.rollups`, `storage.rollups_dense`) with no hash aggregation, the answer equal to the
aggregate's. An integer sum stays on the events: whether it leaves int64 (E303) depends on the
rows the rest of the plan keeps (DataFusion pushes a filter on the key into the aggregate),
which an answer computed for every key cannot know. Anything else (a filter on another field,
DISTINCT, first/last, avg, a float sum or min, a string key) stays as it is. `EXPLAIN` shows
which: a `Scan rollup ...` line, or the aggregate over the stream's scan.

May import: `eql.planner.logical`, `eql.planner.rules.walk`, `eql.binder.bound` (operators),
`eql.catalog`, `eql.types`, the standard library.
"""

from __future__ import annotations

import dataclasses
import datetime as dt

from eql.binder.bound import AggFunc, BinOp
from eql.catalog import RollupMeasure, RollupRef, StreamTable
from eql.planner import logical
from eql.planner.rules.walk import conjuncts, rewrite_up
from eql.types import Kind, Type

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
MAX_DECIMAL_DIGITS = 18  # a decimal of up to 18 digits is an exact int64 of its scaled value

Window = tuple[int | None, int | None]
Where = tuple[tuple[str, tuple[object, ...]], ...]


def rule(plan: logical.Plan) -> logical.Plan:
    return rewrite_up(plan, _rewrite)


def _rewrite(node: logical.Plan) -> logical.Plan:
    if isinstance(node, logical.Aggregate):
        return _aggregate(node) or node
    # a `Project [fk]` stands for the keys only on the right of a semi or an anti join (a DID):
    # anywhere else (a FIND EVENTS of one column) each of its rows counts
    if (
        isinstance(node, logical.Join)
        and node.kind in (logical.JoinKind.SEMI, logical.JoinKind.ANTI)
        and isinstance(node.right, logical.Project)
    ):
        keys = _keys(node.right)
        return node if keys is None else dataclasses.replace(node, right=keys)
    return node


# ---- the input: Filter*(Scan stream) with only a not-null key and a window ------------------
class _Source:
    def __init__(
        self,
        scan: logical.Scan,
        stream: str,
        by: str,
        time: str | None,
        window: Window,
        types: dict[str, Type],
        where: Where = (),
    ) -> None:
        self.scan = scan
        self.stream = stream
        self.by = by
        self.time = time
        self.window = window
        self.types = types
        self.where = where


def _source(plan: logical.Plan, key: logical.ColumnId) -> _Source | None:
    filters: list[logical.LExpr] = []
    while isinstance(plan, logical.Filter):
        filters.extend(conjuncts(plan.predicate))
        plan = plan.input
    if not isinstance(plan, logical.Scan) or not isinstance(plan.table, StreamTable):
        return None
    names = {cid: name for name, cid, _ in plan.columns}
    types = {name: ty for name, _, ty in plan.columns}
    by = names.get(key)
    if by is None or types[by].kind is not Kind.INT:
        return None
    not_null = False
    rest = []
    for f in filters:
        if (
            isinstance(f, logical.LIsNull)
            and f.negated
            and isinstance(f.arg, logical.LCol)
            and f.arg.id == key
        ):
            not_null = True
        else:
            rest.append(f)
    found = _conditions(rest, names, types)
    if not not_null or found is None:
        return None
    time, window, where = found
    return _Source(plan, plan.table.name, by, time, window, types, where)


def _conditions(
    filters: list[logical.LExpr], names: dict[logical.ColumnId, str], types: dict[str, Type]
) -> tuple[str | None, Window, Where] | None:
    """Conjuncts that are bounds on one timestamp column or equalities with literals: (that
    column, the window, the equalities by column); None for anything else."""
    bounds: list[tuple[str, BinOp, int]] = []
    where: dict[str, tuple[object, ...]] = {}
    for f in filters:
        bound = _bound(f, names, types)
        if bound is not None:
            bounds.append(bound)
            continue
        equal = _equal(f, names, types)
        if equal is None or equal[0] in where:
            return None
        where[equal[0]] = equal[1]
    time_columns = {name for name, _, _ in bounds}
    if len(time_columns) > 1:
        return None
    window = _window([(op, us) for _, op, us in bounds])
    return next(iter(time_columns), None), window, tuple(sorted(where.items()))


def _equal(
    e: logical.LExpr, names: dict[logical.ColumnId, str], types: dict[str, Type]
) -> tuple[str, tuple[object, ...]] | None:
    """`column = literal` or `column IN (literals)` on a string, integer or boolean column, the
    literals of its own kind (no conversion to guess): (column, the values)."""
    items: tuple[logical.LExpr, ...]
    if isinstance(e, logical.LBinary) and e.op is BinOp.EQ:
        column, items = e.left, (e.right,)
    elif isinstance(e, logical.LInList) and not e.negated:
        column, items = e.arg, e.items
    else:
        return None
    if not isinstance(column, logical.LCol) or column.id not in names:
        return None
    name = names[column.id]
    python = _LITERAL.get(types[name].kind)
    if python is None or not items:
        return None
    values = []
    for item in items:
        if not isinstance(item, logical.LLit) or type(item.value) is not python:
            return None
        values.append(item.value)
    return name, tuple(sorted(set(values), key=repr))


_LITERAL: dict[Kind, type] = {Kind.STRING: str, Kind.INT: int, Kind.BOOL: bool}


def _bound(
    e: logical.LExpr, names: dict[logical.ColumnId, str], types: dict[str, Type]
) -> tuple[str, BinOp, int] | None:
    """`time >= literal` or `time < literal` on a timestamp column: (column, op, UTC µs)."""
    if not (isinstance(e, logical.LBinary) and e.op in (BinOp.GE, BinOp.LT)):
        return None
    if not (isinstance(e.left, logical.LCol) and isinstance(e.right, logical.LLit)):
        return None
    name = names.get(e.left.id)
    value = e.right.value
    if name is None or types[name].kind is not Kind.TIMESTAMP:
        return None
    if not isinstance(value, dt.datetime) or value.tzinfo is None:
        return None
    return name, e.op, _us(value)


def _window(bounds: list[tuple[BinOp, int]]) -> Window:
    start = max((us for op, us in bounds if op is BinOp.GE), default=None)
    end = min((us for op, us in bounds if op is BinOp.LT), default=None)
    return start, end


def _us(t: dt.datetime) -> int:
    delta = t - EPOCH
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


# ---- the two shapes ----------------------------------------------------------------------
def _by_one_key(
    items: tuple[tuple[logical.LExpr, logical.ColumnId], ...], input: logical.Plan
) -> tuple[_Source, logical.ColumnId] | None:
    """The source under a node that keeps (or groups by) one key column, and its output id."""
    if len(items) != 1 or not isinstance(items[0][0], logical.LCol):
        return None
    src = _source(input, items[0][0].id)
    return None if src is None else (src, items[0][1])


def _keys(node: logical.Project) -> logical.Plan | None:
    """`Project [k := fk]` over the source: the keys with an event in the window."""
    found = _by_one_key(node.items, node.input)
    if found is None:
        return None
    src, out = found
    ref = RollupRef(src.stream, src.by, src.time, *src.window, where=src.where)
    return logical.Scan(ref, (("key", out, src.types[src.by]),))


def _aggregate(node: logical.Aggregate) -> logical.Plan | None:
    found = _by_one_key(node.group, node.input)
    if found is None:
        return None
    src, group_out = found
    names = {cid: name for name, cid, _ in src.scan.columns}
    measures: list[RollupMeasure] = []
    time = src.time
    for agg, _ in node.aggs:
        measure = _measure(agg, names, src)
        if measure is None:
            return None
        answer, window = measure
        if window is not None:
            if time is not None and window[0] != time:
                return None
            time = window[0]
        measures.append(answer)
    start, end = src.window
    ref = RollupRef(src.stream, src.by, time, start, end, tuple(measures), src.where)
    columns = [("key", group_out, src.types[src.by])]
    columns += [(f"m{i}", out, agg.type) for i, (agg, out) in enumerate(node.aggs)]
    return logical.Scan(ref, tuple(columns))


def _measure(
    agg: logical.LAgg, names: dict[logical.ColumnId, str], src: _Source
) -> tuple[RollupMeasure, tuple[str, Window] | None] | None:
    if agg.distinct or agg.order_by is not None or agg.overflow is not None:
        return None
    column: str | None = None
    if agg.arg is not None:
        if not isinstance(agg.arg, logical.LCol) or agg.arg.id not in names:
            return None
        column = names[agg.arg.id]
        if not _answerable(agg.func, src.types[column]):
            return None
    elif agg.func is not AggFunc.COUNT:
        return None
    start, end = src.window
    window: tuple[str, Window] | None = None
    where: Where = ()
    if agg.filter is not None:
        found = _conditions(conjuncts(agg.filter), names, src.types)
        if found is None:
            return None
        time, own, where = found
        if time is not None:
            window = (time, own)
            start = _later(start, own[0])
            end = _earlier(end, own[1])
    measure = RollupMeasure(agg.func.value, column, start, end, agg.type, where)
    return measure, window


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


def _answerable(func: AggFunc, ty: Type) -> bool:
    exact = ty.kind is Kind.INT or (ty.kind is Kind.DECIMAL and ty.precision <= MAX_DECIMAL_DIGITS)
    if func is AggFunc.COUNT:  # of non-null values: any type
        return True
    if func is AggFunc.SUM:
        return exact
    if func in (AggFunc.MIN, AggFunc.MAX):
        return exact or ty.kind is Kind.TIMESTAMP
    return False
