"""The query engine: a store, a DataFusion session over its tables, and the compiler.

The runtime glue between `storage` and the pure compiler stages; executes through
`eql.planner.to_datafusion` (the only DataFusion importer). Tables are registered once and
re-registered when the store's data changes (entity versions, segments, tails).
"""

from __future__ import annotations

import datetime as dt
import threading
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from typing import Any

import pyarrow as pa

from eql.compiler import Compiled, compile_query, explain_text
from eql.diagnostics import Diagnostic, EqlError
from eql.planner import to_datafusion as TD
from storage import Store


@dataclass(frozen=True, slots=True)
class EngineSettings:
    target_partitions: int = 2
    memory_limit: int | None = None  # bytes for DataFusion's spill pool (None: unbounded)


class Engine:
    def __init__(self, store: Store, settings: EngineSettings | None = None) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self._ctx = TD.session(
            [],
            target_partitions=self.settings.target_partitions,
            memory_limit=self.settings.memory_limit,
        )
        self._versions: dict[str, object] = {}
        self._lock = threading.Lock()
        self.refresh()

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
        return compile_query(text, self.store.schema, params, now)

    def run(self, compiled: Compiled) -> pa.Table:
        self.refresh()
        try:
            return TD.execute(compiled.plan, self._ctx)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None

    def stream(self, compiled: Compiled) -> Iterator[pa.RecordBatch]:
        """Execute and yield record batches as DataFusion produces them."""
        self.refresh()
        try:
            yield from TD.stream(compiled.plan, self._ctx)
        except TD.ExecutionFailed as exc:
            raise runtime_error(compiled, str(exc)) from None

    def result_schema(self, compiled: Compiled) -> pa.Schema:
        """The Arrow schema of a compiled query's result, without running it."""
        self.refresh()
        return TD.result_schema(compiled.plan, self._ctx)

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
            df_text = TD.explain(compiled.plan, self._ctx)
        return explain_text(compiled, stage, df_text)


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
