"""Query results on the terminal or in a file: table, CSV, NDJSON, JSON or Parquet.

One value vocabulary everywhere, the same as the server's JSON: timestamps RFC 3339 in UTC with `Z`
(`2026-10-31T12:00:05Z`, microseconds only when there are any: `...05.123000Z`), dates
`YYYY-MM-DD`, decimals exact (a string in JSON), null as `null` in a table and empty in CSV.
Imported when a command has a result to write (it loads pyarrow).

May import eql.cli.
"""

from __future__ import annotations

import datetime as dt
import decimal
import io
import sys
from pathlib import Path
from typing import Any

import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from eql.cli.common import Format, out

_JSON_OPTIONS = orjson.OPT_UTC_Z | orjson.OPT_NAIVE_UTC


def write(result: pa.Table, fmt: str | Format, output: Path | None) -> None:
    """Write `result` in `fmt` to `output` (a file) or to stdout."""
    fmt = Format(fmt)
    if fmt is Format.parquet:
        assert output is not None
        pq.write_table(result, output)
        return
    if fmt is Format.table:
        _write_table(result, output)
        return
    if fmt is Format.csv:
        buf = io.BytesIO()
        pacsv.write_csv(_times_as_text(result), buf)
        data = buf.getvalue()
    else:
        rows = result.to_pylist()
        if fmt is Format.ndjson:
            data = b"".join(_dumps(r) + b"\n" for r in rows)
        else:
            data = _dumps(rows, orjson.OPT_INDENT_2) + b"\n"
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)


def _write_table(result: pa.Table, output: Path | None) -> None:
    from rich.table import Table

    table = Table(*result.column_names, title=f"{result.num_rows} rows")
    for row in result.to_pylist():
        table.add_row(*(cell(v) for v in row.values()))
    if output is None:
        out.print(table)
        return
    from rich.console import Console

    with output.open("w", encoding="utf-8") as fh:
        Console(file=fh, width=200).print(table)


def cell(value: Any) -> str:
    """One value as text, as the JSON formats write it (without quotes)."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, dt.datetime):
        return rfc3339(value)
    return str(value)


def rfc3339(value: dt.datetime) -> str:
    """`2026-10-31T12:00:05Z` (a naive time is taken as UTC), as orjson's `OPT_UTC_Z` writes it."""
    return orjson.dumps(value, option=_JSON_OPTIONS)[1:-1].decode()


def _default(value: Any) -> Any:
    if isinstance(value, decimal.Decimal):
        return str(value)
    raise TypeError(type(value).__name__)


def _dumps(value: Any, option: int = 0) -> bytes:
    return orjson.dumps(value, default=_default, option=_JSON_OPTIONS | option)


def _times_as_text(table: pa.Table) -> pa.Table:
    """Timestamp columns as RFC 3339 text (pyarrow's CSV writer would write `12:00:05.000000Z`
    after a space)."""
    for index, field in enumerate(table.schema):
        if pa.types.is_timestamp(field.type):
            table = table.set_column(index, field.name, _rfc3339_column(table.column(index)))
    return table


def _rfc3339_column(column: pa.ChunkedArray) -> pa.ChunkedArray:
    utc = column.cast(pa.timestamp("us", tz="UTC")) if column.type.tz is None else column
    whole = pc.cast(pc.floor_temporal(utc, unit="second"), pa.timestamp("s", tz="UTC"))
    seconds = pc.strftime(whole, format="%Y-%m-%dT%H:%M:%S")
    micros = pc.add(pc.multiply(pc.millisecond(utc), 1000), pc.microsecond(utc))
    fraction = pc.if_else(
        pc.equal(micros, 0),
        "",
        pc.binary_join_element_wise(".", pc.utf8_lpad(pc.cast(micros, pa.string()), 6, "0"), ""),
    )
    return pc.binary_join_element_wise(seconds, fraction, "Z", "")
