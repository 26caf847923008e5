"""Attribute history (storage.history) on real RocksDB: the store's rows as of any time against a
pure-Python reference (per key, the values it took and from when) under generated sequences of
full and partial upserts, deletes and re-creations, at times including exactly a commit's, across
a reopen; which commits write records (none for a first import, a baseline, an identical upsert);
the effective time; retention compaction and the horizon."""

from __future__ import annotations

import datetime as dt
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from storage import ChangeSet, HistoryGone, Store, codec, history

SCHEMA = """\
version: 1
entities:
  people:
    key: {name: id, type: int}
    attributes:
      name: string
      city: {type: enum, values: [Shanghai, Lyon, Lima]}
      score: int
  cities:
    key: {name: code, type: string}
    history: 30 days
    attributes:
      label: string
"""
COLUMNS = ("name", "city", "score")
TYPES = {"id": pa.int64(), "name": pa.string(), "city": pa.string(), "score": pa.int64()}
BASE = dt.datetime(2025, 3, 1, tzinfo=dt.UTC)
NEVER = -(1 << 62)  # "since forever" in the reference


def us(t: dt.datetime) -> int:
    return history.to_us(t)


def people(rows: list[dict[str, Any]], columns: tuple[str, ...] = COLUMNS) -> pa.Table:
    cols = ("id", *columns)
    return pa.table({c: pa.array([r.get(c) for r in rows], type=TYPES[c]) for c in cols})


def rows_of(table: pa.Table) -> dict[int, dict[str, Any]]:
    """key -> attributes of an entity table (`__id` left out)."""
    return {r.pop("id"): {c: r[c] for c in COLUMNS} for r in table.to_pylist()}


def records(store: Store, entity: str = "people") -> int:
    return sum(1 for _ in store.kv.scan(codec.family_prefix("h", entity)))


class Reference:
    """Per key, the values it took, each with the time from which it held (None: absent)."""

    def __init__(self) -> None:
        self.timeline: dict[int, list[tuple[int, dict[str, Any] | None]]] = {}
        self.last: int | None = None  # the latest effective time of a change
        self.commits = 0
        self.changes = 0  # commits that changed something (one history record each)

    def now(self, key: int) -> dict[str, Any] | None:
        line = self.timeline.get(key)
        return line[-1][1] if line else None

    def at(self, t: int) -> dict[int, dict[str, Any]]:
        out = {}
        for key, line in self.timeline.items():
            held = [v for since, v in line if since <= t]
            if held and held[-1] is not None:
                out[key] = held[-1]
        return out

    def commit(self, t: int, new: dict[int, dict[str, Any] | None], baseline: bool) -> None:
        self.commits += 1
        changed = {k: v for k, v in new.items() if v != self.now(k)}
        if not changed:
            return
        forever = self.commits == 1
        recorded = [
            k for k, v in changed.items() if not (self.now(k) is None and (forever or baseline))
        ]
        if recorded:
            self.changes += 1
            self.last = t if self.last is None else max(self.last, t)
        for k, v in changed.items():
            if k in recorded:
                assert self.last is not None
                self.timeline.setdefault(k, []).append((self.last, v))
            else:  # created since forever
                self.timeline[k] = [(NEVER, v)]


# one step: (seconds after the previous step, kind, keys, a seed for the values)
STEP = st.tuples(
    st.sampled_from([0, 0, 1, 5, 60, -30]),
    st.sampled_from(["full", "full", "partial", "delete", "same"]),
    st.lists(st.integers(1, 8), min_size=1, max_size=4, unique=True),
    st.integers(0, 5),
)


def apply(store: Store, ref: Reference, t: int, step: tuple[int, str, list[int], int]) -> None:
    _, kind, keys, seed = step
    change = ChangeSet(effective_time=BASE + dt.timedelta(microseconds=t - us(BASE)))
    new: dict[int, dict[str, Any] | None] = {}
    cities = ["Shanghai", "Lyon", "Lima"]
    if kind == "delete":
        change.deletes["people"] = list(keys)
        new = {k: None for k in keys}
    elif kind == "same":  # the rows as they are (an upsert that changes nothing)
        present = [k for k in keys if ref.now(k) is not None]
        if not present:
            return
        rows = [{"id": k, **(ref.now(k) or {})} for k in present]
        change.upsert("people", people(rows))
        new = {k: ref.now(k) for k in present}
    elif kind == "full":
        rows = [
            {"id": k, "name": f"n{(k + seed) % 3}", "city": cities[(k * seed) % 3], "score": seed}
            for k in keys
        ]
        change.upsert("people", people(rows))
        new = {r["id"]: {c: r[c] for c in COLUMNS} for r in rows}
    else:  # partial: only `score`; the others keep their values (null for a new key)
        change.upsert("people", people([{"id": k, "score": seed * 10} for k in keys], ("score",)))
        for k in keys:
            before = ref.now(k) or {c: None for c in COLUMNS}
            new[k] = {**before, "score": seed * 10}
    store.commit(change)
    ref.commit(t, new, baseline=False)


def check(store: Store, ref: Reference, times: list[int]) -> None:
    assert rows_of(store.entity_table("people")) == ref.at(1 << 62)
    assert records(store) == ref.changes
    assert store.history_time("people") == ref.last
    for t in times:
        assert rows_of(store.entity_table_at("people", t)) == ref.at(t), t


@settings(
    max_examples=15, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(steps=st.lists(STEP, min_size=1, max_size=10), reopen_after=st.integers(0, 10))
def test_rows_as_of_any_time_match_the_reference(
    steps: list[tuple[int, str, list[int], int]], reopen_after: int
) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        store = Store.create(Path(tmp) / "s", SCHEMA, "history.yaml")
        ref = Reference()
        t = us(BASE)
        times = [us(BASE) - 1]
        try:
            for i, step in enumerate(steps):
                t += step[0] * 1_000_000
                apply(store, ref, t, step)
                times += [t - 1, t, t + 1]
                if i == reopen_after:
                    store.close()
                    store = Store.open(Path(tmp) / "s")
            check(store, ref, times)
        finally:
            store.close()


@pytest.fixture
def store(tmp_path: Path) -> Any:
    s = Store.create(tmp_path / "s", SCHEMA, "history.yaml")
    yield s
    s.close()


def commit(store: Store, at: dt.datetime | None, rows: list[dict[str, Any]], **kw: Any) -> None:
    change = ChangeSet(effective_time=at, **kw)
    change.upsert("people", people(rows))
    store.commit(change)


def row(k: int, name: str, city: str = "Lyon", score: int = 1) -> dict[str, Any]:
    return {"id": k, "name": name, "city": city, "score": score}


def test_a_first_import_and_a_baseline_write_no_records(store: Store) -> None:
    commit(store, BASE, [row(1, "a"), row(2, "b")])
    assert records(store) == 0 and store.history_time("people") is None
    assert store.entity_table_at("people", us(BASE) - 10**9) is store.entity_table("people")
    # a baseline (a CDC initial snapshot) creates keys since forever too ...
    commit(store, BASE + dt.timedelta(days=1), [row(3, "c")], baseline=True)
    assert records(store) == 0
    assert sorted(rows_of(store.entity_table_at("people", us(BASE) - 1))) == [1, 2, 3]
    # ... but the values it replaces are kept
    commit(store, BASE + dt.timedelta(days=2), [row(1, "a2")], baseline=True)
    assert records(store) == 1
    before = rows_of(store.entity_table_at("people", us(BASE + dt.timedelta(days=2)) - 1))
    assert before[1]["name"] == "a" and before[3]["name"] == "c"


def test_imports_before_any_change_add_to_the_first_load(store: Store) -> None:
    """A change set without an effective time (a file import) that only creates keys, while no
    row of the entity changed yet, adds to the initial load; once one did, creations count."""
    commit(store, None, [row(1, "a")])
    commit(store, None, [row(2, "b")])  # a second file of the initial load
    assert records(store) == 0
    assert sorted(rows_of(store.entity_table_at("people", 0))) == [1, 2]
    commit(store, None, [row(1, "a2")])  # the first change: history begins
    commit(store, None, [row(3, "c")])
    assert records(store) == 2
    last = store.history_time("people")
    assert last is not None and sorted(rows_of(store.entity_table_at("people", last - 1))) == [1, 2]
    assert rows_of(store.entity_table_at("people", 0))[1]["name"] == "a"


def test_identical_upserts_and_deletes_of_absent_keys_write_nothing(store: Store) -> None:
    commit(store, BASE, [row(1, "a"), row(2, "b")])
    commit(store, BASE + dt.timedelta(hours=1), [row(1, "a"), row(2, "b")])
    change = ChangeSet(effective_time=BASE + dt.timedelta(hours=2))
    change.deletes["people"] = [99]
    store.commit(change)
    assert records(store) == 0
    commit(store, BASE + dt.timedelta(hours=3), [row(1, "a"), row(2, "b2")])
    assert records(store) == 1
    (blob,) = [v for _, v in store.kv.scan(codec.family_prefix("h", "people"))]
    record = codec.ipc_read(blob)  # only the key that changed, with its row before
    assert record.column("id").to_pylist() == [2] and record.column("name").to_pylist() == ["b"]


def test_effective_time_is_monotonic_and_never_after_the_clock(store: Store) -> None:
    commit(store, BASE, [row(1, "a")])
    later = BASE + dt.timedelta(days=3)
    commit(store, later, [row(1, "b")])
    assert store.history_time("people") == us(later)
    commit(store, BASE + dt.timedelta(days=1), [row(1, "c")])  # earlier than the last: clamped
    assert store.history_time("people") == us(later)
    at_later = rows_of(store.entity_table_at("people", us(later) - 1))
    assert at_later[1]["name"] == "a"  # both changes at `later`: before it, the first value
    assert rows_of(store.entity_table_at("people", us(later)))[1]["name"] == "c"
    before = dt.datetime.now(dt.UTC)
    commit(store, before + dt.timedelta(days=365), [row(1, "d")])  # in the future: the clock
    after = dt.datetime.now(dt.UTC)
    last = store.history_time("people")
    assert last is not None and us(before) <= last <= us(after)
    commit(store, None, [row(1, "e")])  # no effective time: the commit's clock
    last2 = store.history_time("people")
    assert last2 is not None and last <= last2 <= us(dt.datetime.now(dt.UTC))


def test_a_deleted_entity_is_absent_after_and_present_before(store: Store) -> None:
    commit(store, BASE, [row(1, "a"), row(2, "b")])
    gone = BASE + dt.timedelta(days=1)
    change = ChangeSet(effective_time=gone)
    change.deletes["people"] = [1]
    store.commit(change)
    assert sorted(rows_of(store.entity_table_at("people", us(gone) - 1))) == [1, 2]
    assert sorted(rows_of(store.entity_table_at("people", us(gone)))) == [2]
    past = store.entity_table_at("people", us(gone) - 1).to_pylist()
    ids = {r["id"]: r["__id"] for r in past}
    assert ids[1] == store.dense_id("people", 1)  # the deleted key keeps its dense id
    back = BASE + dt.timedelta(days=2)
    commit(store, back, [row(1, "again")])
    assert rows_of(store.entity_table_at("people", us(back) - 1)).keys() == {2}
    assert rows_of(store.entity_table_at("people", us(gone) - 1))[1]["name"] == "a"


def city(store: Store, at: dt.datetime, code: str, label: str) -> None:
    change = ChangeSet(effective_time=at)
    change.upsert("cities", pa.table({"code": [code], "label": [label]}))
    store.commit(change)


def labels_at(store: Store, t: dt.datetime) -> dict[str, str]:
    return {r["code"]: r["label"] for r in store.entity_table_at("cities", us(t)).to_pylist()}


def test_retention_drops_old_records_and_refuses_readings_before_the_horizon(
    tmp_path: Path,
) -> None:
    store = Store.create(tmp_path / "s", SCHEMA, "history.yaml")
    days = [BASE + dt.timedelta(days=d) for d in range(0, 100, 10)]
    for i, day in enumerate(days):
        city(store, day, "SH", f"v{i}")
    assert records(store, "cities") == len(days) - 1
    now = days[-1] + dt.timedelta(days=5)  # keeps 30 days: records with `to` from day 65 on
    assert store.compact_history(now) == {"cities": 6}  # days 10 .. 60
    assert store.compact_history(now) == {}  # nothing more to drop
    assert records(store, "cities") == 3
    with pytest.raises(HistoryGone) as gone:
        store.entity_table_at("cities", us(days[6]) - 1)
    assert gone.value.horizon == us(days[6]) and gone.value.days == 30
    for i in range(6, len(days)):  # from the horizon on, exact
        assert labels_at(store, days[i]) == {"SH": f"v{i}"}
    assert labels_at(store, days[7] - dt.timedelta(microseconds=1)) == {"SH": "v6"}
    # a writer's open compacts with the clock: these records are years old
    store.close()
    reopened = Store.open(tmp_path / "s")
    try:
        assert records(reopened, "cities") == 0
        with pytest.raises(HistoryGone):
            reopened.entity_table_at("cities", us(days[-1]) - 1)
        assert labels_at(reopened, days[-1]) == {"SH": "v9"}
        assert records(reopened, "people") == 0  # `people` keeps its history (none here)
    finally:
        reopened.close()
    Store.open(tmp_path / "s").close()  # and a store whose history was compacted opens again


def test_a_reader_reads_the_history_the_writer_wrote(store: Store, tmp_path: Path) -> None:
    commit(store, BASE, [row(1, "a")])
    reader = Store.open(tmp_path / "s", read_only=True)
    try:
        commit(store, BASE + dt.timedelta(days=1), [row(1, "b")])
        assert reader.follow()
        assert rows_of(reader.entity_table_at("people", us(BASE)))[1]["name"] == "a"
        assert rows_of(reader.entity_table("people"))[1]["name"] == "b"
    finally:
        reader.close()


def schema_with(history_line: str) -> str:
    return SCHEMA.replace("    history: 30 days\n", f"    history: {history_line}\n")


@pytest.mark.parametrize(
    ("text", "days"), [("400 days", 400), ("1 day", 1), ("keep", None), ("'30 days'", 30)]
)
def test_the_schema_reads_an_entity_retention(text: str, days: int | None) -> None:
    from entities import parse_schema

    schema = parse_schema(schema_with(text), "h.yaml")
    assert schema.require_entity("cities").history_days == days
    assert schema.require_entity("people").history_days is None  # the default: keep forever


@pytest.mark.parametrize("text", ["forever", "0 days", "400", "ten days", "3 weeks", "[1]"])
def test_a_bad_retention_is_a_located_error(text: str) -> None:
    from entities.loader import SchemaError, parse_schema

    with pytest.raises(SchemaError) as info:
        parse_schema(schema_with(text), "h.yaml")
    (problem,) = info.value.problems
    assert problem.key == "entities.cities.history" and problem.line == 11
    if text == "[1]":
        assert problem.message == "expected a single value, found a list"
    else:
        assert "400 days" in problem.message and "keep" in problem.message
        assert f"found `{text}`" in problem.message


def test_a_commit_that_rewrites_the_snapshot_file_also_compacts(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A served store is opened once: the retention also runs whenever a commit rewrites the
    entity's snapshot file (here every second commit)."""
    from storage import snapshot

    store = Store.create(tmp_path / "s", SCHEMA, "history.yaml")
    try:
        old = dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
        city(store, old, "SH", "a")
        city(store, old + dt.timedelta(days=1), "SH", "b")
        assert records(store, "cities") == 1
        monkeypatch.setattr(snapshot, "FLUSH_COMMITS", 2)
        city(store, None, "SH", "c")  # rewrites the file: the 2020 record goes
        assert records(store, "cities") == 1  # only the one this commit wrote
        with pytest.raises(HistoryGone):
            store.entity_table_at("cities", us(old))
    finally:
        store.close()


def test_every_type_round_trips_through_the_history_of_a_large_entity(tmp_path: Path) -> None:
    """An entity of more rows than a commit's keys x 512 reads the replaced rows from RocksDB
    (not the snapshot): every attribute type comes back as it was, and an identical upsert of
    such a row writes nothing (its JSON compares equal)."""
    from tests.helpers_store import ALL_TYPES_SCHEMA, customers_table

    def customer(i: int, name: str) -> dict[str, Any]:
        return {
            "id": i,
            "name": name,
            "balance": Decimal(f"{i}.{i % 100:02d}"),
            "score": i / 7,
            "visits": -i,
            "active": i % 2 == 0,
            "born": dt.date(1990, 1, 1) + dt.timedelta(days=i),
            "last_seen": BASE + dt.timedelta(microseconds=i),
            "tier": ["bronze", "silver", "gold"][i % 3],
        }

    store = Store.create(tmp_path / "s", ALL_TYPES_SCHEMA, "all.yaml")
    try:
        rows = [customer(i, f"c{i}") for i in range(1, 601)]
        first = ChangeSet(effective_time=BASE)
        first.upsert("customers", customers_table(rows))
        store.commit(first)
        before = store.entity_table("customers").to_pylist()
        same = ChangeSet(effective_time=BASE + dt.timedelta(days=1))
        same.upsert("customers", customers_table([customer(7, "c7")]))
        store.commit(same)
        assert records(store, "customers") == 0
        later = BASE + dt.timedelta(days=2)
        moved = ChangeSet(effective_time=later)
        moved.upsert("customers", customers_table([customer(7, "renamed")]))
        store.commit(moved)
        gone = ChangeSet(effective_time=later)
        gone.deletes["customers"] = [8]
        store.commit(gone)
        assert records(store, "customers") == 2
        then = store.entity_table_at("customers", us(later) - 1).to_pylist()
        assert sorted(then, key=lambda r: r["id"]) == sorted(before, key=lambda r: r["id"])
        now = {r["id"]: r for r in store.entity_table_at("customers", us(later)).to_pylist()}
        assert now[7]["name"] == "renamed" and 8 not in now and len(now) == 599
    finally:
        store.close()
