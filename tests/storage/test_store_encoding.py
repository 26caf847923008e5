"""The column-wise encoders of a commit give exactly the bytes of the per-row ones they replace:
RocksDB keys (`codec.encode_keys` vs `codec.encode_key`) and JSON rows (`snapshot.rows_to_json`
vs one `orjson.dumps` of a dict per row)."""

from __future__ import annotations

import datetime as dt
from decimal import Decimal
from typing import Any

import pyarrow as pa
import pyarrow.compute as pc
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from entities import parse_schema
from entities.model import Entity, TypeKind
from storage import codec, snapshot
from tests.helpers_store import ALL_TYPES_SCHEMA, CUSTOMER_COLUMNS, customers_table

SCHEMA = parse_schema(ALL_TYPES_SCHEMA, "test-schema.yaml")
CUSTOMERS = SCHEMA.require_entity("customers")
PRODUCTS = SCHEMA.require_entity("products")


def per_row_json(entity: Entity, table: pa.Table) -> list[bytes]:
    """The encoding the store used before: a dict per row through orjson."""
    cols: dict[str, list[Any]] = {}
    for attr in entity.attributes:
        if attr.name not in table.column_names:
            continue
        arr = table.column(attr.name)
        if attr.type.kind is TypeKind.TIMESTAMP:
            arr = pc.cast(arr, pa.int64())
        elif attr.type.kind in (TypeKind.DATE, TypeKind.DECIMAL, TypeKind.ENUM):
            arr = pc.cast(arr, pa.string())
        cols[attr.name] = arr.to_pylist()
    names = list(cols)
    if not names:  # zip() of no columns has no rows
        return [b"{}"] * table.num_rows
    return [
        codec.dumps(dict(zip(names, values, strict=True)))
        for values in zip(*[cols[n] for n in names], strict=True)
    ]


TEXT = st.text(
    alphabet=st.sampled_from(
        [
            "a",
            "Z",
            " ",
            '"',
            "\\",
            "/",
            "\x00",
            "\x1f",
            "\x7f",
            "é",
            "😀",
            "\u2028",
            "\n",
            "\t",
            ",",
        ]
    ),
    max_size=10,
)
VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": TEXT,
    "balance": st.decimals(
        min_value=Decimal("-9999999999.99"), max_value=Decimal("9999999999.99"), places=2
    ).filter(lambda d: d.is_finite()),
    "score": st.floats(allow_nan=True, allow_infinity=True)
    | st.sampled_from([0.0, -0.0, 1e20, 1e-7, 5e-324, 1.7976931348623157e308, 1.0]),
    "visits": st.integers(-(2**63), 2**63 - 1),
    "active": st.booleans(),
    "born": st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31)),
    "last_seen": st.datetimes(
        min_value=dt.datetime(1, 1, 2),
        max_value=dt.datetime(9999, 12, 30),
        timezones=st.just(dt.UTC),
    ),
    "tier": st.sampled_from(["bronze", "silver", "gold", 'a"b']),
}


@st.composite
def tables(draw: st.DrawFn) -> pa.Table:
    cols = ("id", *[c for c in CUSTOMER_COLUMNS[1:] if draw(st.booleans())])
    rows = [
        {"id": i, **{c: draw(st.none() | VALUES[c]) for c in cols[1:]}}
        for i in range(draw(st.integers(0, 9)))
    ]
    table = customers_table(rows, cols)
    if draw(st.booleans()) and table.num_rows > 1:  # several chunks per column
        half = table.num_rows // 2
        table = pa.concat_tables([table.slice(0, half), table.slice(half)])
    if "tier" in cols and draw(st.booleans()):  # enum values dictionary-encoded
        i = table.column_names.index("tier")
        table = table.set_column(i, "tier", pc.dictionary_encode(table.column("tier")))
    return table


@settings(max_examples=300, deadline=None)
@given(table=tables(), slice_rows=st.sampled_from([2, 3, 1 << 16]))
def test_rows_to_json_is_per_row_orjson_byte_for_byte(table: pa.Table, slice_rows: int) -> None:
    old = snapshot.JSON_SLICE_ROWS
    snapshot.JSON_SLICE_ROWS = slice_rows
    try:
        assert snapshot.rows_to_json(CUSTOMERS, table) == per_row_json(CUSTOMERS, table)
    finally:
        snapshot.JSON_SLICE_ROWS = old


def test_rows_to_json_of_a_key_only_table_and_of_string_keys() -> None:
    keys_only = customers_table([{"id": 1}, {"id": 2}], ("id",))
    assert snapshot.rows_to_json(CUSTOMERS, keys_only) == [b"{}", b"{}"]
    products = pa.table(
        {
            "sku": ["a", "b", "c", "d"],
            "title": ['say "hi"', None, "plain", "tab\there"],  # escaped and plain mixed
            "price": pa.array([Decimal("1.500"), None, Decimal(0), None], pa.decimal128(10, 3)),
        }
    )
    assert snapshot.rows_to_json(PRODUCTS, products) == per_row_json(PRODUCTS, products)


@settings(max_examples=200, deadline=None)
@given(
    keys=st.lists(st.integers(-(2**63), 2**63 - 1), max_size=12),
    prefix=st.sampled_from([b"", b"e:customers\x00", b"i:x\x00"]),
)
def test_encode_keys_of_ints_is_encode_key(keys: list[int], prefix: bytes) -> None:
    want = [prefix + codec.encode_key(k) for k in keys]
    assert codec.encode_keys(pa.array(keys, pa.int64()), prefix) == want
    small = [k for k in keys if -(2**31) <= k < 2**31]
    assert codec.encode_keys(pa.array(small, pa.int32()), prefix) == [
        prefix + codec.encode_key(k) for k in small
    ]


@settings(max_examples=200, deadline=None)
@given(keys=st.lists(st.text(max_size=6), max_size=12), chunked=st.booleans())
def test_encode_keys_of_strings_is_encode_key(keys: list[str], chunked: bool) -> None:
    arr: pa.Array | pa.ChunkedArray = pa.array(keys, pa.string())
    if chunked:
        arr = pa.chunked_array([arr.slice(0, len(keys) // 2), arr.slice(len(keys) // 2)])
    assert codec.encode_keys(arr, b"p\x00") == [b"p\x00" + codec.encode_key(k) for k in keys]


def test_encode_keys_keeps_trailing_zero_bytes_and_refuses_null() -> None:
    # 0 and 256 encode to keys ending in zero bytes, which a fixed-width bytes view could drop
    assert codec.encode_keys(pa.array([0, 256], pa.int64())) == [
        codec.encode_key(0),
        codec.encode_key(256),
    ]
    assert codec.encode_keys(pa.array([], pa.int64())) == []
    with pytest.raises(ValueError, match="null"):
        codec.encode_keys(pa.array([1, None], pa.int64()))
