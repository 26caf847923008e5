"""Per-key windowed aggregates of a stream whose keys are small non-negative integers, with no
sort at all: accumulators indexed by the key itself.

Most references are dense ids of a kind (user 1..1M, store 1..500). For those, a count is
`np.bincount` of the keys of the selected events, a sum `np.add.at` (int64, exact), a min or max
`np.minimum.at` / `np.maximum.at`, all into arrays of `max key + 1` slots, one part of the stream
at a time. A part is a segment (immutable: its columns, as int64 arrays, are converted once and
kept with it; a segment wholly outside the key window is skipped by its min/max time) or the
tail (converted again when it changes). Nothing is built before the first query, so a fresh
process answers at once, and a commit costs nothing here: its segment or tail is converted
when a query first reads it.

The answers are those of `storage.rollups.aggregate` (the same `Measure`s, the same table:
`key`, `m0`, `m1`, ...; keys in ascending order): a key appears when it has an event in the key
window; a count over none is 0, a sum, min or max over none null. Sums are exact: int64
accumulators, and where the sum of magnitudes of a measure's values reaches 2**62 (a wrap
possible) the keys whose own magnitudes do are summed again in Python integers (past int64: a
decimal answer holds it, an integer one raises `SumOverflow`). Keys below 0 or from `DENSE_MAX`
on, or more slots than `SLOTS_PER_EVENT` an event (few keys far apart): `None`, the sorted index
answers (`storage.rollups.EventIndex`).
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from storage.rollups import (
    INT64_MAX,
    INT64_MIN,
    SAFE_SUM,
    Column,
    Measure,
    SumOverflow,
    Where,
    decimal_answer,
    in_window,
    int64_column,
    matching,
    typed_answer,
)

DENSE_MAX = 1 << 24  # keys in [0, 2**24): arrays of at most 16M slots (128 MB of int64 each)
SLOTS_PER_EVENT = 4  # and no more slots than 4 an event (plus SLOTS_FREE): few keys, far apart,
SLOTS_FREE = 1 << 16  # go to the sorted index rather than to arrays mostly empty
MASKS = 8  # conditions whose rows a part keeps


@dataclass
class Part:
    """A segment or the tail of a stream, with its columns as int64 arrays (on first need)."""

    table: pa.Table
    min_time: int | None = None  # UTC µs; None: unknown (the tail)
    max_time: int | None = None
    columns: dict[str, Column] = field(default_factory=dict)
    key_range: dict[str, tuple[int, int] | None] = field(default_factory=dict)
    masks: OrderedDict[Where, np.ndarray | None] = field(default_factory=OrderedDict)
    in_order: dict[str, bool] = field(default_factory=dict)  # by a time column

    def matching(self, where: Where) -> np.ndarray | None:
        """The rows `where` takes; the last `MASKS` conditions are kept (a query's come back
        with every run of it, and a parameter's values are many)."""
        if not where:
            return None
        if where in self.masks:
            self.masks.move_to_end(where)
        else:
            self.masks[where] = matching(self.table, where)
            while len(self.masks) > MASKS:
                self.masks.popitem(last=False)
        return self.masks[where]

    def column(self, name: str) -> Column:
        found = self.columns.get(name)
        if found is None:
            found = int64_column(self.table.column(name))
            self.columns[name] = found
        return found

    def keys(self, by: str) -> tuple[int, int] | None:
        """(smallest, largest) non-null key; None: no key."""
        if by not in self.key_range:
            values, valid = self.column(by)
            present = values if valid is None else values[valid]
            self.key_range[by] = (int(present.min()), int(present.max())) if len(present) else None
        return self.key_range[by]

    def span(self, time: str, start: int | None, end: int | None) -> slice:
        """The rows whose time can be in [start, end): all of them, or, for a part whose rows
        are in time order (a stream appended as time goes: CDC, daily files), the slice two
        binary searches find."""
        ts = self.column(time)[0]
        if time not in self.in_order:
            self.in_order[time] = bool(len(ts) < 2 or (ts[1:] >= ts[:-1]).all())
        if not self.in_order[time] or (start is None and end is None):
            return slice(None)
        lo = 0 if start is None else int(np.searchsorted(ts, start, side="left"))
        hi = len(ts) if end is None else int(np.searchsorted(ts, end, side="left"))
        return slice(lo, max(lo, hi))

    def outside(self, start: int | None, end: int | None) -> bool:
        """Whether no event of the part can be in [start, end)."""
        if start is not None and self.max_time is not None and self.max_time < start:
            return True
        return end is not None and self.min_time is not None and self.min_time >= end


def _in(ts: np.ndarray, start: int | None, end: int | None, base: np.ndarray) -> np.ndarray:
    """`base` and the rows of `ts` in [start, end)."""
    inside = in_window(ts, start, end)
    return base if inside is None else base & inside


@dataclass
class _Acc:
    measure: Measure
    values: np.ndarray  # per key slot
    counts: np.ndarray  # contributing events per key slot
    magnitude: float = 0.0  # a sum's: the sum of |value| of everything added


def _selected(
    part: Part, by: str, time: str | None, start: int | None, end: int | None, where: Where
) -> tuple[slice, np.ndarray, np.ndarray, np.ndarray | None]:
    """(the span of rows looked at, and over it: the keys, the rows with a key in the key
    window that match `where`, their times)."""
    span = part.span(time, start, end) if time is not None else slice(None)
    keys, key_valid = part.column(by)
    keys = keys[span]
    base = np.ones(len(keys), dtype=bool) if key_valid is None else key_valid[span]
    found = part.matching(where)
    if found is not None:
        base = base & found[span]
    ts = part.column(time)[0][span] if time is not None else None
    return span, keys, (_in(ts, start, end, base) if ts is not None else base), ts


def _measured(
    part: Part,
    m: Measure,
    span: slice,
    sel: np.ndarray,
    ts: np.ndarray | None,
    window: tuple[int | None, int | None],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Over `span`: the rows `m` takes (its own window, non-null values) and its values (None:
    a count)."""
    rows = sel
    if ts is not None and (m.start, m.end) != window:
        rows = _in(ts, m.start, m.end, sel)
    own = part.matching(m.where)
    if own is not None:
        rows = rows & own[span]
    values = None
    if m.column is not None:
        values, valid = part.column(m.column)
        values = values[span]
        if valid is not None:
            rows = rows & valid[span]
    return rows, values


def aggregate(
    parts: Sequence[Part],
    by: str,
    time: str | None,
    start: int | None,
    end: int | None,
    measures: Sequence[Measure],
    key_type: pa.DataType | None = None,
    where: Where = (),
) -> pa.Table | None:
    """The answer (as `storage.rollups.aggregate`'s), or None when the keys are not dense."""
    ranges = [r for p in parts if (r := p.keys(by)) is not None]
    if ranges and (min(r[0] for r in ranges) < 0 or max(r[1] for r in ranges) >= DENSE_MAX):
        return None
    size = max((r[1] for r in ranges), default=-1) + 1
    events = sum(p.table.num_rows for p in parts)
    if size > SLOTS_PER_EVENT * events + SLOTS_FREE:
        return None
    live = [
        p for p in parts if p.table.num_rows and not (time is not None and p.outside(start, end))
    ]
    present = np.zeros(size, dtype=np.int64)
    accs = [_start(m, size) for m in measures]
    for part in live:
        span, keys, sel, ts = _selected(part, by, time, start, end, where)
        if not sel.any():
            continue
        _count(present, keys[sel])
        for acc in accs:
            m = acc.measure
            rows, values = _measured(part, m, span, sel, ts, (start, end))
            k = keys[rows]
            _count(acc.counts, k)
            if values is None or m.func == "count":
                continue
            v = values[rows]
            if m.func == "sum":
                np.add.at(acc.values, k, v)
                acc.magnitude += float(np.abs(v.astype(np.float64)).sum())
            elif m.func == "min":
                np.minimum.at(acc.values, k, v)
            elif m.func == "max":
                np.maximum.at(acc.values, k, v)
            else:
                raise ValueError(f"the index does not answer {m.func}")
    out = np.flatnonzero(present)
    columns: dict[str, pa.Array] = {"key": pa.array(out, type=key_type or pa.int64())}
    for i, acc in enumerate(accs):
        big: dict[int, int] = {}
        if acc.measure.func == "sum" and acc.magnitude >= SAFE_SUM:  # a slot may have wrapped
            try:
                big = _exact(acc, live, by, time, (start, end), where, out, size)
            except SumOverflow as exc:
                exc.measure = i
                raise
        columns[f"m{i}"] = _answer(acc, out, big)
    return pa.table(columns)


def _count(counts: np.ndarray, keys: np.ndarray) -> None:
    """Add one per key: a bincount over all slots when the keys are many, else per key (a part
    of few selected events must not cost a pass over every slot)."""
    if len(keys) * 8 >= len(counts):
        counts += np.bincount(keys, minlength=len(counts))
    elif len(keys):
        np.add.at(counts, keys, 1)


def _start(m: Measure, size: int) -> _Acc:
    fill = {"min": INT64_MAX, "max": INT64_MIN}.get(m.func, 0)
    return _Acc(m, np.full(size, fill, dtype=np.int64), np.zeros(size, dtype=np.int64))


def _exact(
    acc: _Acc,
    parts: Sequence[Part],
    by: str,
    time: str | None,
    window: tuple[int | None, int | None],
    where: Where,
    out: np.ndarray,
    size: int,
) -> dict[int, int]:
    """Sum again, in Python integers, the keys whose magnitudes reach 2**62: set in
    `acc.values` where the sum fits int64; returned (slot -> value) where only a decimal does."""
    m = acc.measure
    magnitude = np.zeros(size, dtype=np.float64)
    picked = []
    for part in parts:
        span, keys, sel, ts = _selected(part, by, time, *window, where)
        rows, values = _measured(part, m, span, sel, ts, window)
        assert values is not None
        k, v = keys[rows], values[rows]
        np.add.at(magnitude, k, np.abs(v.astype(np.float64)))
        picked.append((k, v))
    big: dict[int, int] = {}
    slots = np.flatnonzero(magnitude[out] >= SAFE_SUM)
    for slot in slots:
        key = int(out[slot])
        exact = sum(int(x) for k, v in picked for x in v[k == key])
        if INT64_MIN <= exact <= INT64_MAX:
            acc.values[key] = exact
        elif pa.types.is_decimal(m.type):
            big[int(slot)] = exact
        else:
            raise SumOverflow(exact)
    return big


def _answer(acc: _Acc, out: np.ndarray, big: dict[int, int]) -> pa.Array:
    m = acc.measure
    counts = acc.counts[out]
    if m.func == "count":
        return pa.array(counts, type=m.type)
    values = acc.values[out]
    empty = counts == 0
    if big:
        return decimal_answer(values, empty, big, m.type)
    return typed_answer(values, empty, m.type)
