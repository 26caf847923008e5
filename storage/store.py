"""The embedded store: one data directory holding entities, id dictionaries and event segments.

Layout of a data directory:
  rocks/                    RocksDB: entity rows, id dictionaries, manifests, ledger, offsets
  schema.yaml               the schema the store was created with (also kept in RocksDB)
  events/<stream>/*.arrow   immutable event segments (Arrow IPC); exactly those in the manifest
  staging/                  segments written but not yet committed
  snapshots/<entity>.arrow  columnar snapshots of entity state (derived; rebuilt when stale)

Every change is a `ChangeSet` committed as one synced RocksDB write batch. Event segments are
written to staging/ and fsynced first; the batch that lists them in the manifest is the commit
point; they are then renamed into events/. Opening the store rolls that rename forward and deletes
what no manifest lists, so a crash at any point leaves all of a change or none of it.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import os
import threading
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from entities import Entity, Schema, parse_schema
from entities.arrow import ID_COLUMN, entity_schema, stream_schema
from storage import codec, snapshot
from storage.kv import DURABILITY, KV

FORMAT_VERSION = 1
# Appends smaller than this go to the stream's tail in RocksDB (one Arrow IPC blob per commit),
# so that many small commits (CDC transactions) do not make many small segment files; the tail is
# folded into a segment, in the same batch, once it holds TAIL_MAX_ROWS rows.
SEGMENT_MIN_ROWS = 20_000
TAIL_MAX_ROWS = 200_000
SEGMENT_BATCH_ROWS = 1 << 17  # record batch size inside a segment: the unit of scan parallelism


class StoreError(Exception):
    """A problem with the data directory, said in words a user can act on."""


@dataclass(frozen=True, slots=True)
class Segment:
    file: str
    rows: int
    min_time: int | None  # UTC microseconds
    max_time: int | None


@dataclass(slots=True)
class ChangeSet:
    """Everything one committed unit changes. Applied by `Store.commit` in one write batch."""

    upserts: dict[str, pa.Table] = field(default_factory=dict)  # entity -> typed rows
    deletes: dict[str, list[Any]] = field(default_factory=dict)  # entity -> keys
    appends: dict[str, list[pa.Table]] = field(default_factory=dict)  # stream -> typed events
    meta: dict[bytes, bytes] = field(default_factory=dict)  # ledger entries, offsets
    meta_deletes: list[bytes] = field(default_factory=list)

    def upsert(self, entity: str, rows: pa.Table) -> None:
        prev = self.upserts.get(entity)
        self.upserts[entity] = rows if prev is None else pa.concat_tables([prev, rows])

    def append(self, stream: str, rows: pa.Table) -> None:
        self.appends.setdefault(stream, []).append(rows)


@dataclass(frozen=True, slots=True)
class CommitResult:
    upserted: dict[str, int]
    deleted: dict[str, int]
    appended: dict[str, int]
    new_ids: dict[str, int]


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class Store:
    """An open data directory. One writer process at a time (RocksDB's lock enforces it)."""

    def __init__(self, data_dir: Path, kv: KV, schema: Schema) -> None:
        self.data_dir = data_dir
        self.kv = kv
        self.schema = schema
        self._lock = threading.RLock()
        self._snapshots: dict[str, pa.Table] = {}
        self._tails: dict[str, pa.Table] = {}

    # ---- opening -------------------------------------------------------------------------
    @classmethod
    def create(cls, data_dir: str | Path, schema_text: str, schema_file: str = "<schema>") -> Store:
        """Create a new store with a schema (validated first); refuse a directory already in use."""
        root = Path(data_dir)
        schema = parse_schema(schema_text, schema_file)
        if (root / "rocks").exists():
            raise StoreError(f"{root} already holds a store; open it instead of creating it")
        root.mkdir(parents=True, exist_ok=True)
        kv = KV(root / "rocks")
        kv.commit(
            {
                b"m:format": str(FORMAT_VERSION).encode(),
                b"m:schema": schema_text.encode("utf-8"),
                b"m:schema_file": schema_file.encode("utf-8"),
            }
        )
        (root / "schema.yaml").write_text(schema_text, encoding="utf-8")
        store = cls(root, kv, schema)
        store._recover()
        return store

    @classmethod
    def open(cls, data_dir: str | Path, *, read_only: bool = False) -> Store:
        root = Path(data_dir)
        if not (root / "rocks").exists():
            raise StoreError(
                f"no store at {root}: create one with `eql init --data-dir {root} --schema FILE` "
                "or `eql demo`"
            )
        kv = KV(root / "rocks", read_only=read_only)
        fmt = kv.get(b"m:format")
        text = kv.get(b"m:schema")
        if fmt is None or text is None:
            kv.close()
            raise StoreError(f"{root} is not a complete store (no schema); recreate it")
        if int(fmt) != FORMAT_VERSION:
            kv.close()
            raise StoreError(f"{root} has store format {int(fmt)}; this eql reads {FORMAT_VERSION}")
        source = (kv.get(b"m:schema_file") or b"<schema>").decode()
        store = cls(root, kv, parse_schema(text.decode("utf-8"), source))
        if not read_only:
            store._recover()
        return store

    def close(self) -> None:
        self.kv.close()

    def __enter__(self) -> Store:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def durability(self) -> dict[str, str]:
        return dict(DURABILITY)

    def _recover(self) -> None:
        """Roll committed segment renames forward; delete files no manifest lists."""
        staging = self.data_dir / "staging"
        staging.mkdir(exist_ok=True)
        for st in self.schema.streams:
            live = self.data_dir / "events" / st.name
            live.mkdir(parents=True, exist_ok=True)
            listed = {s.file for s in self.segments(st.name)}
            for name in listed:
                if not (live / name).exists():
                    if (staging / name).exists():
                        os.replace(staging / name, live / name)
                    else:
                        raise StoreError(
                            f"event segment {st.name}/{name} is listed but missing; the data "
                            "directory was altered outside eql"
                        )
            for path in live.iterdir():
                if path.name not in listed:
                    path.unlink()
            _fsync_dir(live)
        for path in staging.iterdir():
            path.unlink()
        snapshots = self.data_dir / "snapshots"
        if snapshots.is_dir():
            for path in snapshots.glob("*.tmp"):  # a snapshot write cut short
                path.unlink()

    # ---- metadata, ledger, offsets -------------------------------------------------------
    def get_meta(self, key: bytes) -> bytes | None:
        return self.kv.get(key)

    def scan_meta(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Metadata entries (e.g. `o:` offsets) whose key starts with `prefix`, in key order."""
        return self.kv.scan(prefix)

    def ledger_get(self, digest: str) -> dict[str, Any] | None:
        raw = self.kv.get(b"l:" + digest.encode())
        return None if raw is None else dict(codec.loads(raw))

    @staticmethod
    def ledger_entry(digest: str, summary: dict[str, Any]) -> tuple[bytes, bytes]:
        return b"l:" + digest.encode(), codec.dumps(summary)

    def imports(self) -> list[dict[str, Any]]:
        return [dict(codec.loads(v), digest=k[2:].decode()) for k, v in self.kv.scan(b"l:")]

    # ---- entities ------------------------------------------------------------------------
    def entity(self, name: str) -> Entity:
        ent = self.schema.entity(name)
        if ent is None:
            raise StoreError(f"unknown entity {name!r}")
        return ent

    def version(self, entity: str) -> int:
        raw = self.kv.get(codec.family_key("v", entity))
        return 0 if raw is None else codec.unpack_u64(raw)

    def get(self, entity: str, key: int | str) -> dict[str, Any] | None:
        """One entity row by key as a JSON-like dict (key included), or None."""
        ent = self.entity(entity)
        raw = self.kv.get(codec.family_key("e", entity, codec.encode_key(key)))
        if raw is None:
            return None
        row: dict[str, Any] = {ent.key.name: key}
        row.update(codec.loads(raw))
        return row

    def dense_id(self, entity: str, key: int | str) -> int | None:
        raw = self.kv.get(codec.family_key("i", entity, codec.encode_key(key)))
        return None if raw is None else codec.unpack_u32(raw)

    def key_for_id(self, entity: str, dense_id: int) -> int | str | None:
        raw = self.kv.get(codec.family_key("r", entity, codec.pack_u32(dense_id)))
        return None if raw is None else codec.decode_key(raw)

    def id_count(self, entity: str) -> int:
        raw = self.kv.get(codec.family_key("n", entity))
        return 0 if raw is None else codec.unpack_u32(raw)

    def count(self, entity: str) -> int:
        return int(self.entity_table(entity).num_rows)

    def iter_rows(self, entity: str) -> Iterator[tuple[int | str, dict[str, Any]]]:
        for k, v in self.kv.scan(codec.family_prefix("e", entity)):
            yield codec.decode_key(k[len(codec.family_prefix("e", entity)) :]), codec.loads(v)

    def entity_table(self, entity: str) -> pa.Table:
        """The columnar snapshot of an entity (key, attributes, __id), rebuilt if stale."""
        with self._lock:
            cached = self._snapshots.get(entity)
            if cached is not None:
                return cached
            ent = self.entity(entity)
            version = self.version(entity)
            path = self.data_dir / "snapshots" / f"{entity}.arrow"
            loaded = snapshot.read(path)
            if (
                loaded is not None
                and loaded[1] == version
                and loaded[0].schema.equals(entity_schema(ent))
            ):
                table = loaded[0]
            else:
                table = self._rebuild_snapshot(ent)
                if not self.kv.read_only:
                    snapshot.write(path, table, version)
            self._snapshots[entity] = table
            return table

    def _rebuild_snapshot(self, ent: Entity) -> pa.Table:
        prefix = codec.family_prefix("e", ent.name)
        keys: list[Any] = []
        enc_keys: list[bytes] = []
        rows: list[bytes] = []
        for k, v in self.kv.scan(prefix):
            enc = k[len(prefix) :]
            enc_keys.append(enc)
            keys.append(codec.decode_key(enc))
            rows.append(v)
        id_raw = self.kv.multi_get([codec.family_key("i", ent.name, k) for k in enc_keys])
        ids = [codec.unpack_u32(r) if r is not None else 0 for r in id_raw]
        return snapshot.rows_from_json(ent, keys, ids, rows)

    # ---- events --------------------------------------------------------------------------
    def segments(self, stream: str) -> list[Segment]:
        raw = self.kv.get(codec.family_key("s", stream))
        if raw is None:
            return []
        return [Segment(**s) for s in codec.loads(raw)["segments"]]

    def segment_path(self, stream: str, segment: Segment) -> Path:
        """Where a committed segment is: in events/, or, for a reader of a store whose writer
        died between the commit and the rename (the next writer rolls it forward), in staging/."""
        live = self.data_dir / "events" / stream / segment.file
        if self.kv.read_only and not live.exists():
            staged = self.data_dir / "staging" / segment.file
            if staged.exists():
                return staged
        return live

    def event_files(self, stream: str) -> list[Path]:
        return [self.segment_path(stream, s) for s in self.segments(stream)]

    def event_count(self, stream: str) -> int:
        return sum(s.rows for s in self.segments(stream)) + int(self.tail_table(stream).num_rows)

    def _tail_blobs(self, stream: str) -> list[tuple[bytes, bytes]]:
        return list(self.kv.scan(codec.family_prefix("t", stream)))

    def tail_table(self, stream: str) -> pa.Table:
        """Events committed to the stream's RocksDB tail (not yet folded into a segment)."""
        with self._lock:
            cached = self._tails.get(stream)
            if cached is not None:
                return cached
            schema = stream_schema(self.schema, stream)
            tables = [_ipc_read(v) for _, v in self._tail_blobs(stream)]
            table = pa.concat_tables(tables).cast(schema) if tables else schema.empty_table()
            self._tails[stream] = table
            return table

    # ---- committing ----------------------------------------------------------------------
    def commit(self, change: ChangeSet) -> CommitResult:
        """Apply a change set as one durable unit."""
        with self._lock:
            return self._commit(change)

    def _commit(self, change: ChangeSet) -> CommitResult:
        puts: dict[bytes, bytes] = dict(change.meta)
        dels: list[bytes] = []
        new_ids: dict[str, int] = {}
        patches: list[tuple[Entity, list[Any], pa.Table | None, int]] = []
        touched = set(change.upserts) | set(change.deletes)
        # the snapshots as of before this change, patched once it is durable
        bases = {name: self.entity_table(name) for name in touched}
        for name in sorted(touched):
            ent = self.entity(name)
            rows = change.upserts.get(name)
            delete_keys = list(change.deletes.get(name, ()))
            changed: list[Any] = list(delete_keys)
            snap_rows: pa.Table | None = None
            if rows is not None and rows.num_rows:
                rows = snapshot.fill_missing(ent, _last_per_key(rows, ent.key.name), bases[name])
                rows = snapshot.finite_floats(rows)
                keys = rows.column(ent.key.name).to_pylist()
                enc = [codec.encode_key(k) for k in keys]
                ids, fresh = self._ensure_ids(name, enc, puts)
                new_ids[name] = fresh
                values = snapshot.rows_to_json(ent, rows)
                for k, v in zip(enc, values, strict=True):
                    puts[codec.family_key("e", name, k)] = v
                # keys upserted in this set win over deletes of the same key in it
                up = set(keys)
                changed = [k for k in delete_keys if k not in up] + keys
                snap_rows = rows.append_column(ID_COLUMN, pa.array(ids, type=pa.uint32()))
                delete_keys = [k for k in delete_keys if k not in up]
            for key in delete_keys:
                dels.append(codec.family_key("e", name, codec.encode_key(key)))
            version = self.version(name) + 1
            puts[codec.family_key("v", name)] = codec.pack_u64(version)
            patches.append((ent, changed, snap_rows, version))

        staged: list[tuple[Path, Path]] = []
        tails: dict[str, pa.Table] = {}
        dels.extend(change.meta_deletes)
        appended: dict[str, int] = {}
        for name, tables in change.appends.items():
            st = self.schema.stream(name)
            if st is None:
                raise StoreError(f"unknown event stream {name!r}")
            schema = stream_schema(self.schema, name)
            rows = pa.concat_tables([_conform_events(t, schema) for t in tables])
            if rows.num_rows == 0:
                continue
            tail = self.tail_table(name)
            if rows.num_rows < SEGMENT_MIN_ROWS and tail.num_rows + rows.num_rows < TAIL_MAX_ROWS:
                seq = codec.unpack_u64(self.kv.get(codec.family_key("q", name)) or bytes(8))
                puts[codec.family_key("t", name, codec.pack_u64(seq))] = _ipc_write(rows)
                puts[codec.family_key("q", name)] = codec.pack_u64(seq + 1)
                tails[name] = pa.concat_tables([tail, rows])
                appended[name] = rows.num_rows
                continue
            if tail.num_rows:  # fold the tail into this segment, in this same batch
                dels.extend(k for k, _ in self._tail_blobs(name))
                tails[name] = schema.empty_table()
                rows = pa.concat_tables([tail, rows])
            segs = self.segments(name)
            seg, path = self._write_segment(name, rows, len(segs))
            staged.append((path, self.data_dir / "events" / name / seg.file))
            segs.append(seg)
            puts[codec.family_key("s", name)] = codec.dumps(
                {"segments": [_seg_json(s) for s in segs]}
            )
            appended[name] = rows.num_rows - tail.num_rows

        self.kv.commit(puts, dels)  # the commit point

        self._tails.update(tails)
        for src, dst in staged:
            os.replace(src, dst)
        for dst_dir in {dst.parent for _, dst in staged}:
            _fsync_dir(dst_dir)
        for ent, changed, snap_rows, version in patches:
            table = snapshot.patch(ent, bases[ent.name], changed, snap_rows)
            self._snapshots[ent.name] = table
            snapshot.write(self.data_dir / "snapshots" / f"{ent.name}.arrow", table, version)
        return CommitResult(
            upserted={k: v.num_rows for k, v in change.upserts.items()},
            deleted={k: len(v) for k, v in change.deletes.items()},
            appended=appended,
            new_ids=new_ids,
        )

    def _ensure_ids(
        self, entity: str, enc_keys: Sequence[bytes], puts: dict[bytes, bytes]
    ) -> tuple[list[int], int]:
        """Dense ids for keys: existing ones are kept forever, new keys get the next numbers."""
        existing = self.kv.multi_get([codec.family_key("i", entity, k) for k in enc_keys])
        nxt = self.id_count(entity)
        start = nxt
        ids: list[int] = []
        for k, raw in zip(enc_keys, existing, strict=True):
            if raw is not None:
                ids.append(codec.unpack_u32(raw))
                continue
            if nxt >= 0xFFFFFFFF:
                raise StoreError(f"entity {entity} has exhausted its 2^32 dense ids")
            ids.append(nxt)
            puts[codec.family_key("i", entity, k)] = codec.pack_u32(nxt)
            puts[codec.family_key("r", entity, codec.pack_u32(nxt))] = k
            nxt += 1
        if nxt != start:
            puts[codec.family_key("n", entity)] = codec.pack_u32(nxt)
        return ids, nxt - start

    def _write_segment(self, stream: str, rows: pa.Table, seq: int) -> tuple[Segment, Path]:
        """Write an immutable segment: an uncompressed Arrow IPC file, memory-mapped by scans."""
        schema = stream_schema(self.schema, stream)
        st = self.schema.require_stream(stream)
        # one dictionary per enum column: the IPC file format allows no dictionary replacement
        rows = rows.select(schema.names).cast(schema).unify_dictionaries()
        times = rows.column(st.time)
        lo = pc.min(times).cast(pa.int64()).as_py() if rows.num_rows else None
        hi = pc.max(times).cast(pa.int64()).as_py() if rows.num_rows else None
        digest = hashlib.sha256(f"{stream}:{seq}:{dt.datetime.now(dt.UTC)}".encode()).hexdigest()
        name = f"{seq:08d}-{digest[:12]}.arrow"
        path = self.data_dir / "staging" / name
        with pa.OSFile(str(path), "wb") as sink, pa.ipc.new_file(sink, schema) as writer:
            writer.write_table(rows, max_chunksize=SEGMENT_BATCH_ROWS)
        fd = os.open(path, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)
        return Segment(name, rows.num_rows, lo, hi), path

    def read_segment(self, stream: str, segment: Segment) -> pa.Table:
        """A committed segment as an Arrow table backed by a memory map (no copy)."""
        path = self.segment_path(stream, segment)
        return pa.ipc.open_file(pa.memory_map(str(path), "r")).read_all()

    def event_table(self, stream: str) -> pa.Table:
        """Every committed event of a stream: the segments (memory-mapped) and the tail."""
        schema = stream_schema(self.schema, stream)
        parts = [self.read_segment(stream, s) for s in self.segments(stream)]
        parts.append(self.tail_table(stream))
        return pa.concat_tables([p.cast(schema) for p in parts])


def _seg_json(s: Segment) -> dict[str, Any]:
    return {"file": s.file, "rows": s.rows, "min_time": s.min_time, "max_time": s.max_time}


def _last_per_key(rows: pa.Table, key: str) -> pa.Table:
    """Within one change, the last row of a key wins (upsert order)."""
    if rows.num_rows < 2:
        return rows
    keys = rows.column(key)
    if pc.count_distinct(keys).as_py() == rows.num_rows:
        return rows
    idx = pa.array(range(rows.num_rows), type=pa.int64())
    last = pa.table({"k": keys, "i": idx}).group_by("k").aggregate([("i", "max")])
    col = last.column("i_max")
    return rows.take(pc.take(col, pc.sort_indices(col)))


def _ipc_write(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def _ipc_read(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()


def _conform_events(table: pa.Table, schema: pa.Schema) -> pa.Table:
    """Stream columns in stored order and types; columns the rows lack are null."""
    arrays = [
        table.column(f.name) if f.name in table.column_names else pa.nulls(table.num_rows, f.type)
        for f in schema
    ]
    return pa.Table.from_arrays(arrays, names=schema.names).cast(schema)
