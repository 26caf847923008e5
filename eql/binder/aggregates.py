"""Bind aggregates (over sources and over groups), DID, windows and time points.

Split from `eql.binder.exprs`, whose helpers it uses through the module (`EX.`) so that the two
modules can call each other.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from eql import types as T
from eql.binder import bound as B
from eql.binder import exprs as EX
from eql.binder import values as V
from eql.binder.resolve import Many, Problem, Value, resolve
from eql.diagnostics import Span
from eql.syntax import ast as A
from eql.syntax.walk import children
from eql.types import Kind


def _aggregate(ctx: EX.Ctx, node: A.Call, func: B.AggFunc, where: EX.Where) -> B.BExpr:
    if len(node.args) > 1:
        return ctx.error("E206", f"{func.value}(...) takes one argument", node.span)
    arg = node.args[0] if node.args else None
    if isinstance(arg, A.Path):
        r = resolve(ctx.schema, where.scope, arg.parts, where.alias, ctx.catalog)
        if isinstance(r, Many):
            return _source_aggregate(
                ctx, func, arg, r, node.filter, node.window, node.distinct, where, node.span
            )
        if isinstance(r, Problem):
            return ctx.error(r.code, r.message, r.ident.span, *r.helps)
    elif arg is not None:
        path = _first_many_path(ctx, arg, where)
        if path is not None:
            return _source_aggregate(
                ctx,
                func,
                path,
                None,
                node.filter,
                node.window,
                node.distinct,
                where,
                node.span,
                whole=arg,
            )
    return _group_aggregate(ctx, node, func, arg, where)


def _first_many_path(ctx: EX.Ctx, node: A.Expr, where: EX.Where) -> A.Path | None:
    """The first path in an expression that reaches a many-valued source (not inside a call)."""
    if isinstance(node, A.Path):
        r = resolve(ctx.schema, where.scope, node.parts, where.alias, ctx.catalog)
        return node if isinstance(r, Many) else None
    if isinstance(node, A.Call | A.Did):
        return None
    for child in children(node):
        found = _first_many_path(ctx, child, where)
        if found is not None:
            return found
    return None


def _source_aggregate(
    ctx: EX.Ctx,
    func: B.AggFunc,
    path: A.Path,
    resolved: Many | None,
    flt: A.Expr | None,
    window: A.Window | None,
    distinct: bool,
    where: EX.Where,
    span: Span,
    whole: A.Expr | None = None,
) -> B.BExpr:
    r = resolved or resolve(ctx.schema, where.scope, path.parts, where.alias, ctx.catalog)
    if isinstance(r, Problem):
        return ctx.error(r.code, r.message, r.ident.span, *r.helps)
    if isinstance(r, Value):
        return ctx.error(
            "E208",
            f"`{EX._text(ctx, path)}` has one value per {where.scope.name} "
            "row; DID and aggregates need an event stream or a many-relation",
            path.span,
            "e.g. DID purchase, count(purchase), sum(purchase.amount)",
        )
    element = EX.Where(r.element, alias=r.name.name)
    arg: B.BExpr | None = None
    if whole is not None:
        arg = EX.bind_expr(ctx, whole, element)
    elif r.rest:
        inner = A.Path(r.rest, Span(r.rest[0].span.start, path.span.end))
        sub = resolve(ctx.schema, r.element, r.rest, None, ctx.catalog)
        if isinstance(sub, Many):  # two many-steps: aggregate the inner source per element
            return _two_hops(ctx, func, r, inner, sub, flt, window, distinct, span)
        arg = EX.bind_expr(ctx, inner, element)
    if arg is EX.POISON:
        return EX.POISON
    bound_filter = EX.bool_expr(ctx, flt, element, "the WHERE of an aggregate") if flt else None
    win = _window(ctx, window, r.source)
    return _make_aggregate(ctx, func, r.source, arg, bound_filter, win, distinct, span)


def _two_hops(
    ctx: EX.Ctx,
    func: B.AggFunc,
    outer: Many,
    inner_path: A.Path,
    inner: Many,
    flt: A.Expr | None,
    window: A.Window | None,
    distinct: bool,
    span: Span,
) -> B.BExpr:
    """`sum(members.purchase.amount)` = the sum over members of each member's sum."""
    if func not in (B.AggFunc.COUNT, B.AggFunc.SUM, B.AggFunc.MIN, B.AggFunc.MAX) or distinct:
        return ctx.error(
            "E224",
            f"{func.value}(...) across two many-steps cannot be split per element",
            span,
            f"nest it: {func.value}({outer.name.name} WHERE ...) or aggregate each hop yourself",
        )
    if flt is not None:
        return ctx.error(
            "E224",
            "a WHERE across two many-steps is ambiguous",
            span,
            f"nest it: count({outer.name.name} WHERE count(...) > 0)",
        )
    inner_agg = _source_aggregate(
        ctx, func, inner_path, inner, None, window, False, EX.Where(outer.element), span
    )
    if inner_agg is EX.POISON:
        return EX.POISON
    combine = B.AggFunc.SUM if func is B.AggFunc.COUNT else func
    return _make_aggregate(ctx, combine, outer.source, inner_agg, None, None, False, span)


def _make_aggregate(
    ctx: EX.Ctx,
    func: B.AggFunc,
    source: B.Source | None,
    arg: B.BExpr | None,
    flt: B.BExpr | None,
    window: B.Window | None,
    distinct: bool,
    span: Span,
) -> B.BExpr:
    if arg is None and func is not B.AggFunc.COUNT:
        return ctx.error(
            "E208",
            f"{func.value}(...) needs a value to aggregate",
            span,
            f"e.g. {func.value}(purchase.amount)",
        )
    t = arg.type if arg is not None else T.NULL
    if func in (B.AggFunc.SUM, B.AggFunc.AVG) and not (t.numeric or t.kind is Kind.NULL):
        return ctx.error("E208", f"{func.value}(...) needs numbers, not {t}", span)
    match func:
        case B.AggFunc.COUNT:
            out = T.INT
        case B.AggFunc.SUM:
            out = T.decimal(t.precision + 10, t.scale) if t.kind is Kind.DECIMAL else T.plain(t)
        case B.AggFunc.AVG:
            out = T.decimal(t.precision + 4, t.scale + 4) if t.kind is Kind.DECIMAL else T.FLOAT
        case _:
            out = T.plain(t)
    order = None
    if func in (B.AggFunc.FIRST, B.AggFunc.LAST):
        if isinstance(source, B.StreamSource):
            order = source.time
        elif isinstance(source, B.RelationSource):
            order = ctx.schema.require_entity(source.target).key.name
        else:
            return ctx.error(
                "E208", f"{func.value}(...) needs an event stream or relation to order by", span
            )
    return B.Aggregate(func, source, arg, flt, window, distinct, out, order)


def _group_aggregate(
    ctx: EX.Ctx, node: A.Call, func: B.AggFunc, arg: A.Expr | None, where: EX.Where
) -> B.BExpr:
    if not where.group_ok:
        what = f"`{EX._text(ctx, arg)}`" if arg is not None else "the rows"
        return ctx.error(
            "E220",
            f"{func.value}(...) here would aggregate {what} over the whole result",
            node.span,
            "aggregates over a stream or relation name it: count(purchase), "
            "sum(purchase.amount); to aggregate rows, use GROUP BY in RETURN",
        )
    if where.in_group_agg:
        return ctx.error(
            "E220", "an aggregate over the group cannot contain another one", node.span
        )
    if node.window is not None:
        return ctx.error("E209", "DURING needs an event stream to aggregate", node.window.span)
    if node.star or arg is None:
        if func is not B.AggFunc.COUNT:
            return ctx.error("E208", f"{func.value}() needs a value", node.span)
        ctx.group_aggregates += 1
        inner_where = EX.Where(where.scope, where.alias, False, True)
        flt = EX.bool_expr(ctx, node.filter, inner_where, "WHERE") if node.filter else None
        return B.Aggregate(func, None, None, flt, None, False, T.INT)
    inner_where = EX.Where(where.scope, where.alias, False, True)
    bound = EX.bind_expr(ctx, arg, inner_where)
    if bound is EX.POISON:
        return EX.POISON
    flt = EX.bool_expr(ctx, node.filter, inner_where, "WHERE") if node.filter else None
    if func in (B.AggFunc.FIRST, B.AggFunc.LAST):
        return ctx.error(
            "E208",
            f"{func.value}(...) over a group has no order",
            node.span,
            "use min(...) or max(...)",
        )
    ctx.group_aggregates += 1
    return _make_aggregate(ctx, func, None, bound, flt, None, node.distinct, node.span)


def _window(ctx: EX.Ctx, w: A.Window | None, source: B.Source | None) -> B.Window | None:
    if w is None:
        if isinstance(source, B.StreamSource):  # only events before the reference time
            return B.Window(None, ctx.reference)
        return None
    if not isinstance(source, B.StreamSource) and source is not None:
        ctx.error(
            "E209",
            "DURING needs an event stream; a relation's rows have no time",
            w.span,
            "put the window on the stream inside: count(members WHERE "
            "DID purchase DURING LAST 30 DAYS)",
        )
        return None
    return window_of(ctx, w)


def window_of(ctx: EX.Ctx, w: A.Window) -> B.Window | None:
    if isinstance(w, A.LastWindow):
        n: Any
        if isinstance(w.count, A.Param):
            p = EX.bind_param(ctx, w.count, T.INT)
            if p is EX.POISON:
                return None
            n = p.value if isinstance(p, B.Param) else None
        else:
            n = w.count.value
        if not isinstance(n, int) or n < 0:
            ctx.error("E219", "a window's length must be a whole number ≥ 0", w.count.span)
            return None
        try:
            return B.Window(V.minus(ctx.reference, n, w.unit.value), ctx.reference)
        except (ValueError, OverflowError) as exc:
            ctx.error("E214", f"window out of range: {exc}", w.span)
            return None
    start = time_point(ctx, w.start)
    end = time_point(ctx, w.end)
    if start is None or end is None:
        return None
    if end < start:
        ctx.error("E214", "the window ends before it starts", w.span)
        return None
    return B.Window(start, end)


def time_point(ctx: EX.Ctx, p: A.TimePoint) -> dt.datetime | None:
    match p:
        case A.DateLiteral(value=d):
            return V.to_utc(d)
        case A.TimestampLiteral(value=t):
            return V.to_utc(t)
        case A.StringLiteral(value=s):
            try:
                return V.parse_time(s)
            except ValueError as exc:
                ctx.error("E214", str(exc), p.span)
                return None
        case A.Param():
            b = EX.bind_param(ctx, p, T.TIMESTAMP)
            if isinstance(b, B.Param) and b.value is None:
                ctx.error("E211", f"parameter ${p.name}: a time is needed here, not null", p.span)
                return None
            return b.value if isinstance(b, B.Param) else None
    return None
