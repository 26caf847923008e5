"""Wrong queries: each must fail with the right diagnostic code AND the right span.

Like EdgeDB's `@must_fail(line=, col=)`: a case names the code, the 1-based line and column of the
span's start and the exact text the span covers. Compiled against the retail schema (no data
needed), except E222 which needs a stream that references one entity twice.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass, field
from typing import Any

import pytest

from entities import Schema, parse_schema
from eql.compiler import compile_query
from eql.diagnostics import EqlError
from eql.syntax import parameters, parse
from tests.eql.helpers import NOW, RETAIL_SCHEMA


@dataclass(frozen=True)
class Bad:
    query: str
    code: str
    line: int
    col: int
    text: str  # what the span covers
    params: dict[str, Any] = field(default_factory=dict)
    id: str = ""
    message: str = ""  # a substring of the message, when the case checks it
    help: str = ""  # a substring of one of the helps, when the case checks it


def bad(query: str, code: str, line: int, col: int, text: str, **params: Any) -> Bad:
    return Bad(query, code, line, col, text, params, id=f"{code}-{query[:40]}")


def hinted(
    query: str,
    code: str,
    line: int,
    col: int,
    text: str,
    message: str,
    help: str,
    params: dict[str, Any] | None = None,
) -> Bad:
    """A case whose message and hint are checked too."""
    return Bad(query, code, line, col, text, params or {}, f"{code}-{query[:40]}", message, help)


CASES = [
    # ---- E1xx: syntax ----------------------------------------------------------------------
    bad("SELECT * FROM users", "E101", 1, 1, "SELECT"),
    bad("FIND users WHERE", "E102", 1, 17, ""),
    bad("FIND users WHERE (city = 'x'", "E102", 1, 29, ""),
    bad("FIND users WHERE city = 'Shanghai", "E103", 1, 25, "'Shanghai"),
    bad("FIND users WHERE name = 'a' @ 3", "E104", 1, 29, "@"),
    bad("FIND users WHERE city = '上海' AND nаme = 'x'", "E104", 1, 35, "а"),  # Cyrillic а
    bad("FIND users WHERE id = 99999999999999999999999", "E105", 1, 23, "99999999999999999999999"),
    bad("FIND users RETURN `na", "E108", 1, 19, "`na"),
    bad("FIND users /* comment", "E109", 1, 12, "/* comment"),
    bad("FIND users WHERE signup_date = DATE '2026-02-30'", "E111", 1, 32, "DATE '2026-02-30'"),
    bad("FIND users RETURN count(purchase DURING LAST 3 FORTNIGHTS)", "E101", 1, 48, "FORTNIGHTS"),
    bad(
        "FIND users WHERE DID purchase WHERE channel = 'app' AND amount > 3 DURING LAST 3 DAYS",
        "E101",
        1,
        68,
        "DURING",
    ),
    bad("FIND users\nWHERE city = 'x'\nRETURN id,\n", "E102", 3, 11, ""),
    # ---- E2xx: names -------------------------------------------------------------------------
    bad("FIND usrs", "E201", 1, 6, "usrs"),
    bad("FIND EVENTS purchases", "E201", 1, 13, "purchases"),
    bad("FIND purchase", "E201", 1, 6, "purchase"),
    bad("FIND users WHERE nmae = 'x'", "E202", 1, 18, "nmae"),
    bad("FIND users RETURN id,\n  name,\n  home_store.citty", "E202", 3, 14, "citty"),
    bad("FIND users WHERE home_store.manager.nme = 'x'", "E202", 1, 37, "nme"),
    bad("FIND users RETURN id,\n\tname,\tnmae", "E202", 2, 8, "nmae"),
    bad("FIND users WHERE count(purchase WHERE nope = 1) > 0", "E202", 1, 39, "nope"),
    bad("FIND users ORDER BY nam", "E202", 1, 21, "nam"),
    bad("FIND users RETURN city.name", "E203", 1, 24, "name"),
    bad("FIND users RETURN count(purchase.amount.cents)", "E203", 1, 41, "cents"),
    bad("FIND users RETURN purchase.amount", "E204", 1, 19, "purchase.amount"),
    bad(
        "FIND users\nWHERE city = 'Shanghai'\n  AND purchase.amount > 100",
        "E204",
        3,
        7,
        "purchase.amount",
    ),
    bad("FIND stores WHERE members.city = 'x'", "E204", 1, 19, "members.city"),
    # ---- functions and types -----------------------------------------------------------------
    bad("FIND users RETURN frobnicate(name)", "E205", 1, 19, "frobnicate"),
    bad("FIND users RETURN upper(name, city)", "E206", 1, 19, "upper(name, city)"),
    bad("FIND users RETURN upper(birth_year)", "E206", 1, 19, "upper(birth_year)"),
    bad("FIND users RETURN upper(DISTINCT name)", "E206", 1, 19, "upper(DISTINCT name)"),
    bad("FIND users RETURN count(purchase, visit)", "E206", 1, 19, "count(purchase, visit)"),
    bad("FIND users RETURN days_since(name)", "E206", 1, 19, "days_since(name)"),
    bad("FIND users WHERE name = 3", "E207", 1, 18, "name = 3"),
    bad("FIND users WHERE birth_year + 'x' > 0", "E207", 1, 18, "birth_year + 'x'"),
    bad("FIND users WHERE id IN (1, 'b')", "E207", 1, 28, "'b'"),
    bad("FIND users RETURN CASE WHEN is_member THEN 1 ELSE 'x' END", "E207", 1, 51, "'x'"),
    bad("FIND EVENTS purchase WHERE amount > 'abc'", "E207", 1, 28, "amount > 'abc'"),
    bad("FIND users RETURN sum(purchase.channel)", "E208", 1, 19, "sum(purchase.channel)"),
    bad("FIND users WHERE DID home_store", "E208", 1, 22, "home_store"),
    bad("FIND stores RETURN sum(members)", "E208", 1, 20, "sum(members)"),
    bad("FIND stores RETURN count(members DURING LAST 3 DAYS)", "E209", 1, 41, "LAST 3 DAYS"),
    bad("FIND users RETURN count(home_store DURING LAST 3 DAYS)", "E209", 1, 43, "LAST 3 DAYS"),
    # ---- parameters --------------------------------------------------------------------------
    bad("FIND users WHERE city = $city", "E210", 1, 25, "$city"),
    bad("FIND users LIMIT $lim", "E210", 1, 18, "$lim"),
    bad("FIND users WHERE count(purchase DURING LAST $n DAYS) > 0", "E210", 1, 45, "$n"),
    bad("FIND users WHERE birth_year > $n", "E211", 1, 31, "$n", n="abc"),
    bad("FIND users WHERE is_member = $b", "E211", 1, 30, "$b", b="maybe"),
    bad("FIND users AS OF $t", "E211", 1, 18, "$t", t="notatime"),
    bad("FIND users WHERE city IN $c", "E211", 1, 26, "$c", c=3),
    # ---- conditions, grouping, times, names --------------------------------------------------
    bad(
        "FIND users\nGROUP BY city\nRETURN city, count()\nORDER BY birth_year",
        "E212",
        4,
        10,
        "birth_year",
    ),
    bad("FIND users GROUP BY city RETURN city, name", "E212", 1, 39, "name"),
    bad("FIND users GROUP BY city", "E212", 1, 1, "FIND users GROUP BY city"),
    bad("FIND users WHERE birth_year", "E213", 1, 18, "birth_year"),
    bad("FIND users WHERE is_member OR 5", "E213", 1, 31, "5"),
    bad("FIND users RETURN CASE WHEN birth_year THEN 1 END", "E213", 1, 29, "birth_year"),
    bad("FIND users WHERE signup_date > 'yesterday'", "E214", 1, 32, "'yesterday'"),
    bad("FIND users AS OF 'notatime'", "E214", 1, 18, "'notatime'"),
    bad(
        "FIND users WHERE sum(purchase.amount DURING '2026-11-01' TO '2026-10-01') > 0",
        "E214",
        1,
        45,
        "'2026-11-01' TO '2026-10-01'",
    ),
    bad("FIND users RETURN id, name AS id", "E215", 1, 23, "name AS id"),
    bad("FIND users RETURN id, id", "E215", 1, 23, "id"),
    bad(
        "DEFINE SEGMENT x ON users WHERE is_member",
        "E217",
        1,
        1,
        "DEFINE SEGMENT x ON users WHERE is_member",
    ),
    bad("FIND users WHERE in segment vip", "E225", 1, 29, "vip"),
    bad("FIND users WHERE name LIKE city", "E218", 1, 28, "city"),
    bad("FIND users WHERE name LIKE 5", "E218", 1, 28, "5"),
    bad("FIND users LIMIT 99999999999", "E219", 1, 18, "99999999999"),
    hinted(
        "FIND users LIMIT $n",
        "E219",
        1,
        18,
        "$n",
        "LIMIT must be a whole number from 0",
        "leave LIMIT out for all rows",
        {"n": -1},
    ),
    bad("FIND users RETURN count(purchase DURING LAST $n DAYS)", "E219", 1, 46, "$n", n=-5),
    bad("FIND users WHERE count() > 3", "E220", 1, 18, "count()"),
    bad("FIND users WHERE avg(birth_year) > 3", "E220", 1, 18, "avg(birth_year)"),
    bad("FIND users GROUP BY city RETURN city, count(count())", "E220", 1, 45, "count()"),
    bad("FIND users WHERE gender = 'Female'", "E223", 1, 27, "'Female'"),
    bad("FIND EVENTS purchase WHERE channel IN ('app', 'shop')", "E223", 1, 47, "'shop'"),
    bad(
        "FIND stores RETURN avg(members.purchase.amount)",
        "E224",
        1,
        20,
        "avg(members.purchase.amount)",
    ),
    bad(
        "FIND stores RETURN count(DISTINCT members.purchase.store)",
        "E224",
        1,
        20,
        "count(DISTINCT members.purchase.store)",
    ),
    bad(
        "FIND stores RETURN sum(members.purchase.amount WHERE amount > 3)",
        "E224",
        1,
        20,
        "sum(members.purchase.amount WHERE amount > 3)",
    ),
    # ---- issue 12: what the message and the hint say -----------------------------------------
    hinted(
        "FIND users WHERE spend > 10 RETURN sum(purchase.amount) AS spend",
        "E202",
        1,
        18,
        "spend",
        "`spend` is a RETURN alias, which WHERE cannot see",
        "write the expression itself instead of `spend`: `sum(purchase.amount)`",
    ),
    hinted(
        "FIND users GROUP BY region RETURN home_store.region AS region, count() AS n",
        "E202",
        1,
        21,
        "region",
        "`region` is a RETURN alias, which GROUP BY cannot see",
        "`home_store.region`",
    ),
    hinted(
        "FIND users WHERE n > 3 GROUP BY city RETURN city, count() AS N",
        "E202",
        1,
        18,
        "n",
        "`n` is a RETURN alias, which WHERE cannot see",
        "EQL has no HAVING",
    ),
    hinted(
        "FIND users RETURN sum(purchase.amount) AS spend, spend * 2 AS double",
        "E202",
        1,
        50,
        "spend",
        "`spend` is the name of another RETURN item",
        "`sum(purchase.amount)`",
    ),
    hinted(
        "FIND users RETURN count(purchase) AS n ORDER BY n * 2",
        "E202",
        1,
        49,
        "n",
        "ORDER BY sorts by it as a whole key, written as RETURN writes it (`ORDER BY n`)",
        "`count(purchase)`",
    ),
    hinted(
        "FIND users RETURN datediff(signup_date, '2026-01-01')",
        "E205",
        1,
        19,
        "datediff",
        "unknown function `datediff`",
        "`days_since(a) - days_since(b)`",
    ),
    hinted(
        "FIND users RETURN date_trunc('month', signup_date)",
        "E205",
        1,
        19,
        "date_trunc",
        "unknown function",
        "month(t)",
    ),
    hinted(
        "FIND users WHERE city = $city",
        "E211",
        1,
        25,
        "$city",
        "parameter $city: expected text, got the number 5",
        "$city is used as string here",
        {"city": 5},
    ),
    hinted(
        "FIND users WHERE $city = city",
        "E211",
        1,
        18,
        "$city",
        "$city",
        "string",
        {"city": 5.5},
    ),
    hinted(
        "FIND users WHERE city IN $cities",
        "E211",
        1,
        26,
        "$cities",
        "parameter $cities: expected text, got the number 2",
        "each value is used as string here",
        {"cities": ["Shanghai", 2]},
    ),
    hinted(
        "FIND users WHERE gender = $g",
        "E211",
        1,
        27,
        "$g",
        "parameter $g: expected text",
        "string",
        {"g": 1},
    ),
    hinted(
        "FIND users WHERE signup_date = $d",
        "E211",
        1,
        32,
        "$d",
        "has a time of day",
        "date",
        {"d": dt.datetime(2026, 1, 1, 10, 30, tzinfo=dt.UTC)},
    ),
    hinted(
        "FIND users RETURN 9223372036854775807 + 1 AS v",
        "E303",
        1,
        19,
        "9223372036854775807 + 1",
        "integer overflow: `9223372036854775807 + 1` is 9223372036854775808",
        "integers run from -9223372036854775808 to 9223372036854775807",
    ),
    hinted(
        "FIND users RETURN -(-9223372036854775807 - 1) AS v",
        "E303",
        1,
        19,
        "-(-9223372036854775807 - 1)",
        "integer overflow",
        "decimal",
    ),
    hinted(
        "FIND users WHERE birth_year > $a * $b",
        "E303",
        1,
        31,
        "$a * $b",
        "is 85070591730234615847396907784232501249",
        "decimal",
        {"a": 2**63 - 1, "b": 2**63 - 1},
    ),
]


@pytest.fixture(scope="module")
def retail() -> Schema:
    return parse_schema(RETAIL_SCHEMA.read_text(encoding="utf-8"), "retail.yaml")


def compile_error(text: str, schema: Schema, params: dict[str, Any] | None = None) -> EqlError:
    with pytest.raises(EqlError) as info:
        compile_query(text, schema, params or {}, NOW)
    return info.value


def assert_diagnostic(err: EqlError, code: str, line: int, col: int, text: str) -> None:
    items = err.to_json()
    found = [d for d in items if d["code"] == code]
    assert found, f"expected {code}, got {[(d['code'], d['message']) for d in items]}"
    d = found[0]
    assert (d["line"], d["column"]) == (line, col), (
        f"{code} at {d['line']}:{d['column']} (`{err.source[d['start'] : d['end']]}`), "
        f"expected {line}:{col} (`{text}`)"
    )
    assert err.source[d["start"] : d["end"]] == text
    # the JSON form is plain data, and the rendered form shows the code and the position
    json.dumps(items)
    rendered = err.render()
    assert f"[{code}]" in rendered and f"{line}:{col}" in rendered


def test_at_least_twenty_error_cases() -> None:
    assert len(CASES) >= 20
    assert {c.code for c in CASES} >= {
        "E201",
        "E202",
        "E203",
        "E204",
        "E205",
        "E206",
        "E207",
        "E208",
        "E209",
        "E210",
        "E211",
        "E212",
        "E213",
        "E214",
        "E215",
        "E217",
        "E218",
        "E219",
        "E220",
        "E223",
        "E224",
    }


@pytest.mark.parametrize("case", CASES, ids=lambda c: c.id)
def test_error_code_and_span(case: Bad, retail: Schema) -> None:
    err = compile_error(case.query, retail, case.params)
    assert_diagnostic(err, case.code, case.line, case.col, case.text)
    assert err.diagnostics[0].code == case.code, f"first diagnostic is {err.codes}"
    first = err.diagnostics[0]
    assert case.message in first.message, first.message
    assert not case.help or any(case.help in h for h in first.helps), first.helps


AMBIGUOUS_SCHEMA = """\
version: 1
entities:
  users:
    key: {name: id, type: int}
    attributes:
      name: string
events:
  transfer:
    time: ts
    references:
      sender: {entity: users, column: sender_id}
      receiver: {entity: users, column: receiver_id}
    fields:
      amount: {type: decimal, precision: 12, scale: 2}
"""


def test_e222_ambiguous_stream() -> None:
    schema = parse_schema(AMBIGUOUS_SCHEMA, "ambiguous.yaml")
    err = compile_error("FIND users\nWHERE count(transfer) > 0", schema)
    assert_diagnostic(err, "E222", 2, 13, "transfer")
    # seen from the event side, both references are fine
    compile_query(
        "FIND EVENTS transfer GROUP BY sender RETURN sender, count(DISTINCT receiver)",
        schema,
        {},
        NOW,
    )


def test_all_errors_of_the_binding_stage_are_collected(retail: Schema) -> None:
    err = compile_error(
        "FIND users\nWHERE birth_year > 1990 AND city = 3\n  AND nope = 1\nRETURN frobnicate(id)",
        retail,
    )
    got = [(d["code"], d["line"], d["column"]) for d in err.to_json()]
    assert got == [("E207", 2, 29), ("E202", 3, 7), ("E205", 4, 8)]


def test_diagnostics_carry_a_hint(retail: Schema) -> None:
    err = compile_error("FIND users WHERE nmae = 'x'", retail)
    assert any("name" in h for h in err.diagnostics[0].helps)
    err = compile_error("FIND EVENTS purchse", retail)
    assert any("purchase" in h for h in err.diagnostics[0].helps)
    err = compile_error("FIND users WHERE gender = 'Female'", retail)
    assert any("'female'" in h for h in err.diagnostics[0].helps)


def test_wide_characters_do_not_shift_columns(retail: Schema) -> None:
    """Columns count characters: a CJK string before the mistake does not move it."""
    err = compile_error("FIND users WHERE city = '上海上海' AND nope = 1", retail)
    assert_diagnostic(err, "E202", 1, 36, "nope")
    assert "^^^^" in err.render()


@pytest.mark.parametrize(
    ("query", "params", "code"),
    [
        pytest.param(
            "FIND users RETURN first(birth_year)",
            {},
            "E208",
            id="first-over-group",
        ),
        # fixed in d223f82 (was: E211 twice, then "LIMIT needs a number, not null")
        pytest.param("FIND users LIMIT $n", {"n": "ten"}, "E211", id="limit-param"),
        pytest.param("FIND users WHERE nmae = 'x'", {}, "E202", id="unknown-name"),
        pytest.param("FIND users WHERE birth_year > $n", {"n": "x"}, "E211", id="param"),
    ],
)
def test_one_mistake_one_diagnostic(
    query: str, params: dict[str, Any], code: str, retail: Schema
) -> None:
    err = compile_error(query, retail, params)
    assert err.codes == (code,)


def test_missing_parameter_names_the_parameter(retail: Schema) -> None:
    err = compile_error("FIND users WHERE city = $home_city", retail)
    assert "$home_city" in err.diagnostics[0].message
    err = compile_error("FIND users WHERE birth_year > $y", retail, {"y": "x"})
    assert "$y" in err.diagnostics[0].message


def test_reference_time_param_accepts_datetime(retail: Schema) -> None:
    c = compile_query(
        "FIND users RETURN count(purchase DURING LAST 1 DAYS) AS n AS OF $t",
        retail,
        {"t": dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)},
        NOW,
    )
    assert c.bound.reference_time == dt.datetime(2026, 10, 1, 12, tzinfo=dt.UTC)


def test_the_parameters_a_query_refers_to(retail: Schema) -> None:
    """`BoundQuery.parameters` names every `$name` of the text, wherever it is; a caller can
    tell which of the values it gave are unused (`extra` here)."""
    c = compile_query(
        "FIND users WHERE city = $city AND count(purchase DURING LAST $n DAYS) > 0\n"
        "RETURN id, coalesce(name, $fallback) AS name ORDER BY id LIMIT $top AS OF $t",
        retail,
        {"city": "x", "n": 3, "fallback": "-", "top": 5, "t": "2026-01-01", "extra": 1},
        NOW,
    )
    assert c.bound.parameters == frozenset({"city", "n", "fallback", "top", "t"})
    assert compile_query("FIND users", retail, {"x": 1}, NOW).bound.parameters == frozenset()
    events = compile_query(
        "FIND EVENTS purchase DURING $a TO $b WHERE amount IN $amounts RETURN amount",
        retail,
        {"a": "2026-01-01", "b": "2026-02-01", "amounts": [1, 2]},
        NOW,
    )
    assert events.bound.parameters == frozenset({"a", "b", "amounts"})
    nested = compile_query(
        "FIND users WHERE DID purchase WHERE amount > $min DURING $from TO '2026-10-01'"
        " AND count(visit WHERE duration_min BETWEEN $lo AND $hi DURING LAST $days DAYS) > 0"
        " RETURN CASE WHEN is_member THEN $yes ELSE upper($no) END AS m,"
        " date_part('year', $when) AS y, days_since($since) AS d",
        retail,
        {
            "min": 1,
            "from": "2026-01-01",
            "lo": 1,
            "hi": 9,
            "days": 7,
            "yes": "y",
            "no": "n",
            "when": "2026-01-01",
            "since": "2026-01-01",
        },
        NOW,
    )
    for compiled in (c, events, nested):
        assert compiled.bound.parameters == parameters(compiled.statement)
    # any statement, without binding it
    assert parameters(parse("DEFINE SEGMENT s ON users WHERE city = $c")) == frozenset({"c"})
    assert parameters(parse("EXPLAIN MEMBERSHIP s FOR $key")) == frozenset({"key"})
