"""ING-1: `kill -9` of a real import process at random points, then the store holds either all of
that file or none of it; no orphan files; the same import again completes, and once more adds
nothing.

Each kill runs `import_file` in a fresh `sys.executable` process on a sizeable generated file
(a Parquet events file that also folds an existing RocksDB tail into its segment, and an entity CSV
that partially updates existing rows). Kill points are drawn from a seeded random generator: some
anywhere in the import, some right inside the commit (after the child reports the commit stage, or
once its new segment file appears under events/, before the batch that lists it). Timing decides
where a kill lands, so which outcome each kill has varies; what must never vary is that the
outcome is one of the two allowed states.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import shutil
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest

from ingest.files import file_digest, import_file
from storage import Store, codec
from tests.helpers_store import ROOT, assert_no_orphans, new_store, require_slow, stream_table

EVENT_ROWS = 400_000
ENTITY_ROWS = 200_000
TAIL_ROWS = 25  # events already in the stream's RocksDB tail before the big import
OLD_ROWS = 2_000  # customers already in the store; half of them are in the big file too

CHILD = """
import json, sys
from storage import Store, codec
from ingest.files import import_file
data, kind, target, path = sys.argv[1:5]
store = Store.open(data)
print("opened", flush=True)
def progress(stage, done, total):
    print(stage, done, total, flush=True)
report = import_file(store, kind, target, path, progress=progress)
print("done", json.dumps([report.rows_imported, report.already_imported]), flush=True)
store.close()
"""


# ---- the files -----------------------------------------------------------------------------
def make_events_file(path: Path, rows: int) -> None:
    rng = np.random.default_rng(7)
    start = 1_767_225_600 * 1_000_000  # 2026-01-01T00:00:00Z
    cents = rng.integers(0, 100_000_000, rows)
    amount = pa.array(
        np.char.add(
            np.char.add((cents // 100).astype(str), "."),
            np.char.zfill((cents % 100).astype(str), 2),
        )
    ).cast(pa.decimal128(12, 2))
    table = pa.table(
        {
            "ts": pa.array(
                start + rng.integers(0, 365 * 86_400_000_000, rows), pa.timestamp("us", tz="UTC")
            ),
            "customer_id": pa.array(rng.integers(0, ENTITY_ROWS, rows)),
            "sku": pa.array(np.char.add("sku-", rng.integers(0, 5_000, rows).astype(str))),
            "amount": amount,
            "qty": pa.array(rng.integers(1, 10, rows)),
            "note": pa.array(np.where(rng.random(rows) < 0.1, None, "n"), pa.string()),
            "channel": pa.array(np.array(["store", "app", "web"])[rng.integers(0, 3, rows)]),
        }
    )
    pq.write_table(table, path, row_group_size=50_000)


def make_entity_file(path: Path, rows: int) -> None:
    """Every customers column except last_seen, which the import must leave as it was."""
    rng = np.random.default_rng(11)
    ids = np.arange(OLD_ROWS // 2, OLD_ROWS // 2 + rows)
    table = pa.table(
        {
            "id": pa.array(ids),
            "name": pa.array(np.char.add("name-", ids.astype(str))),
            "balance": pa.array(np.char.add(rng.integers(0, 10**6, rows).astype(str), ".25")),
            "score": pa.array(rng.random(rows)),
            "visits": pa.array(rng.integers(0, 1000, rows)),
            "active": pa.array(rng.integers(0, 2, rows).astype(bool)),
            "born": pa.array(
                np.datetime64("1950-01-01") + rng.integers(0, 20_000, rows).astype("timedelta64[D]")
            ),
            "tier": pa.array(np.array(["bronze", "silver", "gold"])[rng.integers(0, 3, rows)]),
        }
    )
    pacsv.write_csv(table, path)


def seed_store(data: Path, small: Path) -> Store:
    """A store with earlier rows: a few events in the tail, customers with last_seen set."""
    store = new_store(data)
    events = small / "tail.csv"
    if not events.exists():
        events.write_text(
            "ts,customer_id,amount\n"
            + "".join(f"2025-12-31T23:59:{i:02d}Z,{i},{i}.50\n" for i in range(TAIL_ROWS)),
            encoding="utf-8",
        )
        (small / "old.csv").write_text(
            "id,name,last_seen\n"
            + "".join(f"{i},old-{i},2025-06-01T00:00:{i % 60:02d}Z\n" for i in range(OLD_ROWS)),
            encoding="utf-8",
        )
    import_file(store, "events", "orders", events)
    import_file(store, "entity", "customers", small / "old.csv")
    assert store.tail_table("orders").num_rows == TAIL_ROWS
    return store


# ---- observing the store ---------------------------------------------------------------------
def family_digest(store: Store, prefix: bytes) -> str:
    h = hashlib.sha256()
    for k, v in store.kv.scan(prefix):
        h.update(len(k).to_bytes(4, "big") + k + len(v).to_bytes(4, "big") + v)
    return h.hexdigest()


def entity_state(store: Store, k: Kind) -> tuple[str, int, str]:
    """(digest of every customers row in RocksDB, row count, which known snapshot it holds),
    after checking that the snapshot's dense ids are RocksDB's and are 0..n-1."""
    snap = store.entity_table("customers").sort_by("id")
    ids = snap.column("__id").to_numpy()
    # RocksDB keeps i:<entity> in key order, which for int keys is numeric order
    stored = np.array([codec.unpack_u32(v) for _, v in store.kv.scan(b"i:customers\x00")])
    assert np.array_equal(ids, stored), "snapshot ids differ from RocksDB's id dictionary"
    assert np.array_equal(np.sort(ids), np.arange(len(ids))), "dense ids are not 0..n-1"
    assert store.id_count("customers") == snap.num_rows
    values = normalized(snap)
    if not k.tables:  # calibration: anchor the two states on a snapshot rebuilt from RocksDB
        assert values.equals(normalized(store._rebuild_snapshot(store.entity("customers"))))
    label = next((name for name, t in k.tables.items() if values.equals(t)), "unknown")
    k.last_table = values
    return family_digest(store, b"e:customers\x00"), snap.num_rows, label


def normalized(table: pa.Table) -> pa.Table:
    table = table.sort_by("id").drop_columns(["__id"])
    return table.set_column(
        table.column_names.index("tier"), "tier", table.column("tier").cast(pa.string())
    ).combine_chunks()


def events_state(store: Store, k: Kind) -> tuple[int, int, str]:
    """(event count, sum of qty, digest of the sorted timestamps), read from the files."""
    table = stream_table(store, "orders")
    assert table.num_rows == store.event_count("orders")
    qty = pc.sum(table.column("qty")).as_py() or 0
    ts = np.sort(table.column("ts").cast(pa.int64()).to_numpy())
    return table.num_rows, qty, hashlib.sha256(ts.tobytes()).hexdigest()


@dataclass
class Kind:
    name: str
    kind: str
    target: str
    file: Path
    observe: Callable[[Store, Kind], Any]
    tables: dict[str, pa.Table] = field(default_factory=dict)
    last_table: pa.Table | None = None
    before: Any = None
    after: Any = None
    commit_seconds: float = 0.0
    total_seconds: float = 0.0
    outcomes: list[str] = field(default_factory=list)


# ---- one child -------------------------------------------------------------------------------
class Child:
    def __init__(self, data: Path, k: Kind, stderr: Path) -> None:
        self.err = stderr.open("wb")
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), k.kind, k.target, str(k.file)],
            cwd=ROOT,
            stdout=subprocess.PIPE,
            stderr=self.err,
        )
        self.started = time.monotonic()
        self.wall_start = time.time()
        self.lines: list[tuple[float, str]] = []
        self.commit = threading.Event()
        self.reader = threading.Thread(target=self._read, daemon=True)
        self.reader.start()

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for raw in self.proc.stdout:
            line = raw.decode().strip()
            self.lines.append((time.monotonic(), line))
            if line.startswith("commit 0 "):
                self.commit.set()

    def kill(self) -> bool:
        """SIGKILL; True if the process was still running when killed."""
        running = self.proc.poll() is None
        if running:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.finish()
        if running and self.proc.returncode == 0:
            return False  # it exited between the poll and the signal
        if running:
            assert self.proc.returncode == -signal.SIGKILL
        return running

    def finish(self) -> int:
        code = self.proc.wait(timeout=300)
        self.reader.join(timeout=30)
        self.err.close()
        return code

    def at(self, prefix: str) -> float:
        return next(t for t, line in self.lines if line.startswith(prefix))


def calibrate(k: Kind, tmp: Path) -> None:
    """An uninterrupted import: the `after` state, and how long the import and its commit take."""
    data = tmp / f"{k.name}-calibration"
    store = seed_store(data, tmp)
    k.before = k.observe(store, k)
    before_table = k.last_table
    store.close()
    child = Child(data, k, tmp / f"{k.name}-calibration.err")
    assert child.finish() == 0, (tmp / f"{k.name}-calibration.err").read_text()
    k.total_seconds = time.monotonic() - child.started
    k.commit_seconds = child.at("done") - child.at("commit 0 ")
    with Store.open(data) as store:
        k.after = k.observe(store, k)
        assert_no_orphans(store)
    if k.last_table is not None:  # entities: name the two snapshots, then observe again
        assert before_table is not None
        k.tables = {"before": before_table, "after": k.last_table}
        k.before = (*k.before[:2], "before")
        k.after = (*k.after[:2], "after")
    assert k.after != k.before
    shutil.rmtree(data)


def wait_for_new_segment(child: Child, folder: Path, known: set[str], timeout: float) -> bool:
    """A segment file not in `known` appears (written before the batch that lists it)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and child.proc.poll() is None:
        if folder.is_dir() and any(p.name not in known for p in folder.iterdir()):
            return True
        time.sleep(0.0005)
    return False


def wait_for_snapshot_write(child: Child, snapshots: Path, timeout: float) -> bool:
    """The snapshot is rewritten (temp file, then rename) only after the commit point."""
    end = time.monotonic() + timeout
    while time.monotonic() < end and child.proc.poll() is None:
        for p in snapshots.glob("*.tmp") if snapshots.exists() else ():
            try:
                if p.stat().st_mtime >= child.wall_start - 1:  # this child's, not a leftover
                    return True
            except FileNotFoundError:
                continue
        time.sleep(0.0005)
    return False


def crash_loop(
    k: Kind, tmp: Path, random_kills: int, commit_kills: int, seed: int, after_kills: int = 0
) -> None:
    rnd = random.Random(seed)
    tmp.mkdir(parents=True, exist_ok=True)
    calibrate(k, tmp)
    digest = file_digest(k.file, k.kind, k.target)  # type: ignore[arg-type]
    data = tmp / f"{k.name}-data"
    store = seed_store(data, tmp)
    store.close()
    plan = ["random"] * random_kills + ["commit"] * commit_kills + ["after"] * after_kills
    rnd.shuffle(plan)
    killed = {"random": 0, "commit": 0, "after": 0}
    leftovers: set[str] = set()
    attempts, limit = 0, 5 * len(plan) + 20
    while plan:
        mode = plan[0]
        attempts += 1
        assert attempts <= limit, f"could not land kills: {killed}"
        err = tmp / f"{k.name}-{attempts}.err"
        segments = data / "events" / str(k.target)
        known = {p.name for p in segments.iterdir()} if segments.is_dir() else set()
        child = Child(data, k, err)
        if mode == "random":
            time.sleep(rnd.uniform(0.0, k.total_seconds * 1.05))
        elif mode == "after":  # past the commit point, while the snapshot is rewritten
            wait_for_snapshot_write(child, data / "snapshots", timeout=k.total_seconds * 4)
            time.sleep(rnd.uniform(0.0, 0.02))
        elif k.kind == "events":  # once the new segment file is there, before its commit
            wait_for_new_segment(child, segments, known, timeout=k.total_seconds * 4)
            time.sleep(rnd.uniform(0.0, k.commit_seconds))
        else:  # once the child reports that it is committing
            child.commit.wait(timeout=k.total_seconds * 4)
            time.sleep(rnd.uniform(0.0, k.commit_seconds))
        landed = child.kill()
        if landed:
            plan.pop(0)
            killed[mode] += 1
            assert b"Traceback" not in err.read_bytes()
        else:
            assert child.proc.returncode == 0, err.read_text()

        with Store.open(data) as store:  # recovery runs here
            assert_no_orphans(store)
            leftovers.update(p.name for p in (data / "snapshots").glob("*.tmp"))
            state = k.observe(store, k)
            done = store.ledger_get(digest) is not None
        assert state in (k.before, k.after), f"{k.name}: half-imported after a kill ({mode})"
        assert done == (state == k.after), "the ledger disagrees with the data"
        k.outcomes.append(f"{mode}:{'all' if done else 'none'}")
        if done:  # start again from the state before the import
            shutil.rmtree(data)
            seed_store(data, tmp).close()

    # the same import again completes, and once more adds nothing
    with Store.open(data) as store:
        assert k.observe(store, k) == k.before
        report = import_file(store, k.kind, k.target, k.file)  # type: ignore[arg-type]
        assert not report.already_imported and report.rows_rejected == 0
        assert k.observe(store, k) == k.after
        again = import_file(store, k.kind, k.target, k.file)  # type: ignore[arg-type]
        assert again.already_imported and again.rows_imported == 0
        assert k.observe(store, k) == k.after
        assert_no_orphans(store)
    assert killed == {"random": random_kills, "commit": commit_kills, "after": after_kills}
    if after_kills:
        assert any(o.startswith("after:all") for o in k.outcomes), k.outcomes
    print(
        f"{k.name}: import {k.total_seconds:.2f}s, commit {k.commit_seconds:.2f}s; "
        f"kills -> {', '.join(k.outcomes)}; snapshot temp files left: {sorted(leftovers)}"
    )


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("crash-files")
    events = folder / "orders.parquet"
    make_events_file(events, EVENT_ROWS)
    entity = folder / "customers.csv"
    make_entity_file(entity, ENTITY_ROWS)
    return {"events": events, "entity": entity}


def events_kind(files: dict[str, Path]) -> Kind:
    return Kind("events", "events", "orders", files["events"], events_state)


def entity_kind(files: dict[str, Path]) -> Kind:
    return Kind("entity", "entity", "customers", files["entity"], entity_state)


def test_kill_during_events_import(files: dict[str, Path], tmp_path: Path) -> None:
    k = events_kind(files)
    crash_loop(k, tmp_path, random_kills=8, commit_kills=4, seed=1)
    assert k.before[0] == TAIL_ROWS and k.after[0] == TAIL_ROWS + EVENT_ROWS


def test_kill_during_entity_import(files: dict[str, Path], tmp_path: Path) -> None:
    k = entity_kind(files)
    crash_loop(k, tmp_path, random_kills=5, commit_kills=2, after_kills=2, seed=2)
    assert k.before[1] == OLD_ROWS and k.after[1] == OLD_ROWS // 2 + ENTITY_ROWS


@pytest.mark.slow
@pytest.mark.parametrize("seed", [11, 12, 13])
def test_kill_during_imports_long(
    seed: int, files: dict[str, Path], tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    require_slow(request)
    crash_loop(events_kind(files), tmp_path / "e", random_kills=30, commit_kills=15, seed=seed)
    crash_loop(
        entity_kind(files),
        tmp_path / "n",
        random_kills=20,
        commit_kills=10,
        after_kills=10,
        seed=seed,
    )


def test_child_script_reports_its_stages(tmp_path: Path) -> None:
    """The stage lines the commit-time kills wait for are really printed by the child."""
    data = tmp_path / "data"
    seed_store(data, tmp_path).close()
    small = tmp_path / "few.csv"
    small.write_text("id,name\n1,a\n2,b\n", encoding="utf-8")
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(data), "entity", "customers", str(small)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "opened"
    assert "commit 0 2" in lines and "commit 2 2" in lines
    assert lines[-1] == "done " + json.dumps([2, False])
