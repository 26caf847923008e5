"""Fixtures: a demo store per module (definitions write to it, so each module has its own)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pytest

from runtime import Session
from storage import Store
from tests.eql.helpers import build_demo_store

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def demo_dir(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    root = tmp_path_factory.mktemp("aud-demo")
    store = build_demo_store(root)
    store.close()
    yield root / "store"


@pytest.fixture(scope="module")
def session(demo_dir: Path) -> Iterator[Session]:
    store = Store.open(demo_dir)
    yield Session(store)
    store.close()
