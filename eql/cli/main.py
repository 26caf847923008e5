"""`eql`: the command-line entry point. Sub-commands live in sibling modules.

Start-up is part of the interface: the command modules import only typer and our light modules at
the top and bring in the store, the runtime, pyarrow and the CDC reader when a command runs, so
`eql --help` and `eql --version` answer in about a tenth of a second (benchmarks/bench_startup.py
measures it; tests/cli/test_cli_basics.py checks what `eql --help` imports).
"""

from __future__ import annotations

from typing import Annotated

import typer

from eql.cli import data_cmds, query_cmds, schema_cmds, segment_cmds, shell_cmds
from eql.cli.common import internal_error

app = typer.Typer(
    name="eql",
    help="EQL: an entity-model query engine for customer and marketing data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    rich_markup_mode=None,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(schema_cmds.schema_app, name="schema")
data_cmds.register(app)
query_cmds.register(app)
shell_cmds.register(app)
segment_cmds.register(app)


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            number = version("eql")
        except PackageNotFoundError:  # running from a source tree that was never installed
            number = "unknown"
        typer.echo(f"eql {number}")
        raise typer.Exit()


@app.callback()
def _options(
    show_version: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, help="Show the version and exit."
        ),
    ] = False,
) -> None:
    """EQL: an entity-model query engine for customer and marketing data."""


def _mount_optional() -> None:
    """Sub-command groups added by later stages, mounted when present."""
    try:
        from eql.cli.cdc import cdc_app
    except ImportError:
        pass
    else:
        app.add_typer(cdc_app, name="cdc")
    try:
        from eql.cli import serve_cmds
    except ImportError:
        return
    serve_cmds.register(app)


_mount_optional()


def main() -> None:
    try:
        app()
    except SystemExit:
        raise
    except BaseException as exc:  # the last guard: no traceback reaches a user
        internal_error(exc)


if __name__ == "__main__":
    main()
