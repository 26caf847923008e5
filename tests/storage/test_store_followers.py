"""Readers in other processes (RocksDB secondary instances) follow a writer: each `follow()` shows a
prefix of the writer's commits, whole commits only, across entities and streams, and a query of a
read-only session sees every commit made before it was prepared (issue 13, READ-1 in
docs/reliability.md).

The writer is a real second process making many small commits; it rewrites its snapshot files
often (FLUSH_COMMITS lowered), so the reader meets both of its catch-up paths: the changed-key
entries, and a reload after the writer trimmed them.
"""

from __future__ import annotations

import subprocess
import sys
import textwrap
import time
from pathlib import Path

import pyarrow.compute as pc
import pytest

from runtime.session import Session
from storage import ChangeSet, Store
from tests.helpers_store import ROOT, customers_table, new_store, orders_table, utc

COMMITS = 1_000

WRITER = textwrap.dedent(
    """
    import sys
    import datetime as dt
    from storage import ChangeSet, Store, snapshot
    from tests.helpers_store import customers_table, orders_table

    snapshot.FLUSH_COMMITS = 37  # rewrite the file (and trim the entries) often
    store = Store.open(sys.argv[1])
    print("READY", flush=True)
    sys.stdin.readline()
    start = int(sys.argv[3]) if len(sys.argv) > 3 else 0
    for i in range(start, start + int(sys.argv[2])):
        change = ChangeSet()
        # a new customer, and customer 0's visits: the number of commits so far
        change.upsert("customers", customers_table([{"id": i + 1, "visits": i}], ("id", "visits")))
        change.upsert("customers", customers_table([{"id": 0, "visits": i + 1}], ("id", "visits")))
        ts = dt.datetime(2026, 1, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=i)
        change.append("orders", orders_table([{"ts": ts, "customer_id": i + 1, "amount": 1}]))
        store.commit(change)
    store.close()
    print("DONE", flush=True)
    """
)


def _start_writer(data: Path, commits: int) -> subprocess.Popen[str]:
    proc = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(data), str(commits)],
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None and proc.stdout.readline().strip() == "READY"
    return proc


@pytest.fixture
def seeded(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    store = new_store(data)
    store.commit(_customer_zero())
    store.close()
    return data


def _customer_zero() -> ChangeSet:
    change = ChangeSet()
    change.upsert("customers", customers_table([{"id": 0, "visits": 0}], ("id", "visits")))
    return change


def _prefix(store: Store) -> int:
    """How many writer commits the reader's view holds, checked to be a whole prefix of them."""
    table = store.entity_table("customers")
    ids = sorted(table.column("id").to_pylist())
    n = len(ids) - 1
    assert ids == list(range(n + 1)), "customers are not a prefix of the commits"
    visits = table.filter(pc.equal(table.column("id"), 0)).column("visits").to_pylist()
    assert visits == [n], f"customer 0 has visits {visits}, the view holds {n} commits"
    assert store.event_count("orders") == n, "orders and customers are at different commits"
    events = store.event_table("orders").column("customer_id").to_pylist()
    assert sorted(events) == list(range(1, n + 1))
    return n


def test_reader_sees_a_prefix_of_a_thousand_commits(seeded: Path) -> None:
    reader = Store.open(seeded, read_only=True)
    try:
        assert _prefix(reader) == 0
        writer = _start_writer(seeded, COMMITS)
        assert writer.stdin is not None
        writer.stdin.write("go\n")
        writer.stdin.flush()
        seen = [0]
        deadline = time.monotonic() + 120
        while writer.poll() is None and time.monotonic() < deadline:
            changed = reader.follow()
            n = _prefix(reader)
            assert n >= seen[-1], "a reader went back in time"
            assert changed or n == seen[-1]
            seen.append(n)
        assert writer.wait(timeout=60) == 0
        reader.follow()
        assert _prefix(reader) == COMMITS
        assert not reader.follow(), "nothing new: follow says so"
        assert len(set(seen)) > 3, "the reader saw the writer's commits only at the end"
    finally:
        reader.close()


def test_a_query_sees_every_commit_made_before_it(seeded: Path) -> None:
    """Through the one door: a read-only session over a store another process writes. Each query
    is prepared after a commit has returned in the writer and sees it; customers with no order
    would be half a commit (the customer and its order are committed together)."""
    session = Session.open(seeded, read_only=True)
    try:
        for i in range(5):
            child = subprocess.run(
                [sys.executable, "-c", WRITER, str(seeded), "1", str(i)],
                cwd=ROOT,
                input="go\n",
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert child.returncode == 0, child.stderr
            found = session.execute("FIND customers WHERE count(orders) = 0 RETURN id").table
            assert found.column("id").to_pylist() == [0]
            rows = session.execute("FIND customers RETURN id").table
            assert rows.num_rows == i + 2, "a commit made before the query is not in its answer"
    finally:
        session.close()


def test_follow_is_a_no_op_for_a_writer(seeded: Path) -> None:
    store = Store.open(seeded)
    try:
        assert not store.follow()
    finally:
        store.close()


def test_reader_opened_between_commits_and_segments(tmp_path: Path) -> None:
    """Segment files exist before the batch that lists them: a reader that follows while large
    appends (segments, not the tail) are committed never meets a listed file that is missing."""
    data = tmp_path / "data"
    store = new_store(data)
    reader = Store.open(data, read_only=True)
    try:
        for round_ in range(3):
            rows = [
                {"ts": utc(2026, 1, 1), "customer_id": round_, "amount": 1} for _ in range(25_000)
            ]
            change = ChangeSet()
            change.append("orders", orders_table(rows))
            store.commit(change)
            assert reader.follow()
            assert reader.event_count("orders") == 25_000 * (round_ + 1)
            assert reader.event_table("orders").num_rows == 25_000 * (round_ + 1)
    finally:
        reader.close()
        store.close()
