"""SHOW, DESCRIBE, DROP and EXPLAIN MEMBERSHIP: answers about definitions, as Arrow tables."""

from __future__ import annotations

import datetime as dt
from typing import Any

import pyarrow as pa

from entities.names import shown
from eql import types
from eql.binder.values import convert, convert_param
from eql.syntax import ast, parse
from runtime.audiences.compute import bind_entity, entity_find, fail, run_entity
from runtime.engine import Engine
from storage.audiences import AudienceReader, Definition

PLURAL = {"TAG": "TAGS", "SEGMENT": "SEGMENTS", "CLUSTERS": "CLUSTERS"}

# The columns of SHOW and DESCRIBE, typed whatever the rows hold (none, or only nulls in a
# column: a segment never refreshed), so that a result's columns depend on the statement alone.
_TIME = pa.timestamp("us", tz="UTC")
_REFRESH = [("as_of", _TIME), ("refreshed_at", _TIME)]
_SHOWN = {
    "SEGMENT": [("size", pa.int64())],
    "TAG": [("type", pa.string()), ("non_null", pa.int64())],
    "CLUSTERS": [("k", pa.int64())],
}
_DESCRIBED = {
    "SEGMENT": [("size", pa.int64()), ("entered", pa.int64()), ("exited", pa.int64())],
    "TAG": [("type", pa.string()), ("non_null", pa.int64()), ("top", pa.string())],
}
_NAMES = [("name", pa.string()), ("entity", pa.string())]
_VERSIONS = [("definition", pa.int64()), ("version", pa.int64())]
SHOW_SCHEMAS = {
    kind: pa.schema(_NAMES + _VERSIONS + _REFRESH + cols) for kind, cols in _SHOWN.items()
}
DESCRIBE_SCHEMAS = {
    kind: pa.schema([("version", pa.int64()), ("definition", pa.int64()), *_REFRESH, *cols]).append(
        pa.field("text", pa.string())
    )
    for kind, cols in _DESCRIBED.items()
}


def show(engine: Engine, kind: str) -> pa.Table:
    aud = engine.audiences.view()
    rows: list[dict[str, Any]] = []
    for name in aud.names(kind):
        d = aud.definition(kind, name)
        assert d is not None
        r = aud.latest(d)
        row: dict[str, Any] = {
            "name": d.name,
            "entity": d.entity,
            "definition": d.version,
            "version": None if r is None else r.version,
            "as_of": None if r is None else r.as_of,
            "refreshed_at": None if r is None else r.refreshed_at,
        }
        if kind == "SEGMENT":
            row["size"] = None if r is None else int(r.info["size"])
        elif kind == "TAG":
            row["type"] = None if r is None else str(r.info.get("type"))
            row["non_null"] = None if r is None else int(r.info.get("non_null", 0))
        else:
            row["k"] = None if r is None else int(r.info["k"])
        rows.append(row)
    return pa.Table.from_pylist(rows, schema=SHOW_SCHEMAS[kind])


def _require(aud: AudienceReader, kind: str, name: ast.Ident, text: str) -> Definition:
    """The definition `name` names (regardless of case), or E225 with the closest names."""
    d = aud.definition(kind, name.name)
    if d is not None:
        return d
    import difflib

    known = aud.names(kind)
    close = difflib.get_close_matches(name.name, known, n=1, cutoff=0.6)
    raise fail(
        text,
        "E225",
        f"unknown {kind.lower()} `{shown(name.name)}`",
        name.span,
        f"did you mean `{close[0]}`?" if close else "",
        f"SHOW {PLURAL[kind]} lists them",
    )


def describe(engine: Engine, kind: str, ident: ast.Ident, text: str) -> pa.Table:
    aud = engine.audiences.view()
    current = _require(aud, kind, ident, text)
    name = current.name
    defs = {d.version: d for d in aud.definitions(kind, name)}
    refreshes = aud.refreshes(current)
    if kind == "CLUSTERS":
        if not refreshes:
            raise fail(
                text,
                "E227",
                f"clusters `{name}` have not been refreshed yet",
                ident.span,
                f"run REFRESH CLUSTERS {name}",
            )
        info = refreshes[-1].info
        total = max(sum(info["sizes"]), 1)
        rows = []
        for i, (size, centre) in enumerate(zip(info["sizes"], info["centroids"], strict=True)):
            row: dict[str, Any] = {"cluster": i, "size": size, "share": round(size / total, 4)}
            row.update(
                {f: round(v, 4) + 0.0 for f, v in zip(info["features"], centre, strict=True)}
            )
            rows.append(row)
        return pa.Table.from_pylist(rows)
    rows = []
    for r in refreshes:
        row = {
            "version": r.version,
            "definition": r.definition,
            "as_of": r.as_of,
            "refreshed_at": r.refreshed_at,
        }
        if kind == "SEGMENT":
            row.update(size=r.info["size"], entered=r.info["entered"], exited=r.info["exited"])
        else:
            row.update(
                type=r.info.get("type"),
                non_null=r.info.get("non_null"),
                top=", ".join(f"{v}: {n}" for v, n in r.info.get("top", [])[:8]),
            )
        d = defs.get(r.definition)
        row["text"] = d.text if d is not None else None
        rows.append(row)
    if not rows:  # defined, never refreshed: the definitions alone
        rows = [{"version": None, "definition": d.version, "text": d.text} for d in defs.values()]
    return pa.Table.from_pylist(rows, schema=DESCRIBE_SCHEMAS[kind])


def drop(engine: Engine, kind: str, ident: ast.Ident, text: str) -> pa.Table:
    d = _require(engine.audiences, kind, ident, text)
    engine.audiences.drop(d)
    return pa.table({"kind": [kind], "name": [d.name], "message": ["dropped"]})


def _leaves(e: ast.Expr, out: list[ast.Expr]) -> None:
    """Every condition of a predicate, outermost first: AND/OR operands and NOT operands."""
    out.append(e)
    if isinstance(e, ast.Logical):
        for op in e.operands:
            _leaves(op, out)
    elif isinstance(e, ast.Not):
        _leaves(e.operand, out)
    elif isinstance(e, ast.Compare | ast.Between):
        for side in (e.left, e.right) if isinstance(e, ast.Compare) else (e.operand,):
            if not isinstance(
                side,
                ast.IntLiteral
                | ast.DecimalLiteral
                | ast.StringLiteral
                | ast.DateLiteral
                | ast.TimestampLiteral
                | ast.BoolLiteral,
            ):
                out.append(side)


def explain_membership(
    engine: Engine, stmt: ast.ExplainMembership, text: str, params: dict[str, Any], now: dt.datetime
) -> pa.Table:
    aud = engine.audiences.view()
    d = _require(aud, "SEGMENT", stmt.segment, text)
    name = d.name
    ent = engine.store.entity(d.entity)
    key = _key(text, stmt.key, params, types.from_schema(ent.key.type))
    dense = engine.store.dense_id(d.entity, key)
    if dense is None or engine.store.get(d.entity, key) is None:
        raise fail(
            text,
            "E232",
            f"no {d.entity} with key {key!r}",
            stmt.key.span,
            f"keys of {d.entity} are {ent.key.type.kind.value}s",
        )
    seg = parse(d.text)
    assert isinstance(seg, ast.DefineSegment)
    parts: list[ast.Expr] = []
    _leaves(seg.where, parts)
    items = [(f"p{i}", p) for i, p in enumerate(parts)]
    key_path = ast.Path((ast.Ident(ent.key.name, seg.span),), seg.span)
    where = ast.Compare(ast.CompareOp.EQ, key_path, ast.Param("__key", seg.span), seg.span)
    c = bind_entity(
        engine, d.text, entity_find(seg.entity, seg.span, where, items), now, {"__key": key}
    )
    result = run_entity(engine, c).to_pylist()
    values = result[0] if result else {}
    r = aud.latest(d)
    members = None if r is None else aud.bitmap(d.generation, r.version)
    stored = None if members is None else dense in members
    rows = [
        {"check": f"member of {name} v{r.version if r else '-'} (stored)", "value": _s(stored)},
    ]
    for i, p in enumerate(parts):
        snippet = " ".join(d.text[p.span.start : p.span.end].split())
        rows.append({"check": snippet, "value": _s(values.get(f"p{i}"))})
    return pa.Table.from_pylist(rows)


def _key(text: str, node: ast.MembershipKey, params: dict[str, Any], t: types.Type) -> Any:
    raw: Any = node.name if isinstance(node, ast.Param) else node.value
    if isinstance(node, ast.Param):
        if node.name not in params:
            raise fail(text, "E210", f"missing parameter ${node.name}", node.span)
        raw = params[node.name]
        try:
            return convert_param(raw, t)
        except ValueError as exc:
            raise fail(text, "E211", f"parameter ${node.name}: {exc}", node.span) from None
    try:
        return convert(raw, t)
    except ValueError as exc:
        raise fail(text, "E232", f"{raw!r} is not a key: {exc}", node.span) from None


def _s(v: Any) -> str:
    if v is None:
        return "null"
    if isinstance(v, bool):
        return "true" if v else "false"
    if isinstance(v, dt.datetime):
        return v.isoformat()
    return str(v)
