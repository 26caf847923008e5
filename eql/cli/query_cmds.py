"""`eql query` and `eql explain`: run EQL against a store from the command line."""

from __future__ import annotations

import datetime as dt
import io
import sys
from pathlib import Path
from typing import Annotated, Any

import orjson
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import typer
from rich.table import Table

from eql.cli.common import EXIT_USAGE, DataDir, err, fail, open_session, out
from eql.diagnostics import EqlError
from runtime.session import parse_time

FORMATS = ("table", "csv", "ndjson", "json", "parquet")
STAGES = ("ast", "bound", "plan", "datafusion", "all")


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.command("explain")(explain)


def _text(eql: str | None, file: Path | None) -> str:
    if (eql is None) == (file is None):
        fail("give the query as an argument or with -f FILE (one of them)")
    if file is not None:
        try:
            return file.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as exc:
            fail(f"{file}: cannot read the query: {exc}")
    assert eql is not None
    return eql


def _params(pairs: list[str]) -> dict[str, Any]:
    params: dict[str, Any] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        if not sep or not name.strip():
            fail(f"--param {pair!r}: expected NAME=VALUE", "e.g. --param city=Shanghai")
        params[name.strip().lstrip("$")] = value
    return params


def _now(as_of: str | None) -> dt.datetime | None:
    if as_of is None:
        return None
    try:
        return parse_time(as_of)
    except ValueError as exc:
        fail(f"--as-of: {exc}")


def _report(exc: EqlError) -> None:
    err.print(exc.render(), markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE)


Query = Annotated[str | None, typer.Argument(help="The EQL text (or use -f FILE)")]
QueryFile = Annotated[Path | None, typer.Option("-f", "--file", help="Read the query from FILE")]
Params = Annotated[
    list[str], typer.Option("--param", "-p", help="A parameter: NAME=VALUE (repeatable)")
]
AsOf = Annotated[
    str | None, typer.Option("--as-of", help="Reference time when the query has no AS OF")
]


def query(
    data_dir: DataDir,
    eql: Query = None,
    file: QueryFile = None,
    fmt: Annotated[str, typer.Option("--format", help="table, csv, ndjson, json or parquet")] = (
        "table"
    ),
    output: Annotated[
        Path | None, typer.Option("--output", "-o", help="Write to FILE (parquet needs one)")
    ] = None,
    param: Params = [],  # noqa: B006 - typer reads the default, never mutates it
    as_of: AsOf = None,
) -> None:
    """Run an EQL query and print the result."""
    if fmt not in FORMATS:
        fail(f"--format {fmt!r}: expected one of {', '.join(FORMATS)}")
    if fmt == "parquet" and output is None:
        fail("--format parquet writes a file: add --output FILE")
    text = _text(eql, file)
    params = _params(param)
    from runtime import WRITE, Explanation, kind_of

    try:
        kind = kind_of(text)
    except EqlError as exc:
        _report(exc)
    # a query reads the store beside a running server; a write needs it for itself (the CLI
    # runs as admin)
    session = open_session(data_dir, read_only=kind != "write")
    try:
        try:
            result = session.execute(text, params, _now(as_of), WRITE)
        except EqlError as exc:
            _report(exc)
    finally:
        session.close()
    if isinstance(result, Explanation):
        out.print(result.text, markup=False)
        return
    write(result.table, fmt, output)


def write(result: pa.Table, fmt: str, output: Path | None) -> None:
    if fmt == "parquet":
        assert output is not None
        pq.write_table(result, output)
        return
    if fmt == "csv":
        buf = io.BytesIO()
        pacsv.write_csv(result, buf)
        data = buf.getvalue()
    elif fmt in ("ndjson", "json"):
        rows = result.to_pylist()
        if fmt == "ndjson":
            data = b"".join(orjson.dumps(r, default=_json_default) + b"\n" for r in rows)
        else:
            data = orjson.dumps(rows, default=_json_default, option=orjson.OPT_INDENT_2) + b"\n"
    else:
        table = Table(*result.column_names, title=f"{result.num_rows} rows")
        for row in result.to_pylist():
            table.add_row(*(_cell(v) for v in row.values()))
        if output is None:
            out.print(table)
            return
        with output.open("w", encoding="utf-8") as fh:
            from rich.console import Console

            Console(file=fh, width=200).print(table)
        return
    if output is None:
        sys.stdout.buffer.write(data)
        sys.stdout.flush()
    else:
        output.write_bytes(data)


def _cell(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return str(v)


def _json_default(v: Any) -> Any:
    import decimal

    if isinstance(v, decimal.Decimal):
        return str(v)
    if isinstance(v, dt.date | dt.datetime):
        return v.isoformat()
    raise TypeError(type(v).__name__)


def explain(
    data_dir: DataDir,
    eql: Query = None,
    file: QueryFile = None,
    stage: Annotated[
        str | None,
        typer.Option(
            "--stage", help="ast, bound, plan, datafusion or all (default: the text's, else all)"
        ),
    ] = None,
    param: Params = [],  # noqa: B006
    as_of: AsOf = None,
) -> None:
    """Show how a query is compiled, stage by stage."""
    if stage is not None and stage not in STAGES:
        fail(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    text = _text(eql, file)
    session = open_session(data_dir, read_only=True)
    try:
        try:
            explained = session.explain(text, _params(param), _now(as_of), stage)
        except EqlError as exc:
            _report(exc)
        out.print(explained.text, markup=False)
    finally:
        session.close()
