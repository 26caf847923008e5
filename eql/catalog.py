"""What the compiler knows about tags and segments, and how a plan names the tables it reads.

The runtime builds a `Catalog` from the store (`runtime.catalog.catalog_of`) and passes it to the
binder, which stays pure. A tag or segment is read as a `Virtual` column: a column of the stored
table of one materialised version, typed by a reference (`TagRef`, `SegmentRef`: the
definition's name, its generation, which a DROP retires, and the version). The lowering
left-joins that table on the entity's dense id (`ID_COLUMN`), so a tag read across a path
(`home_store.store_tier`) joins at that path like any attribute, and `in segment` never re-runs
the segment's predicate. A plan's `Scan` reads a `TableRef` (an entity's or a stream's table, or a
version table) and `eql.planner.logical.tables(plan)` lists them: the runtime registers each by
its kind, nothing is parsed back from a string. An entity's table may be the one of a past time
(`EntityTable.at`), which the runtime puts in place of the current one for a query `AS OF` a
time before the entity's latest change.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from entities.arrow import ID_COLUMN
from entities.names import fold
from eql import types

__all__ = ["ID_COLUMN"]


@dataclass(frozen=True, slots=True)
class EntityTable:
    """The rows of an entity (its attributes, key and dense id): the current ones, or with `at`
    (UTC microseconds) those of that time, from the store's attribute history. The compiler
    plans current tables only; the runtime replaces them with tables `at` a query's past
    reference time (`eql.planner.logical.replace_tables`)."""

    name: str
    at: int | None = None

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class StreamTable:
    """The events of a stream."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True, slots=True)
class TagRef:
    """One materialised version of a tag (or of clusters' labels): `__id`, `value`, extras."""

    name: str
    generation: int
    version: int

    def __str__(self) -> str:
        return f"tag {self.name} (generation {self.generation}, version {self.version})"


@dataclass(frozen=True, slots=True)
class SegmentRef:
    """One materialised version of a segment: `__id`, `member` (true for every row)."""

    name: str
    generation: int
    version: int

    def __str__(self) -> str:
        return f"segment {self.name} (generation {self.generation}, version {self.version})"


@dataclass(frozen=True, slots=True)
class RollupMeasure:
    """One aggregate a `RollupRef` computes per key: `func` is `count` (rows; `column` None),
    `count` of a column (its non-null values), `sum`, `min` or `max` of `column`, over the
    events whose time is in `[start, end)` (UTC microseconds; None: unbounded)."""

    func: str
    column: str | None
    start: int | None
    end: int | None
    type: types.Type  # of the answer (the aggregate's)
    # the events it takes besides: (column, the values it must hold), all of them
    where: tuple[tuple[str, tuple[object, ...]], ...] = ()

    def __str__(self) -> str:
        arg = "*" if self.column is None else self.column
        return f"{self.func}({arg}{_where(self.where)}) in {_window(self.start, self.end)}"


@dataclass(frozen=True, slots=True)
class RollupRef:
    """Per-key aggregates of a stream's events, answered from the stream's per-entity index (its
    events with an integer reference `by`, sorted by it; `storage.rollups`) instead of a scan
    and a hash aggregation: one row per key with an event whose `time` is in `[start, end)`,
    columns `key` and `m0`, `m1`, ... (one per measure, as a grouped aggregate of those events
    with each measure's own window as its FILTER would give). Planned by the `rollups` rule."""

    stream: str
    by: str
    time: str | None  # the column the windows are on (None: no window)
    start: int | None
    end: int | None
    measures: tuple[RollupMeasure, ...] = ()
    # the events it reads at all (keys and measures): (column, the values it must hold)
    where: tuple[tuple[str, tuple[object, ...]], ...] = ()

    def __str__(self) -> str:
        """What it computes; a measure's window is shown where it is not the key window."""
        shown = [
            str(m)
            if (m.start, m.end) != (self.start, self.end)
            else f"{m.func}({'*' if m.column is None else m.column}{_where(m.where)})"
            for m in self.measures
        ]
        what = ", ".join(shown) or "keys"
        window = _window(self.start, self.end)
        return f"rollup {self.stream} by {self.by}{_where(self.where)} in {window}: {what}"


def _where(where: tuple[tuple[str, tuple[object, ...]], ...]) -> str:
    parts = [
        f"{column} = {values[0]!r}" if len(values) == 1 else f"{column} IN {values!r}"
        for column, values in where
    ]
    return "".join(f" WHERE {p}" if i == 0 else f" AND {p}" for i, p in enumerate(parts))


def _window(start: int | None, end: int | None) -> str:
    def at(us: int | None) -> str:
        if us is None:
            return "..."
        return (dt.datetime(1970, 1, 1, tzinfo=dt.UTC) + dt.timedelta(microseconds=us)).isoformat()

    return f"[{at(start)}, {at(end)})"


VersionRef = TagRef | SegmentRef
TableRef = EntityTable | StreamTable | TagRef | SegmentRef | RollupRef


def ref_key(ref: TableRef) -> tuple[str, str, int, int]:
    """An order for table references of any kind (for deterministic plans)."""
    if isinstance(ref, EntityTable):
        return type(ref).__name__, ref.name, 0, -1 if ref.at is None else ref.at
    if isinstance(ref, StreamTable):
        return type(ref).__name__, ref.name, 0, 0
    if isinstance(ref, RollupRef):
        return type(ref).__name__, str(ref), 0, 0
    return type(ref).__name__, ref.name, ref.generation, ref.version


@dataclass(frozen=True, slots=True)
class Virtual:
    """A column of a version table, read as an attribute of the entity the table belongs to."""

    table: VersionRef
    column: str  # "value", an extra (rfm: "r", "f", "m"), or "member"
    type: types.Type

    def __str__(self) -> str:
        return f"{self.table}.{self.column}"


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    entity: str
    generation: int
    type: types.Type
    extras: tuple[tuple[str, types.Type], ...] = ()  # rfm: r, f, m -> attributes `<name>_r`, ...
    # (version, reference time of the refresh, value type), oldest first
    versions: tuple[tuple[int, dt.datetime, types.Type], ...] = ()
    kind: str = "TAG"  # or CLUSTERS: the tag holds the cluster label

    def version_at(self, t: dt.datetime | None) -> tuple[int, types.Type] | None:
        """The version to read as of `t`: the latest refresh (by reference time, then version)
        at or before `t`; with `t` None, the latest refresh."""
        if t is None:
            return (self.versions[-1][0], self.versions[-1][2]) if self.versions else None
        best: tuple[dt.datetime, int, types.Type] | None = None
        for v, as_of, ty in self.versions:
            if as_of <= t and (best is None or (as_of, v) >= best[:2]):
                best = (as_of, v, ty)
        return None if best is None else (best[1], best[2])


@dataclass(frozen=True, slots=True)
class SegmentInfo:
    name: str
    entity: str
    generation: int
    version: int | None  # the latest refresh; None: defined, never refreshed


@dataclass(frozen=True, slots=True)
class Catalog:
    tags: dict[str, TagInfo] = field(default_factory=dict)  # folded name (`fold`) -> tag
    segments: dict[str, SegmentInfo] = field(default_factory=dict)

    def segment(self, name: str) -> SegmentInfo | None:
        return self.segments.get(fold(name))

    def tag_for(self, entity: str, name: str) -> tuple[TagInfo, str] | None:
        """The tag (and its column) that `name` names on `entity`: `value_tier`, `rfm_r`."""
        folded = fold(name)
        tag = self.tags.get(folded)
        if tag is not None and tag.entity == entity:
            return tag, "value"
        for t in self.tags.values():
            if t.entity != entity:
                continue
            for extra, _ in t.extras:
                if folded == fold(f"{t.name}_{extra}"):
                    return t, extra
        return None

    def tag_names(self, entity: str) -> list[str]:
        out: list[str] = []
        for t in self.tags.values():
            if t.entity == entity:
                out.append(t.name)
                out += [f"{t.name}_{e}" for e, _ in t.extras]
        return out


EMPTY = Catalog()


def type_name(t: types.Type) -> str:
    return str(types.plain(t))


def parse_type(text: str) -> types.Type:
    if text.startswith("decimal("):
        p, s = text[len("decimal(") : -1].split(",")
        return types.decimal(int(p), int(s))
    return types.Type(types.Kind(text))
