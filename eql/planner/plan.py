"""Plan a bound query: scope relation, WHERE, grouping, RETURN, ORDER BY, LIMIT; then the rules."""

from __future__ import annotations

from entities import Schema
from eql import types
from eql.binder import bound
from eql.planner import logical
from eql.planner.join_kinds import classify
from eql.planner.lower import Lowerer, all_of
from eql.planner.overflow import sum_check
from eql.planner.rules import RULES, Rules


def plan(query: bound.BoundQuery, schema: Schema, rules: Rules = RULES) -> logical.Plan:
    """The logical plan of a bound query, after the rewrite `rules` (all of them by default)."""
    out = _plan(query, schema)
    for _, rule in rules:
        out = rule(out)
    return out


def _group_aggregates(e: bound.BExpr, found: list[bound.Aggregate]) -> None:
    if isinstance(e, bound.Aggregate) and e.source is None:
        if e not in found:
            found.append(e)
        return
    for c in bound.children(e):
        _group_aggregates(c, found)


def _plan(q: bound.BoundQuery, schema: Schema) -> logical.Plan:
    lw = Lowerer(schema)
    joins = classify(q.where)
    row_exprs: list[bound.BExpr] = list(joins.rest)
    row_exprs.extend(g.expr for g in q.group_by)
    row_exprs.extend(i.expr for i in q.items)
    row_exprs.extend(o.expr for o in q.order_by)
    extra: tuple[str, ...] = ()
    time_col = ""
    if q.scope.kind is bound.ScopeKind.EVENT:
        time_col = schema.require_stream(q.scope.name).time
        extra = (time_col,)
    rel, env = lw.build_scope(q.scope, row_exprs, extra, joins.inner)
    for ex in joins.existence:
        rel = lw.existence_join(q.scope, rel, env, ex)
    if q.during is not None:
        t = logical.LCol(env.columns[(bound.ROOT, time_col)], types.TIMESTAMP)
        hi = logical.LBinary(
            bound.BinOp.LT, t, logical.LLit(q.during.end, types.TIMESTAMP), types.BOOL
        )
        cond: logical.LExpr = hi
        if q.during.start is not None:
            lo = logical.LBinary(
                bound.BinOp.GE, t, logical.LLit(q.during.start, types.TIMESTAMP), types.BOOL
            )
            cond = logical.LBinary(bound.BinOp.AND, lo, hi, types.BOOL)
        rel = logical.Filter(rel, cond)
    if joins.rest:
        rel = logical.Filter(rel, all_of([lw.expr(c, env) for c in joins.rest]))

    if q.grouped:
        group_items: list[tuple[logical.LExpr, logical.ColumnId]] = []
        for g in q.group_by:
            cid = lw.new_id()
            group_items.append((lw.expr(g.expr, env), cid))
        aggs: list[bound.Aggregate] = []
        for e in [*(i.expr for i in q.items), *(o.expr for o in q.order_by)]:
            _group_aggregates(e, aggs)
        lagg: list[tuple[logical.LAgg, logical.ColumnId]] = []
        for a in aggs:
            arg = lw.expr(a.arg, env) if a.arg is not None else None
            flt = lw.expr(a.filter, env) if a.filter is not None else None
            order = None
            if a.order_column:
                order = logical.LCol(env.columns[(bound.ROOT, a.order_column)], types.TIMESTAMP)
            cid = lw.new_id()
            lagg.append(
                (logical.LAgg(a.func, arg, a.distinct, flt, order, a.type, sum_check(a)), cid)
            )
        rel = logical.Aggregate(rel, tuple(group_items), tuple(lagg))
        # after grouping, expressions see only group keys and group aggregates
        subst: dict[bound.BExpr, logical.ColumnId] = {}
        for g, (_, cid) in zip(q.group_by, group_items, strict=True):
            subst[g.expr] = cid
        for a, (_, cid) in zip(aggs, lagg, strict=True):
            subst[a] = cid
        grouped_env = type(env)()

        def translate(e: bound.BExpr) -> logical.LExpr:
            return lw.expr_over(e, grouped_env, subst)

    else:

        def translate(e: bound.BExpr) -> logical.LExpr:
            return lw.expr(e, env)

    items = [(translate(i.expr), lw.new_id(), i) for i in q.items]
    sort_keys: list[tuple[logical.LExpr, bool, bool]] = []
    extra_ids: list[tuple[logical.LExpr, logical.ColumnId]] = []
    for o in q.order_by:
        same = next((cid for le, cid, it in items if it.expr == o.expr), None)
        if same is None:
            cid = lw.new_id()
            extra_ids.append((translate(o.expr), cid))
            same = cid
        sort_keys.append((logical.LCol(same, o.expr.type), o.descending, o.nulls_first))
    rel = logical.Project(rel, tuple((le, cid) for le, cid, _ in items) + tuple(extra_ids))
    if sort_keys:
        rel = logical.Sort(rel, tuple(sort_keys))
    if q.limit is not None:
        rel = logical.Limit(rel, q.limit)
    return logical.Output(rel, tuple((cid, it.name, le.type) for le, cid, it in items))
