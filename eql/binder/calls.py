"""Bind calls: a scalar function of `eql.functions` (argument count and types checked, the
reference time passed to the functions that need it), or an aggregate (`aggregates`).

May import: `eql.types`, `eql.functions`, `eql.syntax`, `eql.binder.{bound, context, dispatch,
exprs, aggregates}`.
"""

from __future__ import annotations

import difflib

from eql import functions, types
from eql.binder import aggregates, bound
from eql.binder.context import POISON, Ctx, Where
from eql.binder.dispatch import bind_expr, handles
from eql.binder.exprs import coerce_literal
from eql.syntax import ast
from eql.types import Kind, Type

DATE_PARTS = ("year", "month", "day", "hour", "dow", "week")


@handles(ast.Call)
def _call(node: ast.Call, ctx: Ctx, where: Where, expected: Type | None) -> bound.BExpr:
    name = node.name.name.lower()
    if name in functions.AGGREGATES:
        return aggregates.aggregate(ctx, node, bound.AggFunc(name), where)
    fn = functions.lookup(name)
    if fn is None:
        elsewhere = functions.SQL_NAMES.get(name)
        options = list(functions.REGISTRY) + list(functions.AGGREGATES)
        close = difflib.get_close_matches(name, options, n=1) if elsewhere is None else []
        return ctx.error(
            "E205",
            f"unknown function `{node.name.name}`",
            node.name.span,
            elsewhere or "",
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
    args: list[bound.BExpr] = []
    for i, a in enumerate(node.args):
        hint = fn.hint(i)
        arg = bind_expr(ctx, a, where, expected=hint)
        if hint is not None and hint.temporal:
            arg = coerce_literal(ctx, arg, hint, a)
        args.append(arg)
    if any(a is POISON for a in args):
        return POISON
    if fn.name == "date_part":
        part = args[0]
        if not (isinstance(part, bound.Literal | bound.Param) and part.value in DATE_PARTS):
            return ctx.error(
                "E206",
                "date_part's first argument must be one of: "
                + ", ".join(f"'{p}'" for p in DATE_PARTS),
                node.args[0].span,
            )
    if fn.needs_reference_time:
        args.append(bound.Literal(ctx.reference, types.TIMESTAMP))
    try:
        t = fn.result(tuple(a.type for a in args))
    except functions.SignatureError:
        got = ", ".join(str(a.type) for a in args[: len(node.args)])
        return ctx.error("E206", f"{fn.signature} cannot take ({got})", node.span)
    untyped = [a for a in args if a.type.kind is Kind.NULL]
    if untyped:  # a bare null (or null parameter) has no type to run the function on
        if fn.null_propagating or len(untyped) == len(args):
            return bound.Literal(None, t if t.kind is not Kind.NULL else types.NULL)
        args = [a for a in args if a.type.kind is not Kind.NULL]
    return bound.Call(fn.name, tuple(args), t)
