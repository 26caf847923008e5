"""DEFINE and REFRESH of tags, segments and clusters.

DEFINE checks the definition (a valid name, `entities.names`; it must bind on its entity, take
no parameters, not shadow an attribute) and stores a new definition version; REFRESH runs the
latest definition at the reference time and commits a new materialised version (bitmaps or
values) in one batch. `define(..., refresh_at=t)` computes the first refresh before anything is
stored and commits the definition with it, in one batch.
"""

from __future__ import annotations

import datetime as dt
import time
from typing import Any

import numpy as np
import pyarrow as pa

from entities.arrow import ID_COLUMN
from entities.names import name_problem, shown
from eql import types
from eql.catalog import type_name
from eql.syntax import ast, parse
from eql.syntax.walk import children
from runtime.audiences import clusters, rfm
from runtime.audiences.compute import bind_entity, bitmap_of, entity_find, fail, run_entity
from runtime.engine import Engine
from storage.audiences import Definition, Materialised, Refresh

MAX_K = 64


def _params_in(node: object) -> ast.Param | None:
    if isinstance(node, ast.Param):
        return node
    for c in children(node):
        found = _params_in(c)
        if found is not None:
            return found
    return None


def check(
    engine: Engine,
    stmt: ast.DefineTag | ast.DefineSegment | ast.DefineClusters,
    text: str,
    now: dt.datetime,
) -> str:
    """Raise EqlError if the definition cannot be stored; return its entity's declared name."""
    schema = engine.store.schema
    entity = next(
        (e.name for e in schema.entities if e.name.lower() == stmt.entity.name.lower()), None
    )
    param = _params_in(stmt)
    if param is not None:
        raise fail(
            text,
            "E231",
            f"a definition cannot take parameters (${param.name})",
            param.span,
            "write the value into the definition",
        )
    kind = _kind(stmt)
    name = stmt.name
    problem = name_problem(name.name)
    if problem is not None:
        raise fail(
            text,
            "E233",
            f"`{shown(name.name)}` cannot name a {kind.lower()}: {problem}",
            name.span,
            "names are letters, digits and _ (up to 64), starting with a letter or _",
        )
    if entity is not None:
        ent = schema.require_entity(entity)
        own = [c.name for c in ent.columns] + [r.name for r in ent.relations]
        own += [st.name for st, _ in schema.streams_of(entity)]
        if kind != "SEGMENT" and name.name.lower() in (n.lower() for n in own):
            raise fail(
                text,
                "E229",
                f"`{name.name}` is already a name in {entity}",
                name.span,
                "a tag is read like an attribute, so pick another name",
            )
    aud = engine.audiences
    other = {"TAG": "CLUSTERS", "CLUSTERS": "TAG"}.get(kind)
    if other is not None and aud.definition(other, name.name) is not None:
        raise fail(
            text,
            "E229",
            f"`{name.name}` is already defined as {other}",
            name.span,
            f"DROP {other} {name.name} first, or pick another name",
        )
    previous = aud.definition(kind, name.name)
    if previous is not None and entity is not None and previous.entity != entity:
        raise fail(
            text,
            "E229",
            f"{kind} `{name.name}` is defined on {previous.entity}, not {entity}",
            stmt.entity.span,
            f"DROP {kind} {name.name} first to move it to {entity}",
        )
    if isinstance(stmt, ast.DefineSegment):
        bind_entity(engine, text, entity_find(stmt.entity, stmt.span, where=stmt.where), now)
    elif isinstance(stmt, ast.DefineTag):
        if rfm.is_rfm(stmt.expr):
            rfm.items(text, stmt.expr)  # checks the arguments
            bind_entity(
                engine,
                text,
                entity_find(stmt.entity, stmt.span, items=rfm.items(text, stmt.expr)),
                now,
            )
        else:
            c = bind_entity(
                engine, text, entity_find(stmt.entity, stmt.span, items=[("value", stmt.expr)]), now
            )
            if c.bound.items[1].expr.type.kind is types.Kind.NULL:
                raise fail(text, "E231", "a tag's value cannot be always null", stmt.expr.span)
    else:
        clusters.check(text, stmt, MAX_K)
        c = bind_entity(
            engine,
            text,
            entity_find(
                stmt.entity, stmt.span, items=[(f.name.name, f.expr) for f in stmt.features]
            ),
            now,
        )
        for f, item in zip(stmt.features, c.bound.items[1:], strict=True):
            if not item.expr.type.numeric:
                raise fail(
                    text,
                    "E231",
                    f"feature `{f.name.name}` is {item.expr.type}; k-means needs numbers",
                    f.expr.span,
                    "turn it into a number: count(...), days_since(...), CASE ... END",
                )
    assert entity is not None  # an unknown entity fails to bind (E201) above
    return entity


def _kind(stmt: ast.DefineTag | ast.DefineSegment | ast.DefineClusters) -> str:
    if isinstance(stmt, ast.DefineTag):
        return "TAG"
    return "SEGMENT" if isinstance(stmt, ast.DefineSegment) else "CLUSTERS"


def define(
    engine: Engine,
    stmt: ast.DefineTag | ast.DefineSegment | ast.DefineClusters,
    text: str,
    now: dt.datetime,
) -> pa.Table:
    """DEFINE as a statement: the answer table."""
    d, _ = store_definition(engine, stmt, text, now)
    return pa.table(
        {
            "kind": [d.kind],
            "name": [d.name],
            "entity": [d.entity],
            "definition": [d.version],
            "message": [f"defined; REFRESH {d.kind} {d.name} materialises it"],
        }
    )


def store_definition(
    engine: Engine,
    stmt: ast.DefineTag | ast.DefineSegment | ast.DefineClusters,
    text: str,
    now: dt.datetime,
    refresh_at: dt.datetime | None = None,
) -> tuple[Definition, dict[str, Any] | None]:
    """Check and store a definition; with `refresh_at`, also its first refresh at that reference
    time, computed first and committed with the definition (neither exists without the other).
    The stored definition and the refresh's facts."""
    entity = check(engine, stmt, text, now)
    kind = _kind(stmt)
    source = text[stmt.span.start : stmt.span.end]
    wall = dt.datetime.now(dt.UTC)  # when it was defined; `now` is the reference time
    started = time.perf_counter()
    first = None
    if refresh_at is not None:
        first = (refresh_at, materialise(engine, stmt, source, refresh_at))
    d, r = engine.audiences.define(kind, stmt.name.name, entity, source, wall, first)
    return d, None if r is None else _facts(r, time.perf_counter() - started)


def refresh(engine: Engine, kind: str, name: ast.Ident, text: str, now: dt.datetime) -> pa.Table:
    d = find(engine, kind, name.name)
    if d is None:
        raise fail(
            text,
            "E225",
            f"unknown {kind.lower()} `{shown(name.name)}`",
            name.span,
            f"SHOW {kind if kind == 'CLUSTERS' else kind + 'S'} lists them",
        )
    return pa.Table.from_pylist([refresh_definition(engine, d, now)])


def refresh_definition(engine: Engine, d: Definition, now: dt.datetime) -> dict[str, Any]:
    """Materialise the latest version of a stored definition; the facts of the new version."""
    started = time.perf_counter()
    stmt = parse(d.text)
    assert isinstance(stmt, ast.DefineTag | ast.DefineSegment | ast.DefineClusters)
    computed = materialise(engine, stmt, d.text, now)
    try:
        r = engine.audiences.write_refresh(d, now, computed)
    except KeyError:  # dropped (or dropped and defined again) while it was computed
        raise fail(
            d.text,
            "E225",
            f"{d.kind.lower()} `{shown(d.name)}` was dropped while it was refreshed",
            None,
        ) from None
    return _facts(r, time.perf_counter() - started)


def _facts(r: Refresh, seconds: float) -> dict[str, Any]:
    row: dict[str, Any] = {
        "kind": r.kind,
        "name": r.name,
        "version": r.version,
        "as_of": r.as_of,
        "elapsed_ms": round(seconds * 1000, 1),
    }
    for k in ("size", "entered", "exited", "entities", "non_null"):
        if k in r.info:
            row[k] = r.info[k]
    return row


def find(engine: Engine, kind: str, name: str) -> Definition | None:
    """The latest definition of `name` (regardless of case), or None."""
    return engine.audiences.definition(kind, name)


def materialise(
    engine: Engine,
    stmt: ast.DefineTag | ast.DefineSegment | ast.DefineClusters,
    text: str,
    now: dt.datetime,
) -> Materialised:
    """Compute one refresh of a definition (nothing is stored): members, or values and facts."""
    if isinstance(stmt, ast.DefineSegment):
        c = bind_entity(engine, text, entity_find(stmt.entity, stmt.span, where=stmt.where), now)
        ids = run_entity(engine, c).column(ID_COLUMN)
        return Materialised({}, members=bitmap_of(ids))
    if isinstance(stmt, ast.DefineTag):
        if rfm.is_rfm(stmt.expr):
            c = bind_entity(
                engine,
                text,
                entity_find(stmt.entity, stmt.span, items=rfm.items(text, stmt.expr)),
                now,
            )
            table = rfm.score(run_entity(engine, c))
            info: dict[str, Any] = {"type": "string", "extras": {k: "int" for k in rfm.EXTRAS}}
        else:
            c = bind_entity(
                engine, text, entity_find(stmt.entity, stmt.span, items=[("value", stmt.expr)]), now
            )
            table = run_entity(engine, c)
            info = {"type": type_name(c.bound.items[1].expr.type)}
        info.update(_counts(table))
        return Materialised(info, values=table)
    c = bind_entity(
        engine,
        text,
        entity_find(stmt.entity, stmt.span, items=[(f.name.name, f.expr) for f in stmt.features]),
        now,
    )
    data = run_entity(engine, c)
    try:
        labels, info = clusters.fit(data, stmt.k.value, stmt.seed.value)
    except ValueError as exc:
        raise fail(text, "E231", f"cannot cluster: {exc}", stmt.k.span) from None
    table = pa.table(
        {ID_COLUMN: data.column(ID_COLUMN), "value": pa.array(labels, type=pa.int64())}
    )
    info.update(type="int", **_counts(table))
    return Materialised(info, values=table)


def _counts(table: pa.Table) -> dict[str, Any]:
    """Entities, non-null values and the 20 most common values (for DESCRIBE)."""
    value = table.column("value")
    counts = value.drop_null().value_counts() if table.num_rows else pa.array([], pa.struct([]))
    pairs: list[tuple[Any, int]] = []
    if len(counts):
        vals = counts.field("values").to_pylist()
        ns = counts.field("counts").to_numpy()
        order = np.lexsort((np.arange(len(ns)), -ns))[:20]
        pairs = [(_plain(vals[i]), int(ns[i])) for i in order]
    return {"entities": table.num_rows, "non_null": table.num_rows - value.null_count, "top": pairs}


def _plain(v: Any) -> Any:
    if isinstance(v, bool | int | float | str) or v is None:
        return v
    return str(v)
