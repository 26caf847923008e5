"""Answers for applications, from in-process structures, without DataFusion.

`Lookups` wraps `runtime.lookup.Audiences` (key -> dense id dictionaries, the latest segment bitmaps
and tag values, loaded once and reloaded after each write the server makes) and the store's
rows. Each method takes the path's text, answers JSON bytes, and raises `ApiError` for bad input:

- `profile(entity, key)`: attributes (one RocksDB read), tags and segments;
- `membership(segment, key)`: one key, `{"segment", "key", "member", "version"}`;
- `segments_of(entity, key)`: the segments one key is in;
- `batch(segment, body)`: many keys at once (`{"keys": [...]}`), vectorised with NumPy.

Keys are typed by the schema: an int key is a whole number (in the path, its digits), a string key
is any text up to `max_key_chars`. Each lookup answered is counted (`server.metrics.LookupCounts`:
plain integers, the single lookups run on the event loop).
"""

from __future__ import annotations

import datetime as dt
import threading
from typing import Any

import numpy as np
import orjson

from entities import TypeKind
from entities.names import shown
from runtime import Session
from runtime.lookup import Audiences, Segment
from server.encoding import dumps
from server.errors import ApiError
from server.metrics import LookupCounts

INT64_MIN, INT64_MAX = -(1 << 63), (1 << 63) - 1
_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_NUMPY = orjson.OPT_SERIALIZE_NUMPY


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


class Lookups:
    def __init__(
        self,
        session: Session,
        max_key_chars: int,
        max_batch: int,
        counts: LookupCounts | None = None,
    ) -> None:
        schema = session.store.schema
        self.counts = counts if counts is not None else LookupCounts()
        self.max_key_chars = max_key_chars
        self.max_batch = max_batch
        self.shapes = {
            e.name: _Shape(
                e.key.type.kind is TypeKind.INT,
                tuple(a.name for a in e.attributes),
                frozenset(a.name for a in e.attributes if a.type.kind is TypeKind.TIMESTAMP),
            )
            for e in schema.entities
        }
        self.audiences = Audiences(session.store)
        self._reload_lock = threading.Lock()

    def reload(self) -> None:
        """Pick up what changed in the store (after a define, refresh or drop). Thread-safe;
        lookups running meanwhile see either the old or the new state, never a mix per call."""
        with self._reload_lock:
            self.audiences.reload()

    # ---- keys and names ----------------------------------------------------------------------
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

    def segment(self, name: str) -> Segment:
        """A refreshed segment (its name, entity, version and members, as one loaded state);
        404 unknown, 409 never refreshed."""
        seg = self.audiences.segment(name)
        if seg is None:
            raise self._missing(name)
        return seg

    def _missing(self, name: str) -> ApiError:
        if self.audiences.aud.definition("SEGMENT", name) is not None:
            return ApiError(
                409, "not_refreshed", f"segment {shown(name)} has no version yet; refresh it first"
            )
        return ApiError(404, "unknown_segment", f"no segment named {shown(name)}")

    # ---- lookups -----------------------------------------------------------------------------
    def profile(self, entity: str, key_text: str) -> bytes:
        shape, key = self.parse_key(entity, key_text)
        row = self.audiences.row(entity, key)
        if row is None:
            raise ApiError(404, "not_found", f"no {entity} with this key")
        attrs = {n: row.get(n) for n in shape.names}
        for n in shape.stamps:
            attrs[n] = _timestamp(attrs[n])
        aud = self.audiences
        doc = {
            "entity": entity,
            "key": key,
            "attributes": attrs,
            "tags": aud.tags_of(entity, key),
            "segments": aud.segments_of(entity, key),
        }
        body = dumps(doc)
        self.counts.profile += 1
        return body

    def membership(self, segment: str, key_text: str) -> bytes:
        seg = self.segment(segment)
        _, key = self.parse_key(seg.entity, key_text)
        doc = {"segment": seg.name, "key": key, "member": seg.contains(key), "version": seg.version}
        self.counts.membership += 1
        return orjson.dumps(doc)

    def segments_of(self, entity: str, key_text: str) -> bytes:
        _, key = self.parse_key(entity, key_text)
        segments = self.audiences.segments_of(entity, key)
        self.counts.segments_of += 1
        return orjson.dumps({"entity": entity, "key": key, "segments": segments})

    def batch(self, segment: str, body: bytes) -> bytes:
        """`{"keys": [...], "answer": "flags" | "members"}`: a flag per key (in order), or the
        keys that are members."""
        seg = self.segment(segment)
        keys, answer = self._batch_body(body)
        typed = self._typed_keys(seg.entity, self.shapes[seg.entity].int_key, keys)
        flags = seg.contains_keys(typed)
        doc: dict[str, Any] = {
            "segment": seg.name,
            "entity": seg.entity,
            "version": seg.version,
            "count": int(flags.sum()),
        }
        if answer == "members":
            if isinstance(typed, np.ndarray):
                doc["members"] = typed[flags]
            else:
                doc["members"] = [k for k, f in zip(typed, flags.tolist(), strict=True) if f]
        else:
            doc["members"] = flags
        body = orjson.dumps(doc, option=_NUMPY)
        self.counts.batch(len(keys))
        return body

    def _batch_body(self, body: bytes) -> tuple[list[Any], str]:
        try:
            doc = orjson.loads(body)
        except orjson.JSONDecodeError:
            raise ApiError(
                400, "invalid_json", "the body is not JSON of Unicode text (a lone surrogate?)"
            ) from None
        if not isinstance(doc, dict) or not isinstance(doc.get("keys"), list):
            raise ApiError(422, "invalid_request", 'the body is {"keys": [...]}')
        extra = sorted(set(doc) - {"keys", "answer"})
        if extra:
            raise ApiError(422, "invalid_request", f"unknown field {extra[0]!r}")
        answer = doc.get("answer", "flags")
        if answer not in ("flags", "members"):
            raise ApiError(422, "invalid_request", 'answer is "flags" or "members"')
        keys: list[Any] = doc["keys"]
        if len(keys) > self.max_batch:
            raise ApiError(
                413, "too_many_keys", f"{len(keys)} keys; at most {self.max_batch} per request"
            )
        return keys, answer

    def _typed_keys(self, entity: str, int_key: bool, keys: list[Any]) -> np.ndarray | list[Any]:
        if not int_key:
            limit = self.max_key_chars
            for i, k in enumerate(keys):
                if type(k) is not str or not 0 < len(k) <= limit:
                    raise _bad_key(i, f"the keys of {entity} are strings of 1 to {limit} chars")
            return keys  # orjson refuses text that is not Unicode (a lone surrogate) at once
        if not keys:
            return np.empty(0, dtype=np.int64)
        try:
            arr = np.array(keys)
        except (ValueError, OverflowError):
            arr = np.array([], dtype=object)
        if arr.dtype.kind == "i" and arr.ndim == 1 and len(arr) == len(keys):
            bad = next((i for i, k in enumerate(keys) if type(k) is bool), None)
            if bad is None:
                return arr.astype(np.int64, copy=False)
        else:
            bad = next(
                (
                    i
                    for i, k in enumerate(keys)
                    if type(k) is not int or not INT64_MIN <= k <= INT64_MAX
                ),
                0,
            )
        raise _bad_key(bad, f"the keys of {entity} are 64-bit whole numbers")


def _bad_key(index: int, message: str) -> ApiError:
    return ApiError(422, "invalid_key", f"keys[{index}]: {message}", location=["keys", index])
