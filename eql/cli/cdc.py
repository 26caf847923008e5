"""`eql cdc run` and `eql cdc status`: binlog change data capture from MariaDB/MySQL.

When `eql serve` serves the data directory (`eql.cli.served.find_server`), both go through that
server: `status` asks `GET /v1/admin/cdc`, `run` starts the connector in the server
(`POST /v1/admin/cdc/connectors`, the config's absolute path), shows its status until Ctrl-C (or
`--max-seconds`), then stops it (`DELETE`); with `--detach` it leaves it running at once.
Otherwise `run` opens the store as its writer and runs the connector in this process.

The CDC modules (and the binlog reader) are imported when a command runs, not by `eql --help`
or by the other commands."""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from eql.cli.common import EXIT_USAGE, DataDir, err, fail, open_store, out, user_errors

if TYPE_CHECKING:
    from eql.cli.served import Http, Served

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
    detach: Annotated[
        bool,
        typer.Option(
            "--detach", help="A served store: leave the connector running in the server, exit"
        ),
    ] = False,
) -> None:
    """Snapshot the mapped tables (first run), then apply binlog changes until stopped.

    Safe to kill at any moment: each source transaction and its offset are committed together,
    and a restart resumes from the committed offset (also inside an interrupted snapshot).
    When `eql serve` serves the store, the connector runs in the server, as long as this command.
    """
    stop = threading.Event()
    # Ctrl-C and SIGTERM stop the run at a transaction boundary (restored after the command)
    previous = {s: signal.signal(s, lambda *_: stop.set()) for s in (signal.SIGTERM, signal.SIGINT)}
    try:
        _run(data_dir, config, stop, until_caught_up, max_seconds, quiet, detach)
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _run(
    data_dir: Path,
    config: Path,
    stop: threading.Event,
    until_caught_up: bool,
    max_seconds: float | None,
    quiet: bool,
    detach: bool,
) -> None:
    from eql.cli.served import find_server

    served = find_server(data_dir)
    if served is not None:
        if until_caught_up:
            fail(
                "--until-caught-up is not available while a server serves the store",
                "use --max-seconds, or stop the server",
            )
        _run_served(served, config, stop, max_seconds=max_seconds, quiet=quiet, detach=detach)
        return
    if detach:
        fail("--detach needs a running server of this store", "start `eql serve` first")

    from ingest.cdc_config import ConfigError, load_config
    from ingest.cdc_runner import RunOptions, run
    from ingest.cdc_state import CdcError

    store = open_store(data_dir)

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
    """Position, lag, counters and snapshot progress of every connector in the store (with a
    server: of the connectors it supervises, with their state, restarts and last error)."""
    from eql.cli.served import find_server

    served = find_server(data_dir)
    if served is not None:
        entries = _served_status(served)
        if as_json:
            out.print(json.dumps(entries, indent=2), markup=False, highlight=False, soft_wrap=True)
        elif not entries:
            out.print(f"no CDC connector runs in the server of this store ({served.url})")
        for e in [] if as_json else entries:
            out.print(served_text(e), markup=False, highlight=False)
        return

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


@cdc_app.command("stop")
def stop_cmd(
    data_dir: DataDir,
    name: Annotated[str, typer.Argument(help="The connector's name (its config's `name`)")],
) -> None:
    """Stop a connector the server of the store runs (one started with `run --detach`)."""
    from eql.cli.served import client, find_server

    served = find_server(data_dir)
    if served is None:
        fail(
            "no server serves this store: a connector runs only as long as its `eql cdc run`",
            "stop that command (Ctrl-C)",
        )
    with client(served, read_timeout=60.0) as http:
        final = _request(http, "DELETE", f"{CONNECTORS}/{quote(name, safe='')}")["connector"]
    out.print(_summary(final, None, "stopped"), markup=False, highlight=False)


# ---- through a server ------------------------------------------------------------------------
CONNECTORS = "/v1/admin/cdc/connectors"


def _request(http: Http, method: str, path: str, **kw: Any) -> Any:
    """The JSON answer of the server (`http`: `eql.cli.served.client`, the owner of httpx); its
    error messages as a failure (exit 2)."""
    try:
        resp = http.request(method, path, **kw)
    except Exception as exc:  # httpx's transport errors: refused, reset, timed out
        fail(f"the server of this store did not answer: {exc}", "is `eql serve` still running?")
    if resp.status_code < 400:
        return resp.json()
    try:
        items = resp.json().get("errors", [])
    except ValueError:
        items = []
    problems = [p for it in items for p in it.get("problems", [it.get("message", "")])]
    for p in problems[:-1] or []:
        err.print(f"[bold red]error:[/] {p}", markup=True, highlight=False)
    last = problems[-1] if problems else f"the server answered {resp.status_code}"
    fail(last, "" if resp.status_code != 409 else "see `eql cdc status` for what runs")


def _served_status(served: Served) -> list[dict[str, Any]]:
    from eql.cli.served import client

    with client(served, read_timeout=30.0) as http:
        body = _request(http, "GET", "/v1/admin/cdc")
    return list(body["connectors"])


def served_text(e: dict[str, Any]) -> str:
    """One connector of a server's `GET /v1/admin/cdc`, as `eql cdc status` prints it."""
    pos = e.get("position")
    where = "-"
    if pos:
        where = f"{pos['file']}:{pos['pos']}" + (f" (gtid {pos['gtid']})" if pos["gtid"] else "")
    lag = e.get("lag_seconds")
    lines = [
        f"connector {e['name']}: {e['state']}" + (f" ({e['phase']})" if e.get("phase") else ""),
        f"  config         {e.get('config') or '-'}",
        f"  position       {where}",
        "  lag            "
        + (f"{lag:.1f}s" if lag is not None else "-")
        + (f" (caught up at {e['caught_up_at']})" if e.get("caught_up_at") else ""),
        f"  last event at  {e.get('last_event_at') or '-'}",
        f"  restarts       {e['restarts']}"
        + (f" (next retry at {e['next_retry_at']})" if e.get("next_retry_at") else ""),
    ]
    if e.get("counters"):
        lines.append("  counters")
        for k, v in e["counters"].items():
            flag = "  <- must be 0" if k == "skipped" and v else ""
            lines.append(f"    {k:<22} {v}{flag}")
    if e.get("last_error"):
        when = f" (at {e['last_error_at']})" if e.get("last_error_at") else ""
        lines.append(f"  last error     {e['last_error']}{when}")
    return "\n".join(lines)


def _summary(e: dict[str, Any], seconds: float | None, why: str) -> str:
    pos = e.get("position")
    where = f"{pos['file']}:{pos['pos']}" if pos else "-"
    c = e.get("counters", {})
    return (
        f"cdc {e['name']}: {why}"
        + ("" if seconds is None else f" after {seconds:.1f}s")
        + f" at {where}; "
        f"{c.get('transactions', 0)} transactions, {c.get('rows_applied', 0)} row changes applied, "
        f"{c.get('snapshot_rows', 0)} snapshot rows, {c.get('reconnects', 0)} reconnects, "
        f"{e['restarts']} restarts, skipped {c.get('skipped', 0)}"
    )


def _run_served(
    served: Served,
    config: Path,
    stop: threading.Event,
    *,
    max_seconds: float | None,
    quiet: bool,
    detach: bool,
    every: float = 2.0,
) -> None:
    from eql.cli.served import client

    started = time.monotonic()
    with client(served, read_timeout=60.0) as http:
        body = _request(http, "POST", CONNECTORS, json={"config": str(config.resolve())})
        entry = body["connector"]
        name = entry["name"]
        if detach:
            if not quiet:
                out.print(
                    f"cdc {name}: running in the server of {served.data_dir} ({served.url}); "
                    f"`eql cdc stop --data-dir {served.data_dir} {name}` stops it",
                    markup=False,
                    highlight=False,
                )
            return
        if not quiet:
            err.print(f"cdc {name}: running in the server ({served.url}); Ctrl-C stops it")
        shown = ""
        deadline = None if max_seconds is None else started + max_seconds
        while not stop.is_set() and (deadline is None or time.monotonic() < deadline):
            left = every if deadline is None else max(0.0, min(every, deadline - time.monotonic()))
            if stop.wait(left):
                break
            listed = _request(http, "GET", "/v1/admin/cdc")["connectors"]
            found = [e for e in listed if e["name"] == name]
            if not found:
                fail(f"connector {name} is no longer in the server", "it was removed there")
            entry = found[0]
            line = _progress(entry)
            if line != shown and not quiet:
                err.print(line, markup=False, highlight=False)
                shown = line
            if entry["state"] in ("stopped", "failed"):
                break
        final = _request(http, "DELETE", f"{CONNECTORS}/{quote(name, safe='')}")["connector"]
    if "failed" in (final["state"], entry["state"]):
        fail(f"cdc {name}: {final['last_error']}", "fix the cause, then run again")
    if not quiet:
        why = "stopped" if stop.is_set() or max_seconds is None else "stopped (max seconds)"
        out.print(_summary(final, time.monotonic() - started, why), markup=False, highlight=False)


def _progress(e: dict[str, Any]) -> str:
    pos = e.get("position")
    lag = e.get("lag_seconds")
    text = (
        f"cdc {e['name']}: {e['state']} at {pos['file'] + ':' + str(pos['pos']) if pos else '-'}, "
        f"{e['transactions']} transactions, {e['rows_applied']} row changes, "
        f"lag {'-' if lag is None else f'{lag:.1f}s'}, {e['restarts']} restarts"
    )
    if e["state"] == "restarting" and e.get("last_error"):
        text += f"; {e['last_error']}; next retry at {e.get('next_retry_at')}"
    return text


if __name__ == "__main__":
    cdc_app()
