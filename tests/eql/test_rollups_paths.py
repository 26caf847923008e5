"""Queries answered from the per-entity index (issue 14) end to end, against the same queries with
the index turned off (`EngineSettings(rollups=False)`: every aggregate scans its stream).

On the demo store, for windowed and lifetime counts, sums, mins and maxes, DID and NOT DID over
`purchase`, `visit` and other streams, seen from users, stores and employees, at the midnight
reference time of the tests and at mid-day ones: the plan with the index reads a `RollupRef`,
the plan without it none, and both give the same rows (decimals and timestamps exactly) with the
same Arrow types; `EXPLAIN` shows the `Scan rollup` line. A FIND EVENTS that returns one
integer column under `IS NOT NULL` keeps a row per event (the rule once took it for a DID's
keys).
An engine's answers follow the commits of its store, the writer's and a follower's, through the
tail and through segments. On a tiny store with int64 extremes:
an integer sum stays on the events (the index answers none), so one that leaves int64 is the
same E303 with the index on as off, and one that wraps on the way but fits is exact; the mins,
maxes and counts of those extremes from the index equal the events', with dense keys (the dense
path) and negative ones (the sorted index).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest

import storage.store as store_module
from eql.catalog import RollupRef
from eql.diagnostics import EqlError
from eql.planner import logical
from eql.types import Kind
from runtime.engine import Engine, EngineSettings
from runtime.session import Session
from storage import Store
from storage.store import ChangeSet
from tests.eql.helpers import NOW, table_rows
from tests.eql.tiny import ORDER_TYPES, TINY_REF, TinyData, money, tiny_store

UTC = dt.UTC
TIMES = {
    "midnight": NOW,
    "mid-day": dt.datetime(2026, 10, 15, 13, 37, tzinfo=UTC),
    "a microsecond to midnight": dt.datetime(2026, 9, 30, 23, 59, 59, 999_999, tzinfo=UTC),
}

QUERIES = [
    # windowed sums and counts over purchase
    "FIND users RETURN id, sum(purchase.amount DURING LAST 30 DAYS) AS s, "
    "count(purchase DURING LAST 7 DAYS) AS n",
    "FIND users RETURN id, sum(purchase.amount DURING LAST 90 DAYS) AS s, "
    "count(purchase.channel DURING LAST 90 DAYS) AS c, max(purchase.quantity DURING LAST 90 DAYS)",
    "FIND users WHERE sum(purchase.amount DURING LAST 365 DAYS) > 1000 "
    "AND NOT DID purchase DURING LAST 60 DAYS RETURN id",
    "FIND users WHERE count(purchase DURING LAST 30 DAYS) >= 2 RETURN id, "
    "sum(purchase.amount DURING LAST 30 DAYS) AS s",
    # min and max: decimals, integers, timestamps
    "FIND users RETURN id, min(purchase.amount) AS least, max(purchase.amount) AS most, "
    "max(purchase.quantity) AS q, min(purchase.time) AS first_at, max(purchase.time) AS last_at",
    "FIND users RETURN id, max(visit.time DURING LAST 30 DAYS) AS last_visit, "
    "min(visit.time DURING LAST 30 DAYS) AS first_visit",
    # DID and NOT DID
    "FIND users WHERE DID purchase DURING LAST 14 DAYS RETURN id",
    "FIND users WHERE NOT DID visit DURING LAST 30 DAYS RETURN id",
    "FIND users WHERE DID visit DURING LAST 7 DAYS AND NOT DID purchase DURING LAST 7 DAYS "
    "RETURN id",
    "FIND users WHERE NOT DID purchase RETURN id",
    # several windows of one stream, several streams
    "FIND users WHERE DID visit DURING LAST 30 DAYS RETURN id, count(visit DURING LAST 7 DAYS) AS "
    "v7, max(visit.time DURING LAST 30 DAYS) AS last, min(purchase.amount) AS least, "
    "count(purchase.channel) AS with_channel",
    "FIND users RETURN id, count(visit.duration_min) AS timed, sum(coupon_issue.value) AS issued, "
    "sum(add_to_cart.quantity DURING LAST 60 DAYS) AS carted, count(coupon_use) AS used",
    # lifetime aggregates (an integer sum stays on the events, beside the index's answers)
    "FIND users RETURN id, count(purchase) AS n, sum(purchase.amount) AS total, "
    "min(purchase.quantity) AS least, count(visit) AS visits",
    "FIND users RETURN id, count(purchase) AS n, sum(purchase.quantity) AS items, "
    "count(visit) AS visits",
    # stores by purchase.store, employees by shift.employee
    "FIND stores RETURN id, sum(purchase.amount) AS revenue, count(purchase DURING LAST 30 DAYS) "
    "AS recent, max(purchase.quantity) AS items",
    "FIND stores WHERE DID purchase DURING LAST 3 DAYS RETURN id, count(visit) AS visits",
    "FIND stores RETURN id, min(purchase.time DURING LAST 3 DAYS) AS opened, "
    "max(purchase.amount DURING LAST 3 DAYS) AS biggest",
    "FIND employees RETURN id, count(shift DURING LAST 14 DAYS) AS shifts",
    # in expressions and grouped
    "FIND users RETURN id, coalesce(sum(purchase.amount DURING LAST 30 DAYS), 0) / "
    "(count(purchase DURING LAST 30 DAYS) + 1) AS per",
    "FIND users GROUP BY city RETURN city, count(), sum(count(purchase DURING LAST 30 DAYS)), "
    "max(sum(purchase.amount))",
]


@pytest.fixture(scope="module")
def events_engine(demo_store: Store) -> Engine:
    return Engine(demo_store, EngineSettings(rollups=False))


def reads_rollups(compiled: Any) -> bool:
    return any(isinstance(t, RollupRef) for t in logical.tables(compiled.plan))


def _key(row: tuple[Any, ...]) -> tuple[Any, ...]:
    return tuple((v is not None, v) for v in row)


@pytest.mark.parametrize("when", list(TIMES), ids=list(TIMES))
@pytest.mark.parametrize("text", QUERIES)
def test_the_index_and_the_events_give_the_same_rows(
    text: str, when: str, demo_engine: Engine, events_engine: Engine
) -> None:
    now = TIMES[when]
    with_index = demo_engine.compile(text, now=now)
    without = events_engine.compile(text, now=now)
    assert reads_rollups(with_index), f"no RollupRef in the plan of {text}"
    assert not reads_rollups(without), f"a RollupRef with rollups off: {text}"
    got = demo_engine.run(with_index)
    want = events_engine.run(without)
    assert got.schema == want.schema
    assert want.num_rows, "make the query bite"
    assert sorted(table_rows(got), key=_key) == sorted(table_rows(want), key=_key), text


def test_some_answers_are_not_empty_or_trivial(demo_engine: Engine) -> None:
    """The windows above select something at each time: not a comparison of nulls."""
    for now in TIMES.values():
        got = demo_engine.query(
            "FIND users RETURN id, count(purchase DURING LAST 7 DAYS) AS n, "
            "max(visit.time DURING LAST 30 DAYS) AS last",
            now=now,
        ).to_pylist()
        assert sum(r["n"] for r in got) > 0
        assert any(r["last"] is not None and r["last"] < now for r in got)


def test_explain_shows_the_rollup_scan(demo_store: Store, demo_engine: Engine) -> None:
    text = "FIND users WHERE NOT DID purchase DURING LAST 60 DAYS RETURN id, count(visit) AS v"
    compiled = demo_engine.compile(text, now=TIMES["mid-day"])
    plan = demo_engine.explain(compiled, "plan")
    lines = [line.strip() for line in plan.splitlines() if "Scan rollup" in line]
    assert any(
        line.startswith("Scan rollup purchase by user_id in [2026-08-16T13:37:00+00:00, ")
        and "keys" in line
        for line in lines
    ), plan
    assert any(line.startswith("Scan rollup visit by user_id") for line in lines), plan
    assert "Scan rollup" in demo_engine.explain(compiled)  # every stage

    session = Session(demo_store)
    explained = session.explain("EXPLAIN PLAN " + text, as_of=NOW)
    assert "Scan rollup purchase by user_id" in explained.text
    off = Session(demo_store, EngineSettings(rollups=False)).explain("EXPLAIN PLAN " + text)
    assert "Scan rollup" not in off.text
    assert "Scan purchase" in off.text


@pytest.mark.parametrize(
    "text",
    [
        "FIND EVENTS purchase WHERE user IS NOT NULL RETURN user",
        "FIND EVENTS purchase DURING LAST 7 DAYS WHERE store IS NOT NULL RETURN store",
        "FIND EVENTS purchase WHERE quantity IS NOT NULL RETURN quantity",
    ],
)
def test_find_events_keeps_one_row_per_event(
    text: str, demo_engine: Engine, events_engine: Engine
) -> None:
    want = events_engine.query(text, now=NOW)
    got = demo_engine.query(text, now=NOW)
    assert sorted(table_rows(got), key=_key) == sorted(table_rows(want), key=_key)


def test_answers_follow_commits_of_the_writer_and_a_reader(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """An engine's registered answers of the index are redone when the stream grew, whether the
    commit went to the tail or folded it into a segment; a follower's engine too."""
    monkeypatch.setattr(store_module, "SEGMENT_MIN_ROWS", 5)
    monkeypatch.setattr(store_module, "TAIL_MAX_ROWS", 12)
    root = tmp_path / "store"
    first = {"ts": IN_MONTH, "user_id": 1, "qty": 1, "amount": money(100), "channel": "app"}
    store = tiny_store(root, TinyData(users=[{"id": u} for u in range(1, 6)], orders=[first]))
    reader = Store.open(root, read_only=True)
    try:
        on, off = Engine(store), Engine(store, EngineSettings(rollups=False))
        follower = Engine(reader)
        texts = [
            "FIND users RETURN id, count(orders DURING LAST 30 DAYS) AS n, "
            "sum(orders.amount) AS total, max(orders.time DURING LAST 7 DAYS) AS last",
            "FIND users WHERE NOT DID orders DURING LAST 7 DAYS RETURN id",
        ]
        assert all(reads_rollups(on.compile(t, now=TINY_REF)) for t in texts)
        versions = []
        for i, size in enumerate([1, 2, 6, 3, 9, 1, 20]):
            rows = [
                {
                    "ts": IN_MONTH + dt.timedelta(hours=(7 * i + 13 * j) % (20 * 24)),
                    "user_id": 1 + (i + j) % 6,  # user 6 has no entity
                    "qty": j,
                    "amount": money(101 * i + j),
                    "channel": "web",
                }
                for j in range(size)
            ]
            change = ChangeSet()
            columns = {
                k: pa.array([r.get(k) for r in rows], type=t) for k, t in ORDER_TYPES.items()
            }
            change.append("orders", pa.table(columns))
            store.commit(change)
            assert reader.follow()
            versions.append(store.stream_version("orders"))
            for text in texts:
                want = sorted(table_rows(off.query(text, now=TINY_REF)), key=_key)
                assert sorted(table_rows(on.query(text, now=TINY_REF)), key=_key) == want
                assert sorted(table_rows(follower.query(text, now=TINY_REF)), key=_key) == want
        # tail, tail, a segment (the tail folded), tail, a segment, tail, a segment
        assert versions == [(0, 2), (0, 4), (1, 0), (1, 3), (2, 0), (2, 1), (3, 0)]
    finally:
        reader.close()
        store.close()


# ---- int64 extremes; integer sums stay on the events ------------------------------------------
MAX = 2**63 - 1
MIN = -(2**63)
IN_WEEK = dt.datetime(2026, 10, 28, 12, tzinfo=UTC)  # in the last 7 days of TINY_REF
IN_MONTH = dt.datetime(2026, 10, 10, tzinfo=UTC)  # in the last 30, not the last 7
BEFORE = dt.datetime(2026, 1, 1, tzinfo=UTC)
# qty per user: lifetime, only user 1 leaves int64 (2 MAX); in 30 days only user 3 (MIN - 1);
# in 7 days nobody; user 2 wraps on the way and fits (MAX)
ORDERS: dict[int, list[tuple[dt.datetime, int | None]]] = {
    1: [(BEFORE, MAX), (IN_WEEK, MAX)],
    2: [(IN_WEEK, MAX), (IN_WEEK, MAX), (IN_WEEK, -MAX)],
    3: [(IN_MONTH, MIN), (IN_WEEK, -1), (BEFORE, 1)],
    4: [(IN_WEEK, 2), (IN_WEEK, None), (BEFORE, 3)],
}


@pytest.fixture(scope="module", params=[1, -1], ids=["dense keys", "negative keys"])
def extremes(request: pytest.FixtureRequest, tmp_path_factory: Any) -> Iterator[Store]:
    sign = request.param
    data = TinyData(
        users=[{"id": sign * u} for u in (*ORDERS, 5)],
        orders=[
            {"ts": ts, "user_id": sign * u, "qty": q, "channel": "app"}
            for u, rows in ORDERS.items()
            for ts, q in rows
        ],
    )
    store = tiny_store(Path(tmp_path_factory.mktemp("rollup-sums")) / "store", data)
    yield store
    store.close()


def both(store: Store) -> tuple[Engine, Engine]:
    return Engine(store), Engine(store, EngineSettings(rollups=False))


def no_integer_sum_from_the_index(compiled: Any) -> bool:
    return not any(
        m.func == "sum" and m.type.kind is Kind.INT
        for t in logical.tables(compiled.plan)
        if isinstance(t, RollupRef)
        for m in t.measures
    )


def _failure(engine: Engine, text: str) -> EqlError:
    with pytest.raises(EqlError) as info:
        engine.query(text, now=TINY_REF)
    return info.value


@pytest.mark.parametrize(
    ("text", "value"),
    [
        ("FIND users RETURN id, sum(orders.qty) AS s", 2 * MAX),
        (
            "FIND users RETURN id, count(orders) AS n, sum(orders.qty DURING LAST 30 DAYS) AS s",
            MIN - 1,
        ),
        (
            "FIND users WHERE sum(orders.qty DURING LAST 30 DAYS) > 0 "
            "AND DID orders DURING LAST 7 DAYS RETURN id, max(orders.qty) AS most",
            MIN - 1,
        ),
    ],
)
def test_an_int_sum_past_int64_is_the_same_e303(extremes: Store, text: str, value: int) -> None:
    on, off = both(extremes)
    assert no_integer_sum_from_the_index(on.compile(text, now=TINY_REF))
    via_index, via_events = _failure(on, text), _failure(off, text)
    assert via_index.codes == via_events.codes == ("E303",)
    message = via_index.diagnostics[0].message
    assert message == via_events.diagnostics[0].message
    assert f"is {value}, outside the 64-bit integers" in message, message
    assert via_index.diagnostics[0].helps == via_events.diagnostics[0].helps


def test_a_sum_of_one_key_that_fits_is_exact_beside_one_that_does_not(extremes: Store) -> None:
    """Only the key the query keeps is summed (the events' plan filters before it sums)."""
    sign = 1 if extremes.event_table("orders").column("user_id")[0].as_py() > 0 else -1
    text = f"FIND users WHERE id = {sign * 2} RETURN id, sum(orders.qty) AS s"
    on, off = both(extremes)
    assert on.query(text, now=TINY_REF).to_pylist() == [{"id": sign * 2, "s": MAX}]
    assert off.query(text, now=TINY_REF).to_pylist() == [{"id": sign * 2, "s": MAX}]


@pytest.mark.parametrize(
    "text",
    [
        "FIND users RETURN id, sum(orders.qty DURING LAST 7 DAYS) AS s, count(orders) AS n",
        "FIND users RETURN id, count(orders) AS n, count(orders.qty) AS with_qty, "
        "min(orders.qty) AS least, max(orders.qty DURING LAST 30 DAYS) AS most, "
        "max(orders.time) AS last",
        "FIND users WHERE DID orders DURING LAST 30 DAYS AND NOT DID orders DURING LAST 7 DAYS "
        "RETURN id",
        "FIND users WHERE min(orders.qty DURING LAST 30 DAYS) < 0 RETURN id",
    ],
)
def test_extremes_from_the_index_equal_the_events(extremes: Store, text: str) -> None:
    on, off = both(extremes)
    compiled = on.compile(text, now=TINY_REF)
    assert no_integer_sum_from_the_index(compiled)
    got = on.run(compiled)
    want = off.query(text, now=TINY_REF)
    assert got.schema == want.schema
    assert sorted(table_rows(got), key=_key) == sorted(table_rows(want), key=_key)


def test_the_extremes_are_what_they_are(extremes: Store) -> None:
    text = (
        "FIND users RETURN id, count(orders) AS n, min(orders.qty) AS least, "
        "max(orders.qty DURING LAST 30 DAYS) AS most"
    )
    on, _ = both(extremes)
    compiled = on.compile(text, now=TINY_REF)
    assert reads_rollups(compiled)
    rows = sorted(table_rows(on.run(compiled)), key=lambda r: abs(r[0]))
    assert [r[1:] for r in rows] == [
        (2, MAX, MAX),
        (3, -MAX, MAX),
        (3, MIN, -1),
        (3, 2, 2),
        (0, None, None),
    ]


def test_a_plan_reading_more_answers_than_are_kept(
    demo_engine: Engine, events_engine: Engine
) -> None:
    """Nine DIDs over nine windows read nine answers of the index, one more than the engine
    keeps registered: none of this plan's is let go while it is registered (E301 it was)."""
    dids = " AND ".join(f"DID purchase DURING LAST {30 * k} DAYS" for k in range(1, 10))
    text = f"FIND users WHERE {dids} RETURN count() AS n"
    assert (
        len(
            [
                r
                for r in logical.tables(demo_engine.compile(text, now=NOW).plan)
                if isinstance(r, RollupRef)
            ]
        )
        == 9
    )
    assert table_rows(demo_engine.query(text, now=NOW)) == table_rows(
        events_engine.query(text, now=NOW)
    )
