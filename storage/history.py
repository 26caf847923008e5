"""Attribute history: the entity rows that upserts and deletes replace, with when they stopped
being true, so that a reading `AS OF t` sees every entity as it was at t.

One record per commit that changed an entity's rows, written in the commit's own batch:

  h:<entity>\\0<~to u64><~version u64>  Arrow IPC (zstd): the rows the commit replaced, columnar
                                       (key and attributes typed as the entity's snapshot), and
                                       `__present` (false: the key was absent before; its
                                       attributes are null)
  w:<entity>\\0<to u64><version u64>    b"": the same record in time order (what compaction reads)
  H:<entity>                           JSON: `last` (the newest record's `to`), `horizon` (records
                                       up to this `to` were dropped by the retention; absent: none)

`to` is the commit's effective time in UTC microseconds: `ChangeSet.effective_time` (for CDC the
source transaction's timestamp) or the commit's wall clock, never later than that clock and
never earlier than the entity's previous `to` (so time order is commit order). `h:` keys hold
`to` and the version bit-inverted: newest first, so a reading at t stops at the first record
with `to <= t` and never reads older ones.

The value of a key at t is its row in its earliest record with `to > t`; with no such record it
is the current value (validity `[from, to)`: at exactly `to` the new value holds). The replaced
rows come from the snapshot (a few keys: from RocksDB), so a commit reads nothing more from
disk, and a reading rebuilds the table with Arrow kernels only. No record is written for a key
whose new JSON equals its old (the old row encoded as `e:` holds it), nor for a key created by
a baseline: an entity's first commit (version 1: the initial import), a change set flagged
`baseline` (a CDC initial snapshot), or one without an effective time (a file import) while
none of the entity's rows has changed yet (the initial load in several files). Those keys are
valid since forever, so a first load costs nothing; any other created key gets an "absent
before" record. A store written before history existed has no records: its rows are valid since
forever, and nothing needs migrating.

Retention (`history: N days` in the schema) drops records whose `to` is older than N days
(`compact`); the entity's horizon is then the newest dropped `to`, and a reading before it is
refused (`HistoryGone`) rather than answered wrongly.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from entities.arrow import ID_COLUMN
from entities.model import Entity
from storage import codec, snapshot
from storage.kv import KV

MASK = 0xFFFFFFFFFFFFFFFF
PRESENT = "__present"  # a record's column: false for a key that was absent before
COMPACT_BATCH = 10_000  # records deleted per write batch by `compact`
_IPC = pa.ipc.IpcWriteOptions(compression="zstd")


class HistoryGone(Exception):
    """A reading before the entity's retention horizon: the values it needs were dropped."""

    def __init__(self, entity: str, horizon: int, days: int | None) -> None:
        self.entity, self.horizon, self.days = entity, horizon, days
        super().__init__(
            f"the history of {entity} before {format_us(horizon)} was dropped by its retention"
        )


def to_us(t: dt.datetime) -> int:
    """A time as UTC microseconds since the epoch (a naive time is UTC)."""
    return int(codec.to_json_value(t))


def commit_time(t: dt.datetime | None) -> int:
    """A change set's effective time in µs: its own (naive is UTC), at most the clock's now."""
    now = dt.datetime.now(dt.UTC)
    if t is None:
        return to_us(now)
    return to_us(min(t if t.tzinfo is not None else t.replace(tzinfo=dt.UTC), now))


def format_us(us: int) -> str:
    return (codec.EPOCH + dt.timedelta(microseconds=us)).isoformat().replace("+00:00", "Z")


def _meta_key(entity: str) -> bytes:
    return codec.family_key("H", entity)


def meta(kv: KV, entity: str) -> dict[str, int]:
    """The entity's `last` and `horizon` (each absent when there is none)."""
    raw = kv.get(_meta_key(entity))
    return {} if raw is None else dict(codec.loads(raw))


def _record_key(entity: str, to: int, version: int) -> bytes:
    return codec.family_key("h", entity, codec.pack_u64(MASK ^ to) + codec.pack_u64(MASK ^ version))


def _index_key(entity: str, to: int, version: int) -> bytes:
    return codec.family_key("w", entity, codec.pack_u64(to) + codec.pack_u64(version))


def note(
    kv: KV,
    entity: Entity,
    live: snapshot.Live,
    version: int,
    at: int,
    upserted: tuple[pa.Array, Sequence[bytes], pa.Table | None] | None,
    deleted: pa.Array,
    baseline: bool,
    puts: dict[bytes, bytes],
) -> bool:
    """Add to `puts` the history record of one commit of `entity` (its `version`, effective at
    `at` µs; `live` its snapshot before the commit): `upserted` = (keys, their new JSON rows,
    their stored rows if already read), `deleted` = keys; `baseline`: the keys it creates were
    there since forever. The rows being replaced come from the snapshot (few keys: from
    RocksDB), compared as the JSON `e:` holds; nothing is written when no row really changes.
    Returns whether the set of live keys changed (a key created, or one that was there deleted)."""
    up_keys, up_new, old = upserted if upserted is not None else (deleted.slice(0, 0), [], None)
    if version <= 1:  # the first commit creates every key it holds: valid since forever
        return bool(len(up_keys))
    keys = pa.concat_arrays([up_keys, deleted])
    if not len(keys):
        return False
    name = entity.key.name
    unread = deleted if old is not None else keys
    if old is None or len(unread):
        more = snapshot.current(kv, entity, live, pa.table({name: unread}))
        old = more if old is None else pa.concat_tables([old, more.cast(old.schema)])
    old_json = snapshot.rows_to_json(entity, old)
    where = pc.index_in(keys, value_set=old.column(name).combine_chunks())
    take: list[int] = []
    keys_changed = False
    for i, j in enumerate(where.to_pylist()):
        if i >= len(up_new):  # a delete: of a key that was there
            if j is not None:
                take.append(i)
                keys_changed = True
        elif j is None:  # a key created
            keys_changed = True
            if not baseline:
                take.append(i)
        elif old_json[j] != up_new[i]:
            take.append(i)
    if not take:
        return keys_changed
    picked = pa.array(take, type=pa.int64())
    rows = where.take(picked)  # null: absent before
    columns = {name: keys.take(picked)}
    columns.update({a.name: old.column(a.name).take(rows) for a in entity.attributes})
    columns[PRESENT] = pc.is_valid(rows)
    state = meta(kv, entity.name)
    to = max(at, state.get("last", at))
    puts[_record_key(entity.name, to, version)] = _ipc(pa.table(columns))
    puts[_index_key(entity.name, to, version)] = b""
    puts[_meta_key(entity.name)] = codec.dumps({**state, "last": to})
    return keys_changed


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema, options=_IPC) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def changed_after(kv: KV, entity: str, at: int) -> list[pa.Table]:
    """The records with `to > at`, newest first (the scan stops at the first older one)."""
    prefix = codec.family_prefix("h", entity)
    out: list[pa.Table] = []
    for key, value in kv.scan(prefix):
        if MASK ^ codec.unpack_u64(key[len(prefix) : len(prefix) + 8]) <= at:
            break
        out.append(codec.ipc_read(value))
    return out


def table_at(kv: KV, entity: Entity, current: pa.Table, at: int, days: int | None) -> pa.Table:
    """The entity table (`current`'s schema: key, attributes, `__id`) as it was at `at` µs:
    `current` less the keys changed since, plus their rows at `at` (HistoryGone before the
    horizon). Columnar throughout: no row is decoded one by one."""
    state = meta(kv, entity.name)
    if at >= state.get("last", at):
        return current
    horizon = state.get("horizon")
    if horizon is not None and at < horizon:
        raise HistoryGone(entity.name, horizon, days)
    records = changed_after(kv, entity.name, at)
    if not records:
        return current
    name = entity.key.name
    records.reverse()  # oldest first: a key's first row is its row at `at`
    both = pa.concat_tables(records)
    keys = both.column(name).combine_chunks()
    order = pa.table({"k": keys, "i": np.arange(len(keys), dtype=np.int64)})
    first = order.group_by("k", use_threads=False).aggregate([("i", "min")]).column("i_min")
    rows = both.take(first)
    base = current.filter(pc.invert(pc.is_in(current.column(name), value_set=rows.column(name))))
    back = rows.filter(rows.column(PRESENT)).drop_columns([PRESENT])
    if not back.num_rows:
        return base.combine_chunks()
    back_keys = back.column(name).combine_chunks()
    here = pc.index_in(back_keys, value_set=current.column(name).combine_chunks())
    ids = pc.take(current.column(ID_COLUMN), here)  # ids never change; a deleted key's: i:
    if ids.null_count:
        gone = pc.is_null(here)
        enc = codec.encode_keys(back_keys.filter(gone), codec.family_prefix("i", entity.name))
        raw = b"".join([r or bytes(4) for r in kv.multi_get(enc)])
        found = pa.array(np.frombuffer(raw, dtype=">u4").astype(np.uint32))
        ids = pc.replace_with_mask(ids.combine_chunks(), gone, found)
    back = back.append_column(ID_COLUMN, ids)
    return pa.concat_tables([base, snapshot.conform(entity, back)]).combine_chunks()


def compact(kv: KV, entity: str, days: int | None, now: dt.datetime | None = None) -> int:
    """Drop the records of `entity` older than its retention (`days`; None keeps them) as of
    `now` (default: the clock), and move its horizon to the newest dropped one; how many records
    were dropped."""
    if days is None:
        return 0
    cutoff = to_us(now or dt.datetime.now(dt.UTC)) - days * 86_400_000_000
    prefix = codec.family_prefix("w", entity)
    dropped = 0
    while True:
        batch: list[bytes] = []
        newest = -1
        for key, _ in kv.scan(prefix):
            suffix = key[len(prefix) :]
            to, version = codec.unpack_u64(suffix[:8]), codec.unpack_u64(suffix[8:])
            if to >= cutoff or len(batch) >= 2 * COMPACT_BATCH:
                break
            batch += [key, _record_key(entity, to, version)]
            newest = to
        if not batch:
            return dropped
        state = meta(kv, entity)
        state["horizon"] = max(newest, state.get("horizon", newest))
        kv.commit({_meta_key(entity): codec.dumps(state)}, batch)
        dropped += len(batch) // 2
