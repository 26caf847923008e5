"""EQL compile time, and EQL queries next to hand-written DataFusion SQL and DuckDB SQL.

python -m benchmarks.bench_eql [--data-dir DIR] [--repeat N] [--warmup N]
The store defaults to benchmarks/.data/m1 (build it with
`eql demo --data-dir benchmarks/.data/m1 --users 1000000`). Each query runs as EQL (compile +
execute), as DataFusion SQL on the same registered tables, and as DuckDB SQL over the same Arrow
tables. The three are interleaved: `--repeat` rounds per query, each round running all three once,
the order rotated every round (EQL DF Duck, DF Duck EQL, Duck EQL DF, ...) after `--warmup`
untimed rounds. The first table shows the medians of the rounds (wall time) and EQL's ratio of
medians to each peer; the second the median process CPU time per run (every thread of the
process: DataFusion's and DuckDB's too), its ratios, and the range of the per-round wall ratios.
The 1-minute load average is printed at the start and the end: the machine may be shared.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import time
from collections.abc import Callable
from pathlib import Path

import pyarrow as pa

from eql.compiler import compile_query
from runtime.engine import Engine
from storage import Store

REF = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
D30, D90, D7, D60, D365 = (
    "TIMESTAMP '2026-10-02 00:00:00+00'",
    "TIMESTAMP '2026-08-03 00:00:00+00'",
    "TIMESTAMP '2026-10-25 00:00:00+00'",
    "TIMESTAMP '2026-09-02 00:00:00+00'",
    "TIMESTAMP '2025-11-01 00:00:00+00'",
)
END = "TIMESTAMP '2026-11-01 00:00:00+00'"

QUERIES: list[tuple[str, str, str]] = [
    (
        "shanghai_buyers",
        """FIND users WHERE home_store.city = 'Shanghai'
             AND count(purchase DURING LAST 30 DAYS) >= 3
           RETURN id, name, sum(purchase.amount DURING LAST 30 DAYS) AS spend_30d
           ORDER BY spend_30d DESC LIMIT 100""",
        f"""SELECT u.id, u.name, p.spend AS spend_30d FROM users u
            JOIN stores s ON u.home_store_id = s.id
            JOIN (SELECT user_id, count(*) AS n, sum(amount) AS spend FROM purchase
                  WHERE ts >= {D30} AND ts < {END} GROUP BY user_id) p ON p.user_id = u.id
            WHERE s.city = 'Shanghai' AND p.n >= 3 ORDER BY spend_30d DESC LIMIT 100""",
    ),
    (
        "app_spenders_no_coupon",
        """FIND users WHERE sum(purchase.amount WHERE channel = 'app' DURING LAST 90 DAYS) > 500
             AND DID visit DURING LAST 7 DAYS AND NOT DID coupon_use DURING LAST 30 DAYS
           RETURN id""",
        f"""SELECT u.id FROM users u
            JOIN (SELECT user_id FROM purchase WHERE channel = 'app' AND ts >= {D90}
                  AND ts < {END} GROUP BY user_id HAVING sum(amount) > 500) p ON p.user_id = u.id
            WHERE u.id IN (SELECT user_id FROM visit WHERE ts >= {D7} AND ts < {END})
              AND u.id NOT IN (SELECT user_id FROM coupon_use WHERE ts >= {D30} AND ts < {END}
                               AND user_id IS NOT NULL)""",
    ),
    (
        "store_sales_idle_members",
        """FIND stores RETURN id, city, sum(purchase.amount DURING LAST 30 DAYS) AS sales_30d,
             count(members WHERE count(purchase DURING LAST 30 DAYS) = 0) AS idle_members
           ORDER BY sales_30d DESC""",
        f"""SELECT s.id, s.city, coalesce(ps.sales, 0) AS sales_30d,
                   coalesce(im.idle, 0) AS idle_members FROM stores s
            LEFT JOIN (SELECT store_id, sum(amount) AS sales FROM purchase
                       WHERE ts >= {D30} AND ts < {END} GROUP BY store_id) ps ON ps.store_id = s.id
            LEFT JOIN (SELECT u.home_store_id, count(*) AS idle FROM users u
                       WHERE u.id NOT IN (SELECT user_id FROM purchase WHERE ts >= {D30}
                                          AND ts < {END} AND user_id IS NOT NULL)
                       GROUP BY u.home_store_id) im ON im.home_store_id = s.id
            ORDER BY sales_30d DESC""",
    ),
    (
        "region_lifetime_spend",
        """FIND users GROUP BY home_store.region
           RETURN home_store.region, count() AS users, avg(sum(purchase.amount)) AS avg_spend""",
        f"""SELECT s.region, count(*) AS users, avg(coalesce(p.spend, 0)) AS avg_spend FROM users u
            LEFT JOIN stores s ON u.home_store_id = s.id
            LEFT JOIN (SELECT user_id, sum(amount) AS spend FROM purchase WHERE ts < {END}
                       GROUP BY user_id) p ON p.user_id = u.id
            GROUP BY s.region""",
    ),
    (
        "daily_category_sales",
        """FIND EVENTS purchase DURING LAST 7 DAYS WHERE store.city = 'Shanghai'
           GROUP BY day(time), product.category
           RETURN day(time) AS day, product.category, sum(amount) AS sales,
                  count(DISTINCT user) AS buyers""",
        f"""SELECT CAST(date_trunc('day', p.ts) AS DATE) AS day, pr.category,
                   sum(p.amount) AS sales, count(DISTINCT p.user_id) AS buyers
            FROM purchase p JOIN stores s ON p.store_id = s.id
            LEFT JOIN products pr ON p.sku = pr.sku
            WHERE p.ts >= {D7} AND p.ts < {END} AND s.city = 'Shanghai'
            GROUP BY 1, 2""",
    ),
    (
        "lapsed_vips",
        """FIND users WHERE sum(purchase.amount DURING LAST 365 DAYS) > 1000
             AND NOT DID purchase DURING LAST 60 DAYS RETURN id""",
        f"""SELECT u.id FROM users u JOIN (SELECT user_id, sum(amount) AS s FROM purchase
              WHERE ts >= {D365} AND ts < {END} GROUP BY user_id) p ON p.user_id = u.id
            WHERE p.s > 1000 AND u.id NOT IN (SELECT user_id FROM purchase WHERE ts >= {D60}
              AND ts < {END} AND user_id IS NOT NULL)""",
    ),
]


def timed(fn: object, repeat: int) -> tuple[float, object]:
    times, result = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        result = fn()  # type: ignore[operator]
        times.append(time.perf_counter() - t0)
    return statistics.median(times), result


class Sample:
    """The runs of one contender: wall and process CPU seconds per round, and its last result."""

    def __init__(self) -> None:
        self.wall: list[float] = []
        self.cpu: list[float] = []
        self.result: object = None

    def run(self, fn: Callable[[], object], record: bool) -> None:
        c0, t0 = time.process_time(), time.perf_counter()
        self.result = fn()
        wall, cpu = time.perf_counter() - t0, time.process_time() - c0
        if record:
            self.wall.append(wall)
            self.cpu.append(cpu)

    @property
    def median(self) -> float:
        return statistics.median(self.wall)

    @property
    def median_cpu(self) -> float:
        return statistics.median(self.cpu)


def interleaved(fns: list[Callable[[], object]], repeat: int, warmup: int) -> list[Sample]:
    """`warmup` untimed rounds, then `repeat` timed rounds; each round runs every fn once, the
    order rotated by one every round so that each fn goes first, middle and last alike."""
    samples = [Sample() for _ in fns]
    for r in range(warmup + repeat):
        k = r % len(fns)
        for i in list(range(k, len(fns))) + list(range(k)):
            samples[i].run(fns[i], record=r >= warmup)
    return samples


def load1() -> float:
    return os.getloadavg()[0]


def compile_times(store: Store, n: int = 300) -> None:
    """Parse + bind + plan per query text: cold (the parse cache cleared every time) and warm
    (a text seen before: the server's common case, parameters change but the text does not)."""
    from eql import compiler
    from eql.binder import Names

    names = Names(store.schema)  # as the engine keeps it: built once per schema
    for label, clear in (("cold", True), ("warm", False)):
        samples: list[float] = []
        for _ in range(n):
            for _, text, _ in QUERIES:
                if clear:
                    compiler.parse_cached.cache_clear()
                t0 = time.perf_counter()
                compile_query(text, store.schema, {}, REF, names=names)
                samples.append(time.perf_counter() - t0)
        samples.sort()
        p50 = samples[len(samples) // 2] * 1000
        p99 = samples[int(len(samples) * 0.99)] * 1000
        print(
            f"compile {label} (parse+bind+plan), {len(samples)} samples: p50 {p50:.3f} ms, "
            f"p99 {p99:.3f} ms"
        )


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/m1")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved timed rounds per query")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds per query first")
    args, _ = ap.parse_known_args()
    if not (Path(args.data_dir) / "rocks").exists():
        print(
            f"no store at {args.data_dir}: build it with "
            f"`eql demo --data-dir {args.data_dir} --users 1000000`"
        )
        return
    import datafusion
    import duckdb

    store = Store.open(args.data_dir, read_only=True)
    compile_times(store)
    engine = Engine(store)
    ctx: datafusion.SessionContext = engine.peer_context()  # the same registered tables
    con = duckdb.connect()
    con.execute("SET threads TO 2")
    for ent in store.schema.entities:
        con.register(ent.name, _plain(store.entity_table(ent.name)))
    for st in store.schema.streams:
        con.register(st.name, _plain(store.event_table(st.name)))
    events = sum(store.event_count(s.name) for s in store.schema.streams)
    print(f"store {args.data_dir}: {store.count('users'):,} users, {events:,} events")
    repeat, warmup = max(1, args.repeat), max(0, args.warmup)
    load_start = load1()
    print(
        f"load (1-min) at start: {load_start:.2f}; {repeat} interleaved rounds per query "
        f"(EQL, DF SQL, DuckDB; order rotated each round) after {warmup} untimed"
    )
    print(
        f"{'query':<26}{'EQL ms':>9}{'DF SQL ms':>11}{'DuckDB ms':>11}{'EQL/DF':>8}"
        f"{'EQL/Duck':>9}  rows",
        flush=True,
    )
    cpu_lines: list[str] = []
    for name, eql, sql in QUERIES:

        def run_eql(eql: str = eql) -> object:
            return engine.query(eql, now=REF)

        def run_df(sql: str = sql) -> object:
            return ctx.sql(sql).to_arrow_table()

        def run_dk(sql: str = sql) -> object:
            return con.execute(sql).to_arrow_table()

        s_eql, s_df, s_dk = interleaved([run_eql, run_df, run_dk], repeat, warmup)
        t_eql, t_df, t_dk = s_eql.median, s_df.median, s_dk.median
        rows = (_rows(s_eql.result), _rows(s_df.result), _rows(s_dk.result))
        print(
            f"{name:<26}{t_eql * 1000:>9.1f}{t_df * 1000:>11.1f}{t_dk * 1000:>11.1f}"
            f"{t_eql / t_df:>8.2f}{t_eql / t_dk:>9.2f}  {rows}",
            flush=True,
        )
        c_eql, c_df, c_dk = s_eql.median_cpu, s_df.median_cpu, s_dk.median_cpu
        r_df = [e / d for e, d in zip(s_eql.wall, s_df.wall, strict=True)]
        r_dk = [e / d for e, d in zip(s_eql.wall, s_dk.wall, strict=True)]
        cpu_lines.append(
            f"{name:<26}{c_eql * 1000:>9.1f}{c_df * 1000:>11.1f}{c_dk * 1000:>11.1f}"
            f"{c_eql / c_df:>8.2f}{c_eql / c_dk:>9.2f}"
            f"{min(r_df):>9.2f}-{max(r_df):<5.2f}{min(r_dk):>9.2f}-{max(r_dk):<5.2f}"
        )
    print(
        f"CPU per run (process_time, all threads; median of rounds) and per-round wall ratios:\n"
        f"{'query':<26}{'EQL cpu':>9}{'DF cpu':>11}{'Duck cpu':>11}{'EQL/DF':>8}"
        f"{'EQL/Duck':>9}{'EQL/DF rounds':>15}  {'EQL/Duck rounds'}"
    )
    print("\n".join(cpu_lines))
    print(f"load (1-min) at end: {load1():.2f} (start {load_start:.2f}), {dt.date.today()}")
    store.close()


def _rows(r: object) -> int:
    if isinstance(r, pa.Table):
        return int(r.num_rows)
    if hasattr(r, "num_rows"):  # EQL's result
        return int(r.num_rows)
    return int(r.read_all().num_rows) if hasattr(r, "read_all") else -1


def _plain(table: pa.Table) -> pa.Table:
    cols = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


if __name__ == "__main__":
    main()
