"""`AS OF t` reads entity attributes and relation paths as of t (attribute history), through
`runtime.Session` on a small retail store of our own: an upsert of an attribute leaves answers
for earlier times unchanged (the issue's `home_store.city` example), a delete, a segment
refreshed at a past reference time, the plan cache across times, a query at now reading the
current tables, and the retention horizon (E305)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

from entities import parse_schema
from eql.catalog import EntityTable, StreamTable
from eql.compiler import compile_query
from eql.diagnostics import EqlError
from eql.planner import logical
from eql.planner.rules import WITHOUT_ROLLUPS
from runtime import WRITE, Session
from storage import ChangeSet, Store
from tests.helpers_store import RETAIL_SCHEMA

LOADED = dt.datetime(2026, 9, 1, tzinfo=dt.UTC)  # the first import (valid since forever)
MOVED = dt.datetime(2026, 10, 15, 12, tzinfo=dt.UTC)  # user 3 moves to Shanghai
RENAMED = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)  # store 2 (Lyon) becomes a Shanghai store
LEFT = dt.datetime(2026, 10, 25, tzinfo=dt.UTC)  # user 1 is deleted
CITIES = {1: "Shanghai", 2: "Lyon", 3: "Lima"}
HOMES = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 1, 8: 2}  # user -> home store
SHANGHAI = "FIND users WHERE home_store.city = 'Shanghai' RETURN id ORDER BY id"


def users(homes: dict[int, int]) -> pa.Table:
    ids = sorted(homes)
    return pa.table(
        {
            "id": pa.array(ids, pa.int64()),
            "name": [f"user {i}" for i in ids],
            "home_store_id": pa.array([homes[i] for i in ids], pa.int64()),
        }
    )


def stores(cities: dict[int, str]) -> pa.Table:
    ids = sorted(cities)
    return pa.table({"id": pa.array(ids, pa.int64()), "city": [cities[i] for i in ids]})


def commit(store: Store, at: dt.datetime, **kw: Any) -> None:
    change = ChangeSet(effective_time=at)
    for entity, rows in kw.items():
        if isinstance(rows, list):
            change.deletes[entity] = rows
        else:
            change.upsert(entity, rows)
    store.commit(change)


def expected(homes: dict[int, int], cities: dict[int, str]) -> list[int]:
    """The Shanghai users of a state of the world, computed here from the data itself."""
    return sorted(u for u, s in homes.items() if cities[s] == "Shanghai")


def ids(session: Session, text: str, **kw: Any) -> list[int]:
    rows = session.execute(text, **kw)
    return [r["id"] for r in rows.table.to_pylist()]  # type: ignore[union-attr]


@pytest.fixture
def session(tmp_path: Path) -> Iterator[Session]:
    """A store of 3 stores and 8 users, first imported at LOADED (each test changes its own)."""
    store = Store.create(tmp_path / "s", RETAIL_SCHEMA.read_text(), "retail.yaml")
    commit(store, LOADED, stores=stores(CITIES))
    commit(store, LOADED, users=users(HOMES))
    s = Session(store)
    yield s
    store.close()


def test_an_upsert_leaves_answers_for_earlier_times_unchanged(session: Session) -> None:
    """The issue's example: a relation path after a `home_store_id` upsert, then a change of the
    related store's city; each AS OF answers what held then, before and after the changes."""
    before = {t: ids(session, f"{SHANGHAI} AS OF '{t}'") for t in ("2026-10-01", "2026-10-16")}
    assert before == {t: expected(HOMES, CITIES) for t in before}
    commit(session.store, MOVED, users=users({3: 1}))  # a partial upsert: home_store_id only
    moved = {**HOMES, 3: 1}
    assert ids(session, f"{SHANGHAI} AS OF '2026-10-16'") == expected(moved, CITIES)
    assert ids(session, f"{SHANGHAI} AS OF '2026-10-01'") == before["2026-10-01"]
    commit(session.store, RENAMED, stores=stores({2: "Shanghai"}))  # then the store's city
    renamed = {**CITIES, 2: "Shanghai"}
    assert ids(session, f"{SHANGHAI} AS OF '2026-10-01'") == before["2026-10-01"]
    assert ids(session, f"{SHANGHAI} AS OF '2026-10-16'") == expected(moved, CITIES)
    assert ids(session, f"{SHANGHAI} AS OF '2026-10-16'") != before["2026-10-16"]
    assert ids(session, SHANGHAI) == expected(moved, renamed)
    # exactly at the change: the new value ([from, to) validity); a microsecond before: the old
    just = MOVED - dt.timedelta(microseconds=1)
    assert ids(session, SHANGHAI, as_of=just) == before["2026-10-01"]
    assert ids(session, SHANGHAI, as_of=MOVED) == expected(moved, CITIES)
    name = session.execute("FIND users WHERE id = 3 RETURN name AS OF '2026-10-01'")
    assert name.table.to_pylist() == [{"name": "user 3"}]  # type: ignore[union-attr]


def test_a_deleted_entity_is_absent_after_its_delete_and_present_before(session: Session) -> None:
    count = "FIND users RETURN count() AS n"
    at_before = session.execute(count, as_of=LEFT - dt.timedelta(hours=1)).table
    commit(session.store, LEFT, users=[1])
    assert session.execute(count, as_of=LEFT - dt.timedelta(hours=1)).table == at_before
    assert 1 in ids(session, "FIND users RETURN id", as_of=LEFT - dt.timedelta(hours=1))
    assert 1 not in ids(session, "FIND users RETURN id", as_of=LEFT)
    assert 1 not in ids(session, "FIND users RETURN id")


def test_plans_cached_for_one_time_answer_for_another(session: Session) -> None:
    """A plan that reads no clock is cached once for all reference times: each caller still
    reads the tables of its own time (the caller's, else the text's AS OF)."""
    text = "FIND users WHERE home_store.city = 'Lima' RETURN id ORDER BY id"
    now = ids(session, text)
    then = ids(session, text, as_of="2026-09-15")
    assert ids(session, text) == now
    assert ids(session, text, as_of="2026-09-15") == then
    commit(session.store, LEFT + dt.timedelta(days=1), users=users({8: 3}))  # moves to Lima
    assert ids(session, text) == [*now, 8]
    assert ids(session, text, as_of="2026-09-15") == then
    in_text = f"{text} AS OF '2026-09-15'"
    assert ids(session, in_text, as_of=dt.datetime.now(dt.UTC)) == then  # the text's time wins


def test_a_query_at_now_reads_the_current_tables(session: Session) -> None:
    commit(session.store, MOVED, users=users({3: 1}))
    commit(session.store, RENAMED, stores=stores({2: "Shanghai"}))
    compiled = session.engine.compile(SHANGHAI)
    assert session.engine.reads(compiled) == {EntityTable("users"), EntityTable("stores")}
    session.engine.run(compiled)
    past = session.engine.compile(SHANGHAI, now=dt.datetime(2026, 10, 1, tzinfo=dt.UTC))
    at = 1_790_812_800_000_000  # 2026-10-01 in UTC microseconds
    assert session.engine.reads(past) == {EntityTable("users", at), EntityTable("stores", at)}
    # after any commit, a query without AS OF is at now: current tables again
    commit(session.store, dt.datetime.now(dt.UTC), users=users({2: 2}))
    assert session.engine.reads(session.engine.compile(SHANGHAI)) == {
        EntityTable("users"),
        EntityTable("stores"),
    }


def test_a_segment_refreshed_at_a_past_time_equals_one_refreshed_then(session: Session) -> None:
    session.execute(
        "DEFINE SEGMENT shanghai_homes ON users WHERE home_store.city = 'Shanghai'",
        permissions=WRITE,
    )
    past = "2026-10-10"
    first = session.execute("REFRESH SEGMENT shanghai_homes", as_of=past, permissions=WRITE)
    commit(session.store, dt.datetime.now(dt.UTC), users=users({5: 1, 6: 1}))  # two move
    second = session.execute("REFRESH SEGMENT shanghai_homes", as_of=past, permissions=WRITE)
    now = session.execute("REFRESH SEGMENT shanghai_homes", permissions=WRITE)
    d = session.audiences.definition("SEGMENT", "shanghai_homes")
    assert d is not None
    v1, v2, v3 = (r.table.to_pylist()[0]["version"] for r in (first, second, now))  # type: ignore[union-attr]
    members = [session.audiences.bitmap(d.generation, v) for v in (v1, v2, v3)]
    assert members[0] == members[1]
    assert members[0] is not None and members[2] is not None
    assert {5, 6} <= {session.store.key_for_id("users", i) for i in members[2]}
    assert not {5, 6} & {session.store.key_for_id("users", i) for i in members[0]}


RETENTION = RETAIL_SCHEMA.read_text().replace(
    "  users:\n    key: {name: id, type: int}\n",
    "  users:\n    key: {name: id, type: int}\n    history: 30 days\n",
)


def test_an_as_of_before_the_retention_horizon_is_e305(tmp_path: Path) -> None:
    assert "history: 30 days" in RETENTION
    store = Store.create(tmp_path / "s", RETENTION, "r")
    old = dt.datetime(2024, 1, 1, tzinfo=dt.UTC)
    commit(store, old, stores=stores(CITIES), users=users(HOMES))
    commit(store, old + dt.timedelta(days=1), users=users({3: 1}))
    store.close()
    with Session.open(tmp_path / "s") as session:  # a writer's open drops the old records
        with pytest.raises(EqlError) as info:
            session.execute(f"{SHANGHAI} AS OF '2024-01-01'")
        err = info.value
        assert err.code == "E305"
        assert "2024-01-02T00:00:00Z" in err.message and "history: 30 days" in err.message
        assert err.diagnostics[0].span is not None  # at the AS OF
        assert err.hint is not None and "history:" in err.hint
        # from the horizon on, the answer is exact; now, the current rows
        assert ids(session, f"{SHANGHAI} AS OF '2024-01-02'") == expected({**HOMES, 3: 1}, CITIES)
        assert ids(session, SHANGHAI) == expected({**HOMES, 3: 1}, CITIES)


def test_replace_tables_swaps_exactly_the_mapped_scans() -> None:
    """`logical.replace_tables` (pure): the mapped tables are read instead, every other node is
    the same; a mapping of tables the plan does not read gives the very same plan."""
    schema = parse_schema(RETAIL_SCHEMA.read_text(), "retail.yaml")
    text = (
        "FIND users WHERE home_store.city = 'Shanghai' AND DID purchase DURING LAST 7 DAYS "
        "RETURN id, count(purchase) AS n"
    )
    # (without the per-entity index, so that the stream is read as a table of its own)
    plan = compile_query(text, schema, now=LOADED, rules=WITHOUT_ROLLUPS).plan
    users, stores_ = EntityTable("users"), EntityTable("stores")
    assert {users, stores_, StreamTable("purchase")} == logical.tables(plan)
    past = {users: EntityTable("users", 5), stores_: EntityTable("stores", 5)}
    swapped = logical.replace_tables(plan, past)
    assert logical.tables(swapped) == {*past.values(), StreamTable("purchase")}
    assert logical.replace_tables(swapped, {v: k for k, v in past.items()}) == plan
    assert logical.output_ids(swapped) == logical.output_ids(plan)
    assert logical.replace_tables(plan, {EntityTable("products"): users}) is plan
