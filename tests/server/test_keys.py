"""Keys: stored hashed, revocable, reloaded by a running server; `eql keys` and `eql serve`."""

from __future__ import annotations

import json
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest
import typer
from typer.testing import CliRunner

from eql.cli import serve_cmds
from server.keys import KeyFile, parse_scopes
from storage import Store
from tests.server.conftest import RETAIL_SCHEMA, ROOT, free_port


def test_key_is_stored_hashed_and_verifies(tmp_path: Path) -> None:
    kf = KeyFile(tmp_path / "keys.json")
    record, token = kf.create(["query", "lookup"], "a")
    text = (tmp_path / "keys.json").read_text()
    secret = token.split("_", 2)[2]  # eql_<id>_<secret>; the secret may hold "_" itself
    assert token not in text and secret not in text
    assert record.digest in text
    assert stat.S_IMODE(os.stat(tmp_path / "keys.json").st_mode) == 0o600
    fresh = KeyFile(tmp_path / "keys.json")
    found = fresh.verify(token)
    assert found is not None and found.scopes == {"query", "lookup"}
    assert fresh.verify(token[:-2] + "zz") is None
    assert fresh.verify("") is None and fresh.verify("eql_") is None
    assert fresh.verify(token + "x") is None


def test_revoke_and_reload_by_mtime(tmp_path: Path) -> None:
    server_view = KeyFile(tmp_path / "keys.json")
    cli_view = KeyFile(tmp_path / "keys.json")
    rec, token = cli_view.create(["lookup"])
    assert server_view.verify(token) is not None
    assert cli_view.revoke(rec.id) is not None
    assert server_view.verify(token) is None
    assert cli_view.revoke("nope") is None
    assert [k.revoked is not None for k in server_view.records()] == [True]


def test_scopes() -> None:
    assert parse_scopes("query, lookup") == {"query", "lookup"}
    with pytest.raises(ValueError, match="unknown scope"):
        parse_scopes("query,root")
    with pytest.raises(ValueError):
        parse_scopes(" , ")


def test_admin_implies_every_scope(tmp_path: Path) -> None:
    kf = KeyFile(tmp_path / "keys.json")
    _, token = kf.create(["admin"])
    key = kf.verify(token)
    assert key is not None and all(key.allows(s) for s in ("query", "lookup", "define"))


def test_damaged_file_refuses_every_key(tmp_path: Path) -> None:
    kf = KeyFile(tmp_path / "keys.json")
    _, token = kf.create(["query"])
    assert kf.verify(token) is not None
    (tmp_path / "keys.json").write_text("{ broken")
    assert kf.verify(token) is None


def test_concurrent_creates_lose_nothing(tmp_path: Path) -> None:
    made: list[str] = []

    def work() -> None:
        for _ in range(10):
            made.append(KeyFile(tmp_path / "keys.json").create(["query"])[1])

    threads = [threading.Thread(target=work) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    kf = KeyFile(tmp_path / "keys.json")
    assert len(kf.records()) == 40
    assert all(kf.verify(t) is not None for t in made)


def _cli() -> typer.Typer:
    app = typer.Typer()
    serve_cmds.register(app)
    return app


def test_cli_keys_create_list_revoke(tmp_path: Path) -> None:
    (tmp_path / "rocks").mkdir()
    runner = CliRunner()
    app = _cli()
    r = runner.invoke(
        app,
        ["keys", "create", "--data-dir", str(tmp_path), "--scope", "query,lookup", "--name", "x"],
    )
    assert r.exit_code == 0, r.output
    token = r.stdout.strip().splitlines()[0]
    assert token.startswith("eql_")
    kf = KeyFile(tmp_path / "keys.json")
    rec = kf.verify(token)
    assert rec is not None and rec.name == "x"
    r = runner.invoke(app, ["keys", "list", "--data-dir", str(tmp_path)])
    assert r.exit_code == 0 and rec.id in r.stdout and token not in r.stdout
    r = runner.invoke(app, ["keys", "revoke", "--data-dir", str(tmp_path), rec.id])
    assert r.exit_code == 0, r.output
    assert kf.verify(token) is None
    r = runner.invoke(app, ["keys", "revoke", "--data-dir", str(tmp_path), "nope"])
    assert r.exit_code == 2
    r = runner.invoke(app, ["keys", "create", "--data-dir", str(tmp_path), "--scope", "root"])
    assert r.exit_code == 2 and "unknown scope" in r.output


def test_cli_keys_needs_a_store(tmp_path: Path) -> None:
    r = CliRunner().invoke(_cli(), ["keys", "list", "--data-dir", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no store" in r.output


SERVE = (
    "import typer; from eql.cli import serve_cmds; app = typer.Typer(); "
    "serve_cmds.register(app); app()"
)


def test_eql_serve_end_to_end(tmp_path: Path) -> None:
    """`eql serve` on a fresh store: health, a key made by `eql keys` while it runs, a query."""
    Store.create(tmp_path, RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml").close()
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    proc = subprocess.Popen(
        [sys.executable, "-c", SERVE, "serve", "--data-dir", str(tmp_path), "--port", str(port)],
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.STDOUT,
    )
    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 60
        while True:
            try:
                if httpx.get(f"{url}/v1/health").status_code == 200:
                    break
            except httpx.TransportError:
                pass
            assert proc.poll() is None, proc.stdout.read().decode() if proc.stdout else ""
            assert time.monotonic() < deadline
            time.sleep(0.1)
        made = subprocess.run(
            [
                sys.executable,
                "-c",
                SERVE,
                "keys",
                "create",
                "--data-dir",
                str(tmp_path),
                "--scope",
                "query",
            ],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        token = made.stdout.strip()
        r = httpx.post(
            f"{url}/v1/query",
            json={"query": "FIND users RETURN count() AS n"},
            headers={"Authorization": f"Bearer {token}"},
        )
        assert r.status_code == 200 and r.json()["rows"] == [{"n": 0}]
        keys = json.loads((tmp_path / "keys.json").read_text())["keys"]
        assert [k["scopes"] for k in keys if k["name"] != "local-cli"] == [["query"]]
    finally:
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
    # the server released the store: it opens again
    Store.open(tmp_path).close()


def test_eql_serve_refuses_a_missing_store(tmp_path: Path) -> None:
    r = CliRunner().invoke(_cli(), ["serve", "--data-dir", str(tmp_path / "none")])
    assert r.exit_code == 2 and "no store" in r.output


def test_create_app_opens_and_closes_its_own_store(tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from server.app import create_app
    from server.settings import Settings

    Store.create(tmp_path, RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml").close()
    _, token = KeyFile(tmp_path / "keys.json").create(["lookup"])
    with TestClient(create_app(Settings(data_dir=tmp_path))) as c:
        r = c.get("/v1/schema", headers={"X-API-Key": token})
        assert r.status_code == 200
        with pytest.raises(Exception, match=r"(?i)lock|open in another"):
            Store.open(tmp_path)  # the app holds the store while it runs
    Store.open(tmp_path).close()  # and lets it go at shutdown


def test_settings_from_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    from pydantic import ValidationError

    from server.settings import Settings

    monkeypatch.setenv("EQL_MAX_ROWS", "77")
    monkeypatch.setenv("EQL_DEFAULT_ROWS", "7")
    s = Settings()
    assert (s.max_rows, s.default_rows) == (77, 7)
    assert s.keys_path == s.data_dir / "keys.json"
    monkeypatch.setenv("EQL_DEFAULT_ROWS", "78")
    with pytest.raises(ValidationError):
        Settings()
