"""`eql init`, `eql ingest`, `eql demo` and `eql status`: getting data into a store."""

from __future__ import annotations

import datetime as dt
import shutil
import tempfile
from importlib import resources
from pathlib import Path
from typing import Annotated

import typer
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    SpinnerColumn,
    TextColumn,
    TimeElapsedColumn,
)
from rich.table import Table

from eql.cli.common import (
    EXIT_REJECTS,
    EXIT_USAGE,
    DataDir,
    err,
    fail,
    guarded,
    open_store,
    out,
    user_errors,
)
from ingest.files import ImportReport, Kind, import_file
from storage import Store


def demo_schema_path() -> Path:
    return Path(str(resources.files("entities") / "examples" / "retail.yaml"))


def register(app: typer.Typer) -> None:
    app.command("init")(init)
    app.command("ingest")(ingest)
    app.command("demo")(demo)
    app.command("status")(status)


def init(
    data_dir: DataDir,
    schema: Annotated[Path, typer.Option("--schema", help="The schema file (YAML)")],
) -> None:
    """Create an empty store with a schema."""
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
    files: Annotated[list[Path], typer.Argument(help="CSV, Parquet or JSON-lines files")],
    data_dir: DataDir,
    entity: Annotated[str | None, typer.Option("--entity", help="Upsert into this entity")] = None,
    events: Annotated[
        str | None, typer.Option("--events", help="Append to this event stream")
    ] = None,
    fmt: Annotated[
        str | None, typer.Option("--format", help="csv, parquet or jsonl (default: by suffix)")
    ] = None,
    rejects: Annotated[
        Path | None,
        typer.Option("--rejects", help="Folder for reject files [default: DATA_DIR/rejects]"),
    ] = None,
    allow_extra_columns: Annotated[
        bool, typer.Option("--allow-extra-columns", help="Ignore columns the schema lacks")
    ] = False,
) -> None:
    """Import files into an entity (upsert by key) or an event stream (append).

    Each file is one atomic, idempotent import; bad rows go to a reject file.
    Exit 0: all rows imported; 1: some rows rejected; 2: a file could not be imported at all.
    """
    if (entity is None) == (events is None):
        fail("give exactly one of --entity NAME or --events NAME")
    kind: Kind = "entity" if entity is not None else "events"
    target = entity if entity is not None else events
    assert target is not None
    store = open_store(data_dir)
    try:
        reports = _import_all(
            store, [(kind, target, f) for f in files], rejects, allow_extra_columns, fmt
        )
    finally:
        store.close()
    _finish(reports, len(files))


def _import_all(
    store: Store,
    jobs: list[tuple[Kind, str, Path]],
    rejects: Path | None,
    allow_extra: bool,
    fmt: str | None,
) -> list[ImportReport | None]:
    reports: list[ImportReport | None] = []
    with Progress(
        SpinnerColumn(),
        TextColumn("{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err,
        transient=True,
        disable=not err.is_terminal,
    ) as bar:
        task = bar.add_task("importing", total=len(jobs))
        for kind, target, path in jobs:

            def step(stage: str, done: int, total: int, path: Path = path) -> None:
                rows = f" ({total:,} rows)" if total > 1 else ""
                bar.update(task, description=f"{path.name}: {stage}{rows}")

            report: ImportReport | None = None
            try:
                with user_errors():
                    report = import_file(
                        store,
                        kind,
                        target,
                        path,
                        rejects_dir=rejects,
                        allow_extra_columns=allow_extra,
                        fmt=fmt,
                        progress=step,
                    )
                    out.print(report.summary())
            except typer.Exit:
                pass  # the error is printed; go on with the next file, the exit code says it
            reports.append(report)
            bar.advance(task)
    return reports


def _finish(reports: list[ImportReport | None], n_files: int) -> None:
    failed = sum(1 for r in reports if r is None)
    rejected = sum(r.rows_rejected for r in reports if r is not None)
    imported = sum(r.rows_imported for r in reports if r is not None)
    out.print(
        f"{n_files - failed} of {n_files} files imported: {imported:,} rows, "
        f"{rejected:,} rejected" + (f"; {failed} files failed" if failed else "")
    )
    if failed:
        raise typer.Exit(EXIT_USAGE)
    if rejected:
        raise typer.Exit(EXIT_REJECTS)


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
    from ingest.demo import generate_demo_files

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
    try:
        err.print(f"generating the demo world for {users:,} users (seed {seed})...")
        files = generate_demo_files(files_dir, users=users, seed=seed, end=end_date)
        reports = _import_all(store, [(f.kind, f.target, f.path) for f in files], None, False, None)
        status_table(store)
        sample_queries(store, end_date)
    finally:
        store.close()
        if not keep_files:
            shutil.rmtree(files_dir, ignore_errors=True)
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
    from eql.cli.query_cmds import write
    from eql.engine import Engine

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
