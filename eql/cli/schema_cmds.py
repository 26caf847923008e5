"""`eql schema check FILE` and `eql schema show`."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from eql.cli.common import DataDir, guarded, open_store, out

if TYPE_CHECKING:
    from entities import Schema

schema_app = typer.Typer(help="Check and show entity schemas.", no_args_is_help=True)


@schema_app.command("check")
def check(
    file: Annotated[Path, typer.Argument(metavar="FILE", help="A schema file (YAML)")],
) -> None:
    """Validate a schema file; every problem is listed with its line and key."""
    from entities import load_schema

    schema = guarded(lambda: load_schema(file))
    out.print(f"{file}: ok: {len(schema.entities)} entities, {len(schema.streams)} event streams")


@schema_app.command("show")
def show(
    data_dir: DataDir,
    file: Annotated[
        Path | None,
        typer.Option("--file", metavar="FILE", help="Show this schema file instead of the store's"),
    ] = None,
) -> None:
    """Show the store's schema (or a schema file): entities, relations and streams."""
    from entities import load_schema

    if file is not None:
        schema = guarded(lambda: load_schema(file))
    else:
        store = open_store(data_dir, read_only=True)
        schema = store.schema
        store.close()
    render(schema)


def render(schema: Schema) -> None:
    from rich.table import Table
    from rich.tree import Tree

    from entities import Cardinality

    tree = Tree(f"[bold]schema[/] {schema.source}")
    for ent in schema.entities:
        node = tree.add(f"[bold cyan]{ent.name}[/] key {ent.key.name}: {ent.key.type}")
        for a in ent.attributes:
            req = " required" if a.required else ""
            node.add(f"{a.name}: {a.type}{req}")
        for r in ent.relations:
            arrow = "->" if r.cardinality is Cardinality.ONE else "->>"
            node.add(
                f"[magenta]{r.name}[/] {arrow} {r.target} ({r.cardinality.value}, via {r.via})"
            )
        for st, ref in schema.streams_of(ent.name):
            node.add(f"[green]{st.name}[/] events (as {ref.name})")
    table = Table("stream", "time", "references", "fields", title="event streams")
    for st in schema.streams:
        table.add_row(
            st.name,
            st.time,
            ", ".join(f"{r.name}->{r.entity} ({r.column})" for r in st.references),
            ", ".join(f"{f.name}: {f.type}" for f in st.fields),
        )
    out.print(tree)
    out.print(table)
