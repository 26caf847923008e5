"""Name resolution: a path of names, read in a scope, to a column, an entity or a many-source."""

from __future__ import annotations

import datetime as dt
import difflib
from dataclasses import dataclass

from entities import Cardinality, Schema
from eql import types
from eql.binder import bound
from eql.catalog import EMPTY, Catalog, TagInfo, TagRef, Virtual
from eql.syntax import ast


@dataclass(frozen=True, slots=True)
class Value:
    """The path names one value: a column of the row at `column.path`."""

    column: bound.Column


@dataclass(frozen=True, slots=True)
class Many:
    """The path reaches a many-valued source; `rest` continues in the source's element scope."""

    source: bound.Source
    element: bound.Scope
    rest: tuple[ast.Ident, ...]
    name: ast.Ident  # the name that made it many (the stream or relation as written)


@dataclass(frozen=True, slots=True)
class Problem:
    code: str
    message: str
    ident: ast.Ident
    helps: tuple[str, ...] = ()


Resolved = Value | Many | Problem


def _norm(name: str) -> str:
    return name.lower()


class Names:
    """A schema and its name index: lower-cased name -> declared name at the root of each scope.

    Built once per schema by whoever keeps the schema (the runtime's engine keeps one, the
    binder builds one for a caller that does not) and held by the binder's context; each
    scope's index is filled on first use."""

    __slots__ = ("_scopes", "schema")

    def __init__(self, schema: Schema) -> None:
        self.schema = schema
        self._scopes: dict[bound.Scope, dict[str, str]] = {}

    def at(self, scope: bound.Scope) -> dict[str, str]:
        found = self._scopes.get(scope)
        if found is None:
            found = {}
            for n in names_in(self.schema, scope):
                found.setdefault(n.lower(), n)
            self._scopes[scope] = found
        return found


def names_in(schema: Schema, scope: bound.Scope) -> list[str]:
    """Everything a name can mean at the root of a scope (for "did you mean")."""
    if scope.kind is bound.ScopeKind.ENTITY:
        ent = schema.require_entity(scope.name)
        out = [c.name for c in ent.columns] + [r.name for r in ent.relations]
        out += [st.name for st, _ in schema.streams_of(scope.name)]
        return out
    st = schema.require_stream(scope.name)
    return ["time", st.time] + [r.name for r in st.references] + [f.name for f in st.fields]


def resolve(
    names: Names,
    scope: bound.Scope,
    parts: tuple[ast.Ident, ...],
    alias: str | None = None,
    catalog: Catalog = EMPTY,
    as_of: dt.datetime | None = None,
) -> Resolved:
    """Resolve `parts` from the scope's row. Inside an aggregate over a source, the element
    may also be named by the source's name (`alias`): `sum(purchase.amount)`. A tag of the
    entity reached is a virtual attribute (its latest refresh, or the latest as of `as_of`)."""
    schema = names.schema
    if (
        alias is not None
        and len(parts) > 1
        and _norm(parts[0].name) == _norm(alias)
        and _norm(parts[0].name) not in names.at(scope)
    ):
        parts = parts[1:]
    path = bound.ROOT
    entity = scope.name if scope.kind is bound.ScopeKind.ENTITY else None
    for i, ident in enumerate(parts):
        last = i == len(parts) - 1
        here = bound.Scope(bound.ScopeKind.ENTITY, entity) if entity is not None else scope
        name = names.at(here).get(ident.name.lower(), ident.name)
        if entity is None:  # the event row itself (only ever at the root of an event scope)
            st = schema.require_stream(scope.name)
            if name in ("time", st.time):
                if not last:
                    return _past_value(ident, parts[i + 1])
                return Value(bound.Column(path, st.time, types.TIMESTAMP))
            field = st.field(name)
            if field is not None:
                if not last:
                    return _past_value(ident, parts[i + 1])
                return Value(bound.Column(path, field.name, types.from_schema(field.type)))
            ref = st.reference(name)
            if ref is not None:
                target = schema.require_entity(ref.entity)
                if last:  # the entity itself: its key, held in the reference column
                    return Value(bound.Column(path, ref.column, types.from_schema(target.key.type)))
                path = path.child(bound.Step(ref.name, ref.column, ref.entity))
                entity = ref.entity
                continue
            return _unknown(ident, f"event stream `{st.name}`", names_in(schema, scope))
        ent = schema.require_entity(entity)
        col = ent.column(name)
        if col is not None:
            if not last:
                return _past_value(ident, parts[i + 1])
            return Value(bound.Column(path, col.name, types.from_schema(col.type)))
        rel = ent.relation(name)
        if rel is not None:
            if rel.cardinality is Cardinality.ONE:
                target = schema.require_entity(rel.target)
                if last:
                    return Value(bound.Column(path, rel.via, types.from_schema(target.key.type)))
                path = path.child(bound.Step(rel.name, rel.via, rel.target))
                entity = rel.target
                continue
            relation = bound.RelationSource(path, rel.name, rel.target, rel.via)
            element = bound.Scope(bound.ScopeKind.ENTITY, rel.target)
            return Many(relation, element, parts[i + 1 :], ident)
        seen = [(st, ref) for st, ref in schema.streams_of(ent.name) if st.name == name]
        if len(seen) > 1:
            refs = ", ".join(r.name for _, r in seen)
            return Problem(
                "E222",
                f"`{name}` references {ent.name} more than once ({refs}); which one is meant "
                "is ambiguous",
                ident,
                ("aggregate from the event side instead: FIND EVENTS " + name,),
            )
        if seen:
            st, ref = seen[0]
            source = bound.StreamSource(path, st.name, ref.name, ref.column, st.time)
            return Many(source, bound.Scope(bound.ScopeKind.EVENT, st.name), parts[i + 1 :], ident)
        reached = f" (reached by `{bound.Path(path.steps)}`)" if path.steps else ""
        found = catalog.tag_for(ent.name, ident.name)
        if found is not None:
            if not last:
                return _past_value(ident, parts[i + 1])
            return _tag(found[0], found[1], path, ident, as_of)
        where = f"entity `{ent.name}`{reached}"
        scope_names = names_in(schema, bound.Scope(bound.ScopeKind.ENTITY, ent.name))
        return _unknown(ident, where, scope_names + catalog.tag_names(ent.name))
    raise AssertionError("empty path")


def _tag(
    tag: TagInfo, column: str, path: bound.Path, ident: ast.Ident, as_of: dt.datetime | None
) -> Resolved:
    found = tag.version_at(as_of)
    if found is None:
        if not tag.versions:
            return Problem(
                "E227",
                f"tag `{tag.name}` has not been refreshed yet, so it has no values",
                ident,
                (f"run REFRESH {tag.kind} {tag.name}",),
            )
        first = min(t for _, t, _ in tag.versions)
        return Problem(
            "E228",
            f"tag `{tag.name}` has no refresh as of {as_of:%Y-%m-%d %H:%M:%S} or earlier",
            ident,
            (f"its first refresh is as of {first:%Y-%m-%d %H:%M:%S}",),
        )
    version, value_type = found
    t = dict(tag.extras).get(column, value_type)
    ref = TagRef(tag.name, tag.generation, version)
    return Value(bound.Column(path, Virtual(ref, column, t), t))


def _past_value(ident: ast.Ident, nxt: ast.Ident) -> Problem:
    return Problem(
        "E203",
        f"`{ident.name}` is a value, so `.{nxt.name}` cannot follow it",
        nxt,
        ("only relations and event references lead on to other names",),
    )


def _unknown(ident: ast.Ident, where: str, candidates: list[str]) -> Problem:
    close = difflib.get_close_matches(ident.name, candidates, n=1, cutoff=0.6)
    helps = (f"did you mean `{close[0]}`?",) if close else ()
    known = ", ".join(candidates[:12]) + (", ..." if len(candidates) > 12 else "")
    return Problem(
        "E202", f"unknown name `{ident.name}` in {where}", ident, (*helps, f"known here: {known}")
    )
