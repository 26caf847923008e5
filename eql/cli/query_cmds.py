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

from eql.binder.values import parse_time
from eql.cli.common import EXIT_USAGE, DataDir, err, fail, open_store, out
from eql.diagnostics import EqlError

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
    from eql.engine import Engine

    statement = _statement(text)
    if statement is not None:  # DEFINE, REFRESH, SHOW, ... (the CLI runs as admin)
        result = _run_statement(data_dir, statement, text, params, _now(as_of))
        write(result, fmt, output)
        return
    store = open_store(data_dir, read_only=True)
    try:
        engine = Engine(store)
        try:
            compiled = engine.compile(text, params, _now(as_of))
        except EqlError as exc:
            _report(exc)
        if compiled.explain_stage is not None:
            out.print(engine.explain(compiled, compiled.explain_stage), markup=False)
            return
        try:
            result = engine.run(compiled)
        except EqlError as exc:
            _report(exc)
    finally:
        store.close()
    write(result, fmt, output)


def _statement(text: str) -> Any:
    """The parsed statement when it is not a query (FIND, EXPLAIN FIND); else None."""
    from eql.compiler import parse_cached
    from eql.syntax import ast as A

    try:
        stmt = parse_cached(text)
    except EqlError:
        return None  # compile reports it
    if isinstance(stmt, A.Find | A.FindEvents):
        return None
    if isinstance(stmt, A.Explain) and isinstance(stmt.statement, A.Find | A.FindEvents):
        return None
    return stmt


def _run_statement(
    data_dir: Path, stmt: Any, text: str, params: dict[str, Any], now: dt.datetime | None
) -> pa.Table:
    from eql.audiences.statements import WRITES
    from eql.engine import Engine

    store = open_store(data_dir, read_only=not isinstance(stmt, WRITES))
    try:
        try:
            return Engine(store).execute(text, params, now)
        except EqlError as exc:
            _report(exc)
    finally:
        store.close()
    raise AssertionError


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
    stage: Annotated[str, typer.Option("--stage", help="ast, bound, plan, datafusion or all")] = (
        "all"
    ),
    param: Params = [],  # noqa: B006
    as_of: AsOf = None,
) -> None:
    """Show how a query is compiled, stage by stage."""
    if stage not in STAGES:
        fail(f"--stage {stage!r}: expected one of {', '.join(STAGES)}")
    text = _text(eql, file)
    from eql.engine import Engine

    store = open_store(data_dir, read_only=True)
    try:
        engine = Engine(store)
        try:
            compiled = engine.compile(text, _params(param), _now(as_of))
        except EqlError as exc:
            _report(exc)
        out.print(engine.explain(compiled, compiled.explain_stage or stage), markup=False)
    finally:
        store.close()
