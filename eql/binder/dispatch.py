"""One dispatcher for binding expressions: a handler per syntax node type, registered where it is
written (`@handles(ast.Compare)`), as EdgeDB's `edgeql/compiler/dispatch.py` does with
`functools.singledispatch`. The handler modules (`exprs`, `calls`, `aggregates`, `virtual`) import
this one and never each other's privates; `eql.binder` imports them all, so every handler is
registered before anything binds.

May import: `eql.types`, `eql.syntax`, `eql.binder.{bound, context}`.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import TypeVar

from eql import types
from eql.binder import bound
from eql.binder.context import Ctx, Where
from eql.syntax import ast
from eql.types import Kind

Handler = Callable[[ast.Expr, Ctx, Where, types.Type | None], bound.BExpr]
H = TypeVar("H", bound=Callable[..., bound.BExpr])


@functools.singledispatch
def _dispatch(node: ast.Expr, ctx: Ctx, where: Where, expected: types.Type | None) -> bound.BExpr:
    return ctx.error("E217", f"{type(node).__name__} is not supported here", node.span)


def handles(*node_types: type) -> Callable[[H], H]:
    """Register the decorated function as the binder of these syntax node types."""

    def register(handler: H) -> H:
        for t in node_types:
            _dispatch.register(t, handler)
        return handler

    return register


def handled() -> frozenset[type]:
    """The node types that have a handler (for the structure tests)."""
    return frozenset(t for t in _dispatch.registry if t is not object)


def bind_expr(
    ctx: Ctx, node: ast.Expr, where: Where, expected: types.Type | None = None
) -> bound.BExpr:
    """Bind `node` in `where`; `expected` is the type the context wants (it types parameters and
    string literals)."""
    return _dispatch(node, ctx, where, expected)


def bool_expr(ctx: Ctx, node: ast.Expr, where: Where, what: str) -> bound.BExpr:
    """Bind a condition: E213 when `node` is not true/false."""
    e = bind_expr(ctx, node, where)
    if e.type.kind not in (Kind.BOOL, Kind.NULL):
        return ctx.error(
            "E213",
            f"{what} must be a condition (true/false), not {e.type}",
            node.span,
            "compare it: `... = value`, `... > 0`, `DID stream`",
        )
    return e
