"""The RocksDB key-value layer: the only module that imports rocksdict.

Durability policy (asserted by tests/storage/test_durability.py, STO-1):
- the write-ahead log is always on (no write ever disables it);
- every committed unit is one `WriteBatch` written with `sync=True`, so a commit that returned is on
  disk even after a power cut;
- WAL recovery mode is point-in-time: after a crash the store holds every batch up to the last one
  that was fully synced, and a torn tail is dropped, never half-applied;
- paranoid checks are on, so corruption is an error at open rather than silent.
"""

from __future__ import annotations

import contextlib
import os
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

from rocksdict import (
    AccessType,
    Cache,
    DBCompressionType,
    DBRecoveryMode,
    Options,
    Rdict,
    ReadOptions,
    WriteBatch,
    WriteOptions,
)

DURABILITY = {
    "wal": "on",
    "sync": "every commit (WriteOptions.sync = true)",
    "wal_recovery_mode": "point_in_time",
    "paranoid_checks": "true",
}


class StoreLockedError(Exception):
    """Another process has the store open for writing."""


ROW_CACHE_BYTES = 256 << 20
MIN_BLOB_BYTES = 16 << 10
WRITE_BUFFER_BYTES = 4 << 20
READER_OPEN_TRIES = 5
# RocksDB's row cache (key -> value, for point lookups), shared by the stores of a process; the
# cache must outlive every DB that uses it, hence module level. Allocated as it fills.
_ROW_CACHE = Cache(ROW_CACHE_BYTES)


def _options() -> Options:
    """Durability as above; for reads, point lookups (`get`: a profile) stay cheap:

    - Values of `MIN_BLOB_BYTES` or more (tag values, segment bitmaps, event tail blobs) live in
      blob files, not in the SST data blocks: a lookup of a row whose block neighbours such a
      value no longer reads, checksums and decompresses megabytes (it did: 250 us a `get` on a
      1M-user store; 12 us with blob files).
    - A row cache: a repeated lookup is answered without reading a block (3 us).

    And for followers: a read-only open replays the writer's whole log (about 1.8 ms a MB, holding
    the reader's interpreter lock), and the log holds what the memtable holds. A memtable of
    `WRITE_BUFFER_BYTES` (RocksDB's default: 64 MB) keeps a reader's `catch_up()` at 2-5 ms under
    a CDC apply instead of growing to 100 ms and more (benchmarks/RESULTS.md, bench_live).
    """
    opt = Options(raw_mode=True)
    opt.create_if_missing(True)
    opt.set_wal_recovery_mode(DBRecoveryMode.point_in_time())
    opt.set_paranoid_checks(True)
    opt.set_compression_type(DBCompressionType.lz4())
    opt.increase_parallelism(2)
    opt.set_enable_blob_files(True)
    opt.set_min_blob_size(MIN_BLOB_BYTES)
    opt.set_blob_compression_type(DBCompressionType.lz4())
    opt.set_enable_blob_gc(True)
    opt.set_row_cache(_ROW_CACHE)
    opt.set_write_buffer_size(WRITE_BUFFER_BYTES)
    return opt


def _open(path: Path, access: AccessType | None = None) -> Rdict:
    """Open with `_options()` for the database and for its column family: given no column
    families, rocksdict opens an existing store with the column family options saved at its
    creation (OPTIONS-*), so a store made before a change of these options (the blob files, the
    memtable size) would never get it."""
    kwargs: dict[str, Any] = {} if access is None else {"access_type": access}
    return Rdict(str(path), _options(), column_families={"default": _options()}, **kwargs)


class KV:
    """A raw-bytes RocksDB with one synced write batch per commit.

    `read_only=True` opens a follower: it reads the store as of its open or its last
    `catch_up()` while another process (or none) writes it. `catch_up()` opens the store again
    (read-only) when the writer's log or manifest changed since; RocksDB recovers only whole
    write batches from the log, so a reader never sees half a commit, and a reopened view older
    than the one held (by its sequence number) is refused, so a reader never goes back.
    (RocksDB's secondary instances would replay the log instead of reopening, but reading a
    blob file through one crashes this RocksDB build: rocksdict 0.3.29, a `get` segfaults.)
    A handle replaced by a reopen is closed when the last read using it lets it go.
    """

    def __init__(self, path: Path, *, read_only: bool = False) -> None:
        self.path = path
        self.read_only = read_only
        self._seen: tuple[tuple[str, int, int], ...] = ()
        try:
            if read_only:
                self._seen = self._log_state()
                self._db = self._open_reader()
            else:
                path.mkdir(parents=True, exist_ok=True)
                self._db = _open(path)
        except Exception as exc:  # rocksdict raises a bare Exception for a held lock
            if "lock" in str(exc).lower():
                raise StoreLockedError(
                    f"the store at {path.parent} is open in another process"
                ) from None
            raise
        self._wopt = WriteOptions()
        self._wopt.sync = True
        self._lock = threading.Lock()
        self._failed = False  # the last write failed: reopen before the next

    def _open_reader(self) -> Rdict:
        """A read-only handle on what the writer has committed by now. Opening can race with the
        writer removing a file it no longer needs (after a flush): a few quick tries."""
        for attempt in range(READER_OPEN_TRIES):
            try:
                return _open(self.path, AccessType.read_only())
            except Exception:
                if attempt == READER_OPEN_TRIES - 1:
                    raise
        raise AssertionError("unreachable")

    def _log_state(self) -> tuple[tuple[str, int, int], ...]:
        """The writer's log and manifest files with their sizes: a commit grows the log, a flush
        or a compaction writes the manifest."""
        found = []
        with os.scandir(self.path) as entries:
            for entry in entries:
                name = entry.name
                if name.endswith(".log") or name.startswith("MANIFEST-") or name == "CURRENT":
                    try:
                        st = entry.stat()
                    except FileNotFoundError:
                        continue
                    found.append((name, st.st_size, st.st_mtime_ns))
        return tuple(sorted(found))

    def close(self) -> None:
        self._db.close()

    def catch_up(self) -> bool:
        """A follower: see every batch the writer has committed by now; whether it looked again
        (the writer's files changed). A writer: nothing to do."""
        if not self.read_only:
            return False
        state = self._log_state()  # before the open: a commit during it is seen next time
        if state == self._seen:
            return False
        fresh = self._open_reader()
        if fresh.latest_sequence_number() < self._db.latest_sequence_number():
            # an open that raced the writer's flush (it read the manifest from before the flush,
            # then found the log already deleted) sees an older state: keep ours, look again
            # at the next call (seen in tests/storage/test_store_followers.py under load)
            fresh.close()
            return False
        self._db = fresh  # the old handle closes when no read holds it any more
        self._seen = state
        return True

    def get(self, key: bytes) -> bytes | None:
        value = self._db.get(key)
        return None if value is None else bytes(value)

    def multi_get(self, keys: list[bytes]) -> list[bytes | None]:
        if not keys:
            return []
        values: list[Any] = self._db.get(cast(Any, keys)) or []
        return [None if v is None else bytes(v) for v in values]

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        """Every (key, value) whose key starts with `prefix`, in key order."""
        return _scan(self._db, prefix)

    def snapshot(self) -> KVSnapshot:
        """A consistent read-only view of the store as it is now (later commits are not seen)."""
        return KVSnapshot(self._db)

    def commit(self, puts: dict[bytes, bytes], deletes: list[bytes] | None = None) -> None:
        """Write `puts` and `deletes` as one synced batch: all of it is visible, or none.

        A failed write (a full disk) leaves RocksDB refusing every later write ("previous
        error") until it is opened again: the next commit reopens the handle first, in place
        (recovering the log: the failed batch is not in it), so the store is writable again
        once space is freed, without restarting the process."""
        if self.read_only:
            raise PermissionError("store opened read-only")
        batch = WriteBatch(raw_mode=True)
        for key in deletes or ():
            batch.delete(key)
        for key, value in puts.items():
            batch.put(key, value)
        with self._lock:
            if self._failed:
                with contextlib.suppress(Exception):  # closing flushes: "previous error" again
                    self._db.close()
                self._db = _open(self.path)
                self._failed = False
            try:
                self._db.write(batch, self._wopt)
            except Exception:
                self._failed = True
                raise

    def property(self, name: str) -> str | None:
        value = self._db.property_value(name)
        return None if value is None else str(value)


class KVSnapshot:
    """`get` and `scan` as of one moment: several reads that must agree (a definition and its
    versions) see one state even while commits go on. Built on one RocksDB iterator, which reads
    as of its creation wherever it seeks (rocksdict's own `Snapshot.iter` reads the live state).
    Not for use by two threads at once."""

    def __init__(self, db: Rdict) -> None:
        self._it = db.iter(ReadOptions())

    def get(self, key: bytes) -> bytes | None:
        it = self._it
        it.seek(key)
        if it.valid() and it.key() == key:
            return bytes(it.value())
        return None

    def scan(self, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
        it = self._it
        it.seek(prefix)
        out = []  # collected first: a get() between two items would move the cursor
        while it.valid():
            key = it.key()
            if not key.startswith(prefix):
                break
            out.append((key, it.value()))
            it.next()
        return iter(out)


def _scan(source: Rdict, prefix: bytes) -> Iterator[tuple[bytes, bytes]]:
    """Every (key, value) whose key starts with `prefix`, in key order."""
    ropt = ReadOptions()
    upper = _prefix_upper_bound(prefix)
    if upper is not None:
        ropt.set_iterate_upper_bound(upper)
    it = source.iter(ropt)
    it.seek(prefix)
    while it.valid():
        key = it.key()
        if not key.startswith(prefix):
            break
        yield key, it.value()
        it.next()


def _prefix_upper_bound(prefix: bytes) -> bytes | None:
    b = bytearray(prefix)
    while b:
        if b[-1] < 0xFF:
            b[-1] += 1
            return bytes(b)
        b.pop()
    return None
