"""Shared machinery: the catalog of a store, version tables, and per-entity queries by dense id.

A definition's expressions are bound as a `FIND <entity>` whose first result column is the
entity's dense id `__id`, so a refresh gives (id, values) without looking keys up again.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from entities.names import fold
from eql import types as T
from eql.binder import bind
from eql.binder import bound as B
from eql.catalog import ID_COLUMN, Catalog, SegmentInfo, TagInfo, parse_type
from eql.compiler import Compiled
from eql.diagnostics import Diagnostic, EqlError, Span
from eql.planner.plan import plan
from eql.syntax import ast as A
from storage.audiences import AudienceReader

if TYPE_CHECKING:
    from eql.engine import Engine


def catalog_of(audiences: AudienceReader) -> Catalog:
    """The tags (TAG and CLUSTERS labels) and segments defined in a store, with their versions."""
    tags: dict[str, TagInfo] = {}
    segments: dict[str, SegmentInfo] = {}
    for d in audiences.all_current():
        refreshes = audiences.refreshes(d)
        if d.kind == "SEGMENT":
            last = refreshes[-1].version if refreshes else None
            segments[fold(d.name)] = SegmentInfo(d.name, d.entity, d.generation, last)
            continue
        versions = tuple(
            (r.version, r.as_of, parse_type(str(r.info.get("type", "string")))) for r in refreshes
        )
        extras: tuple[tuple[str, T.Type], ...] = ()
        if refreshes:
            extras = tuple(
                (k, parse_type(v)) for k, v in dict(refreshes[-1].info.get("extras", {})).items()
            )
        latest = versions[-1][2] if versions else T.NULL
        tags[fold(d.name)] = TagInfo(
            d.name, d.entity, d.generation, latest, extras, versions, d.kind
        )
    return Catalog(tags, segments)


def segment_arrow(members: BitMap) -> pa.Table:
    ids = np.frombuffer(members.to_array(), dtype=np.uint32) if len(members) else np.array([])
    return pa.table(
        {
            ID_COLUMN: pa.array(ids, type=pa.uint32()),
            "member": pa.array(np.ones(len(ids), dtype=bool)),
        }
    )


def bitmap_of(ids: pa.Array | pa.ChunkedArray | np.ndarray) -> BitMap:
    arr = ids.to_numpy() if isinstance(ids, pa.Array | pa.ChunkedArray) else ids
    return BitMap(np.ascontiguousarray(arr, dtype=np.uint32))


def fail(text: str, code: str, message: str, span: Span | None, *helps: str) -> EqlError:
    return EqlError([Diagnostic(code, message, span, helps=tuple(h for h in helps if h))], text)


def entity_find(
    entity: A.Ident,
    span: Span,
    where: A.Expr | None = None,
    items: Sequence[tuple[str, A.Expr]] = (),
) -> A.Find:
    returns = tuple(A.ReturnItem(e, A.Ident(n, e.span), e.span) for n, e in items)
    return A.Find(entity, where, (), returns, (), None, None, span)


def bind_entity(
    engine: Engine,
    text: str,
    find: A.Find,
    now: dt.datetime,
    params: dict[str, object] | None = None,
    catalog: Catalog | None = None,
) -> Compiled:
    """Bind and plan `find` with the dense id as first column (and its RETURN items after)."""
    cat = engine.catalog() if catalog is None else catalog
    bound = bind(find, engine.store.schema, text, params or {}, now, cat)
    if bound.grouped:
        raise fail(
            text,
            "E231",
            "a definition gives one value per entity; aggregates over all rows are not allowed",
            find.span,
            "aggregate an entity's events instead: count(purchase), sum(purchase.amount)",
        )
    items = () if not find.returns else bound.items
    bound = dataclasses.replace(
        bound, items=(B.Item(B.Column(B.ROOT, ID_COLUMN, T.INT), ID_COLUMN), *items)
    )
    return Compiled(text, find, bound, plan(bound, engine.store.schema), None)


def run_entity(engine: Engine, compiled: Compiled) -> pa.Table:
    """Run and sort by dense id (results are deterministic whatever the partitioning)."""
    table = engine.run(compiled)
    return table.sort_by(ID_COLUMN)


def key_ids(engine: Engine, entity: str, ids: np.ndarray) -> pa.Array:
    """The keys of dense ids (ids of deleted rows are left out)."""
    snap = engine.store.entity_table(entity)
    key = engine.store.entity(entity).key.name
    all_ids = snap.column(ID_COLUMN).to_numpy()
    order = np.argsort(all_ids)
    pos = np.searchsorted(all_ids, ids, sorter=order)
    pos = np.clip(pos, 0, max(len(all_ids) - 1, 0))
    if len(all_ids) == 0:
        return snap.column(key).combine_chunks()[:0]
    rows = order[pos]
    hit = all_ids[rows] == ids
    return snap.column(key).take(pa.array(rows[hit])).combine_chunks()
