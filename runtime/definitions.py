"""Tags, segments and clusters as resources (what the server's routes answer, and any app that
manages definitions): list, describe, define, refresh, drop. Every answer is plain data.

A resource is a *segment* (`SEGMENTS`: kind SEGMENT) or a *tag* (`TAGS`: kinds TAG and CLUSTERS,
since clusters are read as a tag of their name). Names are unique per kind regardless of case and
resolve so, like in EQL. Reads take one snapshot of the store (`AudienceStore.view`), so a write
meanwhile is wholly in an answer or not at all. `define` takes the EQL `DEFINE` text of the
resource's kinds (`WrongStatement` otherwise) and, with `refresh_at`, stores the definition with
its first refresh in one commit. `Unknown` says a name names nothing.
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from entities.names import fold, shown
from eql.compiler import parse_cached
from eql.syntax import ast
from runtime.audiences import define as define_statement
from runtime.session import Session
from storage.audiences import AudienceReader, Definition, Refresh

Kinds = tuple[str, ...]
SEGMENTS: Kinds = ("SEGMENT",)
TAGS: Kinds = ("TAG", "CLUSTERS")
_STATEMENTS: dict[Kinds, tuple[type, ...]] = {
    SEGMENTS: (ast.DefineSegment,),
    TAGS: (ast.DefineTag, ast.DefineClusters),
}
__all__ = ["SEGMENTS", "TAGS", "Definition", "Refresh", "Unknown", "WrongStatement"]


class Unknown(LookupError):
    """No definition of the resource's kinds has this name."""

    def __init__(self, what: str, name: str) -> None:
        super().__init__(f"no {what} named {shown(name)}")
        self.what = what


class WrongStatement(ValueError):
    """The text is not a DEFINE of the resource's kinds."""


def noun(kinds: Kinds) -> str:
    return "segment" if kinds == SEGMENTS else "tag"


def resolve(aud: AudienceReader, kinds: Kinds, name: str) -> Definition:
    """The latest definition called `name` (regardless of case) among `kinds`; `Unknown` else."""
    for kind in kinds:
        d = aud.definition(kind, name)
        if d is not None:
            return d
    raise Unknown(noun(kinds), name)


def current(session: Session, kinds: Kinds, name: str) -> Definition:
    return resolve(session.audiences, kinds, name)


# ---- reading ---------------------------------------------------------------------------------
def _version(kind: str, r: Refresh) -> dict[str, Any]:
    out: dict[str, Any] = {
        "version": r.version,
        "definition": r.definition,
        "as_of": r.as_of,
        "refreshed_at": r.refreshed_at,
    }
    info = r.info
    if kind == "SEGMENT":
        out.update(size=info.get("size"), entered=info.get("entered"), exited=info.get("exited"))
    else:
        for k in ("type", "entities", "non_null"):
            out[k] = info.get(k)
    return out


def summary(aud: AudienceReader, d: Definition) -> dict[str, Any]:
    """One line of a listing: the definition and its latest version, if any."""
    r = aud.latest(d)
    out: dict[str, Any] = {
        "name": d.name,
        "kind": d.kind.lower(),
        "entity": d.entity,
        "definition": d.version,
        "text": d.text,
        "defined_at": d.defined_at,
        "version": None if r is None else r.version,
        "as_of": None if r is None else r.as_of,
        "refreshed_at": None if r is None else r.refreshed_at,
    }
    if d.kind == "SEGMENT":
        out["size"] = None if r is None else r.info.get("size")
    else:
        out["type"] = None if r is None else r.info.get("type", "int")
        out["non_null"] = None if r is None else r.info.get("non_null")
    return out


def listing(session: Session, kinds: Kinds) -> list[dict[str, Any]]:
    """Every definition of `kinds` with its latest version, sorted by name."""
    aud = (
        session.audiences.view()
    )  # one moment: a write meanwhile is wholly in the listing or not at all
    out = []
    for kind in kinds:
        for name in aud.names(kind):
            d = aud.definition(kind, name)
            if d is not None:
                out.append(summary(aud, d))
    return sorted(out, key=lambda s: (fold(str(s["name"])), str(s["name"])))


def detail(session: Session, kinds: Kinds, name: str, history: int) -> dict[str, Any]:
    """A definition, its latest facts, and its last `history` versions (newest first)."""
    aud = session.audiences.view()
    d = resolve(aud, kinds, name)
    out = summary(aud, d)
    refreshes = aud.refreshes(d)
    out["versions_total"] = len(refreshes)
    out["versions"] = [_version(d.kind, r) for r in reversed(refreshes[-history:])]
    out["definitions"] = [
        {"definition": x.version, "text": x.text, "defined_at": x.defined_at}
        for x in aud.definitions(d.kind, d.name)
    ]
    latest = refreshes[-1].info if refreshes else {}
    if d.kind == "TAG":
        out["top"] = [list(p) for p in latest.get("top", [])]
        extras = latest.get("extras")
        out["extras"] = sorted(extras) if isinstance(extras, dict) else []
    elif d.kind == "CLUSTERS" and latest:
        out["clusters"] = {
            k: latest.get(k) for k in ("k", "seed", "features", "sizes", "centroids", "inertia")
        }
    return out


# ---- writing ---------------------------------------------------------------------------------
def define_statement_of(
    kinds: Kinds, text: str
) -> ast.DefineTag | ast.DefineSegment | ast.DefineClusters:
    """The DEFINE statement of `text`, which must be one of the resource's kinds (EqlError when it
    does not parse, `WrongStatement` when it is another statement)."""
    stmt = parse_cached(text)
    if not isinstance(stmt, _STATEMENTS[kinds]):
        forms = " or ".join(
            {"DefineSegment": "DEFINE SEGMENT", "DefineTag": "DEFINE TAG"}.get(
                t.__name__, "DEFINE CLUSTERS"
            )
            for t in _STATEMENTS[kinds]
        )
        raise WrongStatement(f"this route takes {forms} ... statements")
    assert isinstance(stmt, ast.DefineTag | ast.DefineSegment | ast.DefineClusters)
    return stmt


def define(
    session: Session, kinds: Kinds, text: str, refresh_at: dt.datetime | None, now: dt.datetime
) -> tuple[Definition, dict[str, Any] | None]:
    """Store the definition (a new version when the name exists) and, with `refresh_at`, its
    first refresh, in one commit: the stored definition and the refresh's facts."""
    stmt = define_statement_of(kinds, text)
    return define_statement.store_definition(session.engine, stmt, text, now, refresh_at)


def refresh(session: Session, kinds: Kinds, name: str, now: dt.datetime) -> dict[str, Any]:
    """Materialise the latest definition at `now`: the new version's facts."""
    facts = define_statement.refresh_definition(session.engine, current(session, kinds, name), now)
    facts["kind"] = str(facts["kind"]).lower()
    return facts


def drop(session: Session, kinds: Kinds, name: str) -> None:
    session.audiences.drop(current(session, kinds, name))
