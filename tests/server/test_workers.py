"""`eql serve --workers 2` (issue 13): one port answered by two processes, the writer and a reader
that follows it; writes made through either land once in the writer; reads made through either
see them; a reader that dies is started again; at a stop, and when the writer is killed, no
reader is left. A real `eql serve` on a small demo store, real connections (each request on a
fresh connection, so the kernel's SO_REUSEPORT spreading picks a process anew). Every wait is on
a condition with a deadline."""

from __future__ import annotations

import os
import signal
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.test_served_cli import DEADLINE, EQL, _record, _store, wait_for

CONNECTIONS = 40  # fresh connections: all on one process of two has odds 2**-39


def _readers_of(pid: int) -> list[int]:
    """The reader workers whose parent is `pid`."""
    found = []
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes().split(b"\0")
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        ppid = int(stat.rsplit(")", 1)[1].split()[1])
        if b"server.workers" in cmdline and ppid == pid:
            found.append(int(entry))
    return found


def _ended(pid: int) -> bool:
    """Exited: no such process, or a zombie nobody has reaped yet."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True
    return stat.rsplit(")", 1)[1].split()[0] == "Z"


class Workers:
    def __init__(self, data_dir: Path, log: Path) -> None:
        self.data_dir = data_dir
        with log.open("wb") as fh:
            self.proc = subprocess.Popen(
                [*EQL, "serve", "--data-dir", str(data_dir), "--port", "0", "--workers", "2"],
                stdout=subprocess.DEVNULL,
                stderr=fh,
            )

        def announced() -> dict[str, Any] | None:
            if self.proc.poll() is not None:
                raise AssertionError(f"eql serve exited {self.proc.returncode}: {log.read_text()}")
            record = _record(data_dir)
            return record if record is not None and record["pid"] == self.proc.pid else None

        self.record = wait_for("server.json", announced)
        self.url = str(self.record["url"])
        self.headers = {"Authorization": f"Bearer {self.record['key']}"}
        wait_for("a reader worker", lambda: _readers_of(self.proc.pid))
        wait_for("the reader answering", lambda: "reader" in self.who(CONNECTIONS))

    def request(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        """One request on a fresh connection."""
        with httpx.Client(trust_env=False, timeout=DEADLINE) as client:
            return client.request(method, self.url + path, headers=self.headers, **kwargs)

    def who(self, n: int) -> set[str]:
        """Which processes answered `n` fresh connections ("reader", "writer")."""
        seen = set()
        for _ in range(n):
            try:
                response = self.request("GET", "/v1/health")
            except httpx.TransportError:  # a reader still binding: not an answer
                continue
            seen.add(response.headers.get("x-eql-worker", "writer"))
        return seen

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=DEADLINE)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Workers]:
    root = tmp_path_factory.mktemp("workers")
    workers = Workers(_store(root), root / "serve.log")
    yield workers
    workers.stop()


def test_both_processes_answer_on_one_port(served: Workers) -> None:
    assert served.who(CONNECTIONS) == {"reader", "writer"}
    seen = set()  # lookups too (the raw lookup path answers before the app's middleware)
    for _ in range(CONNECTIONS):
        response = served.request("GET", "/v1/entities/users/1")
        assert response.status_code == 200, response.text
        seen.add(response.headers.get("x-eql-worker", "writer"))
    assert seen == {"reader", "writer"}


def test_writes_through_any_worker_land_once_and_every_worker_reads_them(served: Workers) -> None:
    names = [f"workers_{i}" for i in range(8)]
    for i, name in enumerate(names):
        define = served.request(
            "POST",
            "/v1/query",
            json={"query": f"DEFINE SEGMENT {name} ON users WHERE id = {i + 1}"},
        )
        assert define.status_code == 200, define.text
        refresh = served.request("POST", f"/v1/segments/{name}/refresh", json={})
        assert refresh.status_code == 200, refresh.text
    again = served.request(
        "POST", "/v1/query", json={"query": f"DEFINE SEGMENT {names[0]} ON users WHERE id = 1"}
    )
    assert again.status_code == 200, again.text
    # its second definition: the first DEFINE landed once, whichever process forwarded it
    assert again.json()["rows"][0]["definition"] == 2

    def everyone_sees_them() -> bool:
        for _ in range(CONNECTIONS // 2):
            listing = served.request("GET", "/v1/segments")
            listed = {s["name"] for s in listing.json()["items"]}
            if not set(names) <= listed:
                return False
            member = served.request("GET", f"/v1/segments/{names[2]}/members/3")
            if member.status_code != 200 or member.json()["member"] is not True:
                return False
        return True

    wait_for("every worker to list and look up the new segments", everyone_sees_them)
    answered_by = set()
    for _ in range(CONNECTIONS // 2):  # a query read by a reader from the body it read first
        rows = served.request(
            "POST", "/v1/query", json={"query": "FIND users WHERE IN SEGMENT workers_4 RETURN id"}
        )
        assert rows.status_code == 200, rows.text
        assert [r["id"] for r in rows.json()["rows"]] == [5]
        answered_by.add(rows.headers.get("x-eql-worker", "writer"))
    assert answered_by == {"reader", "writer"}


def test_a_dead_reader_is_started_again(served: Workers) -> None:
    (first,) = _readers_of(served.proc.pid)
    os.kill(first, signal.SIGKILL)
    wait_for("another reader", lambda: [p for p in _readers_of(served.proc.pid) if p != first])
    wait_for("the new reader answering", lambda: "reader" in served.who(CONNECTIONS))


def test_no_reader_outlives_its_writer(tmp_path: Path) -> None:
    workers = Workers(_store(tmp_path), tmp_path / "serve.log")
    readers = _readers_of(workers.proc.pid)
    workers.stop(signal.SIGKILL)

    def gone() -> bool:
        return all(_ended(pid) for pid in readers)

    wait_for("the orphaned reader to stop", gone)
