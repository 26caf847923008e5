"""The entity model as declarative data: entities, attributes, relations and event streams.

Everything here is a frozen dataclass. This module imports nothing from the rest of the project;
`entities.loader` builds a `Schema` from a user's YAML file; `entities.arrow` maps types to
Arrow.
"""

from __future__ import annotations

import enum
from collections.abc import Iterator
from dataclasses import dataclass, field


class TypeKind(enum.Enum):
    INT = "int"
    DECIMAL = "decimal"
    FLOAT = "float"
    STRING = "string"
    BOOL = "bool"
    DATE = "date"
    TIMESTAMP = "timestamp"
    ENUM = "enum"


@dataclass(frozen=True, slots=True)
class DataType:
    """A column type. `enum` is a string restricted to `values`, stored dictionary-encoded."""

    kind: TypeKind
    precision: int = 0
    scale: int = 0
    values: tuple[str, ...] = ()

    def __str__(self) -> str:
        if self.kind is TypeKind.DECIMAL:
            return f"decimal({self.precision},{self.scale})"
        if self.kind is TypeKind.ENUM:
            return "enum[" + ", ".join(self.values) + "]"
        return str(self.kind.value)

    @property
    def is_numeric(self) -> bool:
        return self.kind in (TypeKind.INT, TypeKind.DECIMAL, TypeKind.FLOAT)

    @property
    def is_stringlike(self) -> bool:
        return self.kind in (TypeKind.STRING, TypeKind.ENUM)


INT = DataType(TypeKind.INT)
FLOAT = DataType(TypeKind.FLOAT)
STRING = DataType(TypeKind.STRING)
BOOL = DataType(TypeKind.BOOL)
DATE = DataType(TypeKind.DATE)
TIMESTAMP = DataType(TypeKind.TIMESTAMP)
KEY_KINDS = (TypeKind.INT, TypeKind.STRING)


def decimal_type(precision: int = 18, scale: int = 2) -> DataType:
    return DataType(TypeKind.DECIMAL, precision=precision, scale=scale)


def enum_type(values: tuple[str, ...]) -> DataType:
    return DataType(TypeKind.ENUM, values=values)


@dataclass(frozen=True, slots=True)
class Attribute:
    """A typed column of an entity or an event stream. `required` rejects nulls at ingest."""

    name: str
    type: DataType
    required: bool = False
    description: str = ""


class Cardinality(enum.Enum):
    ONE = "one"
    MANY = "many"


@dataclass(frozen=True, slots=True)
class Relation:
    """A named link from `source` to `target` entities.

    A `one` relation stores the target's key in the source attribute `via`. Its reverse is a
    `many` relation on the target, whose `via` names the same attribute, held by the other side
    (`via_on_target` is then true).
    """

    name: str
    source: str
    target: str
    cardinality: Cardinality
    via: str
    via_on_target: bool
    reverse: str | None = None


@dataclass(frozen=True, slots=True)
class EventRef:
    """An entity referenced by each event of a stream: `purchase.user -> users` (column user_id)."""

    name: str
    entity: str
    column: str


@dataclass(frozen=True, slots=True)
class Entity:
    name: str
    key: Attribute
    attributes: tuple[Attribute, ...]
    relations: tuple[Relation, ...] = ()
    description: str = ""
    # how long the values its upserts and deletes replace are kept for `AS OF` (`history: N
    # days`); None keeps them forever
    history_days: int | None = None

    @property
    def columns(self) -> tuple[Attribute, ...]:
        """The key first, then the attributes, as stored."""
        return (self.key, *self.attributes)

    def column(self, name: str) -> Attribute | None:
        for col in self.columns:
            if col.name == name:
                return col
        return None

    def relation(self, name: str) -> Relation | None:
        for rel in self.relations:
            if rel.name == name:
                return rel
        return None


@dataclass(frozen=True, slots=True)
class EventStream:
    """An append-only stream of events, each at `time`, referencing one or more entities."""

    name: str
    time: str
    references: tuple[EventRef, ...]
    fields: tuple[Attribute, ...]
    key: str | None = None
    description: str = ""

    def reference(self, name: str) -> EventRef | None:
        for ref in self.references:
            if ref.name == name:
                return ref
        return None

    def field(self, name: str) -> Attribute | None:
        for f in self.fields:
            if f.name == name:
                return f
        return None


@dataclass(frozen=True, slots=True)
class Schema:
    entities: tuple[Entity, ...]
    streams: tuple[EventStream, ...]
    source: str = "<schema>"
    _entity_index: dict[str, Entity] = field(default_factory=dict, compare=False, repr=False)
    _stream_index: dict[str, EventStream] = field(default_factory=dict, compare=False, repr=False)

    def __post_init__(self) -> None:
        self._entity_index.update({e.name: e for e in self.entities})
        self._stream_index.update({s.name: s for s in self.streams})

    def entity(self, name: str) -> Entity | None:
        return self._entity_index.get(name)

    def stream(self, name: str) -> EventStream | None:
        return self._stream_index.get(name)

    def require_entity(self, name: str) -> Entity:
        ent = self._entity_index.get(name)
        if ent is None:
            raise KeyError(f"unknown entity {name!r}")
        return ent

    def require_stream(self, name: str) -> EventStream:
        st = self._stream_index.get(name)
        if st is None:
            raise KeyError(f"unknown event stream {name!r}")
        return st

    def stream_columns(self, stream: EventStream | str) -> tuple[Attribute, ...]:
        """The stored columns of a stream: time, one per reference (typed as its key), fields."""
        st = self.require_stream(stream) if isinstance(stream, str) else stream
        cols = [Attribute(st.time, TIMESTAMP, required=True)]
        for ref in st.references:
            cols.append(Attribute(ref.column, self.require_entity(ref.entity).key.type))
        cols.extend(st.fields)
        return tuple(cols)

    def streams_of(self, entity: str) -> Iterator[tuple[EventStream, EventRef]]:
        """Every (stream, reference) through which `entity` sees a stream's events."""
        for st in self.streams:
            for ref in st.references:
                if ref.entity == entity:
                    yield st, ref
