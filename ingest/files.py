"""Import files into the store: entities are upserted by key, event streams appended.

An import is one store commit (atomic) recorded in the store's ledger under the file's SHA-256,
so the same file imported again adds nothing. Bad rows never stop an import: they are written to
a reject file (file, row, column, value, reason) and counted in the report. A file that cannot be
imported at all raises `FileError` (`DiskFullError` when the disk filled up) and adds nothing.
"""

from __future__ import annotations

import contextlib
import csv
import datetime as dt
import errno
import hashlib
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import pyarrow as pa

from entities.arrow import arrow_type
from entities.model import Attribute, TypeKind
from ingest.convert import Reject, convert_table
from ingest.problems import (
    DISK_FULL_TEXT,
    SCHEMA_HINT,
    did_you_mean,
    disk_full_reason,
    is_disk_full,
    unknown_columns,
)
from ingest.readers import DiskFullError, FileError, RawFile, read_raw
from storage import ChangeSet, Store

Kind = Literal["entity", "events"]
Progress = Callable[[str, int, int], None]  # (stage, done, total)


@dataclass(frozen=True, slots=True)
class ImportReport:
    file: str
    kind: Kind
    target: str
    digest: str
    rows_read: int
    rows_imported: int
    rows_rejected: int
    already_imported: bool
    reject_file: Path | None
    missing_columns: tuple[str, ...]
    seconds: float

    def summary(self) -> str:
        if self.already_imported:
            return f"{self.file}: already imported into {self.target}; nothing added"
        verb = "upserted into" if self.kind == "entity" else "appended to"
        text = (
            f"{self.file}: {self.rows_imported} of {self.rows_read} rows {verb} {self.target}"
            f" in {self.seconds:.2f}s"
        )
        if self.rows_rejected:
            text += f"; {self.rows_rejected} rejected, see {self.reject_file}"
        if self.missing_columns:
            keep = "kept as they were" if self.kind == "entity" else "set to null"
            text += f"; columns not in the file {keep}: {', '.join(self.missing_columns)}"
        return text


def file_digest(path: Path, kind: Kind, target: str) -> str:
    h = hashlib.sha256(f"{kind}:{target}\0".encode())
    with path.open("rb") as fh:
        while chunk := fh.read(1 << 22):
            h.update(chunk)
    return h.hexdigest()


def _target_columns(store: Store, kind: Kind, target: str) -> tuple[Attribute, ...]:
    if kind == "entity":
        ent = store.schema.entity(target)
        if ent is None:
            names = [e.name for e in store.schema.entities]
            hint = did_you_mean(target, names, f"the schema declares no entities; {SCHEMA_HINT}")
            raise FileError("<target>", f"unknown entity {target!r}", hint)
        return ent.columns
    st = store.schema.stream(target)
    if st is None:
        names = [s.name for s in store.schema.streams]
        hint = did_you_mean(target, names, f"the schema declares no event streams; {SCHEMA_HINT}")
        raise FileError("<target>", f"unknown event stream {target!r}", hint)
    return store.schema.stream_columns(st)


def import_file(
    store: Store,
    kind: Kind,
    target: str,
    path: str | Path,
    *,
    rejects_dir: Path | None = None,
    allow_extra_columns: bool = False,
    fmt: str | None = None,
    progress: Progress | None = None,
) -> ImportReport:
    """Import one file as one atomic, idempotent commit. Raises FileError if it cannot at all."""
    started = time.perf_counter()
    p = Path(path)
    columns = _target_columns(store, kind, target)
    names = [c.name for c in columns]
    if not p.exists():
        raise FileError(str(p), "file not found")
    if p.is_dir():
        raise FileError(str(p), "is a directory, not a file", "name the files inside it")
    # the digest (for the ledger) and the read run side by side: both release the GIL
    with ThreadPoolExecutor(max_workers=1) as pool:
        hashing = pool.submit(file_digest, p, kind, target)
        if progress:
            progress("read", 0, 1)
        try:
            raw: RawFile | None = read_raw(p, fmt, _fast_types(columns), names, allow_extra_columns)
            failure: FileError | None = None
        except FileError as exc:
            raw, failure = None, exc
        try:
            digest = hashing.result()
        except OSError as exc:
            raise FileError(str(p), f"cannot read the file: {exc.strerror}") from None
    done = store.ledger_get(digest)
    if done is not None:
        return ImportReport(
            str(p),
            kind,
            target,
            digest,
            int(done.get("rows_read", 0)),
            0,
            0,
            True,
            None,
            (),
            time.perf_counter() - started,
        )
    if failure is not None:
        raise failure
    assert raw is not None
    if not raw.columns:
        if not raw.rejects:
            raise FileError(str(p), "empty file: it holds no rows")
        raw = _empty_raw(raw, columns)
    _check_columns(p, kind, target, columns, raw, allow_extra_columns)
    present = set(raw.columns)
    missing = tuple(n for n in names if n not in present)
    if progress:
        progress("convert", 0, raw.table.num_rows)
    table, rejects = convert_table(columns, raw.table)
    all_rejects = [*raw.rejects, *_renumber(rejects, raw.row_numbers)]
    rows_read = raw.table.num_rows + len(raw.rejects)
    reject_file = None
    if all_rejects:
        reject_file = _write_rejects(store, rejects_dir, p, digest, all_rejects)
    change = ChangeSet()
    if kind == "entity":
        change.upsert(target, table)
    else:
        change.append(target, table)
    summary = {
        "file": str(p.resolve()),
        "kind": kind,
        "target": target,
        "rows_read": rows_read,
        "rows_imported": table.num_rows,
        "rows_rejected": len({(r.row) for r in all_rejects}),
        "at": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
    }
    key, value = store.ledger_entry(digest, summary)
    change.meta[key] = value
    if progress:
        progress("commit", 0, table.num_rows)
    _commit(store, change, p, digest, reject_file)
    if progress:
        progress("commit", table.num_rows, table.num_rows)
    return ImportReport(
        str(p),
        kind,
        target,
        digest,
        rows_read,
        table.num_rows,
        int(summary["rows_rejected"]),
        False,
        reject_file,
        missing,
        time.perf_counter() - started,
    )


def _check_columns(
    path: Path,
    kind: Kind,
    target: str,
    columns: tuple[Attribute, ...],
    raw: RawFile,
    allow_extra: bool,
) -> None:
    """Refuse a file with columns the target lacks (unless allowed) or without its key, time
    or required columns; messages and hints stay short however many columns the file has."""
    names = [c.name for c in columns]
    present = set(raw.columns)
    unknown = raw.unknown(names)
    if unknown and not allow_extra:
        absent = [n for n in names if n not in present]
        message, hint = unknown_columns(target, unknown, absent, names)
        raise FileError(str(path), message, hint)
    for col in [columns[0]] + [c for c in columns if c.required]:
        if col.name not in present:
            what = "required"
            if col is columns[0]:
                what = "key" if kind == "entity" else "time"
            hint = did_you_mean(col.name, raw.columns, "")
            raise FileError(str(path), f"missing the {what} column {col.name!r}", hint)
    assert raw.complete  # only a file refused above is left unread


def _commit(
    store: Store, change: ChangeSet, path: Path, digest: str, reject_file: Path | None
) -> None:
    """Commit one file's change set; a full disk becomes a DiskFullError that says whether the
    commit point had passed (the ledger then holds the file) or nothing was imported."""
    try:
        store.commit(change)
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        try:
            committed = store.ledger_get(digest) is not None
        except Exception:  # the store is failing: it can only say so after a reopen
            committed = False
        reason = f"the disk is full ({disk_full_reason(exc)})"
        if committed:
            raise DiskFullError(
                str(path),
                f"{reason} just after the file was committed: its rows are imported",
                "free some space; the store reopens to its last commit",
            ) from exc
        if reject_file is not None:  # the rejects of an import that did not happen
            with contextlib.suppress(OSError):
                reject_file.unlink()
        raise DiskFullError(
            str(path),
            f"{reason}; nothing of the file was imported",
            "free some space, then import it again",
        ) from exc


def _renumber(rejects: list[Reject], row_numbers: np.ndarray) -> list[Reject]:
    return [Reject(int(row_numbers[r.row]), r.column, r.value, r.reason) for r in rejects]


def _write_rejects(
    store: Store, rejects_dir: Path | None, path: Path, digest: str, rejects: list[Reject]
) -> Path:
    folder = rejects_dir or store.data_dir / "rejects"
    out = folder / f"{path.name}.{digest[:8]}.rejects.csv"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with out.open("w", newline="", encoding="utf-8") as fh:
            writer = csv.writer(fh)
            writer.writerow(["file", "row", "column", "value", "reason"])
            for r in sorted(rejects, key=lambda r: (r.row, r.column)):
                writer.writerow([str(path), r.row, r.column, r.value, r.reason])
    except OSError as exc:
        if out.is_file():  # a reject file cut short is worse than none (nothing is imported)
            with contextlib.suppress(OSError):
                out.unlink()
        if exc.errno == errno.ENOSPC:
            raise DiskFullError(
                str(path),
                f"the disk is full ({DISK_FULL_TEXT}) while writing the reject file {out}; "
                "nothing of the file was imported",
                "free some space (or pass --rejects DIR on another disk), then import it again",
            ) from exc
        raise FileError(
            str(path),
            f"cannot write the reject file {out}: {exc.strerror or exc}; nothing was imported",
            "pass --rejects DIR to write reject files elsewhere",
        ) from exc
    return out


def _empty_raw(raw: RawFile, columns: tuple[Attribute, ...]) -> RawFile:
    """A file whose every row was unreadable: no rows, the schema's columns, its rejects."""
    empty = pa.table({c.name: pa.array([], pa.string()) for c in columns})
    names = tuple(c.name for c in columns)
    return RawFile(empty, raw.row_numbers[:0], raw.rejects, raw.format, names)


def _fast_types(columns: tuple[Attribute, ...]) -> dict[str, pa.DataType]:
    """Arrow types a clean CSV can be parsed to directly (enums and booleans keep our own,
    more forgiving, conversion from text; timestamps without a zone send the file down the
    per-value path, which reads them as UTC)."""
    out: dict[str, pa.DataType] = {}
    for c in columns:
        typed = (TypeKind.INT, TypeKind.FLOAT, TypeKind.DECIMAL, TypeKind.DATE, TypeKind.TIMESTAMP)
        if c.type.kind in typed:
            out[c.name] = arrow_type(c.type)
        elif c.type.kind in (TypeKind.STRING, TypeKind.ENUM, TypeKind.BOOL):
            out[c.name] = pa.string()
    return out
