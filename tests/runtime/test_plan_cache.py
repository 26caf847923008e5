"""The prepared-plan cache: a repeated query skips compiling and emitting, and never answers with
a plan that no longer holds (new data, a new segment version, a later "now")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path

import pyarrow as pa
import pytest

from runtime import WRITE, Session
from storage import ChangeSet
from tests.eql.helpers import build_demo_store

NOW = dt.datetime(2026, 11, 1, tzinfo=dt.UTC)


@pytest.fixture()
def session(tmp_path: Path) -> Iterator[Session]:
    store = build_demo_store(tmp_path)
    yield Session(store)
    store.close()


def _count(session: Session, text: str, as_of: dt.datetime | None = NOW, **params: object) -> int:
    table = session.query(text, params or None, as_of)
    return int(table.column(0)[0].as_py())


def test_a_repeated_query_is_compiled_once(session: Session) -> None:
    plans = session.engine.plans
    text = "FIND users WHERE birth_year > $y RETURN count() AS n"
    first = _count(session, text, y=1980)
    misses = plans.misses
    assert _count(session, text, y=1980) == first
    assert (plans.misses, plans.hits) == (misses, plans.hits) and plans.hits >= 1
    compiled = session.engine.compile(text, {"y": 1980}, NOW)
    assert session.engine.compile(text, {"y": 1980}, NOW) is compiled
    assert session.engine.frame(compiled) is session.engine.frame(compiled)


def test_other_parameter_values_are_other_plans(session: Session) -> None:
    text = "FIND users WHERE birth_year > $y RETURN count() AS n"
    older, younger = _count(session, text, y=1960), _count(session, text, y=1995)
    assert older > younger
    assert _count(session, text, y="1995") == younger  # a string parameter, converted alike


def test_a_clock_relative_plan_is_not_kept_for_now(session: Session) -> None:
    """`LAST 30 DAYS` read the caller's time: kept for a chosen as_of, never for the clock."""
    text = "FIND users WHERE count(purchase DURING LAST 30 DAYS) > 0 RETURN count() AS n"
    engine = session.engine
    a = engine.compile(text, None, None)
    b = engine.compile(text, None, None)
    assert a is not b and a.bound.reads_clock
    assert engine.compile(text, None, NOW) is engine.compile(text, None, NOW)
    later = NOW + dt.timedelta(days=40)
    assert engine.compile(text, None, later) is not engine.compile(text, None, NOW)
    assert _count(session, text, NOW) != _count(session, text, later)  # the demo ends 11-01


def test_a_text_with_its_own_as_of_is_kept_for_any_now(session: Session) -> None:
    text = (
        "FIND users WHERE count(purchase DURING LAST 30 DAYS) > 0 "
        "RETURN count() AS n AS OF '2026-11-01'"
    )
    a = session.engine.compile(text, None, None)
    assert not a.bound.reads_clock
    assert session.engine.compile(text, None, None) is a


def test_new_data_is_seen_through_a_cached_plan(session: Session) -> None:
    text = "FIND users WHERE name = 'Cache Test' RETURN count() AS n"
    assert _count(session, text) == 0
    change = ChangeSet()
    change.upsert("users", pa.table({"id": [900_001], "name": ["Cache Test"]}))
    session.store.commit(change)
    assert _count(session, text) == 1


def test_a_refresh_is_seen_through_a_cached_plan(session: Session) -> None:
    session.execute("DEFINE SEGMENT young ON users WHERE birth_year > 2000", None, NOW, WRITE)
    session.execute("REFRESH SEGMENT young", None, NOW, WRITE)
    text = "FIND users WHERE in segment young RETURN count() AS n"
    before = _count(session, text)
    session.execute("DROP SEGMENT young", None, NOW, WRITE)
    session.execute("DEFINE SEGMENT young ON users WHERE birth_year > 1990", None, NOW, WRITE)
    session.execute("REFRESH SEGMENT young", None, NOW, WRITE)
    after = _count(session, text)
    assert after > before
    assert after == _count(session, "FIND users WHERE birth_year > 1990 RETURN count() AS n")


def test_an_error_is_not_kept(session: Session) -> None:
    with pytest.raises(Exception, match="unknown"):
        session.query("FIND users WHERE nope = 1 RETURN count() AS n")
    assert session.engine.plans.misses >= 1
