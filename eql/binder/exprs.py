"""Bind expressions: resolve names, check and infer types, lower DID and aggregate forms.

Errors are collected, never raised one by one: a failing sub-expression becomes a `null` literal
of type NULL (which fits anywhere) so that binding goes on and finds the other mistakes too.
"""

from __future__ import annotations

import datetime as dt
import difflib
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from entities import Schema
from eql import functions as FN
from eql import types as T
from eql.binder import aggregates as AG
from eql.binder import bound as B
from eql.binder import values as V
from eql.binder.resolve import Many, Problem, Value, resolve
from eql.catalog import EMPTY, Catalog
from eql.diagnostics import Diagnostic, Span
from eql.syntax import ast as A
from eql.types import Kind, Type

POISON = B.Literal(None, T.NULL)
DATE_PARTS = ("year", "month", "day", "hour", "dow", "week")
_CMP = {
    A.CompareOp.EQ: B.BinOp.EQ,
    A.CompareOp.NE: B.BinOp.NE,
    A.CompareOp.LT: B.BinOp.LT,
    A.CompareOp.LE: B.BinOp.LE,
    A.CompareOp.GT: B.BinOp.GT,
    A.CompareOp.GE: B.BinOp.GE,
}
_ARITH = {
    A.ArithOp.ADD: B.BinOp.ADD,
    A.ArithOp.SUB: B.BinOp.SUB,
    A.ArithOp.MUL: B.BinOp.MUL,
    A.ArithOp.DIV: B.BinOp.DIV,
    A.ArithOp.MOD: B.BinOp.MOD,
}


@dataclass
class Ctx:
    schema: Schema
    text: str
    params: Mapping[str, Any]
    reference: dt.datetime
    diagnostics: list[Diagnostic] = field(default_factory=list)
    group_aggregates: int = 0  # how many group aggregates were bound (decides "grouped")
    catalog: Catalog = EMPTY  # tags and segments (virtual attributes, `in segment`)

    def error(self, code: str, message: str, span: Span | None, *helps: str) -> B.Literal:
        self.diagnostics.append(Diagnostic(code, message, span, helps=tuple(h for h in helps if h)))
        return POISON


@dataclass(frozen=True, slots=True)
class Where:
    """Where an expression is being bound."""

    scope: B.Scope
    alias: str | None = None  # inside an aggregate: the source's name also names the element
    group_ok: bool = False  # group aggregates (count(), avg(x)) are allowed here
    in_group_agg: bool = False


def bool_expr(ctx: Ctx, node: A.Expr, where: Where, what: str) -> B.BExpr:
    e = bind_expr(ctx, node, where)
    if e.type.kind not in (Kind.BOOL, Kind.NULL):
        return ctx.error(
            "E213",
            f"{what} must be a condition (true/false), not {e.type}",
            node.span,
            "compare it: `... = value`, `... > 0`, `DID stream`",
        )
    return e


def bind_expr(ctx: Ctx, node: A.Expr, where: Where, expected: Type | None = None) -> B.BExpr:
    match node:
        case A.IntLiteral(value=v):
            return B.Literal(v, T.INT)
        case A.DecimalLiteral(value=v):
            exp = v.as_tuple().exponent
            scale = -exp if isinstance(exp, int) and exp < 0 else 0
            digits = max(len(v.as_tuple().digits), scale + 1)
            return B.Literal(v, T.decimal(max(digits, 1), scale))
        case A.StringLiteral(value=v):
            return B.Literal(v, T.STRING)
        case A.BoolLiteral(value=v):
            return B.Literal(v, T.BOOL)
        case A.NullLiteral():
            return B.Literal(None, T.NULL)
        case A.DateLiteral(value=v):
            return B.Literal(v, T.DATE)
        case A.TimestampLiteral(value=v):
            return B.Literal(V.to_utc(v), T.TIMESTAMP)
        case A.Param():
            return bind_param(ctx, node, expected)
        case A.Path(parts=parts):
            return _path_value(ctx, node, parts, where)
        case A.Call():
            return _call(ctx, node, where)
        case A.Did(path=path, filter=flt, window=win, span=span):
            agg = AG._source_aggregate(
                ctx, B.AggFunc.COUNT, path, None, flt, win, False, where, span
            )
            if agg is POISON:
                return POISON
            return B.Binary(B.BinOp.GT, agg, B.Literal(0, T.INT), T.BOOL)
        case A.Not(operand=op):
            return B.Unary(B.UnaryOp.NOT, bool_expr(ctx, op, where, "the operand of NOT"), T.BOOL)
        case A.Logical(op=op, operands=ops):
            bop = B.BinOp.AND if op is A.LogicalOp.AND else B.BinOp.OR
            items = [bool_expr(ctx, o, where, f"each side of {op.value}") for o in ops]
            return _balanced(bop, items)
        case A.Compare(op=op, left=left, right=right):
            a, b = _pair(ctx, left, right, where)
            if not _check_comparable(ctx, a, b, node.span, op.value, left, right):
                return POISON
            return B.Binary(_CMP[op], a, b, T.BOOL)
        case A.Arith(op=op, left=left, right=right):
            a, b = _pair(ctx, left, right, where)
            return _arith(ctx, _ARITH[op], a, b, node.span)
        case A.Negate(operand=op):
            a = bind_expr(ctx, op, where)
            if not (a.type.numeric or a.type.kind is Kind.NULL):
                return ctx.error("E207", f"cannot negate a {a.type}", node.span)
            if a.type.kind is Kind.NULL:
                return B.Literal(None, T.NULL)
            return B.Unary(B.UnaryOp.NEG, a, T.plain(a.type))
        case A.IsNull(operand=op, negated=neg):
            return B.IsNull(bind_expr(ctx, op, where), neg, T.BOOL)
        case A.InList(operand=op, items=items, negated=neg):
            a = bind_expr(ctx, op, where)
            bound = []
            for it in items:
                b = bind_expr(ctx, it, where, expected=a.type)
                b = _coerce_literal(ctx, b, a.type, it)
                if _check_comparable(ctx, a, b, it.span, "IN", op, it):
                    bound.append(b)
            return B.InList(a, tuple(bound), neg, T.BOOL)
        case A.InParam(operand=op, param=p, negated=neg):
            a = bind_expr(ctx, op, where)
            return _in_param(ctx, a, p, neg)
        case A.Between(operand=op, low=lo, high=hi, negated=neg):
            a = bind_expr(ctx, op, where)
            b_lo = _coerce_literal(ctx, bind_expr(ctx, lo, where, a.type), a.type, lo)
            b_hi = _coerce_literal(ctx, bind_expr(ctx, hi, where, a.type), a.type, hi)
            ok = _check_comparable(ctx, a, b_lo, lo.span, "BETWEEN", op, lo)
            ok = _check_comparable(ctx, a, b_hi, hi.span, "BETWEEN", op, hi) and ok
            return B.Between(a, b_lo, b_hi, neg, T.BOOL) if ok else POISON
        case A.Like(operand=op, pattern=pat, negated=neg):
            a = bind_expr(ctx, op, where)
            if a.type.kind not in (Kind.STRING, Kind.NULL):
                return ctx.error("E207", f"LIKE needs text on the left, not {a.type}", op.span)
            if not isinstance(pat, A.StringLiteral | A.Param):
                return ctx.error(
                    "E218",
                    "the pattern of LIKE must be a string or a parameter",
                    pat.span,
                    "e.g. name LIKE 'Li%'",
                )
            pattern = bind_expr(ctx, pat, where, T.STRING)
            if isinstance(pattern, B.Literal | B.Param) and pattern.value is None:
                return B.Literal(None, T.BOOL)  # LIKE null is null
            return B.Like(a, pattern, neg, T.BOOL)
        case A.Case():
            return _case(ctx, node, where)
        case A.InSegment():
            from eql.binder.virtual import in_segment

            return in_segment(ctx, node, where)
        case A.AsOfValue():
            from eql.binder.virtual import as_of_value

            return as_of_value(ctx, node, where)
    return ctx.error("E217", f"{type(node).__name__} is not supported here", node.span)


def _pair(ctx: Ctx, left: A.Expr, right: A.Expr, where: Where) -> tuple[B.BExpr, B.BExpr]:
    """Bind two operands; a parameter or string literal takes its type from the other side."""
    if isinstance(left, A.Param) and not isinstance(right, A.Param):
        b = bind_expr(ctx, right, where)
        a = bind_expr(ctx, left, where, expected=b.type)
    else:
        a = bind_expr(ctx, left, where)
        b = bind_expr(ctx, right, where, expected=a.type)
    a = _coerce_literal(ctx, a, b.type, left)
    b = _coerce_literal(ctx, b, a.type, right)
    return a, b


def _coerce_literal(ctx: Ctx, e: B.BExpr, other: Type, node: A.Expr) -> B.BExpr:
    """'2026-01-01' next to a date or timestamp is that date; an enum value is checked."""
    if (
        isinstance(e, B.Param)
        and isinstance(e.value, str)
        and other.enum_values
        and e.value not in other.enum_values
    ):
        allowed = ", ".join(other.enum_values)
        return ctx.error(
            "E223",
            f"parameter ${e.name}: '{e.value}' is not one of the values: {allowed}",
            node.span,
        )
    if not (isinstance(e, B.Literal) and isinstance(e.value, str) and e.type.kind is Kind.STRING):
        return e
    if other.temporal:
        try:
            t = V.parse_time(e.value)
        except ValueError as exc:
            return ctx.error("E214", str(exc), node.span)
        if other.kind is Kind.DATE:
            if t.time() != dt.time(0):
                return ctx.error(
                    "E214", f"{e.value!r} has a time of day; a date is expected", node.span
                )
            return B.Literal(t.date(), T.DATE)
        return B.Literal(t, T.TIMESTAMP)
    if other.enum_values and e.value not in other.enum_values:
        close = difflib.get_close_matches(e.value, list(other.enum_values), n=1, cutoff=0.5)
        lowered = [v for v in other.enum_values if v.lower() == e.value.lower()]
        hint = f"did you mean '{(lowered or close)[0]}'?" if (lowered or close) else ""
        return ctx.error(
            "E223",
            f"'{e.value}' is not one of the values: " + ", ".join(other.enum_values),
            node.span,
            hint,
        )
    return e


def _check_comparable(
    ctx: Ctx, a: B.BExpr, b: B.BExpr, span: Span, op: str, left: A.Expr, right: A.Expr
) -> bool:
    if a is POISON or b is POISON:
        return False
    if T.comparable(a.type, b.type):
        return True
    ctx.error(
        "E207",
        f"cannot compare {a.type} with {b.type} using {op}",
        span,
        f"`{_text(ctx, left)}` is {a.type}; `{_text(ctx, right)}` is {b.type}",
    )
    return False


def _text(ctx: Ctx, node: A.Expr) -> str:
    s = node.span
    t = ctx.text[s.start : s.end]
    return t if len(t) <= 40 else t[:37] + "..."


def _arith(ctx: Ctx, op: B.BinOp, a: B.BExpr, b: B.BExpr, span: Span) -> B.BExpr:
    if a is POISON or b is POISON:
        return POISON
    if not (
        (a.type.numeric or a.type.kind is Kind.NULL)
        and (b.type.numeric or b.type.kind is Kind.NULL)
    ):
        return ctx.error("E207", f"`{op.value}` needs numbers, not {a.type} and {b.type}", span)
    if op is B.BinOp.DIV:
        return B.Binary(op, a, b, T.FLOAT)
    t = T.widen(a.type, b.type) or T.FLOAT
    if op is B.BinOp.MUL and a.type.kind is Kind.DECIMAL and b.type.kind is Kind.DECIMAL:
        t = T.decimal(a.type.precision + b.type.precision, a.type.scale + b.type.scale)
    return B.Binary(op, a, b, T.plain(t))


def bind_param(ctx: Ctx, node: A.Param, expected: Type | None) -> B.BExpr:
    if node.name not in ctx.params:
        return ctx.error(
            "E210",
            f"missing parameter ${node.name}",
            node.span,
            f'supply it: --param {node.name}=VALUE (CLI) or "params" (API)',
        )
    raw = ctx.params[node.name]
    t = T.plain(expected) if expected is not None and expected.kind is not Kind.NULL else None
    if t is None:
        value = raw
        if isinstance(raw, str):
            value = raw
        t = V.infer_type(value)
    try:
        value = V.convert(raw, t)
    except ValueError as exc:
        return ctx.error(
            "E211", f"parameter ${node.name}: {exc}", node.span, f"${node.name} is used as {t} here"
        )
    return B.Param(node.name, value, t)


def _in_param(ctx: Ctx, a: B.BExpr, p: A.Param, neg: bool) -> B.BExpr:
    if p.name not in ctx.params:
        return ctx.error("E210", f"missing parameter ${p.name}", p.span, "supply a list of values")
    raw = ctx.params[p.name]
    values = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(values, list | tuple):
        return ctx.error("E211", f"parameter ${p.name} must be a list of values", p.span)
    t = T.plain(a.type) if a.type.kind is not Kind.NULL else T.STRING
    items: list[B.BExpr] = []
    for v in values:
        try:
            items.append(B.Param(p.name, V.convert(v, t), t))
        except ValueError as exc:
            return ctx.error("E211", f"parameter ${p.name}: {exc}", p.span)
    return B.InList(a, tuple(items), neg, T.BOOL)


def _path_value(ctx: Ctx, node: A.Path, parts: tuple[A.Ident, ...], where: Where) -> B.BExpr:
    r = resolve(ctx.schema, where.scope, parts, where.alias, ctx.catalog)
    if isinstance(r, Problem):
        return ctx.error(r.code, r.message, r.ident.span, *r.helps)
    if isinstance(r, Value):
        return r.column
    assert isinstance(r, Many)
    return ctx.error(
        "E204",
        f"`{_text(ctx, node)}` has many values per {where.scope.name} row "
        f"(`{r.name.name}` is a many-valued {_kind(r.source)})",
        node.span,
        f"aggregate it: count({_text(ctx, node)}), sum(...), last(...); or test it: "
        f"DID {r.name.name}",
    )


def _kind(s: B.Source) -> str:
    return "event stream" if isinstance(s, B.StreamSource) else "relation"


# ---- calls and aggregates ----------------------------------------------------------------------
def _call(ctx: Ctx, node: A.Call, where: Where) -> B.BExpr:
    name = node.name.name.lower()
    if name in FN.AGGREGATES:
        return AG._aggregate(ctx, node, B.AggFunc(name), where)
    fn = FN.lookup(name)
    if fn is None:
        options = list(FN.REGISTRY) + list(FN.AGGREGATES)
        close = difflib.get_close_matches(name, options, n=1)
        return ctx.error(
            "E205",
            f"unknown function `{node.name.name}`",
            node.name.span,
            f"did you mean `{close[0]}`?" if close else "",
            "see docs/eql.md for the functions",
        )
    if node.distinct or node.filter is not None or node.window is not None or node.star:
        return ctx.error(
            "E206",
            f"`{fn.name}` is not an aggregate: DISTINCT, WHERE and DURING belong to aggregates",
            node.span,
        )
    n = len(node.args)
    if n < fn.min_args or (fn.max_args is not None and n > fn.max_args):
        return ctx.error("E206", f"wrong number of arguments for {fn.signature}", node.span)
    args: list[B.BExpr] = []
    for i, a in enumerate(node.args):
        hint = fn.hint(i)
        bound = bind_expr(ctx, a, where, expected=hint)
        if hint is not None and hint.temporal:
            bound = _coerce_literal(ctx, bound, hint, a)
        args.append(bound)
    if any(a is POISON for a in args):
        return POISON
    if fn.name == "date_part":
        part = args[0]
        if not (isinstance(part, B.Literal | B.Param) and part.value in DATE_PARTS):
            return ctx.error(
                "E206",
                "date_part's first argument must be one of: "
                + ", ".join(f"'{p}'" for p in DATE_PARTS),
                node.args[0].span,
            )
    if fn.needs_reference_time:
        args.append(B.Literal(ctx.reference, T.TIMESTAMP))
    try:
        t = fn.result(tuple(a.type for a in args))
    except FN.SignatureError:
        got = ", ".join(str(a.type) for a in args[: len(node.args)])
        return ctx.error("E206", f"{fn.signature} cannot take ({got})", node.span)
    untyped = [a for a in args if a.type.kind is Kind.NULL]
    if untyped:  # a bare null (or null parameter) has no type to run the function on
        if fn.null_propagating or len(untyped) == len(args):
            return B.Literal(None, t if t.kind is not Kind.NULL else T.NULL)
        args = [a for a in args if a.type.kind is not Kind.NULL]
    return B.Call(fn.name, tuple(args), t)


def _case(ctx: Ctx, node: A.Case, where: Where) -> B.BExpr:
    operand = bind_expr(ctx, node.operand, where) if node.operand is not None else None
    whens: list[tuple[B.BExpr, B.BExpr]] = []
    result: Type = T.NULL
    for w in node.whens:
        if operand is not None:
            v = _coerce_literal(
                ctx, bind_expr(ctx, w.condition, where, operand.type), operand.type, w.condition
            )
            if not _check_comparable(ctx, operand, v, w.condition.span, "CASE", node, w.condition):
                continue
            cond: B.BExpr = B.Binary(B.BinOp.EQ, operand, v, T.BOOL)
        else:
            cond = bool_expr(ctx, w.condition, where, "a WHEN")
        val = bind_expr(ctx, w.result, where)
        widened = T.widen(result, val.type)
        if widened is None:
            return ctx.error("E207", f"CASE branches mix {result} and {val.type}", w.result.span)
        result = widened
        whens.append((cond, val))
    other = None
    if node.else_ is not None:
        other = bind_expr(ctx, node.else_, where)
        widened = T.widen(result, other.type)
        if widened is None:
            return ctx.error(
                "E207", f"CASE branches mix {result} and {other.type}", node.else_.span
            )
        result = widened
    if not whens:
        return POISON
    return B.Case(tuple(whens), other, result)


def _balanced(op: B.BinOp, items: list[B.BExpr]) -> B.BExpr:
    """A long AND/OR chain as a balanced tree: depth log2(n), so later stages never recurse
    deeply however many conditions a query has."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return B.Binary(op, _balanced(op, items[:mid]), _balanced(op, items[mid:]), T.BOOL)
