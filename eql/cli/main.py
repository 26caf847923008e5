"""`eql`: the command-line entry point. Sub-commands live in sibling modules."""

from __future__ import annotations

import typer

from eql.cli import data_cmds, query_cmds, schema_cmds, segment_cmds
from eql.cli.common import internal_error

app = typer.Typer(
    name="eql",
    help="EQL: an entity-model query engine for customer and marketing data.",
    no_args_is_help=True,
    add_completion=False,
    pretty_exceptions_enable=False,
    context_settings={"help_option_names": ["-h", "--help"]},
)
app.add_typer(schema_cmds.schema_app, name="schema")
data_cmds.register(app)
query_cmds.register(app)
segment_cmds.register(app)


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
