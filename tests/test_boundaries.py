"""Import boundaries: each dependency is owned by one module (ARCHITECTURE.md, invariant 1)."""

from __future__ import annotations

import ast
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("eql", "storage", "ingest", "entities", "server")
OWNERS = {
    "rocksdict": lambda p: p.parts[0] == "storage",
    "datafusion": lambda p: p.as_posix() == "eql/planner/to_datafusion.py",
    "pymysqlreplication": lambda p: p.as_posix() == "ingest/mysql_binlog.py",
    "lark": lambda p: p.parts[:2] == ("eql", "syntax") or p.parts[:2] == ("eql", "grammar"),
}


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(a.name.split(".")[0] for a in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module.split(".")[0])
    return found


def _sources() -> list[Path]:
    return [p for pkg in PACKAGES for p in (ROOT / pkg).rglob("*.py")]


def test_each_dependency_has_one_owner() -> None:
    offenders = []
    for path in _sources():
        rel = path.relative_to(ROOT)
        for dep in _imports(path) & set(OWNERS):
            if not OWNERS[dep](rel):
                offenders.append(f"{rel} imports {dep}")
    assert offenders == []


def test_compiler_stages_do_no_io() -> None:
    """The pure stages import neither the store nor the engine."""
    pure = [ROOT / "eql" / d for d in ("syntax", "binder", "planner")]
    offenders = []
    for folder in pure:
        for path in folder.rglob("*.py"):
            bad = _imports(path) & {"storage", "ingest", "server"}
            if bad:
                offenders.append(f"{path.relative_to(ROOT)} imports {sorted(bad)}")
    assert offenders == []


def test_modules_stay_small() -> None:
    big = [
        f"{p.relative_to(ROOT)}: {n} lines"
        for p in _sources()
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > 650
    ]
    assert big == []
