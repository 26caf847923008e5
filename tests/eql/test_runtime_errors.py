"""A query that compiles must run, or fail with an `EqlError`: no DataFusion or Arrow exception,
no internal compiler error, for values the binder accepted (nulls, zeros, extremes)."""

from __future__ import annotations

import contextlib
import dataclasses
from typing import Any

import pyarrow as pa
import pytest

from eql.diagnostics import EqlError
from eql.planner import to_datafusion
from runtime.engine import Engine, EngineSettings
from storage import Store
from tests.eql.helpers import NOW

OK_CASES = [
    ("day(NULL)", None),
    ("days_since(NULL)", None),
    ("upper(NULL)", None),
    ("substr(name, NULL)", None),
    ("coalesce(NULL, 1)", 1),
    ("NULL * 2", None),
    ("NULL / 2", None),
    ("NOT NULL", None),
    ("NULL OR TRUE", True),
    ("count(purchase WHERE NULL)", 0),
    ("CASE NULL WHEN 1 THEN 'a' ELSE 'b' END", "b"),
]


@pytest.mark.parametrize(("expr", "value"), OK_CASES)
def test_null_in_functions_and_operators(expr: str, value: Any, demo_engine: Engine) -> None:
    t = demo_engine.query(f"FIND users WHERE id = 1 RETURN {expr} AS v", now=NOW)
    assert t.column("v").to_pylist() == [value]


def _bug(reason: str) -> Any:
    return pytest.mark.xfail(reason="BUG: " + reason, strict=True)


CRASHES = [
    pytest.param(
        "FIND users WHERE id = 1 RETURN date_part('year', NULL) AS v",
        {},
        id="date_part-null",
    ),
    pytest.param(
        "FIND users WHERE id = 1 RETURN date_part('year', $p) AS v",
        {"p": None},
        id="date_part-null-param",
    ),
    pytest.param(
        "FIND users WHERE id = 1 RETURN -NULL AS v",
        {},
        id="neg-null",
    ),
    pytest.param(
        "FIND users WHERE id = 1 RETURN -$p AS v",
        {"p": None},
        id="neg-null-param",
    ),
    pytest.param(
        "FIND users WHERE name LIKE $p RETURN id",
        {"p": None},
        id="like-null-param",
    ),
    pytest.param(
        "FIND users WHERE id = 1 RETURN birth_year % 0 AS v",
        {},
        id="mod-zero",
    ),
    pytest.param(
        "FIND users WHERE count(purchase) = 0 RETURN max(birth_year % count(purchase)) AS v",
        {},
        id="mod-zero-aggregate",
    ),
    pytest.param(
        "FIND users WHERE id = 1 RETURN abs(-9223372036854775807 - 1) AS v",
        {},
        id="abs-overflow",
    ),
]


@pytest.mark.parametrize(("query", "params"), CRASHES)
def test_only_eql_errors_escape(query: str, params: dict[str, Any], demo_engine: Engine) -> None:
    with contextlib.suppress(EqlError):
        demo_engine.query(query, params=params, now=NOW)


# fixed in issue 12 (was: 9223372036854775807 + 1 = -9223372036854775808, DataFusion wraps)
def test_integer_overflow_does_not_wrap(demo_engine: Engine) -> None:
    with pytest.raises(EqlError) as info:
        demo_engine.query("FIND users WHERE id = 1 RETURN 9223372036854775807 + 1 AS v", now=NOW)
    assert info.value.codes == ("E303",)


@pytest.mark.parametrize(
    "expr",
    [
        "id + 9223372036854775807",
        "9223372036854775807 + id",
        "birth_year * 9223372036854775807",
        "-(id - 9223372036854775807 - 2)",
        "(id - 3) - 9223372036854775807",
        "abs(id + 1) * 4611686018427387904",
        "abs(abs(id + 1) * 2) * 2305843009213693952",
        "coalesce(birth_year, 0) * 9223372036854775807 + 1",
        # a function whose result is small still multiplies past the edge
        "days_since(signup_date) * 9223372036854775807",
        "date_part('year', signup_date) * 4611686018427387904",
    ],
)
def test_integer_overflow_of_columns_is_e303(expr: str, demo_engine: Engine) -> None:
    """Column arithmetic is checked while running: E303, no wrapped value (`id` is 1)."""
    with pytest.raises(EqlError) as info:
        demo_engine.query(f"FIND users WHERE id = 1 RETURN {expr} AS v", now=NOW)
    assert info.value.codes == ("E303",)
    assert "integer overflow" in info.value.diagnostics[0].message


def test_small_function_results_are_exact(demo_engine: Engine) -> None:
    t = demo_engine.query(
        "FIND users WHERE id = 1 RETURN signup_date, days_since(signup_date) * 24 AS hours, "
        "date_part('year', signup_date) * 12 + date_part('month', signup_date) AS months",
        now=NOW,
    )
    row = t.to_pylist()[0]
    signed = row["signup_date"]
    assert row["hours"] == (NOW.date() - signed).days * 24
    assert row["months"] == signed.year * 12 + signed.month


def test_near_the_edge_the_exact_value(demo_engine: Engine) -> None:
    """Values near the int64 edge (where the check computes exactly) that fit are returned."""
    t = demo_engine.query(
        "FIND users WHERE id = 1 RETURN id + 9223372036854775806 AS a, "
        "(id + 9223372036854775806) - id AS b, -(id - 9223372036854775807) AS c, "
        "(id + 3037000498) * (id + 3037000498) AS d, id * -9223372036854775807 - 1 AS e",
        now=NOW,
    )
    assert t.to_pylist() == [
        {
            "a": 2**63 - 1,
            "b": 2**63 - 2,
            "c": 2**63 - 2,
            "d": 3037000499**2,
            "e": -(2**63),
        }
    ]


def test_parameter_typed_by_function_signature(demo_engine: Engine) -> None:
    t = demo_engine.query(
        "FIND users WHERE id = 1 RETURN days_since($d) AS a, day($d) AS b",
        params={"d": "2026-10-01"},
        now=NOW,
    )
    assert t.to_pylist()[0]["a"] == 31


def test_null_as_of_parameter_is_an_error(demo_engine: Engine) -> None:
    with pytest.raises(EqlError) as info:
        demo_engine.compile("FIND users AS OF $t", {"t": None}, NOW)
    assert info.value.codes == ("E211",)


# fixed in 4e4272b (was: a null LIMIT parameter silently removed the limit)
def test_null_limit_parameter_is_an_error(demo_engine: Engine) -> None:
    with pytest.raises(EqlError):
        demo_engine.compile("FIND users LIMIT $n", {"n": None}, NOW)


# ---- typed failures: the emitter types what DataFusion raised, the engine gives it a code --------
def test_overflow_is_e303(demo_engine: Engine) -> None:
    with pytest.raises(EqlError) as info:
        demo_engine.query(
            "FIND users WHERE id = 1 RETURN abs(-9223372036854775807 - 1) AS v", now=NOW
        )
    assert info.value.codes == ("E303",)
    assert "overflow" in info.value.diagnostics[0].message


def test_memory_pool_exhausted_is_e302(demo_store: Store) -> None:
    engine = Engine(demo_store, EngineSettings(memory_limit=64 * 1024))
    with pytest.raises(EqlError) as info:
        engine.query(
            "FIND EVENTS purchase GROUP BY user, product, order_id "
            "RETURN user, product, order_id, count() AS n ORDER BY n DESC",
            now=NOW,
        )
    assert info.value.codes == ("E302",)


@pytest.mark.parametrize(
    ("raised", "typed"),
    [
        (Exception("Resources exhausted: Failed to allocate additional 1 MB"), "OutOfMemory"),
        (MemoryError(), "OutOfMemory"),
        (pa.ArrowMemoryError("malloc of size 64 failed"), "OutOfMemory"),
        (Exception("Arrow error: Compute error: Int64Array overflow on abs(-1)"), "Overflow"),
        (Exception("Arrow error: Divide by zero error"), "Overflow"),
        (Exception("External error: task 12 was cancelled"), "Cancelled"),
        (Exception("Execution error: something else"), "ExecutionFailed"),
    ],
)
def test_failures_are_typed_once(raised: BaseException, typed: str) -> None:
    failure = to_datafusion.failure(raised)
    assert type(failure).__name__ == typed
    assert isinstance(failure, to_datafusion.ExecutionFailed)
    assert to_datafusion.failure(failure) is failure


def test_internal_errors_are_not_query_failures(demo_engine: Engine) -> None:
    """A plan node without an emitter is our bug: it escapes as such (assert_never), not as a
    query failure (E301)."""
    plan = demo_engine.compile("FIND users RETURN count() AS n", now=NOW).plan

    @dataclasses.dataclass(frozen=True)
    class Unknown:
        child: object

    with pytest.raises(AssertionError, match="unreachable"):
        to_datafusion.execute(Unknown(plan), demo_engine.peer_context())  # type: ignore[arg-type]
