"""CDC-2 (server-side KILL of the replication connection), CDC-3 (purged binlogs), CDC-5 (refused
server settings, also when a session changes them mid-stream) and CDC-6 (snapshot under
concurrent writes, killed at several points)."""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from ingest.cdc_state import CdcError, load_state
from storage import Store
from tests.cdc.cdc_helpers import (
    BackgroundWriter,
    Workload,
    cli,
    cli_run,
    compare,
    config_text,
    make_db,
    make_store,
    processlist_dump_ids,
    run_inprocess,
    write_config,
)
from tests.cdc.conftest import CDC_PASSWORD, start_server

pytestmark = [pytest.mark.mariadb, pytest.mark.usefixtures("cdc_env")]


# ---- CDC-2 -----------------------------------------------------------------------------------
def test_server_side_kill_of_replication_connection(mariadb: Any, tmp_path: Path) -> None:
    db = "kill1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    run_inprocess(tmp_path / "s", text)
    stop = threading.Event()
    box: dict[str, Any] = {}

    def connector() -> None:
        try:
            box["rep"] = run_inprocess(
                tmp_path / "s", text, until=False, max_seconds=120, stop=stop
            )
        except BaseException as exc:
            box["error"] = exc

    big = threading.Event()

    def big_transactions() -> None:  # so that kills land inside multi-event transactions
        conn = mariadb.connect(autocommit=False)
        i = 0
        with conn.cursor() as cur:
            while not big.is_set():
                cur.executemany(
                    f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) "
                    "VALUES (%s, 'big', 1.00, 1, NOW())",
                    [(i,)] * 400,
                )
                cur.execute(f"UPDATE {db}.accounts SET balance=balance-1 WHERE id=1")
                cur.execute(f"UPDATE {db}.accounts SET balance=balance+1 WHERE id=2")
                conn.commit()
                i += 1
                big.wait(0.05)
        conn.close()

    t = threading.Thread(target=connector)
    t.start()
    bt = threading.Thread(target=big_transactions)
    rng = random.Random(7)
    drops, reconnect_times = 0, []
    with BackgroundWriter(mariadb, db, seed=8, pause=0.001):
        bt.start()
        time.sleep(1.0)
        for _ in range(8):
            time.sleep(rng.uniform(0.2, 0.6))
            ids = processlist_dump_ids(mariadb)
            assert ids, "the connector has no replication connection"
            t0 = time.monotonic()
            for i in ids:
                mariadb.sql(f"KILL {i}")
            drops += 1
            while True:
                now = processlist_dump_ids(mariadb)
                if now and not set(now) & set(ids):
                    break
                assert time.monotonic() - t0 < 10, "no reconnect within 10 s"
                time.sleep(0.01)
            reconnect_times.append(time.monotonic() - t0)
        big.set()
        bt.join()
    stop.set()
    t.join(timeout=30)
    assert "error" not in box, box.get("error")
    rep = run_inprocess(tmp_path / "s", text)
    d = compare(mariadb, db, tmp_path / "s")
    assert d.ok, d
    assert rep.state.counter("reconnects") >= drops
    assert rep.state.counter("skipped") == 0
    print(
        f"\nCDC-2: drops={drops} rows compared={d.rows} reconnect max="
        f"{max(reconnect_times):.2f}s mean={sum(reconnect_times) / len(reconnect_times):.2f}s"
    )


# ---- CDC-3 -----------------------------------------------------------------------------------
def test_purged_binlog_is_a_clear_error(mariadb: Any, tmp_path: Path) -> None:
    db = "purge1"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    Workload(mariadb, db, seed=5).run(20)
    run_inprocess(tmp_path / "s", text)
    before = compare(mariadb, db, tmp_path / "s")
    assert before.ok
    Workload(mariadb, db, seed=6).run(20)
    _purge_to_current(mariadb)
    with pytest.raises(CdcError, match=r"no longer on the server.*purged") as ei:
        run_inprocess(tmp_path / "s", text)
    assert "binlog." in str(ei.value)
    s = Store.open(tmp_path / "s", read_only=True)
    st = load_state(s, "test")
    s.close()
    assert st is not None and st.last_error and "purged" in st.last_error
    assert st.counter("skipped") == 0
    cfg = write_config(tmp_path / "cdc.yaml", text)
    rc, out = cli_run(tmp_path / "s", cfg, "--until-caught-up")
    assert rc == 2 and "purged" in out and CDC_PASSWORD not in out


def _purge_to_current(server: Any) -> str:
    server.sql("FLUSH BINARY LOGS", "FLUSH BINARY LOGS")
    current = str(server.sql("SHOW MASTER STATUS")[0][0])
    deadline = time.monotonic() + 20
    while True:  # a binlog is purgeable once InnoDB has checkpointed past it
        server.sql("FLUSH ENGINE LOGS", f"PURGE BINARY LOGS TO '{current}'")
        if server.sql("SHOW BINARY LOGS")[0][0] == current:
            return current
        assert time.monotonic() < deadline, server.sql("SHOW BINARY LOGS")
        time.sleep(0.2)


def test_purged_file_is_fine_while_the_gtid_state_is_reachable(
    mariadb: Any, tmp_path: Path
) -> None:
    """Nothing was written after our last transaction: its binlog file may go, the GTID state
    still says exactly where to resume (no false alarm)."""
    db = "purge2"
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    run_inprocess(tmp_path / "s", text)
    _purge_to_current(mariadb)
    mariadb.sql(f"INSERT INTO {db}.customers (id) VALUES (7)")
    run_inprocess(tmp_path / "s", text)
    assert compare(mariadb, db, tmp_path / "s").ok


# ---- CDC-5 -----------------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("variable", "bad", "good"),
    [
        ("binlog_format", "STATEMENT", "ROW"),
        ("binlog_format", "MIXED", "ROW"),
        ("binlog_row_image", "MINIMAL", "FULL"),
        ("binlog_row_metadata", "MINIMAL", "FULL"),
        ("log_bin_compress", "ON", "OFF"),
    ],
)
def test_refused_settings(mariadb: Any, tmp_path: Path, variable: str, bad: str, good: str) -> None:
    db = "set1"
    make_db(mariadb, db, ("customers", "products", "orders", "accounts"))
    make_store(tmp_path / "s").close()
    mariadb.sql(f"SET GLOBAL {variable}='{bad}'")
    try:
        with pytest.raises(CdcError, match=rf"{variable} is {bad}: set {variable}="):
            run_inprocess(tmp_path / "s", config_text(mariadb, db))
    finally:
        mariadb.sql(f"SET GLOBAL {variable}='{good}'")


def test_refused_without_binlog_and_bad_server_id(mariadb: Any, tmp_path: Path) -> None:
    server = start_server(tmp_path / "nobinlog", log_bin=False)
    try:
        server.sql("CREATE DATABASE nb", "CREATE TABLE nb.customers (id INT PRIMARY KEY)")
        make_store(tmp_path / "s").close()
        text = config_text(server, "nb").replace("  nb.products:\n    entity: products\n", "")
        with pytest.raises(CdcError, match="binary logging is off: start the server with log_bin"):
            run_inprocess(tmp_path / "s", text)
    finally:
        server.stop()
    db = "set2"
    make_db(mariadb, db)
    with pytest.raises(CdcError, match="server's own server_id"):
        run_inprocess(tmp_path / "s", config_text(mariadb, db, server_id=1))


def test_wrong_password_names_its_source_not_its_value(
    mariadb: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    make_db(mariadb, "pw1", ("customers",))
    make_store(tmp_path / "s").close()
    monkeypatch.setenv("EQL_TEST_CDC_PASSWORD", "wrong-Secret-123")
    with pytest.raises(CdcError) as ei:
        run_inprocess(tmp_path / "s", config_text(mariadb, "pw1"))
    msg = str(ei.value)
    assert "Access denied" in msg and "env:EQL_TEST_CDC_PASSWORD" in msg
    assert "wrong-Secret-123" not in msg and CDC_PASSWORD not in msg


@pytest.mark.parametrize(
    ("session", "setting"),
    [
        ("SET SESSION binlog_format='STATEMENT'", "binlog_format"),
        ("SET SESSION binlog_row_image='MINIMAL'", "binlog_row_image"),
        ("SET GLOBAL log_bin_compress=ON", "log_bin_compress"),
    ],
)
def test_setting_changed_mid_stream_stops_at_its_position(
    mariadb: Any, tmp_path: Path, session: str, setting: str
) -> None:
    db = "mid" + setting.split("_")[-1]
    make_db(mariadb, db)
    make_store(tmp_path / "s").close()
    text = config_text(mariadb, db)
    mariadb.sql(f"INSERT INTO {db}.customers (id, full_name) VALUES (1, 'a')")
    run_inprocess(tmp_path / "s", text)
    mariadb.sql(f"INSERT INTO {db}.customers (id, full_name) VALUES (2, 'before')")
    conn = mariadb.connect()
    try:
        with conn.cursor() as cur:
            cur.execute(session)
            cur.execute(
                f"UPDATE {db}.customers SET full_name=REPEAT('x', 90), email=REPEAT('y', 190) "
                "WHERE id=1"
            )
    finally:
        if "GLOBAL" in session:
            mariadb.sql("SET GLOBAL log_bin_compress=OFF")
        conn.close()
    mariadb.sql(f"INSERT INTO {db}.customers (id, full_name) VALUES (3, 'after')")
    with pytest.raises(CdcError, match=rf"{setting}.*|binlog\.\d+:\d+") as ei:
        run_inprocess(tmp_path / "s", text)
    assert setting in str(ei.value) and "binlog." in str(ei.value)
    s = Store.open(tmp_path / "s", read_only=True)
    try:
        assert s.get("customers", 2) is not None  # everything before it was applied
        assert s.get("customers", 3) is None  # nothing after it
        row = s.get("customers", 1)
        assert row is not None and row["name"] == "a"
    finally:
        s.close()


# ---- CDC-6 -----------------------------------------------------------------------------------
def _populate(server: Any, db: str, n: int) -> None:
    server.sql(
        f"INSERT INTO {db}.customers (id, full_name, email, balance, born, updated, profile, vip,"
        " tier, score) SELECT seq, CONCAT('n', seq), CONCAT(seq, '@x.org'), seq / 100, "
        "'2000-01-01' + INTERVAL seq DAY, '2024-01-01' + INTERVAL seq SECOND, '{\"s\": 1}', "
        f"seq % 2, ELT(1 + seq % 3, 'bronze', 'silver', 'gold'), seq * 0.5 FROM {db}.seq_1_to_{n}",
        f"INSERT INTO {db}.products SELECT CONCAT('SKU-', LPAD(seq, 4, '0')), CONCAT('t', seq), "
        f"seq / 10 FROM {db}.seq_0_to_{n // 3}",
        f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) SELECT seq, 'SKU-1',"
        f" seq / 7, seq % 5, '2024-01-01' + INTERVAL seq MINUTE FROM {db}.seq_1_to_{n}",
    )


def test_snapshot_under_concurrent_writes_killed_at_several_points(
    mariadb: Any, tmp_path: Path
) -> None:
    db = "snap1"
    n = 3000
    make_db(mariadb, db)
    _populate(mariadb, db, n)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db, chunk_rows=150))
    points = [
        "after_snapshot_chunk:4",
        "before_snapshot_chunk:6",
        "after_snapshot_position:1",
        "after_snapshot_chunk:9",
        None,
    ]
    kills = 0
    t0 = time.monotonic()
    with BackgroundWriter(mariadb, db, seed=66, pause=0.002, skus=n // 3):
        for point in points:
            if point is None:  # and one kill -9 at a random moment of the snapshot
                p = cli(
                    "run",
                    "--data-dir",
                    str(store_dir),
                    "--config",
                    str(cfg),
                    "--quiet",
                    "--until-caught-up",
                )
                time.sleep(1.6)
                os.kill(p.pid, signal.SIGKILL)
                p.communicate(timeout=30)
                kills += 1
                continue
            rc, out = cli_run(store_dir, cfg, "--until-caught-up", crash=point)
            assert rc == 137, f"{point}: {out}"
            kills += 1
            mariadb.sql("FLUSH BINARY LOGS")  # catch-ups then cross a rotation
        rc, out = cli_run(store_dir, cfg, "--until-caught-up")  # finishes under writes
        assert rc == 0, out
    rc, out = cli_run(store_dir, cfg, "--until-caught-up")
    assert rc == 0, out
    d = compare(mariadb, db, store_dir)
    assert d.ok, d
    s = Store.open(store_dir, read_only=True)
    st = load_state(s, "test")
    s.close()
    assert st is not None and st.phase == "streaming" and st.snapshot_attempts >= 3
    assert st.counter("catchup_rows_deferred") > 0  # the catch-up path really ran
    print(
        f"\nCDC-6: kills={kills} rows compared={d.rows} snapshot rows="
        f"{st.counter('snapshot_rows')} attempts={st.snapshot_attempts} "
        f"snapshot time={st.snapshot_seconds:.1f}s total={time.monotonic() - t0:.1f}s"
    )


def test_snapshot_resume_orders_text_keys_by_their_collation(mariadb: Any, tmp_path: Path) -> None:
    """A snapshot killed inside a table with a text key: the catch-up must decide "already
    copied" in the column's collation (case-insensitive here), not in Python's order."""
    db = "snap2"
    make_db(mariadb, db)
    mariadb.sql(
        f"INSERT INTO {db}.products SELECT CONCAT('SKU-', LPAD(seq, 4, '0')), "
        f"CONCAT('t', seq), seq / 10 FROM {db}.seq_0_to_999"
    )
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db, chunk_rows=100))
    rc, out = cli_run(store_dir, cfg, "--until-caught-up", crash="after_snapshot_chunk:4")
    assert rc == 137, out  # customers (1 chunk), then products up to SKU-0299
    mariadb.sql(
        f"INSERT INTO {db}.products VALUES ('sku-0005-x', 'lower', 1), ('sku-0250-y', 'lower', 2),"
        " ('sku-0900-z', 'lower', 3)",
        f"UPDATE {db}.products SET price = 99 WHERE sku IN ('SKU-0010', 'SKU-0500')",
        f"DELETE FROM {db}.products WHERE sku IN ('SKU-0020', 'SKU-0700')",
    )
    rc, out = cli_run(store_dir, cfg, "--until-caught-up")
    assert rc == 0, out
    d = compare(mariadb, db, store_dir)
    assert d.ok, d
