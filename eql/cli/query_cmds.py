"""`eql query` and `eql explain`: run EQL against a store from the command line.

The query comes as an argument, from `-f FILE`, or from stdin with `-f -`. A statement that writes
(DEFINE, REFRESH, DROP) needs the store for itself; while `eql serve` holds it, it is sent to that
server (`POST /v1/query` with the server's local key, `eql.cli.served`) and its answer printed as
a local run prints it. The runtime and the output writers are imported when the command runs,
not when `eql --help` is shown.
"""

from __future__ import annotations

import datetime as dt
import sys
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from eql.cli.common import (
    EXIT_USAGE,
    DataDir,
    Format,
    err,
    fail,
    open_session,
    out,
    session_or_server,
)
from eql.diagnostics import EqlError

if TYPE_CHECKING:
    import pyarrow as pa

    from eql.cli.served import Served


class Stage(StrEnum):
    ast = "ast"
    bound = "bound"
    plan = "plan"
    datafusion = "datafusion"
    all = "all"


def register(app: typer.Typer) -> None:
    app.command("query")(query)
    app.command("explain")(explain)


def _text(eql: str | None, file: Path | None) -> str:
    if (eql is None) == (file is None):
        fail("give the query as an argument or with -f FILE (one of them)")
    if file is not None:
        if str(file) == "-":
            try:  # the bytes, decoded strictly (the text stream would hide bad bytes)
                return sys.stdin.buffer.read().decode("utf-8")
            except UnicodeDecodeError as exc:
                fail(f"stdin: cannot read the query: {exc}", "send the query as UTF-8 text")
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


def _warn_unused(text: str, params: dict[str, Any]) -> None:
    """A `--param` the text never reads is most likely a typo: say so (the query still runs)."""
    from runtime.session import parameters_of

    for name in sorted(set(params) - parameters_of(text)):
        err.print(
            f"warning: --param {name} is not used by the query (it has no ${name})",
            markup=False,
            highlight=False,
        )


def _now(as_of: str | None) -> dt.datetime | None:
    if as_of is None:
        return None
    from runtime.session import parse_time

    try:
        return parse_time(as_of)
    except ValueError as exc:
        fail(f"--as-of: {exc}")


def _report(exc: EqlError) -> None:
    err.print(exc.render(), markup=False, highlight=False)
    raise typer.Exit(EXIT_USAGE)


Query = Annotated[
    str | None,
    typer.Argument(metavar="EQL", help="The EQL text (or use -f FILE)", show_default=False),
]
QueryFile = Annotated[
    Path | None,
    typer.Option("-f", "--file", metavar="FILE", help="Read the query from FILE (- for stdin)"),
]
Params = Annotated[
    list[str],
    typer.Option(
        "--param", "-p", metavar="NAME=VALUE", help="A parameter (repeatable)", show_default=False
    ),
]
AsOf = Annotated[
    str | None,
    typer.Option(
        "--as-of", metavar="TIME", help="Reference time when the query has no AS OF [default: now]"
    ),
]


def query(
    data_dir: DataDir,
    eql: Query = None,
    file: QueryFile = None,
    fmt: Annotated[Format, typer.Option("--format", help="How to write the result")] = Format.table,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write to FILE (parquet needs one)"),
    ] = None,
    param: Params = [],  # noqa: B006 - typer reads the default, never mutates it
    as_of: AsOf = None,
) -> None:
    """Run an EQL query and print the result."""
    if fmt is Format.parquet and output is None:
        fail("--format parquet writes a file: add --output FILE")
    text = _text(eql, file)
    params = _params(param)
    from runtime import WRITE, Explanation, Session, kind_of

    try:
        kind = kind_of(text)
    except EqlError as exc:
        _report(exc)
    _warn_unused(text, params)
    # a query reads the store beside a running server; a write needs it for itself (the CLI
    # runs as admin), or goes through the server that holds it
    if kind == "write":
        opened = session_or_server(data_dir)
        if not isinstance(opened, Session):
            from eql.cli.output import write

            _now(as_of)  # checked here, as a local run does
            write(_through_server(opened, text, params, as_of), fmt, output)
            return
        session = opened
    else:
        session = open_session(data_dir, read_only=True)
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
    from eql.cli.output import write

    write(result.table, fmt, output)


def _through_server(
    served: Served, text: str, params: dict[str, Any], as_of: str | None
) -> pa.Table:
    """A write statement run by the server that holds the store; its answer table (an error as
    a local run says it)."""
    from eql.cli.served import ServerError, run_statement

    try:
        return run_statement(served, text, params, as_of)
    except EqlError as exc:
        _report(exc)
    except ServerError as exc:
        fail(exc.message, exc.hint)


def explain(
    data_dir: DataDir,
    eql: Query = None,
    file: QueryFile = None,
    stage: Annotated[
        Stage | None,
        typer.Option("--stage", help="The stage to show [default: the text's, else all]"),
    ] = None,
    param: Params = [],  # noqa: B006
    as_of: AsOf = None,
) -> None:
    """Show how a query is compiled, stage by stage."""
    text = _text(eql, file)
    params = _params(param)
    session = open_session(data_dir, read_only=True)
    try:
        try:
            _warn_unused(text, params)
            explained = session.explain(
                text, params, _now(as_of), None if stage is None else stage.value
            )
        except EqlError as exc:
            _report(exc)
        out.print(explained.text, markup=False)
    finally:
        session.close()
