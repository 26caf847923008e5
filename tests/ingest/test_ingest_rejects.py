"""Bad rows never stop an import: they go to a reject file (file, row, column, value, reason) with
the file's own row numbers, and every good row is kept."""

from __future__ import annotations

import csv
import io
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from ingest.files import ImportReport, import_file
from storage import Store
from tests.helpers_store import new_store, rocks_rows, snapshot_rows, stream_rows, stream_table


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = new_store(tmp_path / "data")
    yield s
    s.close()


def reject_rows(report: ImportReport) -> list[list[str]]:
    assert report.reject_file is not None and report.reject_file.exists()
    rows = list(csv.reader(io.StringIO(report.reject_file.read_text(encoding="utf-8"))))
    assert rows[0] == ["file", "row", "column", "value", "reason"]
    return rows[1:]


DIRTY = (
    "id,name,balance,visits,active,born,last_seen,tier\n"
    "1,ok,1.00,1,true,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 1
    "x2,bad key,1.00,1,true,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 2 key not an int
    "3,ok,1.005,1,true,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 3 three decimals
    "4,ok,1.00,1.5,true,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 4 not whole
    "5,ok,1.00,1,maybe,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 5 not a bool
    "6,ok,1.00,1,true,2000-02-30,2026-01-01T00:00:00Z,gold\n"  # 6 no such date
    "7,ok,1.00,1,true,2000-01-01,yesterday,gold\n"  # 7 not a timestamp
    "8,ok,1.00,1,true,2000-01-01,2026-01-01T00:00:00Z,platinum\n"  # 8 not in the enum
    ",no key,1.00,1,true,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 9 key missing
    "10,ok,123456789012.00,1,true,2000-01-01,2026-01-01T00:00:00Z,\n"  # 10 too many digits
    "11,two bad,abc,1,true,2000-01-01,2026-01-01T00:00:00Z,tin\n"  # 11 two columns bad
    "12,ok,,,,,,\n"  # 12 fine: all null
    "13,ok,1.00,99999999999999999999,true,2000-01-01,2026-01-01T00:00:00Z,gold\n"  # 13 int64
    "14,ok,-1.00,1,F,1999-12-31,2026-01-01T00:00:00+01:00,silver\n"  # 14 fine
)


def test_dirty_csv_reject_file_contents(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "dirty.csv"
    path.write_text(DIRTY, encoding="utf-8")
    report = import_file(store, "entity", "customers", path)
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (14, 3, 11)
    assert report.reject_file == (
        store.data_dir / "rejects" / f"dirty.csv.{report.digest[:8]}.rejects.csv"
    )
    dec = "expected a decimal number with at most 2 decimals and 10 integer digits"
    f = str(path)
    assert reject_rows(report) == [
        [f, "2", "id", "x2", "expected a whole number"],
        [f, "3", "balance", "1.005", dec],
        [f, "4", "visits", "1.5", "expected a whole number"],
        [f, "5", "active", "maybe", "expected true or false"],
        [f, "6", "born", "2000-02-30", "expected a date (YYYY-MM-DD)"],
        [
            f,
            "7",
            "last_seen",
            "yesterday",
            "expected a timestamp (ISO 8601, e.g. 2026-11-01T10:00:00Z)",
        ],
        [f, "8", "tier", "platinum", "not one of: bronze, silver, gold"],
        [f, "9", "id", "", "a value is required"],
        [f, "10", "balance", "123456789012.00", dec],
        [f, "11", "balance", "abc", dec],
        [f, "11", "tier", "tin", "not one of: bronze, silver, gold"],
        [f, "13", "visits", "99999999999999999999", "expected a whole number"],
    ]
    assert sorted(rocks_rows(store, "customers")) == [1, 12, 14]
    assert rocks_rows(store, "customers")[14]["last_seen"] == 1767222000000000
    assert snapshot_rows(store, "customers") == rocks_rows(store, "customers")
    summary = report.summary()
    assert "3 of 14 rows upserted into customers" in summary
    assert f"11 rejected, see {report.reject_file}" in summary


def test_reject_dir_can_be_chosen(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "d.csv"
    path.write_text("id,visits\n1,x\n2,2\n", encoding="utf-8")
    report = import_file(store, "entity", "customers", path, rejects_dir=tmp_path / "rej")
    assert report.reject_file is not None
    assert report.reject_file.parent == tmp_path / "rej"
    assert reject_rows(report) == [[str(path), "1", "visits", "x", "expected a whole number"]]


def test_csv_rows_with_a_wrong_field_count(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "fields.csv"
    path.write_text(
        "id,name,visits\n1,a,1\n2,b,2,surplus\n3,c\n4,d,4\n5\n6,f,6\n",
        encoding="utf-8",
    )
    report = import_file(store, "entity", "customers", path)
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (6, 3, 3)
    assert reject_rows(report) == [
        [str(path), "2", "", "2,b,2,surplus", "expected 3 fields, found 4"],
        [str(path), "3", "", "3,c", "expected 3 fields, found 2"],
        [str(path), "5", "", "5", "expected 3 fields, found 1"],
    ]
    assert sorted(rocks_rows(store, "customers")) == [1, 4, 6]


def test_multiline_values_keep_row_numbers_right(store: Store, tmp_path: Path) -> None:
    """Row numbers count records (data rows, header excluded), not physical lines."""
    path = tmp_path / "multi.csv"
    path.write_text(
        "id,name,visits\n"
        '1,"two\nlines",1\n'  # row 1
        '2,"three\nphysical\nlines",x\n'  # row 2: bad visits
        "3,c,3,extra\n"  # row 3: wrong field count
        '4,"a ""quoted""\nnewline",4\n'  # row 4
        "5,e,five\n"  # row 5: bad visits
        '6,"\n",6\n',  # row 6
        encoding="utf-8",
    )
    report = import_file(store, "entity", "customers", path)
    assert reject_rows(report) == [
        [str(path), "2", "visits", "x", "expected a whole number"],
        [str(path), "3", "", "3,c,3,extra", "expected 3 fields, found 4"],
        [str(path), "5", "visits", "five", "expected a whole number"],
    ]
    rows = rocks_rows(store, "customers")
    assert {k: r["name"] for k, r in rows.items()} == {
        1: "two\nlines",
        4: 'a "quoted"\nnewline',
        6: "\n",
    }


def test_many_rows_rejects_are_found_among_good_ones(store: Store, tmp_path: Path) -> None:
    """Bisection over a long column finds exactly the bad values, wherever they are."""
    n = 20_000
    bad = {0, 1, 777, 4096, 4097, 15_000, n - 1}
    lines = ["id,visits,balance"]
    for i in range(n):
        lines.append(f"{i},{'oops' if i in bad else i},{i}.25")
    path = tmp_path / "long.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    report = import_file(store, "entity", "customers", path)
    assert (report.rows_imported, report.rows_rejected) == (n - len(bad), len(bad))
    assert [int(r[1]) for r in reject_rows(report)] == sorted(i + 1 for i in bad)
    assert store.count("customers") == n - len(bad)
    assert store.get("customers", 778)["visits"] == 778
    assert store.get("customers", 777) is None


def test_stream_rejects_and_required_fields(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(
        "ts,customer_id,amount,channel\n"
        "2026-01-01T00:00:00Z,1,1.00,app\n"
        ",2,1.00,app\n"  # 2: no time
        "2026-01-01T00:00:00Z,3,,web\n"  # 3: amount is required
        "2026-01-01T00:00:00Z,4,1.00,fax\n"  # 4: not in the enum
        "2026-13-01T00:00:00Z,5,1.00,app\n"  # 5: no month 13
        "2026-01-01T00:00:00Z,six,1.00,\n",  # 6: reference is not an int
        encoding="utf-8",
    )
    report = import_file(store, "events", "orders", path)
    f = str(path)
    assert reject_rows(report) == [
        [f, "2", "ts", "", "a value is required"],
        [f, "3", "amount", "", "a value is required"],
        [f, "4", "channel", "fax", "not one of: store, app, web"],
        [
            f,
            "5",
            "ts",
            "2026-13-01T00:00:00Z",
            "expected a timestamp (ISO 8601, e.g. 2026-11-01T10:00:00Z)",
        ],
        [f, "6", "customer_id", "six", "expected a whole number"],
    ]
    assert [r["customer_id"] for r in stream_rows(store, "orders")] == [1]
    assert store.event_count("orders") == 1


def test_jsonl_rejects_use_line_numbers(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "c.jsonl"
    path.write_bytes(
        b'{"id": 1, "name": "a"}\n'
        b"\n"
        b"not json\n"
        b"[1, 2]\n"
        b'{"id": {"nested": 1}}\n'
        b'{"id": 6, "name": "caf\xe9"}\n'
        b'{"id": 7, "visits": "many"}\n'
        b'{"id": 8, "visits": true}\n'
        b'{"id": 9, "name": "fine", "visits": 9}\n'
    )
    report = import_file(store, "entity", "customers", path)
    assert (report.rows_read, report.rows_imported, report.rows_rejected) == (8, 2, 6)
    f = str(path)
    rows = reject_rows(report)
    assert [r[:3] for r in rows] == [
        [f, "3", ""],
        [f, "4", ""],
        [f, "5", "id"],
        [f, "6", ""],
        [f, "7", "visits"],
        [f, "8", "visits"],
    ]
    assert rows[0][4].startswith("not valid JSON")
    assert rows[1][4] == "expected a JSON object"
    assert rows[2][4] == "expected a single value"
    assert rows[3][4] == "not valid UTF-8 text"
    assert rows[4][3:] == ["many", "expected a whole number"]
    assert rows[5][3:] == ["true", "expected a whole number"]
    assert sorted(rocks_rows(store, "customers")) == [1, 9]


def test_parquet_value_rejects(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "c.parquet"
    pq.write_table(
        pa.table(
            {
                "id": pa.array([1, None, 3, 4], pa.int64()),
                "balance": pa.array(
                    [
                        Decimal("1.0000"),
                        Decimal("2.0000"),
                        Decimal("1.2345"),
                        Decimal("99999999999.0000"),
                    ],
                    pa.decimal128(20, 4),
                ),
                "tier": pa.array(["gold", "gold", "gold", "iron"]),
            }
        ),
        path,
    )
    report = import_file(store, "entity", "customers", path)
    dec = "expected a decimal number with at most 2 decimals and 10 integer digits"
    f = str(path)
    assert reject_rows(report) == [
        [f, "2", "id", "", "a value is required"],
        [f, "3", "balance", "1.2345", dec],
        [f, "4", "balance", "99999999999.0000", dec],
        [f, "4", "tier", "iron", "not one of: bronze, silver, gold"],
    ]
    assert rocks_rows(store, "customers")[1]["balance"] == "1.00"
    assert sorted(rocks_rows(store, "customers")) == [1]
    assert report.rows_rejected == 3


def test_parquet_rejects_in_later_row_groups(store: Store, tmp_path: Path) -> None:
    """Conversion runs chunk by chunk (one per row group): reject rows must count across them."""
    n = 10_000
    visits = [str(i) for i in range(n)]
    bad = {5, 2500, 2501, 7777, n - 1}
    for i in bad:
        visits[i] = "oops"
    tiers = ["gold"] * n
    tiers[3000] = "iron"
    path = tmp_path / "groups.parquet"
    pq.write_table(
        pa.table({"id": list(range(n)), "visits": visits, "tier": tiers}), path, row_group_size=1000
    )
    assert pq.ParquetFile(path).num_row_groups == 10
    report = import_file(store, "entity", "customers", path)
    assert [(int(r[1]), r[2]) for r in reject_rows(report)] == sorted(
        [(i + 1, "visits") for i in bad] + [(3001, "tier")]
    )
    kept = set(rocks_rows(store, "customers"))
    assert kept == set(range(n)) - bad - {3000}
    assert store.get("customers", 2502)["visits"] == 2502


def test_multi_block_csv_keeps_row_numbers_right(store: Store, tmp_path: Path) -> None:
    """A CSV larger than one parse block (read in parallel, re-read for bad rows' numbers)."""
    lines = ["ts,customer_id,note,amount"]
    n = 330_000
    short = {3, 150_000, n - 1}
    for i in range(1, n + 1):
        if i in short:
            lines.append(f"2026-01-01T00:00:00Z,{i}")
        elif i == 200_000:
            lines.append(f'2026-01-01T00:00:00Z,{i},"multi\nline\nvalue",1.00')
        elif i == 250_000:
            lines.append(f"2026-01-01T00:00:00Z,{i},x,notanumber")
        else:
            lines.append(f"2026-01-01T00:00:00Z,{i},padding-padding-padding-{i},{i}.00")
    path = tmp_path / "big.csv"
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert path.stat().st_size > 1 << 24  # more than the reader's block size
    report = import_file(store, "events", "orders", path)
    assert [(int(r[1]), r[2]) for r in reject_rows(report)] == [
        (3, ""),
        (150_000, ""),
        (250_000, "amount"),
        (n - 1, ""),
    ]
    assert (report.rows_read, report.rows_imported) == (n, n - 4)
    ids = stream_table(store, "orders").column("customer_id").to_pylist()
    assert sorted(ids) == sorted(set(range(1, n + 1)) - short - {250_000})
