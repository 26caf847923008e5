"""`/v1/segments`: list, define, describe, refresh, drop; membership of one key or many; the
change feed (SSE). Reads need `lookup` or `query`, writes `define`, lookups `lookup`.

Single membership is also served on the raw path (`server.fastpath`); batch membership parses
its body itself (orjson, NumPy) rather than through a model, since a batch holds up to
`max_batch_keys` keys (`BatchRequest` documents it).
"""

from __future__ import annotations

import asyncio
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Query, Request
from starlette.responses import Response

from server import definitions as D
from server import feed as F
from server.auth import require
from server.encoding import dumps
from server.errors import responses
from server.models import (
    AudienceDetail,
    AudienceList,
    BatchRequest,
    BatchResult,
    DefineRequest,
    Membership,
    RefreshRequest,
    RefreshResult,
)
from server.state import AppState

router = APIRouter(prefix="/v1/segments", tags=["segments"])

READ = [Depends(require("lookup", "query", limit="lookup"))]
WRITE = [Depends(require("define", limit="query"))]
LOOKUP = [Depends(require("lookup", limit="lookup"))]
_BIG_BATCH = 64 << 10  # bodies larger than this are checked on a thread, not on the event loop


def _json(obj: Any, status: int = 200) -> Response:
    return Response(dumps(obj), status, media_type="application/json")


def membership(state: AppState, segment: str, key: str) -> bytes:
    return state.lookups.membership(segment, key)


@router.get(
    "",
    summary="Every segment: definition, latest version, size",
    response_model=AudienceList,
    responses=responses(401, 403, 429),
    dependencies=READ,
)
async def list_segments(request: Request) -> Response:
    state: AppState = request.app.state.eql
    return _json({"items": D.listing(state.engine.audiences, D.SEGMENTS)})


@router.post(
    "",
    summary="Define a segment (a new definition version if it exists); optionally refresh it",
    status_code=201,
    response_model=AudienceDetail,
    responses={
        **responses(400, 401, 403, 408, 413, 422, 429),
        200: {"description": "a new version of an existing definition"},
    },
    dependencies=WRITE,
)
async def define_segment(body: DefineRequest, request: Request) -> Response:
    state: AppState = request.app.state.eql
    status, out = await D.define(state, D.SEGMENTS, body.eql, body.refresh, body.reference_time())
    return _json(out, status)


@router.get(
    "/{name}",
    summary="A segment: definition history and versions (size, entered, exited)",
    response_model=AudienceDetail,
    responses=responses(401, 403, 404, 429),
    dependencies=READ,
)
async def get_segment(
    name: str,
    request: Request,
    history: Annotated[int, Query(ge=1, le=1000, description="Versions to list")] = 20,
) -> Response:
    state: AppState = request.app.state.eql
    return _json(D.detail(state.engine.audiences, D.SEGMENTS, name, history))


@router.delete(
    "/{name}",
    summary="Drop a segment with all its versions",
    status_code=204,
    responses=responses(401, 403, 404, 429),
    dependencies=WRITE,
)
async def drop_segment(name: str, request: Request) -> Response:
    await D.drop(request.app.state.eql, D.SEGMENTS, name)
    return Response(status_code=204)


@router.post(
    "/{name}/refresh",
    summary="Materialise a segment's latest definition as a new version",
    response_model=RefreshResult,
    responses=responses(400, 401, 403, 404, 408, 413, 422, 429),
    dependencies=WRITE,
)
async def refresh_segment(
    name: str, request: Request, body: RefreshRequest | None = None
) -> Response:
    as_of = body.reference_time() if body is not None else None
    return _json(await D.refresh(request.app.state.eql, D.SEGMENTS, name, as_of))


@router.get(
    "/{name}/members/{key:path}",
    summary="Is this key in the segment? (its latest version)",
    response_model=Membership,
    responses=responses(401, 403, 404, 422, 429) | {409: {"description": "never refreshed"}},
    dependencies=LOOKUP,
)
async def get_membership(name: str, key: str, request: Request) -> Response:
    body = membership(request.app.state.eql, name, key)
    return Response(body, media_type="application/json")


@router.post(
    "/{name}/members",
    summary="Membership of many keys at once",
    response_model=BatchResult,
    responses=responses(400, 401, 403, 404, 413, 422, 429)
    | {409: {"description": "never refreshed"}},
    dependencies=LOOKUP,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": BatchRequest.model_json_schema()}},
        }
    },
)
async def batch_membership(name: str, request: Request) -> Response:
    state: AppState = request.app.state.eql
    raw = await request.body()
    if len(raw) > _BIG_BATCH:
        body = await asyncio.to_thread(state.lookups.batch, name, raw)
    else:
        body = state.lookups.batch(name, raw)
    return Response(body, media_type="application/json")


@router.get(
    "/{name}/changes",
    summary="Server-Sent Events: who entered and exited, version by version (resumable)",
    response_class=Response,
    responses={
        **responses(401, 403, 404, 422, 429),
        200: {
            "description": "`text/event-stream` of `change` events (see docs/server.md)",
            "content": {F.MEDIA: {"schema": {"type": "string"}}},
        },
    },
    dependencies=LOOKUP,
)
async def changes(
    name: str,
    request: Request,
    since: Annotated[
        str | None, Query(description="Start after version N (0: from the start; `latest`)")
    ] = None,
    last_event_id: Annotated[str | None, Header(description="Resume after this event")] = None,
) -> Response:
    state: AppState = request.app.state.eql
    d = D.resolve(state.engine.audiences, D.SEGMENTS, name)
    latest = state.engine.audiences.latest("SEGMENT", d.name)
    start = F.position(last_event_id, since, 0 if latest is None else latest.version)
    return F.EventStream(state, F.changes(state, d.name, d.entity, start))
