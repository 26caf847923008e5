"""Columnar snapshots of entity state: how mutable rows in RocksDB meet columnar scans.

RocksDB holds the truth (one JSON row per key). Scans read an Arrow table per entity, the
snapshot, kept in memory and persisted as an Arrow IPC file `snapshots/<entity>.arrow` tagged with
the entity version it reflects. A commit records its patch (changed keys, their new rows) in
memory, applied when the table is next read (several at once), and the keys it changed in
RocksDB (`c:<entity>\\0<version>`, in the commit's batch). The file is rewritten only now and
then (`Live.due`: enough changed keys or commits, or time; and at close); a file some versions
behind RocksDB is caught up from those changed keys, and one that cannot be (a version missing)
is rebuilt by scanning RocksDB.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from entities.arrow import ID_COLUMN, arrow_type, entity_schema
from entities.model import Entity, TypeKind
from storage import codec
from storage.kv import KV

VERSION_META = b"eql.version"
Patch = tuple[pa.Array, pa.Table | None]  # keys one commit changed; their rows now (with __id)
# The file is rewritten (after the commit point) by the commit that brings the keys changed since
# the last write to max(FLUSH_ROWS, rows / FLUSH_FRACTION), the commits to FLUSH_COMMITS or the
# time to FLUSH_SECONDS, and at close: O(rows) once per rows/8 changes, not on every commit.
FLUSH_ROWS = 50_000
FLUSH_FRACTION = 8
FLUSH_COMMITS = 1_000
FLUSH_SECONDS = 30.0
PATCHES_MAX = 16  # pending snapshot patches are merged into one beyond this many
# A partial upsert (absent attributes keep their values) of fewer keys than rows / this ratio
# reads the current values from RocksDB; a larger one from the snapshot (a scan of every row).
FILL_FROM_ROCKS_RATIO = 512
JSON_SLICE_ROWS = 1 << 16  # rows encoded per Arrow call: bounded buffers, no 2 GiB offsets
_NEEDS_ESCAPE = r'[\x00-\x1f"\\]'  # what a JSON string must escape (orjson escapes no more)


@dataclass(slots=True)
class Live:
    """An entity in memory: `table` with `patches` applied is the entity at `version`; the file
    holds `file_version` (-1: none usable); `unflushed` keys changed by `commits` since it."""

    table: pa.Table
    version: int
    file_version: int
    patches: list[Patch] = field(default_factory=list)
    unflushed: int = 0
    commits: int = 0
    written_at: float = field(default_factory=time.monotonic)

    def due(self, changed: int) -> bool:
        """Whether a commit changing `changed` more keys should rewrite the file."""
        rows = max(FLUSH_ROWS, self.table.num_rows // FLUSH_FRACTION)
        return (
            self.unflushed + changed >= rows
            or self.commits + 1 >= FLUSH_COMMITS
            or time.monotonic() - self.written_at >= FLUSH_SECONDS
        )

    def queue(self, entity: Entity, change: Patch, version: int) -> None:
        """The entity at `version`: `change` queued (applied at the next read), the queue merged
        into one patch past PATCHES_MAX."""
        self.patches.append(change)
        if len(self.patches) > PATCHES_MAX:
            self.patches = [merge_patches(entity, self.patches)]
        self.version = version

    def written(self) -> None:
        """The file now holds `version`."""
        self.file_version, self.unflushed, self.commits = self.version, 0, 0
        self.written_at = time.monotonic()


def rows_to_json(entity: Entity, table: pa.Table) -> list[bytes]:
    """Encode each row's attributes (not the key) as a JSON object: byte for byte what
    `codec.dumps({name: value, ...})` gives for the row, built column-wise with Arrow kernels
    (one small bytes object per row is the only per-row Python work)."""
    attrs = [a for a in entity.attributes if a.name in table.column_names]
    out: list[bytes] = []
    for start in range(0, table.num_rows, JSON_SLICE_ROWS):
        part = table.slice(start, JSON_SLICE_ROWS)
        if not attrs:
            out.extend([b"{}"] * part.num_rows)
            continue
        pieces: list[Any] = []
        for i, attr in enumerate(attrs):
            name = codec.dumps(attr.name)
            pieces.append(pa.scalar((b"{" if i == 0 else b",") + name + b":", pa.binary()))
            pieces.append(_json_tokens(attr.type.kind, part.column(attr.name)))
        pieces.append(pa.scalar(b"}", pa.binary()))
        joined = pc.binary_join_element_wise(*pieces, pa.scalar(b"", pa.binary()))
        out.extend(joined.to_pylist())
    return out


def _json_tokens(kind: TypeKind, col: pa.ChunkedArray | pa.Array) -> pa.Array:
    """One column as JSON text per row (binary, never null): what orjson writes for each value."""
    arr = col.combine_chunks() if isinstance(col, pa.ChunkedArray) else col
    if pa.types.is_dictionary(arr.type):
        arr = arr.dictionary_decode()
    # the same value mapping as codec.to_json_value: timestamps as int microseconds, the rest
    # that JSON lacks as their string form
    if kind is TypeKind.TIMESTAMP:
        arr = pc.cast(arr, pa.int64())
    elif kind in (TypeKind.DATE, TypeKind.DECIMAL, TypeKind.ENUM):
        arr = pc.cast(arr, pa.string())
    t = arr.type
    if pa.types.is_integer(t) or pa.types.is_boolean(t):
        text = pc.cast(arr, pa.string())  # decimal digits; true/false
    elif pa.types.is_string(t):
        quote = pa.scalar('"', pa.string())
        text = pc.binary_join_element_wise(quote, arr, quote, pa.scalar("", pa.string()))
        escape = pc.fill_null(pc.match_substring_regex(arr, _NEEDS_ESCAPE), False)
        if pc.any(escape).as_py():  # orjson for just those values
            dumps = codec.dumps
            escaped = [dumps(v) for v in arr.filter(escape).to_pylist()]
            text = pc.replace_with_mask(text, escape, pa.array(escaped, pa.binary()).cast(t))
    elif pa.types.is_floating(t):
        # orjson's own float formatting: one call per column; a float's text holds no comma
        values = arr.to_pylist()
        body = codec.dumps(values)[1:-1]
        return pa.array(body.split(b",") if values else [], type=pa.binary())
    else:  # anything unexpected: orjson, value by value
        dumps = codec.dumps
        return pa.array([dumps(v) for v in arr.to_pylist()], type=pa.binary())
    return pc.fill_null(text, "null").cast(pa.binary())


def rows_from_json(
    entity: Entity, keys: list[Any], ids: list[int] | np.ndarray, rows: list[bytes]
) -> pa.Table:
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


def rebuild(kv: KV, entity: Entity) -> pa.Table:
    """The entity table from RocksDB alone: every row, with its dense id."""
    prefix = codec.family_prefix("e", entity.name)
    keys: list[Any] = []
    enc_keys: list[bytes] = []
    rows: list[bytes] = []
    for k, v in kv.scan(prefix):
        enc = k[len(prefix) :]
        enc_keys.append(enc)
        keys.append(codec.decode_key(enc))
        rows.append(v)
    id_raw = kv.multi_get([codec.family_key("i", entity.name, k) for k in enc_keys])
    ids = [codec.unpack_u32(r) if r is not None else 0 for r in id_raw]
    return rows_from_json(entity, keys, ids, rows)


def changelog(kv: KV, entity: str, after: int, upto: int) -> list[tuple[int, bytes]]:
    """The changed-keys entries `c:<entity>` of versions in (after, upto], in version order."""
    prefix = codec.family_prefix("c", entity)
    out: list[tuple[int, bytes]] = []
    for k, v in kv.scan(prefix):
        version = codec.unpack_u64(k[len(prefix) :])
        if version > upto:
            break
        if version > after:
            out.append((version, v))
    return out


def catch_up(
    kv: KV, entity: Entity, table: pa.Table, version: int, to: int
) -> tuple[pa.Table, int] | None:
    """A snapshot of `version` brought to `to` from the keys each commit in between changed
    (re-read from RocksDB), and how many keys that was; None when an entry is missing (trimmed,
    or never written)."""
    found = changed_since(kv, entity, version, to)
    if found is None:
        return None
    keys, rows = found
    return patch(entity, table, keys, rows), len(keys)


def changed_since(kv: KV, entity: Entity, version: int, to: int) -> Patch | None:
    """The patch from `version` to `to`: the keys the commits in between changed and their rows
    now (from RocksDB); None when an entry is missing (trimmed, or never written)."""
    entries = changelog(kv, entity.name, version, to)
    if len(entries) != to - version or not entries:
        return None  # versions are unique and in order: the count says whether all are there
    key_type = arrow_type(entity.key.type)
    parts = [codec.ipc_read(v).column("k").combine_chunks().cast(key_type) for _, v in entries]
    keys = pc.unique(pa.concat_arrays(parts))
    return keys, stored_rows(kv, entity, keys, with_ids=True)


def stored_rows(kv: KV, entity: Entity, keys: pa.Array, *, with_ids: bool) -> pa.Table:
    """The rows of these keys that RocksDB holds, as an entity table (`__id` 0 unless asked)."""
    enc = codec.encode_keys(keys)
    raw = kv.multi_get(codec.encode_keys(keys, codec.family_prefix("e", entity.name)))
    present = [i for i, r in enumerate(raw) if r is not None]
    ids = [0] * len(present)
    if with_ids:
        id_raw = kv.multi_get([codec.family_key("i", entity.name, enc[i]) for i in present])
        ids = [codec.unpack_u32(r) if r is not None else 0 for r in id_raw]
    key_values = keys.to_pylist()
    return rows_from_json(
        entity, [key_values[i] for i in present], ids, [r for r in raw if r is not None]
    )


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


def fill_missing(entity: Entity, rows: pa.Table, current: pa.Table) -> pa.Table:
    """Upsert semantics: attributes absent from `rows` keep their current values (null if new).
    `current` holds the entity's rows (at least those of the keys in `rows`)."""
    missing = [a for a in entity.attributes if a.name not in rows.column_names]
    if not missing:
        return rows
    key = entity.key.name
    keys = rows.column(key)
    have = current.column(key).combine_chunks().cast(keys.type)
    at = pc.index_in(keys, value_set=have)  # null for a new key
    for attr in missing:
        col = current.column(attr.name)
        if pa.types.is_dictionary(col.type):
            col = col.cast(pa.string())
        rows = rows.append_column(attr.name, pc.take(col, at))
    return rows


def current_rows(entity: Entity, base: pa.Table, patches: list[Patch], keys: pa.Array) -> pa.Table:
    """The rows of `keys` as `apply_patches` would give them, without patching the whole table."""
    key = entity.key.name
    keys = keys.cast(base.schema.field(key).type)
    narrowed: list[Patch] = []
    for changed, rows in patches:
        mine = changed.filter(pc.is_in(changed, value_set=keys))
        if rows is not None:
            rows = rows.filter(pc.is_in(rows.column(key), value_set=keys))
        narrowed.append((mine, rows))
    return apply_patches(entity, base.filter(pc.is_in(base.column(key), value_set=keys)), narrowed)


def patch(
    entity: Entity, base: pa.Table, changed_keys: pa.Array | None, new_rows: pa.Table | None
) -> pa.Table:
    """The snapshot after a commit: rows whose key changed are dropped, then new rows appended."""
    if changed_keys is not None and len(changed_keys):
        keys = changed_keys.cast(base.schema.field(entity.key.name).type)
        keep = pc.invert(pc.is_in(base.column(entity.key.name), value_set=keys))
        base = base.filter(keep)
    if new_rows is not None and new_rows.num_rows:
        base = pa.concat_tables([base, conform(entity, new_rows)]).combine_chunks()
    return base


def apply_patches(entity: Entity, base: pa.Table, patches: list[Patch]) -> pa.Table:
    """`patch` for each of several commits in order, in one pass over the base."""
    if not patches:
        return base
    return patch(entity, base, *merge_patches(entity, patches))


def merge_patches(entity: Entity, patches: list[Patch]) -> Patch:
    """One patch equal to several in order: every key any of them changed, and each new row
    unless a later patch changed its key again."""
    if len(patches) == 1:
        return patches[0]
    key = entity.key.name
    key_type = arrow_type(entity.key.type)
    changed = pa.concat_arrays([c.cast(key_type) for c, _ in patches])
    seq = np.repeat(np.arange(len(patches), dtype=np.int64), [len(c) for c, _ in patches])
    last = pa.table({"k": changed, "s": seq}).group_by("k").aggregate([("s", "max")])
    parts = [(i, r) for i, (_, r) in enumerate(patches) if r is not None and r.num_rows]
    new_rows = None
    if parts:
        new_rows = pa.concat_tables([conform(entity, r) for _, r in parts])
        row_seq = np.repeat([i for i, _ in parts], [r.num_rows for _, r in parts])
        at = pc.index_in(new_rows.column(key), value_set=last.column("k"))
        new_rows = new_rows.filter(pc.equal(pc.take(last.column("s_max"), at), row_seq))
    return last.column("k").combine_chunks(), new_rows


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
    fd = os.open(path.parent, os.O_RDONLY)  # the rename itself is durable too
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


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


def current(kv: KV, entity: Entity, snap: Live, rows: pa.Table) -> pa.Table:
    """The stored rows of the keys in `rows`: a few from RocksDB, many from the snapshot."""
    keys = rows.column(entity.key.name).combine_chunks()
    if rows.num_rows * FILL_FROM_ROCKS_RATIO < snap.table.num_rows:
        return stored_rows(kv, entity, keys, with_ids=False)
    return current_rows(entity, snap.table, snap.patches, keys)


def last_per_key(rows: pa.Table, key: str) -> pa.Table:
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
