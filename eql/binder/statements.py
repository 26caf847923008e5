"""Bind FIND and FIND EVENTS statements: scope, reference time, items, grouping, order, limit."""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from typing import Any

from entities import Schema
from eql import types
from eql.binder import bound, calls, virtual
from eql.binder.aggregates import time_point, window_of
from eql.binder.context import POISON, Aliases, Ctx, Where
from eql.binder.dispatch import bind_expr, bool_expr
from eql.binder.exprs import bind_param
from eql.binder.resolve import Names
from eql.catalog import EMPTY, Catalog
from eql.diagnostics import EqlError, Span
from eql.syntax import ast

HANDLERS = (calls, virtual)  # imported for their handlers (`eql.binder.dispatch`)

MAX_LIMIT = 10_000_000


def bind(
    stmt: ast.Statement,
    schema: Schema,
    text: str,
    params: Mapping[str, Any],
    reference: dt.datetime,
    catalog: Catalog = EMPTY,
    names: Names | None = None,
) -> bound.BoundQuery:
    """Bind a query; raise EqlError with every problem found. `catalog` lists the tags and
    segments the query may read; `names` is the schema's name index when the caller keeps one
    (`Names(schema)`; built here when not)."""
    if names is None or names.schema is not schema:
        names = Names(schema)
    ctx = Ctx(names, text, params, reference, catalog=catalog)
    if not isinstance(stmt, ast.Find | ast.FindEvents):
        ctx.error(
            "E217",
            "only FIND and FIND EVENTS can run as queries here",
            stmt.span,
            "DEFINE, REFRESH, SHOW and DESCRIBE work on tags and segments",
        )
        raise EqlError(ctx.diagnostics, text)
    out = _bind_query(ctx, stmt)
    if ctx.diagnostics or out is None:
        raise EqlError(ctx.diagnostics, text)
    return out


def _bind_query(ctx: Ctx, q: ast.Find | ast.FindEvents) -> bound.BoundQuery | None:
    if q.as_of is not None:
        t = time_point(ctx, q.as_of)
        if t is not None:
            ctx.text_reference = t
    if isinstance(q, ast.Find):
        name = q.entity
        known = [e.name for e in ctx.schema.entities]
        found = next((e for e in known if e.lower() == name.name.lower()), None)
        what = "entity"
        scope = bound.Scope(bound.ScopeKind.ENTITY, found) if found else None
    else:
        name = q.stream
        known = [s.name for s in ctx.schema.streams]
        found = next((s for s in known if s.lower() == name.name.lower()), None)
        what = "event stream"
        scope = bound.Scope(bound.ScopeKind.EVENT, found) if found else None
    if scope is None:
        close = difflib.get_close_matches(name.name, known, n=1, cutoff=0.5)
        helps = [f"did you mean `{close[0]}`?"] if close else []
        if isinstance(q, ast.Find) and name.name in [s.name for s in ctx.schema.streams]:
            helps = [f"`{name.name}` is an event stream: FIND EVENTS {name.name}"]
        ctx.error(
            "E201", f"unknown {what} `{name.name}`", name.span, *helps, f"known: {', '.join(known)}"
        )
        return None
    row = Where(scope)
    during = None
    if isinstance(q, ast.FindEvents):
        # events after the reference time are invisible, as they are to aggregates
        during = bound.Window(None, ctx.reference)
        if q.during is not None:
            during = window_of(ctx, q.during)
    aliases = {r.alias.name: r for r in q.returns if r.alias is not None}
    ctx.hidden = Aliases("WHERE", scope, aliases, bool(q.group_by))
    where = bool_expr(ctx, q.where, row, "WHERE") if q.where is not None else None
    ctx.hidden = Aliases("GROUP BY", scope, aliases, bool(q.group_by))
    group = tuple(bound.Item(bind_expr(ctx, g, row), _name(ctx, g, None)) for g in q.group_by)
    before = ctx.group_aggregates
    items = _items(ctx, q, scope)
    ctx.hidden = Aliases("ORDER BY", scope, aliases, bool(q.group_by))
    order = _order(ctx, q, scope, items)
    ctx.hidden = None
    grouped = bool(q.group_by) or ctx.group_aggregates > before
    if grouped:
        keys = [g.expr for g in group]
        for it, node in zip(items, q.returns or (), strict=False):
            _check_grouped(ctx, it.expr, keys, node.expr.span)
        for o, onode in zip(order, q.order_by, strict=True):
            _check_grouped(ctx, o.expr, keys + [i.expr for i in items], onode.expr.span)
        if not q.returns:
            ctx.error(
                "E212",
                "a grouped query needs RETURN with the group keys and aggregates",
                q.span,
                "e.g. RETURN home_store.region, count() AS users",
            )
    limit = _limit(ctx, q.limit)
    _unique_names(ctx, items, q)
    return bound.BoundQuery(
        scope,
        where,
        during,
        group,
        tuple(items),
        tuple(order),
        limit,
        ctx.text_reference or ctx.given_reference,
        grouped,
        ctx.reads_clock,
        frozenset(ctx.referenced),
    )


def _name(ctx: Ctx, node: ast.Expr, alias: ast.Ident | None) -> str:
    if alias is not None:
        return alias.name
    if isinstance(node, ast.Path):
        return ".".join(p.name for p in node.parts)
    return " ".join(ctx.text[node.span.start : node.span.end].split())


def _items(ctx: Ctx, q: ast.Find | ast.FindEvents, scope: bound.Scope) -> list[bound.Item]:
    if q.returns:
        where = Where(scope, group_ok=True)
        out = []
        names = {r.alias.name: r for r in q.returns if r.alias is not None}
        for r in q.returns:
            ctx.hidden = Aliases("RETURN", scope, names, bool(q.group_by), own=r)
            out.append(bound.Item(bind_expr(ctx, r.expr, where), _name(ctx, r.expr, r.alias)))
        return out
    if scope.kind is bound.ScopeKind.ENTITY:
        ent = ctx.schema.require_entity(scope.name)
        return [
            bound.Item(bound.Column(bound.ROOT, c.name, types.from_schema(c.type)), c.name)
            for c in ent.columns
        ]
    st = ctx.schema.require_stream(scope.name)
    out = [bound.Item(bound.Column(bound.ROOT, st.time, types.TIMESTAMP), st.time)]
    for ref in st.references:
        key = ctx.schema.require_entity(ref.entity).key
        out.append(
            bound.Item(bound.Column(bound.ROOT, ref.column, types.from_schema(key.type)), ref.name)
        )
    out += [
        bound.Item(bound.Column(bound.ROOT, f.name, types.from_schema(f.type)), f.name)
        for f in st.fields
    ]
    return out


def _order(
    ctx: Ctx, q: ast.Find | ast.FindEvents, scope: bound.Scope, items: list[bound.Item]
) -> list[bound.Order]:
    out: list[bound.Order] = []
    by_name = {i.name: i for i in items}
    for o in q.order_by:
        expr: bound.BExpr | None = None
        if isinstance(o.expr, ast.Path) and len(o.expr.parts) == 1:
            item = by_name.get(o.expr.parts[0].name)
            if item is not None:
                expr = item.expr
        if expr is None:
            expr = bind_expr(ctx, o.expr, Where(scope, group_ok=True))
        desc = o.direction is ast.SortDirection.DESC
        nulls_first = (o.nulls is ast.NullsOrder.FIRST) if o.nulls is not None else desc
        out.append(bound.Order(expr, desc, nulls_first))
    return out


def _limit(ctx: Ctx, node: ast.IntLiteral | ast.Param | None) -> int | None:
    if node is None:
        return None
    if isinstance(node, ast.Param):
        p = bind_param(ctx, node, types.INT)
        value = p.value if isinstance(p, bound.Param) else None
    else:
        value = node.value
    everything = "leave LIMIT out for all rows"
    if value is None:
        if isinstance(node, ast.Param) and ctx.params.get(node.name, 0) is None:
            ctx.error(
                "E211",
                f"parameter ${node.name}: LIMIT needs a number, not null",
                node.span,
                everything,
            )
        return None
    if not isinstance(value, int) or value < 0 or value > MAX_LIMIT:
        ctx.error(
            "E219", f"LIMIT must be a whole number from 0 to {MAX_LIMIT:,}", node.span, everything
        )
        return None
    return value


def _check_grouped(ctx: Ctx, e: bound.BExpr, keys: list[bound.BExpr], span: Span) -> None:
    """In a grouped query every value must be a group key or inside a group aggregate."""
    if e is POISON or e in keys:
        return
    if isinstance(e, bound.Aggregate) and e.source is None:
        return
    if isinstance(e, bound.Literal | bound.Param):
        return
    if isinstance(e, bound.Column | bound.Aggregate):
        ctx.error(
            "E212",
            "this value is neither a GROUP BY key nor aggregated over the group",
            span,
            "add it to GROUP BY, or aggregate it: count(), avg(...), max(...)",
        )
        return
    for c in bound.children(e):
        _check_grouped(ctx, c, keys, span)


def _unique_names(ctx: Ctx, items: list[bound.Item], q: ast.Find | ast.FindEvents) -> None:
    seen: set[str] = set()
    for it, node in zip(items, q.returns or (), strict=False):
        if it.name in seen:
            ctx.error("E215", f"two results are named `{it.name}`", node.span, "name one with AS")
        seen.add(it.name)
