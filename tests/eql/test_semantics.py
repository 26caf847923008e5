"""The decided semantics, each on a hand-made tiny dataset with the answer worked out by hand.

Reference time 2026-11-01T00:00Z. User 1 has orders at the window edges, user 2 has only null
values, user 3 has nothing, user 4 has orders after the reference time only; store 1 has members
1 and 2, store 2 has none.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from decimal import Decimal
from typing import Any

import pytest

from runtime.engine import Engine
from storage import Store
from tests.eql.tiny import TINY_REF, TinyData, tiny_store

H = dt.timedelta(hours=1)
D = dt.timedelta(days=1)


def data() -> TinyData:
    return TinyData(
        users=[
            {"id": 1, "name": "a", "age": 30, "store_id": 1, "joined": dt.date(2026, 10, 1)},
            {"id": 2, "name": "b", "age": None, "store_id": 1},
            {"id": 3, "name": "c", "age": 20, "store_id": None},
            {"id": 4, "name": "d", "age": 40, "store_id": 2},
        ],
        stores=[{"id": 1, "city": "x", "size": 3}, {"id": 2, "city": "y", "size": 5}],
        orders=[
            # user 1: exactly 7 days before (inside LAST 7 DAYS), just before 7 days (outside),
            # just before the reference time (inside), exactly at it (never seen)
            {
                "ts": TINY_REF - 7 * D,
                "user_id": 1,
                "store_id": 1,
                "amount": Decimal("0.10"),
                "qty": 1,
                "channel": "app",
            },
            {
                "ts": TINY_REF - 7 * D - H,
                "user_id": 1,
                "store_id": 1,
                "amount": Decimal("0.10"),
                "qty": None,
                "channel": "web",
            },
            {
                "ts": TINY_REF - H,
                "user_id": 1,
                "store_id": 2,
                "amount": Decimal("0.10"),
                "qty": 3,
                "channel": None,
            },
            {
                "ts": TINY_REF,
                "user_id": 1,
                "store_id": 1,
                "amount": Decimal("100.00"),
                "qty": 9,
                "channel": "shop",
            },
            # user 2: one order with null values
            {
                "ts": TINY_REF - 2 * D,
                "user_id": 2,
                "store_id": None,
                "amount": None,
                "qty": None,
                "channel": None,
            },
            # user 4: only after the reference time
            {
                "ts": TINY_REF + D,
                "user_id": 4,
                "store_id": 2,
                "amount": Decimal("5.00"),
                "qty": 1,
                "channel": "app",
            },
            # nobody's
            {
                "ts": TINY_REF - D,
                "user_id": None,
                "store_id": 1,
                "amount": Decimal("1.00"),
                "qty": 1,
                "channel": "app",
            },
        ],
        clicks=[{"ts": TINY_REF - 3 * D, "user_id": 2, "page": "home", "secs": 1.5}],
    )


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    store: Store = tiny_store(tmp_path_factory.mktemp("semantics") / "store", data())
    yield Engine(store)
    store.close()


def by_id(engine: Engine, text: str, **params: Any) -> dict[Any, tuple[Any, ...]]:
    rows = engine.query(text, params=params, now=TINY_REF).to_pylist()
    return {r.pop(next(iter(r))): tuple(r.values()) for r in rows}


def test_half_open_windows(engine: Engine) -> None:
    got = by_id(engine, "FIND users RETURN id, count(orders DURING LAST 7 DAYS), count(orders)")
    assert got[1] == (2, 3)  # the order at ref - 7 days is in, the one at ref is not


def test_absolute_window_is_half_open(engine: Engine) -> None:
    start = (TINY_REF - 7 * D).isoformat()
    end = (TINY_REF - H).isoformat()
    got = by_id(engine, f"FIND users RETURN id, count(orders DURING '{start}' TO '{end}')")
    assert got[1] == (1,)


def test_unwindowed_aggregates_see_only_the_past(engine: Engine) -> None:
    got = by_id(engine, "FIND users RETURN id, count(orders), sum(orders.amount), DID orders")
    assert got[4] == (0, Decimal("0.00"), False)


def test_empty_sets(engine: Engine) -> None:
    got = by_id(
        engine,
        "FIND users RETURN id, count(orders), sum(orders.amount), avg(orders.amount), "
        "min(orders.qty), max(orders.qty), first(orders.channel), last(orders.channel), "
        "count(DISTINCT orders.channel), DID orders",
    )
    assert got[3] == (0, Decimal("0.00"), None, None, None, None, None, 0, False)
    # user 2 has an order whose values are all null: count 1, the others as if empty
    assert got[2] == (1, Decimal("0.00"), None, None, None, None, None, 0, True)


def test_first_and_last_skip_nulls(engine: Engine) -> None:
    got = by_id(
        engine,
        "FIND users RETURN id, first(orders.channel), last(orders.channel), first(orders.qty), "
        "last(orders.qty), last(orders.time)",
    )
    assert got[1] == ("web", "app", 1, 3, TINY_REF - H)


def test_decimals_stay_exact(engine: Engine) -> None:
    got = by_id(engine, "FIND users WHERE id = 1 RETURN id, sum(orders.amount)")
    assert got[1] == (Decimal("0.30"),)


def test_division_gives_a_float(engine: Engine) -> None:
    got = by_id(engine, "FIND users WHERE id = 1 RETURN id, count(orders) / 2, 7 / 2")
    assert got[1] == (1.5, 3.5)
    assert all(isinstance(v, float) for v in got[1])


def test_three_valued_logic(engine: Engine) -> None:
    yes = set(by_id(engine, "FIND users WHERE age > 25 RETURN id"))
    no = set(by_id(engine, "FIND users WHERE NOT (age > 25) RETURN id"))
    unknown = set(by_id(engine, "FIND users WHERE (age > 25) IS NULL RETURN id"))
    assert (yes, no, unknown) == ({1, 4}, {3}, {2})
    assert set(by_id(engine, "FIND users WHERE age = NULL RETURN id")) == set()
    assert set(by_id(engine, "FIND users WHERE age > $a RETURN id", a=None)) == set()


def test_did_is_count_greater_than_zero(engine: Engine) -> None:
    did = set(by_id(engine, "FIND users WHERE DID orders DURING LAST 7 DAYS RETURN id"))
    cnt = set(by_id(engine, "FIND users WHERE count(orders DURING LAST 7 DAYS) > 0 RETURN id"))
    assert did == cnt == {1, 2}
    assert set(by_id(engine, "FIND users WHERE NOT DID orders RETURN id")) == {3, 4}


def test_two_hop_sum_is_a_sum_of_sums(engine: Engine) -> None:
    got = by_id(
        engine,
        "FIND stores RETURN id, sum(members.orders.amount), count(members.orders), "
        "count(members), sum(orders.amount), max(members.orders.qty)",
    )
    assert got[1] == (Decimal("0.30"), 4, 2, Decimal("1.20"), 3)
    assert got[2] == (Decimal("0.00"), 0, 1, Decimal("0.10"), None)


def test_one_row_per_entity_with_many_aggregates(engine: Engine) -> None:
    t = engine.query(
        "FIND stores RETURN id, count(orders), count(members), count(members.clicks), "
        "sum(members.orders.amount)",
        now=TINY_REF,
    )
    assert sorted(t.column("id").to_pylist()) == [1, 2]


def test_grouped_null_key_is_one_group(engine: Engine) -> None:
    got = by_id(engine, "FIND users GROUP BY store.city RETURN store.city, count()")
    assert got == {"x": (2,), None: (1,), "y": (1,)}


def test_days_since_counts_whole_days(engine: Engine) -> None:
    got = by_id(
        engine,
        "FIND users WHERE id = 1 RETURN id, days_since(joined), days_since(last(orders.time))",
    )
    assert got[1] == (31, 0)  # 2026-10-01 -> 2026-11-01; an hour ago is day 0


def test_months_window_clamps_to_month_end(engine: Engine) -> None:
    c = engine.compile(
        "FIND users RETURN count(orders DURING LAST 1 MONTHS) AS n AS OF '2026-03-31'"
    )
    from eql.binder import bound

    agg = c.bound.items[0].expr
    assert isinstance(agg, bound.Aggregate) and agg.window is not None
    assert agg.window.start == dt.datetime(2026, 2, 28, tzinfo=dt.UTC)


# fixed in 4e4272b (was: FIND EVENTS without DURING returned events at or after AS OF)
def test_find_events_as_of_hides_later_events(engine: Engine) -> None:
    t = engine.query("FIND EVENTS orders RETURN time", now=TINY_REF)
    assert all(v < TINY_REF for v in t.column("time").to_pylist())
    t = engine.query("FIND EVENTS orders RETURN count() AS n AS OF '2026-10-30'", now=TINY_REF)
    assert t.to_pylist() == [{"n": 2}]  # ref - 7 days - 1 hour, ref - 7 days (ref - 1 d is 10-31)


def test_as_of_with_an_offset_is_the_same_instant_in_utc(engine: Engine) -> None:
    text = "FIND users RETURN id, count(orders DURING LAST 7 DAYS), count(orders)"
    utc = by_id(engine, text)
    shifted = by_id(engine, text + " AS OF '2026-10-31T20:00:00-04:00'")
    assert shifted == utc
