"""Rewrite rules over the logical plan, applied in the order of `RULES` (each its own module,
each with before/after fixtures in tests/eql/rules/).

Only rules DataFusion cannot do for us live here; DataFusion's optimizer does filter and
projection push-down, join reordering and constant folding after us. Analyses that decide how to
lower (`eql.planner.join_kinds`) live apart from the rules.

May import: `eql.planner.logical`, `eql.binder.bound` (operators), `eql.catalog` and
`eql.types` (the `rollups` rule names the tables it reads), the standard library.
"""

from __future__ import annotations

from collections.abc import Callable

from eql.planner import logical
from eql.planner.rules import count_zero_anti_join, rollups, shared_scan

Rule = Callable[[logical.Plan], logical.Plan]
Rules = tuple[tuple[str, Rule], ...]

RULES: Rules = (
    ("count_zero_anti_join", count_zero_anti_join.rule),
    ("shared_scan", shared_scan.rule),
    ("rollups", rollups.rule),  # last: it reads the aggregates the others leave
)
WITHOUT_ROLLUPS: Rules = tuple(r for r in RULES if r[0] != "rollups")
