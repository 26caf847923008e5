"""The CDC admin routes (`server/routers/cdc.py`) over a Supervisor in the app's state: scopes,
bad input answered 4xx with what is wrong (never 5xx), a connector started, refused twice,
listed while it retries a source that is not there, and stopped.

The source here is a closed loopback port (the connector never reaches a server, so the shared
demo store gets no write); replication itself is tested in tests/cdc/test_cdc_supervised.py.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from fastapi.testclient import TestClient

from runtime import Session
from runtime.cdc_supervisor import Supervisor
from server.app import create_app
from server.settings import Settings
from storage import Store
from tests.server.conftest import AppFactory, Keys, free_port, open_client

ROUTE = "/v1/admin/cdc"


class HoldClock:
    """Backoff waits last until the connector is stopped: a failed connector stays
    `restarting` for as long as the test looks at it."""

    def now(self) -> float:
        return 1_800_000_000.0

    def wait(self, seconds: float, stop: threading.Event) -> bool:
        stop.wait()
        return True


@pytest.fixture(scope="module")
def served(make_app: AppFactory) -> Iterator[tuple[TestClient, Supervisor]]:
    app = make_app(rate_query=0, rate_lookup=0)
    with open_client(app) as client:
        sup = Supervisor(app.state.eql.session, clock=HoldClock())
        app.state.eql.cdc = sup
        try:
            yield client, sup
        finally:
            assert sup.stop(timeout=30) == []


def config(tmp_path: Path, name: str = "routes", server_id: int = 7001, extra: str = "") -> Path:
    (tmp_path / "pw").write_text("secret\n", encoding="utf-8")
    path = tmp_path / f"{name}.yaml"
    path.write_text(
        f"""name: {name}
source:
  host: 127.0.0.1
  port: {free_port()}
  user: cdc
  password_file: pw
  server_id: {server_id}
  connect_timeout: 2
tables:
  shop.users:
    entity: users
{extra}""",
        encoding="utf-8",
    )
    return path


def errors(resp: Any) -> list[dict[str, Any]]:
    assert resp.headers["content-type"].startswith("application/json")
    return list(resp.json()["errors"])


def test_scopes(served: tuple[TestClient, Supervisor], keys: Keys) -> None:
    client, _ = served
    assert client.get(ROUTE).status_code == 401
    assert client.get(ROUTE, headers=keys.header("query")).status_code == 403
    resp = client.post(f"{ROUTE}/connectors", json={"config": "/x"}, headers=keys.header("ingest"))
    assert resp.status_code == 403
    assert client.delete(f"{ROUTE}/connectors/x", headers=keys.header("lookup")).status_code == 403


@pytest.mark.parametrize(
    ("body", "wanted"),
    [
        ({"config": "relative/cdc.yaml"}, "must be absolute"),
        ({"config": "/nonexistent/cdc.yaml"}, "does not exist"),
        ({"config": "/"}, "is not a regular file"),
        ({"config": "/tmp/\ud800.yaml"}, "valid string"),
        ({"config": "/tmp/a\u0000b"}, "non-empty path"),
        ({"config": ""}, "config"),
        ({"config": "/tmp/x", "more": 1}, "more"),
        ({}, "config"),
        ([], "body"),
        ({"config": 12}, "config"),
    ],
)
def test_bad_bodies_are_422(
    served: tuple[TestClient, Supervisor], keys: Keys, body: Any, wanted: str
) -> None:
    client, _ = served
    resp = client.post(
        f"{ROUTE}/connectors",
        content=json.dumps(body).encode(),  # escaped: a lone surrogate reaches the server
        headers={**keys.header("admin"), "content-type": "application/json"},
    )
    assert resp.status_code == 422, resp.text
    assert any(wanted in e["message"] for e in errors(resp)), resp.text


def test_not_json_and_a_config_with_problems(
    served: tuple[TestClient, Supervisor], keys: Keys, tmp_path: Path
) -> None:
    client, sup = served
    resp = client.post(
        f"{ROUTE}/connectors",
        content=b"\xff{",
        headers={**keys.header("admin"), "content-type": "application/json"},
    )
    assert resp.status_code == 400 and errors(resp)[0]["code"] == "bad_request"
    bad = config(
        tmp_path, extra="  shop.nothing:\n    entity: no_such_entity\nsnapshot: {mode: x}\n"
    )
    resp = client.post(
        f"{ROUTE}/connectors", json={"config": str(bad)}, headers=keys.header("admin")
    )
    assert resp.status_code == 422
    (item,) = errors(resp)
    assert item["code"] == "invalid_config" and len(item["problems"]) >= 2
    assert any("no_such_entity" in p for p in item["problems"])
    assert all(p.startswith(f"{bad}:") for p in item["problems"])  # each with its line
    assert sup.names() == []


def test_start_list_refuse_and_stop(
    served: tuple[TestClient, Supervisor], keys: Keys, tmp_path: Path
) -> None:
    client, _ = served
    admin = keys.header("admin")
    assert client.get(ROUTE, headers=admin).json() == {"connectors": []}
    path = config(tmp_path)
    resp = client.post(f"{ROUTE}/connectors", json={"config": str(path)}, headers=admin)
    assert resp.status_code == 201, resp.text
    started = resp.json()["connector"]
    assert started["name"] == "routes" and started["config"] == str(path)
    assert started["state"] in ("running", "restarting")

    deadline = time.monotonic() + 30
    while True:  # the source is not there: the connector fails and waits to retry
        (entry,) = client.get(ROUTE, headers=admin).json()["connectors"]
        if entry["state"] == "restarting":
            break
        assert time.monotonic() < deadline, entry
        time.sleep(0.02)
    assert "cannot connect" in entry["last_error"] and entry["failures"] == 1
    assert entry["next_retry_at"].endswith("Z") and entry["position"] is None
    assert "secret" not in str(entry)

    again = client.post(f"{ROUTE}/connectors", json={"config": str(path)}, headers=admin)
    assert again.status_code == 409 and "already restarting" in errors(again)[0]["message"]
    twin = config(tmp_path, name="twin", server_id=7001)
    resp = client.post(f"{ROUTE}/connectors", json={"config": str(twin)}, headers=admin)
    assert resp.status_code == 409 and "server_id 7001" in errors(resp)[0]["message"]

    resp = client.delete(f"{ROUTE}/connectors/routes", headers=admin)
    assert resp.status_code == 200, resp.text
    assert resp.json()["connector"]["state"] == "stopped"
    assert client.get(ROUTE, headers=admin).json() == {"connectors": []}
    resp = client.delete(f"{ROUTE}/connectors/routes", headers=admin)
    assert resp.status_code == 404 and "supervised: none" in errors(resp)[0]["message"]


@pytest.mark.parametrize(
    ("name", "status"), [("bad name", 422), ("x" * 65, 422), ("é", 422), ("a%2Fb", 404)]
)
def test_bad_names(
    served: tuple[TestClient, Supervisor], keys: Keys, name: str, status: int
) -> None:
    client, _ = served
    resp = client.delete(f"{ROUTE}/connectors/{name}", headers=keys.header("admin"))
    assert resp.status_code == status, resp.text
    if status == 422:
        assert "connector name" in errors(resp)[0]["message"]


def test_an_app_without_a_supervisor(demo_store: Store, keys: Keys, tmp_path: Path) -> None:
    """A reader worker's app (it follows a writer, `follow_interval`) runs no connectors: its
    CDC routes say so (in `eql serve --workers N` they are passed to the writer before this)."""
    settings = Settings(data_dir=demo_store.data_dir)
    app = create_app(settings, session=Session(demo_store, settings.engine()), follow_interval=60)
    with open_client(app) as client:
        admin = keys.header("admin")
        assert client.get(ROUTE, headers=admin).json() == {"connectors": []}
        resp = client.post(
            f"{ROUTE}/connectors", json={"config": str(config(tmp_path))}, headers=admin
        )
        assert resp.status_code == 409 and "no CDC supervisor" in errors(resp)[0]["message"]
        resp = client.delete(f"{ROUTE}/connectors/x", headers=admin)
        assert resp.status_code == 409
