"""Persisted definitions and materialised values of tags, segments and clusters.

Names and identity. A definition is found by its name through a name index; names are unique per
kind regardless of case (`entities.names.fold`; TAG and CLUSTERS also share names, which the
definition check enforces). Everything else is keyed by the definition's *generation*: a number
given out once per store, when a name is defined while no definition holds it, and never reused.
A segment dropped and defined again is a new object: its versions, bitmaps, values, cached
structures and table names share nothing with the old one's. User text is in one key only, as a
length-prefixed part, so no name, whatever characters it holds, can alias another.

Key families (see `storage.codec` for the whole key space):
  x:<kind><folded name>      name index: JSON {generation, name (as first defined)}
  d:<gen><ver>               a definition version (JSON: kind, name, entity, text, defined_at)
  a:<gen><ver>               a refresh version (JSON: definition, as_of, refreshed_at, info)
  b:<gen><ver><part>         a segment version's members `m`, entered `+`, exited `-` (roaring)
  g:<gen><ver>               a tag or clusters version's values: Arrow IPC (`__id`, `value`, ...)
  u:audiences                change counter (uint64), bumped by every commit of this module
  u:generation               the last generation given out (uint64)
`<kind>` and `<folded name>` are a big-endian uint32 byte length and the UTF-8 bytes; `<gen>` is
a big-endian uint64, `<ver>` a big-endian uint32 from 1 (prefix scans return versions in order).
Everything one statement changes (a definition and its first refresh included) is one
`ChangeSet` (one synced write batch). Stores of format 1 are converted by `storage.migrate`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Protocol

import pyarrow as pa
from pyroaring import BitMap

from entities.names import fold
from storage import codec
from storage.store import ChangeSet, Store

KINDS = ("TAG", "SEGMENT", "CLUSTERS")
COUNTER = b"u:audiences"
GENERATION = b"u:generation"
PARTS = ("m", "+", "-")  # members, entered, exited


@dataclass(frozen=True, slots=True)
class Definition:
    kind: str
    name: str
    generation: int  # the object's identity: never given to another definition
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
    generation: int
    version: int
    definition: int
    as_of: dt.datetime
    refreshed_at: dt.datetime
    info: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class Materialised:
    """What one refresh computed, before it is stored: a segment's members or a tag's values
    (clusters: their labels as `value`), and the facts to keep."""

    info: dict[str, Any]
    members: BitMap | None = None
    values: pa.Table | None = None


# ---- keys (layout in storage.codec) ---------------------------------------------------------
def name_key(kind: str, name: str) -> bytes:
    return codec.audience_name_key(kind, fold(name))


gen_key = codec.generation_key


def bitmap_key(generation: int, version: int, part: str) -> bytes:
    return gen_key(b"b", generation, version) + part.encode()


def _us(t: dt.datetime) -> int:
    return int(codec.to_json_value(t))


def _time(us: int) -> dt.datetime:
    return codec.EPOCH + dt.timedelta(microseconds=us)


class Reads(Protocol):
    def get(self, key: bytes) -> bytes | None: ...

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]: ...


class AudienceReader:
    """The reading half: over the live store, or over one consistent snapshot (`view()`)."""

    def __init__(self, reads: Reads) -> None:
        self._reads = reads

    def counter(self) -> int:
        raw = self._reads.get(COUNTER)
        return 0 if raw is None else codec.unpack_u64(raw)

    def _entry(self, kind: str, name: str) -> tuple[int, str] | None:
        raw = self._reads.get(name_key(kind, name))
        if raw is None:
            return None
        obj = codec.loads(raw)
        return int(obj["generation"]), str(obj["name"])

    def names(self, kind: str) -> list[str]:
        """The names of a kind as defined, sorted regardless of case."""
        prefix = b"x:" + codec.text_part(kind)
        names = [str(codec.loads(raw)["name"]) for _, raw in self._reads.scan(prefix)]
        return sorted(names, key=lambda n: (fold(n), n))

    def definitions(self, kind: str, name: str) -> list[Definition]:
        """Every version of the definition called `name` (regardless of case), oldest first."""
        entry = self._entry(kind, name)
        if entry is None:
            return []
        generation, stored = entry
        out = []
        prefix = gen_key(b"d", generation)
        for key, raw in self._reads.scan(prefix):
            obj = codec.loads(raw)
            out.append(
                Definition(
                    kind,
                    stored,
                    generation,
                    codec.unpack_u32(key[len(prefix) :]),
                    str(obj["entity"]),
                    str(obj["text"]),
                    _time(int(obj["defined_at"])),
                )
            )
        return out

    def definition(self, kind: str, name: str) -> Definition | None:
        """The latest definition called `name` (regardless of case), or None."""
        found = self.definitions(kind, name)
        return found[-1] if found else None

    def all_current(self) -> Iterator[Definition]:
        for kind in KINDS:
            for name in self.names(kind):
                d = self.definition(kind, name)
                if d is not None:
                    yield d

    def refreshes(self, d: Definition) -> list[Refresh]:
        prefix = gen_key(b"a", d.generation)
        out = []
        for key, raw in self._reads.scan(prefix):
            obj = codec.loads(raw)
            out.append(
                Refresh(
                    d.kind,
                    d.name,
                    d.generation,
                    codec.unpack_u32(key[len(prefix) :]),
                    int(obj["definition"]),
                    _time(int(obj["as_of"])),
                    _time(int(obj["refreshed_at"])),
                    dict(obj["info"]),
                )
            )
        return out

    def latest(self, d: Definition) -> Refresh | None:
        found = self.refreshes(d)
        return found[-1] if found else None

    def bitmap(self, generation: int, version: int, part: str = "m") -> BitMap | None:
        """A stored bitmap; None when it is not there (that version, or its segment, is gone)."""
        raw = self._reads.get(bitmap_key(generation, version, part))
        return None if raw is None else BitMap.deserialize(raw)

    def tag_values(self, generation: int, version: int) -> pa.Table | None:
        raw = self._reads.get(gen_key(b"g", generation, version))
        return None if raw is None else pa.ipc.open_stream(pa.py_buffer(raw)).read_all()


class AudienceStore(AudienceReader):
    """Reads and writes the audience families of one open `Store`."""

    def __init__(self, store: Store) -> None:
        super().__init__(store.kv)
        self.store = store

    def view(self) -> AudienceReader:
        """Reads that agree with each other: one snapshot of the store, taken now."""
        return AudienceReader(self.store.kv.snapshot())

    # ---- writing -----------------------------------------------------------------------------
    def _bump(self, change: ChangeSet) -> None:
        change.meta[COUNTER] = codec.pack_u64(self.counter() + 1)

    def define(
        self,
        kind: str,
        name: str,
        entity: str,
        text: str,
        now: dt.datetime,
        refresh: tuple[dt.datetime, Materialised] | None = None,
    ) -> tuple[Definition, Refresh | None]:
        """Store a new definition version (a new generation when no definition holds the name;
        history is kept) and, with `refresh` (reference time, what was computed), its first
        refresh of that version, in one commit."""
        with self.store.lock:
            current = self.definition(kind, name)
            change = ChangeSet()
            if current is None:
                raw = self._reads.get(GENERATION)
                generation = (0 if raw is None else codec.unpack_u64(raw)) + 1
                change.meta[GENERATION] = codec.pack_u64(generation)
                stored, version = name, 1
                change.meta[name_key(kind, name)] = codec.dumps(
                    {"generation": generation, "name": name}
                )
            else:
                generation, stored, version = current.generation, current.name, current.version + 1
            change.meta[gen_key(b"d", generation, version)] = codec.dumps(
                {
                    "kind": kind,
                    "name": stored,
                    "entity": entity,
                    "text": text,
                    "defined_at": _us(now),
                }
            )
            d = Definition(kind, stored, generation, version, entity, text, now)
            r = None if refresh is None else self._add_refresh(change, d, current, *refresh)
            self._bump(change)
            self.store.commit(change)
        return d, r

    def write_refresh(self, d: Definition, as_of: dt.datetime, computed: Materialised) -> Refresh:
        """Commit one refresh of `d`: its facts and the segment bitmaps (with entered/exited
        against the previous version) or the values, atomically. KeyError when `d` was dropped
        (or dropped and defined again) meanwhile."""
        with self.store.lock:
            current = self.definition(d.kind, d.name)
            if current is None or current.generation != d.generation:
                raise KeyError(f"{d.kind.lower()} {d.name!r} was dropped")
            change = ChangeSet()
            r = self._add_refresh(change, d, current, as_of, computed)
            self._bump(change)
            self.store.commit(change)
        return r

    def _add_refresh(
        self,
        change: ChangeSet,
        d: Definition,
        existing: Definition | None,
        as_of: dt.datetime,
        computed: Materialised,
    ) -> Refresh:
        prev = None if existing is None else self.latest(existing)
        version = 1 if prev is None else prev.version + 1
        now = dt.datetime.now(dt.UTC)
        info = dict(computed.info)
        members = computed.members
        if members is not None:
            before = BitMap()
            if prev is not None:
                before = self.bitmap(d.generation, prev.version) or BitMap()
            entered, exited = members - before, before - members
            for part, bm in zip(PARTS, (members, entered, exited), strict=True):
                bm.run_optimize()
                change.meta[bitmap_key(d.generation, version, part)] = bm.serialize()
            info.update(size=len(members), entered=len(entered), exited=len(exited))
        if computed.values is not None:
            change.meta[gen_key(b"g", d.generation, version)] = _ipc(computed.values)
        change.meta[gen_key(b"a", d.generation, version)] = codec.dumps(
            {"definition": d.version, "as_of": _us(as_of), "refreshed_at": _us(now), "info": info}
        )
        return Refresh(d.kind, d.name, d.generation, version, d.version, as_of, now, info)

    def drop(self, d: Definition) -> None:
        """Delete a definition with all its versions and values; its generation is retired."""
        with self.store.lock:
            current = self.definition(d.kind, d.name)
            if current is None or current.generation != d.generation:
                return  # already gone
            change = ChangeSet()
            change.meta_deletes.append(name_key(d.kind, d.name))
            for family in (b"d", b"a", b"b", b"g"):
                prefix = gen_key(family, d.generation)
                change.meta_deletes.extend(k for k, _ in self.store.scan_meta(prefix))
            self._bump(change)
            self.store.commit(change)


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    options = pa.ipc.IpcWriteOptions(compression="zstd")
    with pa.ipc.new_stream(sink, table.schema, options=options) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())
