"""Read CSV, Parquet and JSON-lines files into raw Arrow tables, keeping file row numbers.

Text formats are read as bytes per column so that encoding errors are found per value by
`ingest.convert`. Problems with a whole file (unreadable, truncated, no header) raise `FileError`;
unparseable single rows become rejects. Given the columns a caller wants, a reader keeps only
those and lists the file's others in `RawFile.columns`, in time linear in the number of columns
(a CSV or Parquet file with unwanted columns is not read further unless they are allowed).
Line ends may be LF, CRLF or CR alone; a UTF-8 byte order mark at the start is skipped.
"""

from __future__ import annotations

import csv
from collections import Counter
from collections.abc import Collection, Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.convert import Reject
from ingest.problems import quoted

FORMATS = ("csv", "parquet", "jsonl")
_SUFFIXES = {
    ".csv": "csv",
    ".tsv": "csv",
    ".parquet": "parquet",
    ".pq": "parquet",
    ".jsonl": "jsonl",
    ".ndjson": "jsonl",
    ".json": "jsonl",
}


BOM = b"\xef\xbb\xbf"  # UTF-8 byte order mark
HEADER_MAX = 64 << 20  # bytes: a first line longer than this is not taken for a CSV header
BLOCK_SIZE = 1 << 24  # bytes per block of pyarrow's CSV reader (grown for a longer header)


class FileError(Exception):
    """A whole file cannot be imported; nothing of it was imported."""

    def __init__(self, file: str, message: str, hint: str = "") -> None:
        self.file = file
        self.message = message
        self.hint = hint
        super().__init__(f"{file}: {message}" + (f" (hint: {hint})" if hint else ""))


class DiskFullError(FileError):
    """The disk filled up while a file was imported; nothing of it was imported."""


@dataclass(frozen=True, slots=True)
class RawFile:
    table: pa.Table  # the wanted columns the file has (all of its columns when none were named)
    row_numbers: np.ndarray  # file row number (1-based data row, header excluded) per table row
    rejects: tuple[Reject, ...]  # rows that could not be parsed at all (row = file row number)
    format: str
    columns: tuple[str, ...] = ()  # every column of the file, in file order (wanted or not)
    complete: bool = True  # False: not read past its column names (see `read_raw`)

    def unknown(self, wanted: Collection[str]) -> list[str]:
        """The file's columns outside `wanted`, in file order."""
        keep = set(wanted)
        return [c for c in self.columns if c not in keep]


def detect_format(path: Path, fmt: str | None = None) -> str:
    if fmt is not None:
        if fmt not in FORMATS:
            raise FileError(
                str(path), f"unknown format {fmt!r}", f"use one of {', '.join(FORMATS)}"
            )
        return fmt
    found = _SUFFIXES.get(path.suffix.lower())
    if found is None:
        raise FileError(
            str(path),
            f"cannot tell the format from the suffix {path.suffix!r}",
            "name the file .csv, .parquet or .jsonl, or pass --format",
        )
    return found


def read_raw(
    path: Path,
    fmt: str | None = None,
    types: Mapping[str, pa.DataType] | None = None,
    wanted: Collection[str] | None = None,
    allow_extra: bool = True,
) -> RawFile:
    """Read a file. With `wanted`, only those columns are kept; a CSV or Parquet file with none
    of them, or (without `allow_extra`) with others, is returned unread (`complete` False)."""
    kind = detect_format(path, fmt)
    if not path.exists():
        raise FileError(str(path), "file not found")
    if path.is_dir():
        raise FileError(str(path), "is a directory, not a file")
    want = None if wanted is None else frozenset(wanted)
    if kind == "csv":
        return _read_csv(path, types, want, allow_extra)
    if kind == "parquet":
        return _read_parquet(path, want, allow_extra)
    return _read_jsonl(path, want)


def _header_line(path: Path) -> bytes:
    """The file's first line (without its end: LF, CRLF or CR alone), read up to HEADER_MAX."""
    buf = bytearray()
    with path.open("rb") as fh:
        while len(buf) <= HEADER_MAX:
            chunk = fh.read(1 << 20)
            if not chunk:
                return bytes(buf)
            start = len(buf)
            buf += chunk
            ends = [i for i in (buf.find(b"\n", start), buf.find(b"\r", start)) if i >= 0]
            if ends:
                return bytes(buf[: min(ends)])
    raise FileError(
        str(path),
        f"the header line is longer than {HEADER_MAX >> 20} MiB",
        "the first line must name the columns; is this a CSV file?",
    )


def _split_header(path: Path, text: str, delimiter: str) -> list[str]:
    """Split a header line with Python's csv module, past its field size limit."""
    limit = csv.field_size_limit()
    try:
        csv.field_size_limit(max(limit, len(text) + 1))
        return next(csv.reader([text], delimiter=delimiter), [])
    except csv.Error as exc:
        raise FileError(str(path), f"the header line is not valid CSV: {exc}") from None
    finally:
        csv.field_size_limit(limit)


def _header(path: Path, delimiter: str) -> tuple[list[str], int]:
    """The column names and the header line's length in bytes."""
    first = _header_line(path)
    if not first.removeprefix(BOM).strip():
        raise FileError(str(path), "empty file: no header line", "the first line names the columns")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(
            str(path),
            f"the header line is not valid UTF-8 (byte {exc.start})",
            "save the file as UTF-8",
        ) from None
    names = [n.strip() for n in _split_header(path, text, delimiter)]
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise FileError(str(path), f"header column {empty[0]} has no name")
    dup = sorted(n for n, count in Counter(names).items() if count > 1)
    if dup:
        raise FileError(str(path), f"header repeats column {quoted(dup[0])}")
    return names, len(first)


def _read_csv(
    path: Path,
    types: Mapping[str, pa.DataType] | None = None,
    wanted: frozenset[str] | None = None,
    allow_extra: bool = True,
) -> RawFile:
    """Read a CSV file. With `types` (column -> Arrow type) a clean file is parsed straight to
    those types; any value that does not parse sends the whole file down the per-value path
    (every column as bytes), which finds and reports each bad value."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    names, header_bytes = _header(path, delimiter)
    keep = names if wanted is None else [n for n in names if n in wanted]
    if not keep or (len(keep) < len(names) and not allow_extra):
        return _unread(names, "csv")
    # the header must fit in the reader's first block
    block_size = min(max(BLOCK_SIZE, 2 * header_bytes + (1 << 20)), (1 << 31) - 1)
    if types:
        typed = _read_csv_typed(path, names, keep, delimiter, types, block_size)
        if typed is not None:
            return typed
    bad: list[tuple[int | None, str, int, int]] = []

    def on_invalid(row: pacsv.InvalidRow) -> str:
        bad.append((row.number, row.text, row.expected_columns, row.actual_columns))
        return "skip"

    def read(threads: bool) -> pa.Table:
        return pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(
                use_threads=threads, column_names=names, skip_rows=1, block_size=block_size
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in keep},
                include_columns=keep,
                strings_can_be_null=True,
                null_values=[""],
            ),
        )

    try:
        table = read(True)
        if bad and any(b[0] is None for b in bad):
            bad.clear()
            table = read(False)  # row numbers of bad rows are only known single-threaded
    except (pa.ArrowInvalid, OSError) as exc:
        raise FileError(str(path), f"not a readable CSV file: {_arrow_message(exc)}") from None
    rejects: list[Reject] = []
    bad_rows: list[int] = []
    for number, text, expected, actual in bad:
        # pyarrow numbers records from 1 with the header first; we number data rows from 1
        row = (number or 0) - 1
        bad_rows.append(row)
        rejects.append(Reject(row, "", text[:60], f"expected {expected} fields, found {actual}"))
    rows = _row_numbers(table.num_rows, bad_rows)
    return RawFile(table, rows, tuple(rejects), "csv", tuple(names))


def _unread(columns: list[str], fmt: str) -> RawFile:
    """A file not read past its column names: it has columns the caller does not allow, or
    none of those it wants."""
    return RawFile(pa.table({}), np.zeros(0, dtype=np.int64), (), fmt, tuple(columns), False)


def _read_csv_typed(
    path: Path,
    names: list[str],
    keep: list[str],
    delimiter: str,
    types: Mapping[str, pa.DataType],
    block_size: int,
) -> RawFile | None:
    """The fast path: None when any row or value does not parse cleanly."""
    clean = True

    def on_invalid(row: pacsv.InvalidRow) -> str:
        nonlocal clean
        clean = False
        return "skip"

    column_types = {n: types.get(n, pa.binary()) for n in keep}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=block_size),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
                include_columns=keep,
                strings_can_be_null=True,
                null_values=[""],
                true_values=["true"],
                false_values=["false"],
            ),
        )
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError):
        return None
    if not clean:
        return None
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return RawFile(table, rows, (), "csv", tuple(names))


def _row_numbers(n: int, skipped: list[int]) -> np.ndarray:
    """1-based data row numbers of the kept rows, given the row numbers that were skipped."""
    rows = np.arange(1, n + 1, dtype=np.int64)
    for s in sorted(skipped):
        rows[rows >= s] += 1
    return rows


def _read_parquet(path: Path, wanted: frozenset[str] | None, allow_extra: bool) -> RawFile:
    try:
        names = list(pq.read_schema(path).names)
        keep = names if wanted is None else [n for n in names if n in wanted]
        if not keep or (len(keep) < len(names) and not allow_extra):
            return _unread(names, "parquet")
        table = pq.read_table(path, columns=keep)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        msg = _arrow_message(exc)
        hint = (
            "the file may be truncated or not Parquet; export it again"
            if ("magic" in msg.lower() or "size" in msg.lower() or "eof" in msg.lower())
            else ""
        )
        raise FileError(str(path), f"not a readable Parquet file: {msg}", hint) from None
    rows = np.arange(1, table.num_rows + 1, dtype=np.int64)
    return RawFile(table, rows, (), "parquet", tuple(names))


def _read_jsonl(path: Path, wanted: frozenset[str] | None) -> RawFile:
    """Read JSON lines: one object per line. Keys outside `wanted` are only noted (their values
    are never kept), so that a file with many distinct keys costs time linear in its size."""
    columns: dict[str, list[str | None]] = {}
    seen: dict[str, None] = {}  # every key, in order of first appearance
    rows: list[int] = []
    rejects: list[Reject] = []
    n = 0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
            if lineno == 1:
                line = line.removeprefix(BOM)
            if not line.strip():
                continue
            try:
                obj = orjson.loads(line)
            except orjson.JSONDecodeError as exc:
                reason = (
                    "not valid UTF-8 text"
                    if "utf-8" in str(exc).lower()
                    else (f"not valid JSON: {exc.msg}")
                )
                rejects.append(Reject(lineno, "", _snippet(line), reason))
                continue
            if not isinstance(obj, dict):
                rejects.append(Reject(lineno, "", _snippet(line), "expected a JSON object"))
                continue
            nested = [k for k, v in obj.items() if isinstance(v, dict | list)]
            if nested:
                rejects.append(
                    Reject(lineno, str(nested[0]), _snippet(line), "expected a single value")
                )
                continue
            for key, value in obj.items():
                col = columns.get(key)
                if col is None:
                    if key not in seen:
                        seen[key] = None
                    if wanted is not None and key not in wanted:
                        continue
                    col = columns[key] = [None] * n
                col.append(_json_text(value))
            n += 1
            rows.append(lineno)
            for col in columns.values():
                if len(col) < n:
                    col.append(None)
    table = pa.table({k: pa.array(v, type=pa.string()) for k, v in columns.items()})
    return RawFile(table, np.array(rows, dtype=np.int64), tuple(rejects), "jsonl", tuple(seen))


def _json_text(value: object) -> str | None:
    if value is None:
        return None
    if value is True:
        return "true"
    if value is False:
        return "false"
    return value if isinstance(value, str) else repr(value)


def _snippet(line: bytes) -> str:
    text = line.decode("utf-8", errors="replace").strip()
    return text if len(text) <= 60 else text[:57] + "..."


def _arrow_message(exc: BaseException) -> str:
    text = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return text[:200]
