"""CDC-1: kill -9 the applier at chosen points and at random moments, restart, drain, and check
lost = 0, duplicated = 0, rolled-back rows = 0, and that a concurrent reader never sees half of a
transaction (the account total is invariant under the workload's transfers).

The default run makes 20 kills (9 at chosen points, 11 at random moments); the soak tier
(`-m slow`) makes 200 random kills.
"""

from __future__ import annotations

import os
import random
import signal
import threading
import time
from pathlib import Path
from typing import Any

import pytest

from storage import Store
from tests.cdc.cdc_helpers import (
    ACCOUNT_TOTAL,
    BackgroundWriter,
    Workload,
    account_total,
    cli,
    cli_run,
    compare,
    config_text,
    make_db,
    make_store,
    write_config,
)

pytestmark = [pytest.mark.mariadb, pytest.mark.usefixtures("cdc_env")]
KILLED = 137  # what a crash point exits with, like a process killed by SIGKILL

SNAPSHOT_POINTS = ["after_snapshot_position:1", "before_snapshot_chunk:2", "after_snapshot_chunk:3"]
STREAM_POINTS = [
    "after_table_map:3",
    "mid_transaction:5",
    "before_batch_write:3",
    "after_batch_write:3",
    "at_rotate:1",
    "during_ddl:1",
]


def _drain(store_dir: Path, cfg: Path) -> float:
    t0 = time.monotonic()
    rc, out = cli_run(store_dir, cfg, "--until-caught-up")
    assert rc == 0, out
    return time.monotonic() - t0


def _check(server: Any, db: str, store_dir: Path) -> int:
    d = compare(server, db, store_dir)
    assert d.ok, d
    s = Store.open(store_dir, read_only=True)
    try:
        assert account_total(s) == ACCOUNT_TOTAL
    finally:
        s.close()
    return d.rows


def test_kills_at_chosen_points(mariadb: Any, tmp_path: Path) -> None:
    db = "crash1"
    make_db(mariadb, db)
    wl = Workload(mariadb, db, seed=101)
    wl.run(250)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    # small batches, so that a run makes several commits and "the 3rd batch" exists
    text = config_text(mariadb, db, chunk_rows=40, extra="batch:\n  max_rows: 40\n")
    cfg = write_config(tmp_path / "cdc.yaml", text)
    kills = 0
    for point in SNAPSHOT_POINTS:  # each restart resumes the snapshot after a catch-up
        rc, out = cli_run(store_dir, cfg, "--until-caught-up", crash=point)
        assert rc == KILLED, f"{point}: {out}"
        kills += 1
        wl.run(40)  # changes while the connector is down, also to rows already copied
    recovery = [_drain(store_dir, cfg)]
    _check(mariadb, db, store_dir)
    for n, point in enumerate(STREAM_POINTS):
        wl.run(30)
        if point.startswith("at_rotate"):
            mariadb.sql("FLUSH BINARY LOGS")
        if point.startswith("during_ddl"):
            mariadb.sql(f"ALTER TABLE {db}.customers ADD COLUMN note{n} INT")
        wl.run(30)
        rc, out = cli_run(store_dir, cfg, "--until-caught-up", crash=point)
        assert rc == KILLED, f"{point}: {out}"
        kills += 1
        recovery.append(_drain(store_dir, cfg))
        rows = _check(mariadb, db, store_dir)
    wl.close()
    assert kills == 9
    print(
        f"\nCDC-1 chosen points: kills={kills} rows compared={rows} "
        f"recovery max={max(recovery):.2f}s mean={sum(recovery) / len(recovery):.2f}s"
    )


def _random_kills(server: Any, tmp_path: Path, db: str, kills: int, seed: int) -> None:
    make_db(server, db)
    Workload(server, db, seed=seed).run(100)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    cfg = write_config(tmp_path / "cdc.yaml", config_text(server, db, chunk_rows=50))
    _drain(store_dir, cfg)
    rng = random.Random(seed)
    torn = {"reads": 0, "bad": 0}
    halt = threading.Event()

    def reader() -> None:  # a concurrent reader: the transfers' total must never be torn
        while not halt.is_set():
            try:
                s = Store.open(store_dir, read_only=True)
            except Exception:
                time.sleep(0.01)
                continue
            try:
                torn["reads"] += 1
                if account_total(s) != ACCOUNT_TOTAL:
                    torn["bad"] += 1
            finally:
                s.close()
            time.sleep(0.02)

    rt = threading.Thread(target=reader, daemon=True)
    rt.start()
    with BackgroundWriter(server, db, seed=seed + 1, pause=0.001):
        for _ in range(kills):
            p = cli(
                "run",
                "--data-dir",
                str(store_dir),
                "--config",
                str(cfg),
                "--quiet",
                "--max-seconds",
                "60",
            )
            time.sleep(rng.uniform(0.9, 2.2))  # ~0.8 s of it is the interpreter starting
            os.kill(p.pid, signal.SIGKILL)
            p.communicate(timeout=30)
            assert p.returncode == -signal.SIGKILL
        if rng.random() < 2:  # and one log rotation mid-run
            server.sql("FLUSH BINARY LOGS")
    halt.set()
    rt.join(timeout=10)
    recovery = _drain(store_dir, cfg)
    rows = _check(server, db, store_dir)
    assert torn["bad"] == 0, torn
    print(
        f"\nCDC-1 random: kills={kills} rows compared={rows} concurrent reads={torn['reads']} "
        f"torn=0 recovery={recovery:.2f}s"
    )


def test_kills_at_random_moments(mariadb: Any, tmp_path: Path) -> None:
    _random_kills(mariadb, tmp_path, "crash2", kills=11, seed=202)


@pytest.mark.slow
def test_kills_at_random_moments_soak(mariadb: Any, tmp_path: Path) -> None:
    _random_kills(mariadb, tmp_path, "crash3", kills=200, seed=303)


def _children(pid: int) -> list[int]:
    """Child processes of `pid`, whichever of its threads started them."""
    out: list[int] = []
    for task in Path(f"/proc/{pid}/task").glob("*"):
        try:
            out += [int(x) for x in (task / "children").read_text().split()]
        except OSError:
            continue
    return out


def test_process_reader_crashes_kills_and_reconnects(mariadb: Any, tmp_path: Path) -> None:
    """EQL_CDC_READER=process: a crash point in the reader process kills the applier in stream
    order; a kill -9 of the applier takes the reader process with it; results are exact."""
    db = "crashp"
    make_db(mariadb, db)
    wl = Workload(mariadb, db, seed=404)
    wl.run(80)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    cfg = write_config(tmp_path / "cdc.yaml", config_text(mariadb, db, chunk_rows=40))
    env = {"EQL_CDC_READER": "process"}
    _drain(store_dir, cfg)
    for point in ("after_table_map:4", "mid_transaction:7"):
        wl.run(40)
        rc, out = cli_run(store_dir, cfg, "--until-caught-up", crash=point, env_extra=env)
        assert rc == KILLED, f"{point}: {out}"
        rc, out = cli_run(store_dir, cfg, "--until-caught-up", env_extra=env)
        assert rc == 0, out
        _check(mariadb, db, store_dir)
    with BackgroundWriter(mariadb, db, seed=405, pause=0.002):
        p = cli(
            "run",
            "--data-dir",
            str(store_dir),
            "--config",
            str(cfg),
            "--quiet",
            "--max-seconds",
            "60",
            env_extra=env,
        )
        deadline = time.monotonic() + 20
        while not _children(p.pid):
            assert time.monotonic() < deadline, "no reader process"
            time.sleep(0.05)
        time.sleep(1.0)
        kids = _children(p.pid)
        os.kill(p.pid, signal.SIGKILL)
        p.communicate(timeout=30)
    deadline = time.monotonic() + 10
    while any(
        Path(f"/proc/{k}").exists()
        and "cdc_reader_proc" in Path(f"/proc/{k}/cmdline").read_text(errors="replace")
        for k in kids
    ):
        assert time.monotonic() < deadline, "the reader process outlived its applier"
        time.sleep(0.05)
    rc, out = cli_run(store_dir, cfg, "--until-caught-up", env_extra=env)
    assert rc == 0, out
    wl.close()
    _check(mariadb, db, store_dir)
