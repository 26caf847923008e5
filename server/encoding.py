"""Query results as bytes: JSON (one document), NDJSON and Arrow IPC stream, chunk by chunk.

An encoder is fed on the query pool (`head`, `batch`, `end`); `error_trailer` is called on the
event loop when a streamed response must stop early and must not touch state the pool may be
using. Every format is produced piece by piece: a JSON document too is a head, the rows of each
batch and a tail, which the server keeps until the last one (so that an error still has its own
status) and then sends as they are, never joined into one buffer.

Encoding never holds the GIL for long (lookups on the event loop wait for it): a batch is
encoded in slices of at most `SLICE_CELLS` values and `SLICE_BYTES` bytes, each one short call
into pyarrow and orjson; between two slices a `Pace` checks the deadline and the stop flag,
counts the bytes against the result limit, and gives the GIL to a thread that waits for it.

Values in JSON: timestamps ISO 8601 in UTC with `Z`, dates `YYYY-MM-DD`, decimals as strings
(exact), enums as their text, non-finite floats as null. Streams end with a trailer: in NDJSON a
last line `{"@eql": {"rows": N, "truncated": false}}` (or `{"@eql": {"error": {...}}}`); in
Arrow a last, empty record batch whose custom metadata holds `eql.rows` and `eql.truncated` (or
`eql.error`), and each field of the schema its EQL type as `eql.type` metadata.
"""

from __future__ import annotations

import datetime as dt
import decimal
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import Any, Protocol

import orjson
import pyarrow as pa
import pyarrow.ipc as ipc

from server.errors import ApiError

JSON = "application/json"
NDJSON = "application/x-ndjson"
ARROW = "application/vnd.apache.arrow.stream"
MEDIA_TYPES = (JSON, NDJSON, ARROW)
_ALIASES = {"application/jsonl": NDJSON, "application/json-seq": NDJSON}
_OPTS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC
_LINE = _OPTS | orjson.OPT_APPEND_NEWLINE

SLICE_CELLS = 1024  # values (rows x columns) turned into Python objects and JSON at once
SLICE_BYTES = 256 << 10  # and at most about this many bytes of Arrow data
PIECE_BYTES = 1 << 20  # bytes of one piece of output (one body message)


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


def too_large(limit: int) -> ApiError:
    return ApiError(
        422,
        "result_too_large",
        f"the result is larger than {limit:,} bytes (EQL_MAX_RESULT_BYTES); "
        "ask for fewer rows or columns (limit, RETURN), or aggregate",
    )


class Pace:
    """Called between two slices with the bytes the slice made: raises `too_large` past the
    result limit and whatever `check` raises (the deadline, a stop), then lets a waiting thread
    have the GIL. `produced` counts the bytes of the whole result so far."""

    def __init__(self, limit: int, check: Callable[[], None] = lambda: None) -> None:
        self.limit = limit
        self.check = check
        self.produced = 0

    def __call__(self, produced: int) -> None:
        self.produced += produced
        if self.produced > self.limit:
            raise too_large(self.limit)
        self.check()
        time.sleep(0)  # releases the GIL: a lookup waiting for it runs now, not in 1 ms


def slices(batch: pa.RecordBatch) -> Iterator[pa.RecordBatch]:
    """The batch in consecutive slices of at most `SLICE_CELLS` values and about `SLICE_BYTES`
    bytes (at least one row each)."""
    rows = batch.num_rows
    if rows == 0:
        return
    per_row = max(1, batch.nbytes // rows)
    step = max(1, min(SLICE_CELLS // max(1, batch.num_columns), SLICE_BYTES // per_row))
    for start in range(0, rows, step):
        yield batch.slice(start, step)


class Encoder(Protocol):
    """`batch` gives a batch's bytes as pieces of at most about `PIECE_BYTES` (each one is one
    body message: copying it, on the pool or in the event loop, takes a fraction of a ms)."""

    media_type: str

    def head(self) -> bytes: ...

    def batch(self, batch: pa.RecordBatch, pace: Pace) -> list[bytes]: ...

    def end(self, rows: int, truncated: bool) -> bytes: ...

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes: ...


class JsonEncoder:
    """`{"columns": [...], "rows": [` + the rows, batch by batch + `], "row_count": ...}`."""

    media_type = JSON

    def __init__(self, columns: list[dict[str, str]], started: float) -> None:
        self.columns = columns
        self.started = started
        self._first = True

    def head(self) -> bytes:
        return b'{"columns":' + dumps(self.columns) + b',"rows":['

    def batch(self, batch: pa.RecordBatch, pace: Pace) -> list[bytes]:
        out = []
        for part in slices(batch):
            rows = dumps(part.to_pylist())  # `[{...},{...}]`
            piece = rows[1:-1] if self._first else b"," + rows[1:-1]
            self._first = False
            out.append(piece)
            pace(len(piece))
        return out

    def end(self, rows: int, truncated: bool) -> bytes:
        elapsed = round((time.monotonic() - self.started) * 1000, 3)
        tail = {"row_count": rows, "truncated": truncated, "elapsed_ms": elapsed}
        return b"]," + dumps(tail)[1:]

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes:
        raise AssertionError("a JSON result is never streamed")


class NdjsonEncoder:
    media_type = NDJSON

    def head(self) -> bytes:
        return b""

    def batch(self, batch: pa.RecordBatch, pace: Pace) -> list[bytes]:
        out = []
        for part in slices(batch):
            lines = b"".join(
                orjson.dumps(r, default=_default, option=_LINE) for r in part.to_pylist()
            )
            out.append(lines)
            pace(len(lines))
        return out

    def end(self, rows: int, truncated: bool) -> bytes:
        return dumps({"@eql": {"rows": rows, "truncated": truncated}}) + b"\n"

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes:
        return dumps({"@eql": {"error": items[0] if items else {}}}) + b"\n"


class ArrowEncoder:
    """An Arrow IPC stream, written batch by batch: the schema message once, then each batch's
    messages (its dictionaries, which may change per batch, and the record batch). Each batch is
    written by Arrow's C++ into a buffer of its own, with the GIL released (a writer into a
    Python file would take the GIL for every buffer of every column), and handed out in pieces
    of `PIECE_BYTES`."""

    media_type = ARROW

    def __init__(
        self, schema_fn: Callable[[], pa.Schema], types: Sequence[str] | None = None
    ) -> None:
        self.schema_fn = schema_fn
        self.types = tuple(types) if types is not None else None
        self.schema: pa.Schema | None = None

    def head(self) -> bytes:
        return b""

    def _start(self, schema: pa.Schema) -> bytes:
        """The schema message, the first time; nothing after. Each field carries its EQL type
        as `eql.type` metadata (`enum[female, male]`, `decimal(12,2)`), which Arrow's own types
        do not say."""
        if self.schema is not None:
            return b""
        if self.types is not None and len(self.types) == len(schema):
            fields = [
                f.with_metadata({**(f.metadata or {}), b"eql.type": t.encode()})
                for f, t in zip(schema, self.types, strict=True)
            ]
            schema = pa.schema(fields, metadata=schema.metadata)
        self.schema = schema
        head = _stream(schema, [])
        return _bytes(head.slice(0, head.size - len(_EOS)))

    def batch(self, batch: pa.RecordBatch, pace: Pace) -> list[bytes]:
        out = [self._start(batch.schema)]
        data = _messages(batch)
        for start in range(0, data.size, PIECE_BYTES):
            out.append(_bytes(data.slice(start, min(PIECE_BYTES, data.size - start))))
            pace(len(out[-1]))
        return out

    def end(self, rows: int, truncated: bool) -> bytes:
        head = self._start(self.schema_fn())
        assert self.schema is not None
        meta = {"eql.rows": str(rows), "eql.truncated": "true" if truncated else "false"}
        empty = pa.RecordBatch.from_pylist([], schema=self.schema)
        return head + _bytes(_messages(empty, meta)) + _EOS

    def error_trailer(self, items: list[dict[str, Any]]) -> bytes:
        """An empty batch carrying the error, then end-of-stream."""
        if self.schema is None:
            return b""
        meta = {"eql.error": dumps(items[0] if items else {}).decode()}
        empty = pa.RecordBatch.from_pylist([], schema=self.schema)
        return _bytes(_messages(empty, meta)) + _EOS


_EOS = b"\xff\xff\xff\xff\x00\x00\x00\x00"  # the IPC stream's end: continuation, length 0


def _bytes(buffer: pa.Buffer) -> bytes:
    data: bytes = buffer.to_pybytes()  # the one copy
    return data


def _stream(
    schema: pa.Schema, batches: list[pa.RecordBatch], meta: Mapping[str, str] | None = None
) -> pa.Buffer:
    """A whole IPC stream of `batches` (schema message first, end-of-stream last)."""
    sink = pa.BufferOutputStream()
    with ipc.new_stream(sink, schema) as writer:
        for b in batches:
            writer.write_batch(b, custom_metadata=None if meta is None else dict(meta))
    return sink.getvalue()


def _messages(batch: pa.RecordBatch, meta: Mapping[str, str] | None = None) -> pa.Buffer:
    """The messages of one batch in a stream whose schema message is already sent: a stream
    of that batch alone, less its schema message and its end (a view: nothing is copied)."""
    head = _stream(batch.schema, []).size - len(_EOS)
    whole = _stream(batch.schema, [batch], meta)
    return whole.slice(head, whole.size - head - len(_EOS))
