"""The query server under load on loopback: lookups next to a raw-ASGI hello world.

python -m benchmarks.bench_server [--data-dir DIR] [--users N] [--duration S] [--connections C]
                                  [--rounds R]

Every server runs in its own process on uvicorn with the same configuration (uvloop and
httptools when installed, no access log); wrk (`apt-get install wrk`) generates the load on
127.0.0.1. Measured in one run:
- `hello`: a bare raw-ASGI app answering 12 bytes (the ceiling of uvicorn on this machine);
- `health (FastAPI route)`: a FastAPI route without authentication;
- `membership (fast path)`: `GET /v1/segments/bench_seg/members/{random id}` with a key;
- `membership (FastAPI route)`: the same with `fast_lookups` off (FastAPI's full route pipeline);
- `membership + heavy queries`: single membership while other connections run EQL queries
  back to back (their own figures are the next row);
- `profile (fast path)`: `GET /v1/entities/users/{random id}`: attributes, tags, segments;
- `batch membership`: `POST /v1/segments/bench_seg/members` with --batch random keys a request
  (its rps times --batch is the ids/s figure printed below the table);
- `queries alone`: those EQL queries without lookup load.
The store gets a segment `bench_seg` and a tag `bench_orders` (defined and refreshed once, as of
2026-11-01, when missing).
The table shows rps, p50 and p99 latency, errors (non-2xx and socket errors), and each row's
ratio to `hello`: medians over --rounds rounds, each round measuring every row.
Without --data-dir a demo store (--users, default 20000) is generated in a temporary directory.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]

QUERIES = [
    "FIND users WHERE home_store.city = 'Shanghai' AND count(purchase DURING LAST 30 DAYS) >= 1 "
    "RETURN id, name, sum(purchase.amount DURING LAST 30 DAYS) AS spend ORDER BY spend DESC "
    "LIMIT 100",
    "FIND stores RETURN id, city, sum(purchase.amount DURING LAST 30 DAYS) AS sales, "
    "count(members WHERE count(purchase DURING LAST 30 DAYS) = 0) AS idle ORDER BY sales DESC",
    "FIND users GROUP BY home_store.region RETURN home_store.region, count() AS users, "
    "avg(sum(purchase.amount)) AS avg_spend",
    "FIND EVENTS purchase DURING LAST 30 DAYS GROUP BY day(time), product.category "
    "RETURN day(time) AS day, product.category, sum(amount) AS sales ORDER BY day",
]


# ---- servers (each in its own process) -------------------------------------------------------
async def hello_app(scope: dict[str, Any], receive: Any, send: Any) -> None:
    if scope["type"] != "http":
        return
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [(b"content-type", b"text/plain"), (b"content-length", b"12")],
        }
    )
    await send({"type": "http.response.body", "body": b"hello world\n"})


def _uvicorn(app: Any, port: int) -> None:
    import uvicorn

    uvicorn.run(app, host="127.0.0.1", port=port, log_level="warning", access_log=False)


def serve_child(kind: str, port: int, data_dir: str, keys_file: str, fast: bool) -> None:
    if kind == "hello":
        _uvicorn(hello_app, port)
        return
    from runtime import Session
    from server.app import create_app
    from server.settings import Settings

    # read-only, so that both app servers (fast path on and off) can serve the store at once
    settings = Settings(
        data_dir=Path(data_dir),
        keys_file=Path(keys_file),
        fast_lookups=fast,
        rate_query=0,
        rate_lookup=0,
    )
    session = Session.open(data_dir, read_only=True, settings=settings.engine())
    _uvicorn(create_app(settings, session=session), port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Server:
    def __init__(
        self, kind: str, data_dir: Path | None = None, keys: Path | None = None, fast: bool = True
    ) -> None:
        self.port = _free_port()
        args = [sys.executable, "-m", "benchmarks.bench_server", "--serve", kind]
        args += ["--port", str(self.port), "--data-dir", str(data_dir or "")]
        args += ["--keys-file", str(keys or "")]
        if not fast:
            args.append("--no-fast")
        env = {**os.environ, "PYTHONPATH": str(ROOT)}
        self.proc = subprocess.Popen(args, cwd=ROOT, env=env, stdout=subprocess.DEVNULL)
        self.url = f"http://127.0.0.1:{self.port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                with socket.create_connection(("127.0.0.1", self.port), timeout=0.2):
                    break
            except OSError:
                if self.proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError(f"server {kind} did not start") from None
                time.sleep(0.1)

    def stop(self) -> None:
        self.proc.terminate()
        try:
            self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()


# ---- load ------------------------------------------------------------------------------------
@dataclass
class Result:
    name: str
    rps: float
    p50_ms: float
    p99_ms: float
    errors: int
    requests: int


def _ms(text: str) -> float:
    m = re.fullmatch(r"([0-9.]+)(us|ms|s)", text.strip())
    if m is None:
        return float("nan")
    value, unit = float(m.group(1)), m.group(2)
    return value / 1000 if unit == "us" else value * 1000 if unit == "s" else value


def _lua(script: str, workdir: Path, name: str) -> Path:
    path = workdir / f"{name}.lua"
    path.write_text(script, encoding="utf-8")
    return path


def lookup_script(key: str, users: int, prefix: str = "/v1/entities/users/") -> str:
    return f"""
math.randomseed(42)
local headers = {{["Authorization"] = "Bearer {key}"}}
request = function()
  return wrk.format("GET", "{prefix}" .. math.random(1, {users}), headers)
end
"""


def post_script(key: str, path: str, bodies: list[Any]) -> str:
    """POSTs of the given JSON bodies in turn (made once, so wrk's Lua is not timed)."""
    lua_bodies = ", ".join("[[" + json.dumps(b) + "]]" for b in bodies)
    return f"""
local bodies = {{{lua_bodies}}}
local headers = {{["Authorization"] = "Bearer {key}", ["Content-Type"] = "application/json"}}
local i = 0
request = function()
  i = i % #bodies + 1
  return wrk.format("POST", "{path}", headers, bodies[i])
end
"""


def batch_script(key: str, users: int, size: int) -> str:
    """8 bodies of `size` random keys each."""
    import random

    rng = random.Random(42)
    bodies = [{"keys": [rng.randint(1, users) for _ in range(size)]} for _ in range(8)]
    return post_script(key, f"/v1/segments/{SEGMENT}/members", bodies)


SEGMENT = "bench_seg"
SEGMENT_DEF = (
    f"DEFINE SEGMENT {SEGMENT} ON users WHERE sum(purchase.amount DURING LAST 180 DAYS) > 300"
)
TAG_DEF = "DEFINE TAG bench_orders ON users AS count(purchase DURING LAST 90 DAYS)"


def prepare_audiences(data_dir: Path) -> None:
    """Define and refresh the bench's segment and tag in the store, when missing."""
    import datetime as dt

    from runtime import WRITE, Session

    as_of = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)
    with Session.open(data_dir) as session:
        for kind, name, text in (
            ("SEGMENT", SEGMENT, SEGMENT_DEF),
            ("TAG", "bench_orders", TAG_DEF),
        ):
            d = session.audiences.definition(kind, name)
            if d is None or session.audiences.latest(d) is None:
                session.execute(text, as_of=as_of, permissions=WRITE)
                session.execute(f"REFRESH {kind} {name}", as_of=as_of, permissions=WRITE)


def query_script(key: str) -> str:
    return post_script(key, "/v1/query", [{"query": q, "as_of": "2026-11-01"} for q in QUERIES])


def wrk(
    url: str, duration: float, connections: int, script: Path | None = None, path: str = "/"
) -> subprocess.Popen[str]:
    args = ["wrk", "-t1", f"-c{connections}", f"-d{max(1, round(duration))}s", "--latency"]
    if script is not None:
        args += ["-s", str(script)]
    return subprocess.Popen([*args, url + path], stdout=subprocess.PIPE, text=True)


def parse(name: str, output: str) -> Result:
    rps = re.search(r"Requests/sec:\s+([0-9.]+)", output)
    total = re.search(r"(\d+) requests in", output)
    p50 = re.search(r"^\s+50%\s+(\S+)", output, re.M)
    p99 = re.search(r"^\s+99%\s+(\S+)", output, re.M)
    non2xx = re.search(r"Non-2xx or 3xx responses:\s+(\d+)", output)
    sock = re.search(
        r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", output
    )
    errors = int(non2xx.group(1)) if non2xx else 0
    if sock:
        errors += sum(int(g) for g in sock.groups())
    return Result(
        name,
        float(rps.group(1)) if rps else 0.0,
        _ms(p50.group(1)) if p50 else float("nan"),
        _ms(p99.group(1)) if p99 else float("nan"),
        errors,
        int(total.group(1)) if total else 0,
    )


def measure(
    name: str,
    url: str,
    duration: float,
    connections: int,
    script: Path | None = None,
    path: str = "/",
) -> Result:
    warm = wrk(url, 1, connections, script, path)
    warm.communicate()
    out, _ = wrk(url, duration, connections, script, path).communicate()
    return parse(name, out)


# ---- servers of several processes, wrk runs with their CPU (benchmarks.bench_live) ---------
def children(pid: int) -> list[int]:
    try:
        return [int(p) for p in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()]
    except OSError:
        return []


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a live process, from /proc."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def listeners(port: int) -> int:
    """How many sockets listen on an IPv4 port (one per SO_REUSEPORT worker)."""
    rows = [line.split() for line in Path("/proc/net/tcp").read_text().splitlines()[1:]]
    return sum(1 for r in rows if r[3] == "0A" and int(r[1].split(":")[1], 16) == port)


@dataclass
class Load:
    result: Result
    wrk_cpu: float  # CPU seconds wrk used
    seconds: float  # how long it ran


class Wrk:
    """One wrk run; `finish()` waits for its end, or with `early` stops it (wrk reports on
    SIGINT)."""

    def __init__(self, url: str, seconds: float, connections: int, threads: int, script: Path):
        args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s"]
        self.started = time.monotonic()
        self.proc = subprocess.Popen(
            [*args, "--latency", "-s", str(script), url], stdout=subprocess.PIPE, text=True
        )

    def finish(self, name: str = "", early: bool = False) -> Load:
        if early and self.proc.poll() is None:
            self.proc.send_signal(signal.SIGINT)
        assert self.proc.stdout is not None
        out = self.proc.stdout.read()
        _, status, usage = os.wait4(self.proc.pid, 0)
        self.proc.returncode = os.waitstatus_to_exitcode(status)
        took = time.monotonic() - self.started
        return Load(parse(name, out), usage.ru_utime + usage.ru_stime, took)


# ---- the run ---------------------------------------------------------------------------------
def build_store(root: Path, users: int) -> Path:
    from ingest.demo import generate_demo_files
    from ingest.files import import_file
    from storage import Store

    schema = next(
        p
        for p in (ROOT / "entities/examples/retail.yaml", ROOT / "examples/retail/schema.yaml")
        if p.exists()
    )
    store = Store.create(root / "store", schema.read_text(encoding="utf-8"), "retail.yaml")
    try:
        for f in generate_demo_files(root / "files", users=users, seed=1):
            if not f.dirty:
                import_file(store, f.kind, f.target, f.path)
    finally:
        store.close()
    shutil.rmtree(root / "files", ignore_errors=True)
    return root / "store"


def run(
    data_dir: Path,
    users: int,
    duration: float,
    connections: int,
    rounds: int,
    work: Path,
    batch: int,
) -> list[Result]:
    """All servers up at once; every round measures every row, so noise from other work on the
    machine falls on all rows alike; a row's figures are the medians over the rounds."""
    from server.keys import KeyFile

    keys = work / "keys.json"  # the bench's own keys: the store's keys.json is left alone
    key = KeyFile(keys).create(["query", "lookup"], "bench")[1]
    profiles = _lua(lookup_script(key, users), work, "profile")
    member = _lua(lookup_script(key, users, f"/v1/segments/{SEGMENT}/members/"), work, "member")
    batches = _lua(batch_script(key, users, batch), work, "batch")
    queries = _lua(query_script(key), work, "query")
    rows: dict[str, list[Result]] = {}

    def add(r: Result) -> None:
        rows.setdefault(r.name, []).append(r)

    servers: list[Server] = []
    try:
        for kind, fast in (("hello", True), ("app", True), ("app", False)):
            servers.append(Server(kind, data_dir, keys, fast))
        hello, app, slow_app = servers
        for _ in range(rounds):
            add(measure("hello (raw ASGI)", hello.url, duration, connections))
            add(measure("membership (fast path)", app.url, duration, connections, member))
            add(measure("membership (FastAPI route)", slow_app.url, duration, connections, member))
            heavy = wrk(app.url, duration + 2, 2, queries)  # starts first, ends last
            time.sleep(1)
            add(measure("membership + heavy queries", app.url, duration, connections, member))
            out, _ = heavy.communicate()
            add(parse("  (those queries, 2 conns)", out))
            add(measure("profile (fast path)", app.url, duration, connections, profiles))
            add(measure("profile (FastAPI route)", slow_app.url, duration, connections, profiles))
            add(
                measure(
                    "health (FastAPI route)", app.url, duration, connections, None, "/v1/health"
                )
            )
            add(measure(f"batch membership ({batch} keys)", app.url, duration, 4, batches))
            add(measure("queries alone (2 conns)", app.url, duration, 2, queries))
    finally:
        for server in servers:
            server.stop()
    return [median(results) for results in rows.values()]


def median(results: list[Result]) -> Result:
    def mid(values: list[float]) -> float:
        return statistics.median(values)

    return Result(
        results[0].name,
        mid([r.rps for r in results]),
        mid([r.p50_ms for r in results]),
        mid([r.p99_ms for r in results]),
        sum(r.errors for r in results),
        sum(r.requests for r in results),
    )


def table(results: list[Result]) -> str:
    base = results[0].rps or 1.0
    lines = [
        f"{'run':32} {'rps':>10} {'p50 ms':>8} {'p99 ms':>8} {'errors':>7} {'x hello':>8}",
        "-" * 78,
    ]
    for r in results:
        lines.append(
            f"{r.name:32} {r.rps:10.0f} {r.p50_ms:8.2f} {r.p99_ms:8.2f} {r.errors:7d} "
            f"{r.rps / base:8.2f}"
        )
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawTextHelpFormatter)
    ap.add_argument("--data-dir", type=Path, default=None)
    ap.add_argument("--users", type=int, default=20_000)
    ap.add_argument("--duration", type=float, default=5.0)
    ap.add_argument("--connections", type=int, default=32)
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--batch", type=int, default=10_000, help="keys per batch request")
    ap.add_argument("--serve", choices=["hello", "app"], help=argparse.SUPPRESS)
    ap.add_argument("--port", type=int, default=0, help=argparse.SUPPRESS)
    ap.add_argument("--no-fast", action="store_true", help=argparse.SUPPRESS)
    ap.add_argument("--keys-file", default="", help=argparse.SUPPRESS)
    args = ap.parse_args(sys.argv[1:] if argv is None else argv)
    if args.serve:
        serve_child(args.serve, args.port, str(args.data_dir), args.keys_file, not args.no_fast)
        return
    if shutil.which("wrk") is None:
        print("bench_server: wrk is not installed (apt-get install wrk); skipped")
        return
    with tempfile.TemporaryDirectory(prefix="eql-bench-server-") as tmp:
        print(f"bench_server: {args.rounds} rounds of 9 runs of {args.duration:g}s", flush=True)
        work = Path(tmp)
        if args.data_dir is None:
            t0 = time.monotonic()
            data_dir = build_store(work, args.users)
            print(f"demo store: {args.users} users, built in {time.monotonic() - t0:.1f}s")
            users = args.users
        else:
            data_dir = args.data_dir
            from storage import Store

            with Store.open(data_dir, read_only=True) as st:
                users = st.count("users")
        prepare_audiences(data_dir)
        print(
            f"wrk -t1 -c{args.connections} -d{args.duration:g}s on 127.0.0.1, {os.cpu_count()} CPUs"
        )
        results = run(
            data_dir, users, args.duration, args.connections, args.rounds, work, args.batch
        )
    print(table(results))
    batch_row = next(r for r in results if r.name.startswith("batch"))
    print(f"batch membership: {batch_row.rps * args.batch / 1e6:.2f}M ids/s")


if __name__ == "__main__":
    main()
