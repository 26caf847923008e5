"""Helpers of the audience tests: run statements, read FIND results as dense-id sets."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa
from pyroaring import BitMap

from runtime import WRITE, Session

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


def run(session: Session, text: str, now: dt.datetime = NOW, **params: Any) -> pa.Table:
    return session.query(text, params, now, WRITE)


def find_ids(session: Session, entity: str, where: str, now: dt.datetime = NOW) -> BitMap:
    """Dense ids of the rows of `FIND entity WHERE where` (keys mapped through the store)."""
    key = session.store.entity(entity).key.name
    rows = session.query(f"FIND {entity} WHERE {where} RETURN {key} AS k", None, now)
    keys = set(rows.column("k").to_pylist())
    snap = session.store.entity_table(entity)
    return BitMap(
        i
        for k, i in zip(snap.column(key).to_pylist(), snap.column("__id").to_pylist(), strict=True)
        if k in keys
    )


def stored_bitmap(session: Session, name: str, part: str = "m") -> BitMap:
    """The latest stored members (or entered `+`, exited `-`) of a segment."""
    d = session.audiences.definition("SEGMENT", name)
    assert d is not None
    r = session.audiences.latest(d)
    assert r is not None
    found = session.audiences.bitmap(d.generation, r.version, part)
    assert found is not None
    return found
