"""One writer process at a time (a real second process), and STO-1: the durability settings as
RocksDB itself records them in its OPTIONS file, and as the store writes them."""

from __future__ import annotations

import configparser
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

import storage.kv as kv_module
from storage import ChangeSet, Store
from storage.kv import DURABILITY, KV
from tests.helpers_store import ROOT, customers_table, new_store

OPEN_IN_CHILD = textwrap.dedent(
    """
    import sys
    from storage import Store
    from storage.kv import StoreLockedError
    try:
        store = Store.open(sys.argv[1], read_only=sys.argv[2] == "ro")
    except StoreLockedError as exc:
        print("LOCKED", exc)
        sys.exit(3)
    print("OPENED", store.get("customers", 1))
    store.close()
    """
)


def open_in_child(data: Path, mode: str = "rw") -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-c", OPEN_IN_CHILD, str(data), mode],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )


def test_second_process_gets_store_locked_error(tmp_path: Path) -> None:
    data = tmp_path / "data"
    with new_store(data) as store:
        change = ChangeSet()
        change.upsert("customers", customers_table([{"id": 1, "name": "a"}], ("id", "name")))
        store.commit(change)
        child = open_in_child(data)
        assert child.returncode == 3, child.stderr
        assert child.stdout.startswith(f"LOCKED the store at {data} is open in another process")
        assert "Traceback" not in child.stderr
        # a read-only opener does not need the lock and sees committed rows
        ro = open_in_child(data, "ro")
        assert ro.returncode == 0, ro.stderr
        assert "OPENED {'id': 1, 'name': 'a'" in ro.stdout
    # once the writer is gone, another process can open the store
    child = open_in_child(data)
    assert child.returncode == 0, child.stderr
    assert child.stdout.startswith("OPENED {'id': 1, 'name': 'a'")


def _rocks_options(rocks: Path) -> configparser.ConfigParser:
    files = sorted(rocks.glob("OPTIONS-*"), key=lambda p: int(p.name.split("-")[1]))
    assert files, f"RocksDB wrote no OPTIONS file in {rocks}"
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read(files[-1])
    return parser


def test_sto1_rocksdb_options_file_records_recovery_mode_and_paranoid_checks(
    tmp_path: Path,
) -> None:
    data = tmp_path / "data"
    new_store(data).close()
    for _ in range(2):  # as created, and as reopened
        opts = _rocks_options(data / "rocks")
        db = opts["DBOptions"]
        assert db["wal_recovery_mode"] == "kPointInTimeRecovery"
        assert db["paranoid_checks"] == "true"
        # nothing turns the WAL off or makes it vanish behind our back
        assert db["manual_wal_flush"] == "false"
        assert db["WAL_ttl_seconds"] == "0"
        assert db["WAL_size_limit_MB"] == "0"
        assert db["unordered_write"] == "false"
        Store.open(data).close()


def test_sto1_write_options_sync_and_wal(tmp_path: Path) -> None:
    kv = KV(tmp_path / "rocks")
    try:
        assert kv._wopt.sync is True
        assert kv._wopt.disable_wal is False
    finally:
        kv.close()
    with new_store(tmp_path / "data") as store:
        assert store.kv._wopt.sync is True
        assert store.kv._wopt.disable_wal is False
        assert store.durability == {
            "wal": "on",
            "sync": "every commit (WriteOptions.sync = true)",
            "wal_recovery_mode": "point_in_time",
            "paranoid_checks": "true",
        }
        assert store.durability == DURABILITY
        store.durability["wal"] = "off"  # a copy: callers cannot change the policy
        assert DURABILITY["wal"] == "on"


def test_sto1_commits_are_in_the_wal(tmp_path: Path) -> None:
    """A committed batch is in a WAL file (not only in the memtable) right after commit."""
    data = tmp_path / "data"
    with new_store(data) as store:
        change = ChangeSet()
        change.upsert(
            "customers",
            customers_table([{"id": 42, "name": "durable-marker-7f3a"}], ("id", "name")),
        )
        store.commit(change)
        logs = list((data / "rocks").glob("*.log"))
        assert logs and any(b"durable-marker-7f3a" in p.read_bytes() for p in logs)


def test_large_values_go_to_blob_files_and_lookups_stay_small(tmp_path: Path) -> None:
    """Big values (tag values, bitmaps, tail blobs) are kept out of the SST data blocks, so a
    point lookup never reads megabytes; the options say so and a flush writes a blob file; a
    value read back (also after reopening) is the value written."""
    from storage.kv import MIN_BLOB_BYTES
    from storage.store import ChangeSet

    data = tmp_path / "data"
    big = bytes(range(256)) * (4 * MIN_BLOB_BYTES // 256)
    with new_store(data) as store:
        change = ChangeSet()
        change.meta[b"g:big\x00\x00\x00\x00\x01"] = big
        store.commit(change)
        store.kv._db.flush()
        assert store.get_meta(b"g:big\x00\x00\x00\x00\x01") == big
    opts = _rocks_options(data / "rocks")
    cf = opts['CFOptions "default"']
    assert cf["enable_blob_files"] == "true"
    assert int(cf["min_blob_size"]) == MIN_BLOB_BYTES
    assert list((data / "rocks").glob("*.blob")), "no blob file after a flush"
    with Store.open(data, read_only=True) as store:
        assert store.get_meta(b"g:big\x00\x00\x00\x00\x01") == big


def test_a_store_made_with_other_column_family_options_is_opened_with_ours(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """rocksdict opens an existing store with the column family options saved at its creation
    unless it is given them: a store made before a change (here RocksDB's 64 MB memtable, whose
    log a reader replays at every catch-up) gets the current ones at its next open, writer and
    reader alike, and keeps its data."""
    rocks = tmp_path / "rocks"
    with monkeypatch.context() as patch:
        patch.setattr(kv_module, "WRITE_BUFFER_BYTES", 64 << 20)
        old = KV(rocks)
        old.commit({b"k": b"v"})
        old.close()
    cf = 'CFOptions "default"'
    assert _rocks_options(rocks)[cf]["write_buffer_size"] == str(64 << 20)
    writer = KV(rocks)
    try:
        assert _rocks_options(rocks)[cf]["write_buffer_size"] == str(kv_module.WRITE_BUFFER_BYTES)
        assert _rocks_options(rocks)[cf]["enable_blob_files"] == "true"
        # the log now turns over at the small memtable: a reader's catch-up replays little
        for i in range(3 * kv_module.WRITE_BUFFER_BYTES // 100_000):
            writer.commit({b"r%06d" % i: bytes(100_000 // 2) + b"%d" % i * 10})
        logs = [p.stat().st_size for p in rocks.glob("*.log")]
        assert logs and max(logs) < 2 * kv_module.WRITE_BUFFER_BYTES, logs
        reader = KV(rocks, read_only=True)
        try:
            assert reader.get(b"k") == b"v"
        finally:
            reader.close()
    finally:
        writer.close()
