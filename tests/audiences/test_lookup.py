"""The library API for applications: membership (one key, batches), segments of a key, profiles,
reloads after a refresh, and deterministic A/B splits."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyarrow as pa
import pytest

from runtime import WRITE, Session
from runtime.lookup import Audiences, assign, bucket
from storage import ChangeSet, Store
from tests.audiences.helpers import find_ids, run


@pytest.fixture(scope="module")
def aud(session: Session) -> Audiences:
    run(session, "DEFINE SEGMENT buyers ON users WHERE DID purchase DURING LAST 90 DAYS")
    run(session, "REFRESH SEGMENT buyers")
    run(session, "DEFINE SEGMENT members ON users WHERE is_member")
    run(session, "REFRESH SEGMENT members")
    run(session, "DEFINE TAG spend ON users AS sum(purchase.amount)")
    run(session, "REFRESH TAG spend")
    return Audiences(session.store)


def test_membership_single_and_batch(session: Session, aud: Audiences) -> None:
    want = find_ids(session, "users", "DID purchase DURING LAST 90 DAYS")
    users = session.store.entity_table("users")
    keys = users.column("id").to_pylist()
    ids = users.column("__id").to_pylist()
    single = [aud.is_member("buyers", k) for k in keys]
    assert single == [i in want for i in ids]
    batch = aud.is_member_batch("buyers", np.array([*keys, -5, 10**9], dtype=np.int64))
    assert batch.tolist() == [*single, False, False]
    assert aud.is_member_batch("buyers", [*keys[:3], "nope"]).tolist() == [*single[:3], False]
    assert not aud.is_member("buyers", 10**9)


def test_segments_of_and_profile(session: Session, aud: Audiences) -> None:
    users = session.store.entity_table("users").to_pylist()
    u = next(r for r in users if r["is_member"])
    segs = aud.segments_of("users", u["id"])
    assert "members" in segs
    p = aud.profile("users", u["id"])
    assert p is not None
    assert p["attributes"]["name"] == u["name"]
    assert p["attributes"]["signup_date"] == u["signup_date"]
    assert p["segments"] == segs
    spend = session.query(f"FIND users WHERE id = {u['id']} RETURN sum(purchase.amount) AS s")
    assert p["tags"]["spend"] == spend.column("s")[0].as_py()
    assert aud.profile("users", 10**9) is None


def test_reload_after_refresh(session: Session, aud: Audiences) -> None:
    assert not aud.reload()
    run(session, "DEFINE SEGMENT members ON users WHERE is_member AND birth_year > 1990")
    run(session, "REFRESH SEGMENT members")
    assert aud.reload()
    assert aud.bitmap("members") == find_ids(session, "users", "is_member AND birth_year > 1990")


def test_ab_split_stable_and_within_one_percent() -> None:
    keys = list(range(100_000))
    groups = {"control": 10.0, "a": 45.0, "b": 45.0}
    first = assign(keys, groups, "spring-campaign")
    assert first == assign(keys, groups, "spring-campaign")
    for name, share in groups.items():
        got = first.count(name) / len(keys) * 100
        assert abs(got - share) <= 1.0, (name, got)
    other = assign(keys, groups, "another-salt")
    assert sum(a != b for a, b in zip(first, other, strict=True)) > 40_000  # the salt reshuffles
    partial = assign(keys[:1000], {"holdout": 5.0}, "x")
    assert set(partial) == {"holdout", None}
    assert 0 <= bucket("user-1", "s") < 100 and bucket("user-1", "s") == bucket("user-1", "s")
    with pytest.raises(ValueError):
        assign(keys[:1], {"a": 80, "b": 30}, "s")


def test_split_of_a_segment(aud: Audiences) -> None:
    parts = aud.split("buyers", {"control": 20, "test": 80}, "salt-1")
    members = set(aud.members("buyers").column(0).to_pylist())
    got = [set(a.to_pylist()) for a in parts.values()]
    assert got[0] | got[1] == members and not got[0] & got[1]
    key = next(iter(got[0]))
    assert aud.group_of("buyers", key, {"control": 20, "test": 80}, "salt-1") == "control"


THINGS = """
version: 1
entities:
  things:
    key: {name: id, type: int}
    attributes:
      score: int
"""


def test_batch_of_int_keys_matches_single_checks_with_gaps_and_deletes(tmp_path: Path) -> None:
    """Int keys in a dense range take the key -> member gather; keys deleted, never seen, negative
    or past the range are not members, and dense ids past the key range (ids of deleted keys)
    change nothing."""
    store = Store.create(tmp_path / "s", THINGS, "t.yaml")
    try:
        ids = list(range(0, 300))
        c = ChangeSet()
        c.upserts["things"] = pa.table({"id": ids, "score": [i % 7 for i in ids]})
        store.commit(c)
        c = ChangeSet()
        c.deletes["things"] = pa.array(list(range(200, 300)), pa.int64())  # ids past the keys
        store.commit(c)
        session = Session(store)
        session.execute("DEFINE SEGMENT hi ON things WHERE score >= 4", permissions=WRITE)
        session.execute("REFRESH SEGMENT hi", permissions=WRITE)
        aud = Audiences(store)
        probe = np.array([-5, 0, 1, 4, 5, 6, 150, 199, 200, 250, 299, 300, 10**9], dtype=np.int64)
        got = aud.is_member_batch("hi", probe).tolist()
        assert got == [aud.is_member("hi", int(k)) for k in probe]
        assert got == [0 <= k < 200 and k % 7 >= 4 for k in probe.tolist()]
    finally:
        store.close()


def _upsert(store: Store, ids: list[int], score: int) -> None:
    c = ChangeSet()
    c.upserts["things"] = pa.table({"id": ids, "score": [score] * len(ids)})
    store.commit(c)


def _delete(store: Store, ids: list[int]) -> None:
    c = ChangeSet()
    c.deletes["things"] = pa.array(ids, pa.int64())
    store.commit(c)


def test_reload_keeps_the_key_map_across_updates_and_rebuilds_it_when_keys_change(
    tmp_path: Path,
) -> None:
    """An update of attributes alone keeps the loaded key -> id map (a reader following a CDC
    apply of updates does not rebuild it each tick); a created, deleted or re-created key
    rebuilds it. After every step the map equals a fresh load's (the oracle)."""
    store = Store.create(tmp_path / "s", THINGS, "t.yaml")
    try:
        _upsert(store, list(range(10)), 1)
        aud = Audiences(store)
        loaded = aud._state.entities["things"]

        def same_as_fresh() -> None:
            assert aud.key_ids("things") == Audiences(store).key_ids("things")

        _upsert(store, [1, 2, 3], 5)  # existing keys: attributes only
        assert store.keys_version("things") == 1
        aud.reload()
        assert aud._state.entities["things"] is loaded  # kept, not rebuilt
        assert aud._state.entities["things"].version == store.version("things")
        same_as_fresh()
        steps = [
            lambda: _upsert(store, [10, 11], 2),  # created
            lambda: _delete(store, [4]),  # deleted
            lambda: _upsert(store, [4], 3),  # created again: its old id, alive again
            lambda: _delete(store, [99]),  # a key that is not there: no change of keys
            lambda: _upsert(store, [0, 10], 7),  # updates only
        ]
        rebuilt = [True, True, True, False, False]
        for step, rebuild in zip(steps, rebuilt, strict=True):
            before = aud._state.entities["things"]
            step()
            aud.reload()
            assert (aud._state.entities["things"] is not before) == rebuild
            same_as_fresh()
        assert 4 in aud.key_ids("things") and 99 not in aud.key_ids("things")
    finally:
        store.close()
