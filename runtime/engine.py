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
from typing import Any, assert_never

import pyarrow as pa

from eql.catalog import (
    Catalog,
    EntityTable,
    SegmentRef,
    StreamTable,
    TableRef,
    TagRef,
    ref_key,
)
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
            target_partitions=self.settings.target_partitions,
            memory_limit=self.settings.memory_limit,
            batch_size=self.settings.batch_size,
        )
        self._versions: dict[TableRef, object] = {}  # what each registered table reflects
        self._lock = threading.Lock()
        self.audiences = AudienceStore(store)
        self._catalog: tuple[int, Catalog] | None = None

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

    # ---- tables ------------------------------------------------------------------------------
    def peer_context(self) -> Any:
        """The DataFusion context with every entity and stream table registered under its own
        name: for peers measured beside EQL (hand-written DataFusion SQL in the benchmarks and
        oracle tests), on the very same tables."""
        schema = self.store.schema
        refs: list[TableRef] = [EntityTable(e.name) for e in schema.entities]
        refs += [StreamTable(s.name) for s in schema.streams]
        for ref in refs:
            self._register_one(ref)
        return self._ctx

    def _register(self, plan: L.Plan) -> None:
        """Register the tables `plan` reads: an entity's or a stream's when its data changed since
        it was registered, a version table (tag, segment) once, since it never changes (it is
        named by its definition's generation, which a DROP retires, and its version)."""
        for ref in sorted(L.tables(plan), key=ref_key):
            self._register_one(ref)

    def _register_one(self, ref: TableRef) -> None:
        version: object
        data: pa.Table | None
        match ref:
            case EntityTable(name=name):
                version = self.store.version(name)
                if self._versions.get(ref) == version:
                    return
                data = self.store.entity_table(name)
            case StreamTable(name=name):
                version = (len(self.store.segments(name)), self.store.tail_table(name).num_rows)
                if self._versions.get(ref) == version:
                    return
                data = self.store.event_table(name)
            case SegmentRef(generation=generation, version=v):
                if ref in self._versions:
                    return
                version = v
                members = self.audiences.bitmap(generation, v)
                data = None if members is None else segment_arrow(members)
            case TagRef(generation=generation, version=v):
                if ref in self._versions:
                    return
                version = v
                data = self.audiences.tag_values(generation, v)
            case _:
                assert_never(ref)
        if data is None:  # a version dropped after the query was compiled
            raise EqlError(
                [
                    Diagnostic(
                        "E225",
                        f"{ref} was dropped while the query ran",
                        None,
                        helps=("run the query again",),
                    )
                ],
                "",
            )
        with self._lock:
            TD.register(self._ctx, ref, data, self.settings.target_partitions)
            self._versions[ref] = version

    def compile(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
    ) -> Compiled:
        return compile_query(text, self.store.schema, params, now, self.catalog())

    def run(self, compiled: Compiled) -> pa.Table:
        self._register(compiled.plan)
        try:
            return TD.execute(compiled.plan, self._ctx, self._lock)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None

    def stream(self, compiled: Compiled) -> Iterator[pa.RecordBatch]:
        """Execute and yield record batches as DataFusion produces them (the CLI's way)."""
        self._register(compiled.plan)
        try:
            yield from TD.stream(compiled.plan, self._ctx, self._lock)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None

    def astream(self, compiled: Compiled) -> AsyncGenerator[pa.RecordBatch, None]:
        """Start executing on the calling thread (refresh, emission, physical planning: keep it
        off the event loop); the batches are then pulled on an event loop without blocking a
        thread. Cancelling a pending pull and closing the generator stops DataFusion's work, even
        in the middle of a batch (see `TD.astream`)."""
        self._register(compiled.plan)
        try:
            batches = TD.astream(compiled.plan, self._ctx, self._lock)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None
        return _mapped(compiled, batches)

    def result_schema(self, compiled: Compiled) -> pa.Schema:
        """The Arrow schema of a compiled query's result, without running it."""
        self._register(compiled.plan)
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
            self._register(compiled.plan)
            df_text = TD.explain(compiled.plan, self._ctx, self._lock)
        return explain_text(compiled, stage, df_text)


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
