"""The entity schema: entities, relations and event streams, loaded from a user's YAML file.

May import: PyYAML, pyarrow (in `entities.arrow`). Imports nothing else from the project.
"""

from entities.loader import SchemaError, SchemaProblem, load_schema, parse_schema
from entities.model import (
    Attribute,
    Cardinality,
    DataType,
    Entity,
    EventRef,
    EventStream,
    Relation,
    Schema,
    TypeKind,
)

__all__ = [
    "Attribute",
    "Cardinality",
    "DataType",
    "Entity",
    "EventRef",
    "EventStream",
    "Relation",
    "Schema",
    "SchemaError",
    "SchemaProblem",
    "TypeKind",
    "load_schema",
    "parse_schema",
]
