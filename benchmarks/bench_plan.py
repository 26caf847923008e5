"""The fixed cost of a query: compiling EQL and building its DataFusion DataFrame, cold and from
the prepared-plan cache, next to DataFusion's own SQL planning of the hand-written SQL.

python -m benchmarks.bench_plan [--data-dir DIR] [--rounds N]
Uses bench_eql's six queries (EQL text and the hand-written SQL). Per round and query, three
contenders run interleaved, the order rotated every round:
- EQL cold: the parse cache cleared, no plan cache: parse + bind + plan, then the DataFrame;
- DataFusion SQL: `SessionContext.sql(text)` on the same registered tables (parse + plan to a
  DataFrame, the peer's fixed cost);
- EQL cached: `Engine.compile` + `Engine.frame` of a text seen before (a ready plan).
Prints p50 and p99 in milliseconds and the ratios of medians; the 1-minute load at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

from benchmarks.bench_eql import QUERIES, REF
from eql import compiler
from runtime.engine import Engine
from storage import Store


def _percentile(xs: list[float], q: float) -> float:
    xs = sorted(xs)
    return xs[min(len(xs) - 1, int(len(xs) * q))] * 1000


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/m1")
    ap.add_argument("--rounds", type=int, default=200)
    args, _ = ap.parse_known_args()
    if not (Path(args.data_dir) / "rocks").exists():
        print(f"no store at {args.data_dir}: build it with `eql demo --data-dir {args.data_dir}`")
        return
    store = Store.open(args.data_dir, read_only=True)
    engine = Engine(store)
    peer = engine.peer_context()
    compile_only: list[float] = []
    samples: dict[str, list[float]] = {"eql cold": [], "datafusion sql": [], "eql cached": []}

    def cold(text: str) -> Callable[[], object]:
        def run() -> object:
            compiler.parse_cached.cache_clear()
            t0 = time.perf_counter()
            compiled = engine.compile(text, None, REF, cached=False)
            compile_only.append(time.perf_counter() - t0)
            return engine.frame(compiled)  # a new plan object: emitted anew

        return run

    def cached(text: str) -> Callable[[], object]:
        return lambda: engine.frame(engine.compile(text, None, REF))

    def sql(text: str) -> Callable[[], object]:
        return lambda: peer.sql(text)

    for _, eql_text, sql_text in QUERIES:  # warm up: tables registered, cache filled
        cached(eql_text)()
        sql(sql_text)()
    load_start = os.getloadavg()[0]
    for r in range(args.rounds):
        for _, eql_text, sql_text in QUERIES:
            contenders = [
                ("eql cold", cold(eql_text)),
                ("datafusion sql", sql(sql_text)),
                ("eql cached", cached(eql_text)),
            ]
            k = r % len(contenders)
            for name, fn in contenders[k:] + contenders[:k]:
                t0 = time.perf_counter()
                fn()
                samples[name].append(time.perf_counter() - t0)
    load_end = os.getloadavg()[0]
    n = len(samples["eql cold"])
    print(f"{n} samples each ({args.rounds} rounds x {len(QUERIES)} queries)")
    print(f"load {load_start:.2f} -> {load_end:.2f}")
    print("| step | p50 ms | p99 ms |")
    print("|---|---|---|")
    print(
        f"| EQL compile cold (parse+bind+plan) | {_percentile(compile_only, 0.5):.3f} | "
        f"{_percentile(compile_only, 0.99):.3f} |"
    )
    for name, xs in samples.items():
        label = {
            "eql cold": "EQL cold: compile + DataFrame",
            "datafusion sql": "DataFusion SQL planning (peer)",
            "eql cached": "EQL cached: a ready plan",
        }[name]
        print(f"| {label} | {_percentile(xs, 0.5):.3f} | {_percentile(xs, 0.99):.3f} |")
    peer_p50 = statistics.median(samples["datafusion sql"])
    print(
        f"EQL cold / DataFusion SQL: {statistics.median(samples['eql cold']) / peer_p50:.2f}x; "
        f"EQL cached / DataFusion SQL: {statistics.median(samples['eql cached']) / peer_p50:.2f}x"
    )
    store.close()


if __name__ == "__main__":
    main()
