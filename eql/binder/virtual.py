"""Bind what reads materialised audiences: `in segment name` and `(tag AS OF t)`.

Both become `Virtual` columns of a version table (see `eql.catalog`), never the definition's own
predicate: a segment is read from its bitmap, a tag from its stored values.
"""

from __future__ import annotations

import difflib

from eql import types as T
from eql.binder import bound as B
from eql.binder.aggregates import time_point
from eql.binder.exprs import Ctx, Where
from eql.binder.resolve import Problem, Value, resolve
from eql.catalog import SegmentRef, Virtual
from eql.syntax import ast as A


def in_segment(ctx: Ctx, node: A.InSegment, where: Where) -> B.BExpr:
    name = node.segment
    if where.scope.kind is not B.ScopeKind.ENTITY:
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
    member = B.Column(B.ROOT, Virtual(ref, "member", T.BOOL), T.BOOL)
    return B.Call("coalesce", (member, B.Literal(False, T.BOOL)), T.BOOL)


def as_of_value(ctx: Ctx, node: A.AsOfValue, where: Where) -> B.BExpr:
    t = time_point(ctx, node.time)
    if t is None:
        return ctx.error("E214", "AS OF needs a time", node.time.span)
    r = resolve(ctx.schema, where.scope, node.path.parts, where.alias, ctx.catalog, as_of=t)
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
