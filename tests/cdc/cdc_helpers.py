"""Shared pieces of the CDC tests: the test schema, source tables, configs, a deterministic
workload, running the connector (in-process or as a killable subprocess) and the oracle that
compares the store with the source tables (lost, duplicated, wrong values); a served store
(`eql serve --cdc` as a subprocess, `Serving`) and the same oracle through its queries."""

from __future__ import annotations

import datetime as dt
import decimal
import json
import os
import random
import signal
import subprocess
import sys
import threading
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx
import pymysql

from ingest.cdc_config import CdcConfig, parse_config
from ingest.cdc_runner import RunOptions, RunReport, run
from storage import Store
from tests.cdc.conftest import CDC_PASSWORD

REPO = Path(__file__).resolve().parents[2]

SCHEMA = """
version: 1
entities:
  customers:
    key: {name: id, type: int}
    attributes:
      name: string
      email: string
      balance: {type: decimal, precision: 12, scale: 2}
      born: date
      updated: timestamp
      profile: string
      vip: bool
      tier: {type: enum, values: [bronze, silver, gold]}
      score: float
  products:
    key: {name: sku, type: string}
    attributes:
      title: string
      price: {type: decimal, precision: 10, scale: 2}
  accounts:
    key: {name: id, type: int}
    attributes:
      balance: int
events:
  purchase:
    time: ts
    references:
      customer: {entity: customers, column: customer_id}
      product: {entity: products, column: sku}
    fields:
      order_id: int
      amount: {type: decimal, precision: 12, scale: 2, required: true}
      qty: int
"""

TABLES = {
    "customers": """CREATE TABLE {db}.customers (
        id INT PRIMARY KEY, full_name VARCHAR(100), email VARCHAR(200), balance DECIMAL(12,2),
        born DATE, updated DATETIME(6), profile JSON, vip TINYINT(1),
        tier ENUM('bronze','silver','gold'), score DOUBLE) ENGINE=InnoDB""",
    "products": """CREATE TABLE {db}.products (
        sku VARCHAR(32) PRIMARY KEY, title VARCHAR(200), price DECIMAL(10,2)) ENGINE=InnoDB""",
    "orders": """CREATE TABLE {db}.orders (
        order_id BIGINT AUTO_INCREMENT PRIMARY KEY, customer_id INT, sku VARCHAR(32),
        amount DECIMAL(12,2) NOT NULL, qty INT, created_at DATETIME(6) NOT NULL) ENGINE=InnoDB""",
    "accounts": """CREATE TABLE {db}.accounts (
        id INT PRIMARY KEY, balance BIGINT NOT NULL) ENGINE=InnoDB""",
}
ACCOUNTS, ACCOUNT_TOTAL = 20, 20 * 1000


def config_text(
    server: Any,
    db: str,
    *,
    server_id: int | None = None,
    chunk_rows: int = 5000,
    orders: str = "on_update: error\n    on_delete: ignore",
    extra: str = "",
) -> str:
    sid = server_id or random.randint(1000, 2**31)
    return f"""
name: test
source:
  host: 127.0.0.1
  port: {server.port}
  user: cdc
  password_env: EQL_TEST_CDC_PASSWORD
  server_id: {sid}
snapshot:
  chunk_rows: {chunk_rows}
tables:
  {db}.customers:
    entity: customers
    columns: {{full_name: name}}
  {db}.products:
    entity: products
  {db}.accounts:
    entity: accounts
  {db}.orders:
    events: purchase
    columns: {{created_at: ts}}
    {orders}
{extra}"""


def make_db(server: Any, db: str, tables: tuple[str, ...] = tuple(TABLES)) -> None:
    server.sql(
        f"DROP DATABASE IF EXISTS {db}",
        f"CREATE DATABASE {db}",
        *(TABLES[t].format(db=db) for t in tables),
    )
    if "accounts" in tables:
        values = ", ".join(f"({i}, 1000)" for i in range(1, ACCOUNTS + 1))
        server.sql(f"INSERT INTO {db}.accounts VALUES {values}")


def make_store(path: Path) -> Store:
    return Store.create(path, SCHEMA, "cdc-test-schema.yaml")


def load(store: Store, text: str, file: str = "<config>") -> CdcConfig:
    return parse_config(text, store.schema, file)


def run_inprocess(
    store_dir: Path,
    text: str,
    *,
    until: bool = True,
    max_seconds: float | None = 60,
    stop: threading.Event | None = None,
) -> RunReport:
    store = Store.open(store_dir)
    try:
        return run(store, load(store, text), RunOptions(until, max_seconds), stop=stop)
    finally:
        store.close()


def write_config(path: Path, text: str) -> Path:
    path.write_text(text, encoding="utf-8")
    return path


def cli(
    *args: str, crash: str | None = None, env_extra: dict[str, str] | None = None, **kw: Any
) -> subprocess.Popen[bytes]:
    """`eql cdc ...` in a subprocess (killable); EQL_CDC_CRASH_AT set from `crash`."""
    env = dict(os.environ)
    env.pop("EQL_CDC_CRASH_AT", None)
    env.update(env_extra or {})
    if crash:
        env["EQL_CDC_CRASH_AT"] = crash
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    return subprocess.Popen(
        [sys.executable, "-m", "eql.cli.cdc", *args],
        cwd=REPO,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        **kw,
    )


def cli_run(
    store_dir: Path,
    cfg: Path,
    *extra: str,
    crash: str | None = None,
    timeout: float = 120,
    env_extra: dict[str, str] | None = None,
) -> tuple[int, str]:
    p = cli(
        "run",
        "--data-dir",
        str(store_dir),
        "--config",
        str(cfg),
        "--quiet",
        *extra,
        crash=crash,
        env_extra=env_extra,
    )
    out, err = p.communicate(timeout=timeout)
    return p.returncode, (out + err).decode(errors="replace")


# ---- the oracle ------------------------------------------------------------------------------
def _utc(v: Any) -> Any:
    if isinstance(v, dt.datetime) and v.tzinfo is None:
        return v.replace(tzinfo=dt.UTC)
    return v


@dataclass
class Diff:
    rows: int = 0
    lost: list[Any] = field(default_factory=list)
    extra: list[Any] = field(default_factory=list)
    duplicated: list[Any] = field(default_factory=list)
    wrong: list[tuple[Any, str, Any, Any]] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.lost or self.extra or self.duplicated or self.wrong)

    def __str__(self) -> str:
        return (
            f"rows={self.rows} lost={len(self.lost)} extra={len(self.extra)} "
            f"duplicated={len(self.duplicated)} wrong={len(self.wrong)} "
            f"first: lost={self.lost[:5]} extra={self.extra[:5]} "
            f"dup={self.duplicated[:5]} wrong={self.wrong[:3]}"
        )


ENTITY_SQL = {
    "customers": (
        "SELECT id, full_name, email, balance, born, updated, profile, vip, tier, score "
        "FROM {db}.customers",
        ("id", "name", "email", "balance", "born", "updated", "profile", "vip", "tier", "score"),
    ),
    "products": ("SELECT sku, title, price FROM {db}.products", ("sku", "title", "price")),
    "accounts": ("SELECT id, balance FROM {db}.accounts", ("id", "balance")),
}


def _norm(attr: str, v: Any) -> Any:
    if attr == "vip" and v is not None:
        return bool(v)
    if isinstance(v, float):
        return round(v, 9)
    return _utc(v)


def compare(
    server: Any,
    db: str,
    store_dir: Path,
    *,
    entities: tuple[str, ...] = ("customers", "products", "accounts"),
    orders: bool = True,
) -> Diff:
    """Store vs source: every entity row equal, every order exactly once as a purchase."""
    d = Diff()
    store = Store.open(store_dir, read_only=True)
    try:
        for ent in entities:
            sql, attrs = ENTITY_SQL[ent]
            source = {r[0]: r for r in server.sql(sql.format(db=db))}
            table = store.entity_table(ent)
            stored = {row[attrs[0]]: row for row in table.select(list(attrs)).to_pylist()}
            d.rows += len(source)
            d.lost += [(ent, k) for k in source if k not in stored]
            d.extra += [(ent, k) for k in stored if k not in source]
            for k, src in source.items():
                got = stored.get(k)
                if got is None:
                    continue
                for i, a in enumerate(attrs):
                    sv, gv = _norm(a, src[i]), _norm(a, got[a])
                    if isinstance(sv, decimal.Decimal) and gv is not None:
                        gv = decimal.Decimal(gv)
                    if sv != gv:
                        d.wrong.append((k, a, sv, gv))
        if orders:
            src_ids = Counter(r[0] for r in server.sql(f"SELECT order_id FROM {db}.orders"))
            ids = list(_purchase_ids(store))
            got = Counter(ids)
            d.rows += sum(src_ids.values())
            d.lost += [("order", k) for k in src_ids if k not in got]
            d.duplicated += [("order", k) for k, n in got.items() if n > 1]
            d.extra += [("order", k) for k in got if k not in src_ids]
    finally:
        store.close()
    return d


def _purchase_ids(store: Store) -> list[int]:
    import pyarrow.parquet as pq

    ids: list[int] = []
    for f in store.event_files("purchase"):
        ids += pq.read_table(f, columns=["order_id"]).column(0).to_pylist()
    ids += store.tail_table("purchase").column("order_id").to_pylist()
    return ids


def account_total(store: Store) -> int:
    t = store.entity_table("accounts")
    return int(sum(v or 0 for v in t.column("balance").to_pylist()))


# ---- workload --------------------------------------------------------------------------------
class Workload:
    """Deterministic random transactions on one database: inserts, updates, deletes, multi-row
    and multi-table transactions, key changes, rollbacks, NULLs, transfers between accounts."""

    def __init__(self, server: Any, db: str, seed: int = 1, skus: int = 60) -> None:
        self.server = server
        self.db = db
        self.rng = random.Random(seed)
        self.conn = server.connect(autocommit=False)
        with self.conn.cursor() as cur:
            cur.execute(f"SELECT COALESCE(MAX(id), 0) + 1 FROM {db}.customers WHERE id < 1000000")
            self.next_id = int(cur.fetchone()[0])
            self.conn.commit()
        self.moved = 0
        self.skus = [f"SKU-{i:04d}" for i in range(skus)]
        self.txns = 0

    def close(self) -> None:
        self.conn.close()

    def _customer(self, i: int) -> tuple[Any, ...]:
        r = self.rng
        nul = r.random() < 0.15
        return (
            i,
            None if nul else f"name {i} é{r.randint(0, 99)}",
            f"c{i}@example.org",
            None if nul else decimal.Decimal(r.randint(-(10**6), 10**8)) / 100,
            None if nul else dt.date(1950 + r.randint(0, 60), r.randint(1, 12), r.randint(1, 28)),
            None
            if nul
            else dt.datetime(
                2024,
                r.randint(1, 12),
                r.randint(1, 28),
                r.randint(0, 23),
                r.randint(0, 59),
                r.randint(0, 59),
                r.randint(0, 999999),
            ),
            None if nul else f'{{"k": {r.randint(0, 9)}, "tags": ["a", "b"], "s": "x\\"y"}}',
            None if nul else r.randint(0, 1),
            None if nul else r.choice(["bronze", "silver", "gold"]),
            None if nul else r.random() * 1000,
        )

    def _step(self) -> None:
        """One source transaction (or a rolled-back one)."""
        r, db = self.rng, self.db
        cur = self.conn.cursor()
        kind = r.random()
        ins = (
            f"INSERT INTO {db}.customers (id, full_name, email, balance, born, updated, profile, "
            "vip, tier, score) VALUES (%s,%s,%s,%s,%s,%s,%s,%s,%s,%s)"
        )
        if kind < 0.30:  # multi-row insert
            rows = []
            for _ in range(r.randint(1, 6)):
                rows.append(self._customer(self.next_id))
                self.next_id += 1
            cur.executemany(ins, rows)
        elif kind < 0.45:  # updates of several rows
            for _ in range(r.randint(1, 4)):
                i = r.randint(1, max(1, self.next_id))
                cur.execute(
                    f"UPDATE {db}.customers SET email=%s, balance=%s, vip=%s WHERE id=%s",
                    (
                        f"u{r.randint(0, 999)}@x.org",
                        decimal.Decimal(r.randint(0, 9999)) / 4,
                        r.randint(0, 1),
                        i,
                    ),
                )
        elif kind < 0.52:  # deletes
            cur.execute(
                f"DELETE FROM {db}.customers WHERE id IN (%s, %s)",
                (r.randint(1, self.next_id), r.randint(1, self.next_id)),
            )
        elif kind < 0.56:  # key change
            i = r.randint(1, self.next_id)
            self.moved += 1
            new = 2_000_000 + self.rng.randint(0, 10**6) * 100 + self.moved % 100
            cur.execute(f"UPDATE {db}.customers SET id=%s WHERE id=%s", (new, i))
        elif kind < 0.60:  # insert and delete of the same key in one transaction
            c = self._customer(self.next_id)
            self.next_id += 1
            cur.execute(ins, c)
            cur.execute(f"UPDATE {db}.customers SET full_name='tmp' WHERE id=%s", (c[0],))
            cur.execute(f"DELETE FROM {db}.customers WHERE id=%s", (c[0],))
        elif kind < 0.70:  # products upsert
            sku = r.choice(self.skus)
            cur.execute(
                f"INSERT INTO {db}.products VALUES (%s,%s,%s) ON DUPLICATE KEY UPDATE "
                "title=VALUES(title), price=VALUES(price)",
                (sku, f"title {r.randint(0, 99)}", decimal.Decimal(r.randint(1, 99999)) / 100),
            )
        elif kind < 0.75:
            cur.execute(f"DELETE FROM {db}.products WHERE sku=%s", (r.choice(self.skus),))
        elif kind < 0.88:  # multi-table: orders + customer balance
            cid = r.randint(1, self.next_id)
            for _ in range(r.randint(1, 3)):
                cur.execute(
                    f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) "
                    "VALUES (%s,%s,%s,%s,%s)",
                    (
                        cid,
                        r.choice(self.skus),
                        decimal.Decimal(r.randint(1, 50000)) / 100,
                        r.randint(1, 5),
                        dt.datetime(2024, 5, 1, 12, 0, r.randint(0, 59)),
                    ),
                )
            cur.execute(
                f"UPDATE {db}.customers SET balance=COALESCE(balance,0)-1 WHERE id=%s", (cid,)
            )
        elif kind < 0.96:  # transfer: the account total never changes
            a, b = r.sample(range(1, ACCOUNTS + 1), 2)
            x = r.randint(1, 50)
            cur.execute(f"UPDATE {db}.accounts SET balance=balance-%s WHERE id=%s", (x, a))
            cur.execute(f"UPDATE {db}.accounts SET balance=balance+%s WHERE id=%s", (x, b))
        else:  # rolled back: must leave no trace
            cur.execute(ins, self._customer(5_000_000 + r.randint(0, 99_999)))
            cur.execute(
                f"INSERT INTO {db}.orders (customer_id, sku, amount, qty, created_at) "
                "VALUES (1,'SKU-0000',1.00,1,'2024-01-01')"
            )
            self.conn.rollback()
            cur.close()
            return
        self.conn.commit()
        cur.close()
        self.txns += 1

    def run(self, n: int) -> None:
        for _ in range(n):
            self.step()

    def step(self) -> None:
        try:
            self._step()
        except pymysql.IntegrityError:  # a random key collided; the source is unchanged
            self.conn.rollback()


class BackgroundWriter:
    """A Workload in a thread until stopped."""

    def __init__(
        self, server: Any, db: str, seed: int, pause: float = 0.002, skus: int = 60
    ) -> None:
        self.wl = Workload(server, db, seed, skus)
        self.halt = threading.Event()
        self.pause = pause
        self.error: BaseException | None = None
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def _loop(self) -> None:
        try:
            while not self.halt.is_set():
                self.wl.step()
                if self.pause:
                    self.halt.wait(self.pause)
        except BaseException as exc:
            self.error = exc

    def __enter__(self) -> BackgroundWriter:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.halt.set()
        self.thread.join(timeout=30)
        self.wl.close()
        if self.error is not None:
            raise self.error


def processlist_dump_ids(server: Any) -> list[int]:
    rows = server.sql(
        "SELECT ID FROM information_schema.PROCESSLIST WHERE COMMAND LIKE 'Binlog Dump%'"
    )
    return [int(r[0]) for r in rows]


def mysql_error_code(exc: BaseException) -> int:
    return int(exc.args[0]) if isinstance(exc, pymysql.MySQLError) and exc.args else 0


# ---- a served store: `eql serve --cdc` in a subprocess ----------------------------------------
EQL = (sys.executable, "-m", "eql.cli.main")
DEADLINE = 60.0  # seconds any one wait may take at most


def until(cond: Callable[[], Any], what: str, timeout: float = DEADLINE) -> Any:
    """Poll `cond` until it is truthy; fail naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while True:
        got = cond()
        if got:
            return got
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.02)


def eql_env(crash: str | None = None) -> dict[str, str]:
    """An `eql` subprocess's environment: the CDC password its configs name, wide output, and
    the crash point `crash` (ingest/cdc_faults.py) or none."""
    env = {k: v for k, v in os.environ.items() if k != "EQL_CDC_CRASH_AT"}
    env.update(EQL_TEST_CDC_PASSWORD=CDC_PASSWORD, COLUMNS="200")
    env["PYTHONPATH"] = str(REPO) + os.pathsep + env.get("PYTHONPATH", "")
    if crash:
        env["EQL_CDC_CRASH_AT"] = crash
    return env


def eql(*args: str) -> subprocess.CompletedProcess[str]:
    """`eql ARGS` run to its end: exit code, stdout, stderr."""
    cmd = [*EQL, *args]
    return subprocess.run(
        cmd, cwd=REPO, env=eql_env(), capture_output=True, text=True, timeout=DEADLINE
    )


def _json_value(kind: str, v: Any) -> Any:
    """A value of a `/v1/query` JSON row as Python, by the column's type."""
    if v is None:
        return None
    if kind.startswith("decimal"):
        return decimal.Decimal(v)
    if kind == "date":
        return dt.date.fromisoformat(v)
    if kind == "timestamp":
        return dt.datetime.fromisoformat(v)
    return v


@dataclass
class Serving:
    """An `eql serve` process of `data_dir` (stderr in `log`); `record`: its server.json, once
    it listens (`listening()`): the URL and the local admin key the requests use."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    log: Path
    record: dict[str, Any] = field(default_factory=dict)

    def listening(self) -> Serving:
        def announced() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"eql serve exited {self.proc.returncode}: {self.log_text()}")
            try:
                rec = json.loads((self.data_dir / "server.json").read_text(encoding="utf-8"))
            except (FileNotFoundError, json.JSONDecodeError):
                return None
            return rec if rec["pid"] == self.proc.pid else None

        self.record = until(announced, "server.json")
        return self

    def log_text(self) -> str:
        return self.log.read_text(encoding="utf-8", errors="replace")

    def request(self, method: str, path: str, **kw: Any) -> httpx.Response:
        headers = {"Authorization": f"Bearer {self.record['key']}"}
        url = self.record["url"] + path
        return httpx.request(method, url, headers=headers, timeout=DEADLINE, trust_env=False, **kw)

    def query(self, text: str) -> list[dict[str, Any]]:
        """The rows `POST /v1/query` answers for `text`, values as Python (Decimal, date, ...)."""
        r = self.request("POST", "/v1/query", json={"query": text, "limit": 100_000})
        assert r.status_code == 200, r.text
        body = r.json()
        assert not body["truncated"]
        kinds = {c["name"]: c["type"] for c in body["columns"]}
        return [{k: _json_value(kinds[k], v) for k, v in row.items()} for row in body["rows"]]

    def entry(self, name: str = "test") -> dict[str, Any] | None:
        """The connector `name` as `GET /v1/admin/cdc` lists it."""
        r = self.request("GET", "/v1/admin/cdc")
        assert r.status_code == 200, r.text
        return next((e for e in r.json()["connectors"] if e["name"] == name), None)

    def metric(self, family: str, source: str = "test") -> float | None:
        """The sample of `family{source=...}` in `GET /metrics`; None when it has none."""
        r = self.request("GET", "/metrics")
        assert r.status_code == 200, r.text
        head = f'{family}{{source="{source}"}} '
        found = [float(x[len(head) :]) for x in r.text.splitlines() if x.startswith(head)]
        return found[0] if found else None

    def wait_exit(self, timeout: float = DEADLINE) -> int:
        """The exit status, within `timeout` (else the process is killed and the wait fails)."""
        try:
            return self.proc.wait(timeout=timeout)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait(timeout=DEADLINE)

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.wait_exit()


def serve(data_dir: Path, *configs: Path, log: Path, crash: str | None = None) -> Serving:
    """`eql serve --data-dir DATA --port 0 --cdc CONFIG...` started (see `Serving.listening`)."""
    args = [*EQL, "serve", "--data-dir", str(data_dir), "--port", "0"]
    for c in configs:
        args += ["--cdc", str(c)]
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            args, cwd=REPO, env=eql_env(crash), stdout=subprocess.DEVNULL, stderr=fh
        )
    return Serving(proc, data_dir, log)


def compare_served(server: Any, db: str, serving: Serving) -> Diff:
    """The source tables vs what the server answers to queries: every entity row equal, every
    order exactly once as a purchase."""
    d = Diff()
    for ent, (sql, attrs) in ENTITY_SQL.items():
        source = {r[0]: r for r in server.sql(sql.format(db=db))}
        rows = serving.query(f"FIND {ent} RETURN {', '.join(attrs)}")
        stored = {row[attrs[0]]: row for row in rows}
        d.rows += len(source)
        d.duplicated += [(ent, k) for k, n in Counter(r[attrs[0]] for r in rows).items() if n > 1]
        d.lost += [(ent, k) for k in source if k not in stored]
        d.extra += [(ent, k) for k in stored if k not in source]
        for k in source.keys() & stored.keys():
            for i, a in enumerate(attrs):
                sv, gv = _norm(a, source[k][i]), _norm(a, stored[k][a])
                if sv != gv:
                    d.wrong.append((k, a, sv, gv))
    src_ids = Counter(r[0] for r in server.sql(f"SELECT order_id FROM {db}.orders"))
    got = Counter(r["order_id"] for r in serving.query("FIND EVENTS purchase RETURN order_id"))
    d.rows += sum(src_ids.values())
    d.lost += [("order", k) for k in src_ids if k not in got]
    d.duplicated += [("order", k) for k, n in got.items() if n > 1]
    d.extra += [("order", k) for k in got if k not in src_ids]
    return d
