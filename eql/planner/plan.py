"""Plan a bound query: scope relation, WHERE, grouping, RETURN, ORDER BY, LIMIT; then the rules."""

from __future__ import annotations

from entities import Schema
from eql import types as T
from eql.binder import bound as B
from eql.planner import logical as L
from eql.planner.lower import Lowerer, children
from eql.planner.rules import RULES
from eql.planner.rules.join_kinds import classify


def plan(query: B.BoundQuery, schema: Schema) -> L.Plan:
    """The logical plan of a bound query, after the rewrite rules."""
    out = _plan(query, schema)
    for rule in RULES:
        out = rule(out)
    return out


def _group_aggregates(e: B.BExpr, found: list[B.Aggregate]) -> None:
    if isinstance(e, B.Aggregate) and e.source is None:
        if e not in found:
            found.append(e)
        return
    for c in children(e):
        _group_aggregates(c, found)


def _plan(q: B.BoundQuery, schema: Schema) -> L.Plan:
    lw = Lowerer(schema)
    joins = classify(q.where)
    row_exprs: list[B.BExpr] = list(joins.rest)
    row_exprs.extend(g.expr for g in q.group_by)
    row_exprs.extend(i.expr for i in q.items)
    row_exprs.extend(o.expr for o in q.order_by)
    extra: tuple[str, ...] = ()
    time_col = ""
    if q.scope.kind is B.ScopeKind.EVENT:
        time_col = schema.require_stream(q.scope.name).time
        extra = (time_col,)
    rel, env = lw.build_scope(q.scope, row_exprs, extra, joins.inner)
    for ex in joins.existence:
        rel = lw.existence_join(q.scope, rel, env, ex)
    if q.during is not None:
        t = L.LCol(env.columns[(B.ROOT, time_col)], T.TIMESTAMP)
        hi = L.LBinary(B.BinOp.LT, t, L.LLit(q.during.end, T.TIMESTAMP), T.BOOL)
        cond: L.LExpr = hi
        if q.during.start is not None:
            lo = L.LBinary(B.BinOp.GE, t, L.LLit(q.during.start, T.TIMESTAMP), T.BOOL)
            cond = L.LBinary(B.BinOp.AND, lo, hi, T.BOOL)
        rel = L.Filter(rel, cond)
    for conjunct in joins.rest:
        rel = L.Filter(rel, lw.expr(conjunct, env))

    if q.grouped:
        group_items: list[tuple[L.LExpr, L.ColumnId]] = []
        for g in q.group_by:
            cid = lw.new_id()
            group_items.append((lw.expr(g.expr, env), cid))
        aggs: list[B.Aggregate] = []
        for e in [*(i.expr for i in q.items), *(o.expr for o in q.order_by)]:
            _group_aggregates(e, aggs)
        lagg: list[tuple[L.LAgg, L.ColumnId]] = []
        for a in aggs:
            arg = lw.expr(a.arg, env) if a.arg is not None else None
            flt = lw.expr(a.filter, env) if a.filter is not None else None
            order = None
            if a.order_column:
                order = L.LCol(env.columns[(B.ROOT, a.order_column)], T.TIMESTAMP)
            cid = lw.new_id()
            lagg.append((L.LAgg(a.func, arg, a.distinct, flt, order, a.type), cid))
        rel = L.Aggregate(rel, tuple(group_items), tuple(lagg))
        # after grouping, expressions see group keys and group aggregates only
        genv = type(env)()
        for g, (_, cid) in zip(q.group_by, group_items, strict=True):
            genv.aggregates[_as_key(g.expr)] = cid
        for a, (_, cid) in zip(aggs, lagg, strict=True):
            genv.aggregates[a] = cid
        env = genv
        translate = _grouped_translator(lw, env, q)
    else:

        def translate(e: B.BExpr) -> L.LExpr:
            return lw.expr(e, env)

    items = [(translate(i.expr), lw.new_id(), i) for i in q.items]
    sort_keys: list[tuple[L.LExpr, bool, bool]] = []
    extra_ids: list[tuple[L.LExpr, L.ColumnId]] = []
    for o in q.order_by:
        same = next((cid for le, cid, it in items if it.expr == o.expr), None)
        if same is None:
            cid = lw.new_id()
            extra_ids.append((translate(o.expr), cid))
            same = cid
        sort_keys.append((L.LCol(same, o.expr.type), o.descending, o.nulls_first))
    rel = L.Project(rel, tuple((le, cid) for le, cid, _ in items) + tuple(extra_ids))
    if sort_keys:
        rel = L.Sort(rel, tuple(sort_keys))
    if q.limit is not None:
        rel = L.Limit(rel, q.limit)
    return L.Output(rel, tuple((cid, it.name, le_type(le)) for le, cid, it in items))


def le_type(e: L.LExpr) -> T.Type:
    return e.type


def _as_key(e: B.BExpr) -> B.Aggregate:
    """Group keys are looked up like aggregates: by the bound expression's value."""
    return e  # type: ignore[return-value]


def _grouped_translator(lw: Lowerer, env: object, q: B.BoundQuery):  # type: ignore[no-untyped-def]
    from eql.planner.lower import _Env

    assert isinstance(env, _Env)

    def translate(e: B.BExpr) -> L.LExpr:
        cid = env.aggregates.get(e)  # type: ignore[call-overload]
        if cid is not None:
            return L.LCol(cid, e.type)
        if isinstance(e, B.Literal | B.Param):
            return lw.expr(e, env)
        return _rebuild(e, translate, lw, env)

    return translate


def _rebuild(e: B.BExpr, translate, lw: Lowerer, env: object) -> L.LExpr:  # type: ignore[no-untyped-def]
    """Translate an expression over group keys/aggregates by translating its children first."""
    match e:
        case B.Call(func=f, args=args, type=t):
            return L.LCall(f, tuple(translate(a) for a in args), t)
        case B.Unary(op=op, arg=arg, type=t):
            return L.LUnary(op, translate(arg), t)
        case B.Binary(op=op, left=left, right=right, type=t):
            return L.LBinary(op, translate(left), translate(right), t)
        case B.IsNull(arg=arg, negated=neg, type=t):
            return L.LIsNull(translate(arg), neg, t)
        case B.InList(arg=arg, items=items, negated=neg, type=t):
            return L.LInList(translate(arg), tuple(translate(i) for i in items), neg, t)
        case B.Case(whens=whens, otherwise=other, type=t):
            return L.LCase(
                tuple((translate(c), translate(v)) for c, v in whens),
                translate(other) if other is not None else None,
                t,
            )
        case B.Cast(arg=arg, type=t):
            return L.LCast(translate(arg), t)
        case B.Like(arg=arg, pattern=p, negated=neg, type=t):
            return L.LLike(translate(arg), translate(p), neg, t)
        case B.Between(arg=arg, low=lo, high=hi, negated=neg, type=t):
            a = translate(arg)
            both = L.LBinary(
                B.BinOp.AND,
                L.LBinary(B.BinOp.GE, a, translate(lo), T.BOOL),
                L.LBinary(B.BinOp.LE, a, translate(hi), T.BOOL),
                T.BOOL,
            )
            return L.LUnary(B.UnaryOp.NOT, both, t) if neg else both
    from eql.diagnostics import InternalError

    raise InternalError(f"{type(e).__name__} is neither grouped nor aggregated")
