"""Fixtures of the library tests: the demo store as a closed data directory (shared, read-only by
contract), a writable copy per test, the DuckDB oracle over the store's tables, and real servers
(uvicorn on a loopback port, `tests.server.conftest.live_server`) over copies of the store."""

from __future__ import annotations

import contextlib
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.keys import KeyFile
from server.settings import Settings
from storage import Store
from tests.eql.helpers import build_demo_store, duckdb_connection, store_tables
from tests.server.conftest import live_server


@pytest.fixture(scope="session")
def store_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store (users=300, seed=7; its events end before 2026-11-01), closed. Tests that
    write use `writable_dir`."""
    store = build_demo_store(tmp_path_factory.mktemp("client-demo"))
    data_dir = Path(store.data_dir)
    store.close()
    return data_dir


@pytest.fixture
def writable_dir(store_dir: Path, tmp_path: Path) -> Path:
    """A copy of the demo store of this test's own."""
    return Path(shutil.copytree(store_dir, tmp_path / "store"))


@pytest.fixture(scope="session")
def duck(store_dir: Path) -> Iterator[Any]:
    """DuckDB over the store's tables, read straight from the store (not through EQL)."""
    store = Store.open(store_dir, read_only=True)
    try:
        tables = store_tables(store)
    finally:
        store.close()
    con = duckdb_connection(tables)
    yield con
    con.close()


@dataclass
class Served:
    url: str
    data_dir: Path
    query_key: str  # scopes query, lookup
    define_key: str  # scopes query, lookup, define


@contextlib.contextmanager
def serve(data_dir: Path, **settings: Any) -> Iterator[Served]:
    """A real server over `data_dir` (which the app opens itself), with two keys."""
    keys = KeyFile(data_dir / "keys.json")
    query_key = keys.create(["query", "lookup"], "client-query")[1]
    define_key = keys.create(["query", "lookup", "define"], "client-define")[1]
    overrides = {"rate_query": 0, "rate_lookup": 0, **settings}
    app = create_app(Settings(data_dir=data_dir, **overrides))
    with live_server(app) as live:
        yield Served(live.url, data_dir, query_key, define_key)


@pytest.fixture(scope="module")
def server(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    """A server over a copy of the demo store; its default row limit is 100 (EQL_DEFAULT_ROWS)."""
    data_dir = Path(shutil.copytree(store_dir, tmp_path_factory.mktemp("served") / "store"))
    with serve(data_dir, default_rows=100) as served:
        yield served
