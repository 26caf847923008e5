"""The served, live store: membership lookups with `eql serve --workers 1|2` next to as many
raw-ASGI hello workers, and the CDC apply rate of `eql serve --cdc` while it answers lookups.

python -m benchmarks.bench_live [--data-dir DIR] [--users N] [--duration S] [--rounds R]
    [--threads T] [--connections C] [--txns N] [--rows-per-txn K] [--rate RPS] [--cdc-rounds R]
    [--cdc-workers W] [--skip lookups|cdc]

All on 127.0.0.1, stopping by itself: wrk (`apt-get install wrk`) makes the load, the CDC source
is the tests' throwaway mariadbd (`tests.cdc.conftest.start_server`). Only copies of the store
(--data-dir, else a demo store of --users users) are served and changed, with the segment
`bench_seg` of `benchmarks.bench_server`; wrk's Lua picks keys at random among users 1..K (K:
the longest run of consecutive keys from 1).

1. `GET /v1/segments/bench_seg/members/{key}` on `eql serve --workers 1` and `--workers 2` (a
   writer and a reader process on one port, SO_REUSEPORT), next to a raw-ASGI app answering a
   fixed JSON body of the same size on 1 and 2 uvicorn processes run as the `eql serve` writer
   runs (`server.protocol.config`, `Server.run`: uvloop, httptools, no access log), the two each
   binding the port with SO_REUSEPORT (`server.workers.public_socket`). The four servers are up
   at once; each round measures each in turn (wrk -t T -c C, 1 s of warm-up, then --duration s);
   medians over --rounds. The per-key lookup rate limit is off (EQL_RATE_LOOKUP=0), as the hello
   app has none. Also shown: each server's CPU time split over its processes, and the cores wrk
   itself used (it shares the machine's).
2. `eql serve --workers W --cdc CONFIG` (connector `bench_live`, snapshot mode `never`, MariaDB
   `bench.users (id, city)` -> entity `users`). Each run stops the connector (`DELETE
   /v1/admin/cdc/connectors/bench_live`), writes --txns transactions into MariaDB, each an UPDATE
   of --rows-per-txn users' city, starts it again (`POST /v1/admin/cdc/connectors`) and times it
   until `GET /v1/admin/cdc` counts them: without lookups, and while wrk sends membership lookups
   paced at about --rate/s (each connection waits a Lua `delay` between requests, calibrated on
   the idle server: wrk has no fixed rate, so the rate falls when answers slow; it is printed).
   Lookup p99 idle: the same pace without an apply. Rounds alternate (unloaded, loaded), (loaded,
   unloaded), ...; medians. After each apply the last updated user is read back through the
   server.
Goals: lookups >= 0.7x hello at each worker count; apply loaded >= 0.7x unloaded; lookup p99
during the apply <= 2x idle.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_server import (
    ROOT,
    SEGMENT,
    Load,
    Wrk,
    _free_port,
    _lua,
    build_store,
    children,
    cpu_seconds,
    listeners,
    lookup_script,
    median,
    prepare_audiences,
)

HOST = "127.0.0.1"
MEMBER_PREFIX = f"/v1/segments/{SEGMENT}/members/"
HELLO_BODY = b'{"segment":"bench_seg","key":50000,"member":true,"version":1}'  # a lookup's size
CONNECTOR = "bench_live"
START_SECONDS = 180.0  # a server (and its reader) must answer within this
APPLY_SECONDS = 300.0  # a burst must be applied within this
VISIBLE_SECONDS = 1.0  # and each of its rows visible through any worker within this


@dataclass(frozen=True)
class Bench:
    """What every part of a run shares."""

    args: argparse.Namespace
    work: Path  # the run's temporary directory
    keys: Path  # the servers' keys file (EQL_KEYS_FILE)
    key: str  # an API key with scopes lookup and admin
    users: int  # wrk's keys are 1..users


# ---- servers ---------------------------------------------------------------------------------
async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(HELLO_BODY)).encode()),
    ]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": HELLO_BODY})


def serve_hello(port: int, shared: bool) -> None:
    """A hello worker run as `eql serve`'s writer runs; `shared`: on a SO_REUSEPORT socket."""
    from server.protocol import Server, config
    from server.settings import Settings
    from server.workers import public_socket

    server = Server(config(hello_app, Settings(host=HOST, port=port, log_level="warning")))
    server.run([public_socket(HOST, port)] if shared else None)


def wait_for(what: str, check: Callable[[], bool], seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


@dataclass
class Servers:
    """One server under test: its processes (an `eql serve` writer's readers are its children)."""

    name: str
    workers: int
    port: int
    procs: list[subprocess.Popen[bytes]]
    log: Path

    @property
    def url(self) -> str:
        return f"http://{HOST}:{self.port}"

    def cpu(self) -> list[float]:
        return [cpu_seconds(q) for p in self.procs for q in (p.pid, *children(p.pid))]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def wait_ready(self, path: str) -> None:
        """Every worker listens, and fresh connections to `path` reach writer and reader."""

        def ready() -> bool:
            if not self.alive():
                raise RuntimeError(f"{self.name} exited (see {self.log})")
            if listeners(self.port) != self.workers:
                return False
            seen = set()
            for _ in range(8):  # the kernel spreads fresh connections over the workers
                try:
                    r = httpx.get(self.url + path, timeout=2, trust_env=False)
                except httpx.HTTPError:
                    return False
                if r.status_code != 200:
                    return False
                seen.add(r.headers.get("x-eql-worker", "writer"))
            return path == "/" or len(seen) == min(self.workers, 2)

        wait_for(self.name, ready)

    def stop(self) -> None:
        for proc in self.procs:
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs:
            try:
                proc.wait(30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()


def start_hello(workers: int, work: Path) -> Servers:
    port = _free_port()
    args = [sys.executable, "-m", "benchmarks.bench_live", "--serve-hello", "--port", str(port)]
    args += ["--shared"] if workers > 1 else []
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    log = work / f"hello-{workers}.log"
    with log.open("ab") as err:
        procs = [
            subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=err)
            for _ in range(workers)
        ]
    servers = Servers(f"hello x{workers} (raw ASGI)", workers, port, procs, log)
    servers.wait_ready("/")
    return servers


def start_eql(bench: Bench, data_dir: Path, workers: int, cdc: Path | None = None) -> Servers:
    port = _free_port()
    eql = [str(ROOT / ".venv/bin/eql")] if (ROOT / ".venv/bin/eql").exists() else []
    args = [*(eql or [sys.executable, "-m", "eql.cli.main"]), "serve", "--data-dir", str(data_dir)]
    args += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    args += ["--log-level", "warning", *(["--cdc", str(cdc)] if cdc else [])]
    env = {**os.environ, "EQL_KEYS_FILE": str(bench.keys), "EQL_RATE_LOOKUP": "0"}
    log = bench.work / f"eql-{data_dir.name}-{workers}.log"
    with log.open("ab") as err:
        proc = subprocess.Popen(
            args, cwd=bench.work, env=env, stdout=subprocess.DEVNULL, stderr=err
        )
    servers = Servers(f"eql serve --workers {workers}", workers, port, [proc], log)
    servers.wait_ready("/v1/health")
    return servers


# ---- load ------------------------------------------------------------------------------------
def paced_script(bench: Bench, delay_ms: float) -> Path:
    """Membership lookups, each connection waiting `delay_ms` on average between requests
    (wrk waits whole milliseconds: the fraction is a coin toss per request)."""
    whole, frac = int(delay_ms), delay_ms - int(delay_ms)
    delay = (
        f"\ndelay = function()\n  if math.random() < {frac:.4f} then return {whole + 1} end\n"
        f"  return {whole}\nend\n"
    )
    script = lookup_script(bench.key, bench.users, MEMBER_PREFIX) + delay
    return _lua(script, bench.work, "paced")


# ---- 1. lookup throughput --------------------------------------------------------------------
@dataclass
class Row:
    server: Servers
    loads: list[Load] = field(default_factory=list)
    cpu: list[list[float]] = field(default_factory=list)  # per run: CPU seconds per process


def lookups(bench: Bench, stores: tuple[Path, Path]) -> list[Row]:
    args = bench.args
    script = _lua(lookup_script(bench.key, bench.users, MEMBER_PREFIX), bench.work, "member")
    t0 = time.monotonic()
    started: list[Servers] = []
    try:
        started.append(start_hello(1, bench.work))
        started.append(start_eql(bench, stores[0], 1))
        started.append(start_hello(2, bench.work))
        started.append(start_eql(bench, stores[1], 2))
        print(f"servers up in {time.monotonic() - t0:.1f}s", flush=True)
        rows = [Row(s) for s in started]
        for _ in range(args.rounds):
            for row in rows:
                url, conns, threads = row.server.url, args.connections, args.threads
                Wrk(url, 1, conns, threads, script).finish()  # warm-up: connections, caches
                before = row.server.cpu()
                row.loads.append(Wrk(url, args.duration, conns, threads, script).finish())
                row.cpu.append([b - a for a, b in zip(before, row.server.cpu(), strict=False)])
                if not row.server.alive():
                    raise RuntimeError(f"{row.server.name} stopped during its run")
        return rows
    finally:
        for s in started:
            s.stop()


def lookup_table(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"membership lookups: wrk -t{args.threads} -c{args.connections} -d{args.duration:g}s "
        f"(after 1 s of warm-up), medians of {args.rounds} rounds",
        f"{'workers':>7}  {'server':26} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'cpu split':>10} {'wrk cores':>9} {'x hello':>7}  goal >= 0.7x",
        "-" * 104,
    ]
    hello: dict[int, float] = {}
    for row in rows:
        r = median([load.result for load in row.loads])
        wrk_cores = statistics.median(load.wrk_cpu / load.seconds for load in row.loads)
        totals = [sum(col) for col in zip(*row.cpu, strict=False)]
        split = "/".join(f"{100 * t / (sum(totals) or 1):.0f}" for t in totals)
        ratio = goal = ""
        if row.server.name.startswith("hello"):
            hello[row.server.workers] = r.rps
        else:
            x = r.rps / (hello.get(row.server.workers) or float("nan"))
            ratio, goal = f"{x:7.2f}", ("met" if x >= 0.7 else "missed")
        lines.append(
            f"{row.server.workers:>7}  {row.server.name:26} {r.rps:8.0f} {r.p50_ms:7.2f} "
            f"{r.p99_ms:7.2f} {r.errors:6d} {split:>10} {wrk_cores:9.2f} {ratio:>7}  {goal}"
        )
    lines.append(
        "cpu split: % of a server's CPU time in each of its processes (eql: writer/reader); "
        f"{os.cpu_count()} CPUs shared by wrk and the servers"
    )
    return "\n".join(lines)


# ---- 2. CDC apply while serving --------------------------------------------------------------
def _user(t: int, r: int, users: int, per_txn: int) -> int:
    """The r-th user that transaction t of a burst updates."""
    return (t * per_txn + r) % users + 1


def _city(burst: int, t: int) -> str:
    return f"burst{burst}-{t % 997}"  # new in every burst: every UPDATE changes its rows


def write_burst(source: Any, bench: Bench, burst: int) -> None:
    """--txns autocommit UPDATEs (a source transaction each), 200 statements a round trip."""
    from pymysql.constants import CLIENT

    txns, per_txn = bench.args.txns, bench.args.rows_per_txn
    conn = source.connect(client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            for start in range(0, txns, 200):
                statements = []
                for t in range(start, min(txns, start + 200)):
                    ids = ",".join(str(_user(t, r, bench.users, per_txn)) for r in range(per_txn))
                    city = _city(burst, t)
                    statements.append(f"UPDATE bench.users SET city = '{city}' WHERE id IN ({ids})")
                cur.execute(";".join(statements))
                while cur.nextset():
                    pass
    finally:
        conn.close()


def start_source(root: Path, users: int) -> Any:
    """The throwaway mariadbd, with bench.users holding users 1..users."""
    from tests.cdc.conftest import start_server

    source = start_server(root)
    source.sql(
        "CREATE DATABASE bench", "CREATE TABLE bench.users (id INT PRIMARY KEY, city VARCHAR(40))"
    )
    for start in range(1, users + 1, 5000):
        values = ",".join(f"({i}, 'seed')" for i in range(start, min(users + 1, start + 5000)))
        source.sql(f"INSERT INTO bench.users VALUES {values}")
    return source


class Admin:
    """The CDC admin routes (and a profile read) of the server under test."""

    def __init__(self, url: str, key: str, config: Path) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {key}"}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False)

    def entry(self) -> dict[str, Any]:
        r = self.client.get("/v1/admin/cdc")
        r.raise_for_status()
        for entry in r.json()["connectors"]:
            if entry["name"] == CONNECTOR:
                return dict(entry)
        raise RuntimeError(f"no connector {CONNECTOR} in {r.text}")

    def stop(self) -> None:
        r = self.client.delete(f"/v1/admin/cdc/connectors/{CONNECTOR}")
        if r.status_code not in (200, 404):
            raise RuntimeError(f"stopping the connector: {r.status_code} {r.text}")

    def start(self) -> None:
        r = self.client.post("/v1/admin/cdc/connectors", json={"config": str(self.config)})
        if r.status_code != 201:
            raise RuntimeError(f"starting the connector: {r.status_code} {r.text}")

    def city(self, key: int) -> Any:
        r = self.client.get(f"/v1/entities/users/{key}")
        r.raise_for_status()
        return r.json().get("attributes", {}).get("city")


@dataclass
class Apply:
    seconds: float
    txns: int
    rows: int
    load: Load | None  # the lookups during the apply, if any


def apply_burst(admin: Admin, source: Any, txns: int, load: Callable[[], Wrk] | None) -> Apply:
    """Time the stopped connector's catching up on the `txns` transactions MariaDB took since;
    with `load`, wrk starts first and is stopped once the connector has caught up."""
    base = admin.entry()
    end_gtid = str(source.sql("SELECT @@gtid_binlog_pos")[0][0])
    wrk = load() if load is not None else None
    if wrk is not None:
        time.sleep(0.5)  # its connections open and it reaches its pace
    t0 = time.monotonic()
    admin.start()
    while (entry := admin.entry())["transactions"] < base["transactions"] + txns:
        if entry["state"] == "failed" or time.monotonic() > t0 + APPLY_SECONDS:
            raise RuntimeError(f"the connector did not catch up: {entry}")
        time.sleep(0.05)
    took = time.monotonic() - t0
    during = wrk.finish("during the apply", early=True) if wrk is not None else None
    if (gtid := (entry.get("position") or {}).get("gtid")) != end_gtid:
        print(f"  note: the connector is at gtid {gtid}, MariaDB at {end_gtid}")
    done = entry["transactions"] - base["transactions"]
    return Apply(took, done, entry["rows_applied"] - base["rows_applied"], during)


def calibrate(bench: Bench, url: str, connections: int = 8) -> tuple[Path, int]:
    """A paced script reaching about --rate requests/s on the idle server: the per-connection
    delay tuned in up to three 2 s runs (more connections when no delay is left)."""
    rate = bench.args.rate
    delay = max(0.0, 1000 * connections / rate - 0.3)
    for _ in range(3):
        script = paced_script(bench, delay)
        got = Wrk(url, 2, connections, 1, script).finish().result.rps
        if abs(got - rate) < 0.05 * rate or got <= 0:
            break
        overhead = max(0.0, 1000 * connections / got - delay)  # ms a request takes besides
        if 1000 * connections / rate - overhead < 0.2:
            connections = int(connections * 1.5) + 1
        delay = max(0.0, 1000 * connections / rate - overhead)
    return paced_script(bench, delay), connections


def cdc(bench: Bench, store: Path) -> str:
    args = bench.args
    t0 = time.monotonic()
    source = start_source(bench.work / "mariadb", bench.users)
    servers: Servers | None = None
    try:
        config = bench.work / "cdc.yaml"
        config.write_text(
            f"name: {CONNECTOR}\nsource: {{host: {HOST}, port: {source.port}, user: root, "
            f"server_id: {random.randint(10**4, 10**8)}}}\nsnapshot: {{mode: never}}\n"
            "tables:\n  bench.users: {entity: users}\n",
            encoding="utf-8",
        )
        servers = start_eql(bench, store, args.cdc_workers, cdc=config)
        admin = Admin(servers.url, bench.key, config)
        wait_for("the connector running", lambda: admin.entry()["state"] == "running")
        print(f"MariaDB and eql serve --cdc up in {time.monotonic() - t0:.1f}s", flush=True)
        url = servers.url
        script, conns = calibrate(bench, url)

        def paced() -> Wrk:
            return Wrk(url, APPLY_SECONDS, conns, 1, script)

        idle: list[Load] = []
        unloaded: list[Apply] = []
        loaded: list[Apply] = []
        burst = 0
        for rnd in range(args.cdc_rounds):
            idle.append(Wrk(url, args.duration, conns, 1, script).finish("idle"))
            for under_load in (False, True) if rnd % 2 == 0 else (True, False):
                admin.stop()
                burst += 1
                write_burst(source, bench, burst)
                run = apply_burst(admin, source, args.txns, paced if under_load else None)
                (loaded if under_load else unloaded).append(run)
                last = _user(args.txns - 1, args.rows_per_txn - 1, bench.users, args.rows_per_txn)
                want, seen = _city(burst, args.txns - 1), time.monotonic()
                # a reader worker answers up to a follow interval behind the writer: every
                # commit must be visible within VISIBLE_SECONDS, through every process
                while (city := admin.city(last)) != want:
                    if time.monotonic() > seen + VISIBLE_SECONDS:
                        raise RuntimeError(f"user {last}: city {city!r} after burst {burst}")
                    time.sleep(0.01)
                lag = time.monotonic() - seen
                print(f"  burst {burst}: the last row read back after {lag * 1000:.0f} ms")
        return cdc_table(args, conns, idle, unloaded, loaded)
    finally:
        if servers is not None:
            servers.stop()
        source.stop()


def cdc_table(
    args: argparse.Namespace,
    conns: int,
    idle: list[Load],
    unloaded: list[Apply],
    loaded: list[Apply],
) -> str:
    lines = [
        f"CDC: bursts of {args.txns:,} transactions x {args.rows_per_txn} row updates "
        f"(MariaDB bench.users -> users) into eql serve --workers {args.cdc_workers} --cdc",
        f"paced lookups: wrk -t1 -c{conns} with a Lua delay, calibrated for {args.rate:,.0f} rps "
        "on the idle server",
        f"{'run':24} {'seconds':>8} {'txn/s':>8} {'rows/s':>9} {'lookup rps':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}",
        "-" * 86,
    ]

    def lookup_cells(load: Load | None) -> str:
        if load is None:
            return ""
        r = load.result
        return f"{r.rps:10.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.errors:6d}"

    for load in idle:
        lines.append(f"{'idle lookups':24} {load.seconds:8.1f} {'':8} {'':9} {lookup_cells(load)}")
    for name, runs in (("apply, no lookups", unloaded), ("apply, under lookups", loaded)):
        for a in runs:
            lines.append(
                f"{name:24} {a.seconds:8.2f} {a.txns / a.seconds:8.0f} "
                f"{a.rows / a.seconds:9.0f} {lookup_cells(a.load)}"
            )

    def mid(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    txn_u, txn_l = (mid([a.txns / a.seconds for a in runs]) for runs in (unloaded, loaded))
    rows_u, rows_l = (mid([a.rows / a.seconds for a in runs]) for runs in (unloaded, loaded))
    p99_idle = mid([load.result.p99_ms for load in idle])
    p99_apply = mid([a.load.result.p99_ms for a in loaded if a.load is not None])
    rps_apply = mid([a.load.result.rps for a in loaded if a.load is not None])
    apply_x, p99_x = txn_l / txn_u, p99_apply / p99_idle
    lines += [
        f"apply rate: no lookups {txn_u:,.0f} txn/s ({rows_u:,.0f} rows/s), under "
        f"{rps_apply:,.0f} lookups/s {txn_l:,.0f} txn/s ({rows_l:,.0f} rows/s): {apply_x:.2f}x "
        f"(goal >= 0.7x: {'met' if apply_x >= 0.7 else 'missed'})",
        f"lookup p99: idle {p99_idle:.2f} ms, during the apply {p99_apply:.2f} ms: {p99_x:.2f}x "
        f"(goal <= 2x: {'met' if p99_x <= 2 else 'missed'})",
    ]
    return "\n".join(lines)


# ---- the run ---------------------------------------------------------------------------------
def consecutive_keys(data_dir: Path) -> int:
    """K such that users 1..K all exist (the keys wrk's Lua chooses from)."""
    from storage import Store

    with Store.open(data_dir, read_only=True) as st:
        keys = set(st.entity_table("users").column("id").to_pylist())
    k = 0
    while k + 1 in keys:
        k += 1
    if k == 0:
        raise SystemExit("bench_live: the store's users have no keys 1, 2, ...: a demo store?")
    return k


def copies(source: Path, work: Path) -> tuple[Path, Path]:
    """Two copies of the store (one per eql server of part 1), with the bench's segment."""
    skip = shutil.ignore_patterns("server.json", "keys.json*", "incoming")
    first, second = work / "store-a", work / "store-b"
    shutil.copytree(source, first, ignore=skip)
    prepare_audiences(first)
    shutil.copytree(first, second, ignore=skip)
    return first, second


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None, help="a demo store (it is copied)")
    ap.add_argument("--users", type=int, default=20_000, help="without --data-dir")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of a wrk run")
    ap.add_argument("--rounds", type=int, default=2, help="rounds of the lookup runs")
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (lookup throughput)")
    ap.add_argument("--connections", type=int, default=64, help="(lookup throughput)")
    ap.add_argument("--txns", type=int, default=6_000, help="source transactions a burst")
    ap.add_argument("--rows-per-txn", type=int, default=5)
    ap.add_argument("--rate", type=float, default=5000.0, help="lookups/s during the apply")
    ap.add_argument("--cdc-rounds", type=int, default=2)
    ap.add_argument("--cdc-workers", type=int, default=1, help="eql serve --workers (CDC part)")
    ap.add_argument("--skip", choices=["lookups", "cdc"], default=None)
    ap.add_argument("--serve-hello", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--shared", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve_hello:
        serve_hello(args.port, args.shared)
        return
    if shutil.which("wrk") is None:
        print("bench_live: wrk is not installed (apt-get install wrk); skipped")
        return
    from server.keys import KeyFile

    started = time.monotonic()
    with tempfile.TemporaryDirectory(prefix="eql-bench-live-") as tmp:
        work = Path(tmp)
        source = args.data_dir
        if source is None:
            source = build_store(work / "demo", args.users)
            print(f"demo store: {args.users} users, built in {time.monotonic() - started:.1f}s")
        stores = copies(source, work)
        keys = work / "keys.json"
        key = KeyFile(keys).create(["lookup", "admin"], "bench-live")[1]
        bench = Bench(args, work, keys, key, consecutive_keys(stores[0]))
        print(
            f"bench_live: keys 1..{bench.users:,}; {os.cpu_count()} CPUs, which wrk shares with "
            f"the servers (its own use: 'wrk cores'); load (1 min) {os.getloadavg()[0]:.1f}",
            flush=True,
        )
        if args.skip != "lookups":
            print(lookup_table(lookups(bench, stores), args), flush=True)
        if args.skip != "cdc":
            print(cdc(bench, stores[0]), flush=True)
    print(
        f"bench_live: {time.monotonic() - started:.0f}s, load (1 min) now {os.getloadavg()[0]:.1f}"
    )


if __name__ == "__main__":
    main()
