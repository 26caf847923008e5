"""A served store's local credential over a server's life (issue 13): removed at a clean stop,
left by a killed server and then ignored and replaced; and the server.json files the CLI must
not believe (another mode, another data directory, a pid that is no `eql serve`). Real `eql
serve` processes, real files; waits on conditions with deadlines."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from eql.cli.served import find_server, read_record
from tests.cli.conftest import Run
from tests.cli.test_served_cli import DEADLINE, _store, purchases, start_server


@pytest.fixture(scope="module")
def store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return _store(tmp_path_factory.mktemp("lifecycle"))


def _key_ids(data_dir: Path) -> set[str]:
    return {k["id"] for k in json.loads((data_dir / "keys.json").read_text())["keys"]}


def _id_of(token: str) -> str:
    return token.split("_")[1]


def test_a_killed_servers_file_is_ignored_replaced_and_a_clean_stop_removes_it(
    store: Path, tmp_path: Path, eql_cli: Run
) -> None:
    killed = start_server(store, tmp_path / "killed.log")
    stale_key = killed.record["key"]
    assert _id_of(stale_key) in _key_ids(store)
    killed.stop(signal.SIGKILL)
    assert json.loads((store / "server.json").read_text())["pid"] == killed.proc.pid
    assert read_record(store) is None and find_server(store) is None  # the pid is dead

    # the store is free again: the CLI imports locally, never through the dead server
    path = purchases(tmp_path / "local.csv", 9_500_000, ["2.00"])
    done = eql_cli("ingest", "--data-dir", str(store), "--events", "purchase", str(path))
    assert done.returncode == 0, done.stderr
    assert "through the server" not in done.stderr

    # the next server replaces the file and deletes the stale key: the server refuses it
    serving = start_server(store, tmp_path / "next.log")
    try:
        key_id = _id_of(serving.record["key"])
        assert serving.record["key"] != stale_key
        assert _id_of(stale_key) not in _key_ids(store)
        answer = httpx.post(
            f"{serving.url}/v1/query",
            json={"query": "FIND users RETURN count() AS n"},
            headers={"Authorization": f"Bearer {stale_key}"},
            timeout=DEADLINE,
            trust_env=False,
        )
        assert answer.status_code == 401
        assert serving.query("FIND users RETURN count() AS n")[0]["n"] > 0
    finally:
        code = serving.stop(signal.SIGTERM)
    # a clean stop (SIGTERM) removes the file and deletes the key
    assert code == 128 + signal.SIGTERM
    assert not (store / "server.json").exists()
    assert key_id not in _key_ids(store)


@pytest.fixture
def holder(store: Path) -> Iterator[subprocess.Popen[str]]:
    """Another process (not a server) holding the store open for writing."""
    code = (
        "import sys; from storage import Store; s = Store.open(sys.argv[1]); "
        "print('open', flush=True); sys.stdin.read(); s.close()"
    )
    proc = subprocess.Popen(
        [sys.executable, "-c", code, str(store)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    assert proc.stdout.readline().strip() == "open"
    yield proc
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=DEADLINE)


def test_a_store_locked_by_another_process_says_so(
    store: Path, holder: subprocess.Popen[str], eql_cli: Run, tmp_path: Path
) -> None:
    path = purchases(tmp_path / "held.csv", 9_600_000, ["2.00"])
    done = eql_cli("ingest", "--data-dir", str(store), "--events", "purchase", str(path))
    assert done.returncode == 2
    assert f"the store at {store} is open in another process" in done.stderr
    assert "none left a live DATA/server.json" in done.stderr


# ---- files the CLI does not believe ---------------------------------------------------------
def _write(data_dir: Path, record: dict[str, object], mode: int = 0o600) -> Path:
    path = data_dir / "server.json"
    path.write_text(json.dumps(record), encoding="utf-8")
    os.chmod(path, mode)
    return path


@pytest.fixture
def other_process() -> Iterator[int]:
    """A live process of ours that is not `eql serve`."""
    proc = subprocess.Popen(
        [sys.executable, "-c", "import sys; sys.stdin.read()"], stdin=subprocess.PIPE
    )
    yield proc.pid
    assert proc.stdin is not None
    proc.stdin.close()
    proc.wait(timeout=DEADLINE)


def _record(data_dir: Path, pid: int) -> dict[str, object]:
    return {
        "pid": pid,
        "host": "127.0.0.1",
        "port": 9,
        "url": "http://127.0.0.1:9",
        "data_dir": str(data_dir.resolve()),
        "started": "2026-12-01T00:00:00Z",
        "key": "eql_000000000000_" + "x" * 43,
    }


def test_untrusted_files_are_ignored_with_a_warning(
    tmp_path: Path, other_process: int, capsys: pytest.CaptureFixture[str]
) -> None:
    _write(tmp_path, _record(tmp_path, other_process), mode=0o644)
    assert find_server(tmp_path) is None
    assert "has mode 0644, not 0600; ignoring it" in capsys.readouterr().err

    _write(tmp_path, _record(tmp_path / "elsewhere", other_process))
    assert find_server(tmp_path) is None
    assert "names another data directory" in capsys.readouterr().err

    (tmp_path / "server.json").unlink()
    (tmp_path / "server.json").write_text("{not json")
    os.chmod(tmp_path / "server.json", 0o600)
    assert find_server(tmp_path) is None
    assert "is not a server record" in capsys.readouterr().err


def test_a_pid_that_is_not_eql_serve_is_not_a_server(tmp_path: Path, other_process: int) -> None:
    _write(tmp_path, _record(tmp_path, other_process))
    assert read_record(tmp_path) is None
    assert find_server(tmp_path) is None
