"""Shared machinery: the catalog of a store, version tables, and per-entity queries by dense id.

A definition's expressions are bound as a `FIND <entity>` whose first result column is the
entity's dense id `__id`, so a refresh gives (id, values) without looking keys up again.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from entities.arrow import ID_COLUMN
from eql.compiler import Compiled, compile_per_entity
from eql.diagnostics import Diagnostic, EqlError, Span
from eql.syntax import ast
from runtime.engine import Engine


def bitmap_of(ids: pa.Array | pa.ChunkedArray | np.ndarray) -> BitMap:
    arr = ids.to_numpy() if isinstance(ids, pa.Array | pa.ChunkedArray) else ids
    return BitMap(np.ascontiguousarray(arr, dtype=np.uint32))


def fail(text: str, code: str, message: str, span: Span | None, *helps: str) -> EqlError:
    return EqlError([Diagnostic(code, message, span, helps=tuple(h for h in helps if h))], text)


def entity_find(
    entity: ast.Ident,
    span: Span,
    where: ast.Expr | None = None,
    items: Sequence[tuple[str, ast.Expr]] = (),
) -> ast.Find:
    returns = tuple(ast.ReturnItem(e, ast.Ident(n, e.span), e.span) for n, e in items)
    return ast.Find(entity, where, (), returns, (), None, None, span)


def bind_entity(
    engine: Engine,
    text: str,
    find: ast.Find,
    now: dt.datetime,
    params: dict[str, object] | None = None,
) -> Compiled:
    """Compile `find` per entity (`eql.compiler.compile_per_entity`) against the engine's store."""
    return compile_per_entity(
        find, text, engine.store.schema, params, now, engine.catalog(), engine.names, engine.rules
    )


def run_entity(engine: Engine, compiled: Compiled) -> pa.Table:
    """Run and sort by dense id (results are deterministic whatever the partitioning)."""
    table = engine.run(compiled)
    return table.sort_by(ID_COLUMN)
