"""The server's logs: no asyncio "exception was never retrieved" after failed queries, and (with
`eql serve --access-log`) one JSON line per request and per query, never a secret or a value."""

from __future__ import annotations

import gc
import logging
import os
import re
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import httpx
import orjson
import pytest

from server.keys import KeyFile
from storage import Store
from tests.server.conftest import (
    RETAIL_SCHEMA,
    ROOT,
    AppFactory,
    Keys,
    free_port,
    live_server,
    slow,
)

NEVER_RETRIEVED = ("Future exception was never retrieved", "Task exception was never retrieved")


class Records(logging.Handler):
    """Keeps every record of the loggers it is attached to (a real handler, not a mock)."""

    def __init__(self) -> None:
        super().__init__(logging.DEBUG)
        self.records: list[logging.LogRecord] = []

    def emit(self, record: logging.LogRecord) -> None:
        self.records.append(record)

    def text(self) -> str:
        return "\n".join(r.getMessage() for r in self.records)


@pytest.fixture()
def asyncio_log() -> Iterator[Records]:
    handler = Records()
    logger = logging.getLogger("asyncio")
    logger.addHandler(handler)
    try:
        yield handler
    finally:
        logger.removeHandler(handler)


def _until(cond: Callable[[], bool], timeout: float = 30.0) -> None:
    """Wait for a state of the server (not for an amount of time: `timeout` is only a bound for
    a broken server)."""
    t0 = time.monotonic()
    while not cond():
        assert time.monotonic() - t0 < timeout, "condition not reached"
        time.sleep(0.01)


BAD = [
    "FIND users WHERE citty = 1",  # E202
    "FIND nothing",  # E201
    "FIND users RETURN id LIMIT",  # E102
]


def test_failed_queries_leave_no_unretrieved_exception(
    make_app: AppFactory, keys: Keys, asyncio_log: Records
) -> None:
    app = make_app(rate_query=0, query_workers=2)
    with live_server(app) as live, httpx.Client(base_url=live.url, timeout=30) as c:
        slow(app)
        h = keys.header("query")
        accepts = [
            "application/json",
            "application/x-ndjson",
            "application/vnd.apache.arrow.stream",
        ]
        for text in BAD:
            for accept in accepts:
                r = c.post("/v1/query", json={"query": text}, headers={**h, "Accept": accept})
                assert r.status_code == 400, r.text
            r = c.post("/v1/explain", json={"query": text}, headers=h)
            assert r.status_code == 400, r.text
        # a compile that fails after its deadline passed: the step on the pool ends with an
        # exception nobody waits for any more
        r = c.post(
            "/v1/query", json={"query": "FIND nothing -- stall 0.5", "timeout": 0.1}, headers=h
        )
        assert r.status_code == 408
        runner = app.state.eql.runner
        _until(lambda: runner.stats.running == 0 and not runner._stopping)
        assert runner.stats.outcomes["failed"] == len(BAD) * (len(accepts) + 1)
        gc.collect()  # whatever waits in a cycle is collected (and would be reported) now
    said = asyncio_log.text()
    assert not any(m in said for m in NEVER_RETRIEVED), said


RFC3339_Z = re.compile(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z")


def _store(root: Path) -> Path:
    from ingest.demo import generate_demo_files
    from ingest.files import import_file

    store = Store.create(root / "store", RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    try:
        for f in generate_demo_files(root / "files", users=200, seed=3):
            if not f.dirty:
                import_file(store, f.kind, f.target, f.path)
    finally:
        store.close()
    return root / "store"


def test_eql_serve_access_log_and_log_level(tmp_path: Path) -> None:
    """`eql serve --access-log --log-level warning`: a JSON line per request and per query on
    stdout, with the key's id but not its secret, parameters' names but not their values, route
    templates but not paths; on stderr, nothing below warning and no unretrieved exception."""
    data = _store(tmp_path)
    record, token = KeyFile(data / "keys.json").create(["query", "lookup"], "logs")
    port = free_port()
    out, err = (tmp_path / "out.log").open("wb"), (tmp_path / "err.log").open("wb")
    command = [sys.executable, "-m", "eql.cli.main", "serve", "--data-dir", str(data)]
    command += ["--port", str(port), "--access-log", "--log-level", "warning"]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(command, env=env, cwd=tmp_path, stdout=out, stderr=err)
    url = f"http://127.0.0.1:{port}"
    h = {"Authorization": f"Bearer {token}"}
    try:
        _until(lambda: _healthy(url, proc), timeout=60)
        with httpx.Client(base_url=url, headers=h, timeout=30) as c:
            assert c.get("/v1/entities/users/12").status_code == 200
            ok = {"query": "FIND users WHERE id <= $n RETURN id", "params": {"n": 3}}
            assert c.post("/v1/query", json=ok).status_code == 200
            streamed = c.post("/v1/query", json=ok, headers={"Accept": "application/x-ndjson"})
            assert streamed.status_code == 200
            bad = {"query": "FIND users WHERE citty = $p", "params": {"p": "hidden-value"}}
            for _ in range(3):
                assert c.post("/v1/query", json=bad).status_code == 400
            assert c.get("/v1/no/secretpath/12").status_code == 404
            assert c.get("/metrics", headers={"Authorization": ""}).status_code == 200
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        out.close()
        err.close()
    stdout = (tmp_path / "out.log").read_text()
    stderr = (tmp_path / "err.log").read_text()
    assert proc.returncode in (0, 130), stderr  # 130: uvicorn re-raises the SIGINT it handled
    lines = [orjson.loads(line) for line in stdout.splitlines()]  # every line is JSON
    assert all(RFC3339_Z.fullmatch(line["time"]) for line in lines)
    requests = [line for line in lines if line["type"] == "request"]
    queries = [line for line in lines if line["type"] == "query"]
    health = [r for r in requests if r["route"] == "/v1/health"]
    assert health and len(requests) == len(health) + 8
    profile = next(r for r in requests if r["route"] == "/v1/entities/{entity}/{key:path}")
    assert profile["status"] == 200 and profile["key_id"] == record.id
    assert profile["duration_ms"] > 0 and profile["method"] == "GET"
    assert [r["status"] for r in requests if r["route"] == "/v1/query"] == [200, 200, 400, 400, 400]
    assert [r["route"] for r in requests if r["status"] == 404] == ["unmatched"]
    assert "key_id" not in health[0] and "key_id" not in requests[-1]  # no key sent
    assert [(q["outcome"], q["code"], q["rows"]) for q in queries] == [
        ("ok", None, 3),
        ("ok", None, 3),
        *[("E2xx", "E202", None)] * 3,
    ]
    assert queries[0]["query"] == ok["query"] and queries[0]["params"] == ["n"]
    assert all(q["key_id"] == record.id and q["kind"] == "query" for q in queries)
    # a query's line comes just before its request's
    first_bad = lines.index(queries[2])
    assert lines[first_bad + 1]["type"] == "request" and lines[first_bad + 1]["status"] == 400
    for secret in (token, token.rpartition("_")[2], "hidden-value", "secretpath"):
        assert secret not in stdout + stderr
    assert "Started server process" not in stderr  # uvicorn's INFO lines: below warning
    assert not any(m in stderr for m in NEVER_RETRIEVED), stderr


def _healthy(url: str, proc: subprocess.Popen[bytes]) -> bool:
    assert proc.poll() is None, "eql serve exited"
    try:
        return httpx.get(f"{url}/v1/health", timeout=5).status_code == 200
    except httpx.TransportError:
        return False
