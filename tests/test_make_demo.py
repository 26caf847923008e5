"""The README's first command, run twice: `make demo` builds the demo store once, serves it, and a
second `make demo` keeps the store and every key printed before (it used to rebuild with
--force, which silently invalidated the printed key), printing a fresh one."""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest

from tests.server.conftest import free_port

ROOT = Path(__file__).resolve().parents[1]
KEY = re.compile(r"^(eql_\S+)$", re.MULTILINE)


@contextmanager
def make_demo(data: Path, port: int) -> Iterator[tuple[str, str]]:
    """Run `make demo` (this interpreter's venv, no reinstall) until it serves; yield the printed
    key and the output so far; stop the whole process group afterwards."""
    venv = Path(sys.prefix)
    if not (venv / "bin" / "eql").exists():
        pytest.skip("the eql command is not installed in this interpreter's environment")
    argv = ["make", "-s", f"VENV={venv}", "-o", f"{venv}/.installed", "demo"]
    argv += [f"DATA={data}", "USERS=100", f"PORT={port}"]
    log = data.with_suffix(f".{port}.log")
    with log.open("wb") as out:
        proc = subprocess.Popen(
            argv, cwd=ROOT, stdout=out, stderr=subprocess.STDOUT, start_new_session=True
        )
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                if httpx.get(f"http://127.0.0.1:{port}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, log.read_text()
            assert time.monotonic() < deadline, log.read_text()
            time.sleep(0.2)
        text = log.read_text()
        keys = KEY.findall(text)
        assert len(keys) == 1, text
        yield keys[0], text
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        proc.wait(timeout=60)


def _status(port: int, key: str) -> int:
    response = httpx.post(
        f"http://127.0.0.1:{port}/v1/query",
        json={"query": "FIND stores RETURN count() AS n"},
        headers={"Authorization": f"Bearer {key}"},
    )
    return response.status_code


def test_make_demo_twice_keeps_the_store_and_the_first_key(tmp_path: Path) -> None:
    data = tmp_path / "eql-data"
    port = free_port()
    with make_demo(data, port) as (first, text):
        assert _status(port, first) == 200
    assert "keeping it" not in text
    built = (data / "rocks").stat().st_ino
    with make_demo(data, free_port()) as (second, text):
        port = int(re.findall(r"serving http://127\.0\.0\.1:(\d+)", text)[0])
        assert "keeping it and its API keys" in text
        assert second != first
        assert _status(port, first) == 200  # the key printed by the first run still works
        assert _status(port, second) == 200
        assert _status(port, "eql_nope_" + "x" * 32) == 401
    assert (data / "rocks").stat().st_ino == built  # the same store, not a rebuilt one
