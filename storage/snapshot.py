"""Columnar snapshots of entity state: how mutable rows in RocksDB meet columnar scans.

RocksDB holds the truth (one JSON row per key). Scans read an Arrow table per entity, the
snapshot, kept in memory and persisted as an Arrow IPC file `snapshots/<entity>.arrow` tagged with
the entity version it reflects. A commit patches the snapshot (drop changed keys, append new rows)
and rewrites the file after the batch is durable; at open, a file whose version differs from the
version in RocksDB (a crash between the two) is rebuilt by scanning RocksDB.
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from entities.arrow import ID_COLUMN, entity_schema
from entities.model import Entity, TypeKind
from storage import codec

VERSION_META = b"eql.version"


def rows_to_json(entity: Entity, table: pa.Table) -> list[bytes]:
    """Encode each row's attributes (not the key) as a JSON object, vectorised per column."""
    cols: dict[str, list[Any]] = {}
    for attr in entity.attributes:
        if attr.name not in table.column_names:
            continue
        arr = table.column(attr.name)
        kind = attr.type.kind
        if kind is TypeKind.TIMESTAMP:
            arr = pc.cast(arr, pa.int64())
        elif kind in (TypeKind.DATE, TypeKind.DECIMAL) or kind is TypeKind.ENUM:
            arr = pc.cast(arr, pa.string())
        cols[attr.name] = arr.to_pylist()
    names = list(cols)
    columns = [cols[n] for n in names]
    dumps = codec.dumps
    return [dumps(dict(zip(names, values, strict=True))) for values in zip(*columns, strict=True)]


def rows_from_json(entity: Entity, keys: list[Any], ids: list[int], rows: list[bytes]) -> pa.Table:
    """Rebuild an entity table (key, attributes, __id) from RocksDB rows."""
    loads = codec.loads
    decoded = [loads(r) for r in rows]
    schema = entity_schema(entity)
    arrays: list[pa.Array] = []
    for f in schema:
        if f.name == entity.key.name:
            arrays.append(pa.array(keys, type=f.type))
            continue
        if f.name == ID_COLUMN:
            arrays.append(pa.array(ids, type=pa.uint32()))
            continue
        attr = entity.column(f.name)
        assert attr is not None
        values = [d.get(f.name) for d in decoded]
        kind = attr.type.kind
        if kind is TypeKind.TIMESTAMP:
            arrays.append(pa.array(values, type=pa.int64()).cast(f.type))
        elif kind in (TypeKind.DATE, TypeKind.DECIMAL, TypeKind.ENUM):
            arrays.append(pc.cast(pa.array(values, type=pa.string()), f.type))
        else:
            arrays.append(pa.array(values, type=f.type))
    return pa.Table.from_arrays(arrays, schema=schema)


def conform(entity: Entity, table: pa.Table) -> pa.Table:
    """Cast a table of typed rows to the entity's stored snapshot schema (column order, types)."""
    schema = entity_schema(entity)
    arrays = []
    for f in schema:
        col = table.column(f.name)
        if not col.type.equals(f.type):
            col = pc.cast(col, f.type)
        arrays.append(col.combine_chunks() if col.num_chunks != 1 else col.chunk(0))
    return pa.Table.from_arrays(arrays, schema=schema)


def finite_floats(rows: pa.Table) -> pa.Table:
    """NaN and infinities are stored as null: JSON has no such numbers, and a snapshot must
    hold exactly what RocksDB holds."""
    for i, f in enumerate(rows.schema):
        if pa.types.is_floating(f.type):
            col = rows.column(i)
            finite = pc.fill_null(pc.is_finite(col), True)
            if not pc.all(finite).as_py():
                rows = rows.set_column(i, f, pc.if_else(finite, col, pa.scalar(None, f.type)))
    return rows


def fill_missing(entity: Entity, rows: pa.Table, base: pa.Table) -> pa.Table:
    """Upsert semantics: attributes absent from `rows` keep their current values (null if new)."""
    missing = [a for a in entity.attributes if a.name not in rows.column_names]
    if not missing:
        return rows
    key = entity.key.name
    current = base.select([key] + [a.name for a in missing])
    plain = pa.schema(
        [
            pa.field(f.name, pa.string() if pa.types.is_dictionary(f.type) else f.type)
            for f in current.schema
        ]
    )
    current = current.cast(plain)
    joined = rows.join(current, keys=key, join_type="left outer", use_threads=False)
    return joined


def patch(
    entity: Entity, base: pa.Table, changed_keys: Iterable[Any], new_rows: pa.Table | None
) -> pa.Table:
    """The snapshot after a commit: rows whose key changed are dropped, then new rows appended."""
    keys = pa.array(list(changed_keys), type=base.schema.field(entity.key.name).type)
    if len(keys):
        keep = pc.invert(pc.is_in(base.column(entity.key.name), value_set=keys))
        base = base.filter(keep)
    if new_rows is not None and new_rows.num_rows:
        base = pa.concat_tables([base, conform(entity, new_rows)]).combine_chunks()
    return base


def write(path: Path, table: pa.Table, version: int) -> None:
    """Persist a snapshot atomically (temp file, fsync, rename)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = dict(table.schema.metadata or {})
    meta[VERSION_META] = str(version).encode()
    table = table.replace_schema_metadata(meta)
    tmp = path.with_suffix(".tmp")
    with pa.OSFile(str(tmp), "wb") as sink, pa.ipc.new_file(sink, table.schema) as writer:
        writer.write_table(table, max_chunksize=1 << 20)
    fd = os.open(tmp, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(tmp, path)


def read(path: Path) -> tuple[pa.Table, int] | None:
    """Load a persisted snapshot and the entity version it reflects; None if absent or broken."""
    try:
        with pa.memory_map(str(path), "r") as source:
            table = pa.ipc.open_file(source).read_all()
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return None
    meta = table.schema.metadata or {}
    if VERSION_META not in meta:
        return None
    return table.replace_schema_metadata(None), int(meta[VERSION_META])
