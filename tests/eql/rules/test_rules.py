"""Each planner rule against its fixtures (sqlglot's optimizer fixtures are the model): the plan
before the rule, the plan after it, whether the rule rewrote it, and the same rows from both
plans on the demo store."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from eql.binder import bind
from eql.compiler import parse_cached
from eql.planner import logical, to_datafusion
from eql.planner.explain import format_plan
from eql.planner.plan import plan
from eql.planner.rules import RULES
from runtime.engine import Engine
from tests.eql.helpers import NOW
from tests.eql.rules.cases import CASES
from tests.eql.snapshots import UPDATE

FIXTURES = Path(__file__).parent / "fixtures"
RULE = dict(RULES)
PARAMS = [(rule, *case) for rule, cases in CASES.items() for case in cases]


def _plans(engine: Engine, rule: str, text: str) -> tuple[logical.Plan, logical.Plan]:
    schema = engine.store.schema
    bound = bind(parse_cached(text), schema, text, {}, NOW, engine.catalog())
    before = plan(bound, schema, rules=())
    return before, RULE[rule](before)


def _render(name: str, text: str, before: logical.Plan, after: logical.Plan) -> str:
    return (
        f"-- case: {name}\n-- eql: {text}\n-- before\n{format_plan(before)}\n"
        f"-- after\n{format_plan(after)}\n"
    )


def _stored(rule: str) -> dict[str, str]:
    path = FIXTURES / f"{rule}.txt"
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    blocks = re.split(r"^(?=-- case: )", text, flags=re.M)
    return {b.splitlines()[0].removeprefix("-- case: "): b.strip() for b in blocks if b.strip()}


def test_every_rule_has_fixtures() -> None:
    assert set(RULE) == set(CASES)
    for cases in CASES.values():  # each rule has cases it rewrites and cases it leaves alone
        assert {rewrites for _, _, rewrites in cases} == {True, False}


@pytest.mark.parametrize("rule", sorted(CASES))
def test_fixture_file_is_current(demo_engine: Engine, rule: str) -> None:
    rendered = [
        _render(name, text, *_plans(demo_engine, rule, text)) for name, text, _ in CASES[rule]
    ]
    if UPDATE:
        FIXTURES.mkdir(exist_ok=True)
        (FIXTURES / f"{rule}.txt").write_text("\n".join(rendered), encoding="utf-8")
    stored = _stored(rule)
    for block, (name, _, _) in zip(rendered, CASES[rule], strict=True):
        assert stored.get(name) == block.strip(), f"{rule}: {name} (update the fixtures)"


@pytest.mark.parametrize(
    ("rule", "name", "text", "rewrites"), PARAMS, ids=[f"{p[0]}: {p[1]}" for p in PARAMS]
)
def test_rule(demo_engine: Engine, rule: str, name: str, text: str, rewrites: bool) -> None:
    before, after = _plans(demo_engine, rule, text)
    assert (after != before) is rewrites
    assert RULE[rule](after) == after  # a rule's result is a fixed point of it
    ctx = demo_engine.peer_context()
    for ref in sorted(logical.tables(before) | logical.tables(after), key=str):
        demo_engine._register_one(ref)
    rows_before = to_datafusion.execute(before, ctx).to_pylist()
    rows_after = to_datafusion.execute(after, ctx).to_pylist()
    assert rows_before, "a fixture that returns no rows checks little"

    def key(row: dict[str, object]) -> list[tuple[str, str]]:
        return sorted((k, str(v)) for k, v in row.items())

    assert sorted(rows_before, key=key) == sorted(rows_after, key=key)
