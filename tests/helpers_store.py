"""Shared helpers for the storage and ingest tests: schemas, stores on real RocksDB, and checks
that read what is on disk (RocksDB rows, snapshots, manifests, segment files) independently of
the code paths under test where possible."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from entities.arrow import ID_COLUMN
from storage import Store
from storage.codec import to_json_value

ROOT = Path(__file__).resolve().parents[1]
# the shipped retail schema (moving from examples/retail/ into the entities package)
RETAIL_SCHEMA = next(
    p
    for p in (ROOT / "entities" / "examples" / "retail.yaml", ROOT / "examples/retail/schema.yaml")
    if p.exists()
)

# One entity with every attribute type, a string-keyed entity, and a stream with every field type.
ALL_TYPES_SCHEMA = """\
version: 1
entities:
  customers:
    key: {name: id, type: int}
    attributes:
      name: string
      balance: {type: decimal, precision: 12, scale: 2}
      score: float
      visits: int
      active: bool
      born: date
      last_seen: timestamp
      tier: {type: enum, values: [bronze, silver, gold]}
  products:
    key: {name: sku, type: string}
    attributes:
      title: string
      price: {type: decimal, precision: 10, scale: 3}
events:
  orders:
    time: ts
    references:
      customer: {entity: customers, column: customer_id}
      product: {entity: products, column: sku}
    fields:
      amount: {type: decimal, precision: 12, scale: 2, required: true}
      qty: int
      weight: float
      note: string
      gift: bool
      ship_date: date
      paid_at: timestamp
      channel: {type: enum, values: [store, app, web]}
"""

CUSTOMER_COLUMNS = (
    "id",
    "name",
    "balance",
    "score",
    "visits",
    "active",
    "born",
    "last_seen",
    "tier",
)
ORDER_COLUMNS = (
    "ts",
    "customer_id",
    "sku",
    "amount",
    "qty",
    "weight",
    "note",
    "gift",
    "ship_date",
    "paid_at",
    "channel",
)


def new_store(data_dir: Path, schema_text: str = ALL_TYPES_SCHEMA) -> Store:
    return Store.create(data_dir, schema_text, "test-schema.yaml")


def utc(*args: int) -> dt.datetime:
    return dt.datetime(*args, tzinfo=dt.UTC)


def us(ts: dt.datetime) -> int:
    """UTC microseconds since the epoch, computed exactly (no float)."""
    delta = ts - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    return (delta.days * 86_400 + delta.seconds) * 1_000_000 + delta.microseconds


def customers_table(rows: list[dict[str, Any]], columns: tuple[str, ...] | None = None) -> pa.Table:
    """Typed rows for `customers`, in the types ingest produces (enum as plain string)."""
    types = {
        "id": pa.int64(),
        "name": pa.string(),
        "balance": pa.decimal128(12, 2),
        "score": pa.float64(),
        "visits": pa.int64(),
        "active": pa.bool_(),
        "born": pa.date32(),
        "last_seen": pa.timestamp("us", tz="UTC"),
        "tier": pa.string(),
    }
    cols = columns or CUSTOMER_COLUMNS
    return pa.table({c: pa.array([r.get(c) for r in rows], type=types[c]) for c in cols})


def orders_table(rows: list[dict[str, Any]]) -> pa.Table:
    types = {
        "ts": pa.timestamp("us", tz="UTC"),
        "customer_id": pa.int64(),
        "sku": pa.string(),
        "amount": pa.decimal128(12, 2),
        "qty": pa.int64(),
        "weight": pa.float64(),
        "note": pa.string(),
        "gift": pa.bool_(),
        "ship_date": pa.date32(),
        "paid_at": pa.timestamp("us", tz="UTC"),
        "channel": pa.string(),
    }
    return pa.table({c: pa.array([r.get(c) for r in rows], type=t) for c, t in types.items()})


def jsonish(value: Any) -> Any:
    """A value as the store keeps it in RocksDB JSON: dates ISO, timestamps UTC µs, decimals str."""
    if isinstance(value, decimal.Decimal):
        return str(value)
    return to_json_value(value)


def rocks_rows(store: Store, entity: str) -> dict[Any, dict[str, Any]]:
    """Entity rows straight from RocksDB: key -> attributes (absent attributes as None)."""
    ent = store.entity(entity)
    out: dict[Any, dict[str, Any]] = {}
    for key, row in store.iter_rows(entity):
        out[key] = {a.name: row.get(a.name) for a in ent.attributes}
    return out


def snapshot_rows(store: Store, entity: str) -> dict[Any, dict[str, Any]]:
    """Entity rows from the columnar snapshot, in the RocksDB JSON form, without the dense id."""
    ent = store.entity(entity)
    table = store.entity_table(entity)
    out: dict[Any, dict[str, Any]] = {}
    for row in table.to_pylist():
        key = row[ent.key.name]
        assert key not in out, f"snapshot of {entity} holds key {key!r} twice"
        out[key] = {a.name: jsonish(row[a.name]) for a in ent.attributes}
    return out


def snapshot_ids(store: Store, entity: str) -> dict[Any, int]:
    ent = store.entity(entity)
    table = store.entity_table(entity)
    return dict(
        zip(
            table.column(ent.key.name).to_pylist(), table.column(ID_COLUMN).to_pylist(), strict=True
        )
    )


def assert_snapshot_matches_rocks(store: Store, entity: str) -> None:
    rocks = rocks_rows(store, entity)
    snap = snapshot_rows(store, entity)
    assert snap == rocks
    ids = snapshot_ids(store, entity)
    assert ids == {k: store.dense_id(entity, k) for k in rocks}


def stream_table(store: Store, stream: str) -> pa.Table:
    """Every committed event of a stream: the manifest's Parquet segments and the RocksDB tail."""
    from entities.arrow import stream_schema

    schema = stream_schema(store.schema, stream)
    parts = [read_segment_file(p).cast(schema) for p in store.event_files(stream)]
    parts.append(store.tail_table(stream).cast(schema))
    return pa.concat_tables(parts)


def read_segment_file(path: Path) -> pa.Table:
    """A segment file read with pyarrow directly (Arrow IPC file, or Parquet)."""
    if path.suffix == ".parquet":
        return pq.read_table(path)
    with pa.OSFile(str(path), "rb") as source:  # a copy: the file may be deleted later
        return pa.ipc.open_file(source).read_all()


def stream_rows(store: Store, stream: str) -> list[dict[str, Any]]:
    """Events as JSON-form dicts, sorted so that comparisons ignore storage order."""
    rows = [{k: jsonish(v) for k, v in r.items()} for r in stream_table(store, stream).to_pylist()]
    return sorted(rows, key=repr)


def listing(path: Path) -> set[str]:
    return {p.name for p in path.iterdir()} if path.exists() else set()


def assert_no_orphans(store: Store) -> None:
    """staging/ is empty and each events/<stream>/ holds exactly the manifest's segment files."""
    assert listing(store.data_dir / "staging") == set()
    for st in store.schema.streams:
        listed = {s.file for s in store.segments(st.name)}
        assert listing(store.data_dir / "events" / st.name) == listed, st.name


def require_slow(request: Any) -> None:
    """Skip a `slow` test unless it was selected (`-m slow`) or EQL_SLOW=1 is set, so that the
    default run stays short even while the default options do not deselect slow tests."""
    import os

    import pytest

    expr = request.config.getoption("markexpr") or ""
    selected = "slow" in expr and "not slow" not in expr
    if not (selected or os.environ.get("EQL_SLOW")):
        pytest.skip("slow: run with -m slow or EQL_SLOW=1")
