"""Entity profiles: one entity row by key, straight from the store (RocksDB), no DataFusion.

`Profiles.render` is the whole cost of a profile lookup after authentication: parse the key as
the schema's key type, one `Store.get`, and one `orjson.dumps`. Tags and segments are empty lists
until they exist (segments and tags come with their own issue).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

import orjson

from entities import Schema, TypeKind
from server.errors import ApiError
from storage import Store

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)


def _timestamp(value: Any) -> Any:
    """Stored timestamps are UTC microseconds; the API shows ISO 8601."""
    if isinstance(value, int) and not isinstance(value, bool):
        return _EPOCH + dt.timedelta(microseconds=value)
    return value


class _Shape:
    __slots__ = ("int_key", "names", "stamps")

    def __init__(self, int_key: bool, names: tuple[str, ...], stamps: frozenset[str]) -> None:
        self.int_key = int_key
        self.names = names
        self.stamps = stamps


class Profiles:
    def __init__(self, store: Store, schema: Schema, max_key_chars: int) -> None:
        self.store = store
        self.max_key_chars = max_key_chars
        self.shapes = {
            e.name: _Shape(
                e.key.type.kind is TypeKind.INT,
                tuple(a.name for a in e.attributes),
                frozenset(a.name for a in e.attributes if a.type.kind is TypeKind.TIMESTAMP),
            )
            for e in schema.entities
        }

    def parse_key(self, entity: str, text: str) -> tuple[_Shape, int | str]:
        shape = self.shapes.get(entity)
        if shape is None:
            raise ApiError(404, "unknown_entity", "no such entity in the schema")
        if not text or len(text) > self.max_key_chars:
            raise ApiError(422, "invalid_key", f"a key has 1 to {self.max_key_chars} characters")
        if not shape.int_key:
            return shape, text
        digits = text[1:] if text[:1] == "-" else text
        if not (digits.isascii() and digits.isdigit()) or len(digits) > 19:
            raise ApiError(422, "invalid_key", f"the key of {entity} is a whole number")
        value = int(text)
        if not INT64_MIN <= value <= INT64_MAX:
            raise ApiError(422, "invalid_key", f"the key of {entity} is a 64-bit whole number")
        return shape, value

    def render(self, entity: str, key_text: str) -> bytes:
        shape, key = self.parse_key(entity, key_text)
        row = self.store.get(entity, key)
        if row is None:
            raise ApiError(404, "not_found", f"no {entity} with this key")
        attrs = {n: row.get(n) for n in shape.names}
        for n in shape.stamps:
            attrs[n] = _timestamp(attrs[n])
        doc: dict[str, Any] = {
            "entity": entity,
            "key": key,
            "attributes": attrs,
            "tags": [],
            "segments": [],
        }
        return orjson.dumps(doc, option=orjson.OPT_UTC_Z)
