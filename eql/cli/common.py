"""Shared CLI plumbing: the data-dir option, console output, and errors without tracebacks.

Known errors exit 2 with a message and a hint; so does a full disk, wherever it shows up (an
import, a query's output, a refresh, opening or closing the store). Anything else is a bug in
eql: exit 70 (`internal_error`). A command that writes opens the store with `store_or_server`
or `session_or_server`: while `eql serve` holds the store, they give that server instead
(`eql.cli.served`), and the command sends its write there. Nothing heavy is imported at the
top (the store, the runtime and the readers come in when a command opens a store), so that
`eql --help` starts fast.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, NoReturn, TypeVar

import typer
from rich.console import Console
from rich.markup import escape

from ingest.problems import disk_full_reason, is_disk_full

if TYPE_CHECKING:
    from eql.cli.served import Served
    from runtime import Session
    from runtime.engine import EngineSettings
    from storage import Store

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK = 0
EXIT_REJECTS = 1  # the command did its work but some input rows were rejected
EXIT_USAGE = 2  # bad input: nothing was changed
EXIT_INTERNAL = 70
DISK_FULL_HINT = "free some space, then run the command again; what was committed before is kept"
LOCKED_HINT = (
    "stop the other eql process (an import, cdc) first; a running `eql serve` of the store would "
    "be written through, but none left a live DATA/server.json"
)


class Format(StrEnum):
    """What `--format` accepts (the choices show in `--help`; eql/cli/output.py writes them)."""

    table = "table"
    csv = "csv"
    ndjson = "ndjson"
    json = "json"
    parquet = "parquet"


def default_data_dir() -> Path:
    return Path(os.environ.get("EQL_DATA_DIR") or "./eql-data")


DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        metavar="DIR",
        help="The store's data directory [default: $EQL_DATA_DIR, else ./eql-data]",
        show_default=False,
        default_factory=default_data_dir,
    ),
]


def say_error(message: str, hint: str) -> None:
    err.print(f"[bold red]error:[/] {escape(message)}", markup=True, highlight=False)
    if hint:
        err.print(f"  [cyan]hint:[/] {escape(hint)}", markup=True, highlight=False)


def fail(message: str, hint: str = "", code: int = EXIT_USAGE) -> NoReturn:
    say_error(message, hint)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's known errors into a message and an exit code; never a traceback.

    The error types are imported here, not at the top: a command that reaches this has the store
    and the readers loaded anyway, and `eql --help` loads neither."""
    from entities import SchemaError
    from ingest.readers import FileError
    from storage import StoreError
    from storage.kv import StoreLockedError

    try:
        yield
    except typer.Exit:
        raise
    except SchemaError as exc:
        for p in exc.problems:
            err.print(
                f"[bold red]error:[/] {escape(f'{p.file}:{p.line}')}: [bold]{escape(p.key)}[/]: "
                f"{escape(p.message)}",
                markup=True,
                highlight=False,
            )
        raise typer.Exit(EXIT_USAGE) from None
    except FileError as exc:
        fail(f"{exc.file}: {exc.message}", exc.hint)
    except StoreLockedError as exc:
        fail(str(exc), LOCKED_HINT)
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None
    except Exception as exc:
        if not is_disk_full(exc):
            raise
        fail(disk_full_message(exc), DISK_FULL_HINT)


def disk_full_message(exc: BaseException) -> str:
    return f"the disk is full ({disk_full_reason(exc)})"


T = TypeVar("T")


def open_store(data_dir: Path, *, read_only: bool = False) -> Store:
    from storage import Store

    with user_errors():
        return Store.open(data_dir, read_only=read_only)
    raise AssertionError  # unreachable: user_errors re-raises as typer.Exit


def open_session(
    data_dir: Path, *, read_only: bool = False, settings: EngineSettings | None = None
) -> Session:
    """A session over the store at `data_dir` (closed with it), errors said without tracebacks."""
    from runtime import Session

    with user_errors():
        return Session.open(data_dir, read_only=read_only, settings=settings)
    raise AssertionError  # unreachable: user_errors re-raises as typer.Exit


def store_or_server(data_dir: Path) -> Store | Served:
    """The store at `data_dir` opened for writing or, when a server holds it (a store has one
    writer), that server (`eql.cli.served.find_server`), said once on stderr. Neither: the
    store's lock error, exit 2."""
    from storage import Store

    return _writable_or_server(data_dir, Store.open)


def session_or_server(data_dir: Path) -> Session | Served:
    """As `store_or_server`, a session over the store opened for writing, or its server."""
    from runtime import Session

    return _writable_or_server(data_dir, Session.open)


def _writable_or_server(data_dir: Path, open_writable: Callable[[Path], T]) -> T | Served:
    from storage.kv import StoreLockedError

    with user_errors():
        try:
            return open_writable(data_dir)
        except StoreLockedError as exc:
            return _served_or_raise(data_dir, exc)
    raise AssertionError  # unreachable: user_errors re-raises as typer.Exit


def _served_or_raise(data_dir: Path, locked: Exception) -> Served:
    """The server that holds the store (said on stderr), or the lock error raised again."""
    from eql.cli.served import find_server

    served = find_server(data_dir)
    if served is None:
        raise locked
    err.print(f"(through the server at {served.url}, pid {served.pid})", markup=False)
    return served


def guarded(fn: Callable[[], T]) -> T:
    with user_errors():
        return fn()
    raise AssertionError


def internal_error(exc: BaseException) -> NoReturn:
    """The last guard of the `eql` command: a full disk is the user's to fix (exit 2); any other
    exception that got this far is a bug (exit 70). EQL_DEBUG=1 raises it, for the traceback."""
    if os.environ.get("EQL_DEBUG"):
        raise exc
    if is_disk_full(exc):
        say_error(disk_full_message(exc), DISK_FULL_HINT)
        sys.exit(EXIT_USAGE)
    err.print(
        f"[bold red]internal error:[/] {type(exc).__name__}: {escape(str(exc))}\n"
        "  this is a bug in eql; run again with EQL_DEBUG=1 for the traceback and report it",
        markup=True,
        highlight=False,
    )
    sys.exit(EXIT_INTERNAL)
