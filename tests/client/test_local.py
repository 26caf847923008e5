"""`eql.connect(path)`: queries, formats, parameters, reference times, explain, errors, read-only
connections and closing, over the demo store; answers checked against DuckDB over the store's
tables and against the runtime's own `Session`."""

from __future__ import annotations

import datetime as dt
import decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import eql
from runtime import Session
from storage import Store
from tests.eql.helpers import assert_same_rows, duck_rows, table_rows

NOW = "2026-11-01"
SPEND = """
    FIND users WHERE home_store.city = $city
    RETURN id, name, gender, sum(purchase.amount DURING LAST 30 DAYS) AS spend
    ORDER BY id"""
SPEND_SQL = """
    SELECT u.id, u.name, u.gender,
           coalesce(sum(p.amount) FILTER (WHERE p.ts >= TIMESTAMPTZ '2026-10-02 00:00:00+00'
                                          AND p.ts < TIMESTAMPTZ '2026-11-01 00:00:00+00'), 0)
    FROM users u JOIN stores s ON u.home_store_id = s.id LEFT JOIN purchase p ON p.user_id = u.id
    WHERE s.city = ? GROUP BY u.id, u.name, u.gender ORDER BY u.id"""


@pytest.fixture(scope="module")
def db(store_dir: Path) -> Any:
    with eql.connect(store_dir, read_only=True) as connection:
        yield connection


@pytest.fixture(scope="module")
def city(duck: Any) -> str:
    """The city most users' home stores are in."""
    rows = duck_rows(
        duck,
        "SELECT s.city FROM users u JOIN stores s ON u.home_store_id = s.id "
        "GROUP BY s.city ORDER BY count(*) DESC, s.city LIMIT 1",
    )
    return str(rows[0][0])


def test_a_query_answers_as_duckdb_does(db: Any, duck: Any, city: str) -> None:
    res = db.query(SPEND, params={"city": city}, as_of=NOW)
    expected = duck_rows(duck, SPEND_SQL, [city])
    assert len(expected) > 10
    assert_same_rows(table_rows(res.to_arrow()), expected, ordered=True)
    assert res.schema == {
        "id": "int",
        "name": "string",
        "gender": "enum[female, male, other]",
        "spend": "decimal(22,2)",
    }
    assert res.columns == ["id", "name", "gender", "spend"]
    assert len(res) == len(expected) and res.truncated is False


def test_every_format_holds_the_same_rows(db: Any, city: str) -> None:
    res = db.query(SPEND, params={"city": city}, as_of=NOW)
    table = res.to_arrow()
    assert res.to_arrow() is table  # read once
    rows = table.to_pylist()
    frame = res.to_pandas()
    assert list(frame.columns) == res.columns
    assert [int(v) for v in frame["id"]] == [r["id"] for r in rows]
    assert [str(v) for v in frame["gender"]] == [str(r["gender"]) for r in rows]
    assert list(frame["spend"]) == [r["spend"] for r in rows]
    assert all(isinstance(v, decimal.Decimal) for v in frame["spend"])
    pl = res.to_polars()
    assert pl.columns == res.columns
    assert pl["id"].to_list() == [r["id"] for r in rows]
    assert pl["spend"].to_list() == [r["spend"] for r in rows]
    assert list(res) == rows


def test_batches_stream_and_keep_nothing(db: Any, duck: Any) -> None:
    text = "FIND EVENTS purchase RETURN order_id, user.id AS user_id, amount, ts"
    res = db.query(text, as_of=NOW)
    batches = res.to_batches()
    first = next(batches)
    assert isinstance(first, pa.RecordBatch)
    batches.close()  # stopped after one batch: the result was not read
    assert res.truncated is None
    streamed = pa.Table.from_batches(list(res.to_batches()))
    assert streamed.num_rows == len(res.to_arrow())
    expected = duck_rows(
        duck,
        "SELECT order_id, user_id, amount, ts FROM purchase "
        "WHERE ts < TIMESTAMPTZ '2026-11-01 00:00:00+00'",
    )
    assert_same_rows(table_rows(streamed), expected)


def test_limit_cuts_and_says_so(db: Any, duck: Any) -> None:
    users = duck_rows(duck, "SELECT count(*) FROM users")[0][0]
    cut = db.query("FIND users RETURN id ORDER BY id", limit=7)
    assert cut.to_arrow().column("id").to_pylist() == list(range(1, 8))
    assert cut.truncated is True
    whole = db.query("FIND users RETURN id", limit=users)
    assert len(whole) == users and whole.truncated is False


def test_as_of_in_every_spelling(db: Any, duck: Any) -> None:
    text = "FIND EVENTS purchase DURING LAST 7 DAYS RETURN count() AS n"
    for at in ("2026-10-15", dt.date(2026, 10, 15), dt.datetime(2026, 10, 15, tzinfo=dt.UTC)):
        got = db.query(text, as_of=at).to_arrow().column("n").to_pylist()
        expected = duck_rows(
            duck,
            "SELECT count(*) FROM purchase WHERE ts >= TIMESTAMPTZ '2026-10-08 00:00:00+00' "
            "AND ts < TIMESTAMPTZ '2026-10-15 00:00:00+00'",
        )
        assert got == [expected[0][0]], at
    later = db.query(text, as_of=NOW).to_arrow().column("n")[0].as_py()
    assert later != got[0]  # another week, another count
    with pytest.raises(eql.EqlError) as info:
        db.query(text, as_of="yesterday")
    assert info.value.code == "invalid_request"


def test_explain_is_the_sessions(db: Any, store_dir: Path) -> None:
    res = db.query("FIND users WHERE NOT DID purchase RETURN id", as_of=NOW)
    with Session.open(store_dir, read_only=True) as session:
        for stage in ("ast", "bound", "plan"):
            expected = session.explain(res.text, None, NOW, stage)
            got = res.explain(stage)
            assert (got.stage, got.text) == (stage, expected.text)
            assert str(got) == expected.text
    assert "Join anti on" in res.explain("plan").text
    with pytest.raises(eql.EqlError) as info:
        res.explain("everything")
    assert info.value.code == "invalid_request"


def test_errors_carry_code_position_and_hint(db: Any, store_dir: Path) -> None:
    text = "FIND users WHERE nme = 'x' RETURN id"
    with pytest.raises(eql.EqlError) as info:
        db.query(text)
    e = info.value
    assert isinstance(e, eql.client.Error)
    assert (e.code, e.position, e.hint) == ("E202", (1, 18), "did you mean `name`?")
    with Session.open(store_dir, read_only=True) as session, pytest.raises(eql.EqlError) as raw:
        session.prepare(text)
    assert e.diagnostics == raw.value.diagnostics and e.source == text
    assert e.status is None


def test_a_read_only_connection_refuses_writes(db: Any) -> None:
    text = "DEFINE SEGMENT vip ON users WHERE sum(purchase.amount) > 2000"
    for attempt in (
        lambda: db.define(text, refresh=True),
        lambda: db.execute(text),
        lambda: db.query(text),
        lambda: db.segment("vip").refresh(),
        lambda: db.segment("vip").drop(),
    ):
        with pytest.raises(eql.EqlError) as info:
            attempt()
        assert info.value.code == "E230"
        assert "read_only=False" in str(info.value.hint)
    assert db.segments() == []  # nothing was stored


def test_query_only_reads_execute_runs_statements(writable_dir: Path) -> None:
    with eql.connect(writable_dir) as db:
        text = "DEFINE SEGMENT vip ON users WHERE sum(purchase.amount) > 2000"
        with pytest.raises(eql.EqlError) as info:
            db.query(text)
        assert info.value.code == "E230" and "db.execute()" in str(info.value.hint)
        answer = db.execute(text).to_arrow().to_pylist()
        assert [(r["kind"], r["name"], r["definition"]) for r in answer] == [("SEGMENT", "vip", 1)]
        shown = db.query("SHOW SEGMENTS").to_arrow().to_pylist()
        assert [(r["name"], r["entity"]) for r in shown] == [("vip", "users")]
        schema = db.query("SHOW SEGMENTS").schema
        assert list(schema)[:3] == ["name", "entity", "definition"]
        assert (schema["name"], schema["definition"]) == ("string", "int")


def test_store_errors(writable_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(eql.EqlError) as info:
        eql.connect(tmp_path / "nothing-here")
    assert info.value.code == "no_store" and "eql demo" in info.value.message
    with eql.connect(writable_dir):
        with pytest.raises(eql.EqlError) as held:
            eql.connect(writable_dir)
        assert held.value.code == "store_locked" and "read_only=True" in str(held.value.hint)
        with eql.connect(writable_dir, read_only=True) as reader:  # readers may join a writer
            assert len(reader.query("FIND users RETURN id")) > 0


def test_closing_releases_the_store(writable_dir: Path) -> None:
    with eql.connect(writable_dir) as db:
        assert len(db.query("FIND stores RETURN id")) > 0
    with pytest.raises(eql.EqlError) as info:
        db.query("FIND stores RETURN id")
    assert info.value.code == "closed"
    store = Store.open(writable_dir)  # the lock was released: a writer may open it
    store.close()


def test_schema_is_the_stores(db: Any, store_dir: Path) -> None:
    schema = db.schema()
    with Session.open(store_dir, read_only=True) as session:
        model = session.store.schema
    assert [e["name"] for e in schema["entities"]] == [e.name for e in model.entities]
    users = next(e for e in schema["entities"] if e["name"] == "users")
    assert users["key"] == {"name": "id", "type": "int", "required": True, "values": None}
    gender = next(a for a in users["attributes"] if a["name"] == "gender")
    assert gender["values"] == ["female", "male", "other"]
    assert users["relations"] == [
        {"name": "home_store", "target": "stores", "cardinality": "one", "via": "home_store_id"}
    ]
    purchase = next(s for s in schema["streams"] if s["name"] == "purchase")
    assert purchase["time"] == "ts"
    assert {r["name"]: r["entity"] for r in purchase["references"]}["user"] == "users"


def test_repr_and_html_show_the_first_rows_escaped(db: Any) -> None:
    res = db.query("FIND users RETURN id, '<b>&\"x' AS tag ORDER BY id", limit=25)
    text = repr(res)
    lines = text.splitlines()
    assert lines[0] == "<eql.Result 25 rows (more exist: cut at the limit) × 2 columns>"
    assert lines[1].split() == ["id", "tag"] and lines[2].split() == ["int", "string"]
    assert [line.split()[0] for line in lines[4:14]] == [str(i) for i in range(1, 11)]
    assert lines[-1] == "(10 of 25 rows shown)"
    page = res._repr_html_()
    assert page.count("<tr>") == 11  # the header and the first 10 rows
    assert "&lt;b&gt;&amp;&quot;x" in page and "<b>" not in page
    assert "25 rows (more exist: cut at the limit) × 2 columns, first 10 shown" in page
    one = db.query("FIND users RETURN count() AS n")
    assert repr(one).splitlines()[0] == "<eql.Result 1 row × 1 column>"
