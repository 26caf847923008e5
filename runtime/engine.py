"""The query engine: a store, a DataFusion context over its tables, and the compiler.

Compiles queries against the store's schema and catalog and executes their plans through
`eql.planner.to_datafusion` (the only DataFusion importer). Statements other than queries are run
by `runtime.statements`; the one door for callers is `runtime.session.Session`. Tables are
registered on first use and re-registered when the store's data changes (entity versions,
segments, tails); the engine's lock keeps a re-registration and a plan's emission (which looks the
tables up) apart, so that a refresh on one thread never shows another a table missing halfway.

Attribute history: a plan reads an entity's current table, unless its reference time is earlier
than the entity's latest change (`Store.history_time`), as for a query `AS OF` a past time or a
refresh at one; it then reads the table of that time (`EntityTable(name, at)`, from
`Store.entity_table_at`), registered once (it never changes) and kept among the last
`AS_OF_TABLES`. A query at the clock's now reads the current tables: `compile` gives a cached
plan the reference time of its caller (a plan whose text says AS OF keeps its own).
"""

from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import threading
from collections import OrderedDict
from collections.abc import AsyncGenerator, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, assert_never

import pyarrow as pa

from eql.binder import Names
from eql.catalog import (
    Catalog,
    EntityTable,
    RollupRef,
    SegmentRef,
    StreamTable,
    TableRef,
    TagRef,
    ref_key,
)
from eql.compiler import Compiled, compile_query, explain_text
from eql.diagnostics import Diagnostic, EqlError
from eql.planner import logical, to_datafusion
from eql.planner.rules import RULES, WITHOUT_ROLLUPS, Rules
from runtime.catalog import catalog_of, segment_arrow
from runtime.plans import PlanCache
from storage import Store, rollups
from storage.audiences import AudienceStore
from storage.history import HistoryGone, format_us, to_us


@dataclass(frozen=True, slots=True)
class EngineSettings:
    target_partitions: int = 2
    memory_limit: int | None = None  # bytes for DataFusion's spill pool (None: unbounded)
    # rows of one record batch: what one step of an operator holds (a wide row times this is
    # what a projection allocates at once, and what DataFusion's allocator keeps afterwards)
    batch_size: int = 8192  # DataFusion's own default; lower it where rows are very wide
    # per-entity aggregates of a stream from its index (`eql.planner.rules.rollups`,
    # `storage.rollups`); off: every aggregate scans the stream (the oracle runs both)
    rollups: bool = True


FRAMES = 128  # DataFrames kept for cached plans
AS_OF_TABLES = 8  # entity tables of past times kept registered
ROLLUP_TABLES = 8  # answers of the per-entity index kept registered (a row a key: ~20 MB at 1M)
# a plan, the tables it reads, their versions when it was emitted, and its DataFrame
Frame = tuple[logical.Plan, tuple[TableRef, ...], tuple[object, ...], to_datafusion.Frame]


class Engine:
    def __init__(self, store: Store, settings: EngineSettings | None = None) -> None:
        self.store = store
        self.settings = settings or EngineSettings()
        self._ctx = to_datafusion.session(
            target_partitions=self.settings.target_partitions,
            memory_limit=self.settings.memory_limit,
            batch_size=self.settings.batch_size,
        )
        self._versions: dict[TableRef, object] = {}  # what each registered table reflects
        self._lock = threading.Lock()
        self.audiences = AudienceStore(store)
        self.names = Names(store.schema)  # the schema's name index, built once
        self._catalog: tuple[int, Catalog] | None = None
        self.plans = PlanCache()
        # the DataFrame of a cached plan, by the plan's identity, with the versions of the tables
        # it read; cleared whenever a table is registered anew (so no old data stays pinned)
        self._frames: OrderedDict[int, Frame] = OrderedDict()
        # a plan read at a past time: (plan id, time, the entities read as of then) -> (the plan,
        # the one reading those tables)
        self._past: OrderedDict[tuple[int, int, tuple[str, ...]], tuple[logical.Plan, logical.Plan]]
        self._past = OrderedDict()
        self._past_tables: OrderedDict[EntityTable, None] = OrderedDict()  # registered, LRU
        self._rollups: OrderedDict[RollupRef, None] = OrderedDict()  # registered, LRU

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
        with self.store.lock:
            for ref in refs:
                self._register_one(ref)
        return self._ctx

    def _register_one(self, ref: TableRef, pinned: frozenset[TableRef] = frozenset()) -> None:
        """Register `ref`'s table (again when what it reflects changed); tables kept by recent
        use make room, but never one in `pinned` (the others the plan being registered reads)."""
        version: object
        data: pa.Table | None
        match ref:
            case EntityTable(name=name, at=int(at)):
                if ref in self._versions:  # the past never changes
                    self._past_tables.move_to_end(ref)
                    return
                version = at
                data = self.store.entity_table_at(name, at)
                self._keep(ref, self._past_tables, AS_OF_TABLES, pinned)
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
            case RollupRef(stream=stream):
                version = self.store.stream_version(stream)
                if self._versions.get(ref) == version:
                    self._rollups.move_to_end(ref)
                    return
                data = self._rollup(ref)
                self._keep(ref, self._rollups, ROLLUP_TABLES, pinned)
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
            to_datafusion.register(self._ctx, ref, data, self.settings.target_partitions)
            if ref in self._versions:
                self._frames.clear()
            self._versions[ref] = version

    def _rollup(self, ref: RollupRef) -> pa.Table:
        """The answer of the stream's per-entity index to `ref` (`storage.rollups`)."""
        measures = [
            rollups.Measure(
                m.func, m.column, m.start, m.end, to_datafusion.arrow_type(m.type), m.where
            )
            for m in ref.measures
        ]
        # (no integer sum is planned onto the index, so none can overflow here: `rollups` rule)
        return self.store.indexes.answer(
            ref.stream, ref.by, ref.time, ref.start, ref.end, measures, ref.where
        )

    def _keep(
        self, ref: TableRef, kept: OrderedDict[Any, None], most: int, pinned: frozenset[TableRef]
    ) -> None:
        """Make room for one more table of a kind kept by recent use (of a past time, of the
        index): the least recently used one goes (with the DataFrames that read it), never one
        in `pinned` (a plan may read more than `most`). Under the store's lock, as every
        registration."""
        kept[ref] = None
        kept.move_to_end(ref)
        spare = [r for r in kept if r not in pinned]
        for old in spare[: max(0, len(kept) - most)]:
            del kept[old]
            with self._lock:
                self._ctx.deregister_table(to_datafusion.table_name(old))
                self._versions.pop(old, None)
                for key in [k for k, f in self._frames.items() if old in f[1]]:
                    del self._frames[key]

    def _plan_at(self, compiled: Compiled) -> logical.Plan:
        """The plan to run: `compiled.plan`, or, when its reference time is earlier than the
        latest change of an entity it reads, that plan reading the entity's table of then."""
        plan = compiled.plan
        at = to_us(compiled.bound.reference_time)
        mapping: dict[TableRef, TableRef] = {}
        for ref in logical.tables(plan):
            if isinstance(ref, EntityTable) and ref.at is None:
                last = self.store.history_time(ref.name)
                if last is not None and at < last:
                    mapping[ref] = EntityTable(ref.name, at)
        if not mapping:
            return plan
        key = (id(plan), at, tuple(sorted(r.name for r in mapping if isinstance(r, EntityTable))))
        found = self._past.get(key)
        if found is None or found[0] is not plan:
            found = (plan, logical.replace_tables(plan, mapping))
            self._past[key] = found
            while len(self._past) > FRAMES:
                self._past.popitem(last=False)
        self._past.move_to_end(key)
        return found[1]

    def reads(self, compiled: Compiled) -> frozenset[TableRef]:
        """The tables `compiled` reads if run now: an entity's current table, or its table of the
        plan's reference time when that is before the entity's latest change."""
        with self.store.lock:
            return logical.tables(self._plan_at(compiled))

    def compile(
        self,
        text: str,
        params: Mapping[str, Any] | None = None,
        now: dt.datetime | None = None,
        *,
        cached: bool = True,
    ) -> Compiled:
        """The plan of `text`, from the plan cache when it was compiled before for the same
        parameters and catalog (and the same `now`, when the plan reads it). `now` is the
        reference time the caller chose; None is the clock's."""
        if not cached:
            return self._compile(text, params, now)
        fixed = now is not None
        at = now if now is not None else dt.datetime.now(dt.UTC)
        counter = self.audiences.counter()
        compiled = self.plans.get(
            text, params, at, counter, lambda: self._compile(text, params, at), fixed_time=fixed
        )
        text_time = getattr(compiled.statement, "as_of", None) is not None  # AS OF in the text
        if text_time or compiled.bound.reference_time == at:
            return compiled
        # a plan cached for another caller's time (it reads no clock, but its tables are of a
        # time): the same plan at this caller's
        bound = dataclasses.replace(compiled.bound, reference_time=at)
        return dataclasses.replace(compiled, bound=bound)

    def _compile(
        self, text: str, params: Mapping[str, Any] | None, now: dt.datetime | None
    ) -> Compiled:
        return compile_query(
            text, self.store.schema, params, now, self.catalog(), self.names, self.rules
        )

    @property
    def rules(self) -> Rules:
        """The plan rewrites this engine's plans get (without `rollups` when it is off)."""
        return RULES if self.settings.rollups else WITHOUT_ROLLUPS

    def frame(self, compiled: Compiled) -> to_datafusion.Frame:
        """The DataFrame of a compiled plan over its tables (the current ones, or an entity's of
        the plan's reference time: `_plan_at`): registered first, then emitted, or the one
        emitted before while the tables it read are unchanged."""
        with self.store.lock:  # every table at one commit (a reader follows under this lock)
            plan = self._plan_at(compiled)
            found = self._frames.get(id(plan))
            if found is not None and found[0] is plan:
                refs = found[1]
            else:
                refs = tuple(sorted(logical.tables(plan), key=ref_key))
            pinned = frozenset(refs)
            try:
                for ref in refs:
                    self._register_one(ref, pinned)
            except HistoryGone as exc:
                raise history_gone(compiled, exc) from None
            versions = tuple(self._versions.get(ref) for ref in refs)
            # a table of the past or an index's answer may go (another query's registration)
            # once the lock is let go: emitted before
            if plan is not compiled.plan or any(isinstance(r, RollupRef) for r in refs):
                return self._emitted(compiled, plan, refs, versions)
        return self._emitted(compiled, plan, refs, versions)

    def _emitted(
        self,
        compiled: Compiled,
        plan: logical.Plan,
        refs: tuple[TableRef, ...],
        versions: tuple[object, ...],
    ) -> to_datafusion.Frame:
        """The DataFrame of `plan` over its registered tables: the cached one, or emitted."""
        key = id(plan)
        with self._lock:
            found = self._frames.get(key)
            if found is not None and found[0] is plan and found[2] == versions:
                self._frames.move_to_end(key)
                return found[3]
        try:
            df = to_datafusion.frame(plan, self._ctx, self._lock)
        except to_datafusion.ExecutionFailed as exc:
            raise runtime_error(compiled, exc) from None
        with self._lock:
            self._frames[key] = (plan, refs, versions, df)
            while len(self._frames) > FRAMES:
                self._frames.popitem(last=False)
        return df

    def run(self, compiled: Compiled) -> pa.Table:
        df = self.frame(compiled)
        try:
            return to_datafusion.collect(df)
        except to_datafusion.ExecutionFailed as exc:
            raise runtime_error(compiled, exc) from None

    def stream(self, compiled: Compiled) -> Iterator[pa.RecordBatch]:
        """Execute and yield record batches as DataFusion produces them (the CLI's way)."""
        df = self.frame(compiled)
        try:
            yield from to_datafusion.stream(df)
        except to_datafusion.ExecutionFailed as exc:
            raise runtime_error(compiled, exc) from None

    def astream(self, compiled: Compiled) -> AsyncGenerator[pa.RecordBatch, None]:
        """Start executing on the calling thread (refresh, emission, physical planning: keep it
        off the event loop); the batches are then pulled on an event loop without blocking a
        thread. Cancelling a pending pull and closing the generator stops DataFusion's work, even
        in the middle of a batch (see `to_datafusion.astream`)."""
        df = self.frame(compiled)
        try:
            batches = to_datafusion.astream(df)
        except to_datafusion.ExecutionFailed as exc:
            raise runtime_error(compiled, exc) from None
        return _mapped(compiled, batches)

    def result_schema(self, compiled: Compiled) -> pa.Schema:
        """The Arrow schema of a compiled query's result, without running it."""
        try:
            return to_datafusion.result_schema(self.frame(compiled))
        except to_datafusion.ExecutionFailed as exc:
            raise runtime_error(compiled, exc) from None

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
            try:
                df_text = to_datafusion.explain(self.frame(compiled))
            except to_datafusion.ExecutionFailed as exc:
                raise runtime_error(compiled, exc) from None
        return explain_text(compiled, stage, df_text)


async def _mapped(
    compiled: Compiled, batches: AsyncGenerator[pa.RecordBatch, None]
) -> AsyncGenerator[pa.RecordBatch, None]:
    async with contextlib.aclosing(batches):  # closing this closes DataFusion's stream
        try:
            async for batch in batches:
                yield batch
        except to_datafusion.ExecutionFailed as exc:
            raise runtime_error(compiled, exc) from None


def history_gone(compiled: Compiled, exc: HistoryGone) -> EqlError:
    """E305: a time before an entity's history horizon (its retention dropped those values)."""
    kept = f"`history: {exc.days} days`" if exc.days is not None else "its retention"
    at = getattr(compiled.statement, "as_of", None)
    return EqlError(
        [
            Diagnostic(
                "E305",
                f"the attributes of {exc.entity} before {format_us(exc.horizon)} are no longer "
                f"kept ({kept} in the schema)",
                getattr(at, "span", None),
                helps=(
                    f"ask AS OF {format_us(exc.horizon)} or later, or keep more history: "
                    f"`history:` of {exc.entity} in the schema",
                ),
            )
        ],
        compiled.text,
    )


def runtime_error(compiled: Compiled, failure: to_datafusion.ExecutionFailed) -> EqlError:
    """A failure while running, by its type: E302 memory, E303 arithmetic, E304 cancelled, E301
    anything else; each with DataFusion's words."""
    code, what, hint = _FAILURES.get(type(failure), _FAILURES[to_datafusion.ExecutionFailed])
    if isinstance(failure, to_datafusion.Overflow) and failure.hint:
        hint = failure.hint  # the operation's own advice (an integer step, a sum, a decimal)
    return EqlError(
        [Diagnostic(code, f"{what}: {failure}", None, helps=(hint,))],
        compiled.text,
    )


_FAILURES: dict[type[to_datafusion.ExecutionFailed], tuple[str, str, str]] = {
    to_datafusion.ExecutionFailed: (
        "E301",
        "the query failed while running",
        "narrow the query; if it keeps failing, report it with the query text",
    ),
    to_datafusion.OutOfMemory: (
        "E302",
        "the query needs more memory than the engine may use",
        "narrow it (a LIMIT, a shorter window, fewer groups) or raise the memory limit",
    ),
    to_datafusion.Overflow: (
        "E303",
        "a value does not fit its type",
        "check the arithmetic: integers are 64-bit (write one side as a decimal, e.g. `x * 1.0`)",
    ),
    to_datafusion.Cancelled: (
        "E304",
        "the query was cancelled while running",
        "run it again",
    ),
}
