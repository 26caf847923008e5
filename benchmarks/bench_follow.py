"""Commit to visible in a reader process, next to a bare RocksDB reader measured in the same run.

python -m benchmarks.bench_follow --data-dir DIR [--commits N] [--interval-ms M] [--poll-ms P]

DIR is a demo store (`eql demo --data-dir DIR --users 100000 --seed 42`); it is written to (one
`users` row's name per commit). A writer process (a real `storage.Store`, as `eql ingest`, CDC or
a server write) commits N small change sets, one every M ms, each stamping its wall time in a
meta key just before the commit. Two reader processes poll every P ms:
- `eql`: a read-only `runtime.Session` runs `FIND users WHERE id = K RETURN name` (each `prepare`
  follows the writer: `Store.follow`); a commit is visible when the answer shows its name;
- `rocksdb`: the peer, a bare rocksdict read-only handle reopened each poll, reading the meta key
  (the floor of any reader that reopens RocksDB).
Each reports the delay from a commit's stamp to the poll that first saw it, p50/p99/max in ms.
The goal: p99 <= 1000 ms (aim: 100 ms); the ratio to the peer is printed. The delay includes up
to one poll period (P ms), for both.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

KEY = 1  # the users row the writer renames
STAMP = b"m:bench_follow"
STAMPS = "bench_follow.stamps"  # the writer's stamps, one line per commit, for the report


def writer(data_dir: str, commits: int, interval: float) -> None:
    import pyarrow as pa

    from storage import ChangeSet, Store

    store = Store.open(data_dir)
    print("READY", flush=True)
    sys.stdin.readline()
    with open(Path(data_dir) / STAMPS, "w") as stamps:
        for i in range(commits):
            time.sleep(interval)
            change = ChangeSet()
            change.upsert("users", pa.table({"id": [KEY], "name": [f"bench-{i}"]}))
            stamp = time.time()
            change.meta[STAMP] = json.dumps([i, stamp]).encode()
            store.commit(change)
            stamps.write(json.dumps([i, stamp]) + "\n")
    store.close()


def eql_reader(data_dir: str, commits: int, poll: float, deadline: float) -> None:
    from runtime.session import Session

    session = Session.open(data_dir, read_only=True)
    query = f"FIND users WHERE id = {KEY} RETURN name"
    print("READY", flush=True)
    seen: dict[int, float] = {}
    while commits - 1 not in seen and time.time() < deadline:
        name = session.execute(query).table.column("name")[0].as_py()
        now = time.time()
        if name.startswith("bench-"):
            seen.setdefault(int(name[6:]), now)
        time.sleep(poll)
    print(json.dumps(seen), flush=True)


def rocks_reader(data_dir: str, commits: int, poll: float, deadline: float) -> None:
    from rocksdict import AccessType, Options, Rdict

    path = str(Path(data_dir) / "rocks")
    print("READY", flush=True)
    seen: dict[int, float] = {}
    while commits - 1 not in seen and time.time() < deadline:
        db = Rdict(path, Options(raw_mode=True), access_type=AccessType.read_only())
        raw = db.get(STAMP)
        db.close()
        now = time.time()
        if raw is not None:
            seen.setdefault(int(json.loads(bytes(raw))[0]), now)
        time.sleep(poll)
    print(json.dumps(seen), flush=True)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", required=True)
    ap.add_argument("--commits", type=int, default=200)
    ap.add_argument("--interval-ms", type=float, default=50)
    ap.add_argument("--poll-ms", type=float, default=10)
    ap.add_argument("--role", default=None, help=argparse.SUPPRESS)
    ap.add_argument("--deadline", type=float, default=0, help=argparse.SUPPRESS)
    args = ap.parse_args()
    poll = args.poll_ms / 1000
    if args.role == "writer":
        writer(args.data_dir, args.commits, args.interval_ms / 1000)
        return
    if args.role in ("eql", "rocksdb"):
        reader = eql_reader if args.role == "eql" else rocks_reader
        reader(args.data_dir, args.commits, poll, args.deadline)
        return

    total = args.commits * args.interval_ms / 1000
    deadline = time.time() + total + 120
    base = [sys.executable, "-m", "benchmarks.bench_follow", "--data-dir", args.data_dir]
    base += ["--commits", str(args.commits), "--interval-ms", str(args.interval_ms)]
    base += ["--poll-ms", str(args.poll_ms), "--deadline", str(deadline)]
    procs = {
        role: subprocess.Popen(
            [*base, "--role", role], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
        )
        for role in ("writer", "eql", "rocksdb")
    }
    for proc in procs.values():
        assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    stamps_proc = procs.pop("writer")
    assert stamps_proc.stdin is not None
    stamps_proc.stdin.write("go\n")
    stamps_proc.stdin.flush()
    stamps_proc.wait(timeout=total + 120)
    stamps = _read_stamps(args.data_dir)
    print(
        f"commit -> visible in a reader process: {args.commits} commits, one every "
        f"{args.interval_ms:g} ms, readers poll every {args.poll_ms:g} ms ({args.data_dir})"
    )
    results: dict[str, list[float]] = {}
    for role, proc in procs.items():
        out, _ = proc.communicate(timeout=max(5.0, deadline - time.time()))
        seen = {int(k): v for k, v in json.loads(out.strip().splitlines()[-1]).items()}
        delays = sorted((seen[i] - stamps[i]) * 1000 for i in seen if i in stamps)
        results[role] = delays
        missed = args.commits - len(delays)
        p50 = statistics.median(delays)
        p99 = delays[min(len(delays) - 1, int(len(delays) * 0.99))]
        print(
            f"  {role:8s} p50 {p50:7.1f} ms  p99 {p99:7.1f} ms  max {delays[-1]:7.1f} ms"
            + (f"  ({missed} commits never seen: a later one was seen first)" if missed else "")
        )
    ours = results["eql"]
    peer = results["rocksdb"]
    ratio = statistics.median(ours) / statistics.median(peer)
    p99 = ours[min(len(ours) - 1, int(len(ours) * 0.99))]
    goal = "met" if p99 <= 1000 else "MISSED"
    print(f"  eql / rocksdb p50: {ratio:.2f}x; goal p99 <= 1000 ms: {goal}")


def _read_stamps(data_dir: str) -> dict[int, float]:
    """The stamp of every commit, from the file the writer keeps (`writer`)."""
    path = Path(data_dir) / STAMPS
    out: dict[int, float] = {}
    for line in path.read_text().splitlines():
        i, t = json.loads(line)
        out[int(i)] = float(t)
    return out


if __name__ == "__main__":
    main()
