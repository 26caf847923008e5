"""The binder's context: what binding one statement reads (schema names, parameters, catalog,
reference time) and what it collects (diagnostics), plus `Where` (the scope an expression is
bound in) and `POISON` (what a failed sub-expression becomes).

Errors are collected, never raised one by one: a failing sub-expression becomes `POISON`, a `null`
literal of type NULL (which fits anywhere), so that binding goes on and finds the other mistakes
too.

May import: `entities`, `eql.types`, `eql.catalog`, `eql.diagnostics`, `eql.syntax`, and
`eql.binder.{bound, resolve}`.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from entities import Schema
from eql import types
from eql.binder import bound
from eql.binder.resolve import Names, Resolved, resolve
from eql.catalog import EMPTY, Catalog
from eql.diagnostics import Diagnostic, Span
from eql.syntax import ast

POISON = bound.Literal(None, types.NULL)


@dataclass
class Ctx:
    names: Names  # the schema and its name index (built once per schema, see `Names`)
    text: str
    params: Mapping[str, Any]
    given_reference: dt.datetime  # the caller's reference time ("now", or its as_of)
    diagnostics: list[Diagnostic] = field(default_factory=list)
    group_aggregates: int = 0  # how many group aggregates were bound (decides "grouped")
    catalog: Catalog = EMPTY  # tags and segments (virtual attributes, `in segment`)
    text_reference: dt.datetime | None = None  # set by the text's own AS OF
    reads_clock: bool = False  # whether binding read the caller's reference time
    hidden: Aliases | None = None  # RETURN's names, while a clause that cannot see them binds
    referenced: set[str] = field(default_factory=set)  # the parameters bound (`$name`, no `$`)

    @property
    def reference(self) -> dt.datetime:
        """The reference time: the text's AS OF, else the caller's (which is then noted: a plan
        that reads it is valid for that time only, see `bound.BoundQuery.reads_clock`)."""
        if self.text_reference is not None:
            return self.text_reference
        self.reads_clock = True
        return self.given_reference

    @property
    def schema(self) -> Schema:
        return self.names.schema

    def error(self, code: str, message: str, span: Span | None, *helps: str) -> bound.Literal:
        """Record a diagnostic; the caller returns what this returns (`POISON`)."""
        self.diagnostics.append(Diagnostic(code, message, span, helps=tuple(h for h in helps if h)))
        return POISON

    def resolve(
        self,
        where: Where,
        parts: tuple[ast.Ident, ...],
        as_of: dt.datetime | None = None,
    ) -> Resolved:
        """`parts` read from `where`'s row (see `eql.binder.resolve.resolve`)."""
        return resolve(self.names, where.scope, parts, where.alias, self.catalog, as_of)

    def source_text(self, node: ast.Expr) -> str:
        """What the user wrote for `node`, shortened for a message."""
        s = node.span
        t = self.text[s.start : s.end]
        return t if len(t) <= 40 else t[:37] + "..."


@dataclass(frozen=True, slots=True)
class Where:
    """Where an expression is being bound."""

    scope: bound.Scope
    alias: str | None = None  # inside an aggregate: the source's name also names the element
    group_ok: bool = False  # group aggregates (count(), avg(x)) are allowed here
    in_group_agg: bool = False


@dataclass(frozen=True, slots=True)
class Aliases:
    """The names RETURN gives (`... AS spend`), kept while a clause that cannot see them is bound,
    so that using one there (`WHERE spend > 10`) is told as such rather than as an unknown name."""

    clause: str  # "WHERE", "GROUP BY", "RETURN" (another item's), "ORDER BY" (in an expression)
    scope: bound.Scope  # the query's own rows: only a name read there can mean an alias
    items: Mapping[str, ast.ReturnItem]
    grouped: bool  # the query has GROUP BY
    own: ast.ReturnItem | None = None  # the RETURN item being bound (its own name is not "other")

    def find(self, name: str) -> ast.ReturnItem | None:
        found = self.items.get(name)
        if found is None:
            folded = {k.lower(): v for k, v in self.items.items()}
            found = folded.get(name.lower())
        return None if found is self.own else found
