"""A segment's versions by number (`runtime.audiences.versions`): an unknown version, a segment
never defined and one never refreshed are each an error naming what exists, never an empty
answer; known versions answer what the stored bitmaps hold."""

from __future__ import annotations

import datetime as dt

import pytest

from runtime import Session
from runtime.audiences import versions
from runtime.definitions import Unknown
from runtime.lookup import Audiences
from tests.audiences.helpers import run

DAYS = (dt.datetime(2026, 8, 1, tzinfo=dt.UTC), dt.datetime(2026, 9, 15, tzinfo=dt.UTC))
WHERE = "DID purchase DURING LAST 30 DAYS"


@pytest.fixture(scope="module")
def aud(session: Session) -> Audiences:
    run(session, f"DEFINE SEGMENT v_buyers ON users WHERE {WHERE}")
    for day in (*DAYS, dt.datetime(2026, 11, 1, tzinfo=dt.UTC)):
        run(session, "REFRESH SEGMENT v_buyers", day)
    run(session, f"DEFINE SEGMENT v_unrefreshed ON users WHERE {WHERE}")
    return Audiences(session.store)


def _keys(session: Session, day: dt.datetime) -> set[int]:
    rows = session.query(f"FIND users WHERE {WHERE} RETURN id", None, day)
    return set(rows.column("id").to_pylist())


def test_known_versions_answer_their_members(session: Session, aud: Audiences) -> None:
    v1, v2 = (_keys(session, d) for d in DAYS)
    assert v1 and v2 and v1 != v2  # the versions differ: a test that can fail
    assert set(versions.members(aud, "v_buyers", 1).column("id").to_pylist()) == v1
    assert set(versions.members(aud, "V_BUYERS", 2).column("id").to_pylist()) == v2
    diff = versions.changes(aud, "v_buyers", 1, 2)
    assert set(diff.entered.to_pylist()) == v2 - v1
    assert set(diff.exited.to_pylist()) == v1 - v2
    d, parts = versions.split(aud, "v_buyers", {"a": 50, "b": 50}, "salt", 1)
    assert d.entity == "users" and sorted(k for p in parts.values() for k in p.to_pylist()) == (
        sorted(v1)
    )


@pytest.mark.parametrize(
    "call",
    [
        lambda aud: versions.members(aud, "v_buyers", 9),
        lambda aud: versions.changes(aud, "v_buyers", 1, 9),
        lambda aud: versions.changes(aud, "v_buyers", 9, 2),
        lambda aud: versions.changes(aud, "v_buyers", 0, 2),
        lambda aud: versions.split(aud, "v_buyers", {"a": 100}, "s", 4),
    ],
    ids=["members", "changes-to", "changes-since", "changes-zero", "split"],
)
def test_an_unknown_version_is_an_error_naming_the_versions(aud: Audiences, call: object) -> None:
    with pytest.raises(versions.UnknownVersion) as caught:
        call(aud)  # type: ignore[operator]
    assert "segment v_buyers has no version" in str(caught.value)
    assert str(caught.value).endswith("it has versions 1-3")
    assert isinstance(caught.value, Unknown) and caught.value.what == "version"
    assert caught.value.versions == (1, 2, 3)


def test_a_segment_never_defined_is_not_defined(aud: Audiences) -> None:
    with pytest.raises(versions.NotDefined) as caught:
        versions.members(aud, "nope")
    text = str(caught.value)
    assert text.startswith("segment nope is not defined")
    assert "v_buyers" in text and "v_unrefreshed" in text
    assert caught.value.what == "segment"


def test_a_defined_segment_never_refreshed_says_so(aud: Audiences) -> None:
    with pytest.raises(versions.NotRefreshed, match="v_unrefreshed is defined but was never"):
        versions.members(aud, "v_unrefreshed")
    d = versions.definition(aud.aud, "v_unrefreshed")
    with pytest.raises(versions.UnknownVersion, match="no version 1: it was never refreshed"):
        versions.require(aud.aud, d, 1)


def test_versions_are_named_as_ranges() -> None:
    assert str(versions.UnknownVersion("s", 9, [1])).endswith("it has version 1")
    assert str(versions.UnknownVersion("s", 9, [1, 2, 3, 5])).endswith("versions 1-3, 5")


def test_an_answer_sees_refreshes_made_after_the_audiences_loaded(
    session: Session, aud: Audiences
) -> None:
    run(session, f"DEFINE SEGMENT v_late ON users WHERE {WHERE}")
    run(session, "REFRESH SEGMENT v_late", DAYS[0])
    assert aud.segment("v_late") is None  # loaded before the refresh
    got = set(versions.members(aud, "v_late", 1).column("id").to_pylist())
    assert got == _keys(session, DAYS[0])


def test_the_latest_members_follow_a_refresh_made_after_loading(session: Session) -> None:
    """An `Audiences` loaded before a refresh answers the new latest version, not the one it
    had loaded (the generation is the same: only the version moved)."""
    run(session, f"DEFINE SEGMENT v_moving ON users WHERE {WHERE}")
    run(session, "REFRESH SEGMENT v_moving", DAYS[0])
    loaded = Audiences(session.store)
    assert set(versions.members(loaded, "v_moving").column("id").to_pylist()) == _keys(
        session, DAYS[0]
    )
    run(session, "REFRESH SEGMENT v_moving", DAYS[1])
    latest = set(versions.members(loaded, "v_moving").column("id").to_pylist())
    assert latest == _keys(session, DAYS[1]) != _keys(session, DAYS[0])
