"""A connection over a store directory, in this process: everything through the runtime's doors,
`runtime.Session` (EQL text), `runtime.definitions` (segments and tags as resources, the answers
the server gives too) and `runtime.audiences.versions` (members and changes at a version, with
the runtime's checks: an unknown segment, one never refreshed, a version it does not have).

The runtime's errors become the library's (`eql.client.errors.Error`): EQL diagnostics as they
are; a store held by another process `store_locked`; a missing store `no_store`; the resource
errors with the server's codes (`unknown_segment`, `not_refreshed`, `unknown_version`, ...);
an unknown segment's message names the defined ones whichever call met it (the runtime's
`versions.NotDefined`).

A read-only connection follows the store's writer (another process: an `eql ingest`, a server,
CDC): every call first sees what was committed before it (`Store.follow`), whole commits only,
so a result not yet read sees the commits made before it is read; `refresh()` follows at once.
A result read after `close()` is the `closed` error.

May import runtime, storage, entities, pyarrow, eql.diagnostics, eql.client.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any, NoReturn, TypeVar

import pyarrow as pa

from entities import Attribute, Schema, TypeKind
from entities.arrow import eql_type_name
from eql.client.connection import (
    AsOf,
    Changes,
    Connection,
    Kind,
    Params,
    check_limit,
    plain_params,
    read_only_error,
    time_text,
)
from eql.client.errors import Error, error, from_eql
from eql.client.result import Column, Explanation, Result, Run, Source, cut
from eql.diagnostics import EqlError
from runtime import READ, WRITE, NotPermitted, Query, Session, Statement
from runtime import definitions as resources
from runtime.audiences import versions
from runtime.lookup import Audiences
from runtime.session import reference_time
from storage import StoreError
from storage.kv import StoreLockedError

T = TypeVar("T")
STAGES = ("ast", "bound", "plan", "datafusion", "all")
_KINDS: dict[Kind, resources.Kinds] = {"segment": resources.SEGMENTS, "tag": resources.TAGS}
_HINTS = {
    "unknown_segment": "db.segments() lists the segments",
    "unknown_tag": "db.tags() lists the tags and clusters",
    "not_refreshed": "refresh it first: db.segment(name).refresh(as_of=...)",
    "unknown_version": "db.segment(name).versions() lists its versions",
}
_QUERY_READS = (
    "db.query() only reads: run a statement that changes definitions with db.execute() "
    "or db.define()"
)


def _resource_error(exc: LookupError) -> Error:
    code = f"unknown_{exc.what}" if isinstance(exc, resources.Unknown) else "not_refreshed"
    return error(code, str(exc), _HINTS.get(code))


def _checked(fn: Callable[[], T], session: Session | None = None, segment: str = "") -> T:
    """`fn()`, with the runtime's errors as the library's; an unknown `segment` (a resource
    call about one, given its `session`) said as `versions.NotDefined` says it."""
    try:
        return fn()
    except EqlError as exc:
        raise from_eql(exc) from None
    except (resources.Unknown, versions.NotRefreshed) as exc:
        if (
            session is not None
            and not isinstance(exc, versions.NotDefined)
            and getattr(exc, "what", None) == "segment"
        ):
            exc = versions.NotDefined(segment, session.audiences.view().names("SEGMENT"))
        raise _resource_error(exc) from None
    except resources.WrongStatement as exc:
        raise error("wrong_statement", str(exc)) from None


def _bad_time(exc: ValueError) -> NoReturn:
    raise error(
        "invalid_request", f"as_of: {exc}", "an ISO date or timestamp, e.g. '2026-11-01'"
    ) from None


def _at(as_of: AsOf) -> dt.datetime | str | None:
    return as_of if isinstance(as_of, dt.datetime) else time_text(as_of)


def _now(as_of: AsOf) -> dt.datetime:
    try:
        return reference_time(_at(as_of))
    except ValueError as exc:
        _bad_time(exc)


def _table_columns(table: pa.Table) -> tuple[Column, ...]:
    return tuple(Column(f.name, eql_type_name(f.type)) for f in table.schema)


def _open(path: str | Path, read_only: bool) -> Session:
    try:
        return Session.open(path, read_only=read_only)
    except StoreLockedError as exc:
        raise error(
            "store_locked",
            str(exc),
            "connect with read_only=True, or to the server that holds it "
            "(eql.connect('http://...', key=...))",
        ) from None
    except StoreError as exc:
        raise error("no_store", str(exc)) from None


class Local(Connection):
    def __init__(self, path: str | Path, *, read_only: bool = False) -> None:
        self.session = _open(path, read_only)
        self.path = Path(path)
        self.read_only = read_only
        self._aud: Audiences | None = None

    def refresh(self) -> None:
        """A read-only connection sees every commit made so far (each call does that too); a
        writable one already sees them all."""
        self._live()

    def _live(self) -> None:
        super()._live()
        if self.read_only:
            self.session.store.follow()

    def __repr__(self) -> str:
        mode = "read-only" if self.read_only else "read-write"
        return f"<eql.Connection {str(self.path)!r} ({mode})>"

    # ---- running EQL -------------------------------------------------------------------------
    def _prepare(self, text: str, params: Params, as_of: AsOf, writes: bool) -> Any:
        """The prepared text; a statement that changes definitions needs `writes` (refused:
        from `query`, a hint to use `execute`; from a read-only connection, E230)."""
        self._live()
        try:
            return self.session.prepare(
                text, plain_params(params), _at(as_of), WRITE if writes else READ
            )
        except NotPermitted as exc:
            if self.read_only:
                raise read_only_error() from None
            raise from_eql(exc, _QUERY_READS) from None
        except EqlError as exc:
            raise from_eql(exc) from None
        except ValueError as exc:
            _bad_time(exc)

    def query(
        self, text: str, params: Params = None, as_of: AsOf = None, limit: int | None = None
    ) -> Result:
        limit = check_limit(limit)
        prepared = self._prepare(text, params, as_of, writes=False)
        return self._result(prepared, text, params, as_of, limit, writes=False)

    def execute(self, text: str, params: Params = None, as_of: AsOf = None) -> Result:
        writes = not self.read_only
        prepared = self._prepare(text, params, as_of, writes=writes)
        result = self._result(prepared, text, params, as_of, None, writes=writes)
        result.to_arrow()
        return result

    def _result(
        self,
        prepared: Any,
        text: str,
        params: Params,
        as_of: AsOf,
        limit: int | None,
        writes: bool,
    ) -> Result:
        def explain(stage: str | None) -> Explanation:
            return self.explain(text, params, as_of, stage)

        session = self.session

        def current() -> Any:
            """What was prepared, on the session the connection has now (prepared again after a
            `refresh()`); the `closed` error after `close()`."""
            nonlocal prepared, session
            self._live()
            if session is not self.session:
                prepared, session = self._prepare(text, params, as_of, writes), self.session
            return prepared

        if isinstance(prepared, Query):
            return Result(_QuerySource(text, prepared, current, limit, explain))
        if isinstance(prepared, Statement):
            return Result(_StatementSource(text, current, limit))
        table = pa.table({"explain": [prepared.text]})
        return Result.of_table(text, table, (Column("explain", "string"),), explain)

    def explain(
        self, text: str, params: Params = None, as_of: AsOf = None, stage: str | None = None
    ) -> Explanation:
        self._live()
        if stage is not None and stage not in STAGES:
            raise error("invalid_request", f"stage {stage!r}: expected one of {', '.join(STAGES)}")
        try:
            explained = self.session.explain(text, plain_params(params), _at(as_of), stage)
        except EqlError as exc:
            raise from_eql(exc) from None
        except ValueError as exc:
            _bad_time(exc)
        return Explanation(explained.stage, explained.text)

    # ---- definitions -------------------------------------------------------------------------
    def _schema(self) -> dict[str, Any]:
        return schema_info(self.session.store.schema)

    def _listing(self, kind: Kind) -> list[dict[str, Any]]:
        return resources.listing(self.session, _KINDS[kind])

    def _detail(self, kind: Kind, name: str, history: int) -> dict[str, Any]:
        return _checked(
            lambda: resources.detail(self.session, _KINDS[kind], name, history),
            self.session,
            name,
        )

    def _define(self, text: str, refresh: bool, as_of: AsOf) -> dict[str, Any]:
        now = _now(as_of)
        for kinds in (resources.SEGMENTS, resources.TAGS):
            try:
                d, facts = resources.define(
                    self.session, kinds, text, now if refresh else None, now
                )
            except resources.WrongStatement:
                continue
            except EqlError as exc:
                raise from_eql(exc) from None
            out = resources.detail(self.session, kinds, d.name, 20)
            if facts is not None:
                out["refreshed"] = facts
            return out
        raise error(
            "wrong_statement",
            "db.define() takes DEFINE SEGMENT, DEFINE TAG or DEFINE CLUSTERS",
            "run other statements with db.execute()",
        )

    def _refresh(self, kind: Kind, name: str, as_of: AsOf) -> dict[str, Any]:
        now = _now(as_of)
        return _checked(
            lambda: resources.refresh(self.session, _KINDS[kind], name, now), self.session, name
        )

    def _drop(self, kind: Kind, name: str) -> None:
        _checked(lambda: resources.drop(self.session, _KINDS[kind], name), self.session, name)

    # ---- segments ----------------------------------------------------------------------------
    def _audiences(self) -> Audiences:
        """The lookup structures, brought up to the store (cheap when nothing changed)."""
        if self._aud is None:
            self._aud = Audiences(self.session.store)
        else:
            self._aud.reload()
        return self._aud

    def _members(self, name: str, version: int | None) -> pa.Table:
        aud = self._audiences()
        table = _checked(lambda: versions.members(aud, name, version))
        return table.sort_by(table.column_names[0])

    def _is_member(self, name: str, key: Any) -> bool:
        aud = self._audiences()
        d = _checked(lambda: versions.check(aud.aud, name))
        _check_key(self.session.store.schema, d.entity, key)
        return aud.is_member(d.name, key)

    def _changes(self, name: str, since: int, to: int) -> Changes:
        aud = self._audiences()
        found = _checked(lambda: versions.changes(aud, name, since, to))
        return Changes(found.segment, since, to, found.entered.sort(), found.exited.sort())

    def _close(self) -> None:
        self.session.close()


def _check_key(schema: Schema, entity: str, key: Any) -> None:
    """A key of the entity's key type, as the server checks one (`invalid_key`)."""
    found = schema.entity(entity)
    if found is None:
        return
    kind = found.key.type.kind
    if kind is TypeKind.INT and type(key) is not int:
        raise error("invalid_key", f"the key of {entity} is a whole number, not {key!r}")
    if kind is TypeKind.STRING and not isinstance(key, str):
        raise error("invalid_key", f"the key of {entity} is a string, not {key!r}")


class _QuerySource(Source):
    def __init__(
        self,
        text: str,
        query: Query,
        current: Callable[[], Any],
        limit: int | None,
        explain: Callable[..., Explanation],
    ) -> None:
        self.text = text
        self._current = current  # the query, on the connection's session now
        self._limit = limit
        self._explain = explain
        self._columns = tuple(Column(c.name, c.type) for c in query.columns)

    def columns(self) -> tuple[Column, ...]:
        return self._columns

    def open(self) -> Run:
        query = self._current()
        self._columns = tuple(Column(c.name, c.type) for c in query.columns)
        return _QueryRun(query, self._limit, self._columns)

    def explain(self, stage: str | None) -> Explanation:
        return self._explain(stage)


class _QueryRun(Run):
    def __init__(self, query: Query, limit: int | None, columns: tuple[Column, ...]) -> None:
        self.columns = columns
        self._limit = limit
        try:
            self.schema = query.schema()
        except EqlError as exc:
            raise from_eql(exc) from None
        self._batches = query.batches()

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        try:
            yield from cut(self._batches, self._limit, self)
        except EqlError as exc:
            raise from_eql(exc) from None

    def close(self) -> None:
        close = getattr(self._batches, "close", None)
        if close is not None:
            close()


class _StatementSource(Source):
    """A statement that reads (SHOW, DESCRIBE, EXPLAIN MEMBERSHIP), run when read."""

    def __init__(self, text: str, current: Callable[[], Any], limit: int | None) -> None:
        self.text = text
        self._current = current  # the statement, on the connection's session now
        self._limit = limit

    def open(self) -> Run:
        statement: Statement = self._current()
        table = _checked(statement.run)
        return _TableRun(table, self._limit)

    def explain(self, stage: str | None) -> Explanation:
        raise error("E217", "only queries (FIND ...) explain; this is a statement")


class _TableRun(Run):
    def __init__(self, table: pa.Table, limit: int | None) -> None:
        self.schema = table.schema
        self.columns = _table_columns(table)
        self._table = table
        self._limit = limit

    def __iter__(self) -> Iterator[pa.RecordBatch]:
        return cut(iter(self._table.to_batches()), self._limit, self)


# ---- the schema, in the shape of the server's GET /v1/schema ------------------------------------
def _attr(a: Attribute) -> dict[str, Any]:
    values = list(a.type.values) if a.type.values else None
    return {"name": a.name, "type": str(a.type), "required": a.required, "values": values}


def schema_info(schema: Schema) -> dict[str, Any]:
    return {
        "entities": [
            {
                "name": e.name,
                "key": _attr(e.key),
                "attributes": [_attr(a) for a in e.attributes],
                "relations": [
                    {
                        "name": r.name,
                        "target": r.target,
                        "cardinality": r.cardinality.value,
                        "via": r.via,
                    }
                    for r in e.relations
                ],
                "streams": [st.name for st, _ in schema.streams_of(e.name)],
            }
            for e in schema.entities
        ],
        "streams": [
            {
                "name": st.name,
                "time": st.time,
                "references": [
                    {"name": r.name, "entity": r.entity, "column": r.column} for r in st.references
                ],
                "fields": [_attr(f) for f in st.fields],
            }
            for st in schema.streams
        ],
    }
