"""CDC-7 to CDC-9: connectors supervised in the process that holds the store
(`runtime.cdc_supervisor`), in this process and in a real `eql serve --cdc CONFIG`.

With the throwaway MariaDB: a supervised connector replicates inserts, updates and deletes and
reports its status; CDC-7: a lost replication connection and a source that refuses us restart
it with the backoff the policy gives (the clock is the test's: waits return at once and are
recorded), and it resumes from the committed offset with nothing lost or applied twice; CDC-8:
`stop()` mid-stream leaves a whole number of transactions (the transfers' total is intact).

A served store (`eql serve --data-dir D --port 0 --cdc CONFIG` as a subprocess, its URL and local
admin key read from D/server.json; one server of the module's store at a time): what the source
changes while it serves is answered by `POST /v1/query`, `GET /v1/admin/cdc` shows the connector
(state, position, lag, transactions) and `/metrics` counts its transactions; a clean SIGTERM
stops the connector between transactions and a restart resumes from the committed offset; a
config with problems makes `eql serve` exit 2 naming them, before anything starts. CDC-9: the
server killed at a crash point inside a source transaction, restarted with `eql serve --cdc`, is
exactly the source; `eql cdc status`, `run` (`--detach`, and as long as the command) and `stop`
go through it.
"""

from __future__ import annotations

import decimal
import random
import signal
import subprocess
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pymysql
import pytest

from ingest.cdc_state import gtid_covers, load_state
from ingest.cdc_status import status_json
from runtime.cdc_supervisor import (
    AlreadyRunning,
    Backoff,
    Commit,
    InvalidConfig,
    Stopped,
    Supervisor,
    UnknownConnector,
)
from storage import Store
from tests.cdc.cdc_helpers import (
    ACCOUNT_TOTAL,
    DEADLINE,
    EQL,
    REPO,
    BackgroundWriter,
    Serving,
    Workload,
    account_total,
    compare,
    compare_served,
    config_text,
    eql,
    eql_env,
    make_db,
    make_store,
    mysql_error_code,
    serve,
    until,
    write_config,
)
from tests.cdc.conftest import CDC_PASSWORD, free_port

pytestmark = [pytest.mark.mariadb, pytest.mark.usefixtures("cdc_env")]
KILLED = 137


class StepClock:
    """The supervisor's clock in tests: `wait` records the delay, moves `now` by it and returns
    at once (or when `hold` is set, blocks until the connector is stopped); `on_wait(n)` runs
    at the n-th wait, before the restart it delays."""

    def __init__(self, on_wait: Callable[[int], None] | None = None, hold: bool = False) -> None:
        self.t = 1_800_000_000.0
        self.waits: list[float] = []
        self.on_wait = on_wait
        self.hold = hold

    def now(self) -> float:
        return self.t

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        self.waits.append(seconds)
        self.t += seconds
        if self.on_wait is not None:
            self.on_wait(len(self.waits))
        if self.hold:
            stop.wait()
        return stop.is_set()


def source_gtid(server: Any) -> str:
    return str(server.sql("SELECT @@gtid_binlog_pos")[0][0])


def caught_up(server: Any, entry: dict[str, Any] | None) -> bool:
    """The connector's committed position includes every transaction the source has logged."""
    pos = entry.get("position") if entry else None
    return pos is not None and gtid_covers(pos["gtid"], source_gtid(server))


def _seq(gtid: str) -> int:
    """The sequence number of domain 0 in a GTID state (the test server writes only that)."""
    return int(next(p for p in gtid.split(",") if p.startswith("0-")).split("-")[2])


def entry_of(sup: Supervisor, name: str) -> dict[str, Any] | None:
    return next((e for e in sup.status() if e["name"] == name), None)


def wait_caught_up(server: Any, sup: Supervisor, name: str) -> dict[str, Any]:
    until(lambda: caught_up(server, entry_of(sup, name)), f"{name} to catch up")
    entry = entry_of(sup, name)
    assert entry is not None
    return entry


def check_store(server: Any, db: str, store_dir: Path) -> int:
    d = compare(server, db, store_dir)
    assert d.ok, d
    s = Store.open(store_dir, read_only=True)
    try:
        assert account_total(s) == ACCOUNT_TOTAL
    finally:
        s.close()
    return d.rows


class Writable:
    """A new store open for writing; closed once, by the test or at its end."""

    def __init__(self, path: Path) -> None:
        self.path = path
        self.store = make_store(path)
        self._open = True

    def close(self) -> None:
        if self._open:
            self._open = False
            self.store.close()


@pytest.fixture
def writable(tmp_path: Path) -> Iterator[Writable]:
    w = Writable(tmp_path / "s")
    try:
        yield w
    finally:
        w.close()


def test_supervised_connector_replicates_and_reports(
    mariadb: Any, tmp_path: Path, writable: Writable
) -> None:
    store, store_dir = writable.store, writable.path
    db = "sup1"
    make_db(mariadb, db)
    wl = Workload(mariadb, db, seed=61)
    wl.run(60)  # the snapshot copies these
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db, server_id=6101))
    commits: list[Commit] = []
    sup = Supervisor(store, on_commit=commits.append, clock=StepClock())
    assert sup.add(cfg) == "test"
    first = wait_caught_up(mariadb, sup, "test")
    wl.run(80)  # inserts, updates, deletes, key changes, multi-table, rollbacks: streamed
    wl.close()
    entry = wait_caught_up(mariadb, sup, "test")

    assert entry["state"] == "running" and entry["phase"] == "streaming"
    assert entry["config"] == str(cfg)
    assert entry["restarts"] == 0 and entry["failures"] == 0
    assert entry["last_error"] is None and entry["next_retry_at"] is None
    # every source transaction since is counted once (a GTID each; no-op ones are not logged)
    logged = _seq(entry["position"]["gtid"]) - _seq(first["position"]["gtid"])
    assert logged > 40 and entry["transactions"] - first["transactions"] == logged
    assert entry["rows_applied"] > first["rows_applied"]
    assert entry["counters"]["skipped"] == 0
    assert entry["lag_seconds"] is not None and entry["lag_seconds"] >= 0
    assert entry["position"]["file"].startswith("binlog.") and entry["position"]["pos"] > 0
    # what on_commit reported adds up to the counters (the server's metrics are fed so)
    assert sum(c.transactions for c in commits) == entry["transactions"]
    assert {c.connector for c in commits} == {"test"}

    with pytest.raises(AlreadyRunning, match="already running"):
        sup.add(cfg)
    twin = write_config(
        tmp_path / "twin.yaml", config_text(mariadb, db, server_id=6101).replace("test", "twin")
    )
    with pytest.raises(AlreadyRunning, match="server_id 6101"):
        sup.add(twin)
    with pytest.raises(InvalidConfig, match="must be absolute"):
        sup.add("cdc.yaml")
    with pytest.raises(UnknownConnector, match="supervised: test"):
        sup.remove("nope")

    assert sup.stop(timeout=30) == []
    assert [e["state"] for e in sup.status()] == ["stopped"]
    with pytest.raises(Stopped):
        sup.add(twin)
    writable.close()
    check_store(mariadb, db, store_dir)


def _own_user(server: Any, user: str) -> str:
    """A replication user of one test's own, so that its connections can be told apart."""
    server.sql(
        f"CREATE OR REPLACE USER '{user}'@'%' IDENTIFIED BY '{CDC_PASSWORD}'",
        f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'",
    )
    return f"user: {user}"


def _dump_ids_of(server: Any, user: str) -> list[int]:
    rows = server.sql(
        "SELECT ID FROM information_schema.PROCESSLIST "
        f"WHERE USER = '{user}' AND COMMAND LIKE 'Binlog Dump%'"
    )
    return [int(r[0]) for r in rows]


def test_lost_connection_and_refused_source_restart_with_backoff(
    mariadb: Any, tmp_path: Path, writable: Writable
) -> None:
    store, store_dir = writable.store, writable.path
    db, user = "sup2", "cdc_sup2"
    make_db(mariadb, db)
    wl = Workload(mariadb, db, seed=62)
    wl.run(40)
    text = config_text(mariadb, db, server_id=6201).replace("user: cdc", _own_user(mariadb, user))
    cfg = write_config(tmp_path / "cdc.yaml", text)

    def on_wait(n: int) -> None:
        if n == 4:  # the source lets us in again before the 4th restart
            mariadb.sql(f"ALTER USER '{user}'@'%' ACCOUNT UNLOCK")

    clock = StepClock(on_wait)
    sup = Supervisor(store, clock=clock, rng=random.Random(5))
    sup.add(cfg)
    wait_caught_up(mariadb, sup, "test")
    until(lambda: _dump_ids_of(mariadb, user), "the replication connection")
    # the source refuses us from now on, and our replication connection is cut
    mariadb.sql(f"ALTER USER '{user}'@'%' ACCOUNT LOCK")
    for i in _dump_ids_of(mariadb, user):
        try:
            mariadb.sql(f"KILL {i}")
        except pymysql.OperationalError as exc:
            assert mysql_error_code(exc) == 1094  # that connection had ended by itself
    until(lambda: not _dump_ids_of(mariadb, user), "the replication connection to end")
    wl.run(60)  # changes while the connector is down: read after the restarts
    wl.close()
    entry = until(
        lambda: (e := entry_of(sup, "test")) and e["restarts"] == 4 and caught_up(mariadb, e) and e,
        "the restarts and the catch-up",
    )
    # one lost connection, then three refused connects: four waits, each the policy's delay
    # for 1, 2, 3, 4 consecutive failures with the same random numbers
    rng = random.Random(5)
    assert clock.waits == [Backoff().delay(n, rng) for n in (1, 2, 3, 4)]
    for w, base in zip(clock.waits, (1, 2, 4, 8), strict=True):  # doubling, jitter <= 25 %
        assert base <= w <= base * 1.25
    assert entry["state"] == "running" and entry["next_retry_at"] is None
    assert "locked" in entry["last_error"] or "cannot connect" in entry["last_error"]
    assert entry["failures"] == 0  # the run after the last restart made progress
    assert sup.stop(timeout=30) == []
    writable.close()
    rows = check_store(mariadb, db, store_dir)  # nothing lost, nothing applied twice
    waits = ", ".join(f"{w:.2f}" for w in clock.waits)
    print(f"\nCDC-7: restarts=4 backoff waits=[{waits}] s rows compared={rows}")


def test_backoff_policy_caps_and_gives_up(tmp_path: Path, writable: Writable) -> None:
    """A source that is not there: failures until max_failures, each wait within the policy."""
    store = writable.store
    text = config_text(SimpleNamespace(port=free_port()), "nowhere", server_id=6351)
    cfg = write_config(tmp_path / "cdc.yaml", text)
    clock = StepClock()
    sup = Supervisor(store, clock=clock, rng=random.Random(1), max_failures=9)
    sup.add(cfg)
    entry = until(lambda: (e := entry_of(sup, "test")) and e["state"] == "failed" and e, "failed")
    assert entry["failures"] == 9 and entry["restarts"] == 8
    assert "cannot connect" in entry["last_error"]
    assert entry["next_retry_at"] is None
    assert len(clock.waits) == 8
    for n, w in enumerate(clock.waits, start=1):
        base = min(60.0, 2.0 ** (n - 1))
        assert base <= w <= min(60.0, base * 1.25), (n, w)
    assert clock.waits[-2:] == [60.0, 60.0]  # 64 s and 128 s, capped
    assert max(Backoff().delay(n, random.Random(n)) for n in range(1, 40)) == 60.0
    assert sup.remove("test")["state"] == "failed"
    assert entry_of(sup, "test") is None  # forgotten (it never wrote an offset record)
    sup.stop()


def test_stop_mid_stream_leaves_whole_transactions(
    mariadb: Any, tmp_path: Path, writable: Writable
) -> None:
    store, store_dir = writable.store, writable.path
    db = "sup3"
    make_db(mariadb, db)
    Workload(mariadb, db, seed=63).run(30)
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db, server_id=6301))
    sup = Supervisor(store, clock=StepClock())
    sup.add(cfg)
    wait_caught_up(mariadb, sup, "test")
    with BackgroundWriter(mariadb, db, seed=64, pause=0.0):
        start = entry_of(sup, "test")
        assert start is not None
        until(
            lambda: (e := entry_of(sup, "test")) and e["transactions"] > start["transactions"] + 50,
            "transactions streaming",
        )
        t0 = time.monotonic()
        assert sup.stop(timeout=30) == []
        took = time.monotonic() - t0
        stopped = entry_of(sup, "test")
        assert stopped is not None and stopped["state"] == "stopped"
        writable.close()
        # stopped while the source kept writing: the store holds whole transactions only
        s = Store.open(store_dir, read_only=True)
        try:
            assert account_total(s) == ACCOUNT_TOTAL
        finally:
            s.close()
    again = Store.open(store_dir)
    try:
        sup2 = Supervisor(again, clock=StepClock())
        sup2.add(cfg)
        wait_caught_up(mariadb, sup2, "test")
        assert sup2.stop() == []
    finally:
        again.close()
    rows = check_store(mariadb, db, store_dir)
    print(f"\nCDC-8 stop mid-stream: stop took {took:.3f}s, rows compared={rows}")


# ---- a served store: `eql serve --cdc CONFIG` -------------------------------------------------
TERMINATED = 128 + signal.SIGTERM  # how `eql serve` ends after a clean SIGTERM stop


def offset_record(store_dir: Path, name: str = "test") -> dict[str, Any] | None:
    """The connector's offset record in the store, as `eql cdc status --json` shows it."""
    s = Store.open(store_dir, read_only=True)
    try:
        st = load_state(s, name)
        return status_json(st) if st is not None else None
    finally:
        s.close()


@dataclass
class Shop:
    """The module's served store: database `db` (read as the MariaDB user `db`) replicated by
    `eql serve --cdc config`; one server at a time, started when a test needs one and none
    runs (`running`)."""

    db: str
    data_dir: Path
    config: Path
    root: Path
    serving: Serving | None = None
    starts: int = 0
    base: int = 0  # the transaction counter when the server started (its metric counts from it)

    def running(self) -> Serving:
        if self.serving is None or self.serving.proc.poll() is not None:
            record = offset_record(self.data_dir)
            self.base = record["counters"]["transactions"] if record else 0
            self.starts += 1
            log = self.root / f"serve-{self.starts}.log"
            self.serving = serve(self.data_dir, self.config, log=log).listening()
        return self.serving


@pytest.fixture(scope="module")
def shop(mariadb: Any, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Shop]:
    root = tmp_path_factory.mktemp("shop")
    db = "shop"
    make_db(mariadb, db)
    wl = Workload(mariadb, db, seed=71)
    wl.run(40)  # the snapshot copies these
    wl.close()
    make_store(root / "s").close()
    text = config_text(mariadb, db, server_id=7101).replace("user: cdc", _own_user(mariadb, db))
    cfg = write_config(root / "cdc.yaml", text)
    shop = Shop(db, root / "s", cfg, root)
    try:
        yield shop
    finally:
        if shop.serving is not None:
            shop.serving.stop()


def served_caught_up(server: Any, serving: Serving) -> dict[str, Any]:
    entry: dict[str, Any] = until(
        lambda: (e := serving.entry()) and caught_up(server, e) and e, "the served connector"
    )
    return entry


def test_serve_cdc_replicates_changes_made_while_serving(mariadb: Any, shop: Shop) -> None:
    serving = shop.running()
    before = served_caught_up(mariadb, serving)
    key, db = 1_500_001, shop.db
    mariadb.sql(
        f"INSERT INTO {db}.customers (id, full_name, email, tier) VALUES "
        f"({key}, 'Ada', 'ada@example.org', 'gold'), ({key + 1}, 'Bob', 'bob@example.org', NULL)"
    )
    mariadb.sql(f"UPDATE {db}.customers SET full_name = 'Ada L', balance = 12.50 WHERE id = {key}")
    mariadb.sql(f"DELETE FROM {db}.customers WHERE id = {key + 1}")
    text = f"FIND customers WHERE id >= {key} AND id <= {key + 1} RETURN id, name, balance, tier"
    want = [{"id": key, "name": "Ada L", "balance": decimal.Decimal("12.50"), "tier": "gold"}]
    until(lambda: serving.query(text) == want, "the insert, update and delete in a query")
    wl = Workload(mariadb, db, seed=72)
    wl.run(80)  # inserts, updates, deletes, key changes, multi-table, rollbacks
    wl.close()
    entry = served_caught_up(mariadb, serving)
    d = compare_served(mariadb, db, serving)
    assert d.ok, d

    assert (entry["state"], entry["phase"], entry["config"]) == (
        "running",
        "streaming",
        str(shop.config),
    )
    assert entry["restarts"] == 0 and entry["last_error"] is None
    assert entry["position"]["file"].startswith("binlog.") and entry["position"]["pos"] > 0
    assert entry["lag_seconds"] is not None and entry["lag_seconds"] >= 0
    # every source transaction since (a GTID each) counted once: the three above and the workload's
    logged = _seq(entry["position"]["gtid"]) - _seq(before["position"]["gtid"])
    assert logged > 3 + 40 and entry["transactions"] - before["transactions"] == logged
    assert entry["counters"]["skipped"] == 0
    # /metrics: this server's commits, counted from the counter it started with
    counted = entry["transactions"] - shop.base
    until(
        lambda: serving.metric("eql_cdc_transactions_total") == counted,
        f"eql_cdc_transactions_total to reach {counted}",
    )
    lag = serving.metric("eql_cdc_lag_seconds")
    assert lag is not None and lag >= 0
    print(f"\nserve --cdc: {logged} transactions replicated, rows compared={d.rows}")


def test_sigterm_stops_the_connector_and_a_restart_resumes(mariadb: Any, shop: Shop) -> None:
    serving = shop.running()
    served_caught_up(mariadb, serving)
    with BackgroundWriter(mariadb, shop.db, seed=73, pause=0.01):
        start = serving.entry()
        assert start is not None
        until(
            lambda: (e := serving.entry()) and e["transactions"] > start["transactions"] + 30,
            "transactions streaming",
        )
        assert serving.stop() == TERMINATED, serving.log_text()
        # stopped while the source kept writing: the store holds whole transactions only
        assert not (shop.data_dir / "server.json").exists()
        s = Store.open(shop.data_dir, read_only=True)
        try:
            assert account_total(s) == ACCOUNT_TOTAL
        finally:
            s.close()
    stopped = offset_record(shop.data_dir)
    assert stopped is not None
    until(lambda: not _dump_ids_of(mariadb, shop.db), "the replication connection to close")
    wl = Workload(mariadb, shop.db, seed=74)
    wl.run(20)  # more while no server runs: what the restart resumes with
    wl.close()
    assert not gtid_covers(stopped["position"]["gtid"], source_gtid(mariadb))

    serving = shop.running()
    entry = served_caught_up(mariadb, serving)
    # resumed from the committed offset: each transaction after it counted once, no new snapshot
    resumed = _seq(entry["position"]["gtid"]) - _seq(stopped["position"]["gtid"])
    assert resumed > 0
    assert entry["transactions"] - stopped["counters"]["transactions"] == resumed
    assert entry["counters"]["snapshot_rows"] == stopped["counters"]["snapshot_rows"]
    assert entry["restarts"] == 0 and entry["last_error"] is None
    until(
        lambda: serving.metric("eql_cdc_transactions_total") == resumed,
        "the restarted server's metric to count the resumed transactions",
    )
    d = compare_served(mariadb, shop.db, serving)  # nothing lost, nothing applied twice
    assert d.ok, d
    print(f"\nserve --cdc SIGTERM: resumed {resumed} transactions, rows compared={d.rows}")


def test_serve_with_a_bad_config_exits_2_naming_the_problems(tmp_path: Path) -> None:
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    text = config_text(SimpleNamespace(port=free_port()), "shop", server_id=7201)
    bad = write_config(tmp_path / "bad.yml", text.replace("entity: products", "entity: goods"))
    missing = tmp_path / "missing.yml"
    good = write_config(tmp_path / "good.yml", text)
    twin = write_config(tmp_path / "twin.yml", text.replace("server_id: 7201", "server_id: 7202"))
    other = write_config(tmp_path / "other.yml", text.replace("name: test", "name: other"))
    cdc = [arg for path in (bad, missing, good, good, twin, other) for arg in ("--cdc", str(path))]
    done = eql("serve", "--data-dir", str(store_dir), "--port", "0", *cdc)
    assert done.returncode == 2, done.stderr
    said = done.stderr
    assert "bad --cdc config" in said
    line = text.splitlines().index("    entity: products") + 1
    assert f"{bad}:{line}: tables.shop.products.entity: unknown entity `goods`" in said, said
    assert f"{missing}: cannot read the config file: No such file or directory" in said
    assert f"{good}: given twice" in said
    assert f"{twin}: connector test is also the name in {good}" in said
    assert f"{other}: source.server_id 7201 is also the server_id in {good}" in said
    assert "Uvicorn running" not in said and "Traceback" not in said
    # it never started: no server.json, no local key minted, the store not left locked
    assert not (store_dir / "server.json").exists()
    keys = store_dir / "keys.json"
    assert not keys.exists() or "local-cli" not in keys.read_text()
    Store.open(store_dir).close()


def test_served_connector_killed_mid_transaction_and_the_cli(mariadb: Any, tmp_path: Path) -> None:
    db = "sup4"
    make_db(mariadb, db)
    Workload(mariadb, db, seed=65).run(30)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    text = config_text(mariadb, db, server_id=6401).replace("user: cdc", _own_user(mariadb, db))
    cfg = write_config(tmp_path / "cdc.yaml", text)
    killed = serve(store_dir, cfg, log=tmp_path / "killed.log", crash="mid_transaction:40")
    with BackgroundWriter(mariadb, db, seed=66, pause=0.001):
        rc = killed.wait_exit(timeout=120)
    assert rc == KILLED, killed.log_text()

    # restarted with `eql serve --cdc` (what the killed one left is cleared): it resumes
    serving = serve(store_dir, cfg, log=tmp_path / "serve.log").listening()
    try:
        served_caught_up(mariadb, serving)
        d = compare_served(mariadb, db, serving)  # after the kill: nothing lost, nothing twice
        assert d.ok, d
        dd = ("--data-dir", str(store_dir))
        done = eql("cdc", "status", *dd)
        assert done.returncode == 0, done.stderr
        assert "connector test: running (streaming)" in done.stdout
        assert f"config         {cfg}" in done.stdout
        done = eql("cdc", "run", *dd, "--config", str(cfg))
        assert done.returncode == 2 and "already running" in done.stderr, done.stderr
        done = eql("cdc", "stop", *dd, "test")
        assert done.returncode == 0 and "cdc test: stopped at binlog." in done.stdout, done
        assert serving.entry()["state"] == "stopped"  # type: ignore[index]
        Workload(mariadb, db, seed=67).run(20)  # while no connector runs
        done = eql("cdc", "run", *dd, "--config", str(cfg), "--detach")
        assert done.returncode == 0 and "running in the server" in done.stdout, done
        served_caught_up(mariadb, serving)
        done = eql("cdc", "stop", *dd, "test")
        assert done.returncode == 0, done.stderr
        # `eql cdc run` without --detach: the connector runs as long as the command
        run = subprocess.Popen(
            [*EQL, "cdc", "run", *dd, "--config", str(cfg)],
            cwd=REPO,
            env=eql_env(),
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        until(
            lambda: (e := serving.entry()) and e["state"] == "running" and e["config"] == str(cfg),
            "the connector of the command",
        )
        run.send_signal(signal.SIGINT)
        out_b, err_b = run.communicate(timeout=DEADLINE)
        assert run.returncode == 0, err_b.decode()
        assert "cdc test: stopped after" in out_b.decode()
        entry = serving.entry()
        assert entry is not None and entry["state"] == "stopped" and entry["config"] is None
    finally:
        rc = serving.stop()
    assert rc == TERMINATED, serving.log_text()
    assert not (store_dir / "server.json").exists()
    rows = check_store(mariadb, db, store_dir)
    until(lambda: not _dump_ids_of(mariadb, db), "the replication connections to close")
    print(f"\nCDC-9 served kill -9 mid-transaction: rows compared={rows}")
