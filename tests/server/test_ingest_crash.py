"""`kill -9` of a real `eql serve` during a large HTTP import (issue 13): after a restart the
import is wholly there or wholly absent, no saved body is left behind, and posting the same body
again imports it exactly once.

The server is a subprocess running this tree (PYTHONPATH); the client's body is a generator the
test controls, so "mid-upload" is a point the test chooses (the generator waits at a gate), not a
moment on a clock; "mid-import" is once the whole body is saved (the saved file has every byte).
Every wait is on a condition with a bounded deadline.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import pytest

from runtime import live
from server.keys import KeyFile
from storage import Store
from tests.helpers_store import ALL_TYPES_SCHEMA
from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[2]
EQL = Path(sys.executable).parent / "eql"
WAIT = 60.0
ROWS = 100_000
CSV = {"content-type": "text/csv"}


def wait_for(condition: Callable[[], bool], what: str, seconds: float = WAIT) -> None:
    deadline = time.monotonic() + seconds
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.01)


class Server:
    def __init__(self, data: Path) -> None:
        self.data = data
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        env = dict(os.environ, PYTHONPATH=str(ROOT), NO_COLOR="1")
        env.pop("EQL_DATA_DIR", None)
        self.proc = subprocess.Popen(
            [str(EQL), "serve", "--data-dir", str(data), "--port", str(self.port)],
            env=env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        wait_for(self._up, "the server to start")

    def _up(self) -> bool:
        assert self.proc.poll() is None, "the server exited"
        try:
            return httpx.get(f"{self.url}/v1/health", timeout=1).status_code == 200
        except httpx.HTTPError:
            return False

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait(WAIT)

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(WAIT)
            except subprocess.TimeoutExpired:
                self.kill()


@pytest.fixture
def store_dir(tmp_path: Path) -> tuple[Path, str]:
    data = tmp_path / "store"
    Store.create(data, ALL_TYPES_SCHEMA).close()
    key = KeyFile(data / "keys.json").create(["ingest", "query"], "crash")[1]
    return data, key


@pytest.fixture(scope="module")
def body() -> bytes:
    lines = [b"ts,customer_id,amount,note"]
    lines += [
        b"2026-10-01T00:00:%02dZ,%d,%d.25,crash" % (i % 60, i % 1000, i % 97) for i in range(ROWS)
    ]
    return b"\n".join(lines) + b"\n"


def count(srv: Server, key: str) -> int:
    q = {"query": "FIND EVENTS orders WHERE note = 'crash' RETURN count() AS n"}
    r = httpx.post(f"{srv.url}/v1/query", json=q, headers={"Authorization": f"Bearer {key}"})
    assert r.status_code == 200, r.text
    return int(r.json()["rows"][0]["n"])


def saved(data: Path) -> list[Path]:
    folder = data / live.INCOMING
    return [p for p in folder.rglob("*") if p.is_file()] if folder.exists() else []


@pytest.mark.parametrize("when", ["mid_upload", "mid_import"])
def test_kill_9_during_an_http_import(when: str, store_dir: tuple[Path, str], body: bytes) -> None:
    data, key = store_dir
    headers = {"Authorization": f"Bearer {key}", **CSV}
    half = threading.Event()
    resume = threading.Event()

    def chunks() -> Iterator[bytes]:
        step = 256 << 10
        for i in range(0, len(body), step):
            if when == "mid_upload" and i >= len(body) // 2 and not half.is_set():
                half.set()
                resume.wait(WAIT)
            yield body[i : i + step]

    srv = Server(data)
    outcome: list[object] = []

    def send() -> None:
        try:
            outcome.append(
                httpx.post(
                    f"{srv.url}/v1/ingest/streams/orders",
                    content=chunks(),
                    headers=headers,
                    timeout=WAIT,
                )
            )
        except httpx.HTTPError as exc:
            outcome.append(exc)

    poster = threading.Thread(target=send)
    poster.start()
    try:
        if when == "mid_upload":
            assert half.wait(WAIT)
            wait_for(lambda: any(p.stat().st_size > 0 for p in saved(data)), "a partial body")
        else:
            wait_for(
                lambda: any(p.stat().st_size == len(body) for p in saved(data)) or bool(outcome),
                "the whole body saved",
            )
        srv.kill()
    finally:
        resume.set()
        poster.join(WAIT)
        srv.stop()
    assert not poster.is_alive()

    again = Server(data)
    try:
        assert saved(data) == []  # the killed server's body is cleared at start
        before = count(again, key)
        assert before in (0, ROWS)  # wholly there or wholly absent
        if when == "mid_upload":
            assert before == 0  # the body never ended: nothing was imported
        r = httpx.post(
            f"{again.url}/v1/ingest/streams/orders", content=body, headers=headers, timeout=WAIT
        )
        assert r.status_code == 200, r.text
        doc = r.json()
        assert doc["already_imported"] is (before == ROWS)
        assert doc["rows_imported"] == (0 if before == ROWS else ROWS)
        assert count(again, key) == ROWS  # exactly once
    finally:
        again.stop()
