"""Segments and tags over HTTP: list, describe, define, refresh, drop (the routers are thin).

Reads (list, describe) come straight from the store's audience records. Writes run on the query
pool (they run EQL), one at a time (`AppState.writes`), under `refresh_deadline`; after each, the
lookup structures are reloaded and the change feeds are woken (`AppState.changed`).

A resource is a *segment* (`/v1/segments`: kind SEGMENT) or a *tag* (`/v1/tags`: kinds TAG and
CLUSTERS, since clusters are read as a tag of their name). Names are unique per kind regardless of
case and resolve so, like in EQL. Reads take one snapshot of the store (`AudienceStore.view`);
writes resolve the name again once they hold the write slot.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import gc
import time
from typing import TYPE_CHECKING, Any

from entities.names import fold, shown
from eql.audiences import define as DF
from eql.syntax import ast as A
from server.errors import ApiError
from storage.audiences import AudienceReader, AudienceStore, Definition, Refresh

if TYPE_CHECKING:
    from server.state import AppState

SEGMENTS = ("SEGMENT",)
TAGS = ("TAG", "CLUSTERS")
_STATEMENTS: dict[tuple[str, ...], tuple[type, ...]] = {
    SEGMENTS: (A.DefineSegment,),
    TAGS: (A.DefineTag, A.DefineClusters),
}


def _what(kinds: tuple[str, ...]) -> str:
    return "segment" if kinds == SEGMENTS else "tag"


def resolve(aud: AudienceReader, kinds: tuple[str, ...], name: str) -> Definition:
    """The latest definition called `name` (regardless of case) among `kinds`; 404 if none."""
    for kind in kinds:
        d = aud.definition(kind, name)
        if d is not None:
            return d
    raise ApiError(404, f"unknown_{_what(kinds)}", f"no {_what(kinds)} named {shown(name)}")


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


def listing(store: AudienceStore, kinds: tuple[str, ...]) -> list[dict[str, Any]]:
    aud = store.view()  # one moment: a write meanwhile is wholly in the listing or not at all
    out = []
    for kind in kinds:
        for name in aud.names(kind):
            d = aud.definition(kind, name)
            if d is not None:
                out.append(summary(aud, d))
    return sorted(out, key=lambda s: (fold(str(s["name"])), str(s["name"])))


def detail(store: AudienceStore, kinds: tuple[str, ...], name: str, history: int) -> dict[str, Any]:
    """A definition, its latest facts, and its last `history` versions (newest first)."""
    aud = store.view()
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
async def write(state: AppState, fn: Any, *args: Any) -> Any:
    """Run one write on the query pool, one write at a time; then reload and wake the feeds."""
    deadline = time.monotonic() + state.settings.refresh_deadline
    async with state.writes:
        run = await state.runner.start(deadline, state.settings.memory_limit)
        try:
            result = await run.call(fn, *args)
            await run.call(state.lookups.reload)
        except BaseException as exc:
            run.finish("timed_out" if getattr(exc, "code", "") == "deadline_exceeded" else "failed")
            raise
        run.finish("completed")
    # the reloaded structures are long-lived too (see server.app); collect first so that no
    # garbage cycle is frozen for good (cheap: what startup built is frozen already)
    gc.collect()
    gc.freeze()
    state.changed.fire()
    return result


def check_statement(state: AppState, kinds: tuple[str, ...], text: str) -> A.Statement:
    """The DEFINE statement of `text`, which must be one of the resource's kinds."""
    from eql.compiler import parse_cached

    limit = state.settings.max_query_chars
    if len(text) > limit:
        raise ApiError(422, "query_too_large", f"the text has {len(text)} characters (max {limit})")
    stmt = parse_cached(text)  # EqlError: 400 with the diagnostics
    wanted = _STATEMENTS[kinds]
    if not isinstance(stmt, wanted):
        forms = " or ".join(
            {"DefineSegment": "DEFINE SEGMENT", "DefineTag": "DEFINE TAG"}.get(
                t.__name__, "DEFINE CLUSTERS"
            )
            for t in wanted
        )
        raise ApiError(422, "wrong_statement", f"this route takes {forms} ... statements")
    return stmt


async def define(
    state: AppState, kinds: tuple[str, ...], text: str, refresh: bool, as_of: dt.datetime | None
) -> tuple[int, dict[str, Any]]:
    """Store a definition (a new version if the name exists) and, with `refresh`, its first
    refresh, in one commit; the status (201 new, 200 a new version) and its description."""
    stmt = check_statement(state, kinds, text)
    assert isinstance(stmt, A.DefineSegment | A.DefineTag | A.DefineClusters)
    engine = state.engine
    now = as_of or dt.datetime.now(dt.UTC)

    def work() -> tuple[Definition, dict[str, Any] | None, dict[str, Any]]:
        d, facts = DF.store_definition(engine, stmt, text, now, now if refresh else None)
        return d, facts, detail(engine.audiences, kinds, d.name, 20)

    d, facts, out = await write(state, work)
    if facts is not None:
        out["refreshed"] = facts
    return (201 if d.version == 1 else 200), out


async def refresh(
    state: AppState, kinds: tuple[str, ...], name: str, as_of: dt.datetime | None
) -> dict[str, Any]:
    """Materialise the latest definition at `as_of` (default now): the new version's facts."""
    engine = state.engine
    resolve(engine.audiences, kinds, name)  # 404 at once, without waiting for the write slot
    now = as_of or dt.datetime.now(dt.UTC)

    def work() -> dict[str, Any]:  # resolved again: another write may have come first
        return DF.refresh_definition(engine, resolve(engine.audiences, kinds, name), now)

    facts: dict[str, Any] = await write(state, work)
    facts["kind"] = str(facts["kind"]).lower()
    return facts


async def drop(state: AppState, kinds: tuple[str, ...], name: str) -> None:
    engine = state.engine
    resolve(engine.audiences, kinds, name)

    def work() -> None:
        engine.audiences.drop(resolve(engine.audiences, kinds, name))
        engine.audiences_changed()

    await write(state, work)


class Signal:
    """Wakes every waiter when something was written (the feeds wait on it)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def fire(self) -> None:
        event, self._event = self._event, asyncio.Event()
        event.set()

    async def wait(self, timeout: float) -> bool:
        """True when fired within `timeout` seconds."""
        try:
            await asyncio.wait_for(self._event.wait(), timeout)
        except TimeoutError:
            return False
        return True
