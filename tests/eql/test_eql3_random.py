"""EQL-3: random small datasets with nulls; EQL results against DuckDB SQL from the same template.

Each hypothesis example builds a fresh store of the tiny schema (tests/eql/tiny.py) in a temporary
directory: users with null attributes and null or dangling store references, stores, and two
streams with null values and references, events just before, at and after the reference time and
at window boundaries, and entities without events. On it:

* a random predicate `p` (attributes, paths, aggregates with filters and windows, DID / NOT DID,
  comparisons with nulls and null parameters, AND / OR / NOT): `FIND users WHERE p` against SQL;
* the partition check: the keys of `WHERE p`, `WHERE NOT (p)` and `WHERE (p) IS NULL` are disjoint
  and together are all users;
* random per-entity aggregates against correlated SQL subqueries;
* fan-out: adding aggregates over another stream and over a many-relation never changes the first;
* a grouped query and a FIND EVENTS query against SQL.

Each runs with the per-entity index (`rollups`) and without it (`events`). The default run is
bounded (30 examples each way); the `slow` variant runs 400, both ways on each.
"""

from __future__ import annotations

import datetime as dt
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, Phase, given, settings
from hypothesis import strategies as st

from runtime.engine import Engine, EngineSettings
from tests.eql.helpers import (
    assert_same_rows,
    duck_rows,
    duckdb_connection,
    store_tables,
    table_rows,
)
from tests.eql.tiny import TINY_REF, TinyData, money, tiny_store

REF = "TIMESTAMPTZ '2026-11-01 00:00:00+00'"
HOUR = dt.timedelta(hours=1)

# ---- datasets ------------------------------------------------------------------------------
CITIES = ["x", "y", "z"]
NAMES = ["Ann", "Bob", "O'Neil", "ann", "Zoë"]
BOUNDARY_HOURS = [-24 * 30, -24 * 7, -24 * 2, 0, -1, 1, -24 * 30 - 1, -24 * 40]


def maybe(strategy: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    return st.one_of(st.none(), strategy)


@st.composite
def datasets(draw: st.DrawFn) -> TinyData:
    n_users = draw(st.integers(0, 7))
    n_stores = draw(st.integers(0, 3))
    data = TinyData()
    for i in range(1, n_users + 1):
        data.users.append(
            {
                "id": i,
                "name": draw(maybe(st.sampled_from(NAMES))),
                "city": draw(maybe(st.sampled_from(CITIES))),
                "age": draw(maybe(st.sampled_from([0, 15, 20, 33, 40, 61]))),
                "score": draw(maybe(st.sampled_from([-1.5, 0.0, 2.5, 10.25]))),
                "tier": draw(maybe(st.sampled_from(["gold", "silver", "bronze"]))),
                "vip": draw(maybe(st.booleans())),
                "joined": draw(
                    maybe(
                        st.sampled_from(
                            [
                                dt.date(2025, 3, 1),
                                dt.date(2026, 6, 1),
                                dt.date(2026, 10, 31),
                                dt.date(2026, 11, 1),
                            ]
                        )
                    )
                ),
                "store_id": draw(maybe(st.integers(1, 4))),  # 4 never exists: dangling
            }
        )
    for i in range(1, n_stores + 1):
        data.stores.append(
            {
                "id": i,
                "city": draw(maybe(st.sampled_from(CITIES))),
                "size": draw(maybe(st.sampled_from([1, 5, 12]))),
            }
        )
    hours = st.one_of(st.sampled_from(BOUNDARY_HOURS), st.integers(-24 * 45, 48))
    user_ref = maybe(st.integers(1, n_users + 1))  # n_users + 1 never exists
    order_hours = draw(st.lists(hours, max_size=14, unique=True))
    for h in order_hours:
        data.orders.append(
            {
                "ts": TINY_REF + h * HOUR,
                "user_id": draw(user_ref),
                "store_id": draw(maybe(st.integers(1, 4))),
                "amount": money(draw(maybe(st.sampled_from([0, 150, 999, 1050, 4999])))),
                "qty": draw(maybe(st.integers(0, 4))),
                "channel": draw(maybe(st.sampled_from(["app", "web", "shop"]))),
            }
        )
    click_hours = draw(st.lists(hours, max_size=8, unique=True))
    for h in click_hours:
        data.clicks.append(
            {
                "ts": TINY_REF + h * HOUR,
                "user_id": draw(user_ref),
                "page": draw(maybe(st.sampled_from(["home", "cart"]))),
                "secs": draw(maybe(st.sampled_from([0.5, 3.0, 12.25]))),
            }
        )
    return data


# ---- templates: every piece is written twice, as EQL and as SQL ------------------------------
@dataclass(frozen=True)
class Q:
    eql: str
    sql: str
    params: tuple[tuple[str, Any], ...] = ()


def sub(stream: str, cond: str = "", days: int | None = None, ref: str = "u.id") -> str:
    """The SQL condition selecting one user's events of a stream (before REF, in a window)."""
    col = "user_id"
    parts = [f"e.{col} = {ref}", f"e.ts < {REF}"]
    if days is not None:
        parts.append(f"e.ts >= {REF} - INTERVAL {days} DAY")
    if cond:
        parts.append(f"({cond})")
    return f"FROM {stream} e WHERE " + " AND ".join(parts)


def window_eql(days: int | None) -> str:
    return f" DURING LAST {days} DAYS" if days is not None else ""


DAYS = st.sampled_from([None, 2, 7, 30])


@st.composite
def atoms(draw: st.DrawFn) -> Q:
    kind = draw(st.integers(0, 27))
    days = draw(DAYS)
    w = window_eql(days)
    match kind:
        case 0:
            k = draw(st.sampled_from([0, 20, 40]))
            op = draw(st.sampled_from([">", ">=", "=", "<>", "<"]))
            return Q(f"age {op} {k}", f"u.age {op} {k}")
        case 1:
            return Q("age BETWEEN 15 AND 33", "u.age BETWEEN 15 AND 33")
        case 2:
            c = draw(st.sampled_from(CITIES))
            return Q(f"city = '{c}'", f"u.city = '{c}'")
        case 3:
            cs = draw(st.lists(st.sampled_from(CITIES), min_size=1, max_size=2, unique=True))
            lst = ", ".join(f"'{c}'" for c in cs)
            neg = draw(st.sampled_from(["", "NOT "]))
            return Q(f"city {neg}IN ({lst})", f"u.city {neg}IN ({lst})")
        case 4:
            pat = draw(st.sampled_from(["A%", "%o%", "O''%", "_o_", "%ë"]))
            return Q(f"name LIKE '{pat}'", f"u.name LIKE '{pat}'")
        case 5:
            t = draw(st.sampled_from(["gold", "silver", "bronze"]))
            return Q(f"tier = '{t}'", f"u.tier = '{t}'")
        case 6:
            return Q("vip", "u.vip")
        case 7:
            return Q("score >= 2.5", "u.score >= 2.5")
        case 8:
            return Q("joined < '2026-06-01'", "u.joined < DATE '2026-06-01'")
        case 9:
            neg = draw(st.sampled_from(["", "NOT "]))
            col = draw(st.sampled_from(["age", "name", "store", "vip", "tier"]))
            sql_col = "store_id" if col == "store" else col
            return Q(f"{col} IS {neg}NULL", f"u.{sql_col} IS {neg}NULL")
        case 10:
            c = draw(st.sampled_from(CITIES))
            return Q(f"store.city = '{c}'", f"s.city = '{c}'")
        case 11:
            return Q("store.size > 5", "s.size > 5")
        case 12:
            k = draw(st.integers(0, 2))
            return Q(
                f"count(orders{w}) >= {k}", f"(SELECT count(*) {sub('orders', days=days)}) >= {k}"
            )
        case 13:
            x = draw(st.sampled_from([0, 10, 20]))
            app = sub("orders", "e.channel = 'app'", days)
            return Q(
                f"sum(orders.amount WHERE channel = 'app'{w}) > {x}",
                f"(SELECT coalesce(sum(e.amount), 0) {app}) > {x}",
            )
        case 14:
            return Q(f"DID clicks{w}", f"EXISTS (SELECT 1 {sub('clicks', days=days)})")
        case 15:
            return Q(f"NOT DID orders{w}", f"NOT EXISTS (SELECT 1 {sub('orders', days=days)})")
        case 16:
            return Q(
                f"max(orders.qty{w}) > 2", f"(SELECT max(e.qty) {sub('orders', days=days)}) > 2"
            )
        case 17:
            return Q("avg(clicks.secs) < 5.0", f"(SELECT avg(e.secs) {sub('clicks')}) < 5.0")
        case 18:
            return Q("age = NULL", "u.age = NULL")
        case 19:
            return Q(
                "last(orders.channel) = 'web'",
                f"(SELECT e.channel {sub('orders', 'e.channel IS NOT NULL')} "
                "ORDER BY e.ts DESC LIMIT 1) = 'web'",
            )
        case 20:
            return Q(
                "first(orders.amount) > 10",
                f"(SELECT e.amount {sub('orders', 'e.amount IS NOT NULL')} "
                "ORDER BY e.ts LIMIT 1) > 10",
            )
        case 21:
            return Q("coalesce(age, 0) < 30", "coalesce(u.age, 0) < 30")
        case 22:
            return Q(
                f"count(orders WHERE amount IS NULL{w}) > 0",
                f"(SELECT count(*) {sub('orders', 'e.amount IS NULL', days)}) > 0",
            )
        case 23:
            return Q(
                "days_since(joined) > 100",
                f"floor((epoch({REF}) - epoch(CAST(u.joined AS TIMESTAMPTZ))) / 86400) > 100",
            )
        case 24:
            return Q(
                "DID orders WHERE channel IN ('app', 'web') DURING '2026-10-01' TO '2026-10-25'",
                "EXISTS (SELECT 1 FROM orders e WHERE e.user_id = u.id "
                "AND e.channel IN ('app', 'web') AND e.ts >= TIMESTAMPTZ '2026-10-01 00:00:00+00' "
                "AND e.ts < TIMESTAMPTZ '2026-10-25 00:00:00+00')",
            )
        case 25:
            return Q(
                "count(store.members) >= 2",
                "(SELECT count(*) FROM users m WHERE m.store_id = s.id) >= 2",
            )
        case 26:
            v = draw(st.sampled_from([None, 20]))
            return Q("age > $p", "u.age > " + ("NULL" if v is None else str(v)), (("p", v),))
        case _:
            return Q(
                "count(DISTINCT orders.channel) = count(orders.channel)",
                f"(SELECT count(DISTINCT e.channel) {sub('orders')}) = "
                f"(SELECT count(e.channel) {sub('orders')})",
            )


@st.composite
def predicates(draw: st.DrawFn, depth: int = 2) -> Q:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(atoms())
    kind = draw(st.sampled_from(["and", "or", "not"]))
    a = draw(predicates(depth - 1))
    if kind == "not":
        return Q(f"NOT ({a.eql})", f"NOT ({a.sql})", a.params)
    b = draw(predicates(depth - 1))
    params = tuple(dict(a.params + b.params).items())
    op = kind.upper()
    return Q(f"({a.eql}) {op} ({b.eql})", f"({a.sql}) {op} ({b.sql})", params)


@st.composite
def aggregates(draw: st.DrawFn) -> Q:
    days = draw(DAYS)
    w = window_eql(days)
    flt_choice = draw(st.sampled_from(["", "channel = 'app'", "qty >= 1", "amount IS NOT NULL"]))
    fe = f" WHERE {flt_choice}" if flt_choice else ""
    fs = (
        flt_choice.replace("channel", "e.channel")
        .replace("qty", "e.qty")
        .replace("amount", "e.amount")
    )
    kind = draw(st.integers(0, 10))
    s = sub("orders", fs, days)
    match kind:
        case 0:
            return Q(f"count(orders{fe}{w})", f"(SELECT count(*) {s})")
        case 1:
            return Q(f"sum(orders.amount{fe}{w})", f"(SELECT coalesce(sum(e.amount), 0) {s})")
        case 2:
            return Q(f"avg(orders.amount{fe}{w})", f"(SELECT avg(e.amount) {s})")
        case 3:
            return Q(f"min(orders.qty{fe}{w})", f"(SELECT min(e.qty) {s})")
        case 4:
            return Q(f"max(orders.amount{fe}{w})", f"(SELECT max(e.amount) {s})")
        case 5:
            cond = f"{fs} AND e.channel IS NOT NULL" if fs else "e.channel IS NOT NULL"
            return Q(
                f"first(orders.channel{fe}{w})",
                f"(SELECT e.channel {sub('orders', cond, days)} ORDER BY e.ts LIMIT 1)",
            )
        case 6:
            cond = f"{fs} AND e.qty IS NOT NULL" if fs else "e.qty IS NOT NULL"
            return Q(
                f"last(orders.qty{fe}{w})",
                f"(SELECT e.qty {sub('orders', cond, days)} ORDER BY e.ts DESC LIMIT 1)",
            )
        case 7:
            return Q(
                f"count(DISTINCT orders.channel{fe}{w})", f"(SELECT count(DISTINCT e.channel) {s})"
            )
        case 8:
            return Q(f"count(orders.amount{fe}{w})", f"(SELECT count(e.amount) {s})")
        case 9:
            return Q(
                f"sum(clicks.secs{w})",
                f"(SELECT coalesce(sum(e.secs), 0) {sub('clicks', '', days)})",
            )
        case _:
            return Q(
                f"sum(orders.amount * orders.qty{fe}{w})",
                f"(SELECT coalesce(sum(e.amount * e.qty), 0) {s})",
            )


def msub(cond: str = "") -> str:
    """The SQL rows of one store's members (users whose store_id is the store's id)."""
    return "FROM users m WHERE m.store_id = s.id" + (f" AND ({cond})" if cond else "")


def morders(days: int | None = None) -> str:
    """One member's orders before REF (in a window)."""
    w = f" AND e.ts >= {REF} - INTERVAL {days} DAY" if days is not None else ""
    return f"FROM orders e WHERE e.user_id = m.id AND e.ts < {REF}{w}"


@st.composite
def store_atoms(draw: st.DrawFn) -> Q:
    days = draw(DAYS)
    w = window_eql(days)
    wsql = f" AND e.ts >= {REF} - INTERVAL {days} DAY" if days is not None else ""
    kind = draw(st.integers(0, 11))
    match kind:
        case 0:
            return Q("DID members WHERE vip", f"EXISTS (SELECT 1 {msub('m.vip')})")
        case 1:
            return Q(
                f"NOT DID members WHERE count(orders{w}) > 0",
                f"NOT EXISTS (SELECT 1 {msub(f'(SELECT count(*) {morders(days)}) > 0')})",
            )
        case 2:
            k = draw(st.integers(0, 3))
            return Q(f"count(members) >= {k}", f"(SELECT count(*) {msub()}) >= {k}")
        case 3:
            x = draw(st.sampled_from([0, 5, 15]))
            return Q(
                f"sum(members.orders.amount{w}) > {x}",
                f"(SELECT coalesce(sum(e.amount), 0) FROM users m JOIN orders e "
                f"ON e.user_id = m.id WHERE m.store_id = s.id AND e.ts < {REF}{wsql}) > {x}",
            )
        case 4:
            return Q(
                f"DID orders{w}",
                f"EXISTS (SELECT 1 FROM orders e WHERE e.store_id = s.id AND e.ts < {REF}{wsql})",
            )
        case 5:
            return Q(
                "count(orders WHERE channel = 'web') = 0",
                "(SELECT count(*) FROM orders e WHERE e.store_id = s.id AND e.ts < "
                f"{REF} AND e.channel = 'web') = 0",
            )
        case 6:
            return Q("size > 3", "s.size > 3")
        case 7:
            c = draw(st.sampled_from(CITIES))
            return Q(f"city = '{c}'", f"s.city = '{c}'")
        case 8:
            return Q("size IS NULL", "s.size IS NULL")
        case 9:
            return Q("max(members.age) > 30", f"(SELECT max(m.age) {msub()}) > 30")
        case 10:
            return Q(
                f"count(members WHERE DID clicks{w}) >= 1",
                "(SELECT count(*) FROM users m WHERE m.store_id = s.id AND EXISTS (SELECT 1 "
                f"FROM clicks e WHERE e.user_id = m.id AND e.ts < {REF}{wsql})) >= 1",
            )
        case _:
            return Q(
                "count(members.orders) < 2",
                "(SELECT count(*) FROM users m JOIN orders e ON e.user_id = m.id "
                f"WHERE m.store_id = s.id AND e.ts < {REF}) < 2",
            )


@st.composite
def store_predicates(draw: st.DrawFn, depth: int = 2) -> Q:
    if depth == 0 or draw(st.integers(0, 2)) == 0:
        return draw(store_atoms())
    kind = draw(st.sampled_from(["and", "or", "not"]))
    a = draw(store_predicates(depth - 1))
    if kind == "not":
        return Q(f"NOT ({a.eql})", f"NOT ({a.sql})")
    b = draw(store_predicates(depth - 1))
    op = kind.upper()
    return Q(f"({a.eql}) {op} ({b.eql})", f"({a.sql}) {op} ({b.sql})")


OTHER_AGGREGATES = [
    "count(clicks)",
    "sum(clicks.secs DURING LAST 7 DAYS)",
    "count(store.members)",
    "last(clicks.page)",
    "count(orders WHERE channel = 'web')",
]

EVENT_PREDICATES = [
    ("amount > 10", "e.amount > 10"),
    ("channel = 'app'", "e.channel = 'app'"),
    ("user.city = 'x'", "u.city = 'x'"),
    ("qty IS NULL", "e.qty IS NULL"),
    ("store.size > 5 OR user.vip", "s.size > 5 OR u.vip"),
    ("NOT (channel IN ('app', 'shop'))", "NOT (e.channel IN ('app', 'shop'))"),
]


@dataclass(frozen=True)
class Scenario:
    data: TinyData
    predicate: Q
    aggs: tuple[Q, ...]
    other: str
    event_pred: tuple[str, str]
    event_days: int
    store_predicate: Q


scenarios = st.builds(
    Scenario,
    datasets(),
    predicates(),
    st.lists(aggregates(), min_size=1, max_size=4).map(tuple),
    st.sampled_from(OTHER_AGGREGATES),
    st.sampled_from(EVENT_PREDICATES),
    st.sampled_from([2, 7, 30]),
    store_predicates(),
)

FROM_USERS = "FROM users u LEFT JOIN stores s ON s.id = u.store_id"


def ids(table: Any) -> list[Any]:
    return list(table.column("id").to_pylist())


def check(sc: Scenario, *rollups: bool) -> None:
    with tempfile.TemporaryDirectory(prefix="eql3-") as tmp:
        store = tiny_store(Path(tmp) / "store", sc.data)
        try:
            for on in rollups:
                _check_store(sc, store, Engine(store, EngineSettings(rollups=on)))
        finally:
            store.close()


def _check_store(sc: Scenario, store: Any, engine: Engine) -> None:
    con = duckdb_connection(store_tables(store))
    try:
        p = sc.predicate
        params = dict(p.params)

        def q(text: str) -> Any:
            return engine.query(text, params=params, now=TINY_REF)

        # 1. WHERE p against SQL
        got = q(f"FIND users WHERE {p.eql} RETURN id")
        want = duck_rows(con, f"SELECT u.id {FROM_USERS} WHERE {p.sql}")
        assert_same_rows(table_rows(got), want, context=f"WHERE {p.eql}\nSQL: {p.sql}")

        # 2. partition: p, NOT (p), (p) IS NULL
        yes = ids(got)
        no = ids(q(f"FIND users WHERE NOT ({p.eql}) RETURN id"))
        unknown = ids(q(f"FIND users WHERE ({p.eql}) IS NULL RETURN id"))
        everyone = [u["id"] for u in sc.data.users]
        assert len(yes) == len(set(yes)), "WHERE p repeats an entity"
        parts = [set(yes), set(no), set(unknown)]
        assert not (parts[0] & parts[1] or parts[0] & parts[2] or parts[1] & parts[2]), (
            f"p / NOT p / p IS NULL overlap for {p.eql}: {parts}"
        )
        assert sorted(yes + no + unknown) == sorted(everyone), (
            f"p / NOT p / p IS NULL do not cover every user for {p.eql}: {parts}, {everyone}"
        )
        want_null = duck_rows(con, f"SELECT u.id {FROM_USERS} WHERE ({p.sql}) IS NULL")
        assert sorted(unknown) == sorted(r[0] for r in want_null), f"({p.eql}) IS NULL"

        # 3. aggregates against correlated subqueries
        agg_eql = ", ".join(f"{a.eql} AS a{i}" for i, a in enumerate(sc.aggs))
        agg_sql = ", ".join(a.sql for a in sc.aggs)
        got = q(f"FIND users RETURN id, {agg_eql}")
        want = duck_rows(con, f"SELECT u.id, {agg_sql} FROM users u")
        assert_same_rows(table_rows(got), want, context=f"RETURN id, {agg_eql}")

        # 4. fan-out: another stream's / a many-relation's aggregate changes nothing
        wider = q(f"FIND users RETURN id, {agg_eql}, {sc.other} AS other")
        assert_same_rows(
            [r[:-1] for r in table_rows(wider)], table_rows(got), context=f"+ {sc.other}"
        )
        narrow = q("FIND stores RETURN id, sum(orders.amount), count(orders)")
        wide = q(
            "FIND stores RETURN id, sum(orders.amount), count(orders), count(members), "
            "sum(members.clicks.secs), count(members.orders)"
        )
        assert_same_rows([r[:3] for r in table_rows(wide)], table_rows(narrow), context="stores")
        want = duck_rows(
            con,
            "SELECT s.id, (SELECT coalesce(sum(amount), 0) FROM orders o WHERE o.store_id = s.id "
            f"AND o.ts < {REF}), (SELECT count(*) FROM orders o WHERE o.store_id = s.id AND o.ts < "
            f"{REF}), (SELECT count(*) FROM users m WHERE m.store_id = s.id), "
            "(SELECT coalesce(sum(c.secs), 0) FROM users m JOIN clicks c ON c.user_id = m.id "
            f"WHERE m.store_id = s.id AND c.ts < {REF}), "
            "(SELECT count(*) FROM users m JOIN orders o ON o.user_id = m.id "
            f"WHERE m.store_id = s.id AND o.ts < {REF}) FROM stores s",
        )
        assert_same_rows(table_rows(wide), want, context="stores with two-hop aggregates")

        # 5. grouped
        got = q(
            f"FIND users WHERE {p.eql} GROUP BY city RETURN city, count(), "
            "sum(count(orders)), avg(age), max(sum(clicks.secs))"
        )
        want = duck_rows(
            con,
            f"SELECT u.city, count(*), sum((SELECT count(*) {sub('orders')})), avg(u.age), "
            f"max((SELECT coalesce(sum(e.secs), 0) {sub('clicks')})) {FROM_USERS} "
            f"WHERE {p.sql} GROUP BY u.city",
        )
        assert_same_rows(table_rows(got), want, context=f"grouped WHERE {p.eql}")

        # 6. FIND EVENTS
        ep_eql, ep_sql = sc.event_pred
        got = q(
            f"FIND EVENTS orders DURING LAST {sc.event_days} DAYS WHERE {ep_eql} "
            "RETURN time, user, amount, user.city, store.size"
        )
        want = duck_rows(
            con,
            "SELECT e.ts, e.user_id, e.amount, u.city, s.size FROM orders e "
            "LEFT JOIN users u ON u.id = e.user_id LEFT JOIN stores s ON s.id = e.store_id "
            f"WHERE ({ep_sql}) AND e.ts >= {REF} - INTERVAL {sc.event_days} DAY AND e.ts < {REF}",
        )
        assert_same_rows(table_rows(got), want, context=f"FIND EVENTS orders WHERE {ep_eql}")

        # 7. stores: predicates over many-relations (DID / NOT DID members ...) and the partition
        sp = sc.store_predicate
        got = ids(q(f"FIND stores WHERE {sp.eql} RETURN id"))
        want = duck_rows(con, f"SELECT s.id FROM stores s WHERE {sp.sql}")
        assert_same_rows([(i,) for i in got], want, context=f"FIND stores WHERE {sp.eql}")
        no = ids(q(f"FIND stores WHERE NOT ({sp.eql}) RETURN id"))
        unknown = ids(q(f"FIND stores WHERE ({sp.eql}) IS NULL RETURN id"))
        assert sorted(got + no + unknown) == sorted(s_["id"] for s_ in sc.data.stores), sp.eql
    finally:
        con.close()


COMMON: dict[str, Any] = {
    "deadline": None,
    "suppress_health_check": [HealthCheck.too_slow, HealthCheck.data_too_large],
    "print_blob": True,
}


# no shrinking in the bounded run (a failure's shrink can take minutes); the slow run shrinks
@pytest.mark.parametrize("rollups", [True, False], ids=["rollups", "events"])
@settings(
    max_examples=30,
    phases=[Phase.explicit, Phase.reuse, Phase.generate, Phase.target],
    **COMMON,
)
@given(sc=scenarios)
def test_eql_matches_sql_on_random_data(rollups: bool, sc: Scenario) -> None:
    check(sc, rollups)


@settings(max_examples=400, **COMMON)
@given(scenarios)
def _long_run(sc: Scenario) -> None:
    check(sc, True, False)


@pytest.mark.slow
def test_eql_matches_sql_on_random_data_long(request: pytest.FixtureRequest) -> None:
    """The long run: selected with `-m slow` (or EQL_SLOW=1), skipped otherwise."""
    expr = request.config.getoption("markexpr") or ""
    if not (("slow" in expr and "not slow" not in expr) or os.environ.get("EQL_SLOW")):
        pytest.skip("slow: run with -m slow or EQL_SLOW=1")
    _long_run()


def test_is_null_on_a_boolean_expression_parses() -> None:
    """The partition check needs `(p) IS NULL` on a boolean expression."""
    from eql.syntax import parse

    parse("FIND users WHERE (age > 3 AND DID orders) IS NULL")
    parse("FIND users WHERE (NOT DID orders DURING LAST 3 DAYS) IS NOT NULL")
