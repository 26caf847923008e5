"""Entity state in the embedded store: upserts, deletes, partial upserts, and their visibility in
RocksDB and in the columnar snapshot, across close and reopen (real RocksDB files)."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from pathlib import Path

import pyarrow as pa
import pytest
from rocksdict import DbClosedError

from storage import ChangeSet, Store, StoreError
from tests.helpers_store import (
    ALL_TYPES_SCHEMA,
    assert_snapshot_matches_rocks,
    customers_table,
    new_store,
    rocks_rows,
    snapshot_rows,
    utc,
)

FULL = {
    "id": 7,
    "name": "Ada Lovelace",
    "balance": Decimal("12345678.91"),
    "score": 0.1,
    "visits": -(2**62),
    "active": True,
    "born": dt.date(1815, 12, 10),
    "last_seen": utc(2026, 11, 1, 10, 0, 0, 123456),
    "tier": "gold",
}
FULL_JSON = {
    "name": "Ada Lovelace",
    "balance": "12345678.91",
    "score": 0.1,
    "visits": -(2**62),
    "active": True,
    "born": "1815-12-10",
    "last_seen": 1_793_527_200_123_456,
    "tier": "gold",
}
NULLS = {k: None for k in FULL_JSON}


def upsert(
    store: Store,
    rows: list[dict[str, object]],
    columns: tuple[str, ...] | None = None,
    entity: str = "customers",
) -> None:
    change = ChangeSet()
    change.upsert(entity, customers_table(rows, columns))
    store.commit(change)


def delete(store: Store, keys: list[object], entity: str = "customers") -> None:
    change = ChangeSet()
    change.deletes[entity] = list(keys)
    store.commit(change)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = new_store(tmp_path / "data")
    yield s
    with contextlib.suppress(DbClosedError):  # some tests close it to reopen
        s.close()


def test_upsert_all_types_round_trip(store: Store, tmp_path: Path) -> None:
    upsert(store, [FULL])
    assert store.get("customers", 7) == {"id": 7, **FULL_JSON}
    snap = store.entity_table("customers").to_pylist()
    assert len(snap) == 1
    assert {k: v for k, v in snap[0].items() if k != "__id"} == FULL
    assert_snapshot_matches_rocks(store, "customers")
    store.close()
    with Store.open(tmp_path / "data") as again:
        assert again.get("customers", 7) == {"id": 7, **FULL_JSON}
        row = again.entity_table("customers").to_pylist()[0]
        assert row["balance"] == Decimal("12345678.91") and row["last_seen"] == FULL["last_seen"]
        assert again.entity_table("customers").schema.field("tier").type == pa.dictionary(
            pa.int32(), pa.string()
        )


def test_upsert_replaces_and_delete_removes(store: Store) -> None:
    upsert(store, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}, {"id": 3, "name": "c"}])
    upsert(store, [{"id": 2, "name": "B", "visits": 5}])
    delete(store, [3])
    assert rocks_rows(store, "customers") == {
        1: {**NULLS, "name": "a"},
        2: {**NULLS, "name": "B", "visits": 5},
    }
    assert store.get("customers", 3) is None
    assert store.count("customers") == 2
    assert_snapshot_matches_rocks(store, "customers")


def test_delete_of_an_absent_key_is_harmless(store: Store) -> None:
    upsert(store, [{"id": 1, "name": "a"}])
    delete(store, [99, 1, 1])
    assert rocks_rows(store, "customers") == {}
    assert store.count("customers") == 0
    assert_snapshot_matches_rocks(store, "customers")


def test_last_row_per_key_wins_within_one_change(store: Store) -> None:
    rows = [
        {"id": 1, "name": "first", "visits": 1},
        {"id": 2, "name": "other", "visits": 2},
        {"id": 1, "name": "second", "visits": 3},
        {"id": 1, "name": "third", "tier": "bronze"},
    ]
    upsert(store, rows)
    # the last row replaces the whole row for the columns present in the change
    assert rocks_rows(store, "customers") == {
        1: {**NULLS, "name": "third", "tier": "bronze"},
        2: {**NULLS, "name": "other", "visits": 2},
    }
    assert snapshot_rows(store, "customers") == rocks_rows(store, "customers")
    assert store.id_count("customers") == 2


def test_last_row_wins_across_two_upserts_in_one_changeset(store: Store) -> None:
    change = ChangeSet()
    change.upsert("customers", customers_table([{"id": 1, "name": "x"}]))
    change.upsert("customers", customers_table([{"id": 1, "name": "y"}]))
    store.commit(change)
    assert store.get("customers", 1)["name"] == "y"
    assert_snapshot_matches_rocks(store, "customers")


def test_partial_upsert_keeps_absent_columns(store: Store, tmp_path: Path) -> None:
    upsert(store, [FULL, {**FULL, "id": 8, "name": "Bob", "tier": "silver"}])
    upsert(
        store,
        [{"id": 7, "name": "Ada", "visits": 1}, {"id": 9, "name": "New"}],
        columns=("id", "name", "visits"),
    )
    assert rocks_rows(store, "customers") == {
        7: {**FULL_JSON, "name": "Ada", "visits": 1},
        8: {**FULL_JSON, "name": "Bob", "tier": "silver"},
        9: {**NULLS, "name": "New"},
    }
    assert_snapshot_matches_rocks(store, "customers")
    # an explicit null in a present column does overwrite
    upsert(store, [{"id": 8, "name": None}], columns=("id", "name"))
    assert rocks_rows(store, "customers")[8] == {**FULL_JSON, "name": None, "tier": "silver"}
    assert_snapshot_matches_rocks(store, "customers")
    store.close()
    with Store.open(tmp_path / "data") as again:
        assert rocks_rows(again, "customers")[7] == {**FULL_JSON, "name": "Ada", "visits": 1}
        assert_snapshot_matches_rocks(again, "customers")


def test_key_only_upsert_creates_a_row_of_nulls_and_keeps_existing(store: Store) -> None:
    upsert(store, [FULL])
    upsert(store, [{"id": 7}, {"id": 1}], columns=("id",))
    assert rocks_rows(store, "customers") == {7: FULL_JSON, 1: NULLS}
    assert_snapshot_matches_rocks(store, "customers")


def test_upsert_wins_over_delete_of_the_same_key_in_one_change(store: Store) -> None:
    upsert(store, [{"id": 1, "name": "a"}, {"id": 2, "name": "b"}])
    change = ChangeSet()
    change.upsert("customers", customers_table([{"id": 1, "name": "kept"}]))
    change.deletes["customers"] = [1, 2]
    store.commit(change)
    assert rocks_rows(store, "customers") == {1: {**NULLS, "name": "kept"}}
    assert_snapshot_matches_rocks(store, "customers")


def test_version_is_bumped_by_each_commit_that_touches_the_entity(store: Store) -> None:
    assert store.version("customers") == 0
    upsert(store, [{"id": 1}], columns=("id",))
    delete(store, [1])
    assert store.version("customers") == 2
    assert store.version("products") == 0


def test_string_keys(store: Store, tmp_path: Path) -> None:
    change = ChangeSet()
    change.upsert(
        "products",
        pa.table(
            {
                "sku": ["b", "a", "é-ü", "", "a"],
                "title": ["B", "A", "unicode", "empty key", "A2"],
                "price": pa.array(
                    [
                        Decimal("1.005"),
                        None,
                        Decimal("-0.001"),
                        Decimal("0"),
                        Decimal("9999999.999"),
                    ],
                    type=pa.decimal128(10, 3),
                ),
            }
        ),
    )
    store.commit(change)
    got = rocks_rows(store, "products")
    assert got == {
        "": {"title": "empty key", "price": "0.000"},
        "a": {"title": "A2", "price": "9999999.999"},
        "b": {"title": "B", "price": "1.005"},
        "é-ü": {"title": "unicode", "price": "-0.001"},
    }
    # RocksDB iteration follows key order
    assert [k for k, _ in store.iter_rows("products")] == ["", "a", "b", "é-ü"]
    assert_snapshot_matches_rocks(store, "products")
    store.close()
    with Store.open(tmp_path / "data") as again:
        assert rocks_rows(again, "products") == got
        assert_snapshot_matches_rocks(again, "products")


def test_int_key_order_and_extremes(store: Store) -> None:
    keys = [2**63 - 1, -(2**63), 0, -1, 1, 256]
    upsert(store, [{"id": k} for k in keys], columns=("id",))
    assert [k for k, _ in store.iter_rows("customers")] == sorted(keys)
    assert_snapshot_matches_rocks(store, "customers")


def test_commit_to_an_unknown_entity_or_stream_is_refused(store: Store) -> None:
    change = ChangeSet()
    change.deletes["nobody"] = [1]
    with pytest.raises(StoreError, match="unknown entity 'nobody'"):
        store.commit(change)
    change = ChangeSet()
    change.append("nowhere", pa.table({"ts": [1]}))
    with pytest.raises(StoreError, match="unknown event stream 'nowhere'"):
        store.commit(change)


def test_create_refuses_an_existing_store_and_open_refuses_a_missing_one(tmp_path: Path) -> None:
    new_store(tmp_path / "data").close()
    with pytest.raises(StoreError, match="already holds a store"):
        Store.create(tmp_path / "data", ALL_TYPES_SCHEMA)
    with pytest.raises(StoreError, match="no store at"):
        Store.open(tmp_path / "elsewhere")
    assert not (tmp_path / "elsewhere").exists()


def test_schema_is_kept_in_the_store(tmp_path: Path) -> None:
    new_store(tmp_path / "data").close()
    with Store.open(tmp_path / "data") as again:
        assert [e.name for e in again.schema.entities] == ["customers", "products"]
        assert again.schema.source == "test-schema.yaml"
        assert again.get_meta(b"m:schema") == ALL_TYPES_SCHEMA.encode()
    assert (tmp_path / "data" / "schema.yaml").read_text() == ALL_TYPES_SCHEMA


def test_read_only_open_sees_committed_rows_and_refuses_writes(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as s:
        upsert(s, [{"id": 1, "name": "a"}])
    with Store.open(tmp_path / "data", read_only=True) as ro:
        assert ro.get("customers", 1)["name"] == "a"
        assert_snapshot_matches_rocks(ro, "customers")
        with pytest.raises(PermissionError):
            upsert(ro, [{"id": 2}], columns=("id",))
