"""What the rules share: a plan's inputs, a node with new inputs, a bottom-up rewrite, the columns
an expression or a plan reads, and the shape of a scan-and-filters input with its column ids
replaced by the stored names (two such inputs with one shape read the same rows).

May import: `eql.planner.logical`, `eql.binder.bound` (operators), the standard library.
"""

from __future__ import annotations

import dataclasses
from collections import Counter
from collections.abc import Callable, Iterator
from typing import Any, assert_never

from eql.binder.bound import BinOp
from eql.planner import logical


def inputs(plan: logical.Plan) -> tuple[logical.Plan, ...]:
    match plan:
        case logical.Scan():
            return ()
        case logical.Join(left=left, right=right):
            return (left, right)
        case (
            logical.Filter(input=inp)
            | logical.Project(input=inp)
            | logical.Aggregate(input=inp)
            | logical.Sort(input=inp)
            | logical.Limit(input=inp)
            | logical.Output(input=inp)
        ):
            return (inp,)
    assert_never(plan)


def with_inputs(plan: logical.Plan, new: tuple[logical.Plan, ...]) -> logical.Plan:
    if new == inputs(plan):
        return plan
    if isinstance(plan, logical.Join):
        return dataclasses.replace(plan, left=new[0], right=new[1])
    return dataclasses.replace(plan, input=new[0])  # type: ignore[arg-type]


def rewrite_up(plan: logical.Plan, fn: Callable[[logical.Plan], logical.Plan]) -> logical.Plan:
    """`fn` applied to every node, inputs first."""
    rebuilt = with_inputs(plan, tuple(rewrite_up(i, fn) for i in inputs(plan)))
    return fn(rebuilt)


def expr_children(e: logical.LExpr) -> Iterator[logical.LExpr]:
    match e:
        case logical.LCol() | logical.LLit():
            return
        case logical.LCall(args=args):
            yield from args
        case logical.LUnary(arg=arg) | logical.LIsNull(arg=arg) | logical.LCast(arg=arg):
            yield arg
        case logical.LBinary(left=left, right=right):
            yield left
            yield right
        case logical.LInList(arg=arg, items=items):
            yield arg
            yield from items
        case logical.LLike(arg=arg, pattern=pattern):
            yield arg
            yield pattern
        case logical.LCase(whens=whens, otherwise=other):
            for cond, value in whens:
                yield cond
                yield value
            if other is not None:
                yield other
        case _:
            assert_never(e)


def expr_columns(e: logical.LExpr) -> Iterator[logical.ColumnId]:
    if isinstance(e, logical.LCol):
        yield e.id
    for child in expr_children(e):
        yield from expr_columns(child)


def _node_exprs(plan: logical.Plan) -> Iterator[logical.LExpr]:
    match plan:
        case logical.Filter(predicate=p):
            yield p
        case logical.Project(items=items):
            yield from (e for e, _ in items)
        case logical.Aggregate(group=group, aggs=aggs):
            yield from (e for e, _ in group)
            for agg, _ in aggs:
                yield from (x for x in (agg.arg, agg.filter, agg.order_by) if x is not None)
        case logical.Sort(keys=keys):
            yield from (e for e, _, _ in keys)
        case _:
            return


def column_uses(plan: logical.Plan) -> Counter[logical.ColumnId]:
    """How often each column id is read anywhere in `plan` (expressions, join keys, output)."""
    uses: Counter[logical.ColumnId] = Counter()

    def visit(node: logical.Plan) -> None:
        for e in _node_exprs(node):
            uses.update(expr_columns(e))
        if isinstance(node, logical.Join):
            uses.update(node.left_keys + node.right_keys)
        if isinstance(node, logical.Output):
            uses.update(cid for cid, _, _ in node.columns)
        for i in inputs(node):
            visit(i)

    visit(plan)
    return uses


def conjuncts(e: logical.LExpr) -> list[logical.LExpr]:
    if isinstance(e, logical.LBinary) and e.op is BinOp.AND:
        return conjuncts(e.left) + conjuncts(e.right)
    return [e]


def scan_shape(plan: logical.Plan, key: logical.ColumnId) -> tuple[Any, ...] | None:
    """For `Filter*(Scan)` (the input lowering builds for one source and window): the table, the
    set of filters and the stored name of `key`, with every column id replaced by its stored
    name; None for any other plan."""
    filters: list[logical.LExpr] = []
    while isinstance(plan, logical.Filter):
        filters.extend(conjuncts(plan.predicate))
        plan = plan.input
    if not isinstance(plan, logical.Scan):
        return None
    names = {cid: name for name, cid, _ in plan.columns}
    if key not in names:
        return None
    shapes = frozenset(_shape(f, names) for f in filters)
    return (plan.table, shapes, names[key])


def _shape(value: Any, names: dict[logical.ColumnId, str]) -> Any:
    if isinstance(value, logical.LCol):
        return ("column", names.get(value.id, value.id))
    if isinstance(value, tuple):
        return tuple(_shape(v, names) for v in value)
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        fields = dataclasses.fields(value)
        return (type(value).__name__, *(_shape(getattr(value, f.name), names) for f in fields))
    return value
