"""CSV, Parquet and JSON lines into an entity and an event stream, with every type; values are
stored exactly (decimals exact, timestamps in UTC microseconds whatever zone the file used)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.files import import_file
from ingest.readers import FileError
from storage import Store
from tests.helpers_store import (
    new_store,
    rocks_rows,
    snapshot_rows,
    stream_rows,
    us,
    utc,
)

T10 = us(utc(2026, 11, 1, 10))  # 2026-11-01T10:00:00Z

# What every format below must store for `customers` (RocksDB JSON form: key -> attributes).
CUSTOMERS = {
    1: {
        "name": "Ada",
        "balance": "12345678.91",
        "score": 0.1,
        "visits": -4611686018427387904,
        "active": True,
        "born": "1815-12-10",
        "last_seen": T10 + 123456,
        "tier": "gold",
    },
    2: {
        "name": 'Comma, "quoted"',
        "balance": "-0.01",
        "score": 1e300,
        "visits": 0,
        "active": False,
        "born": "2000-02-29",
        "last_seen": T10,
        "tier": "silver",
    },
    3: {
        "name": None,
        "balance": "0.00",
        "score": -2.5,
        "visits": 9223372036854775807,
        "active": None,
        "born": "1970-01-01",
        "last_seen": T10,
        "tier": "bronze",
    },
    4: {
        "name": "Ünïcödé ✓\nsecond line",
        "balance": "9999999999.99",
        "score": None,
        "visits": -1,
        "active": True,
        "born": "0001-01-01",
        "last_seen": T10 - 1,
        "tier": None,
    },
}

# the same rows as text: timestamps with Z, with an offset, naive (= UTC), and -04:30
CUSTOMERS_CSV = (
    "id,name,balance,score,visits,active,born,last_seen,tier\r\n"
    "1,Ada,12345678.91,0.1,-4611686018427387904,true,1815-12-10,"
    "2026-11-01T10:00:00.123456Z,gold\r\n"
    '2,"Comma, ""quoted""",-0.01,1e300,0,false,2000-02-29,2026-11-01T12:00:00+02:00,silver\r\n'
    "3,,0.00,-2.5,9223372036854775807,,1970-01-01,2026-11-01 10:00:00,bronze\r\n"
    '4,"Ünïcödé ✓\nsecond line",9999999999.99,,-1,yes,0001-01-01,'
    "2026-11-01T05:29:59.999999-04:30,\r\n"
)

ORDERS = [
    {
        "ts": T10,
        "customer_id": 1,
        "sku": "a-1",
        "amount": "1.10",
        "qty": 2,
        "weight": 0.5,
        "note": "first",
        "gift": True,
        "ship_date": "2026-11-02",
        "paid_at": T10 - 3_600_000_000,
        "channel": "app",
    },
    {
        "ts": T10 + 1,
        "customer_id": 2,
        "sku": "b",
        "amount": "-99999.99",
        "qty": None,
        "weight": 0.001,
        "note": None,
        "gift": False,
        "ship_date": None,
        "paid_at": T10,
        "channel": "web",
    },
    {
        "ts": T10 - 86_400_000_000,
        "customer_id": None,
        "sku": None,
        "amount": "0.00",
        "qty": -(2**63),
        "weight": None,
        "note": "tab\there",
        "gift": None,
        "ship_date": "1999-12-31",
        "paid_at": None,
        "channel": None,
    },
]

ORDERS_CSV = (
    "ts,customer_id,sku,amount,qty,weight,note,gift,ship_date,paid_at,channel\n"
    "2026-11-01T10:00:00Z,1,a-1,1.10,2,0.5,first,true,2026-11-02,2026-11-01T10:00:00+01:00,app\n"
    "2026-11-01T10:00:00.000001Z,2,b,-99999.99,,1e-3,,0,,2026-11-01 10:00:00,web\n"
    '2026-10-31T10:00:00,,,0,-9223372036854775808,,"tab\there",,1999-12-31,,\n'
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = new_store(tmp_path / "data")
    yield s
    s.close()


def check_customers(store: Store) -> None:
    assert rocks_rows(store, "customers") == CUSTOMERS
    assert snapshot_rows(store, "customers") == CUSTOMERS


def import_ok(store: Store, kind: str, target: str, path: Path, rows: int, **kw: Any) -> None:
    report = import_file(store, kind, target, path, **kw)  # type: ignore[arg-type]
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (rows, rows, 0)
    assert report.reject_file is None and not report.already_imported
    assert report.digest and report.kind == kind and report.target == target


def test_csv_entity(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "customers.csv"
    path.write_text(CUSTOMERS_CSV, encoding="utf-8", newline="")
    import_ok(store, "entity", "customers", path, 4)
    check_customers(store)


def test_csv_stream(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS_CSV, encoding="utf-8")
    import_ok(store, "events", "orders", path, 3)
    assert stream_rows(store, "orders") == sorted(ORDERS, key=repr)


def test_tsv_by_suffix_and_format_override(store: Store, tmp_path: Path) -> None:
    tsv = tmp_path / "c.tsv"
    tsv.write_text("id\tname\tbalance\n10\ta, b\t1.5\n", encoding="utf-8")
    import_ok(store, "entity", "customers", tsv, 1)
    assert store.get("customers", 10) == {
        "id": 10,
        "name": "a, b",
        "balance": "1.50",
        "score": None,
        "visits": None,
        "active": None,
        "born": None,
        "last_seen": None,
        "tier": None,
    }
    txt = tmp_path / "export.txt"
    txt.write_text("id,name\n11,x\n", encoding="utf-8")
    with pytest.raises(FileError, match=r"cannot tell the format from the suffix '\.txt'"):
        import_file(store, "entity", "customers", txt)
    import_ok(store, "entity", "customers", txt, 1, fmt="csv")
    assert store.get("customers", 11)["name"] == "x"


def customers_parquet(path: Path) -> None:
    paris = pa.timestamp("us", tz="Europe/Paris")
    table = pa.table(
        {
            "id": pa.array([1, 2, 3, 4], pa.int64()),
            "name": pa.array(["Ada", 'Comma, "quoted"', None, "Ünïcödé ✓\nsecond line"]),
            "balance": pa.array(
                [
                    Decimal("12345678.91"),
                    Decimal("-0.01"),
                    Decimal("0.00"),
                    Decimal("9999999999.99"),
                ],
                pa.decimal128(12, 2),
            ),
            "score": pa.array([0.1, 1e300, -2.5, None], pa.float64()),
            "visits": pa.array([-4611686018427387904, 0, 9223372036854775807, -1], pa.int64()),
            "active": pa.array([True, False, None, True]),
            "born": pa.array(
                [
                    dt.date(1815, 12, 10),
                    dt.date(2000, 2, 29),
                    dt.date(1970, 1, 1),
                    dt.date(1, 1, 1),
                ],
                pa.date32(),
            ),
            # an instant in a named zone (11:00:00.123456 in Paris = 10:00:00.123456Z)
            "last_seen": pa.array([T10 + 123456, T10, T10, T10 - 1], pa.int64()).cast(paris),
            "tier": pa.array(["gold", "silver", "bronze", None]).dictionary_encode(),
        }
    )
    pq.write_table(table, path)


def test_parquet_entity_typed_columns(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "customers.parquet"
    customers_parquet(path)
    import_ok(store, "entity", "customers", path, 4)
    check_customers(store)


def test_parquet_entity_loosely_typed_columns(store: Store, tmp_path: Path) -> None:
    """Narrower ints and floats, wider decimals, naive timestamps (UTC), ns precision, text."""
    table = pa.table(
        {
            "id": pa.array([1, 2], pa.int32()),
            "name": pa.array(["x", "y"], pa.large_string()),
            "balance": pa.array([Decimal("1.5000"), Decimal("-2.2500")], pa.decimal128(20, 4)),
            "score": pa.array([0.5, None], pa.float32()),
            "visits": pa.array(["7", " 8 "]),
            "active": pa.array([1, 0], pa.int8()),
            "born": pa.array(["2000-01-01", None]),
            "last_seen": pa.array([T10 * 1000, (T10 + 1) * 1000], pa.timestamp("ns")),
            "tier": pa.array(["gold", "bronze"]),
        }
    )
    path = tmp_path / "loose.parquet"
    pq.write_table(table, path)
    import_ok(store, "entity", "customers", path, 2)
    assert rocks_rows(store, "customers") == {
        1: {
            "name": "x",
            "balance": "1.50",
            "score": 0.5,
            "visits": 7,
            "active": True,
            "born": "2000-01-01",
            "last_seen": T10,
            "tier": "gold",
        },
        2: {
            "name": "y",
            "balance": "-2.25",
            "score": None,
            "visits": 8,
            "active": False,
            "born": None,
            "last_seen": T10 + 1,
            "tier": "bronze",
        },
    }


def test_parquet_stream(store: Store, tmp_path: Path) -> None:
    table = pa.table(
        {
            "ts": pa.array([T10, T10 + 1, T10 - 86_400_000_000], pa.timestamp("us", tz="UTC")),
            "customer_id": pa.array([1, 2, None], pa.int64()),
            "sku": pa.array(["a-1", "b", None]),
            "amount": pa.array(
                [Decimal("1.10"), Decimal("-99999.99"), Decimal("0.00")], pa.decimal128(12, 2)
            ),
            "qty": pa.array([2, None, -(2**63)], pa.int64()),
            "weight": pa.array([0.5, 0.001, None]),
            "note": pa.array(["first", None, "tab\there"]),
            "gift": pa.array([True, False, None]),
            "ship_date": pa.array([dt.date(2026, 11, 2), None, dt.date(1999, 12, 31)]),
            # naive timestamps are UTC
            "paid_at": pa.array([T10 - 3_600_000_000, T10, None], pa.timestamp("us")),
            "channel": pa.array(["app", "web", None]).dictionary_encode(),
        }
    )
    path = tmp_path / "orders.parquet"
    pq.write_table(table, path)
    import_ok(store, "events", "orders", path, 3)
    assert stream_rows(store, "orders") == sorted(ORDERS, key=repr)


def _jsonl(rows: list[dict[str, Any]]) -> str:
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows)


def test_jsonl_entity(store: Store, tmp_path: Path) -> None:
    lines = _jsonl(
        [
            {
                "id": 1,
                "name": "Ada",
                "balance": "12345678.91",
                "score": 0.1,
                "visits": -4611686018427387904,
                "active": True,
                "born": "1815-12-10",
                "last_seen": "2026-11-01T10:00:00.123456Z",
                "tier": "gold",
            },
            {
                "id": 2,
                "name": 'Comma, "quoted"',
                "balance": -0.01,
                "score": 1e300,
                "visits": 0,
                "active": False,
                "born": "2000-02-29",
                "last_seen": "2026-11-01T12:00:00+02:00",
                "tier": "silver",
            },
            # absent keys are null; a JSON number for a decimal is taken exactly as written
            {
                "id": 3,
                "balance": 0,
                "score": -2.5,
                "visits": 9223372036854775807,
                "born": "1970-01-01",
                "last_seen": "2026-11-01 10:00:00",
                "tier": "bronze",
            },
            {
                "id": 4,
                "name": "Ünïcödé ✓\nsecond line",
                "balance": "9999999999.99",
                "score": None,
                "visits": -1,
                "active": "yes",
                "born": "0001-01-01",
                "last_seen": "2026-11-01T05:29:59.999999-04:30",
                "tier": None,
            },
        ]
    )
    path = tmp_path / "customers.jsonl"
    path.write_text("\n" + lines, encoding="utf-8")  # blank lines are skipped
    import_ok(store, "entity", "customers", path, 4)
    check_customers(store)


def test_jsonl_stream(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.ndjson"
    path.write_text(
        _jsonl(
            [
                {
                    "ts": "2026-11-01T10:00:00Z",
                    "customer_id": 1,
                    "sku": "a-1",
                    "amount": "1.10",
                    "qty": 2,
                    "weight": 0.5,
                    "note": "first",
                    "gift": True,
                    "ship_date": "2026-11-02",
                    "paid_at": "2026-11-01T10:00:00+01:00",
                    "channel": "app",
                },
                {
                    "ts": "2026-11-01T10:00:00.000001Z",
                    "customer_id": 2,
                    "sku": "b",
                    "amount": -99999.99,
                    "weight": 0.001,
                    "gift": False,
                    "paid_at": "2026-11-01T10:00:00",
                    "channel": "web",
                },
                {
                    "ts": "2026-10-31T10:00:00",
                    "amount": "0",
                    "qty": -(2**63),
                    "note": "tab\there",
                    "ship_date": "1999-12-31",
                },
            ]
        ),
        encoding="utf-8",
    )
    import_ok(store, "events", "orders", path, 3)
    assert stream_rows(store, "orders") == sorted(ORDERS, key=repr)


def test_all_formats_store_the_same(tmp_path: Path) -> None:
    csv_path = tmp_path / "c.csv"
    csv_path.write_text(CUSTOMERS_CSV, encoding="utf-8", newline="")
    pq_path = tmp_path / "c.parquet"
    customers_parquet(pq_path)
    got = []
    for i, path in enumerate([csv_path, pq_path]):
        with new_store(tmp_path / f"d{i}") as store:
            import_ok(store, "entity", "customers", path, 4)
            table = store.entity_table("customers").drop_columns(["__id"]).sort_by("id")
            got.append(table)
    assert got[0].equals(got[1])
    assert got[0].column("balance").to_pylist() == [
        Decimal("12345678.91"),
        Decimal("-0.01"),
        Decimal("0.00"),
        Decimal("9999999999.99"),
    ]


def test_entity_import_without_some_columns_keeps_them(store: Store, tmp_path: Path) -> None:
    full = tmp_path / "full.csv"
    full.write_text(CUSTOMERS_CSV, encoding="utf-8", newline="")
    import_ok(store, "entity", "customers", full, 4)
    part = tmp_path / "names.csv"
    part.write_text("name,id\nAda L.,1\nNew,9\n", encoding="utf-8")
    report = import_file(store, "entity", "customers", part)
    assert report.missing_columns == (
        "balance",
        "score",
        "visits",
        "active",
        "born",
        "last_seen",
        "tier",
    )
    assert "columns not in the file kept as they were: balance, score" in report.summary()
    rows = rocks_rows(store, "customers")
    assert rows[1] == {**CUSTOMERS[1], "name": "Ada L."}
    assert rows[9] == {**dict.fromkeys(CUSTOMERS[1]), "name": "New"}
    assert rows[2] == CUSTOMERS[2]
    assert snapshot_rows(store, "customers") == rows


def test_stream_import_without_optional_columns_sets_null(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "few.csv"
    path.write_text("amount,ts\n5.5,2026-11-01T10:00:00Z\n", encoding="utf-8")
    report = import_file(store, "events", "orders", path)
    assert report.rows_imported == 1
    assert "customer_id" in report.missing_columns
    assert "set to null: customer_id, sku, qty" in report.summary()
    assert stream_rows(store, "orders") == [
        {**dict.fromkeys(ORDERS[0]), "ts": T10, "amount": "5.50"},
    ]


def test_report_summary(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS_CSV, encoding="utf-8")
    report = import_file(store, "events", "orders", path)
    assert report.summary().startswith(f"{path}: 3 of 3 rows appended to orders in ")
    assert report.file == str(path)


def test_progress_is_reported(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS_CSV, encoding="utf-8")
    seen: list[tuple[str, int, int]] = []
    import_file(store, "events", "orders", path, progress=lambda *a: seen.append(a))
    assert seen[0] == ("read", 0, 1)
    assert ("convert", 0, 3) in seen
    assert seen[-1] == ("commit", 3, 3)
