"""Read whole source transactions from a MariaDB/MySQL binlog: the only importer of
pymysqlreplication.

`BinlogReader.read()` yields one `Transaction` per binlog event group (BEGIN..XID/COMMIT, or one
DDL statement), only once the group is complete, plus `Heartbeat`s while the server is idle. It
never yields half a transaction, so whoever commits what it yields commits at transaction
boundaries only.

How it uses the library (mysql-replication 1.0.17) and why:
- MariaDB: `is_mariadb=True` with `auto_position=<GTID state>`: in this library version the
  MariaDB dump request ignores log_file/log_pos and starts from the first binlog, so we resume by
  GTID, which is what MariaDB replicas do. `annotate_rows_event=True` makes the server send every
  event, so the stream is gap-free and checked: from the first transaction the server sends (it
  skips the ones before our GTID state unsent), each event must start where the previous ended;
  a gap (e.g. a row event the library dropped because its table map was missing) is an error.
- MySQL: `log_file`/`log_pos` with `resume_stream=True` (not tested here; see docs/cdc.md).
- `blocking=True` with server heartbeats (`slave_heartbeat`): the read blocks, heartbeats wake it
  while idle, and the stop flag is checked between events. Non-blocking mode loops forever on
  MariaDB.
- The library's own reconnect resends the original position. Our connect function refuses a second
  stream connection, which surfaces as `ConnectionLost`; the caller then reconnects from its
  committed offset.
- `enable_logging=False`: the library would log its parameters.
"""

from __future__ import annotations

import contextlib
import logging
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import pymysql
from pymysqlreplication import BinLogStreamReader
from pymysqlreplication.constants import NONE_SOURCE
from pymysqlreplication.event import (
    BeginLoadQueryEvent,
    ExecuteLoadQueryEvent,
    FormatDescriptionEvent,
    GtidEvent,
    HeartbeatLogEvent,
    IntvarEvent,
    MariadbAnnotateRowsEvent,
    MariadbBinLogCheckPointEvent,
    MariadbGtidEvent,
    MariadbGtidListEvent,
    MariadbStartEncryptionEvent,
    NotImplementedEvent,
    PreviousGtidsEvent,
    QueryEvent,
    RandEvent,
    RotateEvent,
    RowsQueryLogEvent,
    StopEvent,
    UserVarEvent,
    XAPrepareEvent,
    XidEvent,
)
from pymysqlreplication.row_event import (
    DeleteRowsEvent,
    PartialUpdateRowsEvent,
    RowsEvent,
    TableMapEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
)

from ingest.cdc_config import Source
from ingest.cdc_faults import CRASH
from ingest.cdc_position import CdcError, Position, merge_gtid

# The library logs a warning on every dropped connection, including the ones we cause to stop;
# we count and report reconnects ourselves.
logging.getLogger("pymysqlreplication").setLevel(logging.CRITICAL)

Op = Literal["insert", "update", "delete"]
ALL_EVENTS = [
    QueryEvent,
    RotateEvent,
    StopEvent,
    FormatDescriptionEvent,
    XAPrepareEvent,
    XidEvent,
    GtidEvent,
    BeginLoadQueryEvent,
    ExecuteLoadQueryEvent,
    UpdateRowsEvent,
    WriteRowsEvent,
    DeleteRowsEvent,
    TableMapEvent,
    HeartbeatLogEvent,
    NotImplementedEvent,
    MariadbGtidEvent,
    RowsQueryLogEvent,
    MariadbAnnotateRowsEvent,
    RandEvent,
    MariadbStartEncryptionEvent,
    MariadbGtidListEvent,
    MariadbBinLogCheckPointEvent,
    UserVarEvent,
    PreviousGtidsEvent,
    PartialUpdateRowsEvent,
    IntvarEvent,
]
ARTIFICIAL = 0x20  # LOG_EVENT_ARTIFICIAL_F: made up by the server for this connection
# event types the library does not implement but that cannot carry row changes
HARMLESS_TYPES = {34: "ANONYMOUS_GTID", 42: "HEARTBEAT_V2"}
KNOWN_BAD_TYPES = {
    26: "INCIDENT (the server reports lost events)",
    40: "TRANSACTION_PAYLOAD (binlog_transaction_compression is ON; set it OFF)",
    165: "QUERY_COMPRESSED (log_bin_compress is ON; set it OFF)",
    166: "WRITE_ROWS_COMPRESSED (log_bin_compress is ON; set it OFF)",
    167: "UPDATE_ROWS_COMPRESSED (log_bin_compress is ON; set it OFF)",
    168: "DELETE_ROWS_COMPRESSED (log_bin_compress is ON; set it OFF)",
    169: "WRITE_ROWS_COMPRESSED (log_bin_compress is ON; set it OFF)",
    170: "UPDATE_ROWS_COMPRESSED (log_bin_compress is ON; set it OFF)",
    171: "DELETE_ROWS_COMPRESSED (log_bin_compress is ON; set it OFF)",
}
_BAD_NONE = {
    NONE_SOURCE.COLS_BITMAP: "binlog_row_image is not FULL (set it to FULL)",
    NONE_SOURCE.JSON_PARTIAL_UPDATE: "binlog_row_value_options is PARTIAL_JSON (set it to '')",
}


class ConnectionLost(Exception):
    """The replication connection dropped; reconnect from the committed offset."""


@dataclass(frozen=True, slots=True)
class RowChanges:
    """The rows of one row event of a mapped table, as tuples in `names` order."""

    table: str  # db.table
    op: Op
    names: tuple[str, ...]
    pk: tuple[str, ...]
    before: tuple[tuple[Any, ...], ...] = ()  # update, delete
    after: tuple[tuple[Any, ...], ...] = ()  # insert, update


@dataclass(frozen=True, slots=True)
class Transaction:
    start: Position  # where the group begins (for messages)
    end: Position  # where the next group begins: the offset to commit with this one
    timestamp: int  # source commit time (s)
    changes: tuple[RowChanges, ...] = ()
    statements: tuple[tuple[str, str], ...] = ()  # (default db, SQL) of query events in it
    ddl: bool = False  # a standalone statement (DDL) rather than a transaction
    counts: dict[str, int] = field(default_factory=dict)  # counter deltas seen while reading it


@dataclass(frozen=True, slots=True)
class Heartbeat:
    position: Position  # the server has nothing after this


@dataclass(slots=True)
class _Group:
    start: Position
    gtid: str | None
    standalone: bool
    timestamp: int = 0
    changes: list[RowChanges] = field(default_factory=list)
    statements: list[tuple[str, str]] = field(default_factory=list)


class BinlogReader:
    """One replication connection, from `start`, yielding complete transactions."""

    def __init__(
        self,
        source: Source,
        start: Position,
        mapped: set[str],
        *,
        server_id: int,
        mariadb: bool = True,
        heartbeat: float = 0.1,
        on_unknown: Literal["error", "skip"] = "error",
    ) -> None:
        self.source = source
        self.start = start
        self.mapped = mapped
        self.server_id = server_id
        self.mariadb = mariadb
        self.heartbeat = heartbeat
        self.on_unknown = on_unknown
        self._stream_opened = False
        self._stream: BinLogStreamReader | None = None
        self._conn: Any = None
        self._lock = threading.Lock()

    def _connect(self, **kwargs: Any) -> Any:
        if "db" in kwargs:  # PyMySQL 1.2 deprecates `db`, which this library still passes
            kwargs["database"] = kwargs.pop("db")
        if kwargs.get("database") == "information_schema":  # the library's control connection
            return pymysql.connect(**kwargs)
        with self._lock:
            if self._stream_opened:  # the library retries with its original position: refuse
                raise ConnectionLost("the replication connection was lost")
            self._stream_opened = True
            self._conn = pymysql.connect(**kwargs)
            return self._conn

    def _open(self) -> BinLogStreamReader:
        settings = self.source.connect_args()
        settings["read_timeout"] = max(10.0, 20 * self.heartbeat)
        kw: dict[str, Any] = {}
        if self.mariadb:
            kw = {
                "is_mariadb": True,
                "auto_position": self.start.gtid or None,
                "annotate_rows_event": True,
            }
        else:
            kw = {"log_file": self.start.file, "log_pos": self.start.pos, "resume_stream": True}
        self._stream = BinLogStreamReader(
            connection_settings=settings,
            server_id=self.server_id,
            blocking=True,
            only_events=ALL_EVENTS,
            filter_non_implemented_events=False,
            slave_heartbeat=self.heartbeat,
            enable_logging=False,
            pymysql_wrapper=self._connect,
            **kw,
        )
        return self._stream

    def interrupt(self) -> None:
        """Unblock a read from another thread (the read then raises ConnectionLost)."""
        conn = self._conn
        if conn is not None:
            with contextlib.suppress(OSError, AttributeError):
                conn._sock.shutdown(2)

    def close(self) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                self._stream.close()
            self._stream = None

    def read(self, stop: threading.Event) -> Iterator[Transaction | Heartbeat]:
        """Complete transactions and heartbeats until `stop` is set (checked between events)."""
        stream = self._open()
        try:
            yield from self._events(stream, stop)
        except ConnectionLost:
            raise
        except pymysql.MySQLError as exc:
            code = exc.args[0] if exc.args else 0
            if code in (2013, 2006, 2003, 1927, 1053):
                raise ConnectionLost(str(exc.args[-1]) if exc.args else "") from None
            if code == 1236:
                raise CdcError(
                    f"the stored position {self.start} is no longer on the server (it says: "
                    f"{exc.args[1] if len(exc.args) > 1 else code}): the binlogs after it were "
                    "purged before they were read. Start over in a new data directory, which "
                    "takes a new snapshot (see docs/cdc.md, 'Position lost'), and keep binlogs "
                    "longer (expire_logs_days / binlog_expire_logs_seconds)"
                ) from None
            raise CdcError(
                f"replication error {code} from {self.source.host}:"
                f"{self.source.port}: {exc.args[-1] if exc.args else exc}"
            ) from None
        finally:
            self.close()

    def _events(
        self, stream: BinLogStreamReader, stop: threading.Event
    ) -> Iterator[Transaction | Heartbeat]:
        file, gtid_state = self.start.file, self.start.gtid
        expected: int | None = None
        # By GTID, the server skips the groups before our state without sending them, so the
        # stream is checked for gaps from the first group it sends; by file/pos from the start.
        checking = not self.mariadb
        group: _Group | None = None
        counts: dict[str, int] = {}
        for ev in stream:
            if stop.is_set():
                return
            pk = ev.packet
            if isinstance(ev, HeartbeatLogEvent):
                if group is None:
                    yield Heartbeat(Position(file, pk.log_pos, gtid_state))
                continue
            if isinstance(ev, RotateEvent):
                if not pk.flags & ARTIFICIAL and pk.log_pos:
                    CRASH.hit("at_rotate")
                file, expected = ev.next_binlog, ev.position
                continue
            if pk.flags & ARTIFICIAL or pk.log_pos == 0:
                if pk.log_pos:
                    expected = pk.log_pos
                continue
            begin = pk.log_pos - pk.event_size
            if not checking and isinstance(ev, MariadbGtidEvent):
                checking, expected = True, None
            if checking and expected is not None and begin != expected:
                raise CdcError(
                    f"binlog gap in {file} between {expected} and {begin}: events were not "
                    "delivered (a row event without its table map?); nothing after "
                    f"{file}:{expected} was applied"
                )
            expected = pk.log_pos
            here = Position(file, begin, gtid_state)
            end = Position(file, pk.log_pos, gtid_state)
            if isinstance(ev, MariadbGtidEvent | GtidEvent):
                if group is not None:
                    raise CdcError(f"a GTID event inside a transaction at {here}")
                standalone = bool(ev.flags & 1) if isinstance(ev, MariadbGtidEvent) else True
                group = _Group(here, ev.gtid, standalone, ev.timestamp)
            elif isinstance(ev, RowsEvent):
                if group is None:
                    raise CdcError(f"a row event outside a transaction at {here}")
                table = f"{ev.schema}.{ev.table}"
                if table not in self.mapped:
                    counts["row_events_unmapped"] = counts.get("row_events_unmapped", 0) + 1
                    continue
                group.changes.append(_decode(ev, table, here))
                CRASH.hit("mid_transaction")
            elif isinstance(ev, TableMapEvent):
                table = f"{ev.schema}.{ev.table}"
                if table in self.mapped:
                    if any(c.name is None for c in ev.columns):
                        raise CdcError(
                            f"the table map of {table} at {here} has no column names: "
                            "binlog_row_metadata is not FULL on the server (set it to FULL)"
                        )
                    CRASH.hit("after_table_map")
            elif isinstance(ev, QueryEvent):
                query = ev.query.strip() if isinstance(ev.query, str) else ""
                word = query.split(None, 1)[0].upper() if query else ""
                if word == "BEGIN":
                    if group is None:
                        group = _Group(here, None, False, ev.timestamp)
                    else:
                        group.standalone = False
                    continue
                if word in ("COMMIT", "ROLLBACK") and query.upper() in ("COMMIT", "ROLLBACK"):
                    if group is None:
                        continue
                    if word == "ROLLBACK":
                        if group.changes:
                            raise CdcError(
                                f"a transaction ending in ROLLBACK at {here} changed mapped "
                                "tables: only transactional (InnoDB) tables can be mapped"
                            )
                        group.changes.clear()
                    gtid_state = self._after(group, gtid_state)
                    yield self._finish(group, end, gtid_state, counts)
                    group, counts = None, {}
                    continue
                db = ev.schema.decode() if isinstance(ev.schema, bytes) else str(ev.schema)
                if group is None:  # MySQL without GTIDs: a DDL is its own group
                    group = _Group(here, None, True, ev.timestamp)
                group.statements.append((db, query))
                if group.standalone:
                    gtid_state = self._after(group, gtid_state)
                    yield self._finish(group, end, gtid_state, counts, ddl=True)
                    group, counts = None, {}
            elif isinstance(ev, XidEvent | XAPrepareEvent):
                if group is None:
                    raise CdcError(f"a commit event outside a transaction at {here}")
                if isinstance(ev, XAPrepareEvent) and group.changes:
                    raise CdcError(
                        f"an XA transaction changed mapped tables at {here}: XA "
                        "transactions are not supported"
                    )
                gtid_state = self._after(group, gtid_state)
                yield self._finish(group, end, gtid_state, counts)
                group, counts = None, {}
            elif isinstance(ev, NotImplementedEvent):
                etype = ev.event_type
                if etype in HARMLESS_TYPES:
                    continue
                counts["unknown_events"] = counts.get("unknown_events", 0) + 1
                what = KNOWN_BAD_TYPES.get(etype, f"type {etype}")
                if etype in KNOWN_BAD_TYPES or self.on_unknown == "error":
                    raise CdcError(
                        f"binlog event {what} at {here} cannot be read by this "
                        "connector; nothing after it was applied"
                    )
                counts["skipped"] = counts.get("skipped", 0) + 1
            # everything else (format description, GTID lists, checkpoints, annotations, intvar,
            # rand, user variables, rows-query) carries no row changes and no position of ours

    def _after(self, group: _Group, state: str) -> str:
        if self.mariadb and group.gtid:
            return merge_gtid(state, group.gtid)
        return state

    @staticmethod
    def _finish(
        group: _Group, end: Position, gtid_state: str, counts: dict[str, int], *, ddl: bool = False
    ) -> Transaction:
        return Transaction(
            start=group.start,
            end=Position(end.file, end.pos, gtid_state),
            timestamp=group.timestamp,
            changes=tuple(group.changes),
            statements=tuple(group.statements),
            ddl=ddl,
            counts=counts,
        )


def _decode(ev: Any, table: str, here: Position) -> RowChanges:
    names = tuple(c.name for c in ev.columns)
    pk = ev.primary_key
    pk_names = (pk,) if isinstance(pk, str) and pk else tuple(pk or ())
    try:
        rows = ev.rows
    except Exception as exc:
        raise CdcError(
            f"cannot decode the row event of {table} at {here}: {type(exc).__name__}"
        ) from None
    for row in rows:
        for key in ("none_sources", "before_none_sources", "after_none_sources"):
            for src in row.get(key, {}).values():
                if src in _BAD_NONE:
                    raise CdcError(
                        f"the row event of {table} at {here} has incomplete rows: " + _BAD_NONE[src]
                    )
    if isinstance(ev, WriteRowsEvent):
        return RowChanges(
            table, "insert", names, pk_names, after=tuple(tuple(r["values"].values()) for r in rows)
        )
    if isinstance(ev, DeleteRowsEvent):
        return RowChanges(
            table,
            "delete",
            names,
            pk_names,
            before=tuple(tuple(r["values"].values()) for r in rows),
        )
    return RowChanges(
        table,
        "update",
        names,
        pk_names,
        before=tuple(tuple(r["before_values"].values()) for r in rows),
        after=tuple(tuple(r["after_values"].values()) for r in rows),
    )


def decode_rate(
    source: Source, start: Position, end: Position, *, server_id: int, mariadb: bool = True
) -> tuple[int, float]:
    """Benchmark helper: decode every row of every row event from `start` to `end` with the bare
    library (no mapping, no conversion, no commit). Returns (rows, seconds)."""
    import time

    settings = source.connect_args()
    kw: dict[str, Any] = (
        {"is_mariadb": True, "auto_position": start.gtid or None}
        if mariadb
        else {"log_file": start.file, "log_pos": start.pos, "resume_stream": True}
    )
    stream = BinLogStreamReader(
        connection_settings=settings,
        server_id=server_id,
        blocking=True,
        only_events=[WriteRowsEvent, UpdateRowsEvent, DeleteRowsEvent, XidEvent],
        enable_logging=False,
        **kw,
    )
    rows = 0
    t0 = time.perf_counter()
    try:
        for ev in stream:
            if isinstance(ev, RowsEvent):
                rows += len(ev.rows)
            if stream.log_file == end.file and ev.packet.log_pos >= end.pos:
                break
    finally:
        stream.close()
    return rows, time.perf_counter() - t0
