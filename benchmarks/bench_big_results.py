"""BIG-1: lookups while large results are encoded, the bytes a result may have, and memory after.

python -m benchmarks.bench_big_results --data-dir DIR [--seconds S] [--src DIR]

Starts `eql serve` on the store in a process of its own (loopback). A sampler thread sends
single-membership lookups (`GET /v1/segments/big_seg/members/{k}`, one keep-alive connection,
one every 2 ms) the whole time and records their latencies. Phases:
- `idle`: no queries (the peer: the same server and the same lookups with nothing else running);
- one phase per heavy result and format (JSON, NDJSON, Arrow), its query sent back to back for
  --seconds by a client process of its own (so that reading the answers does not take the
  sampler's GIL): wide (200 columns), long (every row), 480 aggregates, and 2,800
  concatenations (an answer far over the byte limit).
Each phase prints the lookups' p50/p99 and their p99's ratio to `idle`, the queries' statuses and
bytes, and the server's resident memory (RSS) at the phase's start, its peak, and 3 s after.
`--src DIR` runs the server from another checkout (PYTHONPATH), to measure before a change.
"""

from __future__ import annotations

import argparse
import http.client
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
FORMATS = {
    "json": "application/json",
    "ndjson": "application/x-ndjson",
    "arrow": "application/vnd.apache.arrow.stream",
}


def heavy_queries() -> dict[str, str]:
    wide = ", ".join(f"name AS c{i}" for i in range(200))
    aggs = ", ".join(f"count(purchase DURING LAST {d + 1} DAYS)" for d in range(480))
    concat = "concat(" + ", ".join(["email"] * 2800) + ")"
    return {
        "wide 200 columns": f"FIND users RETURN {wide}",
        "long all rows": "FIND users RETURN id, name, email, signup_date, birth_year",
        "480 aggregates": f"FIND users RETURN {aggs}",
        "2,800 concatenations": f"FIND users RETURN {concat} AS c",
    }


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def rss_mb(pid: int) -> float:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    return float("nan")


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(p / 100 * len(ordered)))]


class Sampler(threading.Thread):
    def __init__(self, port: int, key: str, users: int) -> None:
        super().__init__(daemon=True)
        self.port, self.key, self.users = port, key, users
        self.samples: list[tuple[float, float, int]] = []  # (start, seconds, status)
        self.stop = threading.Event()

    def run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        headers = {"Authorization": f"Bearer {self.key}"}
        i = 0
        while not self.stop.is_set():
            i += 1
            path = f"/v1/segments/big_seg/members/{i % self.users + 1}"
            t0 = time.perf_counter()
            try:
                conn.request("GET", path, None, headers)
                r = conn.getresponse()
                r.read()
                status = r.status
            except OSError:
                conn.close()
                conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                status = 0
            self.samples.append((t0, time.perf_counter() - t0, status))
            time.sleep(0.002)

    def between(self, start: float, end: float) -> list[float]:
        return [d for t, d, s in list(self.samples) if start <= t < end and s == 200]


def post(port: int, key: str, path: str, body: dict[str, Any], accept: str) -> tuple[int, int]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}
    conn.request("POST", path, json.dumps(body), {**headers, "Accept": accept})
    r = conn.getresponse()
    size = 0
    while chunk := r.read(1 << 20):
        size += len(chunk)
    conn.close()
    return r.status, size


def load_main(port: int, key: str, accept: str, seconds: float, body: str) -> None:
    """The query side of a phase: post `body` back to back for `seconds`; print the outcomes."""
    outcomes = []
    t0 = time.perf_counter()
    while time.perf_counter() - t0 < seconds:
        outcomes.append(post(port, key, "/v1/query", json.loads(body), accept))
    print(json.dumps(outcomes))


def _phase(
    port: int, key: str, server: int, text: str, accept: str, seconds: float
) -> tuple[list[tuple[int, int]], float, float, float, float, float]:
    """Run one phase: (outcomes, start, end, RSS at start, peak, 3 s after)."""
    start_rss = peak = rss_mb(server)
    body = json.dumps({"query": text, "limit": 100_000})
    load_args = [str(port), key, accept, str(seconds), body]
    t0 = time.perf_counter()
    load = subprocess.Popen(
        [sys.executable, "-m", "benchmarks.bench_big_results", "--load", *load_args],
        cwd=ROOT,
        stdout=subprocess.PIPE,
        text=True,
    )
    while load.poll() is None:
        peak = max(peak, rss_mb(server))
        time.sleep(0.05)
    end = time.perf_counter()
    outcomes = [(int(s), int(n)) for s, n in json.loads(load.communicate()[0])]
    time.sleep(3)
    return outcomes, t0, end, start_rss, peak, rss_mb(server)


@dataclass
class Phase:
    label: str
    fmt: str
    lookups: list[float]  # seconds, the 200s
    outcomes: list[tuple[int, int]]  # (status, bytes) of each query
    rss_start: float  # MB
    rss_peak: float
    rss_after: float

    @property
    def p50(self) -> float:
        return percentile(self.lookups, 50)

    @property
    def p99(self) -> float:
        return percentile(self.lookups, 99)


def run(data_dir: Path, seconds: float, src: Path = ROOT) -> list[Phase]:
    """Serve `data_dir` from a process of its own and measure every phase; `idle` first."""
    env = {**os.environ, "PYTHONPATH": str(src), "EQL_RATE_QUERY": "0", "EQL_RATE_LOOKUP": "0"}
    eql = [sys.executable, "-m", "eql.cli.main"]
    made = subprocess.run(
        [
            *eql,
            "keys",
            "create",
            "--data-dir",
            str(data_dir),
            "--scope",
            "query,lookup,define,admin",
        ],
        capture_output=True,
        text=True,
        env=env,
        cwd=src,
        check=False,
    )
    if made.returncode:
        raise RuntimeError(made.stderr)
    key = made.stdout.strip()
    port = free_port()
    server = subprocess.Popen(
        [*eql, "serve", "--data-dir", str(data_dir), "--port", str(port)],
        env=env,
        cwd=src,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(300):
            try:
                socket.create_connection(("127.0.0.1", port), 0.2).close()
                break
            except OSError:
                time.sleep(0.1)
        seg = {"eql": "DEFINE SEGMENT big_seg ON users WHERE id % 2 = 0", "refresh": True}
        status, _ = post(port, key, "/v1/segments", seg, FORMATS["json"])
        if status not in (200, 201):
            raise RuntimeError(f"defining the segment answered {status}")
        sampler = Sampler(port, key, 3000)
        sampler.start()
        t0 = time.perf_counter()
        time.sleep(seconds)
        now = rss_mb(server.pid)
        phases = [Phase("idle", "-", sampler.between(t0, time.perf_counter()), [], now, now, now)]
        for label, text in heavy_queries().items():
            for fmt, accept in FORMATS.items():
                outcomes, start, end, r0, rp, r3 = _phase(
                    port, key, server.pid, text, accept, seconds
                )
                phases.append(Phase(label, fmt, sampler.between(start, end), outcomes, r0, rp, r3))
        sampler.stop.set()
        return phases
    finally:
        server.terminate()
        server.wait(30)


def main() -> None:
    if sys.argv[1:2] == ["--load"]:
        port, key, accept, seconds, body = sys.argv[2:7]
        load_main(int(port), key, accept, float(seconds), body)
        return
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--data-dir", type=Path, required=True)
    ap.add_argument("--seconds", type=float, default=6.0)
    ap.add_argument("--src", type=Path, default=ROOT)
    args = ap.parse_args()
    print(f"# load average {os.getloadavg()[0]:.2f} before the run")
    phases = run(args.data_dir, args.seconds, args.src)
    base99 = phases[0].p99
    print(
        f"{'phase':<22}{'fmt':<8}{'lookups':>8}{'p50 ms':>8}{'p99 ms':>8}{'x idle':>8}"
        f"{'queries':>8}{'statuses':>14}{'MB/answer':>10}{'RSS MB start/peak/+3s':>23}"
    )
    for ph in phases:
        counts: dict[int, int] = {}
        for s, _ in ph.outcomes:
            counts[s] = counts.get(s, 0) + 1
        statuses = ",".join(f"{s}x{n}" for s, n in sorted(counts.items()))
        mb = statistics.mean([b for _, b in ph.outcomes]) / 1e6 if ph.outcomes else 0.0
        rss = f"{ph.rss_start:.0f}/{ph.rss_peak:.0f}/{ph.rss_after:.0f}"
        print(
            f"{ph.label:<22}{ph.fmt:<8}{len(ph.lookups):>8}{ph.p50 * 1000:>8.2f}"
            f"{ph.p99 * 1000:>8.2f}{ph.p99 / base99:>8.2f}{len(ph.outcomes):>8}{statuses:>14}"
            f"{mb:>10.1f}{rss:>23}"
        )


if __name__ == "__main__":
    main()
