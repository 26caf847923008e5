"""Snapshot files: compare, or (with EQL_UPDATE_SNAPSHOTS=1) rewrite."""

from __future__ import annotations

import difflib
import os
from pathlib import Path

import pytest

UPDATE = os.environ.get("EQL_UPDATE_SNAPSHOTS", "") not in ("", "0")
HOW_TO_UPDATE = "EQL_UPDATE_SNAPSHOTS=1 python -m pytest tests/eql"


def check_snapshot(path: Path, actual: str) -> None:
    if not actual.endswith("\n"):
        actual += "\n"
    if UPDATE:
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists() or path.read_text(encoding="utf-8") != actual:
            path.write_text(actual, encoding="utf-8")
        return
    if not path.exists():
        pytest.fail(f"missing snapshot {path.name}; create it with: {HOW_TO_UPDATE}")
    expected = path.read_text(encoding="utf-8")
    if expected != actual:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                actual.splitlines(keepends=True),
                fromfile=f"{path.name} (snapshot)",
                tofile=f"{path.name} (now)",
                n=2,
            )
        )
        pytest.fail(f"snapshot {path.name} differs (update with: {HOW_TO_UPDATE})\n{diff[:6000]}")
