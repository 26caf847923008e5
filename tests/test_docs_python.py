"""docs/python.md runs as the notebook it is: its `sh run` blocks in bash and its `python run`
blocks in one namespace, in order, in an empty folder; what a python block prints must be the
`text` block that follows it. A `python run server` block first gets a real server over the
folder's store (uvicorn on loopback, `tests.server.conftest.live_server`) and `EQL_URL` and
`EQL_KEY` in the environment. The notebook's answers are then checked against DuckDB over the
store's tables."""

from __future__ import annotations

import contextlib
import io
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

from server.app import create_app
from server.keys import KeyFile
from server.settings import Settings
from storage import Store
from tests.eql.helpers import assert_same_rows, duck_rows, duckdb_connection, store_tables
from tests.server.conftest import live_server

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "python.md"
FENCE = re.compile(r"^```([^\n]*)\n(.*?)^```\n", re.S | re.M)


@dataclass
class Block:
    kind: str  # "sh", "python" or "python server"
    code: str
    output: str | None  # what it must print (python blocks followed by a text block)
    line: int


def blocks(text: str) -> list[Block]:
    """The runnable blocks in order, each with the text block right after it, if any."""
    fences = list(FENCE.finditer(text))
    out: list[Block] = []
    for i, m in enumerate(fences):
        info = m.group(1).split()
        if info[-1:] != ["run"] and info[-2:] != ["run", "server"]:
            continue
        kind = info[0] if info[-1] == "run" else "python server"
        after = fences[i + 1] if i + 1 < len(fences) else None
        output = None
        if (
            kind != "sh"
            and after is not None
            and after.group(1) == "text"
            and not text[m.end() : after.start()].strip()
        ):
            output = after.group(2)
        out.append(Block(kind, m.group(2), output, text.count("\n", 0, m.start()) + 1))
    return out


def _shell(code: str, cwd: Path) -> None:
    env = dict(os.environ, PATH=f"{Path(sys.executable).parent}:{os.environ['PATH']}")
    env.pop("EQL_DATA_DIR", None)
    proc = subprocess.run(
        ["bash", "-e", "-c", code], cwd=cwd, env=env, capture_output=True, text=True, timeout=300
    )
    assert proc.returncode == 0, f"{code}\n{proc.stdout}\n{proc.stderr}"


@contextlib.contextmanager
def _server(data_dir: Path) -> Iterator[dict[str, str]]:
    key = KeyFile(data_dir / "keys.json").create(["query", "lookup"], "notebook")[1]
    app = create_app(Settings(data_dir=data_dir, rate_query=0, rate_lookup=0))
    with live_server(app) as live:
        yield {"EQL_URL": live.url, "EQL_KEY": key}


def run(doc: Path, folder: Path) -> tuple[dict[str, Any], list[tuple[Block, str]]]:
    """Run every block of `doc` in `folder`: the namespace, and each python block with what it
    printed."""
    namespace: dict[str, Any] = {"__name__": "__notebook__"}
    printed: list[tuple[Block, str]] = []
    cwd = Path.cwd()
    environ = dict(os.environ)
    os.chdir(folder)
    try:
        with contextlib.ExitStack() as stack:
            for block in blocks(doc.read_text(encoding="utf-8")):
                if block.kind == "sh":
                    _shell(block.code, folder)
                    continue
                if block.kind == "python server" and "EQL_URL" not in os.environ:
                    os.environ.update(stack.enter_context(_server(folder / "eql-data")))
                out = io.StringIO()
                with contextlib.redirect_stdout(out):
                    exec(compile(block.code, f"{doc.name}:{block.line}", "exec"), namespace)
                printed.append((block, out.getvalue()))
    finally:
        os.chdir(cwd)
        os.environ.clear()
        os.environ.update(environ)
    return namespace, printed


def _lines(text: str) -> list[str]:
    return [line.rstrip() for line in text.rstrip("\n").splitlines()]


@pytest.fixture(scope="module")
def notebook(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], Path, list[Any]]:
    folder = tmp_path_factory.mktemp("notebook")
    namespace, printed = run(DOC, folder)
    return namespace, folder, printed


def test_the_notebook_prints_what_it_shows(notebook: tuple[Any, Path, list[Any]]) -> None:
    _, _, printed = notebook
    kinds = [b.kind for b, _ in printed]
    assert kinds.count("python") >= 8 and "python server" in kinds
    checked = 0
    for block, out in printed:
        if block.output is not None:
            assert _lines(out) == _lines(block.output), f"{DOC.name} block at line {block.line}"
            checked += 1
    assert checked == len(printed)  # every block shows what it prints


def test_the_notebooks_answers_are_the_datas(notebook: tuple[Any, Path, list[Any]]) -> None:
    namespace, folder, _ = notebook
    store = Store.open(folder / "eql-data", read_only=True)
    try:
        con = duckdb_connection(store_tables(store))
    finally:
        store.close()
    top = duck_rows(
        con,
        """SELECT u.id, u.name, s.city, sum(p.amount) AS spend FROM users u
           JOIN purchase p ON p.user_id = u.id LEFT JOIN stores s ON s.id = u.home_store_id
           WHERE p.ts >= TIMESTAMPTZ '2026-10-02 00:00:00+00'
             AND p.ts < TIMESTAMPTZ '2026-11-01 00:00:00+00'
           GROUP BY u.id, u.name, s.city HAVING count(*) >= 3
           ORDER BY spend DESC, u.id LIMIT 5""",
    )
    got = namespace["table"]
    assert_same_rows([tuple(r.values()) for r in got.to_pylist()], top, ordered=True)
    big = duck_rows(
        con,
        """SELECT u.id FROM users u JOIN purchase p ON p.user_id = u.id
           WHERE p.ts >= TIMESTAMPTZ '2026-08-03 00:00:00+00'
             AND p.ts < TIMESTAMPTZ '2026-11-01 00:00:00+00'
           GROUP BY u.id HAVING sum(p.amount) > 3000 ORDER BY u.id""",
    )
    assert namespace["members"].column("id").to_pylist() == [r[0] for r in big]
    purchases = duck_rows(
        con, "SELECT count(*) FROM purchase WHERE ts < TIMESTAMPTZ '2026-11-01 00:00:00+00'"
    )
    assert namespace["rows"] == purchases[0][0]
    con.close()
