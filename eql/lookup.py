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
from storage import Store, codec
from storage.audiences import AudienceStore

ID_COLUMN = "__id"


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


@dataclass
class _Segment:
    entity: str
    version: int
    bitmap: BitMap
    by_key: BitMap | None = None  # int keys in [0, 2^32): the members' keys (no dict needed)
    mask: np.ndarray | None = None  # dense id -> member, built on first batch check
    key_mask: np.ndarray | None = None  # int key -> member (entities with a lookup table)
    source: _Entity | None = None  # the entity state `by_key` was built from


@dataclass
class _Tag:
    entity: str
    version: int
    columns: dict[str, np.ndarray]  # value / extras, indexed by dense id (object arrays)


class Audiences:
    def __init__(self, store: Store) -> None:
        self.store = store
        self.aud = AudienceStore(store)
        self._counter = -1
        self._entities: dict[str, _Entity] = {}
        self._segments: dict[str, _Segment] = {}
        self._tags: dict[str, _Tag] = {}
        self.reload()

    # ---- loading -----------------------------------------------------------------------------
    def reload(self) -> bool:
        """Reload entities and audiences that changed since the last load; True if any did."""
        changed = False
        for ent in self.store.schema.entities:
            v = self.store.version(ent.name)
            cur = self._entities.get(ent.name)
            if cur is None or cur.version != v:
                self._entities[ent.name] = self._load_entity(ent.name, v)
                changed = True
        counter = self.aud.counter()
        if counter != self._counter or changed:  # keys changed: rebuild key bitmaps
            self._load_audiences()
            self._counter = counter
            changed = True
        return changed

    @staticmethod
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

    def _load_audiences(self) -> None:
        segments: dict[str, _Segment] = {}
        tags: dict[str, _Tag] = {}
        for d in self.aud.all_current():
            if d.kind == "SEGMENT":
                r = self.aud.latest("SEGMENT", d.name)
                if r is None:
                    continue
                old = self._segments.get(d.name)
                ent = self._entities[d.entity]
                if old is not None and old.version == r.version and old.source is ent:
                    segments[d.name] = old
                else:
                    bm = self.aud.bitmap(d.name, r.version)
                    segments[d.name] = _Segment(d.entity, r.version, bm, self._by_key(ent, bm))
                    segments[d.name].source = ent
                continue
            r = self.aud.latest("TAG", d.name)
            if r is None:
                continue
            prev = self._tags.get(d.name)
            if prev is not None and prev.version == r.version:
                tags[d.name] = prev
                continue
            values = self.aud.tag_values(d.name, r.version)
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
            tags[d.name] = _Tag(d.entity, r.version, cols)
        self._segments, self._tags = segments, tags

    # ---- raw structures ----------------------------------------------------------------------
    def key_ids(self, entity: str) -> dict[Any, int]:
        return self._entities[entity].ids

    def bitmap(self, segment: str, version: int | None = None) -> BitMap:
        if version is None:
            return self._seg(segment).bitmap
        return self.aud.bitmap(segment, version)

    def segment_names(self) -> list[str]:
        """The segments with a materialised version."""
        return sorted(self._segments)

    def current(self, segment: str) -> tuple[str, int] | None:
        """(entity, latest version) of a refreshed segment, or None."""
        seg = self._segments.get(segment)
        return None if seg is None else (seg.entity, seg.version)

    def _seg(self, segment: str) -> _Segment:
        seg = self._segments.get(segment)
        if seg is None:
            raise KeyError(f"no refreshed segment {segment!r}")
        return seg

    # ---- membership --------------------------------------------------------------------------
    def key_bitmap(self, segment: str) -> BitMap | None:
        """For int keys: the members' keys as a bitmap, for `key in bm` loops (None otherwise)."""
        return self._seg(segment).by_key

    def is_member(self, segment: str, key: Any) -> bool:
        seg = self._seg(segment)
        bk = seg.by_key
        if bk is not None and type(key) is int:
            return 0 <= key <= 0xFFFFFFFF and key in bk
        i = self._entities[seg.entity].ids.get(key)
        return i is not None and i in seg.bitmap

    def ids_of(self, entity: str, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        """Dense ids of keys (-1 for unknown keys), vectorised for int keys."""
        ent = self._entities[entity]
        if ent.sorted_keys is not None and isinstance(keys, np.ndarray) and keys.dtype.kind == "i":
            if ent.lut is not None:  # a gather
                lut = ent.lut
                inside = (keys >= 0) & (keys < len(lut))
                return np.where(inside, lut[np.where(inside, keys, 0)], -1)
            sk, si = ent.sorted_keys, ent.sorted_ids
            assert si is not None
            if len(sk) == 0:
                return np.full(len(keys), -1, dtype=np.int64)
            pos = np.clip(np.searchsorted(sk, keys), 0, len(sk) - 1)
            return np.where(sk[pos] == keys, si[pos], -1)
        get = ent.ids.get
        return np.fromiter((get(k, -1) for k in keys), dtype=np.int64, count=len(keys))

    def contains_ids(self, segment: str, ids: np.ndarray) -> np.ndarray:
        """Membership of dense ids (-1 is never a member)."""
        seg = self._seg(segment)
        if seg.mask is None:
            members = np.frombuffer(seg.bitmap.to_array(), dtype=np.uint32)
            size = max(int(members.max()) + 1 if len(members) else 0, 1)
            mask = np.zeros(size + 1, dtype=bool)  # the last slot answers out-of-range ids
            mask[members] = True
            seg.mask = mask
        mask = seg.mask
        idx = np.where((ids < 0) | (ids >= len(mask) - 1), len(mask) - 1, ids)
        return mask[idx]

    def is_member_batch(self, segment: str, keys: Sequence[Any] | np.ndarray) -> np.ndarray:
        seg = self._seg(segment)
        ent = self._entities[seg.entity]
        if ent.lut is not None and isinstance(keys, np.ndarray) and keys.dtype.kind == "i":
            # int keys in a dense range: one gather through key -> member (no ids in between)
            if seg.key_mask is None or seg.source is not ent:
                member = self.contains_ids(segment, ent.lut)  # -1 (no such key): never
                seg.key_mask = np.append(member, False)  # the last slot: keys out of range
            km = seg.key_mask
            last = len(km) - 1
            inside = (keys >= 0) & (keys < last)
            return km[np.where(inside, keys, last)]
        return self.contains_ids(segment, self.ids_of(seg.entity, keys))

    def segments_of(self, entity: str, key: Any) -> list[str]:
        i = self._entities[entity].ids.get(key)
        if i is None:
            return []
        return sorted(n for n, s in self._segments.items() if s.entity == entity and i in s.bitmap)

    def size(self, segment: str, version: int | None = None) -> int:
        if version is None:
            return len(self._seg(segment).bitmap)
        r = next((r for r in self.aud.refreshes("SEGMENT", segment) if r.version == version), None)
        if r is None:
            raise KeyError(f"segment {segment!r} has no version {version}")
        return int(r.info["size"])

    # ---- tags and profiles -------------------------------------------------------------------
    def tags_of(self, entity: str, key: Any) -> dict[str, Any]:
        i = self._entities[entity].ids.get(key)
        out: dict[str, Any] = {}
        if i is None:
            return out
        for name, tag in sorted(self._tags.items()):
            if tag.entity != entity:
                continue
            for col, arr in tag.columns.items():
                label = name if col == "value" else f"{name}_{col}"
                out[label] = arr[i] if i < len(arr) else None
        return out

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
        ent = self._entities[entity]
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
        a, b = self.aud.bitmap(segment, since), self.aud.bitmap(segment, to)
        return Changes(segment, since, to, self.keys_of(entity, b - a), self.keys_of(entity, a - b))

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
