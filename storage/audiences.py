"""Persisted definitions and materialised values of tags, segments and clusters.

Key families (see `storage.codec` for the whole key space):
  d:<KIND>\\0<name>\\0<ver>       a definition version (JSON: entity, text, defined_at)
  a:<KIND>\\0<name>\\0<ver>       a refresh version (JSON: as_of, refreshed_at, facts)
  b:<name>\\0<ver>\\0m|+|-        a segment version's members / entered / exited (roaring bitmap)
  g:<name>\\0<ver>               a tag version's values: Arrow IPC (`__id` uint32, `value`, extras)
  u:audiences                  change counter (uint64), bumped by every commit of this module
`<KIND>` is TAG, SEGMENT or CLUSTERS; `<ver>` is a big-endian uint32 starting at 1, so a prefix
scan returns versions in order. Clusters store their per-entity labels as a tag of their name.
Everything one statement changes is committed as one `ChangeSet` (one synced write batch).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pyarrow as pa
from pyroaring import BitMap

from storage import codec
from storage.store import ChangeSet, Store

KINDS = ("TAG", "SEGMENT", "CLUSTERS")
COUNTER = b"u:audiences"


@dataclass(frozen=True, slots=True)
class Definition:
    kind: str
    name: str
    version: int
    entity: str
    text: str
    defined_at: dt.datetime


@dataclass(frozen=True, slots=True)
class Refresh:
    """One materialised version: the reference time its windows were anchored at (`as_of`), the
    wall-clock time it was written, the definition version it ran, and kind-specific facts
    (segments: size, entered, exited; tags: value type and counts; clusters: centroids)."""

    kind: str
    name: str
    version: int
    definition: int
    as_of: dt.datetime
    refreshed_at: dt.datetime
    info: dict[str, Any] = field(default_factory=dict)


def _k(family: str, *parts: str | int) -> bytes:
    out = family.encode() + b":"
    for i, p in enumerate(parts):
        if i:
            out += b"\x00"
        out += codec.pack_u32(p) if isinstance(p, int) else p.encode()
    return out


def _us(t: dt.datetime) -> int:
    return int(codec.to_json_value(t))


def _time(us: int) -> dt.datetime:
    return codec.EPOCH + dt.timedelta(microseconds=us)


class AudienceStore:
    """Reads and writes the audience families of one open `Store`."""

    def __init__(self, store: Store) -> None:
        self.store = store

    # ---- reading -----------------------------------------------------------------------------
    def counter(self) -> int:
        raw = self.store.get_meta(COUNTER)
        return 0 if raw is None else codec.unpack_u64(raw)

    def definitions(self, kind: str, name: str) -> list[Definition]:
        """Every version of a definition, oldest first."""
        prefix = _k("d", kind, name) + b"\x00"
        return [_definition(kind, name, k, v) for k, v in self.store.scan_meta(prefix)]

    def definition(self, kind: str, name: str) -> Definition | None:
        found = self.definitions(kind, name)
        return found[-1] if found else None

    def find(self, kind: str, name: str) -> Definition | None:
        """The latest definition called `name`: exactly, else regardless of case (as EQL
        resolves names); None when there is none."""
        found = self.definition(kind, name)
        if found is not None:
            return found
        folded = name.lower()
        return next(
            (self.definition(kind, n) for n in self.names(kind) if n.lower() == folded), None
        )

    def names(self, kind: str) -> list[str]:
        seen: list[str] = []
        for key, _ in self.store.scan_meta(_k("d", kind) + b"\x00"):
            name = key.split(b"\x00")[1].decode()
            if not seen or seen[-1] != name:
                seen.append(name)
        return seen

    def all_current(self) -> Iterator[Definition]:
        for kind in KINDS:
            for name in self.names(kind):
                d = self.definition(kind, name)
                if d is not None:
                    yield d

    def refreshes(self, kind: str, name: str) -> list[Refresh]:
        prefix = _k("a", kind, name) + b"\x00"
        out = []
        for key, raw in self.store.scan_meta(prefix):
            obj = codec.loads(raw)
            out.append(
                Refresh(
                    kind,
                    name,
                    codec.unpack_u32(key[len(prefix) :]),
                    int(obj["definition"]),
                    _time(int(obj["as_of"])),
                    _time(int(obj["refreshed_at"])),
                    dict(obj["info"]),
                )
            )
        return out

    def latest(self, kind: str, name: str) -> Refresh | None:
        found = self.refreshes(kind, name)
        return found[-1] if found else None

    def bitmap(self, name: str, version: int, part: str = "m") -> BitMap:
        raw = self.store.get_meta(_k("b", name, version) + b"\x00" + part.encode())
        return BitMap() if raw is None else BitMap.deserialize(raw)

    def tag_values(self, name: str, version: int) -> pa.Table | None:
        raw = self.store.get_meta(_k("g", name, version))
        return None if raw is None else pa.ipc.open_stream(pa.py_buffer(raw)).read_all()

    # ---- writing -----------------------------------------------------------------------------
    def _bump(self, change: ChangeSet) -> None:
        change.meta[COUNTER] = codec.pack_u64(self.counter() + 1)

    def define(self, kind: str, name: str, entity: str, text: str, now: dt.datetime) -> int:
        """Store a new definition version (history is kept); returns its number."""
        current = self.definition(kind, name)
        version = 1 if current is None else current.version + 1
        change = ChangeSet()
        change.meta[_k("d", kind, name, version)] = codec.dumps(
            {"entity": entity, "text": text, "defined_at": _us(now)}
        )
        self._bump(change)
        self.store.commit(change)
        return version

    def write_refresh(
        self,
        kind: str,
        name: str,
        definition: int,
        as_of: dt.datetime,
        info: dict[str, Any],
        *,
        members: BitMap | None = None,
        tag: pa.Table | None = None,
        tag_name: str | None = None,
    ) -> Refresh:
        """Commit one refresh: its metadata, the segment bitmaps (with entered/exited against
        the previous version) or the tag values, atomically."""
        prev = self.latest(kind, name)
        version = 1 if prev is None else prev.version + 1
        now = dt.datetime.now(dt.UTC)
        info = dict(info)
        change = ChangeSet()
        if members is not None:
            before = self.bitmap(name, prev.version) if prev is not None else BitMap()
            entered, exited = members - before, before - members
            for part, bm in (("m", members), ("+", entered), ("-", exited)):
                bm.run_optimize()
                change.meta[_k("b", name, version) + b"\x00" + part.encode()] = bm.serialize()
            info.update(size=len(members), entered=len(entered), exited=len(exited))
        if tag is not None:
            key_name = tag_name or name
            tag_prev = self.latest("TAG", key_name) if kind != "TAG" else prev
            tag_version = 1 if tag_prev is None else tag_prev.version + 1
            change.meta[_k("g", key_name, tag_version)] = _ipc(tag)
            if kind != "TAG":  # clusters: their labels are also a tag version
                change.meta[_k("a", "TAG", key_name, tag_version)] = codec.dumps(
                    {
                        "definition": definition,
                        "as_of": _us(as_of),
                        "refreshed_at": _us(now),
                        "info": {"type": info.get("type", "int"), "from": kind},
                    }
                )
        change.meta[_k("a", kind, name, version)] = codec.dumps(
            {"definition": definition, "as_of": _us(as_of), "refreshed_at": _us(now), "info": info}
        )
        self._bump(change)
        self.store.commit(change)
        return Refresh(kind, name, version, definition, as_of, now, info)

    def drop(self, kind: str, name: str) -> None:
        """Delete a definition with all its versions and values."""
        change = ChangeSet()
        prefixes = [_k("d", kind, name) + b"\x00", _k("a", kind, name) + b"\x00"]
        if kind == "SEGMENT":
            prefixes.append(_k("b", name) + b"\x00")
        else:  # tags, and the label tag of clusters
            prefixes += [_k("g", name) + b"\x00", _k("a", "TAG", name) + b"\x00"]
        for prefix in prefixes:
            change.meta_deletes.extend(k for k, _ in self.store.scan_meta(prefix))
        self._bump(change)
        self.store.commit(change)


def _definition(kind: str, name: str, key: bytes, raw: bytes) -> Definition:
    obj = codec.loads(raw)
    return Definition(
        kind,
        name,
        codec.unpack_u32(key[-4:]),
        str(obj["entity"]),
        str(obj["text"]),
        _time(int(obj["defined_at"])),
    )


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
