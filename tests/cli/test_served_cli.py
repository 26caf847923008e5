"""The CLI writes into a served store through its server (issue 13): a real `eql serve` process
on a small demo store (loopback, `--port 0`: the port it chose is read from its server.json),
and `eql ingest` / `eql query` run as other processes. A twin store, built the same way, answers
what the same command prints locally, and hosts the tests that stop and kill servers.

Every wait is on a condition with a deadline (`wait_for`), never a fixed sleep."""

from __future__ import annotations

import json
import os
import re
import signal
import stat
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.cli.conftest import Run
from tests.eql.helpers import build_demo_store

EQL = (sys.executable, "-m", "eql.cli.main")
DEADLINE = 60.0  # seconds any one wait may take at most
PURCHASE_HEADER = "ts,user_id,store_id,sku,cashier_id,order_id,amount,quantity,channel\n"


def wait_for(what: str, check: Callable[[], Any], timeout: float = DEADLINE) -> Any:
    """Poll `check` until it gives something true; fail naming `what` past the deadline."""
    end = time.monotonic() + timeout
    while True:
        value = check()
        if value:
            return value
        if time.monotonic() > end:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.05)


def _store(root: Path) -> Path:
    store = build_demo_store(root)
    data_dir = Path(store.data_dir)
    store.close()
    return data_dir


@dataclass
class Serving:
    """An `eql serve` process and what its server.json says."""

    proc: subprocess.Popen[bytes]
    data_dir: Path
    record: dict[str, Any]
    log: Path

    @property
    def url(self) -> str:
        return str(self.record["url"])

    def query(self, text: str) -> list[dict[str, Any]]:
        """Rows of `text` run by the server (with its local key, as a client would)."""
        response = httpx.post(
            f"{self.url}/v1/query",
            json={"query": text},
            headers={"Authorization": f"Bearer {self.record['key']}"},
            timeout=DEADLINE,
            trust_env=False,
        )
        assert response.status_code == 200, response.text
        rows: list[dict[str, Any]] = response.json()["rows"]
        return rows

    def stop(self, sig: int = signal.SIGTERM) -> int:
        if self.proc.poll() is None:
            self.proc.send_signal(sig)
        return self.proc.wait(timeout=DEADLINE)


def _record(data_dir: Path) -> dict[str, Any] | None:
    try:
        return json.loads((data_dir / "server.json").read_text(encoding="utf-8"))
    except (FileNotFoundError, json.JSONDecodeError):
        return None


def start_server(data_dir: Path, log: Path) -> Serving:
    """`eql serve --port 0` on `data_dir`, returned once its server.json names its pid."""
    with log.open("wb") as fh:
        proc = subprocess.Popen(
            [*EQL, "serve", "--data-dir", str(data_dir), "--port", "0", "--log-level", "warning"],
            stdout=subprocess.DEVNULL,
            stderr=fh,
            env={**os.environ, "COLUMNS": "120"},
        )

    def announced() -> dict[str, Any] | None:
        if proc.poll() is not None:
            raise AssertionError(f"eql serve exited {proc.returncode}: {log.read_text()}")
        record = _record(data_dir)
        return record if record is not None and record["pid"] == proc.pid else None

    return Serving(proc, data_dir, wait_for("server.json", announced), log)


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Serving]:
    root = tmp_path_factory.mktemp("served")
    serving = start_server(_store(root), root / "serve.log")
    yield serving
    serving.stop()


@pytest.fixture(scope="module")
def twin(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A store built as `served`'s was: what a local run prints is read here."""
    return _store(tmp_path_factory.mktemp("twin"))


def purchases(path: Path, first_order: int, amounts: list[str]) -> Path:
    lines = [
        f"2026-10-30T1{i}:00:00Z,{i + 1},1,SKU-1,1,{first_order + i},{amount},1,app\n"
        for i, amount in enumerate(amounts)
    ]
    path.write_text(PURCHASE_HEADER + "".join(lines), encoding="utf-8")
    return path


def ordered_from(serving: Serving, first_order: int) -> dict[str, Any]:
    rows = serving.query(
        f"FIND EVENTS purchase WHERE order_id >= {first_order} AND order_id < {first_order + 100}"
        " RETURN count() AS n, sum(amount) AS total"
    )
    return rows[0]


def through_note(serving: Serving) -> str:
    return f"(through the server at {serving.url}, pid {serving.proc.pid})"


# ---- the local credential -------------------------------------------------------------------
def test_server_json_is_private_and_complete(served: Serving) -> None:
    path = served.data_dir / "server.json"
    st = path.stat()
    assert stat.S_IMODE(st.st_mode) == 0o600
    assert st.st_uid == os.getuid()
    record = served.record
    assert set(record) >= {"pid", "host", "port", "url", "data_dir", "started", "key"}
    assert record["host"] == "127.0.0.1"
    assert record["url"] == f"http://127.0.0.1:{record['port']}"
    assert Path(record["data_dir"]) == served.data_dir.resolve()
    assert record["key"].startswith("eql_")
    # the key is an admin key of the keys file, named local-cli, and the server takes it
    keys = json.loads((served.data_dir / "keys.json").read_text())["keys"]
    mine = [k for k in keys if record["key"].startswith(f"eql_{k['id']}_")]
    assert [(k["name"], k["scopes"], k["revoked"]) for k in mine] == [
        ("local-cli", ["admin"], None)
    ]
    assert served.query("FIND users RETURN count() AS n")[0]["n"] > 0


def test_no_temporary_file_is_left(served: Serving) -> None:
    assert not [p.name for p in served.data_dir.iterdir() if p.name.startswith(".server-")]


# ---- eql ingest through the server -----------------------------------------------------------
def _untimed(stdout: str) -> str:
    return re.sub(r" in \d+\.\d+s", " in Ns", stdout)


def test_ingest_goes_through_the_server_as_a_local_import_says(
    served: Serving, twin: Path, eql_cli: Run, tmp_path: Path
) -> None:
    first = purchases(tmp_path / "new.csv", 9_100_000, ["12.50", "7.25"])
    second = purchases(tmp_path / "more.csv", 9_100_050, ["1.00"])
    assert ordered_from(served, 9_100_000)["n"] == 0
    args = ("ingest", "--events", "purchase", str(first), str(second))
    done = eql_cli(*args, "--data-dir", str(served.data_dir))
    assert done.returncode == 0, done.stderr
    assert done.stderr.count("(through the server") == 1
    assert through_note(served) in done.stderr
    assert f"{first}: 2 of 2 rows appended to purchase in " in done.stdout
    assert "2 of 2 files imported: 3 rows, 0 rejected" in done.stdout
    after = ordered_from(served, 9_100_000)
    assert (after["n"], str(after["total"])) == (3, "20.75")
    local = eql_cli(*args, "--data-dir", str(twin))
    assert (local.returncode, _untimed(local.stdout)) == (0, _untimed(done.stdout))

    # a repeat: nothing applied twice, said as a local repeat says it
    again = eql_cli(*args, "--data-dir", str(served.data_dir))
    assert again.returncode == 0, again.stderr
    assert f"{first}: already imported into purchase; nothing added" in again.stdout
    assert ordered_from(served, 9_100_000) == after
    local = eql_cli(*args, "--data-dir", str(twin))
    assert (local.returncode, local.stdout) == (0, again.stdout)


def test_bad_rows_exit_1_with_the_problems(served: Serving, eql_cli: Run, tmp_path: Path) -> None:
    path = purchases(tmp_path / "bad.csv", 9_200_000, ["abc", "7.25", "1.5.0"])
    done = eql_cli("ingest", "--data-dir", str(served.data_dir), "--events", "purchase", str(path))
    assert done.returncode == 1, done.stderr
    assert "row 1, column amount: 'abc': " in done.stderr
    assert "row 3, column amount: '1.5.0': " in done.stderr
    summary = next(line for line in done.stdout.splitlines() if line.startswith(f"{path}:"))
    assert "1 of 3 rows appended to purchase" in summary
    reject = Path(summary.split("2 rejected, see ", 1)[1])
    assert reject.is_file() and reject.parent == served.data_dir / "rejects"
    assert "1 of 1 files imported: 1 rows, 2 rejected" in done.stdout
    assert ordered_from(served, 9_200_000)["n"] == 1


def test_an_unknown_stream_exits_2_naming_the_streams(
    served: Serving, eql_cli: Run, tmp_path: Path
) -> None:
    path = purchases(tmp_path / "ok.csv", 9_400_000, ["1.00"])
    typo = eql_cli("ingest", "--data-dir", str(served.data_dir), "--events", "purchse", str(path))
    assert typo.returncode == 2
    assert f"error: {path}: no event stream named purchse" in typo.stderr
    assert "did you mean 'purchase'?" in typo.stderr
    assert "0 of 1 files imported: 0 rows, 0 rejected; 1 files failed" in typo.stdout
    assert ordered_from(served, 9_400_000)["n"] == 0
    slash = eql_cli(
        "ingest", "--data-dir", str(served.data_dir), "--events", "pur/chase", str(path)
    )
    assert slash.returncode == 2
    assert f"error: {path}: no event stream named pur/chase in the schema" in slash.stderr


# ---- eql query with a write statement ---------------------------------------------------------
DEFINE = "DEFINE SEGMENT big_spenders ON users WHERE sum(purchase.amount) > 100"


def test_define_through_the_server_prints_what_a_local_run_prints(
    served: Serving, twin: Path, eql_cli: Run
) -> None:
    remote = eql_cli("query", "--data-dir", str(served.data_dir), DEFINE)
    assert remote.returncode == 0, remote.stderr
    assert through_note(served) in remote.stderr
    local = eql_cli("query", "--data-dir", str(twin), DEFINE)
    assert (remote.stdout, local.returncode) == (local.stdout, 0)
    names = [r["name"] for r in served.query("SHOW SEGMENTS")]
    assert "big_spenders" in names
    refreshed = eql_cli(
        "query",
        "--data-dir",
        str(served.data_dir),
        "--format",
        "json",
        "--as-of",
        "2026-11-01",
        "REFRESH SEGMENT big_spenders",
    )
    assert refreshed.returncode == 0, refreshed.stderr
    [row] = json.loads(refreshed.stdout)
    assert (row["name"], row["version"]) == ("big_spenders", 1)
    members = served.query(
        "FIND users WHERE sum(purchase.amount) > 100 RETURN count() AS n AS OF '2026-11-01'"
    )
    assert row["size"] == members[0]["n"] > 0


def test_a_bad_statement_is_said_as_locally(served: Serving, twin: Path, eql_cli: Run) -> None:
    text = "DEFINE SEGMENT typo ON users WHERE sum(purchase.amont) > 100"
    remote = eql_cli("query", "--data-dir", str(served.data_dir), text)
    local = eql_cli("query", "--data-dir", str(twin), text)
    assert remote.returncode == local.returncode == 2
    assert "E202" in local.stderr
    assert remote.stderr == through_note(served) + "\n" + local.stderr


# ---- one server per data directory --------------------------------------------------------------
def test_a_second_server_is_refused_naming_the_first(served: Serving, eql_cli: Run) -> None:
    path = served.data_dir / "server.json"
    before = path.read_bytes()
    second = eql_cli("serve", "--data-dir", str(served.data_dir), "--port", "0")
    assert second.returncode == 2
    assert f"pid {served.proc.pid}" in second.stderr
    assert f"port {served.record['port']}" in second.stderr
    assert path.read_bytes() == before
    assert served.proc.poll() is None
