"""Segments and tags over HTTP: list, describe, define, refresh, drop (the routers are thin; the
work is `runtime.definitions`').

Reads (list, describe) answer from one snapshot of the store. Writes run on the query pool (they
run EQL), one at a time (`AppState.writes`), under `refresh_deadline`; after each, the lookup
structures are reloaded and the change feeds are woken (`AppState.changed`). A name that names
nothing is a 404 (`unknown_segment`, `unknown_tag`), checked at once and again once the write
holds its slot (another write may have come first); a text that is not a DEFINE of the resource
is a 422 (`wrong_statement`).

Refreshes are counted in the metrics (`eql_refreshes_total`, and for one that succeeded its work's
duration, as the runtime measured it): those of the routes (a refresh, a define with `refresh`),
and a `REFRESH` statement of `/v1/query` that succeeded (its answer is a refresh's facts; a
statement that failed is counted with the queries).
"""

from __future__ import annotations

import datetime as dt
import gc
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any, TypeVar

import pyarrow as pa

from runtime import definitions as resources
from server.errors import ApiError
from server.metrics import code_of

if TYPE_CHECKING:
    from server.state import AppState

SEGMENTS = resources.SEGMENTS
TAGS = resources.TAGS
T = TypeVar("T")


def _api(fn: Callable[..., T], *args: Any) -> T:
    """`fn(*args)` with the runtime's resource errors as the API's."""
    try:
        return fn(*args)
    except resources.Unknown as exc:
        raise ApiError(404, f"unknown_{exc.what}", str(exc)) from None
    except resources.WrongStatement as exc:
        raise ApiError(422, "wrong_statement", str(exc)) from None


def listing(state: AppState, kinds: resources.Kinds) -> list[dict[str, Any]]:
    return resources.listing(state.session, kinds)


def detail(state: AppState, kinds: resources.Kinds, name: str, history: int) -> dict[str, Any]:
    return _api(resources.detail, state.session, kinds, name, history)


def current(state: AppState, kinds: resources.Kinds, name: str) -> resources.Definition:
    return _api(resources.current, state.session, kinds, name)


async def write(state: AppState, fn: Callable[..., T], *args: Any) -> T:
    """Run one write on the query pool, one write at a time; then reload and wake the feeds."""
    deadline = time.monotonic() + state.settings.refresh_deadline
    async with state.writes:
        run = await state.runner.start(deadline, state.settings.memory_limit)
        try:
            result: T = await run.call(_api, fn, *args)
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


async def define(
    state: AppState, kinds: resources.Kinds, text: str, refresh: bool, as_of: dt.datetime | None
) -> tuple[int, dict[str, Any]]:
    """Store a definition (a new version if the name exists) and, with `refresh`, its first
    refresh, in one commit; the status (201 new, 200 a new version) and its description."""
    limit = state.settings.max_query_chars
    if len(text) > limit:
        raise ApiError(422, "query_too_large", f"the text has {len(text)} characters (max {limit})")
    _api(resources.define_statement_of, kinds, text)  # 400 / 422 before waiting for the slot
    session = state.session
    now = as_of or dt.datetime.now(dt.UTC)

    def work() -> tuple[int, dict[str, Any]]:
        d, facts = resources.define(session, kinds, text, now if refresh else None, now)
        out = resources.detail(session, kinds, d.name, 20)
        if facts is not None:
            out["refreshed"] = facts
        return (201 if d.version == 1 else 200), out

    if not refresh:
        return await write(state, work)
    try:
        status, out = await write(state, work)
    except BaseException as exc:
        state.metrics.refreshed(resources.noun(kinds), code_of(exc))
        raise
    _refreshed(state, out["refreshed"])
    return status, out


def _refreshed(state: AppState, facts: dict[str, Any]) -> None:
    state.metrics.refreshed(str(facts["kind"]), None, float(facts["elapsed_ms"]) / 1000)


def count_refresh(state: AppState, table: pa.Table) -> None:
    """Count a statement's refresh: its answer is the refresh's facts (one row with
    `elapsed_ms`); other statements' answers are not."""
    if table.num_rows == 1 and {"kind", "elapsed_ms"} <= set(table.column_names):
        _refreshed(state, table.to_pylist()[0])


async def refresh(
    state: AppState, kinds: resources.Kinds, name: str, as_of: dt.datetime | None
) -> dict[str, Any]:
    """Materialise the latest definition at `as_of` (default now): the new version's facts."""
    d = current(state, kinds, name)  # 404 at once, without waiting for the write slot
    now = as_of or dt.datetime.now(dt.UTC)
    try:
        facts = await write(state, resources.refresh, state.session, kinds, name, now)
    except BaseException as exc:
        state.metrics.refreshed(d.kind, code_of(exc))
        raise
    _refreshed(state, facts)
    return facts


async def drop(state: AppState, kinds: resources.Kinds, name: str) -> None:
    current(state, kinds, name)
    await write(state, resources.drop, state.session, kinds, name)
