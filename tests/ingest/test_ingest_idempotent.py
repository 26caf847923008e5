"""Importing the same file twice adds nothing (the ledger records the file's digest in the same
commit as its rows); a changed file, or the same file into another target, imports."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

import storage.store as store_module
from ingest.files import import_file
from storage import Store
from tests.helpers_store import assert_no_orphans, new_store, rocks_rows, stream_rows

ORDERS = (
    "ts,customer_id,amount\n"
    "2026-01-01T00:00:00Z,1,1.00\n"
    "2026-01-02T00:00:00Z,2,2.00\n"
    "2026-01-03T00:00:00Z,3,bad\n"
)


@pytest.fixture
def store(tmp_path: Path) -> Iterator[Store]:
    s = new_store(tmp_path / "data")
    yield s
    s.close()


def test_same_events_file_twice_adds_nothing(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS, encoding="utf-8")
    first = import_file(store, "events", "orders", path)
    assert (first.rows_imported, first.rows_rejected, first.already_imported) == (2, 1, False)
    rejects = sorted((store.data_dir / "rejects").iterdir())
    before = stream_rows(store, "orders")
    second = import_file(store, "events", "orders", path)
    assert second.already_imported
    assert (second.rows_imported, second.rows_rejected, second.reject_file) == (0, 0, None)
    assert second.rows_read == 3
    assert second.digest == first.digest
    assert second.summary() == f"{path}: already imported into orders; nothing added"
    assert stream_rows(store, "orders") == before
    assert store.event_count("orders") == 2
    assert sorted((store.data_dir / "rejects").iterdir()) == rejects


def test_same_content_under_another_name_is_the_same_file(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS, encoding="utf-8")
    import_file(store, "events", "orders", path)
    copy = tmp_path / "copy-of-orders.csv"
    shutil.copy(path, copy)
    assert import_file(store, "events", "orders", copy).already_imported
    assert store.event_count("orders") == 2


def test_changed_file_imports(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS, encoding="utf-8")
    import_file(store, "events", "orders", path)
    path.write_text(ORDERS + "2026-01-04T00:00:00Z,4,4.00\n", encoding="utf-8")
    again = import_file(store, "events", "orders", path)
    assert (again.already_imported, again.rows_imported) == (False, 3)
    assert store.event_count("orders") == 5  # a changed file is a new file: all its rows
    assert len(store.imports()) == 2


def test_same_file_into_another_target_imports(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "keys.csv"
    path.write_text("id,sku\n1,a\n2,b\n", encoding="utf-8")
    to_customers = import_file(store, "entity", "customers", path, allow_extra_columns=True)
    to_products = import_file(store, "entity", "products", path, allow_extra_columns=True)
    assert not to_customers.already_imported and not to_products.already_imported
    assert to_customers.digest != to_products.digest
    assert sorted(rocks_rows(store, "customers")) == [1, 2]
    assert sorted(rocks_rows(store, "products")) == ["a", "b"]
    assert import_file(store, "entity", "products", path, allow_extra_columns=True).already_imported


def test_entity_reimport_leaves_the_version_alone(store: Store, tmp_path: Path) -> None:
    path = tmp_path / "c.csv"
    path.write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    import_file(store, "entity", "customers", path)
    version = store.version("customers")
    rows = rocks_rows(store, "customers")
    assert import_file(store, "entity", "customers", path).already_imported
    assert store.version("customers") == version
    assert rocks_rows(store, "customers") == rows


def test_ledger_survives_reopen_and_records_the_import(tmp_path: Path) -> None:
    data = tmp_path / "data"
    path = tmp_path / "orders.csv"
    path.write_text(ORDERS, encoding="utf-8")
    with new_store(data) as store:
        report = import_file(store, "events", "orders", path)
    with Store.open(data) as store:
        (entry,) = store.imports()
        assert entry["digest"] == report.digest
        assert entry["file"] == str(path.resolve())
        assert (entry["kind"], entry["target"]) == ("events", "orders")
        assert (entry["rows_read"], entry["rows_imported"], entry["rows_rejected"]) == (3, 2, 1)
        assert store.ledger_get(report.digest)["rows_imported"] == 2
        assert import_file(store, "events", "orders", path).already_imported
        assert store.event_count("orders") == 2


def test_large_file_as_a_segment_reimported(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SEGMENT_MIN_ROWS", 10)
    path = tmp_path / "orders.csv"
    path.write_text(
        "ts,amount\n" + "".join(f"2026-01-01T00:00:{i:02d}Z,{i}.00\n" for i in range(50)),
        encoding="utf-8",
    )
    with new_store(tmp_path / "data") as store:
        assert import_file(store, "events", "orders", path).rows_imported == 50
        assert [s.rows for s in store.segments("orders")] == [50]
        assert import_file(store, "events", "orders", path).already_imported
        assert [s.rows for s in store.segments("orders")] == [50]
        assert_no_orphans(store)
