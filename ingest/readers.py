"""Read CSV, Parquet and JSON-lines files into raw Arrow tables, keeping file row numbers.

Text formats are read as bytes per column so that encoding errors are found per value by
`ingest.convert`. Problems with a whole file (unreadable, truncated, no header) raise `FileError`;
unparseable single rows become rejects.
"""

from __future__ import annotations

import csv
import io
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from ingest.convert import Reject

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


class FileError(Exception):
    """A whole file cannot be imported; nothing of it was imported."""

    def __init__(self, file: str, message: str, hint: str = "") -> None:
        self.file = file
        self.message = message
        self.hint = hint
        super().__init__(f"{file}: {message}" + (f" (hint: {hint})" if hint else ""))


@dataclass(frozen=True, slots=True)
class RawFile:
    table: pa.Table
    row_numbers: np.ndarray  # file row number (1-based data row, header excluded) per table row
    rejects: tuple[Reject, ...]  # rows that could not be parsed at all (row = file row number)
    format: str


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
    path: Path, fmt: str | None = None, types: Mapping[str, pa.DataType] | None = None
) -> RawFile:
    kind = detect_format(path, fmt)
    if not path.exists():
        raise FileError(str(path), "file not found")
    if path.is_dir():
        raise FileError(str(path), "is a directory, not a file")
    if kind == "csv":
        return _read_csv(path, types)
    if kind == "parquet":
        return _read_parquet(path)
    return _read_jsonl(path)


def _header(path: Path, delimiter: str) -> list[str]:
    with path.open("rb") as fh:
        first = fh.readline(1 << 20)
    if not first.strip():
        raise FileError(str(path), "empty file: no header line", "the first line names the columns")
    try:
        text = first.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        raise FileError(
            str(path),
            f"the header line is not valid UTF-8 (byte {exc.start})",
            "save the file as UTF-8",
        ) from None
    names = next(csv.reader(io.StringIO(text), delimiter=delimiter))
    names = [n.strip() for n in names]
    empty = [i + 1 for i, n in enumerate(names) if not n]
    if empty:
        raise FileError(str(path), f"header column {empty[0]} has no name")
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise FileError(str(path), f"header repeats column {dup[0]!r}")
    return names


def _read_csv(path: Path, types: Mapping[str, pa.DataType] | None = None) -> RawFile:
    """Read a CSV file. With `types` (column -> Arrow type) a clean file is parsed straight to
    those types; any value that does not parse sends the whole file down the per-value path
    (every column as bytes), which finds and reports each bad value."""
    delimiter = "\t" if path.suffix.lower() == ".tsv" else ","
    names = _header(path, delimiter)
    if types:
        typed = _read_csv_typed(path, names, delimiter, types)
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
                use_threads=threads, column_names=names, skip_rows=1, block_size=1 << 24
            ),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types={n: pa.binary() for n in names},
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
    return RawFile(table, _row_numbers(table.num_rows, bad_rows), tuple(rejects), "csv")


def _read_csv_typed(
    path: Path, names: list[str], delimiter: str, types: Mapping[str, pa.DataType]
) -> RawFile | None:
    """The fast path: None when any row or value does not parse cleanly."""
    clean = True

    def on_invalid(row: pacsv.InvalidRow) -> str:
        nonlocal clean
        clean = False
        return "skip"

    column_types = {n: types.get(n, pa.binary()) for n in names}
    try:
        table = pacsv.read_csv(
            path,
            read_options=pacsv.ReadOptions(column_names=names, skip_rows=1, block_size=1 << 24),
            parse_options=pacsv.ParseOptions(
                delimiter=delimiter, invalid_row_handler=on_invalid, newlines_in_values=True
            ),
            convert_options=pacsv.ConvertOptions(
                column_types=column_types,
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
    return RawFile(table, np.arange(1, table.num_rows + 1, dtype=np.int64), (), "csv")


def _row_numbers(n: int, skipped: list[int]) -> np.ndarray:
    """1-based data row numbers of the kept rows, given the row numbers that were skipped."""
    rows = np.arange(1, n + 1, dtype=np.int64)
    for s in sorted(skipped):
        rows[rows >= s] += 1
    return rows


def _read_parquet(path: Path) -> RawFile:
    try:
        table = pq.read_table(path)
    except (pa.ArrowInvalid, pa.ArrowNotImplementedError, OSError) as exc:
        msg = _arrow_message(exc)
        hint = (
            "the file may be truncated or not Parquet; export it again"
            if ("magic" in msg.lower() or "size" in msg.lower() or "eof" in msg.lower())
            else ""
        )
        raise FileError(str(path), f"not a readable Parquet file: {msg}", hint) from None
    return RawFile(table, np.arange(1, table.num_rows + 1, dtype=np.int64), (), "parquet")


def _read_jsonl(path: Path) -> RawFile:
    columns: dict[str, list[str | None]] = {}
    rows: list[int] = []
    rejects: list[Reject] = []
    n = 0
    with path.open("rb") as fh:
        for lineno, line in enumerate(fh, start=1):
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
                    col = columns[key] = [None] * n
                col.append(_json_text(value))
            n += 1
            rows.append(lineno)
            for col in columns.values():
                if len(col) < n:
                    col.append(None)
    table = pa.table({k: pa.array(v, type=pa.string()) for k, v in columns.items()})
    return RawFile(table, np.array(rows, dtype=np.int64), tuple(rejects), "jsonl")


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
