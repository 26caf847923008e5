"""`/v1/tags`: tags and clusters (read as a tag of their name): list, define, describe,
refresh, drop. Reads need `lookup` or `query`, writes `define`. A key's tag values are in its
profile (`GET /v1/entities/{entity}/{key}`)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Query, Request
from starlette.responses import Response

from server import definitions as D
from server.errors import responses
from server.models import AudienceDetail, AudienceList, DefineRequest, RefreshRequest, RefreshResult
from server.routers.segments import READ, WRITE, _json
from server.state import AppState

router = APIRouter(prefix="/v1/tags", tags=["tags"])


@router.get(
    "",
    summary="Every tag and clusters: definition, latest version, type",
    response_model=AudienceList,
    responses=responses(401, 403, 429),
    dependencies=READ,
)
async def list_tags(request: Request) -> Response:
    state: AppState = request.app.state.eql
    return _json({"items": D.listing(state.engine.audiences, D.TAGS)})


@router.post(
    "",
    summary="Define a tag or clusters (a new definition version if it exists); optionally refresh",
    status_code=201,
    response_model=AudienceDetail,
    responses={
        **responses(400, 401, 403, 408, 413, 422, 429),
        200: {"description": "a new version of an existing definition"},
    },
    dependencies=WRITE,
)
async def define_tag(body: DefineRequest, request: Request) -> Response:
    state: AppState = request.app.state.eql
    status, out = await D.define(state, D.TAGS, body.eql, body.refresh, body.reference_time())
    return _json(out, status)


@router.get(
    "/{name}",
    summary="A tag: definition history, versions, most common values (clusters: centroids)",
    response_model=AudienceDetail,
    responses=responses(401, 403, 404, 429),
    dependencies=READ,
)
async def get_tag(
    name: str,
    request: Request,
    history: Annotated[int, Query(ge=1, le=1000, description="Versions to list")] = 20,
) -> Response:
    state: AppState = request.app.state.eql
    return _json(D.detail(state.engine.audiences, D.TAGS, name, history))


@router.delete(
    "/{name}",
    summary="Drop a tag (or clusters) with all its versions",
    status_code=204,
    responses=responses(401, 403, 404, 429),
    dependencies=WRITE,
)
async def drop_tag(name: str, request: Request) -> Response:
    await D.drop(request.app.state.eql, D.TAGS, name)
    return Response(status_code=204)


@router.post(
    "/{name}/refresh",
    summary="Materialise a tag's latest definition as a new version",
    response_model=RefreshResult,
    responses=responses(400, 401, 403, 404, 408, 413, 422, 429),
    dependencies=WRITE,
)
async def refresh_tag(name: str, request: Request, body: RefreshRequest | None = None) -> Response:
    as_of = body.reference_time() if body is not None else None
    return _json(await D.refresh(request.app.state.eql, D.TAGS, name, as_of))
