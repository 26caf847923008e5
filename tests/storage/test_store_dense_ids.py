"""The per-entity id dictionary: dense uint32 ids 0..n-1, never reused or changed."""

from __future__ import annotations

from pathlib import Path

import pyarrow as pa

from storage import ChangeSet, Store
from tests.helpers_store import customers_table, new_store, snapshot_ids


def upsert_keys(store: Store, keys: list[int]) -> None:
    change = ChangeSet()
    change.upsert("customers", customers_table([{"id": k} for k in keys], ("id",)))
    store.commit(change)


def delete_keys(store: Store, keys: list[int]) -> None:
    change = ChangeSet()
    change.deletes["customers"] = keys
    store.commit(change)


def id_map(store: Store, keys: list[int]) -> dict[int, int | None]:
    return {k: store.dense_id("customers", k) for k in keys}


def test_ids_are_dense_and_reversible(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as store:
        keys = [50, -3, 10**12, 7, 0]
        upsert_keys(store, keys)
        ids = id_map(store, keys)
        assert sorted(ids.values()) == list(range(5))
        assert store.id_count("customers") == 5
        for k, i in ids.items():
            assert store.key_for_id("customers", i) == k
        assert store.key_for_id("customers", 5) is None
        assert store.dense_id("customers", 999) is None
        assert snapshot_ids(store, "customers") == ids
        upsert_keys(store, [7, 8, 50, 9])  # 7 and 50 keep theirs, 8 and 9 take the next two
        assert store.id_count("customers") == 7
        assert id_map(store, keys) == ids
        assert {store.dense_id("customers", 8), store.dense_id("customers", 9)} == {5, 6}


def test_ids_are_stable_across_close_and_reopen(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        upsert_keys(store, list(range(100, 0, -1)))
        before = id_map(store, list(range(1, 101)))
    with Store.open(data) as store:
        assert id_map(store, list(range(1, 101))) == before
        assert snapshot_ids(store, "customers") == before
        upsert_keys(store, [1000, 50])
        assert store.dense_id("customers", 1000) == 100
    with Store.open(data) as store:
        assert store.dense_id("customers", 1000) == 100
        assert store.key_for_id("customers", 100) == 1000
        assert store.id_count("customers") == 101
        assert sorted(snapshot_ids(store, "customers").values()) == list(range(101))


def test_delete_and_reinsert_keeps_the_id(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        upsert_keys(store, [1, 2, 3])
        before = id_map(store, [1, 2, 3])
        delete_keys(store, [2])
        # the id stays reserved for the key while the row is gone
        assert store.get("customers", 2) is None
        assert store.dense_id("customers", 2) == before[2]
        assert store.key_for_id("customers", before[2]) == 2
        assert 2 not in snapshot_ids(store, "customers")
        upsert_keys(store, [4])
        assert store.dense_id("customers", 4) == 3
    with Store.open(data) as store:
        upsert_keys(store, [2])
        assert id_map(store, [1, 2, 3, 4]) == {**before, 4: 3}
        assert snapshot_ids(store, "customers")[2] == before[2]
        assert store.id_count("customers") == 4


def test_string_key_ids_and_separate_dictionaries(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as store:
        change = ChangeSet()
        change.upsert("products", pa.table({"sku": ["x", "y", "x"]}))
        change.upsert("customers", customers_table([{"id": 1}], ("id",)))
        store.commit(change)
        assert {store.dense_id("products", "x"), store.dense_id("products", "y")} == {0, 1}
        assert store.dense_id("customers", 1) == 0  # each entity has its own dictionary
        assert store.key_for_id("products", store.dense_id("products", "y")) == "y"
        assert store.id_count("products") == 2
