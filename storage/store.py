"""The embedded store: one data directory holding entities, id dictionaries and event segments.

Layout of a data directory:
  rocks/                    RocksDB: entity rows, id dictionaries, manifests, ledger, offsets
  schema.yaml               the schema the store was created with (also kept in RocksDB)
  events/<stream>/*.arrow   immutable event segments (Arrow IPC); exactly those in the manifest
  staging/                  segments an older eql wrote and had not yet renamed into events/
  snapshots/<entity>.arrow  columnar snapshots of entity state (derived; written now and then,
                            caught up or rebuilt when behind RocksDB)

Every change is a `ChangeSet` committed as one synced RocksDB write batch. Event segments are
written under events/ and fsynced first, under names no manifest lists yet; the batch that lists
them in the manifest is the commit point. Opening the store for writing deletes what no manifest
lists (and rolls forward the staging/ renames of stores written by an older eql), so a crash at
any point leaves all of a change or none of it. The rows a commit replaces go into the same batch
as the entity's history (`storage.history`), from which `entity_table_at` reads a past time.

Readers in other processes (`Store.open(read_only=True)`) follow the writer: `follow()` catches
their RocksDB view up with the writer's commits (whole write batches only) and brings what they
keep in memory (entity snapshots, stream tails) to that view, so a reader sees a prefix of the
commits, never half of one. A segment file exists before the batch that lists it, so a reader
never meets a listed file that is not there.
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc

from entities import Entity, Schema, parse_schema
from entities.arrow import ID_COLUMN, arrow_type, entity_schema, stream_schema
from storage import codec, history, indexes, migrate, segments, snapshot
from storage.ids import IdsExhausted, ensure_ids
from storage.kv import DURABILITY, KV, StoreLockedError

log = logging.getLogger("eql.storage")

FORMAT_VERSION = migrate.CURRENT  # storage.migrate upgrades older stores at open
# Appends smaller than this go to the stream's tail in RocksDB (one Arrow IPC blob per commit),
# so that many small commits (CDC transactions) do not make many small segment files; the tail is
# folded into a segment, in the same batch, once it holds TAIL_MAX_ROWS rows.
SEGMENT_MIN_ROWS = 20_000
TAIL_MAX_ROWS = 200_000
COMMITS_KEY = b"m:commits"  # how many commits the store has had (readers compare it)
AS_OF_TABLES = 2  # entity tables as of a past time kept (`entity_table_at`)
HistoryGone = history.HistoryGone

Segment = segments.Segment


class StoreError(Exception):
    """A problem with the data directory, said in words a user can act on."""


@dataclass(slots=True)
class ChangeSet:
    """Everything one committed unit changes. Applied by `Store.commit` in one write batch."""

    upserts: dict[str, pa.Table] = field(default_factory=dict)  # entity -> typed rows
    deletes: dict[str, list[Any]] = field(default_factory=dict)  # entity -> keys
    appends: dict[str, list[pa.Table]] = field(default_factory=dict)  # stream -> typed events
    meta: dict[bytes, bytes] = field(default_factory=dict)  # ledger entries, offsets
    meta_deletes: list[bytes] = field(default_factory=list)
    # when the changes took effect (CDC: the source transaction's timestamp); None: the commit's
    # wall clock. The time of the entity history (`storage.history`), never later than the clock
    effective_time: dt.datetime | None = None
    # the keys this creates were there since forever (a CDC initial snapshot); so are those a
    # change set without an effective time (an import) creates before any row of the entity
    # changed: they add to its first load
    baseline: bool = False

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


class Store:
    """An open data directory. One writer process at a time (RocksDB's lock enforces it)."""

    def __init__(self, data_dir: Path, kv: KV, schema: Schema) -> None:
        self.data_dir = data_dir
        self.kv = kv
        self.schema = schema
        self._lock = threading.RLock()
        self._snapshots: dict[str, snapshot.Live] = {}
        self._trim: dict[str, int] = {}  # entity -> drop its `c:` entries up to this version
        self._tails: dict[str, pa.Table] = {}
        self._at: dict[tuple[str, int, int], pa.Table] = {}  # (entity, time, version) -> table
        # the streams' per-entity indexes (`storage.rollups`), extended as the streams grow
        self.indexes = indexes.Indexes(self.event_table, self.stream_version, self.event_parts)
        self._seen = self._commit_count()  # a reader: the writer's commits its caches reflect

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
        if int(fmt) > FORMAT_VERSION:
            kv.close()
            raise StoreError(
                f"{root} has store format {int(fmt)}, written by a newer eql; this one reads "
                f"formats up to {FORMAT_VERSION}"
            )
        if int(fmt) < FORMAT_VERSION:
            kv = cls._upgraded(root, kv, int(fmt), read_only)
        source = (kv.get(b"m:schema_file") or b"<schema>").decode()
        store = cls(root, kv, parse_schema(text.decode("utf-8"), source))
        if not read_only:
            store._recover()
            store.compact_history()
        return store

    def _commit_count(self) -> int:
        raw = self.kv.get(COMMITS_KEY)
        return 0 if raw is None else codec.unpack_u64(raw)

    def follow(self) -> bool:
        """A reader: see every commit the writer has made by now; whether anything changed since
        the last call. Under the store's lock, which the engine holds while it registers a query's
        tables, so a query reads all of them at one commit. (A writer: nothing to do.)"""
        if not self.kv.read_only:
            return False
        with self._lock:
            if not self.kv.catch_up():  # the writer's files did not move: nothing new
                return False
            seen = self._commit_count()
            if seen == self._seen:
                return False
            self._seen = seen
            self._tails.clear()
            for name, snap in list(self._snapshots.items()):
                version = self.version(name)
                if version == snap.version:
                    continue
                found = snapshot.changed_since(self.kv, self.entity(name), snap.version, version)
                if found is None:  # the writer trimmed the entries: reload it when next used
                    del self._snapshots[name]
                    continue
                snap.queue(self.entity(name), found, version)  # as the writer's own commits
            return True

    @staticmethod
    def _upgraded(root: Path, kv: KV, fmt: int, read_only: bool) -> KV:
        """`kv` upgraded to the current format (`storage.migrate`); a reader opens the store for
        writing for that, once, which it cannot while a writer of the old eql holds it."""
        writer = kv
        if read_only:
            kv.close()
            try:
                writer = KV(root / "rocks")
            except StoreLockedError:
                raise StoreError(
                    f"{root} has store format {fmt}, which this eql upgrades when it opens the "
                    "store for writing; another process holds it now: stop it, or run a command "
                    "that writes (e.g. `eql serve`) once"
                ) from None
        for note in migrate.upgrade(writer, fmt):
            log.warning("store upgrade of %s: %s", root, note)
        if read_only:
            writer.close()
            return KV(root / "rocks", read_only=True)
        return writer

    @property
    def lock(self) -> threading.RLock:
        """Held around read-modify-write sequences of metadata (and by every commit)."""
        return self._lock

    def close(self) -> None:
        """Persist snapshots that are behind (a writer), then close RocksDB."""
        try:
            if not self.kv.read_only:
                with self._lock:
                    for name, snap in self._snapshots.items():
                        if snap.file_version != snap.version:
                            self._flush(name, snap)
                    trims = self._trim_keys(self._trim)
                    if trims:
                        self.kv.commit({}, trims)
        finally:
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
            segments.fsync(live)
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

    def keys_version(self, entity: str) -> int | None:
        """The entity version of the last commit that created or deleted one of its keys (an
        update of attributes alone leaves it); None: unknown (a store from before it was kept),
        take any version change as a change of keys."""
        raw = self.kv.get(codec.family_key("k", entity))
        return None if raw is None else codec.unpack_u64(raw)

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
        """The columnar snapshot of an entity (key, attributes, __id), as of the last commit."""
        with self._lock:
            snap = self._snapshot(entity)
            if snap.patches:
                snap.table = snapshot.apply_patches(self.entity(entity), snap.table, snap.patches)
                snap.patches = []
            return snap.table

    def entity_table_at(self, entity: str, at: int) -> pa.Table:
        """The entity table as it was at `at` (UTC microseconds), from the current one and the
        history (`storage.history`); raises `HistoryGone` before the entity's horizon."""
        with self._lock:
            key = (entity, at, self.version(entity))
            found = self._at.get(key)
            if found is None:
                ent = self.entity(entity)
                current = self.entity_table(entity)
                found = history.table_at(self.kv, ent, current, at, ent.history_days)
                if len(self._at) >= AS_OF_TABLES:
                    del self._at[next(iter(self._at))]  # the oldest
                self._at[key] = found
            return found

    def history_time(self, entity: str) -> int | None:
        """The effective time (UTC µs) of the entity's newest history record; None: none."""
        return history.meta(self.kv, entity).get("last")

    def compact_history(self, now: dt.datetime | None = None) -> dict[str, int]:
        """Drop history older than each entity's retention (`history: N days`) as of `now`
        (default: the clock); the records dropped per entity. Run by a writer's open (and for an
        entity whenever a commit rewrites its snapshot file)."""
        with self._lock:
            dropped = {
                e.name: history.compact(self.kv, e.name, e.history_days, now)
                for e in self.schema.entities
            }
        return {k: v for k, v in dropped.items() if v}

    def _snapshot(self, entity: str) -> snapshot.Live:
        """The entity's snapshot, loaded on first use: the file if it is current, caught up from
        the changed keys if it is behind, else rebuilt from RocksDB."""
        snap = self._snapshots.get(entity)
        if snap is not None:
            return snap
        ent = self.entity(entity)
        version = self.version(entity)
        loaded = snapshot.read(self._snapshot_path(entity))
        caught: tuple[pa.Table, int] | None = None
        file_version = -1
        if loaded is not None and loaded[0].schema.equals(entity_schema(ent)):
            file_version = loaded[1]
            if file_version == version:
                caught = loaded[0], 0
            elif file_version < version:
                caught = snapshot.catch_up(self.kv, ent, loaded[0], file_version, version)
        if caught is None:
            snap = snapshot.Live(self._rebuild_snapshot(ent), version, -1)
        else:
            snap = snapshot.Live(
                caught[0], version, file_version, [], caught[1], version - file_version
            )
        self._snapshots[entity] = snap
        if not self.kv.read_only:
            if caught is None:
                self._flush(entity, snap)  # rebuilt: persist it now
            else:
                self._trim[entity] = file_version  # entries a crash may have left behind
                if snap.due(0):
                    self._flush(entity, snap)
        return snap

    def _snapshot_path(self, entity: str) -> Path:
        return self.data_dir / "snapshots" / f"{entity}.arrow"

    def _flush(self, entity: str, snap: snapshot.Live, *, trim: bool = True) -> None:
        """Write the snapshot file (after the commit point); a failed write loses nothing."""
        table = self.entity_table(entity)
        try:
            snapshot.write(self._snapshot_path(entity), table, snap.version)
        except OSError:
            return  # derived data: the next open catches up or rebuilds from RocksDB
        snap.written()
        if trim:
            self._trim[entity] = snap.version

    def _trim_keys(self, trims: dict[str, int]) -> list[bytes]:
        """The `c:` entries no longer needed (their versions are in the snapshot files)."""
        out: list[bytes] = []
        for name, upto in trims.items():
            out.extend(
                codec.family_key("c", name, codec.pack_u64(v))
                for v, _ in snapshot.changelog(self.kv, name, -1, upto)
            )
        return out

    def _rebuild_snapshot(self, ent: Entity) -> pa.Table:
        return snapshot.rebuild(self.kv, ent)

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

    def stream_version(self, stream: str) -> tuple[int, int]:
        """What changes whenever the stream grows: (segments, rows in the tail)."""
        return len(self.segments(stream)), self.tail_table(stream).num_rows

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
            tables = [codec.ipc_read(v) for _, v in self._tail_blobs(stream)]
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
        patches: list[tuple[str, pa.Array, pa.Table | None, int, bool]] = []
        flushed: dict[str, int] = {}  # entities whose file this commit rewrites
        at = history.commit_time(change.effective_time)
        for name in sorted(set(change.upserts) | set(change.deletes)):
            ent = self.entity(name)
            version = self.version(name) + 1
            snap = self._snapshot(name)
            if snap.version != version - 1:  # never expected: RocksDB is the truth
                del self._snapshots[name]
                snap = self._snapshot(name)
            key_type = arrow_type(ent.key.type)
            deleted = pa.array(list(change.deletes.get(name, ())), type=key_type)
            changed: pa.Array = deleted
            rows = change.upserts.get(name)
            snap_rows: pa.Table | None = None
            upserted: tuple[pa.Array, list[bytes], pa.Table | None] | None = None
            if rows is not None and rows.num_rows:
                rows = snapshot.last_per_key(rows, ent.key.name)
                current = None  # the stored rows of these keys, when a partial upsert reads them
                if any(a.name not in rows.column_names for a in ent.attributes):
                    current = snapshot.current(self.kv, ent, snap, rows)
                    rows = snapshot.fill_missing(ent, rows, current)
                rows = snapshot.finite_floats(rows)
                keys = rows.column(ent.key.name).combine_chunks().cast(key_type)
                enc = codec.encode_keys(keys)
                try:
                    ids, new_ids[name] = ensure_ids(self.kv, name, enc, puts)
                except IdsExhausted as exc:
                    raise StoreError(str(exc)) from None
                prefix = codec.family_prefix("e", name)
                values = snapshot.rows_to_json(ent, rows)
                puts.update(zip([prefix + k for k in enc], values, strict=True))
                upserted = keys, values, current
                # keys upserted in this set win over deletes of the same key in it
                if len(deleted):
                    deleted = deleted.filter(pc.invert(pc.is_in(deleted, value_set=keys)))
                changed = pa.concat_arrays([deleted, keys])
                snap_rows = rows.append_column(ID_COLUMN, pa.array(ids, type=pa.uint32()))
            dels.extend(codec.encode_keys(deleted, codec.family_prefix("e", name)))
            baseline = change.baseline or (
                change.effective_time is None and self.history_time(name) is None
            )  # an import into an entity none of whose rows changed yet adds to its first load
            keys_changed = history.note(
                self.kv, ent, snap, version, at, upserted, deleted, baseline, puts
            )
            keys_key = codec.family_key("k", name)
            # (a store from before `k:` gets it at its next commit, whatever that changes)
            if keys_changed or self.kv.get(keys_key) is None:
                puts[keys_key] = codec.pack_u64(version)
            puts[codec.family_key("v", name)] = codec.pack_u64(version)
            flush = snap.due(len(changed))
            if flush:  # the file will hold this version: the changed keys before it are moot
                flushed[name] = version - 1
            else:
                entry = codec.ipc_write(pa.table({"k": changed}))
                puts[codec.family_key("c", name, codec.pack_u64(version))] = entry
            patches.append((name, changed, snap_rows, version, flush))
        dels.extend(self._trim_keys({**self._trim, **flushed}))

        tails: dict[str, pa.Table] = {}
        dels.extend(change.meta_deletes)
        appended: dict[str, int] = {}
        written: set[Path] = set()  # the folders of the segments this commit writes
        for name, tables in change.appends.items():
            st = self.schema.stream(name)
            if st is None:
                raise StoreError(f"unknown event stream {name!r}")
            schema = stream_schema(self.schema, name)
            rows = pa.concat_tables([segments.conform_events(t, schema) for t in tables])
            if rows.num_rows == 0:
                continue
            tail = self.tail_table(name)
            if rows.num_rows < SEGMENT_MIN_ROWS and tail.num_rows + rows.num_rows < TAIL_MAX_ROWS:
                seq = codec.unpack_u64(self.kv.get(codec.family_key("q", name)) or bytes(8))
                puts[codec.family_key("t", name, codec.pack_u64(seq))] = codec.ipc_write(rows)
                puts[codec.family_key("q", name)] = codec.pack_u64(seq + 1)
                tails[name] = pa.concat_tables([tail, rows])
                appended[name] = rows.num_rows
                continue
            if tail.num_rows:  # fold the tail into this segment, in this same batch
                dels.extend(k for k, _ in self._tail_blobs(name))
                tails[name] = schema.empty_table()
                rows = pa.concat_tables([tail, rows])
            segs = self.segments(name)
            seg, path = segments.write_segment(self.data_dir, self.schema, name, rows, len(segs))
            written.add(path.parent)
            segs.append(seg)
            puts[codec.family_key("s", name)] = codec.dumps(
                {"segments": [segments.manifest_json(s) for s in segs]}
            )
            appended[name] = rows.num_rows - tail.num_rows

        for folder in written:  # the new names are durable before the batch that lists them
            segments.fsync(folder)
        puts[COMMITS_KEY] = codec.pack_u64(self._seen + 1)
        self.kv.commit(puts, dels)  # the commit point
        self._seen += 1

        self._tails.update(tails)
        self._trim.clear()
        for name, changed, snap_rows, version, flush in patches:
            snap = self._snapshots[name]
            snap.queue(self.entity(name), (changed, snap_rows), version)
            snap.unflushed += len(changed)
            snap.commits += 1
            if flush:  # now and then: the file, and history past the retention
                self._flush(name, snap, trim=False)
                history.compact(self.kv, name, self.entity(name).history_days)
        return CommitResult(
            upserted={k: v.num_rows for k, v in change.upserts.items()},
            deleted={k: len(v) for k, v in change.deletes.items()},
            appended=appended,
            new_ids=new_ids,
        )

    def read_segment(self, stream: str, segment: Segment) -> pa.Table:
        """A committed segment as an Arrow table backed by a memory map (no copy)."""
        return segments.read_segment(self.segment_path(stream, segment))

    def event_parts(self, stream: str) -> list[tuple[str, pa.Table, int | None, int | None]]:
        """The stream in its stored parts, in append order: (an id that names these rows for as
        long as they exist, the rows, their min and max time in UTC µs or None): each segment,
        then the tail."""
        schema = stream_schema(self.schema, stream)
        parts = [
            (s.file, self.read_segment(stream, s).cast(schema), s.min_time, s.max_time)
            for s in self.segments(stream)
        ]
        tail = self.tail_table(stream)
        parts.append((f"tail:{len(parts)}:{tail.num_rows}", tail, None, None))
        return parts

    def event_table(self, stream: str) -> pa.Table:
        """Every committed event of a stream: the segments (memory-mapped) and the tail."""
        schema = stream_schema(self.schema, stream)
        parts = [self.read_segment(stream, s) for s in self.segments(stream)]
        parts.append(self.tail_table(stream))
        return pa.concat_tables([p.cast(schema) for p in parts])
