"""`eql segment export|split|changes`: a segment's members out of the store, without a query.

The checks are the runtime's (`runtime.audiences.versions`): a segment that is not defined, one
never refreshed and a version it does not have are each an error (exit 2) that says what exists.
Nothing heavy is imported at the top (the runtime, the store, pyarrow come in inside the
commands), so that `eql --help` starts fast.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from enum import StrEnum
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, TypeVar

import typer

from eql.cli.common import DataDir, fail, open_store, out

if TYPE_CHECKING:
    import pyarrow as pa

    from runtime.lookup import Audiences
    from storage import Store

T = TypeVar("T")

segment_app = typer.Typer(
    help="Export, split and compare materialised segments.", no_args_is_help=True
)


def register(app: typer.Typer) -> None:
    app.add_typer(segment_app, name="segment")


@contextmanager
def _audiences(data_dir: Path) -> Iterator[tuple[Store, Audiences]]:
    """The store (read-only, closed after) and its segments as loaded for lookups."""
    from runtime.lookup import Audiences

    store = open_store(data_dir, read_only=True)
    try:
        yield store, Audiences(store)
    finally:
        store.close()


def _checked(name: str, read: Callable[[], T]) -> T:
    """`read()`, with the runtime's segment and version errors said as such (exit 2)."""
    from runtime.audiences import versions

    try:
        return read()
    except versions.NotDefined as exc:
        fail(str(exc), f"`eql query 'SHOW SEGMENTS'` lists them; DEFINE SEGMENT {name} ON ...")
    except versions.NotRefreshed as exc:
        fail(str(exc), f"`eql query 'REFRESH SEGMENT {name}'` first")
    except versions.UnknownVersion as exc:
        fail(str(exc), f"`eql query 'DESCRIBE SEGMENT {name}'` lists its versions")


class FileFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"


def _write(table: pa.Table, output: Path, fmt: str) -> None:
    if fmt == "parquet":
        import pyarrow.parquet as pq

        pq.write_table(table, output)
    else:
        import pyarrow.csv as pacsv

        pacsv.write_csv(table, output)


@segment_app.command("export")
def export(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The segment")],
    output: Annotated[
        Path, typer.Option("--output", "-o", metavar="FILE", help="The file to write")
    ],
    data_dir: DataDir,
    fmt: Annotated[FileFormat, typer.Option("--format", help="The file's format")] = FileFormat.csv,
    version: Annotated[int | None, typer.Option("--version", help="A refresh version")] = None,
) -> None:
    """Write the members' keys (the latest refresh, or --version) as CSV or Parquet."""
    from runtime.audiences import versions

    with _audiences(data_dir) as (_, aud):
        table = _checked(name, lambda: versions.members(aud, name, version))
        _write(table, output, fmt)
    out.print(f"{table.num_rows:,} members of {name} written to {output}")


def _groups(text: str) -> dict[str, float]:
    groups: dict[str, float] = {}
    for part in text.split(","):
        label, sep, share = part.partition("=")
        try:
            groups[label.strip()] = float(share)
        except ValueError:
            fail(f"--groups {text!r}: expected NAME=PERCENT,...", "e.g. control=10,treatment=90")
        if not sep or not label.strip():
            fail(f"--groups {text!r}: expected NAME=PERCENT,...", "e.g. control=10,treatment=90")
    if sum(groups.values()) > 100 or any(v < 0 for v in groups.values()):
        fail("--groups: shares must be >= 0 and add up to at most 100")
    return groups


@segment_app.command("split")
def split(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The segment")],
    groups: Annotated[str, typer.Option("--groups", help="NAME=PERCENT,... e.g. a=50,b=50")],
    salt: Annotated[str, typer.Option("--salt", help="Campaign salt: same salt, same split")],
    data_dir: DataDir,
    output: Annotated[
        Path | None,
        typer.Option("--output", "-o", metavar="FILE", help="Write key,group rows to FILE"),
    ] = None,
    fmt: Annotated[FileFormat, typer.Option("--format", help="The file's format")] = FileFormat.csv,
) -> None:
    """Split the members into named groups by a stable hash of key and salt (holdouts)."""
    import pyarrow as pa

    from runtime.audiences import versions

    shares = _groups(groups)
    with _audiences(data_dir) as (store, aud):
        d, parts = _checked(name, lambda: versions.split(aud, name, shares, salt))
        key = store.entity(d.entity).key.name
    for label, keys in parts.items():
        out.print(f"{label}: {len(keys):,}")
    if output is not None:
        table = pa.concat_tables(
            pa.table({key: keys, "group": pa.array([label] * len(keys), pa.string())})
            for label, keys in parts.items()
        )
        _write(table, output, fmt)
        out.print(f"written to {output}")


@segment_app.command("changes")
def changes(
    name: Annotated[str, typer.Argument(metavar="NAME", help="The segment")],
    since: Annotated[int, typer.Option("--since", help="The earlier refresh version")],
    to: Annotated[int, typer.Option("--to", help="The later refresh version")],
    data_dir: DataDir,
) -> None:
    """Who entered and who left between two refresh versions."""
    from runtime.audiences import versions

    with _audiences(data_dir) as (_, aud):
        diff = _checked(name, lambda: versions.changes(aud, name, since, to))
    out.print(f"entered: {len(diff.entered):,}  exited: {len(diff.exited):,}")
    for label, keys in (("entered", diff.entered), ("exited", diff.exited)):
        shown = keys.to_pylist()[:20]
        if shown:
            more = f" ... (+{len(keys) - 20:,})" if len(keys) > 20 else ""
            out.print(f"{label}: {', '.join(map(str, shown))}{more}")
