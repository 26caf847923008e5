"""Event streams: small appends go to the RocksDB tail, which is folded into an immutable segment;
manifest and segment files survive reopen; recovery removes orphans and rolls committed segments
forward from staging/."""

from __future__ import annotations

import os
import re
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import storage.store as store_module
from entities.arrow import stream_schema
from storage import ChangeSet, Store, StoreError
from tests.helpers_store import (
    assert_no_orphans,
    jsonish,
    listing,
    new_store,
    orders_table,
    read_segment_file,
    stream_rows,
    us,
    utc,
)


def order(i: int) -> dict[str, Any]:
    return {
        "ts": utc(2026, 1, 1 + i % 28, i % 24, 0, 0, i),
        "customer_id": i % 7,
        "sku": f"sku-{i % 3}",
        "amount": Decimal(i).scaleb(-2),
        "qty": i,
        "weight": i / 8,
        "note": f"note {i}" if i % 2 else None,
        "gift": i % 3 == 0,
        "ship_date": None,
        "paid_at": utc(2026, 1, 1, 0, 0, i % 60),
        "channel": ["store", "app", "web"][i % 3],
    }


def as_json(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return sorted(({k: jsonish(v) for k, v in r.items()} for r in rows), key=repr)


def append(store: Store, rows: list[dict[str, Any]]) -> int:
    change = ChangeSet()
    change.append("orders", orders_table(rows))
    return store.commit(change).appended.get("orders", 0)


def tail_blobs(store: Store) -> int:
    return len(list(store.kv.scan(b"t:orders\x00")))


@pytest.fixture
def small_segments(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(store_module, "SEGMENT_MIN_ROWS", 5)
    monkeypatch.setattr(store_module, "TAIL_MAX_ROWS", 12)


@pytest.mark.usefixtures("small_segments")
def test_tail_then_segment_folding(tmp_path: Path) -> None:
    data = tmp_path / "data"
    rows = [order(i) for i in range(30)]
    with new_store(data) as store:
        assert store.event_count("orders") == 0
        assert append(store, rows[0:3]) == 3
        assert (store.segments("orders"), tail_blobs(store)) == ([], 1)
        assert append(store, rows[3:7]) == 4
        assert append(store, rows[7:11]) == 4
        assert (store.segments("orders"), tail_blobs(store)) == ([], 3)
        assert store.tail_table("orders").num_rows == 11
        assert store.event_count("orders") == 11
        assert stream_rows(store, "orders") == as_json(rows[:11])
        assert listing(data / "events" / "orders") == set()

        # 11 in the tail + 2 reaches TAIL_MAX_ROWS: the tail is folded into one segment
        assert append(store, rows[11:13]) == 2
        (seg,) = store.segments("orders")
        assert seg.rows == 13 and tail_blobs(store) == 0
        assert store.tail_table("orders").num_rows == 0
        assert seg.min_time == min(us(r["ts"]) for r in rows[:13])
        assert seg.max_time == max(us(r["ts"]) for r in rows[:13])
        assert listing(data / "events" / "orders") == {seg.file}

        # an append of at least SEGMENT_MIN_ROWS becomes a segment of its own
        assert append(store, rows[13:19]) == 6
        assert [s.rows for s in store.segments("orders")] == [13, 6]
        assert append(store, rows[19:21]) == 2  # small again: tail
        assert tail_blobs(store) == 1
        assert store.event_count("orders") == 21
        expected = as_json(rows[:21])
        assert stream_rows(store, "orders") == expected
        assert_no_orphans(store)
        manifest = store.segments("orders")
        files = listing(data / "events" / "orders")
        tail = store.tail_table("orders")

    with Store.open(data) as store:
        assert store.segments("orders") == manifest
        assert listing(data / "events" / "orders") == files
        assert store.tail_table("orders").equals(tail)
        assert store.event_count("orders") == 21
        assert stream_rows(store, "orders") == expected
        assert_no_orphans(store)
        # appending after reopen folds the tail written before it
        assert append(store, rows[21:30]) == 9
        assert [s.rows for s in store.segments("orders")] == [13, 6, 11]
        assert tail_blobs(store) == 0
        assert stream_rows(store, "orders") == as_json(rows)


@pytest.mark.usefixtures("small_segments")
def test_segment_files_hold_the_stream_schema(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as store:
        append(store, [order(i) for i in range(8)])
        (path,) = store.event_files("orders")
        table = read_segment_file(path)
        schema = stream_schema(store.schema, "orders")
        assert table.schema.remove_metadata().equals(schema)
        assert table.num_rows == 8
        assert table.schema.field("channel").type == pa.dictionary(pa.int32(), pa.string())


def test_missing_columns_become_null_and_order_is_conformed(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as store:
        change = ChangeSet()
        change.append(
            "orders",
            pa.table(
                {
                    "amount": pa.array([Decimal("1.25")], type=pa.decimal128(12, 2)),
                    "ts": pa.array([utc(2026, 5, 1)], type=pa.timestamp("us", tz="UTC")),
                }
            ),
        )
        store.commit(change)
        (row,) = stream_rows(store, "orders")
        assert row == {
            "ts": us(utc(2026, 5, 1)),
            "customer_id": None,
            "sku": None,
            "amount": "1.25",
            "qty": None,
            "weight": None,
            "note": None,
            "gift": None,
            "ship_date": None,
            "paid_at": None,
            "channel": None,
        }


def test_empty_append_changes_nothing(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as store:
        assert append(store, []) == 0
        assert store.event_count("orders") == 0
        assert tail_blobs(store) == 0


@pytest.mark.usefixtures("small_segments")
def test_orphan_files_are_removed_on_open(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        append(store, [order(i) for i in range(6)])
        (seg,) = store.segments("orders")
    (data / "events" / "orders" / "00000001-deadbeef0000.arrow").write_bytes(b"half a segment")
    (data / "events" / "orders" / "stray.parquet").write_bytes(b"x")
    (data / "staging" / "00000001-cafebabe0000.arrow").write_bytes(b"never committed")
    (data / "staging" / "other.tmp").write_bytes(b"")
    with Store.open(data) as store:
        assert listing(data / "events" / "orders") == {seg.file}
        assert listing(data / "staging") == set()
        assert store.event_count("orders") == 6
        assert_no_orphans(store)


@pytest.mark.usefixtures("small_segments")
def test_committed_segment_left_in_staging_is_rolled_forward(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        append(store, [order(i) for i in range(6)])
        append(store, [order(i) for i in range(6, 14)])
        first, second = store.segments("orders")
        expected = stream_rows(store, "orders")
    # as if the process died after the commit point, before renaming the second segment
    os.replace(data / "events" / "orders" / second.file, data / "staging" / second.file)
    with Store.open(data) as store:
        assert listing(data / "events" / "orders") == {first.file, second.file}
        assert listing(data / "staging") == set()
        assert stream_rows(store, "orders") == expected
        assert store.event_count("orders") == 14


@pytest.mark.usefixtures("small_segments")
def test_listed_segment_missing_everywhere_is_an_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        append(store, [order(i) for i in range(6)])
        (seg,) = store.segments("orders")
    (data / "events" / "orders" / seg.file).unlink()
    with pytest.raises(StoreError, match=re.escape(f"orders/{seg.file} is listed but missing")):
        Store.open(data)


def test_entity_change_and_events_commit_together(tmp_path: Path) -> None:
    from tests.helpers_store import customers_table

    with new_store(tmp_path / "data") as store:
        change = ChangeSet()
        change.upsert("customers", customers_table([{"id": 1, "name": "a"}], ("id", "name")))
        change.append("orders", orders_table([order(1)]))
        change.meta[b"o:test-offset"] = b"42"
        result = store.commit(change)
        assert result.appended == {"orders": 1} and result.upserted == {"customers": 1}
        assert store.get_meta(b"o:test-offset") == b"42"
        assert store.get("customers", 1)["name"] == "a"
        assert store.event_count("orders") == 1


@pytest.mark.usefixtures("small_segments")
def test_read_only_open_reads_a_committed_segment_still_in_staging(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        append(store, [order(i) for i in range(6)])
        (seg,) = store.segments("orders")
        expected = stream_rows(store, "orders")
    os.replace(data / "events" / "orders" / seg.file, data / "staging" / seg.file)
    with Store.open(data, read_only=True) as ro:
        assert stream_rows(ro, "orders") == expected


def test_stale_snapshot_temp_file_is_removed_on_open(tmp_path: Path) -> None:
    from tests.helpers_store import customers_table

    data = tmp_path / "data"
    with new_store(data) as store:
        change = ChangeSet()
        change.upsert("customers", customers_table([{"id": 1}], ("id",)))
        store.commit(change)
    (data / "snapshots" / "customers.tmp").write_bytes(b"a snapshot half written")
    with Store.open(data):
        assert listing(data / "snapshots") == {"customers.arrow"}
