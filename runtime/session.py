"""The one door to the runtime: `Session.prepare` and `Session.execute` take EQL text and give typed
results; the CLI, the server and the Python API call nothing else to run EQL.

    session = Session.open("./eql-data")          # or Session(store) over an open store
    rows = session.execute("FIND users RETURN id LIMIT 5", as_of="2026-11-01")
    rows.table                                     # a pyarrow.Table; rows.columns: names, types
    session.execute("DEFINE SEGMENT vip ON users WHERE ...", permissions=WRITE)

A text is parsed once and its kind decided once (`kind_of`):
- a query (`FIND ...`) is compiled and prepared as a `Query`: its columns are known, its rows come
  whole (`table`), batch by batch (`batches`) or as an async stream (`astream`, which starts the
  work on the calling thread and is pulled on an event loop);
- `EXPLAIN FIND ...` gives an `Explanation` (the stage and its text);
- any other statement (DEFINE, REFRESH, DROP, SHOW, DESCRIBE, EXPLAIN MEMBERSHIP) is a
  `Statement`, run by `Statement.run()`; those that change definitions need `permissions.writes`
  (like datafusion-python's `SQLOptions().with_allow_ddl(False)`), else `NotPermitted` (E230) is
  raised when it is prepared.
Over a store opened read-only (a reader beside a writer in another process), every `prepare`
first follows the writer (`Store.follow`), so it sees every commit made before it was called.
Errors are `EqlError`s with their codes and positions (run-time failures: E301 and the typed
failures of `eql.planner.to_datafusion`).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import pyarrow as pa

from entities.arrow import eql_type_name
from eql import types
from eql.binder.values import parse_time as parse_time  # for callers too: ISO date or time
from eql.compiler import Compiled, parse_cached
from eql.diagnostics import Diagnostic, EqlError
from eql.planner import logical
from eql.syntax import ast
from eql.syntax import walk as syntax_walk
from runtime import statements
from runtime.engine import Engine, EngineSettings
from storage import Store
from storage.audiences import AudienceStore

Kind = Literal["query", "explain", "read", "write"]


@dataclass(frozen=True, slots=True)
class Permissions:
    """What a caller may do: read always; change definitions only with `writes`."""

    writes: bool = False


READ = Permissions()
WRITE = Permissions(writes=True)


class NotPermitted(EqlError):
    """A statement that changes definitions, from a caller without `writes` (E230)."""


@dataclass(frozen=True, slots=True)
class Column:
    name: str
    type: str  # the EQL type: int, decimal(12,2), string, timestamp, ...


@dataclass(frozen=True, slots=True)
class Query:
    """A compiled query, ready to run (nothing has run yet)."""

    columns: tuple[Column, ...]
    compiled: Compiled = field(repr=False)
    engine: Engine = field(repr=False)

    @property
    def text(self) -> str:
        return self.compiled.text

    def table(self) -> pa.Table:
        return self.engine.run(self.compiled)

    def batches(self) -> Iterator[pa.RecordBatch]:
        return self.engine.stream(self.compiled)

    def astream(self) -> AsyncGenerator[pa.RecordBatch, None]:
        """Start the work here (call it off the event loop); pull the batches on an event loop.
        Closing the generator stops DataFusion (see `Engine.astream`)."""
        return self.engine.astream(self.compiled)

    def schema(self) -> pa.Schema:
        """The Arrow schema of the rows, without running the query."""
        return self.engine.result_schema(self.compiled)


@dataclass(frozen=True, slots=True)
class Explanation:
    stage: str
    text: str


@dataclass(frozen=True, slots=True)
class Statement:
    """A statement about definitions, checked against the caller's permissions, not run yet."""

    writes: bool
    statement: ast.Statement = field(repr=False)
    text: str = field(repr=False)
    params: Mapping[str, Any] = field(repr=False)
    now: dt.datetime = field(repr=False)
    engine: Engine = field(repr=False)

    def run(self) -> pa.Table:
        """Run it: the answer (what was defined, refreshed, dropped or found) as a table."""
        return statements.execute(
            self.engine, self.statement, self.text, dict(self.params), self.now
        )


@dataclass(frozen=True, slots=True)
class Rows:
    """What `execute` gives for a query or a statement: the rows and their columns."""

    columns: tuple[Column, ...]
    table: pa.Table


Prepared = Query | Explanation | Statement


def parameters_of(text: str) -> frozenset[str]:
    """The names (without `$`) of the parameters the text refers to, so that a caller can tell
    which of the values it was given are never read (EqlError when it does not parse)."""
    return syntax_walk.parameters(parse_cached(text))


def kind_of(text: str) -> Kind:
    """What the text is, parsed once (EqlError when it does not parse)."""
    return _kind(parse_cached(text))


def _kind(stmt: ast.Statement) -> Kind:
    if isinstance(stmt, ast.Find | ast.FindEvents):
        return "query"
    if isinstance(stmt, ast.Explain) and isinstance(stmt.statement, ast.Find | ast.FindEvents):
        return "explain"
    return "write" if isinstance(stmt, statements.WRITES) else "read"


def reference_time(as_of: dt.datetime | str | None) -> dt.datetime:
    """The reference time a statement runs at: now (None), an ISO date or time (str; ValueError
    when it is none), or a datetime (a naive one is UTC)."""
    if as_of is None:
        return dt.datetime.now(dt.UTC)
    if isinstance(as_of, str):
        return parse_time(as_of)
    return as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=dt.UTC)


def columns_of(compiled: Compiled) -> tuple[Column, ...]:
    plan = compiled.plan
    if isinstance(plan, logical.Output):
        return tuple(Column(name, type_name(t)) for _, name, t in plan.columns)
    return ()


def type_name(t: types.Type) -> str:
    """An EQL type as results name it: the schema's words (`enum[F, M]` for a string known to
    come from an enum column, `decimal(12,2)`, `timestamp`, ...)."""
    if t.kind is types.Kind.STRING and t.enum_values:
        return "enum[" + ", ".join(t.enum_values) + "]"
    return str(t)


def _table_columns(table: pa.Table) -> tuple[Column, ...]:
    return tuple(Column(f.name, eql_type_name(f.type)) for f in table.schema)


class Session:
    """A store, the engine over it, and the one way to run EQL on them."""

    def __init__(
        self, store: Store, settings: EngineSettings | None = None, *, owns_store: bool = False
    ) -> None:
        self.store = store
        self.engine = Engine(store, settings)
        self._owns_store = owns_store

    @classmethod
    def open(
        cls,
        data_dir: str | Path,
        *,
        read_only: bool = False,
        settings: EngineSettings | None = None,
    ) -> Session:
        """A session over the store at `data_dir`, which it closes with `close()`."""
        return cls(Store.open(data_dir, read_only=read_only), settings, owns_store=True)

    def close(self) -> None:
        if self._owns_store:
            self.store.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def audiences(self) -> AudienceStore:
        """The store's definitions of tags, segments and clusters (read them here)."""
        return self.engine.audiences

    # ---- the door ----------------------------------------------------------------------------
    def prepare(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        as_of: dt.datetime | str | None = None,
        permissions: Permissions = READ,
    ) -> Prepared:
        """Parse once, decide the kind once, check permissions; compile a query (nothing runs
        but an EXPLAIN, which is answered here)."""
        self.store.follow()  # a reader: what the writer has committed by now
        stmt = parse_cached(text)
        kind = _kind(stmt)
        now = reference_time(as_of)
        if kind == "query":  # the plan cache keeps clock-relative plans for a chosen as_of only
            compiled = self.engine.compile(text, params, now if as_of is not None else None)
            return Query(columns_of(compiled), compiled, self.engine)
        if kind == "explain":
            return self.explain(text, params, now)
        if kind == "write" and not permissions.writes:
            raise NotPermitted(
                [
                    Diagnostic(
                        "E230",
                        "this statement changes definitions; it needs a scope that allows writes",
                        stmt.span,
                        helps=("run it with the CLI (`eql query`), or with a key of scope define",),
                    )
                ],
                text,
            )
        return Statement(kind == "write", stmt, text, params or {}, now, self.engine)

    def explain(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        as_of: dt.datetime | str | None = None,
        stage: str | None = None,
    ) -> Explanation:
        """How a query compiles: `stage` (ast, bound, plan, datafusion, all), else the text's
        own `EXPLAIN stage`, else all."""
        compiled = self.engine.compile(text, params, reference_time(as_of), cached=False)
        chosen = stage or compiled.explain_stage or "all"
        return Explanation(chosen, self.engine.explain(compiled, chosen))

    def execute(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        as_of: dt.datetime | str | None = None,
        permissions: Permissions = READ,
    ) -> Rows | Explanation:
        """Run any EQL text to its end: rows for a query or a statement, or an explanation."""
        prepared = self.prepare(text, params, as_of, permissions)
        match prepared:
            case Query():
                return Rows(prepared.columns, prepared.table())
            case Statement():
                table = prepared.run()
                return Rows(_table_columns(table), table)
            case Explanation():
                return prepared

    def query(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        as_of: dt.datetime | str | None = None,
        permissions: Permissions = READ,
    ) -> pa.Table:
        """`execute`, as a table (an explanation is a one-column table of its text)."""
        result = self.execute(text, params, as_of, permissions)
        if isinstance(result, Explanation):
            return pa.table({"explain": [result.text]})
        return result.table
