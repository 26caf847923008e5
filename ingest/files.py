"""Import files into the store: entities are upserted by key, event streams appended.

An import is one store commit (atomic) recorded in the store's ledger under the file's SHA-256,
so the same file imported again adds nothing. Bad rows never stop an import: they are written to
a reject file (file, row, column, value, reason) and counted in the report.
"""

from __future__ import annotations

import csv
import datetime as dt
import difflib
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
from ingest.readers import FileError, RawFile, read_raw
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
            raise FileError("<target>", f"unknown entity {target!r}", _did_you_mean(target, names))
        return ent.columns
    st = store.schema.stream(target)
    if st is None:
        names = [s.name for s in store.schema.streams]
        raise FileError(
            "<target>", f"unknown event stream {target!r}", _did_you_mean(target, names)
        )
    return store.schema.stream_columns(st)


def _did_you_mean(name: str, candidates: list[str]) -> str:
    close = difflib.get_close_matches(name, candidates, n=1)
    return f"did you mean {close[0]!r}?" if close else f"one of: {', '.join(candidates)}"


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
            raw: RawFile | None = read_raw(p, fmt, _fast_types(columns))
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
    if not raw.table.column_names and raw.table.num_rows == 0:
        if not raw.rejects:
            raise FileError(str(p), "empty file: it holds no rows")
        raw = _empty_raw(raw, columns)
    names = [c.name for c in columns]
    extra = [c for c in raw.table.column_names if c not in names]
    if extra and not allow_extra_columns:
        hint = _did_you_mean(extra[0], [n for n in names if n not in raw.table.column_names])
        raise FileError(
            str(p),
            f"unknown column {extra[0]!r} for {target}"
            + (f" (and {len(extra) - 1} more)" if len(extra) > 1 else ""),
            f"{hint}; or pass --allow-extra-columns to ignore it",
        )
    needed = [columns[0]] + [c for c in columns if c.required]
    for col in needed:
        if col.name not in raw.table.column_names:
            what = (
                "key"
                if kind == "entity" and col is columns[0]
                else ("time" if kind == "events" and col is columns[0] else "required")
            )
            raise FileError(
                str(p),
                f"missing the {what} column {col.name!r}",
                _did_you_mean(col.name, raw.table.column_names) if raw.table.column_names else "",
            )
    missing = tuple(c.name for c in columns if c.name not in raw.table.column_names)
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
    store.commit(change)
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


def _renumber(rejects: list[Reject], row_numbers: np.ndarray) -> list[Reject]:
    return [Reject(int(row_numbers[r.row]), r.column, r.value, r.reason) for r in rejects]


def _write_rejects(
    store: Store, rejects_dir: Path | None, path: Path, digest: str, rejects: list[Reject]
) -> Path:
    folder = rejects_dir or store.data_dir / "rejects"
    folder.mkdir(parents=True, exist_ok=True)
    out = folder / f"{path.name}.{digest[:8]}.rejects.csv"
    with out.open("w", newline="", encoding="utf-8") as fh:
        writer = csv.writer(fh)
        writer.writerow(["file", "row", "column", "value", "reason"])
        for r in sorted(rejects, key=lambda r: (r.row, r.column)):
            writer.writerow([str(path), r.row, r.column, r.value, r.reason])
    return out


def _empty_raw(raw: RawFile, columns: tuple[Attribute, ...]) -> RawFile:
    """A file whose every row was unreadable: no rows, the schema's columns, its rejects."""
    empty = pa.table({c.name: pa.array([], pa.string()) for c in columns})
    return RawFile(empty, raw.row_numbers[:0], raw.rejects, raw.format)


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
