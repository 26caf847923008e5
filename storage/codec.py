"""Byte layouts of keys and values in the store's RocksDB.

Key space (every key starts with a one-letter family and a colon):
  m:<name>                  store metadata (format version, schema text, `m:commits`: how many
                            commits, which readers compare)
  e:<entity>\\0<key>         current attributes of one entity row (JSON object)
  i:<entity>\\0<key>         the row's dense id (uint32, big-endian)
  r:<entity>\\0<id>          reverse of i: id -> encoded key
  n:<entity>                next dense id to allocate (uint32)
  v:<entity>                entity version, bumped by every committed change (uint64)
  k:<entity>                the version of the last commit that created or deleted a key (uint64):
                            lookups keep their key -> id map across updates of attributes
  c:<entity>\\0<version>     the keys one commit changed (Arrow IPC stream, one column `k`): lets a
                            snapshot file a few versions behind catch up; trimmed once persisted
  s:<stream>                event stream manifest (JSON: committed Arrow IPC segments)
  t:<stream>\\0<seq>         event tail: one commit's small append, as an Arrow IPC stream
  q:<stream>                next tail sequence number (uint64)
  l:<digest>                import ledger: a file already imported (JSON summary)
  h:<entity>\\0<~to><~ver>  attribute history (storage.history): the rows one commit replaced
  w:<entity>\\0<to><ver>    the same records in time order (for retention)
  H:<entity>                the entity's last history time and retention horizon
  o:<name>                  source offsets (CDC), committed in the same batch as the rows
  x:<kind><folded name>     tag/segment/clusters name index -> generation      [storage.audiences]
  d:<gen><ver>              a definition version (JSON)
  a:<gen><ver>              one refresh of it: reference time, wall time, facts (JSON)
  b:<gen><ver>m|+|-         segment members / entered / exited (serialized roaring bitmap)
  g:<gen><ver>              tag values of one refresh (Arrow IPC, zstd: __id, value, ...)
  u:audiences               counter bumped by every audience change (cache invalidation)
  u:generation              the last definition generation given out
Entity keys are encoded so that byte order equals value order: ints as 0x01 + 8 bytes big-endian
with the sign bit flipped, strings as 0x02 + UTF-8. Entity and stream names come from the schema
(`[a-z_][a-z0-9_]*`), so the NUL after them is unambiguous. Names users give (segments, tags) are
length-prefixed parts (`text_part`: uint32 byte length, UTF-8), never followed by another part
that a prefix scan could confuse with them; `<gen>` is a uint64, `<ver>` a uint32, big-endian.
"""

from __future__ import annotations

import datetime as dt
import decimal
import struct
from typing import Any

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.compute as pc

EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
EPOCH_DATE = dt.date(1970, 1, 1)


def encode_key(value: int | str) -> bytes:
    if isinstance(value, bool):
        raise TypeError("a key cannot be a bool")
    if isinstance(value, int):
        return b"\x01" + struct.pack(">Q", (value + (1 << 63)) & 0xFFFFFFFFFFFFFFFF)
    return b"\x02" + value.encode("utf-8")


def encode_keys(keys: pa.Array | pa.ChunkedArray, prefix: bytes = b"") -> list[bytes]:
    """`prefix + encode_key(k)` for every key of an Arrow array, computed column-wise."""
    arr = keys.combine_chunks() if isinstance(keys, pa.ChunkedArray) else keys
    n = len(arr)
    if arr.null_count:
        raise ValueError("a key cannot be null")
    t = arr.type
    if pa.types.is_integer(t) and not pa.types.is_uint64(t):
        # two's complement with the sign bit flipped == value + 2^63, big-endian
        flipped = arr.cast(pa.int64()).to_numpy(zero_copy_only=False).view(np.uint64) ^ np.uint64(
            1 << 63
        )
        width = len(prefix) + 9
        buf = np.empty((n, width), dtype=np.uint8)
        buf[:, : len(prefix)] = np.frombuffer(prefix, dtype=np.uint8)
        buf[:, len(prefix)] = 1
        buf[:, len(prefix) + 1 :] = flipped.astype(">u8").view(np.uint8).reshape(n, 8)
        out: list[bytes] = buf.view(f"V{width}").ravel().tolist()
        return out
    if pa.types.is_string(t):
        head = pa.scalar(prefix + b"\x02", pa.binary())
        joined = pc.binary_join_element_wise(
            head, arr.cast(pa.binary()), pa.scalar(b"", pa.binary())
        )
        return list(joined.to_pylist())
    return [prefix + encode_key(k) for k in arr.to_pylist()]


def decode_key(data: bytes) -> int | str:
    if data[:1] == b"\x01":
        return int(struct.unpack(">Q", data[1:9])[0]) - (1 << 63)
    return data[1:].decode("utf-8")


def family_key(family: str, name: str, suffix: bytes = b"") -> bytes:
    return f"{family}:{name}".encode() + (b"\x00" + suffix if suffix else b"")


def family_prefix(family: str, name: str) -> bytes:
    return f"{family}:{name}".encode() + b"\x00"


def text_part(text: str) -> bytes:
    """A key part holding any text, unambiguously: its UTF-8 byte length (uint32), the bytes."""
    data = text.encode("utf-8", "surrogatepass")
    return pack_u32(len(data)) + data


def audience_name_key(kind: str, folded: str) -> bytes:
    return b"x:" + text_part(kind) + text_part(folded)


def generation_key(family: bytes, generation: int, version: int | None = None) -> bytes:
    key = family + b":" + pack_u64(generation)
    return key if version is None else key + pack_u32(version)


def pack_u32(value: int) -> bytes:
    return struct.pack(">I", value)


def unpack_u32(data: bytes) -> int:
    return int(struct.unpack(">I", data)[0])


def pack_u64(value: int) -> bytes:
    return struct.pack(">Q", value)


def unpack_u64(data: bytes) -> int:
    return int(struct.unpack(">Q", data)[0])


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(f"cannot store {type(value).__name__}")


def to_json_value(value: Any) -> Any:
    """A Python value from Arrow as a JSON-safe value: dates ISO, timestamps as UTC microseconds."""
    if isinstance(value, dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=dt.UTC)
        delta = value - EPOCH
        return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds
    if isinstance(value, dt.date):
        return value.isoformat()
    if isinstance(value, decimal.Decimal):
        return str(value)
    return value


def dumps(obj: Any) -> bytes:
    return orjson.dumps(obj, default=_default)


def loads(data: bytes) -> Any:
    return orjson.loads(data)


def ipc_write(table: pa.Table) -> bytes:
    """A table as one Arrow IPC stream (event tails, changed keys)."""
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return bytes(sink.getvalue().to_pybytes())


def ipc_read(data: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(data)).read_all()
