"""One scan for a source that a query both tests (`DID visit DURING LAST 30 DAYS`) and
aggregates over the same rows (`count(visit DURING LAST 30 DAYS)`).

Lowering gives the test a semi join with the source's keys and the aggregate a left join with
the source grouped per key: two scans of the same rows. A group exists exactly for the keys that
have a row, so the semi join keeps the rows that the left join matched: the left join becomes an
inner join and the semi join goes.

Before:  Join semi on k = r (... Join left on k = g (X, Aggregate group [g := k'] <- R1) ...,
         Project [r := r] <- R2)
After:   ... Join inner on k = g (X, Aggregate group [g := k'] <- R1) ...

Applies when R1 and R2 are the same scan with the same filters (column ids aside) and k', r the
same stored column, and the left join is on the left spine below the semi join (only joins in
between: each keeps or drops whole rows of its left side, so the order does not matter).

May import: `eql.planner.logical`, `eql.planner.rules.walk`.
"""

from __future__ import annotations

import dataclasses

from eql.planner import logical
from eql.planner.rules.walk import rewrite_up, scan_shape


def rule(plan: logical.Plan) -> logical.Plan:
    return rewrite_up(plan, _rewrite)


def _rewrite(node: logical.Plan) -> logical.Plan:
    if not (
        isinstance(node, logical.Join)
        and node.kind is logical.JoinKind.SEMI
        and len(node.left_keys) == 1
        and isinstance(node.right, logical.Project)
        and len(node.right.items) == 1
    ):
        return node
    ((expr, key_id),) = node.right.items
    if not (isinstance(expr, logical.LCol) and expr.id == key_id == node.right_keys[0]):
        return node
    tested = scan_shape(node.right.input, key_id)
    if tested is None:
        return node
    merged = _inner(node.left, node.left_keys, tested)
    return merged if merged is not None else node


def _inner(
    spine: logical.Plan, keys: tuple[logical.ColumnId, ...], tested: tuple[object, ...]
) -> logical.Plan | None:
    """`spine` with the matching left join made inner, or None when there is none."""
    if not isinstance(spine, logical.Join):
        return None
    agg = spine.right
    if (
        spine.kind is logical.JoinKind.LEFT
        and spine.left_keys == keys
        and isinstance(agg, logical.Aggregate)
        and len(agg.group) == 1
        and isinstance(agg.group[0][0], logical.LCol)
        and spine.right_keys == (agg.group[0][1],)
        and scan_shape(agg.input, agg.group[0][0].id) == tested
    ):
        return dataclasses.replace(spine, kind=logical.JoinKind.INNER)
    below = _inner(spine.left, keys, tested)
    return None if below is None else dataclasses.replace(spine, left=below)
