"""Run a connector: preflight, the initial snapshot (resumable), then streaming until told to stop.

Threads: a reader thread turns the binlog into complete transactions and queues them; the calling
thread takes everything queued, builds one change set (offset record included) and commits it.
With `RunOptions.reader="process"` (or EQL_CDC_READER=process) the reading (decoding) runs in a
child process instead (`ingest.cdc_reader_proc`), which uses a second core where one is free.
While a commit is being written, the reader keeps reading, so under load several whole source
transactions share one write batch, and when idle each transaction is committed as soon as it is
read. A batch never holds part of a transaction, and its offset is the end of its last one.

Every (re)connection starts from the offset in the store. When the replication connection drops,
what was queued before the drop is committed, then the reader reconnects from that offset (or,
with `reconnect=False`, the `ConnectionLost` is raised for a supervisor to restart the run:
`runtime.cdc_supervisor`). `stop` ends a run at a transaction boundary; `on_commit` is called
with the new offset record after every commit.
"""

from __future__ import annotations

import os
import queue
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from typing import Any

from entities.model import Schema
from ingest.cdc_apply import Applier, Coverage
from ingest.cdc_config import CdcConfig
from ingest.cdc_faults import CRASH
from ingest.cdc_reader_proc import ProcessReader
from ingest.cdc_source import Snapshot, SourceDb, TableInfo
from ingest.cdc_state import (
    CdcError,
    CdcState,
    Position,
    TableProgress,
    load_state,
    put_state,
)
from ingest.mysql_binlog import BinlogReader, ConnectionLost, Heartbeat, Transaction
from storage import ChangeSet, Store

Log = Callable[[str], None]
OnCommit = Callable[[CdcState], None]
LINGER = 0.25  # seconds a batch may wait for more transactions while the reader is ahead


@dataclass(frozen=True, slots=True)
class RunOptions:
    until_caught_up: bool = False  # stop once the server's position at start is applied
    max_seconds: float | None = None
    reader: str | None = None  # "process" or "thread"; None: EQL_CDC_READER (else "thread")


@dataclass(frozen=True, slots=True)
class RunReport:
    state: CdcState
    seconds: float
    stopped: str


class _End:
    pass


@dataclass(frozen=True, slots=True)
class _Failed:
    exc: BaseException


class Runner:
    def __init__(
        self,
        store: Store,
        config: CdcConfig,
        *,
        log: Log | None = None,
        stop: threading.Event | None = None,
        on_commit: OnCommit | None = None,
        reconnect: bool = True,
    ) -> None:
        self.store = store
        self.config = config
        self.schema: Schema = store.schema
        self.applier = Applier(self.schema, config)
        self.log = log or (lambda _msg: None)
        self.stop = stop or threading.Event()
        self.on_commit = on_commit
        self.reconnect = reconnect  # False: a lost connection is raised (for a supervisor)
        self.mariadb = True
        self.tables: dict[str, TableInfo] = {}
        self.db: SourceDb | None = None
        self._deadline: float | None = None
        self._last_commit = 0.0
        self.committed: CdcState = CdcState(config.name, "snapshot")  # set by every commit

    # ---- committing ----------------------------------------------------------------------
    def _commit(self, change: ChangeSet, state: CdcState) -> CdcState:
        """Write one change set whose offset record is `state`; it becomes the committed state."""
        CRASH.hit("before_batch_write")
        self.store.commit(change)
        CRASH.hit("after_batch_write")
        self._last_commit = time.monotonic()
        self.committed = state
        if self.on_commit is not None:
            self.on_commit(state)
        return state

    def _save(self, state: CdcState) -> CdcState:
        change = ChangeSet()
        return self._commit(change, put_state(change, state))

    def _stopping(self) -> bool:
        return self.stop.is_set() or (
            self._deadline is not None and time.monotonic() >= self._deadline
        )

    # ---- the run -------------------------------------------------------------------------
    def run(self, opts: RunOptions) -> RunReport:
        started = time.monotonic()
        self._reader = opts.reader or os.environ.get("EQL_CDC_READER", "thread")
        if opts.max_seconds is not None:
            self._deadline = started + opts.max_seconds
        self.db = SourceDb(self.config.source)
        state = load_state(self.store, self.config.name)
        if state is not None:
            self.committed = state
        try:
            fresh = state is None or state.phase == "snapshot"
            info, self.tables = self.db.preflight(self.config, self.schema, tables_too=fresh)
            self.mariadb = info.mariadb
            if state is None:
                state = self._initial(info.server_id)
            try:
                if state.phase == "snapshot":
                    state = self._snapshot(state)
                    if self._stopping() and state.phase == "snapshot":
                        return RunReport(state, time.monotonic() - started, "stopped in snapshot")
                assert state.position is not None
                self._check_position(state.position)
                target = self.db.position(self.mariadb) if opts.until_caught_up else None
                state, why = self._stream(state, target=target, coverage=None)
            except CdcError as exc:
                latest = load_state(self.store, self.config.name) or state
                self._save(replace(latest, last_error=str(exc)))
                raise
            return RunReport(state, time.monotonic() - started, why)
        finally:
            self.db.close()

    def _initial(self, server_id: int) -> CdcState:
        state = CdcState(
            self.config.name,
            "snapshot",
            server_id=server_id,
            tables={t.table: TableProgress() for t in self.config.tables},
        )
        if self.config.snapshot_mode == "never":
            assert self.db is not None
            state = replace(state, phase="streaming", position=self.db.position(self.mariadb))
            self.log(f"no snapshot (snapshot.mode: never): streaming from {state.position}")
        return self._save(state)

    def _check_position(self, pos: Position) -> None:
        """By file/position (MySQL), the file must still exist. By GTID (MariaDB), the server
        decides: a GTID state whose binlogs are purged is refused (error 1236) when the reader
        connects, while a state that is still reachable from a later file is fine even if the
        file we last read from is gone."""
        assert self.db is not None
        if self.mariadb and pos.gtid:
            return
        files = self.db.binlog_files()
        if files and pos.file not in files:
            raise CdcError(
                f"the stored position {pos} is no longer on the server: its binlog {pos.file} "
                f"was purged (the oldest is {files[0]}). Changes after it cannot be read; "
                "start over in a new data directory, which takes a new snapshot (see docs/cdc.md, "
                "'Position lost'), "
                "and keep binlogs longer (expire_logs_days / binlog_expire_logs_seconds)"
            )

    # ---- snapshot ------------------------------------------------------------------------
    def _snapshot(self, state: CdcState) -> CdcState:
        assert self.db is not None
        snap = Snapshot(self.config.source, self.mariadb)
        try:
            pos = snap.open()
            self.log(f"snapshot at {pos}")
            copied = any(p.status != "pending" for p in state.tables.values())
            if copied and state.position is not None and state.position != pos:
                self._check_position(state.position)
                db, infos = self.db, self.tables
                cov = Coverage(
                    dict(state.tables),
                    {t: i.pk for t, i in infos.items()},
                    lambda t, a, b: db.compare(infos[t], a, b),
                )
                self.log(f"catching up the rows copied so far from {state.position} to {pos}")
                state, _ = self._stream(state, target=pos, coverage=cov)
                if self._stopping():
                    return state
                if state.position is None or state.position.order() > pos.order():
                    raise CdcError(
                        f"the snapshot catch-up ended at {state.position}, after the "
                        f"snapshot position {pos}"
                    )
            state = self._save(
                replace(
                    state,
                    position=pos,
                    snapshot_attempts=state.snapshot_attempts + 1,
                    snapshot_started=state.snapshot_started or time.time(),
                )
            )
            CRASH.hit("after_snapshot_position")
            for m in self.config.tables:
                prog = state.tables.get(m.table, TableProgress())
                if prog.status == "done":
                    continue
                info = self.tables[m.table]
                after = prog.after if prog.status == "partial" else None
                for names, rows, last, final in snap.chunks(info, after, self.config.chunk_rows):
                    prog = TableProgress(
                        "done" if final else "partial", last, prog.rows + len(rows)
                    )
                    change, new_state = self.applier.snapshot_chunk(
                        state, m.table, names, rows, prog
                    )
                    CRASH.hit("before_snapshot_chunk")
                    state = self._commit(change, new_state)
                    CRASH.hit("after_snapshot_chunk")
                    if self._stopping():
                        return state
                self.log(f"snapshot of {m.table}: {prog.rows} rows")
            took = time.time() - (state.snapshot_started or time.time())
            return self._save(replace(state, phase="streaming", snapshot_seconds=took))
        finally:
            snap.close()

    # ---- streaming -----------------------------------------------------------------------
    def _stream(
        self, state: CdcState, *, target: Position | None, coverage: Coverage | None
    ) -> tuple[CdcState, str]:
        """Apply transactions until the target position, a stop, or a fatal error."""
        backoff = 0.2
        while True:
            assert state.position is not None
            if target is not None and state.position.order() >= target.order():
                return state, "caught up"
            if self._stopping():
                return state, "stopped"
            reader_type = ProcessReader if self._reader == "process" else BinlogReader
            reader = reader_type(
                self.config.source,
                state.position,
                self.applier.mapped,
                server_id=self.config.source.server_id,
                mariadb=self.mariadb,
                heartbeat=self.config.heartbeat_seconds,
            )
            before = state.position
            try:
                state, why = self._consume(reader, state, target, coverage)
                return state, why
            except ConnectionLost as exc:
                # what was queued before the drop is committed; resume from exactly that
                state = self._save(self.committed.count(reconnects=1))
                if not self.reconnect:
                    raise
                self.log(f"replication connection lost ({exc}); reconnecting from {state.position}")
                backoff = 0.2 if state.position != before else min(backoff * 2, 5.0)
                self.stop.wait(backoff)

    def _consume(
        self,
        reader: BinlogReader | ProcessReader,
        state: CdcState,
        target: Position | None,
        coverage: Coverage | None,
    ) -> tuple[CdcState, str]:
        q: queue.Queue[Transaction | Heartbeat | _End | _Failed] = queue.Queue(maxsize=4096)
        halt = threading.Event()

        def produce() -> None:
            try:
                for unit in reader.read(halt):
                    while not halt.is_set():
                        try:
                            q.put(unit, timeout=0.2)
                            break
                        except queue.Full:
                            continue
                    if halt.is_set():
                        return
                q.put(_End())
            except BaseException as exc:
                if not halt.is_set():
                    q.put(_Failed(exc))

        thread = threading.Thread(target=produce, name="cdc-binlog-reader", daemon=True)
        thread.start()
        try:
            return self._commit_loop(q, state, target, coverage)
        finally:
            halt.set()
            reader.interrupt()
            thread.join(timeout=5)

    def _commit_loop(
        self,
        q: queue.Queue[Transaction | Heartbeat | _End | _Failed],
        state: CdcState,
        target: Position | None,
        coverage: Coverage | None,
    ) -> tuple[CdcState, str]:
        pending: list[Transaction] = []
        rows = 0

        def flush(st: CdcState) -> CdcState:
            nonlocal rows
            if not pending:
                return st
            try:
                change, new = self.applier.apply(self.store, st, pending, coverage)
            except CdcError:
                if len(pending) == 1:
                    raise
                # commit the transactions before the bad one, so that we stop exactly there
                for txn in pending:
                    change, st = self.applier.apply(self.store, st, [txn], coverage)
                    self._commit(change, st)
                raise AssertionError("a batch failed but none of its transactions") from None
            self._commit(change, new)
            pending.clear()
            rows = 0
            return new

        while True:
            try:
                item = q.get(timeout=0.2)
            except queue.Empty:
                if self._stopping():
                    return state, "stopped"
                continue
            batch = self._collect(q, item)
            for it in batch:
                if isinstance(it, _Failed):
                    state = flush(state)
                    raise it.exc
                if isinstance(it, _End):
                    return flush(state), "stopped"
                if isinstance(it, Heartbeat):
                    state = flush(state)
                    state = self._heartbeat(state, it, target)
                    if target is not None and it.position.order() >= target.order():
                        return state, "caught up"
                    continue
                if target is not None and it.start.order() >= target.order():
                    # it begins at or after the target: never apply beyond it (the snapshot
                    # catch-up must stop exactly at the snapshot's position)
                    return flush(state), "caught up"
                if it.ddl:
                    state = flush(state)
                    pending.append(it)
                    state = flush(state)
                else:
                    pending.append(it)
                    rows += sum(len(c.before) + len(c.after) for c in it.changes)
                    if rows >= self.config.max_batch_rows:
                        state = flush(state)
                if target is not None and it.end.order() >= target.order():
                    state = flush(state)
                    return state, "caught up"
            state = flush(state)
            if self._stopping():
                return state, "stopped"

    def _collect(
        self,
        q: queue.Queue[Transaction | Heartbeat | _End | _Failed],
        first: Transaction | Heartbeat | _End | _Failed,
    ) -> list[Any]:
        """The items to commit together. When only one item is waiting (keeping up), that one
        alone, for latency; when more are (behind), keep taking what arrives for up to
        LINGER seconds or max_batch_rows, so that fewer, larger batches amortise each commit
        (the store's commit has a large fixed cost: a synced write and a snapshot rewrite)."""
        batch: list[Any] = [first]
        rows = _rows(first)
        deadline = time.monotonic() + LINGER
        while rows < self.config.max_batch_rows and isinstance(batch[-1], Transaction):
            try:
                it = q.get_nowait()
            except queue.Empty:
                left = deadline - time.monotonic()
                if len(batch) == 1 or left <= 0:
                    break
                try:
                    it = q.get(timeout=left)
                except queue.Empty:
                    break
            batch.append(it)
            rows += _rows(it)
        return batch

    def _heartbeat(self, state: CdcState, hb: Heartbeat, target: Position | None) -> CdcState:
        """The server is idle at `hb.position`: we are caught up. Record it now and then."""
        assert state.position is not None
        now = time.time()
        moved = hb.position.order() > state.position.order()
        if target is not None and hb.position.order() > target.order():
            moved = False  # the position stays at or before the target
        if moved and hb.position.gtid != state.position.gtid:
            return state  # never move the GTID state without the transactions behind it
        new = replace(
            state,
            caught_up_at=now,
            lag_seconds=0.0,
            position=hb.position if moved else state.position,
        )
        due = time.monotonic() - self._last_commit > 5.0
        reaching = target is not None and hb.position.order() >= target.order()
        if moved or due or reaching:
            return self._save(new)
        return new


def _rows(item: object) -> int:
    if isinstance(item, Transaction):
        return sum(len(c.before) + len(c.after) for c in item.changes)
    return 0


def run(
    store: Store,
    config: CdcConfig,
    opts: RunOptions,
    *,
    log: Log | None = None,
    stop: threading.Event | None = None,
) -> RunReport:
    """Run the connector in this thread until it is caught up, told to stop, or fails."""
    return Runner(store, config, log=log, stop=stop).run(opts)
