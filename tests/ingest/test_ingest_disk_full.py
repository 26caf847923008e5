"""A full disk (ENOSPC) is the user's to fix, never "a bug in eql" (issue 10).

Real full disks, no mocks: a small tmpfs mounted for the test holds the store (root only; the
tests skip where mounting is not allowed), or a write goes to /dev/full (through a symlink in
the test's folder, so that code removing a failed output removes the link, not the device).
Through real `eql` processes: an import whose commit (RocksDB's WAL, or an event segment file)
or reject file hits a full disk exits 2 naming the file and saying the disk is full, stops the
files after it, and imports nothing of it (checked after growing the disk and reopening the
store, which must hold exactly what it held before and take the same file again); a store that
cannot even be opened, and query output to a full disk, exit 2 as well; real bugs stay at 70.
"""

from __future__ import annotations

import errno
import os
import shutil
import stat
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from eql.cli.common import EXIT_INTERNAL, EXIT_USAGE, internal_error
from ingest.files import file_digest
from storage import Store
from tests.helpers_store import ROOT, assert_no_orphans, new_store, rocks_rows, stream_rows

EQL = Path(sys.executable).parent / "eql"
TIMEOUT = 120.0
ROWS = 200_000  # far more than the small disk holds once stored (JSON rows, WAL, segments)
DISK = "4m"  # holds an empty store and a few rows, not ROWS of them
DEV_FULL = Path("/dev/full")


def eql(*args: str) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
    env.pop("EQL_DEBUG", None)
    return subprocess.run(
        [str(EQL), *args], cwd=ROOT, env=env, capture_output=True, text=True, timeout=TIMEOUT
    )


def assert_disk_full_error(proc: subprocess.CompletedProcess[str], file: Path | None) -> None:
    assert proc.returncode == EXIT_USAGE, proc.stdout + proc.stderr
    assert "internal error" not in proc.stderr and "Traceback" not in proc.stderr, proc.stderr
    prefix = f"error: {file}: " if file is not None else "error: "
    assert f"{prefix}the disk is full (" in proc.stderr, proc.stderr
    assert "hint: free some space" in proc.stderr, proc.stderr


class SmallDisk:
    """A tmpfs of a few MiB mounted at `path`; `grow` remounts it larger (data kept)."""

    def __init__(self, path: Path) -> None:
        self.path = path

    def mount(self) -> None:
        if os.geteuid() != 0 or shutil.which("mount") is None:
            pytest.skip("mounting a small tmpfs needs root and mount(8)")
        self.path.mkdir()
        proc = subprocess.run(
            ["mount", "-t", "tmpfs", "-o", f"size={DISK}", "tmpfs", str(self.path)],
            capture_output=True,
            text=True,
        )
        if proc.returncode != 0:
            pytest.skip(f"cannot mount a tmpfs here: {proc.stderr.strip()}")

    def grow(self) -> None:
        subprocess.run(
            ["mount", "-o", "remount,size=256m", str(self.path)], check=True, capture_output=True
        )

    def fill(self) -> None:
        """Take every free byte."""
        with (self.path / "filler").open("wb") as fh:
            try:
                while True:
                    fh.write(b"\0" * (64 << 10))
                    fh.flush()
            except OSError as exc:
                assert exc.errno == errno.ENOSPC

    def unmount(self) -> None:
        subprocess.run(["umount", "-l", str(self.path)], capture_output=True)


@pytest.fixture
def disk(tmp_path: Path) -> Iterator[SmallDisk]:
    small = SmallDisk(tmp_path / "small-disk")
    small.mount()
    try:
        yield small
    finally:
        small.unmount()


@pytest.fixture(scope="module")
def big_files(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """ROWS customers and ROWS orders, on the ordinary disk."""
    folder = tmp_path_factory.mktemp("big-files")
    rng = np.random.default_rng(10)
    ids = np.arange(1_000, 1_000 + ROWS)
    customers = pa.table({"id": ids, "name": np.char.add("customer number ", ids.astype(str))})
    ts = pa.array(np.full(ROWS, "2026-01-01T00:00:00Z"))
    orders = pa.table({"ts": ts, "customer_id": ids, "amount": rng.integers(1, 10_000, ROWS) / 100})
    paths = {"customers": folder / "customers.csv", "orders": folder / "orders.csv"}
    pacsv.write_csv(customers, paths["customers"])
    pacsv.write_csv(orders, paths["orders"])
    return paths


def small_file(folder: Path, name: str, text: str) -> Path:
    path = folder / name
    path.write_text(text, encoding="utf-8")
    return path


def store_state(data: Path) -> tuple[object, ...]:
    with Store.open(data) as store:  # writable: the open rolls back what a failed commit left
        assert_no_orphans(store)
        return (
            rocks_rows(store, "customers"),
            stream_rows(store, "orders"),
            store.imports(),
            store.version("customers"),
        )


@pytest.mark.parametrize("target", ["customers", "orders"])
def test_a_full_disk_during_a_commit_imports_nothing_and_stops(
    target: str, disk: SmallDisk, big_files: dict[str, Path], tmp_path: Path
) -> None:
    data = disk.path / "data"
    new_store(data).close()
    first = small_file(tmp_path, "first.csv", "id,name\n1,one\n")
    assert (
        eql("ingest", "--data-dir", str(data), "--entity", "customers", str(first)).returncode == 0
    )
    before = store_state(data)
    big = big_files[target]
    after = small_file(tmp_path, "after.csv", "id,name\n2,two\n")
    kind = "--entity" if target == "customers" else "--events"
    files = [str(big)] if target == "orders" else [str(big), str(after)]
    proc = eql("ingest", "--data-dir", str(data), kind, target, *files)
    assert_disk_full_error(proc, big)
    assert "nothing of the file was imported" in proc.stderr
    if target == "customers":  # the file after the full disk is not tried
        assert "1 not started: the disk is full" in proc.stdout
        assert f"importing {after}" not in proc.stderr
    disk.grow()
    assert store_state(data) == before
    with Store.open(data, read_only=True) as store:
        assert (
            store.ledger_get(file_digest(big, "entity" if kind == "--entity" else "events", target))
            is None
        )
    again = eql("ingest", "--data-dir", str(data), kind, target, str(big))
    assert again.returncode == 0, again.stderr
    with Store.open(data, read_only=True) as store:
        if target == "customers":
            assert store.count("customers") == 1 + ROWS
        else:
            assert store.event_count("orders") == ROWS


def test_a_store_on_a_full_disk_cannot_be_opened_for_writing(
    disk: SmallDisk, tmp_path: Path
) -> None:
    data = disk.path / "data"
    new_store(data).close()
    disk.fill()
    path = small_file(tmp_path, "one.csv", "id,name\n1,one\n")
    proc = eql("ingest", "--data-dir", str(data), "--entity", "customers", str(path))
    assert_disk_full_error(proc, None)
    (disk.path / "filler").unlink()
    assert store_state(data)[0] == {}


@pytest.fixture
def dev_full(tmp_path: Path) -> Path:
    """A link to /dev/full in the test's folder: every write through it fails with ENOSPC."""
    if not DEV_FULL.exists() or not stat.S_ISCHR(DEV_FULL.stat().st_mode):
        pytest.skip("/dev/full is not available")
    link = tmp_path / "full-link"
    link.symlink_to(DEV_FULL)
    return link


def test_a_full_disk_while_writing_the_reject_file_imports_nothing(
    dev_full: Path, tmp_path: Path
) -> None:
    data = tmp_path / "data"
    new_store(data).close()
    path = small_file(tmp_path, "dirty.csv", "id,name,visits\n1,one,1\n2,two,many\n")
    rejects = tmp_path / "rejects"
    rejects.mkdir()
    reject_file = (
        rejects / f"{path.name}.{file_digest(path, 'entity', 'customers')[:8]}.rejects.csv"
    )
    reject_file.symlink_to(dev_full)  # the reject file this import writes lands on a full disk
    before = store_state(data)
    proc = eql(
        "ingest",
        "--data-dir",
        str(data),
        "--entity",
        "customers",
        str(path),
        "--rejects",
        str(rejects),
    )
    assert_disk_full_error(proc, path)
    assert f"while writing the reject file {reject_file}" in proc.stderr
    assert "nothing of the file was imported" in proc.stderr
    assert store_state(data) == before
    assert DEV_FULL.exists() and stat.S_ISCHR(DEV_FULL.stat().st_mode)


@pytest.mark.parametrize("fmt", ["csv", "table", "ndjson"])
def test_query_output_to_a_full_disk_exits_2(fmt: str, dev_full: Path, tmp_path: Path) -> None:
    data = tmp_path / "data"
    new_store(data).close()
    path = small_file(tmp_path, "c.csv", "id,name\n1,one\n2,two\n")
    assert (
        eql("ingest", "--data-dir", str(data), "--entity", "customers", str(path)).returncode == 0
    )
    proc = eql(
        "query",
        "--data-dir",
        str(data),
        "--format",
        fmt,
        "--output",
        str(dev_full),
        "FIND customers RETURN id, name",
    )
    assert_disk_full_error(proc, None)
    assert DEV_FULL.exists() and stat.S_ISCHR(DEV_FULL.stat().st_mode)


def test_query_output_to_a_full_stdout_exits_2(tmp_path: Path) -> None:
    if not DEV_FULL.exists() or not stat.S_ISCHR(DEV_FULL.stat().st_mode):
        pytest.skip("/dev/full is not available")
    data = tmp_path / "data"
    new_store(data).close()
    env = dict(os.environ, NO_COLOR="1")
    env.pop("EQL_DEBUG", None)
    with DEV_FULL.open("wb") as full:
        proc = subprocess.run(
            [
                str(EQL),
                "query",
                "--data-dir",
                str(data),
                "--format",
                "csv",
                "FIND customers RETURN id",
            ],
            cwd=ROOT,
            env=env,
            stdout=full,
            stderr=subprocess.PIPE,
            text=True,
            timeout=TIMEOUT,
        )
    assert proc.returncode == EXIT_USAGE, proc.stderr
    assert "error: the disk is full (" in proc.stderr and "internal error" not in proc.stderr


def _exit_code(exc: BaseException, monkeypatch: pytest.MonkeyPatch) -> int:
    monkeypatch.delenv("EQL_DEBUG", raising=False)
    with pytest.raises(SystemExit) as info:
        internal_error(exc)
    return int(info.value.code or 0)


def _raised_while_handling(first: BaseException, second: BaseException) -> BaseException:
    try:
        try:
            raise first
        except BaseException:
            raise second  # noqa: B904 - the implicit context is what is being tested
    except BaseException as exc:
        return exc


def test_the_top_level_guard_tells_a_full_disk_from_a_bug(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    enospc = OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), "/data/out.csv")
    rocks = Exception("IO error: No space left on device: While appending to file: 000012.log")
    assert _exit_code(enospc, monkeypatch) == EXIT_USAGE
    assert "the disk is full (No space left on device: /data/out.csv)" in capsys.readouterr().err
    assert _exit_code(rocks, monkeypatch) == EXIT_USAGE
    later = _raised_while_handling(rocks, Exception("IO error: Writer has previous error."))
    assert _exit_code(later, monkeypatch) == EXIT_USAGE
    assert _exit_code(RuntimeError("a real bug"), monkeypatch) == EXIT_INTERNAL
    assert _exit_code(OSError(errno.EACCES, "Permission denied"), monkeypatch) == EXIT_INTERNAL
    assert "this is a bug in eql" in capsys.readouterr().err


def test_brackets_in_a_file_name_are_printed_as_they_are(tmp_path: Path) -> None:
    """File names reach rich's console: `[red]` must not vanish, `[/]` must not crash."""
    data = tmp_path / "data"
    new_store(data).close()
    folder = tmp_path / "odd["
    folder.mkdir()
    for name in ("x[red]y.csv", "]z.csv"):  # the second makes the path `odd[/]z.csv`
        path = small_file(folder, name, "id,nmae\n1,a\n")
        proc = eql("ingest", "--data-dir", str(data), "--entity", "customers", str(path))
        assert proc.returncode == EXIT_USAGE, proc.stderr
        assert f"error: {path}: unknown column 'nmae' for customers" in proc.stderr, proc.stderr
