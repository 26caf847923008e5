"""Run the statements that act on tags, segments and clusters (everything but FIND): what
`runtime.session.Session` does with a DEFINE, REFRESH, DROP, SHOW, DESCRIBE or EXPLAIN MEMBERSHIP.
Whether a statement may write is the session's to check; a store opened read-only refuses
(E230)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from eql.syntax import ast
from runtime.audiences import define, describe
from runtime.audiences.compute import fail
from runtime.engine import Engine

WRITES = (ast.DefineTag, ast.DefineSegment, ast.DefineClusters, ast.Refresh, ast.Drop)


def execute(
    engine: Engine, stmt: ast.Statement, text: str, params: dict[str, Any], now: dt.datetime
) -> pa.Table:
    if isinstance(stmt, WRITES) and engine.store.kv.read_only:
        raise fail(text, "E230", "the store is open read-only", stmt.span)
    match stmt:
        case ast.DefineTag() | ast.DefineSegment() | ast.DefineClusters():
            return define.define(engine, stmt, text, now)
        case ast.Refresh(kind=kind, name=name):
            return define.refresh(engine, kind.value, name, text, now)
        case ast.Drop(kind=kind, name=name):
            return describe.drop(engine, kind.value, name, text)
        case ast.Show(kind=kind):
            return describe.show(engine, kind.value)
        case ast.Describe(kind=kind, name=name):
            return describe.describe(engine, kind.value, name, text)
        case ast.ExplainMembership():
            return describe.explain_membership(engine, stmt, text, params, now)
        case ast.Explain():
            raise fail(
                text,
                "E217",
                "EXPLAIN of a definition is not supported; EXPLAIN its FIND form instead",
                stmt.span,
                "e.g. EXPLAIN FIND users WHERE <the segment's condition>",
            )
    raise fail(text, "E217", f"{type(stmt).__name__} cannot run here", stmt.span)
