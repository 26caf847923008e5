"""The pipeline: parse -> bind -> plan, one pure function per stage, chained by `compile`.

`explain` prints any stage. Nothing here does I/O; executing a plan is `runtime.engine`'s job.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from entities import Schema
from eql import types
from eql.binder import Names, bind, bound
from eql.binder.bound import BoundQuery
from eql.catalog import EMPTY, ID_COLUMN, Catalog
from eql.diagnostics import Diagnostic, EqlError
from eql.planner import logical
from eql.planner.explain import format_bound, format_plan
from eql.planner.plan import plan
from eql.planner.rules import RULES, Rules
from eql.syntax import ast, format_statement, parse


@functools.lru_cache(maxsize=2048)
def parse_cached(text: str) -> ast.Statement:
    """ASTs are immutable, so a query text seen before is not parsed again."""
    return parse(text)


@dataclass(frozen=True, slots=True)
class Compiled:
    text: str
    statement: ast.Statement
    bound: BoundQuery
    plan: logical.Plan
    explain_stage: str | None  # set when the text was EXPLAIN [stage] ...


def compile_query(
    text: str,
    schema: Schema,
    params: Mapping[str, Any] | None = None,
    now: dt.datetime | None = None,
    catalog: Catalog = EMPTY,
    names: Names | None = None,
    rules: Rules = RULES,
) -> Compiled:
    """Parse, bind and plan one query; raises EqlError with every diagnostic of the stage.
    `catalog` holds the tags and segments of the store (see `eql.catalog`); `names` is the
    schema's name index, for a caller that keeps one (`eql.binder.Names`); `rules` the plan
    rewrites to apply (all by default; `eql.planner.rules.WITHOUT_ROLLUPS`: no per-entity
    index)."""
    stmt = parse_cached(text)
    stage: str | None = None
    if isinstance(stmt, ast.Explain):
        stage = stmt.stage.value.lower() if stmt.stage is not None else "all"
        stmt = stmt.statement
    reference = now or dt.datetime.now(dt.UTC)
    query = bind(stmt, schema, text, params or {}, reference, catalog, names)
    return Compiled(text, stmt, query, plan(query, schema, rules), stage)


def compile_per_entity(
    find: ast.Find,
    text: str,
    schema: Schema,
    params: Mapping[str, Any] | None,
    now: dt.datetime,
    catalog: Catalog = EMPTY,
    names: Names | None = None,
    rules: Rules = RULES,
) -> Compiled:
    """`find` (a FIND of one entity, not grouped) planned with the entity's dense id as its first
    result column, then its RETURN items: how a definition computes its values per entity.
    Raises EqlError (E231 when `find` groups, since a definition gives one value per entity)."""
    query = bind(find, schema, text, params or {}, now, catalog, names)
    if query.grouped:
        raise EqlError(
            [
                Diagnostic(
                    "E231",
                    "a definition gives one value per entity; aggregates over all rows are not "
                    "allowed",
                    find.span,
                    helps=(
                        "aggregate an entity's events instead: count(purchase), "
                        "sum(purchase.amount)",
                    ),
                )
            ],
            text,
        )
    items = query.items if find.returns else ()
    with_id = (bound.Item(bound.Column(bound.ROOT, ID_COLUMN, types.INT), ID_COLUMN), *items)
    query = dataclasses.replace(query, items=with_id)
    return Compiled(text, find, query, plan(query, schema, rules), None)


def explain_text(compiled: Compiled, stage: str, datafusion: str = "") -> str:
    parts: list[str] = []
    if stage in ("ast", "all"):
        parts.append("-- ast (formatted)\n" + format_statement(compiled.statement))
    if stage in ("bound", "all"):
        parts.append("-- bound\n" + format_bound(compiled.bound))
    if stage in ("plan", "all"):
        parts.append("-- logical plan\n" + format_plan(compiled.plan))
    if stage in ("datafusion", "all") and datafusion:
        parts.append("-- datafusion\n" + datafusion)
    return "\n\n".join(parts)
