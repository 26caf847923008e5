"""Short constructors for expected ASTs (all spans `NO_SPAN`; compare with `strip_spans`)."""

from __future__ import annotations

from eql.syntax import NO_SPAN
from eql.syntax import ast as A

S = NO_SPAN


def ident(name: str) -> A.Ident:
    return A.Ident(name, S)


def path(dotted: str) -> A.Path:
    return A.Path(tuple(ident(p) for p in dotted.split(".")), S)


def i(value: int) -> A.IntLiteral:
    return A.IntLiteral(value, S)


def s(value: str) -> A.StringLiteral:
    return A.StringLiteral(value, S)


def param(name: str) -> A.Param:
    return A.Param(name, S)


def last(n: int, unit: A.TimeUnit) -> A.LastWindow:
    return A.LastWindow(i(n), unit, S)


def days(n: int) -> A.LastWindow:
    return last(n, A.TimeUnit.DAY)


def call(
    name: str,
    *args: A.Expr,
    star: bool = False,
    distinct: bool = False,
    filter: A.Expr | None = None,
    window: A.Window | None = None,
) -> A.Call:
    return A.Call(ident(name), args, star, distinct, filter, window, S)


def cmp(op: str, left: A.Expr, right: A.Expr) -> A.Compare:
    return A.Compare(A.CompareOp(op), left, right, S)


def arith(op: str, left: A.Expr, right: A.Expr) -> A.Arith:
    return A.Arith(A.ArithOp(op), left, right, S)


def and_(*operands: A.Expr) -> A.Logical:
    return A.Logical(A.LogicalOp.AND, operands, S)


def or_(*operands: A.Expr) -> A.Logical:
    return A.Logical(A.LogicalOp.OR, operands, S)


def not_(operand: A.Expr) -> A.Not:
    return A.Not(operand, S)


def did(p: str, filter: A.Expr | None = None, window: A.Window | None = None) -> A.Did:
    return A.Did(path(p), filter, window, S)


def item(expr: A.Expr, alias: str | None = None) -> A.ReturnItem:
    return A.ReturnItem(expr, None if alias is None else ident(alias), S)


def find(entity: str, **clauses: object) -> A.Find:
    fields: dict[str, object] = {
        "where": None,
        "group_by": (),
        "returns": (),
        "order_by": (),
        "limit": None,
        "as_of": None,
    }
    fields.update(clauses)
    return A.Find(ident(entity), span=S, **fields)  # type: ignore[arg-type]
