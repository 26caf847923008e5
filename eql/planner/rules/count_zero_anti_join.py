"""`count(src ...) = 0` as an anti join.

Lowering turns an aggregate of a source into a left join with the source's rows grouped per key,
and `count(...) = 0` into a filter on `coalesce(count, 0) = 0` above it. A group exists only for
a key that has at least one row, and `count(*)` of a group is at least 1, so the filter keeps
exactly the rows without a match: an anti join with the source's keys, which needs no
aggregation at all (`count(members WHERE count(purchase DURING LAST 30 DAYS) = 0)`: the users
with no purchase in the window, without counting anyone's purchases).

Before:  Filter (coalesce(cN, 0) = 0) <- Join left on k = g (X, Aggregate group [g := k'] aggs
         [cN := count(*)] <- R)
After:   Join anti on k = k' (X, Project [k' := k'] <- R)

Applies when the aggregate has one group key (a column) and one aggregate, `count(*)` without its
own filter, and nothing else in the plan reads g or cN. The forms `= 0`, `<= 0` and `< 1` count.

May import: `eql.planner.logical`, `eql.planner.rules.walk`, `eql.binder.bound` (operators).
"""

from __future__ import annotations

import dataclasses
from collections import Counter

from eql.binder.bound import AggFunc, BinOp
from eql.planner import logical
from eql.planner.rules.walk import column_uses, conjuncts, expr_columns, rewrite_up

ZERO_FORMS = {(BinOp.EQ, 0), (BinOp.LE, 0), (BinOp.LT, 1)}


def rule(plan: logical.Plan) -> logical.Plan:
    uses = column_uses(plan)
    return rewrite_up(plan, lambda node: _rewrite(node, uses))


def _rewrite(node: logical.Plan, uses: Counter[logical.ColumnId]) -> logical.Plan:
    if not isinstance(node, logical.Filter):
        return node
    join = node.input
    if not (isinstance(join, logical.Join) and join.kind is logical.JoinKind.LEFT):
        return node
    agg = join.right
    if not (
        isinstance(agg, logical.Aggregate)
        and len(agg.group) == 1
        and len(agg.aggs) == 1
        and len(join.right_keys) == 1
        and isinstance(agg.group[0][0], logical.LCol)
    ):
        return node
    (group_expr, group_id), ((count, count_id),) = agg.group[0], agg.aggs
    if not (
        count.func is AggFunc.COUNT
        and count.arg is None
        and count.filter is None
        and not count.distinct
        and join.right_keys == (group_id,)
    ):
        return node
    parts = conjuncts(node.predicate)
    zero = next((p for p in parts if _is_zero_test(p, count_id)), None)
    if zero is None:
        return node
    readers = Counter(expr_columns(zero))
    # the join's key is the only other reader of g; the zero test the only reader of cN
    if uses[group_id] != 1 or uses[count_id] != readers[count_id]:
        return node
    assert isinstance(group_expr, logical.LCol)
    key = group_expr.id
    keys = logical.Project(agg.input, ((logical.LCol(key, group_expr.type), key),))
    anti = dataclasses.replace(join, right=keys, right_keys=(key,), kind=logical.JoinKind.ANTI)
    rest = [p for p in parts if p is not zero]
    if not rest:
        return anti
    predicate = rest[0]
    for p in rest[1:]:
        predicate = logical.LBinary(BinOp.AND, predicate, p, p.type)
    return logical.Filter(anti, predicate)


def _is_zero_test(e: logical.LExpr, count_id: logical.ColumnId) -> bool:
    """`coalesce(cN, 0) = 0` (or `<= 0`, `< 1`)."""
    if not (isinstance(e, logical.LBinary) and isinstance(e.right, logical.LLit)):
        return False
    left = e.left
    counted = (
        isinstance(left, logical.LCall)
        and left.func == "coalesce"
        and len(left.args) == 2
        and isinstance(left.args[0], logical.LCol)
        and left.args[0].id == count_id
        and isinstance(left.args[1], logical.LLit)
        and left.args[1].value == 0
    )
    value = e.right.value
    return counted and isinstance(value, int) and (e.op, value) in ZERO_FORMS
