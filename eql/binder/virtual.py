"""Bind what reads materialised audiences: `in segment name` and `(tag AS OF t)`.

Both become `Virtual` columns of a version table (see `eql.catalog`), never the definition's own
predicate: a segment is read from its bitmap, a tag from its stored values.

May import: `eql.types`, `eql.catalog`, `eql.syntax`, `eql.binder.{bound, resolve, context,
dispatch, aggregates}`.
"""

from __future__ import annotations

import difflib

from eql import types
from eql.binder import bound
from eql.binder.aggregates import time_point
from eql.binder.context import Ctx, Where
from eql.binder.dispatch import handles
from eql.binder.resolve import Problem, Value
from eql.catalog import SegmentRef, Virtual
from eql.syntax import ast
from eql.types import Type


@handles(ast.InSegment)
def _in_segment(node: ast.InSegment, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    name = node.segment
    if where.scope.kind is not bound.ScopeKind.ENTITY:
        return ctx.error(
            "E226",
            f"`in segment {name.name}` needs an entity row; here the rows are "
            f"`{where.scope.name}` events",
            node.span,
            "test the entity the event references: FIND users WHERE in segment ...",
        )
    seg = ctx.catalog.segment(name.name)
    if seg is None:
        known = sorted(s.name for s in ctx.catalog.segments.values())
        close = difflib.get_close_matches(name.name, known, n=1, cutoff=0.6)
        return ctx.error(
            "E225",
            f"unknown segment `{name.name}`",
            name.span,
            f"did you mean `{close[0]}`?" if close else "",
            f"known segments: {', '.join(known)}"
            if known
            else f"define it: DEFINE SEGMENT {name.name} ON {where.scope.name} WHERE ...",
        )
    if seg.entity != where.scope.name:
        return ctx.error(
            "E226",
            f"segment `{seg.name}` holds {seg.entity}, not {where.scope.name}",
            name.span,
            f"use it in FIND {seg.entity}, or follow a relation to a {seg.entity} row",
        )
    if seg.version is None:
        return ctx.error(
            "E227",
            f"segment `{seg.name}` has not been refreshed yet, so it has no members",
            name.span,
            f"run REFRESH SEGMENT {seg.name}",
        )
    ref = SegmentRef(seg.name, seg.generation, seg.version)
    member = bound.Column(bound.ROOT, Virtual(ref, "member", types.BOOL), types.BOOL)
    return bound.Call("coalesce", (member, bound.Literal(False, types.BOOL)), types.BOOL)


@handles(ast.AsOfValue)
def _as_of_value(node: ast.AsOfValue, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    t = time_point(ctx, node.time)
    if t is None:
        return ctx.error("E214", "AS OF needs a time", node.time.span)
    r = ctx.resolve(where, node.path.parts, as_of=t)
    if isinstance(r, Problem):
        return ctx.error(r.code, r.message, r.ident.span, *r.helps)
    if isinstance(r, Value) and isinstance(r.column.column, Virtual):
        return r.column
    last = node.path.parts[-1].name
    return ctx.error(
        "E228",
        f"`{last}` is not a tag: only tags keep their values AS OF an earlier refresh",
        node.path.span,
        "attributes hold their current value; read them without AS OF",
    )
