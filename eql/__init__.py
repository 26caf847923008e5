"""EQL: an entity-model query language and engine for customer and marketing data.

Stages (see ARCHITECTURE.md): `eql.syntax` (text -> AST), `eql.binder`, `eql.planner`, with
`eql.diagnostics` shared by all of them.
"""

from __future__ import annotations

from eql.diagnostics import EqlError
from eql.syntax import parse

__all__ = ["EqlError", "parse"]
