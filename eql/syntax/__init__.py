"""EQL front end: text -> typed AST (`parse`), AST -> canonical text (`format_statement`).

Modules: `ast` (the nodes), `parser` (Lark, built once; input guards), `build_ast` (Lark
callbacks that build nodes), `errors` (Lark errors -> diagnostics), `printer`, `walk` (generic
node helpers), `keywords`. Lark types never leave this package.

May import lark, eql.diagnostics and eql.grammar only.
"""

from __future__ import annotations

from eql.syntax import ast
from eql.syntax.parser import MAX_DEPTH, MAX_QUERY_CHARS, parse
from eql.syntax.printer import format_expr, format_statement, format_window
from eql.syntax.walk import NO_SPAN, children, parameters, same_shape, strip_spans

__all__ = [
    "MAX_DEPTH",
    "MAX_QUERY_CHARS",
    "NO_SPAN",
    "ast",
    "children",
    "format_expr",
    "format_statement",
    "format_window",
    "parameters",
    "parse",
    "same_shape",
    "strip_spans",
]
