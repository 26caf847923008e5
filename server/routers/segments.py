"""`/v1/segments`: list, define, describe, refresh, drop (`server.routers.audiences`);
membership of one key or many; the change feed (SSE). Lookups need `lookup`.

The change feed starts after the version `since` or `Last-Event-ID` names; a position beyond the
latest version (`since=9` on versions 1-3) is a 400 `unknown_version` whose message names the
versions it has (the runtime's check, `runtime.audiences.versions.require`) and whose `latest`
gives the latest version to resume from, never a feed that waits for it.

Single membership is also served on the raw path (`server.fastpath`); batch membership parses
its body itself (orjson, NumPy) rather than through a model, since a batch holds up to
`max_batch_keys` keys (`BatchRequest` documents it).
"""

from __future__ import annotations

import asyncio
from typing import Annotated

from fastapi import APIRouter, Header, Query, Request
from starlette.responses import Response

from runtime.audiences import versions as segment_versions
from server import definitions, feed
from server.errors import ApiError, ErrorBody, responses
from server.models import BatchRequest, BatchResult, Membership
from server.routers.audiences import LOOKUP, add_definition_routes
from server.state import AppState

router = APIRouter(prefix="/v1/segments", tags=["segments"])
add_definition_routes(router, definitions.SEGMENTS, "segment", "segment", "DEFINE SEGMENT")

_BIG_BATCH = 64 << 10  # bodies larger than this are checked on a thread, not on the event loop


def membership(state: AppState, segment: str, key: str) -> bytes:
    return state.lookups.membership(segment, key)


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
        400: {
            "model": ErrorBody,
            "description": "`since` / `Last-Event-ID` is beyond the latest version "
            "(`unknown_version`: the message names the versions there are, `latest` the latest)",
        },
        200: {
            "description": "`text/event-stream` of `change` events (see docs/server.md)",
            "content": {feed.MEDIA: {"schema": {"type": "string"}}},
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
    d = definitions.current(state, definitions.SEGMENTS, name)
    versions = state.lookups.audiences.versions(d, 1)
    latest = versions[-1].version if versions else 0
    start = feed.position(last_event_id, since, latest, d.generation)
    version, offset, reset = start
    seen = version if offset else version - 1  # the version the reader says it holds (0: none)
    if not reset and seen > latest:
        try:
            segment_versions.require(state.session.audiences, d, seen)
        except segment_versions.UnknownVersion as exc:
            raise ApiError(400, "unknown_version", str(exc), latest=latest) from None
    return feed.EventStream(state, feed.changes(state, d, start))
