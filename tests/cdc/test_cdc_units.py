"""Unit tests that need no server: the DDL classifier, the config loader, GTID helpers, crash
point parsing and the import boundary."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from entities import parse_schema
from ingest.cdc_config import ConfigError, parse_config
from ingest.cdc_ddl import classify
from ingest.cdc_faults import CrashPoints
from ingest.cdc_state import gtid_covers, merge_gtid
from tests.cdc.cdc_helpers import REPO, SCHEMA

MAPPED = {"shop.users", "shop.orders"}


@pytest.mark.parametrize(
    ("sql", "kind", "renames", "dropped"),
    [
        ("ALTER TABLE users ADD COLUMN age INT", "alter", (), ()),
        ("alter table `shop`.`users` add age int after id, add index (age)", "alter", (), ()),
        ("ALTER TABLE users DROP COLUMN email", "alter", (), ("email",)),
        ("ALTER TABLE users DROP email, DROP INDEX ix", "alter", (), ("email",)),
        (
            "ALTER TABLE users RENAME COLUMN full_name TO name",
            "alter",
            (("full_name", "name"),),
            (),
        ),
        (
            "ALTER TABLE users CHANGE `full_name` `Name` VARCHAR(9)",
            "alter",
            (("full_name", "Name"),),
            (),
        ),
        ("ALTER TABLE users CHANGE COLUMN a a BIGINT", "alter", (), ()),
        ("ALTER TABLE users MODIFY balance DECIMAL(14,2) NOT NULL DEFAULT 0", "alter", (), ()),
        ("ALTER TABLE users ENGINE=InnoDB, ALGORITHM=INPLACE, LOCK=NONE", "alter", (), ()),
        ("ALTER TABLE other ADD x INT", "none", (), ()),
        ("/* c */ ALTER TABLE users ADD `x, y` INT -- trailing", "alter", (), ()),
    ],
)
def test_alter(
    sql: str, kind: str, renames: tuple[tuple[str, str], ...], dropped: tuple[str, ...]
) -> None:
    eff = classify(sql, "shop", MAPPED)
    assert eff.kind == kind
    assert eff.column_renames == renames
    assert eff.dropped_columns == dropped


@pytest.mark.parametrize(
    ("sql", "kind", "reason"),
    [
        ("TRUNCATE TABLE users", "truncate", ""),
        ("TRUNCATE shop.orders", "truncate", ""),
        ("TRUNCATE other", "none", ""),
        ("DROP TABLE IF EXISTS other, users", "unsupported", "dropped"),
        ("DROP TABLE other", "none", ""),
        ("DROP DATABASE shop", "unsupported", "database shop"),
        ("RENAME TABLE users TO users_old", "unsupported", "renamed away"),
        ("RENAME TABLE users TO users_old, users_new TO users", "rename_tables", ""),
        ("ALTER TABLE users RENAME TO people", "unsupported", "renamed away"),
        ("RENAME TABLE a TO users", "rename_tables", ""),
        ("ALTER TABLE people RENAME TO users", "rename_tables", ""),
        ("ALTER TABLE people RENAME TO somewhere", "none", ""),
        ("ALTER TABLE users DROP PARTITION p0", "unsupported", "DROP PARTITION"),
        ("ALTER TABLE users TRUNCATE PARTITION p0", "unsupported", "TRUNCATE PARTITION"),
        ("ALTER TABLE users FROBNICATE", "unsupported", "FROBNICATE"),
        ("CREATE OR REPLACE TABLE users (id INT)", "unsupported", "replaced"),
        ("CREATE TABLE users (id INT PRIMARY KEY)", "create", ""),
        ("CREATE TABLE IF NOT EXISTS x (id INT)", "none", ""),
        ("CREATE INDEX ix ON users (email)", "none", ""),
        ("DROP INDEX ix ON users", "none", ""),
        ("UPDATE users SET a=1", "unsupported", "statement-based"),
        ("INSERT INTO shop.orders VALUES (1)", "unsupported", "statement-based"),
        ("INSERT INTO other SELECT * FROM elsewhere", "none", ""),
        ("GRANT SELECT ON shop.users TO x", "none", ""),
        ("SAVEPOINT `s1`", "none", ""),
        ("OPTIMIZE TABLE users", "none", ""),
        ("FROB users", "unsupported", "does not know"),
        ("FROB things", "none", ""),
    ],
)
def test_statements(sql: str, kind: str, reason: str) -> None:
    eff = classify(sql, "shop", MAPPED)
    assert eff.kind == kind, eff
    assert reason in eff.reason


def test_no_values_in_statement_kind() -> None:
    eff = classify("CREATE USER x IDENTIFIED BY 'secret' ", "shop", MAPPED)
    assert "secret" not in eff.statement and "secret" not in eff.reason


def test_gtid_helpers() -> None:
    assert merge_gtid("", "0-1-5") == "0-1-5"
    assert merge_gtid("0-1-5,2-1-9", "0-1-6") == "0-1-6,2-1-9"
    assert merge_gtid("0-1-5", "1-2-1") == "0-1-5,1-2-1"
    assert gtid_covers("0-1-6,1-2-1", "0-1-6")
    assert not gtid_covers("0-1-5", "0-1-6,1-2-1")


def test_crash_points() -> None:
    with pytest.raises(ValueError, match="unknown crash point"):
        CrashPoints("nowhere:1")
    cp = CrashPoints("after_batch_write:3, at_rotate")
    cp.hit("after_batch_write")
    cp.hit("after_batch_write")
    cp.hit("before_batch_write")  # not armed


CONFIG = """
source:
  host: 127.0.0.1
  port: 3306
  user: cdc
  password_env: EQL_TEST_PW
  server_id: 42
tables:
  shop.customers:
    entity: customers
    columns: {full_name: name}
  shop.orders:
    events: purchase
    columns: {created_at: ts}
    on_update: append
"""


def test_config_ok(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("EQL_TEST_PW", "hunter2")
    cfg = parse_config(CONFIG, parse_schema(SCHEMA), "cdc.yaml")
    assert cfg.source.password == "hunter2"
    assert "hunter2" not in repr(cfg)
    t = cfg.table("shop.customers")
    assert t is not None and t.source_of("name") == "full_name" and t.source_of("id") == "id"
    o = cfg.table("shop.orders")
    assert o is not None and o.on_update == "append" and o.on_delete == "error"


def test_config_problems(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("EQL_TEST_PW", raising=False)
    bad = (
        CONFIG.replace("entity: customers", "entity: customer").replace(
            "on_update: append", "on_update: sometimes\n    on_delet: x"
        )
        + "  t:\n    entity: x\n"
    )
    with pytest.raises(ConfigError) as ei:
        parse_config(bad, parse_schema(SCHEMA), "cdc.yaml")
    text = str(ei.value)
    assert "cdc.yaml:" in text
    assert "EQL_TEST_PW is not set" in text
    assert "unknown entity `customer` (did you mean `customers`?)" in text
    assert "on_update: expected one of: error, append, ignore" in text
    assert "on_delet" in text and "`database.table`" in text
    with pytest.raises(ConfigError, match="may not be written in the config"):
        parse_config(
            CONFIG.replace("password_env: EQL_TEST_PW", "password: hunter2"), parse_schema(SCHEMA)
        )
    pw = tmp_path / "pw"
    pw.write_text("from-file\n")
    cfg = parse_config(
        CONFIG.replace("password_env: EQL_TEST_PW", f"password_file: {pw}"), parse_schema(SCHEMA)
    )
    assert cfg.source.password == "from-file" and cfg.source.password_from == f"file:{pw}"


def test_only_mysql_binlog_imports_pymysqlreplication() -> None:
    offenders = []
    for path in REPO.rglob("*.py"):
        rel = path.relative_to(REPO)
        if rel.parts[0] in (".venv", "tests") or rel.as_posix() == "ingest/mysql_binlog.py":
            continue
        tree = ast.parse(path.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            if any(n.split(".")[0] == "pymysqlreplication" for n in names):
                offenders.append(str(rel))
    assert offenders == []


def test_modules_stay_small() -> None:
    for path in [
        REPO / "ingest" / "mysql_binlog.py",
        *(REPO / "ingest").glob("cdc_*.py"),
        REPO / "eql" / "cli" / "cdc.py",
    ]:
        assert len(path.read_text().splitlines()) < 650, path
