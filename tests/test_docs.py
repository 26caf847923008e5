"""Run the shell examples of docs/*.md (```sh run blocks), in order, one folder per doc."""

from __future__ import annotations

import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
BLOCK = re.compile(r"^```sh run(?: exit=(\d+))?\n(.*?)^```", re.S | re.M)
DOCS = sorted(p for p in (ROOT / "docs").glob("*.md") if BLOCK.search(p.read_text()))


@pytest.mark.parametrize("doc", DOCS, ids=[p.name for p in DOCS])
def test_doc_examples_run(doc: Path, tmp_path: Path) -> None:
    env = dict(
        os.environ,
        PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}",
        NO_COLOR="1",
        COLUMNS="120",
    )
    env.pop("EQL_DATA_DIR", None)
    blocks = BLOCK.findall(doc.read_text(encoding="utf-8"))
    assert blocks
    for i, (code, script) in enumerate(blocks, start=1):
        proc = subprocess.run(
            ["bash", "-e", "-c", script],
            cwd=tmp_path,
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
        )
        expected = int(code or 0)
        assert proc.returncode == expected, (
            f"{doc.name} block {i} exited {proc.returncode}, expected {expected}\n"
            f"--- script\n{script}--- stdout\n{proc.stdout}--- stderr\n{proc.stderr}"
        )
        assert "Traceback" not in proc.stderr + proc.stdout
