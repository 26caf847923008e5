"""CDC-7 to CDC-9: connectors supervised in the process that holds the store
(`runtime.cdc_supervisor`).

With the throwaway MariaDB: a supervised connector replicates inserts, updates and deletes and
reports its status; CDC-7: a lost replication connection and a source that refuses us restart
it with the backoff the policy gives (the clock is the test's: waits return at once and are
recorded), and it resumes from the committed offset with nothing lost or applied twice; CDC-8:
`stop()` mid-stream leaves a whole number of transactions (the transfers' total is intact);
CDC-9: a process serving the store with a supervised connector, killed at a crash point inside a
source transaction, restarts (through `eql cdc run --detach`, the CLI against a served store) to
exactly the source.

Run as a script (`python tests/cdc/test_cdc_supervised.py serve DATA PORT [CONFIG...]`), this
module is that serving process: the app on a real uvicorn, a Supervisor at `state.cdc` (the
wiring `eql serve --cdc` will do) and `DATA/server.json` for the CLI, until SIGTERM.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import httpx
import pymysql
import pytest

from eql.cli.served import find_server
from ingest.cdc_state import gtid_covers
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
    REPO,
    BackgroundWriter,
    Workload,
    account_total,
    compare,
    config_text,
    make_db,
    make_store,
    mysql_error_code,
    processlist_dump_ids,
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


def until(cond: Callable[[], Any], what: str, timeout: float = 60.0) -> Any:
    """Poll `cond` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


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
    mariadb.sql(
        f"CREATE OR REPLACE USER '{user}'@'%' IDENTIFIED BY '{CDC_PASSWORD}'",
        f"GRANT SELECT, RELOAD, REPLICATION SLAVE, BINLOG MONITOR ON *.* TO '{user}'@'%'",
    )
    wl = Workload(mariadb, db, seed=62)
    wl.run(40)
    text = config_text(mariadb, db, server_id=6201).replace("user: cdc", f"user: {user}")
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


# ---- a served store: the serving process, killed mid-transaction; the CLI through it --------
def _env(crash: str | None = None) -> dict[str, str]:
    env = dict(os.environ)
    env.pop("EQL_CDC_CRASH_AT", None)
    if crash:
        env["EQL_CDC_CRASH_AT"] = crash
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return env


def _serving(store_dir: Path, *configs: Path, crash: str | None = None) -> subprocess.Popen[bytes]:
    args = [sys.executable, __file__, "serve", str(store_dir), str(free_port())]
    return subprocess.Popen(
        [*args, *map(str, configs)],
        cwd=REPO,
        env=_env(crash),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )


def _eql(*args: str, **kw: Any) -> subprocess.Popen[bytes]:
    return subprocess.Popen(
        [sys.executable, "-m", "eql.cli.cdc", *args],
        cwd=REPO,
        env=_env(),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def _eql_done(*args: str) -> tuple[int, str]:
    """`eql cdc ...` in this process (the commands that need no signal)."""
    from typer.testing import CliRunner

    from eql.cli.cdc import cdc_app

    r = CliRunner().invoke(cdc_app, list(args))
    return r.exit_code, r.output


def _connectors(store_dir: Path) -> list[dict[str, Any]]:
    from eql.cli.served import client

    served = find_server(store_dir)
    if served is None:
        return []
    with client(served, read_timeout=10) as http:
        try:
            return list(http.get("/v1/admin/cdc").raise_for_status().json()["connectors"])
        except httpx.HTTPError:
            return []


def _served_entry(store_dir: Path, name: str) -> dict[str, Any] | None:
    return next((e for e in _connectors(store_dir) if e["name"] == name), None)


def test_served_connector_killed_mid_transaction_and_the_cli(mariadb: Any, tmp_path: Path) -> None:
    db = "sup4"
    make_db(mariadb, db)
    Workload(mariadb, db, seed=65).run(30)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db, server_id=6401))
    p = _serving(store_dir, cfg, crash="mid_transaction:40")
    with BackgroundWriter(mariadb, db, seed=66, pause=0.001):
        try:
            rc = p.wait(timeout=120)
        finally:
            if p.poll() is None:
                p.kill()
    assert rc == KILLED, p.stderr.read().decode(errors="replace") if p.stderr else rc

    p = _serving(store_dir)  # restarted, with no connector: the CLI starts it
    try:
        until(lambda: find_server(store_dir) is not None, "the server")
        rc, out = _eql_done("run", "--data-dir", str(store_dir), "--config", str(cfg), "--detach")
        assert rc == 0, out
        assert "running in the server" in out
        until(lambda: caught_up(mariadb, _served_entry(store_dir, "test")), "the catch-up")
        rc, out = _eql_done("status", "--data-dir", str(store_dir))
        assert rc == 0, out
        assert "connector test: running (streaming)" in out and f"config         {cfg}" in out
        rc, out = _eql_done("run", "--data-dir", str(store_dir), "--config", str(cfg))
        assert rc == 2 and "already running" in out, out
        rc, out = _eql_done("stop", "--data-dir", str(store_dir), "test")
        assert rc == 0 and "cdc test: stopped at binlog." in out, out
        # `eql cdc run` without --detach: the connector runs as long as the command
        run = _eql("run", "--data-dir", str(store_dir), "--config", str(cfg))
        until(
            lambda: (e := _served_entry(store_dir, "test")) and e["config"] == str(cfg),
            "the connector of the command",
        )
        run.send_signal(signal.SIGINT)
        out_b, err_b = run.communicate(timeout=60)
        assert run.returncode == 0, err_b.decode()
        assert "cdc test: stopped after" in out_b.decode()
        entry = _served_entry(store_dir, "test")
        assert entry is not None and entry["state"] == "stopped" and entry["config"] is None
    finally:
        p.send_signal(signal.SIGTERM)
        rc = p.wait(timeout=60)
    assert rc == 0, p.stderr.read().decode(errors="replace") if p.stderr else rc
    assert not (store_dir / "server.json").exists()
    rows = check_store(mariadb, db, store_dir)  # after the kill: nothing lost, nothing twice
    until(lambda: not processlist_dump_ids(mariadb), "the replication connections to close")
    print(f"\nCDC-9 served kill -9 mid-transaction: rows compared={rows}")


def _serve(data_dir: str, port: str, *configs: str) -> None:
    """The serving process: the app on uvicorn, a Supervisor at state.cdc, server.json."""
    import uvicorn

    from eql.cli import served
    from runtime import Session
    from server.app import create_app
    from server.protocol import config as serving_config
    from server.settings import Settings

    data = Path(data_dir)
    settings = Settings(data_dir=data, rate_query=0, rate_lookup=0)
    served.clear_stale(data, settings.keys_path)  # what a killed server left
    key = served.mint_key(settings.keys_path)
    session = Session.open(data, settings=settings.engine())
    sup = Supervisor(session)
    app = create_app(settings, session=session)
    server = uvicorn.Server(
        serving_config(app, settings, host="127.0.0.1", port=int(port), log_level="warning")
    )
    thread = threading.Thread(target=server.run, daemon=True)
    thread.start()
    until(lambda: server.started, "uvicorn", timeout=60)
    app.state.eql.cdc = sup
    for c in configs:
        sup.add(c)
    served.announce(data, "127.0.0.1", int(port), key)
    done = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: done.set())
    done.wait()
    late = sup.stop()
    server.should_exit = True
    thread.join(30)
    served.withdraw(data, settings.keys_path, key)
    session.close()
    sys.exit(1 if late else 0)


if __name__ == "__main__" and sys.argv[1:2] == ["serve"]:
    _serve(*sys.argv[2:])
