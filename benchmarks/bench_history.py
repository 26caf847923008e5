"""Attribute history: what 1M attribute changes cost queries with and without AS OF, and disk.

python -m benchmarks.bench_history [--data-dir DIR] [--users N] [--changes N] [--commits N]
                                   [--repeat N] [--warmup N]
DIR (default benchmarks/.data/h200k) holds a pristine demo store (`eql demo --users N --seed 42`,
built there when missing); it is copied, and the copy gets `--changes` upserts of users'
`home_store_id` and `is_member` (random users, random values, seed 42) in `--commits` commits,
effective at times spread over 2026-10-02 .. 2026-10-31 (after EARLY, before REF). Then each
query runs on the pristine store ("before") and on the changed one ("after"), interleaved
(`--repeat` rounds after `--warmup` untimed ones, the order swapped every round):

- at REF (2026-11-01, after every change: the current tables, as a query without AS OF);
  goal: after <= 1.05x before;
- at EARLY (2026-10-01, before the changes: the changed store reads the users table as of then,
  built from the history once and kept); goal: after <= 1.2x before (the same query, the same
  time, on the store before the changes).

The same changes are also applied to a third copy with the history switched off (the peer of the
commit time and the disk growth). Printed: the medians and their ratio per query, the first AS OF
query's time (it builds the users table of then, which later queries at that time reuse), the
commit time per change, and bytes per change: the history records' own (`h:` and `w:` values and
keys, as written) and the RocksDB directory's growth after a reopen.
The 1-minute load average is printed at the start and the end: the machine may be shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pyarrow as pa

from benchmarks.bench_eql import QUERIES
from runtime.engine import Engine
from storage import ChangeSet, Store, codec, history

REF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
EARLY = dt.datetime(2026, 10, 1, tzinfo=dt.UTC)
FIRST_CHANGE = dt.datetime(2026, 10, 2, tzinfo=dt.UTC)
CHOSEN = ("shanghai_buyers", "store_sales_idle_members", "region_lifetime_spend", "lapsed_vips")


def load1() -> float:
    return os.getloadavg()[0]


def dir_bytes(path: Path) -> int:
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file())


def history_bytes(store: Store) -> int:
    total = 0
    for family in ("h", "w"):
        for key, value in store.kv.scan(codec.family_prefix(family, "users")):
            total += len(key) + len(value)
    return total


def change(store: Store, changes: int, commits: int) -> tuple[float, int]:
    """Apply the upserts; the seconds they took and how many history records were written."""
    rng = np.random.default_rng(42)
    users = store.entity_table("users").column("id").to_numpy()
    stores = store.entity_table("stores").column("id").to_numpy()
    per = changes // commits
    span = (REF - FIRST_CHANGE).total_seconds() - 3600
    t0 = time.perf_counter()
    for i in range(commits):
        at = FIRST_CHANGE + dt.timedelta(seconds=span * i / commits)
        picked = rng.choice(users, size=per, replace=False)
        rows = pa.table(
            {
                "id": pa.array(picked, pa.int64()),
                "home_store_id": pa.array(rng.choice(stores, size=per), pa.int64()),
                "is_member": pa.array(rng.random(per) < 0.5),
            }
        )
        cs = ChangeSet(effective_time=at)
        cs.upsert("users", rows)
        store.commit(cs)
    seconds = time.perf_counter() - t0
    records = sum(1 for _ in store.kv.scan(codec.family_prefix("w", "users")))
    return seconds, records


def peer_changes(pristine: Path, tmp: Path, changes: int, commits: int) -> tuple[float, int]:
    """The peer: the same changes on another copy with the history switched off (its writer
    replaced by a no-op in this process); seconds and RocksDB growth."""
    peer = tmp / "peer"
    shutil.copytree(pristine, peer)
    before = dir_bytes(peer / "rocks")
    note = history.note
    history.note = lambda *args, **kw: None  # type: ignore[assignment]
    try:
        store = Store.open(peer)
        seconds, _ = change(store, changes, commits)
        store.close()
        Store.open(peer).close()
    finally:
        history.note = note
    grown = dir_bytes(peer / "rocks") - before
    shutil.rmtree(peer)
    return seconds, grown


def runner(engine: Engine, text: str, at: dt.datetime) -> Callable[[], object]:
    def run() -> object:
        return engine.run(engine.compile(text, None, at))

    return run


def compare(
    a: Callable[[], object], b: Callable[[], object], repeat: int, warmup: int
) -> tuple[float, float, list[float]]:
    """Medians of `a` and `b` over interleaved rounds (order swapped each round), and the
    per-round ratios b/a."""
    wa: list[float] = []
    wb: list[float] = []
    for r in range(warmup + repeat):
        pair = [(a, wa), (b, wb)] if r % 2 == 0 else [(b, wb), (a, wa)]
        for fn, out in pair:
            t0 = time.perf_counter()
            fn()
            if r >= warmup:
                out.append(time.perf_counter() - t0)
    return (
        statistics.median(wa),
        statistics.median(wb),
        [y / x for x, y in zip(wa, wb, strict=True)],
    )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/h200k")
    ap.add_argument("--users", type=int, default=200_000)
    ap.add_argument("--changes", type=int, default=1_000_000)
    ap.add_argument("--commits", type=int, default=100)
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--warmup", type=int, default=1)
    args, _ = ap.parse_known_args()
    pristine = Path(args.data_dir)
    if not (pristine / "rocks").exists():
        print(f"building the demo store at {pristine} ({args.users:,} users)...", flush=True)
        eql = Path(sys.executable).with_name("eql")
        command = [str(eql), "demo", "--data-dir", str(pristine), "--users", str(args.users)]
        subprocess.run(
            [*command, "--seed", "42"],
            check=True,
            stdout=subprocess.DEVNULL,
        )
    print(f"load {load1():.1f}; store {pristine}; {args.changes:,} changes in {args.commits}")
    with tempfile.TemporaryDirectory(dir=pristine.parent) as tmp:
        changed_dir = Path(tmp) / "changed"
        shutil.copytree(pristine, changed_dir)
        before_bytes = dir_bytes(changed_dir / "rocks")
        store = Store.open(changed_dir)
        seconds, records = change(store, args.changes, args.commits)
        hist = history_bytes(store)
        store.close()
        store = Store.open(changed_dir)  # the writes flushed, the WAL replayed
        grown = dir_bytes(changed_dir / "rocks") - before_bytes
        print(
            f"{args.changes:,} changes: {seconds:.1f} s ({seconds / args.changes * 1e6:.1f} us "
            f"a change), {records} history records; history {hist / args.changes:.0f} B a "
            f"change as written; RocksDB grew {grown / args.changes:.0f} B a change (the rows "
            "rewritten too)"
        )
        peer_s, peer_grown = peer_changes(pristine, Path(tmp), args.changes, args.commits)
        print(
            f"peer without history: {peer_s:.1f} s ({peer_s / args.changes * 1e6:.1f} us a "
            f"change; with history {seconds / peer_s:.2f}x), RocksDB grew "
            f"{peer_grown / args.changes:.0f} B a change"
        )
        before = Engine(Store.open(pristine, read_only=True))
        after = Engine(store)
        texts = {name: text for name, text, _ in QUERIES}
        t0 = time.perf_counter()
        runner(after, texts[CHOSEN[0]], EARLY)()
        print(
            f"the first query AS OF EARLY (builds the users table of then): "
            f"{(time.perf_counter() - t0) * 1000:.0f} ms"
        )
        print("| query | time | before ms | after ms | after/before | round ratios |")
        print("|---|---|---|---|---|---|")
        for name in CHOSEN:
            for label, at in (("REF (current)", REF), ("EARLY (AS OF)", EARLY)):
                a, b = runner(before, texts[name], at), runner(after, texts[name], at)
                ma, mb, ratios = compare(a, b, args.repeat, args.warmup)
                spread = f"{min(ratios):.2f}-{max(ratios):.2f}"
                print(
                    f"| {name} | {label} | {ma * 1000:.1f} | {mb * 1000:.1f} | {mb / ma:.3f} | "
                    f"{spread} |",
                    flush=True,
                )
        before.store.close()
        store.close()
    print(f"load {load1():.1f}")


if __name__ == "__main__":
    main()
