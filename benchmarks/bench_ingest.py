"""Ingest throughput: our import of an event file next to pyarrow's bare read of the same file.

python -m benchmarks.bench_ingest [--rows N] [--users N] [--rounds N]
Prints rows/s for Parquet and CSV event imports (read + convert + segment write + commit) beside
pyarrow's bare read of the same file, and entity upserts/s into RocksDB beside pyarrow's read of
the users file. Ours and the peer are interleaved: each round runs both, in alternating order
(peer, ours; then ours, peer; ...), every import into a fresh store; the table shows the median
of the rounds of each, the ratio of the medians (peer time / our time: 1.0 means as fast as the
bare read) with the range of the per-round ratios, and the median CPU seconds of the process
(all threads). The 1-minute load average is printed at the start and the end: the machine may be
shared, and a ratio within one round is more stable than an absolute time.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import TypeVar

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from entities.arrow import TS_TYPE
from ingest.files import import_file
from storage import Store

SCHEMA = Path(__file__).resolve().parents[1] / "examples" / "retail" / "schema.yaml"

# One timed run: (wall seconds, process CPU seconds) per measured phase. A run does its own
# untimed setup (a fresh store) and cleanup.
Sample = tuple[float, float]
Run = Callable[[], list[Sample]]
T = TypeVar("T")


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


def load1() -> float:
    return os.getloadavg()[0]


def clock(fn: Callable[[], object]) -> tuple[float, float]:
    """Wall and process CPU seconds (every thread of the process) of one call."""
    return clocked(fn)[0]


def clocked(fn: Callable[[], T]) -> tuple[tuple[float, float], T]:
    """`clock`, and the call's result."""
    c0, t0 = time.process_time(), time.perf_counter()
    result = fn()
    return (time.perf_counter() - t0, time.process_time() - c0), result


def interleaved(peer: Run, ours: Run, rounds: int) -> tuple[list[list[Sample]], list[list[Sample]]]:
    """`rounds` rounds of both runs, alternating which goes first (peer first in round 0).
    Returns the per-round samples of the peer and of ours."""
    peer_s: list[list[Sample]] = []
    ours_s: list[list[Sample]] = []
    for r in range(rounds):
        order = [(peer, peer_s), (ours, ours_s)]
        for run, out in order if r % 2 == 0 else reversed(order):
            out.append(run())
    return peer_s, ours_s


def report(
    label: str,
    rows: int,
    peer_name: str,
    peer: list[tuple[float, float]],
    ours: list[tuple[float, float]],
) -> None:
    """One table line: medians of the rounds, the ratio of the medians (peer / ours) and the
    range of the per-round ratios."""
    p_wall = statistics.median(w for w, _ in peer)
    o_wall = statistics.median(w for w, _ in ours)
    p_cpu = statistics.median(c for _, c in peer)
    o_cpu = statistics.median(c for _, c in ours)
    per_round = [p[0] / o[0] for p, o in zip(peer, ours, strict=True)]
    print(
        f"{label:<28}{rows / o_wall:>14,.0f}{rows / p_wall:>14,.0f}{p_wall / o_wall:>8.2f}"
        f"{min(per_round):>7.2f}-{max(per_round):<6.2f}{o_cpu:>9.3f}{p_cpu:>9.3f}"
        f"{p_cpu / o_cpu:>8.2f}   {peer_name}",
        flush=True,
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rows", type=int, default=2_000_000)
    ap.add_argument("--users", type=int, default=500_000)
    ap.add_argument("--rounds", type=int, default=3, help="interleaved rounds per case")
    args, _ = ap.parse_known_args()
    rounds = max(1, args.rounds)
    work = Path(tempfile.mkdtemp(prefix="eql-bench-"))
    load_start = load1()
    print(f"load (1-min) at start: {load_start:.2f}; {rounds} interleaved rounds per case")
    try:
        table = purchases(args.rows)
        pq_path, csv_path = work / "purchase.parquet", work / "purchase.csv"
        pq.write_table(table, pq_path)
        pacsv.write_csv(table, csv_path)
        del table
        schema_text = SCHEMA.read_text()
        seq = iter(range(1_000_000))

        def fresh_store() -> tuple[Store, Path]:
            path = work / f"s-{next(seq)}"
            return Store.create(path, schema_text, "retail.yaml"), path

        def drop(store: Store, path: Path) -> None:
            store.close()
            shutil.rmtree(path, ignore_errors=True)

        print(
            f"{'case':<28}{'ours rows/s':>14}{'peer rows/s':>14}{'ratio':>8}{'rounds':>14}"
            f"{'ours CPU':>9}{'peer CPU':>9}{'CPU rt':>8}   peer"
        )

        def events_run(path: Path) -> Run:
            def run() -> list[tuple[float, float]]:
                store, spath = fresh_store()
                t, rep = clocked(lambda: import_file(store, "events", "purchase", path))
                assert rep.rows_imported == args.rows, rep.summary()
                drop(store, spath)
                return [t]

            return run

        def read_pq() -> object:
            return pq.read_table(pq_path)

        def read_csv() -> object:
            return pacsv.read_csv(csv_path)

        cases: list[tuple[str, Path, str, Callable[[], object]]] = [
            ("parquet", pq_path, "pyarrow pq.read_table", read_pq),
            ("csv", csv_path, "pyarrow csv.read_csv", read_csv),
        ]
        for fmt, path, peer_name, read in cases:
            read()  # warm the page cache for both sides

            def peer_run(read: Callable[[], object] = read) -> list[Sample]:
                return [clock(read)]

            peer_s, ours_s = interleaved(peer_run, events_run(path), rounds)
            report(
                f"events {fmt}",
                args.rows,
                peer_name,
                [s[0] for s in peer_s],
                [s[0] for s in ours_s],
            )

        ut = users(args.users)
        upath = work / "users.parquet"
        pq.write_table(ut, upath)
        ut2 = ut.set_column(1, "name", pa.array([f"renamed {i}" for i in range(args.users)]))
        upath2 = work / "users2.parquet"
        pq.write_table(ut2, upath2)
        del ut, ut2

        def upserts() -> list[tuple[float, float]]:
            store, spath = fresh_store()
            first = clock(lambda: import_file(store, "entity", "users", upath))
            second = clock(lambda: import_file(store, "entity", "users", upath2))
            drop(store, spath)
            return [first, second]

        pq.read_table(upath)
        peer_s, ours_s = interleaved(lambda: [clock(lambda: pq.read_table(upath))], upserts, rounds)
        peer_u = [s[0] for s in peer_s]
        report(
            "entity upsert (new keys)",
            args.users,
            "pyarrow pq.read_table",
            peer_u,
            [s[0] for s in ours_s],
        )
        report(
            "entity upsert (existing)",
            args.users,
            "pyarrow pq.read_table",
            peer_u,
            [s[1] for s in ours_s],
        )
        print(
            f"(rows={args.rows:,}, users={args.users:,}, rounds={rounds}, "
            f"load (1-min) {load_start:.2f} at start, {load1():.2f} at end, {dt.date.today()})"
        )
        print(
            "ratio = median peer time / median our time; rounds = range of the per-round "
            "ratios; CPU = median process CPU s (all threads), CPU rt = peer CPU / ours CPU"
        )
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    main()
