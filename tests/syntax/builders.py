"""Short constructors for expected ASTs (all spans `NO_SPAN`; compare with `strip_spans`)."""

from __future__ import annotations

from eql.syntax import NO_SPAN, ast

S = NO_SPAN


def ident(name: str) -> ast.Ident:
    return ast.Ident(name, S)


def path(dotted: str) -> ast.Path:
    return ast.Path(tuple(ident(p) for p in dotted.split(".")), S)


def i(value: int) -> ast.IntLiteral:
    return ast.IntLiteral(value, S)


def s(value: str) -> ast.StringLiteral:
    return ast.StringLiteral(value, S)


def param(name: str) -> ast.Param:
    return ast.Param(name, S)


def last(n: int, unit: ast.TimeUnit) -> ast.LastWindow:
    return ast.LastWindow(i(n), unit, S)


def days(n: int) -> ast.LastWindow:
    return last(n, ast.TimeUnit.DAY)


def call(
    name: str,
    *args: ast.Expr,
    star: bool = False,
    distinct: bool = False,
    filter: ast.Expr | None = None,
    window: ast.Window | None = None,
) -> ast.Call:
    return ast.Call(ident(name), args, star, distinct, filter, window, S)


def cmp(op: str, left: ast.Expr, right: ast.Expr) -> ast.Compare:
    return ast.Compare(ast.CompareOp(op), left, right, S)


def arith(op: str, left: ast.Expr, right: ast.Expr) -> ast.Arith:
    return ast.Arith(ast.ArithOp(op), left, right, S)


def and_(*operands: ast.Expr) -> ast.Logical:
    return ast.Logical(ast.LogicalOp.AND, operands, S)


def or_(*operands: ast.Expr) -> ast.Logical:
    return ast.Logical(ast.LogicalOp.OR, operands, S)


def not_(operand: ast.Expr) -> ast.Not:
    return ast.Not(operand, S)


def did(p: str, filter: ast.Expr | None = None, window: ast.Window | None = None) -> ast.Did:
    return ast.Did(path(p), filter, window, S)


def item(expr: ast.Expr, alias: str | None = None) -> ast.ReturnItem:
    return ast.ReturnItem(expr, None if alias is None else ident(alias), S)


def find(entity: str, **clauses: object) -> ast.Find:
    fields: dict[str, object] = {
        "where": None,
        "group_by": (),
        "returns": (),
        "order_by": (),
        "limit": None,
        "as_of": None,
    }
    fields.update(clauses)
    return ast.Find(ident(entity), span=S, **fields)  # type: ignore[arg-type]
