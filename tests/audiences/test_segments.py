"""Segments: members equal FIND's rows, set algebra through bitmaps, versions with enter/exit
diffs after data changes, history of definitions, size, export, and STO-2 after reopening."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq
import pytest
from pyroaring import BitMap

from eql.diagnostics import EqlError
from runtime import Session
from runtime.lookup import Audiences
from storage import ChangeSet, Store
from tests.audiences.helpers import NOW, find_ids, run, stored_bitmap
from tests.eql.helpers import build_demo_store

SEGMENTS = [
    (
        "lapsed_vip",
        "users",
        "sum(purchase.amount DURING LAST 365 DAYS) > 1000 AND NOT DID purchase DURING LAST 60 DAYS",
    ),
    (
        "app_buyers",
        "users",
        "DID purchase WHERE channel = 'app' DURING LAST 90 DAYS OR home_store.city = 'Shanghai'",
    ),
    ("busy_stores", "stores", "count(purchase DURING LAST 30 DAYS) >= 3 AND region != 'west'"),
    ("hot_products", "products", "count(purchase DURING LAST 30 DAYS) >= 3"),
    ("no_email", "users", "email IS NULL AND NOT is_member"),
]


@pytest.fixture(scope="module")
def defined(session: Session) -> Session:
    for name, entity, where in SEGMENTS:
        run(session, f"DEFINE SEGMENT {name} ON {entity} WHERE {where}")
        out = run(session, f"REFRESH SEGMENT {name}")
        assert out.column("version").to_pylist() == [1]
    return session


@pytest.mark.parametrize("name,entity,where", SEGMENTS, ids=[s[0] for s in SEGMENTS])
def test_members_equal_find(defined: Session, name: str, entity: str, where: str) -> None:
    expected = find_ids(defined, entity, where)
    assert stored_bitmap(defined, name) == expected
    assert len(expected) > 0, "a segment of nobody tests nothing"
    # `in segment` reads the bitmap and gives the same rows as the predicate
    key = defined.store.entity(entity).key.name
    via_segment = defined.query(f"FIND {entity} WHERE in segment {name} RETURN {key}", None, NOW)
    assert via_segment.num_rows == len(expected)


def test_in_segment_reads_the_bitmap_not_the_predicate(defined: Session) -> None:
    plan = defined.explain("FIND users WHERE in segment lapsed_vip", None, NOW).text
    d = defined.audiences.definition("SEGMENT", "lapsed_vip")
    assert d is not None
    assert f"__seg__{d.generation}__v1" in plan  # the table of one version, by generation
    assert "purchase" not in plan.split("-- datafusion")[0].split("-- logical plan")[1]


def test_set_algebra(defined: Session) -> None:
    """Membership is two-valued: `NOT in segment b` holds for every row not in b, also where b's
    predicate is null (so it is the set difference, not `NOT (predicate)`)."""
    a = find_ids(defined, "users", SEGMENTS[0][2])
    b = find_ids(defined, "users", SEGMENTS[1][2])
    got = defined.query(
        "FIND users WHERE in segment lapsed_vip AND NOT in segment app_buyers RETURN id", None, NOW
    )
    assert _ids(defined, got.column("id").to_pylist()) == a - b
    got = defined.query(
        "FIND users WHERE in segment lapsed_vip OR in segment app_buyers RETURN id", None, NOW
    )
    assert _ids(defined, got.column("id").to_pylist()) == a | b
    got = defined.query("FIND users WHERE NOT in segment app_buyers RETURN count() AS n", None, NOW)
    assert got.column("n").to_pylist() == [defined.store.count("users") - len(b)]


def _ids(session: Session, keys: list[int]) -> BitMap:
    return BitMap(session.store.dense_id("users", k) for k in keys)


def test_segment_inside_aggregate_and_grouping(defined: Session) -> None:
    per_store = defined.query(
        "FIND stores RETURN id, count(members WHERE in segment lapsed_vip) AS n", None, NOW
    )
    members_with_store = defined.query(
        "FIND users WHERE in segment lapsed_vip AND home_store.id IS NOT NULL RETURN count() AS n",
        None,
        NOW,
    )
    assert sum(per_store.column("n").to_pylist()) == members_with_store.column("n")[0].as_py()


def test_size_without_query_and_export(defined: Session, tmp_path: Path) -> None:
    aud = Audiences(defined.store)
    size = len(stored_bitmap(defined, "hot_products"))
    assert aud.size("hot_products") == size == aud.size("hot_products", 1)
    assert aud.export("hot_products", tmp_path / "m.csv", "csv") == size
    assert aud.export("hot_products", tmp_path / "m.parquet", "parquet") == size
    keys = set(pq.read_table(tmp_path / "m.parquet").column("sku").to_pylist())
    assert keys == set(pacsv.read_csv(tmp_path / "m.csv").column("sku").to_pylist())
    want = defined.query(f"FIND products WHERE {SEGMENTS[3][2]} RETURN sku", None, NOW).column(
        "sku"
    )
    assert keys == set(want.to_pylist())


def test_show_and_describe(defined: Session) -> None:
    shown = run(defined, "SHOW SEGMENTS")
    assert set(shown.column("name").to_pylist()) >= {s[0] for s in SEGMENTS}
    described = run(defined, "DESCRIBE SEGMENT lapsed_vip")
    assert described.column("size").to_pylist() == [len(stored_bitmap(defined, "lapsed_vip"))]


def test_enter_exit_after_data_change(session: Session) -> None:
    run(session, "DEFINE SEGMENT members ON users WHERE is_member")
    run(session, "REFRESH SEGMENT members")
    before = stored_bitmap(session, "members")
    users = session.store.entity_table("users")
    ids = dict(zip(users.column("id").to_pylist(), users.column("__id").to_pylist(), strict=True))
    flags = dict(
        zip(users.column("id").to_pylist(), users.column("is_member").to_pylist(), strict=True)
    )
    leaving = [k for k, v in flags.items() if v][:3]
    joining = [k for k, v in flags.items() if not v][:2]
    change = ChangeSet(effective_time=NOW - dt.timedelta(hours=1))  # before the refresh's time
    change.upsert(
        "users",
        pa.table(
            {
                "id": [*leaving, *joining, 999_001],
                "is_member": [False] * 3 + [True] * 3,
            }
        ),
    )
    session.store.commit(change)
    out = run(session, "REFRESH SEGMENT members")
    assert out.column("entered").to_pylist() == [3] and out.column("exited").to_pylist() == [3]
    d = session.audiences.definition("SEGMENT", "members")
    r = None if d is None else session.audiences.latest(d)
    assert r is not None and r.version == 2
    entered = stored_bitmap(session, "members", "+")
    exited = stored_bitmap(session, "members", "-")
    new_id = session.store.dense_id("users", 999_001)
    assert set(entered) == {ids[k] for k in joining} | {new_id}
    assert set(exited) == {ids[k] for k in leaving}
    assert stored_bitmap(session, "members") == (before - exited) | entered
    changes = Audiences(session.store).changes("members", 1, 2)
    assert sorted(changes.entered.to_pylist()) == sorted([*joining, 999_001])
    assert sorted(changes.exited.to_pylist()) == sorted(leaving)


def test_redefine_keeps_history_and_drop(session: Session) -> None:
    run(session, "DEFINE SEGMENT young ON users WHERE birth_year >= 1995")
    run(session, "REFRESH SEGMENT young")
    run(session, "DEFINE SEGMENT young ON users WHERE birth_year >= 2000")
    run(session, "REFRESH SEGMENT young")
    defs = session.audiences.definitions("SEGMENT", "young")
    assert [d.version for d in defs] == [1, 2] and "1995" in defs[0].text
    d = run(session, "DESCRIBE SEGMENT young")
    assert d.column("definition").to_pylist() == [1, 2]
    assert stored_bitmap(session, "young") == find_ids(session, "users", "birth_year >= 2000")
    with pytest.raises(EqlError) as info:
        run(session, "DEFINE SEGMENT young ON stores WHERE area_sqm > 10")
    assert info.value.codes[0] == "E229"
    run(session, "DROP SEGMENT young")
    assert session.audiences.definitions("SEGMENT", "young") == []
    with pytest.raises(EqlError) as info:
        session.query("FIND users WHERE in segment young", None, NOW)
    assert info.value.codes[0] == "E225"


def test_writes_need_a_scope(session: Session) -> None:
    with pytest.raises(EqlError) as info:
        session.execute("DEFINE SEGMENT x ON users WHERE is_member", None, NOW)
    assert info.value.codes == ("E230",) or info.value.codes[0] == "E230"
    assert session.query("SHOW SEGMENTS", None, NOW).num_rows >= 0


def test_explain_membership(defined: Session) -> None:
    bm = stored_bitmap(defined, "lapsed_vip")
    member = defined.store.key_for_id("users", next(iter(bm)))
    out = run(defined, f"EXPLAIN MEMBERSHIP lapsed_vip FOR {member}")
    rows = {r["check"]: r["value"] for r in out.to_pylist()}
    assert rows["member of lapsed_vip v1 (stored)"] == "true"
    assert rows["NOT DID purchase DURING LAST 60 DAYS"] == "true"
    assert float(rows["sum(purchase.amount DURING LAST 365 DAYS)"]) > 1000
    with pytest.raises(EqlError) as info:
        run(defined, "EXPLAIN MEMBERSHIP lapsed_vip FOR 123456789")
    assert info.value.codes[0] == "E232"
    by_param = defined.execute(
        "EXPLAIN MEMBERSHIP lapsed_vip FOR $k", params={"k": str(member)}, as_of=NOW
    )
    assert by_param.table.to_pylist() == out.to_pylist()  # type: ignore[union-attr]
    with pytest.raises(EqlError) as info:  # a parameter of the wrong type names the parameter
        defined.execute("EXPLAIN MEMBERSHIP lapsed_vip FOR $k", params={"k": "not a number"})
    assert info.value.codes[0] == "E211" and "$k" in info.value.message


TIER = (
    "CASE WHEN sum(purchase.amount) >= 2000 THEN 'high' "
    "WHEN sum(purchase.amount) >= 300 THEN 'mid' ELSE 'low' END"
)


def test_sto2_recomputed_equals_stored_after_reopen(tmp_path: Path) -> None:
    """Bitmaps and tags recomputed from base data equal the stored ones, also after reopening."""
    store = build_demo_store(tmp_path, users=150, seed=3)
    session = Session(store)
    for name, entity, where in SEGMENTS:
        run(session, f"DEFINE SEGMENT {name} ON {entity} WHERE {where}")
        run(session, f"REFRESH SEGMENT {name}")
    run(session, f"DEFINE TAG tier ON users AS {TIER}")
    run(session, "REFRESH TAG tier")
    for reopen in (False, True):
        if reopen:
            store.close()
            store = Store.open(tmp_path / "store", read_only=True)
            session = Session(store)
        for name, entity, where in SEGMENTS:
            assert stored_bitmap(session, name) == find_ids(session, entity, where), name
        stored = session.query("FIND users RETURN id, tier", None, NOW).sort_by("id")
        recomputed = session.query(f"FIND users RETURN id, {TIER} AS tier", None, NOW)
        assert stored.to_pylist() == recomputed.sort_by("id").to_pylist()
        aud = Audiences(store)
        assert aud.bitmap("lapsed_vip") == stored_bitmap(session, "lapsed_vip")
    store.close()
