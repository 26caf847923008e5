"""What the compiler knows about tags and segments: a frozen snapshot of the store's definitions.

The engine builds a `Catalog` from the store (`runtime.catalog.catalog_of`) and passes it to the
binder, which stays pure. A tag or segment is read as a *virtual column*: a column named
`@<table>.<column>` where `<table>` is the registered Arrow table of one materialised version,
named by the definition's generation (its identity, never reused; see `storage.audiences`), not
by its name (`__tag__<generation>__v<n>`: `__id`, `value`, extras; `__seg__<generation>__v<n>`:
`__id`, `member`). The
lowering left-joins that table on the entity's dense id `__id`, so a tag read across a path
(`home_store.store_tier`) joins at that path like any attribute, and `in segment` never re-runs
the segment's predicate.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

from entities.names import fold
from eql import types as T

VIRTUAL_PREFIX = "@"
ID_COLUMN = "__id"


@dataclass(frozen=True, slots=True)
class TagInfo:
    name: str
    entity: str
    generation: int
    type: T.Type
    extras: tuple[tuple[str, T.Type], ...] = ()  # rfm: r, f, m -> attributes `<name>_r`, ...
    # (version, reference time of the refresh, value type), oldest first
    versions: tuple[tuple[int, dt.datetime, T.Type], ...] = ()
    kind: str = "TAG"  # or CLUSTERS: the tag holds the cluster label

    def version_at(self, t: dt.datetime | None) -> tuple[int, T.Type] | None:
        """The version to read as of `t`: the latest refresh (by reference time, then version)
        at or before `t`; with `t` None, the latest refresh."""
        if t is None:
            return (self.versions[-1][0], self.versions[-1][2]) if self.versions else None
        best: tuple[dt.datetime, int, T.Type] | None = None
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


def tag_table(generation: int, version: int) -> str:
    return f"__tag__{generation}__v{version}"


def segment_table(generation: int, version: int) -> str:
    return f"__seg__{generation}__v{version}"


def parse_table(table: str) -> tuple[str, int, int] | None:
    """("tag" | "segment", generation, version) of a version table's name, else None."""
    for kind, prefix in (("tag", "__tag__"), ("segment", "__seg__")):
        if table.startswith(prefix):
            generation, _, version = table[len(prefix) :].partition("__v")
            if generation.isdigit() and version.isdigit():
                return kind, int(generation), int(version)
    return None


def virtual(table: str, column: str) -> str:
    return f"{VIRTUAL_PREFIX}{table}.{column}"


def parse_virtual(name: str) -> tuple[str, str] | None:
    if not name.startswith(VIRTUAL_PREFIX):
        return None
    table, _, column = name[1:].rpartition(".")
    return table, column


def type_name(t: T.Type) -> str:
    return str(T.plain(t))


def parse_type(text: str) -> T.Type:
    if text.startswith("decimal("):
        p, s = text[len("decimal(") : -1].split(",")
        return T.decimal(int(p), int(s))
    return T.Type(T.Kind(text))
