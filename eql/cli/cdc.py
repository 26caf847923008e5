"""`eql cdc run` and `eql cdc status`: binlog change data capture from MariaDB/MySQL.

The CDC modules (and the binlog reader) are imported when a command runs, not by `eql --help`
or by the other commands."""

from __future__ import annotations

import json
import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer

from eql.cli.common import EXIT_USAGE, DataDir, err, fail, open_store, out, user_errors

cdc_app = typer.Typer(
    help="Capture changes from a MariaDB/MySQL binlog into the store, effectively once.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
)


@cdc_app.command("run")
def run_cmd(
    data_dir: DataDir,
    config: Annotated[
        Path, typer.Option("--config", metavar="FILE", help="The CDC config file (YAML)")
    ],
    until_caught_up: Annotated[
        bool,
        typer.Option(
            "--until-caught-up",
            help="Stop once everything the server had logged at start is applied",
        ),
    ] = False,
    max_seconds: Annotated[
        float | None, typer.Option("--max-seconds", help="Stop after this many seconds")
    ] = None,
    quiet: Annotated[bool, typer.Option("--quiet", "-q", help="Print only errors")] = False,
) -> None:
    """Snapshot the mapped tables (first run), then apply binlog changes until stopped.

    Safe to kill at any moment: each source transaction and its offset are committed together,
    and a restart resumes from the committed offset (also inside an interrupted snapshot).
    """
    from ingest.cdc_config import ConfigError, load_config
    from ingest.cdc_runner import RunOptions, run
    from ingest.cdc_state import CdcError

    store = open_store(data_dir)
    stop = threading.Event()

    def on_signal(_sig: int, _frame: Any) -> None:
        stop.set()

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, on_signal)

    def log(msg: str) -> None:
        if not quiet:
            err.print(msg, markup=False, highlight=False)

    try:
        with user_errors():
            cfg = load_config(config, store.schema)
            report = run(store, cfg, RunOptions(until_caught_up, max_seconds), log=log, stop=stop)
    except ConfigError as exc:
        for p in exc.problems:
            err.print(f"[bold red]error:[/] {p}", markup=True, highlight=False)
        raise typer.Exit(EXIT_USAGE) from None
    except CdcError as exc:
        fail(str(exc), "fix the cause, then run again: it resumes from the committed offset")
    finally:
        store.close()
    st = report.state
    if not quiet:
        out.print(
            f"cdc {st.name}: {report.stopped} after {report.seconds:.1f}s at {st.position}; "
            f"{st.counter('transactions')} transactions, {st.counter('rows_applied')} row changes"
            f" applied, {st.counter('snapshot_rows')} snapshot rows, "
            f"{st.counter('reconnects')} reconnects, skipped {st.counter('skipped')}",
            markup=False,
            highlight=False,
        )


@cdc_app.command("status")
def status_cmd(
    data_dir: DataDir,
    as_json: Annotated[bool, typer.Option("--json", help="Print JSON")] = False,
) -> None:
    """Position, lag, counters and snapshot progress of every connector in the store."""
    from ingest.cdc_status import states, status_json, status_text

    store = open_store(data_dir, read_only=True)
    try:
        found = states(store)
    finally:
        store.close()
    if as_json:
        out.print(
            json.dumps([status_json(s) for s in found], indent=2),
            markup=False,
            highlight=False,
            soft_wrap=True,
        )
        return
    if not found:
        out.print("no CDC connector has run on this store")
        return
    for s in found:
        out.print(status_text(s), markup=False, highlight=False)


if __name__ == "__main__":
    cdc_app()
