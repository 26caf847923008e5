"""Event segments: immutable Arrow IPC files under events/<stream>/, listed in its manifest.

A segment is written and fsynced under a name no manifest lists; the commit that lists it is what
makes it part of the store (`storage.store`), and a writer's open deletes what no manifest lists.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from entities import Schema
from entities.arrow import stream_schema

SEGMENT_BATCH_ROWS = 1 << 17  # record batch size inside a segment: the unit of scan parallelism


@dataclass(frozen=True, slots=True)
class Segment:
    file: str
    rows: int
    min_time: int | None  # UTC microseconds
    max_time: int | None


def fsync(path: Path) -> None:
    """fsync a file or a directory (a directory: the names in it are durable)."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_segment(
    data_dir: Path, schema: Schema, stream: str, rows: pa.Table, seq: int
) -> tuple[Segment, Path]:
    """Write an immutable segment: an uncompressed Arrow IPC file, memory-mapped by scans,
    under events/ with a name no manifest lists until the commit does."""
    arrow_schema = stream_schema(schema, stream)
    st = schema.require_stream(stream)
    # one dictionary per enum column: the IPC file format allows no dictionary replacement
    rows = rows.select(arrow_schema.names).cast(arrow_schema).unify_dictionaries()
    times = rows.column(st.time)
    lo = pc.min(times).cast(pa.int64()).as_py() if rows.num_rows else None
    hi = pc.max(times).cast(pa.int64()).as_py() if rows.num_rows else None
    digest = hashlib.sha256(f"{stream}:{seq}:{dt.datetime.now(dt.UTC)}".encode()).hexdigest()
    name = f"{seq:08d}-{digest[:12]}.arrow"
    path = data_dir / "events" / stream / name
    with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, arrow_schema) as writer:
        writer.write_table(rows, max_chunksize=SEGMENT_BATCH_ROWS)
    fsync(path)
    return Segment(name, rows.num_rows, lo, hi), path


def read_segment(path: Path) -> pa.Table:
    """A segment file as an Arrow table backed by a memory map (no copy)."""
    return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()


def manifest_json(s: Segment) -> dict[str, Any]:
    return {"file": s.file, "rows": s.rows, "min_time": s.min_time, "max_time": s.max_time}


def conform_events(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Stream columns in stored order and types; columns the rows lack are null."""
    arrays = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)
