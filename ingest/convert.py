"""Convert raw columns (strings, bytes or loosely typed Arrow) to the schema's types, row by row.

Vectorised casts do the work; when a cast fails, bisection finds the bad values, which become
rejects (row, column, value, reason) while the good values of the column are kept.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from entities.arrow import TS_TYPE, arrow_type
from entities.model import Attribute, TypeKind

ArrowErrors = (
    pa.ArrowInvalid,
    pa.ArrowNotImplementedError,
    pa.ArrowTypeError,
    OverflowError,
    ValueError,
)
_ZONE_RE = r"(Z|z|[+-]\d\d(:?\d\d)?)$"
_TYPE_WORDS = {
    TypeKind.INT: "a whole number",
    TypeKind.DECIMAL: "a decimal number",
    TypeKind.FLOAT: "a number",
    TypeKind.BOOL: "true or false",
    TypeKind.DATE: "a date (YYYY-MM-DD)",
    TypeKind.TIMESTAMP: "a timestamp (ISO 8601, e.g. 2026-11-01T10:00:00Z)",
    TypeKind.STRING: "text",
    TypeKind.ENUM: "text",
}


@dataclass(frozen=True, slots=True)
class Reject:
    row: int  # 0-based index into the raw table; readers map it to the file's row number
    column: str
    value: str
    reason: str


def _short(value: object) -> str:
    text = repr(value) if isinstance(value, bytes) else str(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _checked(
    arr: pa.Array, fn: Callable[[pa.Array], pa.Array], target: pa.DataType
) -> tuple[pa.Array, list[int]]:
    """fn(arr), with the positions where it fails set to null and returned."""
    try:
        return fn(arr), []
    except ArrowErrors:
        pass
    n = len(arr)
    if n <= 32:
        out: list[pa.Array] = []
        bad: list[int] = []
        for i in range(n):
            one = arr.slice(i, 1)
            try:
                out.append(fn(one))
            except ArrowErrors:
                bad.append(i)
                out.append(pa.nulls(1, type=target))
        return pa.concat_arrays(out), bad
    mid = n // 2
    left, bad_left = _checked(arr.slice(0, mid), fn, target)
    right, bad_right = _checked(arr.slice(mid), fn, target)
    return pa.concat_arrays([left, right]), bad_left + [mid + i for i in bad_right]


def _timestamp(arr: pa.Array) -> pa.Array:
    if pa.types.is_timestamp(arr.type):
        if arr.type.tz is None:
            return pc.assume_timezone(arr, "UTC").cast(TS_TYPE)
        return arr.cast(TS_TYPE)
    if pa.types.is_date(arr.type):
        return arr.cast(pa.timestamp("us")).cast(TS_TYPE)
    if pa.types.is_integer(arr.type):  # integers are UTC microseconds since the epoch
        return arr.cast(pa.int64()).cast(TS_TYPE)
    s = arr.cast(pa.string())
    zoned = pc.match_substring_regex(s, _ZONE_RE)
    if pc.all(pc.fill_null(zoned, True)).as_py():
        return pc.cast(s, TS_TYPE)
    with_zone = pc.cast(pc.if_else(zoned, s, None), TS_TYPE)
    naive = pc.cast(pc.if_else(zoned, None, s), pa.timestamp("us")).cast(TS_TYPE)
    return pc.if_else(zoned, with_zone, naive)


def _bool(arr: pa.Array) -> pa.Array:
    if pa.types.is_boolean(arr.type):
        return arr
    if pa.types.is_integer(arr.type):
        if pc.any(pc.greater(pc.abs(arr), 1)).as_py():
            raise pa.ArrowInvalid("not 0 or 1")
        return arr.cast(pa.bool_())
    s = pc.utf8_lower(pc.utf8_trim_whitespace(arr.cast(pa.string())))
    truthy = pc.is_in(s, value_set=pa.array(["true", "t", "yes", "y", "1"]))
    falsy = pc.is_in(s, value_set=pa.array(["false", "f", "no", "n", "0"]))
    unknown = pc.and_(pc.is_valid(s), pc.and_(pc.invert(truthy), pc.invert(falsy)))
    if pc.any(unknown).as_py():
        raise pa.ArrowInvalid("not a boolean")
    return pc.if_else(pc.is_null(s), pa.scalar(None, pa.bool_()), truthy)


def _number(target: pa.DataType) -> Callable[[pa.Array], pa.Array]:
    def fn(arr: pa.Array) -> pa.Array:
        if pa.types.is_string(arr.type) or pa.types.is_large_string(arr.type):
            arr = pc.utf8_trim_whitespace(arr)
        return pc.cast(arr, target, safe=True)

    return fn


def _string(arr: pa.Array) -> pa.Array:
    if pa.types.is_dictionary(arr.type):
        arr = arr.cast(pa.string())
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        return pc.cast(arr, pa.string())
    if pa.types.is_string(arr.type):
        return arr
    if pa.types.is_large_string(arr.type):
        return arr.cast(pa.string())
    return pc.cast(arr, pa.string())


def convert_column(attr: Attribute, arr: pa.Array) -> tuple[pa.Array, list[Reject]]:
    """Convert one raw column to `attr`'s stored type; bad values become rejects."""
    kind = attr.type.kind
    rejects: list[Reject] = []
    if pa.types.is_binary(arr.type) or pa.types.is_large_binary(arr.type):
        # text formats arrive as bytes so that broken encodings are found per value
        arr, bad = _checked(arr, _string, pa.string())
        raw = arr  # after decoding, bad bytes are null; report them as encoding errors
        for i in bad:
            rejects.append(Reject(i, attr.name, "<bytes>", "not valid UTF-8 text"))
    else:
        raw = arr
    target = arrow_type(attr.type, dictionary=False)
    fn: Callable[[pa.Array], pa.Array]
    if kind is TypeKind.TIMESTAMP:
        fn = _timestamp
    elif kind is TypeKind.BOOL:
        fn = _bool
    elif kind in (TypeKind.INT, TypeKind.FLOAT, TypeKind.DECIMAL):
        fn = _number(target)
    elif kind is TypeKind.DATE:

        def fn(a: pa.Array) -> pa.Array:
            if pa.types.is_timestamp(a.type):
                raise pa.ArrowInvalid("a timestamp where a date was expected")
            return pc.cast(a, pa.date32())
    else:
        fn = _string
    out, bad = _checked(raw, fn, target)
    already = {r.row for r in rejects}
    if bad:
        values = raw.take(pa.array(bad, type=pa.int64())).to_pylist()
        for i, v in zip(bad, values, strict=True):
            if i not in already:
                reason = f"expected {_TYPE_WORDS[kind]}"
                if kind is TypeKind.DECIMAL:
                    reason += f" with at most {attr.type.scale} decimals and "
                    reason += f"{attr.type.precision - attr.type.scale} integer digits"
                rejects.append(Reject(i, attr.name, _short(v), reason))
    if kind is TypeKind.ENUM:
        member = pc.is_in(out, value_set=pa.array(attr.type.values, type=pa.string()))
        outside = pc.and_(pc.invert(member), pc.is_valid(out))
        idx = np.flatnonzero(outside.to_numpy(zero_copy_only=False))
        if len(idx):
            values = out.take(pa.array(idx)).to_pylist()
            allowed = ", ".join(attr.type.values)
            for i, v in zip(idx.tolist(), values, strict=True):
                rejects.append(Reject(i, attr.name, _short(v), f"not one of: {allowed}"))
    if kind is TypeKind.FLOAT:
        finite = pc.fill_null(pc.is_finite(out), True)
        idx = np.flatnonzero(pc.invert(finite).to_numpy(zero_copy_only=False))
        flagged = {r.row for r in rejects}
        for i in idx.tolist():
            if i not in flagged:
                rejects.append(
                    Reject(
                        int(i),
                        attr.name,
                        str(out[i].as_py()),
                        "expected a finite number (not NaN or infinity)",
                    )
                )
    if attr.required:
        idx = np.flatnonzero(pc.is_null(out).to_numpy(zero_copy_only=False))
        flagged = {r.row for r in rejects}
        for i in idx.tolist():
            if i not in flagged:
                rejects.append(Reject(int(i), attr.name, "", "a value is required"))
    return out, rejects


def convert_table(columns: tuple[Attribute, ...], raw: pa.Table) -> tuple[pa.Table, list[Reject]]:
    """Convert every schema column present in `raw`, chunk by chunk (no copies of good data);
    rows with any reject are dropped."""
    arrays: dict[str, pa.ChunkedArray] = {}
    rejects: list[Reject] = []
    for attr in columns:
        if attr.name not in raw.column_names:
            continue
        chunks: list[pa.Array] = []
        offset = 0
        for chunk in raw.column(attr.name).chunks:
            out, bad = convert_column(attr, chunk)
            chunks.append(out)
            rejects.extend(Reject(r.row + offset, r.column, r.value, r.reason) for r in bad)
            offset += len(chunk)
        target = arrow_type(attr.type, dictionary=False)
        arrays[attr.name] = pa.chunked_array(chunks, type=target)
    table = pa.table(arrays) if arrays else pa.table({})
    if rejects:
        mask = np.ones(raw.num_rows, dtype=bool)
        mask[[r.row for r in rejects]] = False
        table = table.filter(pa.array(mask))
    return table, rejects
