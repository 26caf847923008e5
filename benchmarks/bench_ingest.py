"""Ingest throughput: our import of an event file next to pyarrow's bare read of the same file.

python -m benchmarks.bench_ingest [--rows N] [--users N]
Prints rows/s for Parquet and CSV event imports (read + convert + segment write + commit) beside
pyarrow's bare read of the same file, and entity upserts/s into RocksDB (best of 3).
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from entities.arrow import TS_TYPE
from ingest.files import import_file
from storage import Store

SCHEMA = Path(__file__).resolve().parents[1] / "examples" / "retail" / "schema.yaml"


def purchases(n: int, seed: int = 1) -> pa.Table:
    rng = np.random.default_rng(seed)
    end = np.datetime64("2026-11-01T00:00:00", "us").astype(np.int64)
    ts = end - rng.integers(0, 365 * 86_400_000_000, n)
    cents = rng.integers(100, 100_000, n)
    return pa.table(
        {
            "ts": pa.array(ts, pa.int64()).cast(TS_TYPE),
            "user_id": rng.integers(1, 1_000_000, n),
            "store_id": rng.integers(1, 500, n),
            "sku": pa.array([f"SKU-{i:06d}" for i in rng.integers(0, 20_000, n)]),
            "cashier_id": rng.integers(1, 4000, n),
            "order_id": np.arange(n, dtype=np.int64),
            "amount": pa.array([f"{c // 100}.{c % 100:02d}" for c in cents.tolist()]).cast(
                pa.decimal128(12, 2)
            ),
            "quantity": rng.integers(1, 6, n),
            "channel": pa.array(rng.choice(["store", "app", "web"], n)),
        }
    )


def users(n: int, seed: int = 2) -> pa.Table:
    rng = np.random.default_rng(seed)
    return pa.table(
        {
            "id": np.arange(1, n + 1, dtype=np.int64),
            "name": pa.array([f"user {i}" for i in range(n)]),
            "gender": pa.array(rng.choice(["female", "male", "other"], n)),
            "birth_year": rng.integers(1950, 2008, n),
            "city": pa.array(rng.choice(["Shanghai", "Beijing", "Chengdu"], n)),
            "home_store_id": rng.integers(1, 500, n),
            "is_member": rng.random(n) < 0.5,
        }
    )


def best(fn: object, repeat: int = 3) -> float:
    times = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return min(times)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--users", type=int, default=500_000)
    args, _ = ap.parse_known_args()
    work = Path(tempfile.mkdtemp(prefix="eql-bench-"))
    try:
        table = purchases(args.rows)
        pq_path, csv_path = work / "purchase.parquet", work / "purchase.csv"
        pq.write_table(table, pq_path)
        pacsv.write_csv(table, csv_path)
        schema_text = SCHEMA.read_text()
        print(f"{'case':<28}{'ours rows/s':>14}{'peer rows/s':>14}{'ratio':>8}   peer")
        for fmt, path, peer_name, peer in (
            ("parquet", pq_path, "pyarrow pq.read_table", lambda: pq.read_table(pq_path)),
            ("csv", csv_path, "pyarrow csv.read_csv", lambda: pacsv.read_csv(csv_path)),
        ):
            peer_s = best(peer)
            ours: list[float] = []
            for i in range(2):
                store = Store.create(work / f"s-{fmt}-{i}", schema_text, "retail.yaml")
                t0 = time.perf_counter()
                report = import_file(store, "events", "purchase", path)
                ours.append(time.perf_counter() - t0)
                assert report.rows_imported == args.rows, report.summary()
                store.close()
            ours_s = min(ours)
            n = args.rows
            print(
                f"{'events ' + fmt:<28}{n / ours_s:>14,.0f}{n / peer_s:>14,.0f}"
                f"{peer_s / ours_s:>8.2f}   {peer_name}"
            )
        ut = users(args.users)
        upath = work / "users.parquet"
        pq.write_table(ut, upath)
        ut2 = ut.set_column(1, "name", pa.array([f"renamed {i}" for i in range(args.users)]))
        upath2 = work / "users2.parquet"
        pq.write_table(ut2, upath2)
        first = second = float("inf")
        for i in range(3):  # best of 3, each into a fresh store: the machine may be shared
            store = Store.create(work / f"s-users-{i}", schema_text, "retail.yaml")
            t0 = time.perf_counter()
            import_file(store, "entity", "users", upath)
            first = min(first, time.perf_counter() - t0)
            t0 = time.perf_counter()
            import_file(store, "entity", "users", upath2)
            second = min(second, time.perf_counter() - t0)
            store.close()
        peer_s = best(lambda: pq.read_table(upath))
        print(
            f"{'entity upsert (new keys)':<28}{args.users / first:>14,.0f}"
            f"{args.users / peer_s:>14,.0f}{peer_s / first:>8.2f}   pyarrow pq.read_table"
        )
        print(
            f"{'entity upsert (existing)':<28}{args.users / second:>14,.0f}"
            f"{args.users / peer_s:>14,.0f}{peer_s / second:>8.2f}   pyarrow pq.read_table"
        )
        print(f"(rows={args.rows:,}, users={args.users:,}, {dt.date.today()})")
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
