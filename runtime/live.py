"""Loading a file into a session's store while it serves: the runtime's door for an import (the
server's `POST /v1/ingest/...`).

    check_target(session, "entities", "users")     # UnknownTarget (with a did-you-mean) or None
    done = import_body(session, "entities", "users", path, "csv")
    done.rows_imported, done.problems, done.to_json()

`import_body` imports one file exactly as `eql ingest` does (`ingest.files.import_file`): one
atomic commit recorded in the store's import ledger under the file's digest, so the same bytes
again add nothing (`already_imported`); bad rows go to a reject file, whose first problems (row,
column, value, reason; at most `max_problems`, with their total) the answer carries. A file that
cannot be imported at all raises `NotImported` (nothing of it was imported; `disk_full` when the
disk filled up). Where a caller saves a body first: `upload_path` (a folder of its own under the
data directory's `incoming/`), removed by `discard`; `clear_uploads` removes what a process that
stopped mid-import left there.

The write discipline: imports into one store are serialised by a lock of this module (one import
passes the ledger check and commits before the next one looks), the commit itself is atomic
under the store's own lock, and readers see the new rows by themselves: the engine re-registers a
table whose version moved (an entity's version, a stream's segments and tail) and drops the
cached DataFrames that read it; profiles read RocksDB. What a caller loaded once from the store
(the lookups' key -> dense id dictionaries, `runtime.lookup.Audiences`) is the caller's to reload
after the import, as after any write.
"""

from __future__ import annotations

import csv
import shutil
import tempfile
import threading
import weakref
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from entities.names import name_problem, shown
from ingest.files import ImportReport, Kind, import_file
from ingest.problems import SCHEMA_HINT, did_you_mean, disk_full_reason, is_disk_full
from ingest.readers import DiskFullError, FileError
from runtime.session import Session
from storage import Store

Target = Literal["entities", "streams"]
FORMATS = ("csv", "parquet", "jsonl")
MAX_PROBLEMS = 100  # problems an answer lists (their total is counted apart)
MAX_VALUE_CHARS = 200  # of a rejected value, as an answer shows it
INCOMING = "incoming"  # the data directory's folder of bodies being imported

_KINDS: dict[str, Kind] = {"entities": "entity", "streams": "events"}
_locks: weakref.WeakKeyDictionary[Store, threading.Lock] = weakref.WeakKeyDictionary()
_locks_lock = threading.Lock()


class UnknownTarget(Exception):
    """The schema has no such entity (or stream); `hint` names what it has."""

    def __init__(self, target: Target, name: str, hint: str) -> None:
        noun = "entity" if target == "entities" else "event stream"
        self.target = target
        self.message = f"no {noun} named {shown(name)} in the schema"
        self.hint = hint
        super().__init__(self.message)


class NotImported(Exception):
    """Nothing of the file was imported: why (`message`), what to do (`hint`)."""

    def __init__(self, message: str, hint: str = "", *, disk_full: bool = False) -> None:
        self.message = message
        self.hint = hint
        self.disk_full = disk_full
        super().__init__(message)


@dataclass(frozen=True, slots=True)
class Problem:
    """One rejected value: the file's row (1-based, header excluded), column, value, reason."""

    row: int
    column: str
    value: str
    reason: str


@dataclass(frozen=True, slots=True)
class Imported:
    """What one import did. A repeat of bytes already imported (`already_imported`) adds
    nothing; `before` then holds what the ledger recorded of the first import."""

    target: Target
    name: str
    format: str
    digest: str
    rows_read: int
    rows_imported: int
    rows_rejected: int
    already_imported: bool
    reject_file: str | None  # relative to the data directory
    problems: tuple[Problem, ...]
    problems_total: int
    missing_columns: tuple[str, ...]
    seconds: float
    before: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        out: dict[str, Any] = {
            "target": self.target,
            "name": self.name,
            "format": self.format,
            "digest": self.digest,
            "rows_read": self.rows_read,
            "rows_imported": self.rows_imported,
            "rows_rejected": self.rows_rejected,
            "already_imported": self.already_imported,
            "reject_file": self.reject_file,
            "problems": [
                {"row": p.row, "column": p.column, "value": p.value, "reason": p.reason}
                for p in self.problems
            ],
            "problems_total": self.problems_total,
            "missing_columns": list(self.missing_columns),
            "seconds": round(self.seconds, 3),
        }
        if self.already_imported:
            out["before"] = self.before
        return out


def upload_path(session: Session, name: str, fmt: str) -> Path:
    """Where a body to import into `name` is saved: a new folder of its own under the data
    directory's `incoming/` (the same disk as the store; `discard` removes it), the file named
    after the target (the reject file is named after it: `users.csv.<digest>.rejects.csv`)."""
    folder = session.store.data_dir / INCOMING
    folder.mkdir(exist_ok=True)
    base = name if name_problem(name) is None else "body"
    return Path(tempfile.mkdtemp(prefix="body-", dir=folder)) / f"{base}.{fmt}"


def discard(path: Path) -> None:
    """Remove a saved body and its folder (`upload_path`)."""
    shutil.rmtree(path.parent, ignore_errors=True)


def clear_uploads(session: Session) -> int:
    """Remove the bodies a process that stopped mid-import left behind (a store has one writer,
    so at its start none is in use); how many folders there were."""
    folder = session.store.data_dir / INCOMING
    if not folder.is_dir():
        return 0
    gone = 0
    for child in folder.iterdir():
        shutil.rmtree(child, ignore_errors=True)
        gone += 1
    return gone


def check_target(session: Session, target: Target, name: str) -> None:
    """Raise `UnknownTarget` unless the schema has an entity (`entities`) or an event stream
    (`streams`) of exactly this name."""
    schema = session.store.schema
    if target == "entities":
        if schema.entity(name) is not None:
            return
        names = [e.name for e in schema.entities]
        hint = did_you_mean(name, names, f"the schema declares no entities; {SCHEMA_HINT}")
    else:
        if schema.stream(name) is not None:
            return
        names = [s.name for s in schema.streams]
        hint = did_you_mean(name, names, f"the schema declares no event streams; {SCHEMA_HINT}")
    raise UnknownTarget(target, name, hint)


def _lock_of(store: Store) -> threading.Lock:
    with _locks_lock:
        lock = _locks.get(store)
        if lock is None:
            lock = _locks[store] = threading.Lock()
        return lock


def import_body(
    session: Session,
    target: Target,
    name: str,
    path: Path,
    fmt: str,
    *,
    allow_extra_columns: bool = False,
    rejects_dir: Path | None = None,
    max_problems: int = MAX_PROBLEMS,
) -> Imported:
    """Import the file at `path` (format `fmt`: csv, parquet, jsonl) into the entity or stream
    `name`, as one atomic, idempotent commit. Raises UnknownTarget, NotImported."""
    if fmt not in FORMATS:
        raise ValueError(f"format {fmt!r} is not one of {', '.join(FORMATS)}")
    check_target(session, target, name)
    store = session.store
    if store.kv.read_only:
        raise NotImported("the store is open read-only", "serve it from a writable store")
    with _lock_of(store):
        report = _import(store, target, name, path, fmt, allow_extra_columns, rejects_dir)
    return _imported(store, target, name, fmt, report, max_problems)


def _import(
    store: Store,
    target: Target,
    name: str,
    path: Path,
    fmt: str,
    allow_extra: bool,
    rejects_dir: Path | None,
) -> ImportReport:
    try:
        return import_file(
            store,
            _KINDS[target],
            name,
            path,
            rejects_dir=rejects_dir,
            allow_extra_columns=allow_extra,
            fmt=fmt,
        )
    except DiskFullError as exc:
        raise NotImported(_own(exc.message, path), exc.hint, disk_full=True) from exc
    except FileError as exc:
        raise NotImported(_own(exc.message, path), exc.hint) from exc
    except Exception as exc:  # a full disk below import_file's own checks (a snapshot, a flush)
        if not is_disk_full(exc):
            raise
        message = f"the disk is full ({disk_full_reason(exc)}); nothing of the file was imported"
        raise NotImported(message, "free some space, then send it again", disk_full=True) from exc


def _own(message: str, path: Path) -> str:
    """A message about the saved body, without the body's temporary path."""
    return message.replace(str(path), "the body")


def _imported(
    store: Store, target: Target, name: str, fmt: str, report: ImportReport, max_problems: int
) -> Imported:
    before: dict[str, Any] = {}
    if report.already_imported:
        done = store.ledger_get(report.digest) or {}
        before = {
            k: done[k] for k in ("rows_read", "rows_imported", "rows_rejected", "at") if k in done
        }
    problems: tuple[Problem, ...] = ()
    total = 0
    reject_file = None
    if report.reject_file is not None:
        problems, total = read_problems(report.reject_file, max_problems)
        reject_file = _relative(report.reject_file, store.data_dir)
    return Imported(
        target,
        name,
        fmt,
        report.digest,
        report.rows_read,
        report.rows_imported,
        report.rows_rejected,
        report.already_imported,
        reject_file,
        problems,
        total,
        report.missing_columns,
        report.seconds,
        before,
    )


def read_problems(reject_file: Path, limit: int) -> tuple[tuple[Problem, ...], int]:
    """The first `limit` problems of a reject file (file, row, column, value, reason) and how
    many it holds; a value is cut to MAX_VALUE_CHARS characters."""
    shown_: list[Problem] = []
    total = 0
    with reject_file.open(newline="", encoding="utf-8") as fh:
        reader = csv.reader(fh)
        next(reader, None)  # the header
        for record in reader:
            total += 1
            if len(shown_) < limit and len(record) >= 5:
                value = record[3]
                if len(value) > MAX_VALUE_CHARS:
                    value = value[:MAX_VALUE_CHARS] + "…"
                shown_.append(Problem(int(record[1]), record[2], value, record[4]))
    return tuple(shown_), total


def _relative(path: Path, root: Path) -> str:
    try:
        return str(path.resolve().relative_to(root.resolve()))
    except ValueError:
        return str(path)
