"""`eql init`, `eql ingest`, `eql demo` and `eql status`: getting data into a store.

A full disk stops an import loop at the file it happened in (nothing of that file is imported;
the files after it are not started) and exits 2; a store that then cannot be closed cleanly is
reported, not a traceback: what was committed before is kept.
"""

from __future__ import annotations

import datetime as dt
import shutil
import signal
import tempfile
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from types import FrameType, TracebackType
from typing import Annotated, NoReturn

import typer
from rich.markup import escape
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
    DISK_FULL_HINT,
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
from ingest.files import ImportReport, Kind, file_digest, import_file
from ingest.problems import disk_full_reason, is_disk_full
from ingest.readers import DiskFullError, FileError
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
    Exit 0: all rows imported; 1: some rows rejected; 2: a file could not be imported at all
    (a full disk also stops the files after it); 130: interrupted (Ctrl-C): the files before
    were imported, the current one and the rest not.
    """
    if (entity is None) == (events is None):
        fail("give exactly one of --entity NAME or --events NAME")
    kind: Kind = "entity" if entity is not None else "events"
    target = entity if entity is not None else events
    assert target is not None
    jobs: list[tuple[Kind, str, Path]] = [(kind, target, f) for f in files]
    store = open_store(data_dir)
    result = Imports()
    with CtrlC() as ctrl_c:
        try:
            result = _import_all(store, jobs, rejects, allow_extra_columns, fmt, ctrl_c)
        finally:
            ctrl_c.held = "closing the store"  # a Ctrl-C now waits for it to be closed
            result.unclosed = _close(store, result.disk_full)
        if ctrl_c.pending and not result.interrupted:  # pressed while the store closed
            result.interrupted = True
        if result.interrupted:
            with ctrl_c.deferred():
                _report_interrupt(jobs, result)
    _finish(result, len(files))


def _close(store: Store, disk_full: bool) -> str | None:
    """Close the store; None, or why it could not be closed cleanly when the disk is full
    (RocksDB refuses to flush after a failed write). What was committed is kept either way."""
    try:
        store.close()
    except Exception as exc:
        if not (disk_full or is_disk_full(exc)):
            raise
        return disk_full_reason(exc) if is_disk_full(exc) else str(exc)
    return None


EXIT_INTERRUPTED = 130  # the shell's convention for a command ended by SIGINT
RERUN_HINT = "run the same command again to import the rest; files already imported are skipped"


class CtrlC:
    """SIGINT during an import loop raises KeyboardInterrupt at once: the current file's import
    is abandoned and, as after a crash, nothing of it is committed unless the store's commit
    point had passed (the ledger then says so). While `held` (a ledger check, closing the store)
    it is only noted in `pending`, so that a second Ctrl-C cannot turn a clean stop into a
    traceback. Installed only in the main thread, and not where SIGINT is ignored (nohup)."""

    def __init__(self) -> None:
        self.held: str | None = None  # what a Ctrl-C waits for: "closing the store"
        self.pending = False
        self._previous: signal.Handlers | object | None = None

    def __enter__(self) -> CtrlC:
        if threading.current_thread() is threading.main_thread():
            previous = signal.getsignal(signal.SIGINT)
            if previous is not signal.SIG_IGN:
                self._previous = signal.signal(signal.SIGINT, self._on_signal)
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        if self._previous is not None:
            signal.signal(signal.SIGINT, self._previous)  # type: ignore[arg-type]
            self._previous = None

    def _on_signal(self, signum: int, frame: FrameType | None) -> None:
        if self.held is None:
            raise KeyboardInterrupt
        if self.held and not self.pending:
            err.print(f"interrupted: finishing {self.held}, then stopping")
        self.pending = True

    @contextmanager
    def deferred(self) -> Iterator[None]:
        """Hold Ctrl-C over a few lines (output: rich repeats a line it was cut off in) and
        raise it after them."""
        outer = self.held
        self.held = "" if outer is None else outer
        try:
            yield
        finally:
            self.held = outer
        if outer is None and self.pending:
            self.pending = False
            raise KeyboardInterrupt


class _Interrupted(Exception):
    """KeyboardInterrupt inside an import, carried past `user_errors` (which would end it)."""


class _DiskFull(Exception):
    """An import failed because the disk is full (the error is printed): stop the loop."""


@dataclass
class Imports:
    """The outcome of an import loop: a report per file finished (None: it failed), in order;
    how many files were started (one more than reported: Ctrl-C stopped an import), whether
    Ctrl-C or a full disk stopped the loop, and why the store could not be closed, if so."""

    reports: list[ImportReport | None] = field(default_factory=list)
    started: int = 0
    interrupted: bool = False
    disk_full: bool = False
    unclosed: str | None = None


def _import_all(
    store: Store,
    jobs: list[tuple[Kind, str, Path]],
    rejects: Path | None,
    allow_extra: bool,
    fmt: str | None,
    ctrl_c: CtrlC,
) -> Imports:
    """Import the files in order; a failed file does not stop the others, Ctrl-C does."""
    result = Imports()
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
        try:
            for n, (kind, target, path) in enumerate(jobs, start=1):

                def step(stage: str, done: int, total: int, path: Path = path, n: int = n) -> None:
                    if stage == "read" and bar.disable:  # no progress bar: a line per file
                        with ctrl_c.deferred():
                            err.print(f"importing {path} ({n} of {len(jobs)})", markup=False)
                    rows = f" ({total:,} rows)" if total > 1 else ""
                    bar.update(task, description=f"{path.name}: {stage}{rows}")

                result.started = n
                try:
                    report = _import_one(store, kind, target, path, rejects, allow_extra, fmt, step)
                except _DiskFull:
                    result.reports.append(None)
                    result.disk_full = True
                    break
                result.reports.append(report)
                if report is not None:
                    with ctrl_c.deferred():
                        out.print(report.summary())
                bar.advance(task)
        except (KeyboardInterrupt, _Interrupted):
            ctrl_c.held = "checking what was committed"
            result.interrupted = True
            if result.started > len(result.reports):
                _committed_anyway(store, jobs[len(result.reports)], result)
            ctrl_c.held, ctrl_c.pending = None, False
    return result


def _committed_anyway(store: Store, job: tuple[Kind, str, Path], result: Imports) -> None:
    """Ctrl-C stopped an import: if the store's commit point had passed (the signal arrived
    during or just after the commit), the ledger holds the file; count it as imported."""
    kind, target, path = job
    try:
        digest = file_digest(path, kind, target)
    except OSError:
        return
    done = store.ledger_get(digest)
    if done is None:
        return
    report = ImportReport(
        str(path),
        kind,
        target,
        digest,
        int(done.get("rows_read", 0)),
        int(done.get("rows_imported", 0)),
        int(done.get("rows_rejected", 0)),
        False,
        None,
        (),
        0.0,
    )
    result.reports.append(report)
    out.print(f"{path}: committed before the interrupt took effect ({report.rows_imported:,} rows)")


def _import_one(
    store: Store,
    kind: Kind,
    target: str,
    path: Path,
    rejects: Path | None,
    allow_extra: bool,
    fmt: str | None,
    step: Callable[[str, int, int], None],
) -> ImportReport | None:
    """One file's import; None if it could not be imported (the error is printed). Raises
    _DiskFull (after printing) when the disk is full: the files after it would fail too."""
    disk_full = False
    try:
        with user_errors():
            try:
                return import_file(
                    store,
                    kind,
                    target,
                    path,
                    rejects_dir=rejects,
                    allow_extra_columns=allow_extra,
                    fmt=fmt,
                    progress=step,
                )
            except KeyboardInterrupt:
                raise _Interrupted from None
            except DiskFullError:
                disk_full = True
                raise
            except FileError:
                raise
            except Exception as exc:
                if not is_disk_full(exc):
                    raise
                disk_full = True  # from below import_file's own checks: name the file
                reason = f"the disk is full ({disk_full_reason(exc)})"
                raise DiskFullError(str(path), reason, DISK_FULL_HINT) from exc
    except typer.Exit:
        if disk_full:
            raise _DiskFull from None
        return None  # the error is printed; the exit code will say it


def _report_interrupt(
    jobs: list[tuple[Kind, str, Path]],
    result: Imports,
    hint: str = RERUN_HINT,
) -> NoReturn:
    """Say which files were imported and which were not, then exit 130."""
    done = result.reports
    imported = [str(p) for (_, _, p), r in zip(jobs, done, strict=False) if r is not None]
    failed = [str(p) for (_, _, p), r in zip(jobs, done, strict=False) if r is None]
    rest = [str(p) for _, _, p in jobs[len(done) :]]
    if result.started > len(done):
        where = f"while importing {jobs[len(done)][2]}; nothing of it was imported"
    else:
        where = f"after {jobs[len(done) - 1][2]}" if done else "before the first file"
    rows = sum(r.rows_imported for r in done if r is not None)
    out.print(
        f"interrupted: {len(imported)} of {len(jobs)} files imported ({rows:,} rows)"
        + (f", {len(failed)} failed" if failed else "")
        + f", {len(rest)} not imported"
    )
    err.print(f"[bold red]interrupted[/] {escape(where)}", markup=True, highlight=False)
    err.print(f"  imported: {', '.join(imported) or 'none'}", markup=False, highlight=False)
    if failed:
        err.print(f"  failed: {', '.join(failed)}", markup=False, highlight=False)
    err.print(f"  not imported: {', '.join(rest) or 'none'}", markup=False, highlight=False)
    if rest:
        err.print(f"  [cyan]hint:[/] {escape(hint)}", markup=True, highlight=False)
    raise typer.Exit(EXIT_INTERRUPTED)


def _finish(result: Imports, n_files: int) -> None:
    reports = result.reports
    failed = sum(1 for r in reports if r is None)
    rejected = sum(r.rows_rejected for r in reports if r is not None)
    imported = sum(r.rows_imported for r in reports if r is not None)
    not_started = n_files - len(reports)
    out.print(
        f"{len(reports) - failed} of {n_files} files imported: {imported:,} rows, "
        f"{rejected:,} rejected"
        + (f"; {failed} files failed" if failed else "")
        + (f"; {not_started} not started: the disk is full" if not_started else "")
    )
    if result.unclosed is not None:
        err.print(
            "[bold red]error:[/] the store could not be closed cleanly after the disk filled "
            f"up ({escape(result.unclosed)})",
            markup=True,
            highlight=False,
        )
        err.print(
            "  [cyan]hint:[/] what was committed is kept (the store reopens to its last "
            "commit); free some space, then run the command again",
            markup=True,
            highlight=False,
        )
    if failed or result.unclosed is not None:
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
    jobs: list[tuple[Kind, str, Path]] = []
    result = Imports()
    try:
        err.print(f"generating the demo world for {users:,} users (seed {seed})...")
        files = generate_demo_files(files_dir, users=users, seed=seed, end=end_date)
        jobs = [(f.kind, f.target, f.path) for f in files]
        with CtrlC() as ctrl_c:
            result = _import_all(store, jobs, None, False, None, ctrl_c)
        if not result.interrupted and not result.disk_full:
            status_table(store)
            sample_queries(store, end_date)
    finally:
        result.unclosed = _close(store, result.disk_full)
        if not keep_files:
            shutil.rmtree(files_dir, ignore_errors=True)
    if result.interrupted:
        _report_interrupt(jobs, result, "run `eql demo --force` to build the demo store again")
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
    from eql.cli.query_cmds import write
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
