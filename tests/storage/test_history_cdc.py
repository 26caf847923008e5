"""Replicated rows take effect at the source transaction's timestamp: a CDC update made on a real
(throwaway) MariaDB at a chosen `SET TIMESTAMP` is history at exactly that time, and the initial
snapshot writes no history (its rows were there since forever)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from storage import Store, history
from tests.cdc.cdc_helpers import config_text, make_db, make_store, run_inprocess
from tests.cdc.conftest import CDC_PASSWORD, Server, start_server

pytestmark = pytest.mark.mariadb
SOURCE_TIME = dt.datetime(2024, 5, 6, 7, 8, 9, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def mariadb(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Server]:
    server = start_server(tmp_path_factory.mktemp("mariadb-history"))
    try:
        yield server
    finally:
        server.stop()


def test_a_cdc_update_is_history_at_the_source_timestamp(
    mariadb: Server, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("EQL_TEST_CDC_PASSWORD", CDC_PASSWORD)
    db = "hist1"
    make_db(mariadb, db, ("customers", "products", "accounts", "orders"))
    mariadb.sql(f"INSERT INTO {db}.customers (id, full_name) VALUES (1, 'before'), (2, 'kept')")
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    run_inprocess(tmp_path / "s", text)  # the snapshot: a baseline, no history
    with Store.open(tmp_path / "s", read_only=True) as store:
        assert store.history_time("customers") is None
    stamp = int(SOURCE_TIME.timestamp())
    mariadb.sql(
        f"SET TIMESTAMP = {stamp}",
        f"UPDATE {db}.customers SET full_name = 'after' WHERE id = 1",
        f"INSERT INTO {db}.customers (id, full_name) VALUES (3, 'new')",
        "SET TIMESTAMP = DEFAULT",
    )
    run_inprocess(tmp_path / "s", text)
    with Store.open(tmp_path / "s", read_only=True) as store:
        at = history.to_us(SOURCE_TIME)
        assert store.history_time("customers") == at

        def names(t: int) -> dict[int, str]:
            table = store.entity_table_at("customers", t)
            return {r["id"]: r["name"] for r in table.to_pylist()}

        assert names(at - 1) == {1: "before", 2: "kept"}
        assert names(at) == {1: "after", 2: "kept", 3: "new"}
