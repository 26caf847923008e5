"""Run the statements that act on tags, segments and clusters (everything but FIND): what
`runtime.session.Session` does with a DEFINE, REFRESH, DROP, SHOW, DESCRIBE or EXPLAIN MEMBERSHIP.
Whether a statement may write is the session's to check; a store opened read-only refuses
(E230)."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from eql.syntax import ast as A
from runtime.audiences import define as DF
from runtime.audiences import describe as DS
from runtime.audiences.compute import fail
from runtime.engine import Engine

WRITES = (A.DefineTag, A.DefineSegment, A.DefineClusters, A.Refresh, A.Drop)


def execute(
    engine: Engine, stmt: A.Statement, text: str, params: dict[str, Any], now: dt.datetime
) -> pa.Table:
    if isinstance(stmt, WRITES) and engine.store.kv.read_only:
        raise fail(text, "E230", "the store is open read-only", stmt.span)
    match stmt:
        case A.DefineTag() | A.DefineSegment() | A.DefineClusters():
            return DF.define(engine, stmt, text, now)
        case A.Refresh(kind=kind, name=name):
            return DF.refresh(engine, kind.value, name, text, now)
        case A.Drop(kind=kind, name=name):
            return DS.drop(engine, kind.value, name, text)
        case A.Show(kind=kind):
            return DS.show(engine, kind.value)
        case A.Describe(kind=kind, name=name):
            return DS.describe(engine, kind.value, name, text)
        case A.ExplainMembership():
            return DS.explain_membership(engine, stmt, text, params, now)
        case A.Explain():
            raise fail(
                text,
                "E217",
                "EXPLAIN of a definition is not supported; EXPLAIN its FIND form instead",
                stmt.span,
                "e.g. EXPLAIN FIND users WHERE <the segment's condition>",
            )
    raise fail(text, "E217", f"{type(stmt).__name__} cannot run here", stmt.span)
