"""EQL compile time, and EQL queries next to hand-written DataFusion SQL, DuckDB SQL and Polars.

python -m benchmarks.bench_eql [--data-dir DIR] [--repeat N] [--warmup N]
The store defaults to benchmarks/.data/m1 (build it with
`eql demo --data-dir benchmarks/.data/m1 --users 1000000`). The queries are `QUERIES` (six) and
`SEGMENT_QUERIES` (segment conditions), each with its hand-written SQL and Polars query. Each query
runs, interleaved (`--repeat` rounds, each round running every contender once, the order rotated
by one every round, after `--warmup` untimed rounds), as:
- EQL: `engine.query` with the fixed reference time, as a server runs a repeated text: the plan
  and the answers of the per-entity event index (`storage.rollups`) are kept while the stream is
  unchanged, so a round after the first reuses them;
- EQL new time: the same text at a new reference time every round (REF minus the round's number
  of microseconds): compiled anew and every index answer computed anew (the index itself, built
  in the first run, is kept), the cost of a query nothing was kept for;
- EQL no index: a second engine with `EngineSettings(rollups=False)` (every aggregate scans the
  stream, as before the index);
- DataFusion SQL on the engine's registered tables (`engine.peer_context()`);
- DuckDB (2 threads) on native tables (`CREATE TABLE t AS SELECT * FROM <the Arrow table>`, built
  once, not timed);
- Polars: a lazy query over `pl.from_arrow` frames of the same tables (built once), collected
  every round.
Printed: the medians of the rounds (wall ms) and the row counts; EQL's ratios of medians to each
peer and whether the answers agree (every contender the same row count and the same set of keys,
the leading `KEYS[name]` columns); the median process CPU time per run (every thread of the
process: DataFusion's, DuckDB's and Polars' too) and the range of the per-round wall ratios.
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
from typing import Any

import polars as pl
import pyarrow as pa

from eql.compiler import compile_query
from runtime.engine import Engine, EngineSettings
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


# segment conditions (issue 14), run by this benchmark beside QUERIES (which other benchmarks
# read as the six queries)
SEGMENT_QUERIES: list[tuple[str, str, str]] = [
    (
        "shanghai_cooling",
        """FIND users WHERE home_store.city = 'Shanghai'
             AND count(purchase DURING LAST 30 DAYS) >= 3
             AND NOT DID purchase DURING LAST 7 DAYS RETURN id""",
        f"""SELECT u.id FROM users u JOIN stores s ON u.home_store_id = s.id
            JOIN (SELECT user_id FROM purchase WHERE ts >= {D30} AND ts < {END}
                  GROUP BY user_id HAVING count(*) >= 3) p ON p.user_id = u.id
            WHERE s.city = 'Shanghai' AND u.id NOT IN (SELECT user_id FROM purchase
              WHERE ts >= {D7} AND ts < {END} AND user_id IS NOT NULL)""",
    ),
]

# the leading columns that identify an answer's row (compared as sets across contenders)
KEYS = {
    "shanghai_buyers": 1,
    "app_spenders_no_coupon": 1,
    "store_sales_idle_members": 1,
    "region_lifetime_spend": 1,
    "daily_category_sales": 2,
    "lapsed_vips": 1,
    "shanghai_cooling": 1,
}

# ---- the Polars peer: one lazy query per benchmark query, over frames of the same tables -------
T_END, T30, T90, T7, T60, T365 = (
    REF,
    dt.datetime(2026, 10, 2, tzinfo=dt.UTC),
    dt.datetime(2026, 8, 3, tzinfo=dt.UTC),
    dt.datetime(2026, 10, 25, tzinfo=dt.UTC),
    dt.datetime(2026, 9, 2, tzinfo=dt.UTC),
    dt.datetime(2025, 11, 1, tzinfo=dt.UTC),
)
Frames = Callable[[str], pl.LazyFrame]  # a table's name -> its frame, lazily


def _during(events: pl.LazyFrame, start: dt.datetime) -> pl.LazyFrame:
    return events.filter((pl.col("ts") >= start) & (pl.col("ts") < T_END))


def _shanghai(t: Frames, key: str) -> pl.LazyFrame:
    """The ids of the stores in Shanghai, named `key`."""
    return t("stores").filter(pl.col("city") == "Shanghai").select(pl.col("id").alias(key))


def _by_user(how: str) -> dict[str, Any]:
    return {"left_on": "id", "right_on": "user_id", "how": how}


def pl_shanghai_buyers(t: Frames) -> pl.LazyFrame:
    p = (
        _during(t("purchase"), T30)
        .group_by("user_id")
        .agg(n=pl.len(), spend_30d=pl.col("amount").sum())
    )
    users = t("users").join(_shanghai(t, "home_store_id"), on="home_store_id", how="semi")
    found = users.join(p, **_by_user("inner")).filter(pl.col("n") >= 3)
    return found.sort("spend_30d", descending=True).head(100).select("id", "name", "spend_30d")


def pl_app_spenders_no_coupon(t: Frames) -> pl.LazyFrame:
    p = _during(t("purchase"), T90).filter(pl.col("channel") == "app")
    p = p.group_by("user_id").agg(s=pl.col("amount").sum()).filter(pl.col("s") > 500)
    visits = _during(t("visit"), T7).select("user_id")
    coupons = _during(t("coupon_use"), T30).select("user_id")
    users = t("users").select("id").join(p, **_by_user("semi"))
    return users.join(visits, **_by_user("semi")).join(coupons, **_by_user("anti"))


def pl_store_sales_idle_members(t: Frames) -> pl.LazyFrame:
    p = _during(t("purchase"), T30)
    sales = p.group_by("store_id").agg(sales_30d=pl.col("amount").sum())
    idle = t("users").join(p.select("user_id"), **_by_user("anti"))
    idle = idle.group_by("home_store_id").agg(idle_members=pl.len())
    stores = t("stores").select("id", "city")
    stores = stores.join(sales, left_on="id", right_on="store_id", how="left")
    stores = stores.join(idle, left_on="id", right_on="home_store_id", how="left")
    filled = stores.with_columns(
        pl.col("sales_30d").fill_null(0), pl.col("idle_members").fill_null(0)
    )
    return filled.sort("sales_30d", descending=True)


def pl_region_lifetime_spend(t: Frames) -> pl.LazyFrame:
    before = t("purchase").filter(pl.col("ts") < T_END)
    spend = before.group_by("user_id").agg(spend=pl.col("amount").sum())
    regions = t("stores").select(pl.col("id").alias("home_store_id"), "region")
    users = t("users").select("id", "home_store_id").join(regions, on="home_store_id", how="left")
    users = users.join(spend, **_by_user("left"))
    return users.group_by("region").agg(
        users=pl.len(), avg_spend=pl.col("spend").fill_null(0).mean()
    )


def pl_daily_category_sales(t: Frames) -> pl.LazyFrame:
    p = _during(t("purchase"), T7).join(_shanghai(t, "store_id"), on="store_id", how="semi")
    p = p.join(t("products").select("sku", "category"), on="sku", how="left")
    return p.group_by(pl.col("ts").dt.date().alias("day"), "category").agg(
        sales=pl.col("amount").sum(), buyers=pl.col("user_id").drop_nulls().n_unique()
    )


def pl_lapsed_vips(t: Frames) -> pl.LazyFrame:
    p = _during(t("purchase"), T365).group_by("user_id").agg(s=pl.col("amount").sum())
    recent = _during(t("purchase"), T60).select("user_id")
    users = t("users").select("id").join(p.filter(pl.col("s") > 1000), **_by_user("semi"))
    return users.join(recent, **_by_user("anti"))


def pl_shanghai_cooling(t: Frames) -> pl.LazyFrame:
    p = _during(t("purchase"), T30).group_by("user_id").agg(n=pl.len())
    recent = _during(t("purchase"), T7).select("user_id")
    users = t("users").select("id", "home_store_id")
    users = users.join(_shanghai(t, "home_store_id"), on="home_store_id", how="semi")
    users = users.join(p.filter(pl.col("n") >= 3), **_by_user("semi"))
    return users.join(recent, **_by_user("anti")).select("id")


POLARS: dict[str, Callable[[Frames], pl.LazyFrame]] = {
    "shanghai_buyers": pl_shanghai_buyers,
    "app_spenders_no_coupon": pl_app_spenders_no_coupon,
    "store_sales_idle_members": pl_store_sales_idle_members,
    "region_lifetime_spend": pl_region_lifetime_spend,
    "daily_category_sales": pl_daily_category_sales,
    "lapsed_vips": pl_lapsed_vips,
    "shanghai_cooling": pl_shanghai_cooling,
}


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


CONTENDERS = ("EQL", "EQL new time", "EQL no index", "DF SQL", "DuckDB", "Polars")


def tables(store: Store) -> list[tuple[str, pa.Table]]:
    """Every entity and stream table of the store, by name."""
    found = [(e.name, store.entity_table(e.name)) for e in store.schema.entities]
    return found + [(s.name, store.event_table(s.name)) for s in store.schema.streams]


def duckdb_tables(store: Store) -> Any:
    """A DuckDB connection (2 threads) holding the store's tables as native DuckDB tables."""
    import duckdb

    con = duckdb.connect()
    con.execute("SET threads TO 2")
    for name, table in tables(store):
        con.register("arrow_table", _plain(table))
        con.execute(f'CREATE TABLE "{name}" AS SELECT * FROM arrow_table')
        con.unregister("arrow_table")
    return con


def polars_frames(store: Store) -> dict[str, pl.DataFrame]:
    """The store's tables as Polars frames (`pl.from_arrow`, built once)."""
    frames = {}
    for name, table in tables(store):
        frame = pl.from_arrow(table)
        assert isinstance(frame, pl.DataFrame)
        frames[name] = frame
    return frames


class Peers:
    """What a query runs on besides EQL: the engine with the index and one without, DataFusion's
    context with the same tables, DuckDB's native tables and Polars' frames."""

    def __init__(self, store: Store) -> None:
        self.engine = Engine(store)
        self.plain = Engine(store, EngineSettings(rollups=False))
        self.ctx = self.engine.peer_context()  # the same registered tables
        t0 = time.perf_counter()
        self.duck = duckdb_tables(store)
        self.duck_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        self.frames = polars_frames(store)
        self.polars_s = time.perf_counter() - t0
        self._shift = 0  # microseconds before REF of the last "EQL new time" run

    def new_time(self) -> dt.datetime:
        """A reference time no run used before (REF minus a microsecond more each time)."""
        self._shift += 1
        return REF - dt.timedelta(microseconds=self._shift)

    def runs(self, name: str, eql: str, sql: str) -> list[Callable[[], object]]:
        """One run of each of `CONTENDERS`, in that order."""
        lazy = POLARS[name](lambda table: self.frames[table].lazy())
        return [
            lambda: self.engine.query(eql, now=REF),
            lambda: self.engine.query(eql, now=self.new_time()),
            lambda: self.plain.query(eql, now=REF),
            lambda: self.ctx.sql(sql).to_arrow_table(),
            lambda: self.duck.sql(sql).to_arrow_table(),
            lambda: lazy.collect(),
        ]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/m1")
    ap.add_argument("--repeat", type=int, default=5, help="interleaved timed rounds per query")
    ap.add_argument("--warmup", type=int, default=1, help="untimed rounds per query first")
    ap.add_argument("--only", default="", help="comma-separated query names (default: all)")
    args, _ = ap.parse_known_args()
    if not (Path(args.data_dir) / "rocks").exists():
        print(
            f"no store at {args.data_dir}: build it with "
            f"`eql demo --data-dir {args.data_dir} --users 1000000`"
        )
        return
    store = Store.open(args.data_dir, read_only=True)
    compile_times(store)
    peers = Peers(store)
    events = sum(store.event_count(s.name) for s in store.schema.streams)
    print(
        f"store {args.data_dir}: {store.count('users'):,} users, {events:,} events "
        f"({store.event_count('purchase'):,} purchases); built once, untimed: DuckDB's native "
        f"tables {peers.duck_s:.1f} s, Polars' frames {peers.polars_s:.1f} s"
    )
    repeat, warmup = max(1, args.repeat), max(0, args.warmup)
    chosen = [q for q in QUERIES + SEGMENT_QUERIES if not args.only or q[0] in args.only.split(",")]
    load_start = load1()
    print(
        f"load (1-min) at start: {load_start:.2f}; {repeat} interleaved rounds per query "
        f"({', '.join(CONTENDERS)}; order rotated each round) after {warmup} untimed"
    )
    print("wall ms, median of rounds:")
    print(f"{'query':<26}" + "".join(f"{c:>14}" for c in CONTENDERS) + "  rows", flush=True)
    ratio_lines: list[str] = []
    cpu_lines: list[str] = []
    for name, eql, sql in chosen:
        samples = interleaved(peers.runs(name, eql, sql), repeat, warmup)
        walls = [s.median for s in samples]
        results = [_table(s.result) for s in samples]
        print(
            f"{name:<26}"
            + "".join(f"{w * 1000:>14.1f}" for w in walls)
            + f"  {results[0].num_rows}",
            flush=True,
        )
        eql_w, new_w, plain_w, df_w, duck_w, pl_w = walls
        ratio_lines.append(
            f"{name:<26}{eql_w / plain_w:>9.2f}{eql_w / df_w:>8.2f}{eql_w / duck_w:>9.2f}"
            f"{eql_w / pl_w:>9.2f}{new_w / duck_w:>11.2f}{new_w / pl_w:>11.2f}  "
            + agreement(results, KEYS[name])
        )
        cpus = [s.median_cpu for s in samples]
        spans = [
            _span([e / p for e, p in zip(samples[i].wall, samples[j].wall, strict=True)])
            for i, j in ((0, 4), (0, 5), (1, 4), (1, 5))
        ]
        cpu_lines.append(
            f"{name:<26}" + "".join(f"{c * 1000:>14.1f}" for c in cpus) + "  " + "  ".join(spans)
        )
    print(
        "EQL's ratios of medians (< 1: EQL faster) and the answers' agreement:\n"
        f"{'query':<26}{'/no idx':>9}{'/DF':>8}{'/DuckDB':>9}{'/Polars':>9}"
        f"{'new/DuckDB':>11}{'new/Polars':>11}  answers"
    )
    print("\n".join(ratio_lines))
    print(
        "CPU ms per run (process_time, all threads; median of rounds), and the per-round wall\n"
        "ratios EQL/DuckDB, EQL/Polars, EQL new time/DuckDB, EQL new time/Polars (min-max):\n"
        f"{'query':<26}" + "".join(f"{c:>14}" for c in CONTENDERS)
    )
    print("\n".join(cpu_lines))
    print(f"load (1-min) at end: {load1():.2f} (start {load_start:.2f}), {dt.date.today()}")
    store.close()


def agreement(results: list[pa.Table], keys: int) -> str:
    """ "same" when every answer has the first's row count and set of keys (its leading `keys`
    columns), else which contenders differ and how."""
    first = key_set(results[0], keys)
    wrong = []
    for name, table in zip(CONTENDERS[1:], results[1:], strict=True):
        found = key_set(table, keys)
        if table.num_rows != results[0].num_rows or found != first:
            wrong.append(
                f"{name}: {table.num_rows} rows, {len(found - first)} keys not in EQL's, "
                f"{len(first - found)} missing"
            )
    return "same rows and keys" if not wrong else "DIFFER: " + "; ".join(wrong)


def key_set(table: pa.Table, keys: int) -> set[tuple[object, ...]]:
    columns = [table.column(i).to_pylist() for i in range(keys)]
    return {tuple(_plain_value(v) for v in row) for row in zip(*columns, strict=True)}


def _plain_value(v: object) -> object:
    """A day as a date whichever type carried it (a timestamp at midnight, a date)."""
    return v.date() if isinstance(v, dt.datetime) else v


def _span(ratios: list[float]) -> str:
    return f"{min(ratios):.2f}-{max(ratios):.2f}"


def _table(r: object) -> pa.Table:
    if isinstance(r, pa.Table):
        return r
    if isinstance(r, pl.DataFrame):
        return r.to_arrow()
    raise TypeError(f"not a table: {type(r).__name__}")


def _plain(table: pa.Table) -> pa.Table:
    cols = [c.cast(pa.string()) if pa.types.is_dictionary(c.type) else c for c in table.columns]
    return pa.table(cols, names=table.column_names)


if __name__ == "__main__":
    main()
