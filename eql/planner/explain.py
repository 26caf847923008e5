"""Text views of the bound IR and the logical plan, for EXPLAIN and the snapshot corpus."""

from __future__ import annotations

import datetime as dt
from typing import Any, assert_never

from eql.binder import bound
from eql.planner import logical


def _value(v: Any) -> str:
    if isinstance(v, str):
        return "'" + v.replace("'", "''") + "'"
    if isinstance(v, dt.datetime):
        return v.isoformat()
    if isinstance(v, dt.date):
        return v.isoformat()
    if v is None:
        return "null"
    return str(v)


def _window(w: bound.Window | None) -> str:
    if w is None:
        return ""
    start = w.start.isoformat() if w.start else "-inf"
    return f" during [{start}, {w.end.isoformat()})"


def _source(s: bound.Source) -> str:
    at = f"{s.path}." if s.path.steps else ""
    if isinstance(s, bound.StreamSource):
        return f"{at}{s.stream} (events by {s.ref})"
    return f"{at}{s.relation} ({s.target} by {s.via})"


def bexpr(e: bound.BExpr) -> str:
    match e:
        case bound.Literal(value=v, type=t):
            return f"{_value(v)}::{t}"
        case bound.Param(name=n, value=v, type=t):
            return f"${n}={_value(v)}::{t}"
        case bound.Column(path=p, column=c, type=t):
            where = f"{p}." if p.steps else ""
            return f"{where}{c}::{t}"
        case bound.Aggregate(func=f, source=s, arg=a, filter=flt, window=w, distinct=d, type=t):
            inner = ("DISTINCT " if d else "") + (bexpr(a) if a is not None else "*")
            src = f" over {_source(s)}" if s is not None else " over group"
            cond = f" where {bexpr(flt)}" if flt is not None else ""
            return f"{f.value}({inner}{src}{cond}{_window(w)})::{t}"
        case bound.Call(func=f, args=args, type=t):
            return f"{f}({', '.join(bexpr(a) for a in args)})::{t}"
        case bound.Unary(op=op, arg=a):
            return f"({op.value} {bexpr(a)})"
        case bound.Binary(op=op, left=left, right=right):
            return f"({bexpr(left)} {op.value} {bexpr(right)})"
        case bound.IsNull(arg=a, negated=n):
            return f"({bexpr(a)} IS {'NOT ' if n else ''}NULL)"
        case bound.InList(arg=a, items=items, negated=n):
            return f"({bexpr(a)} {'NOT ' if n else ''}IN ({', '.join(bexpr(i) for i in items)}))"
        case bound.Between(arg=a, low=lo, high=hi, negated=n):
            neg = "NOT " if n else ""
            return f"({bexpr(a)} {neg}BETWEEN {bexpr(lo)} AND {bexpr(hi)})"
        case bound.Like(arg=a, pattern=p, negated=n):
            return f"({bexpr(a)} {'NOT ' if n else ''}LIKE {bexpr(p)})"
        case bound.Case(whens=whens, otherwise=other):
            body = " ".join(f"WHEN {bexpr(c)} THEN {bexpr(v)}" for c, v in whens)
            tail = f" ELSE {bexpr(other)}" if other is not None else ""
            return f"CASE {body}{tail} END"
        case bound.Cast(arg=a, type=t):
            return f"cast({bexpr(a)} as {t})"
        case _:
            assert_never(e)


def format_bound(q: bound.BoundQuery) -> str:
    lines = [f"find {q.scope.kind.value} {q.scope.name} as of {q.reference_time.isoformat()}"]
    if q.during is not None:
        lines.append(f"  during{_window(q.during)[7:]}")
    if q.where is not None:
        lines.append(f"  where {bexpr(q.where)}")
    for g in q.group_by:
        lines.append(f"  group {g.name} = {bexpr(g.expr)}")
    for i in q.items:
        lines.append(f"  return {i.name} = {bexpr(i.expr)}")
    for o in q.order_by:
        nulls = "nulls first" if o.nulls_first else "nulls last"
        lines.append(f"  order {bexpr(o.expr)} {'desc' if o.descending else 'asc'} {nulls}")
    if q.limit is not None:
        lines.append(f"  limit {q.limit}")
    return "\n".join(lines)


def lexpr(e: logical.LExpr) -> str:
    match e:
        case logical.LCol(id=cid):
            return str(cid)
        case logical.LLit(value=v, type=t):
            return f"{_value(v)}::{t}"
        case logical.LCall(func=f, args=args):
            return f"{f}({', '.join(lexpr(a) for a in args)})"
        case logical.LUnary(op=op, arg=a):
            return f"({op.value} {lexpr(a)})"
        case logical.LBinary(op=op, left=left, right=right):
            return f"({lexpr(left)} {op.value} {lexpr(right)})"
        case logical.LIsNull(arg=a, negated=n):
            return f"({lexpr(a)} IS {'NOT ' if n else ''}NULL)"
        case logical.LInList(arg=a, items=items, negated=n):
            return f"({lexpr(a)} {'NOT ' if n else ''}IN ({', '.join(lexpr(i) for i in items)}))"
        case logical.LLike(arg=a, pattern=p, negated=n):
            return f"({lexpr(a)} {'NOT ' if n else ''}LIKE {lexpr(p)})"
        case logical.LCase(whens=whens, otherwise=other):
            body = " ".join(f"WHEN {lexpr(c)} THEN {lexpr(v)}" for c, v in whens)
            tail = f" ELSE {lexpr(other)}" if other is not None else ""
            return f"CASE {body}{tail} END"
        case logical.LCast(arg=a, type=t):
            return f"cast({lexpr(a)} as {t})"
        case _:
            assert_never(e)


def _agg(a: logical.LAgg) -> str:
    inner = ("DISTINCT " if a.distinct else "") + (lexpr(a.arg) if a.arg is not None else "*")
    flt = f" FILTER {lexpr(a.filter)}" if a.filter is not None else ""
    order = f" ORDER BY {lexpr(a.order_by)}" if a.order_by is not None else ""
    return f"{a.func.value}({inner}{order}){flt}"


def format_plan(plan: logical.Plan, indent: int = 0) -> str:
    pad = "  " * indent
    match plan:
        case logical.Scan(table=t, columns=scanned):
            return f"{pad}Scan {t} [" + ", ".join(f"{n} as {c}" for n, c, _ in scanned) + "]"
        case logical.Filter(input=i, predicate=p):
            return f"{pad}Filter {lexpr(p)}\n" + format_plan(i, indent + 1)
        case logical.Project(input=i, items=items):
            listed = ", ".join(f"{c} := {lexpr(e)}" for e, c in items)
            return f"{pad}Project [{listed}]\n" + format_plan(i, indent + 1)
        case logical.Join(left=left, right=right, left_keys=lk, right_keys=rk, kind=k):
            on = ", ".join(f"{a} = {b}" for a, b in zip(lk, rk, strict=True))
            return (
                f"{pad}Join {k.value} on {on}\n"
                + format_plan(left, indent + 1)
                + "\n"
                + format_plan(right, indent + 1)
            )
        case logical.Aggregate(input=i, group=group, aggs=aggs):
            g = ", ".join(f"{c} := {lexpr(e)}" for e, c in group)
            a = ", ".join(f"{c} := {_agg(x)}" for x, c in aggs)
            return f"{pad}Aggregate group [{g}] aggs [{a}]\n" + format_plan(i, indent + 1)
        case logical.Sort(input=i, keys=keys):
            sort_keys = ", ".join(
                f"{lexpr(e)} {'desc' if d else 'asc'}{' nulls first' if nf else ''}"
                for e, d, nf in keys
            )
            return f"{pad}Sort [{sort_keys}]\n" + format_plan(i, indent + 1)
        case logical.Limit(input=i, count=n):
            return f"{pad}Limit {n}\n" + format_plan(i, indent + 1)
        case logical.Output(input=i, columns=outputs):
            named = ", ".join(f"{cid} as {name!r}" for cid, name, _ in outputs)
            return f"{pad}Output [{named}]\n" + format_plan(i, indent + 1)
        case _:
            assert_never(plan)
