"""CDC connectors supervised by the process that holds the store open for writing (the server).

`Supervisor(store_or_session)` runs each connector (`add(config_path)`) on a thread of its own:
the connector loop of `ingest.cdc_runner.Runner`, against the already-open writable store, so each
batch commits through `Store.commit` (under `Store.lock`, as every other write of the process) with
its offset record in the same write batch, exactly as `eql cdc run` does. Whatever ends a run but
a stop (the source down, a lost replication connection, a `CdcError`, a bug) restarts it after a
backoff: exponential from `Backoff.first` seconds, doubled per consecutive failure, capped at
`Backoff.cap`, with up to `Backoff.jitter` of it added at random (so that connectors that failed
together do not retry together). A run that committed progress resets the doubling. With
`max_failures`, that many consecutive failures without progress leave the connector `failed`.

The clock is injectable (`Clock`: `now()` and `wait(seconds, stop)`), so tests control backoff
without sleeping. `on_commit(Commit)` is called after every commit of every connector (on the
connector's thread; the server's callback wakes its feeds and feeds its metrics); an exception
it raises is logged, never fatal to the connector.

States: `running`, `restarting` (waiting out a backoff), `stopping`, `stopped`, `failed`.
`remove(name)` stops one connector, `stop()` all, each bounded in time: a run stops between
transactions, so the store holds a whole number of them (a commit is one write batch).
`status()` lists the supervised connectors and the other offset records of the store (`stopped`).
"""

from __future__ import annotations

import datetime as dt
import logging
import os
import random
import threading
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from ingest.cdc_config import CdcConfig, ConfigError, load_config
from ingest.cdc_runner import Runner, RunOptions
from ingest.cdc_state import CdcState, load_state
from ingest.cdc_status import states, status_json
from ingest.mysql_binlog import ConnectionLost
from runtime.session import Session
from storage import Store

log = logging.getLogger("eql.cdc")
MAX_CONFIG_BYTES = 1 << 20
MAX_NAME_CHARS = 64
ACTIVE = ("running", "restarting", "stopping")


class SupervisorError(Exception):
    """A request the supervisor refuses; the message says why."""


class InvalidConfig(SupervisorError):
    """The config path is not a readable file, or the file has problems (`problems`)."""

    def __init__(self, problems: list[str]) -> None:
        self.problems = tuple(problems)
        super().__init__("\n".join(problems))


class AlreadyRunning(SupervisorError):
    """A connector of that name (or reading the source as that server_id) is running."""


class UnknownConnector(SupervisorError):
    """No supervised connector has that name."""


class Stopped(SupervisorError):
    """The supervisor was stopped: it starts nothing more."""


def name_problem(name: str) -> str | None:
    """What is wrong with `name` as a connector name (the config's rule); None if nothing."""
    if not name or len(name) > MAX_NAME_CHARS:
        return f"a connector name has 1 to {MAX_NAME_CHARS} characters"
    if not (name.isascii() and name.replace("_", "").replace("-", "").isalnum()):
        return "a connector name holds letters, digits, - and _ only"
    return None


@dataclass(frozen=True, slots=True)
class Backoff:
    first: float = 1.0
    cap: float = 60.0
    jitter: float = 0.25  # up to this fraction of the delay is added at random

    def delay(self, failures: int, rng: random.Random) -> float:
        """Seconds to wait after `failures` (1, 2, ...) consecutive failures."""
        base = min(self.cap, self.first * 2.0 ** min(failures - 1, 62))
        return min(self.cap, base * (1 + self.jitter * rng.random()))


class Clock(Protocol):
    def now(self) -> float:
        """Seconds since the epoch (for the times shown in the status)."""
        ...

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        """Wait `seconds` or until `stop` is set; True when stopped."""
        ...


class RealClock:
    def now(self) -> float:
        return time.time()

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        return stop.wait(seconds)


@dataclass(frozen=True, slots=True)
class Commit:
    """What one commit of a connector did: its new offset record and the counts it added."""

    connector: str
    state: CdcState
    transactions: int  # source transactions this commit added
    rows: int  # row changes this commit added


OnCommit = Callable[[Commit], None]


class _Connector:
    def __init__(self, config: CdcConfig, path: str, committed: CdcState | None) -> None:
        self.name = config.name
        self.config = config
        self.path = path
        self.stop = threading.Event()
        self.state = "running"
        self.committed = committed
        self.restarts = 0
        self.failures = 0  # consecutive, without progress in between
        self.last_error: str | None = None
        self.last_error_at: float | None = None
        self.next_retry_at: float | None = None
        self.started_at = 0.0
        self.thread: threading.Thread | None = None


def _when(ts: float | None) -> str | None:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _error_text(exc: BaseException) -> str:
    if isinstance(exc, ConnectionLost):
        return f"the replication connection was lost ({exc or 'no reason given'})"
    text = str(exc).strip()
    return text if text else type(exc).__name__


class Supervisor:
    """CDC connectors on threads of this process, restarted with backoff when they fail."""

    def __init__(
        self,
        store: Store | Session,
        *,
        on_commit: OnCommit | None = None,
        backoff: Backoff | None = None,
        clock: Clock | None = None,
        rng: random.Random | None = None,
        max_failures: int | None = None,
        log_line: Callable[[str], None] | None = None,
        reader: str | None = None,
    ) -> None:
        self.store = store.store if isinstance(store, Session) else store
        self.on_commit = on_commit
        self.backoff = backoff or Backoff()
        self.clock: Clock = clock or RealClock()
        self.rng = rng or random.Random()
        self.max_failures = max_failures
        self.reader = reader  # where connectors decode the binlog (`RunOptions.reader`)
        self._log = log_line or log.info
        self._lock = threading.Lock()
        self._connectors: dict[str, _Connector] = {}
        self._stopped = False

    # ---- starting and stopping -----------------------------------------------------------
    def add(self, config_path: str | os.PathLike[str]) -> str:
        """Start the connector of a config file; its name. The path must name a readable file."""
        path = _checked_path(config_path)
        try:
            config = load_config(path, self.store.schema)
        except ConfigError as exc:
            raise InvalidConfig(list(exc.problems)) from None
        with self._lock:
            if self._stopped:
                raise Stopped("the CDC supervisor is stopped (the server is shutting down)")
            old = self._connectors.get(config.name)
            if old is not None and old.state in ACTIVE:
                raise AlreadyRunning(
                    f"connector {config.name} is already {old.state} (from {old.path}); "
                    "remove it first, or give this config another name"
                )
            for other in self._connectors.values():
                same_id = other.config.source.server_id == config.source.server_id
                if other.state in ACTIVE and same_id:
                    raise AlreadyRunning(
                        f"connector {other.name} already reads its source as server_id "
                        f"{config.source.server_id}; each connector needs a server_id of its own"
                    )
            conn = _Connector(config, str(path), load_state(self.store, config.name))
            conn.started_at = self.clock.now()
            conn.thread = threading.Thread(
                target=self._loop, args=(conn,), name=f"cdc-{config.name}", daemon=True
            )
            self._connectors[config.name] = conn
            conn.thread.start()
        self._log(f"cdc {config.name}: started from {path}")
        return config.name

    def remove(self, name: str, timeout: float = 30.0) -> dict[str, Any]:
        """Stop one connector (at a transaction boundary) and forget it; its last status."""
        with self._lock:
            conn = self._connectors.get(name)
            if conn is None:
                known = ", ".join(sorted(self._connectors)) or "none"
                raise UnknownConnector(f"no connector {name} is supervised (supervised: {known})")
        self._halt([conn], timeout)
        entry = self._entry(conn)
        with self._lock:
            done = conn.thread is None or not conn.thread.is_alive()
            if done and self._connectors.get(name) is conn:
                del self._connectors[name]
        return entry

    def stop(self, timeout: float = 30.0) -> list[str]:
        """Stop every connector, within `timeout` seconds in all; the names that did not stop."""
        with self._lock:
            self._stopped = True
            conns = list(self._connectors.values())
        return self._halt(conns, timeout)

    def _halt(self, conns: list[_Connector], timeout: float) -> list[str]:
        for c in conns:
            if c.state in ACTIVE:
                c.state = "stopping"
            c.stop.set()
        deadline = time.monotonic() + timeout
        late = []
        for c in conns:
            if c.thread is not None:
                c.thread.join(max(0.0, deadline - time.monotonic()))
                if c.thread.is_alive():
                    late.append(c.name)
        return late

    # ---- one connector's thread ----------------------------------------------------------
    def _loop(self, c: _Connector) -> None:
        try:
            while not c.stop.is_set():
                c.state, c.next_retry_at = "running", None
                runner = Runner(
                    self.store,
                    c.config,
                    log=lambda msg: self._log(f"cdc {c.name}: {msg}"),
                    stop=c.stop,
                    on_commit=lambda st: self._committed(c, st),
                    reconnect=False,
                )
                try:
                    runner.run(RunOptions(reader=self.reader))
                    if c.stop.is_set():
                        break
                    error = "the binlog stream ended"
                except Exception as exc:
                    if c.stop.is_set():
                        break
                    error = _error_text(exc)
                    if not isinstance(exc, ConnectionLost):
                        self._log(f"cdc {c.name}: {''.join(traceback.format_exception(exc))}")
                delay = self._failed(c, error)
                if delay is None:
                    return
                if self.clock.wait(delay, c.stop):
                    break
                c.restarts += 1
                self._log(f"cdc {c.name}: restart {c.restarts}")
        finally:
            if c.state != "failed":
                c.state, c.next_retry_at = "stopped", None

    def _failed(self, c: _Connector, error: str) -> float | None:
        """Record a failure; the seconds to wait before the retry, None when giving up."""
        c.failures += 1
        c.last_error, c.last_error_at = error, self.clock.now()
        if self.max_failures is not None and c.failures >= self.max_failures:
            c.state = "failed"
            self._log(f"cdc {c.name}: failed {c.failures} times in a row, giving up: {error}")
            return None
        delay = self.backoff.delay(c.failures, self.rng)
        c.state, c.next_retry_at = "restarting", c.last_error_at + delay
        self._log(f"cdc {c.name}: {error}; restarting in {delay:.1f}s")
        return delay

    def _committed(self, c: _Connector, state: CdcState) -> None:
        prev = c.committed
        c.committed = state
        txns = state.counter("transactions") - (prev.counter("transactions") if prev else 0)
        rows = state.counter("rows_applied") + state.counter("snapshot_rows")
        if prev is not None:
            rows -= prev.counter("rows_applied") + prev.counter("snapshot_rows")
        if txns > 0 or rows > 0 or (prev is not None and state.position != prev.position):
            c.failures = 0  # progress: the next failure waits the shortest backoff again
        if self.on_commit is not None:
            try:
                self.on_commit(Commit(c.name, state, txns, rows))
            except Exception:
                log.exception("cdc %s: the on_commit callback failed", c.name)

    # ---- status --------------------------------------------------------------------------
    def names(self) -> list[str]:
        with self._lock:
            return sorted(self._connectors)

    def status(self) -> list[dict[str, Any]]:
        """Every supervised connector, then the store's other connectors (as `stopped`)."""
        with self._lock:
            conns = dict(self._connectors)
        out = [self._entry(c) for _, c in sorted(conns.items())]
        for st in states(self.store):
            if st.name not in conns:
                out.append(_entry(st.name, st, state="stopped"))
        return out

    def _entry(self, c: _Connector) -> dict[str, Any]:
        return _entry(
            c.name,
            c.committed,
            state=c.state,
            config=c.path,
            restarts=c.restarts,
            failures=c.failures,
            last_error=c.last_error,
            last_error_at=_when(c.last_error_at),
            next_retry_at=_when(c.next_retry_at),
            started_at=_when(c.started_at),
        )


def _entry(name: str, st: CdcState | None, *, state: str, **supervision: Any) -> dict[str, Any]:
    """One connector's status: the supervision fields, then its offset record's."""
    record: dict[str, Any] = status_json(st) if st is not None else {"phase": None}
    record.pop("name", None)
    stored_error = record.pop("last_error", None)
    entry: dict[str, Any] = {
        "name": name,
        "state": state,
        "config": supervision.pop("config", None),
        "restarts": supervision.pop("restarts", 0),
        "failures": supervision.pop("failures", 0),
        "last_error": supervision.pop("last_error", None) or stored_error,
        "last_error_at": supervision.pop("last_error_at", None),
        "next_retry_at": supervision.pop("next_retry_at", None),
        "started_at": supervision.pop("started_at", None),
        "transactions": st.counter("transactions") if st else 0,
        "rows_applied": st.counter("rows_applied") if st else 0,
        **record,
    }
    entry.setdefault("position", None)
    entry.setdefault("lag_seconds", None)
    return entry


def _checked_path(config_path: str | os.PathLike[str]) -> Path:
    """The config path, if it names a readable regular file of a sensible size."""
    text = os.fspath(config_path)
    if not isinstance(text, str) or not text or "\0" in text:
        raise InvalidConfig(["the config path must be a non-empty path"])
    try:
        text.encode("utf-8")
    except UnicodeEncodeError:
        raise InvalidConfig(["the config path is not valid Unicode text"]) from None
    path = Path(text)
    if not path.is_absolute():
        raise InvalidConfig([f"{text}: the config path must be absolute"])
    try:
        if not path.is_file():
            what = "does not exist" if not path.exists() else "is not a regular file"
            raise InvalidConfig([f"{text}: the config file {what}"])
        size = path.stat().st_size
    except OSError as exc:
        raise InvalidConfig([f"{text}: cannot read the config file: {exc.strerror}"]) from None
    if size > MAX_CONFIG_BYTES:
        raise InvalidConfig([f"{text}: the config file is over {MAX_CONFIG_BYTES} bytes"])
    if not os.access(path, os.R_OK):
        raise InvalidConfig([f"{text}: the config file is not readable by the server"])
    return path
