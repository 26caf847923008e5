"""`eql serve` (the HTTP server) and `eql keys create|list|revoke` (its API keys).

`eql serve` takes its settings from the `EQL_*` environment (`server.settings`) and its flags on
top: `--host`, `--port`, `--access-log` (JSON lines on stdout), `--log-level`, `--metrics-admin`,
`--workers N` (one writer, N-1 reader processes on the same port: `server.workers`) and
`--cdc CONFIG` (connectors the server runs, supervised: `server.replication`; each config is
checked before the server starts).

The server is its store's one writer. It leaves a local credential for the CLI (`eql.cli.served`):
a `local-cli` admin key minted before uvicorn starts, `DATA/server.json` written once the socket
listens, both removed at a clean stop (Ctrl-C, or SIGTERM: exit 143); what a killed server left
is cleared by the next one. A second server of the same data directory is refused, naming the
first's pid and port. The key name `local-cli` is the server's: `eql keys create --name
local-cli` is refused.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import typer
from rich.table import Table

from eql.cli.common import DataDir, err, fail, out, user_errors

if TYPE_CHECKING:
    from runtime import Session
    from server.keys import KeyFile
    from server.settings import Settings

keys_app = typer.Typer(help="API keys of the server: create, list, revoke.", no_args_is_help=True)


def register(app: typer.Typer) -> None:
    app.command("serve")(serve)
    app.add_typer(keys_app, name="keys")


LogLevel = Literal["debug", "info", "warning", "error"]


def serve(
    data_dir: DataDir,
    host: Annotated[str, typer.Option("--host", help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", help="Port to listen on")] = 8000,
    access_log: Annotated[
        bool,
        typer.Option(
            "--access-log",
            help="A JSON line per request and per query on stdout (also EQL_ACCESS_LOG=1)",
        ),
    ] = False,
    log_level: Annotated[
        LogLevel | None,
        typer.Option(
            "--log-level",
            help="The server's own log, on stderr (default: EQL_LOG_LEVEL, else info)",
        ),
    ] = None,
    metrics_admin: Annotated[
        bool,
        typer.Option(
            "--metrics-admin",
            help="GET /metrics needs a key with scope admin (also EQL_METRICS_REQUIRE_ADMIN=1)",
        ),
    ] = False,
    workers: Annotated[
        int | None,
        typer.Option(
            "--workers",
            min=1,
            max=64,
            help="Processes answering on the port: one writer, the rest readers that follow it "
            "(also EQL_WORKERS; default 1)",
        ),
    ] = None,
    cdc: Annotated[
        list[Path] | None,
        typer.Option(
            "--cdc",
            metavar="CONFIG",
            help="Run this CDC config's connector in the server, supervised (repeatable)",
        ),
    ] = None,
) -> None:
    """Serve EQL over HTTP (limits: EQL_* environment variables, see docs/server.md)."""
    from pydantic import ValidationError

    from eql.cli import served
    from server.app import create_app
    from server.keys import KeyFile
    from server.protocol import Server, config, configure_logging
    from server.settings import Settings

    flags: dict[str, Any] = {}  # what the command line says on top of the environment
    if access_log:
        flags["access_log"] = True
    if metrics_admin:
        flags["metrics_require_admin"] = True
    if log_level is not None:
        flags["log_level"] = log_level
    if workers is not None:
        flags["workers"] = workers
    if cdc:
        flags["cdc"] = tuple(p.resolve() for p in cdc)
    try:
        settings = Settings(data_dir=data_dir, host=host, port=port, **flags)
    except ValidationError as exc:
        problems = "; ".join(
            f"{'.'.join(str(p) for p in e['loc'])}: {e['msg']}" for e in exc.errors()
        )
        fail(f"bad settings: {problems}", "check the EQL_* environment variables")
    _refuse_second(data_dir, probe=True)
    _stop_cleanly_on_sigterm()
    session = _open_for_serving(data_dir, settings)
    key = ""
    pool: Pool | None = None
    try:
        _check_cdc(settings, session)
        if settings.workers > 1:
            pool = Pool(settings, flags)
        key = _local_key(data_dir, settings)
        if not [k for k in KeyFile(settings.keys_path).records() if k.name != served.KEY_NAME]:
            err.print(
                f"note: no API keys yet; create one with `eql keys create --data-dir {data_dir} "
                "--scope query,lookup`"
            )
        configure_logging(settings)
        app = create_app(settings, session=session)

        def on_bound(bound_host: str, bound_port: int) -> None:
            served.announce(data_dir, bound_host, bound_port, key)
            if pool is not None:
                pool.start_readers(bound_host, bound_port)

        Server(config(app, settings), on_bound).run(pool.sockets if pool is not None else None)
    finally:
        try:
            if pool is not None:
                pool.stop()
            served.withdraw(data_dir, settings.keys_path, key)
        finally:
            session.close()


class Pool:
    """`--workers N`: the public socket (SO_REUSEPORT) and the writer's private unix socket this
    process serves on, and the N-1 reader processes started once it listens (`server.workers`).
    The readers get the command line's settings as EQL_* variables."""

    def __init__(self, settings: Settings, flags: dict[str, Any]) -> None:
        from server.workers import WriterSocket, public_socket

        self.settings = settings
        self.env = {f"EQL_{k.upper()}": _env_value(v) for k, v in flags.items() if k != "cdc"}
        try:
            self.public = public_socket(settings.host, settings.port)
        except OSError as exc:
            fail(f"cannot listen on {settings.host}:{settings.port}: {exc.strerror}")
        self.writer = WriterSocket()
        self.sockets = [self.public, self.writer.socket]
        self.readers: Any = None

    def start_readers(self, host: str, port: int) -> None:
        from server.workers import Readers

        self.readers = Readers(
            self.settings.workers - 1,
            self.settings.data_dir,
            host,
            port,
            self.writer.path,
            env=self.env,
        )
        self.readers.start()

    def stop(self) -> None:
        if self.readers is not None:
            self.readers.stop()
        self.writer.close()
        self.public.close()


def _env_value(value: Any) -> str:
    if isinstance(value, bool):
        return "1" if value else "0"
    return str(value)


def _check_cdc(settings: Settings, session: Session) -> None:
    """Every `--cdc` config readable and valid, and no two of one name or one `server_id` (the
    supervisor runs neither twice), before the server starts (exit 2 naming the problems), not
    a failed startup later."""
    from ingest.cdc_config import ConfigError, load_config

    problems: list[str] = []
    names: dict[str, Path] = {}
    server_ids: dict[int, Path] = {}
    for path in settings.cdc:
        try:
            cfg = load_config(path, session.store.schema)
        except ConfigError as exc:
            problems.extend(exc.problems)
            continue
        first = names.setdefault(cfg.name, path)
        if first != path:
            problems.append(f"{path}: connector {cfg.name} is also the name in {first}")
        elif path in server_ids.values():
            problems.append(f"{path}: given twice")
            continue
        sid = cfg.source.server_id
        first = server_ids.setdefault(sid, path)
        if first != path:
            problems.append(
                f"{path}: source.server_id {sid} is also the server_id in {first}; "
                "each connector needs a server_id of its own"
            )
    if problems:
        fail("bad --cdc config:\n  " + "\n  ".join(problems), "fix the config file(s)")


def _local_key(data_dir: Path, settings: Settings) -> str:
    """Clear what a killed server left (we hold the store: no other server is alive), then mint
    this server's local key: "" for a server not on a loopback address (local clients cannot
    reach it there), and (with a warning) when the keys file cannot be written."""
    from eql.cli import served
    from server.keys import KeyFileError

    try:
        served.clear_stale(data_dir, settings.keys_path)
        if served.local_url(settings.host, 0) is None:
            return ""
        return served.mint_key(settings.keys_path)
    except KeyFileError as exc:
        err.print(
            f"warning: no local key for the CLI ({exc}); `eql ingest` and writes by `eql query` "
            "cannot go through this server",
            markup=False,
            highlight=False,
        )
        return ""


def _stop_cleanly_on_sigterm() -> None:
    """SIGTERM ends the process by SystemExit(143), so that the `finally` of `serve` runs (the
    store closed, server.json and the local key removed). uvicorn handles the signal while it
    serves and, once it has shut down, raises it again with the handler found: this one."""
    import signal
    import threading

    def stop(signum: int, frame: object) -> None:
        raise SystemExit(128 + signum)

    if threading.current_thread() is threading.main_thread():
        signal.signal(signal.SIGTERM, stop)


def _refuse_second(data_dir: Path, *, probe: bool = False) -> None:
    """Exit 2 when a live server already serves `data_dir`: its server.json says so (and, with
    `probe`, its port answers: a pid reused by another `eql serve` does not count)."""
    from eql.cli.served import answers, read_record

    record = read_record(data_dir)
    if record is not None and (not probe or answers(record)):
        fail(
            f"{data_dir} is already served by pid {record['pid']} on port {record['port']} "
            f"({record['url'] or record['host']})",
            "stop that server first, or use it: the CLI writes through it",
        )


def _open_for_serving(data_dir: Path, settings: Settings) -> Session:
    """The store opened for writing; locked by a server that started meanwhile: refused as
    `_refuse_second` says; by another process (an import, cdc): the usual error."""
    from runtime import Session
    from storage.kv import StoreLockedError

    with user_errors():
        try:
            return Session.open(data_dir, settings=settings.engine())
        except StoreLockedError:
            _refuse_second(data_dir)
            raise
    raise AssertionError  # unreachable: user_errors re-raises as typer.Exit


def _key_file(data_dir: Path) -> KeyFile:
    from server.keys import KeyFile

    if not (data_dir / "rocks").exists():
        fail(
            f"no store at {data_dir}",
            f"create one with `eql init --data-dir {data_dir} --schema FILE` or `eql demo`",
        )
    return KeyFile(data_dir / "keys.json")


@keys_app.command("create")
def create(
    data_dir: DataDir,
    scope: Annotated[
        str, typer.Option("--scope", help="Comma-separated: query, lookup, define, ingest, admin")
    ],
    name: Annotated[str, typer.Option("--name", help="A label for listings")] = "",
) -> None:
    """Create a key and print it once (it is stored hashed: it cannot be shown again)."""
    from entities.names import label_problem
    from eql.cli.served import KEY_NAME
    from server.keys import KeyFileError, parse_scopes

    problem = label_problem(name)
    if problem is not None:
        fail(f"--name: {problem}", "a name is a label: printable text, up to 128 characters")
    if name == KEY_NAME:
        fail(
            f"--name: {KEY_NAME} is the name of the key a server makes for the CLI",
            "choose another name",
        )
    keys = _key_file(data_dir)
    try:
        scopes = parse_scopes(scope)
        record, token = keys.create(scopes, name)
    except ValueError as exc:
        fail(f"--scope: {exc}", "scopes are query, lookup, define, ingest, admin")
    except KeyFileError as exc:
        fail(str(exc))
    out.print(token, markup=False, highlight=False)
    err.print(
        f"created key {record.id} ({', '.join(sorted(record.scopes))}); it is shown only this once"
    )


@keys_app.command("list")
def list_keys(data_dir: DataDir) -> None:
    """List keys: id, name, scopes, created, revoked (never the keys themselves)."""
    table = Table("id", "name", "scopes", "created", "revoked", title="API keys")
    for k in _key_file(data_dir).records():
        p = k.public()
        table.add_row(p["id"], p["name"], ",".join(p["scopes"]), p["created"], p["revoked"] or "")
    out.print(table)


@keys_app.command("revoke")
def revoke(
    data_dir: DataDir,
    key_id: Annotated[str, typer.Argument(metavar="ID", help="The key's id (see `eql keys list`)")],
) -> None:
    """Revoke a key; a running server refuses it from its next request."""
    from server.keys import KeyFileError

    try:
        record = _key_file(data_dir).revoke(key_id)
    except KeyFileError as exc:
        fail(str(exc))
    if record is None:
        fail(f"no key with id {key_id!r}", "see `eql keys list`")
    out.print(f"revoked {record.id} at {record.revoked}")
