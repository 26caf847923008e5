"""Model-based test: after any sequence of commits, reopens and snapshot deletions, the columnar
snapshot equals RocksDB's rows, which equal a plain dict model; dense ids stay 0..n-1 and fixed."""

from __future__ import annotations

import datetime as dt
import random
import shutil
import tempfile
from decimal import Decimal
from pathlib import Path
from typing import Any

import pytest
from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    invariant,
    precondition,
    rule,
    run_state_machine_as_test,
)

from storage import ChangeSet, Store
from tests.helpers_store import (
    CUSTOMER_COLUMNS,
    assert_snapshot_matches_rocks,
    customers_table,
    jsonish,
    new_store,
    require_slow,
    rocks_rows,
    snapshot_rows,
)

ATTRS = CUSTOMER_COLUMNS[1:]
KEYS = st.integers(-4, 24) | st.sampled_from([-(2**63), 2**63 - 1, 10**15])


def _nullable(s: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.none() | s


VALUES: dict[str, st.SearchStrategy[Any]] = {
    "name": _nullable(st.text(max_size=12)),
    "balance": _nullable(
        st.decimals(
            min_value=Decimal("-9999999999.99"),
            max_value=Decimal("9999999999.99"),
            places=2,
            allow_nan=False,
            allow_infinity=False,
        )
    ),
    "score": _nullable(st.floats(allow_nan=False, allow_infinity=False)),
    "visits": _nullable(st.integers(-(2**63), 2**63 - 1)),
    "active": _nullable(st.booleans()),
    "born": _nullable(st.dates(min_value=dt.date(1, 1, 1), max_value=dt.date(9999, 12, 31))),
    "last_seen": _nullable(
        st.datetimes(
            min_value=dt.datetime(1, 1, 2),
            max_value=dt.datetime(9999, 12, 30),
            timezones=st.just(dt.UTC),
        )
    ),
    "tier": _nullable(st.sampled_from(["bronze", "silver", "gold"])),
}


@st.composite
def batches(draw: st.DrawFn) -> tuple[tuple[str, ...], list[dict[str, Any]]]:
    """Rows for one upsert: a random subset of the columns (key always), duplicate keys allowed."""
    cols = tuple(c for c in ATTRS if draw(st.booleans()))
    rows = []
    for key in draw(st.lists(KEYS, min_size=1, max_size=8)):
        rows.append({"id": key, **{c: draw(VALUES[c]) for c in cols}})
    return ("id", *cols), rows


class StoreModel(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.dir = Path(tempfile.mkdtemp(prefix="eql-model-"))
        self.store = new_store(self.dir / "data")
        self.model: dict[int, dict[str, Any]] = {}
        self.ids: dict[int, int] = {}  # key -> dense id, fixed once given

    def teardown(self) -> None:
        self.store.close()
        shutil.rmtree(self.dir, ignore_errors=True)

    def _apply_upsert(self, cols: tuple[str, ...], rows: list[dict[str, Any]]) -> None:
        last: dict[int, dict[str, Any]] = {}
        for row in rows:
            last[row["id"]] = row
        for key, row in last.items():
            current = dict(self.model.get(key, dict.fromkeys(ATTRS)))
            current.update({c: jsonish(row[c]) for c in cols[1:]})
            self.model[key] = current

    @rule(batch=batches())
    def upsert(self, batch: tuple[tuple[str, ...], list[dict[str, Any]]]) -> None:
        cols, rows = batch
        change = ChangeSet()
        change.upsert("customers", customers_table(rows, cols))
        result = self.store.commit(change)
        fresh = [k for k in dict.fromkeys(r["id"] for r in rows) if k not in self.ids]
        assert result.new_ids["customers"] == len(fresh)
        self._apply_upsert(cols, rows)
        for key in fresh:
            self.ids[key] = self.store.dense_id("customers", key)

    @rule(keys=st.lists(KEYS, max_size=5))
    def delete(self, keys: list[int]) -> None:
        change = ChangeSet()
        change.deletes["customers"] = keys
        self.store.commit(change)
        for k in keys:
            self.model.pop(k, None)

    @rule(batch=batches(), keys=st.lists(KEYS, min_size=1, max_size=5))
    def upsert_and_delete(
        self, batch: tuple[tuple[str, ...], list[dict[str, Any]]], keys: list[int]
    ) -> None:
        cols, rows = batch
        change = ChangeSet()
        change.upsert("customers", customers_table(rows, cols))
        change.deletes["customers"] = keys
        self.store.commit(change)
        upserted = {r["id"] for r in rows}
        for k in keys:
            if k not in upserted:
                self.model.pop(k, None)
        self._apply_upsert(cols, rows)
        for key in upserted:
            self.ids.setdefault(key, self.store.dense_id("customers", key))

    @rule()
    def reopen(self) -> None:
        self.store.close()
        self.store = Store.open(self.dir / "data")

    @precondition(lambda self: self.model)
    @rule()
    def reopen_without_snapshot_file(self) -> None:
        self.store.close()
        path = self.dir / "data" / "snapshots" / "customers.arrow"
        assert path.exists()
        path.unlink()
        self.store = Store.open(self.dir / "data")
        assert_snapshot_matches_rocks(self.store, "customers")
        assert path.exists()  # rebuilt and persisted again

    @invariant()
    def snapshot_equals_rocks_equals_model(self) -> None:
        assert rocks_rows(self.store, "customers") == self.model
        assert snapshot_rows(self.store, "customers") == self.model
        assert_snapshot_matches_rocks(self.store, "customers")

    @invariant()
    def ids_are_dense_and_fixed(self) -> None:
        assert sorted(self.ids.values()) == list(range(len(self.ids)))
        assert self.store.id_count("customers") == len(self.ids)
        for key, i in self.ids.items():
            assert self.store.dense_id("customers", key) == i
            assert self.store.key_for_id("customers", i) == key


StoreModel.TestCase.settings = settings(max_examples=25, stateful_step_count=12, deadline=None)
test_store_matches_model = StoreModel.TestCase


@pytest.mark.slow
def test_store_matches_model_long(request: pytest.FixtureRequest) -> None:
    require_slow(request)
    run_state_machine_as_test(
        StoreModel, settings=settings(max_examples=300, stateful_step_count=30, deadline=None)
    )


def random_row(rnd: random.Random, step: int) -> dict[str, Any]:
    return {
        "id": rnd.randrange(300),
        "name": rnd.choice([None, "x", "ÿ", f"n{step}"]),
        "balance": rnd.choice([None, Decimal(rnd.randrange(-(10**6), 10**6)).scaleb(-2)]),
        "score": rnd.choice([None, rnd.uniform(-1e9, 1e9)]),
        "visits": rnd.choice([None, rnd.randrange(-(2**63), 2**63)]),
        "active": rnd.choice([None, True, False]),
        "born": rnd.choice([None, dt.date(1900, 1, 1) + dt.timedelta(rnd.randrange(60_000))]),
        "last_seen": rnd.choice(
            [
                None,
                dt.datetime(2020, 1, 1, tzinfo=dt.UTC)
                + dt.timedelta(microseconds=rnd.randrange(10**14)),
            ]
        ),
        "tier": rnd.choice([None, "bronze", "silver", "gold"]),
    }


def test_random_commits_loop_with_reopen(tmp_path: Path) -> None:
    """A seeded randomized loop (no shrinking, larger batches) against the same dict model."""
    rnd = random.Random(20261101)
    data = tmp_path / "data"
    store = new_store(data)
    model: dict[int, dict[str, Any]] = {}
    try:
        for step in range(60):
            op = rnd.random()
            if op < 0.6:
                cols = ("id", *[c for c in ATTRS if rnd.random() < 0.6])
                rows = [random_row(rnd, step) for _ in range(rnd.randrange(1, 200))]
                change = ChangeSet()
                change.upsert("customers", customers_table(rows, cols))
                store.commit(change)
                last = {r["id"]: r for r in rows}
                for key, row in last.items():
                    cur = dict(model.get(key, dict.fromkeys(ATTRS)))
                    cur.update({c: jsonish(row[c]) for c in cols[1:]})
                    model[key] = cur
            elif op < 0.85:
                keys = [rnd.randrange(300) for _ in range(rnd.randrange(1, 60))]
                change = ChangeSet()
                change.deletes["customers"] = keys
                store.commit(change)
                for k in keys:
                    model.pop(k, None)
            else:
                store.close()
                if rnd.random() < 0.5:
                    (data / "snapshots" / "customers.arrow").unlink(missing_ok=True)
                store = Store.open(data)
            assert rocks_rows(store, "customers") == model
            assert snapshot_rows(store, "customers") == model
        assert_snapshot_matches_rocks(store, "customers")
    finally:
        store.close()


def test_non_finite_floats_are_kept_identically_in_rocks_and_snapshot(tmp_path: Path) -> None:
    with new_store(tmp_path / "data") as store:
        change = ChangeSet()
        rows = [{"id": 1, "score": float("nan")}, {"id": 2, "score": float("inf")}]
        change.upsert("customers", customers_table(rows, ("id", "score")))
        store.commit(change)
        snap = store.entity_table("customers").column("score").to_pylist()
        rocks = [r["score"] for _, r in store.iter_rows("customers")]
        # either both keep the non-finite values or both hold null; never one of each
        assert [repr(v) for v in snap] == [repr(v) for v in rocks]
