"""Integer `sum` never wraps: a sum whose value leaves int64 is E303 naming the sum and its true
value, in every place a sum over integers is emitted (per entity over events, with windows and
filters, over a relation, across two hops, over the rows of FIND EVENTS and FIND entity, with
GROUP BY or without, DISTINCT); a sum whose partial sums overflow but whose total fits is exact.
A hypothesis property checks sums of int64 values at the edges against Python's integers.

The store is the tiny schema (tests/eql/tiny.py): `orders.qty`, `users.age` and `stores.size`
are the integers summed.
"""

from __future__ import annotations

import datetime as dt
import os
import random
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pyarrow as pa
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from eql.diagnostics import EqlError
from eql.planner import to_datafusion
from eql.planner.overflow import SUM_MARKER
from runtime.engine import Engine
from storage import Store
from storage.store import ChangeSet
from tests.eql.tiny import ORDER_TYPES, TINY_REF, TS, TinyData, tiny_store

MAX = 2**63 - 1
MIN = -(2**63)
IN_WINDOW = dt.datetime(2026, 10, 20, tzinfo=dt.UTC)  # within the last 30 days of TINY_REF
BEFORE = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)  # outside them

# qty per user: 1 overflows (MAX + MAX), 2 overflows on the way but fits (MAX + MAX - MAX),
# 3 overflows below (MIN + -1), 4 is small; 5 overflows only counting the old order
ORDERS: dict[int, list[tuple[dt.datetime, int | None, str]]] = {
    1: [(IN_WINDOW, MAX, "app"), (IN_WINDOW, MAX, "web")],
    2: [(IN_WINDOW, MAX, "app"), (IN_WINDOW, MAX, "app"), (IN_WINDOW, -MAX, "web")],
    3: [(IN_WINDOW, MIN, "app"), (IN_WINDOW, -1, "app")],
    4: [(IN_WINDOW, 2, "app"), (IN_WINDOW, None, "web"), (IN_WINDOW, 3, "app")],
    5: [(BEFORE, MAX, "shop"), (IN_WINDOW, MAX, "app")],
}
# age per user and store_id: store 1 holds users 1 and 2 (MAX + MAX), store 2 users 3 and 4
AGES = {1: (MAX, 1), 2: (MAX, 1), 3: (MIN, 2), 4: (MAX, 2), 5: (7, 3)}


def _orders() -> list[dict[str, Any]]:
    return [
        {"ts": ts, "user_id": u, "store_id": 1, "qty": q, "channel": ch}
        for u, rows in ORDERS.items()
        for ts, q, ch in rows
    ]


@pytest.fixture(scope="module")
def engine(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Engine]:
    data = TinyData(
        users=[{"id": i, "age": a, "store_id": s} for i, (a, s) in AGES.items()],
        stores=[{"id": 1, "size": MAX}, {"id": 2, "size": MAX}, {"id": 3, "size": 1}],
        orders=_orders(),
    )
    store: Store = tiny_store(Path(tmp_path_factory.mktemp("sums")) / "store", data)
    yield Engine(store)
    store.close()


def _overflows(engine: Engine, text: str, label: str, values: set[int]) -> None:
    """`text` fails with E303 naming the sum `label` and its true value (one of `values`: when
    several groups overflow, the first found is named)."""
    assert all(not MIN <= v <= MAX for v in values), "not an overflow"
    with pytest.raises(EqlError) as info:
        engine.query(text, now=TINY_REF)
    assert info.value.codes == ("E303",), info.value.render()
    message = info.value.diagnostics[0].message
    found = re.search(
        r"integer overflow: `(.*)` is (-?[0-9]+), outside the 64-bit integers", message
    )
    assert found is not None, message
    assert found.group(1) == label, message
    assert int(found.group(2)) in values, message


def _rows(engine: Engine, text: str) -> list[dict[str, Any]]:
    return engine.query(text, now=TINY_REF).to_pylist()


# the per-user sums of qty that overflow (users 1 and 5 above, 3 below)
PER_USER = {2 * MAX, MIN - 1}
ALL_QTY = sum(q for rows in ORDERS.values() for _, q, _ in rows if q is not None)


# ---- every place a sum is emitted ------------------------------------------------------------
@pytest.mark.parametrize(
    ("text", "label", "values"),
    [
        # per entity, over its events
        ("FIND users RETURN id, sum(orders.qty) AS s", "sum(orders.qty)", PER_USER),
        ("FIND users WHERE id = 3 RETURN sum(orders.qty) AS s", "sum(orders.qty)", PER_USER),
        (
            "FIND users WHERE id = 5 RETURN sum(orders.qty DURING LAST 365 DAYS) AS s",
            "sum(orders.qty DURING LAST 365 DAYS)",
            PER_USER,
        ),
        (
            "FIND users RETURN id, sum(orders.qty WHERE qty > 0 DURING LAST 30 DAYS) AS s",
            "sum(orders.qty WHERE qty > 0 DURING LAST 30 DAYS)",
            {2 * MAX},
        ),
        # in a WHERE, in an expression, beside other aggregates of the same stream
        ("FIND users WHERE sum(orders.qty) > 0 RETURN id", "sum(orders.qty)", PER_USER),
        (
            "FIND users RETURN id, count(orders) AS n, sum(orders.qty) / 2 AS half",
            "sum(orders.qty)",
            PER_USER,
        ),
        # over a relation, across two hops, nested in another aggregate's WHERE
        ("FIND stores RETURN id, sum(members.age) AS s", "sum(members.age)", {2 * MAX}),
        (
            "FIND stores WHERE id = 1 RETURN sum(members.orders.qty) AS s",
            "sum(members.orders.qty)",
            PER_USER,
        ),
        (
            "FIND stores RETURN id, count(members WHERE sum(orders.qty) > 0) AS n",
            "sum(orders.qty)",
            PER_USER,
        ),
        # over the rows of FIND EVENTS and FIND entity, grouped or not
        ("FIND EVENTS orders RETURN sum(qty) AS s", "sum(qty)", {ALL_QTY}),
        ("FIND EVENTS orders GROUP BY user RETURN user, sum(qty) AS s", "sum(qty)", PER_USER),
        (
            "FIND EVENTS orders WHERE time >= '2026-10-01' GROUP BY channel "
            "RETURN channel, sum(qty) AS s",
            "sum(qty)",
            {4 * MAX + MIN + 4},  # app: MAX (users 1, 5), MAX, MAX, MIN, -1, 2, 3
        ),
        ("FIND users RETURN sum(age) AS s", "sum(age)", {3 * MAX + MIN + 7}),
        ("FIND users GROUP BY store_id RETURN store_id, sum(age) AS s", "sum(age)", {2 * MAX}),
        (
            "FIND users GROUP BY store_id RETURN store_id, sum(sum(orders.qty)) AS s",
            "sum(orders.qty)",
            PER_USER,
        ),
        ("FIND stores RETURN sum(size) AS s", "sum(size)", {2 * MAX + 1}),
        # DISTINCT (summed as exact decimals)
        (
            "FIND users WHERE id = 3 RETURN sum(DISTINCT orders.qty) AS s",
            "sum(DISTINCT orders.qty)",
            {MIN - 1},
        ),
        (
            "FIND EVENTS orders GROUP BY user RETURN user, sum(DISTINCT qty) AS s",
            "sum(DISTINCT qty)",
            {MIN - 1},
        ),
    ],
)
def test_a_sum_that_leaves_int64_is_e303(
    engine: Engine, text: str, label: str, values: set[int]
) -> None:
    _overflows(engine, text, label, values)


def test_an_overflow_in_the_argument_is_found_in_its_step(engine: Engine) -> None:
    with pytest.raises(EqlError) as info:
        engine.query("FIND stores RETURN sum(DISTINCT size + id) AS s", now=TINY_REF)
    assert info.value.codes == ("E303",)
    assert "integer overflow: 9223372036854775808 is outside" in info.value.diagnostics[0].message


def test_partial_sums_that_overflow_give_the_exact_total(engine: Engine) -> None:
    """MAX + MAX - MAX overflows on the way (in whatever order DataFusion adds) and is MAX."""
    rows = _rows(engine, "FIND users WHERE id IN (2, 4) RETURN id, sum(orders.qty) AS s")
    assert sorted((r["id"], r["s"]) for r in rows) == [(2, MAX), (4, 5)]
    rows = _rows(
        engine,
        "FIND EVENTS orders WHERE user IN (2, 4) GROUP BY user RETURN user, sum(qty) AS s",
    )
    assert sorted((r["user"], r["s"]) for r in rows) == [(2, MAX), (4, 5)]
    assert _rows(engine, "FIND EVENTS orders WHERE user IN (2, 3) RETURN sum(qty) AS s") == [
        {"s": MAX + MIN - 1}
    ]
    assert _rows(engine, "FIND users WHERE id IN (1, 3, 5) RETURN sum(age) AS s") == [
        {"s": MAX + MIN + 7}
    ]
    assert _rows(engine, "FIND users WHERE id IN (1, 3, 5) RETURN sum(DISTINCT age) AS s") == [
        {"s": MAX + MIN + 7}
    ]


def test_many_rows_in_many_batches(tmp_path: Path) -> None:
    """Thousands of int64 values of any size and their negations, shuffled and committed in
    chunks (so DataFusion adds them in several batches and partitions, overflowing all the way),
    plus a few more: the total is exact when it fits and named exactly when it does not."""
    rng = random.Random(20)
    rows: list[tuple[int, int]] = []
    for user, extra in [(1, [MAX - 5, 3]), (2, [MAX, 1]), (3, [MIN, -1])]:
        values = [rng.randint(MIN + 1, MAX) for _ in range(2500)]
        rows += [(user, q) for q in values + [-v for v in values] + extra]
    rng.shuffle(rows)
    store = tiny_store(tmp_path / "store", TinyData(users=[{"id": u} for u in (1, 2, 3)]))
    try:
        for start in range(0, len(rows), 1000):
            chunk = rows[start : start + 1000]
            cs = ChangeSet()
            cs.append(
                "orders",
                pa.table(
                    {
                        "ts": pa.array([IN_WINDOW] * len(chunk), TS),
                        "user_id": [u for u, _ in chunk],
                        "store_id": [1] * len(chunk),
                        "amount": pa.array([None] * len(chunk), ORDER_TYPES["amount"]),
                        "qty": [q for _, q in chunk],
                        "channel": ["app"] * len(chunk),
                    }
                ),
            )
            store.commit(cs)
        engine = Engine(store)
        one = "FIND EVENTS orders WHERE user = {} RETURN sum(qty) AS s"
        assert _rows(engine, one.format(1)) == [{"s": MAX - 2}]
        _overflows(engine, one.format(2), "sum(qty)", {MAX + 1})
        _overflows(engine, one.format(3), "sum(qty)", {MIN - 1})
        every = "FIND users RETURN id, sum(orders.qty) AS s"
        _overflows(engine, every, "sum(orders.qty)", {MAX + 1, MIN - 1})
    finally:
        store.close()


def test_windows_and_filters_check_only_what_they_sum(engine: Engine) -> None:
    rows = _rows(
        engine,
        "FIND users WHERE id = 5 RETURN sum(orders.qty DURING LAST 30 DAYS) AS w, "
        "sum(orders.qty WHERE channel = 'app') AS a, count(orders) AS n",
    )
    assert rows == [{"w": MAX, "a": MAX, "n": 2}]
    rows = _rows(engine, "FIND users WHERE id = 4 RETURN sum(orders.qty WHERE qty IS NULL) AS s")
    assert rows == [{"s": 0}]  # a sum of nulls is null, and of nothing 0 (coalesce)


def test_avg_of_integers_does_not_wrap(engine: Engine) -> None:
    """avg over integers is computed in float64 by DataFusion: no wrap, not checked."""
    rows = _rows(engine, "FIND users WHERE id = 1 RETURN avg(orders.qty) AS a")
    assert rows == [{"a": float(MAX)}]
    assert _rows(engine, "FIND EVENTS orders WHERE user = 1 RETURN avg(qty) AS a") == [
        {"a": float(MAX)}
    ]


def test_the_text_naming_a_sum_is_folded_and_shortened(engine: Engine) -> None:
    _overflows(
        engine,
        "FIND users WHERE id = 1 RETURN sum(\n  orders.qty\n) AS s",
        "sum( orders.qty )",
        PER_USER,
    )
    long = "sum(orders.qty WHERE channel IN ('app', 'web', 'shop') DURING LAST 400 DAYS)"
    with pytest.raises(EqlError) as info:
        engine.query(f"FIND users RETURN {long} AS s", now=TINY_REF)
    assert f"`{long[:57]}...`" in info.value.diagnostics[0].message


def test_only_integer_sums_that_can_overflow_are_checked(engine: Engine) -> None:
    """Decimal and float sums, and sums of counts, are emitted as before: no check."""
    for text in [
        "FIND users RETURN id, sum(orders.amount) AS s, sum(clicks.secs) AS t",
        "FIND EVENTS orders GROUP BY user RETURN user, sum(amount) AS s",
        "FIND users GROUP BY store_id RETURN store_id, sum(count(orders)) AS n",
        "FIND stores RETURN id, count(members.orders) AS n",
    ]:
        plan = engine.explain(engine.compile(text, now=TINY_REF))
        assert SUM_MARKER not in plan, text
    plan = engine.explain(engine.compile("FIND stores RETURN sum(size) AS s", now=TINY_REF))
    assert SUM_MARKER in plan


# ---- the failure's hint fits the operation -----------------------------------------------------
@pytest.mark.parametrize(
    ("raised", "hint"),
    [
        ("Arrow error: Cast error: value of 9223372036854775808 is out of range Int64", "x * 1.0"),
        ("Compute error: Int64Array overflow on abs(-9223372036854775808)", "x * 1.0"),
        (
            "Cast error: Cannot cast string 'eql sum overflow: sum(x) is -2 ~ "
            "1.8446744073709552e19' to value of Int64 type",
            "sum(x * 1.0)",
        ),
        ("Execution error: Arithmetic Overflow in AvgAccumulator", "38 digits"),
        ("Arithmetic overflow: Overflow happened on: 99999999999999999999 * 1000", "38 digits"),
        ("Arrow error: Divide by zero error", None),
    ],
)
def test_overflow_hints_fit_the_operation(raised: str, hint: str | None) -> None:
    """The hint of an integer overflow (a step, a sum) or a decimal one says what to do about it,
    not about a division (None: the code's general hint)."""
    failure = to_datafusion.failure(Exception(raised))
    assert isinstance(failure, to_datafusion.Overflow)
    if hint is None:
        assert failure.hint is None
        return
    assert failure.hint is not None and hint in failure.hint, failure.hint
    assert "division" not in failure.hint


def test_a_sum_failure_is_named() -> None:
    failure = to_datafusion.failure(
        Exception(
            "Arrow error: Cast error: Cannot cast string 'eql sum overflow: sum(o.q WHERE c = 'a')"
            " is 9223372036854775807 ~ -9.223372036854776e18' to value of Int64 type"
        )
    )
    assert str(failure) == (
        "integer overflow: `sum(o.q WHERE c = 'a')` is -9223372036854775809, outside the 64-bit "
        "integers"
    )


# ---- a property: sums of int64 values at the edges, against Python's integers -------------------
EDGE_VALUES = [0, 1, -1, 2, 2**31, 2**62, -(2**62), MAX - 1, MAX, MIN + 1, MIN]
VALUES = st.one_of(st.sampled_from(EDGE_VALUES), st.integers(MIN, MAX), st.none())
# orders as (user 1..3, qty); user 4 has none
ORDER_LISTS = st.lists(st.tuples(st.integers(1, 3), VALUES), max_size=12)


def _exact(values: list[int | None]) -> int | None:
    present = [v for v in values if v is not None]
    return sum(present) if present else None


@settings(
    max_examples=int(os.environ.get("EQL_SUM_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
@given(ORDER_LISTS)
def test_sums_are_exact_or_e303(orders: list[tuple[int, int | None]]) -> None:
    by_user: dict[int, list[int | None]] = {u: [] for u in (1, 2, 3, 4)}
    for u, q in orders:
        by_user[u].append(q)
    with tempfile.TemporaryDirectory() as tmp:
        data = TinyData(
            users=[{"id": u} for u in by_user],
            orders=[
                {"ts": IN_WINDOW, "user_id": u, "store_id": 1, "qty": q, "channel": "app"}
                for u, q in orders
            ],
        )
        store = tiny_store(Path(tmp) / "store", data)
        try:
            engine = Engine(store)
            per_user = {u: _exact(vs) for u, vs in by_user.items()}
            distinct = {
                u: _exact(list({v for v in vs if v is not None})) for u, vs in by_user.items()
            }
            grouped = {u: v for u, v in per_user.items() if by_user[u]}
            total = _exact([q for _, q in orders])
            _check(
                engine,
                "FIND users RETURN id AS k, sum(orders.qty) AS s",
                {u: 0 if v is None else v for u, v in per_user.items()},
            )
            _check(
                engine,
                "FIND users RETURN id AS k, sum(DISTINCT orders.qty) AS s",
                {u: 0 if v is None else v for u, v in distinct.items()},
            )
            _check(
                engine, "FIND EVENTS orders GROUP BY user RETURN user AS k, sum(qty) AS s", grouped
            )
            _check(engine, "FIND EVENTS orders RETURN 0 AS k, sum(qty) AS s", {0: total})
        finally:
            store.close()


def _check(engine: Engine, text: str, expected: dict[int, int | None]) -> None:
    overflow = any(v is not None and not MIN <= v <= MAX for v in expected.values())
    try:
        rows = engine.query(text, now=TINY_REF).to_pylist()
    except EqlError as exc:
        assert overflow, f"{text}: {exc.render()}; expected {expected}"
        assert exc.codes == ("E303",), exc.render()
        return
    assert not overflow, f"{text}: expected E303, got {rows}"
    assert {r["k"]: r["s"] for r in rows} == expected, text


def test_the_error_hint_fits_the_operation(engine: Engine) -> None:
    """The engine's E303 carries the failing operation's own hint, not the code's general one."""
    with pytest.raises(EqlError) as summed:
        engine.query("FIND stores RETURN sum(size) AS s", now=TINY_REF)
    with pytest.raises(EqlError) as stepped:
        engine.query("FIND stores RETURN size + id AS s", now=TINY_REF)
    assert summed.value.hint is not None and "sum(" in summed.value.hint
    assert stepped.value.hint is not None and "`x * 1.0`" in stepped.value.hint
    assert summed.value.hint != stepped.value.hint
