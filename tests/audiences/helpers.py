"""Helpers of the audience tests: run statements, read FIND results as dense-id sets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from pyroaring import BitMap

from eql.engine import Engine

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def run(engine: Engine, text: str, now: dt.datetime = NOW, **params: Any) -> pa.Table:
    return engine.execute(text, params, now)


def find_ids(engine: Engine, entity: str, where: str, now: dt.datetime = NOW) -> BitMap:
    """Dense ids of the rows of `FIND entity WHERE where` (keys mapped through the store)."""
    key = engine.store.entity(entity).key.name
    rows = engine.query(f"FIND {entity} WHERE {where} RETURN {key} AS k", None, now)
    keys = set(rows.column("k").to_pylist())
    snap = engine.store.entity_table(entity)
    return BitMap(
        i
        for k, i in zip(snap.column(key).to_pylist(), snap.column("__id").to_pylist(), strict=True)
        if k in keys
    )


def stored_bitmap(engine: Engine, name: str, part: str = "m") -> BitMap:
    """The latest stored members (or entered `+`, exited `-`) of a segment."""
    d = engine.audiences.definition("SEGMENT", name)
    assert d is not None
    r = engine.audiences.latest(d)
    assert r is not None
    found = engine.audiences.bitmap(d.generation, r.version, part)
    assert found is not None
    return found
