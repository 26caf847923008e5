"""Ctrl-C (SIGINT) during a multi-file `eql ingest` stops the whole command with exit code 130.

A real `eql` process imports several generated entity files (each commit takes a second or more);
the test sends SIGINT once the process announces the file it is starting on stderr ("importing
PATH (n of N)", the line printed per file when stderr is not a terminal), or once RocksDB starts
writing a file's batch to its WAL. Then: the interrupted file commits nothing (or, when the signal
arrived during the store's write, is reported as imported because it is), files not started are
not imported, files before stay imported, the message names them, and the same command run again
imports the rest (the ledger skips the done ones).
"""

from __future__ import annotations

import os
import queue
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.csv as pacsv
import pytest

from ingest.files import file_digest
from storage import Store
from tests.helpers_store import ROOT, new_store

ROWS = 150_000  # per file: its commit (JSON rows, dense ids, one synced batch) takes a while
FILES = 3
TIMEOUT = 120.0  # seconds, for any one wait on the child
EQL = Path(sys.executable).parent / "eql"


@pytest.fixture(scope="module")
def files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    """Customer files with disjoint keys, so each file adds ROWS customers."""
    folder = tmp_path_factory.mktemp("interrupt-files")
    paths = []
    for i in range(FILES):
        rng = np.random.default_rng(i)
        ids = np.arange(i * ROWS, (i + 1) * ROWS)
        table = pa.table(
            {
                "id": pa.array(ids),
                "name": pa.array(np.char.add("name-", ids.astype(str))),
                "balance": pa.array(np.char.add(rng.integers(0, 10**6, ROWS).astype(str), ".25")),
                "visits": pa.array(rng.integers(0, 1000, ROWS)),
            }
        )
        path = folder / f"customers-{i}.csv"
        pacsv.write_csv(table, path)
        paths.append(path)
    return paths


class Ingest:
    """`eql ingest --entity customers FILES...` in a subprocess, its stderr read line by line."""

    def __init__(self, data: Path, files: list[Path]) -> None:
        env = dict(os.environ, NO_COLOR="1", COLUMNS="200")
        env.pop("EQL_DATA_DIR", None)
        self.proc = subprocess.Popen(
            [str(EQL), "ingest", "--data-dir", str(data), "--entity", "customers"]
            + [str(f) for f in files],
            cwd=ROOT,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
            # SIGINT may be ignored where the tests run (a background job): give the child the
            # default disposition, so that Python turns SIGINT into KeyboardInterrupt
            preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
        )
        self.err_lines: queue.Queue[str] = queue.Queue()
        self.stderr: list[str] = []
        self.stdout = ""
        self._readers = [
            threading.Thread(target=self._read_err, daemon=True),
            threading.Thread(target=self._read_out, daemon=True),
        ]
        for t in self._readers:
            t.start()

    def _read_err(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.stderr.append(line)
            self.err_lines.put(line)

    def _read_out(self) -> None:
        assert self.proc.stdout is not None
        self.stdout = self.proc.stdout.read()

    def wait_for_line(self, text: str) -> None:
        end = time.monotonic() + TIMEOUT
        while True:
            left = end - time.monotonic()
            if left <= 0 or (self.proc.poll() is not None and self.err_lines.empty()):
                self.kill()
                pytest.fail(f"no stderr line {text!r}; stderr: {''.join(self.stderr)}")
            try:
                line = self.err_lines.get(timeout=min(left, 0.5))
            except queue.Empty:
                continue
            if text in line:
                return

    def interrupt(self) -> None:
        assert self.proc.poll() is None, "the import ended before the signal"
        self.proc.send_signal(signal.SIGINT)

    def finish(self) -> int:
        try:
            code = self.proc.wait(timeout=TIMEOUT)
        except subprocess.TimeoutExpired:
            self.kill()
            pytest.fail("eql ingest did not stop after SIGINT")
        for t in self._readers:
            t.join(timeout=30)
        return code

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=30)

    @property
    def output(self) -> str:
        return self.stdout + "".join(self.stderr)


def run(data: Path, files: list[Path]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(EQL), "ingest", "--data-dir", str(data), "--entity", "customers"]
        + [str(f) for f in files],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=TIMEOUT,
    )


def imported(data: Path, files: list[Path]) -> tuple[list[bool], int]:
    """Which files the store's ledger holds, and how many customers it has."""
    with Store.open(data, read_only=True) as store:
        done = [store.ledger_get(file_digest(f, "entity", "customers")) is not None for f in files]
        return done, store.count("customers")


def fresh_store(tmp_path: Path) -> Path:
    data = tmp_path / "data"
    new_store(data).close()
    return data


def assert_message(child: Ingest, files: list[Path], done: int) -> None:
    """The closing message lists the files imported and those not."""
    err = "".join(child.stderr)
    assert "Traceback" not in child.output and "internal error" not in child.output, child.output
    listed_done = ", ".join(str(f) for f in files[:done]) or "none"
    assert f"  imported: {listed_done}\n" in err, err
    assert f"  not imported: {', '.join(str(f) for f in files[done:])}\n" in err, err
    assert f"interrupted: {done} of {len(files)} files imported" in child.stdout, child.stdout


def test_ctrl_c_in_the_second_file_stops_the_command(files: list[Path], tmp_path: Path) -> None:
    data = fresh_store(tmp_path)
    child = Ingest(data, files)
    child.wait_for_line(f"importing {files[1]} (2 of {FILES})")
    child.interrupt()
    assert child.finish() == 130, child.output
    assert f"interrupted while importing {files[1]}; nothing of it was imported" in "".join(
        child.stderr
    ), child.output
    assert_message(child, files, done=1)
    assert f"importing {files[2]}" not in child.output  # never started
    assert imported(data, files) == ([True, False, False], ROWS)

    again = run(data, files)  # the same command imports the rest
    assert again.returncode == 0, again.stdout + again.stderr
    assert f"{files[0]}: already imported into customers; nothing added" in again.stdout
    assert f"{FILES} of {FILES} files imported: {2 * ROWS:,} rows" in again.stdout
    assert imported(data, files) == ([True] * FILES, FILES * ROWS)


def test_ctrl_c_in_the_first_file_imports_nothing(files: list[Path], tmp_path: Path) -> None:
    data = fresh_store(tmp_path)
    child = Ingest(data, files[:2])
    child.wait_for_line(f"importing {files[0]} (1 of 2)")
    child.interrupt()
    assert child.finish() == 130, child.output
    assert_message(child, files[:2], done=0)
    assert imported(data, files[:2]) == ([False, False], 0)
    with Store.open(data, read_only=True) as store:
        assert store.imports() == [] and store.id_count("customers") == 0


def wal_bytes(data: Path) -> dict[str, int]:
    return {p.name: p.stat().st_size for p in (data / "rocks").glob("*.log")}


def wait_for_wal_write(child: Ingest, data: Path, since: dict[str, int]) -> None:
    """Until RocksDB writes a batch to its WAL (64 KiB of it): a file's commit point."""
    end = time.monotonic() + TIMEOUT
    while time.monotonic() < end and child.proc.poll() is None:
        try:
            now = wal_bytes(data)
        except FileNotFoundError:  # a log file went away under the glob
            continue
        if any(size > since.get(name, 0) + (1 << 16) for name, size in now.items()):
            return
        time.sleep(0.0005)
    child.kill()
    pytest.fail(f"no WAL write seen; stderr: {''.join(child.stderr)}")


def test_ctrl_c_during_the_write_of_a_commit(files: list[Path], tmp_path: Path) -> None:
    """A SIGINT that arrives while the store writes the batch takes effect after the write (it is
    one call into RocksDB): that file is committed, and the command says so and stops there."""
    data = fresh_store(tmp_path)
    child = Ingest(data, files)
    child.wait_for_line(f"importing {files[1]} (2 of {FILES})")  # the first is committed
    wait_for_wal_write(child, data, wal_bytes(data))
    child.interrupt()
    assert child.finish() == 130, child.output
    assert f"{files[1]}: committed before the interrupt took effect" in child.stdout, child.output
    assert f"interrupted after {files[1]}" in "".join(child.stderr), child.output
    assert_message(child, files, done=2)
    assert imported(data, files) == ([True, True, False], 2 * ROWS)
