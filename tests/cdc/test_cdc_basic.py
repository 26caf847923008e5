"""Functional tests against the throwaway MariaDB: snapshot, streaming, types, transactions,
policies for event rows, changed keys, status."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.cdc_state import (
    CdcError,
    ack_changes,
    load_state,
    read_changes,
    register_consumer,
)
from storage import Store
from tests.cdc.cdc_helpers import (
    ACCOUNT_TOTAL,
    Workload,
    account_total,
    cli,
    compare,
    config_text,
    make_db,
    make_store,
    run_inprocess,
    write_config,
)

pytestmark = [pytest.mark.mariadb, pytest.mark.usefixtures("cdc_env")]


def test_snapshot_then_stream_inserts_updates_deletes(mariadb: Any, tmp_path: Path) -> None:
    db = "basic1"
    make_db(mariadb, db)
    wl = Workload(mariadb, db, seed=11)
    wl.run(150)  # before the snapshot
    store = make_store(tmp_path / "s")
    store.close()
    text = config_text(mariadb, db, chunk_rows=50)
    rep = run_inprocess(tmp_path / "s", text)
    assert rep.state.phase == "streaming"
    assert rep.state.counter("snapshot_rows") > 0
    d = compare(mariadb, db, tmp_path / "s")
    assert d.ok, d
    wl.run(300)  # streamed
    wl.close()
    rep = run_inprocess(tmp_path / "s", text)
    assert rep.stopped == "caught up"
    assert rep.state.counter("rows_applied") > 0
    assert rep.state.counter("skipped") == 0
    d = compare(mariadb, db, tmp_path / "s")
    assert d.ok, d
    s = Store.open(tmp_path / "s", read_only=True)
    assert account_total(s) == ACCOUNT_TOTAL
    s.close()


def test_types_nulls_decimal_datetime_json(mariadb: Any, tmp_path: Path) -> None:
    db = "types1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    run_inprocess(tmp_path / "s", text)
    mariadb.sql(
        f"INSERT INTO {db}.customers VALUES (1, 'Zoë', 'z@x', 12345678.91, '1999-12-31', "
        '\'2024-02-29 23:59:59.123456\', \'{"a": [1, 2, {"b": null}], "é": "\\\\u00e9"}\', 1, '
        "'gold', 0.125)",
        f"INSERT INTO {db}.customers (id) VALUES (2)",
        f"INSERT INTO {db}.customers VALUES (3, '', '', -0.01, '1970-01-01', "
        "'1970-01-01 00:00:00', '[]', 0, 'bronze', -1e300)",
        f"UPDATE {db}.customers SET email=NULL, balance=NULL WHERE id=1",
    )
    run_inprocess(tmp_path / "s", text)
    d = compare(mariadb, db, tmp_path / "s")
    assert d.ok, d
    s = Store.open(tmp_path / "s", read_only=True)
    one = s.get("customers", 1)
    assert one is not None
    assert one["email"] is None and one["balance"] is None
    assert json.loads(one["profile"]) == {"a": [1, 2, {"b": None}], "é": "é"}
    two = s.get("customers", 2)
    assert two is not None and all(two[k] is None for k in ("name", "born", "vip", "profile"))
    t = s.entity_table("customers").to_pylist()
    row3 = next(r for r in t if r["id"] == 3)
    assert row3["balance"] == decimal.Decimal("-0.01")
    assert row3["updated"] == dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
    row1 = next(r for r in t if r["id"] == 1)
    assert row1["updated"] == dt.datetime(2024, 2, 29, 23, 59, 59, 123456, tzinfo=dt.UTC)
    s.close()


def test_multi_table_transactions_and_rollbacks(mariadb: Any, tmp_path: Path) -> None:
    db = "txn1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    run_inprocess(tmp_path / "s", text)
    conn = mariadb.connect(autocommit=False)
    with conn.cursor() as cur:
        cur.execute(f"INSERT INTO {db}.customers (id, full_name) VALUES (1,'a'),(2,'b'),(3,'c')")
        cur.execute(f"INSERT INTO {db}.products VALUES ('p1','one',1.00),('p2','two',2.00)")
        cur.execute(
            f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) VALUES "
            "(1,'p1',1.00,1,NOW()),(2,'p2',2.00,2,NOW())"
        )
        conn.commit()
        cur.execute(f"INSERT INTO {db}.customers (id, full_name) VALUES (4,'rolled back')")
        cur.execute(f"UPDATE {db}.products SET price=99 WHERE sku='p1'")
        cur.execute(
            f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) VALUES "
            "(4,'p1',9.00,9,NOW())"
        )
        conn.rollback()
        cur.execute(f"DELETE FROM {db}.customers WHERE id=3")
        cur.execute(f"UPDATE {db}.customers SET id=30 WHERE id=2")
        cur.execute("SAVEPOINT sp")
        cur.execute(f"INSERT INTO {db}.customers (id, full_name) VALUES (5,'undone')")
        cur.execute("ROLLBACK TO SAVEPOINT sp")
        cur.execute(f"INSERT INTO {db}.customers (id, full_name) VALUES (6,'kept')")
        conn.commit()
    conn.close()
    rep = run_inprocess(tmp_path / "s", text)
    d = compare(mariadb, db, tmp_path / "s")
    assert d.ok, d
    s = Store.open(tmp_path / "s", read_only=True)
    assert s.get("customers", 4) is None and s.get("customers", 5) is None
    assert s.get("customers", 2) is None and s.get("customers", 30) is not None
    assert s.event_count("purchase") == 2
    s.close()
    assert rep.state.counter("skipped") == 0


def test_event_row_policies(mariadb: Any, tmp_path: Path) -> None:
    db = "pol1"
    make_db(mariadb, db, ("customers", "products", "orders", "accounts"))
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db, orders="on_update: append\n    on_delete: ignore")
    run_inprocess(tmp_path / "s", text)
    mariadb.sql(
        f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) VALUES "
        "(1,'a',1.00,1,'2024-01-01'),(2,'b',2.00,2,'2024-01-02')",
        f"UPDATE {db}.orders SET qty=5 WHERE order_id=1",
        f"DELETE FROM {db}.orders WHERE order_id=2",
    )
    rep = run_inprocess(tmp_path / "s", text)
    st = rep.state
    assert st.counter("updates_appended") == 1 and st.counter("deletes_ignored") == 1
    s = Store.open(tmp_path / "s", read_only=True)
    assert sorted(s.tail_table("purchase").column("qty").to_pylist()) == [1, 2, 5]
    s.close()
    # the default policy for updates is an error that names the position
    text2 = config_text(mariadb, db)
    mariadb.sql(f"UPDATE {db}.orders SET qty=6 WHERE order_id=1")
    with pytest.raises(CdcError, match=r"update of event table pol1.orders at binlog\.\d+:\d+"):
        run_inprocess(tmp_path / "s", text2)
    s = Store.open(tmp_path / "s", read_only=True)
    st2 = load_state(s, "test")
    s.close()
    assert st2 is not None and st2.last_error and "on_update" in st2.last_error


def test_changed_keys_log(mariadb: Any, tmp_path: Path) -> None:
    db = "chg1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    mariadb.sql(f"INSERT INTO {db}.customers (id) VALUES (1),(2)")
    run_inprocess(tmp_path / "s", text)
    s = Store.open(tmp_path / "s")
    register_consumer(s, "customers", "segments")
    register_consumer(s, "customers", "tags")
    first = read_changes(s, "customers", "segments")
    assert first.keys == {1, 2}
    ack_changes(s, "customers", "segments", first.upto)
    assert read_changes(s, "customers", "segments").keys == set()
    assert read_changes(s, "customers", "tags").keys == {1, 2}  # another consumer still sees
    s.close()
    mariadb.sql(
        f"UPDATE {db}.customers SET email='x' WHERE id=2",
        f"DELETE FROM {db}.customers WHERE id=1",
        f"INSERT INTO {db}.customers (id) VALUES (3)",
    )
    run_inprocess(tmp_path / "s", text)
    s = Store.open(tmp_path / "s")
    assert read_changes(s, "customers", "segments").keys == {1, 2, 3}
    s.close()


def test_cli_run_and_status(mariadb: Any, tmp_path: Path) -> None:
    db = "cli1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db))
    Workload(mariadb, db, seed=3).run(50)
    p = cli("run", "--data-dir", str(tmp_path / "s"), "--config", str(cfg), "--until-caught-up")
    out, errb = p.communicate(timeout=120)
    assert p.returncode == 0, errb.decode()
    assert b"caught up" in out
    p = cli("status", "--data-dir", str(tmp_path / "s"), "--json")
    out, errb = p.communicate(timeout=60)
    assert p.returncode == 0, errb.decode()
    st = json.loads(out)[0]
    assert st["phase"] == "streaming" and st["counters"]["skipped"] == 0
    assert st["position"]["file"].startswith("binlog.")
    assert set(st["counters"]) >= {"rows_applied", "reconnects", "unknown_events", "skipped"}
    p = cli("status", "--data-dir", str(tmp_path / "s"))
    out, _ = p.communicate(timeout=60)
    assert b"connector test: streaming" in out and b"lag" in out


def test_stop_flag_and_latency(mariadb: Any, tmp_path: Path) -> None:
    """A running connector applies a commit within a second and stops promptly when asked."""
    db = "lat1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    stop = threading.Event()
    result: dict[str, Any] = {}

    def go() -> None:
        result["rep"] = run_inprocess(tmp_path / "s", text, until=False, max_seconds=60, stop=stop)

    t = threading.Thread(target=go)
    t.start()
    time.sleep(1.5)
    s = None
    lat = []
    for i in range(5):
        t0 = time.monotonic()
        mariadb.sql(f"INSERT INTO {db}.customers (id, email) VALUES ({i + 1}, 'l')")
        while True:
            if s is not None:
                s.close()
            s = Store.open(tmp_path / "s", read_only=True)
            if s.get("customers", i + 1) is not None:
                break
            assert time.monotonic() - t0 < 5
            time.sleep(0.01)
        lat.append(time.monotonic() - t0)
    assert s is not None
    s.close()
    t0 = time.monotonic()
    stop.set()
    t.join(timeout=10)
    assert not t.is_alive() and time.monotonic() - t0 < 2
    assert max(lat) < 1.0, lat
    assert result["rep"].stopped == "stopped"


def test_table_added_after_the_snapshot_is_refused(mariadb: Any, tmp_path: Path) -> None:
    db = "add1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    full = config_text(mariadb, db)
    without = full.replace(f"  {db}.products:\n    entity: products\n", "")
    assert without != full
    mariadb.sql(f"INSERT INTO {db}.products VALUES ('p0', 'old', 1)")
    run_inprocess(tmp_path / "s", without)
    mariadb.sql(f"INSERT INTO {db}.products VALUES ('p1', 'new', 1)")
    with pytest.raises(CdcError, match="not part of this connector's initial snapshot"):
        run_inprocess(tmp_path / "s", full)


def test_docs_example_runs(mariadb: Any, tmp_path: Path) -> None:
    """The example of docs/cdc.md (schema, tables, config) works as written."""
    import re

    from tests.cdc.cdc_helpers import REPO

    text = (REPO / "docs" / "cdc.md").read_text(encoding="utf-8")
    schema, config = re.findall(r"```yaml\n(.*?)```", text, re.S)[:2]
    sql = re.findall(r"```sql\n(.*?)```", text, re.S)[0]
    mariadb.sql("DROP DATABASE IF EXISTS shop", "CREATE DATABASE shop")
    for stmt in sql.split(";"):
        if stmt.strip() and "USER" not in stmt and "GRANT" not in stmt:
            mariadb.sql(stmt)
    Store.create(tmp_path / "shop-data", schema, "schema.yaml").close()
    config = (
        config.replace("port: 3306", f"port: {mariadb.port}")
        .replace("user: eql_cdc", "user: cdc")
        .replace("password_env: EQL_CDC_PASSWORD", "password_env: EQL_TEST_CDC_PASSWORD")
    )
    cfg = write_config(tmp_path / "cdc.yaml", config)
    args = (
        "run",
        "--data-dir",
        str(tmp_path / "shop-data"),
        "--config",
        str(cfg),
        "--until-caught-up",
    )
    _, errb = cli(*args).communicate(timeout=120)  # the snapshot (of empty tables)
    mariadb.sql(
        "INSERT INTO shop.customers VALUES (1, 'Ada', 'a@x', 10.50, '{\"vip\": true}', NOW(6))",
        "INSERT INTO shop.products VALUES ('p1', 'Pen', 1.99)",
        "INSERT INTO shop.orders (customer_id, sku, amount, created_at) VALUES (1, 'p1', 1.99, "
        "NOW(6))",
        "DELETE FROM shop.orders",
    )
    p = cli(*args)
    _, errb = p.communicate(timeout=120)
    assert p.returncode == 0, errb.decode()
    s = Store.open(tmp_path / "shop-data", read_only=True)
    try:
        ada = s.get("customers", 1)
        assert ada is not None and ada["name"] == "Ada" and ada["profile"] == '{"vip": true}'
        assert s.event_count("purchase") == 1  # the delete is ignored, as configured
    finally:
        s.close()
