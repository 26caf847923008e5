"""Fixtures of the EQL tests: one deterministic demo store per session, its engines and oracles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from runtime.engine import Engine, EngineSettings
from storage import Store
from tests.eql.helpers import build_demo_store, duckdb_connection, store_tables


@pytest.fixture(scope="session")
def demo_store(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Store]:
    """The demo retail store, users=300 seed=7, built once per session (read-only by contract)."""
    store = build_demo_store(tmp_path_factory.mktemp("eql-demo"))
    yield store
    store.close()


@pytest.fixture(scope="session")
def demo_engine(demo_store: Store) -> Engine:
    return Engine(demo_store)


@pytest.fixture(scope="session", params=["rollups", "events"])
def oracle_engine(request: pytest.FixtureRequest, demo_store: Store) -> Engine:
    """An engine of the demo store with the per-entity index (`rollups`, the default) and one
    without it (`events`: every aggregate scans its stream): the oracles hold both ways."""
    return Engine(demo_store, EngineSettings(rollups=request.param == "rollups"))


@pytest.fixture(scope="session")
def demo_tables(demo_store: Store) -> dict[str, pa.Table]:
    """The store's tables as plain Arrow (enums as strings, no __id), for the SQL oracles."""
    return store_tables(demo_store)


@pytest.fixture(scope="session")
def demo_duck(demo_tables: dict[str, pa.Table]) -> Iterator[Any]:
    con = duckdb_connection(demo_tables)
    yield con
    con.close()
