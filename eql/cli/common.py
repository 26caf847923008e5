"""Shared CLI plumbing: the data-dir option, console output, and errors without tracebacks."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Annotated, NoReturn, TypeVar

import typer
from rich.console import Console

from entities import SchemaError
from ingest.readers import FileError
from storage import Store, StoreError
from storage.kv import StoreLockedError

out = Console(highlight=False, soft_wrap=True)
err = Console(stderr=True, highlight=False, soft_wrap=True)

EXIT_OK = 0
EXIT_REJECTS = 1  # the command did its work but some input rows were rejected
EXIT_USAGE = 2  # bad input: nothing was changed
EXIT_INTERNAL = 70


def default_data_dir() -> Path:
    return Path(os.environ.get("EQL_DATA_DIR") or "./eql-data")


DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        help="The store's data directory [default: $EQL_DATA_DIR, else ./eql-data]",
        show_default=False,
        default_factory=default_data_dir,
    ),
]


def fail(message: str, hint: str = "", code: int = EXIT_USAGE) -> NoReturn:
    err.print(f"[bold red]error:[/] {message}", markup=True, highlight=False)
    if hint:
        err.print(f"  [cyan]hint:[/] {hint}", markup=True, highlight=False)
    raise typer.Exit(code)


@contextmanager
def user_errors() -> Iterator[None]:
    """Turn the project's known errors into a message and an exit code; never a traceback."""
    try:
        yield
    except typer.Exit:
        raise
    except SchemaError as exc:
        for p in exc.problems:
            err.print(
                f"[bold red]error:[/] {p.file}:{p.line}: [bold]{p.key}[/]: {p.message}",
                markup=True,
                highlight=False,
            )
        raise typer.Exit(EXIT_USAGE) from None
    except FileError as exc:
        fail(f"{exc.file}: {exc.message}", exc.hint)
    except StoreLockedError as exc:
        fail(str(exc), "stop the other eql process (server, import, cdc) first")
    except StoreError as exc:
        fail(str(exc))
    except KeyboardInterrupt:
        err.print("interrupted")
        raise typer.Exit(130) from None


T = TypeVar("T")


def open_store(data_dir: Path, *, read_only: bool = False) -> Store:
    with user_errors():
        return Store.open(data_dir, read_only=read_only)
    raise AssertionError  # unreachable: user_errors re-raises as typer.Exit


def guarded(fn: Callable[[], T]) -> T:
    with user_errors():
        return fn()
    raise AssertionError


def internal_error(exc: BaseException) -> NoReturn:
    if os.environ.get("EQL_DEBUG"):
        raise exc
    err.print(
        f"[bold red]internal error:[/] {type(exc).__name__}: {exc}\n"
        "  this is a bug in eql; run again with EQL_DEBUG=1 for the traceback and report it",
        markup=True,
        highlight=False,
    )
    sys.exit(EXIT_INTERNAL)
