"""The query engine: a store, a DataFusion context over its tables, and the compiler.

Compiles queries against the store's schema and catalog and executes their plans through
`eql.planner.to_datafusion` (the only DataFusion importer). Statements other than queries are run
by `runtime.statements`; the one door for callers is `runtime.session.Session`. Tables are
registered on first use and re-registered when the store's data changes (entity versions,
segments, tails); the engine's lock keeps a re-registration and a plan's emission (which looks the
tables up) apart, so that a refresh on one thread never shows another a table missing halfway.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import threading
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from eql.catalog import Catalog, parse_table
from eql.compiler import Compiled, compile_query, explain_text
from eql.diagnostics import Diagnostic, EqlError
from eql.planner import logical as L
from eql.planner import to_datafusion as TD
from runtime.catalog import catalog_of, segment_arrow
from storage import Store
from storage.audiences import AudienceStore


@dataclass(frozen=True, slots=True)
class EngineSettings:
    target_partitions: int = 2
    memory_limit: int | None = None  # bytes for DataFusion's spill pool (None: unbounded)
    # rows of one record batch: what one step of an operator holds (a wide row times this is
    # what a projection allocates at once, and what DataFusion's allocator keeps afterwards)
    batch_size: int = 8192  # DataFusion's own default; lower it where rows are very wide


class Engine:
    def __init__(self, store: Store, settings: EngineSettings | None = None) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self._ctx = TD.session(
            [],
            target_partitions=self.settings.target_partitions,
            memory_limit=self.settings.memory_limit,
            batch_size=self.settings.batch_size,
        )
        self._versions: dict[str, object] = {}
        self._lock = threading.Lock()
        self.audiences = AudienceStore(store)
        self._catalog: tuple[int, Catalog] | None = None
        self._virtual: set[str] = set()  # registered tag/segment version tables

    # ---- tags and segments -------------------------------------------------------------------
    def catalog(self) -> Catalog:
        """The tags and segments of the store, reloaded when any of them changed (every commit of
        `storage.audiences` bumps its counter, whichever process made it)."""
        counter = self.audiences.counter()
        cached = self._catalog
        if cached is None or cached[0] != counter:
            cached = (counter, catalog_of(self.audiences))
            self._catalog = cached
        return cached[1]

    def _ensure_virtual(self, plan: L.Plan) -> None:
        """Register the version tables (tags, segments) a plan reads; they never change (a table
        is named by its definition's generation, which a DROP retires, and its version)."""
        for table in _scanned(plan):
            parsed = parse_table(table)
            if table in self._virtual or parsed is None:
                continue
            kind, generation, version = parsed
            data: pa.Table | None
            if kind == "segment":
                members = self.audiences.bitmap(generation, version)
                data = None if members is None else segment_arrow(members)
            else:
                data = self.audiences.tag_values(generation, version)
            if data is None:  # dropped after the query was compiled
                raise EqlError(
                    [
                        Diagnostic(
                            "E225",
                            f"a {kind} this query reads was dropped while it ran",
                            None,
                            helps=("run the query again",),
                        )
                    ],
                    "",
                )
            with self._lock:
                TD.register(self._ctx, table, data, self.settings.target_partitions)
                self._virtual.add(table)

    def _table_version(self, kind: str, name: str) -> object:
        if kind == "entity":
            return self.store.version(name)
        return (len(self.store.segments(name)), self.store.tail_table(name).num_rows)

    def refresh(self) -> None:
        """Register every table whose data changed since the last refresh."""
        with self._lock:
            schema = self.store.schema
            for ent in schema.entities:
                v = self._table_version("entity", ent.name)
                if self._versions.get(ent.name) != v:
                    TD.register(
                        self._ctx,
                        ent.name,
                        self.store.entity_table(ent.name),
                        self.settings.target_partitions,
                    )
                    self._versions[ent.name] = v
            for st in schema.streams:
                v = self._table_version("events", st.name)
                if self._versions.get(st.name) != v:
                    TD.register(
                        self._ctx,
                        st.name,
                        self.store.event_table(st.name),
                        self.settings.target_partitions,
                    )
                    self._versions[st.name] = v

    def compile(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> Compiled:
        return compile_query(text, self.store.schema, params, now, self.catalog())

    def run(self, compiled: Compiled) -> pa.Table:
        self.refresh()
        self._ensure_virtual(compiled.plan)
        try:
            return TD.execute(compiled.plan, self._ctx, self._lock)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None

    def stream(self, compiled: Compiled) -> Iterator[pa.RecordBatch]:
        """Execute and yield record batches as DataFusion produces them (the CLI's way)."""
        self.refresh()
        self._ensure_virtual(compiled.plan)
        try:
            yield from TD.stream(compiled.plan, self._ctx, self._lock)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None

    def astream(self, compiled: Compiled) -> AsyncGenerator[pa.RecordBatch, None]:
        """Start executing on the calling thread (refresh, emission, physical planning: keep it
        off the event loop); the batches are then pulled on an event loop without blocking a
        thread. Cancelling a pending pull and closing the generator stops DataFusion's work, even
        in the middle of a batch (see `TD.astream`)."""
        self.refresh()
        self._ensure_virtual(compiled.plan)
        try:
            batches = TD.astream(compiled.plan, self._ctx, self._lock)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None
        return _mapped(compiled, batches)

    def result_schema(self, compiled: Compiled) -> pa.Schema:
        """The Arrow schema of a compiled query's result, without running it."""
        self.refresh()
        self._ensure_virtual(compiled.plan)
        return TD.result_schema(compiled.plan, self._ctx, self._lock)

    def query(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> pa.Table:
        return self.run(self.compile(text, params, now))

    def explain(self, compiled: Compiled, stage: str = "all") -> str:
        df_text = ""
        if stage in ("datafusion", "all"):
            self.refresh()
            self._ensure_virtual(compiled.plan)
            df_text = TD.explain(compiled.plan, self._ctx, self._lock)
        return explain_text(compiled, stage, df_text)


def _scanned(plan: L.Plan) -> set[str]:
    match plan:
        case L.Scan(table=t):
            return {t}
        case L.Join(left=left, right=right):
            return _scanned(left) | _scanned(right)
        case (
            L.Filter(input=inp)
            | L.Project(input=inp)
            | L.Aggregate(input=inp)
            | L.Sort(input=inp)
            | L.Limit(input=inp)
            | L.Output(input=inp)
        ):
            return _scanned(inp)
    return set()


async def _mapped(
    compiled: Compiled, batches: AsyncGenerator[pa.RecordBatch, None]
) -> AsyncGenerator[pa.RecordBatch, None]:
    async with contextlib.aclosing(batches):  # closing this closes DataFusion's stream
        try:
            async for batch in batches:
                yield batch
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None


def runtime_error(compiled: Compiled, message: str) -> EqlError:
    """A failure while running (an overflow, a resource limit): E301, with DataFusion's words."""
    return EqlError(
        [
            Diagnostic(
                "E301",
                f"the query failed while running: {message}",
                None,
                helps=("check the arithmetic (overflow) or narrow the query",),
            )
        ],
        compiled.text,
    )
