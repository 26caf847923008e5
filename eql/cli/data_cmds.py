"""`eql init`, `eql ingest`, `eql demo` and `eql status`: getting data into a store.

The commands are thin: the import loop (atomic per file, Ctrl-C and a full disk handled) is
eql/cli/importing.py, which also sends the files to the server while `eql serve` holds the store;
it and the store are imported only when a command runs, so that `eql --help` does not load them.
"""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from enum import StrEnum
from importlib import resources
from pathlib import Path
from typing import TYPE_CHECKING, Annotated

import typer

from eql.cli.common import (
    DataDir,
    err,
    fail,
    guarded,
    open_store,
    out,
    store_or_server,
    user_errors,
)

if TYPE_CHECKING:
    from ingest.files import Kind
    from storage import Store


class InputFormat(StrEnum):
    csv = "csv"
    parquet = "parquet"
    jsonl = "jsonl"


def demo_schema_path() -> Path:
    return Path(str(resources.files("entities") / "examples" / "retail.yaml"))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("ingest")(ingest)
    app.command("demo")(demo)
    app.command("status")(status)


def init(
    data_dir: DataDir,
    schema: Annotated[
        Path, typer.Option("--schema", metavar="FILE", help="The schema file (YAML)")
    ],
) -> None:
    """Create an empty store with a schema."""
    from storage import Store

    with user_errors():
        text = _read_text(schema)
        store = Store.create(data_dir, text, str(schema))
        store.close()
    out.print(f"created a store at {data_dir} with schema {schema}")


def _read_text(path: Path) -> str:
    try:
        return path.read_text(encoding="utf-8")
    except FileNotFoundError:
        fail(f"{path}: file not found")
    except UnicodeDecodeError:
        fail(f"{path}: not UTF-8 text")


def ingest(
    files: Annotated[
        list[Path], typer.Argument(metavar="FILE...", help="CSV, Parquet or JSON-lines files")
    ],
    data_dir: DataDir,
    entity: Annotated[str | None, typer.Option("--entity", help="Upsert into this entity")] = None,
    events: Annotated[
        str | None, typer.Option("--events", help="Append to this event stream")
    ] = None,
    fmt: Annotated[
        InputFormat | None,
        typer.Option("--format", help="The files' format [default: by suffix]"),
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option(
            "--rejects", metavar="DIR", help="Folder for reject files [default: DATA_DIR/rejects]"
        ),
    ] = None,
    allow_extra_columns: Annotated[
        bool, typer.Option("--allow-extra-columns", help="Ignore columns the schema lacks")
    ] = False,
) -> None:
    """Import files into an entity (upsert by key) or an event stream (append).

    Each file is one atomic, idempotent import; bad rows go to a reject file.
    Exit 0: all rows imported; 1: some rows rejected; 2: a file could not be imported at all
    (a full disk also stops the files after it); 130: interrupted (Ctrl-C): the files before
    were imported, the current one and the rest not.
    """
    from eql.cli.importing import CtrlC, Imports, close_store, finish, import_all, report_interrupt
    from storage import Store

    if (entity is None) == (events is None):
        fail("give exactly one of --entity NAME or --events NAME")
    kind: Kind = "entity" if entity is not None else "events"
    target = entity if entity is not None else events
    assert target is not None
    jobs: list[tuple[Kind, str, Path]] = [(kind, target, f) for f in files]
    opened = store_or_server(data_dir)
    if not isinstance(opened, Store):
        from eql.cli.importing import import_through

        finish(import_through(opened, jobs, rejects, allow_extra_columns, fmt), len(files))
        return
    store = opened
    result = Imports()
    with CtrlC() as ctrl_c:
        try:
            result = import_all(
                store,
                jobs,
                rejects,
                allow_extra_columns,
                None if fmt is None else fmt.value,
                ctrl_c,
            )
        finally:
            ctrl_c.held = "closing the store"  # a Ctrl-C now waits for it to be closed
            result.unclosed = close_store(store, result.disk_full)
        if ctrl_c.pending and not result.interrupted:  # pressed while the store closed
            result.interrupted = True
        if result.interrupted:
            with ctrl_c.deferred():
                report_interrupt(jobs, result)
    finish(result, len(files))


def demo(
    data_dir: DataDir,
    users: Annotated[int, typer.Option("--users", min=100, help="Number of users")] = 10_000,
    seed: Annotated[int, typer.Option("--seed", help="Random seed (same seed, same data)")] = 42,
    end: Annotated[
        str, typer.Option("--end", help="Events end just before this date (UTC)")
    ] = "2026-11-01",
    force: Annotated[
        bool, typer.Option("--force", help="Replace an existing store at DATA_DIR")
    ] = False,
    keep_files: Annotated[
        bool, typer.Option("--keep-files", help="Keep the generated files in DATA_DIR/demo-files")
    ] = False,
) -> None:
    """Build the demo retail store: users, stores, products, employees and seven event streams."""
    from eql.cli.importing import CtrlC, Imports, close_store, import_all, report_interrupt
    from ingest.demo import generate_demo_files
    from storage import Store

    try:
        end_date = dt.date.fromisoformat(end)
    except ValueError:
        fail(f"--end {end!r} is not a date", "use YYYY-MM-DD")
    if (data_dir / "rocks").exists():
        if not force:
            fail(f"{data_dir} already holds a store", "pass --force to replace it")
        shutil.rmtree(data_dir)
    schema_file = demo_schema_path()
    with user_errors():
        store = Store.create(data_dir, schema_file.read_text(encoding="utf-8"), "retail.yaml")
    files_dir = data_dir / "demo-files" if keep_files else Path(tempfile.mkdtemp(prefix="eql-"))
    jobs: list[tuple[Kind, str, Path]] = []
    result = Imports()
    try:
        err.print(f"generating the demo world for {users:,} users (seed {seed})...")
        files = generate_demo_files(files_dir, users=users, seed=seed, end=end_date)
        jobs = [(f.kind, f.target, f.path) for f in files]
        with CtrlC() as ctrl_c:
            result = import_all(store, jobs, None, False, None, ctrl_c)
        if not result.interrupted and not result.disk_full:
            status_table(store)
            sample_queries(store, end_date)
    finally:
        result.unclosed = close_store(store, result.disk_full)
        if not keep_files:
            shutil.rmtree(files_dir, ignore_errors=True)
    if result.interrupted:
        report_interrupt(jobs, result, "run `eql demo --force` to build the demo store again")
    if result.disk_full or result.unclosed is not None:
        fail(
            "the disk is full: the demo store is incomplete",
            "free some space, then run `eql demo --force`",
        )
    reports = result.reports
    dirty = sum(1 for f, r in zip(files, reports, strict=True) if f.dirty and r is not None)
    out.print(
        f"demo store ready at {data_dir}; {dirty} deliberately dirty files showed the reject "
        f"path (see {data_dir / 'rejects'})"
    )


SAMPLES = (
    (
        "Top stores by sales in the last 30 days",
        "FIND stores RETURN id, city, sum(purchase.amount DURING LAST 30 DAYS) AS sales_30d,\n"
        "  count(members WHERE NOT DID purchase DURING LAST 30 DAYS) AS idle_members\n"
        "ORDER BY sales_30d DESC LIMIT 5",
    ),
    (
        "Lapsed big spenders, by region",
        "FIND users WHERE sum(purchase.amount DURING LAST 365 DAYS) > 1000\n"
        "  AND NOT DID purchase DURING LAST 60 DAYS\n"
        "GROUP BY home_store.region RETURN home_store.region, count() AS users\n"
        "ORDER BY users DESC",
    ),
    (
        "Daily app sales last week",
        "FIND EVENTS purchase DURING LAST 7 DAYS WHERE channel = 'app'\n"
        "GROUP BY day(time) RETURN day(time) AS day, sum(amount) AS sales,\n"
        "  count(DISTINCT user) AS buyers ORDER BY day",
    ),
)


def sample_queries(store: Store, end: dt.date) -> None:
    """Run a few EQL queries on the fresh demo store, to show what it holds."""
    from eql.cli.output import write
    from runtime.engine import Engine

    engine = Engine(store)
    now = dt.datetime(end.year, end.month, end.day, tzinfo=dt.UTC)
    for title, text in SAMPLES:
        out.print(f"\n[bold]{title}[/] (as of {end})", markup=True)
        out.print(text, markup=False, highlight=False)
        write(engine.query(text, now=now), "table", None)


def status(data_dir: DataDir) -> None:
    """Show what the store holds: rows per entity, events per stream, imports."""
    store = open_store(data_dir, read_only=True)
    try:
        guarded(lambda: status_table(store))
    finally:
        store.close()


def status_table(store: Store) -> None:
    from rich.table import Table

    table = Table("kind", "name", "rows", "detail", title=f"store {store.data_dir}")
    for ent in store.schema.entities:
        table.add_row(
            "entity",
            ent.name,
            f"{store.count(ent.name):,}",
            f"{store.id_count(ent.name):,} dense ids, version {store.version(ent.name)}",
        )
    for st in store.schema.streams:
        segs = store.segments(st.name)
        tail = store.tail_table(st.name).num_rows
        table.add_row(
            "events",
            st.name,
            f"{store.event_count(st.name):,}",
            f"{len(segs)} segments, {tail:,} rows in the tail",
        )
    out.print(table)
    out.print(f"{len(store.imports())} files imported")
