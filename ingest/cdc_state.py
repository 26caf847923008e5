"""The CDC offset record: a small state machine stored in the store next to the data it describes.

One record per connector, under `o:cdc:<name>`, rewritten in the same write batch as every change
it accounts for, so the data and the position can never disagree:

  phase "snapshot":  `position` is where the rows copied so far are current (the binlog position of
                     the consistent snapshot they were read in, or later after a catch-up);
                     `tables` says per source table: pending, partial (rows up to primary key
                     `after` are copied) or done.
  phase "streaming": `position` is the end of the last source transaction committed to the store.

It also holds the column renames learnt from DDL, the counters shown by `eql cdc status`, and the
sequence numbers of the per-entity changed-key logs (`o:chg:<entity>\\0<seq>`), which later tag and
segment refreshes read and acknowledge with `read_changes` / `ack_changes`. DDL seen on mapped
tables is kept as a schema history keyed by position (`o:cdc:<name>:ddl\\0<file#><pos>`).
"""

from __future__ import annotations

import datetime as dt
import struct
import time
from dataclasses import dataclass, field, replace
from typing import Any, Literal

from ingest.cdc_position import CdcError, Position, file_number, gtid_covers, merge_gtid
from storage import ChangeSet, Store, codec

__all__ = [
    "CdcError",
    "CdcState",
    "Position",
    "file_number",
    "gtid_covers",
    "merge_gtid",
]

Phase = Literal["snapshot", "streaming"]
COUNTERS = (
    "transactions",  # source transactions committed to the store (all, mapped or not)
    "rows_applied",  # row changes applied from the binlog: upserts, deletes, event appends
    "snapshot_rows",  # rows copied by the initial snapshot
    "updates_appended",  # updates of event rows appended as new events (on_update: append)
    "updates_ignored",  # updates of event rows ignored (on_update: ignore)
    "deletes_ignored",  # deletes of event rows ignored (on_delete: ignore)
    "truncates",  # TRUNCATE of mapped tables applied (entities emptied)
    "truncates_ignored",  # TRUNCATE of event tables ignored (on_delete: ignore)
    "ddl_applied",  # DDL on mapped tables handled (renames followed, history recorded)
    "ddl_ignored",  # DDL on tables not in the config
    "row_events_unmapped",  # row events of tables not in the config (not decoded)
    "reconnects",  # replication connections re-opened from the committed offset
    "unknown_events",  # binlog events of a type this connector does not know
    "skipped",  # events not applied for any other reason: always 0 (we stop instead)
    "catchup_rows_deferred",  # snapshot catch-up: changes to rows the snapshot will still read
)


@dataclass(frozen=True, slots=True)
class TableProgress:
    status: Literal["pending", "partial", "done"] = "pending"
    after: tuple[Any, ...] | None = None  # primary key of the last row copied
    rows: int = 0


@dataclass(frozen=True, slots=True)
class CdcState:
    name: str
    phase: Phase
    position: Position | None = None
    tables: dict[str, TableProgress] = field(default_factory=dict)
    renames: dict[str, dict[str, str]] = field(default_factory=dict)  # table -> {old: new}
    counters: dict[str, int] = field(default_factory=dict)
    change_seq: dict[str, int] = field(default_factory=dict)  # entity -> last change-log seq
    server_id: int = 0
    snapshot_started: float | None = None
    snapshot_seconds: float | None = None
    snapshot_attempts: int = 0
    last_event_at: int | None = None  # source timestamp (s) of the last applied transaction
    lag_seconds: float | None = None
    caught_up_at: float | None = None
    last_error: str | None = None
    updated_at: float = 0.0

    def count(self, **deltas: int) -> CdcState:
        counters = dict(self.counters)
        for k, v in deltas.items():
            counters[k] = counters.get(k, 0) + v
        return replace(self, counters=counters)

    def counter(self, name: str) -> int:
        return self.counters.get(name, 0)

    def source_column(self, table: str, column: str) -> str:
        """The current name of a configured source column, after renames seen in the binlog."""
        return self.renames.get(table, {}).get(column, column)

    def to_json(self) -> dict[str, Any]:
        return {
            "version": 1,
            "name": self.name,
            "phase": self.phase,
            "position": self.position.to_json() if self.position else None,
            "tables": {
                t: {
                    "status": p.status,
                    "after": list(p.after) if p.after is not None else None,
                    "rows": p.rows,
                }
                for t, p in self.tables.items()
            },
            "renames": self.renames,
            "counters": {k: self.counters.get(k, 0) for k in COUNTERS},
            "change_seq": self.change_seq,
            "server_id": self.server_id,
            "snapshot_started": self.snapshot_started,
            "snapshot_seconds": self.snapshot_seconds,
            "snapshot_attempts": self.snapshot_attempts,
            "last_event_at": self.last_event_at,
            "lag_seconds": self.lag_seconds,
            "caught_up_at": self.caught_up_at,
            "last_error": self.last_error,
            "updated_at": self.updated_at,
        }

    @staticmethod
    def from_json(d: dict[str, Any]) -> CdcState:
        return CdcState(
            name=d["name"],
            phase=d["phase"],
            position=Position.from_json(d["position"]) if d.get("position") else None,
            tables={
                t: TableProgress(
                    p["status"],
                    tuple(p["after"]) if p["after"] is not None else None,
                    int(p["rows"]),
                )
                for t, p in d.get("tables", {}).items()
            },
            renames={t: dict(r) for t, r in d.get("renames", {}).items()},
            counters={k: int(v) for k, v in d.get("counters", {}).items()},
            change_seq={k: int(v) for k, v in d.get("change_seq", {}).items()},
            server_id=int(d.get("server_id", 0)),
            snapshot_started=d.get("snapshot_started"),
            snapshot_seconds=d.get("snapshot_seconds"),
            snapshot_attempts=int(d.get("snapshot_attempts", 0)),
            last_event_at=d.get("last_event_at"),
            lag_seconds=d.get("lag_seconds"),
            caught_up_at=d.get("caught_up_at"),
            last_error=d.get("last_error"),
            updated_at=float(d.get("updated_at", 0.0)),
        )


def state_key(name: str) -> bytes:
    return f"o:cdc:{name}".encode()


def load_state(store: Store, name: str) -> CdcState | None:
    raw = store.get_meta(state_key(name))
    return None if raw is None else CdcState.from_json(codec.loads(raw))


def put_state(change: ChangeSet, state: CdcState) -> CdcState:
    """Put the record into a change set (stamped now); returns the stamped state."""
    state = replace(state, updated_at=time.time())
    change.meta[state_key(state.name)] = codec.dumps(state.to_json())
    return state


def ddl_key(name: str, pos: Position) -> bytes:
    return (
        f"o:cdc:{name}:ddl".encode() + b"\x00" + struct.pack(">IQ", file_number(pos.file), pos.pos)
    )


def schema_history(store: Store, name: str) -> list[dict[str, Any]]:
    """Every DDL recorded for mapped tables, in binlog order."""
    prefix = f"o:cdc:{name}:ddl".encode() + b"\x00"
    return [dict(codec.loads(v)) for _, v in store.kv.scan(prefix)]


# ---- changed keys --------------------------------------------------------------------------
def change_key(entity: str, seq: int) -> bytes:
    return codec.family_key("o", f"chg:{entity}", codec.pack_u64(seq))


def _cursor_key(entity: str, consumer: str) -> bytes:
    return codec.family_key("o", f"chgack:{entity}", consumer.encode())


def record_changes(change: ChangeSet, state: CdcState, keys: dict[str, list[Any]]) -> CdcState:
    """Append one numbered entry per entity listing the keys this commit changed."""
    seqs = dict(state.change_seq)
    now = dt.datetime.now(dt.UTC).isoformat(timespec="milliseconds")
    for entity, ks in keys.items():
        if not ks:
            continue
        seq = seqs.get(entity, 0) + 1
        seqs[entity] = seq
        change.meta[change_key(entity, seq)] = codec.dumps({"keys": ks, "at": now})
    return replace(state, change_seq=seqs)


@dataclass(frozen=True, slots=True)
class Changes:
    entity: str
    keys: frozenset[Any]  # every key upserted or deleted after the consumer's cursor
    upto: int  # pass to ack_changes once the keys are processed
    entries: int


def read_changes(store: Store, entity: str, consumer: str) -> Changes:
    """The keys of `entity` changed since `consumer` last acknowledged (all of them if never)."""
    raw = store.get_meta(_cursor_key(entity, consumer))
    after = codec.unpack_u64(raw) if raw is not None else 0
    prefix = codec.family_prefix("o", f"chg:{entity}")
    keys: set[Any] = set()
    upto, entries = after, 0
    for k, v in store.kv.scan(prefix):
        seq = codec.unpack_u64(k[len(prefix) :])
        if seq <= after:
            continue
        keys.update(codec.loads(v)["keys"])
        upto, entries = seq, entries + 1
    return Changes(entity, frozenset(keys), upto, entries)


def register_consumer(store: Store, entity: str, consumer: str) -> None:
    """Declare a consumer of `entity`'s changed keys: entries are kept until every registered
    consumer has acknowledged them. Registering again keeps the consumer's cursor."""
    if store.get_meta(_cursor_key(entity, consumer)) is None:
        change = ChangeSet()
        change.meta[_cursor_key(entity, consumer)] = codec.pack_u64(0)
        store.commit(change)


def ack_changes(store: Store, entity: str, consumer: str, upto: int) -> int:
    """Record that `consumer` processed entries up to `upto` (registering it if needed); prune
    the entries every registered consumer has passed. Returns the number of entries pruned.
    Needs the store open for writing, so not while `eql cdc run` holds it."""
    change = ChangeSet()
    change.meta[_cursor_key(entity, consumer)] = codec.pack_u64(upto)
    cursors = {consumer: upto}
    cprefix = codec.family_prefix("o", f"chgack:{entity}")
    for k, v in store.kv.scan(cprefix):
        name = k[len(cprefix) :].decode()
        if name != consumer:
            cursors[name] = codec.unpack_u64(v)
    low = min(cursors.values())
    prefix = codec.family_prefix("o", f"chg:{entity}")
    pruned = 0
    for k, _ in store.kv.scan(prefix):
        if codec.unpack_u64(k[len(prefix) :]) <= low:
            change.meta_deletes.append(k)
            pruned += 1
    store.commit(change)
    return pruned
