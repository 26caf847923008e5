"""Start-up of the `eql` command, next to `python -c pass` measured in the same run.

python -m benchmarks.bench_startup [--data-dir DIR] [--rounds N]
Each round runs, in a rotated order, fresh processes of:
- `python -c pass` (the floor: the interpreter alone);
- `eql --help`, `eql --version`;
- `python -c "import eql"` (the library's import);
- `eql query "FIND stores RETURN count() AS n"` on the 2,000-user demo store (built in DIR,
  default benchmarks/.data/startup-2k, when missing);
- `eql query` with `EQL_PARSER_CACHE=0`: the parser built afresh, as before the grammar cache.
With `--baseline DIR` (a checkout of an earlier commit, e.g. `git worktree add DIR <commit>`),
its `eql --help` and `eql query` run in the same rounds, from DIR, for a before/after figure.
Prints the median and p90 wall time in seconds, each as a ratio to `python -c pass`, the goals
(`eql --help` <= 0.3 s, `eql query` <= 1.0 s), and the 1-minute load at start and end.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

GOALS = {"eql --help": 0.3, "eql query": 1.0}
QUERY = "FIND stores RETURN count() AS n"


def _eql(*args: str) -> list[str]:
    return [sys.executable, "-m", "eql.cli.main", *args]


Contender = tuple[list[str], dict[str, str], str | None]


def _timed(argv: list[str], env: dict[str, str], cwd: str | None = None) -> float:
    t0 = time.perf_counter()
    subprocess.run(
        argv, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, env=env, cwd=cwd
    )
    return time.perf_counter() - t0


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--data-dir", default="benchmarks/.data/startup-2k")
    ap.add_argument("--rounds", type=int, default=9)
    ap.add_argument("--baseline", default=None, help="a checkout of an earlier commit")
    args, _ = ap.parse_known_args()
    data_dir = Path(args.data_dir)
    if not (data_dir / "rocks").exists():
        print(f"building the 2,000-user demo store at {data_dir} ...", flush=True)
        subprocess.run(
            _eql("demo", "--data-dir", str(data_dir), "--users", "2000", "--seed", "42"),
            check=True,
            stdout=subprocess.DEVNULL,
        )
    env = dict(os.environ)
    cold = {**env, "EQL_PARSER_CACHE": "0"}
    query = ["query", "--data-dir", str(data_dir.resolve()), QUERY]
    here = str(Path(__file__).resolve().parents[1])
    contenders: dict[str, Contender] = {
        "python -c pass": ([sys.executable, "-c", "pass"], env, here),
        "eql --help": (_eql("--help"), env, here),
        "eql --version": (_eql("--version"), env, here),
        "import eql": ([sys.executable, "-c", "import eql"], env, here),
        "eql query": (_eql(*query), env, here),
        "eql query, no parser cache": (_eql(*query), cold, here),
    }
    if args.baseline:
        base = str(Path(args.baseline).resolve())
        contenders["baseline: eql --help"] = (_eql("--help"), env, base)
        contenders["baseline: eql query"] = (_eql(*query), env, base)
    _timed(*contenders["eql query"])  # writes the parser cache, warms the page cache
    samples: dict[str, list[float]] = {name: [] for name in contenders}
    names = list(contenders)
    load_start = os.getloadavg()[0]
    for r in range(args.rounds):
        for name in names[r % len(names) :] + names[: r % len(names)]:
            samples[name].append(_timed(*contenders[name]))
    load_end = os.getloadavg()[0]
    floor = statistics.median(samples["python -c pass"])
    print(f"{'command':<30} {'p50 s':>7} {'p90 s':>7} {'x python':>9}  goal")
    for name, xs in samples.items():
        p50 = statistics.median(xs)
        p90 = sorted(xs)[min(len(xs) - 1, int(len(xs) * 0.9))]
        goal = GOALS.get(name)
        verdict = "" if goal is None else f"<= {goal} s {'met' if p50 <= goal else 'MISSED'}"
        print(f"{name:<30} {p50:7.3f} {p90:7.3f} {p50 / floor:9.1f}  {verdict}")
    print(f"rounds {args.rounds}; 1-minute load {load_start:.2f} at start, {load_end:.2f} at end")


if __name__ == "__main__":
    main()
