"""CDC-4: schema changes with rows before and after each: every value lands in the right attribute;
unsupported changes stop with an error naming the binlog position, after applying everything
before it."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import pytest

from ingest.cdc_state import CdcError, load_state, schema_history
from storage import Store
from tests.cdc.cdc_helpers import compare, config_text, make_db, make_store, run_inprocess

pytestmark = [pytest.mark.mariadb, pytest.mark.usefixtures("cdc_env")]
POS = re.compile(r"binlog\.\d+:\d+")


def _rows(store_dir: Path, entity: str) -> dict[Any, dict[str, Any]]:
    s = Store.open(store_dir, read_only=True)
    try:
        ent = s.entity(entity)
        return {r[ent.key.name]: r for r in s.entity_table(entity).to_pylist()}
    finally:
        s.close()


def test_ddl_matrix(mariadb: Any, tmp_path: Path) -> None:
    db = "ddl1"
    make_db(mariadb, db)
    c = f"{db}.customers"
    ins = f"INSERT INTO {c} (id, full_name, email, score) VALUES "
    mariadb.sql(ins + "(1, 'one', 'e1', 1.5), (2, 'two', 'e2', 2.5)")
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    text = config_text(mariadb, db)
    run_inprocess(store_dir, text)
    # all of this is read in one run, so rows written before a DDL are decoded with the
    # column names they were written with (binlog_row_metadata=FULL), not today's
    mariadb.sql(
        ins + "(3, 'three', 'e3', 3.5)",
        f"ALTER TABLE {c} ADD COLUMN nickname VARCHAR(20) FIRST",  # shifts every position
        f"INSERT INTO {c} (id, nickname, full_name, email) VALUES (4, 'n4', 'four', 'e4')",
        f"ALTER TABLE {c} DROP COLUMN score",  # a mapped attribute disappears
        f"UPDATE {c} SET email='e1b' WHERE id=1",  # keeps its stored score
        ins.replace(", score", "") + "(5, 'five', 'e5')",  # a new row has no score
        f"ALTER TABLE {c} RENAME COLUMN full_name TO display_name",
        f"INSERT INTO {c} (id, display_name) VALUES (6, 'six')",
        f"UPDATE {c} SET display_name='TWO' WHERE id=2",
        f"ALTER TABLE {c} CHANGE display_name dn VARCHAR(150), ALGORITHM=COPY",
        f"INSERT INTO {c} (id, dn) VALUES (7, 'seven')",
        f"ALTER TABLE {c} MODIFY balance DECIMAL(14,2), MODIFY email TEXT, MODIFY vip INT",
        f"INSERT INTO {c} (id, dn, balance, vip) VALUES (8, 'eight', 12.34, 1)",
        f"ALTER TABLE {c} ADD COLUMN score DOUBLE",  # the attribute's column is back
        f"INSERT INTO {c} (id, dn, score) VALUES (9, 'nine', 9.5)",
        f"CREATE INDEX ix_email ON {c} (email(10))",
        f"ALTER TABLE {c} ADD INDEX ix_dn (dn), DROP INDEX ix_email",
        f"INSERT INTO {db}.products VALUES ('p1', 'old', 1)",
        f"TRUNCATE TABLE {db}.products",
        f"INSERT INTO {db}.products VALUES ('p2', 'new', 2)",
        # the online-schema-change swap: the mapped name keeps existing throughout
        f"CREATE TABLE {db}.customers_new LIKE {c}",
        f"INSERT INTO {db}.customers_new SELECT * FROM {c}",
        f"RENAME TABLE {c} TO {db}.customers_old, {db}.customers_new TO {c}",
        f"UPDATE {c} SET dn='THREE' WHERE id=3",
        f"DROP TABLE {db}.customers_old",
        f"CREATE TABLE {db}.unrelated (x INT)",
        f"ALTER TABLE {db}.unrelated ADD y INT",
    )
    rep = run_inprocess(store_dir, text)
    rows = _rows(store_dir, "customers")
    assert {k: r["name"] for k, r in rows.items()} == {
        1: "one",
        2: "TWO",
        3: "THREE",
        4: "four",
        5: "five",
        6: "six",
        7: "seven",
        8: "eight",
        9: "nine",
    }
    assert rows[1]["email"] == "e1b" and rows[1]["score"] == 1.5  # kept after DROP COLUMN
    assert rows[5]["score"] is None and rows[9]["score"] == 9.5
    assert str(rows[8]["balance"]) == "12.34" and rows[8]["vip"] is True
    assert set(_rows(store_dir, "products")) == {"p2"}
    st = rep.state
    assert st.renames[c] == {"full_name": "dn"}
    assert st.counter("truncates") == 1
    assert st.counter("ddl_applied") >= 9 and st.counter("ddl_ignored") >= 3
    s = Store.open(store_dir, read_only=True)
    hist = schema_history(s, "test")
    s.close()
    assert [h["kind"] for h in hist].count("truncate") == 1
    assert all(h["file"].startswith("binlog.") and h["pos"] > 0 for h in hist)
    assert [h["pos"] for h in hist] == sorted(h["pos"] for h in hist)
    # the oracle, with the renamed column and without the dropped one
    d = compare(mariadb, db, store_dir, entities=("products", "accounts"))
    assert d.ok, d


@pytest.mark.parametrize(
    ("statements", "reason"),
    [
        (["RENAME TABLE {db}.customers TO {db}.people"], "renamed away"),
        (["ALTER TABLE {db}.customers RENAME TO {db}.people"], "renamed away"),
        (["DROP TABLE {db}.customers"], "was dropped"),
        (["TRUNCATE TABLE {db}.orders"], "on_delete is error"),
        (
            ["ALTER TABLE {db}.products DROP PRIMARY KEY, DROP COLUMN sku, ADD id INT PRIMARY KEY"],
            "key column sku",
        ),
        (["CREATE OR REPLACE TABLE {db}.products (sku VARCHAR(32) PRIMARY KEY)"], "replaced"),
    ],
)
def test_unsupported_ddl_stops_at_its_position(
    mariadb: Any, tmp_path: Path, statements: list[str], reason: str
) -> None:
    db = "ddlx"
    make_db(mariadb, db)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    text = config_text(mariadb, db, orders="on_update: error")
    run_inprocess(store_dir, text)
    mariadb.sql(f"INSERT INTO {db}.accounts VALUES (100, 0)")  # before: applied
    mariadb.sql(*(s.format(db=db) for s in statements))
    mariadb.sql(f"INSERT INTO {db}.accounts VALUES (101, 0)")  # after: not applied
    with pytest.raises(CdcError) as ei:
        run_inprocess(store_dir, text)
    msg = str(ei.value)
    assert reason in msg and POS.search(msg), msg
    accounts = _rows(store_dir, "accounts")
    assert 100 in accounts and 101 not in accounts
    s = Store.open(store_dir, read_only=True)
    st = load_state(s, "test")
    s.close()
    assert st is not None and st.last_error == msg and st.counter("skipped") == 0
    with pytest.raises(CdcError):  # a restart stops at the same place
        run_inprocess(store_dir, text)


@pytest.mark.parametrize(
    "rename",
    [
        "RENAME TABLE {db}.customers TO {db}.people",
        "ALTER TABLE {db}.customers RENAME TO {db}.people",
    ],
)
def test_renamed_table_followed_after_config_change(
    mariadb: Any, tmp_path: Path, rename: str
) -> None:
    db = "ddlr"
    make_db(mariadb, db)
    store_dir = tmp_path / "s"
    make_store(store_dir).close()
    text = config_text(mariadb, db)
    run_inprocess(store_dir, text)
    mariadb.sql(
        f"INSERT INTO {db}.customers (id, full_name) VALUES (1, 'before')",
        rename.format(db=db),
        f"INSERT INTO {db}.people (id, full_name) VALUES (2, 'after')",
    )
    with pytest.raises(CdcError, match="renamed away"):
        run_inprocess(store_dir, text)
    fixed = text.replace(f"{db}.customers:", f"{db}.people:")
    run_inprocess(store_dir, fixed)
    assert {k: r["name"] for k, r in _rows(store_dir, "customers").items()} == {
        1: "before",
        2: "after",
    }
