"""The per-entity event index (`storage.rollups`): scaling, size, refresh time, upkeep, memory.

python -m benchmarks.bench_rollups [--stores A,B,C] [--data-dir DIR] [--rounds N]
    [--appends N,N,...] [--only scaling,refresh,maintenance,memory] [--work DIR]
`--stores` are demo stores of growing size (default benchmarks/.data/m100k, m1, m3: `eql demo
--users 100000 / 1000000 / 3000000 --seed 42`), opened read-only; `--data-dir` (default
benchmarks/.data/m1) is copied into `--work` (a new folder under /tmp by default, removed at the
end) for what writes (once for the refresh, once per N for the upkeep): the originals are never
written. Sections:
- scaling: lapsed_vips (`bench_eql`) on every store, interleaved (each round runs every store and
  contender once, the order rotated), as EQL at the fixed reference time (a repeat: the index's
  answers are reused), EQL at a new reference time every round (the answers computed anew, what
  the index keeps is kept) and EQL without the index (`EngineSettings(rollups=False)`); the
  median per purchase event of each, and the spread over the sizes (goal: within 1.1x); then
  bytes per event: the sorted index (`EventIndex.nbytes`, with the columns ts and amount), the
  dense path's converted columns (`storage.rollups_dense`: what lapsed_vips keeps), the
  stream's own Arrow table.
- refresh: `DEFINE SEGMENT lapsed_vip ...` and `REFRESH SEGMENT lapsed_vip` on the copy, in this
  (warm) process: the refresh at the fixed reference time, at a new one every round, and DEFINE +
  REFRESH at a new one (goal <= 60 ms); then in fresh processes (`python -c`, the store opened
  read/write on the copy): the time inside from `Session.open` to the refresh done, and the
  process's wall time (goal <= 250 ms inside).
- maintenance: `Store.commit` of an append of N purchases with nothing built (today's append),
  against the same commit followed by the catch-up the next query pays: of the sorted index
  (`store.indexes.get('purchase', 'user_id')`, built with its columns ts and amount), and of the
  dense path (`store.indexes.parts('purchase')` with the columns user_id, ts and amount of each
  part converted). Interleaved rounds (the order rotated), per appended event (goal <= 1.2x).
- memory: lapsed_vips on the largest store in a child process per setting (rollups on, off),
  with a 2 GiB DataFusion pool (`EngineSettings(memory_limit=...)`): peak RSS (VmHWM; and
  `resource.getrusage`'s, which in a child starts at its parent's), the RSS before the first
  query, and what the index keeps.
The 1-minute load average is printed at the start and end of every section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import textwrap
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa

from benchmarks.bench_eql import QUERIES, REF, interleaved, load1
from benchmarks.bench_ingest import purchases
from runtime import WRITE, Session
from runtime.engine import Engine, EngineSettings
from storage import ChangeSet, Store

LAPSED_VIPS = dict((name, eql) for name, eql, _ in QUERIES)["lapsed_vips"]
CONDITION = (
    "sum(purchase.amount DURING LAST 365 DAYS) > 1000 AND NOT DID purchase DURING LAST 60 DAYS"
)
DEFINE = f"DEFINE SEGMENT lapsed_vip ON users WHERE {CONDITION}"
REFRESH = "REFRESH SEGMENT lapsed_vip"
POOL = 2 << 30  # the DataFusion memory pool of the memory section
ROOT = Path(__file__).resolve().parents[1]


def _ms(seconds: float) -> str:
    return f"{seconds * 1000:.1f}"


def _median(xs: list[float]) -> float:
    return statistics.median(xs)


def _load(label: str) -> float:
    value = load1()
    print(f"load (1-min) at {label}: {value:.2f}", flush=True)
    return value


class Times:
    """A reference time no run used before: REF minus one microsecond more each time (so no
    answer of the index computed for an earlier time is reused)."""

    def __init__(self) -> None:
        self.shift = 0

    def new(self) -> dt.datetime:
        self.shift += 1
        return REF - dt.timedelta(microseconds=self.shift)


# ---- scaling and bytes ------------------------------------------------------------------------
def scaling(paths: list[Path], rounds: int, warmup: int) -> None:
    print(f"\n== scaling: lapsed_vips per purchase event, {rounds} interleaved rounds ==")
    start = _load("start")
    stores = [Store.open(p, read_only=True) for p in paths]
    times = Times()
    runs: list[Callable[[], object]] = []
    labels: list[tuple[int, str]] = []
    for i, store in enumerate(stores):
        runs += _contenders(store, times)
        labels += [(i, "EQL"), (i, "EQL new time"), (i, "EQL no index")]
    samples = interleaved(runs, rounds, warmup)
    events = [store.event_count("purchase") for store in stores]
    print(f"{'store':<28}{'users':>11}{'purchases':>12}{'contender':>15}{'ms':>9}{'ns/event':>10}")
    per_event: dict[str, list[float]] = {}
    for (i, label), sample in zip(labels, samples, strict=True):
        ns = sample.median / events[i] * 1e9
        per_event.setdefault(label, []).append(ns)
        print(
            f"{paths[i]!s:<28}{stores[i].count('users'):>11,}{events[i]:>12,}{label:>15}"
            f"{_ms(sample.median):>9}{ns:>10.1f}  rows {_rows(sample.result)}"
        )
    for label, values in per_event.items():
        spread = max(values) / min(values)
        verdict = "met" if spread <= 1.1 else "missed"
        print(f"  {label}: per-event spread max/min {spread:.2f} (goal <= 1.1x: {verdict})")
    print(
        "bytes per purchase event: the sorted index (`EventIndex.nbytes`: keys and positions,\n"
        "and the columns ts, amount), the dense path's converted columns (user_id, ts, amount\n"
        "of every part), the stream's own Arrow table:\n"
        f"{'store':<28}{'index B/event':>15}{'keys+positions':>16}{'columns':>9}"
        f"{'index MB':>10}{'dense parts B/event':>21}{'stream B/event':>16}"
    )
    for path, store, n in zip(paths, stores, events, strict=True):
        index, table = store.indexes.get("purchase", "user_id")
        index.column(table, "ts")
        index.column(table, "amount")
        bare = index.keys.nbytes + index.positions.nbytes
        print(
            f"{path!s:<28}{index.nbytes / n:>15.1f}{bare / n:>16.1f}"
            f"{(index.nbytes - bare) / n:>9.1f}{index.nbytes / 2**20:>10.1f}"
            f"{_convert(store) / n:>21.1f}{table.nbytes / n:>16.1f}"
        )
    for store in stores:
        store.close()
    _load(f"end (start {start:.2f})")


def _contenders(store: Store, times: Times) -> list[Callable[[], object]]:
    """lapsed_vips as EQL (fixed reference time), EQL at a new time, EQL without the index."""
    on, off = Engine(store), Engine(store, EngineSettings(rollups=False))
    return [
        lambda: on.query(LAPSED_VIPS, now=REF),
        lambda: on.query(LAPSED_VIPS, now=times.new()),
        lambda: off.query(LAPSED_VIPS, now=REF),
    ]


def _rows(result: object) -> int:
    return int(result.num_rows) if isinstance(result, pa.Table) else -1


# ---- refresh: warm process, fresh processes -----------------------------------------------------
FRESH = textwrap.dedent(
    """
    import datetime as dt, json, sys, time
    t_start = time.perf_counter()
    from runtime import WRITE, Session
    t0 = time.perf_counter()
    ref = dt.datetime.fromisoformat(sys.argv[2])
    session = Session.open(sys.argv[1])
    t1 = time.perf_counter()
    session.execute(sys.argv[3], as_of=ref, permissions=WRITE)
    t2 = time.perf_counter()
    out = session.execute(sys.argv[4], as_of=ref, permissions=WRITE)
    t3 = time.perf_counter()
    session.close()
    t4 = time.perf_counter()
    print(json.dumps({"imports": t0 - t_start, "open": t1 - t0, "define": t2 - t1,
                      "refresh": t3 - t2, "inside": t3 - t0, "close": t4 - t3,
                      "size": out.table.column("size")[0].as_py()}))
    """
)


def refresh(copy: Path, rounds: int, warmup: int) -> None:
    print(f"\n== refresh of lapsed_vip on a copy of the store ({copy}) ==")
    start = _load("start")
    times = Times()
    with Session.open(copy) as session:
        users = session.store.count("users")
        n = session.store.event_count("purchase")
        print(f"{users:,} users, {n:,} purchases")
        t0 = time.perf_counter()
        session.execute(DEFINE, as_of=REF, permissions=WRITE)
        t1 = time.perf_counter()
        first = session.query(REFRESH, None, REF, WRITE)
        t2 = time.perf_counter()
        print(
            f"first DEFINE {_ms(t1 - t0)} ms, first REFRESH {_ms(t2 - t1)} ms (builds the "
            f"index), {first.column('size')[0].as_py():,} members"
        )

        def again() -> object:
            return session.query(REFRESH, None, REF, WRITE)

        def at_new_time() -> object:
            return session.query(REFRESH, None, times.new(), WRITE)

        def define_and_refresh() -> object:
            at = times.new()
            session.execute(DEFINE, as_of=at, permissions=WRITE)
            return session.query(REFRESH, None, at, WRITE)

        def query_alone() -> object:
            return session.engine.query(LAPSED_VIPS, now=times.new())

        fns = [again, at_new_time, define_and_refresh, query_alone]
        labels = [
            "REFRESH, same reference time (index answers reused)",
            "REFRESH, a new reference time (answers computed)",
            "DEFINE + REFRESH, a new reference time",
            "the query alone (FIND ... RETURN id), new time",
        ]
        samples = interleaved(fns, rounds, warmup)
        print(f"warm process, {rounds} interleaved rounds (medians; goal <= 60 ms):")
        for label, s in zip(labels, samples, strict=True):
            verdict = "" if "query" in label else ("  met" if s.median <= 0.060 else "  missed")
            print(
                f"  {label:<54}{_ms(s.median):>8} ms  (rounds {_ms(min(s.wall))}-"
                f"{_ms(max(s.wall))}; CPU {_ms(s.median_cpu)} ms){verdict}"
            )
    fresh: list[dict[str, Any]] = []
    walls: list[float] = []
    for _ in range(rounds):
        t0 = time.perf_counter()
        out = subprocess.run(
            [sys.executable, "-c", FRESH, str(copy), REF.isoformat(), DEFINE, REFRESH],
            capture_output=True,
            text=True,
            check=True,
            cwd=ROOT,
        )
        walls.append(time.perf_counter() - t0)
        fresh.append(json.loads(out.stdout.strip().splitlines()[-1]))
    inside = _median([f["inside"] for f in fresh])
    verdict = "met" if inside <= 0.250 else "missed"
    print(
        f"fresh process (`python -c`, read/write on the copy), {rounds} runs, medians: inside "
        f"(Session.open -> refresh done) {_ms(inside)} ms (goal <= 250 ms: {verdict}; runs "
        f"{_ms(min(f['inside'] for f in fresh))}-{_ms(max(f['inside'] for f in fresh))}) = "
        f"open {_ms(_median([f['open'] for f in fresh]))} + DEFINE "
        f"{_ms(_median([f['define'] for f in fresh]))} + REFRESH "
        f"{_ms(_median([f['refresh'] for f in fresh]))} ms; imports before it "
        f"{_ms(_median([f['imports'] for f in fresh]))} ms, close after "
        f"{_ms(_median([f['close'] for f in fresh]))} ms; process wall {_ms(_median(walls))} ms "
        f"(runs {_ms(min(walls))}-{_ms(max(walls))}); {fresh[-1]['size']:,} members"
    )
    _load(f"end (start {start:.2f})")


# ---- maintenance: an append's commit, with and without the index's catch-up ------------------
UPKEEP = ("commit, nothing built", "+ sorted index catch-up", "+ dense parts catch-up")


def maintenance(src: Path, work: Path, sizes: list[int], rounds: int) -> None:
    print(
        f"\n== index upkeep: commit of N purchases, {rounds} interleaved rounds, a new copy of "
        f"{src} per N ==\n"
        "Per N: the commit with nothing built (today's append); the commit, then\n"
        "`store.indexes.get('purchase', 'user_id')` with the sorted index built (its ts and\n"
        "amount columns too); the commit, then the dense path's parts with their user_id, ts,\n"
        "amount columns (`store.indexes.parts`: what a query on a dense key converts). Medians,\n"
        "the ratio to the plain commit (goal <= 1.2x) and its per-round range"
    )
    start = _load("start")
    seed = iter(range(1000, 10**9))
    print(
        f"{'N':>8}  {'contender':<25}{'total ms':>10}{'catch-up ms':>13}{'µs/event':>10}"
        f"{'ratio':>7}{'rounds':>12}"
    )
    for n in sizes:
        copy = work / f"upkeep-{n}"
        shutil.copytree(src, copy)
        store = Store.open(copy)
        try:
            before = store.event_count("purchase")
            done = _upkeep(store, n, rounds, seed)
            after = store.event_count("purchase")
        finally:
            store.close()
            shutil.rmtree(copy, ignore_errors=True)
        base = _median([t for t, _ in done[0]])
        for label, runs in zip(UPKEEP, done, strict=True):
            total = _median([t for t, _ in runs])
            ratios = [t / p for (t, _), (p, _) in zip(runs, done[0], strict=True)]
            verdict = "" if runs is done[0] else ("  met" if total / base <= 1.2 else "  missed")
            print(
                f"{n:>8,}  {label:<25}{_ms(total):>10}{_ms(_median([c for _, c in runs])):>13}"
                f"{total / n * 1e6:>10.2f}{total / base:>7.2f}"
                f"{min(ratios):>6.2f}-{max(ratios):<5.2f}{verdict}",
                flush=True,
            )
        print(f"{'':>10}(purchases {before:,} -> {after:,} over the rounds)")
    _load(f"end (start {start:.2f})")


def _upkeep(
    store: Store, n: int, rounds: int, seed: Iterator[int]
) -> list[list[tuple[float, float]]]:
    """Per contender of `UPKEEP` and round: (commit + catch-up, catch-up) seconds; each round
    runs the three, the order rotated by one every round."""
    done: list[list[tuple[float, float]]] = [[], [], []]

    def commit() -> float:
        change = ChangeSet()
        change.append("purchase", purchases(n, next(seed)))  # made before the clock starts
        t0 = time.perf_counter()
        store.commit(change)
        return time.perf_counter() - t0

    def plain() -> None:
        store.indexes.clear()  # nothing built: today's append
        done[0].append((commit(), 0.0))

    def sorted_index() -> None:
        index, table = store.indexes.get("purchase", "user_id")  # built, untimed
        index.column(table, "ts")
        index.column(table, "amount")
        spent = commit()
        t0 = time.perf_counter()
        store.indexes.get("purchase", "user_id")
        catch_up = time.perf_counter() - t0
        done[1].append((spent + catch_up, catch_up))

    def dense_parts() -> None:
        _convert(store)  # built, untimed
        spent = commit()
        t0 = time.perf_counter()
        _convert(store)
        catch_up = time.perf_counter() - t0
        done[2].append((spent + catch_up, catch_up))

    fns = [plain, sorted_index, dense_parts]
    for r in range(rounds):
        k = r % len(fns)
        for fn in fns[k:] + fns[:k]:
            fn()
    return done


def _convert(store: Store) -> int:
    """The purchase stream's parts with the columns lapsed_vips reads converted (kept parts
    are not converted again); their bytes."""
    total = 0
    for part in store.indexes.parts("purchase"):
        part.keys("user_id")
        for name in ("user_id", "ts", "amount"):
            values, valid = part.column(name)
            total += values.nbytes + (0 if valid is None else valid.nbytes)
    return total


# ---- memory: lapsed_vips in a child process, rollups on and off --------------------------------
def memory(path: Path, rounds: int) -> None:
    print(
        f"\n== memory: lapsed_vips on {path}, a child process per setting, pool 2 GiB ==\n"
        "peak RSS = the child's VmHWM (/proc/self/status); getrusage's ru_maxrss is shown too,\n"
        "but a child's starts at what its parent held when it was spawned (Linux carries the\n"
        "high-water mark of the forked image over the exec), so it overstates a child of a big one"
    )
    start = _load("start")
    print(
        f"{'rollups':<9}{'RSS before':>11}{'peak RSS':>10}{'peak - before':>15}{'ru_maxrss':>11}"
        f"{'kept by index':>15}  rows"
    )
    for flag in ("on", "off", "on", "off"):
        cmd = [sys.executable, "-m", "benchmarks.bench_rollups", "--rss-child", flag]
        cmd += ["--data-dir", str(path), "--rounds", str(rounds)]
        out = subprocess.run(cmd, capture_output=True, text=True, check=True, cwd=ROOT)
        r = json.loads(out.stdout.strip().splitlines()[-1])
        mb = {k: v / 2**20 for k, v in r.items() if k in ("before", "peak", "maxrss", "index")}
        print(
            f"{flag:<9}{mb['before']:>8.0f} MB{mb['peak']:>7.0f} MB"
            f"{mb['peak'] - mb['before']:>12.0f} MB{mb['maxrss']:>8.0f} MB"
            f"{mb['index']:>12.0f} MB  {r['rows']:,} ({r['runs']} runs, "
            f"{r['seconds'] * 1000:.0f} ms the first)",
            flush=True,
        )
    _load(f"end (start {start:.2f})")


def _status(field: str) -> int:
    """A `Vm...` figure of /proc/self/status, in bytes."""
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith(field + ":"):
            return int(line.split()[1]) * 1024
    raise KeyError(field)


def rss_child(path: Path, rollups: bool, rounds: int) -> None:
    """One child of `memory`: the store opened read-only, lapsed_vips run `rounds` times (the
    first at REF, the others at new reference times); prints a JSON line."""
    store = Store.open(path, read_only=True)
    engine = Engine(store, EngineSettings(memory_limit=POOL, rollups=rollups))
    before = _status("VmRSS")
    times = Times()
    t0 = time.perf_counter()
    result = engine.query(LAPSED_VIPS, now=REF)
    seconds = time.perf_counter() - t0
    for _ in range(rounds - 1):
        result = engine.query(LAPSED_VIPS, now=times.new())
    figures = {
        "before": before,
        "peak": _status("VmHWM"),
        "maxrss": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024,
        "index": _convert(store) if rollups else 0,  # converted by the queries already
        "rows": result.num_rows,
        "runs": rounds,
        "seconds": seconds,
    }
    print(json.dumps(figures))
    store.close()


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument(
        "--stores",
        default="benchmarks/.data/m100k,benchmarks/.data/m1,benchmarks/.data/m3",
        help="demo stores of growing size, comma-separated (read-only)",
    )
    ap.add_argument("--data-dir", default="benchmarks/.data/m1", help="copied for what writes")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--appends", default="1000,20000,100000", help="N purchases per commit")
    ap.add_argument("--only", default="scaling,refresh,maintenance,memory")
    ap.add_argument("--memory-store", default="", help="default: the last of --stores")
    ap.add_argument("--work", default="", help="where the copy goes (default: a new temp dir)")
    ap.add_argument("--rss-child", choices=("on", "off"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    rounds, warmup = max(1, args.rounds), max(0, args.warmup)
    if args.rss_child:
        rss_child(Path(args.data_dir), args.rss_child == "on", rounds)
        return
    paths = [Path(p) for p in args.stores.split(",") if p]
    sections = set(args.only.split(","))
    for p in [*paths, Path(args.data_dir)]:
        if not (p / "rocks").exists():
            raise SystemExit(f"no store at {p}: eql demo --data-dir {p} --users N --seed 42")
    print(f"bench_rollups, {dt.date.today()}, pid {os.getpid()}, sections {sorted(sections)}")
    if "scaling" in sections:
        scaling(paths, rounds, warmup)
    if sections & {"refresh", "maintenance"}:
        work = Path(args.work) if args.work else Path(tempfile.mkdtemp(prefix="bench-rollups-"))
        try:
            if "refresh" in sections:
                copy = work / "store"
                t0 = time.perf_counter()
                shutil.copytree(args.data_dir, copy)
                print(f"\ncopied {args.data_dir} to {copy} in {time.perf_counter() - t0:.1f} s")
                refresh(copy, rounds, warmup)
                shutil.rmtree(copy, ignore_errors=True)
            if "maintenance" in sections:
                sizes = [int(n) for n in args.appends.split(",") if n]
                maintenance(Path(args.data_dir), work, sizes, rounds)
        finally:
            if not args.work:
                shutil.rmtree(work, ignore_errors=True)
    if "memory" in sections:
        memory(Path(args.memory_store) if args.memory_store else paths[-1], rounds)


if __name__ == "__main__":
    main()
