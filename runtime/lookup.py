"""Answers for applications, without DataFusion: membership, tags, profiles, changes, A/B splits.

`Audiences(store)` loads, once, per entity the key -> dense id dictionary, and per segment its
latest roaring bitmap, per tag its latest values (indexed by dense id). `reload()` reloads what
changed (cheap to call often: two RocksDB reads per entity when nothing did). Then:

    aud = Audiences(store)
    aud.is_member("lapsed_vip", 42)              # one key: a dict lookup and `id in bitmap`
    aud.is_member_batch("lapsed_vip", keys)      # NumPy bool array
    aud.segments_of("users", 42)                 # ["lapsed_vip", ...]
    aud.profile("users", 42)                     # attributes + tags + segments
    aud.changes("lapsed_vip", 3, 4)              # keys that entered and exited between versions
    aud.split("lapsed_vip", {"control": 10, "treatment": 90}, salt="camp-7")

Segments are found by name exactly, else regardless of case. `aud.segment("lapsed_vip")` gives
the loaded `Segment` itself (name, entity, generation, version, bitmap; `contains(key)`,
`contains_keys(keys)`): several answers from one handle agree with each other even when a reload
or a DROP happens meanwhile (`reload` replaces the whole loaded state in one step).

For the tightest loops take the structures themselves: `ids = aud.key_ids("users")` (a dict) and
`bm = aud.bitmap("lapsed_vip")`, then `ids.get(key, -1) in bm`.
"""

from __future__ import annotations

import datetime as dt
import decimal
import hashlib
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
from pyroaring import BitMap

from entities import TypeKind
from entities.arrow import ID_COLUMN
from entities.names import fold
from storage import Store, codec
from storage.audiences import AudienceReader, AudienceStore, Definition, Refresh


@dataclass(frozen=True, slots=True)
class Changes:
    segment: str
    since: int
    to: int
    entered: pa.Array  # keys
    exited: pa.Array


@dataclass
class _Entity:
    version: int
    ids: dict[Any, int]  # key -> dense id (live rows only)
    sorted_keys: np.ndarray | None  # int keys, sorted (for batch lookups)
    sorted_ids: np.ndarray | None
    lut: np.ndarray | None = None  # int keys in [0, ~4n]: key -> dense id (-1), for batches
    id_keys: dict[int, Any] | None = None  # built on first need

    def ids_of(self, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Dense ids of keys (-1 for unknown keys), vectorised for int keys."""
        if self.sorted_keys is not None and isinstance(keys, np.ndarray) and keys.dtype.kind == "i":
            if self.lut is not None:  # a gather
                lut = self.lut
                inside = (keys >= 0) & (keys < len(lut))
                return np.where(inside, lut[np.where(inside, keys, 0)], -1)
            sk, si = self.sorted_keys, self.sorted_ids
            assert si is not None
            if len(sk) == 0:
                return np.full(len(keys), -1, dtype=np.int64)
            pos = np.clip(np.searchsorted(sk, keys), 0, len(sk) - 1)
            return np.where(sk[pos] == keys, si[pos], -1)
        get = self.ids.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))


class Segment:
    """One refreshed segment as loaded: its latest version's members, with the key dictionary of
    its entity as it was when they were loaded. Everything a check reads is in this object, so a
    reload (or a DROP) meanwhile never mixes two states in one answer."""

    __slots__ = (
        "bitmap",
        "by_key",
        "entity",
        "generation",
        "key_mask",
        "mask",
        "name",
        "source",
        "version",
    )

    def __init__(
        self, name: str, entity: str, generation: int, version: int, bitmap: BitMap, source: _Entity
    ) -> None:
        self.name = name
        self.entity = entity
        self.generation = generation
        self.version = version
        self.bitmap = bitmap
        self.source = source
        self.by_key = _by_key(source, bitmap)  # int keys in [0, 2^32): no dict needed
        self.mask: np.ndarray | None = None  # dense id -> member, built on first batch check
        self.key_mask: np.ndarray | None = None  # int key -> member (entities with a lookup table)

    def contains(self, key: Any) -> bool:
        bk = self.by_key
        if bk is not None and type(key) is int:
            return 0 <= key <= 0xFFFFFFFF and key in bk
        i = self.source.ids.get(key)
        return i is not None and i in self.bitmap

    def contains_ids(self, ids: np.ndarray) -> np.ndarray:
        """Membership of dense ids (-1 is never a member)."""
        mask = self.mask
        if mask is None:
            members = np.frombuffer(self.bitmap.to_array(), dtype=np.uint32)
            size = max(int(members.max()) + 1 if len(members) else 0, 1)
            mask = np.zeros(size + 1, dtype=bool)  # the last slot answers out-of-range ids
            mask[members] = True
            self.mask = mask
        idx = np.where((ids < 0) | (ids >= len(mask) - 1), len(mask) - 1, ids)
        return mask[idx]

    def contains_keys(self, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        ent = self.source
        if ent.lut is not None and isinstance(keys, np.ndarray) and keys.dtype.kind == "i":
            # int keys in a dense range: one gather through key -> member (no ids in between)
            km = self.key_mask
            if km is None:
                member = self.contains_ids(ent.lut)  # -1 (no such key): never
                km = self.key_mask = np.append(member, False)  # the last slot: out of range
            last = len(km) - 1
            inside = (keys >= 0) & (keys < last)
            return km[np.where(inside, keys, last)]
        return self.contains_ids(ent.ids_of(keys))


def _by_key(ent: _Entity, members: BitMap) -> BitMap | None:
    """The members as a bitmap of their (int, 32-bit) keys: a check needs no dict."""
    if ent.sorted_keys is None or ent.sorted_ids is None or len(ent.sorted_keys) == 0:
        return None
    if ent.sorted_keys[0] < 0 or ent.sorted_keys[-1] > 0xFFFFFFFF:
        return None
    ids = np.frombuffer(members.to_array(), dtype=np.uint32).astype(np.int64)
    by_id = np.full(int(ent.sorted_ids.max()) + 1, -1, dtype=np.int64)
    by_id[ent.sorted_ids] = ent.sorted_keys
    keys = by_id[ids[ids < len(by_id)]]
    return BitMap(keys[keys >= 0].astype(np.uint32))


@dataclass
class _Tag:
    entity: str
    generation: int
    version: int
    columns: dict[str, np.ndarray]  # value / extras, indexed by dense id (object arrays)


@dataclass(frozen=True)
class _State:
    """What one load saw; replaced whole by `reload`, never changed in place."""

    counter: int
    entities: dict[str, _Entity]
    segments: dict[str, Segment]  # by name as defined
    folded: dict[str, str]  # fold(name) -> name
    tags: dict[str, _Tag]


class Audiences:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.aud = AudienceStore(store)
        self._state = _State(-1, {}, {}, {}, {})
        self.reload()

    # ---- loading -----------------------------------------------------------------------------
    def reload(self) -> bool:
        """Reload entities and audiences that changed since the last load; True if any did.
        Readers meanwhile keep the state they took; the new one replaces it in one step."""
        old = self._state
        entities = dict(old.entities)
        changed = False
        for ent in self.store.schema.entities:
            v = self.store.version(ent.name)
            cur = entities.get(ent.name)
            if cur is not None and cur.version != v:
                keys = self.store.keys_version(ent.name)
                if keys is not None and keys <= cur.version:
                    # only attributes changed since: the same keys and ids (a CDC apply of
                    # updates does not rebuild the map every follow tick). Only reload reads
                    # `version`, and reloads do not run at once (the server's take a lock)
                    cur.version = v
                    continue
            if cur is None or cur.version != v:
                entities[ent.name] = self._load_entity(ent.name, v)
                changed = True
        view = self.aud.view()  # the definitions and their versions as of one moment
        counter = view.counter()
        if counter == old.counter and not changed:
            return False
        segments, tags = self._load_audiences(view, old, entities)
        folded = {fold(n): n for n in segments}
        self._state = _State(counter, entities, segments, folded, tags)
        return True

    def _load_entity(self, name: str, version: int) -> _Entity:
        table = self.store.entity_table(name)
        key = self.store.entity(name).key.name
        keys = table.column(key)
        ids = table.column(ID_COLUMN).to_numpy()
        mapping = dict(zip(keys.to_pylist(), ids.tolist(), strict=True))
        sk = si = lut = None
        if pa.types.is_integer(keys.type) and len(keys):
            k = keys.to_numpy()
            order = np.argsort(k, kind="stable")
            sk, si = k[order], ids[order].astype(np.int64)
            if sk[0] >= 0 and sk[-1] < 4 * len(sk) + 1024:
                lut = np.full(int(sk[-1]) + 1, -1, dtype=np.int64)
                lut[sk] = si
        return _Entity(version, mapping, sk, si, lut)

    @staticmethod
    def _load_audiences(
        view: AudienceReader, old: _State, entities: dict[str, _Entity]
    ) -> tuple[dict[str, Segment], dict[str, _Tag]]:
        segments: dict[str, Segment] = {}
        tags: dict[str, _Tag] = {}
        for d in view.all_current():
            r = view.latest(d)
            if r is None:
                continue
            if d.kind == "SEGMENT":
                ent = entities[d.entity]
                prev = old.segments.get(d.name)
                if (
                    prev is not None
                    and (prev.generation, prev.version) == (d.generation, r.version)
                    and prev.source is ent
                ):
                    segments[d.name] = prev
                    continue
                bm = view.bitmap(d.generation, r.version)
                if bm is not None:
                    segments[d.name] = Segment(d.name, d.entity, d.generation, r.version, bm, ent)
                continue
            prev_tag = old.tags.get(d.name)
            if prev_tag is not None and (prev_tag.generation, prev_tag.version) == (
                d.generation,
                r.version,
            ):
                tags[d.name] = prev_tag
                continue
            values = view.tag_values(d.generation, r.version)
            if values is None:
                continue
            ids = values.column(ID_COLUMN).to_numpy()
            size = int(ids.max()) + 1 if len(ids) else 0
            cols: dict[str, np.ndarray] = {}
            for col in values.column_names:
                if col == ID_COLUMN:
                    continue
                arr = np.full(size, None, dtype=object)
                arr[ids] = np.array(values.column(col).to_pylist(), dtype=object)
                cols[col] = arr
            tags[d.name] = _Tag(d.entity, d.generation, r.version, cols)
        return segments, tags

    # ---- raw structures ----------------------------------------------------------------------
    def key_ids(self, entity: str) -> dict[Any, int]:
        return self._state.entities[entity].ids

    def segment(self, name: str) -> Segment | None:
        """The refreshed segment called `name` (exactly, else regardless of case), or None."""
        state = self._state
        seg = state.segments.get(name)
        if seg is None:
            exact = state.folded.get(fold(name))
            seg = None if exact is None else state.segments.get(exact)
        return seg

    def _seg(self, segment: str | Segment) -> Segment:
        if isinstance(segment, Segment):
            return segment
        seg = self.segment(segment)
        if seg is None:
            raise KeyError(f"no refreshed segment {segment!r}")
        return seg

    def bitmap(self, segment: str, version: int | None = None) -> BitMap:
        seg = self._seg(segment)
        if version is None:
            return seg.bitmap
        found = self.aud.bitmap(seg.generation, version)
        if found is None:
            raise KeyError(f"segment {segment!r} has no version {version}")
        return found

    def segment_names(self) -> list[str]:
        """The segments with a materialised version."""
        return sorted(self._state.segments)

    def current(self, segment: str) -> tuple[str, int] | None:
        """(entity, latest version) of a refreshed segment, or None."""
        seg = self.segment(segment)
        return None if seg is None else (seg.entity, seg.version)

    # ---- membership --------------------------------------------------------------------------
    def key_bitmap(self, segment: str) -> BitMap | None:
        """For int keys: the members' keys as a bitmap, for `key in bm` loops (None otherwise)."""
        return self._seg(segment).by_key

    def is_member(self, segment: str | Segment, key: Any) -> bool:
        return self._seg(segment).contains(key)

    def ids_of(self, entity: str, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Dense ids of keys (-1 for unknown keys), vectorised for int keys."""
        return self._state.entities[entity].ids_of(keys)

    def contains_ids(self, segment: str | Segment, ids: np.ndarray) -> np.ndarray:
        """Membership of dense ids (-1 is never a member)."""
        return self._seg(segment).contains_ids(ids)

    def is_member_batch(
        self, segment: str | Segment, keys: Sequence[Any] | np.ndarray
    ) -> np.ndarray:
        return self._seg(segment).contains_keys(keys)

    def segments_of(self, entity: str, key: Any) -> list[str]:
        state = self._state
        i = state.entities[entity].ids.get(key)
        if i is None:
            return []
        return sorted(n for n, s in state.segments.items() if s.entity == entity and i in s.bitmap)

    def size(self, segment: str, version: int | None = None) -> int:
        seg = self._seg(segment)
        if version is None:
            return len(seg.bitmap)
        d = self.aud.definition("SEGMENT", seg.name)
        refreshes = [] if d is None or d.generation != seg.generation else self.aud.refreshes(d)
        r = next((r for r in refreshes if r.version == version), None)
        if r is None:
            raise KeyError(f"segment {segment!r} has no version {version}")
        return int(r.info["size"])

    # ---- tags and profiles -------------------------------------------------------------------
    def tags_of(self, entity: str, key: Any) -> dict[str, Any]:
        state = self._state
        i = state.entities[entity].ids.get(key)
        out: dict[str, Any] = {}
        if i is None:
            return out
        for name, tag in sorted(state.tags.items()):
            if tag.entity != entity:
                continue
            for col, arr in tag.columns.items():
                label = name if col == "value" else f"{name}_{col}"
                out[label] = arr[i] if i < len(arr) else None
        return out

    def row(self, entity: str, key: Any) -> dict[str, Any] | None:
        """One entity row as stored (attributes as JSON values), or None: one RocksDB read."""
        return self.store.get(entity, key)

    def profile(self, entity: str, key: Any) -> dict[str, Any] | None:
        """Attributes (typed), tags and segments of one entity, or None if there is no such key."""
        row = self.store.get(entity, key)
        if row is None:
            return None
        ent = self.store.entity(entity)
        attrs = {c.name: _typed(row.get(c.name), c.type.kind) for c in ent.columns}
        return {
            "entity": entity,
            "key": key,
            "attributes": attrs,
            "tags": self.tags_of(entity, key),
            "segments": self.segments_of(entity, key),
        }

    # ---- versions, export, splits ------------------------------------------------------------
    def keys_of(self, entity: str, ids: Iterable[int]) -> pa.Array:
        ent = self._state.entities[entity]
        if ent.id_keys is None:
            ent.id_keys = {i: k for k, i in ent.ids.items()}
        id_keys = ent.id_keys
        out = []
        for i in ids:
            k = id_keys.get(i)
            out.append(k if k is not None else self.store.key_for_id(entity, i))
        key_type = self.store.entity_table(entity).schema.field(self.store.entity(entity).key.name)
        return pa.array(out, type=key_type.type)

    def changes(self, segment: str, since: int, to: int) -> Changes:
        """Keys that entered and exited the segment from version `since` to version `to`."""
        entity = self._seg(segment).entity
        a, b = self.bitmap(segment, since), self.bitmap(segment, to)
        return Changes(segment, since, to, self.keys_of(entity, b - a), self.keys_of(entity, a - b))

    # ---- the versions of a definition, for a change feed -------------------------------------
    def segment_definition(self, name: str) -> Definition | None:
        """The current definition of segment `name` (its generation says which object it is)."""
        return self.aud.definition("SEGMENT", name)

    def versions(self, d: Definition, since: int) -> list[Refresh]:
        """The refreshes of `d`'s generation from version `since` on (none once it is dropped)."""
        current = self.aud.definition(d.kind, d.name)
        if current is None or current.generation != d.generation:
            return []
        return [r for r in self.aud.refreshes(current) if r.version >= since]

    def moves(self, d: Definition, version: int) -> tuple[np.ndarray, np.ndarray] | None:
        """The dense ids that entered and exited at `version` of `d`, read from one snapshot;
        None when that version is gone (dropped)."""
        view = self.aud.view()
        came, left = (view.bitmap(d.generation, version, part) for part in ("+", "-"))
        if came is None or left is None:
            return None
        return (
            np.frombuffer(came.to_array(), dtype=np.uint32),
            np.frombuffer(left.to_array(), dtype=np.uint32),
        )

    def members(self, segment: str, version: int | None = None) -> pa.Table:
        entity = self._seg(segment).entity
        key = self.store.entity(entity).key.name
        return pa.table({key: self.keys_of(entity, self.bitmap(segment, version))})

    def export(self, segment: str, path: str | Path, fmt: str = "csv") -> int:
        """Write the members' keys as CSV or Parquet; returns how many."""
        table = self.members(segment)
        if fmt == "parquet":
            import pyarrow.parquet as pq

            pq.write_table(table, path)
        elif fmt == "csv":
            import pyarrow.csv as pacsv

            pacsv.write_csv(table, path)
        else:
            raise ValueError(f"format {fmt!r}: expected csv or parquet")
        return int(table.num_rows)

    def split(
        self, segment: str, groups: Mapping[str, float], salt: str, version: int | None = None
    ) -> dict[str, pa.Array]:
        """The members divided into named groups by percentage (see `group_of`)."""
        table = self.members(segment, version)
        keys = table.column(0).to_pylist()
        names = assign(keys, groups, salt)
        out: dict[str, pa.Array] = {}
        for g in groups:
            out[g] = pa.array([k for k, n in zip(keys, names, strict=True) if n == g])
        return out

    def group_of(
        self, segment: str, key: Any, groups: Mapping[str, float], salt: str
    ) -> str | None:
        if not self.is_member(segment, key):
            return None
        return assign([key], groups, salt)[0]


def bucket(key: Any, salt: str) -> float:
    """A stable number in [0, 100) for a key and salt: BLAKE2b of `salt`, NUL, the key's text."""
    digest = hashlib.blake2b(f"{salt}\0{key}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big") / 2**64 * 100


def assign(keys: Sequence[Any], groups: Mapping[str, float], salt: str) -> list[str | None]:
    """Each key's group: groups take consecutive shares of [0, 100) in the order given; a key
    whose bucket falls past the last share (when shares sum to less than 100) gets None. The
    same key, salt and groups always give the same group, on any machine."""
    total = sum(groups.values())
    if any(p < 0 for p in groups.values()) or total > 100 + 1e-9:
        raise ValueError("group shares must be >= 0 and sum to at most 100")
    bounds: list[tuple[float, str]] = []
    acc = 0.0
    for name, share in groups.items():
        acc += share
        bounds.append((acc, name))
    out: list[str | None] = []
    for k in keys:
        b = bucket(k, salt)
        out.append(next((n for hi, n in bounds if b < hi), None))
    return out


def _typed(value: Any, kind: TypeKind) -> Any:
    if value is None:
        return None
    if kind is TypeKind.TIMESTAMP and isinstance(value, int):
        return codec.EPOCH + dt.timedelta(microseconds=value)
    if kind is TypeKind.DATE and isinstance(value, str):
        return dt.date.fromisoformat(value)
    if kind is TypeKind.DECIMAL and isinstance(value, str | int):
        return decimal.Decimal(value)
    return value
