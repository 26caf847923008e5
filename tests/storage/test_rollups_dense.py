"""The dense path of the per-entity aggregates (`storage.rollups_dense`) against the sorted index
(`storage.rollups.aggregate`) and a pure-Python reference, on random events split into parts
(as a stream's segments and tail are, in time order or not): the same tables, whatever the
windows, equalities on fields (of the whole answer and of each measure), nulls and parts;
keys that are not dense (negative, or past `DENSE_MAX`) are left to the sorted index; sums past
int64 are exact (a decimal answer) or refused (an integer one)."""

from __future__ import annotations

import datetime as dt
import decimal
import itertools
from typing import Any

import numpy as np
import pyarrow as pa
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from storage import rollups, rollups_dense
from storage.rollups import EventIndex, Measure, SumOverflow
from storage.rollups_dense import DENSE_MAX, Part

DAY = 86_400_000_000
T0 = 1_790_000_000_000_000  # UTC µs, about 2026-09
TS = pa.timestamp("us", tz="UTC")
DEC = pa.decimal128(12, 2)
SUM_DEC = pa.decimal128(22, 2)

EVENT = st.tuples(
    st.one_of(st.none(), st.integers(0, 40)),  # key
    st.integers(-3 * DAY, 3 * DAY),  # time offset
    st.one_of(st.none(), st.integers(-(10**6), 10**6)),  # int value
    st.one_of(st.none(), st.integers(-(10**8), 10**8)),  # decimal value, in cents
    st.sampled_from(["app", "web", None]),  # a channel, dictionary-encoded
)
WHERE = st.sampled_from([(), (("c", ("app",)),), (("c", ("app", "web")),), (("n", (1, 2)),)])
WINDOW_END = st.one_of(st.none(), st.integers(-3 * DAY, 3 * DAY))


def _table(events: list[tuple[Any, ...]]) -> pa.Table:
    return pa.table(
        {
            "k": pa.array([e[0] for e in events], pa.int64()),
            "ts": pa.array([T0 + e[1] for e in events], pa.int64()).cast(TS),
            "n": pa.array([e[2] for e in events], pa.int64()),
            "amount": pa.array(
                [None if e[3] is None else decimal.Decimal(e[3]).scaleb(-2) for e in events],
                DEC,
            ),
            "c": pa.array([e[4] for e in events], pa.string()).dictionary_encode(),
        }
    )


def _measures(
    start: int | None,
    end: int | None,
    inner: tuple[int | None, int | None],
    where: rollups.Where = (),
) -> list[Measure]:
    own = (
        start if inner[0] is None else inner[0] if start is None else max(start, inner[0]),
        end if inner[1] is None else inner[1] if end is None else min(end, inner[1]),
    )
    return [
        Measure("count", None, start, end, pa.int64()),
        Measure("count", "n", *own, pa.int64()),
        Measure("sum", "n", start, end, pa.int64()),
        Measure("sum", "amount", *own, SUM_DEC, where),
        Measure("min", "amount", start, end, DEC),
        Measure("max", "n", *own, pa.int64(), where),
        Measure("count", None, *own, pa.int64(), where),
        Measure("max", "ts", start, end, TS),
    ]


def _reference(
    table: pa.Table,
    start: int | None,
    end: int | None,
    measures: list[Measure],
    where: rollups.Where = (),
) -> dict[int, list[Any]]:
    """key -> the measures' values, by plain Python over the rows."""

    def holds(r: dict[str, Any], conditions: rollups.Where) -> bool:
        return all(r[column] in values for column, values in conditions)

    rows = [r for r in table.to_pylist() if holds(r, where)]

    def inside(r: dict[str, Any], lo: int | None, hi: int | None) -> bool:
        us = (r["ts"] - dt.datetime(1970, 1, 1, tzinfo=dt.UTC)) // dt.timedelta(microseconds=1)
        return (lo is None or us >= lo) and (hi is None or us < hi)

    keys = sorted({r["k"] for r in rows if r["k"] is not None and inside(r, start, end)})
    out = {}
    for key in keys:
        mine = [r for r in rows if r["k"] == key and inside(r, start, end)]
        values: list[Any] = []
        for m in measures:
            picked = [r for r in mine if inside(r, m.start, m.end) and holds(r, m.where)]
            if m.column is not None:
                picked = [r[m.column] for r in picked if r[m.column] is not None]
            if m.func == "count":
                values.append(len(picked))
            elif not picked:
                values.append(None)
            else:
                pick: Any = {"sum": sum, "min": min, "max": max}[m.func]
                values.append(pick(picked))
        out[key] = values
    return out


def _rows(answer: pa.Table) -> dict[Any, list[Any]]:
    data = answer.to_pylist()
    return {r["key"]: [r[f"m{i}"] for i in range(len(r) - 1)] for r in data}


@settings(max_examples=80, deadline=None)
@given(
    events=st.lists(EVENT, max_size=60),
    cuts=st.lists(st.integers(0, 60), max_size=3),
    start=WINDOW_END,
    end=WINDOW_END,
    inner=st.tuples(WINDOW_END, WINDOW_END),
    where=WHERE,
    own=WHERE,
    in_time_order=st.booleans(),
)
def test_dense_equals_sorted_and_reference(
    events: list[tuple[Any, ...]],
    cuts: list[int],
    start: int | None,
    end: int | None,
    inner: tuple[int | None, int | None],
    where: rollups.Where,
    own: rollups.Where,
    in_time_order: bool,
) -> None:
    if in_time_order:  # as segments are written: a window is a slice (binary search)
        events = sorted(events, key=lambda e: e[1])
    table = _table(events)
    start = None if start is None else T0 + start
    end = None if end is None else T0 + end
    inner = tuple(None if x is None else T0 + x for x in inner)  # type: ignore[assignment]
    measures = _measures(start, end, inner, own)
    bounds = sorted({0, len(events), *(min(c, len(events)) for c in cuts)})
    parts = [Part(table.slice(a, b - a)) for a, b in itertools.pairwise(bounds)]
    dense = rollups_dense.aggregate(parts, "k", "ts", start, end, measures, where=where)
    assert dense is not None
    index = EventIndex("s", "k", table)
    ordered = rollups.aggregate(index, table, "ts", start, end, measures, where=where)
    assert dense.equals(ordered)
    assert _rows(dense) == _reference(table, start, end, measures, where)


def test_parts_outside_the_window_are_skipped_and_answers_unchanged() -> None:
    early = _table([(1, -2 * DAY, 5, 100, "app"), (2, -2 * DAY, 7, 200, None)])
    late = _table([(1, DAY, 1, 300, "web")])
    measures = [Measure("sum", "n", T0, None, pa.int64())]
    parts = [Part(early, T0 - 2 * DAY, T0 - 2 * DAY), Part(late, T0 + DAY, T0 + DAY)]
    got = rollups_dense.aggregate(parts, "k", "ts", T0, None, measures)
    assert got is not None and _rows(got) == {1: [1]}
    assert "n" not in parts[0].columns  # never converted: its times are all before the window


@pytest.mark.parametrize("key", [-1, DENSE_MAX, 200_000])  # negative, too large, too sparse
def test_keys_that_are_not_dense_go_to_the_sorted_index(key: int) -> None:
    table = _table([(key, 0, 1, 1, None), (3, 0, 2, 2, None)])
    measures = [Measure("count", None, None, None, pa.int64())]
    assert rollups_dense.aggregate([Part(table)], "k", "ts", None, None, measures) is None
    got = rollups.aggregate(EventIndex("s", "k", table), table, "ts", None, None, measures)
    assert sorted(_rows(got)) == sorted([key, 3])


def test_sums_past_int64() -> None:
    big = 2**62
    wide = pa.Array.from_buffers(  # three decimals of 2**62 cents each (past int64 together)
        pa.decimal128(18, 2),
        4,
        [None, pa.py_buffer(np.array([[big, 0], [big, 0], [big, 0], [500, 0]], np.int64))],
    )
    table = pa.table(
        {
            "k": pa.array([1, 1, 1, 2], pa.int64()),
            "ts": pa.array([T0] * 4, pa.int64()).cast(TS),
            "n": pa.array([big, big, big, 5], pa.int64()),
            "amount": wide,
        }
    )
    parts = [Part(table.slice(0, 2)), Part(table.slice(2))]
    decimal_sum = [Measure("sum", "amount", None, None, SUM_DEC)]
    got = rollups_dense.aggregate(parts, "k", "ts", None, None, decimal_sum)
    assert got is not None
    assert _rows(got) == {
        1: [decimal.Decimal(3 * big).scaleb(-2)],
        2: [decimal.Decimal("5.00")],
    }
    ordered = rollups.aggregate(EventIndex("s", "k", table), table, "ts", None, None, decimal_sum)
    assert ordered.equals(got)
    with pytest.raises(SumOverflow) as raised:
        rollups_dense.aggregate(
            parts, "k", "ts", None, None, [Measure("sum", "n", None, None, pa.int64())]
        )
    assert raised.value.value == 3 * big and raised.value.measure == 0


def test_a_where_mask_cache_is_bounded() -> None:
    table = _table([(1, 0, i, i, "app") for i in range(20)])
    part = Part(table)
    for i in range(3 * rollups_dense.MASKS):
        measures = [Measure("count", None, None, None, pa.int64(), (("n", (i,)),))]
        got = rollups_dense.aggregate([part], "k", "ts", None, None, measures)
        assert got is not None and _rows(got) == {1: [1 if i < 20 else 0]}
    assert len(part.masks) == rollups_dense.MASKS


@settings(max_examples=40, deadline=None)
@given(events=st.lists(EVENT, max_size=40), key=st.integers(-1, 41))
def test_one_keys_events_without_a_scan(events: list[tuple[Any, ...]], key: int) -> None:
    """`EventIndex.rows_of`: the positions of one key's events, in append order."""
    table = _table(events)
    want = [i for i, e in enumerate(events) if e[0] == key]
    assert EventIndex("s", "k", table).rows_of(key).tolist() == want
