"""Fixtures of the CLI tests: one small demo store per session (closed, so that `eql` processes
can open it), and a runner for the real `eql` command in a subprocess."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.eql.helpers import build_demo_store

Run = Callable[..., subprocess.CompletedProcess[str]]


@pytest.fixture(scope="session")
def cli_store(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The demo store (users=300, seed=7) as a closed data directory."""
    store = build_demo_store(tmp_path_factory.mktemp("cli-demo"))
    data_dir = store.data_dir
    store.close()
    return Path(data_dir)


@pytest.fixture(scope="session")
def eql_cli() -> Run:
    """Run `eql ARGS...` as a user would (a new process), with optional stdin text."""

    def run(*args: str, stdin: str | None = None, env: dict[str, str] | None = None) -> Any:
        return subprocess.run(
            [sys.executable, "-m", "eql.cli.main", *args],
            input=stdin,
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "COLUMNS": "120", **(env or {})},
        )

    return run
