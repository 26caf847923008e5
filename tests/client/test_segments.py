"""Segments and tags through a store connection: define (with its first refresh), refresh,
members at a version, membership, changes, versions, drop, and the errors of an unknown segment,
one never refreshed and a version it does not have; members checked against DuckDB."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest

import eql
from runtime.audiences import versions
from runtime.lookup import Audiences
from tests.eql.helpers import duck_rows

BIG = "DEFINE SEGMENT big ON users WHERE sum(purchase.amount) > 1000"
FIRST, SECOND = "2026-09-01", "2026-11-01"


def big_members(duck: Any, at: str) -> list[int]:
    """Users whose purchases before `at` sum to more than 1000 (the segment's condition)."""
    rows = duck_rows(
        duck,
        "SELECT u.id FROM users u JOIN purchase p ON p.user_id = u.id "
        f"WHERE p.ts < TIMESTAMPTZ '{at} 00:00:00+00' GROUP BY u.id "
        "HAVING sum(p.amount) > 1000 ORDER BY u.id",
    )
    return [int(r[0]) for r in rows]


@pytest.fixture(scope="module")
def db(store_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Any]:
    """A writable connection to a copy of the store, with `big` refreshed at FIRST and SECOND."""
    import shutil

    copy = Path(shutil.copytree(store_dir, tmp_path_factory.mktemp("segments") / "store"))
    with eql.connect(copy) as connection:
        seg = connection.define(BIG, refresh=True, as_of=FIRST)
        assert isinstance(seg, eql.client.Segment)
        facts = seg.refresh(as_of=SECOND)
        assert (facts["kind"], facts["version"]) == ("segment", 2)
        yield connection


def test_members_at_each_version(db: Any, duck: Any) -> None:
    seg = db.segment("big")
    first, second = big_members(duck, FIRST), big_members(duck, SECOND)
    assert 0 < len(first) < len(second)
    assert seg.members(1).column("id").to_pylist() == first
    assert seg.members(2).column("id").to_pylist() == second
    assert seg.members().column("id").to_pylist() == second  # the latest
    assert seg.members().schema.names == ["id"]
    in_segment = db.query("FIND users WHERE in segment big RETURN id ORDER BY id", as_of=SECOND)
    assert in_segment.to_arrow().column("id").to_pylist() == second


def test_versions_and_description(db: Any, duck: Any) -> None:
    seg = db.segment("BIG")  # names resolve regardless of case
    versions = seg.versions()
    assert [(v["version"], v["as_of"].date().isoformat()) for v in versions] == [
        (1, FIRST),
        (2, SECOND),
    ]
    assert [v["size"] for v in versions] == [
        len(big_members(duck, FIRST)),
        len(big_members(duck, SECOND)),
    ]
    detail = seg.describe()
    assert (detail["name"], detail["kind"], detail["entity"], detail["version"]) == (
        "big",
        "segment",
        "users",
        2,
    )
    assert detail["definitions"][0]["text"] == BIG
    listed = db.segments()
    assert [(s["name"], s["size"]) for s in listed] == [("big", versions[-1]["size"])]


def test_changes_between_versions(db: Any, duck: Any) -> None:
    first, second = set(big_members(duck, FIRST)), set(big_members(duck, SECOND))
    diff = db.segment("big").changes(1, 2)
    assert (diff.segment, diff.since, diff.to) == ("big", 1, 2)
    assert diff.entered.to_pylist() == sorted(second - first)
    assert diff.exited.to_pylist() == sorted(first - second)
    back = db.segment("big").changes(2, 1)
    assert back.entered.to_pylist() == sorted(first - second)
    assert back.exited.to_pylist() == sorted(second - first)


def test_membership_of_one_key(db: Any, duck: Any) -> None:
    members = big_members(duck, SECOND)
    users = [int(r[0]) for r in duck_rows(duck, "SELECT id FROM users ORDER BY id")]
    outside = next(u for u in users if u not in members)
    seg = db.segment("big")
    assert seg.is_member(members[0]) is True
    assert seg.is_member(outside) is False
    assert seg.is_member(10**12) is False  # no such user: not a member
    with pytest.raises(eql.EqlError) as info:
        seg.is_member(str(members[0]))  # users have int keys
    assert info.value.code == "invalid_key"


def test_the_segment_errors(db: Any) -> None:
    with pytest.raises(eql.EqlError) as info:
        db.segment("big").members(3)
    e = info.value
    assert e.code == "unknown_version"
    assert e.message == "segment big has no version 3: it has versions 1-2"
    assert e.hint is not None and "versions()" in e.hint
    with pytest.raises(eql.EqlError) as info:
        db.segment("big").changes(1, 9)
    assert info.value.code == "unknown_version"
    for call in (
        lambda: db.segment("nothing").members(),
        lambda: db.segment("nothing").is_member(1),
        lambda: db.segment("nothing").describe(),
    ):
        with pytest.raises(eql.EqlError) as info:
            call()
        assert info.value.code == "unknown_segment"
    later = db.define("DEFINE SEGMENT later ON users WHERE is_member")
    assert later.versions() == []
    for call in (later.members, lambda: later.is_member(1)):
        with pytest.raises(eql.EqlError) as info:
            call()
        assert info.value.code == "not_refreshed"
    later.drop()
    with pytest.raises(eql.EqlError) as info:
        later.members()
    assert info.value.code == "unknown_segment"
    with pytest.raises(eql.EqlError) as info:
        db.define("FIND users RETURN id")
    assert info.value.code == "wrong_statement"


def test_string_keys(db: Any, duck: Any) -> None:
    hot = db.define(
        "DEFINE SEGMENT hot ON products WHERE count(purchase) >= 5", refresh=True, as_of=SECOND
    )
    expected = duck_rows(
        duck,
        "SELECT pr.sku FROM products pr JOIN purchase p ON p.sku = pr.sku "
        "WHERE p.ts < TIMESTAMPTZ '2026-11-01 00:00:00+00' GROUP BY pr.sku "
        "HAVING count(*) >= 5 ORDER BY pr.sku",
    )
    assert expected
    assert hot.members().column("sku").to_pylist() == [r[0] for r in expected]
    assert hot.is_member(expected[0][0]) is True
    with pytest.raises(eql.EqlError) as info:
        hot.is_member(1)
    assert info.value.code == "invalid_key"
    hot.drop()


def test_tags(db: Any, duck: Any) -> None:
    tier = db.define(
        "DEFINE TAG spend_tier ON users AS "
        "CASE WHEN sum(purchase.amount) > 1000 THEN 'high' ELSE 'low' END",
        refresh=True,
        as_of=SECOND,
    )
    assert isinstance(tier, eql.client.Tag)
    assert [v["version"] for v in tier.versions()] == [1]
    assert tier.describe()["kind"] == "tag"
    assert [t["name"] for t in db.tags()] == ["spend_tier"]
    high = db.query("FIND users WHERE spend_tier = 'high' RETURN id ORDER BY id")
    assert high.to_arrow().column("id").to_pylist() == big_members(duck, SECOND)
    tier.drop()
    assert db.tags() == []


@pytest.mark.parametrize("version", ["1", True, 1.0], ids=["str", "bool", "float"])
def test_a_version_is_a_whole_number(db: Any, version: Any) -> None:
    """Not `segment big has no version 1: it has versions 1-2` for `members("1")`."""
    seg = db.segment("big")
    for call in (
        lambda: seg.members(version),
        lambda: seg.changes(version, 2),
        lambda: seg.changes(1, version),
    ):
        with pytest.raises(eql.EqlError) as info:
            call()
        assert info.value.code == "invalid_request"
        assert info.value.message == (
            f"a segment version is a whole number (1, 2, ...), not {version!r} "
            f"({type(version).__name__})"
        )
    with pytest.raises(TypeError, match="a segment version is a whole number"):
        versions.check(Audiences(db.session.store).aud, "big", version)  # the CLI's, the API's


def test_numpy_scalars_are_taken_as_pythons(db: Any, duck: Any) -> None:
    seg = db.segment("big")
    members = big_members(duck, SECOND)
    assert seg.is_member(np.int64(members[0])) is True
    assert seg.is_member(np.int32(10**6)) is False
    assert seg.members(np.int64(1)).equals(seg.members(1))
    diff = seg.changes(np.int64(1), np.uint8(2))
    assert diff.entered.equals(seg.changes(1, 2).entered)
    with pytest.raises(eql.EqlError) as info:
        seg.is_member(np.str_(str(members[0])))  # users have int keys
    assert info.value.code == "invalid_key"
    with pytest.raises(eql.EqlError) as info:
        seg.is_member(np.bool_(True))
    assert info.value.code == "invalid_key"


def test_an_unknown_segment_names_the_defined_ones_whatever_the_call(db: Any) -> None:
    expected = "segment nothing is not defined (defined segments: big)"
    for call in (
        lambda s: s.members(),
        lambda s: s.is_member(1),
        lambda s: s.changes(1, 2),
        lambda s: s.describe(),
        lambda s: s.versions(),
        lambda s: s.refresh(as_of=SECOND),
        lambda s: s.drop(),
    ):
        with pytest.raises(eql.EqlError) as info:
            call(db.segment("nothing"))
        assert (info.value.code, info.value.message) == ("unknown_segment", expected)
        assert info.value.hint == "db.segments() lists the segments"
