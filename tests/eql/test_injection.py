"""EQL-4: injection attempts in literals, identifiers and parameters; non-EQL statements.

No query may reach data it was not written for: a hostile value is data, found exactly by a
parameter and by a correctly escaped literal, and never changes what the query means. Statements
other than FIND / FIND EVENTS are refused with an `EqlError`, and the store is unchanged after.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from eql.diagnostics import EqlError
from runtime.engine import Engine
from storage import Store
from tests.eql.helpers import store_tables
from tests.eql.tiny import TINY_REF, TinyData, tiny_store

HOSTILE = [
    "O'Brien; DROP TABLE users;--",
    "' OR '1'='1",
    "'; SELECT * FROM users; --",
    "Robert'); DROP TABLE students;--",
    "a\x00b",
    "\x00",
    "Zoë 李小龍 👩‍💻",
    "`x`",
    "`; DROP`",
    '"dq" \\"',
    "50% _off_",
    "back\\slash\\'",
    ".*(?s)[a-z]+$",
    "line\nbreak\r\ttab",
    "",
    "NULL",
    "null",
    "$n",
    "{{x}}",
    "‮reversed",
    "%",
    "_",
    "' UNION SELECT name FROM users --",
    "1 OR 1=1",
]


@pytest.fixture(scope="module")
def hostile(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[Store, Engine]]:
    users = [
        {"id": i + 1, "name": n, "city": n, "tier": "gold" if i % 2 else "silver"}
        for i, n in enumerate(HOSTILE)
    ]
    users.append({"id": 1000, "name": None, "city": "plain"})
    orders = [
        {"ts": TINY_REF.replace(day=1, month=10), "user_id": i + 1, "channel": "app"}
        for i in range(len(HOSTILE))
    ]
    clicks = [
        {"ts": TINY_REF.replace(day=2, month=10), "user_id": i + 1, "page": n}
        for i, n in enumerate(HOSTILE)
    ]
    store = tiny_store(
        tmp_path_factory.mktemp("eql4") / "store",
        TinyData(users=users, orders=orders, clicks=clicks),
    )
    yield store, Engine(store)
    store.close()


def literal(value: str) -> str:
    return "'" + value.replace("'", "''") + "'"


def ids(engine: Engine, text: str, **params: Any) -> list[int]:
    return sorted(engine.query(text, params=params, now=TINY_REF).column("id").to_pylist())


def test_the_store_holds_the_hostile_values_verbatim(hostile: tuple[Store, Engine]) -> None:
    store, _ = hostile
    names = store_tables(store)["users"].column("name").to_pylist()
    assert sorted(n for n in names if n is not None) == sorted(HOSTILE)


@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=lambda i: repr(HOSTILE[i])[:30])
def test_hostile_value_is_found_exactly(index: int, hostile: tuple[Store, Engine]) -> None:
    _, engine = hostile
    value = HOSTILE[index]
    me = [index + 1]
    # a parameter, typed by its use
    assert ids(engine, "FIND users WHERE name = $n RETURN id", n=value) == me
    assert ids(engine, "FIND users WHERE city = $n AND name = $n RETURN id", n=value) == me
    # a correctly escaped literal
    assert ids(engine, f"FIND users WHERE name = {literal(value)} RETURN id") == me
    # the negation is everyone else with a name (null names are neither)
    others = ids(engine, "FIND users WHERE name <> $n RETURN id", n=value)
    assert others == [i + 1 for i in range(len(HOSTILE)) if i != index]
    # in a list parameter and a literal IN list
    assert ids(engine, "FIND users WHERE name IN $ns RETURN id", ns=[value]) == me
    assert ids(engine, f"FIND users WHERE name IN ({literal(value)}, 'zz') RETURN id") == me
    # inside an aggregate's filter, over an event's string field
    got = ids(engine, "FIND users WHERE DID clicks WHERE page = $n RETURN id", n=value)
    assert got == me
    got = ids(engine, f"FIND users WHERE count(clicks WHERE page = {literal(value)}) = 1 RETURN id")
    assert got == me
    # FIND EVENTS with the value in WHERE
    ev = engine.query(
        "FIND EVENTS clicks WHERE page = $n RETURN user, page", params={"n": value}, now=TINY_REF
    )
    assert ev.to_pylist() == [{"user": index + 1, "page": value}]


@pytest.mark.parametrize("index", range(len(HOSTILE)), ids=lambda i: repr(HOSTILE[i])[:30])
def test_like_treats_only_percent_and_underscore_as_wildcards(
    index: int, hostile: tuple[Store, Engine]
) -> None:
    _, engine = hostile
    value = HOSTILE[index]
    got = ids(engine, "FIND users WHERE name LIKE $p RETURN id", p=value)
    lit = ids(engine, f"FIND users WHERE name LIKE {literal(value)} RETURN id")
    assert got == lit
    expected = [i + 1 for i, n in enumerate(HOSTILE) if _like(n, value)]
    assert got == expected


def _like(text: str, pattern: str) -> bool:
    """LIKE by hand: % any run, _ one character, everything else literal (no escapes)."""
    import re

    rx = "".join(".*" if c == "%" else "." if c == "_" else re.escape(c) for c in pattern)
    return re.fullmatch(rx, text, flags=re.DOTALL) is not None


@pytest.mark.parametrize("value", HOSTILE, ids=lambda v: repr(v)[:30])
def test_hostile_values_come_back_unchanged_as_results(
    value: str, hostile: tuple[Store, Engine]
) -> None:
    _, engine = hostile
    t = engine.query(
        f"FIND users WHERE id = 1 RETURN $v AS p, {literal(value)} AS l, concat($v, '') AS c",
        params={"v": value},
        now=TINY_REF,
    )
    assert t.to_pylist() == [{"p": value, "l": value, "c": value}]


@pytest.mark.parametrize(
    "alias",
    ['x"; DROP TABLE users; --', "a.b", "ÄÖ 名前", "select", "``tick``", "c1", "__id", "id"],
)
def test_quoted_identifiers_as_output_names(alias: str, hostile: tuple[Store, Engine]) -> None:
    _, engine = hostile
    quoted = "`" + alias.replace("`", "``") + "`"
    t = engine.query(f"FIND users WHERE id <= 2 RETURN name AS {quoted}", now=TINY_REF)
    assert t.column_names == [alias]
    assert sorted(t.column(0).to_pylist()) == sorted(HOSTILE[:2])


@pytest.mark.parametrize(
    ("query", "code"),
    [
        ("FIND users RETURN __id", "E202"),  # the store's internal dense id is not a name
        ("FIND users RETURN `__id`", "E202"),
        ("FIND users RETURN c1", "E202"),  # nor are the engine's internal column names
        ("FIND users RETURN stores.city", "E202"),
        ("FIND users RETURN `name; DROP TABLE users`", "E202"),
        ("FIND users RETURN `na``me`", "E202"),
        ("FIND `users; DROP TABLE users`", "E201"),
        ("FIND EVENTS `orders WHERE 1=1`", "E201"),
        ("FIND ＵＳＥＲＳ", "E104"),  # fullwidth letters are not ASCII names
        ("FIND users WHERE nаme = 'x'", "E104"),  # a Cyrillic а
        ("FIND users\u202e RETURN id", "E104"),  # a right-to-left override outside a string
        ("FIND users WHERE name = 'x'\x00 RETURN id", "E104"),  # NUL outside a string
        ("FIND users RETURN read_csv('/etc/passwd')", "E205"),
        ("FIND users RETURN read_parquet('x.parquet')", "E205"),
        ("FIND users RETURN arrow_cast(id, 'Utf8')", "E205"),
        ("FIND users RETURN regexp_like(name, '.*')", "E205"),
        ("FIND users RETURN now()", "E205"),
        ("FIND users RETURN random()", "E205"),
    ],
)
def test_hostile_identifiers_are_refused(
    query: str, code: str, hostile: tuple[Store, Engine]
) -> None:
    _, engine = hostile
    with pytest.raises(EqlError) as info:
        engine.query(query, now=TINY_REF)
    assert info.value.codes[0] == code
    assert info.value.diagnostics[0].span is not None


NOT_EQL = [
    "SELECT * FROM users",
    "select 1",
    "DROP TABLE users",
    "INSERT INTO users VALUES (1)",
    "UPDATE users SET name = 'x'",
    "DELETE FROM users",
    "CREATE TABLE t (a int)",
    "COPY users TO '/tmp/eql-injection.csv'",
    "ATTACH 'x.db'",
    "PRAGMA table_info('users')",
    "SET x = 1",
    "WITH a AS (SELECT 1) SELECT * FROM a",
    "EXPLAIN SELECT 1",
    "FIND users; DROP TABLE users",
    "FIND users;;",
    "FIND users /* x */ ; SELECT 1",
    "FIND users WHERE name = 'a' UNION SELECT * FROM users",
    "FIND users WHERE name = '' OR 1=1 RETURN id; DELETE FROM users",
    "FIND users RETURN id FROM users",
    "",
    "   ",
    ";",
    "SHOW TAGS",
    "REFRESH SEGMENT x",
    "DEFINE TAG t ON users AS 1",
    "DEFINE SEGMENT s ON users WHERE vip",
    "DROP SEGMENT x",
    "DESCRIBE TAG x",
    "EXPLAIN MEMBERSHIP x FOR 1",
]


@pytest.mark.parametrize("text", NOT_EQL)
def test_statements_other_than_queries_are_refused(
    text: str, hostile: tuple[Store, Engine], tmp_path: Path
) -> None:
    store, engine = hostile
    before = store_tables(store)
    with pytest.raises(EqlError) as info:
        engine.query(text, now=TINY_REF)
    err = info.value
    assert err.codes and all(c.startswith("E") for c in err.codes)
    json.dumps(err.to_json())
    assert store_tables(store) == before
    assert not Path("/tmp/eql-injection.csv").exists()


@pytest.mark.parametrize(
    ("query", "params"),
    [
        ("FIND users LIMIT $n", {"n": "1; DROP TABLE users"}),
        ("FIND users RETURN count(orders DURING LAST $n DAYS)", {"n": "1 DAYS) OR (1"}),
        ("FIND users AS OF $t", {"t": "2026-01-01'; DROP TABLE users; --"}),
        ("FIND users WHERE id = $n", {"n": "1 OR 1=1"}),
        ("FIND users WHERE id = $n", {"n": True}),
        ("FIND users WHERE name = $n", {"n": {"a": 1}}),
        ("FIND users WHERE name = $n", {"n": b"bytes"}),
        ("FIND users WHERE name = $n", {"n": object()}),
        ("FIND users WHERE $a = $b", {"a": {"x": 1}, "b": 1}),
        ("FIND users WHERE name IN $n", {"n": [{"a": 1}]}),
        ("FIND users WHERE age > $n", {"n": float("nan")}),
        ("FIND users WHERE joined > $d", {"d": "2026-01-01; DROP"}),
        ("FIND users WHERE vip = $b", {"b": "true OR 1=1"}),
        # a number for text is not text (was: silently '5', matching nothing)
        ("FIND users WHERE name = $n", {"n": 5}),
        ("FIND users WHERE name IN $n", {"n": [1, 2]}),
        ("FIND users WHERE tier = $n", {"n": 1}),
    ],
)
def test_mistyped_parameters_are_refused(
    query: str, params: dict[str, Any], hostile: tuple[Store, Engine]
) -> None:
    _, engine = hostile
    with pytest.raises(EqlError) as info:
        engine.query(query, params=params, now=TINY_REF)
    assert info.value.codes[0] == "E211"
    assert set(info.value.codes) == {"E211"}


def test_unknown_enum_value_in_a_parameter_matches_nothing(hostile: tuple[Store, Engine]) -> None:
    """An enum compared with a hostile parameter: no row (or an error), never every row."""
    _, engine = hostile
    try:
        got = ids(engine, "FIND users WHERE tier = $t RETURN id", t="gold' OR 'x'='x")
    except EqlError as exc:
        assert exc.codes[0] in ("E211", "E223")
    else:
        assert got == []
    assert ids(engine, "FIND users WHERE tier = $t RETURN id", t="gold") == [
        i + 1 for i in range(len(HOSTILE)) if i % 2
    ]


def test_parameters_are_never_spliced_into_text(hostile: tuple[Store, Engine]) -> None:
    """The bound IR holds the parameter as a value; the query text stays what was written."""
    _, engine = hostile
    value = "x' OR name IS NOT NULL OR name = '"
    c = engine.compile("FIND users WHERE name = $n RETURN id", {"n": value}, TINY_REF)
    assert value not in c.text
    assert engine.run(c).num_rows == 0
    from eql.planner.explain import format_bound

    assert "$n=" in format_bound(c.bound)


def test_cli_param_injection(tmp_path: Path) -> None:
    """Through the CLI's --param: the hostile name is matched exactly, never interpreted."""
    from typer.testing import CliRunner

    from eql.cli.main import app

    value = "O'Brien; DROP TABLE users;--"
    data = TinyData(users=[{"id": 1, "name": value}, {"id": 2, "name": "O"}])
    tiny_store(tmp_path / "s", data).close()
    runner = CliRunner()
    res = runner.invoke(
        app,
        [
            "query",
            "--data-dir",
            str(tmp_path / "s"),
            "--format",
            "ndjson",
            "--param",
            f"n={value}",
            "--as-of",
            "2026-11-01",
            "FIND users WHERE name = $n RETURN id, name",
        ],
    )
    assert res.exit_code == 0, res.output
    rows = [json.loads(line) for line in res.stdout.splitlines() if line.strip()]
    assert rows == [{"id": 1, "name": value}]
    res = runner.invoke(app, ["query", "--data-dir", str(tmp_path / "s"), "DROP TABLE users"])
    assert res.exit_code != 0
    assert "E101" in res.output
