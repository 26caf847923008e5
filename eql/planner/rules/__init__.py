"""Rewrite rules over the logical plan, applied in this order (each its own module).

Only rules DataFusion cannot do for us live here; DataFusion's optimizer does filter and
projection push-down, join reordering and constant folding after us.
"""

from __future__ import annotations

from collections.abc import Callable

from eql.planner import logical as L

Rule = Callable[[L.Plan], L.Plan]

RULES: tuple[Rule, ...] = ()
