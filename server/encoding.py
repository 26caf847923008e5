"""Query results as bytes: JSON (one document), NDJSON and Arrow IPC stream (chunk by chunk).

An encoder is fed on the query pool (`batch`, `end`); `error_trailer` is called on the event loop
when a streamed response must stop early and must not touch state the pool may be using.

Values in JSON: timestamps ISO 8601 in UTC with `Z`, dates `YYYY-MM-DD`, decimals as strings
(exact), enums as their text, non-finite floats as null. Streams end with a trailer: in NDJSON a
last line `{"@eql": {"rows": N, "truncated": false}}` (or `{"@eql": {"error": {...}}}`); in
Arrow a last, empty record batch whose custom metadata holds `eql.rows` and `eql.truncated` (or
`eql.error`).
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import time
from collections.abc import Callable, Mapping
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

JSON = "application/json"
NDJSON = "application/x-ndjson"
ARROW = "application/vnd.apache.arrow.stream"
MEDIA_TYPES = (JSON, NDJSON, ARROW)
_ALIASES = {"application/jsonl": NDJSON, "application/json-seq": NDJSON}
_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    if isinstance(value, dt.timedelta):
        return value.total_seconds()
    if isinstance(value, bytes):
        return value.hex()
    raise TypeError(type(value).__name__)


def dumps(value: Any) -> bytes:
    return orjson.dumps(value, default=_default, option=_OPTS)


def negotiate(accept: str | None) -> str | None:
    """The media type to answer with, by the Accept header's preferences; None: none fits."""
    if not accept:
        return JSON
    best: tuple[float, int, str] | None = None
    for i, part in enumerate(accept.split(",")):
        media, *attrs = (p.strip() for p in part.split(";"))
        media = _ALIASES.get(media.lower(), media.lower())
        q = 1.0
        for a in attrs:
            name, _, value = a.partition("=")
            if name.strip().lower() == "q":
                try:
                    q = float(value)
                except ValueError:
                    q = 0.0
        if q <= 0:
            continue
        if media in ("*/*", "application/*"):
            media = JSON
        if media in MEDIA_TYPES and (best is None or (q, -i) > (best[0], best[1])):
            best = (q, -i, media)
    return None if best is None else best[2]


class Encoder(Protocol):
    media_type: str

    def batch(self, batch: pa.RecordBatch) -> bytes: ...

    def end(self, rows: int, truncated: bool) -> bytes: ...

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes: ...


class JsonEncoder:
    """Collects the (already cut) batches and writes one document at the end."""

    media_type = JSON

    def __init__(self, columns: list[dict[str, str]], started: float) -> None:
        self.columns = columns
        self.started = started
        self.batches: list[pa.RecordBatch] = []

    def batch(self, batch: pa.RecordBatch) -> bytes:
        self.batches.append(batch)
        return b""

    def end(self, rows: int, truncated: bool) -> bytes:
        out: list[dict[str, Any]] = []
        for b in self.batches:
            out.extend(b.to_pylist())
        doc = {
            "columns": self.columns,
            "rows": out,
            "row_count": rows,
            "truncated": truncated,
            "elapsed_ms": round((time.monotonic() - self.started) * 1000, 3),
        }
        return dumps(doc)

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes:
        raise AssertionError("a JSON result is never streamed")


class NdjsonEncoder:
    media_type = NDJSON

    def batch(self, batch: pa.RecordBatch) -> bytes:
        return b"".join(dumps(row) + b"\n" for row in batch.to_pylist())

    def end(self, rows: int, truncated: bool) -> bytes:
        return dumps({"@eql": {"rows": rows, "truncated": truncated}}) + b"\n"

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes:
        return dumps({"@eql": {"error": items[0] if items else {}}}) + b"\n"


class ArrowEncoder:
    """An Arrow IPC stream written incrementally; dictionaries (enums) may change per batch."""

    media_type = ARROW

    def __init__(self, schema_fn: Callable[[], pa.Schema]) -> None:
        self.schema_fn = schema_fn
        self.schema: pa.Schema | None = None
        self._sink = io.BytesIO()
        self._writer: ipc.RecordBatchStreamWriter | None = None

    def _take(self) -> bytes:
        data = self._sink.getvalue()
        self._sink.seek(0)
        self._sink.truncate()
        return data

    def _open(self, schema: pa.Schema) -> ipc.RecordBatchStreamWriter:
        if self._writer is None:
            self.schema = schema
            self._writer = ipc.new_stream(self._sink, schema)
        return self._writer

    def batch(self, batch: pa.RecordBatch) -> bytes:
        self._open(batch.schema).write_batch(batch)
        return self._take()

    def end(self, rows: int, truncated: bool) -> bytes:
        writer = self._open(self.schema or self.schema_fn())
        assert self.schema is not None
        meta = {"eql.rows": str(rows), "eql.truncated": "true" if truncated else "false"}
        writer.write_batch(pa.RecordBatch.from_pylist([], schema=self.schema), custom_metadata=meta)
        writer.close()
        return self._take()

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes:
        """An empty batch carrying the error, then end-of-stream, from a writer of its own."""
        if self.schema is None:
            return b""
        return _trailer(self.schema, {"eql.error": dumps(items[0] if items else {}).decode()})


def _trailer(schema: pa.Schema, meta: Mapping[str, str]) -> bytes:
    sink = io.BytesIO()
    writer = ipc.new_stream(sink, schema)
    empty = pa.RecordBatch.from_pylist([], schema=schema)
    writer.write_batch(empty)  # schema and dictionaries: the stream already has them
    skip = len(sink.getvalue())
    writer.write_batch(empty, custom_metadata=dict(meta))
    writer.close()
    return sink.getvalue()[skip:]
