"""The served, live store: membership lookups with `eql serve --workers 1|2` next to as many
raw-ASGI hello workers, and the CDC apply rate of `eql serve --cdc` while it answers lookups.

python -m benchmarks.bench_live [--data-dir DIR] [--users N] [--duration S] [--rounds R]
                                [--threads T] [--connections C] [--txns N] [--rows-per-txn K]
                                [--rate RPS] [--cdc-rounds R] [--cdc-workers W]

Everything runs on 127.0.0.1 and stops by itself; wrk (`apt-get install wrk`) makes the load and
the CDC source is a throwaway mariadbd (the tests' `tests.cdc.conftest.start_server`). The store
(--data-dir, else a demo store of --users users built in a temporary directory) is copied into
the run's temporary directory first and only the copies are served and changed; they get the
segment `bench_seg` of `benchmarks.bench_server` (defined and refreshed once). Its keys are the
users' keys 1..K (K: the longest run of consecutive keys from 1), chosen at random by wrk's Lua.

1. Lookups: `GET /v1/segments/bench_seg/members/{key}` on `eql serve --workers 1` and
   `--workers 2` (a writer and a reader process on one port, SO_REUSEPORT), next to a raw-ASGI
   app answering a fixed JSON body of the same size on 1 and 2 uvicorn processes with the
   config `eql serve` runs with (`server.protocol.config`: uvloop, httptools, no access log);
   the two hello processes each bind the port with SO_REUSEPORT (`server.workers.public_socket`),
   as the two `eql serve` workers do. All four servers are up at once and every round measures
   each in turn (wrk -t T -c C, a 1 s warm-up, then --duration s); figures are medians over
   --rounds rounds. The per-key lookup rate limit is turned off (EQL_RATE_LOOKUP=0) as the hello
   app has none. Also shown: how the servers' CPU time split between their processes, and how
   many cores wrk itself used (it shares the machine's cores with the servers).
2. CDC: `eql serve --workers W --cdc CONFIG` (connector `bench_live`, snapshot mode `never`,
   MariaDB table `bench.users (id, city)` -> entity `users`). Each run stops the connector
   (`DELETE /v1/admin/cdc/connectors/bench_live`), writes a burst of --txns transactions into
   MariaDB, each an UPDATE of --rows-per-txn users' city, then starts the same connector again
   (`POST /v1/admin/cdc/connectors`) and times it until `GET /v1/admin/cdc` counts the burst's
   transactions: unloaded, and while wrk sends membership lookups at about --rate requests/s
   (wrk has no fixed rate: each connection waits a Lua `delay` between requests, calibrated on
   the idle server; the rate reached is printed). Lookup p99 idle is a run at the same rate
   without an apply. Rounds alternate (unloaded, loaded), (loaded, unloaded), ...; medians.
Goals: lookups >= 0.7x hello at each worker count; apply loaded >= 0.7x unloaded; lookup p99
during the apply <= 2x idle.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from benchmarks.bench_server import (
    ROOT,
    SEGMENT,
    Result,
    _free_port,
    _lua,
    build_store,
    lookup_script,
    median,
    parse,
    prepare_audiences,
)

HOST = "127.0.0.1"
MEMBER_PREFIX = f"/v1/segments/{SEGMENT}/members/"
# what the hello app answers: a membership answer's shape and size
HELLO_BODY = b'{"segment":"bench_seg","key":50000,"member":true,"version":1}'
CONNECTOR = "bench_live"
START_SECONDS = 180.0  # a server (or its reader) must answer within this
APPLY_SECONDS = 300.0  # a burst must be applied within this


# ---- the hello servers -----------------------------------------------------------------------
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
    """A hello worker with `eql serve`'s uvicorn config; `shared`: on a SO_REUSEPORT socket."""
    from server.protocol import Server, config
    from server.settings import Settings
    from server.workers import public_socket

    settings = Settings(host=HOST, port=port, log_level="warning")
    server = Server(config(hello_app, settings), None)
    if shared:
        asyncio.run(server.serve(sockets=[public_socket(HOST, port)]))
    else:
        server.run()


# ---- processes -------------------------------------------------------------------------------
def _children(pid: int) -> list[int]:
    try:
        text = Path(f"/proc/{pid}/task/{pid}/children").read_text()
    except OSError:
        return []
    return [int(p) for p in text.split()]


def _cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _listeners(port: int) -> int:
    """How many sockets listen on 127.0.0.1:port (one per SO_REUSEPORT worker)."""
    count = 0
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        if state == "0A" and int(local.split(":")[1], 16) == port:
            count += 1
    return count


def wait_for(what: str, check: Callable[[], bool], seconds: float = START_SECONDS) -> None:
    deadline = time.monotonic() + seconds
    while not check():
        if time.monotonic() > deadline:
            raise RuntimeError(f"timed out waiting for {what}")
        time.sleep(0.1)


def _stop(proc: subprocess.Popen[bytes]) -> None:
    if proc.poll() is None:
        proc.send_signal(signal.SIGTERM)
    try:
        proc.wait(30)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()


class Servers:
    """One server under test: its processes, its URL, its readiness."""

    def __init__(self, name: str, workers: int, url: str, procs: list[subprocess.Popen[bytes]]):
        self.name, self.workers, self.url, self.procs = name, workers, url, procs

    def pids(self) -> list[int]:
        """Every serving process: ours and their children (an `eql serve` writer's readers)."""
        return [q for p in self.procs for q in (p.pid, *_children(p.pid))]

    def cpu(self) -> list[float]:
        return [_cpu_seconds(pid) for pid in self.pids()]

    def alive(self) -> bool:
        return all(p.poll() is None for p in self.procs)

    def stop(self) -> None:
        for proc in self.procs:
            _stop(proc)


def start_hello(workers: int, work: Path) -> Servers:
    port = _free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    args = [sys.executable, "-m", "benchmarks.bench_live", "--serve-hello", "--port", str(port)]
    if workers > 1:
        args.append("--shared")
    log = (work / f"hello-{workers}.log").open("ab")
    procs = [
        subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL, stderr=log)
        for _ in range(workers)
    ]
    servers = Servers(f"hello x{workers} (raw ASGI)", workers, f"http://{HOST}:{port}", procs)

    def ready() -> bool:
        if not servers.alive():
            raise RuntimeError(f"a hello server exited (see {log.name})")
        return _listeners(port) == workers and _answers(servers.url + "/")

    wait_for("the hello servers", ready)
    return servers


def _answers(url: str, headers: dict[str, str] | None = None) -> bool:
    try:
        return httpx.get(url, headers=headers, timeout=2, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def start_eql(
    data_dir: Path, workers: int, keys: Path, work: Path, cdc: Path | None = None
) -> Servers:
    port = _free_port()
    env = {**os.environ, "EQL_KEYS_FILE": str(keys), "EQL_RATE_LOOKUP": "0"}
    args = [str(ROOT / ".venv/bin/eql"), "serve", "--data-dir", str(data_dir)]
    args += ["--host", HOST, "--port", str(port), "--workers", str(workers)]
    args += ["--log-level", "warning"]
    if cdc is not None:
        args += ["--cdc", str(cdc)]
    if not Path(args[0]).exists():
        args[:1] = [sys.executable, "-m", "eql.cli.main"]
    log = (work / f"eql-{data_dir.name}-{workers}.log").open("ab")
    proc = subprocess.Popen(args, cwd=work, env=env, stdout=subprocess.DEVNULL, stderr=log)
    name = f"eql serve --workers {workers}"
    servers = Servers(name, workers, f"http://{HOST}:{port}", [proc])

    def ready() -> bool:
        if not servers.alive():
            raise RuntimeError(f"{name} exited (see {log.name})")
        if _listeners(port) != workers:
            return False
        seen = set()
        for _ in range(8):  # fresh connections: the kernel spreads them over the workers
            try:
                r = httpx.get(servers.url + "/v1/health", timeout=2, trust_env=False)
            except httpx.HTTPError:
                return False
            if r.status_code == 200:
                seen.add(r.headers.get("x-eql-worker", "writer"))
        return len(seen) == min(workers, 2)

    wait_for(name, ready)
    return servers


# ---- load ------------------------------------------------------------------------------------
@dataclass
class Load:
    result: Result
    wrk_cpu: float  # CPU seconds wrk used
    seconds: float  # how long it ran


class Wrk:
    """One wrk run; `finish()` waits for its end (or stops it early: wrk reports on SIGINT)."""

    def __init__(
        self, name: str, url: str, seconds: float, connections: int, threads: int, script: Path
    ) -> None:
        args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        args += ["--latency", "-s", str(script), url]
        self.name = name
        self.started = time.monotonic()
        self.proc = subprocess.Popen(args, stdout=subprocess.PIPE, text=True)

    def finish(self, early: bool = False) -> Load:
        if early and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        took = time.monotonic() - self.started
        return Load(parse(self.name, out), usage.ru_utime + usage.ru_stime, took)


def measure(
    name: str, url: str, seconds: float, connections: int, threads: int, script: Path
) -> Load:
    Wrk(name, url, 1, connections, threads, script).finish()  # warm-up: connections, caches
    return Wrk(name, url, seconds, connections, threads, script).finish()


def paced_script(key: str, users: int, delay_ms: float) -> str:
    """Membership lookups, each connection waiting `delay_ms` on average between requests
    (wrk waits whole milliseconds: the fraction is a coin toss per request)."""
    whole, frac = int(delay_ms), delay_ms - int(delay_ms)
    return lookup_script(key, users, MEMBER_PREFIX) + (
        f"\ndelay = function()\n  if math.random() < {frac:.4f} then return {whole + 1} end\n"
        f"  return {whole}\nend\n"
    )


# ---- 1. lookup throughput --------------------------------------------------------------------
@dataclass
class Row:
    server: Servers
    loads: list[Load]
    shares: list[list[float]]  # per round: CPU seconds per process during the run


def lookups(
    stores: tuple[Path, Path],
    keys: Path,
    key: str,
    users: int,
    args: argparse.Namespace,
    work: Path,
) -> list[Row]:
    script = _lua(lookup_script(key, users, MEMBER_PREFIX), work, "member")
    t0 = time.monotonic()
    started: list[Servers] = []
    try:
        started.append(start_hello(1, work))
        started.append(start_eql(stores[0], 1, keys, work))
        started.append(start_hello(2, work))
        started.append(start_eql(stores[1], 2, keys, work))
        print(f"servers up in {time.monotonic() - t0:.1f}s", flush=True)
        rows = [Row(s, [], []) for s in started]
        for _ in range(args.rounds):
            for row in rows:
                before = row.server.cpu()
                load = measure(
                    row.server.name,
                    row.server.url,
                    args.duration,
                    args.connections,
                    args.threads,
                    script,
                )
                after = row.server.cpu()
                row.loads.append(load)
                row.shares.append([b - a for a, b in zip(before, after, strict=False)])
                if not row.server.alive():
                    raise RuntimeError(f"{row.server.name} stopped during its run")
        return rows
    finally:
        for s in started:
            s.stop()


def lookup_table(rows: list[Row], args: argparse.Namespace) -> str:
    lines = [
        f"membership lookups: wrk -t{args.threads} -c{args.connections} "
        f"-d{args.duration:g}s (after 1 s of warm-up), medians of {args.rounds} rounds",
        f"{'workers':>7}  {'server':26} {'rps':>8} {'p50 ms':>7} {'p99 ms':>7} {'errors':>6} "
        f"{'cpu split':>10} {'wrk cores':>9} {'x hello':>7}  goal >= 0.7x",
        "-" * 104,
    ]
    hello: dict[int, float] = {}
    for row in rows:
        r = median([load.result for load in row.loads])
        wrk_cores = statistics.median(load.wrk_cpu / load.seconds for load in row.loads)
        totals = [sum(col) for col in zip(*row.shares, strict=False)]
        split = "/".join(f"{100 * t / (sum(totals) or 1):.0f}" for t in totals)
        is_hello = row.server.name.startswith("hello")
        if is_hello:
            hello[row.server.workers] = r.rps
            ratio, goal = "", ""
        else:
            x = r.rps / (hello.get(row.server.workers) or 1.0)
            ratio, goal = f"{x:7.2f}", ("met" if x >= 0.7 else "missed")
        lines.append(
            f"{row.server.workers:>7}  {row.server.name:26} {r.rps:8.0f} {r.p50_ms:7.2f} "
            f"{r.p99_ms:7.2f} {r.errors:6d} {split:>10} {wrk_cores:9.2f} {ratio:>7}  {goal}"
        )
    lines.append(
        f"cpu split: % of the server's CPU time per process (eql: writer/reader). {os.cpu_count()} "
        "CPUs, shared by wrk, the servers under test and the other (idle) servers"
    )
    return "\n".join(lines)


# ---- 2. CDC apply while serving --------------------------------------------------------------
def _burst(server: Any, users: int, txns: int, per_txn: int, burst: int) -> None:
    """`txns` autocommit UPDATEs of `per_txn` users each (a transaction each), sent 200 a round
    trip; `burst` makes every value new, so every row changes."""
    from pymysql.constants import CLIENT

    conn = server.connect(client_flag=CLIENT.MULTI_STATEMENTS)
    try:
        with conn.cursor() as cur:
            for start in range(0, txns, 200):
                statements = []
                for t in range(start, min(txns, start + 200)):
                    ids = ",".join(str(_user(t, r, users, per_txn)) for r in range(per_txn))
                    statements.append(
                        f"UPDATE bench.users SET city = '{_city(burst, t)}' WHERE id IN ({ids})"
                    )
                cur.execute(";".join(statements))
                while cur.nextset():
                    pass
    finally:
        conn.close()


def _user(t: int, r: int, users: int, per_txn: int) -> int:
    return (t * per_txn + r) % users + 1


def _city(burst: int, t: int) -> str:
    return f"burst{burst}-{t % 997}"


def _source(root: Path, users: int) -> Any:
    from tests.cdc.conftest import start_server  # the tests' throwaway mariadbd

    server = start_server(root)
    server.sql(
        "CREATE DATABASE bench",
        "CREATE TABLE bench.users (id INT PRIMARY KEY, city VARCHAR(40))",
    )
    for start in range(1, users + 1, 5000):
        values = ",".join(f"({i}, 'seed')" for i in range(start, min(users, start + 4999) + 1))
        server.sql(f"INSERT INTO bench.users VALUES {values}")
    return server


def _cdc_config(path: Path, port: int) -> Path:
    path.write_text(
        f"name: {CONNECTOR}\n"
        f"source: {{host: {HOST}, port: {port}, user: root, "
        f"server_id: {random.randint(10**4, 10**8)}}}\n"
        "snapshot: {mode: never}\n"
        "tables:\n  bench.users: {entity: users}\n",
        encoding="utf-8",
    )
    return path


class Admin:
    """The CDC admin routes of the server under test."""

    def __init__(self, url: str, key: str, config: Path) -> None:
        self.config = config
        headers = {"Authorization": f"Bearer {key}"}
        self.client = httpx.Client(base_url=url, headers=headers, timeout=30, trust_env=False)

    def entry(self) -> dict[str, Any]:
        r = self.client.get("/v1/admin/cdc")
        r.raise_for_status()
        entries = [c for c in r.json()["connectors"] if c["name"] == CONNECTOR]
        if not entries:
            raise RuntimeError(f"no connector {CONNECTOR} in {r.json()}")
        entry: dict[str, Any] = entries[0]
        return entry

    def stop(self) -> None:
        r = self.client.delete(f"/v1/admin/cdc/connectors/{CONNECTOR}")
        if r.status_code not in (200, 404):
            raise RuntimeError(f"stopping the connector: {r.status_code} {r.text}")

    def start(self) -> None:
        r = self.client.post("/v1/admin/cdc/connectors", json={"config": str(self.config)})
        if r.status_code != 201:
            raise RuntimeError(f"starting the connector: {r.status_code} {r.text}")

    def profile(self, key: int) -> dict[str, Any]:
        r = self.client.get(f"/v1/entities/users/{key}")
        r.raise_for_status()
        body: dict[str, Any] = r.json()
        return body


@dataclass
class Apply:
    loaded: bool
    seconds: float
    txns: int
    rows: int
    load: Load | None  # the lookups during the apply


def apply_burst(admin: Admin, source: Any, load: Callable[[], Wrk] | None, burst: int) -> Apply:
    """Time the stopped connector's catching up on what MariaDB wrote since (optionally under
    load: wrk starts first and is stopped when the connector has caught up)."""
    base = admin.entry()
    target = base["transactions"] + burst
    end_gtid = str(source.sql("SELECT @@gtid_binlog_pos")[0][0])
    wrk = load() if load is not None else None
    if wrk is not None:
        time.sleep(0.5)  # its connections open and it reaches its pace
    t0 = time.monotonic()
    admin.start()
    deadline = t0 + APPLY_SECONDS
    while True:
        entry = admin.entry()
        if entry["transactions"] >= target:
            break
        if entry["state"] == "failed" or time.monotonic() > deadline:
            raise RuntimeError(f"the connector did not catch up: {entry}")
        time.sleep(0.05)
    took = time.monotonic() - t0
    during = wrk.finish(early=True) if wrk is not None else None
    gtid = (entry.get("position") or {}).get("gtid")
    if gtid != end_gtid:
        print(f"  note: the connector is at gtid {gtid}, MariaDB at {end_gtid}")
    rows = entry["rows_applied"] - base["rows_applied"]
    return Apply(load is not None, took, entry["transactions"] - base["transactions"], rows, during)


def calibrate(
    url: str, key: str, users: int, rate: float, work: Path, connections: int = 8
) -> tuple[Path, int]:
    """A paced script that reaches about `rate` requests/s: per-connection delay tuned in up to
    three 2 s runs (more connections when no delay is left)."""
    delay = max(0.0, 1000 * connections / rate - 0.3)
    script = work / "paced.lua"
    for _ in range(3):
        script = _lua(paced_script(key, users, delay), work, "paced")
        got = Wrk("calibrate", url, 2, connections, 1, script).finish().result.rps
        if abs(got - rate) < 0.05 * rate or got <= 0:
            break
        overhead = max(0.0, 1000 * connections / got - delay)  # ms a request takes besides
        delay = 1000 * connections / rate - overhead
        if delay < 0.2:
            connections = int(connections * 1.5) + 1
            delay = max(0.0, 1000 * connections / rate - overhead)
    return script, connections


def cdc(store: Path, keys: Path, key: str, users: int, args: argparse.Namespace, work: Path) -> str:
    t0 = time.monotonic()
    source = _source(work / "mariadb", users)
    servers: Servers | None = None
    try:
        config = _cdc_config(work / "cdc.yaml", source.port)
        servers = start_eql(store, args.cdc_workers, keys, work, cdc=config)
        admin = Admin(servers.url, key, config)
        wait_for("the connector running", lambda: admin.entry()["state"] == "running")
        print(f"MariaDB and eql serve --cdc up in {time.monotonic() - t0:.1f}s", flush=True)
        url = servers.url
        script, conns = calibrate(url, key, users, args.rate, work)

        def paced(seconds: float) -> Wrk:
            return Wrk("paced lookups", url, seconds, conns, 1, script)

        idle: list[Load] = []
        applies: list[Apply] = []
        burst = 0
        for rnd in range(args.cdc_rounds):
            idle.append(paced(args.duration).finish())
            for loaded in (False, True) if rnd % 2 == 0 else (True, False):
                admin.stop()
                burst += 1
                _burst(source, users, args.txns, args.rows_per_txn, burst)
                load = (lambda: paced(APPLY_SECONDS)) if loaded else None
                applies.append(apply_burst(admin, source, load, args.txns))
                last = _user(args.txns - 1, args.rows_per_txn - 1, users, args.rows_per_txn)
                got = admin.profile(last).get("attributes", {}).get("city")
                if got != _city(burst, args.txns - 1):
                    raise RuntimeError(f"user {last}: city {got!r} after burst {burst}")
        return cdc_table(idle, applies, args, conns)
    finally:
        if servers is not None:
            servers.stop()
        source.stop()


def cdc_table(idle: list[Load], applies: list[Apply], args: argparse.Namespace, conns: int) -> str:
    lines = [
        f"CDC: bursts of {args.txns:,} transactions x {args.rows_per_txn} row updates "
        f"(MariaDB bench.users -> users) into eql serve --workers {args.cdc_workers} --cdc; "
        f"paced lookups: wrk -t1 -c{conns} with a Lua delay, aiming at {args.rate:,.0f} rps",
        f"{'run':24} {'seconds':>8} {'txn/s':>8} {'rows/s':>9} {'lookup rps':>10} "
        f"{'p50 ms':>7} {'p99 ms':>7} {'errors':>6}",
        "-" * 86,
    ]
    for i, load in enumerate(idle, 1):
        r = load.result
        lines.append(
            f"{f'idle lookups ({i})':24} {load.seconds:8.1f} {'':>8} {'':>9} {r.rps:10.0f} "
            f"{r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.errors:6d}"
        )
    for a in applies:
        name = "apply, lookups at pace" if a.loaded else "apply, no lookups"
        tail = ""
        if a.load is not None:
            r = a.load.result
            tail = f"{r.rps:10.0f} {r.p50_ms:7.2f} {r.p99_ms:7.2f} {r.errors:6d}"
        lines.append(
            f"{name:24} {a.seconds:8.2f} {a.txns / a.seconds:8.0f} {a.rows / a.seconds:9.0f} {tail}"
        )

    def mid(values: list[float]) -> float:
        return statistics.median(values) if values else float("nan")

    unloaded = [a for a in applies if not a.loaded]
    loaded = [a for a in applies if a.loaded]
    rate_u = mid([a.txns / a.seconds for a in unloaded])
    rate_l = mid([a.txns / a.seconds for a in loaded])
    rows_u = mid([a.rows / a.seconds for a in unloaded])
    rows_l = mid([a.rows / a.seconds for a in loaded])
    p99_idle = mid([load.result.p99_ms for load in idle])
    p99_apply = mid([a.load.result.p99_ms for a in loaded if a.load is not None])
    apply_x, p99_x = rate_l / rate_u, p99_apply / p99_idle
    lines += [
        f"apply rate: unloaded {rate_u:,.0f} txn/s ({rows_u:,.0f} rows/s), under lookups "
        f"{rate_l:,.0f} txn/s ({rows_l:,.0f} rows/s): {apply_x:.2f}x "
        f"(goal >= 0.7x: {'met' if apply_x >= 0.7 else 'missed'})",
        f"lookup p99: idle {p99_idle:.2f} ms, during the apply {p99_apply:.2f} ms: {p99_x:.2f}x "
        f"(goal <= 2x: {'met' if p99_x <= 2 else 'missed'})",
    ]
    return "\n".join(lines)


# ---- the run ---------------------------------------------------------------------------------
def _load() -> str:
    return " ".join(f"{x:.1f}" for x in os.getloadavg())


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


@contextmanager
def copies(source: Path, work: Path) -> Iterator[tuple[Path, Path]]:
    """Two copies of the store (one per eql server), with the bench's segment."""
    skip = shutil.ignore_patterns("server.json", "keys.json", "incoming")
    first, second = work / "store-a", work / "store-b"
    shutil.copytree(source, first, ignore=skip)
    prepare_audiences(first)
    shutil.copytree(first, second, ignore=skip)
    yield first, second


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None, help="a demo store (it is copied)")
    ap.add_argument("--users", type=int, default=20_000, help="without --data-dir")
    ap.add_argument("--duration", type=float, default=4.0, help="seconds of a wrk run")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--threads", type=int, default=2, help="wrk threads (lookup throughput)")
    ap.add_argument("--connections", type=int, default=64)
    ap.add_argument("--txns", type=int, default=20_000, help="source transactions a burst")
    ap.add_argument("--rows-per-txn", type=int, default=5)
    ap.add_argument("--rate", type=float, default=5000.0, help="lookups/s during the apply")
    ap.add_argument("--cdc-rounds", type=int, default=2)
    ap.add_argument("--cdc-workers", type=int, default=1, help="eql serve --workers, CDC part")
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
        with copies(source, work) as stores:
            users = consecutive_keys(stores[0])
            keys = work / "keys.json"  # the run's own keys file (EQL_KEYS_FILE)
            key = KeyFile(keys).create(["lookup", "admin"], "bench-live")[1]
            print(
                f"bench_live: {users:,} keys, {os.cpu_count()} CPUs on this machine: wrk runs on "
                f"them too (its own use is the 'wrk cores' column); load average {_load()}",
                flush=True,
            )
            if args.skip != "lookups":
                print(lookup_table(lookups(stores, keys, key, users, args, work), args), flush=True)
            if args.skip != "cdc":
                print(cdc(stores[0], keys, key, users, args, work), flush=True)
    print(f"bench_live: {time.monotonic() - started:.0f}s, load average now {_load()}")


if __name__ == "__main__":
    main()
