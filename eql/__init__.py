"""EQL: an entity-model query language and engine for customer and marketing data.

Stages (see ARCHITECTURE.md): `eql.syntax` (text -> AST), `eql.binder`, `eql.planner`, with
`eql.diagnostics` shared by all of them. `eql.connect` is the Python library's door
(`eql.client`, docs/python.md), looked up lazily by the module `__getattr__` below, so that
`import eql` stays cheap and the compiler never imports the runtime when it is imported: the one
edge from `eql` up to `eql.client`, allowed as such by tests/structure/test_layers.py.

May import eql.diagnostics; eql.syntax and eql.client only inside `__getattr__`.
"""

from __future__ import annotations

from typing import Any

from eql.diagnostics import EqlError

__all__ = ["EqlError", "connect", "parse"]


def __getattr__(name: str) -> Any:
    """`eql.connect` and `eql.parse`, imported on first use (PEP 562): importing `eql`, or
    `eql.cli` for `eql --help`, loads neither the runtime nor lark."""
    if name == "connect":
        from eql.client import connect

        return connect
    if name == "parse":
        from eql.syntax import parse

        return parse
    raise AttributeError(f"module 'eql' has no attribute {name!r}")
