"""Lazily written snapshot files: a commit records the keys it changed (`c:<entity>`) in its
batch, and the file is rewritten only now and then. Whatever point a writer is killed at, opening
the store gives exactly the committed rows (caught up from those keys, or rebuilt when one is
missing), and a read-only reader next to a live writer sees exactly what is committed. Real
RocksDB files, real processes killed with SIGKILL."""

from __future__ import annotations

import datetime as dt
import os
import random
import signal
import subprocess
import sys
import textwrap
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest

from storage import ChangeSet, Store, codec, snapshot
from storage.kv import KV
from tests.helpers_store import (
    CUSTOMER_COLUMNS,
    ROOT,
    assert_snapshot_matches_rocks,
    customers_table,
    jsonish,
    new_store,
    rocks_rows,
    snapshot_rows,
)

ATTRS = CUSTOMER_COLUMNS[1:]
STEP_META = b"o:test:step"

# A writer in its own process: commits step after step (each records its step number in the
# same batch), printing the step once it returned; with "wait" it pauses after `upto` steps.
CHILD = textwrap.dedent(
    """
    import sys
    from storage import Store
    from storage import snapshot
    from tests.storage.test_store_lazy_snapshots import commit_step, STEP_META
    data, flush_rows, upto, mode = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
    snapshot.FLUSH_ROWS = flush_rows
    store = Store.open(data)
    step = int(store.get_meta(STEP_META) or b"0")
    print("opened", step, flush=True)
    while step < upto:
        step += 1
        commit_step(store, step)
        print("step", step, flush=True)
    if mode == "wait":
        print("waiting", flush=True)
        sys.stdin.readline()
    store.close()
    print("closed", flush=True)
    """
)


def step_change(step: int) -> tuple[tuple[str, ...], list[dict[str, Any]], list[int]]:
    """The rows (a random subset of the columns, duplicate keys allowed) and deletes of a step."""
    rnd = random.Random(step)
    cols = ("id", *[c for c in ATTRS if rnd.random() < 0.7])
    rows = []
    for _ in range(rnd.randrange(1, 40)):
        rows.append(
            {
                "id": rnd.randrange(300),
                "name": rnd.choice([None, f"n{step}", 'q"\\']),
                "balance": Decimal(f"{rnd.randrange(-999, 999)}.{step % 100:02d}"),
                "score": rnd.choice([None, rnd.random(), -0.0, 1e300]),
                "visits": rnd.choice([None, step, -(2**63)]),
                "active": rnd.choice([None, True, False]),
                "born": dt.date(1990, 1, 1) + dt.timedelta(days=rnd.randrange(20_000)),
                "last_seen": dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
                + dt.timedelta(microseconds=rnd.randrange(10**13)),
                "tier": rnd.choice([None, "bronze", "silver", "gold"]),
            }
        )
    deletes = [rnd.randrange(300) for _ in range(rnd.randrange(0, 6))]
    return cols, rows, deletes


def commit_step(store: Store, step: int) -> None:
    cols, rows, deletes = step_change(step)
    change = ChangeSet()
    change.upsert("customers", customers_table(rows, cols))
    change.deletes["customers"] = deletes
    change.meta[STEP_META] = str(step).encode()
    store.commit(change)


def model_after(steps: int) -> dict[int, dict[str, Any]]:
    """The customers rows after steps 1..steps, computed without the store."""
    model: dict[int, dict[str, Any]] = {}
    for step in range(1, steps + 1):
        cols, rows, deletes = step_change(step)
        upserted = {r["id"] for r in rows}
        for k in deletes:
            if k not in upserted:
                model.pop(k, None)
        for row in rows:  # the last row of a key wins
            current = dict(model.get(row["id"], dict.fromkeys(ATTRS)))
            current.update({c: jsonish(row[c]) for c in cols[1:]})
            model[row["id"]] = current
    return model


def changelog_versions(store: Store, entity: str = "customers") -> list[int]:
    prefix = codec.family_prefix("c", entity)
    return [codec.unpack_u64(k[len(prefix) :]) for k, _ in store.kv.scan(prefix)]


def file_version(data: Path, entity: str = "customers") -> int | None:
    loaded = snapshot.read(data / "snapshots" / f"{entity}.arrow")
    return None if loaded is None else loaded[1]


def assert_committed_state(store: Store) -> int:
    """Snapshot == RocksDB == the model of the steps the store says it committed."""
    steps = int(store.get_meta(STEP_META) or b"0")
    model = model_after(steps)
    assert rocks_rows(store, "customers") == model
    assert snapshot_rows(store, "customers") == model
    assert_snapshot_matches_rocks(store, "customers")
    ids = [store.dense_id("customers", k) for k in model]
    assert len(set(ids)) == len(ids) and all(i is not None for i in ids)
    return steps


class Child:
    def __init__(self, data: Path, flush_rows: int, upto: int, mode: str = "run") -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-c", CHILD, str(data), str(flush_rows), str(upto), mode],
            cwd=ROOT,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )

    def wait_for(self, prefix: str) -> str:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            if line.startswith(prefix):
                return line.strip()
        raise AssertionError(f"child ended before {prefix!r}: {self.stderr()}")

    def stderr(self) -> str:
        assert self.proc.stderr is not None
        return self.proc.stderr.read()

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGKILL)
        self.proc.wait(timeout=60)
        assert "Traceback" not in self.stderr()


@pytest.mark.parametrize("flush_rows", [snapshot.FLUSH_ROWS, 30])
def test_sigkill_at_random_points_reopens_to_the_committed_rows(
    tmp_path: Path, flush_rows: int
) -> None:
    """A writer committing small changes is killed at random points. With the default
    thresholds no file is written before the kill (the next open catches up from the changed
    keys); with a small one, kills also land between a batch and its file rewrite, and inside
    it."""
    rnd = random.Random(flush_rows)
    data = tmp_path / "data"
    new_store(data).close()
    caught_up = 0
    for _ in range(6):
        before = Store.open(data, read_only=True)
        start = int(before.get_meta(STEP_META) or b"0")
        before.close()
        child = Child(data, flush_rows, upto=start + 400)
        child.wait_for(f"step {start + rnd.randrange(1, 40)}")
        child.kill()
        behind = (file_version(data) or 0) < Store.open(data, read_only=True).version("customers")
        with Store.open(data) as store:
            steps = assert_committed_state(store)
            assert steps > start
            snap = store._snapshots["customers"]
            if behind and snap.file_version != -1:
                caught_up += 1
            assert snap.version == store.version("customers")
        # closing wrote the file and dropped the changed keys it covers
        assert file_version(data) == Store.open(data, read_only=True).version("customers")
    if flush_rows == snapshot.FLUSH_ROWS:
        assert caught_up == 6, "every reopen after a kill should have caught up"


def test_read_only_reader_next_to_a_live_writer_sees_the_committed_rows(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        for step in range(1, 4):
            commit_step(store, step)
    assert file_version(data) is not None
    child = Child(data, snapshot.FLUSH_ROWS, upto=40, mode="wait")
    try:
        child.wait_for("waiting")
        with Store.open(data, read_only=True) as ro:
            assert assert_committed_state(ro) == 40
            # the file is behind (the writer wrote none), the reader caught up without writing
            assert file_version(data) == 3 < ro.version("customers")
            assert ro._snapshots["customers"].file_version == 3
            assert changelog_versions(ro) == list(range(4, ro.version("customers") + 1))
        assert child.proc.stdin is not None
        child.proc.stdin.write("go\n")
        child.proc.stdin.flush()
        child.wait_for("closed")
        assert child.proc.wait(timeout=60) == 0, child.stderr()
    finally:
        child.kill()
    with Store.open(data, read_only=True) as ro:
        assert file_version(data) == ro.version("customers")
        assert changelog_versions(ro) == []
        assert_committed_state(ro)


def test_changed_keys_are_trimmed_once_the_file_holds_them(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        for step in range(1, 6):
            commit_step(store, step)
        # the first commit loaded (and wrote) the empty snapshot; the next ones only log keys
        assert file_version(data) == 0
        assert changelog_versions(store) == [1, 2, 3, 4, 5]
    assert file_version(data) == 5
    with Store.open(data) as store:
        assert changelog_versions(store) == []
        monkeypatch.setattr(snapshot, "FLUSH_ROWS", 60)
        for step in range(6, 30):
            commit_step(store, step)
            version = store.version("customers")
            logged = changelog_versions(store)
            written = file_version(data)
            assert written is not None
            # every version after the file's is logged; none before it is kept
            assert logged == list(range(written + 1, version + 1))
        assert file_version(data) not in (None, 5)  # some commits rewrote the file
        assert_committed_state(store)


def test_a_missing_changed_keys_entry_means_a_rebuild(tmp_path: Path) -> None:
    data = tmp_path / "data"
    store = new_store(data)
    for step in range(1, 8):
        commit_step(store, step)
    store.kv.close()  # the process dies: the file is still the empty one of version 0
    assert file_version(data) == 0
    with Store.open(data, read_only=True) as ro:
        assert changelog_versions(ro) == list(range(1, 8))
    kv = KV(data / "rocks")
    kv.commit({}, [codec.family_key("c", "customers", codec.pack_u64(4))])
    kv.close()
    with Store.open(data) as again:
        assert again._snapshots.get("customers") is None
        assert_committed_state(again)
        # rebuilt from RocksDB and persisted at once
        assert file_version(data) == again.version("customers")


@pytest.mark.parametrize(
    ("flush_rows", "patches_max", "fill_ratio"),
    [(snapshot.FLUSH_ROWS, 16, 512), (40, 3, 0), (snapshot.FLUSH_ROWS, 2, 10**9), (25, 16, 10**9)],
)
def test_many_commits_without_reads_then_crashes_and_reopens(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    flush_rows: int,
    patches_max: int,
    fill_ratio: int,
) -> None:
    """Patches pile up unread (merged beyond PATCHES_MAX), partial upserts read current values
    from the snapshot (ratio 0) or from RocksDB (a huge ratio); crashes (RocksDB closed without
    the store's close) and clean reopens at random."""
    monkeypatch.setattr(snapshot, "FLUSH_ROWS", flush_rows)
    monkeypatch.setattr(snapshot, "PATCHES_MAX", patches_max)
    monkeypatch.setattr(snapshot, "FILL_FROM_ROCKS_RATIO", fill_ratio)
    rnd = random.Random(flush_rows * 7 + patches_max)
    data = tmp_path / "data"
    store = new_store(data)
    try:
        step = 0
        for _ in range(8):
            for _ in range(rnd.randrange(1, 25)):
                step += 1
                commit_step(store, step)
            if rnd.random() < 0.5:
                store.kv.close()  # killed: no file written, no trim
            else:
                store.close()
            with Store.open(data, read_only=True) as ro:
                assert assert_committed_state(ro) == step
            store = Store.open(data)
            assert assert_committed_state(store) == step
    finally:
        store.close()
