"""Turn complete source transactions (or snapshot chunks) into one store `ChangeSet` with the new
offset record: the effectively-once unit.

Entities: within the change set, the last change of a key wins (insert, update, delete in source
order), so a key inserted and deleted in the same transaction ends deleted; an update that changes
the key deletes the old key. Event streams: inserts append; updates and deletes follow the table's
`on_update` / `on_delete` policy, and every ignored change is counted. Values are converted to the
schema's types by `ingest.convert`; a value that does not convert stops the connector with the
table, column and position (never the value: it may be personal data).

During a snapshot catch-up a `Coverage` limits the changes to rows the snapshot already copied.

For the attribute history (`storage.history`, what AS OF reads), a change set takes effect at the
source commit timestamp of its last transaction (whole seconds; transactions that share a batch
while catching up share it), and snapshot chunks are a baseline: the keys they create were there
since forever.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import decimal
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import orjson
import pyarrow as pa

from entities.model import Attribute, Schema, TypeKind
from ingest.cdc_config import CdcConfig
from ingest.cdc_ddl import DdlEffect, classify
from ingest.cdc_faults import CRASH
from ingest.cdc_state import (
    CdcError,
    CdcState,
    Position,
    TableProgress,
    ddl_key,
    put_state,
    record_changes,
)
from ingest.convert import convert_column
from ingest.mysql_binlog import RowChanges, Transaction
from storage import ChangeSet, Store, codec

Row = tuple[Any, ...]
Compare = Callable[[str, Row, Row], int]  # (table, a, b) -> <0, 0, >0 in the server's key order


@dataclass(frozen=True, slots=True)
class Coverage:
    """Which source rows an interrupted snapshot has already copied (by primary key)."""

    tables: dict[str, TableProgress]
    pk: dict[str, tuple[str, ...]]  # table -> primary key columns, in key order
    compare: Compare

    def covers(self, table: str, names: Sequence[str], row: Row) -> bool:
        prog = self.tables.get(table)
        if prog is None or prog.status == "pending":
            return False
        if prog.status == "done":
            return True
        assert prog.after is not None
        try:
            key = tuple(row[names.index(c)] for c in self.pk[table])
        except ValueError:
            raise CdcError(
                f"a primary key column of {table} is missing from a row event "
                "during the snapshot catch-up"
            ) from None
        if all(isinstance(v, int) for v in key) and all(isinstance(v, int) for v in prog.after):
            return key <= prog.after
        return self.compare(table, key, prog.after) <= 0


def _plain(v: Any) -> Any:
    if isinstance(v, set | frozenset):
        return ",".join(sorted(str(x) for x in v))
    if isinstance(v, dict | list):
        return orjson.dumps(
            v,
            default=lambda o: o.decode() if isinstance(o, bytes) else str(o),
            option=orjson.OPT_NON_STR_KEYS,
        ).decode()
    if isinstance(v, dt.timedelta):
        return str(v)
    return v


_NONE = type(None)
# Python types that convert exactly (no truncation, loss raises) to an attribute's Arrow type
_EXACT: dict[TypeKind, tuple[set[type], pa.DataType | None]] = {
    TypeKind.INT: ({int, _NONE}, pa.int64()),
    TypeKind.FLOAT: ({int, float, _NONE}, pa.float64()),
    TypeKind.STRING: ({str, _NONE}, pa.string()),
    TypeKind.ENUM: ({str, _NONE}, pa.string()),
    TypeKind.DECIMAL: ({decimal.Decimal, _NONE}, None),
    TypeKind.TIMESTAMP: ({dt.datetime, _NONE}, pa.timestamp("us")),
    TypeKind.DATE: ({dt.date, _NONE}, pa.date32()),
}


def _typed_array(values: list[Any], attr: Attribute) -> pa.Array:
    """Values as an Arrow array, built straight into the attribute's type when every value's
    Python type converts exactly (the common case, and much faster than type inference)."""
    exact = _EXACT.get(attr.type.kind)
    if exact is not None and {type(v) for v in values} <= exact[0]:
        target = exact[1] or pa.decimal128(attr.type.precision, attr.type.scale)
        with contextlib.suppress(pa.ArrowInvalid, pa.ArrowTypeError, OverflowError):
            return pa.array(values, type=target)
    return _raw_array(values)


def _raw_array(values: list[Any]) -> pa.Array:
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        pass
    values = [_plain(v) for v in values]
    try:
        return pa.array(values)
    except (pa.ArrowInvalid, pa.ArrowTypeError, OverflowError, TypeError):
        return pa.array([None if v is None else str(v) for v in values], type=pa.string())


@dataclass(slots=True)
class _Rows:
    """Rows for one target, each with the attribute -> column index map of its row event."""

    rows: list[tuple[Row, tuple[tuple[str, int], ...]]] = field(default_factory=list)


class Applier:
    def __init__(self, schema: Schema, config: CdcConfig) -> None:
        self.schema = schema
        self.config = config
        self.maps = {t.table: t for t in config.tables}
        self.mapped = set(self.maps)
        self._attrs: dict[str, dict[str, Attribute]] = {}
        for t in config.tables:
            cols = (
                schema.require_entity(t.target).columns
                if t.kind == "entity"
                else schema.stream_columns(t.target)
            )
            self._attrs[t.target] = {a.name: a for a in cols}
        self._index_cache: dict[tuple[Any, ...], tuple[tuple[str, int], ...]] = {}

    # ---- column mapping ----------------------------------------------------------------
    def index(
        self, state: CdcState, table: str, names: tuple[str, ...]
    ) -> tuple[tuple[str, int], ...]:
        """(attribute, position in the row) for every mapped attribute the row has."""
        ck = (table, names, tuple(sorted(state.renames.get(table, {}).items())))
        hit = self._index_cache.get(ck)
        if hit is not None:
            return hit
        m = self.maps[table]
        pos = {n: i for i, n in enumerate(names)}
        out = []
        for attr, col in m.columns:
            i = pos.get(state.source_column(table, col))
            if i is not None:
                out.append((attr, i))
        result = tuple(out)
        self._index_cache[ck] = result
        return result

    # ---- transactions ------------------------------------------------------------------
    def apply(
        self,
        store: Store,
        state: CdcState,
        txns: Sequence[Transaction],
        coverage: Coverage | None = None,
    ) -> tuple[ChangeSet, CdcState]:
        """One change set for whole transactions (a DDL transaction comes alone), effective at
        the source's commit time of the last of them (what AS OF means for replicated rows)."""
        change = ChangeSet(effective_time=source_time(txns[-1]) if txns else None)
        b = _Builder(self, state, change, coverage)
        for txn in txns:
            if txn.counts:
                b.state = b.state.count(**txn.counts)
            if txn.ddl:
                if len(txns) != 1:
                    raise AssertionError("a DDL transaction must be applied alone")
                b.state = self._ddl(store, b.state, txn, change)
                continue
            for db, sql in txn.statements:
                eff = classify(sql, db, self.mapped)
                if eff.kind == "unsupported":
                    raise CdcError(
                        f"cannot follow the binlog at {txn.start}: {eff.reason}; "
                        "nothing from that transaction on was applied"
                    )
            for rc in txn.changes:
                b.add(rc, txn.start)
        state = b.finish(txns[0].start if txns else None)
        last = txns[-1]
        lag = max(0.0, time.time() - last.timestamp) if last.timestamp else None
        state = replace(
            state,
            position=last.end,
            last_event_at=last.timestamp or state.last_event_at,
            lag_seconds=lag if lag is not None else state.lag_seconds,
        )
        state = state.count(transactions=len(txns))
        return change, put_state(change, state)

    def _ddl(self, store: Store, state: CdcState, txn: Transaction, change: ChangeSet) -> CdcState:
        for db, sql in txn.statements:
            eff = classify(sql, db, self.mapped)
            if eff.kind == "none":
                state = state.count(ddl_ignored=1)
                continue
            if eff.kind == "unsupported":
                raise CdcError(
                    f"unsupported schema change at {txn.start}: {eff.statement}: "
                    f"{eff.reason}. Nothing from that position on was applied"
                )
            CRASH.hit("during_ddl")
            state = self._effect(store, state, eff, txn.start, change)
            change.meta[ddl_key(state.name, txn.start)] = codec.dumps(
                {
                    "file": txn.start.file,
                    "pos": txn.start.pos,
                    "gtid": txn.end.gtid,
                    "table": eff.table,
                    "kind": eff.kind,
                    "statement": eff.statement,
                    "column_renames": [list(p) for p in eff.column_renames],
                    "dropped_columns": list(eff.dropped_columns),
                    "table_renames": [list(p) for p in eff.table_renames],
                    "at": txn.timestamp,
                }
            )
            state = state.count(ddl_applied=1)
        return state

    def _effect(
        self, store: Store, state: CdcState, eff: DdlEffect, at: Position, change: ChangeSet
    ) -> CdcState:
        assert eff.table is not None
        m = self.maps.get(eff.table)
        if eff.table_renames:  # what was copied under the old name was copied under the new
            tables, renames_by_table = dict(state.tables), dict(state.renames)
            for old, new in eff.table_renames:
                if old in tables and new in self.maps:
                    tables[new] = tables.pop(old)
                if old in renames_by_table and new in self.maps:
                    renames_by_table[new] = renames_by_table.pop(old)
            state = replace(state, tables=tables, renames=renames_by_table)
        if eff.kind == "alter" and m is not None:
            renames = dict(state.renames.get(eff.table, {}))
            for old, new in eff.column_renames:
                for _, col in m.columns:
                    if state.source_column(eff.table, col).lower() == old.lower():
                        renames[col] = new
            key_col = m.source_of(m.key_attr) if m.key_attr else None
            if key_col is not None:
                current = renames.get(key_col, key_col).lower()
                if current in {d.lower() for d in eff.dropped_columns}:
                    raise CdcError(
                        f"unsupported schema change at {at}: the key column "
                        f"{key_col} of {eff.table} was dropped"
                    )
            all_renames = dict(state.renames)
            all_renames[eff.table] = renames
            return replace(state, renames=all_renames)
        if eff.kind == "truncate" and m is not None:
            if m.kind == "events":
                if m.on_delete == "error":
                    raise CdcError(
                        f"TRUNCATE of event table {eff.table} at {at}: on_delete is "
                        "error; set on_delete: ignore to keep the events"
                    )
                return state.count(truncates_ignored=1)
            ent = self.schema.require_entity(m.target)
            keys = store.entity_table(m.target).column(ent.key.name).to_pylist()
            change.deletes[m.target] = list(keys)
            state = record_changes(change, state, {m.target: keys})
            return state.count(truncates=1, rows_applied=len(keys))
        return state

    # ---- snapshot ----------------------------------------------------------------------
    def snapshot_chunk(
        self,
        state: CdcState,
        table: str,
        names: tuple[str, ...],
        rows: list[Row],
        progress: TableProgress,
    ) -> tuple[ChangeSet, CdcState]:
        change = ChangeSet(baseline=True)  # rows there since forever, as far as history goes
        b = _Builder(self, state, change, None)
        if rows:
            b.add(RowChanges(table, "insert", names, (), after=tuple(rows)), state.position)
        state = b.finish(state.position, count_applied=False)
        tables = dict(state.tables)
        tables[table] = progress
        state = replace(state, tables=tables).count(snapshot_rows=len(rows))
        return change, put_state(change, state)


def source_time(txn: Transaction) -> dt.datetime | None:
    """The source transaction's commit timestamp (whole seconds, UTC); None when unknown."""
    return dt.datetime.fromtimestamp(txn.timestamp, dt.UTC) if txn.timestamp else None


class _Builder:
    """Accumulates the row changes of one change set, then converts them in bulk."""

    def __init__(
        self, app: Applier, state: CdcState, change: ChangeSet, coverage: Coverage | None
    ) -> None:
        self.app = app
        self.state = state
        self.change = change
        self.coverage = coverage
        self.entity_ops: dict[str, dict[Any, tuple[Row, tuple[tuple[str, int], ...]] | None]] = {}
        self.events: dict[str, _Rows] = {}
        self.counts: dict[str, int] = {}

    def _count(self, name: str, n: int = 1) -> None:
        self.counts[name] = self.counts.get(name, 0) + n

    def add(self, rc: RowChanges, at: Position | None) -> None:
        m = self.app.maps[rc.table]
        if self.state.tables and rc.table not in self.state.tables:
            raise CdcError(
                f"table {rc.table} is in the config but was not part of this connector's "
                f"initial snapshot (seen at {at}): its earlier rows were never copied. Map it in "
                "a config with another `name:` (a connector of its own, with its own snapshot)"
            )
        idx = self.app.index(self.state, rc.table, rc.names)
        cov = self.coverage

        def covered(row: Row) -> bool:
            if cov is None or cov.covers(rc.table, rc.names, row):
                return True
            self._count("catchup_rows_deferred")
            return False

        if m.kind == "entity":
            assert m.key_attr is not None
            ki = dict(idx).get(m.key_attr)
            if ki is None:
                raise CdcError(
                    f"the row event of {rc.table} at {at} has no column for the key "
                    f"of {m.target} ({m.source_of(m.key_attr)})"
                )
            ops = self.entity_ops.setdefault(m.target, {})
            if rc.op == "insert":
                for row in rc.after:
                    if covered(row):
                        ops[row[ki]] = (row, idx)
            elif rc.op == "delete":
                for row in rc.before:
                    if covered(row):
                        ops[row[ki]] = None
            else:
                for before, after in zip(rc.before, rc.after, strict=True):
                    if covered(before):
                        ops[before[ki]] = None
                    if covered(after):
                        ops[after[ki]] = (after, idx)
            return
        target = self.events.setdefault(m.target, _Rows())
        if rc.op == "insert":
            target.rows.extend((row, idx) for row in rc.after if covered(row))
        elif rc.op == "update":
            if m.on_update == "error":
                raise CdcError(
                    f"an update of event table {rc.table} at {at}: on_update is "
                    "error; set on_update: append or ignore in the config"
                )
            if m.on_update == "append":
                rows = [(row, idx) for row in rc.after if covered(row)]
                target.rows.extend(rows)
                self._count("updates_appended", len(rows))
            else:
                self._count("updates_ignored", len(rc.after))
        else:
            if m.on_delete == "error":
                raise CdcError(
                    f"a delete from event table {rc.table} at {at}: on_delete is "
                    "error; set on_delete: ignore in the config"
                )
            self._count("deletes_ignored", len(rc.before))

    def _table(
        self, target: str, rows: list[tuple[Row, tuple[tuple[str, int], ...]]], at: Position | None
    ) -> pa.Table:
        attrs = self.app._attrs[target]
        groups: dict[tuple[tuple[str, int], ...], list[Row]] = {}
        for row, idx in rows:  # consecutive rows of one row event share one index tuple
            groups.setdefault(idx, []).append(row)
        names: list[str] = []
        for idx in groups:
            names.extend(a for a, _ in idx if a not in names)
        arrays = []
        for name in names:
            values: list[Any] = []
            for idx, group in groups.items():
                i = dict(idx).get(name)
                if i is None:
                    values.extend([None] * len(group))
                else:
                    values.extend([row[i] for row in group])
            out, rejects = convert_column(attrs[name], _typed_array(values, attrs[name]))
            if rejects:
                r = rejects[0]
                raise CdcError(
                    f"a value of column {name} for {target} near {at} cannot be "
                    f"stored: {r.reason} ({len(rejects)} such values); nothing from "
                    "that position on was applied"
                )
            arrays.append(out)
        return pa.Table.from_arrays(arrays, names=names)

    def finish(self, at: Position | None, *, count_applied: bool = True) -> CdcState:
        changed: dict[str, list[Any]] = {}
        applied = 0
        for entity, ops in self.entity_ops.items():
            if not ops:
                continue
            ent = self.app.schema.require_entity(entity)
            ups = [v for v in ops.values() if v is not None]
            dels = [k for k, v in ops.items() if v is None]
            keys: list[Any] = []
            if ups:
                table = self._table(entity, ups, at)
                self.change.upsert(entity, table)
                keys.extend(table.column(ent.key.name).to_pylist())
            if dels:
                out, rejects = convert_column(ent.key, _typed_array(dels, ent.key))
                if rejects:
                    raise CdcError(
                        f"a deleted key of {entity} near {at} cannot be read: {rejects[0].reason}"
                    )
                dkeys = out.to_pylist()
                self.change.deletes[entity] = dkeys
                keys.extend(dkeys)
            changed[entity] = keys
            applied += len(ups) + len(dels)
        for stream, rows in self.events.items():
            if rows.rows:
                self.change.append(stream, self._table(stream, rows.rows, at))
                applied += len(rows.rows)
        state = record_changes(self.change, self.state, changed)
        if count_applied:
            self._count("rows_applied", applied)
        return state.count(**self.counts)
