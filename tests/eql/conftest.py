"""Fixtures of the EQL tests: one deterministic demo store per session, its engine and oracles."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pyarrow as pa
import pytest

from runtime.engine import Engine
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


@pytest.fixture(scope="session")
def demo_tables(demo_store: Store) -> dict[str, pa.Table]:
    """The store's tables as plain Arrow (enums as strings, no __id), for the SQL oracles."""
    return store_tables(demo_store)


@pytest.fixture(scope="session")
def demo_duck(demo_tables: dict[str, pa.Table]) -> Iterator[Any]:
    con = duckdb_connection(demo_tables)
    yield con
    con.close()
