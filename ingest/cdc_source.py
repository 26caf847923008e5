"""SQL access to the source server (PyMySQL): preflight checks, positions, table metadata and the
consistent snapshot.

The consistent snapshot on MariaDB takes no lock: `START TRANSACTION WITH CONSISTENT SNAPSHOT`,
then the session status `binlog_snapshot_file` / `binlog_snapshot_position`, which MariaDB keeps
consistent with the snapshot, and `BINLOG_GTID_POS()` for the GTID state at that position. On a
server without those status variables (MySQL) it holds `FLUSH TABLES WITH READ LOCK` only while it
starts the transaction and reads `SHOW MASTER STATUS`.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import pymysql
from pymysql.constants import FIELD_TYPE

from entities.model import Schema
from ingest.cdc_config import CdcConfig, Source, TableMap
from ingest.cdc_state import CdcError, Position

_INT_TYPES = {"tinyint", "smallint", "mediumint", "int", "integer", "bigint"}
_TEXT_TYPES = {"char", "varchar", "tinytext", "text", "mediumtext", "longtext"}
_DATE_CODES = {FIELD_TYPE.DATE, FIELD_TYPE.DATETIME, FIELD_TYPE.TIMESTAMP, FIELD_TYPE.NEWDATE}
SETTINGS = (
    "log_bin",
    "binlog_format",
    "binlog_row_image",
    "binlog_row_metadata",
    "log_bin_compress",
    "binlog_transaction_compression",
    "server_id",
    "version",
    "binlog_row_value_options",
)


def q(name: str) -> str:
    """A quoted identifier."""
    return "`" + name.replace("`", "``") + "`"


def qt(table: str) -> str:
    db, name = table.split(".", 1)
    return f"{q(db)}.{q(name)}"


@dataclass(frozen=True, slots=True)
class ServerInfo:
    version: str
    mariadb: bool
    server_id: int
    settings: dict[str, str]


@dataclass(frozen=True, slots=True)
class TableInfo:
    table: str
    columns: tuple[str, ...]
    pk: tuple[str, ...]
    pk_types: tuple[str, ...]
    pk_collations: tuple[tuple[str, str] | None, ...]  # (charset, collation) of text key columns
    engine: str

    @property
    def chunkable(self) -> bool:
        """Key types whose order we can resume from: integers and text (compared by the server)."""
        return bool(self.pk) and all(t in _INT_TYPES or t in _TEXT_TYPES for t in self.pk_types)


def connect(source: Source, **extra: Any) -> pymysql.connections.Connection[Any]:
    try:
        return pymysql.connect(**source.connect_args(), autocommit=True, **extra)
    except pymysql.MySQLError as exc:
        msg = exc.args[1] if len(exc.args) > 1 else str(exc)
        hint = ""
        if exc.args and exc.args[0] == 1045:
            hint = f"; check source.user and the password ({source.password_from or 'none set'})"
        raise CdcError(f"cannot connect to {source.address}: {msg}{hint}") from None


class SourceDb:
    """A control connection: settings, positions, metadata."""

    def __init__(self, source: Source) -> None:
        self.source = source
        self.conn = connect(source)

    def close(self) -> None:
        with contextlib.suppress(pymysql.MySQLError):
            self.conn.close()

    def _rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def server_info(self) -> ServerInfo:
        names = ", ".join(f"'{n}'" for n in SETTINGS)
        rows = self._rows(f"SHOW GLOBAL VARIABLES WHERE Variable_name IN ({names})")
        settings = {str(k).lower(): str(v) for k, v in rows}
        version = settings.get("version", "")
        return ServerInfo(
            version, "mariadb" in version.lower(), int(settings.get("server_id", "0")), settings
        )

    def preflight(
        self, config: CdcConfig, schema: Schema, *, tables_too: bool = True
    ) -> tuple[ServerInfo, dict[str, TableInfo]]:
        """Check the server settings and (before a snapshot) the mapped tables; one error
        listing every problem. While streaming, the binlog is the authority on tables and
        columns (a table may be renamed at a position we have not read yet)."""
        info = self.server_info()
        s = info.settings
        problems: list[str] = []
        if s.get("log_bin", "OFF").upper() != "ON":
            problems.append(
                "binary logging is off: start the server with log_bin (e.g. "
                "--log-bin=binlog) and a server_id"
            )
        fmt = s.get("binlog_format", "").upper()
        if fmt != "ROW":
            problems.append(
                f"binlog_format is {fmt or 'unknown'}: set binlog_format=ROW "
                "(SET GLOBAL binlog_format='ROW' and in the server config)"
            )
        image = s.get("binlog_row_image", "").upper()
        if image != "FULL":
            problems.append(f"binlog_row_image is {image or 'unknown'}: set binlog_row_image=FULL")
        meta = s.get("binlog_row_metadata")
        if meta is None:
            problems.append(
                "the server has no binlog_row_metadata setting: it needs MariaDB "
                "10.5+ or MySQL 8.0.14+ with binlog_row_metadata=FULL"
            )
        elif meta.upper() != "FULL":
            problems.append(f"binlog_row_metadata is {meta}: set binlog_row_metadata=FULL")
        if s.get("log_bin_compress", "OFF").upper() == "ON":
            problems.append(
                "log_bin_compress is ON: set log_bin_compress=OFF (compressed binlog events "
                "cannot be read)"
            )
        if s.get("binlog_transaction_compression", "OFF").upper() == "ON":
            problems.append(
                "binlog_transaction_compression is ON: set binlog_transaction_compression=OFF"
            )
        if s.get("binlog_row_value_options", "").upper() == "PARTIAL_JSON":
            problems.append("binlog_row_value_options is PARTIAL_JSON: set it to ''")
        if info.server_id == config.source.server_id:
            problems.append(
                f"source.server_id {config.source.server_id} is the server's own "
                "server_id: choose a number no server or replica uses"
            )
        try:
            self._rows("SHOW MASTER STATUS")
        except pymysql.MySQLError as exc:
            problems.append(
                f"{config.source.user} may not read the binlog position: grant "
                f"REPLICATION CLIENT (BINLOG MONITOR on MariaDB) and REPLICATION "
                f"SLAVE ({exc.args[-1]})"
            )
        tables: dict[str, TableInfo] = {}
        for m in config.tables if tables_too else ():
            t = self.table_info(m.table)
            if t is None:
                problems.append(
                    f"table {m.table} does not exist on the server (or "
                    f"{config.source.user} may not see it)"
                )
                continue
            tables[m.table] = t
            problems.extend(_table_problems(m, t, schema))
        if problems:
            raise CdcError(
                "the source server is not ready for CDC:\n  - " + "\n  - ".join(problems)
            )
        return info, tables

    def table_info(self, table: str) -> TableInfo | None:
        db, name = table.split(".", 1)
        eng = self._rows(
            "SELECT ENGINE FROM information_schema.TABLES WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s",
            (db, name),
        )
        if not eng:
            return None
        cols = self._rows(
            "SELECT COLUMN_NAME, DATA_TYPE, CHARACTER_SET_NAME, COLLATION_NAME, COLUMN_KEY "
            "FROM information_schema.COLUMNS WHERE TABLE_SCHEMA=%s AND TABLE_NAME=%s "
            "ORDER BY ORDINAL_POSITION",
            (db, name),
        )
        keys = self._rows(
            "SELECT COLUMN_NAME FROM information_schema.STATISTICS WHERE TABLE_SCHEMA=%s AND "
            "TABLE_NAME=%s AND INDEX_NAME='PRIMARY' ORDER BY SEQ_IN_INDEX",
            (db, name),
        )
        by_name = {str(c[0]): c for c in cols}
        pk = tuple(str(k[0]) for k in keys)
        types = tuple(str(by_name[k][1]).lower() for k in pk)
        colls = tuple(
            (str(by_name[k][2]), str(by_name[k][3])) if by_name[k][3] else None for k in pk
        )
        return TableInfo(table, tuple(by_name), pk, types, colls, str(eng[0][0] or ""))

    def position(self, mariadb: bool) -> Position:
        rows = self._rows("SHOW MASTER STATUS")
        if not rows:
            raise CdcError("binary logging is off on the server (SHOW MASTER STATUS is empty)")
        file, pos = str(rows[0][0]), int(rows[0][1])
        gtid = str(self._rows("SELECT @@gtid_binlog_pos")[0][0] or "") if mariadb else ""
        return Position(file, pos, gtid)

    def binlog_files(self) -> list[str]:
        return [str(r[0]) for r in self._rows("SHOW BINARY LOGS")]

    def compare(self, info: TableInfo, a: tuple[Any, ...], b: tuple[Any, ...]) -> int:
        """Compare two primary keys in the server's order (text keys by their collation)."""
        for i, (x, y) in enumerate(zip(a, b, strict=True)):
            coll = info.pk_collations[i]
            if coll is None or not isinstance(x, str) or not isinstance(y, str):
                c = int(x > y) - int(x < y)
            else:
                cs, co = coll
                sql = (
                    f"SELECT STRCMP(CONVERT(%s USING {cs}) COLLATE {co}, "
                    f"CONVERT(%s USING {cs}) COLLATE {co})"
                )
                c = int(self._rows(sql, (x, y))[0][0])
            if c:
                return c
        return 0


def _table_problems(m: TableMap, t: TableInfo, schema: Schema) -> list[str]:
    out: list[str] = []
    if t.engine.lower() not in ("innodb", "xtradb"):
        out.append(
            f"table {m.table} uses engine {t.engine}: only transactional tables "
            "(InnoDB) can be captured consistently"
        )
    if not t.pk:
        out.append(
            f"table {m.table} has no primary key: add one (the snapshot reads in key "
            "order and rows are matched by it)"
        )
    cols = set(t.columns)
    for col in m.explicit:
        if col not in cols:
            out.append(f"the config maps column {col} of {m.table}, which has no such column")
    if m.kind == "entity":
        ent = schema.require_entity(m.target)
        key_col = m.source_of(ent.key.name)
        if key_col not in cols:
            out.append(
                f"table {m.table} has no column {key_col} for the key of {m.target}; "
                f"map one with `key: COLUMN`"
            )
    else:
        required = [a for a in schema.stream_columns(m.target) if a.required]
        for a in required:
            src = m.source_of(a.name)
            if src not in cols:
                out.append(
                    f"table {m.table} has no column {src} for the required field "
                    f"{a.name} of stream {m.target}; map one under `columns:`"
                )
    if not any(col in cols for _, col in m.columns):
        out.append(f"no column of {m.table} maps to {m.target}")
    return out


class Snapshot:
    """A consistent read view of the source and the binlog position it corresponds to."""

    def __init__(self, source: Source, mariadb: bool) -> None:
        self.conn = connect(source)
        self.mariadb = mariadb

    def _rows(self, sql: str, args: Any = None) -> list[tuple[Any, ...]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args)
            return list(cur.fetchall())

    def open(self) -> Position:
        self._rows("SET SESSION time_zone = '+00:00'")
        self._rows("SET SESSION TRANSACTION ISOLATION LEVEL REPEATABLE READ")
        status = dict(self._rows("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'"))
        if status:
            self._rows("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            st = {
                str(k).lower(): v
                for k, v in self._rows("SHOW SESSION STATUS LIKE 'binlog_snapshot_%'")
            }
            file, pos = str(st["binlog_snapshot_file"]), int(st["binlog_snapshot_position"])
            gtid = ""
            if self.mariadb:
                gtid = str(self._rows("SELECT BINLOG_GTID_POS(%s, %s)", (file, pos))[0][0] or "")
            return Position(file, pos, gtid)
        self._rows("FLUSH TABLES WITH READ LOCK")
        try:
            self._rows("START TRANSACTION WITH CONSISTENT SNAPSHOT, READ ONLY")
            rows = self._rows("SHOW MASTER STATUS")
        finally:
            self._rows("UNLOCK TABLES")
        if not rows:
            raise CdcError("binary logging is off on the server (SHOW MASTER STATUS is empty)")
        return Position(str(rows[0][0]), int(rows[0][1]), "")

    def chunks(
        self, info: TableInfo, after: tuple[Any, ...] | None, size: int
    ) -> Iterator[tuple[tuple[str, ...], list[tuple[Any, ...]], tuple[Any, ...] | None, bool]]:
        """(column names, rows, key of the last row, last chunk?) in primary key order."""
        order = ", ".join(q(c) for c in info.pk)
        if not info.chunkable:  # one chunk: its progress is never partial
            names, rows = self._select(f"SELECT * FROM {qt(info.table)}")
            yield names, rows, None, True
            return
        while True:
            where, args = "", ()
            if after is not None:
                cols = ", ".join(q(c) for c in info.pk)
                marks = ", ".join(["%s"] * len(info.pk))
                where = f" WHERE ({cols}) > ({marks})"
                args = tuple(after)
            names, rows = self._select(
                f"SELECT * FROM {qt(info.table)}{where} ORDER BY {order} LIMIT {int(size)}", args
            )
            idx = [names.index(c) for c in info.pk]
            last = tuple(rows[-1][i] for i in idx) if rows else after
            final = len(rows) < size
            yield names, rows, last, final
            if final:
                return
            after = last

    def _select(self, sql: str, args: Any = None) -> tuple[tuple[str, ...], list[tuple[Any, ...]]]:
        with self.conn.cursor() as cur:
            cur.execute(sql, args or None)
            desc = cur.description or ()
            names = tuple(str(d[0]) for d in desc)
            rows = list(cur.fetchall())
        dates = [i for i, d in enumerate(desc) if d[1] in _DATE_CODES]
        if dates and rows:  # zero dates come back as text; the binlog decoder makes them null
            fixed = []
            for row in rows:
                if any(isinstance(row[i], str) for i in dates):
                    r = list(row)
                    for i in dates:
                        if isinstance(r[i], str) and r[i].startswith("0000"):
                            r[i] = None
                    row = tuple(r)
                fixed.append(row)
            rows = fixed
        return names, rows

    def close(self) -> None:
        with contextlib.suppress(pymysql.MySQLError):
            self._rows("COMMIT")
        with contextlib.suppress(pymysql.MySQLError):
            self.conn.close()
