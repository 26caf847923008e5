"""Fixtures of the server tests: one demo store per session, keys of every scope, apps over it
(the test client), and a real uvicorn on a loopback port where transport matters."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import uvicorn
from fastapi import FastAPI

from runtime import Session
from server.app import create_app
from server.keys import KeyFile
from server.protocol import config as serving_config
from server.settings import Settings
from storage import Store
from tests.server.slow import SlowEngine

warnings.filterwarnings("ignore", message=".*httpx2.*")  # starlette's TestClient over httpx

from fastapi.testclient import TestClient  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
RETAIL_SCHEMA = next(
    p
    for p in (ROOT / "entities" / "examples" / "retail.yaml", ROOT / "examples/retail/schema.yaml")
    if p.exists()
)


@dataclass
class Keys:
    """A key per scope, an admin key, a revoked key, and a well-formed unknown key."""

    file: KeyFile
    query: str
    lookup: str
    define: str
    ingest: str
    admin: str
    revoked: str
    bogus: str

    def header(self, scope: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {getattr(self, scope)}"}


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    from ingest.demo import generate_demo_files
    from ingest.files import import_file

    root = tmp_path_factory.mktemp("server-demo")
    store = Store.create(root / "store", RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")
    for f in generate_demo_files(root / "files", users=1000, seed=1):
        if not f.dirty:
            import_file(store, f.kind, f.target, f.path)
    yield store
    store.close()


@pytest.fixture(scope="session")
def keys(demo_store: Store) -> Keys:
    kf = KeyFile(demo_store.data_dir / "keys.json")
    made = {s: kf.create([s], f"test-{s}")[1] for s in ("query", "lookup", "define", "ingest")}
    admin = kf.create(["admin"], "test-admin")[1]
    rec, revoked = kf.create(["query", "lookup", "admin"], "test-revoked")
    kf.revoke(rec.id)
    bogus = "eql_" + "0" * 12 + "_" + "x" * 43
    return Keys(kf, admin=admin, revoked=revoked, bogus=bogus, **made)


AppFactory = Callable[..., FastAPI]


@pytest.fixture(scope="session")
def make_app(demo_store: Store, keys: Keys) -> AppFactory:
    """An app over the shared store; keyword arguments override settings."""

    def make(**overrides: Any) -> FastAPI:
        settings = Settings(data_dir=demo_store.data_dir, **overrides)
        return create_app(settings, session=Session(demo_store, settings.engine()))

    return make


@pytest.fixture(scope="module")
def client(make_app: AppFactory) -> Iterator[TestClient]:
    """The default app (rate limits off so that tests do not trip them)."""
    with TestClient(make_app(rate_query=0, rate_lookup=0), raise_server_exceptions=False) as c:
        yield c


@contextlib.contextmanager
def open_client(app: FastAPI) -> Iterator[TestClient]:
    with TestClient(app, raise_server_exceptions=False) as c:
        yield c


def slow(app: FastAPI) -> SlowEngine:
    """Put a SlowEngine in front of a started app's engine (see tests/server/slow.py)."""
    state = app.state.eql
    engine = SlowEngine(state.session.engine)
    state.session.engine = engine  # type: ignore[assignment]
    return engine


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@dataclass
class Live:
    app: FastAPI
    url: str
    server: uvicorn.Server


@contextlib.contextmanager
def live_server(app: FastAPI, **config: Any) -> Iterator[Live]:
    """A real uvicorn serving `app` on a free loopback port, in a thread of this process."""
    port = free_port()
    cfg = serving_config(
        app, app.state.settings, host="127.0.0.1", port=port, log_level="warning", **config
    )
    server = uvicorn.Server(cfg)
    thread = threading.Thread(target=server.run, name="uvicorn-test", daemon=True)
    thread.start()
    t0 = time.monotonic()
    while not server.started:
        if not thread.is_alive() or time.monotonic() - t0 > 30:
            raise RuntimeError("uvicorn did not start")
        time.sleep(0.02)
    try:
        yield Live(app, f"http://127.0.0.1:{port}", server)
    finally:
        server.should_exit = True
        thread.join(15)
