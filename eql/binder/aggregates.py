"""Bind aggregates (over sources and over groups), DID, windows and time points.

`aggregate` is called by `calls` for an aggregate function's name; `DID` is a handler of its own
(`count(...) > 0`). Windows default to "before the reference time" for event streams.

May import: `eql.types`, `eql.syntax`, `eql.diagnostics`, `eql.binder.{bound, values, resolve,
context, dispatch, exprs}`.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from eql import types
from eql.binder import bound, values
from eql.binder.context import POISON, Ctx, Where
from eql.binder.dispatch import bind_expr, bool_expr, handles
from eql.binder.exprs import bind_param
from eql.binder.resolve import Many, Problem, Value
from eql.diagnostics import Span
from eql.syntax import ast
from eql.syntax.walk import children
from eql.types import Kind, Type


@handles(ast.Did)
def _did(node: ast.Did, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    count = _source_aggregate(
        ctx, bound.AggFunc.COUNT, node.path, None, node.filter, node.window, False, where, node.span
    )
    if count is POISON:
        return POISON
    return bound.Binary(bound.BinOp.GT, count, bound.Literal(0, types.INT), types.BOOL)


def aggregate(ctx: Ctx, node: ast.Call, func: bound.AggFunc, where: Where) -> bound.BExpr:
    if len(node.args) > 1:
        return ctx.error("E206", f"{func.value}(...) takes one argument", node.span)
    arg = node.args[0] if node.args else None
    if isinstance(arg, ast.Path):
        r = ctx.resolve(where, arg.parts)
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


def _first_many_path(ctx: Ctx, node: ast.Expr, where: Where) -> ast.Path | None:
    """The first path in an expression that reaches a many-valued source (not inside a call)."""
    if isinstance(node, ast.Path):
        r = ctx.resolve(where, node.parts)
        return node if isinstance(r, Many) else None
    if isinstance(node, ast.Call | ast.Did):
        return None
    for child in children(node):
        found = _first_many_path(ctx, child, where)
        if found is not None:
            return found
    return None


def _source_aggregate(
    ctx: Ctx,
    func: bound.AggFunc,
    path: ast.Path,
    resolved: Many | None,
    flt: ast.Expr | None,
    window: ast.Window | None,
    distinct: bool,
    where: Where,
    span: Span,
    whole: ast.Expr | None = None,
) -> bound.BExpr:
    r = resolved or ctx.resolve(where, path.parts)
    if isinstance(r, Problem):
        return ctx.error(r.code, r.message, r.ident.span, *r.helps)
    if isinstance(r, Value):
        return ctx.error(
            "E208",
            f"`{ctx.source_text(path)}` has one value per {where.scope.name} "
            "row; DID and aggregates need an event stream or a many-relation",
            path.span,
            "e.g. DID purchase, count(purchase), sum(purchase.amount)",
        )
    element = Where(r.element, alias=r.name.name)
    arg: bound.BExpr | None = None
    if whole is not None:
        arg = bind_expr(ctx, whole, element)
    elif r.rest:
        inner = ast.Path(r.rest, Span(r.rest[0].span.start, path.span.end))
        sub = ctx.resolve(Where(r.element), r.rest)
        if isinstance(sub, Many):  # two many-steps: aggregate the inner source per element
            return _two_hops(ctx, func, r, inner, sub, flt, window, distinct, span)
        arg = bind_expr(ctx, inner, element)
    if arg is POISON:
        return POISON
    bound_filter = bool_expr(ctx, flt, element, "the WHERE of an aggregate") if flt else None
    win = _window(ctx, window, r.source)
    return _make_aggregate(ctx, func, r.source, arg, bound_filter, win, distinct, span)


def _two_hops(
    ctx: Ctx,
    func: bound.AggFunc,
    outer: Many,
    inner_path: ast.Path,
    inner: Many,
    flt: ast.Expr | None,
    window: ast.Window | None,
    distinct: bool,
    span: Span,
) -> bound.BExpr:
    """`sum(members.purchase.amount)` = the sum over members of each member's sum."""
    if (
        func not in (bound.AggFunc.COUNT, bound.AggFunc.SUM, bound.AggFunc.MIN, bound.AggFunc.MAX)
        or distinct
    ):
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
        ctx, func, inner_path, inner, None, window, False, Where(outer.element), span
    )
    if inner_agg is POISON:
        return POISON
    combine = bound.AggFunc.SUM if func is bound.AggFunc.COUNT else func
    return _make_aggregate(ctx, combine, outer.source, inner_agg, None, None, False, span)


def _make_aggregate(
    ctx: Ctx,
    func: bound.AggFunc,
    source: bound.Source | None,
    arg: bound.BExpr | None,
    flt: bound.BExpr | None,
    window: bound.Window | None,
    distinct: bool,
    span: Span,
) -> bound.BExpr:
    if arg is None and func is not bound.AggFunc.COUNT:
        return ctx.error(
            "E208",
            f"{func.value}(...) needs a value to aggregate",
            span,
            f"e.g. {func.value}(purchase.amount)",
        )
    t = arg.type if arg is not None else types.NULL
    if func in (bound.AggFunc.SUM, bound.AggFunc.AVG) and not (t.numeric or t.kind is Kind.NULL):
        return ctx.error("E208", f"{func.value}(...) needs numbers, not {t}", span)
    match func:
        case bound.AggFunc.COUNT:
            out = types.INT
        case bound.AggFunc.SUM:
            out = (
                types.decimal(t.precision + 10, t.scale)
                if t.kind is Kind.DECIMAL
                else types.plain(t)
            )
        case bound.AggFunc.AVG:
            out = (
                types.decimal(t.precision + 4, t.scale + 4)
                if t.kind is Kind.DECIMAL
                else types.FLOAT
            )
        case _:
            out = types.plain(t)
    order = None
    if func in (bound.AggFunc.FIRST, bound.AggFunc.LAST):
        if isinstance(source, bound.StreamSource):
            order = source.time
        elif isinstance(source, bound.RelationSource):
            order = ctx.schema.require_entity(source.target).key.name
        else:
            return ctx.error(
                "E208", f"{func.value}(...) needs an event stream or relation to order by", span
            )
    text = ctx.text[span.start : span.end]
    return bound.Aggregate(func, source, arg, flt, window, distinct, out, order, text)


def _group_aggregate(
    ctx: Ctx, node: ast.Call, func: bound.AggFunc, arg: ast.Expr | None, where: Where
) -> bound.BExpr:
    if not where.group_ok:
        what = f"`{ctx.source_text(arg)}`" if arg is not None else "the rows"
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
        if func is not bound.AggFunc.COUNT:
            return ctx.error("E208", f"{func.value}() needs a value", node.span)
        ctx.group_aggregates += 1
        inner_where = Where(where.scope, where.alias, False, True)
        flt = bool_expr(ctx, node.filter, inner_where, "WHERE") if node.filter else None
        return bound.Aggregate(func, None, None, flt, None, False, types.INT)
    inner_where = Where(where.scope, where.alias, False, True)
    value = bind_expr(ctx, arg, inner_where)
    if value is POISON:
        return POISON
    flt = bool_expr(ctx, node.filter, inner_where, "WHERE") if node.filter else None
    if func in (bound.AggFunc.FIRST, bound.AggFunc.LAST):
        return ctx.error(
            "E208",
            f"{func.value}(...) over a group has no order",
            node.span,
            "use min(...) or max(...)",
        )
    ctx.group_aggregates += 1
    return _make_aggregate(ctx, func, None, value, flt, None, node.distinct, node.span)


def _window(ctx: Ctx, w: ast.Window | None, source: bound.Source | None) -> bound.Window | None:
    if w is None:
        if isinstance(source, bound.StreamSource):  # only events before the reference time
            return bound.Window(None, ctx.reference)
        return None
    if not isinstance(source, bound.StreamSource) and source is not None:
        ctx.error(
            "E209",
            "DURING needs an event stream; a relation's rows have no time",
            w.span,
            "put the window on the stream inside: count(members WHERE "
            "DID purchase DURING LAST 30 DAYS)",
        )
        return None
    return window_of(ctx, w)


def window_of(ctx: Ctx, w: ast.Window) -> bound.Window | None:
    if isinstance(w, ast.LastWindow):
        n: Any
        if isinstance(w.count, ast.Param):
            p = bind_param(ctx, w.count, types.INT)
            if p is POISON:
                return None
            n = p.value if isinstance(p, bound.Param) else None
        else:
            n = w.count.value
        if not isinstance(n, int) or n < 0:
            ctx.error("E219", "a window's length must be a whole number ≥ 0", w.count.span)
            return None
        try:
            return bound.Window(values.minus(ctx.reference, n, w.unit.value), ctx.reference)
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
    return bound.Window(start, end)


def time_point(ctx: Ctx, p: ast.TimePoint) -> dt.datetime | None:
    match p:
        case ast.DateLiteral(value=d):
            return values.to_utc(d)
        case ast.TimestampLiteral(value=t):
            return values.to_utc(t)
        case ast.StringLiteral(value=s):
            try:
                return values.parse_time(s)
            except ValueError as exc:
                ctx.error("E214", str(exc), p.span)
                return None
        case ast.Param():
            b = bind_param(ctx, p, types.TIMESTAMP)
            if isinstance(b, bound.Param) and b.value is None:
                ctx.error("E211", f"parameter ${p.name}: a time is needed here, not null", p.span)
                return None
            return b.value if isinstance(b, bound.Param) else None
    return None
