"""The import loop behind `eql ingest` and `eql demo`: one atomic, idempotent import per file,
progress on the terminal, Ctrl-C and a full disk handled without tracebacks.

A full disk stops the loop at the file it happened in (nothing of that file is imported; the files
after it are not started) and exits 2; a store that then cannot be closed cleanly is reported, not a
traceback: what was committed before is kept. Imported by the commands when they run (it pulls in
the readers and the store), never by `eql --help`.

While `eql serve` holds the store, `import_through` is the loop: each file is streamed to the
server's ingest route and its answer said as a local import says it (the same summary line and
exit codes; the first problems of a file with rejects on stderr; the reject file is the server's,
under DATA/rejects).

May import entities, ingest, storage and eql.cli.
"""

from __future__ import annotations

import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType, TracebackType
from typing import TYPE_CHECKING, Any, NoReturn

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

from eql.cli.common import (
    DISK_FULL_HINT,
    EXIT_REJECTS,
    EXIT_USAGE,
    err,
    out,
    say_error,
    user_errors,
)
from ingest.files import ImportReport, Kind, file_digest, import_file
from ingest.problems import disk_full_reason, is_disk_full
from ingest.readers import DiskFullError, FileError, detect_format
from storage import Store

if TYPE_CHECKING:
    from eql.cli.served import Http, Served


def close_store(store: Store, disk_full: bool) -> str | None:
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
    stopped: str = "the disk is full"  # why the files after the last one were not started


def import_all(
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
                    report = import_one(store, kind, target, path, rejects, allow_extra, fmt, step)
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
                committed_anyway(store, jobs[len(result.reports)], result)
            ctrl_c.held, ctrl_c.pending = None, False
    return result


def committed_anyway(store: Store, job: tuple[Kind, str, Path], result: Imports) -> None:
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


def import_one(
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


def report_interrupt(
    jobs: list[tuple[Kind, str, Path]],
    result: Imports,
    hint: str = RERUN_HINT,
    current: str = "nothing of it was imported",
) -> NoReturn:
    """Say which files were imported and which were not (`current`: what is known of the one
    that was under way), then exit 130."""
    done = result.reports
    imported = [str(p) for (_, _, p), r in zip(jobs, done, strict=False) if r is not None]
    failed = [str(p) for (_, _, p), r in zip(jobs, done, strict=False) if r is None]
    rest = [str(p) for _, _, p in jobs[len(done) :]]
    if result.started > len(done):
        where = f"while importing {jobs[len(done)][2]}; {current}"
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


# ---- through the server that holds the store ------------------------------------------------
def import_through(
    served: Served,
    jobs: list[tuple[Kind, str, Path]],
    rejects: Path | None,
    allow_extra: bool,
    fmt: str | None,
) -> Imports:
    """The import loop while `eql serve` holds the store: each file streamed to the server's
    ingest route (`eql.cli.served.post_file`), its answer said as a local import says it (the
    summary; the first problems on stderr), a failed file not stopping the others, a full disk
    or Ctrl-C stopping the loop. The server writes reject files under its DATA/rejects."""
    from eql.cli.served import ServerError, client

    if rejects is not None:
        err.print(
            f"note: --rejects is not used through the server; reject files go to "
            f"{served.data_dir / 'rejects'}",
            markup=False,
            highlight=False,
        )
    result = Imports()
    with CtrlC() as ctrl_c, client(served) as http:
        try:
            for n, (kind, target, path) in enumerate(jobs, start=1):
                with ctrl_c.deferred():
                    err.print(f"importing {path} ({n} of {len(jobs)})", markup=False)
                result.started = n
                try:
                    report = send_one(http, served, kind, target, path, allow_extra, fmt)
                except _DiskFull:
                    result.reports.append(None)
                    result.disk_full = True
                    break
                except ServerError as exc:  # the server itself refuses: so it would the rest
                    say_error(exc.message, exc.hint)
                    result.reports.append(None)
                    result.stopped = "the server did not take them"
                    break
                result.reports.append(report)
                if report is not None:
                    with ctrl_c.deferred():
                        out.print(report.summary())
        except KeyboardInterrupt:
            result.interrupted = True
        if result.interrupted:
            with ctrl_c.deferred():  # a second Ctrl-C waits for the report
                report_interrupt(
                    jobs,
                    result,
                    current="the server finishes it if it had it whole (run the command "
                    "again: a file imported is skipped)",
                )
    return result


def send_one(
    http: Http,
    served: Served,
    kind: Kind,
    target: str,
    path: Path,
    allow_extra: bool,
    fmt: str | None,
) -> ImportReport | None:
    """One file through the server; None if it could not be imported (the error is said).
    Raises _DiskFull (after saying it) when the server's disk is full, ServerError when the
    server cannot be reached or refuses the key."""
    from entities.names import shown
    from eql.cli.served import error_items, post_file, refused

    try:
        chosen = _format_for_server(path, fmt)
        response = post_file(http, served, kind, target, path, chosen, allow_extra)
    except FileError as exc:
        say_error(f"{exc.file}: {exc.message}", exc.hint)
        return None
    except OSError as exc:
        say_error(f"{path}: cannot read the file: {exc.strerror or exc}", "")
        return None
    status = response.status_code
    if status == 200:
        return _report(served, path, kind, target, response.json())
    item = error_items(response)[0]
    code = str(item.get("code", ""))
    if status == 400 and code in ("all_rejected", "no_rows"):  # a local import reports these
        return _report(served, path, kind, target, item)
    if status == 404 and code not in ("unknown_entity", "unknown_stream"):  # no such route:
        noun = "entity" if kind == "entity" else "event stream"  # a name with a slash, say
        say_error(
            f"{path}: no {noun} named {shown(target)} in the schema",
            f"`eql schema show --data-dir {served.data_dir}` lists them",
        )
        return None
    if status in (400, 404, 413, 415):
        say_error(f"{path}: {item.get('message', '')}", str(item.get("hint") or ""))
        return None
    if status == 507:
        say_error(f"{path}: {item.get('message', '')}", str(item.get("hint") or DISK_FULL_HINT))
        raise _DiskFull
    raise refused(served, response)


def _format_for_server(path: Path, fmt: str | None) -> str:
    """The file's format as a local import reads it (`--format`, else the suffix); FileError
    for a file the server would read otherwise (a .tsv: it reads CSV with commas)."""
    chosen = detect_format(path, fmt)
    if path.suffix.lower() == ".tsv":
        raise FileError(
            str(path),
            "a .tsv file cannot be sent to the server (it reads CSV with commas)",
            "convert it to CSV, or stop the server and import it locally",
        )
    if not path.exists():
        raise FileError(str(path), "file not found")
    if path.is_dir():
        raise FileError(str(path), "is a directory, not a file", "name the files inside it")
    return chosen


def _report(
    served: Served, path: Path, kind: Kind, target: str, summary: dict[str, Any]
) -> ImportReport:
    """The server's summary of one import as the report a local import gives; its problems
    (the first ones) said on stderr."""
    reject = summary.get("reject_file")
    report = ImportReport(
        str(path),
        kind,
        target,
        str(summary.get("digest", "")),
        int(summary.get("rows_read", 0)),
        int(summary.get("rows_imported", 0)),
        int(summary.get("rows_rejected", 0)),
        bool(summary.get("already_imported", False)),
        None if not reject else served.data_dir / str(reject),
        tuple(str(c) for c in summary.get("missing_columns") or ()),
        float(summary.get("seconds", 0.0)),
    )
    problems = summary.get("problems") or []
    for p in problems:
        err.print(
            f"  row {p.get('row')}, column {p.get('column')}: {p.get('value')!r}: "
            f"{p.get('reason')}",
            markup=False,
            highlight=False,
        )
    more = int(summary.get("problems_total", len(problems))) - len(problems)
    if more > 0:
        err.print(f"  ... {more:,} more in {report.reject_file}", markup=False, highlight=False)
    return report


def finish(result: Imports, n_files: int) -> None:
    reports = result.reports
    failed = sum(1 for r in reports if r is None)
    rejected = sum(r.rows_rejected for r in reports if r is not None)
    imported = sum(r.rows_imported for r in reports if r is not None)
    not_started = n_files - len(reports)
    out.print(
        f"{len(reports) - failed} of {n_files} files imported: {imported:,} rows, "
        f"{rejected:,} rejected"
        + (f"; {failed} files failed" if failed else "")
        + (f"; {not_started} not started: {result.stopped}" if not_started else "")
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
