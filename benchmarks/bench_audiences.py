"""Segments, tags and clusters: refresh times, membership checks per second, bitmap sizes.

python -m benchmarks.bench_audiences [--data-dir DIR] [--repeat N] [--keep]
The store defaults to benchmarks/.data/m1 (`eql demo --data-dir benchmarks/.data/m1 --users
1000000`). Refreshes write, so the store is copied to a temporary folder first (the original is
never modified). Reported: segment refresh next to the hand-written DataFusion SQL alone (same
tables, same engine), single-key and batch membership checks per second through `runtime.lookup`,
serialized bitmap bytes per million members, and RFM tag and 4-cluster k-means refresh times.
"""

from __future__ import annotations

import argparse
import datetime as dt
import shutil
import statistics
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from pyroaring import BitMap

from runtime import WRITE, Session
from runtime.lookup import Audiences
from storage import Store

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
SEGMENT = (
    "sum(purchase.amount DURING LAST 365 DAYS) > 1000 AND NOT DID purchase DURING LAST 60 DAYS"
)
SQL = """SELECT u.__id FROM users u
  JOIN (SELECT user_id FROM purchase
        WHERE ts >= TIMESTAMP '2025-11-01 00:00:00+00' AND ts < TIMESTAMP '2026-11-01 00:00:00+00'
        GROUP BY user_id HAVING sum(amount) > 1000) p ON p.user_id = u.id
  WHERE u.id NOT IN (SELECT user_id FROM purchase WHERE user_id IS NOT NULL
        AND ts >= TIMESTAMP '2026-09-02 00:00:00+00' AND ts < TIMESTAMP '2026-11-01 00:00:00+00')"""


def timed(fn: Callable[[], Any], repeat: int) -> tuple[float, Any]:
    times, out = [], None
    for _ in range(repeat):
        t = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/m1")
    ap.add_argument("--repeat", type=int, default=3)
    ap.add_argument("--keep", action="store_true", help="keep the copied store")
    args = ap.parse_args()
    src = Path(args.data_dir)
    if not (src / "rocks").exists():
        raise SystemExit(f"no store at {src}: eql demo --data-dir {src} --users 1000000")
    tmp = Path(tempfile.mkdtemp(prefix="bench-aud-"))
    t = time.perf_counter()
    shutil.copytree(src, tmp / "s")
    print(f"copied the store in {time.perf_counter() - t:.1f}s")
    store = Store.open(tmp / "s")
    try:
        run(store, args.repeat)
    finally:
        store.close()
        if not args.keep:
            shutil.rmtree(tmp)


def run(store: Store, repeat: int) -> None:
    session = Session(store)
    users = store.count("users")
    events = store.event_count("purchase")
    print(f"users {users:,}, purchases {events:,}")
    rows: list[tuple[str, str]] = []

    session.query(f"DEFINE SEGMENT lapsed_vip ON users WHERE {SEGMENT}", None, NOW, WRITE)
    session.query("FIND users WHERE id = 1 RETURN count(purchase) AS n", None, NOW)  # warm
    t_ref, out = timed(
        lambda: session.query("REFRESH SEGMENT lapsed_vip", None, NOW, WRITE), repeat
    )
    size = out.column("size")[0].as_py()
    ctx = session.engine.peer_context()  # the same registered tables
    t_sql, sql_out = timed(lambda: ctx.sql(SQL).to_arrow_table(), repeat)
    assert sql_out.num_rows == size, (sql_out.num_rows, size)
    rows.append(("segment refresh (EQL, incl. bitmap + commit)", f"{t_ref * 1000:.0f} ms"))
    rows.append(("  hand-written DataFusion SQL alone", f"{t_sql * 1000:.0f} ms"))
    rows.append(("  members", f"{size:,}"))

    t_load = time.perf_counter()
    aud = Audiences(store)
    rows.append(
        ("lookup: load (key dict + bitmaps + tags)", f"{time.perf_counter() - t_load:.2f} s")
    )
    keys = store.entity_table("users").column("id").to_numpy()
    rng = np.random.default_rng(1)
    probe = rng.choice(keys, size=2_000_000).tolist()
    ids, bm = aud.key_ids("users"), aud.bitmap("lapsed_vip")
    t = time.perf_counter()
    hits = sum(1 for k in probe if ids.get(k, -1) in bm)
    raw = len(probe) / (time.perf_counter() - t)
    check = aud.is_member
    t = time.perf_counter()
    hits2 = sum(1 for k in probe if check("lapsed_vip", k))
    method = len(probe) / (time.perf_counter() - t)
    kbm = aud.key_bitmap("lapsed_vip")
    assert kbm is not None
    t = time.perf_counter()
    hits3 = sum(1 for k in probe if k in kbm)
    by_key = len(probe) / (time.perf_counter() - t)
    assert hits == hits2 == hits3
    rows.append(("single key: `k in aud.key_bitmap(seg)` loop", f"{by_key / 1e6:.1f} M/s"))
    rows.append(("single key: `ids.get(k) in bitmap` loop", f"{raw / 1e6:.1f} M/s"))
    rows.append(("single key: aud.is_member(seg, k) loop", f"{method / 1e6:.1f} M/s"))
    big = rng.choice(keys, size=10_000_000)
    aud.is_member_batch("lapsed_vip", big[:10])
    t_keys, _ = timed(lambda: aud.is_member_batch("lapsed_vip", big), repeat)
    dense = aud.ids_of("users", big)
    t_ids, _ = timed(lambda: aud.contains_ids("lapsed_vip", dense), repeat)
    rows.append(
        ("batch of 10M int keys (keys -> ids -> mask)", f"{len(big) / t_keys / 1e6:.0f} M/s")
    )
    rows.append(("batch of 10M dense ids", f"{len(big) / t_ids / 1e6:.0f} M/s"))

    half = BitMap(np.flatnonzero(rng.random(users) < 0.5).astype(np.uint32))
    for label, b in (("lapsed_vip", bm), ("random 50% of users", half)):
        b = BitMap(b)
        b.run_optimize()
        per_m = len(b.serialize()) / max(len(b), 1) * 1e6
        rows.append((f"bitmap bytes per million members ({label})", f"{per_m / 1e3:.0f} kB"))

    session.query(
        "DEFINE TAG rfm ON users AS rfm(purchase, amount, DURING LAST 365 DAYS)", None, NOW
    )
    t_rfm, _ = timed(lambda: session.query("REFRESH TAG rfm", None, NOW, WRITE), 1)
    rows.append(("RFM tag refresh", f"{t_rfm:.2f} s"))
    session.query(
        "DEFINE CLUSTERS shopper_type ON users K 4 SEED 7 FEATURES ("
        "recency = days_since(last(purchase.time)), "
        "frequency = count(purchase DURING LAST 180 DAYS), "
        "monetary = sum(purchase.amount DURING LAST 180 DAYS))",
        None,
        NOW,
        WRITE,
    )
    t_km, _ = timed(lambda: session.query("REFRESH CLUSTERS shopper_type", None, NOW, WRITE), 1)
    rows.append(("4-cluster k-means refresh", f"{t_km:.2f} s"))

    width = max(len(r[0]) for r in rows)
    for name, value in rows:
        print(f"{name:<{width}}  {value}")


if __name__ == "__main__":
    main()
