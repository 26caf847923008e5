"""The planner rules, measured: each query planned without the rules and with them, both plans
run on the same registered tables, interleaved (A B, B A, ...), with the same rows checked.

python -m benchmarks.bench_rules [--data-dir DIR] [--rounds N]
Prints per query the median wall and process CPU time of each plan (milliseconds) and the ratio
with/without; the 1-minute load at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from pathlib import Path

from benchmarks.bench_eql import QUERIES, REF
from eql.binder import bind
from eql.compiler import parse_cached
from eql.planner import logical, to_datafusion
from eql.planner.plan import plan
from eql.planner.rules import RULES
from runtime.engine import Engine
from storage import Store

EXTRA = [
    (
        "did_and_count_visits",  # corpus 09's shape: DID and a count of the same window
        "FIND users WHERE DID visit DURING LAST 30 DAYS "
        "RETURN id, count(visit DURING LAST 30 DAYS) AS visits_30d",
    ),
    (
        "no_purchase_30d",
        "FIND users WHERE count(purchase DURING LAST 30 DAYS) = 0 RETURN count() AS n",
    ),
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/m1")
    ap.add_argument("--rounds", type=int, default=7)
    args, _ = ap.parse_known_args()
    if not (Path(args.data_dir) / "rocks").exists():
        print(f"no store at {args.data_dir}: build it with `eql demo --data-dir {args.data_dir}`")
        return
    store = Store.open(args.data_dir, read_only=True)
    engine = Engine(store)
    ctx = engine.peer_context()
    queries = [(name, text) for name, text, _ in QUERIES] + EXTRA
    print(f"load {os.getloadavg()[0]:.2f} at start; {args.rounds} interleaved rounds")
    print(
        "| query | rules change the plan | without ms | with ms | with/without | CPU with/without |"
    )
    print("|---|---|---|---|---|---|")
    for name, text in queries:
        bound = bind(parse_cached(text), store.schema, text, {}, REF, engine.catalog())
        plans = {"without": plan(bound, store.schema, rules=()), "with": plan(bound, store.schema)}
        for ref in logical.tables(plans["without"]):
            engine._register_one(ref)
        frames = {k: to_datafusion.frame(p, ctx) for k, p in plans.items()}
        wall: dict[str, list[float]] = {k: [] for k in frames}
        cpu: dict[str, list[float]] = {k: [] for k in frames}
        rows = {k: to_datafusion.collect(df).num_rows for k, df in frames.items()}  # warm up
        assert rows["with"] == rows["without"], (name, rows)
        for r in range(args.rounds):
            order = ["without", "with"] if r % 2 == 0 else ["with", "without"]
            for k in order:
                c0, t0 = time.process_time(), time.perf_counter()
                to_datafusion.collect(frames[k])
                wall[k].append(time.perf_counter() - t0)
                cpu[k].append(time.process_time() - c0)
        w = {k: statistics.median(v) * 1000 for k, v in wall.items()}
        c = {k: statistics.median(v) * 1000 for k, v in cpu.items()}
        changed = "yes" if plans["with"] != plans["without"] else "no"
        print(
            f"| {name} | {changed} | {w['without']:.1f} | {w['with']:.1f} | "
            f"{w['with'] / w['without']:.2f} | {c['with'] / c['without']:.2f} |"
        )
    print(f"load {os.getloadavg()[0]:.2f} at end; rules: {', '.join(n for n, _ in RULES)}")
    store.close()


if __name__ == "__main__":
    main()
