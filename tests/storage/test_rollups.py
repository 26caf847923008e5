"""The per-entity event index (`storage.rollups`, issue 14) against a plain-Python reference.

Random event tables (an int64 key with nulls, zero and negative keys; an int64 column with nulls,
negative and, in some examples, extreme values; a decimal(12,2) column with nulls and values at
its limit; a UTC timestamp at exact day boundaries, noon, a microsecond off a boundary or
anywhere), appended in chunks:

* an `EventIndex` built on the first chunk and `extend`ed after each (its columns cached by the
  queries in between) equals one built on the whole table: the same keys and positions, the same
  columns, the same answers; `Indexes.get` under a changing version does the same;
* `aggregate` equals the reference for random key windows and measure windows inside them, every
  measure kind, with the Arrow types asked for: a row per key with an event in the key window, a
  count over no events 0, a sum, min or max over none null; an integer sum past int64 raises
  `SumOverflow` with its exact value and measure; a decimal sum past int64 cents is exact;
* through a real `Store` whose commits land in the RocksDB tail or fold it into a segment, the
  writer's `store.indexes` and a read-only follower's (same data dir, `follow()` after each
  commit) equal a fresh index over the stream's table, and the reference; so do their
  `answer`s (the engine's way in: the dense path for `shop_id`, the sorted index for
  `user_id`, whose keys go below 0).
"""

from __future__ import annotations

import datetime as dt
import decimal
import functools
import tempfile
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import storage.store as store_module
from storage import ChangeSet, Store
from storage.indexes import Indexes
from storage.rollups import EventIndex, Measure, SumOverflow, aggregate

DAY = 86_400_000_000  # µs
NOON = DAY // 2
FIRST_DAY = 20_700  # days since the epoch: 2026-09-04
DAYS = 8
INT64_MAX = 2**63 - 1
INT64_MIN = -(2**63)
BIG_INTS = [INT64_MAX, INT64_MIN, INT64_MAX - 1, 2**62, -(2**62), INT64_MIN + 1]
MAX_CENTS = 10**12 - 1  # decimal(12,2): 9999999999.99
EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
TS = pa.timestamp("us", tz="UTC")
AMOUNT = pa.decimal128(12, 2)
AMOUNT_SUM = pa.decimal128(22, 2)
STREAM = "orders"
BY = ("user_id", "shop_id")
COLUMN_TYPES = {"ts": TS, "user_id": pa.int64(), "shop_id": pa.int64(), "n": pa.int64()}
SETTINGS = settings(
    max_examples=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)

SCHEMA = """\
version: 1
entities:
  users:
    key: {name: id, type: int}
    attributes:
      name: string
  shops:
    key: {name: id, type: int}
    attributes:
      city: string
events:
  orders:
    time: ts
    references:
      user: {entity: users, column: user_id}
      shop: {entity: shops, column: shop_id}
    fields:
      n: int
      amount: {type: decimal, precision: 12, scale: 2}
"""

# every measure kind: (func, column)
KINDS = [
    ("count", None),
    ("count", "n"),
    ("count", "amount"),
    ("count", "ts"),
    ("sum", "n"),
    ("sum", "amount"),
    ("min", "n"),
    ("max", "n"),
    ("min", "amount"),
    ("max", "amount"),
    ("min", "ts"),
    ("max", "ts"),
]


@dataclass(frozen=True)
class Event:
    ts: int  # UTC µs
    user_id: int | None
    shop_id: int | None
    n: int | None
    cents: int | None  # amount, in hundredths


@dataclass(frozen=True)
class Query:
    by: str
    time: str | None
    start: int | None
    end: int | None
    measures: tuple[Measure, ...]


# ---- tables and the reference --------------------------------------------------------------
def events_table(events: Sequence[Event], amount: pa.DataType = AMOUNT) -> pa.Table:
    columns: dict[str, pa.Array] = {
        name: pa.array([getattr(e, name) for e in events], type=ty)
        for name, ty in COLUMN_TYPES.items()
    }
    columns["amount"] = pa.array([money(e.cents) for e in events], type=amount)
    return pa.table(columns)


def money(cents: int | None) -> decimal.Decimal | None:
    return None if cents is None else decimal.Decimal(cents).scaleb(-2)


def at(us: int) -> dt.datetime:
    return EPOCH + dt.timedelta(microseconds=us)


def answer_type(func: str, column: str | None, amount: pa.DataType = AMOUNT) -> pa.DataType:
    if func == "count" or column == "n":
        return pa.int64()
    if column == "ts":
        return TS
    return AMOUNT_SUM if func == "sum" else amount


def measure(
    func: str, column: str | None, start: int | None = None, end: int | None = None
) -> Measure:
    return Measure(func, column, start, end, answer_type(func, column))


def inside(ts: int, start: int | None, end: int | None) -> bool:
    return (start is None or ts >= start) and (end is None or ts < end)


def raw(e: Event, column: str) -> int | None:
    """The value the reference works with: integers, cents, µs."""
    return e.cents if column == "amount" else getattr(e, column)


def one(m: Measure, events: list[Event]) -> int | None:
    chosen = [e for e in events if inside(e.ts, m.start, m.end)]
    if m.column is None:
        return len(chosen)
    values = [v for v in (raw(e, m.column) for e in chosen) if v is not None]
    if m.func == "count":
        return len(values)
    if not values:
        return None
    if m.func == "sum":
        return sum(values)
    return min(values) if m.func == "min" else max(values)


def reference_raw(events: Sequence[Event], q: Query) -> list[tuple[Any, ...]]:
    """Per key (ascending), the measures in integers, cents and µs."""
    groups: dict[int, list[Event]] = {}
    for e in events:
        key = getattr(e, q.by)
        if key is not None and (q.time is None or inside(e.ts, q.start, q.end)):
            groups.setdefault(key, []).append(e)
    return [(key, *(one(m, groups[key]) for m in q.measures)) for key in sorted(groups)]


def typed(value: int | None, m: Measure) -> Any:
    if value is None or m.func == "count" or m.column == "n":
        return value
    return at(value) if m.column == "ts" else money(value)


def overflow_of(rows: list[tuple[Any, ...]], q: Query) -> tuple[int, int] | None:
    """(measure, value) of the first integer sum past int64: by measure, then by key."""
    for i, m in enumerate(q.measures):
        if m.func == "sum" and m.column == "n":
            for row in rows:
                value = row[1 + i]
                if value is not None and not INT64_MIN <= value <= INT64_MAX:
                    return i, value
    return None


def outcome(index: EventIndex, table: pa.Table, q: Query) -> Any:
    """The index's rows, or ("overflow", measure, value)."""
    try:
        got = aggregate(index, table, q.time, q.start, q.end, q.measures)
    except SumOverflow as exc:
        return ("overflow", exc.measure, exc.value)
    return sorted(tuple(row.values()) for row in got.to_pylist())


def check_against_reference(run: Callable[[], pa.Table], events: Sequence[Event], q: Query) -> None:
    """`run()` (the answer to `q`) equals the reference, or raises its overflow."""
    rows = reference_raw(events, q)
    overflow = overflow_of(rows, q)
    if overflow is not None:
        with pytest.raises(SumOverflow) as info:
            run()
        assert (info.value.measure, info.value.value) == overflow
        assert str(overflow[1]) in str(info.value)
        return
    got = run()
    assert got.schema.types == [pa.int64(), *(m.type for m in q.measures)]
    assert got.column_names == ["key", *(f"m{i}" for i in range(len(q.measures)))]
    expected = [
        (row[0], *(typed(v, m) for v, m in zip(row[1:], q.measures, strict=True))) for row in rows
    ]
    assert sorted(tuple(row.values()) for row in got.to_pylist()) == expected


def by_index(index: EventIndex, table: pa.Table, q: Query) -> Callable[[], pa.Table]:
    return lambda: aggregate(index, table, q.time, q.start, q.end, q.measures)


def valid_of(column: tuple[np.ndarray, np.ndarray | None]) -> np.ndarray:
    values, valid = column
    return np.ones(len(values), dtype=bool) if valid is None else valid


def assert_same_index(a: EventIndex, b: EventIndex, table: pa.Table) -> None:
    assert a.covered == b.covered == table.num_rows
    assert np.array_equal(a.keys, b.keys)
    assert np.array_equal(a.positions, b.positions)
    for name in ("ts", "n", "amount"):
        (va, ma), (vb, mb) = a.column(table, name), b.column(table, name)
        valid = valid_of((va, ma))
        assert np.array_equal(valid, valid_of((vb, mb))), name
        assert np.array_equal(va[valid], vb[valid]), name


# ---- strategies ----------------------------------------------------------------------------
def maybe(strategy: st.SearchStrategy[Any], nulls: bool) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy) if nulls else strategy


times = st.builds(
    lambda day, offset: (FIRST_DAY + day) * DAY + offset,
    st.integers(0, DAYS - 1),
    st.one_of(st.just(0), st.just(NOON), st.sampled_from([1, DAY - 1]), st.integers(0, DAY - 1)),
)


@st.composite
def event_lists(draw: st.DrawFn, max_size: int = 40, big: bool | None = None) -> list[Event]:
    big = draw(st.booleans()) if big is None else big
    nulls = [draw(st.booleans()) for _ in range(3)]
    most = 1 if big else 5  # fewer keys with extreme values: more sums past int64
    keys = [maybe(st.integers(-2, most), nulls[0]), maybe(st.integers(0, 2), nulls[0])]
    out = []
    for _ in range(draw(st.integers(0, max_size))):
        n = draw(maybe(st.integers(-1000, 1000), nulls[1]))
        if big and draw(st.integers(0, 2)) == 0:
            n = draw(st.sampled_from(BIG_INTS))
        cents = draw(maybe(st.integers(-100_000, 100_000), nulls[2]))
        if draw(st.integers(0, 9)) == 0:
            cents = draw(st.sampled_from([MAX_CENTS, -MAX_CENTS]))
        out.append(Event(draw(times), draw(keys[0]), draw(keys[1]), n, cents))
    return out


def _later(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else max(a, b)


def _earlier(a: int | None, b: int | None) -> int | None:
    return b if a is None else a if b is None else min(a, b)


@st.composite
def queries(draw: st.DrawFn, events: Sequence[Event]) -> Query:
    by = draw(st.sampled_from(BY))
    kinds = draw(st.lists(st.sampled_from([*KINDS, ("sum", "n")]), min_size=0, max_size=5))
    if draw(st.integers(0, 5)) == 0:  # no time column at all
        return Query(by, None, None, None, tuple(measure(f, c) for f, c in kinds))
    pool = [e.ts for e in events]
    point = st.one_of(st.none(), times, *([st.sampled_from(pool)] if pool else []))
    start, end = draw(point), draw(point)
    measures = []
    for func, column in kinds:
        own_start = _later(start, draw(point)) if draw(st.booleans()) else start
        own_end = _earlier(end, draw(point)) if draw(st.booleans()) else end
        measures.append(measure(func, column, own_start, own_end))
    return Query(by, "ts", start, end, tuple(measures))


@st.composite
def cases(draw: st.DrawFn) -> tuple[list[Event], list[int], list[Query]]:
    """Events, the row counts after each appended chunk, and queries over them."""
    events = draw(event_lists())
    cuts = sorted(draw(st.lists(st.integers(0, len(events)), max_size=4)))
    return events, [*cuts, len(events)], draw(st.lists(queries(events), min_size=1, max_size=3))


def in_chunks(events: list[Event], sizes: list[int]) -> list[pa.Table]:
    """The events as zero-copy slices of one table that has other rows before them (so that
    the arrays have offsets), ending at each of `sizes` rows."""
    padding = [Event(0, 1, 1, 1, 1), Event(DAY, None, 2, None, None), Event(0, 3, None, -1, -1)]
    whole = events_table(padding + events).slice(len(padding))
    return [whole.slice(lo, hi - lo) for lo, hi in zip([0, *sizes], sizes, strict=False)]


# ---- the index, extended vs built at once ---------------------------------------------------
@SETTINGS
@given(cases())
def test_an_extended_index_equals_one_built_at_once(
    case: tuple[list[Event], list[int], list[Query]],
) -> None:
    events, sizes, qs = case
    chunks = in_chunks(events, sizes)
    tables = [pa.concat_tables(chunks[: i + 1]) for i in range(len(chunks))]
    for by in BY:
        grown = EventIndex(STREAM, by, tables[0])
        for table in tables:
            grown.extend(table)  # the first: nothing new
            fresh = EventIndex(STREAM, by, table)
            assert_same_index(grown, fresh, table)
            for q in qs:
                if q.by == by:  # (also caches the columns `extend` must then carry on)
                    assert outcome(grown, table, q) == outcome(fresh, table, q)

    # the same through `Indexes`, whose version moves with each chunk
    state = {"version": 0}
    indexes = Indexes(lambda stream: tables[state["version"]], lambda stream: state["version"])
    for version, table in enumerate(tables):
        state["version"] = version
        for q in qs:
            index, seen = indexes.get(STREAM, q.by)
            assert seen is table
            assert_same_index(index, EventIndex(STREAM, q.by, table), table)
            assert outcome(index, seen, q) == outcome(EventIndex(STREAM, q.by, table), table, q)
            assert indexes.get(STREAM, q.by)[0] is index  # the same version: no rebuild


def test_an_index_refuses_a_shorter_table_and_indexes_rebuild_on_one() -> None:
    events = [Event((FIRST_DAY + i) * DAY, i % 3, None, i, i) for i in range(6)]
    table = events_table(events)
    index = EventIndex(STREAM, "user_id", table)
    with pytest.raises(ValueError, match="never shrinks"):
        index.extend(table.slice(0, 3))

    current = {"table": table, "version": 1}
    indexes = Indexes(lambda s: current["table"], lambda s: current["version"])
    assert indexes.get(STREAM, "user_id")[0].covered == 6
    current.update(table=events_table(events[:2]), version=2)  # another stream under the name
    rebuilt, seen = indexes.get(STREAM, "user_id")
    assert rebuilt.covered == 2 and rebuilt.keys.tolist() == [0, 1]
    assert_same_index(rebuilt, EventIndex(STREAM, "user_id", seen), seen)


# ---- answers against the reference ---------------------------------------------------------
@settings(SETTINGS, max_examples=100)
@given(cases())
def test_aggregate_equals_the_reference(case: tuple[list[Event], list[int], list[Query]]) -> None:
    events, sizes, qs = case
    table = pa.concat_tables(in_chunks(events, sizes))
    indexes = {by: EventIndex(STREAM, by, table) for by in BY}
    for q in qs:
        check_against_reference(by_index(indexes[q.by], table, q), events, q)


def test_the_answer_semantics_on_a_hand_made_table() -> None:
    day = FIRST_DAY * DAY
    events = [
        Event(day, 1, 0, 5, 150),
        Event(day + NOON, 1, 0, None, None),
        Event(day + DAY, 1, 1, -7, -25),
        Event(day + DAY - 1, 2, 1, None, None),  # key 2: only nulls, in the window
        Event(day - 1, 3, None, 9, 100),  # key 3: before the window
        Event(day + NOON, None, None, 100, 100),  # no key
        Event(day + NOON, 0, 2, 4, 1),  # key 0 (not null, as the null key is filled)
    ]
    table = events_table(events)
    index = EventIndex(STREAM, "user_id", table)
    ms = [
        measure("count", None),
        measure("count", "n"),
        measure("sum", "n"),
        measure("sum", "amount"),
    ]
    ms += [measure("min", "amount", day + NOON), measure("max", "ts", None, day + 1)]
    got = aggregate(index, table, "ts", day, day + 2 * DAY, ms)
    assert got.to_pylist() == [
        {"key": 0, "m0": 1, "m1": 1, "m2": 4, "m3": money(1), "m4": money(1), "m5": None},
        {"key": 1, "m0": 3, "m1": 2, "m2": -2, "m3": money(125), "m4": money(-25), "m5": at(day)},
        {"key": 2, "m0": 1, "m1": 0, "m2": None, "m3": None, "m4": None, "m5": None},
    ]
    assert got.schema.types == [pa.int64()] * 4 + [AMOUNT_SUM, AMOUNT, TS]
    empty = aggregate(index, table, "ts", day + 5 * DAY, None, ms)
    assert empty.num_rows == 0 and empty.schema.types == got.schema.types


def test_an_int_sum_past_int64_names_its_value_and_measure() -> None:
    day = FIRST_DAY * DAY
    events = [
        Event(day, 1, None, 3, 1),
        Event(day, 5, None, INT64_MAX, 1),
        Event(day + 1, 5, None, 2, 1),  # key 5: MAX + 2
        Event(day, 7, None, INT64_MIN, 1),
        Event(day, 7, None, -1, 1),  # key 7: MIN - 1 (a later key: named only without key 5)
        Event(day + 2, 8, None, INT64_MAX, 1),
        Event(day + 2, 8, None, INT64_MAX, 1),
        Event(day + 2, 8, None, -INT64_MAX, 1),  # key 8: wraps on the way, fits in the end
    ]
    table = events_table(events)
    index = EventIndex(STREAM, "user_id", table)
    ms = (measure("count", None), measure("sum", "amount"), measure("sum", "n"))
    with pytest.raises(SumOverflow) as info:
        aggregate(index, table, "ts", None, None, ms)
    assert (info.value.measure, info.value.value) == (2, INT64_MAX + 2)
    assert str(INT64_MAX + 2) in str(info.value)
    # a window that leaves key 5's second event out: key 7's is the first that leaves int64
    with pytest.raises(SumOverflow) as info:
        aggregate(index, table, "ts", None, day + 1, ms)
    assert (info.value.measure, info.value.value) == (2, INT64_MIN - 1)
    # measure windows that leave key 5's and key 7's extremes out: exact, key 8's too
    exact = [measure("sum", "n", day + 1, day + 2), measure("sum", "n", day + 2, None)]
    got = aggregate(index, table, "ts", None, None, exact).to_pylist()
    assert [(r["key"], r["m0"], r["m1"]) for r in got] == [
        (1, None, None),
        (5, 2, None),
        (7, None, None),
        (8, None, INT64_MAX),
    ]


def test_a_decimal_sum_past_int64_cents_is_exact() -> None:
    wide = pa.decimal128(18, 2)
    most = 10**18 - 1  # 9999999999999999.99
    day = FIRST_DAY * DAY
    events = [Event(day + i, 1, None, None, most) for i in range(12)]  # 12 * most > int64
    events += [Event(day + i, 2, None, None, -most) for i in range(10)]
    events += [Event(day, 3, None, None, most), Event(day, 3, None, None, most)]
    events += [Event(day, 3, None, None, -most), Event(day, 3, None, None, None)]  # fits
    events += [Event(day, 4, None, None, None), Event(day - 1, 4, None, None, 5)]
    table = events_table(events, amount=wide)
    index = EventIndex(STREAM, "user_id", table)
    total = pa.decimal128(28, 2)
    ms = [Measure("sum", "amount", None, None, total), Measure("min", "amount", day, None, wide)]
    got = aggregate(index, table, "ts", None, None, ms).to_pylist()
    assert got == [
        {"key": 1, "m0": money(12 * most), "m1": money(most)},
        {"key": 2, "m0": money(-10 * most), "m1": money(-most)},
        {"key": 3, "m0": money(most), "m1": money(-most)},
        {"key": 4, "m0": money(5), "m1": None},
    ]
    assert 12 * most > INT64_MAX and -10 * most < INT64_MIN


# ---- through a real store: the writer's indexes and a follower's ----------------------------
STORE_MEASURES = tuple(measure(f, c) for f, c in KINDS)
WINDOW = ((FIRST_DAY + 2) * DAY, (FIRST_DAY + 5) * DAY + NOON)
WINDOWED = tuple(
    measure(f, c, WINDOW[0] + (DAY if i % 2 else 0), WINDOW[1]) for i, (f, c) in enumerate(KINDS)
)
STORE_QUERIES = [
    Query(by, time, window[0], window[1], ms)
    for by in BY
    for time, window, ms in (
        (None, (None, None), STORE_MEASURES),
        ("ts", (None, None), STORE_MEASURES),
        ("ts", WINDOW, WINDOWED),
    )
]


def append(store: Store, events: Sequence[Event]) -> None:
    change = ChangeSet()
    change.appends[STREAM] = [events_table(events)]
    store.commit(change)


def check_store(root: Path, commits: Sequence[Sequence[Event]]) -> list[tuple[int, int]]:
    """Commit each batch of events; after each, the writer's and a follower's indexes equal a
    fresh index over their stream table and the reference. Returns (segments, tail rows) after
    each commit."""
    states = []
    with Store.create(root, SCHEMA, "x.yaml") as writer:
        reader = Store.open(root, read_only=True)
        try:
            done: list[Event] = []
            for events in commits:
                append(writer, events)
                done.extend(events)
                assert reader.follow()
                states.append(writer.stream_version(STREAM))
                assert reader.stream_version(STREAM) == states[-1]
                for store in (writer, reader):
                    table = store.event_table(STREAM)
                    assert table.num_rows == len(done)
                    for q in STORE_QUERIES:
                        index, seen = store.indexes.get(STREAM, q.by)
                        assert seen.equals(table)
                        assert_same_index(index, EventIndex(STREAM, q.by, table), table)
                        check_against_reference(by_index(index, seen, q), done, q)
                        # what the engine asks: the dense path where the keys allow it
                        asked = functools.partial(
                            store.indexes.answer, STREAM, q.by, q.time, q.start, q.end, q.measures
                        )
                        check_against_reference(asked, done, q)
        finally:
            reader.close()
    return states


def test_store_indexes_follow_tail_and_segment_commits(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(store_module, "SEGMENT_MIN_ROWS", 5)
    monkeypatch.setattr(store_module, "TAIL_MAX_ROWS", 12)
    events = [
        Event((FIRST_DAY + i % DAYS) * DAY + (i * 7919) % DAY, i % 5 or None, i % 3, i - 20, i * 3)
        for i in range(61)
    ]
    sizes = [3, 4, 2, 6, 1, 2, 8, 3, 4, 4, 1, 2, 21]
    commits, lo = [], 0
    for size in sizes:
        commits.append(events[lo : lo + size])
        lo += size
    assert lo == len(events)
    states = check_store(tmp_path / "data", commits)
    # tail, tail, tail; 6 rows: a segment, the tail's 9 in it too; tail, tail; 8: a segment;
    # tail, tail, tail (11); 1 more reaches TAIL_MAX_ROWS: folded; tail; 21: a segment
    expected = [(0, 3), (0, 7), (0, 9), (1, 0), (1, 1), (1, 3), (2, 0), (2, 3), (2, 7)]
    expected += [(2, 11), (3, 0), (3, 2), (4, 0)]
    assert states == expected


@settings(SETTINGS, max_examples=15)
@given(st.lists(event_lists(max_size=9, big=False), min_size=1, max_size=6))
def test_store_indexes_equal_fresh_ones_on_random_commits(commits: list[list[Event]]) -> None:
    commits = [c for c in commits if c] or [[Event(FIRST_DAY * DAY, 1, 1, 1, 1)]]
    with pytest.MonkeyPatch.context() as patch, tempfile.TemporaryDirectory() as tmp:
        patch.setattr(store_module, "SEGMENT_MIN_ROWS", 5)
        patch.setattr(store_module, "TAIL_MAX_ROWS", 12)
        check_store(Path(tmp) / "data", commits)
