"""Bind scalar expressions: literals, parameters, paths, logic, comparisons, arithmetic, IN,
BETWEEN, LIKE and CASE; resolve names, check and infer types. Each handler is registered with
`eql.binder.dispatch` for its syntax node type; calls are in `calls`, aggregates and DID in
`aggregates`, `in segment` and `AS OF` values in `virtual`.

May import: `eql.types`, `eql.syntax`, `eql.diagnostics`, `eql.binder.{bound, values, resolve,
context, dispatch}`.
"""

from __future__ import annotations

import datetime as dt
import difflib

from eql import types
from eql.binder import bound, values
from eql.binder.context import POISON, Ctx, Where
from eql.binder.dispatch import bind_expr, bool_expr, handles
from eql.binder.resolve import Many, Problem, Value
from eql.diagnostics import Span
from eql.syntax import ast
from eql.types import Kind, Type

COMPARISONS = {
    ast.CompareOp.EQ: bound.BinOp.EQ,
    ast.CompareOp.NE: bound.BinOp.NE,
    ast.CompareOp.LT: bound.BinOp.LT,
    ast.CompareOp.LE: bound.BinOp.LE,
    ast.CompareOp.GT: bound.BinOp.GT,
    ast.CompareOp.GE: bound.BinOp.GE,
}
ARITHMETIC = {
    ast.ArithOp.ADD: bound.BinOp.ADD,
    ast.ArithOp.SUB: bound.BinOp.SUB,
    ast.ArithOp.MUL: bound.BinOp.MUL,
    ast.ArithOp.DIV: bound.BinOp.DIV,
    ast.ArithOp.MOD: bound.BinOp.MOD,
}


# ---- literals and parameters ----------------------------------------------------------------
@handles(ast.IntLiteral)
def _int(node: ast.IntLiteral, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bound.Literal(node.value, types.INT)


@handles(ast.DecimalLiteral)
def _decimal(
    node: ast.DecimalLiteral, ctx: Ctx, where: Where, expected: Type | None
) -> bound.BExpr:
    v = node.value
    exp = v.as_tuple().exponent
    scale = -exp if isinstance(exp, int) and exp < 0 else 0
    digits = max(len(v.as_tuple().digits), scale + 1)
    return bound.Literal(v, types.decimal(max(digits, 1), scale))


@handles(ast.StringLiteral)
def _string(node: ast.StringLiteral, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bound.Literal(node.value, types.STRING)


@handles(ast.BoolLiteral)
def _bool(node: ast.BoolLiteral, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bound.Literal(node.value, types.BOOL)


@handles(ast.NullLiteral)
def _null(node: ast.NullLiteral, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bound.Literal(None, types.NULL)


@handles(ast.DateLiteral)
def _date(node: ast.DateLiteral, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bound.Literal(node.value, types.DATE)


@handles(ast.TimestampLiteral)
def _timestamp(
    node: ast.TimestampLiteral, ctx: Ctx, where: Where, expected: Type | None
) -> bound.BExpr:
    return bound.Literal(values.to_utc(node.value), types.TIMESTAMP)


@handles(ast.Param)
def _param(node: ast.Param, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bind_param(ctx, node, expected)


# ---- names ----------------------------------------------------------------------------------
@handles(ast.Path)
def _path(node: ast.Path, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    r = ctx.resolve(where, node.parts)
    if isinstance(r, Problem):
        if r.code == "E202" and len(node.parts) == 1:
            alias = _alias_used(ctx, node.parts[0], where)
            if alias is not None:
                return alias
        return ctx.error(r.code, r.message, r.ident.span, *r.helps)
    if isinstance(r, Value):
        return r.column
    assert isinstance(r, Many)
    text = ctx.source_text(node)
    return ctx.error(
        "E204",
        f"`{text}` has many values per {where.scope.name} row "
        f"(`{r.name.name}` is a many-valued {_kind(r.source)})",
        node.span,
        f"aggregate it: count({text}), sum(...), last(...); or test it: DID {r.name.name}",
    )


def _alias_used(ctx: Ctx, ident: ast.Ident, where: Where) -> bound.BExpr | None:
    """E202 for a name that is no name of the row but one RETURN gives, in a clause that cannot
    see RETURN's names (`WHERE spend > 10 ... AS spend`); None when it is not that."""
    hidden = ctx.hidden
    if hidden is None or where.alias is not None or where.scope != hidden.scope:
        return None
    item = hidden.find(ident.name)
    if item is None:
        return None
    name, expr = ident.name, ctx.source_text(item.expr)
    repeat = f"write the expression itself instead of `{name}`: `{expr}`"
    if hidden.clause == "RETURN":
        message = f"`{name}` is the name of another RETURN item, which RETURN items cannot see"
    elif hidden.clause == "ORDER BY":
        spelled = item.alias.name if item.alias is not None else name
        message = (
            f"`{name}` is a RETURN alias: ORDER BY sorts by it as a whole key, written as RETURN"
            f" writes it (`ORDER BY {spelled}`), but cannot use it in an expression"
        )
    else:
        message = f"`{name}` is a RETURN alias, which {hidden.clause} cannot see"
    helps = [repeat]
    if hidden.clause == "WHERE" and hidden.grouped:
        helps.append(
            "WHERE filters entities before they are grouped; EQL has no HAVING, so the groups"
            " themselves cannot be filtered"
        )
    return ctx.error("E202", message, ident.span, *helps)


def _kind(s: bound.Source) -> str:
    return "event stream" if isinstance(s, bound.StreamSource) else "relation"


# ---- logic, comparison, arithmetic ----------------------------------------------------------
@handles(ast.Not)
def _not(node: ast.Not, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    operand = bool_expr(ctx, node.operand, where, "the operand of NOT")
    return bound.Unary(bound.UnaryOp.NOT, operand, types.BOOL)


@handles(ast.Logical)
def _logical(node: ast.Logical, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    op = bound.BinOp.AND if node.op is ast.LogicalOp.AND else bound.BinOp.OR
    items = [bool_expr(ctx, o, where, f"each side of {node.op.value}") for o in node.operands]
    return _balanced(op, items)


@handles(ast.Compare)
def _compare(node: ast.Compare, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    a, b = _pair(ctx, node.left, node.right, where)
    if not check_comparable(ctx, a, b, node.span, node.op.value, node.left, node.right):
        return POISON
    return bound.Binary(COMPARISONS[node.op], a, b, types.BOOL)


@handles(ast.Arith)
def _arith_node(node: ast.Arith, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    a, b = _pair(ctx, node.left, node.right, where)
    return _arith(ctx, ARITHMETIC[node.op], a, b, node.span)


@handles(ast.Negate)
def _negate(node: ast.Negate, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    a = bind_expr(ctx, node.operand, where)
    if not (a.type.numeric or a.type.kind is Kind.NULL):
        return ctx.error("E207", f"cannot negate a {a.type}", node.span)
    if a.type.kind is Kind.NULL:
        return bound.Literal(None, types.NULL)
    return _fits(ctx, bound.Unary(bound.UnaryOp.NEG, a, types.plain(a.type)), node.span)


@handles(ast.IsNull)
def _is_null(node: ast.IsNull, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return bound.IsNull(bind_expr(ctx, node.operand, where), node.negated, types.BOOL)


@handles(ast.InList)
def _in_list(node: ast.InList, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    a = bind_expr(ctx, node.operand, where)
    items = []
    for it in node.items:
        b = coerce_literal(ctx, bind_expr(ctx, it, where, expected=a.type), a.type, it)
        if check_comparable(ctx, a, b, it.span, "IN", node.operand, it):
            items.append(b)
    return bound.InList(a, tuple(items), node.negated, types.BOOL)


@handles(ast.InParam)
def _in_param_node(node: ast.InParam, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    return _in_param(ctx, bind_expr(ctx, node.operand, where), node.param, node.negated)


@handles(ast.Between)
def _between(node: ast.Between, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    a = bind_expr(ctx, node.operand, where)
    lo, hi = node.low, node.high
    low = coerce_literal(ctx, bind_expr(ctx, lo, where, a.type), a.type, lo)
    high = coerce_literal(ctx, bind_expr(ctx, hi, where, a.type), a.type, hi)
    ok = check_comparable(ctx, a, low, lo.span, "BETWEEN", node.operand, lo)
    ok = check_comparable(ctx, a, high, hi.span, "BETWEEN", node.operand, hi) and ok
    return bound.Between(a, low, high, node.negated, types.BOOL) if ok else POISON


@handles(ast.Like)
def _like(node: ast.Like, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    a = bind_expr(ctx, node.operand, where)
    if a.type.kind not in (Kind.STRING, Kind.NULL):
        return ctx.error("E207", f"LIKE needs text on the left, not {a.type}", node.operand.span)
    pat = node.pattern
    if not isinstance(pat, ast.StringLiteral | ast.Param):
        return ctx.error(
            "E218",
            "the pattern of LIKE must be a string or a parameter",
            pat.span,
            "e.g. name LIKE 'Li%'",
        )
    pattern = bind_expr(ctx, pat, where, types.STRING)
    if isinstance(pattern, bound.Literal | bound.Param) and pattern.value is None:
        return bound.Literal(None, types.BOOL)  # LIKE null is null
    return bound.Like(a, pattern, node.negated, types.BOOL)


def _pair(
    ctx: Ctx, left: ast.Expr, right: ast.Expr, where: Where
) -> tuple[bound.BExpr, bound.BExpr]:
    """Bind two operands; a parameter or string literal takes its type from the other side."""
    if isinstance(left, ast.Param) and not isinstance(right, ast.Param):
        b = bind_expr(ctx, right, where)
        a = bind_expr(ctx, left, where, expected=b.type)
    else:
        a = bind_expr(ctx, left, where)
        b = bind_expr(ctx, right, where, expected=a.type)
    a = coerce_literal(ctx, a, b.type, left)
    b = coerce_literal(ctx, b, a.type, right)
    return a, b


def coerce_literal(ctx: Ctx, e: bound.BExpr, other: Type, node: ast.Expr) -> bound.BExpr:
    """'2026-01-01' next to a date or timestamp is that date; an enum value is checked."""
    if (
        isinstance(e, bound.Param)
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
    if not (
        isinstance(e, bound.Literal) and isinstance(e.value, str) and e.type.kind is Kind.STRING
    ):
        return e
    if other.temporal:
        try:
            t = values.parse_time(e.value)
        except ValueError as exc:
            return ctx.error("E214", str(exc), node.span)
        if other.kind is Kind.DATE:
            if t.time() != dt.time(0):
                return ctx.error(
                    "E214", f"{e.value!r} has a time of day; a date is expected", node.span
                )
            return bound.Literal(t.date(), types.DATE)
        return bound.Literal(t, types.TIMESTAMP)
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


def check_comparable(
    ctx: Ctx, a: bound.BExpr, b: bound.BExpr, span: Span, op: str, left: ast.Expr, right: ast.Expr
) -> bool:
    if a is POISON or b is POISON:
        return False
    if types.comparable(a.type, b.type):
        return True
    ctx.error(
        "E207",
        f"cannot compare {a.type} with {b.type} using {op}",
        span,
        f"`{ctx.source_text(left)}` is {a.type}; `{ctx.source_text(right)}` is {b.type}",
    )
    return False


def _arith(ctx: Ctx, op: bound.BinOp, a: bound.BExpr, b: bound.BExpr, span: Span) -> bound.BExpr:
    if a is POISON or b is POISON:
        return POISON
    if not (
        (a.type.numeric or a.type.kind is Kind.NULL)
        and (b.type.numeric or b.type.kind is Kind.NULL)
    ):
        return ctx.error("E207", f"`{op.value}` needs numbers, not {a.type} and {b.type}", span)
    if op is bound.BinOp.DIV:
        return bound.Binary(op, a, b, types.FLOAT)
    t = types.widen(a.type, b.type) or types.FLOAT
    if op is bound.BinOp.MUL and a.type.kind is Kind.DECIMAL and b.type.kind is Kind.DECIMAL:
        t = types.decimal(a.type.precision + b.type.precision, a.type.scale + b.type.scale)
    out = bound.Binary(op, a, b, types.plain(t))
    return _fits(ctx, out, span)


_INT64 = range(-(2**63), 2**63)


def _constant_int(e: bound.BExpr) -> int | None:
    """The exact value of an integer expression of literals and parameters (`+ - *` and
    negation), None when it reads anything else."""
    match e:
        case bound.Literal(value=int() as v, type=t) | bound.Param(value=int() as v, type=t):
            return v if t.kind is Kind.INT and not isinstance(v, bool) else None
        case bound.Unary(op=bound.UnaryOp.NEG, arg=arg, type=t) if t.kind is Kind.INT:
            inner = _constant_int(arg)
            return None if inner is None else -inner
        case bound.Binary(op=op, left=left, right=right, type=t) if t.kind is Kind.INT:
            a, b = _constant_int(left), _constant_int(right)
            if a is None or b is None:
                return None
            if op is bound.BinOp.ADD:
                return a + b
            if op is bound.BinOp.SUB:
                return a - b
            if op is bound.BinOp.MUL:
                return a * b
    return None


def _fits(ctx: Ctx, e: bound.BExpr, span: Span) -> bound.BExpr:
    """E303 for integer arithmetic of constants whose result leaves the 64-bit integers, found
    here with its position rather than while running (where it is E303 too, without one)."""
    v = _constant_int(e)
    if v is None or v in _INT64:
        return e
    text = ctx.text[span.start : span.end]
    shown = text if len(text) <= 60 else text[:57] + "..."
    return ctx.error(
        "E303",
        f"integer overflow: `{shown}` is {v}, outside the 64-bit integers",
        span,
        f"integers run from {_INT64.start} to {_INT64.stop - 1}; a decimal holds up to 38 digits"
        " (write one side as a decimal, e.g. `1.0`)",
    )


def bind_param(ctx: Ctx, node: ast.Param, expected: Type | None) -> bound.BExpr:
    ctx.referenced.add(node.name)
    if node.name not in ctx.params:
        return ctx.error(
            "E210",
            f"missing parameter ${node.name}",
            node.span,
            f'supply it: --param {node.name}=VALUE (CLI) or "params" (API)',
        )
    raw = ctx.params[node.name]
    t = types.plain(expected) if expected is not None and expected.kind is not Kind.NULL else None
    if t is None:
        value = raw
        if isinstance(raw, str):
            value = raw
        t = values.infer_type(value)
    try:
        value = values.convert_param(raw, t)
    except ValueError as exc:
        return ctx.error(
            "E211", f"parameter ${node.name}: {exc}", node.span, f"${node.name} is used as {t} here"
        )
    return bound.Param(node.name, value, t)


def _in_param(ctx: Ctx, a: bound.BExpr, p: ast.Param, neg: bool) -> bound.BExpr:
    ctx.referenced.add(p.name)
    if p.name not in ctx.params:
        return ctx.error("E210", f"missing parameter ${p.name}", p.span, "supply a list of values")
    raw = ctx.params[p.name]
    given = raw.split(",") if isinstance(raw, str) else raw
    if not isinstance(given, list | tuple):
        return ctx.error(
            "E211",
            f"parameter ${p.name} must be a list of values",
            p.span,
            'a JSON list (["a", "b"]) or, on the command line, values separated by commas',
        )
    t = types.plain(a.type) if a.type.kind is not Kind.NULL else types.STRING
    items: list[bound.BExpr] = []
    for v in given:
        try:
            items.append(bound.Param(p.name, values.convert_param(v, t), t))
        except ValueError as exc:
            return ctx.error(
                "E211", f"parameter ${p.name}: {exc}", p.span, f"each value is used as {t} here"
            )
    return bound.InList(a, tuple(items), neg, types.BOOL)


@handles(ast.Case)
def _case(node: ast.Case, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    operand = bind_expr(ctx, node.operand, where) if node.operand is not None else None
    whens: list[tuple[bound.BExpr, bound.BExpr]] = []
    result: Type = types.NULL
    for w in node.whens:
        if operand is not None:
            v = coerce_literal(
                ctx, bind_expr(ctx, w.condition, where, operand.type), operand.type, w.condition
            )
            if not check_comparable(ctx, operand, v, w.condition.span, "CASE", node, w.condition):
                continue
            cond: bound.BExpr = bound.Binary(bound.BinOp.EQ, operand, v, types.BOOL)
        else:
            cond = bool_expr(ctx, w.condition, where, "a WHEN")
        val = bind_expr(ctx, w.result, where)
        widened = types.widen(result, val.type)
        if widened is None:
            return ctx.error("E207", f"CASE branches mix {result} and {val.type}", w.result.span)
        result = widened
        whens.append((cond, val))
    other = None
    if node.else_ is not None:
        other = bind_expr(ctx, node.else_, where)
        widened = types.widen(result, other.type)
        if widened is None:
            return ctx.error(
                "E207", f"CASE branches mix {result} and {other.type}", node.else_.span
            )
        result = widened
    if not whens:
        return POISON
    return bound.Case(tuple(whens), other, result)


def _balanced(op: bound.BinOp, items: list[bound.BExpr]) -> bound.BExpr:
    """A long AND/OR chain as a balanced tree: depth log2(n), so later stages never recurse
    deeply however many conditions a query has."""
    if len(items) == 1:
        return items[0]
    mid = len(items) // 2
    return bound.Binary(op, _balanced(op, items[:mid]), _balanced(op, items[mid:]), types.BOOL)
