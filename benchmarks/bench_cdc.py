"""CDC: applied row changes per second next to the library's bare decode rate of the same binlog,
for a narrow (5 columns) and a wide (30 columns) table, and commit-to-visible latency at a steady
write rate.

python -m benchmarks.bench_cdc [--rows N] [--rate R] [--seconds S]
Starts its own throwaway mariadbd (like tests/cdc), writes the same binlog range once, then
(1) decodes it with bare mysql-replication (no mapping, no conversion, no commit) and (2) applies
it with the connector into a fresh store; the ratio is (2)/(1). Latency: one-row transactions at a
steady rate while the connector streams; time from the source COMMIT returning to the row being
readable in the store.
"""

from __future__ import annotations

import argparse
import random
import statistics
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

from ingest.cdc_config import parse_config
from ingest.cdc_runner import RunOptions, run
from ingest.cdc_state import CdcState, Position, put_state
from ingest.mysql_binlog import decode_rate
from storage import ChangeSet, Store

WIDE_TYPES = ["INT", "VARCHAR(40)", "DECIMAL(12,2)", "DATETIME(6)", "DOUBLE", "DATE"]
ATTR = {
    "INT": "int",
    "VARCHAR(40)": "string",
    "DECIMAL(12,2)": "{type: decimal, precision: 12, scale: 2}",
    "DATETIME(6)": "timestamp",
    "DOUBLE": "float",
    "DATE": "date",
}


def _wide_cols() -> list[tuple[str, str]]:
    return [(f"c{i:02d}", WIDE_TYPES[i % len(WIDE_TYPES)]) for i in range(1, 30)]


def _schema() -> str:
    wide = "\n".join(f"      {n}: {ATTR[t]}" for n, t in _wide_cols())
    return f"""
version: 1
entities:
  narrow:
    key: {{name: id, type: int}}
    attributes:
      a: int
      b: string
      c: {{type: decimal, precision: 12, scale: 2}}
      d: timestamp
  wide:
    key: {{name: id, type: int}}
    attributes:
{wide}
events:
  narrow_ev:
    time: d
    references: {{}}
    fields:
      id: int
      a: int
      b: string
      c: {{type: decimal, precision: 12, scale: 2}}
"""


def _config(port: int, table: str, target: str, kind: str) -> str:
    return f"""
name: bench
source: {{host: 127.0.0.1, port: {port}, user: root, server_id: {random.randint(10**4, 10**8)}}}
tables:
  bench.{table}: {{{kind}: {target}{", on_update: append" if kind == "events" else ""}}}
"""


def _value(t: str, i: int) -> str:
    return {
        "INT": str(i % 100000),
        "VARCHAR(40)": f"'v{i % 977}-abcdefgh'",
        "DECIMAL(12,2)": f"{i % 100000}.{i % 100:02d}",
        "DATETIME(6)": f"'2024-01-01 00:00:00' + INTERVAL {i % 86400} SECOND",
        "DOUBLE": f"{i} * 0.5",
        "DATE": f"'2020-01-01' + INTERVAL {i % 1000} DAY",
    }[t]


def _write(server: Any, table: str, rows: int, per_txn: int = 200) -> None:
    conn = server.connect(autocommit=False)
    with conn.cursor() as cur:
        for start in range(0, rows, per_txn):
            vals = []
            for i in range(start, min(rows, start + per_txn)):
                if table == "narrow":
                    vals.append(
                        f"({i}, {i % 1000}, 'name {i % 977}', {i % 10000}.25, "
                        f"'2024-01-01 00:00:00' + INTERVAL {i % 86400} SECOND)"
                    )
                else:
                    vals.append(f"({i}, " + ", ".join(_value(t, i) for _, t in _wide_cols()) + ")")
            cur.execute(f"INSERT INTO bench.{table} VALUES " + ", ".join(vals))
            conn.commit()
        # and updates of a fifth of the rows, 200 per transaction
        for start in range(0, rows // 5, per_txn):
            col = "a" if table == "narrow" else "c06"
            cur.execute(
                f"UPDATE bench.{table} SET {col} = {col} + 1 WHERE id >= {start} "
                f"AND id < {start + per_txn}"
            )
            conn.commit()
    conn.close()


def _position(server: Any) -> Position:
    file, pos = server.sql("SHOW MASTER STATUS")[0][:2]
    gtid = server.sql("SELECT @@gtid_binlog_pos")[0][0]
    return Position(str(file), int(pos), str(gtid))


def _applied(
    server: Any, root: Path, table: str, target: str, kind: str, start: Position
) -> tuple[int, float]:
    root.mkdir(parents=True, exist_ok=True)
    store = Store.create(root / f"store-{target}", _schema(), "bench.yaml")
    try:
        cfg = parse_config(_config(server.port, table, target, kind), store.schema)
        change = ChangeSet()
        put_state(change, CdcState("bench", "streaming", position=start))
        store.commit(change)
        t0 = time.perf_counter()
        rep = run(store, cfg, RunOptions(until_caught_up=True))
        took = time.perf_counter() - t0
        return rep.state.counter("rows_applied"), took
    finally:
        store.close()


def _latency(server: Any, root: Path, rate: float, seconds: float) -> list[float]:
    store = Store.create(root / "store-latency", _schema(), "bench.yaml")
    cfg = parse_config(_config(server.port, "narrow", "narrow", "entity"), store.schema)
    change = ChangeSet()
    put_state(change, CdcState("bench", "streaming", position=_position(server)))
    store.commit(change)
    stop = threading.Event()
    t = threading.Thread(
        target=run, args=(store, cfg, RunOptions(max_seconds=seconds + 30)), kwargs={"stop": stop}
    )
    t.start()
    time.sleep(1.0)
    conn = server.connect()
    lat: list[float] = []
    interval = 1.0 / rate
    next_at = time.monotonic()
    key = 10_000_000
    with conn.cursor() as cur:
        end = time.monotonic() + seconds
        while time.monotonic() < end:
            key += 1
            cur.execute(f"INSERT INTO bench.narrow VALUES ({key}, 1, 'x', 1.00, NOW())")
            committed = time.monotonic()
            while store.get("narrow", key) is None:
                time.sleep(0.0005)
                if time.monotonic() - committed > 10:
                    raise RuntimeError("a row did not become visible within 10 s")
            lat.append(time.monotonic() - committed)
            next_at += interval
            time.sleep(max(0.0, next_at - time.monotonic()))
    conn.close()
    stop.set()
    t.join(timeout=30)
    store.close()
    return lat


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=60_000, help="narrow rows (wide: a third)")
    ap.add_argument("--rate", type=float, default=50.0, help="latency: transactions per second")
    ap.add_argument("--seconds", type=float, default=10.0, help="latency: duration")
    ap.add_argument("--repeat", type=int, default=3, help="best of N runs per case")
    args = ap.parse_args(argv)
    from tests.cdc.conftest import start_server  # the same throwaway server as the tests

    with tempfile.TemporaryDirectory(prefix="bench-cdc-") as tmp:
        root = Path(tmp)
        server = start_server(root / "mariadb")
        try:
            server.sql(
                "CREATE DATABASE bench",
                "CREATE TABLE bench.narrow (id BIGINT PRIMARY KEY, a INT, b VARCHAR(40), "
                "c DECIMAL(12,2), d DATETIME(6))",
                "CREATE TABLE bench.wide (id BIGINT PRIMARY KEY, "
                + ", ".join(f"{n} {t}" for n, t in _wide_cols())
                + ")",
            )
            results = []
            cases = [
                ("narrow", "narrow", "entity", args.rows),
                ("narrow", "narrow_ev", "events", 0),
                ("wide", "wide", "entity", args.rows // 3),
            ]
            ranges: dict[str, tuple[Position, Position]] = {}
            for table, _, _, rows in cases:
                if rows:
                    start = _position(server)
                    _write(server, table, rows)
                    ranges[table] = (start, _position(server))
            for table, target, kind, _ in cases:
                start, end = ranges[table]
                src = parse_config(
                    _config(server.port, table, target, kind),
                    Store.create(root / f"cfg-{target}", _schema(), "x").schema,
                )
                best_d = best_a = 0.0
                for rep in range(args.repeat):  # best of N: the machine may be shared
                    decoded, dtime = decode_rate(src.source, start, end, server_id=77_001 + rep)
                    applied, atime = _applied(server, root / f"r{rep}", table, target, kind, start)
                    best_d, best_a = max(best_d, decoded / dtime), max(best_a, applied / atime)
                name = f"{table} ({'5' if table == 'narrow' else '30'} cols) -> {kind}"
                results.append((name, decoded, best_d, applied, best_a))
            lat = _latency(server, root, args.rate, args.seconds)
        finally:
            server.stop()
    print(
        f"{'case':<30} {'decoded':>8} {'applied':>8} {'decode rows/s':>14} "
        f"{'applied rows/s':>15} {'ratio':>6}"
    )
    for name, decoded, drate, applied, arate in results:
        print(
            f"{name:<30} {decoded:>8} {applied:>8} {drate:>14,.0f} {arate:>15,.0f} "
            f"{arate / drate:>6.2f}"
        )
    lat_ms = sorted(x * 1000 for x in lat)
    p99 = lat_ms[min(len(lat_ms) - 1, int(len(lat_ms) * 0.99))]
    print(
        f"commit-to-visible at {args.rate:g} txn/s for {args.seconds:g}s: n={len(lat_ms)} "
        f"p50={statistics.median(lat_ms):.1f} ms p99={p99:.1f} ms max={lat_ms[-1]:.1f} ms"
    )


if __name__ == "__main__":
    main()
